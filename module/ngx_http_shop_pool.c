
/*
 * The per-worker pools of PostgreSQL connections, driven by nginx's event
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
 * PREPARING sends, in one pipeline, PQsendPrepare for every statement the
 * pool runs, PQsendDescribePrepared for each (checked against the
 * catalogue), once per worker "SHOW max_connections", and a sync.
 *
 * READY: a job's statements go out with PQsendQueryPrepared, each followed
 * by PQpipelineSync, so every statement is its own implicit transaction.
 * Results come back in order: per connection a ring of the jobs in flight
 * (at most the pool's depth). A job whose owner went away stays in the ring
 * without it; its results are read and dropped.
 *
 * A job waits in the pool's queue (bounded; with a timeout unless its owner
 * has a deadline) when every ready connection is full, and fails at once
 * when the queue is full, when no connection is up after a failure, or when
 * the database does not match the catalogue.
 *
 * Two kinds of pools:
 *
 * - the shop's (shop_database): the whole catalogue, 32 jobs in flight per
 *   connection, every connection kept up;
 *
 * - the stock check's, one per warehouse database (shop_warehouse_database,
 *   or shop_database for the warehouses without one): warehouse_stock only,
 *   one job per connection, so that a query past its deadline is stopped by
 *   closing its connection (libpq 15 has no non-blocking cancel, and
 *   PQcancel blocks) without touching anyone else's; a replacement connects
 *   at once. Per warehouse it serves, one connection is kept up and
 *   shop_warehouse_pool_size may be opened when requests wait. A failed
 *   database answers at once (error; timeout when connecting hung) while
 *   one connection retries in the background.
 *
 * While a pool is down (no connection ready after a failure) one
 * connection probes, with the backoff; when it is ready the others follow.
 */


#include "ngx_http_shop_module.h"

#include <arpa/inet.h>


#define NGX_HTTP_SHOP_CONNECT_TIMEOUT  5000
#define NGX_HTTP_SHOP_WH_CONNECT       3000   /* a stock-check database */
#define NGX_HTTP_SHOP_WH_MARGIN        250    /* statement_timeout past the
                                                 stock deadline */
#define NGX_HTTP_SHOP_BACKOFF_MIN      100
#define NGX_HTTP_SHOP_BACKOFF_MAX      2000
#define NGX_HTTP_SHOP_STALLED          100    /* the oldest statement is slow */


typedef enum {
    NGX_HTTP_SHOP_DOWN = 0,
    NGX_HTTP_SHOP_CONNECTING,
    NGX_HTTP_SHOP_PREPARING,
    NGX_HTTP_SHOP_READY
} ngx_http_shop_state_e;


struct ngx_http_shop_op_s {
    ngx_http_shop_job_t     *job;          /* NULL: nobody waits for it */
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
    ngx_http_shop_op_t      *ops;          /* a ring of conf->depth */

    unsigned                 ask_max:1;
    unsigned                 drift:1;
    unsigned                 failing:1;
    unsigned                 timed_out:1;  /* the failure: no answer in time */
};


struct ngx_http_shop_pool_s {
    ngx_http_shop_pool_conf_t  *conf;
    ngx_log_t                  *log;

    /*
     * conns[0 .. warm): kept connected; [warm .. nconns): connected when
     * jobs wait; [nconns .. nalloc): not in use yet
     */
    ngx_http_shop_conn_t       *conns;
    ngx_uint_t                  nconns;
    ngx_uint_t                  nalloc;
    ngx_uint_t                  warm;
    ngx_uint_t                  nready;

    ngx_queue_t                 waiting;
    ngx_uint_t                  nwaiting;

    const shop_stmt_id         *stmts;     /* what its connections prepare */
    ngx_uint_t                  nstmts;
    uint64_t                    prepared;  /* the same, bit per statement */

    ngx_uint_t                  total;     /* all workers, this database */

    shop_db_status              down_status;  /* what a down pool answers */
    ngx_http_shop_registry_t   *registry;  /* the shop's pools */

    ngx_msec_t                  said;      /* a 503 for a full pool was
                                              logged (once a second) */
    ngx_uint_t                  unsaid;    /* since then, not logged */

    unsigned                    down:1;    /* failed, none ready: fail fast */
    unsigned                    drift:1;   /* schema and catalogue differ */
    unsigned                    max_checked:1;
    unsigned                    stopping:1;
};


static ngx_http_shop_pool_conf_t *ngx_http_shop_pool_conf_get(ngx_conf_t *cf,
    const char *database, ngx_msec_t statement_timeout, ngx_uint_t size,
    ngx_uint_t queue, ngx_msec_t queue_timeout, ngx_uint_t warehouse,
    const char *label);
static void ngx_http_shop_pool_role(ngx_http_shop_pool_conf_t *pcf,
    ngx_uint_t role, const char *label, const char *code);
static void ngx_http_shop_pool_full(ngx_http_shop_pool_t *pool,
    ngx_log_t *log, const char *why);
static void ngx_http_shop_conn_init(ngx_http_shop_pool_t *pool,
    ngx_uint_t i);
static void ngx_http_shop_conn_connect(ngx_http_shop_conn_t *sc,
    ngx_queue_t *done);
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
static void ngx_http_shop_conn_drop(ngx_http_shop_conn_t *sc,
    ngx_queue_t *done);
static void ngx_http_shop_conn_close(ngx_http_shop_conn_t *sc,
    ngx_uint_t level, const char *what, const char *why, ngx_queue_t *done);
static void ngx_http_shop_conn_replace(ngx_http_shop_conn_t *sc,
    ngx_queue_t *done);
static ngx_int_t ngx_http_shop_conn_send(ngx_http_shop_conn_t *sc,
    ngx_http_shop_job_t *job, ngx_queue_t *done);
static void ngx_http_shop_notice(void *arg, const char *message);

static ngx_http_shop_conn_t *ngx_http_shop_pool_pick(
    ngx_http_shop_pool_t *pool);
static ngx_uint_t ngx_http_shop_pool_probing(ngx_http_shop_pool_t *pool,
    const ngx_http_shop_conn_t *except);
static void ngx_http_shop_pool_wake(ngx_http_shop_pool_t *pool,
    ngx_queue_t *done);
static void ngx_http_shop_pool_dispatch(ngx_http_shop_pool_t *pool,
    ngx_queue_t *done);
static void ngx_http_shop_pool_flush_waiting(ngx_http_shop_pool_t *pool,
    shop_db_status status, ngx_queue_t *done);
static void ngx_http_shop_pool_wait(ngx_http_shop_pool_t *pool,
    ngx_http_shop_job_t *job, ngx_uint_t first);
static shop_db_status ngx_http_shop_pool_down_status(
    ngx_http_shop_pool_t *pool);
static void ngx_http_shop_answer(ngx_http_shop_job_t *job,
    shop_db_status status, ngx_queue_t *done);
static void ngx_http_shop_job_timeout(ngx_event_t *ev);
static void ngx_http_shop_request_done(ngx_http_shop_job_t *job,
    ngx_uint_t sync);
static void ngx_http_shop_max_connections(ngx_http_shop_conn_t *sc,
    PGresult *res);


/* what the connections of each kind of pool prepare */

static shop_stmt_id  ngx_http_shop_all_stmts[SHOP_STMT_COUNT];

static const shop_stmt_id  ngx_http_shop_warehouse_stmts[] = {
    SHOP_STMT_WAREHOUSE_STOCK
};


