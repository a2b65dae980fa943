
/*
 * The per-worker pool of PostgreSQL connections, driven by nginx's event
 * loop. No libpq call here ever blocks: connections are made with
 * PQconnectStartParams/PQconnectPoll, run in non-blocking pipeline mode,
 * and their sockets are nginx connections with level-triggered events.
 *
 * A connection:
 *
 *   DOWN --timer--> CONNECTING --PQconnectPoll OK--> PREPARING --sync--> READY
 *     ^                 |                               |                  |
 *     +-----------------+-------- failure, lost, deadline ------------------+
 *                         (reconnect after 100 ms, doubling up to 2 s)
 *
 * PREPARING sends, in one pipeline, PQsendPrepare for every statement of
 * the catalogue, PQsendDescribePrepared for each (checked against the
 * catalogue), once per worker "SHOW max_connections", and a sync.
 *
 * READY: a request's statements go out with PQsendQueryPrepared, each
 * followed by PQpipelineSync, so every statement is its own implicit
 * transaction. Results come back in order: per connection a ring of the
 * requests in flight (at most NGX_HTTP_SHOP_PIPELINE_DEPTH). A request whose
 * client went away stays in the ring without its context; its results are
 * read and dropped.
 *
 * A request waits in the pool's queue (bounded, with a timeout) when every
 * ready connection is full, and fails at once with 503 when the queue is
 * full, when no connection is up after a failure, or when the database does
 * not match the catalogue.
 */


#include "ngx_http_shop_module.h"

#include <arpa/inet.h>


#define NGX_HTTP_SHOP_CONNECT_TIMEOUT  5000
#define NGX_HTTP_SHOP_BACKOFF_MIN      100
#define NGX_HTTP_SHOP_BACKOFF_MAX      2000
#define NGX_HTTP_SHOP_GRACE            1000   /* past statement_timeout */
#define NGX_HTTP_SHOP_STALLED          100    /* the oldest statement is slow */


typedef enum {
    NGX_HTTP_SHOP_DOWN = 0,
    NGX_HTTP_SHOP_CONNECTING,
    NGX_HTTP_SHOP_PREPARING,
    NGX_HTTP_SHOP_READY
} ngx_http_shop_state_e;


struct ngx_http_shop_op_s {
    ngx_http_shop_ctx_t     *ctx;          /* NULL: the client went away */
    ngx_http_shop_conn_t    *conn;
    ngx_uint_t               nqueries;
    ngx_uint_t               query;        /* whose results come next */
    ngx_msec_t               sent;
};


struct ngx_http_shop_conn_s {
    ngx_http_shop_pool_t    *pool;
    ngx_uint_t               number;
    ngx_http_shop_state_e    state;

    PGconn                  *pg;
    ngx_connection_t        *c;

    /* DOWN: the reconnect; CONNECTING and PREPARING: the deadline */
    ngx_event_t              timer;
    ngx_msec_t               backoff;

    /* READY: the oldest statement in flight must be answered by then */
    ngx_event_t              deadline;

    ngx_uint_t               step;         /* PREPARING: results seen */

    ngx_uint_t               head;
    ngx_uint_t               nflight;
    ngx_http_shop_op_t       ops[NGX_HTTP_SHOP_PIPELINE_DEPTH];

    unsigned                 ask_max:1;
    unsigned                 drift:1;
    unsigned                 failing:1;
};


struct ngx_http_shop_pool_s {
    ngx_http_shop_pool_conf_t  *conf;
    ngx_log_t                  *log;

    ngx_http_shop_conn_t       *conns;
    ngx_uint_t                  nconns;
    ngx_uint_t                  nready;

    ngx_queue_t                 waiting;
    ngx_uint_t                  nwaiting;

    ngx_uint_t                  total;     /* all workers, this database */

    unsigned                    down:1;    /* failed, none ready: fail fast */
    unsigned                    drift:1;   /* schema and catalogue differ */
    unsigned                    max_checked:1;
    unsigned                    stopping:1;
};


static void ngx_http_shop_conn_connect(ngx_http_shop_conn_t *sc);
static ngx_int_t ngx_http_shop_conn_wrap(ngx_http_shop_conn_t *sc);
static void ngx_http_shop_conn_unwrap(ngx_http_shop_conn_t *sc,
    ngx_uint_t closed);
static ngx_int_t ngx_http_shop_conn_want_write(ngx_http_shop_conn_t *sc,
    ngx_uint_t want);
static void ngx_http_shop_conn_handler(ngx_event_t *ev);
static void ngx_http_shop_conn_timer(ngx_event_t *ev);
static void ngx_http_shop_conn_deadline(ngx_event_t *ev);
static void ngx_http_shop_conn_poll(ngx_http_shop_conn_t *sc);
static void ngx_http_shop_conn_prepare(ngx_http_shop_conn_t *sc);
static void ngx_http_shop_conn_io(ngx_http_shop_conn_t *sc, ngx_uint_t write);
static ngx_int_t ngx_http_shop_conn_flush(ngx_http_shop_conn_t *sc);
static ngx_int_t ngx_http_shop_conn_results(ngx_http_shop_conn_t *sc,
    ngx_queue_t *done);
static void ngx_http_shop_conn_prepared(ngx_http_shop_conn_t *sc,
    PGresult *res, ngx_queue_t *done);
static void ngx_http_shop_conn_ready(ngx_http_shop_conn_t *sc);
static void ngx_http_shop_conn_close(ngx_http_shop_conn_t *sc,
    ngx_uint_t level, const char *what, const char *why, ngx_queue_t *done);
