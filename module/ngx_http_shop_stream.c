
/*
 * GET /events: one subscriber, over SSE or WebSocket.
 *
 * The core checks the subscription and answers with the stream's head
 * (200 text/event-stream, or 101 and the handshake). The head goes out
 * through nginx's header filters like any response; once it is written,
 * the request is freed (as for a keepalive connection: its pool, the
 * header buffers) and the subscriber keeps the connection with a small
 * struct in the connection's pool: nginx's HTTP machinery is done with it.
 * SSE over HTTP/1.1 is then written as chunks (one per event, rendered
 * once per worker by the hub), over HTTP/1.0 delimited by the close; a
 * WebSocket gets text frames.
 *
 *   HEAD --> WAIT (the hub has no position yet)
 *     |       |
 *     +-------+--> QUEUED --> REPLAY --> LIVE --> CLOSING --> closed
 *     |                                   ^
 *     +-----------------------------------+  (no resume position, or one
 *                                              at or past the hub's)
 *
 * Resume (Last-Event-ID, ?after=): the subscriber reads the table after
 * its position (events_replay on the shop's pool, up to the hub's cursor,
 * which the hub has settled, a batch at a time, the next one once the last
 * is written) until it reached the hub's cursor. Then it joins the live
 * list: every event up to the cursor was published before, every later
 * one will be, and ids it read from the table already are not sent again.
 * Nothing is held for it while it replays, so a long replay costs one
 * batch. The first batch checks the replay limit and the retention: a
 * resume from further back gets a reset first (core/feed.h).
 *
 * The end: on shutdown (the connection is idle for nginx, so
 * ngx_close_idle_connections() reaches it) the last chunk or a close frame
 * 1001 goes out, then the socket is shut down for writing and closed once
 * the client closed too (or after 2 s). A subscriber that does not keep up
 * is closed at once, with a reset, by the hub.
 */


#include "ngx_http_shop_events.h"
#include "handler.h"


#define NGX_HTTP_SHOP_WRITE_BUFS   NGX_IOVS_PREALLOCATE
#define NGX_HTTP_SHOP_WRITE_MAX    ((size_t) 256 * 1024)
#define NGX_HTTP_SHOP_READ_MAX     ((size_t) 64 * 1024)
#define NGX_HTTP_SHOP_REPLAY_FAILS 30


typedef enum {
    NGX_HTTP_SHOP_OUT_REPLAY = 0,
    NGX_HTTP_SHOP_OUT_FRAME,
    NGX_HTTP_SHOP_OUT_CTL,
    NGX_HTTP_SHOP_OUT_FIN
} ngx_http_shop_out_e;


static void ngx_http_shop_stream_abort(void *data);
static void ngx_http_shop_stream_head(ngx_event_t *wev);
static void ngx_http_shop_stream_detach(ngx_http_request_t *r,
    ngx_http_shop_sub_t *sub);
static void ngx_http_shop_stream_read(ngx_event_t *rev);
static void ngx_http_shop_stream_write_handler(ngx_event_t *wev);
static ngx_int_t ngx_http_shop_stream_finish(ngx_http_shop_sub_t *sub);
static void ngx_http_shop_stream_leave(ngx_http_shop_sub_t *sub,
    ngx_uint_t keep);
static ngx_int_t ngx_http_shop_ws_input(ngx_http_shop_sub_t *sub, u_char *p,
    size_t n);
static u_char *ngx_http_shop_ws_close(ngx_uint_t code);
static void ngx_http_shop_stream_ctl_beat(ngx_http_shop_sub_t *sub);

static void ngx_http_shop_replay_query(ngx_http_shop_replay_t *rp);
static void ngx_http_shop_replay_done(ngx_http_shop_job_t *job,
    ngx_uint_t sync);
static ngx_int_t ngx_http_shop_replay_render(ngx_http_shop_replay_t *rp,
    PGresult *res, shop_replay_batch *batch);
static void ngx_http_shop_replay_on(ngx_http_shop_sub_t *sub);
static void ngx_http_shop_replay_timer(ngx_event_t *ev);
static void ngx_http_shop_replay_free(ngx_http_shop_sub_t *sub,
    ngx_uint_t keep);
static void *ngx_http_shop_replay_grow(void *owner, size_t size);


static u_char  ngx_http_shop_sse_beat[] = SHOP_SSE_HEARTBEAT;
static u_char  ngx_http_shop_ws_ping[] = { 0x89, 0x00 };
static u_char  ngx_http_shop_last_chunk[] = "0" CRLF CRLF;

/* close frames: 1000, 1001, 1002, 1009, 1011 */
static u_char  ngx_http_shop_ws_closes[][4] = {
    { 0x88, 0x02, 0x03, 0xe8 },
    { 0x88, 0x02, 0x03, 0xe9 },
    { 0x88, 0x02, 0x03, 0xea },
    { 0x88, 0x02, 0x03, 0xf1 },
    { 0x88, 0x02, 0x03, 0xf3 },
};


/*
 * the core answered GET /events with a stream: NGX_OK, the stream has the
 * request now; NGX_DECLINED, send ctx's response as usual (a refusal: the
 * core's 503 problem)
 */