/*
 * shop_database, shop_warehouse_database: libpq must understand it, and
 * should not have to look a host name up: PQconnectStart() resolves names
 * with a blocking getaddrinfo(), and a worker must never wait for DNS
 */

char *
ngx_http_shop_pool_check_dsn(ngx_conf_t *cf, const char *dsn)
{
    u_char            *p;
    char              *errmsg;
    ngx_str_t         *name;
    const char        *host, *hostaddr;
    PQconninfoOption  *opts, *o;
    u_char             addr[sizeof(struct in6_addr)];
    u_char             msg[256];

    name = cf->args->elts;            /* the directive */
    errmsg = NULL;

    opts = PQconninfoParse(dsn, &errmsg);

    if (opts == NULL) {
        p = ngx_http_shop_pg_message(errmsg ? errmsg : "out of memory", msg,
                                     sizeof(msg));

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value in \"%V\" directive: %*s",
                           &name[0], p - msg, msg);
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
                           "\"%V\" host \"%s\" is a name: libpq "
                           "resolves it with a blocking DNS lookup in the "
                           "worker at every connect; add hostaddr=<address>",
                           &name[0], host);
    }

    PQconninfoFree(opts);

    return NGX_CONF_OK;
}


/* configuration: which pools a location uses */

ngx_int_t
ngx_http_shop_pool_conf(ngx_conf_t *cf, ngx_http_shop_loc_conf_t *lcf)
{
    ngx_uint_t                   i;
    ngx_msec_t                   timeout;
    const char                  *stock;
    shop_settings               *s;
    ngx_http_shop_warehouse_t   *wh;
    ngx_http_shop_loc_conf_t   **lp;
    ngx_http_shop_main_conf_t   *smcf;

    s = &lcf->settings;

    /* shop_database was checked when read: ngx_http_shop_pool_check_dsn() */

    lcf->pool = ngx_http_shop_pool_conf_get(cf, s->database,
                                            (ngx_msec_t) s->statement_timeout_ms,
                                            (ngx_uint_t) s->pool_size,
                                            (ngx_uint_t) s->pool_queue,
                                            (ngx_msec_t) s->pool_queue_timeout_ms,
                                            0, NULL);
    if (lcf->pool == NULL) {
        return NGX_ERROR;
    }

    ngx_http_shop_pool_role(lcf->pool, NGX_HTTP_SHOP_ROLE_PRIMARY, "primary",
                            NULL);

    /*
     * shop_read_database: the reads a replica may answer (product and
     * warehouse GETs), a pool of the same settings preparing the whole
     * catalogue; writes, orders and the module's own statements stay on
     * the primary
     */

    stock = s->database;
    lcf->read_pool = NULL;

    if (s->read_database && s->read_database[0]) {
        lcf->read_pool = ngx_http_shop_pool_conf_get(cf, s->read_database,
                                          (ngx_msec_t) s->statement_timeout_ms,
                                          (ngx_uint_t) s->pool_size,
                                          (ngx_uint_t) s->pool_queue,
                                          (ngx_msec_t) s->pool_queue_timeout_ms,
                                          0, NULL);
        if (lcf->read_pool == NULL) {
            return NGX_ERROR;
        }

        ngx_http_shop_pool_role(lcf->read_pool, NGX_HTTP_SHOP_ROLE_READ,
                                "read", NULL);

        stock = s->read_database;
    }

    /*
     * the stock check's pools: the server ends a statement the deadline
     * gave up on soon after (the module closed its connection already);
     * warehouses without a database of their own are asked in the read
     * replica, when there is one
     */

    timeout = (ngx_msec_t) s->stock_deadline_ms + NGX_HTTP_SHOP_WH_MARGIN;

    lcf->warehouse_pool = ngx_http_shop_pool_conf_get(cf, stock,
                                     timeout, (ngx_uint_t) s->warehouse_pool_size,
                                     (ngx_uint_t) s->pool_queue,
                                     (ngx_msec_t) s->pool_queue_timeout_ms,
                                     1, NULL);
    if (lcf->warehouse_pool == NULL) {
        return NGX_ERROR;
    }

    ngx_http_shop_pool_role(lcf->warehouse_pool, NGX_HTTP_SHOP_ROLE_STOCK,
                            lcf->read_pool ? "stock:read" : "stock:primary",
                            NULL);

    if (lcf->warehouses && lcf->warehouses->nelts) {
        lcf->warehouse_pools = ngx_palloc(cf->pool, lcf->warehouses->nelts
                                          * sizeof(ngx_http_shop_pool_conf_t *));
        if (lcf->warehouse_pools == NULL) {
            return NGX_ERROR;
        }

        wh = lcf->warehouses->elts;

        for (i = 0; i < lcf->warehouses->nelts; i++) {
            lcf->warehouse_pools[i] = ngx_http_shop_pool_conf_get(cf,
                                     (const char *) wh[i].database.data,
                                     timeout, (ngx_uint_t) s->warehouse_pool_size,
                                     (ngx_uint_t) s->pool_queue,
                                     (ngx_msec_t) s->pool_queue_timeout_ms,
                                     1, (const char *) wh[i].code.data);
            if (lcf->warehouse_pools[i] == NULL) {
                return NGX_ERROR;
            }

            ngx_http_shop_pool_role(lcf->warehouse_pools[i],
                                    NGX_HTTP_SHOP_ROLE_STOCK, "warehouse:",
                                    (const char *) wh[i].code.data);
        }
    }

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_shop_module);

    lp = ngx_array_push(&smcf->locations);
    if (lp == NULL) {
        return NGX_ERROR;
    }

    *lp = lcf;

    return NGX_OK;
}


/*
 * what a pool is for, and its label in GET /metrics: the first role's;
 * a stock-check pool of shop_warehouse_database lines is named by their
 * codes ("warehouse:north,south") as far as 39 bytes go
 */

static void
ngx_http_shop_pool_role(ngx_http_shop_pool_conf_t *pcf, ngx_uint_t role,
    const char *label, const char *code)
{
    u_char  *p, *last;
    size_t   len, n;

    pcf->roles |= role;

    last = pcf->label + NGX_HTTP_SHOP_LABEL_LEN - 1;

    if (pcf->label[0] == '\0') {
        p = ngx_cpymem(pcf->label, label,
                       ngx_min(ngx_strlen(label), (size_t) (last - pcf->label)));

        if (code) {
            n = ngx_min(ngx_strlen(code), (size_t) (last - p));
            p = ngx_cpymem(p, code, n);
        }

        *p = '\0';
        return;
    }

    if (code == NULL
        || ngx_strncmp(pcf->label, label, ngx_strlen(label)) != 0)
    {
        return;
    }

    /* another code in the same database: added, unless there already */

    len = ngx_strlen(code);
    p = pcf->label + ngx_strlen(label);

    for ( ;; ) {
        n = ngx_strlen(p);

        if (ngx_strlchr(p, p + n, ',')) {
            n = ngx_strlchr(p, p + n, ',') - p;
        }

        if (n == len && ngx_strncmp(p, code, len) == 0) {
            return;
        }

        if (p[n] != ',') {
            break;
        }

        p += n + 1;
    }

    p = pcf->label + ngx_strlen((char *) pcf->label);

    if (p + 1 + len <= last) {
        *p++ = ',';
        p = ngx_cpymem(p, code, len);
        *p = '\0';
    }
}


/* the pool for these settings: pools with the same settings are one */

