
/*
 * One request: the nginx request becomes a shop_request, the core plans,
 * the pool runs the plan, the core renders, and the response goes out as
 * shop-fcgi's goes out through nginx: the same status line, headers and
 * body.
 */


#include "ngx_http_shop_module.h"

#include <time.h>


static ngx_int_t ngx_http_shop_request(ngx_http_request_t *r,
    ngx_http_shop_ctx_t *ctx);
static void ngx_http_shop_headers_in(ngx_http_request_t *r,
    ngx_http_shop_ctx_t *ctx);
static void *ngx_http_shop_arena_grow(void *owner, size_t size);
static void ngx_http_shop_cleanup(void *data);


/* the request headers the core looks at; repeated ones are joined */

typedef struct {
    ngx_str_t    name;                     /* lower case */
    size_t       offset;                   /* in shop_request */
} ngx_http_shop_header_t;


static ngx_http_shop_header_t  ngx_http_shop_headers[] = {
    { ngx_string("authorization"), offsetof(shop_request, authorization) },
    { ngx_string("if-match"), offsetof(shop_request, if_match) },
    { ngx_string("if-none-match"), offsetof(shop_request, if_none_match) },
    { ngx_string("x-request-id"), offsetof(shop_request, request_id) },
    { ngx_string("idempotency-key"), offsetof(shop_request, idempotency_key) },
    { ngx_string("last-event-id"), offsetof(shop_request, last_event_id) },
    { ngx_string("shop-signature"), offsetof(shop_request, signature) },
    { ngx_string("upgrade"), offsetof(shop_request, upgrade) },
    { ngx_string("connection"), offsetof(shop_request, connection) },
    { ngx_string("sec-websocket-key"), offsetof(shop_request, ws_key) },
    { ngx_string("sec-websocket-version"), offsetof(shop_request, ws_version) },
    { ngx_null_string, 0 }
};


