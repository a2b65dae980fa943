/* shop-fcgi: the FastCGI front-end. Blocking I/O on threads; the handler core
 * (core/shop.h) does the rest. One header for the few interfaces between the
 * files of this directory. */
#ifndef SHOP_FCGI_H
#define SHOP_FCGI_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "metrics.h"
#include "shop.h"

#define FCGI_PROG "shop-fcgi"


/* config.c: the settings table read from the environment. */

/* Fills s from defaults and SHOP_* variables, checks the combination and, with
 * read_secrets, loads the token and secret files. Prints what is wrong and
 * returns -1. */
int  fcgi_config_load(shop_settings *s, int read_secrets);
/* Wipes and frees the secrets fcgi_config_load() read. */
void fcgi_config_release(shop_settings *s);
void fcgi_config_print(void);


/* log.c: operational messages of the serving process, one JSON line each. */

typedef enum { FCGI_LOG_INFO, FCGI_LOG_WARN, FCGI_LOG_ERROR } fcgi_log_level;

void fcgi_log(fcgi_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Writes a whole line with one write(2), so lines of threads never mix. */
void fcgi_log_write(const char *line, size_t len);


/* clock.c */

int64_t fcgi_now_us(void);            /* monotonic */
int64_t fcgi_wall_ms(void);           /* since the epoch */


/* pgconn.c: one libpq connection with the catalogue prepared. */

#define FCGI_PG_DOWN  (-2)            /* the database did not answer */
#define FCGI_PG_WRONG (-1)            /* it answered, but not as the catalogue expects */

/* dsn: s->database, s->read_database. statement_timeout_ms 0: none.
 * Returns the connection or NULL with err set. */
PGconn *fcgi_pg_connect(const char *dsn, const char *app, int64_t statement_timeout_ms,
                        char *err, size_t errlen);
/* Prepares and checks every catalogue statement: 0, FCGI_PG_WRONG or FCGI_PG_DOWN. */
int  fcgi_pg_prepare(PGconn *conn, char *err, size_t errlen);
/* Routes the connection's notices to the JSON log instead of bare stderr. */
void fcgi_pg_quiet(PGconn *conn);
/* PQexecPrepared with a bound: NULL with *timed_out set when no answer came
 * within timeout_ms (the connection is then unusable: give it up). */
PGresult *fcgi_pg_exec_within(PGconn *conn, const char *name, int nparams,
                              const char *const *values, int64_t timeout_ms, int *timed_out);
/* The first line of libpq's message, for one-line logs. */
const char *fcgi_pg_message(const char *msg, char *out, size_t outlen);


/* pool.c: connections shared by the request threads: one for the shop's
 * database, one for the read replica when read_database is set. */

typedef struct fcgi_pool fcgi_pool;

/* name: "primary" or "read" (logs, metrics); app: application_name. The
 * strings must outlive the pool. */
fcgi_pool *fcgi_pool_create(const shop_settings *s, const char *name, const char *dsn,
                            const char *app);
/* Hands over a ready connection made at start-up. */
void  fcgi_pool_adopt(fcgi_pool *p, PGconn *conn);
/* The start-up connect failed (err): down, as after a failed connect. */
void  fcgi_pool_down(fcgi_pool *p, const char *err);
/* A connection, or NULL when none comes in time (the request answers 503). */
PGconn *fcgi_pool_acquire(fcgi_pool *p);
void  fcgi_pool_release(fcgi_pool *p, PGconn *conn);
/* Adds idle, busy, connecting and broken (slots a down database leaves
 * empty) to gauges[0..3], requests waiting to *waiting. */
void  fcgi_pool_gauges(fcgi_pool *p, int64_t gauges[4], int64_t *waiting);
void  fcgi_pool_destroy(fcgi_pool *p);


/* fanout.c: the stock check's warehouse targets. A target is one database
 * (a warehouse's own, or by default the shop's) with its own small pool of
 * non-blocking connections; a request sends all its statements at once and
 * poll()s until each answered or passed its deadline. */

typedef struct fcgi_target fcgi_target;

int  fcgi_fanout_start(const shop_settings *s);
void fcgi_fanout_stop(void);
/* The target of a warehouse code: SHOP_WAREHOUSE_<CODE>_DATABASE or the
 * shop's database. Targets live until fcgi_fanout_stop(); NULL: no memory. */
fcgi_target *fcgi_fanout_target(const char *code);
/* `warehouses` codes of the registry use t: its pool grows to
 * warehouse_pool_size per warehouse, and that many are kept connected. */
void fcgi_fanout_size(fcgi_target *t, int warehouses);
/* Runs the queries with a warehouse target, targets[i] serving
 * SHOP_TARGET_WAREHOUSE(i); results and res as for fcgi_exec_plan(). */
void fcgi_fanout_exec(const shop_ctx *c, fcgi_target *const *targets, int ntargets,
                      shop_result *results, PGresult **res, int64_t *db_us);
struct fcgi_warehouses;
/* The targets' pools as gauges g->target[from...] ("stock:primary",
 * "stock:read", "warehouse:<codes of wh it serves>"), queries waiting
 * added to *waiting; returns the next free index. */
int  fcgi_fanout_gauges(shop_metrics_gauges *g, int from, int64_t *waiting,
                        const struct fcgi_warehouses *wh);


/* registry.c: the warehouse codes this process knows, from warehouse_list:
 * loaded at start-up, refreshed every few seconds by a thread of its own,
 * and at once when this process creates a warehouse. Requests take a
 * counted reference to the current snapshot. */

typedef struct fcgi_warehouses {
    int                 refs;          /* under the registry's lock */
    int                 n;
    const char        **codes;         /* sorted, as warehouse_list returns them */
    fcgi_target       **targets;       /* targets[i] serves codes[i] */
} fcgi_warehouses;

/* conn: a ready connection to load the first list with, or NULL. */
int  fcgi_registry_start(const shop_settings *s, fcgi_pool *pool, PGconn *conn);
void fcgi_registry_stop(void);
/* The current snapshot (never NULL after a successful start); put it back. */
fcgi_warehouses *fcgi_registry_get(void);
void fcgi_registry_put(fcgi_warehouses *w);
/* A PUT /warehouses/{code} of this process succeeded. */
void fcgi_registry_added(const char *code, size_t len);


/* exec.c: results[i] and res[i] for c->queries[i]; the caller PQclear()s
 * res[] after writing the response. db_us grows by the time spent in the
 * database, wait_us by the time waiting for a pooled connection. Reads a
 * replica may answer (SHOP_TARGET_READ) run on read_pool when there is one
 * (NULL: the shop's pool); a replica that is down makes them 503, never a
 * fallback to the primary. */
void fcgi_exec_plan(fcgi_pool *p, fcgi_pool *read_pool, const shop_ctx *c,
                    const fcgi_warehouses *wh, shop_result *results, PGresult **res,
                    int64_t *db_us, int64_t *wait_us);


/* hub.c: the event hub of this process. One thread LISTENs on its own
 * connection and, per wake-up, reads the new settled events once for every
 * subscriber; subscribers take rendered SSE frames from a shared ring. */

typedef struct fcgi_sub fcgi_sub;

int  fcgi_hub_start(const shop_settings *s);
/* Ends every stream (SIGTERM): waits for them, cutting the ones stuck in a
 * write after a grace period, then stops the LISTEN thread. */
void fcgi_hub_stop(void);
/* A change that emits events committed: the hub reads at once and tells
 * the other processes' hubs (async-signal-safe, never blocks). */
void fcgi_hub_wake(void);

/* A stream slot: -1 when max_streams are open. */
int  fcgi_hub_reserve(void);
void fcgi_hub_unreserve(void);
/* Stream slots taken (open SSE streams): a gauge. */
int  fcgi_hub_streams(void);

/* fd: the stream's socket, shut down if the subscriber is dropped. */
fcgi_sub *fcgi_hub_subscribe(int fd, unsigned topics);
void fcgi_hub_unsubscribe(fcgi_sub *sub);

#define FCGI_HUB_EVENTS    1      /* frames were added to out */
#define FCGI_HUB_IDLE      0      /* nothing until `until` */
#define FCGI_HUB_RESYNC   (-1)    /* the ring moved on: replay from the table */
#define FCGI_HUB_END      (-2)    /* stop, or the subscriber was dropped */

/* Places the subscriber at the head of the live feed and returns the id
 * every earlier event is at or below (the process cursor). Waits, up to
 * `until` (fcgi_now_us), for the LISTEN thread's first read: returns
 * FCGI_HUB_IDLE or FCGI_HUB_END while it has none. */
int  fcgi_hub_sync(fcgi_sub *sub, int64_t until, int64_t *cursor);
/* Around each write to the client: a subscriber over its buffer whose
 * write stays blocked is dropped. */
void fcgi_hub_writing(fcgi_sub *sub, int on);
/* Why the subscriber was dropped, or NULL. */
const char *fcgi_hub_dropped(fcgi_sub *sub);
/* After a replay: 0 when the subscriber may go live, FCGI_HUB_RESYNC when
 * it fell too far behind meanwhile. */
int  fcgi_hub_go_live(fcgi_sub *sub);
/* Waits up to `until` for events, then appends the frames of the ones
 * with an id above *last and one of the subscriber's topics (at most about
 * `max` bytes), advancing *last. */
int  fcgi_hub_next(fcgi_sub *sub, shop_buf *out, size_t max, int64_t until, int64_t *last);


/* sse.c: GET /events on a thread of its own, not one of the request
 * threads, so streams never starve requests. */

struct FCGX_Request;
typedef struct fcgi_sse fcgi_sse;

/* The core answered a stream: takes a slot and writes the response head to
 * rq (not yet flushed). NULL when max_streams are open: c's response is
 * then a 503 for the caller to write. */
fcgi_sse *fcgi_sse_prepare(shop_ctx *c, struct FCGX_Request *rq, const shop_settings *s,
                           fcgi_pool *pool);
/* Starts the stream's thread, which owns rq from now on: 1. On failure
 * (0) the stream is freed and the caller finishes rq as usual. */
int  fcgi_sse_start(fcgi_sse *st);


/* retention.c: deletes events older than event_retention in small batches. */

int  fcgi_retention_start(const shop_settings *s, fcgi_pool *pool);
void fcgi_retention_stop(void);


/* blocks.c: the per-thread memory behind a request arena. */

typedef struct fcgi_block fcgi_block;

typedef struct fcgi_blocks {
    fcgi_block *used;                 /* handed to the arena during this request */
    fcgi_block *spare;                /* kept between requests */
} fcgi_blocks;

void *fcgi_blocks_grow(void *owner, size_t size);
/* The request ended: keep one ordinary block for the next one, free the rest. */
void  fcgi_blocks_reset(fcgi_blocks *b);
void  fcgi_blocks_free(fcgi_blocks *b);


/* rid.c: request ids from a per-thread generator. */

typedef struct fcgi_rid {
    uint64_t s[4];
} fcgi_rid;

void fcgi_rid_seed(fcgi_rid *r);
/* Writes 32 lowercase hex digits and a NUL. */
void fcgi_rid_next(fcgi_rid *r, char out[33]);


/* request.c: one request from FastCGI parameters to the log line. */

struct FCGX_Stream;

typedef struct fcgi_worker {
    pthread_t             tid;
    int                   index;
    const shop_settings  *settings;
    fcgi_pool            *pool;
    fcgi_pool            *read_pool;      /* NULL without a read replica */
    fcgi_blocks           blocks;
    fcgi_rid              rid;
} fcgi_worker;

/* Returns 1 when a stream took rq over (the caller needs a new one). */
int  fcgi_request_handle(fcgi_worker *w, struct FCGX_Request *rq);
/* The status line and headers of a response without a length (a stream). */
void fcgi_response_head(struct FCGX_Stream *out, const shop_response *r);


/* metrics.c: this process's figures for GET /metrics, labelled with its
 * pid (process="1234"), so the responders behind one web server are told
 * apart. Counters are atomics; gauges are read from the pools and the hub
 * when /metrics is asked. */

void fcgi_metrics_start(void);
/* One finished request (an event stream: once its head is written). */
void fcgi_metrics_observe(const shop_ctx *c, int status, int64_t total_us, int64_t db_us,
                          int db_used);
void fcgi_metrics_delivered(uint64_t events);
void fcgi_metrics_dropped(void);
/* What GET /metrics renders, its gauges read now into the arena; NULL when
 * out of memory. */
const shop_metrics_view *fcgi_metrics_view(shop_arena *a, fcgi_pool *pool, fcgi_pool *read_pool);


/* serve.c */

int  fcgi_serve(const shop_settings *s);


/* signals.c */

void fcgi_signals_install(void);
int  fcgi_stopping(void);
/* Becomes readable (and stays so) when a stop signal came: background
 * threads poll() it beside their sockets. */
int  fcgi_stop_fd(void);
/* Sleeps up to ms, less when a stop signal comes; returns fcgi_stopping(). */
int  fcgi_stop_wait(int64_t ms);


/* listen.c: the listening socket. fd 0 (spawn-fcgi) is ours alone: on a
 * stop it refuses new connections and accept() still returns the queued
 * ones, then fails. fd 3 from systemd (LISTEN_FDS=1) outlives us: on a stop
 * it is left open for the next process, and the threads stop accepting. */

/* Before FCGX_Init(): finds the socket; -1 (with a message) when systemd
 * passed something else than one listening stream socket. */
int  fcgi_listen_open(void);
int  fcgi_listen_fd(void);
/* 1: systemd's socket; accept() returns EAGAIN every second (a tick). */
int  fcgi_listen_shared(void);
/* 1: a unix socket. A connection's unread bytes then cannot turn its close
 * into a reset that loses the response (TCP's), so it is closed at once:
 * libfcgi would shut it down and wait for the web server to close first. */
int  fcgi_listen_unix(void);
/* A connection was accepted on fd (the request's ipcFd). */
void fcgi_listen_accepted(int fd);
/* After a stop signal. */
void fcgi_listen_stop(void);


/* migrate.c */

int  fcgi_migrate(const shop_settings *s, const char *dir);

#endif