static ngx_http_shop_pool_conf_t *
ngx_http_shop_pool_conf_get(ngx_conf_t *cf, const char *database,
    ngx_msec_t statement_timeout, ngx_uint_t size, ngx_uint_t queue,
    ngx_msec_t queue_timeout, ngx_uint_t warehouse, const char *label)
{
    u_char                      *p;
    size_t                       len;
    ngx_uint_t                   i, depth, known;
    const char                  *host, *hostaddr, *port, *dbname, *user;
    const char                  *options;
    PQconninfoOption            *opts, *o;
    ngx_http_shop_pool_conf_t   *pcf, **pp;
    ngx_http_shop_main_conf_t   *smcf;

    depth = warehouse ? 1 : NGX_HTTP_SHOP_PIPELINE_DEPTH;

    opts = PQconninfoParse(database, NULL);
    if (opts == NULL) {
        return NULL;
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

    /*
     * the same settings: the same pool; stock-check pools of locations
     * with different deadlines or queues are one too, with the longest
     * statement timeout and the largest queue
     */

    len = ngx_strlen(database);

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_shop_module);
    pp = smcf->pools.elts;
    pcf = NULL;

    for (i = 0; i < smcf->pools.nelts; i++) {
        if (pp[i]->database.len == len
            && ngx_strcmp(pp[i]->database.data, database) == 0
            && pp[i]->size == size
            && pp[i]->depth == depth
            && pp[i]->warehouse == warehouse
            && (warehouse
                || (pp[i]->statement_timeout == statement_timeout
                    && pp[i]->queue == queue
                    && pp[i]->queue_timeout == queue_timeout)))
        {
            pcf = pp[i];
            break;
        }
    }

    if (pcf) {
        /* a stock-check pool: the largest queue; its checks have deadlines */
        pcf->queue = ngx_max(pcf->queue, queue);
        pcf->queue_timeout = ngx_max(pcf->queue_timeout, queue_timeout);
    }

    if (pcf && pcf->statement_timeout >= statement_timeout) {
        PQconninfoFree(opts);
        return pcf;
    }

    known = (pcf != NULL);         /* only its statement timeout grows */

    if (!known) {
        pcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_shop_pool_conf_t));
        if (pcf == NULL) {
            goto failed;
        }

        pcf->database.data = (u_char *) database;
        pcf->database.len = len;
        pcf->size = size;
        pcf->queue = queue;
        pcf->queue_timeout = queue_timeout;
        pcf->depth = depth;
        pcf->warehouse = warehouse;
    }

    pcf->statement_timeout = statement_timeout;

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

    if (known) {
        PQconninfoFree(opts);
        return pcf;
    }

    len = sizeof("database \"\" at : (stock check, warehouse )") - 1 + 64
          + (dbname ? ngx_strlen(dbname) : user ? ngx_strlen(user) : 0)
          + (hostaddr ? ngx_strlen(hostaddr) : host ? ngx_strlen(host) : 0)
          + (port ? ngx_strlen(port) : 0)
          + (label ? ngx_strlen(label) : 0);

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        goto failed;
    }

    pcf->name.data = p;
    p = ngx_snprintf(p, len, "database \"%s\" at %s:%s",
                     dbname ? dbname : user ? user : "(default)",
                     hostaddr ? hostaddr : host ? host : "(default socket)",
                     port ? port : "5432");

    if (label) {
        p = ngx_snprintf(p, pcf->name.data + len - p,
                         " (stock check, warehouse %s)", label);

    } else if (warehouse) {
        p = ngx_snprintf(p, pcf->name.data + len - p, " (stock check)");
    }

    pcf->name.len = p - pcf->name.data;

    PQconninfoFree(opts);
    opts = NULL;

    pp = ngx_array_push(&smcf->pools);
    if (pp == NULL) {
        goto failed;
    }

    *pp = pcf;

    return pcf;

failed:

    if (opts) {
        PQconninfoFree(opts);
    }

    return NULL;
}


/* worker start and exit */

ngx_int_t
ngx_http_shop_pool_start(ngx_cycle_t *cycle, ngx_http_shop_pool_conf_t *pcf,
    ngx_uint_t npools)
{
    ngx_uint_t                   i, workers, size;
    ngx_core_conf_t             *ccf;
    ngx_http_shop_pool_t        *pool;
    ngx_http_shop_main_conf_t   *smcf;
    ngx_http_shop_pool_conf_t  **pp;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_shop_pool_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pool->nalloc = pcf->warehouse
                   ? ngx_max(pcf->size, NGX_HTTP_SHOP_WAREHOUSE_CONNS)
                   : pcf->size;

    pool->conns = ngx_pcalloc(cycle->pool,
                              pool->nalloc * sizeof(ngx_http_shop_conn_t));
    if (pool->conns == NULL) {
        return NGX_ERROR;
    }

    pool->conf = pcf;
    pool->log = cycle->log;
    pool->down_status = SHOP_DB_UNAVAILABLE;
    ngx_queue_init(&pool->waiting);

    if (pcf->warehouse) {
        pool->stmts = ngx_http_shop_warehouse_stmts;
        pool->nstmts = sizeof(ngx_http_shop_warehouse_stmts)
                       / sizeof(ngx_http_shop_warehouse_stmts[0]);

    } else {
        for (i = 0; i < SHOP_STMT_COUNT; i++) {
            ngx_http_shop_all_stmts[i] = (shop_stmt_id) i;
        }

        pool->stmts = ngx_http_shop_all_stmts;
        pool->nstmts = SHOP_STMT_COUNT;
    }

    for (i = 0; i < pool->nstmts; i++) {
        pool->prepared |= (uint64_t) 1 << pool->stmts[i];
    }

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

    /*
     * max_connections: asked once per database, by the first of its pools;
     * the shop's pools load the warehouse list, one per database
     */

    if (pcf->warehouse) {
        pool->max_checked = 1;
    }

    for (i = 0; pp[i] != pcf; i++) {
        if (pp[i]->database.len == pcf->database.len
            && ngx_strcmp(pp[i]->database.data, pcf->database.data) == 0)
        {
            pool->max_checked = 1;

            if ((pcf->roles & NGX_HTTP_SHOP_ROLE_PRIMARY)
                && (pp[i]->roles & NGX_HTTP_SHOP_ROLE_PRIMARY)
                && pp[i]->pool && pool->registry == NULL)
            {
                pool->registry = pp[i]->pool->registry;
            }
        }
    }

    /* a read replica's pool keeps no warehouse list: the primary's does */

    if ((pcf->roles & NGX_HTTP_SHOP_ROLE_PRIMARY) && pool->registry == NULL) {
        pool->registry = ngx_http_shop_registry_create(pool, &pcf->name);
        if (pool->registry == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_worker == 0) {
        if (pcf->warehouse) {
            ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                          "shop: pool for %V: per worker %ui connection(s) "
                          "per warehouse it serves, one kept up each, at "
                          "most %ui; one statement at a time, statement "
                          "timeout %M ms",
                          &pcf->name, pcf->size, pool->nalloc,
                          pcf->statement_timeout);

        } else {
            ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                          "shop: pool for %V (%s): %ui worker(s) x %ui "
                          "connection(s) = %ui; pipeline depth %ui, queue "
                          "%ui for %M ms, statement timeout %M ms",
                          &pcf->name, pcf->label, workers, pcf->size,
                          workers * pcf->size,
                          pcf->depth, pcf->queue, pcf->queue_timeout,
                          pcf->statement_timeout);
        }
    }

    /* a stock-check pool connects once the warehouses it serves are known */

    pool->nconns = pcf->size;
    pool->warm = pcf->warehouse ? 0 : pcf->size;

    for (i = 0; i < pool->nconns; i++) {
        ngx_http_shop_conn_init(pool, i);
    }

    for (i = 0; i < pool->warm; i++) {
        ngx_http_shop_conn_connect(&pool->conns[i], NULL);
    }

    return NGX_OK;
}


