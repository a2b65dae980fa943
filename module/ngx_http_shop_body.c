
/*
 * The request body, held to shop_body_limit: a Content-Length over the
 * limit is refused without reading the body; a chunked body is counted by
 * a request body filter as it arrives (with the declared size of the chunk
 * being read), and reading stops at the limit.
 * Either way the core answers 413.
 */


#include "ngx_http_shop_module.h"


static ngx_int_t ngx_http_shop_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_request_body_filter_pt   ngx_http_next_request_body_filter;


ngx_int_t
ngx_http_shop_body_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_shop_body_filter;

    return NGX_OK;
}


ngx_int_t
ngx_http_shop_read_body(ngx_http_request_t *r, ngx_http_shop_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->content_length = r->headers_in.content_length_n;

    if (r->headers_in.content_length_n > ctx->conf->settings.body_limit) {

        /* no "100 Continue": the body is not wanted */

        r->expect_tested = 1;
        ctx->too_large = 1;

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        r->main->count++;

        ngx_http_shop_run(r);

        return NGX_DONE;
    }

    ctx->limit_body = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_shop_run);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* counts what the chunked (or HTTP/2) body brings; past the limit, drops it */

static ngx_int_t
ngx_http_shop_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                *b;
    ngx_chain_t              *cl, *last;
    ngx_http_shop_ctx_t      *ctx;
    ngx_http_request_body_t  *rb;

    ctx = ngx_http_get_module_ctx(r, ngx_http_shop_module);

    if (ctx == NULL || !ctx->limit_body) {
        return ngx_http_next_request_body_filter(r, in);
    }

    rb = r->request_body;

    if (!ctx->too_large) {
        for (cl = in; cl; cl = cl->next) {
            ctx->body_received += ngx_buf_size(cl->buf);
        }

        /*
         * HTTP/1 chunked: the rest of the chunk being read counts as soon
         * as its size line is parsed, so a chunk declared past the limit
         * is refused at once, not after client_body_timeout
         */

        if (ctx->body_received <= ctx->conf->settings.body_limit
            && (rb->chunked == NULL
                || rb->chunked->size
                   <= ctx->conf->settings.body_limit - ctx->body_received))
        {
            return ngx_http_next_request_body_filter(r, in);
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "shop: request body over shop_body_limit %L bytes",
                      ctx->conf->settings.body_limit);

        ctx->too_large = 1;

        /* what the client still sends goes with a lingering close */

        r->keepalive = 0;
        r->lingering_close = 1;
    }

    last = NULL;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        b->pos = b->last;

        if (b->last_buf) {
            last = cl;
        }
    }

#if (NGX_HTTP_V2)
    if (r->stream == NULL)
#endif
    {
        /* HTTP/1: stop reading here, as if the body had ended */

        rb->rest = 0;

        if (rb->buf) {
            rb->buf->pos = rb->buf->last;
        }

        if (last == NULL) {
            b = ngx_calloc_buf(r->pool);
            if (b == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            b->last_buf = 1;

            last = ngx_alloc_chain_link(r->pool);
            if (last == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            last->buf = b;
        }
    }

    if (last == NULL) {
        return NGX_OK;
    }

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cl->buf = last->buf;
    cl->next = NULL;

    return ngx_http_next_request_body_filter(r, cl);
}


ngx_int_t
ngx_http_shop_body_collect(ngx_http_request_t *r, ngx_http_shop_ctx_t *ctx)
{
    u_char                   *p;
    off_t                     len, size, n;
    ssize_t                   got;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    shop_request             *req;
    ngx_http_request_body_t  *rb;

    req = &ctx->req;

    /* as shop-fcgi sees it: CONTENT_LENGTH, after nginx read the body */

    n = r->headers_in.chunked ? r->headers_in.content_length_n
                              : ctx->content_length;

    req->has_body = n > 0
                    || (n == 0 && (req->method
                                   & (SHOP_POST|SHOP_PUT|SHOP_PATCH)));

    req->body = "";
    req->body_len = 0;

    if (ctx->too_large) {
        req->body_too_large = 1;
        return NGX_OK;
    }

    rb = r->request_body;

    if (rb == NULL || rb->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = rb->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > ctx->conf->settings.body_limit) {
        req->body_too_large = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    req->body = (const char *) p;
    req->body_len = (size_t) len;

    for (cl = rb->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        if (!b->in_file) {
            continue;
        }

        /* larger than client_body_buffer_size: in a temporary file */

        size = b->file_last - b->file_pos;

        got = ngx_read_file(b->file, p, (size_t) size, b->file_pos);

        if (got != (ssize_t) size) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "shop: cannot read the request body from \"%V\"",
                          &b->file->name);
            return NGX_ERROR;
        }

        p += size;
    }

    *p = '\0';

    return NGX_OK;
}
