
/*
 * The warehouse registry: the codes the stock check asks, per worker and
 * per shop database, read with the warehouse_list statement on the shop's
 * pool (a job like any request's, never blocking) when the pool is first
 * ready, then every 5 s (every second while the list is empty or cannot be
 * read; all workers at the same moments), and right after a
 * PUT /warehouses/{code} succeeds here.
 *
 * A list is an immutable snapshot in a memory pool of its own, counted: the
 * registry holds the current one, and a stock check holds the one it
 * planned with until it ends, so a refresh never changes a list a request
 * uses; the last to let go frees it.
 *
 * Workers tell each other about new warehouses through a counter in shared
 * memory: a successful PUT /warehouses/{code} increments it, and a stock
 * check in a worker whose list was read before the counter moved waits for
 * a refresh (one statement) and plans again. Warehouses added or removed
 * straight in the database are seen at the next 5 s refresh.
 */


#include "ngx_http_shop_module.h"


#define NGX_HTTP_SHOP_REGISTRY_EVERY  5000
#define NGX_HTTP_SHOP_REGISTRY_EMPTY  1000


struct ngx_http_shop_registry_s {
    ngx_http_shop_pool_t      *pool;         /* the shop's database */
    ngx_str_t                 *name;         /* its, for logs */
    ngx_log_t                 *log;
    ngx_http_shop_snapshot_t  *current;      /* NULL until read once */

    ngx_http_shop_job_t        job;          /* warehouse_list */
    shop_query                 query;
    PGresult                  *res;
    ngx_uint_t                 generation;   /* when the job was sent */

    ngx_event_t                timer;        /* the next refresh */
    ngx_event_t                wake;         /* posted: the waiting plan */
    ngx_queue_t                waiting;      /* ngx_http_shop_ctx_t.stale */

    unsigned                   loading:1;
    unsigned                   again:1;
    unsigned                   failing:1;
    unsigned                   stopped:1;
};


static void ngx_http_shop_registry_timer(ngx_event_t *ev);
static void ngx_http_shop_registry_refresh(ngx_http_shop_registry_t *reg);
static void ngx_http_shop_registry_loaded(ngx_http_shop_job_t *job,
    ngx_uint_t sync);
static ngx_uint_t ngx_http_shop_registry_same(ngx_http_shop_snapshot_t *snap,
    PGresult *res);
static ngx_http_shop_snapshot_t *ngx_http_shop_registry_build(
    ngx_http_shop_registry_t *reg, PGresult *res);
static void ngx_http_shop_registry_install(ngx_http_shop_registry_t *reg,
    ngx_http_shop_snapshot_t *snap);
static void ngx_http_shop_registry_size(ngx_http_shop_registry_t *reg);
static void ngx_http_shop_registry_schedule(ngx_http_shop_registry_t *reg,
    ngx_msec_t delay);
static void ngx_http_shop_registry_wake(ngx_event_t *ev);
static ngx_int_t ngx_http_shop_registry_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_shop_registry_generation(void);


/* the workers' counter of warehouse PUTs (in the zone "shop_registry") */

static ngx_atomic_t  *ngx_http_shop_registry_puts;


static ngx_str_t  ngx_http_shop_registry_zone = ngx_string("shop_registry");


/* configuration: the shared counter */

ngx_int_t
ngx_http_shop_registry_init_conf(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_shop_registry_zone,
                                     8 * ngx_pagesize, &ngx_http_shop_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_shop_registry_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_shop_registry_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_atomic_t     *puts;
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: the counter goes on */
        shm_zone->data = data;
        ngx_http_shop_registry_puts = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        ngx_http_shop_registry_puts = shpool->data;
        return NGX_OK;
    }

    puts = ngx_slab_alloc(shpool, sizeof(ngx_atomic_t));
    if (puts == NULL) {
        return NGX_ERROR;
    }

    *puts = 0;

    shpool->data = (void *) puts;
    shm_zone->data = (void *) puts;
    ngx_http_shop_registry_puts = puts;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_shop_registry_generation(void)
{
    return ngx_http_shop_registry_puts
           ? (ngx_uint_t) *ngx_http_shop_registry_puts : 0;
}


/* worker start and exit */