static void
ngx_http_shop_conn_init(ngx_http_shop_pool_t *pool, ngx_uint_t i)
{
    ngx_http_shop_conn_t  *sc;

    sc = &pool->conns[i];

    sc->pool = pool;
    sc->number = i + 1;
    sc->backoff = NGX_HTTP_SHOP_BACKOFF_MIN;

    sc->ops = ngx_pcalloc(ngx_cycle->pool,
                          pool->conf->depth * sizeof(ngx_http_shop_op_t));

    sc->timer.handler = ngx_http_shop_conn_timer;
    sc->timer.data = sc;
    sc->timer.log = pool->log;
    sc->timer.cancelable = 1;

    /* not cancelable: a graceful shutdown waits for what is in flight */

    sc->deadline.handler = ngx_http_shop_conn_deadline;
    sc->deadline.data = sc;
    sc->deadline.log = pool->log;
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

    if (pool->registry) {
        ngx_http_shop_registry_stop(pool->registry);
    }

    for (i = 0; i < pool->nconns; i++) {
        sc = &pool->conns[i];

        if (sc->timer.timer_set) {
            ngx_del_timer(&sc->timer);
        }

        if (sc->deadline.timer_set) {
            ngx_del_timer(&sc->deadline);
        }

        if (sc->c) {
            ngx_http_shop_pg_unwrap(&sc->c, PQsocket(sc->pg) != sc->c->fd);
        }

        if (sc->pg) {
            PQfinish(sc->pg);
            sc->pg = NULL;
        }

        sc->state = NGX_HTTP_SHOP_DOWN;
    }
}


/*
 * a stock-check pool serves n warehouses now: one connection each kept up,
 * shop_warehouse_pool_size each when requests wait
 */

void
ngx_http_shop_pool_warehouses(ngx_http_shop_pool_t *pool, ngx_uint_t n)
{
    ngx_uint_t   i, want;
    ngx_queue_t  done;

    if (pool == NULL || !pool->conf->warehouse || pool->stopping) {
        return;
    }

    want = ngx_min(pool->nalloc, pool->conf->size * ngx_max(n, 1));

    for (i = pool->nconns; i < want; i++) {
        ngx_http_shop_conn_init(pool, i);

        if (pool->conns[i].ops == NULL) {
            break;
        }

        pool->nconns = i + 1;
    }

    if (pool->warm != ngx_min(n, pool->nconns)) {
        ngx_log_error(NGX_LOG_INFO, pool->log, 0,
                      "shop: %V serves %ui warehouse(s): %ui connection(s) "
                      "kept, up to %ui", &pool->conf->name, n,
                      ngx_min(n, pool->nconns), pool->nconns);
    }

    pool->warm = ngx_min(n, pool->nconns);

    ngx_queue_init(&done);
    ngx_http_shop_pool_wake(pool, &done);
    ngx_http_shop_pool_finish(&done, NULL);
}


ngx_http_shop_registry_t *
ngx_http_shop_pool_registry(ngx_http_shop_pool_t *pool)
{
    return pool ? pool->registry : NULL;
}


/*
 * the shop's statements go to the shop's pool; those a replica may answer
 * (SHOP_TARGET_READ) to the read replica's when there is one. Its pool
 * down means 503 for them: no quiet move to the primary, which the
 * replica is there to spare
 */

ngx_http_shop_pool_conf_t *
ngx_http_shop_pool_for(ngx_http_shop_loc_conf_t *lcf, int target)
{
    if (target == SHOP_TARGET_READ && lcf->read_pool) {
        return lcf->read_pool;
    }

    return lcf->pool;
}


/* requests: a plan on one of the shop's pools, the fast path */

void
ngx_http_shop_pool_run(ngx_http_shop_ctx_t *ctx)
{
    ngx_http_shop_job_t        *job;
    ngx_http_shop_pool_conf_t  *pcf;

    job = &ctx->job;

    job->queries = ctx->core.queries;
    job->res = ctx->res;
    job->nqueries = ctx->core.nqueries;
    job->handler = ngx_http_shop_request_done;
    job->data = ctx;
    job->log = ctx->request->connection->log;

    /* one pool for all of them: ngx_http_shop_fanout_needed() */

    pcf = ngx_http_shop_pool_for(ctx->conf, ctx->core.queries[0].target);

    ngx_http_shop_pool_submit(pcf->pool, job);
}


static void
ngx_http_shop_request_done(ngx_http_shop_job_t *job, ngx_uint_t sync)
{
    ngx_connection_t     *c;
    ngx_http_shop_ctx_t  *ctx;

    ctx = job->data;
    c = ctx->request->connection;

    ctx->db_us += job->db_us;
    ctx->wait_us += job->wait_us;

    ngx_http_shop_finish(ctx);

    if (!sync) {
        ngx_http_run_posted_requests(c);
    }
}


void
ngx_http_shop_pool_cancel(ngx_http_shop_ctx_t *ctx)
{
    ngx_http_shop_job_cancel(&ctx->job);

    if (ctx->jobs || ctx->warehouses || ctx->stale.next) {
        ngx_http_shop_fanout_cancel(ctx);
    }
}


/* jobs */

void
ngx_http_shop_pool_submit(ngx_http_shop_pool_t *pool, ngx_http_shop_job_t *job)
{
    ngx_queue_t            done;
    ngx_http_shop_conn_t  *sc;

    ngx_queue_init(&done);

    job->pool = pool;
    job->op = NULL;
    job->fail = SHOP_DB_OK;
    job->db_us = 0;
    job->wait_us = 0;
    job->queued_us = ngx_http_shop_now_us();
    job->waiting = 0;
    job->answered = 0;

    if (pool == NULL || pool->stopping || pool->drift
        || (pool->down && pool->nready == 0))
    {
        /* down: answered at once, but never without a probe under way */

        if (pool && pool->down && !pool->stopping && !pool->drift
            && !ngx_http_shop_pool_probing(pool, NULL))
        {
            ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                          "shop: pool %V was down with no connection "
                          "retrying; probing now", &pool->conf->name);

            ngx_http_shop_pool_wake(pool, &done);
        }

        ngx_http_shop_answer(job, pool ? ngx_http_shop_pool_down_status(pool)
                                       : SHOP_DB_UNAVAILABLE, &done);
        goto finish;
    }

    sc = ngx_http_shop_pool_pick(pool);

    if (sc) {
        (void) ngx_http_shop_conn_send(sc, job, &done);
        goto finish;
    }

    if (pool->nwaiting >= pool->conf->queue) {
        ngx_http_shop_pool_full(pool, job->log, "its queue is full");

        ngx_http_shop_answer(job, SHOP_DB_UNAVAILABLE, &done);
        goto finish;
    }

    ngx_http_shop_pool_wait(pool, job, 0);

    /* a connection that is not kept up connects for it */

    ngx_http_shop_pool_wake(pool, &done);

finish:

    ngx_http_shop_pool_finish(&done, job);
}


void
ngx_http_shop_job_cancel(ngx_http_shop_job_t *job)
{
    if (job->timer.timer_set) {
        ngx_del_timer(&job->timer);
    }

    if (job->waiting) {
        ngx_queue_remove(&job->queue);
        job->pool->nwaiting--;
        job->waiting = 0;
    }

    if (job->op) {
        /* in flight: its results are read and dropped when they come */
        job->op->job = NULL;
        job->op = NULL;
    }
}