static ngx_int_t ngx_http_shop_conn_send(ngx_http_shop_conn_t *sc,
    ngx_http_shop_ctx_t *ctx, ngx_queue_t *done);
static void ngx_http_shop_notice(void *arg, const char *message);

static ngx_http_shop_conn_t *ngx_http_shop_pool_pick(
    ngx_http_shop_pool_t *pool);
static void ngx_http_shop_pool_dispatch(ngx_http_shop_pool_t *pool,
    ngx_queue_t *done);
static void ngx_http_shop_pool_flush_waiting(ngx_http_shop_pool_t *pool,
    ngx_queue_t *done);
static void ngx_http_shop_pool_finish(ngx_queue_t *done,
    ngx_http_shop_ctx_t *current);
static void ngx_http_shop_answer(ngx_http_shop_ctx_t *ctx,
    shop_db_status status, ngx_queue_t *done);
static void ngx_http_shop_ctx_timeout(ngx_event_t *ev);
static void ngx_http_shop_max_connections(ngx_http_shop_conn_t *sc,
    PGresult *res);


/*
 * shop_database: libpq must understand it, and should not have to look a
 * host name up: PQconnectStart() resolves names with a blocking
 * getaddrinfo(), and a worker must never wait for DNS
 */

char *
ngx_http_shop_pool_check_dsn(ngx_conf_t *cf, const char *dsn)
{
    u_char            *p;
    char              *errmsg;
    const char        *host, *hostaddr;
    PQconninfoOption  *opts, *o;
    u_char             addr[sizeof(struct in6_addr)];
    u_char             msg[256];

    errmsg = NULL;

    opts = PQconninfoParse(dsn, &errmsg);

    if (opts == NULL) {
        p = ngx_http_shop_pg_message(errmsg ? errmsg : "out of memory", msg,
                                     sizeof(msg));

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value in \"shop_database\" directive: %*s",
                           p - msg, msg);
        if (errmsg) {
            PQfreemem(errmsg);
        }

        return NGX_CONF_ERROR;
    }

    host = hostaddr = NULL;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o->val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = o->val;
        }
    }

    if (host && hostaddr == NULL && host[0] != '/' && host[0] != '@'
        && inet_pton(AF_INET, host, addr) != 1
        && inet_pton(AF_INET6, host, addr) != 1)
    {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"shop_database\" host \"%s\" is a name: libpq "
                           "resolves it with a blocking DNS lookup in the "
                           "worker at every connect; add hostaddr=<address>",
                           host);
    }

    PQconninfoFree(opts);

    return NGX_CONF_OK;
}


/* configuration: which pool a location uses */

ngx_int_t
ngx_http_shop_pool_conf(ngx_conf_t *cf, ngx_http_shop_loc_conf_t *lcf)
{
    u_char                      *p;
    size_t                       len;
    ngx_uint_t                   i;
    const char                  *host, *hostaddr, *port, *dbname, *user;
    const char                  *options;
    shop_settings               *s;
    PQconninfoOption            *opts, *o;
    ngx_http_shop_pool_conf_t   *pcf, **pp;
    ngx_http_shop_main_conf_t   *smcf;

    s = &lcf->settings;

    /* shop_database was checked when read: ngx_http_shop_pool_check_dsn() */

    opts = PQconninfoParse(s->database, NULL);
    if (opts == NULL) {
        return NGX_ERROR;
    }

    hostaddr = host = port = dbname = user = options = NULL;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o->val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = o->val;

        } else if (ngx_strcmp(o->keyword, "port") == 0) {
            port = o->val;

        } else if (ngx_strcmp(o->keyword, "dbname") == 0) {
            dbname = o->val;

        } else if (ngx_strcmp(o->keyword, "user") == 0) {
            user = o->val;

        } else if (ngx_strcmp(o->keyword, "options") == 0) {
            options = o->val;
        }
    }

    pcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_shop_pool_conf_t));
    if (pcf == NULL) {
        goto failed;
    }

    pcf->database.data = (u_char *) s->database;
    pcf->database.len = ngx_strlen(s->database);
    pcf->statement_timeout = (ngx_msec_t) s->statement_timeout_ms;
    pcf->size = (ngx_uint_t) s->pool_size;
    pcf->queue = (ngx_uint_t) s->pool_queue;
    pcf->queue_timeout = (ngx_msec_t) s->pool_queue_timeout_ms;

    /* the core's GUCs, the statement timeout, then the DSN's own options */

    len = sizeof(SHOP_PG_OPTIONS " -c statement_timeout=") - 1 + NGX_INT64_LEN
          + (options ? 1 + ngx_strlen(options) : 0) + 1;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        goto failed;
    }

    pcf->options.data = p;
    p = ngx_sprintf(p, SHOP_PG_OPTIONS " -c statement_timeout=%M",
                    pcf->statement_timeout);
    if (options) {
        p = ngx_sprintf(p, " %s", options);
    }
    *p = '\0';
    pcf->options.len = p - pcf->options.data;

    len = sizeof("database \"\" at :") - 1 + 64
          + (dbname ? ngx_strlen(dbname) : user ? ngx_strlen(user) : 0)
          + (hostaddr ? ngx_strlen(hostaddr) : host ? ngx_strlen(host) : 0)
          + (port ? ngx_strlen(port) : 0);

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        goto failed;
    }

    pcf->name.data = p;
    p = ngx_snprintf(p, len, "database \"%s\" at %s:%s",
                     dbname ? dbname : user ? user : "(default)",
                     hostaddr ? hostaddr : host ? host : "(default socket)",
                     port ? port : "5432");
    pcf->name.len = p - pcf->name.data;

    PQconninfoFree(opts);
    opts = NULL;

    /* locations with the same settings share a pool */

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_shop_module);
    pp = smcf->pools.elts;

    for (i = 0; i < smcf->pools.nelts; i++) {
        if (pp[i]->database.len == pcf->database.len
            && ngx_strcmp(pp[i]->database.data, pcf->database.data) == 0
            && pp[i]->statement_timeout == pcf->statement_timeout
            && pp[i]->size == pcf->size
            && pp[i]->queue == pcf->queue
            && pp[i]->queue_timeout == pcf->queue_timeout)
        {
            lcf->pool = pp[i];
            return NGX_OK;
        }
    }

    pp = ngx_array_push(&smcf->pools);
    if (pp == NULL) {
        goto failed;
    }

    *pp = pcf;
    lcf->pool = pcf;

    return NGX_OK;