ngx_http_shop_registry_t *
ngx_http_shop_registry_create(ngx_http_shop_pool_t *pool, ngx_str_t *name)
{
    ngx_http_shop_registry_t  *reg;

    reg = ngx_pcalloc(ngx_cycle->pool, sizeof(ngx_http_shop_registry_t));
    if (reg == NULL) {
        return NULL;
    }

    reg->pool = pool;
    reg->name = name;
    reg->log = ngx_cycle->log;

    reg->query.stmt = SHOP_STMT_WAREHOUSE_LIST;
    reg->query.target = SHOP_TARGET_PRIMARY;

    reg->job.queries = &reg->query;
    reg->job.res = &reg->res;
    reg->job.nqueries = 1;
    reg->job.handler = ngx_http_shop_registry_loaded;
    reg->job.data = reg;
    reg->job.log = reg->log;

    reg->timer.handler = ngx_http_shop_registry_timer;
    reg->timer.data = reg;
    reg->timer.log = reg->log;
    reg->timer.cancelable = 1;

    reg->wake.handler = ngx_http_shop_registry_wake;
    reg->wake.data = reg;
    reg->wake.log = reg->log;

    ngx_queue_init(&reg->waiting);

    /* the pool's first ready connection asks sooner */

    ngx_add_timer(&reg->timer, NGX_HTTP_SHOP_REGISTRY_EMPTY);

    return reg;
}


void
ngx_http_shop_registry_stop(ngx_http_shop_registry_t *reg)
{
    ngx_queue_t          *q;
    ngx_http_shop_ctx_t  *ctx;

    if (reg->stopped) {
        return;
    }

    reg->stopped = 1;

    if (reg->timer.timer_set) {
        ngx_del_timer(&reg->timer);
    }

    if (reg->wake.posted) {
        ngx_delete_posted_event(&reg->wake);
    }

    ngx_http_shop_job_cancel(&reg->job);

    if (reg->res) {
        PQclear(reg->res);
        reg->res = NULL;
    }

    while (!ngx_queue_empty(&reg->waiting)) {
        q = ngx_queue_head(&reg->waiting);
        ngx_queue_remove(q);
        ctx = ngx_queue_data(q, ngx_http_shop_ctx_t, stale);
        ctx->stale.next = NULL;
    }

    if (reg->current) {
        ngx_http_shop_snapshot_release(reg->current);
        reg->current = NULL;
    }
}


/* the shop's pool has a connection ready: the list, if it was never read */

void
ngx_http_shop_registry_ready(ngx_http_shop_registry_t *reg)
{
    if (reg->current == NULL && !reg->loading && !reg->stopped) {
        ngx_http_shop_registry_schedule(reg, 1);
    }
}


ngx_http_shop_snapshot_t *
ngx_http_shop_registry_current(ngx_http_shop_registry_t *reg)
{
    return reg ? reg->current : NULL;
}


void
ngx_http_shop_snapshot_hold(ngx_http_shop_snapshot_t *snap)
{
    snap->refs++;
}


void
ngx_http_shop_snapshot_release(ngx_http_shop_snapshot_t *snap)
{
    if (--snap->refs == 0) {
        ngx_destroy_pool(snap->pool);
    }
}


/*
 * a PUT /warehouses/{code} succeeded in this worker: it moves the shared
 * counter, so every worker's next stock check reads the list first (the
 * list itself may have changed in the database meanwhile); this worker
 * reads it now
 */

void
ngx_http_shop_registry_added(ngx_http_shop_registry_t *reg, const char *code,
    size_t len)
{
    if (reg == NULL || reg->stopped) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, reg->log, 0,
                   "shop: warehouse \"%*s\" put: the list is read again",
                   len, code);

    if (ngx_http_shop_registry_puts) {
        (void) ngx_atomic_fetch_add(ngx_http_shop_registry_puts, 1);
    }

    ngx_http_shop_registry_refresh(reg);
}


ngx_uint_t
ngx_http_shop_registry_stale(ngx_http_shop_registry_t *reg)
{
    return reg && reg->current
           && reg->current->generation != ngx_http_shop_registry_generation();
}


/* ctx plans again once the list has been read */

void
ngx_http_shop_registry_wait(ngx_http_shop_registry_t *reg,
    ngx_http_shop_ctx_t *ctx)
{
    ngx_queue_insert_tail(&reg->waiting, &ctx->stale);

    ngx_http_shop_registry_refresh(reg);
}


static void
ngx_http_shop_registry_timer(ngx_event_t *ev)
{
    ngx_http_shop_registry_refresh(ev->data);
}


static void
ngx_http_shop_registry_refresh(ngx_http_shop_registry_t *reg)
{
    if (reg->stopped) {
        return;
    }

    if (reg->loading) {
        reg->again = 1;
        return;
    }

    if (reg->timer.timer_set) {
        ngx_del_timer(&reg->timer);
    }

    reg->loading = 1;
    reg->generation = ngx_http_shop_registry_generation();

    ngx_http_shop_pool_submit(reg->pool, &reg->job);
}