ngx_int_t
ngx_http_shop_stream_start(ngx_http_request_t *r, ngx_http_shop_ctx_t *ctx)
{
    ngx_int_t             rc;
    const char           *why;
    shop_response        *resp;
    ngx_connection_t     *c;
    ngx_pool_cleanup_t   *cln;
    ngx_http_shop_hub_t  *hub;
    ngx_http_shop_sub_t  *sub;

    c = r->connection;
    resp = &ctx->core.resp;

    /* HEAD: the head alone, as usual */

    if (r->method == NGX_HTTP_HEAD) {
        return NGX_DECLINED;
    }

    hub = ctx->conf->hub ? ctx->conf->hub->hub : NULL;
    why = NULL;

    if (hub == NULL || hub->stopping || ngx_exiting) {
        why = "the server is shutting down; retry";

    } else if (r != r->main || r->http_version > NGX_HTTP_VERSION_11) {
        /* the stream takes the connection over: HTTP/1 only */
        why = "event streams need HTTP/1.1 on this server";

    } else if (ngx_http_shop_subscribers
               >= (ngx_uint_t) ctx->conf->settings.max_subscribers)
    {
        why = "too many event streams are open; retry later";
    }

    sub = NULL;
    cln = NULL;

    if (why == NULL) {
        sub = ngx_pcalloc(c->pool, sizeof(ngx_http_shop_sub_t));
        cln = ngx_pool_cleanup_add(r->pool, 0);

        if (sub && resp->stream.kind == SHOP_STREAM_WEBSOCKET) {
            sub->ws = ngx_pcalloc(c->pool, sizeof(ngx_http_shop_ws_t));
        }

        if (sub == NULL || cln == NULL
            || (resp->stream.kind == SHOP_STREAM_WEBSOCKET && sub->ws == NULL))
        {
            why = "out of memory; retry";
        }
    }

    if (why) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "shop: event stream refused: %s", why);

        /* only X-Request-Id (headers[0]) stays: the stream's own go */
        resp->nheaders = 1;
        resp->stream.kind = SHOP_STREAM_NONE;
        shop_fail(&ctx->core, SHOP_E_UNAVAILABLE, why);

        return NGX_DECLINED;
    }

    sub->connection = c;
    sub->hub = hub;
    sub->conf = ctx->conf;
    sub->topics = resp->stream.topics;
    sub->last_id = resp->stream.after;
    sub->kind = (resp->stream.kind == SHOP_STREAM_WEBSOCKET)
                ? NGX_HTTP_SHOP_WS : NGX_HTTP_SHOP_SSE_CHUNKED;
    sub->phase = NGX_HTTP_SHOP_SUB_HEAD;
    sub->cln = cln;

    cln->handler = ngx_http_shop_stream_abort;
    cln->data = sub;

    ctx->sub = sub;

    ngx_http_shop_subscribers++;

    if (sub->kind == NGX_HTTP_SHOP_WS) {
        ngx_http_shop_subscribers_ws++;
    }

    /* the stream ends with its connection */
    r->keepalive = 0;

    rc = ngx_http_shop_send(r, ctx);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return NGX_OK;
    }

    /* nginx chose: chunked for HTTP/1.1, delimited by the close otherwise */

    if (sub->kind != NGX_HTTP_SHOP_WS && !r->chunked) {
        sub->kind = NGX_HTTP_SHOP_SSE_RAW;
    }

    rc = ngx_http_send_special(r, NGX_HTTP_FLUSH);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return NGX_OK;
    }

    /*
     * the request stays until its head is written, then goes: the rest
     * happens outside of its handlers (a posted event), as nothing of the
     * request may be used once it is freed
     */

    r->read_event_handler = ngx_http_block_reading;
    r->main->count++;

    c->write->handler = ngx_http_shop_stream_head;
    ngx_post_event(c->write, &ngx_posted_events);

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_OK;
}


/* the request ended before its head was out (an error, a timeout) */

static void
ngx_http_shop_stream_abort(void *data)
{
    ngx_http_shop_sub_t *sub = data;

    if (sub->phase == NGX_HTTP_SHOP_SUB_HEAD) {
        ngx_http_shop_subscribers--;

        if (sub->kind == NGX_HTTP_SHOP_WS) {
            ngx_http_shop_subscribers_ws--;
        }
    }
}


static void
ngx_http_shop_stream_head(ngx_event_t *wev)
{
    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_shop_ctx_t       *ctx;
    ngx_http_core_loc_conf_t  *clcf;

    c = wev->data;
    r = c->data;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (r->out) {
        rc = ngx_http_output_filter(r, NULL);

        if (rc == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }

        if (r->out) {
            clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

            if (!wev->delayed) {
                ngx_add_timer(wev, clcf->send_timeout);
            }

            if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
                ngx_http_finalize_request(r, NGX_ERROR);
            }

            return;
        }
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_shop_module);

    ngx_http_shop_stream_detach(r, ctx->sub);
}


/* the head is out: the request goes, the subscriber keeps its connection */

