
/*
 * The shop as an nginx module: what the files of this directory share.
 *
 *   ngx_http_shop_module.c   directives, configuration, worker start and exit
 *   ngx_http_shop_handler.c  a request: nginx request -> core -> response
 *   ngx_http_shop_body.c     the request body: limit, reading, the body filter
 *   ngx_http_shop_pool.c     the per-worker pool of non-blocking libpq
 *                            connections in pipeline mode
 */


#ifndef _NGX_HTTP_SHOP_MODULE_H_INCLUDED_
#define _NGX_HTTP_SHOP_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <libpq-fe.h>

#include "shop.h"


/* requests in flight on one connection (libpq pipeline mode) */
#define NGX_HTTP_SHOP_PIPELINE_DEPTH  32


typedef struct ngx_http_shop_pool_s  ngx_http_shop_pool_t;
typedef struct ngx_http_shop_conn_s  ngx_http_shop_conn_t;
typedef struct ngx_http_shop_op_s    ngx_http_shop_op_t;


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

    ngx_http_shop_pool_t      *pool;         /* this worker's */
} ngx_http_shop_pool_conf_t;


typedef struct {
    ngx_array_t                pools;        /* ngx_http_shop_pool_conf_t * */
    ngx_int_t                  request_id_index;
} ngx_http_shop_main_conf_t;


typedef struct {
    shop_settings              settings;
    uint64_t                   set;          /* bit i: row i given here */

    ngx_flag_t                 enabled;      /* "shop;" in this location */
    ngx_str_t                  base;         /* mount point, no trailing "/" */
    ngx_http_core_loc_conf_t  *clcf;

    ngx_http_shop_pool_conf_t *pool;
} ngx_http_shop_loc_conf_t;


typedef struct {
    ngx_http_request_t        *request;
    ngx_http_shop_loc_conf_t  *conf;

    shop_arena                 arena;
    shop_request               req;
    shop_ctx                   core;
    shop_result               *results;
    PGresult                 **res;          /* kept until the request ends */
    shop_db_status             fail;         /* of statements without res */

    /* the pool's bookkeeping */
    ngx_http_shop_op_t        *op;           /* in flight */
    ngx_queue_t                queue;        /* waiting for a connection */
    ngx_event_t                timer;        /* queue timeout, then deadline */

    off_t                      body_received;
    off_t                      content_length;

    int64_t                    start_us;
    int64_t                    sent_us;
    int64_t                    db_us;

    unsigned                   begun:1;      /* core.* is valid */
    unsigned                   limit_body:1; /* the body filter counts */
    unsigned                   too_large:1;
    unsigned                   waiting:1;
} ngx_http_shop_ctx_t;


/* ngx_http_shop_handler.c */

ngx_int_t ngx_http_shop_handler(ngx_http_request_t *r);
/* the body is in (or refused): plan, run */
void ngx_http_shop_run(ngx_http_request_t *r);
/* the results are in: render, send, finalize */
void ngx_http_shop_finish(ngx_http_shop_ctx_t *ctx);
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

char *ngx_http_shop_pool_check_dsn(ngx_conf_t *cf, const char *dsn);
ngx_int_t ngx_http_shop_pool_conf(ngx_conf_t *cf,
    ngx_http_shop_loc_conf_t *lcf);
ngx_int_t ngx_http_shop_pool_start(ngx_cycle_t *cycle,
    ngx_http_shop_pool_conf_t *pcf, ngx_uint_t npools);
void ngx_http_shop_pool_stop(ngx_http_shop_pool_conf_t *pcf);
/* runs ctx->core's plan; ngx_http_shop_finish() follows, maybe at once */
void ngx_http_shop_pool_run(ngx_http_shop_ctx_t *ctx);
/* the request goes away: forget it, discard its results when they come */
void ngx_http_shop_pool_cancel(ngx_http_shop_ctx_t *ctx);
/* libpq's message on one line, in buf; returns its end */
u_char *ngx_http_shop_pg_message(const char *msg, u_char *buf, size_t len);


extern ngx_module_t  ngx_http_shop_module;


#endif /* _NGX_HTTP_SHOP_MODULE_H_INCLUDED_ */