static void
ngx_http_shop_registry_loaded(ngx_http_shop_job_t *job, ngx_uint_t sync)
{
    u_char                    *p;
    PGresult                  *res;
    ngx_uint_t                 level;
    ngx_http_shop_registry_t  *reg;
    ngx_http_shop_snapshot_t  *snap;
    u_char                     msg[256];

    reg = job->data;
    res = reg->res;
    reg->res = NULL;
    reg->loading = 0;

    if (reg->stopped) {
        if (res) {
            PQclear(res);
        }

        return;
    }

    if (res && PQresultStatus(res) == PGRES_TUPLES_OK
        && PQnfields(res) > SHOP_W_CODE)
    {
        if (reg->failing) {
            ngx_log_error(NGX_LOG_NOTICE, reg->log, 0,
                          "shop: the warehouse list of %V is read again",
                          reg->name);
            reg->failing = 0;
        }

        if (reg->current && ngx_http_shop_registry_same(reg->current, res)) {
            reg->current->generation = reg->generation;

        } else {
            snap = ngx_http_shop_registry_build(reg, res);

            if (snap) {
                ngx_http_shop_registry_install(reg, snap);
            }
        }

    } else {
        p = res ? ngx_http_shop_pg_result_message(res, msg, sizeof(msg))
                : ngx_http_shop_pg_message("no connection", msg, sizeof(msg));

        level = reg->failing ? NGX_LOG_INFO : NGX_LOG_WARN;

        ngx_log_error(level, reg->log, 0,
                      "shop: the warehouse list of %V cannot be read: %*s; "
                      "the stock check keeps the last one",
                      reg->name, p - msg, msg);

        reg->failing = 1;

        /* no request waits for a refresh that cannot come */

        if (reg->current) {
            reg->current->generation = reg->generation;
        }
    }

    if (res) {
        PQclear(res);
    }

    if (reg->again || ngx_http_shop_registry_stale(reg)) {

        /* a warehouse was created since the statement went out */

        if (!reg->failing) {
            reg->again = 0;
            ngx_http_shop_registry_refresh(reg);
            return;
        }
    }

    reg->again = 0;

    if (!ngx_queue_empty(&reg->waiting) && !reg->wake.posted) {
        ngx_post_event(&reg->wake, &ngx_posted_events);
    }

    ngx_http_shop_registry_schedule(reg,
                                    reg->current && reg->current->n
                                    && !reg->failing
                                    ? NGX_HTTP_SHOP_REGISTRY_EVERY
                                    : NGX_HTTP_SHOP_REGISTRY_EMPTY);
}


/*
 * the periodic refresh falls on multiples of its period of the monotonic
 * clock, which all workers share: they read the list at the same moments,
 * so a change made in the database reaches them together
 */

static void
ngx_http_shop_registry_schedule(ngx_http_shop_registry_t *reg,
    ngx_msec_t delay)
{
    if (delay > 1) {
        delay -= ngx_current_msec % delay;
    }

    if (reg->timer.timer_set) {
        ngx_del_timer(&reg->timer);
    }

    ngx_add_timer(&reg->timer, delay);
}


/* the requests that waited for the list plan again, outside any pool code */

static void
ngx_http_shop_registry_wake(ngx_event_t *ev)
{
    ngx_queue_t               *q;
    ngx_connection_t          *c;
    ngx_http_shop_ctx_t       *ctx;
    ngx_http_shop_registry_t  *reg;

    reg = ev->data;

    while (!ngx_queue_empty(&reg->waiting)) {
        q = ngx_queue_head(&reg->waiting);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_shop_ctx_t, stale);
        ctx->stale.next = NULL;
        ctx->replanned = 1;

        if (ctx->deadline.timer_set) {
            ngx_del_timer(&ctx->deadline);
        }

        c = ctx->request->connection;

        ngx_http_shop_plan(ctx);

        ngx_http_run_posted_requests(c);
    }
}


static ngx_uint_t
ngx_http_shop_registry_same(ngx_http_shop_snapshot_t *snap, PGresult *res)
{
    ngx_uint_t  i;

    if (snap->n != (ngx_uint_t) PQntuples(res)) {
        return 0;
    }

    for (i = 0; i < snap->n; i++) {
        if (ngx_strcmp(snap->codes[i], PQgetvalue(res, i, SHOP_W_CODE)) != 0) {
            return 0;
        }
    }

    return 1;
}