failed:

    if (opts) {
        PQconninfoFree(opts);
    }

    return NGX_ERROR;
}


/* worker start and exit */

ngx_int_t
ngx_http_shop_pool_start(ngx_cycle_t *cycle, ngx_http_shop_pool_conf_t *pcf,
    ngx_uint_t npools)
{
    ngx_uint_t                   i, workers, size;
    ngx_core_conf_t             *ccf;
    ngx_http_shop_conn_t        *sc;
    ngx_http_shop_pool_t        *pool;
    ngx_http_shop_main_conf_t   *smcf;
    ngx_http_shop_pool_conf_t  **pp;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_shop_pool_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pool->conns = ngx_pcalloc(cycle->pool,
                              pcf->size * sizeof(ngx_http_shop_conn_t));
    if (pool->conns == NULL) {
        return NGX_ERROR;
    }

    pool->conf = pcf;
    pool->log = cycle->log;
    pool->nconns = pcf->size;
    ngx_queue_init(&pool->waiting);

    pcf->pool = pool;

    /* the arithmetic: every worker opens its own connections */

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);
    workers = (ccf->master && ngx_process == NGX_PROCESS_WORKER)
              ? (ngx_uint_t) ccf->worker_processes : 1;

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_shop_module);
    pp = smcf->pools.elts;
    size = 0;

    for (i = 0; i < npools; i++) {
        if (pp[i]->database.len == pcf->database.len
            && ngx_strcmp(pp[i]->database.data, pcf->database.data) == 0)
        {
            size += pp[i]->size;
        }
    }

    pool->total = workers * size;

    /* max_connections: asked once per database, by the first of its pools */

    for (i = 0; pp[i] != pcf; i++) {
        if (pp[i]->database.len == pcf->database.len
            && ngx_strcmp(pp[i]->database.data, pcf->database.data) == 0)
        {
            pool->max_checked = 1;
            break;
        }
    }

    if (ngx_worker == 0) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "shop: pool for %V: %ui worker(s) x %ui connection(s) "
                      "= %ui; pipeline depth %d, queue %ui for %M ms, "
                      "statement timeout %M ms",
                      &pcf->name, workers, pcf->size, workers * pcf->size,
                      NGX_HTTP_SHOP_PIPELINE_DEPTH, pcf->queue,
                      pcf->queue_timeout, pcf->statement_timeout);
    }

    for (i = 0; i < pool->nconns; i++) {
        sc = &pool->conns[i];

        sc->pool = pool;
        sc->number = i + 1;
        sc->backoff = NGX_HTTP_SHOP_BACKOFF_MIN;

        sc->timer.handler = ngx_http_shop_conn_timer;
        sc->timer.data = sc;
        sc->timer.log = pool->log;
        sc->timer.cancelable = 1;

        /* not cancelable: a graceful shutdown waits for what is in flight */

        sc->deadline.handler = ngx_http_shop_conn_deadline;
        sc->deadline.data = sc;
        sc->deadline.log = pool->log;

        ngx_http_shop_conn_connect(sc);
    }

    return NGX_OK;
}


void
ngx_http_shop_pool_stop(ngx_http_shop_pool_conf_t *pcf)
{
    ngx_uint_t             i;
    ngx_http_shop_conn_t  *sc;
    ngx_http_shop_pool_t  *pool;

    pool = pcf->pool;

    if (pool == NULL) {
        return;
    }

    pool->stopping = 1;

    for (i = 0; i < pool->nconns; i++) {
        sc = &pool->conns[i];

        if (sc->timer.timer_set) {
            ngx_del_timer(&sc->timer);
        }

        if (sc->deadline.timer_set) {
            ngx_del_timer(&sc->deadline);
        }

        if (sc->c) {
            ngx_http_shop_conn_unwrap(sc, PQsocket(sc->pg) != sc->c->fd);
        }

        if (sc->pg) {
            PQfinish(sc->pg);
            sc->pg = NULL;
        }

        sc->state = NGX_HTTP_SHOP_DOWN;
    }
}


/* requests */

void
ngx_http_shop_pool_run(ngx_http_shop_ctx_t *ctx)
{
    ngx_queue_t            done;
    ngx_http_request_t    *r;
    ngx_http_shop_conn_t  *sc;
    ngx_http_shop_pool_t  *pool;

    r = ctx->request;
    pool = ctx->conf->pool->pool;

    ngx_queue_init(&done);

    if (pool == NULL || pool->stopping || pool->drift
        || (pool->down && pool->nready == 0))
    {
        ngx_http_shop_answer(ctx, SHOP_DB_UNAVAILABLE, &done);
        goto finish;
    }

    sc = ngx_http_shop_pool_pick(pool);

    if (sc) {
        (void) ngx_http_shop_conn_send(sc, ctx, &done);
        goto finish;
    }

    if (pool->nwaiting >= pool->conf->queue) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "shop: all %ui connections are busy and %ui requests "
                      "wait: 503", pool->nconns, pool->nwaiting);

        ngx_http_shop_answer(ctx, SHOP_DB_UNAVAILABLE, &done);
        goto finish;
    }

    ngx_queue_insert_tail(&pool->waiting, &ctx->queue);
    pool->nwaiting++;
    ctx->waiting = 1;

    ctx->timer.handler = ngx_http_shop_ctx_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    ngx_add_timer(&ctx->timer, pool->conf->queue_timeout);

    return;