static void
ngx_http_shop_stream_detach(ngx_http_request_t *r, ngx_http_shop_sub_t *sub)
{
    int                        sndbuf;
    size_t                     early;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl, *ln;
    ngx_connection_t          *c;
    ngx_http_shop_hub_t       *hub;
    ngx_http_connection_t     *hc;
    ngx_http_core_loc_conf_t  *clcf;
    u_char                     buf[NGX_HTTP_SHOP_WS_MAX_PAYLOAD + 14];

    c = r->connection;
    hc = r->http_connection;
    hub = sub->hub;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /* a WebSocket client's first frames may have come with the request */

    early = 0;
    b = r->header_in;

    if (sub->kind == NGX_HTTP_SHOP_WS && b->pos < b->last) {
        early = ngx_min((size_t) (b->last - b->pos), sizeof(buf));
        ngx_memcpy(buf, b->pos, early);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    /*
     * the kernel holds at most about as much as the subscriber's buffer
     * (Linux doubles it): without, autotuning lets a client that does not
     * read take megabytes of socket memory before it is dropped
     */

    sndbuf = (int) sub->conf->settings.stream_buffer;

    if (setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, (const void *) &sndbuf,
                   sizeof(int))
        == -1)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, ngx_socket_errno,
                      "setsockopt(SO_SNDBUF, %d) failed", sndbuf);
    }

    sub->cln->handler = NULL;
    sub->cln = NULL;

    ngx_http_free_request(r, 0);

    /* c->destroyed stays set: ngx_http_run_posted_requests() leaves c alone */

    /* as for a keepalive connection: the request's buffers go */

    b = c->buffer;

    if (b && b->start && ngx_pfree(c->pool, b->start) == NGX_OK) {
        b->start = NULL;
        b->pos = NULL;
        b->last = NULL;
        b->end = NULL;
    }

    for (cl = hc->free; cl; /* void */) {
        ln = cl;
        cl = cl->next;
        ngx_pfree(c->pool, ln->buf->start);
        ngx_free_chain(c->pool, ln);
    }

    hc->free = NULL;

    for (cl = hc->busy; cl; /* void */) {
        ln = cl;
        cl = cl->next;
        ngx_pfree(c->pool, ln->buf->start);
        ngx_free_chain(c->pool, ln);
    }

    hc->busy = NULL;
    hc->nbusy = 0;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        /* a record per write: nothing is held back in a buffer */
        c->ssl->buffer = 0;

        if (!c->buffered) {
            ngx_ssl_free_buffer(c);
        }
    }
#endif

    c->data = sub;
    c->read->handler = ngx_http_shop_stream_read;
    c->write->handler = ngx_http_shop_stream_write_handler;
    c->log->action = "sending events";

    /* "nginx -s quit" and reloads reach it: ngx_close_idle_connections() */
    c->idle = 1;

    sub->start = ngx_current_msec;
    sub->last_out = ngx_current_msec;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "shop stream: kind %ui, topics %ui, after %L",
                   (ngx_uint_t) sub->kind, (ngx_uint_t) sub->topics,
                   sub->last_id);

    /* SSE: a comment at once, so that proxies pass the head on */

    if (sub->kind != NGX_HTTP_SHOP_WS) {
        ngx_http_shop_stream_ctl_beat(sub);
    }

    ngx_http_shop_stream_attach(sub);

    if (early && ngx_http_shop_ws_input(sub, buf, early) == NGX_DONE) {
        return;
    }

    if (ngx_exiting || hub->stopping) {
        (void) ngx_http_shop_stream_end(sub, SHOP_WS_CLOSE_GOING_AWAY,
                                        "shutdown");
        return;
    }

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }

    (void) ngx_http_shop_stream_write(sub);
}


/* the hub knows its position: live at once, or first from the table */

void
ngx_http_shop_stream_attach(ngx_http_shop_sub_t *sub)
{
    ngx_http_shop_hub_t  *hub;

    hub = sub->hub;

    switch (shop_resume_next(sub->last_id, hub->feed.cursor)) {

    case SHOP_RESUME_WAIT:
        ngx_http_shop_sub_phase(sub, NGX_HTTP_SHOP_SUB_WAIT);
        return;

    case SHOP_RESUME_LIVE:
        /*
         * no position: from now on; a position at or past the hub's cursor
         * (another worker was ahead): nothing to read from the table
         */
        ngx_http_shop_hub_join(sub);
        return;

    case SHOP_RESUME_REPLAY:
        break;
    }

    ngx_http_shop_sub_phase(sub, NGX_HTTP_SHOP_SUB_QUEUED);
    ngx_http_shop_hub_replay_next(hub);
}


/* replay */

void
ngx_http_shop_stream_replay(ngx_http_shop_sub_t *sub)
{
    ngx_pool_t              *pool;
    ngx_http_shop_hub_t     *hub;
    ngx_http_shop_replay_t  *rp;

    hub = sub->hub;

    hub->nreplaying++;
    ngx_http_shop_sub_phase(sub, NGX_HTTP_SHOP_SUB_REPLAY);

    pool = ngx_create_pool(2048, sub->connection->log);

    if (pool == NULL) {
        (void) ngx_http_shop_stream_end(sub, SHOP_WS_CLOSE_GOING_AWAY,
                                        "out of memory");
        return;
    }

    rp = ngx_pcalloc(pool, sizeof(ngx_http_shop_replay_t));

    if (rp == NULL) {
        ngx_destroy_pool(pool);
        (void) ngx_http_shop_stream_end(sub, SHOP_WS_CLOSE_GOING_AWAY,
                                        "out of memory");
        return;
    }

    rp->pool = pool;
    rp->sub = sub;
    rp->upto = sub->last_id;
    rp->first = 1;

    rp->timer.handler = ngx_http_shop_replay_timer;
    rp->timer.data = rp;
    rp->timer.log = sub->connection->log;
    rp->timer.cancelable = 1;

    sub->replay = rp;

    ngx_http_shop_replay_query(rp);
}