void
ngx_http_shop_job_expire(ngx_http_shop_job_t *job, ngx_queue_t *done)
{
    ngx_uint_t             i;
    ngx_http_shop_op_t    *op;
    ngx_http_shop_conn_t  *sc;

    if (job->answered) {
        return;
    }

    if (job->waiting) {
        ngx_queue_remove(&job->queue);
        job->pool->nwaiting--;
        job->waiting = 0;
    }

    op = job->op;

    for (i = 0; i < job->nqueries; i++) {
        if (job->res[i]) {
            PQclear(job->res[i]);
            job->res[i] = NULL;
        }
    }

    ngx_http_shop_answer(job, SHOP_DB_TIMEOUT, done);

    if (op == NULL) {
        return;
    }

    /*
     * in flight: its late result must reach no one. One job per connection:
     * the connection goes (the server notices when it next writes, or at
     * its statement_timeout) and another takes its place. Pipelined: the
     * job leaves the ring, its results are dropped when they come.
     */

    op->job = NULL;
    sc = op->conn;

    if (sc->pool->conf->depth == 1) {
        ngx_http_shop_conn_replace(sc, done);
    }
}


/* no connection came free in time */

static void
ngx_http_shop_job_timeout(ngx_event_t *ev)
{
    ngx_queue_t            done;
    ngx_http_shop_job_t   *job;
    ngx_http_shop_pool_t  *pool;

    job = ev->data;
    pool = job->pool;

    if (!job->waiting) {
        return;
    }

    ngx_queue_remove(&job->queue);
    pool->nwaiting--;
    job->waiting = 0;

    ngx_http_shop_pool_full(pool, ev->log, "no connection came free in "
                            "shop_pool_queue's time");

    ngx_queue_init(&done);
    ngx_http_shop_answer(job, SHOP_DB_UNAVAILABLE, &done);
    ngx_http_shop_pool_finish(&done, NULL);
}


/*
 * the database cannot keep up (a warning: capacity), said at most once a
 * second per pool with the number of such 503s meanwhile; a request's log
 * has its request id
 */

static void
ngx_http_shop_pool_full(ngx_http_shop_pool_t *pool, ngx_log_t *log,
    const char *why)
{
    if (pool->said && ngx_current_msec - pool->said < 1000) {
        pool->unsaid++;
        return;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "shop: 503: %V is busy (%ui connection(s), %ui request(s) "
                  "waiting): %s; %ui such 503s not logged since the last "
                  "such line",
                  &pool->conf->name, pool->nconns, pool->nwaiting, why,
                  pool->unsaid);

    pool->said = ngx_current_msec ? ngx_current_msec : 1;
    pool->unsaid = 0;
}


/* a job's statements go out on sc */

