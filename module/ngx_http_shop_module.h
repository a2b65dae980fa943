
/*
 * The shop as an nginx module: what the files of this directory share.
 *
 *   ngx_http_shop_module.c   directives, configuration, worker start and exit
 *   ngx_http_shop_handler.c  a request: nginx request -> core -> response
 *   ngx_http_shop_body.c     the request body: limit, reading, the body filter
 *   ngx_http_shop_pool.c     the per-worker pools of non-blocking libpq
 *                            connections: the shop's (pipeline mode) and the
 *                            stock check's (one statement at a time)
 *   ngx_http_shop_registry.c the warehouses the stock check asks
 *   ngx_http_shop_fanout.c   a plan on several pools at once, with deadlines
 *   ngx_http_shop_events.c   the event hub: LISTEN connection, frames, timers
 *   ngx_http_shop_stream.c   GET /events: one subscriber, SSE or WebSocket
 *   ngx_http_shop_metrics.c  GET /metrics: the shared zone, the worker's
 *                            gauge slot, a request counted at its end
 */


#ifndef _NGX_HTTP_SHOP_MODULE_H_INCLUDED_
#define _NGX_HTTP_SHOP_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <libpq-fe.h>

#include "shop.h"
#include "metrics.h"


/* requests in flight on one connection (libpq pipeline mode) */
#define NGX_HTTP_SHOP_PIPELINE_DEPTH  32

/* most connections of one stock-check pool (per worker) */
#define NGX_HTTP_SHOP_WAREHOUSE_CONNS 64


typedef struct ngx_http_shop_pool_s      ngx_http_shop_pool_t;
typedef struct ngx_http_shop_conn_s      ngx_http_shop_conn_t;
typedef struct ngx_http_shop_op_s        ngx_http_shop_op_t;
typedef struct ngx_http_shop_job_s       ngx_http_shop_job_t;
typedef struct ngx_http_shop_registry_s  ngx_http_shop_registry_t;
typedef struct ngx_http_shop_snapshot_s  ngx_http_shop_snapshot_t;
typedef struct ngx_http_shop_hub_conf_s  ngx_http_shop_hub_conf_t;
typedef struct ngx_http_shop_hub_s       ngx_http_shop_hub_t;
typedef struct ngx_http_shop_sub_s       ngx_http_shop_sub_t;


/*
 * A job: statements one pool runs, in order, on one connection: a
 * request's plan, one statement of a fanned-out plan, or the module's own
 * (the warehouse list). The handler runs once, when every statement has
 * its result (res[i]) or the job failed (fail, for those without one);
 * sync: from inside ngx_http_shop_pool_submit() for this very job.
 */
typedef void (*ngx_http_shop_job_handler_pt)(ngx_http_shop_job_t *job,
    ngx_uint_t sync);

struct ngx_http_shop_job_s {
    shop_query                    *queries;
    PGresult                     **res;
    ngx_uint_t                     nqueries;
    ngx_http_shop_job_handler_pt   handler;
    void                          *data;
    ngx_log_t                     *log;

    ngx_msec_t                     due;        /* deadline: answer by then */

    /* the pool's */
    ngx_http_shop_pool_t          *pool;
    ngx_http_shop_op_t            *op;         /* in flight */
    ngx_queue_t                    queue;      /* waiting; then answered */
    ngx_event_t                    timer;      /* the queue timeout */
    int64_t                        queued_us;  /* submitted */
    int64_t                        sent_us;
    int64_t                        wait_us;    /* for a connection */
    int64_t                        db_us;
    shop_db_status                 fail;       /* of statements without res */

    unsigned                       waiting:1;
    unsigned                       deadline:1; /* due is set: no queue timeout */
    unsigned                       answered:1;
};


/* what a pool is for (a pool may be several: one database, same settings) */
#define NGX_HTTP_SHOP_ROLE_PRIMARY    0x01  /* shop_database: every write */
#define NGX_HTTP_SHOP_ROLE_READ       0x02  /* shop_read_database */
#define NGX_HTTP_SHOP_ROLE_STOCK      0x04  /* the stock check's */

/* longest metrics target label, with its NUL (shop_metrics_gauges.target) */
#define NGX_HTTP_SHOP_LABEL_LEN       40


/*
 * Locations with the same database, statement timeout and pool settings
 * share one pool; each worker builds its own from this at start.
 */