static void
ngx_http_shop_replay_query(ngx_http_shop_replay_t *rp)
{
    ngx_uint_t            i;
    ngx_http_shop_sub_t  *sub;

    sub = rp->sub;

    /* up to what the hub has settled and published */

    rp->bound = sub->hub->feed.cursor;
    shop_replay_query_init(&rp->rq, &sub->conf->settings, rp->upto, rp->bound,
                           rp->first);

    ngx_memzero(&rp->query, sizeof(shop_query));
    rp->query.stmt = SHOP_STMT_EVENTS_REPLAY;
    rp->query.target = SHOP_TARGET_PRIMARY;
    rp->query.nparams = shop_catalogue[SHOP_STMT_EVENTS_REPLAY].nparams;

    for (i = 0; i < (ngx_uint_t) rp->query.nparams; i++) {
        rp->query.values[i] = rp->rq.values[i];
    }

    ngx_memzero(&rp->job, sizeof(ngx_http_shop_job_t));
    rp->job.queries = &rp->query;
    rp->job.res = rp->res;
    rp->job.nqueries = 1;
    rp->job.handler = ngx_http_shop_replay_done;
    rp->job.data = rp;
    rp->job.log = sub->connection->log;

    rp->res[0] = NULL;
    rp->running = 1;

    ngx_http_shop_pool_submit(sub->conf->pool->pool, &rp->job);
}


static void
ngx_http_shop_replay_done(ngx_http_shop_job_t *job, ngx_uint_t sync)
{
    u_char                  *p;
    PGresult                *res;
    shop_replay_batch        batch;
    ngx_http_shop_sub_t     *sub;
    ngx_http_shop_replay_t  *rp;
    u_char                   msg[256];

    rp = job->data;
    sub = rp->sub;

    rp->running = 0;

    res = rp->res[0];
    rp->res[0] = NULL;

    if (res == NULL || shop_replay_result(res, rp->upto, rp->bound, &batch)
                       != 0)
    {
        /* the database is away, or the pool full: again in a second */

        p = res ? ngx_http_shop_pg_result_message(res, msg, sizeof(msg))
                : ngx_http_shop_pg_message("no database connection", msg,
                                           sizeof(msg));

        ngx_log_error(NGX_LOG_INFO, sub->connection->log, 0,
                      "shop: stream: replay after %L failed: %*s",
                      rp->upto, p - msg, msg);

        if (res) {
            PQclear(res);
        }

        rp->failures++;
        ngx_add_timer(&rp->timer, 1000);
        return;
    }

    rp->failures = 0;

    if (batch.reset) {
        ngx_log_error(NGX_LOG_INFO, sub->connection->log, 0,
                      "shop: stream: resume after %L is too far behind: "
                      "from %L", rp->upto, batch.next_id);
    }

    if (ngx_http_shop_replay_render(rp, res, &batch) != NGX_OK) {
        PQclear(res);
        rp->failures++;
        ngx_add_timer(&rp->timer, 1000);
        return;
    }

    PQclear(res);

    rp->first = 0;
    rp->upto = batch.last;

    if (rp->pos < rp->last) {
        /* the next statement once this batch is written */

        if (!sync) {
            (void) ngx_http_shop_stream_write(sub);
        }

        return;
    }

    ngx_http_shop_replay_on(sub);
}


/* the reset, if any, and rows 1 ... nevents of sub's topics, as sub's
 * kind wants them */

static ngx_int_t
ngx_http_shop_replay_render(ngx_http_shop_replay_t *rp, PGresult *res,
    shop_replay_batch *batch)
{
    size_t                hl;
    ngx_uint_t            i;
    shop_buf              b;
    shop_arena            arena;
    ngx_http_shop_sub_t  *sub;
    u_char                head[NGX_OFF_T_LEN + 2];

    sub = rp->sub;

    if (batch->nevents == 0 && !batch->reset) {
        return NGX_OK;
    }

    rp->out = ngx_create_pool(16384, sub->connection->log);
    if (rp->out == NULL) {
        return NGX_ERROR;
    }

    shop_arena_init(&arena, ngx_http_shop_replay_grow, rp->out);
    shop_buf_init(&b, &arena, 8192);

    /* room for one chunk's size line in front of the whole batch */

    shop_buf_add(&b, "                  ", NGX_OFF_T_LEN + 2);

    if (batch->reset) {
        if (sub->kind == NGX_HTTP_SHOP_WS) {
            shop_reset_ws(&b, batch->next_id);

        } else {
            shop_reset_sse(&b, batch->next_id);
        }
    }

    for (i = 1; i <= (ngx_uint_t) batch->nevents; i++) {
        if (!(shop_topic_bit(PQgetvalue(res, (int) i, SHOP_E_COL_TOPIC))
              & sub->topics))
        {
            continue;
        }

        if (sub->kind == NGX_HTTP_SHOP_WS) {
            shop_event_ws(&b, res, (int) i);

        } else {
            shop_event_sse(&b, res, (int) i);
        }

        sub->events++;
        ngx_http_shop_events_delivered++;
    }

    if (sub->kind == NGX_HTTP_SHOP_SSE_CHUNKED) {
        shop_buf_add(&b, CRLF, 2);
    }

    if (arena.failed) {
        ngx_destroy_pool(rp->out);
        rp->out = NULL;
        return NGX_ERROR;
    }

    rp->pos = (u_char *) b.p + NGX_OFF_T_LEN + 2;
    rp->last = (u_char *) b.p + b.len;

    if (sub->kind == NGX_HTTP_SHOP_SSE_CHUNKED) {
        if (rp->last - rp->pos == 2) {
            /* none of its topics: nothing to send */
            rp->last = rp->pos;

        } else {
            hl = ngx_sprintf(head, "%xO" CRLF,
                             (off_t) (rp->last - rp->pos - 2)) - head;
            rp->pos -= hl;
            ngx_memcpy(rp->pos, head, hl);
        }
    }

    if (rp->pos == rp->last) {
        ngx_destroy_pool(rp->out);
        rp->out = NULL;
        rp->pos = NULL;
        rp->last = NULL;
    }

    return NGX_OK;
}