static ngx_int_t
ngx_http_shop_conn_send(ngx_http_shop_conn_t *sc, ngx_http_shop_job_t *job,
    ngx_queue_t *done)
{
    ngx_uint_t             i;
    shop_query            *q;
    ngx_http_shop_op_t    *op;
    ngx_http_shop_pool_t  *pool;
    const shop_statement  *st;

    pool = sc->pool;

    for (i = 0; i < job->nqueries; i++) {
        if (!(pool->prepared & ((uint64_t) 1 << job->queries[i].stmt))) {
            ngx_log_error(NGX_LOG_ALERT, job->log, 0,
                          "shop: statement %s is not prepared on %V",
                          shop_catalogue[job->queries[i].stmt].name,
                          &pool->conf->name);

            ngx_http_shop_answer(job, SHOP_DB_ERROR, done);
            return NGX_ERROR;
        }
    }

    for (i = 0; i < job->nqueries; i++) {
        q = &job->queries[i];
        st = &shop_catalogue[q->stmt];

        if (!PQsendQueryPrepared(sc->pg, st->name, q->nparams, q->values,
                                 NULL, NULL, 0)
            || !PQpipelineSync(sc->pg))
        {
            ngx_http_shop_conn_close(sc, NGX_LOG_WARN, "lost",
                                     PQerrorMessage(sc->pg), done);

            /* none of it went out: it waits for the next connection */

            if (pool->down || pool->stopping) {
                ngx_http_shop_answer(job, ngx_http_shop_pool_down_status(pool),
                                     done);
                return NGX_ERROR;
            }

            ngx_http_shop_pool_wait(pool, job, 1);
            ngx_http_shop_pool_wake(pool, done);
            return NGX_AGAIN;
        }
    }

    op = &sc->ops[(sc->head + sc->nflight) % pool->conf->depth];
    sc->nflight++;

    op->job = job;
    op->conn = sc;
    op->nqueries = job->nqueries;
    op->query = 0;
    op->sent = ngx_current_msec;

    job->op = op;
    job->sent_us = ngx_http_shop_now_us();
    job->wait_us = job->sent_us - job->queued_us;

    if (sc->nflight == 1) {
        ngx_add_timer(&sc->deadline,
                      pool->conf->statement_timeout + SHOP_STATEMENT_GRACE_MS);
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
    ngx_uint_t             i, load, best_load, depth;
    ngx_http_shop_conn_t  *sc, *best;

    best = NULL;
    best_load = NGX_MAX_UINT32_VALUE;
    depth = pool->conf->depth;

    for (i = 0; i < pool->nconns; i++) {
        sc = &pool->conns[i];

        if (sc->state != NGX_HTTP_SHOP_READY || sc->nflight >= depth) {
            continue;
        }

        load = sc->nflight;

        if (load
            && ngx_current_msec - sc->ops[sc->head].sent
               > NGX_HTTP_SHOP_STALLED)
        {
            load += depth;
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


/* a connection other than except connects, or waits to reconnect */

static ngx_uint_t
ngx_http_shop_pool_probing(ngx_http_shop_pool_t *pool,
    const ngx_http_shop_conn_t *except)
{
    ngx_uint_t             i;
    ngx_http_shop_conn_t  *sc;

    for (i = 0; i < pool->nconns; i++) {
        sc = &pool->conns[i];

        if (sc != except
            && (sc->timer.timer_set
                || sc->state == NGX_HTTP_SHOP_CONNECTING
                || sc->state == NGX_HTTP_SHOP_PREPARING))
        {
            return 1;
        }
    }

    return 0;
}


/*
 * connections that should be up and wait for nothing connect: those kept
 * up, and one per waiting job among the others; while the pool is down,
 * one at most (the probe)
 */

static void
ngx_http_shop_pool_wake(ngx_http_shop_pool_t *pool, ngx_queue_t *done)
{
    ngx_uint_t             i, want, connecting;
    ngx_http_shop_conn_t  *sc;

    if (pool->stopping) {
        return;
    }

    want = pool->nwaiting;
    connecting = 0;

    for (i = 0; i < pool->nconns; i++) {
        sc = &pool->conns[i];

        if (sc->state == NGX_HTTP_SHOP_CONNECTING
            || sc->state == NGX_HTTP_SHOP_PREPARING)
        {
            connecting++;
        }
    }

    for (i = 0; i < pool->nconns; i++) {
        sc = &pool->conns[i];

        if (sc->state != NGX_HTTP_SHOP_DOWN || sc->timer.timer_set) {
            continue;
        }

        if (i >= pool->warm) {
            if (connecting >= want) {
                break;
            }
        }

        if (pool->down && ngx_http_shop_pool_probing(pool, NULL)) {
            break;
        }

        ngx_http_shop_conn_connect(sc, done);

        if (sc->state != NGX_HTTP_SHOP_DOWN) {
            connecting++;
        }
    }
}


static void
ngx_http_shop_pool_dispatch(ngx_http_shop_pool_t *pool, ngx_queue_t *done)
{
    ngx_queue_t           *q;
    ngx_http_shop_job_t   *job;
    ngx_http_shop_conn_t  *sc;

    while (!ngx_queue_empty(&pool->waiting)) {

        sc = ngx_http_shop_pool_pick(pool);
        if (sc == NULL) {
            return;
        }

        q = ngx_queue_head(&pool->waiting);
        ngx_queue_remove(q);
        pool->nwaiting--;

        job = ngx_queue_data(q, ngx_http_shop_job_t, queue);
        job->waiting = 0;

        if (job->timer.timer_set) {
            ngx_del_timer(&job->timer);
        }

        (void) ngx_http_shop_conn_send(sc, job, done);
    }
}


static void
ngx_http_shop_pool_flush_waiting(ngx_http_shop_pool_t *pool,
    shop_db_status status, ngx_queue_t *done)
{
    ngx_queue_t          *q;
    ngx_http_shop_job_t  *job;

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        ngx_queue_remove(q);
        pool->nwaiting--;

        job = ngx_queue_data(q, ngx_http_shop_job_t, queue);
        job->waiting = 0;

        ngx_http_shop_answer(job, status, done);
    }
}


/* a job waits for a connection: last in the queue, or first (it was sent
 * to one that turned out dead) */

static void
ngx_http_shop_pool_wait(ngx_http_shop_pool_t *pool, ngx_http_shop_job_t *job,
    ngx_uint_t first)
{
    if (first) {
        ngx_queue_insert_head(&pool->waiting, &job->queue);

    } else {
        ngx_queue_insert_tail(&pool->waiting, &job->queue);
    }

    pool->nwaiting++;
    job->waiting = 1;

    /* a job with a deadline needs no timer of its own */

    if (!job->deadline && !job->timer.timer_set) {
        job->timer.handler = ngx_http_shop_job_timeout;
        job->timer.data = job;
        job->timer.log = job->log;

        ngx_add_timer(&job->timer, pool->conf->queue_timeout);
    }
}


/*
 * a pool that is down: the shop's answers 503; a stock-check pool says
 * whether its database refused (error) or did not answer (timeout)
 */

static shop_db_status
ngx_http_shop_pool_down_status(ngx_http_shop_pool_t *pool)
{
    if (pool->conf->warehouse && !pool->drift && !pool->stopping) {
        return pool->down_status;
    }

    return SHOP_DB_UNAVAILABLE;
}


/*
 * job answers with what it has: its results, or status for the statements
 * without one
 */

static void
ngx_http_shop_answer(ngx_http_shop_job_t *job, shop_db_status status,
    ngx_queue_t *done)
{
    if (job->timer.timer_set) {
        ngx_del_timer(&job->timer);
    }

    if (job->fail == SHOP_DB_OK) {
        job->fail = status;
    }

    /* never sent: it waited all the while */

    if (job->op == NULL && job->queued_us) {
        job->wait_us = ngx_http_shop_now_us() - job->queued_us;
    }

    job->op = NULL;
    job->answered = 1;

    ngx_queue_insert_tail(done, &job->queue);
}


/*
 * runs the handlers of the jobs whose answers are in, once the pools' state
 * is consistent again: a handler may start another job right away
 */

void
ngx_http_shop_pool_finish(ngx_queue_t *done,
    const ngx_http_shop_job_t *current)
{
    ngx_queue_t          *q;
    ngx_http_shop_job_t  *job;

    while (!ngx_queue_empty(done)) {
        q = ngx_queue_head(done);
        ngx_queue_remove(q);

        job = ngx_queue_data(q, ngx_http_shop_job_t, queue);

        job->handler(job, job == current);
    }
}


/* connections */

static void
ngx_http_shop_conn_connect(ngx_http_shop_conn_t *sc, ngx_queue_t *done)
{
    ngx_http_shop_pool_conf_t  *pcf;
    const char                 *keys[6], *values[6];

    pcf = sc->pool->conf;

    if (sc->timer.timer_set) {
        ngx_del_timer(&sc->timer);
    }

    /*
     * listed before "dbname", so the DSN may still choose otherwise:
     * without SSL and GSS negotiation libpq never switches sockets
     * while connecting
     */

    keys[0] = "sslmode";           values[0] = "disable";
    keys[1] = "gssencmode";        values[1] = "disable";
    keys[2] = "application_name";  values[2] = pcf->warehouse
                                               ? "shop-nginx stock"
                                               : "shop-nginx";
    keys[3] = "dbname";            values[3] = (char *) pcf->database.data;
    keys[4] = "options";           values[4] = (char *) pcf->options.data;
    keys[5] = NULL;                values[5] = NULL;

    sc->pg = PQconnectStartParams(keys, values, 1);

    if (sc->pg == NULL) {
        ngx_http_shop_conn_close(sc, NGX_LOG_ALERT, "failed",
                                 "PQconnectStartParams() out of memory", done);
        return;
    }

    if (PQstatus(sc->pg) == CONNECTION_BAD) {
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 PQerrorMessage(sc->pg), done);
        return;
    }

    sc->state = NGX_HTTP_SHOP_CONNECTING;

    sc->c = ngx_http_shop_pg_wrap(sc->pg, sc, ngx_http_shop_conn_handler,
                                  sc->pool->log);
    if (sc->c == NULL) {
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 "no nginx connection for its socket", done);
        return;
    }

    /* just after PQconnectStart, libpq waits as if it were writing */

    if (ngx_http_shop_pg_want_write(sc->c, 1) != NGX_OK) {
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 "cannot add its write event", done);
        return;
    }

    ngx_add_timer(&sc->timer, pcf->warehouse ? NGX_HTTP_SHOP_WH_CONNECT
                                             : NGX_HTTP_SHOP_CONNECT_TIMEOUT);
}


/*
 * libpq's socket as an nginx connection: data and handler on both events, a
 * level-triggered read event (edge-triggered stalls on large results)
 */

ngx_connection_t *
ngx_http_shop_pg_wrap(PGconn *pg, void *data, ngx_event_handler_pt handler,
    ngx_log_t *log)
{
    ngx_socket_t       s;
    ngx_connection_t  *c;

    s = PQsocket(pg);
    if (s == (ngx_socket_t) -1) {
        return NULL;
    }

    c = ngx_get_connection(s, log);
    if (c == NULL) {
        return NULL;
    }

    c->data = data;
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->handler = handler;
    c->write->handler = handler;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_http_shop_pg_unwrap(&c, 0);
        return NULL;
    }

    return c;
}


/*
 * the wrapper goes, the socket stays: PQfinish() alone closes it;
 * "closed": libpq has closed it already, epoll forgot it by itself
 */

void
ngx_http_shop_pg_unwrap(ngx_connection_t **cp, ngx_uint_t closed)
{
    ngx_uint_t         flags;
    ngx_connection_t  *c;

    c = *cp;

    if (c == NULL) {
        return;
    }

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
    c->idle = 0;

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
    *cp = NULL;
}


/* a level-triggered write event spins: only while libpq has output */