static ngx_http_shop_snapshot_t *
ngx_http_shop_registry_build(ngx_http_shop_registry_t *reg, PGresult *res)
{
    u_char                    *p;
    size_t                     size, len;
    ngx_uint_t                 i, n;
    ngx_pool_t                *pool;
    ngx_http_shop_snapshot_t  *snap;

    n = PQntuples(res);

    size = sizeof(ngx_pool_t) + sizeof(ngx_http_shop_snapshot_t)
           + (n + 1) * sizeof(char *) + 2 * NGX_ALIGNMENT;

    for (i = 0; i < n; i++) {
        size += PQgetlength(res, (int) i, SHOP_W_CODE) + 1;
    }

    pool = ngx_create_pool(ngx_max(size, NGX_MIN_POOL_SIZE), reg->log);
    if (pool == NULL) {
        return NULL;
    }

    snap = ngx_pcalloc(pool, sizeof(ngx_http_shop_snapshot_t));
    if (snap == NULL) {
        goto failed;
    }

    snap->pool = pool;
    snap->refs = 1;
    snap->n = n;
    snap->generation = reg->generation;

    snap->codes = ngx_pcalloc(pool, (n + 1) * sizeof(char *));
    if (snap->codes == NULL) {
        goto failed;
    }

    for (i = 0; i < n; i++) {
        len = PQgetlength(res, (int) i, SHOP_W_CODE);

        p = ngx_pnalloc(pool, len + 1);
        if (p == NULL) {
            goto failed;
        }

        ngx_memcpy(p, PQgetvalue(res, i, SHOP_W_CODE), len);
        p[len] = '\0';

        snap->codes[i] = (const char *) p;
    }

    return snap;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


static void
ngx_http_shop_registry_install(ngx_http_shop_registry_t *reg,
    ngx_http_shop_snapshot_t *snap)
{
    ngx_http_shop_snapshot_t  *old;

    old = reg->current;
    reg->current = snap;

    ngx_log_error(NGX_LOG_INFO, reg->log, 0,
                  "shop: warehouses: %ui known to the stock check", snap->n);

    if (old) {
        ngx_http_shop_snapshot_release(old);
    }

    ngx_http_shop_registry_size(reg);
}


/*
 * each stock-check pool of the locations on this database: how many of the
 * warehouses it serves (the most in one location) sizes it
 */

static void
ngx_http_shop_registry_size(ngx_http_shop_registry_t *reg)
{
    ngx_uint_t                   i, j, k, npools, *need, *count, *reached;
    ngx_http_shop_loc_conf_t   **lp, *lcf;
    ngx_http_shop_pool_conf_t  **pp, *pcf;
    ngx_http_shop_main_conf_t   *smcf;
    ngx_http_shop_snapshot_t    *snap;

    snap = reg->current;

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_shop_module);
    if (smcf == NULL) {
        return;
    }

    pp = smcf->pools.elts;
    npools = smcf->pools.nelts;
    lp = smcf->locations.elts;

    /* scratch space from the snapshot's pool: a few words per pool */

    need = ngx_pcalloc(snap->pool, 3 * npools * sizeof(ngx_uint_t));
    if (need == NULL) {
        return;
    }

    count = need + npools;
    reached = count + npools;

    for (i = 0; i < smcf->locations.nelts; i++) {
        lcf = lp[i];

        if (lcf->pool == NULL || lcf->pool->pool == NULL
            || ngx_http_shop_pool_registry(lcf->pool->pool) != reg)
        {
            continue;
        }

        ngx_memzero(count, npools * sizeof(ngx_uint_t));

        for (j = 0; j <= snap->n; j++) {

            /* j == n: the pool of warehouses without a line of their own */

            pcf = j < snap->n ? ngx_http_shop_fanout_pool(lcf, snap->codes[j])
                              : lcf->warehouse_pool;

            for (k = 0; k < npools; k++) {
                if (pp[k] == pcf) {
                    count[k] += (j < snap->n);
                    reached[k] = 1;
                    break;
                }
            }
        }

        /* a line for a warehouse the list does not have: nothing to keep */

        for (j = 0; lcf->warehouses && j < lcf->warehouses->nelts; j++) {
            for (k = 0; k < npools; k++) {
                if (pp[k] == lcf->warehouse_pools[j]) {
                    reached[k] = 1;
                    break;
                }
            }
        }

        for (k = 0; k < npools; k++) {
            need[k] = ngx_max(need[k], count[k]);
        }
    }

    for (k = 0; k < npools; k++) {
        if (reached[k] && pp[k]->warehouse) {
            ngx_http_shop_pool_warehouses(pp[k]->pool, need[k]);
        }
    }
}