/* a batch is written: the next one, or live */

static void
ngx_http_shop_replay_on(ngx_http_shop_sub_t *sub)
{
    ngx_http_shop_hub_t     *hub;
    ngx_http_shop_replay_t  *rp;

    hub = sub->hub;
    rp = sub->replay;

    if (rp->out) {
        ngx_destroy_pool(rp->out);
        rp->out = NULL;
    }

    rp->pos = NULL;
    rp->last = NULL;

    if (rp->upto > sub->last_id) {
        sub->last_id = rp->upto;
    }

    if (shop_resume_next(rp->upto, hub->feed.cursor) == SHOP_RESUME_REPLAY) {
        ngx_http_shop_replay_query(rp);
        return;
    }

    /* read up to the hub's cursor: live from here */

    ngx_http_shop_replay_free(sub, 0);
    hub->nreplaying--;

    ngx_http_shop_hub_join(sub);
    ngx_http_shop_hub_replay_next(hub);
}


static void
ngx_http_shop_replay_timer(ngx_event_t *ev)
{
    ngx_http_shop_sub_t     *sub;
    ngx_http_shop_replay_t  *rp;

    rp = ev->data;
    sub = rp->sub;

    if (rp->failures >= NGX_HTTP_SHOP_REPLAY_FAILS) {
        (void) ngx_http_shop_stream_end(sub, SHOP_WS_CLOSE_GOING_AWAY,
                                        "the replay failed");
        return;
    }

    if (rp->failures == 0 && rp->pos == NULL
        && shop_resume_next(rp->upto, sub->hub->feed.cursor)
           != SHOP_RESUME_REPLAY)
    {
        ngx_http_shop_replay_on(sub);
        return;
    }

    ngx_http_shop_replay_query(rp);
}


/* keep: the batch is partly written, its rest still goes (CLOSING) */

static void
ngx_http_shop_replay_free(ngx_http_shop_sub_t *sub, ngx_uint_t keep)
{
    ngx_http_shop_replay_t  *rp;

    rp = sub->replay;

    if (rp == NULL) {
        return;
    }

    if (rp->running) {
        ngx_http_shop_job_cancel(&rp->job);
        rp->running = 0;
    }

    if (rp->res[0]) {
        PQclear(rp->res[0]);
        rp->res[0] = NULL;
    }

    if (rp->timer.timer_set) {
        ngx_del_timer(&rp->timer);
    }

    if (keep && rp->pos < rp->last) {
        return;
    }

    if (rp->out) {
        ngx_destroy_pool(rp->out);
    }

    ngx_destroy_pool(rp->pool);

    sub->replay = NULL;
}


static void *
ngx_http_shop_replay_grow(void *owner, size_t size)
{
    return ngx_palloc(owner, size);
}


/* output */

#define ngx_http_shop_out(what, from, to, frame)                              \
    b = &bufs[n];                                                             \
    ngx_memzero(b, sizeof(ngx_buf_t));                                        \
    b->memory = 1;                                                            \
    b->start = (from);                                                        \
    b->pos = (from);                                                          \
    b->last = (to);                                                           \
    b->end = (to);                                                            \
    chain[n].buf = b;                                                         \
    chain[n].next = NULL;                                                     \
    if (n) {                                                                  \
        chain[n - 1].next = &chain[n];                                        \
    }                                                                         \
    src[n] = (what);                                                          \
    frames[n] = (frame);                                                      \
    total += (to) - (from);                                                   \
    n++


/*
 * [the replayed batch][the rest of a frame][a control frame][the end]
 * [frames...]: a control frame never cuts into an event
 */