ngx_int_t
ngx_http_shop_handler(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_shop_ctx_t       *ctx;
    ngx_http_shop_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_shop_module);

    if (lcf->pool == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "shop: no database pool for this location");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_shop_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->conf = lcf;
    ctx->start_us = ngx_http_shop_now_us();

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_shop_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_shop_module);

    shop_arena_init(&ctx->arena, ngx_http_shop_arena_grow, r->pool);

    if (ngx_http_shop_request(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_shop_read_body(r, ctx);
}


void
ngx_http_shop_run(ngx_http_request_t *r)
{
    ngx_http_shop_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_shop_module);

    if (ngx_http_shop_body_collect(r, ctx) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_shop_plan(ctx);
}


void
ngx_http_shop_plan(ngx_http_shop_ctx_t *ctx)
{
    ngx_uint_t                 n;
    ngx_http_request_t        *r;
    ngx_http_shop_registry_t  *reg;
    ngx_http_shop_snapshot_t  *snap;

    r = ctx->request;

    if (ctx->begun) {
        /* again, after the warehouse list was read */
        shop_release(&ctx->core);
        ctx->begun = 0;

    } else {
        ctx->planned = ngx_current_msec;
    }

    /* the warehouses the stock check asks: the worker's current list */

    reg = ngx_http_shop_pool_registry(ctx->conf->pool->pool);
    snap = ngx_http_shop_registry_current(reg);

    ctx->warehouses = snap;
    ctx->req.warehouses = snap ? snap->codes : NULL;
    ctx->req.nwarehouses = snap ? (int) snap->n : 0;

    shop_begin(&ctx->core, &ctx->arena, &ctx->conf->settings, &ctx->req);
    ctx->begun = 1;

    /*
     * a stock check in a worker that has not read the warehouse list yet
     * (it has just started: a reload) waits for the first read, within
     * the check's deadline, rather than answer 503 "no warehouse is known"
     */

    if (snap == NULL && reg != NULL && !ctx->replanned
        && ctx->core.nqueries == 0
        && ctx->core.resp.status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_strcmp(shop_route_name(&ctx->core), "/stock/check") == 0)
    {
        if (!r->discard_body) {
            r->read_event_handler = ngx_http_test_reading;
        }

        ngx_http_shop_fanout_wait(ctx, reg,
                     (ngx_msec_t) ctx->conf->settings.stock_deadline_ms);
        return;
    }

    if (ctx->core.nqueries == 0) {
        if (ctx->core.resp.stream.kind != SHOP_STREAM_NONE
            && ngx_http_shop_stream_start(r, ctx) == NGX_OK)
        {
            /* GET /events: the stream has the request now */
            return;
        }

        ngx_http_finalize_request(r, ngx_http_shop_send(r, ctx));
        return;
    }

    n = ctx->core.nqueries;

    ctx->results = ngx_pcalloc(r->pool, n * sizeof(shop_result));
    ctx->res = ngx_pcalloc(r->pool, n * sizeof(PGresult *));

    if (ctx->results == NULL || ctx->res == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* notice a client that goes away while the database works */

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    if (ngx_http_shop_fanout_needed(ctx)) {

        /* another worker created a warehouse: read the list first */

        if (!ctx->replanned && ngx_http_shop_registry_stale(reg)) {
            ngx_http_shop_fanout_wait(ctx, reg, 0);
            return;
        }

        ngx_http_shop_fanout_run(ctx);
        return;
    }

    ngx_http_shop_pool_run(ctx);
}


void
ngx_http_shop_finish(ngx_http_shop_ctx_t *ctx)
{
    u_char                *p;
    ngx_int_t              i;
    ngx_uint_t             level;
    shop_db_status         fail;
    ngx_http_request_t    *r;
    const shop_statement  *st;
    u_char                 msg[160];

    r = ctx->request;

    for (i = 0; i < ctx->core.nqueries; i++) {

        if (ctx->res[i] == NULL) {
            fail = ctx->jobs ? ctx->jobs[i].fail : ctx->job.fail;

            shop_result_fail(&ctx->results[i],
                             fail ? fail : SHOP_DB_UNAVAILABLE);
            continue;
        }

        shop_result_set(&ctx->results[i], ctx->res[i]);

        /*
         * only the log may see what went wrong inside the database, and
         * not all of it: SQLSTATE and the primary message, never DETAIL
         * (key values, failing rows) or the statement's parameters.
         * Clients' mistakes the database refused (constraints, our
         * functions' SH codes) are in the access log as 4xx
         */

        switch (ctx->results[i].status) {

        case SHOP_DB_ERROR:
            level = NGX_LOG_ERR;
            break;

        case SHOP_DB_TIMEOUT:
        case SHOP_DB_RETRY:
            level = NGX_LOG_WARN;
            break;

        default:
            continue;
        }

        st = &shop_catalogue[ctx->core.queries[i].stmt];
        p = ngx_http_shop_pg_result_message(ctx->res[i], msg, sizeof(msg));

        ngx_log_error(level, r->connection->log, 0,
                      "shop: request %*s: statement %s: %*s",
                      ctx->core.request_id.n, ctx->core.request_id.p,
                      st->name, p - msg, msg);
    }

    /* its events are in the table: this worker reads them at once and
     * tells the other processes */

    if (shop_plan_emitted(&ctx->core, ctx->results)) {
        ngx_http_shop_hub_wake(ctx->conf->hub);
    }

    shop_finish(&ctx->core, ctx->results);

    /* a warehouse was created or changed: the stock check knows at once */

    if (ctx->core.queries[0].stmt == SHOP_STMT_WAREHOUSE_PUT
        && ctx->results[0].status == SHOP_DB_OK
        && ctx->core.resp.status < NGX_HTTP_SPECIAL_RESPONSE
        && PQntuples(ctx->res[0]) == 1)
    {
        ngx_http_shop_registry_added(
                            ngx_http_shop_pool_registry(ctx->conf->pool->pool),
                            PQgetvalue(ctx->res[0], 0, SHOP_W_CODE),
                            PQgetlength(ctx->res[0], 0, SHOP_W_CODE));
    }

    ngx_http_finalize_request(r, ngx_http_shop_send(r, ctx));
}


static ngx_int_t
ngx_http_shop_request(ngx_http_request_t *r, ngx_http_shop_ctx_t *ctx)
{
    u_char                     *q;
    shop_str                    path, base;
    shop_request               *req;
    ngx_time_t                 *tp;
    ngx_table_elt_t            *h;
    ngx_http_variable_value_t  *vv;
    ngx_http_shop_main_conf_t  *smcf;

    req = &ctx->req;

    req->method = shop_method_parse((const char *) r->method_name.data,
                                    r->method_name.len);

    /* the raw target, as shop-fcgi gets it in REQUEST_URI */

    q = ngx_strlchr(r->unparsed_uri.data,
                    r->unparsed_uri.data + r->unparsed_uri.len, '?');

    path.p = (const char *) r->unparsed_uri.data;

    if (q) {
        path.n = q - r->unparsed_uri.data;
        req->query.p = (const char *) q + 1;
        req->query.n = r->unparsed_uri.len - path.n - 1;

    } else {
        path.n = r->unparsed_uri.len;
        req->query = SHOP_STR("");
    }

    /* below the mount point; the prefix counts only as a whole segment */

    base.p = (const char *) ctx->conf->base.data;
    base.n = ctx->conf->base.len;

    req->base = base.n ? base : SHOP_STR("");

    if (base.n && path.n >= base.n
        && ngx_strncmp(path.p, base.p, base.n) == 0)
    {
        if (path.n == base.n) {
            path = SHOP_STR("/");

        } else if (path.p[base.n] == '/') {
            path.p += base.n;
            path.n -= base.n;
        }
    }

    req->path = path;

    /*
     * what GET /metrics shows: the zone, every worker's; this worker's
     * gauges are written first when it is that request
     */

    req->metrics = ngx_http_shop_metrics_view(
                        path.n == sizeof("/metrics") - 1
                        && ngx_strncmp(path.p, "/metrics", path.n) == 0);

    h = r->headers_in.content_type;

    if (h) {
        req->content_type.p = (const char *) h->value.data;
        req->content_type.n = h->value.len;

    } else {
        req->content_type = SHOP_NULL_STR;
    }

    ngx_http_shop_headers_in(r, ctx);

    /* a fresh id is nginx's own $request_id */

    smcf = ngx_http_get_module_main_conf(r, ngx_http_shop_module);

    vv = ngx_http_get_indexed_variable(r, smcf->request_id_index);

    if (vv == NULL || vv->not_found) {
        return NGX_ERROR;
    }

    req->fresh_id.p = (const char *) vv->data;
    req->fresh_id.n = vv->len;

    tp = ngx_timeofday();
    req->now_ms = (int64_t) tp->sec * 1000 + (int64_t) tp->msec;

    /* GET /events may switch to WebSocket: HTTP/1.1 only (no RFC 8441) */

    req->can_upgrade = (r->http_version == NGX_HTTP_VERSION_11
                        && r == r->main);

    return NGX_OK;
}


static void
ngx_http_shop_headers_in(ngx_http_request_t *r, ngx_http_shop_ctx_t *ctx)
{
    char                    *p;
    shop_str                *v;
    ngx_uint_t               i, seen, bit;
    ngx_list_part_t         *part;
    ngx_table_elt_t         *h;
    ngx_http_shop_header_t  *sh;

    /* absent: p NULL; sent empty: p set, n 0 */

    for (sh = ngx_http_shop_headers; sh->name.len; sh++) {
        *(shop_str *) ((char *) &ctx->req + sh->offset) = SHOP_NULL_STR;
    }

    seen = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].lowcase_key == NULL) {
            continue;
        }

        for (sh = ngx_http_shop_headers; sh->name.len; sh++) {
            if (sh->name.len == h[i].key.len
                && ngx_strncmp(sh->name.data, h[i].lowcase_key, sh->name.len)
                   == 0)
            {
                break;
            }
        }

        if (sh->name.len == 0) {
            continue;
        }

        v = (shop_str *) ((char *) &ctx->req + sh->offset);
        bit = (ngx_uint_t) 1 << (sh - ngx_http_shop_headers);

        if (!(seen & bit)) {
            seen |= bit;
            v->p = (const char *) h[i].value.data;
            v->n = h[i].value.len;
            continue;
        }

        p = shop_alloc(&ctx->arena, v->n + 2 + h[i].value.len + 1);
        if (p == NULL) {
            continue;
        }

        ngx_memcpy(p, v->p, v->n);
        ngx_memcpy(p + v->n, ", ", 2);
        ngx_memcpy(p + v->n + 2, h[i].value.data, h[i].value.len);
        p[v->n + 2 + h[i].value.len] = '\0';

        v->p = p;
        v->n = v->n + 2 + h[i].value.len;
    }
}