ngx_int_t
ngx_http_shop_pg_want_write(ngx_connection_t *c, ngx_uint_t want)
{
    ngx_event_t  *wev;

    wev = c->write;

    if (want && !wev->active) {
        return ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    if (!want && wev->active) {
        return ngx_del_event(wev, NGX_WRITE_EVENT, 0);
    }

    return NGX_OK;
}


/*
 * PQconnectPoll() waits to read or to write; a socket libpq moved to (a DSN
 * asking for SSL or GSS with fallback, several hosts; the old one is closed
 * already) is wrapped anew, as the old one was
 */

ngx_int_t
ngx_http_shop_pg_polling(PGconn *pg, ngx_connection_t **cp, ngx_uint_t write)
{
    void                  *data;
    ngx_uint_t             idle;
    ngx_log_t             *log;
    ngx_connection_t      *c;
    ngx_event_handler_pt   handler;

    c = *cp;

    if (PQsocket(pg) == c->fd) {
        return ngx_http_shop_pg_want_write(c, write);
    }

    data = c->data;
    idle = c->idle;
    log = c->log;
    handler = c->read->handler;

    ngx_http_shop_pg_unwrap(cp, 1);

    c = ngx_http_shop_pg_wrap(pg, data, handler, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->idle = idle;
    *cp = c;

    return ngx_http_shop_pg_want_write(c, 1);
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
    ngx_http_shop_pool_t  *pool;

    sc = ev->data;
    pool = sc->pool;

    ngx_queue_init(&done);

    switch (sc->state) {

    case NGX_HTTP_SHOP_DOWN:

        /* not kept up and nobody waits: it stays down, unless it probes */

        if ((ngx_uint_t) (sc - pool->conns) >= pool->warm
            && pool->nwaiting == 0 && !pool->down)
        {
            return;
        }

        ngx_http_shop_conn_connect(sc, &done);
        break;

    case NGX_HTTP_SHOP_CONNECTING:
    case NGX_HTTP_SHOP_PREPARING:
        sc->timed_out = 1;
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 "timed out connecting", &done);
        break;

    case NGX_HTTP_SHOP_READY:
        return;
    }

    ngx_http_shop_pool_finish(&done, NULL);
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
    ngx_http_shop_job_t   *job;
    ngx_http_shop_conn_t  *sc;

    sc = ev->data;

    if (sc->state != NGX_HTTP_SHOP_READY || sc->nflight == 0) {
        return;
    }

    job = sc->ops[sc->head].job;

    if (job) {
        job->fail = SHOP_DB_TIMEOUT;
    }

    sc->timed_out = 1;

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
        if (ngx_http_shop_pg_polling(sc->pg, &sc->c, 0) != NGX_OK) {
            goto failed;
        }
        return;

    case PGRES_POLLING_WRITING:
        if (ngx_http_shop_pg_polling(sc->pg, &sc->c, 1) != NGX_OK) {
            goto failed;
        }
        return;

    case PGRES_POLLING_OK:
        ngx_http_shop_conn_prepare(sc);
        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_http_shop_conn_close(sc, NGX_LOG_ERR, "failed",
                                 PQerrorMessage(sc->pg), &done);
        ngx_http_shop_pool_finish(&done, NULL);
        return;
    }

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

    for (i = 0; i < sc->pool->nstmts; i++) {
        st = &shop_catalogue[sc->pool->stmts[i]];

        if (!PQsendPrepare(sc->pg, st->name, st->sql, st->nparams, NULL)) {
            goto failed;
        }
    }

    for (i = 0; i < sc->pool->nstmts; i++) {
        st = &shop_catalogue[sc->pool->stmts[i]];

        if (!PQsendDescribePrepared(sc->pg, st->name)) {
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

    return ngx_http_shop_pg_want_write(sc->c, rc == 1);
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
    ngx_http_shop_job_t  *job;

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
            job = op->job;

            if (job && op->query < op->nqueries
                && job->res[op->query] == NULL)
            {
                job->res[op->query] = res;

            } else {
                PQclear(res);
            }

            continue;
        }

        PQclear(res);

        if (++op->query < op->nqueries) {
            continue;
        }

        /* the job's last statement is done */

        sc->head = (sc->head + 1) % sc->pool->conf->depth;
        sc->nflight--;

        /* the database starts on the next one now */

        if (sc->nflight) {
            ngx_add_timer(&sc->deadline, sc->pool->conf->statement_timeout
                                         + SHOP_STATEMENT_GRACE_MS);

        } else if (sc->deadline.timer_set) {
            ngx_del_timer(&sc->deadline);
        }

        job = op->job;
        op->job = NULL;

        if (job == NULL) {
            continue;
        }

        job->db_us = ngx_http_shop_now_us() - job->sent_us;

        ngx_http_shop_answer(job, SHOP_DB_OK, done);
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
    n = pool->nstmts;

    if (status == PGRES_PIPELINE_SYNC) {
        PQclear(res);

        if (!sc->drift) {
            ngx_http_shop_conn_ready(sc);
            return;
        }

        if (!pool->drift) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "shop: %V does not match the statement catalogue; "
                          "%s until it does", &pool->conf->name,
                          pool->conf->warehouse
                          ? "its warehouses answer \"error\""
                          : "requests get 503");
        }

        pool->drift = 1;
        sc->failing = 1;
        sc->backoff = NGX_HTTP_SHOP_BACKOFF_MAX;

        ngx_http_shop_conn_close(sc, NGX_LOG_INFO, "closed",
                                 "the schema does not match", done);
        ngx_http_shop_pool_flush_waiting(pool, SHOP_DB_UNAVAILABLE, done);
        return;
    }

    step = sc->step++;

    /* said once: a drifted database keeps being retried */

    level = pool->drift ? NGX_LOG_INFO : NGX_LOG_ERR;

    if (step < n) {
        st = &shop_catalogue[pool->stmts[step]];

        if (status != PGRES_COMMAND_OK && status != PGRES_PIPELINE_ABORTED) {
            p = ngx_http_shop_pg_result_message(res, msg, sizeof(msg));

            ngx_log_error(level, pool->log,
                          0, "shop: statement %s cannot be prepared: %*s",
                          st->name, p - msg, msg);
            sc->drift = 1;
        }

    } else if (step < 2 * n) {
        st = &shop_catalogue[pool->stmts[step - n]];

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
    sc->timed_out = 0;
    sc->backoff = NGX_HTTP_SHOP_BACKOFF_MIN;
    sc->head = 0;
    sc->nflight = 0;

    pool->nready++;

    if (pool->down) {
        /* the probe got through: the others follow */
        pool->down = 0;
        ngx_http_shop_pool_wake(pool, NULL);
    }

    if (pool->registry) {
        ngx_http_shop_registry_ready(pool->registry);
    }

    /* the caller, ngx_http_shop_conn_io(), hands it the waiting jobs */
}


/*
 * the connection goes: its jobs in flight answer 503 through "done" (none
 * when done is NULL: it was not ready), and nginx and libpq let go of it
 */

static void
ngx_http_shop_conn_drop(ngx_http_shop_conn_t *sc, ngx_queue_t *done)
{
    ngx_uint_t             i, n;
    ngx_http_shop_op_t    *op;
    ngx_http_shop_job_t   *job;
    ngx_http_shop_pool_t  *pool;

    pool = sc->pool;

    /* in flight: what its sync did not confirm never happened */

    for (n = 0; n < sc->nflight; n++) {
        op = &sc->ops[(sc->head + n) % pool->conf->depth];

        job = op->job;
        op->job = NULL;

        if (job == NULL) {
            continue;
        }

        for (i = op->query; i < op->nqueries; i++) {
            if (job->res[i]) {
                PQclear(job->res[i]);
                job->res[i] = NULL;
            }
        }

        if (done) {
            ngx_http_shop_answer(job, SHOP_DB_UNAVAILABLE, done);
        }
    }

    sc->head = 0;
    sc->nflight = 0;

    if (sc->deadline.timer_set) {
        ngx_del_timer(&sc->deadline);
    }

    /* on a lost connection libpq has closed the socket already */

    if (sc->c) {
        ngx_http_shop_pg_unwrap(&sc->c, sc->pg == NULL
                                        || PQsocket(sc->pg) != sc->c->fd);
    }

    if (sc->pg) {
        PQfinish(sc->pg);
        sc->pg = NULL;
    }

    if (sc->state == NGX_HTTP_SHOP_READY) {
        pool->nready--;
    }

    sc->state = NGX_HTTP_SHOP_DOWN;
}