ngx_int_t
ngx_http_shop_stream_write(ngx_http_shop_sub_t *sub)
{
    off_t                    sent;
    size_t                   len, total;
    u_char                  *p;
    ngx_uint_t               i, n, complete, replayed;
    ngx_buf_t               *b;
    ngx_chain_t             *cl;
    ngx_connection_t        *c;
    ngx_http_shop_frame_t   *f, *g, *nx;
    ngx_http_shop_replay_t  *rp;
    ngx_buf_t                bufs[NGX_HTTP_SHOP_WRITE_BUFS];
    ngx_chain_t              chain[NGX_HTTP_SHOP_WRITE_BUFS];
    ngx_http_shop_frame_t   *frames[NGX_HTTP_SHOP_WRITE_BUFS];
    u_char                   src[NGX_HTTP_SHOP_WRITE_BUFS];

    c = sub->connection;

    if (sub->lingering) {
        return NGX_OK;
    }

    for ( ;; ) {
        n = 0;
        total = 0;

        rp = sub->replay;

        if (rp && rp->pos < rp->last) {
            ngx_http_shop_out(NGX_HTTP_SHOP_OUT_REPLAY, rp->pos, rp->last,
                              NULL);
        }

        f = sub->next;

        if (f && (sub->offset || sub->keep)) {
            p = ngx_http_shop_frame_bytes(sub, f, &len);
            ngx_http_shop_out(NGX_HTTP_SHOP_OUT_FRAME, p + sub->offset,
                              p + len, f);
            f = sub->keep ? NULL : ngx_http_shop_frame_after(sub, f);
        }

        if (sub->ctl) {
            ngx_http_shop_out(NGX_HTTP_SHOP_OUT_CTL, sub->ctl, sub->ctl_last,
                              NULL);
        }

        if (sub->fin) {
            ngx_http_shop_out(NGX_HTTP_SHOP_OUT_FIN, sub->fin, sub->fin_last,
                              NULL);
        }

        if (sub->phase == NGX_HTTP_SHOP_SUB_LIVE) {
            while (f && n < NGX_HTTP_SHOP_WRITE_BUFS
                   && total < NGX_HTTP_SHOP_WRITE_MAX)
            {
                p = ngx_http_shop_frame_bytes(sub, f, &len);
                ngx_http_shop_out(NGX_HTTP_SHOP_OUT_FRAME, p, p + len, f);
                f = ngx_http_shop_frame_after(sub, f);
            }
        }

        if (n == 0) {
            sub->pending = 0;

            if (sub->phase == NGX_HTTP_SHOP_SUB_CLOSING) {
                return ngx_http_shop_stream_finish(sub);
            }

            return NGX_OK;
        }

        sent = c->sent;

        cl = c->send_chain(c, chain, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            ngx_http_shop_stream_close(sub, 0,
                                       sub->phase == NGX_HTTP_SHOP_SUB_CLOSING
                                       ? sub->why : "client gone");
            return NGX_DONE;
        }

        if (c->sent != sent) {
            sub->last_out = ngx_current_msec;
        }

        complete = 1;
        replayed = 0;

        for (i = 0; i < n; i++) {
            b = &bufs[i];

            switch (src[i]) {

            case NGX_HTTP_SHOP_OUT_REPLAY:
                rp->pos = b->pos;
                replayed = (b->pos == b->last);
                break;

            case NGX_HTTP_SHOP_OUT_FRAME:
                g = frames[i];
                len = b->pos - b->start;
                sub->unsent -= ngx_min(len, sub->unsent);

                if (b->pos < b->last) {
                    p = ngx_http_shop_frame_bytes(sub, g, &len);
                    sub->offset = (uint32_t) (b->pos - p);
                    break;
                }

                nx = (sub->phase == NGX_HTTP_SHOP_SUB_LIVE)
                     ? ngx_http_shop_frame_after(sub, g) : NULL;

                sub->last_id = g->id;
                sub->events++;
                ngx_http_shop_events_delivered++;
                sub->offset = 0;
                sub->keep = 0;
                sub->next = nx;

                ngx_http_shop_frame_release(g);
                break;

            case NGX_HTTP_SHOP_OUT_CTL:
                sub->ctl = (b->pos < b->last) ? b->pos : NULL;
                if (sub->ctl == NULL) {
                    sub->ctl_last = NULL;
                }
                break;

            default: /* NGX_HTTP_SHOP_OUT_FIN */
                sub->fin = (b->pos < b->last) ? b->pos : NULL;
                if (sub->fin == NULL) {
                    sub->fin_last = NULL;
                }
                break;
            }

            if (b->pos < b->last) {
                complete = 0;
                break;
            }
        }

        if (replayed && sub->phase == NGX_HTTP_SHOP_SUB_REPLAY) {
            ngx_http_shop_replay_on(sub);

        } else if (replayed && sub->phase == NGX_HTTP_SHOP_SUB_CLOSING) {
            ngx_http_shop_replay_free(sub, 0);
        }

        if (!complete) {
            sub->pending = 1;

            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_shop_stream_close(sub, 0, "client gone");
                return NGX_DONE;
            }

            return NGX_OK;
        }
    }
}


static void
ngx_http_shop_stream_write_handler(ngx_event_t *wev)
{
    ngx_connection_t     *c;
    ngx_http_shop_sub_t  *sub;

    c = wev->data;
    sub = c->data;

    if (wev->timedout) {
        /* CLOSING: the last bytes did not go in time */
        ngx_http_shop_stream_close(sub, 1, sub->why ? sub->why : "timed out");
        return;
    }

    (void) ngx_http_shop_stream_write(sub);
}


static void
ngx_http_shop_stream_ctl_beat(ngx_http_shop_sub_t *sub)
{
    if (sub->ctl || sub->phase == NGX_HTTP_SHOP_SUB_CLOSING) {
        return;
    }

    switch (sub->kind) {

    case NGX_HTTP_SHOP_SSE_CHUNKED:
        sub->ctl = ngx_http_shop_beat_chunked;
        sub->ctl_last = ngx_http_shop_beat_chunked
                        + ngx_http_shop_beat_chunked_len;
        break;

    case NGX_HTTP_SHOP_SSE_RAW:
        sub->ctl = ngx_http_shop_sse_beat;
        sub->ctl_last = ngx_http_shop_sse_beat
                        + sizeof(ngx_http_shop_sse_beat) - 1;
        break;

    default: /* NGX_HTTP_SHOP_WS */
        sub->ctl = ngx_http_shop_ws_ping;
        sub->ctl_last = ngx_http_shop_ws_ping + sizeof(ngx_http_shop_ws_ping);
        break;
    }
}


void
ngx_http_shop_stream_beat(ngx_http_shop_sub_t *sub)
{
    if (sub->ctl || sub->phase == NGX_HTTP_SHOP_SUB_CLOSING) {
        return;
    }

    ngx_http_shop_stream_ctl_beat(sub);

    /* once a heartbeat, even if the socket does not take it now */
    sub->last_out = ngx_current_msec;

    (void) ngx_http_shop_stream_write(sub);
}


/* input: an SSE client has nothing to say; a WebSocket client frames */