finish:

    ngx_http_shop_pool_finish(&done, ctx);
}


void
ngx_http_shop_pool_cancel(ngx_http_shop_ctx_t *ctx)
{
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (ctx->waiting) {
        ngx_queue_remove(&ctx->queue);
        ctx->conf->pool->pool->nwaiting--;
        ctx->waiting = 0;
    }

    if (ctx->op) {
        /* in flight: its results are read and dropped when they come */
        ctx->op->ctx = NULL;
        ctx->op = NULL;
    }
}


/* no connection came free in time */

static void
ngx_http_shop_ctx_timeout(ngx_event_t *ev)
{
    ngx_queue_t            done;
    ngx_http_shop_ctx_t   *ctx;
    ngx_http_shop_pool_t  *pool;

    ctx = ev->data;
    pool = ctx->conf->pool->pool;

    if (!ctx->waiting) {
        return;
    }

    ngx_queue_remove(&ctx->queue);
    pool->nwaiting--;
    ctx->waiting = 0;

    ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                  "shop: no database connection within %M ms: 503",
                  pool->conf->queue_timeout);

    ngx_queue_init(&done);
    ngx_http_shop_answer(ctx, SHOP_DB_UNAVAILABLE, &done);
    ngx_http_shop_pool_finish(&done, NULL);
}


/* a request's statements go out on sc */

static ngx_int_t
ngx_http_shop_conn_send(ngx_http_shop_conn_t *sc, ngx_http_shop_ctx_t *ctx,
    ngx_queue_t *done)
{
    ngx_int_t              i;
    shop_query            *q;
    ngx_http_shop_op_t    *op;
    const shop_statement  *st;

    for (i = 0; i < ctx->core.nqueries; i++) {
        q = &ctx->core.queries[i];
        st = &shop_catalogue[q->stmt];

        if (!PQsendQueryPrepared(sc->pg, st->name, q->nparams, q->values,
                                 NULL, NULL, 0)
            || !PQpipelineSync(sc->pg))
        {
            ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "lost",
                                     PQerrorMessage(sc->pg), done);
            ngx_http_shop_answer(ctx, SHOP_DB_UNAVAILABLE, done);
            return NGX_ERROR;
        }
    }

    op = &sc->ops[(sc->head + sc->nflight) % NGX_HTTP_SHOP_PIPELINE_DEPTH];
    sc->nflight++;

    op->ctx = ctx;
    op->conn = sc;
    op->nqueries = ctx->core.nqueries;
    op->query = 0;
    op->sent = ngx_current_msec;

    ctx->op = op;
    ctx->sent_us = ngx_http_shop_now_us();

    if (sc->nflight == 1) {
        ngx_add_timer(&sc->deadline,
                      sc->pool->conf->statement_timeout + NGX_HTTP_SHOP_GRACE);
    }

    if (ngx_http_shop_conn_flush(sc) != NGX_OK) {
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "lost",
                                 PQerrorMessage(sc->pg), done);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the least loaded ready connection; one stuck behind a slow statement last */

static ngx_http_shop_conn_t *
ngx_http_shop_pool_pick(ngx_http_shop_pool_t *pool)
{
    ngx_uint_t             i, load, best_load;
    ngx_http_shop_conn_t  *sc, *best;

    best = NULL;
    best_load = NGX_MAX_UINT32_VALUE;

    for (i = 0; i < pool->nconns; i++) {
        sc = &pool->conns[i];

        if (sc->state != NGX_HTTP_SHOP_READY
            || sc->nflight >= NGX_HTTP_SHOP_PIPELINE_DEPTH)
        {
            continue;
        }

        load = sc->nflight;

        if (load
            && ngx_current_msec - sc->ops[sc->head].sent
               > NGX_HTTP_SHOP_STALLED)
        {
            load += NGX_HTTP_SHOP_PIPELINE_DEPTH;
        }

        if (load < best_load) {
            best = sc;
            best_load = load;

            if (load == 0) {
                break;
            }
        }
    }

    return best;
}


static void
ngx_http_shop_pool_dispatch(ngx_http_shop_pool_t *pool, ngx_queue_t *done)
{
    ngx_queue_t           *q;
    ngx_http_shop_ctx_t   *ctx;
    ngx_http_shop_conn_t  *sc;

    while (!ngx_queue_empty(&pool->waiting)) {

        sc = ngx_http_shop_pool_pick(pool);
        if (sc == NULL) {
            return;
        }

        q = ngx_queue_head(&pool->waiting);
        ngx_queue_remove(q);
        pool->nwaiting--;

        ctx = ngx_queue_data(q, ngx_http_shop_ctx_t, queue);
        ctx->waiting = 0;

        if (ctx->timer.timer_set) {
            ngx_del_timer(&ctx->timer);
        }

        (void) ngx_http_shop_conn_send(sc, ctx, done);
    }
}