ngx_int_t
ngx_http_shop_send(ngx_http_request_t *r, ngx_http_shop_ctx_t *ctx)
{
    u_char         *p;
    size_t          len;
    ngx_int_t       rc, i;
    ngx_buf_t      *b;
    ngx_uint_t      bodyless;
    ngx_chain_t     out;
    shop_header    *sh;
    shop_response  *resp;
    const char     *reason;
    ngx_table_elt_t  *h;

    resp = &ctx->core.resp;

    /* the status line shop-fcgi sends: "Status: 201 Created" */

    reason = shop_status_reason(resp->status);
    len = NGX_INT_T_LEN + 1 + ngx_strlen(reason);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = resp->status;
    r->headers_out.status_line.data = p;
    r->headers_out.status_line.len = ngx_sprintf(p, "%i %s", resp->status,
                                                 reason)
                                     - p;

    if (resp->content_type.n) {
        r->headers_out.content_type.data = (u_char *) resp->content_type.p;
        r->headers_out.content_type.len = resp->content_type.n;
        r->headers_out.content_type_len = resp->content_type.n;
        r->headers_out.content_type_lowcase = NULL;
    }

    for (i = 0; i < resp->nheaders && i < SHOP_MAX_HEADERS; i++) {
        sh = &resp->headers[i];

        /* a header value is one line */

        if (sh->name == NULL
            || (resp->status == NGX_HTTP_SWITCHING_PROTOCOLS
                && ngx_strcasecmp((u_char *) sh->name, (u_char *) "Connection")
                   == 0)
            || ngx_strlchr((u_char *) sh->value.p,
                           (u_char *) sh->value.p + sh->value.n, CR)
            || ngx_strlchr((u_char *) sh->value.p,
                           (u_char *) sh->value.p + sh->value.n, LF))
        {
            continue;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        h->key.data = (u_char *) sh->name;
        h->key.len = ngx_strlen(sh->name);
        h->value.data = (u_char *) sh->value.p;
        h->value.len = sh->value.n;
        h->lowcase_key = NULL;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif

        /*
         * a relative Location stays relative, as from an upstream: nginx
         * rewrites only r->headers_out.location, which stays unset
         */

        if (h->key.len == sizeof("ETag") - 1
            && ngx_strncmp(h->key.data, "ETag", h->key.len) == 0)
        {
            r->headers_out.etag = h;
        }
    }

    /* the core answered If-Match and If-None-Match already */

    r->disable_not_modified = 1;

    bodyless = (resp->status == NGX_HTTP_NO_CONTENT
                || resp->status == NGX_HTTP_NOT_MODIFIED
                || resp->status < NGX_HTTP_OK);

    if (bodyless) {
        r->headers_out.content_length_n = -1;
        r->header_only = 1;

    } else if (resp->stream.kind != SHOP_STREAM_NONE) {
        /* an event stream: its events follow (ngx_http_shop_stream.c) */
        r->headers_out.content_length_n = -1;

    } else {
        r->headers_out.content_length_n = (off_t) resp->body.n;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only
        || resp->stream.kind != SHOP_STREAM_NONE)
    {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (resp->body.n) {
        b->pos = (u_char *) resp->body.p;
        b->last = (u_char *) resp->body.p + resp->body.n;
        b->memory = 1;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void *
ngx_http_shop_arena_grow(void *owner, size_t size)
{
    return ngx_palloc(owner, size);
}


/* the request's pool goes: whatever the request was doing, it stops */

static void
ngx_http_shop_cleanup(void *data)
{
    ngx_http_shop_ctx_t *ctx = data;

    ngx_int_t  i;

    ngx_http_shop_pool_cancel(ctx);

    if (ctx->res) {
        for (i = 0; i < ctx->core.nqueries; i++) {
            if (ctx->res[i]) {
                PQclear(ctx->res[i]);
            }
        }
    }

    if (ctx->begun) {
        shop_release(&ctx->core);
    }
}


int64_t
ngx_http_shop_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