static void
ngx_http_shop_stream_read(ngx_event_t *rev)
{
    size_t                total;
    ssize_t               n;
    ngx_connection_t     *c;
    ngx_http_shop_sub_t  *sub;
    u_char                buf[4096];

    c = rev->data;
    sub = c->data;

    if (c->close) {
        /* ngx_close_idle_connections(), or the shutdown timer */
        c->close = 0;

        if (sub->phase == NGX_HTTP_SHOP_SUB_CLOSING) {
            ngx_http_shop_stream_close(sub, 0, "shutdown");
            return;
        }

        (void) ngx_http_shop_stream_end(sub, SHOP_WS_CLOSE_GOING_AWAY,
                                        "shutdown");
        return;
    }

    if (rev->timedout) {
        /* lingering: the client did not close in time */
        ngx_http_shop_stream_close(sub, 0, sub->why ? sub->why : "timed out");
        return;
    }

    for (total = 0; total < NGX_HTTP_SHOP_READ_MAX; total += n) {

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_shop_stream_close(sub, 0, "client gone");
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_shop_stream_close(sub, 0,
                                       sub->phase == NGX_HTTP_SHOP_SUB_CLOSING
                                       ? sub->why : "client gone");
            return;
        }

        if (sub->kind != NGX_HTTP_SHOP_WS || sub->lingering) {
            continue;
        }

        if (ngx_http_shop_ws_input(sub, buf, n) == NGX_DONE) {
            return;
        }
    }

    /* more than enough for now: the rest after the others had their turn */

    ngx_post_event(rev, &ngx_posted_events);
}


/*
 * WebSocket frames from the client: pings are answered, a close is
 * answered and ends the stream, pongs and messages are read and dropped;
 * an unmasked frame, a bad one or one over NGX_HTTP_SHOP_WS_MAX_PAYLOAD
 * ends it with 1002 or 1009
 */

static ngx_int_t
ngx_http_shop_ws_input(ngx_http_shop_sub_t *sub, u_char *p, size_t n)
{
    size_t               take, extra, m;
    unsigned             code;
    ngx_uint_t           close;
    const char          *why;
    shop_ws_frame        f;
    ngx_http_shop_ws_t  *ws;

    ws = sub->ws;

    while (n) {

        if (ws->failed) {
            return NGX_OK;
        }

        if (!ws->in_payload) {
            take = ngx_min(n, sizeof(ws->hdr) - ws->hlen);
            ngx_memcpy(ws->hdr + ws->hlen, p, take);
            ws->hlen += take;
            p += take;
            n -= take;

            switch (shop_ws_parse(ws->hdr, ws->hlen,
                                  NGX_HTTP_SHOP_WS_MAX_PAYLOAD, &f, &code,
                                  &why))
            {
            case 0:
                continue;

            case -1:
                ws->failed = 1;

                ngx_log_error(NGX_LOG_INFO, sub->connection->log, 0,
                              "shop: stream: WebSocket client %s", why);

                if (sub->phase == NGX_HTTP_SHOP_SUB_CLOSING) {
                    return NGX_OK;
                }

                return ngx_http_shop_stream_end(sub, code, why);

            default:
                break;
            }

            /* what came after the header is payload */

            extra = ws->hlen - f.header_len;
            p -= extra;
            n += extra;

            ws->opcode = (uint8_t) f.opcode;
            ngx_memcpy(ws->mask, f.mask, 4);
            ws->left = f.len;
            ws->got = 0;
            ws->hlen = 0;
            ws->in_payload = 1;
        }

        m = (size_t) ngx_min((uint64_t) n, ws->left);

        if (ws->opcode == SHOP_WS_PING || ws->opcode == SHOP_WS_CLOSE) {
            /* control frames are at most 125 bytes: shop_ws_parse() */
            ngx_memcpy(ws->in + ws->got, p, m);
            shop_ws_unmask(ws->in + ws->got, m, ws->mask, ws->got);
        }

        ws->got += m;
        ws->left -= m;
        p += m;
        n -= m;

        if (ws->left) {
            continue;
        }

        ws->in_payload = 0;

        switch (ws->opcode) {

        case SHOP_WS_PING:
            /* a pong with its payload; one that comes while one waits is
             * not answered (the last one counts) */

            if (sub->ctl || sub->phase == NGX_HTTP_SHOP_SUB_CLOSING) {
                break;
            }

            ws->out[0] = 0x8a;
            ws->out[1] = (u_char) ws->got;
            ngx_memcpy(ws->out + 2, ws->in, ws->got);

            sub->ctl = ws->out;
            sub->ctl_last = ws->out + 2 + ws->got;

            if (ngx_http_shop_stream_write(sub) == NGX_DONE) {
                return NGX_DONE;
            }

            break;

        case SHOP_WS_CLOSE:
            sub->ws_closed = 1;

            if (sub->phase == NGX_HTTP_SHOP_SUB_CLOSING) {
                /* the answer to ours: done once ours is out */
                if (sub->fin == NULL && !sub->pending && !sub->lingering) {
                    return ngx_http_shop_stream_finish(sub);
                }

                break;
            }

            close = SHOP_WS_CLOSE_NORMAL;

            if (ws->got >= 2) {
                close = ((ngx_uint_t) ws->in[0] << 8) | ws->in[1];

                /* the codes a client may send: 1000-1003, 1007-1011, 3000+ */

                if (!((close >= 1000 && close <= 1003)
                      || (close >= 1007 && close <= 1011)
                      || (close >= 3000 && close <= 4999)))
                {
                    close = SHOP_WS_CLOSE_PROTOCOL;
                }

            } else if (ws->got == 1) {
                close = SHOP_WS_CLOSE_PROTOCOL;
            }

            return ngx_http_shop_stream_end(sub,
                                       close == SHOP_WS_CLOSE_PROTOCOL
                                       ? SHOP_WS_CLOSE_PROTOCOL
                                       : SHOP_WS_CLOSE_NORMAL,
                                       "the client closed");

        default:
            /* pongs, and messages: a subscriber has nothing to say */
            break;
        }
    }

    return NGX_OK;
}