static void
ngx_http_shop_pool_flush_waiting(ngx_http_shop_pool_t *pool,
    ngx_queue_t *done)
{
    ngx_queue_t          *q;
    ngx_http_shop_ctx_t  *ctx;

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        ngx_queue_remove(q);
        pool->nwaiting--;

        ctx = ngx_queue_data(q, ngx_http_shop_ctx_t, queue);
        ctx->waiting = 0;

        ngx_http_shop_answer(ctx, SHOP_DB_UNAVAILABLE, done);
    }
}


/*
 * ctx answers with what it has: its results, or status for the statements
 * without one
 */

static void
ngx_http_shop_answer(ngx_http_shop_ctx_t *ctx, shop_db_status status,
    ngx_queue_t *done)
{
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (ctx->fail == SHOP_DB_OK) {
        ctx->fail = status;
    }

    ctx->op = NULL;

    ngx_queue_insert_tail(done, &ctx->queue);
}


/*
 * answers the requests whose results are in, once the pool's state is
 * consistent again: an answer may start another request right away
 */

static void
ngx_http_shop_pool_finish(ngx_queue_t *done, ngx_http_shop_ctx_t *current)
{
    ngx_queue_t          *q;
    ngx_connection_t     *c;
    ngx_http_shop_ctx_t  *ctx;

    while (!ngx_queue_empty(done)) {
        q = ngx_queue_head(done);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_shop_ctx_t, queue);
        c = ctx->request->connection;

        ngx_http_shop_finish(ctx);

        if (ctx != current) {
            ngx_http_run_posted_requests(c);
        }
    }
}


/* connections */

static void
ngx_http_shop_conn_connect(ngx_http_shop_conn_t *sc)
{
    ngx_http_shop_pool_conf_t  *pcf;
    const char                 *keys[6], *values[6];

    pcf = sc->pool->conf;

    /*
     * listed before "dbname", so the DSN may still choose otherwise:
     * without SSL and GSS negotiation libpq never switches sockets
     * while connecting
     */

    keys[0] = "sslmode";           values[0] = "disable";
    keys[1] = "gssencmode";        values[1] = "disable";
    keys[2] = "application_name";  values[2] = "shop-nginx";
    keys[3] = "dbname";            values[3] = (char *) pcf->database.data;
    keys[4] = "options";           values[4] = (char *) pcf->options.data;
    keys[5] = NULL;                values[5] = NULL;

    sc->pg = PQconnectStartParams(keys, values, 1);

    if (sc->pg == NULL) {
        ngx_http_shop_conn_close(sc, NGX_LOG_ALERT, "failed",
                                 "PQconnectStartParams() out of memory", NULL);
        return;
    }

    if (PQstatus(sc->pg) == CONNECTION_BAD) {
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 PQerrorMessage(sc->pg), NULL);
        return;
    }

    sc->state = NGX_HTTP_SHOP_CONNECTING;

    if (ngx_http_shop_conn_wrap(sc) != NGX_OK) {
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 "no nginx connection for its socket", NULL);
        return;
    }

    /* just after PQconnectStart, libpq waits as if it were writing */

    if (ngx_http_shop_conn_want_write(sc, 1) != NGX_OK) {
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 "cannot add its write event", NULL);
        return;
    }

    ngx_add_timer(&sc->timer, NGX_HTTP_SHOP_CONNECT_TIMEOUT);
}


/* the socket as an nginx connection with a level-triggered read event */