typedef struct {
    ngx_str_t                  database;
    ngx_str_t                  options;      /* libpq "options": GUCs */
    ngx_str_t                  name;         /* "db on host:port", for logs */
    ngx_msec_t                 statement_timeout;
    ngx_uint_t                 size;
    ngx_uint_t                 queue;
    ngx_msec_t                 queue_timeout;
    ngx_uint_t                 depth;        /* statements in flight per
                                                connection: 1 for the stock
                                                check, which may close one */
    unsigned                   warehouse:1;  /* a stock-check pool: size is
                                                per warehouse it serves */
    unsigned                   roles:3;      /* NGX_HTTP_SHOP_ROLE_* */

    /* GET /metrics: "primary", "read", "stock:primary", "stock:read",
     * "warehouse:<code>[,<code>...]"; its index in the zone's table */
    u_char                     label[NGX_HTTP_SHOP_LABEL_LEN];
    ngx_int_t                  target;

    ngx_http_shop_pool_t      *pool;         /* this worker's */
} ngx_http_shop_pool_conf_t;


/* shop_warehouse_database code "dsn"; */
typedef struct {
    ngx_str_t                  code;         /* NUL-terminated */
    ngx_str_t                  database;
} ngx_http_shop_warehouse_t;


typedef struct {
    ngx_array_t                pools;        /* ngx_http_shop_pool_conf_t * */
    ngx_array_t                locations;    /* ngx_http_shop_loc_conf_t *:
                                                every "shop;" location */
    ngx_array_t                hubs;         /* ngx_http_shop_hub_conf_t * */
    ngx_int_t                  request_id_index;

    /* shop_metrics_zone name [size]; (or the default zone) */
    ngx_str_t                  metrics_name;
    ssize_t                    metrics_size;
    ngx_shm_zone_t            *metrics_zone;
} ngx_http_shop_main_conf_t;


typedef struct {
    shop_settings              settings;
    uint64_t                   set;          /* bit i: row i given here */

    ngx_flag_t                 enabled;      /* "shop;" in this location */
    ngx_str_t                  base;         /* mount point, no trailing "/" */
    ngx_http_core_loc_conf_t  *clcf;

    ngx_http_shop_pool_conf_t *pool;
    ngx_http_shop_pool_conf_t *read_pool;    /* shop_read_database, or NULL */

    /* the stock check: shop_warehouse_database lines (this level's or
     * inherited whole), their pools in the same order, and the pool of
     * every other warehouse (shop_database) */
    ngx_array_t               *warehouses;   /* ngx_http_shop_warehouse_t */
    ngx_http_shop_pool_conf_t **warehouse_pools;
    ngx_http_shop_pool_conf_t *warehouse_pool;

    ngx_http_shop_hub_conf_t  *hub;          /* GET /events */
} ngx_http_shop_loc_conf_t;


typedef struct {
    ngx_http_request_t        *request;
    ngx_http_shop_loc_conf_t  *conf;

    shop_arena                 arena;
    shop_request               req;
    shop_ctx                   core;
    shop_result               *results;
    PGresult                 **res;          /* kept until the request ends */

    /* the plan runs as one job on the shop's pool, or fanned out: a job
     * per statement on its target's pool, one timer for the deadlines */
    ngx_http_shop_job_t        job;
    ngx_http_shop_job_t       *jobs;
    ngx_uint_t                 pending;
    ngx_msec_t                 planned;      /* deadlines count from here */
    ngx_event_t                deadline;
    ngx_http_shop_snapshot_t  *warehouses;   /* held while the jobs run */
    ngx_queue_t                stale;        /* waits for the registry */

    ngx_http_shop_sub_t       *sub;          /* GET /events, until its head
                                                is out */

    off_t                      body_received;
    off_t                      content_length;

    int64_t                    start_us;
    int64_t                    sent_us;
    int64_t                    db_us;
    int64_t                    wait_us;

    unsigned                   begun:1;      /* core.* is valid */
    unsigned                   limit_body:1; /* the body filter counts */
    unsigned                   too_large:1;
    unsigned                   replanned:1;  /* after a registry refresh */
    unsigned                   observed:1;   /* counted in the metrics */
} ngx_http_shop_ctx_t;


/* ngx_http_shop_handler.c */

ngx_int_t ngx_http_shop_handler(ngx_http_request_t *r);
/* the body is in (or refused): plan, run */
void ngx_http_shop_run(ngx_http_request_t *r);
/* plans (again, after a registry refresh) and runs the plan */
void ngx_http_shop_plan(ngx_http_shop_ctx_t *ctx);
/* the results are in: render, send, finalize */
void ngx_http_shop_finish(ngx_http_shop_ctx_t *ctx);
/* ctx's response; for a stream, its head only */
ngx_int_t ngx_http_shop_send(ngx_http_request_t *r, ngx_http_shop_ctx_t *ctx);
int64_t ngx_http_shop_now_us(void);


