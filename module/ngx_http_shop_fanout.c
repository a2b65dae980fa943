
/*
 * A plan on several pools at once: the stock check asks every warehouse
 * concurrently, each statement a job on its target's pool (warehouse i:
 * the pool of its shop_warehouse_database line, or of shop_database;
 * SHOP_TARGET_PRIMARY: the shop's pool). All jobs are submitted at once
 * and the request answers when the last is in, or at its deadline,
 * whichever comes first: one nginx timer per request, for the earliest
 * deadline still pending. When it fires, every job past its deadline_ms
 * answers SHOP_DB_TIMEOUT: one waiting for a connection leaves the queue,
 * one in flight loses its connection (stock-check pools run one statement
 * per connection, so closing it harms no one; a new one connects at once),
 * and the request answers with what came back. Statements without a
 * deadline_ms keep the statement timeout.
 *
 * Connecting counts against the deadline: a job waits in its pool's queue
 * while the pool connects. A pool whose database failed answers at once
 * (error; timeout when connecting hung) while one connection retries in
 * the background (ngx_http_shop_pool.c).
 */


#include "ngx_http_shop_module.h"


static ngx_http_shop_pool_t *ngx_http_shop_fanout_target(
    ngx_http_shop_ctx_t *ctx, int target);
static void ngx_http_shop_fanout_done(ngx_http_shop_job_t *job,
    ngx_uint_t sync);
static void ngx_http_shop_fanout_deadline(ngx_event_t *ev);
static void ngx_http_shop_fanout_stale(ngx_event_t *ev);
static ngx_msec_t ngx_http_shop_fanout_delay(ngx_http_shop_ctx_t *ctx,
    ngx_msec_t due);
static void ngx_http_shop_fanout_end(ngx_http_shop_ctx_t *ctx,
    ngx_uint_t sync);


/*
 * shop_warehouse_database code "dsn": the database of one warehouse's
 * stock. A level that has such lines replaces what it inherits, as with
 * proxy_set_header.
 */