static ngx_int_t
ngx_http_shop_conn_wrap(ngx_http_shop_conn_t *sc)
{
    ngx_socket_t       s;
    ngx_connection_t  *c;

    s = PQsocket(sc->pg);
    if (s == (ngx_socket_t) -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(s, sc->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = sc;
    c->log = sc->pool->log;
    c->read->log = sc->pool->log;
    c->write->log = sc->pool->log;
    c->read->handler = ngx_http_shop_conn_handler;
    c->write->handler = ngx_http_shop_conn_handler;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    sc->c = c;

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_http_shop_conn_unwrap(sc, 0);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * the wrapper goes, the socket stays: PQfinish() alone closes it;
 * "closed": libpq has closed it already, epoll forgot it by itself
 */

static void
ngx_http_shop_conn_unwrap(ngx_http_shop_conn_t *sc, ngx_uint_t closed)
{
    ngx_uint_t         flags;
    ngx_connection_t  *c;

    c = sc->c;
    flags = closed ? NGX_CLOSE_EVENT : 0;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
    sc->c = NULL;
}


/* a level-triggered write event spins: only while libpq has output */

static ngx_int_t
ngx_http_shop_conn_want_write(ngx_http_shop_conn_t *sc, ngx_uint_t want)
{
    ngx_event_t  *wev;

    wev = sc->c->write;

    if (want && !wev->active) {
        return ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    if (!want && wev->active) {
        return ngx_del_event(wev, NGX_WRITE_EVENT, 0);
    }

    return NGX_OK;
}


static void
ngx_http_shop_conn_handler(ngx_event_t *ev)
{
    ngx_connection_t      *c;
    ngx_http_shop_conn_t  *sc;

    c = ev->data;
    sc = c->data;

    switch (sc->state) {

    case NGX_HTTP_SHOP_CONNECTING:
        ngx_http_shop_conn_poll(sc);
        return;

    case NGX_HTTP_SHOP_PREPARING:
    case NGX_HTTP_SHOP_READY:
        ngx_http_shop_conn_io(sc, ev->write);
        return;

    case NGX_HTTP_SHOP_DOWN:
        return;
    }
}


static void
ngx_http_shop_conn_timer(ngx_event_t *ev)
{
    ngx_queue_t            done;
    ngx_http_shop_conn_t  *sc;

    sc = ev->data;

    switch (sc->state) {

    case NGX_HTTP_SHOP_DOWN:
        ngx_http_shop_conn_connect(sc);
        return;

    case NGX_HTTP_SHOP_CONNECTING:
    case NGX_HTTP_SHOP_PREPARING:
        ngx_queue_init(&done);
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 "timed out connecting", &done);
        ngx_http_shop_pool_finish(&done, NULL);
        return;

    case NGX_HTTP_SHOP_READY:
        return;
    }
}


/*
 * the oldest statement in flight got no answer within statement_timeout
 * and a second: the database would have cancelled it, so it hangs, or the
 * network does
 */

static void
ngx_http_shop_conn_deadline(ngx_event_t *ev)
{
    ngx_queue_t            done;
    ngx_http_shop_ctx_t   *ctx;
    ngx_http_shop_conn_t  *sc;

    sc = ev->data;

    if (sc->state != NGX_HTTP_SHOP_READY || sc->nflight == 0) {
        return;
    }

    ctx = sc->ops[sc->head].ctx;

    if (ctx) {
        ctx->fail = SHOP_DB_TIMEOUT;
    }

    ngx_queue_init(&done);
    ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "reset",
                             "no answer within statement_timeout + 1s", &done);
    ngx_http_shop_pool_finish(&done, NULL);
}


static void
ngx_http_shop_conn_poll(ngx_http_shop_conn_t *sc)
{
    ngx_queue_t  done;

    ngx_queue_init(&done);

    switch (PQconnectPoll(sc->pg)) {

    case PGRES_POLLING_READING:
        if (ngx_http_shop_conn_want_write(sc, 0) != NGX_OK) {
            goto failed;
        }
        break;

    case PGRES_POLLING_WRITING:
        if (ngx_http_shop_conn_want_write(sc, 1) != NGX_OK) {
            goto failed;
        }
        break;

    case PGRES_POLLING_OK:
        ngx_http_shop_conn_prepare(sc);
        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 PQerrorMessage(sc->pg), &done);
        ngx_http_shop_pool_finish(&done, NULL);
        return;
    }

    /*
     * libpq moved to another socket (a DSN asking for SSL or GSS with
     * fallback, several hosts): the old one is closed already
     */

    if (PQsocket(sc->pg) != sc->c->fd) {
        ngx_http_shop_conn_unwrap(sc, 1);

        if (ngx_http_shop_conn_wrap(sc) != NGX_OK
            || ngx_http_shop_conn_want_write(sc, 1) != NGX_OK)
        {
            goto failed;
        }
    }

    return;

failed:

    ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                             "cannot register its socket", &done);
    ngx_http_shop_pool_finish(&done, NULL);
}


static void
ngx_http_shop_conn_prepare(ngx_http_shop_conn_t *sc)
{
    ngx_uint_t             i;
    ngx_queue_t            done;
    const shop_statement  *st;

    ngx_queue_init(&done);

    if (PQsetnonblocking(sc->pg, 1) != 0
        || PQenterPipelineMode(sc->pg) != 1)
    {
        goto failed;
    }

    PQsetNoticeProcessor(sc->pg, ngx_http_shop_notice, sc);

    for (i = 0; i < SHOP_STMT_COUNT; i++) {
        st = &shop_catalogue[i];

        if (!PQsendPrepare(sc->pg, st->name, st->sql, st->nparams, NULL)) {
            goto failed;
        }
    }

    for (i = 0; i < SHOP_STMT_COUNT; i++) {
        if (!PQsendDescribePrepared(sc->pg, shop_catalogue[i].name)) {
            goto failed;
        }
    }

    sc->ask_max = 0;

    if (!sc->pool->max_checked && ngx_worker == 0) {
        if (!PQsendQueryParams(sc->pg, "SHOW max_connections", 0, NULL, NULL,
                               NULL, NULL, 0))
        {
            goto failed;
        }

        sc->ask_max = 1;
        sc->pool->max_checked = 1;
    }

    if (!PQpipelineSync(sc->pg)) {
        goto failed;
    }

    sc->state = NGX_HTTP_SHOP_PREPARING;
    sc->step = 0;
    sc->drift = 0;

    if (ngx_http_shop_conn_flush(sc) != NGX_OK) {
        goto failed;
    }

    return;

failed:

    ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                             PQerrorMessage(sc->pg), &done);
    ngx_http_shop_pool_finish(&done, NULL);
}


static void
ngx_http_shop_conn_io(ngx_http_shop_conn_t *sc, ngx_uint_t write)
{
    ngx_queue_t  done;

    ngx_queue_init(&done);

    if (!write && !PQconsumeInput(sc->pg)) {
        goto lost;
    }

    if (ngx_http_shop_conn_flush(sc) != NGX_OK) {
        goto lost;
    }

    if (ngx_http_shop_conn_results(sc, &done) != NGX_OK) {
        goto finish;
    }

    if (sc->pg && PQstatus(sc->pg) != CONNECTION_OK) {
        goto lost;
    }

    ngx_http_shop_pool_dispatch(sc->pool, &done);

    goto finish;

lost:

    ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "lost",
                             PQerrorMessage(sc->pg), &done);

finish:

    ngx_http_shop_pool_finish(&done, NULL);
}


static ngx_int_t
ngx_http_shop_conn_flush(ngx_http_shop_conn_t *sc)
{
    int  rc;

    rc = PQflush(sc->pg);

    if (rc == -1) {
        return NGX_ERROR;
    }

    return ngx_http_shop_conn_want_write(sc, rc == 1);
}