static u_char *
ngx_http_shop_ws_close(ngx_uint_t code)
{
    switch (code) {

    case SHOP_WS_CLOSE_NORMAL:
        return ngx_http_shop_ws_closes[0];

    case SHOP_WS_CLOSE_GOING_AWAY:
        return ngx_http_shop_ws_closes[1];

    case SHOP_WS_CLOSE_PROTOCOL:
        return ngx_http_shop_ws_closes[2];

    case SHOP_WS_CLOSE_TOO_BIG:
        return ngx_http_shop_ws_closes[3];

    default:
        return ngx_http_shop_ws_closes[4];
    }
}


/* the end */

ngx_int_t
ngx_http_shop_stream_end(ngx_http_shop_sub_t *sub, ngx_uint_t code,
    const char *why)
{
    u_char            *close;
    ngx_connection_t  *c;

    c = sub->connection;

    if (sub->phase == NGX_HTTP_SHOP_SUB_CLOSING) {
        return NGX_OK;
    }

    ngx_http_shop_stream_leave(sub, 1);
    ngx_http_shop_sub_phase(sub, NGX_HTTP_SHOP_SUB_CLOSING);

    sub->why = why;
    c->idle = 0;

    switch (sub->kind) {

    case NGX_HTTP_SHOP_SSE_CHUNKED:
        sub->fin = ngx_http_shop_last_chunk;
        sub->fin_last = ngx_http_shop_last_chunk
                        + sizeof(ngx_http_shop_last_chunk) - 1;
        break;

    case NGX_HTTP_SHOP_SSE_RAW:
        break;

    default: /* NGX_HTTP_SHOP_WS */
        close = ngx_http_shop_ws_close(code);
        sub->fin = close;
        sub->fin_last = close + 4;
        break;
    }

    /* not cancelable: a graceful shutdown waits for the last bytes */

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_add_timer(c->write, NGX_HTTP_SHOP_LINGER);

    return ngx_http_shop_stream_write(sub);
}


/*
 * everything is written: shut the socket down for writing and close once
 * the client closes too (its unread bytes would otherwise reset the
 * connection and could take our last bytes with them)
 */

static ngx_int_t
ngx_http_shop_stream_finish(ngx_http_shop_sub_t *sub)
{
    ngx_connection_t  *c;

    c = sub->connection;

    if (sub->lingering) {
        return NGX_OK;
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        /* ngx_http_close_connection() says goodbye the TLS way */
        ngx_http_shop_stream_close(sub, 0, sub->why);
        return NGX_DONE;
    }
#endif

    if (ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
        ngx_http_shop_stream_close(sub, 0, sub->why);
        return NGX_DONE;
    }

    sub->lingering = 1;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    ngx_add_timer(c->read, NGX_HTTP_SHOP_LINGER);

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_shop_stream_close(sub, 0, sub->why);
        return NGX_DONE;
    }

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }

    return NGX_OK;
}


/* what the phase holds goes; keep: the rest of what is half written */

static void
ngx_http_shop_stream_leave(ngx_http_shop_sub_t *sub, ngx_uint_t keep)
{
    ngx_http_shop_frame_t  *f, *n;

    switch (sub->phase) {

    case NGX_HTTP_SHOP_SUB_REPLAY:
        ngx_http_shop_replay_free(sub, keep);
        sub->hub->nreplaying--;
        ngx_http_shop_hub_replay_next(sub->hub);
        break;

    case NGX_HTTP_SHOP_SUB_LIVE:
        f = sub->next;

        if (keep && f && sub->offset) {
            /* the frame under way is finished, no other starts */
            sub->keep = 1;
            f = ngx_http_shop_frame_after(sub, f);

        } else {
            sub->next = NULL;
            sub->offset = 0;
        }

        while (f) {
            n = ngx_http_shop_frame_after(sub, f);
            ngx_http_shop_frame_release(f);
            f = n;
        }

        sub->unsent = 0;
        break;

    case NGX_HTTP_SHOP_SUB_CLOSING:
        if (sub->keep && sub->next) {
            ngx_http_shop_frame_release(sub->next);
        }

        sub->next = NULL;
        sub->keep = 0;

        ngx_http_shop_replay_free(sub, 0);
        break;

    default:
        break;
    }
}


void
ngx_http_shop_stream_close(ngx_http_shop_sub_t *sub, ngx_uint_t reset,
    const char *why)
{
    ngx_connection_t  *c;
    struct linger      linger;

    c = sub->connection;

    ngx_http_shop_stream_leave(sub, 0);

    if (sub->phase != NGX_HTTP_SHOP_SUB_HEAD) {
        ngx_http_shop_sub_phase(sub, NGX_HTTP_SHOP_SUB_HEAD);
    }

    ngx_http_shop_subscribers--;

    if (sub->kind == NGX_HTTP_SHOP_WS) {
        ngx_http_shop_subscribers_ws--;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "shop: stream ended after %M ms, %uD events: %s",
                  ngx_current_msec - sub->start, sub->events,
                  why ? why : "closed");

    if (reset) {
        /* what the kernel still holds for it goes too */
        linger.l_onoff = 1;
        linger.l_linger = 0;

        (void) setsockopt(c->fd, SOL_SOCKET, SO_LINGER,
                          (const void *) &linger, sizeof(struct linger));
    }

    ngx_http_close_connection(c);
}