/*
 * closes sc after a failure and sets the reconnect timer. While the pool is
 * up, a connection kept up (or wanted by a waiting job) reconnects after
 * the backoff. While it is down exactly one connection probes: this one,
 * unless another is connecting or waits to reconnect (whichever it is: an
 * on-demand connection, or a probe that timed out while connecting, must
 * not leave the pool without one). level: how loud, unless the connection
 * is failing anyway
 */

static void
ngx_http_shop_conn_close(ngx_http_shop_conn_t *sc, ngx_uint_t level,
    const char *what, const char *why, ngx_queue_t *done)
{
    u_char                *p;
    ngx_uint_t             nflight, retry, was_ready;
    ngx_http_shop_pool_t  *pool;
    u_char                 msg[256];

    pool = sc->pool;
    nflight = sc->nflight;
    /* up and answering until the server closed it (not: no answer in time) */
    was_ready = (sc->state == NGX_HTTP_SHOP_READY && !sc->timed_out);

    p = ngx_http_shop_pg_message(why, msg, sizeof(msg));

    /* said once: while the database stays away, quieter */

    if ((sc->failing || (pool->down && nflight == 0))
        && level > NGX_LOG_ALERT)
    {
        level = NGX_LOG_INFO;
    }

    ngx_http_shop_conn_drop(sc, done);

    if (sc->timer.timer_set) {
        ngx_del_timer(&sc->timer);
    }

    if (was_ready && !pool->stopping) {

        /*
         * it was up: the server closed it (a failover, a pooler's restart,
         * pg_terminate_backend) or the network lost it. Not yet a failure
         * of the database: a new one connects at once, and requests wait
         * for it in the queue rather than fail; if it cannot connect, the
         * pool goes down as usual. What was in flight may have run: 503.
         */

        if (nflight == 0) {
            level = NGX_LOG_INFO;
        }

        ngx_log_error(level, pool->log, 0,
                      "shop: connection %ui to %V %s: %*s; %ui request(s) in "
                      "flight, reconnecting", sc->number, &pool->conf->name,
                      what, p - msg, msg, nflight);

        sc->failing = 0;
        sc->timed_out = 0;
        sc->backoff = NGX_HTTP_SHOP_BACKOFF_MIN;

        if ((ngx_uint_t) (sc - pool->conns) < pool->warm || pool->nwaiting) {
            ngx_http_shop_conn_connect(sc, done);
        }

        return;
    }

    sc->failing = 1;

    if (!pool->stopping && pool->nready == 0) {
        pool->down = 1;
        pool->down_status = sc->timed_out ? SHOP_DB_TIMEOUT
                                          : SHOP_DB_UNAVAILABLE;

        if (done) {
            ngx_http_shop_pool_flush_waiting(pool,
                                        ngx_http_shop_pool_down_status(pool),
                                        done);
        }
    }

    sc->timed_out = 0;

    if (pool->stopping) {
        retry = 0;

    } else if (pool->down) {
        retry = !ngx_http_shop_pool_probing(pool, sc);

    } else {
        retry = (ngx_uint_t) (sc - pool->conns) < pool->warm
                || pool->nwaiting > 0;
    }

    if (retry) {
        ngx_log_error(level, pool->log, 0,
                      "shop: connection %ui to %V %s: %*s; %ui request(s) in "
                      "flight, next attempt in %M ms",
                      sc->number, &pool->conf->name, what, p - msg, msg,
                      nflight, sc->backoff);

        ngx_add_timer(&sc->timer, sc->backoff);

        sc->backoff = ngx_min(sc->backoff * 2, NGX_HTTP_SHOP_BACKOFF_MAX);
        return;
    }

    ngx_log_error(level, pool->log, 0,
                  "shop: connection %ui to %V %s: %*s; %ui request(s) in "
                  "flight, %s", sc->number, &pool->conf->name, what, p - msg,
                  msg, nflight, pool->stopping ? "shutting down"
                                : pool->down ? "another connection probes"
                                : "not needed until requests wait");
}


/*
 * a stock-check connection whose statement passed its deadline: closed,
 * and a new one takes its place at once; nothing failed
 */

static void
ngx_http_shop_conn_replace(ngx_http_shop_conn_t *sc, ngx_queue_t *done)
{
    ngx_http_shop_pool_t  *pool;

    pool = sc->pool;

    ngx_log_error(NGX_LOG_INFO, pool->log, 0,
                  "shop: connection %ui to %V replaced: a statement passed "
                  "its deadline", sc->number, &pool->conf->name);

    ngx_http_shop_conn_drop(sc, done);

    if (pool->stopping) {
        return;
    }

    if ((ngx_uint_t) (sc - pool->conns) < pool->warm || pool->nwaiting) {
        ngx_http_shop_conn_connect(sc, done);
    }
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


/* GET /metrics: this pool's connections by state, added to the figures */

void
ngx_http_shop_pool_gauges(ngx_http_shop_pool_t *pool, int64_t *idle,
    int64_t *busy, int64_t *connecting, int64_t *broken, int64_t *waiting)
{
    ngx_uint_t             i;
    ngx_http_shop_conn_t  *sc;

    for (i = 0; i < pool->nconns; i++) {
        sc = &pool->conns[i];

        switch (sc->state) {

        case NGX_HTTP_SHOP_READY:
            if (sc->nflight) {
                (*busy)++;

            } else {
                (*idle)++;
            }

            break;

        case NGX_HTTP_SHOP_CONNECTING:
        case NGX_HTTP_SHOP_PREPARING:
            (*connecting)++;
            break;

        case NGX_HTTP_SHOP_DOWN:

            /*
             * kept up, or to be made again after a failure: broken; a
             * stock-check connection nobody needs now is no connection
             */

            if (!pool->stopping
                && (i < pool->warm || sc->timer.timer_set))
            {
                (*broken)++;
            }

            break;
        }
    }

    *waiting += (int64_t) pool->nwaiting;
}


/*
 * a failed statement for the log: its SQLSTATE and primary message, never
 * DETAIL (key values, failing rows), CONTEXT or HINT, cut at len
 */

u_char *
ngx_http_shop_pg_result_message(const PGresult *res, u_char *buf, size_t len)
{
    u_char      *p, *last;
    const char  *code, *msg;

    p = buf;
    last = buf + len;

    if (res == NULL) {
        return ngx_http_shop_pg_message("no result", buf, len);
    }

    code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (code && len > 7) {
        p = ngx_snprintf(p, last - p, "%s: ", code);
    }

    if (msg == NULL) {
        msg = PQresStatus(PQresultStatus(res));
    }

    p = ngx_http_shop_pg_message(msg, p, last - p);

    /* cut: said so */

    if (p == last && len > 3) {
        p[-3] = '.';
        p[-2] = '.';
        p[-1] = '.';
    }

    return p;
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