/*
 * every result libpq can hand out without waiting; in pipeline mode a
 * statement's results end with NULL and its sync follows
 */

static ngx_int_t
ngx_http_shop_conn_results(ngx_http_shop_conn_t *sc, ngx_queue_t *done)
{
    PGresult             *res;
    ngx_uint_t            nulls;
    ngx_http_shop_op_t   *op;
    ngx_http_shop_ctx_t  *ctx;

    nulls = 0;

    for ( ;; ) {

        if (sc->state == NGX_HTTP_SHOP_READY && sc->nflight == 0) {
            return NGX_OK;
        }

        if (PQisBusy(sc->pg)) {
            return NGX_OK;
        }

        res = PQgetResult(sc->pg);

        if (res == NULL) {
            if (++nulls == 1) {
                continue;
            }

            /* nothing more will come: the connection broke, or we erred */

            if (PQstatus(sc->pg) == CONNECTION_BAD) {
                ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "lost",
                                         PQerrorMessage(sc->pg), done);

            } else {
                ngx_http_shop_conn_close(sc, NGX_LOG_ALERT, "reset",
                                         "results out of step", done);
            }

            return NGX_ERROR;
        }

        nulls = 0;

        if (sc->state == NGX_HTTP_SHOP_PREPARING) {
            ngx_http_shop_conn_prepared(sc, res, done);

            if (sc->state != NGX_HTTP_SHOP_PREPARING) {
                if (sc->state == NGX_HTTP_SHOP_READY) {
                    continue;
                }

                return NGX_ERROR;
            }

            continue;
        }

        op = &sc->ops[sc->head];

        if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
            ctx = op->ctx;

            if (ctx && op->query < op->nqueries
                && ctx->res[op->query] == NULL)
            {
                ctx->res[op->query] = res;

            } else {
                PQclear(res);
            }

            continue;
        }

        PQclear(res);

        if (++op->query < op->nqueries) {
            continue;
        }

        /* the request's last statement is done */

        sc->head = (sc->head + 1) % NGX_HTTP_SHOP_PIPELINE_DEPTH;
        sc->nflight--;

        /* the database starts on the next one now */

        if (sc->nflight) {
            ngx_add_timer(&sc->deadline, sc->pool->conf->statement_timeout
                                         + NGX_HTTP_SHOP_GRACE);

        } else if (sc->deadline.timer_set) {
            ngx_del_timer(&sc->deadline);
        }

        ctx = op->ctx;
        op->ctx = NULL;

        if (ctx == NULL) {
            continue;
        }

        ctx->db_us += ngx_http_shop_now_us() - ctx->sent_us;

        ngx_http_shop_answer(ctx, SHOP_DB_OK, done);
    }
}


static void
ngx_http_shop_conn_prepared(ngx_http_shop_conn_t *sc, PGresult *res,
    ngx_queue_t *done)
{
    u_char                  *p;
    ngx_uint_t               step, n, level;
    ExecStatusType           status;
    ngx_http_shop_pool_t    *pool;
    const shop_statement    *st;
    char                     err[256];
    u_char                   msg[256];

    pool = sc->pool;
    status = PQresultStatus(res);
    n = SHOP_STMT_COUNT;

    if (status == PGRES_PIPELINE_SYNC) {
        PQclear(res);

        if (!sc->drift) {
            ngx_http_shop_conn_ready(sc);
            return;
        }

        if (!pool->drift) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "shop: %V does not match the statement catalogue; "
                          "requests get 503 until it does", &pool->conf->name);
        }

        pool->drift = 1;
        sc->failing = 1;
        sc->backoff = NGX_HTTP_SHOP_BACKOFF_MAX;

        ngx_http_shop_conn_close(sc, NGX_LOG_INFO, "closed",
                                 "the schema does not match", done);
        ngx_http_shop_pool_flush_waiting(pool, done);
        return;
    }

    step = sc->step++;

    /* said once: a drifted database keeps being retried */

    level = pool->drift ? NGX_LOG_INFO : NGX_LOG_ERR;

    if (step < n) {
        st = &shop_catalogue[step];

        if (status != PGRES_COMMAND_OK && status != PGRES_PIPELINE_ABORTED) {
            p = ngx_http_shop_pg_message(PQresultErrorMessage(res), msg,
                                         sizeof(msg));

            ngx_log_error(level, pool->log,
                          0, "shop: statement %s cannot be prepared: %*s",
                          st->name, p - msg, msg);
            sc->drift = 1;
        }

    } else if (step < 2 * n) {
        st = &shop_catalogue[step - n];

        if (status == PGRES_COMMAND_OK
            && shop_catalogue_check(st, res, err, sizeof(err)) != 0)
        {
            ngx_log_error(level, pool->log, 0, "shop: %s", err);
            sc->drift = 1;
        }

    } else if (sc->ask_max && status == PGRES_TUPLES_OK) {
        ngx_http_shop_max_connections(sc, res);
    }

    PQclear(res);
}


static void
ngx_http_shop_conn_ready(ngx_http_shop_conn_t *sc)
{
    ngx_uint_t             level;
    ngx_http_shop_pool_t  *pool;

    pool = sc->pool;

    if (sc->timer.timer_set) {
        ngx_del_timer(&sc->timer);
    }

    level = sc->failing ? NGX_LOG_NOTICE : NGX_LOG_INFO;

    ngx_log_error(level, pool->log, 0,
                  "shop: connection %ui to %V is ready",
                  sc->number, &pool->conf->name);

    if (pool->drift) {
        ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                      "shop: %V matches the statement catalogue again",
                      &pool->conf->name);
        pool->drift = 0;
    }

    sc->state = NGX_HTTP_SHOP_READY;
    sc->failing = 0;
    sc->backoff = NGX_HTTP_SHOP_BACKOFF_MIN;
    sc->head = 0;
    sc->nflight = 0;

    pool->nready++;
    pool->down = 0;

    /* the caller, ngx_http_shop_conn_io(), hands it the waiting requests */
}