/* ngx_http_shop_body.c */

ngx_int_t ngx_http_shop_body_init(ngx_conf_t *cf);
/* reads the body, then calls ngx_http_shop_run() */
ngx_int_t ngx_http_shop_read_body(ngx_http_request_t *r,
    ngx_http_shop_ctx_t *ctx);
/* the body as the core takes it: one NUL-terminated string */
ngx_int_t ngx_http_shop_body_collect(ngx_http_request_t *r,
    ngx_http_shop_ctx_t *ctx);


/* ngx_http_shop_pool.c */

/* the DSN of the directive being read (cf->args) */
char *ngx_http_shop_pool_check_dsn(ngx_conf_t *cf, const char *dsn);
/* the pools of a "shop;" location: the shop's and the stock check's */
ngx_int_t ngx_http_shop_pool_conf(ngx_conf_t *cf,
    ngx_http_shop_loc_conf_t *lcf);
ngx_int_t ngx_http_shop_pool_start(ngx_cycle_t *cycle,
    ngx_http_shop_pool_conf_t *pcf, ngx_uint_t npools);
void ngx_http_shop_pool_stop(ngx_http_shop_pool_conf_t *pcf);
/* runs ctx->core's plan; ngx_http_shop_finish() follows, maybe at once */
void ngx_http_shop_pool_run(ngx_http_shop_ctx_t *ctx);
/* the request goes away: forget it, discard its results when they come */
void ngx_http_shop_pool_cancel(ngx_http_shop_ctx_t *ctx);
/* the pool for a statement's target: the shop's, or the read replica's */
ngx_http_shop_pool_conf_t *ngx_http_shop_pool_for(
    ngx_http_shop_loc_conf_t *lcf, int target);
/* runs a job on pool (NULL: fails); job->handler follows, maybe at once */
void ngx_http_shop_pool_submit(ngx_http_shop_pool_t *pool,
    ngx_http_shop_job_t *job);
/* its owner gives up on the job: its results are dropped when they come */
void ngx_http_shop_job_cancel(ngx_http_shop_job_t *job);
/* past its due time: answered SHOP_DB_TIMEOUT through done; a connection
 * of a stock-check pool running it is closed and replaced */
void ngx_http_shop_job_expire(ngx_http_shop_job_t *job, ngx_queue_t *done);
/* runs the handlers of the jobs answered into done */
void ngx_http_shop_pool_finish(ngx_queue_t *done,
    const ngx_http_shop_job_t *current);
/* a stock-check pool serves this many warehouses now: its size */
void ngx_http_shop_pool_warehouses(ngx_http_shop_pool_t *pool,
    ngx_uint_t n);
ngx_http_shop_registry_t *ngx_http_shop_pool_registry(
    ngx_http_shop_pool_t *pool);
/* libpq's socket as an nginx connection (level-triggered read event);
 * NULL on failure */
ngx_connection_t *ngx_http_shop_pg_wrap(PGconn *pg, void *data,
    ngx_event_handler_pt handler, ngx_log_t *log);
/* the wrapper goes, *cp is NULL; PQfinish() alone closes the socket;
 * closed: libpq closed it already */
void ngx_http_shop_pg_unwrap(ngx_connection_t **cp, ngx_uint_t closed);
/* the write event while libpq has output, not longer */
ngx_int_t ngx_http_shop_pg_want_write(ngx_connection_t *c, ngx_uint_t want);
/* PQconnectPoll() waits to read (0) or write (1): the events follow, on
 * the socket libpq moved to if it did */
ngx_int_t ngx_http_shop_pg_polling(PGconn *pg, ngx_connection_t **cp,
    ngx_uint_t write);
/* libpq's message on one line, in buf; returns its end */
u_char *ngx_http_shop_pg_message(const char *msg, u_char *buf, size_t len);
/* a failed result for the log: SQLSTATE and the primary message only (no
 * DETAIL, CONTEXT or parameters), at most len bytes; returns its end */
u_char *ngx_http_shop_pg_result_message(const PGresult *res, u_char *buf,
    size_t len);
/* GET /metrics: this worker's pools as the gauges count them */
void ngx_http_shop_pool_gauges(ngx_http_shop_pool_t *pool, int64_t *idle,
    int64_t *busy, int64_t *connecting, int64_t *broken, int64_t *waiting);


/* ngx_http_shop_registry.c */