char *
ngx_http_shop_warehouse_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_shop_loc_conf_t *lcf = conf;

    u_char                     ch;
    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_shop_warehouse_t *wh;

    value = cf->args->elts;

    /* as PUT /warehouses/{code} takes it: ^[a-z0-9][a-z0-9_-]{0,31}$ */

    if (value[1].len == 0 || value[1].len > 32) {
        goto bad_code;
    }

    for (i = 0; i < value[1].len; i++) {
        ch = value[1].data[i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
            continue;
        }

        if (i > 0 && (ch == '-' || ch == '_')) {
            continue;
        }

        goto bad_code;
    }

    if (value[2].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value in \"%V\" directive: the database "
                           "of warehouse \"%V\" is empty",
                           &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    if (lcf->warehouses == NULL) {
        lcf->warehouses = ngx_array_create(cf->pool, 4,
                                           sizeof(ngx_http_shop_warehouse_t));
        if (lcf->warehouses == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    wh = lcf->warehouses->elts;

    for (i = 0; i < lcf->warehouses->nelts; i++) {
        if (wh[i].code.len == value[1].len
            && ngx_strncmp(wh[i].code.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" for warehouse \"%V\" is duplicate",
                               &cmd->name, &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_shop_pool_check_dsn(cf, (const char *) value[2].data)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    wh = ngx_array_push(lcf->warehouses);
    if (wh == NULL) {
        return NGX_CONF_ERROR;
    }

    /* cf->args values are NUL-terminated and live as long as the cycle */

    wh->code = value[1];
    wh->database = value[2];

    return NGX_CONF_OK;

bad_code:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid warehouse code \"%V\" in \"%V\" directive: "
                       "1-32 of a-z 0-9 - _, starting with a letter or digit",
                       &value[1], &cmd->name);
    return NGX_CONF_ERROR;
}


/* the stock-check pool of warehouse "code" in this location */

ngx_http_shop_pool_conf_t *
ngx_http_shop_fanout_pool(ngx_http_shop_loc_conf_t *lcf, const char *code)
{
    ngx_uint_t                  i;
    ngx_http_shop_warehouse_t  *wh;

    if (lcf->warehouses) {
        wh = lcf->warehouses->elts;

        for (i = 0; i < lcf->warehouses->nelts; i++) {
            if (ngx_strcmp(wh[i].code.data, code) == 0) {
                return lcf->warehouse_pools[i];
            }
        }
    }

    return lcf->warehouse_pool;
}


/*
 * only a plan of statements on one of the shop's pools (the primary's, or
 * the read replica's), without deadlines, is not
 */

ngx_uint_t
ngx_http_shop_fanout_needed(ngx_http_shop_ctx_t *ctx)
{
    ngx_int_t                   i;
    shop_query                 *q;
    ngx_http_shop_pool_conf_t  *pcf, *first;

    first = NULL;

    for (i = 0; i < ctx->core.nqueries; i++) {
        q = &ctx->core.queries[i];

        if ((q->target != SHOP_TARGET_PRIMARY && q->target != SHOP_TARGET_READ)
            || q->deadline_ms > 0)
        {
            return 1;
        }

        pcf = ngx_http_shop_pool_for(ctx->conf, q->target);

        if (first && pcf != first) {
            return 1;
        }

        first = pcf;
    }

    return 0;
}


void
ngx_http_shop_fanout_run(ngx_http_shop_ctx_t *ctx)
{
    ngx_uint_t             i, n, due_set;
    ngx_msec_t             due;
    shop_query            *q;
    ngx_http_request_t    *r;
    ngx_http_shop_job_t   *job;
    ngx_http_shop_pool_t  *pool;

    r = ctx->request;
    n = ctx->core.nqueries;

    ctx->jobs = ngx_pcalloc(r->pool, n * sizeof(ngx_http_shop_job_t));
    if (ctx->jobs == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the codes the plan names stay while the jobs run */

    if (ctx->warehouses) {
        ngx_http_shop_snapshot_hold(ctx->warehouses);
    }

    /* the deadlines count from the first plan: a wait for the list too */

    due = 0;
    due_set = 0;

    for (i = 0; i < n; i++) {
        q = &ctx->core.queries[i];
        job = &ctx->jobs[i];

        job->queries = q;
        job->res = &ctx->res[i];
        job->nqueries = 1;
        job->handler = ngx_http_shop_fanout_done;
        job->data = ctx;
        job->log = r->connection->log;

        if (q->deadline_ms > 0) {
            job->deadline = 1;
            job->due = ctx->planned + (ngx_msec_t) q->deadline_ms;

            if (!due_set || (ngx_msec_int_t) (job->due - due) < 0) {
                due = job->due;
                due_set = 1;
            }
        }
    }

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    if (due_set) {
        ctx->deadline.handler = ngx_http_shop_fanout_deadline;
        ctx->deadline.data = ctx;
        ctx->deadline.log = r->connection->log;

        ngx_add_timer(&ctx->deadline, ngx_http_shop_fanout_delay(ctx, due));
    }

    ctx->sent_us = ngx_http_shop_now_us();

    /* everything goes out at once; one more: none ends the request here */

    ctx->pending = n + 1;

    for (i = 0; i < n; i++) {
        job = &ctx->jobs[i];
        pool = ngx_http_shop_fanout_target(ctx, job->queries->target);

        if (pool == NULL) {
            job->fail = SHOP_DB_ERROR;
            job->answered = 1;
            ctx->pending--;
            continue;
        }

        ngx_http_shop_pool_submit(pool, job);
    }

    if (--ctx->pending == 0) {
        ngx_http_shop_fanout_end(ctx, 1);
    }
}


static ngx_http_shop_pool_t *
ngx_http_shop_fanout_target(ngx_http_shop_ctx_t *ctx, int target)
{
    ngx_int_t                   w;
    ngx_http_shop_pool_conf_t  *pcf;

    if (target == SHOP_TARGET_PRIMARY || target == SHOP_TARGET_READ) {
        return ngx_http_shop_pool_for(ctx->conf, target)->pool;
    }

    w = target - SHOP_TARGET_WAREHOUSE(0);

    if (ctx->warehouses == NULL || w < 0
        || (ngx_uint_t) w >= ctx->warehouses->n)
    {
        ngx_log_error(NGX_LOG_ALERT, ctx->request->connection->log, 0,
                      "shop: the plan names warehouse %i of %ui", w,
                      ctx->warehouses ? ctx->warehouses->n : 0);
        return NULL;
    }

    pcf = ngx_http_shop_fanout_pool(ctx->conf, ctx->warehouses->codes[w]);

    return pcf ? pcf->pool : NULL;
}


static void
ngx_http_shop_fanout_done(ngx_http_shop_job_t *job, ngx_uint_t sync)
{
    ngx_http_shop_ctx_t  *ctx;

    ctx = job->data;

    if (--ctx->pending == 0) {
        ngx_http_shop_fanout_end(ctx, sync);
    }
}


/* the earliest deadline passed: those past theirs answer "timeout" */

static void
ngx_http_shop_fanout_deadline(ngx_event_t *ev)
{
    ngx_uint_t            i, next_set;
    ngx_msec_t            now, next;
    ngx_queue_t           done;
    ngx_http_shop_ctx_t  *ctx;
    ngx_http_shop_job_t  *job;

    ctx = ev->data;
    now = ngx_current_msec;
    next = 0;
    next_set = 0;

    ngx_queue_init(&done);

    ctx->pending++;

    for (i = 0; i < (ngx_uint_t) ctx->core.nqueries; i++) {
        job = &ctx->jobs[i];

        if (job->answered || !job->deadline) {
            continue;
        }

        if ((ngx_msec_int_t) (job->due - now) > 0) {
            if (!next_set || (ngx_msec_int_t) (job->due - next) < 0) {
                next = job->due;
                next_set = 1;
            }

            continue;
        }

        ngx_http_shop_job_expire(job, &done);
    }

    /* other requests' jobs may be in done too (a replacement failed) */

    ngx_http_shop_pool_finish(&done, NULL);

    if (--ctx->pending == 0) {
        ngx_http_shop_fanout_end(ctx, 0);
        return;
    }

    if (next_set) {
        ngx_add_timer(ev, ngx_http_shop_fanout_delay(ctx, next));
    }
}


/* until due; a due time that passed already: at once */

static ngx_msec_t
ngx_http_shop_fanout_delay(ngx_http_shop_ctx_t *ctx, ngx_msec_t due)
{
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (due - ngx_current_msec);

    return left > 0 ? (ngx_msec_t) left : 1;
}


/*
 * another worker answered a PUT /warehouses, or this worker has not read
 * the list yet (it just started: a reload): the list is read first, but
 * not for longer than ms or the plan's deadline; then the plan goes ahead
 * with the list there is (and its jobs are past due at once)
 */

void
ngx_http_shop_fanout_wait(ngx_http_shop_ctx_t *ctx,
    ngx_http_shop_registry_t *reg, ngx_msec_t ms)
{
    ngx_int_t    i;
    shop_query  *q;

    for (i = 0; i < ctx->core.nqueries; i++) {
        q = &ctx->core.queries[i];

        if (q->deadline_ms > 0) {
            ms = ngx_max(ms, (ngx_msec_t) q->deadline_ms);
        }
    }

    if (ms) {
        ctx->deadline.handler = ngx_http_shop_fanout_stale;
        ctx->deadline.data = ctx;
        ctx->deadline.log = ctx->request->connection->log;

        ngx_add_timer(&ctx->deadline,
                      ngx_http_shop_fanout_delay(ctx, ctx->planned + ms));
    }

    ngx_http_shop_registry_wait(reg, ctx);
}


static void
ngx_http_shop_fanout_stale(ngx_event_t *ev)
{
    ngx_connection_t     *c;
    ngx_http_shop_ctx_t  *ctx;

    ctx = ev->data;

    if (ctx->stale.next == NULL) {
        return;
    }

    ngx_queue_remove(&ctx->stale);
    ctx->stale.next = NULL;
    ctx->replanned = 1;

    ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                  "shop: the warehouse list was not read within the stock "
                  "check's deadline");

    c = ctx->request->connection;

    ngx_http_shop_plan(ctx);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_shop_fanout_end(ngx_http_shop_ctx_t *ctx, ngx_uint_t sync)
{
    int64_t            wait;
    ngx_int_t          i;
    ngx_connection_t  *c;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    /*
     * the jobs ran side by side: the time in the database is the span
     * from sending them to the last answer, the wait the longest one
     */

    ctx->db_us += ngx_http_shop_now_us() - ctx->sent_us;

    wait = 0;

    for (i = 0; i < ctx->core.nqueries; i++) {
        wait = ngx_max(wait, ctx->jobs[i].wait_us);
    }

    ctx->wait_us += wait;

    c = ctx->request->connection;

    ngx_http_shop_finish(ctx);

    if (!sync) {
        ngx_http_run_posted_requests(c);
    }
}


/* the request goes away: its jobs are forgotten, its snapshot let go */

void
ngx_http_shop_fanout_cancel(ngx_http_shop_ctx_t *ctx)
{
    ngx_int_t  i;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    if (ctx->stale.next) {
        ngx_queue_remove(&ctx->stale);
        ctx->stale.next = NULL;
    }

    if (ctx->jobs) {
        for (i = 0; i < ctx->core.nqueries; i++) {
            ngx_http_shop_job_cancel(&ctx->jobs[i]);
        }

        if (ctx->warehouses) {
            ngx_http_shop_snapshot_release(ctx->warehouses);
        }

        ctx->jobs = NULL;
    }

    ctx->warehouses = NULL;
}