/*
 * closes sc (its requests in flight answer 503 through "done") and sets the
 * reconnect timer; level: how loud, unless the connection is failing anyway
 */

static void
ngx_http_shop_conn_close(ngx_http_shop_conn_t *sc, ngx_uint_t level,
    const char *what, const char *why, ngx_queue_t *done)
{
    u_char                *p;
    ngx_uint_t             i, n, was_ready;
    ngx_http_shop_op_t    *op;
    ngx_http_shop_ctx_t   *ctx;
    ngx_http_shop_pool_t  *pool;
    u_char                 msg[256];

    pool = sc->pool;
    was_ready = (sc->state == NGX_HTTP_SHOP_READY);

    p = ngx_http_shop_pg_message(why, msg, sizeof(msg));

    /* said once: while the database stays away, quieter */

    if ((sc->failing || (pool->down && sc->nflight == 0))
        && level > NGX_LOG_ALERT)
    {
        level = NGX_LOG_INFO;
    }

    ngx_log_error(level, pool->log, 0,
                  "shop: connection %ui to %V %s: %*s; %ui request(s) in "
                  "flight, next attempt in %M ms",
                  sc->number, &pool->conf->name, what, p - msg, msg,
                  sc->nflight, sc->backoff);

    /* in flight: what its sync did not confirm never happened */

    for (n = 0; n < sc->nflight; n++) {
        op = &sc->ops[(sc->head + n) % NGX_HTTP_SHOP_PIPELINE_DEPTH];

        ctx = op->ctx;
        op->ctx = NULL;

        if (ctx == NULL) {
            continue;
        }

        for (i = op->query; i < op->nqueries; i++) {
            if (ctx->res[i]) {
                PQclear(ctx->res[i]);
                ctx->res[i] = NULL;
            }
        }

        if (done) {
            ngx_http_shop_answer(ctx, SHOP_DB_UNAVAILABLE, done);
        }
    }

    sc->head = 0;
    sc->nflight = 0;

    if (sc->deadline.timer_set) {
        ngx_del_timer(&sc->deadline);
    }

    /* on a lost connection libpq has closed the socket already */

    if (sc->c) {
        ngx_http_shop_conn_unwrap(sc, sc->pg == NULL
                                      || PQsocket(sc->pg) != sc->c->fd);
    }

    if (sc->pg) {
        PQfinish(sc->pg);
        sc->pg = NULL;
    }

    sc->state = NGX_HTTP_SHOP_DOWN;
    sc->failing = 1;

    if (was_ready) {
        pool->nready--;
    }

    if (pool->stopping) {
        return;
    }

    if (pool->nready == 0) {
        pool->down = 1;

        if (done) {
            ngx_http_shop_pool_flush_waiting(pool, done);
        }
    }

    if (sc->timer.timer_set) {
        ngx_del_timer(&sc->timer);
    }

    ngx_add_timer(&sc->timer, sc->backoff);

    sc->backoff = ngx_min(sc->backoff * 2, NGX_HTTP_SHOP_BACKOFF_MAX);
}


static void
ngx_http_shop_max_connections(ngx_http_shop_conn_t *sc, PGresult *res)
{
    ngx_int_t              max;
    ngx_http_shop_pool_t  *pool;

    pool = sc->pool;

    if (PQntuples(res) != 1 || PQnfields(res) != 1) {
        return;
    }

    max = ngx_atoi((u_char *) PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
    if (max == NGX_ERROR) {
        return;
    }

    /* 3: superuser_reserved_connections' default */

    if (pool->total + 3 > (ngx_uint_t) max) {
        ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                      "shop: nginx opens %ui connections to %V, more than "
                      "its max_connections %i allows; lower shop_pool_size "
                      "or worker_processes",
                      pool->total, &pool->conf->name, max);

    } else if (pool->total * 10 >= (ngx_uint_t) max * 8) {
        ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                      "shop: nginx opens %ui connections to %V, close to "
                      "its max_connections %i",
                      pool->total, &pool->conf->name, max);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                      "shop: nginx opens %ui connections to %V, "
                      "max_connections is %i",
                      pool->total, &pool->conf->name, max);
    }
}


static void
ngx_http_shop_notice(void *arg, const char *message)
{
    ngx_http_shop_conn_t *sc = arg;

    u_char  *p;
    u_char   msg[256];

    p = ngx_http_shop_pg_message(message, msg, sizeof(msg));

    ngx_log_error(NGX_LOG_INFO, sc->pool->log, 0,
                  "shop: connection %ui: %*s", sc->number, p - msg, msg);
}


/* libpq's message on one line */

u_char *
ngx_http_shop_pg_message(const char *msg, u_char *buf, size_t len)
{
    u_char  *p, *last;

    p = buf;
    last = buf + len;

    if (msg == NULL) {
        return p;
    }

    for ( /* void */ ; *msg && p < last; msg++) {

        if (*msg == '\n' || *msg == '\r' || *msg == '\t' || *msg == ' ') {
            if (p > buf && p[-1] != ' ') {
                *p++ = ' ';
            }

            continue;
        }

        *p++ = *msg;
    }

    while (p > buf && p[-1] == ' ') {
        p--;
    }

    return p;
}