struct ngx_http_shop_snapshot_s {
    ngx_pool_t                *pool;         /* holds all of it */
    ngx_uint_t                 refs;
    const char               **codes;
    ngx_uint_t                 n;
    ngx_uint_t                 generation;   /* of the shared counter */
};

ngx_http_shop_registry_t *ngx_http_shop_registry_create(
    ngx_http_shop_pool_t *pool, ngx_str_t *name);
void ngx_http_shop_registry_stop(ngx_http_shop_registry_t *reg);
/* the shop's pool has a connection ready */
void ngx_http_shop_registry_ready(ngx_http_shop_registry_t *reg);
/* the current snapshot (NULL until loaded); hold it to keep it */
ngx_http_shop_snapshot_t *ngx_http_shop_registry_current(
    ngx_http_shop_registry_t *reg);
void ngx_http_shop_snapshot_hold(ngx_http_shop_snapshot_t *snap);
void ngx_http_shop_snapshot_release(ngx_http_shop_snapshot_t *snap);
/* a PUT /warehouses/{code} succeeded here: this worker reads the list at
 * once, the others before their next stock check */
void ngx_http_shop_registry_added(ngx_http_shop_registry_t *reg,
    const char *code, size_t len);
/* a worker answered a PUT /warehouses since the list was read */
ngx_uint_t ngx_http_shop_registry_stale(ngx_http_shop_registry_t *reg);
/* ctx waits for the next refresh, then plans again */
void ngx_http_shop_registry_wait(ngx_http_shop_registry_t *reg,
    ngx_http_shop_ctx_t *ctx);
ngx_int_t ngx_http_shop_registry_init_conf(ngx_conf_t *cf);


/* ngx_http_shop_fanout.c */

char *ngx_http_shop_warehouse_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
/* the plan needs more than the shop's pool: targets or deadlines */
ngx_uint_t ngx_http_shop_fanout_needed(ngx_http_shop_ctx_t *ctx);
void ngx_http_shop_fanout_run(ngx_http_shop_ctx_t *ctx);
/* ctx waits for the warehouse list, at most ms (0: its plan's deadline) */
void ngx_http_shop_fanout_wait(ngx_http_shop_ctx_t *ctx,
    ngx_http_shop_registry_t *reg, ngx_msec_t ms);
void ngx_http_shop_fanout_cancel(ngx_http_shop_ctx_t *ctx);
/* the stock-check pool of a warehouse in a location */
ngx_http_shop_pool_conf_t *ngx_http_shop_fanout_pool(
    ngx_http_shop_loc_conf_t *lcf, const char *code);


/* ngx_http_shop_events.c */

/* the location's event hub: one per database */
ngx_int_t ngx_http_shop_events_conf(ngx_conf_t *cf,
    ngx_http_shop_loc_conf_t *lcf);
ngx_int_t ngx_http_shop_events_start(ngx_cycle_t *cycle);
void ngx_http_shop_events_stop(ngx_cycle_t *cycle);
/* a change that emits events committed on this worker: the hub reads at
 * once and tells the other processes' hubs */
void ngx_http_shop_hub_wake(ngx_http_shop_hub_conf_t *hcf);


/* ngx_http_shop_stream.c */

/* the core answered with a stream: NGX_OK, the stream has the request;
 * NGX_DECLINED, send the (refusal) response as usual */
ngx_int_t ngx_http_shop_stream_start(ngx_http_request_t *r,
    ngx_http_shop_ctx_t *ctx);


/* ngx_http_shop_metrics.c */

char *ngx_http_shop_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
/* the zone (implicit without shop_metrics_zone) and the log-phase counter */
ngx_int_t ngx_http_shop_metrics_init_conf(ngx_conf_t *cf);
/* a worker: its gauge slot, the refresh timer; at exit: let go of both */
ngx_int_t ngx_http_shop_metrics_start(ngx_cycle_t *cycle);
void ngx_http_shop_metrics_stop(ngx_cycle_t *cycle);
/* what GET /metrics shows (every worker's), NULL without a zone; fresh:
 * this worker's gauges are written first */
const shop_metrics_view *ngx_http_shop_metrics_view(ngx_uint_t fresh);

/* this worker's, added to the zone's counters at the next refresh */
extern uint64_t    ngx_http_shop_events_delivered;
/* a slow subscriber was dropped (at once into the zone) */
void ngx_http_shop_metrics_dropped(void);
/* this worker's WebSocket streams (ngx_http_shop_subscribers: all) */
extern ngx_uint_t  ngx_http_shop_subscribers_ws;


extern ngx_module_t  ngx_http_shop_module;


#endif /* _NGX_HTTP_SHOP_MODULE_H_INCLUDED_ */
