
/*
 * The event hub of one worker (one per database its shop locations use).
 *
 * One connection of its own, in nginx's event loop like the pool's (a
 * level-triggered read event, a write event only while libpq has output),
 * does "LISTEN shop_events" and reads the events: on a wake-up (another
 * process's notification, or a change committed by this worker), and
 * again after a few milliseconds while the feed's mark is not settled, it
 * runs events_read from the worker's cursor, once for the whole worker
 * (core/feed.h decides what to ask and when), renders each settled event
 * once as an SSE chunk and a WebSocket frame, and hands it to the live
 * subscribers of its topic. Wake-ups that come while a read runs are one
 * more read after it: a burst is read in batches, not row by row. A read
 * after a local change also wakes the other processes' hubs.
 *
 *   DOWN --timer--> CONNECTING --OK--> LISTEN --> READY (reads)
 *     ^                                              |
 *     +---- lost, failed (100 ms, doubling up to 2 s) +
 *
 * After a lost connection the hub listens again and reads on from its
 * cursor: nothing is lost, subscribers stay connected meanwhile.
 *
 * A timer every second sends heartbeats (an SSE comment, a WebSocket ping)
 * to subscribers that got nothing for 15 s and drops those the core's
 * verdict drops (shop_subscriber_verdict: over their buffer with output
 * waiting a second, far over it, or taking nothing for a minute). Worker 0
 * prunes old events every minute on the shop's pool.
 *
 * Graceful shutdown: the LISTEN connection and every subscriber are idle
 * connections (c->idle), so ngx_close_idle_connections() on "nginx -s
 * quit" or a reload reaches each: the hub stops, streams end cleanly.
 */


#include "ngx_http_shop_events.h"

#if (__GLIBC__)
#include <malloc.h>
#endif


#define NGX_HTTP_SHOP_HUB_CONNECT      5000
#define NGX_HTTP_SHOP_HUB_BACKOFF_MIN  100
#define NGX_HTTP_SHOP_HUB_BACKOFF_MAX  2000
#define NGX_HTTP_SHOP_HUB_TICK         1000
#define NGX_HTTP_SHOP_HUB_SLOW         50      /* a pass this long: logged */
#define NGX_HTTP_SHOP_PRUNE_FIRST      2000
#define NGX_HTTP_SHOP_PRUNE_EVERY      60000
#define NGX_HTTP_SHOP_PRUNE_PAUSE      20
#define NGX_HTTP_SHOP_PRUNE_BATCH      1000
#define NGX_HTTP_SHOP_PRUNE_BATCH_STR  "1000"


typedef enum {
    NGX_HTTP_SHOP_HUB_DOWN = 0,
    NGX_HTTP_SHOP_HUB_CONNECTING,
    NGX_HTTP_SHOP_HUB_READY
} ngx_http_shop_hub_state_e;


typedef enum {
    NGX_HTTP_SHOP_HUB_NONE = 0,
    NGX_HTTP_SHOP_HUB_LISTEN,
    NGX_HTTP_SHOP_HUB_READ
} ngx_http_shop_hub_query_e;


static void ngx_http_shop_hub_connect(ngx_http_shop_hub_t *hub);
static void ngx_http_shop_hub_handler(ngx_event_t *ev);
static void ngx_http_shop_hub_poll(ngx_http_shop_hub_t *hub);
static void ngx_http_shop_hub_notifies(ngx_http_shop_hub_t *hub);
static void ngx_http_shop_hub_io(ngx_http_shop_hub_t *hub, ngx_uint_t write);
static void ngx_http_shop_hub_send(ngx_http_shop_hub_t *hub,
    ngx_uint_t query);
static void ngx_http_shop_hub_done(ngx_http_shop_hub_t *hub,
    ngx_uint_t query, PGresult *res);
static void ngx_http_shop_hub_read_result(ngx_http_shop_hub_t *hub,
    PGresult *res);
static void ngx_http_shop_hub_next_read(ngx_http_shop_hub_t *hub);
static ngx_uint_t ngx_http_shop_hub_publish(ngx_http_shop_hub_t *hub,
    PGresult *res, ngx_uint_t n);
static ngx_http_shop_frame_t *ngx_http_shop_frame_render(
    ngx_http_shop_hub_t *hub, PGresult *res, int row);
static void ngx_http_shop_hub_lost(ngx_http_shop_hub_t *hub, const char *what,
    const char *why);
static void ngx_http_shop_hub_close(ngx_http_shop_hub_t *hub);
static void ngx_http_shop_hub_shutdown(ngx_http_shop_hub_t *hub);
static void ngx_http_shop_hub_timer(ngx_event_t *ev);
static void ngx_http_shop_hub_later(ngx_http_shop_hub_t *hub,
    ngx_msec_t delay);
static void ngx_http_shop_hub_tick(ngx_event_t *ev);
static void ngx_http_shop_hub_prune(ngx_event_t *ev);
static void ngx_http_shop_hub_pruned(ngx_http_shop_job_t *job,
    ngx_uint_t sync);
static void *ngx_http_shop_hub_grow(void *owner, size_t size);
static void ngx_http_shop_hub_notice(void *arg, const char *message);


ngx_uint_t  ngx_http_shop_subscribers;

/* the frames' memory, this worker's: after a burst it goes back (trim) */
static size_t  ngx_http_shop_frames_size;
static size_t  ngx_http_shop_frames_peak;

/* "d\r\n: heartbeat\n\n\r\n": the heartbeat comment as a chunk */
u_char      ngx_http_shop_beat_chunked[sizeof("ffff" CRLF CRLF)
                                       + sizeof(SHOP_SSE_HEARTBEAT)];
size_t      ngx_http_shop_beat_chunked_len;


/* configuration: locations on the same database share a hub */

ngx_int_t
ngx_http_shop_events_conf(ngx_conf_t *cf, ngx_http_shop_loc_conf_t *lcf)
{
    ngx_uint_t                   i;
    ngx_msec_t                   retention;
    ngx_http_shop_hub_conf_t    *hcf, **hh;
    ngx_http_shop_pool_conf_t   *pcf;
    ngx_http_shop_main_conf_t   *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_shop_module);
    pcf = lcf->pool;
    retention = (ngx_msec_t) lcf->settings.event_retention_ms;

    hh = smcf->hubs.elts;

    for (i = 0; i < smcf->hubs.nelts; i++) {
        if (hh[i]->pool->database.len == pcf->database.len
            && ngx_strcmp(hh[i]->pool->database.data, pcf->database.data)
               == 0)
        {
            /* events are kept as long as any location wants them */

            if (retention > hh[i]->retention) {
                hh[i]->retention = retention;
            }

            lcf->hub = hh[i];
            return NGX_OK;
        }
    }

    hcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_shop_hub_conf_t));
    if (hcf == NULL) {
        return NGX_ERROR;
    }

    hcf->pool = pcf;
    hcf->lcf = lcf;
    hcf->retention = retention;

    hh = ngx_array_push(&smcf->hubs);
    if (hh == NULL) {
        return NGX_ERROR;
    }

    *hh = hcf;
    lcf->hub = hcf;

    return NGX_OK;
}


/* worker start and exit */

ngx_int_t
ngx_http_shop_events_start(ngx_cycle_t *cycle)
{
    u_char                      *p;
    ngx_uint_t                   i, k;
    ngx_http_shop_hub_t         *hub;
    ngx_http_shop_hub_conf_t   **hh;
    ngx_http_shop_main_conf_t   *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_shop_module);
    if (smcf == NULL) {
        return NGX_OK;
    }

    p = ngx_sprintf(ngx_http_shop_beat_chunked, "%xO" CRLF SHOP_SSE_HEARTBEAT
                    CRLF, (off_t) (sizeof(SHOP_SSE_HEARTBEAT) - 1));
    ngx_http_shop_beat_chunked_len = p - ngx_http_shop_beat_chunked;

    ngx_http_shop_subscribers = 0;

    hh = smcf->hubs.elts;

    for (i = 0; i < smcf->hubs.nelts; i++) {
        hub = ngx_pcalloc(cycle->pool, sizeof(ngx_http_shop_hub_t));
        if (hub == NULL) {
            return NGX_ERROR;
        }

        hub->scratch = ngx_create_pool(16384, cycle->log);
        if (hub->scratch == NULL) {
            return NGX_ERROR;
        }

        hub->conf = hh[i];
        hub->log = cycle->log;
        shop_feed_init(&hub->feed);
        hub->backoff = NGX_HTTP_SHOP_HUB_BACKOFF_MIN;

        ngx_queue_init(&hub->frames);

        for (k = 0; k < NGX_HTTP_SHOP_SUB_NPHASES; k++) {
            ngx_queue_init(&hub->subs[k]);
        }

        hub->timer.handler = ngx_http_shop_hub_timer;
        hub->timer.data = hub;
        hub->timer.log = cycle->log;
        hub->timer.cancelable = 1;

        hub->tick.handler = ngx_http_shop_hub_tick;
        hub->tick.data = hub;
        hub->tick.log = cycle->log;
        hub->tick.cancelable = 1;

        hub->prune_timer.handler = ngx_http_shop_hub_prune;
        hub->prune_timer.data = hub;
        hub->prune_timer.log = cycle->log;
        hub->prune_timer.cancelable = 1;

        hh[i]->hub = hub;

        ngx_add_timer(&hub->tick, NGX_HTTP_SHOP_HUB_TICK);

        if (ngx_worker == 0) {
            ngx_add_timer(&hub->prune_timer, NGX_HTTP_SHOP_PRUNE_FIRST);
        }

        ngx_http_shop_hub_connect(hub);
    }

    return NGX_OK;
}


void
ngx_http_shop_events_stop(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i, k;
    ngx_queue_t                 *q;
    ngx_http_shop_hub_t         *hub;
    ngx_http_shop_sub_t         *sub;
    ngx_http_shop_frame_t       *f;
    ngx_http_shop_hub_conf_t   **hh;
    ngx_http_shop_main_conf_t   *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_shop_module);
    if (smcf == NULL) {
        return;
    }

    hh = smcf->hubs.elts;

    for (i = 0; i < smcf->hubs.nelts; i++) {
        hub = hh[i]->hub;

        if (hub == NULL) {
            continue;
        }

        ngx_http_shop_hub_shutdown(hub);

        /* streams still open (fast shutdown, or no time left): cut */

        for (k = NGX_HTTP_SHOP_SUB_WAIT; k < NGX_HTTP_SHOP_SUB_NPHASES; k++) {
            while (!ngx_queue_empty(&hub->subs[k])) {
                q = ngx_queue_head(&hub->subs[k]);
                sub = ngx_queue_data(q, ngx_http_shop_sub_t, queue);
                ngx_http_shop_stream_close(sub, 0, "shutdown");
            }
        }

        if (hub->tick.timer_set) {
            ngx_del_timer(&hub->tick);
        }

        if (hub->pruning) {
            ngx_http_shop_job_cancel(&hub->prune);
            hub->pruning = 0;
        }

        if (hub->prune_res[0]) {
            PQclear(hub->prune_res[0]);
            hub->prune_res[0] = NULL;
        }

        while (!ngx_queue_empty(&hub->frames)) {
            q = ngx_queue_head(&hub->frames);
            f = ngx_queue_data(q, ngx_http_shop_frame_t, queue);
            ngx_queue_remove(q);
            ngx_free(f);
        }

        ngx_destroy_pool(hub->scratch);
        hub->scratch = NULL;

        hh[i]->hub = NULL;
    }
}


/* the LISTEN connection */

static void
ngx_http_shop_hub_connect(ngx_http_shop_hub_t *hub)
{
    const char                 *keys[6], *values[6];
    ngx_http_shop_pool_conf_t  *pcf;

    if (hub->stopping || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    pcf = hub->conf->pool;

    keys[0] = "sslmode";           values[0] = "disable";
    keys[1] = "gssencmode";        values[1] = "disable";
    keys[2] = "application_name";  values[2] = "shop-nginx events";
    keys[3] = "dbname";            values[3] = (char *) pcf->database.data;
    keys[4] = "options";           values[4] = (char *) pcf->options.data;
    keys[5] = NULL;                values[5] = NULL;

    hub->pg = PQconnectStartParams(keys, values, 1);

    if (hub->pg == NULL) {
        ngx_http_shop_hub_lost(hub, "failed", "out of memory");
        return;
    }

    if (PQstatus(hub->pg) == CONNECTION_BAD) {
        ngx_http_shop_hub_lost(hub, "failed", PQerrorMessage(hub->pg));
        return;
    }

    hub->state = NGX_HTTP_SHOP_HUB_CONNECTING;

    hub->c = ngx_http_shop_pg_wrap(hub->pg, hub, ngx_http_shop_hub_handler,
                                   hub->log);

    if (hub->c == NULL || ngx_http_shop_pg_want_write(hub->c, 1) != NGX_OK) {
        ngx_http_shop_hub_lost(hub, "failed", "cannot register its socket");
        return;
    }

    /* ngx_close_idle_connections() tells us the worker shuts down */
    hub->c->idle = 1;

    ngx_http_shop_hub_later(hub, NGX_HTTP_SHOP_HUB_CONNECT);
}


static void
ngx_http_shop_hub_handler(ngx_event_t *ev)
{
    ngx_connection_t     *c;
    ngx_http_shop_hub_t  *hub;

    c = ev->data;
    hub = c->data;

    if (c->close) {
        /* ngx_close_idle_connections(): the worker shuts down */
        c->close = 0;
        ngx_log_error(NGX_LOG_INFO, hub->log, 0,
                      "shop: events: the worker shuts down, %ui stream(s) "
                      "end", ngx_http_shop_subscribers);
        ngx_http_shop_hub_shutdown(hub);
        return;
    }

    switch (hub->state) {

    case NGX_HTTP_SHOP_HUB_CONNECTING:
        ngx_http_shop_hub_poll(hub);
        return;

    case NGX_HTTP_SHOP_HUB_READY:
        ngx_http_shop_hub_io(hub, ev->write);
        return;

    default:
        return;
    }
}


static void
ngx_http_shop_hub_poll(ngx_http_shop_hub_t *hub)
{
    switch (PQconnectPoll(hub->pg)) {

    case PGRES_POLLING_READING:
        if (ngx_http_shop_pg_polling(hub->pg, &hub->c, 0) != NGX_OK) {
            goto failed;
        }
        return;

    case PGRES_POLLING_WRITING:
        if (ngx_http_shop_pg_polling(hub->pg, &hub->c, 1) != NGX_OK) {
            goto failed;
        }
        return;

    case PGRES_POLLING_OK:
        if (PQsetnonblocking(hub->pg, 1) != 0) {
            ngx_http_shop_hub_lost(hub, "failed", PQerrorMessage(hub->pg));
            return;
        }

        PQsetNoticeProcessor(hub->pg, ngx_http_shop_hub_notice, hub);

        if (hub->timer.timer_set) {
            ngx_del_timer(&hub->timer);
        }

        hub->state = NGX_HTTP_SHOP_HUB_READY;

        /* LISTEN first: a change committed while we read wakes us again */
        ngx_http_shop_hub_send(hub, NGX_HTTP_SHOP_HUB_LISTEN);
        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_http_shop_hub_lost(hub, "failed", PQerrorMessage(hub->pg));
        return;
    }

failed:

    ngx_http_shop_hub_lost(hub, "failed", "cannot register its socket");
}


static void
ngx_http_shop_hub_send(ngx_http_shop_hub_t *hub, ngx_uint_t query)
{
    int                    rc;
    shop_feed_query        q;
    const shop_statement  *st;

    if (hub->timer.timer_set) {
        ngx_del_timer(&hub->timer);
    }

    switch (query) {

    case NGX_HTTP_SHOP_HUB_LISTEN:
        rc = PQsendQuery(hub->pg, "LISTEN shop_events");
        break;

    default: /* NGX_HTTP_SHOP_HUB_READ */

        /* the wake-ups so far are answered by this read */
        shop_feed_query_init(&hub->feed, &q, (int64_t) ngx_current_msec);

        st = &shop_catalogue[SHOP_STMT_EVENTS_READ];
        rc = PQsendQueryParams(hub->pg, st->sql, st->nparams, NULL, q.values,
                               NULL, NULL, 0);
        break;
    }

    if (!rc) {
        ngx_http_shop_hub_lost(hub, "lost", PQerrorMessage(hub->pg));
        return;
    }

    hub->query = query;

    rc = PQflush(hub->pg);

    if (rc == -1 || ngx_http_shop_pg_want_write(hub->c, rc == 1) != NGX_OK) {
        ngx_http_shop_hub_lost(hub, "lost", PQerrorMessage(hub->pg));
    }
}


/* a burst of wake-ups is one more read; our own announcements are for
 * the other processes */

static void
ngx_http_shop_hub_notifies(ngx_http_shop_hub_t *hub)
{
    PGnotify  *n;

    while ((n = PQnotifies(hub->pg)) != NULL) {
        shop_feed_notified(&hub->feed, n->be_pid, PQbackendPID(hub->pg));
        PQfreemem(n);
    }
}


void
ngx_http_shop_hub_wake(ngx_http_shop_hub_conf_t *hcf)
{
    ngx_http_shop_hub_t  *hub;

    hub = hcf->hub;

    if (hub == NULL) {
        return;
    }

    shop_feed_woken(&hub->feed, 1);

    if (hub->state == NGX_HTTP_SHOP_HUB_READY
        && hub->query == NGX_HTTP_SHOP_HUB_NONE)
    {
        ngx_http_shop_hub_next_read(hub);
    }
}


static void
ngx_http_shop_hub_io(ngx_http_shop_hub_t *hub, ngx_uint_t write)
{
    int          rc;
    PGresult    *res;
    ngx_uint_t   query;

    if (!write && !PQconsumeInput(hub->pg)) {
        ngx_http_shop_hub_lost(hub, "lost", PQerrorMessage(hub->pg));
        return;
    }

    rc = PQflush(hub->pg);

    if (rc == -1 || ngx_http_shop_pg_want_write(hub->c, rc == 1) != NGX_OK) {
        ngx_http_shop_hub_lost(hub, "lost", PQerrorMessage(hub->pg));
        return;
    }

    ngx_http_shop_hub_notifies(hub);

    /* one statement, one result, then NULL: it may take several reads */

    while (hub->query != NGX_HTTP_SHOP_HUB_NONE && !PQisBusy(hub->pg)) {
        res = PQgetResult(hub->pg);

        if (res == NULL) {
            /*
             * libpq parses what follows a result only once the result is
             * taken: a wake-up that came in the same read as the result
             * is seen now, or it would wait for the next one
             */

            ngx_http_shop_hub_notifies(hub);

            query = hub->query;
            res = hub->res;

            hub->query = NGX_HTTP_SHOP_HUB_NONE;
            hub->res = NULL;

            ngx_http_shop_hub_done(hub, query, res);
            return;
        }

        if (hub->res) {
            PQclear(hub->res);
        }

        hub->res = res;
    }

    if (PQstatus(hub->pg) == CONNECTION_BAD) {
        ngx_http_shop_hub_lost(hub, "lost", PQerrorMessage(hub->pg));
        return;
    }

    if (hub->query == NGX_HTTP_SHOP_HUB_NONE && hub->feed.wake) {
        ngx_http_shop_hub_next_read(hub);
    }
}


static void
ngx_http_shop_hub_done(ngx_http_shop_hub_t *hub, ngx_uint_t query,
    PGresult *res)
{
    ngx_uint_t             level;
    ExecStatusType         want;

    want = (query == NGX_HTTP_SHOP_HUB_LISTEN) ? PGRES_COMMAND_OK
                                               : PGRES_TUPLES_OK;

    if (res == NULL || PQresultStatus(res) != want) {
        ngx_http_shop_hub_lost(hub, "failed",
                               res ? PQresultErrorMessage(res)
                                   : PQerrorMessage(hub->pg));
        if (res) {
            PQclear(res);
        }

        return;
    }

    switch (query) {

    case NGX_HTTP_SHOP_HUB_LISTEN:
        PQclear(res);

        if (hub->feed.cursor >= 0) {
            level = hub->failing ? NGX_LOG_NOTICE : NGX_LOG_INFO;

            ngx_log_error(level, hub->log, 0,
                          "shop: events: listening on %V again, reading on "
                          "from event %L", &hub->conf->pool->name,
                          hub->feed.cursor);

            hub->failing = 0;
            hub->backoff = NGX_HTTP_SHOP_HUB_BACKOFF_MIN;
        }

        /* what committed while we were away; the first read: where to start */
        shop_feed_woken(&hub->feed, 0);
        ngx_http_shop_hub_send(hub, NGX_HTTP_SHOP_HUB_READ);
        return;

    default: /* NGX_HTTP_SHOP_HUB_READ */
        ngx_http_shop_hub_read_result(hub, res);
        return;
    }
}


static void
ngx_http_shop_hub_read_result(ngx_http_shop_hub_t *hub, PGresult *res)
{
    int                   n;
    int64_t               last;
    ngx_uint_t            level, published;
    ngx_queue_t          *q;
    ngx_http_shop_sub_t  *sub;

    n = shop_feed_result(&hub->feed, res);

    if (n < 0) {
        PQclear(res);
        ngx_http_shop_hub_lost(hub, "failed", "events_read: no state row");
        return;
    }

    published = ngx_http_shop_hub_publish(hub, res, (ngx_uint_t) n);

    last = published ? ngx_atoof((u_char *) PQgetvalue(res, (int) published,
                                                        SHOP_E_COL_ID),
                                 PQgetlength(res, (int) published,
                                             SHOP_E_COL_ID))
                     : 0;

    PQclear(res);

    if (shop_feed_advance(&hub->feed, (int) published, last)) {
        level = hub->failing ? NGX_LOG_NOTICE : NGX_LOG_INFO;

        ngx_log_error(level, hub->log,
                      0, "shop: events: listening on %V from event %L",
                      &hub->conf->pool->name, hub->feed.cursor);

        hub->failing = 0;
        hub->backoff = NGX_HTTP_SHOP_HUB_BACKOFF_MIN;

        /* the streams that waited for a position */

        while (!ngx_queue_empty(&hub->subs[NGX_HTTP_SHOP_SUB_WAIT])) {
            q = ngx_queue_head(&hub->subs[NGX_HTTP_SHOP_SUB_WAIT]);
            sub = ngx_queue_data(q, ngx_http_shop_sub_t, queue);
            ngx_http_shop_stream_attach(sub);
        }
    }

    if (hub->pg == NULL) {
        return;
    }

    ngx_http_shop_hub_next_read(hub);
}


static void
ngx_http_shop_hub_next_read(ngx_http_shop_hub_t *hub)
{
    int64_t  delay;

    delay = shop_feed_next_read(&hub->feed, (int64_t) ngx_current_msec);

    if (delay == 0) {
        ngx_http_shop_hub_send(hub, NGX_HTTP_SHOP_HUB_READ);
        return;
    }

    ngx_http_shop_hub_later(hub, (ngx_msec_t) delay);
}


/*
 * the settled rows (1 ... n) become frames on the hub's list; then, in one
 * pass over the live subscribers, each takes a reference on the new frames
 * of its topics and writes
 */

static ngx_uint_t
ngx_http_shop_hub_publish(ngx_http_shop_hub_t *hub, PGresult *res,
    ngx_uint_t n)
{
    size_t                  len, limit;
    int64_t                 start, spent;
    ngx_uint_t              i, nsubs;
    ngx_msec_t              now;
    ngx_queue_t            *q, *next, *live, *fq, *fnext, *frames;
    shop_sub_verdict        v;
    ngx_http_shop_sub_t    *sub;
    ngx_http_shop_frame_t  *f, *first;

    live = &hub->subs[NGX_HTTP_SHOP_SUB_LIVE];
    frames = &hub->frames;
    first = NULL;

    /* nobody listens live: the cursor moves on, nothing is rendered */

    if (ngx_queue_empty(live)) {
        hub->published += n;
        return n;
    }

    for (i = 0; i < n; i++) {
        f = ngx_http_shop_frame_render(hub, res, (int) i + 1);
        if (f == NULL) {
            break;
        }

        /* the hub's own reference, while the subscribers take theirs */
        f->refs = 1;

        ngx_queue_insert_tail(frames, &f->queue);

        if (first == NULL) {
            first = f;
        }
    }

    ngx_reset_pool(hub->scratch);

    hub->published += i;

    if (first == NULL) {
        return 0;
    }

    start = ngx_http_shop_now_us();
    now = ngx_current_msec;
    nsubs = 0;

    for (q = ngx_queue_head(live); q != ngx_queue_sentinel(live); q = next) {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_http_shop_sub_t, queue);

        for (fq = &first->queue;
             fq != ngx_queue_sentinel(frames);
             fq = ngx_queue_next(fq))
        {
            f = ngx_queue_data(fq, ngx_http_shop_frame_t, queue);

            /* ids at or below last_id came with the replay */

            if (!(sub->topics & f->topic) || f->id <= sub->last_id) {
                continue;
            }

            f->refs++;

            (void) ngx_http_shop_frame_bytes(sub, f, &len);
            sub->unsent += len;

            if (sub->next == NULL) {
                sub->next = f;
                sub->offset = 0;
            }
        }

        if (sub->next == NULL) {
            continue;
        }

        /* reading, but never catching up: its frames would pile up */

        limit = (size_t) sub->conf->settings.stream_buffer;
        v = shop_subscriber_verdict(sub->unsent, limit,
                                    sub->pending ? (int64_t) (now - sub->last_out)
                                                 : -1);

        if (v != SHOP_SUB_KEEP) {
            ngx_http_shop_metrics_dropped();
            ngx_http_shop_stream_close(sub, 1, shop_sub_verdict_reason(v));
            continue;
        }

        if (!sub->pending) {
            (void) ngx_http_shop_stream_write(sub);
        }

        nsubs++;
    }

    /* a worker that needs long to reach its subscribers has too many */

    spent = ngx_http_shop_now_us() - start;

    if (spent >= (int64_t) NGX_HTTP_SHOP_HUB_SLOW * 1000) {
        ngx_log_error(NGX_LOG_INFO, hub->log, 0,
                      "shop: events: %ui event(s) to %ui subscriber(s) took "
                      "%L ms", i, nsubs, spent / 1000);
    }

    /* the hub lets go: frames nobody wants, or everybody sent, go */

    for (fq = &first->queue; fq != ngx_queue_sentinel(frames); fq = fnext) {
        fnext = ngx_queue_next(fq);
        f = ngx_queue_data(fq, ngx_http_shop_frame_t, queue);
        ngx_http_shop_frame_release(f);
    }

    return i;
}


/* the variants live subscribers need; a subscriber joins for later frames */

static ngx_http_shop_frame_t *
ngx_http_shop_frame_render(ngx_http_shop_hub_t *hub, PGresult *res, int row)
{
    u_char                 *p;
    size_t                  hl, trail, size;
    shop_buf                sse, ws;
    shop_arena              arena;
    ngx_http_shop_frame_t  *f;
    u_char                  head[NGX_OFF_T_LEN + 2];

    shop_arena_init(&arena, ngx_http_shop_hub_grow, hub->scratch);

    shop_buf_init(&sse, &arena, 512);
    shop_buf_init(&ws, &arena, 512);

    if (hub->live[NGX_HTTP_SHOP_SSE_CHUNKED]
        || hub->live[NGX_HTTP_SHOP_SSE_RAW])
    {
        shop_event_sse(&sse, res, row);
    }

    if (hub->live[NGX_HTTP_SHOP_WS]) {
        shop_event_ws(&ws, res, row);
    }

    if (arena.failed) {
        return NULL;
    }

    hl = 0;
    trail = 0;

    if (sse.len) {
        hl = ngx_sprintf(head, "%xO" CRLF, (off_t) sse.len) - head;
        trail = 2;
    }

    size = offsetof(ngx_http_shop_frame_t, data) + hl + sse.len + trail
           + ws.len;

    f = ngx_alloc(size, hub->log);
    if (f == NULL) {
        return NULL;
    }

    f->id = ngx_atoof((u_char *) PQgetvalue(res, row, SHOP_E_COL_ID),
                      PQgetlength(res, row, SHOP_E_COL_ID));
    f->refs = 0;
    f->topic = shop_topic_bit(PQgetvalue(res, row, SHOP_E_COL_TOPIC));
    f->head = (uint32_t) hl;
    f->sse = (uint32_t) sse.len;
    f->ws_off = (uint32_t) (hl + sse.len + trail);
    f->ws = (uint32_t) ws.len;
    f->size = size;

    p = ngx_cpymem(f->data, head, hl);
    p = ngx_cpymem(p, sse.p, sse.len);
    p = ngx_cpymem(p, CRLF, trail);
    ngx_memcpy(p, ws.p, ws.len);

    ngx_http_shop_frames_size += size;

    if (ngx_http_shop_frames_size > ngx_http_shop_frames_peak) {
        ngx_http_shop_frames_peak = ngx_http_shop_frames_size;
    }

    return f;
}


u_char *
ngx_http_shop_frame_bytes(ngx_http_shop_sub_t *sub, ngx_http_shop_frame_t *f,
    size_t *len)
{
    switch (sub->kind) {

    case NGX_HTTP_SHOP_SSE_CHUNKED:
        *len = f->head + f->sse + 2;
        return f->data;

    case NGX_HTTP_SHOP_SSE_RAW:
        *len = f->sse;
        return f->data + f->head;

    default: /* NGX_HTTP_SHOP_WS */
        *len = f->ws;
        return f->data + f->ws_off;
    }
}


ngx_http_shop_frame_t *
ngx_http_shop_frame_after(ngx_http_shop_sub_t *sub, ngx_http_shop_frame_t *f)
{
    ngx_queue_t            *q, *frames;
    ngx_http_shop_frame_t  *n;

    frames = &sub->hub->frames;

    for (q = ngx_queue_next(&f->queue);
         q != ngx_queue_sentinel(frames);
         q = ngx_queue_next(q))
    {
        n = ngx_queue_data(q, ngx_http_shop_frame_t, queue);

        if (n->topic & sub->topics) {
            return n;
        }
    }

    return NULL;
}


void
ngx_http_shop_frame_release(ngx_http_shop_frame_t *f)
{
    if (--f->refs == 0) {
        ngx_http_shop_frames_size -= f->size;
        ngx_queue_remove(&f->queue);
        ngx_free(f);
    }
}


void
ngx_http_shop_sub_phase(ngx_http_shop_sub_t *sub, ngx_uint_t phase)
{
    if (sub->phase == NGX_HTTP_SHOP_SUB_LIVE) {
        sub->hub->live[sub->kind]--;
    }

    if (sub->phase != NGX_HTTP_SHOP_SUB_HEAD) {
        ngx_queue_remove(&sub->queue);
    }

    sub->phase = phase;

    if (phase != NGX_HTTP_SHOP_SUB_HEAD) {
        ngx_queue_insert_tail(&sub->hub->subs[phase], &sub->queue);
    }

    if (phase == NGX_HTTP_SHOP_SUB_LIVE) {
        sub->hub->live[sub->kind]++;
    }
}


void
ngx_http_shop_hub_join(ngx_http_shop_sub_t *sub)
{
    ngx_http_shop_hub_t  *hub;

    hub = sub->hub;

    /*
     * every event up to the cursor is published already, every later one
     * will be: from here on the subscriber takes the frames; what it had
     * from the table up to last_id is not sent twice
     */

    if (sub->last_id < hub->feed.cursor) {
        sub->last_id = hub->feed.cursor;
    }

    sub->next = NULL;
    sub->offset = 0;
    sub->unsent = 0;

    ngx_http_shop_sub_phase(sub, NGX_HTTP_SHOP_SUB_LIVE);
}


void
ngx_http_shop_hub_replay_next(ngx_http_shop_hub_t *hub)
{
    ngx_queue_t          *q;
    ngx_http_shop_sub_t  *sub;

    /* a replay that ends at once calls back here: the loop goes on */

    if (hub->scheduling) {
        return;
    }

    hub->scheduling = 1;

    while (hub->nreplaying < NGX_HTTP_SHOP_REPLAYS
           && !ngx_queue_empty(&hub->subs[NGX_HTTP_SHOP_SUB_QUEUED]))
    {
        q = ngx_queue_head(&hub->subs[NGX_HTTP_SHOP_SUB_QUEUED]);
        sub = ngx_queue_data(q, ngx_http_shop_sub_t, queue);

        ngx_http_shop_stream_replay(sub);
    }

    hub->scheduling = 0;
}


static void
ngx_http_shop_hub_lost(ngx_http_shop_hub_t *hub, const char *what,
    const char *why)
{
    u_char      *p;
    ngx_uint_t   level;
    u_char       msg[256];

    p = ngx_http_shop_pg_message(why, msg, sizeof(msg));

    level = hub->failing ? NGX_LOG_INFO : NGX_LOG_ERR;

    if (hub->stopping) {
        level = NGX_LOG_INFO;
    }

    ngx_log_error(level, hub->log, 0,
                  "shop: events connection to %V %s: %*s; next attempt in "
                  "%M ms", &hub->conf->pool->name, what, p - msg, msg,
                  hub->backoff);

    ngx_http_shop_hub_close(hub);

    hub->failing = 1;

    if (hub->stopping || ngx_exiting) {
        return;
    }

    ngx_http_shop_hub_later(hub, hub->backoff);

    hub->backoff = ngx_min(hub->backoff * 2, NGX_HTTP_SHOP_HUB_BACKOFF_MAX);
}


static void
ngx_http_shop_hub_close(ngx_http_shop_hub_t *hub)
{
    if (hub->timer.timer_set) {
        ngx_del_timer(&hub->timer);
    }

    /* on a lost connection libpq has closed the socket already */

    if (hub->c) {
        ngx_http_shop_pg_unwrap(&hub->c, hub->pg == NULL
                                         || PQsocket(hub->pg) != hub->c->fd);
    }

    if (hub->res) {
        PQclear(hub->res);
        hub->res = NULL;
    }

    if (hub->pg) {
        PQfinish(hub->pg);
        hub->pg = NULL;
    }

    hub->state = NGX_HTTP_SHOP_HUB_DOWN;
    hub->query = NGX_HTTP_SHOP_HUB_NONE;
    hub->feed.pending_ms = 0;
}


/* the worker shuts down: no more reading, no more reconnecting */

static void
ngx_http_shop_hub_shutdown(ngx_http_shop_hub_t *hub)
{
    hub->stopping = 1;

    ngx_http_shop_hub_close(hub);

    if (hub->prune_timer.timer_set) {
        ngx_del_timer(&hub->prune_timer);
    }
}


static void
ngx_http_shop_hub_later(ngx_http_shop_hub_t *hub, ngx_msec_t delay)
{
    if (hub->timer.timer_set) {
        ngx_del_timer(&hub->timer);
    }

    ngx_add_timer(&hub->timer, delay);
}


static void
ngx_http_shop_hub_timer(ngx_event_t *ev)
{
    ngx_http_shop_hub_t  *hub;

    hub = ev->data;

    switch (hub->state) {

    case NGX_HTTP_SHOP_HUB_DOWN:
        ngx_http_shop_hub_connect(hub);
        return;

    case NGX_HTTP_SHOP_HUB_CONNECTING:
        ngx_http_shop_hub_lost(hub, "failed", "timed out connecting");
        return;

    default: /* NGX_HTTP_SHOP_HUB_READY */
        if (hub->query == NGX_HTTP_SHOP_HUB_NONE) {
            ngx_http_shop_hub_send(hub, NGX_HTTP_SHOP_HUB_READ);
        }

        return;
    }
}


/* every second: heartbeats, and the subscribers that do not keep up */

static void
ngx_http_shop_hub_tick(ngx_event_t *ev)
{
    size_t                limit;
    ngx_uint_t            k;
    ngx_msec_t            now;
    ngx_queue_t          *q, *next, *list;
    shop_sub_verdict      v;
    ngx_http_shop_hub_t  *hub;
    ngx_http_shop_sub_t  *sub;

    hub = ev->data;
    now = ngx_current_msec;

    for (k = NGX_HTTP_SHOP_SUB_WAIT; k <= NGX_HTTP_SHOP_SUB_LIVE; k++) {
        list = &hub->subs[k];

        for (q = ngx_queue_head(list); q != ngx_queue_sentinel(list); q = next)
        {
            next = ngx_queue_next(q);
            sub = ngx_queue_data(q, ngx_http_shop_sub_t, queue);

            limit = (size_t) sub->conf->settings.stream_buffer;
            v = shop_subscriber_verdict(sub->unsent, limit,
                                        sub->pending
                                        ? (int64_t) (now - sub->last_out) : -1);

            if (v != SHOP_SUB_KEEP) {
                ngx_http_shop_metrics_dropped();
                ngx_http_shop_stream_close(sub, 1, shop_sub_verdict_reason(v));
                continue;
            }

            if (sub->pending) {
                continue;
            }

            if (now - sub->last_out >= SHOP_SSE_HEARTBEAT_MS) {
                ngx_http_shop_stream_beat(sub);
            }
        }
    }

#if (__GLIBC__)

    /*
     * a burst for a slow reader kept many frames; they are gone now: their
     * memory goes back to the system (free() alone keeps it in the heap)
     */

    if (ngx_http_shop_frames_peak >= (size_t) 1024 * 1024
        && ngx_http_shop_frames_size < (size_t) 64 * 1024)
    {
        (void) malloc_trim(0);
        ngx_http_shop_frames_peak = ngx_http_shop_frames_size;
    }

#endif

    if (!hub->stopping) {
        ngx_add_timer(&hub->tick, NGX_HTTP_SHOP_HUB_TICK);
    }
}


/* retention: events_prune on the shop's pool, in batches */

static void
ngx_http_shop_hub_prune(ngx_event_t *ev)
{
    ngx_http_shop_hub_t  *hub;

    hub = ev->data;

    if (hub->pruning || hub->stopping || ngx_exiting) {
        return;
    }

    *ngx_sprintf((u_char *) hub->prune_age, "%M", hub->conf->retention) = '\0';

    ngx_memzero(&hub->prune_query, sizeof(shop_query));
    hub->prune_query.stmt = SHOP_STMT_EVENTS_PRUNE;
    hub->prune_query.target = SHOP_TARGET_PRIMARY;
    hub->prune_query.nparams = 2;
    hub->prune_query.values[0] = hub->prune_age;
    hub->prune_query.values[1] = NGX_HTTP_SHOP_PRUNE_BATCH_STR;

    ngx_memzero(&hub->prune, sizeof(ngx_http_shop_job_t));
    hub->prune.queries = &hub->prune_query;
    hub->prune.res = hub->prune_res;
    hub->prune.nqueries = 1;
    hub->prune.handler = ngx_http_shop_hub_pruned;
    hub->prune.data = hub;
    hub->prune.log = hub->log;

    hub->prune_res[0] = NULL;
    hub->pruning = 1;

    ngx_http_shop_pool_submit(hub->conf->lcf->pool->pool, &hub->prune);
}


static void
ngx_http_shop_hub_pruned(ngx_http_shop_job_t *job, ngx_uint_t sync)
{
    u_char               *p;
    int64_t               n;
    PGresult             *res;
    ngx_http_shop_hub_t  *hub;
    u_char                msg[256];

    hub = job->data;
    hub->pruning = 0;

    res = hub->prune_res[0];
    hub->prune_res[0] = NULL;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        p = res ? ngx_http_shop_pg_result_message(res, msg, sizeof(msg))
                : ngx_http_shop_pg_message("no database connection", msg,
                                           sizeof(msg));

        ngx_log_error(NGX_LOG_WARN, hub->log, 0,
                      "shop: events: pruning failed: %*s", p - msg, msg);

        if (res) {
            PQclear(res);
        }

        n = 0;

    } else {
        n = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                      PQgetlength(res, 0, 0));
        PQclear(res);

        if (n > 0) {
            hub->pruned += n;
        }
    }

    if (hub->stopping || ngx_exiting) {
        return;
    }

    if (n >= NGX_HTTP_SHOP_PRUNE_BATCH) {
        ngx_add_timer(&hub->prune_timer, NGX_HTTP_SHOP_PRUNE_PAUSE);
        return;
    }

    if (hub->pruned > 0) {
        ngx_log_error(NGX_LOG_INFO, hub->log, 0,
                      "shop: events: pruned %L events older than %M ms",
                      hub->pruned, hub->conf->retention);
        hub->pruned = 0;
    }

    ngx_add_timer(&hub->prune_timer, NGX_HTTP_SHOP_PRUNE_EVERY);
}


static void *
ngx_http_shop_hub_grow(void *owner, size_t size)
{
    return ngx_palloc(owner, size);
}


static void
ngx_http_shop_hub_notice(void *arg, const char *message)
{
    ngx_http_shop_hub_t *hub = arg;

    u_char  *p;
    u_char   msg[256];

    p = ngx_http_shop_pg_message(message, msg, sizeof(msg));

    ngx_log_error(NGX_LOG_INFO, hub->log, 0, "shop: events: %*s",
                  p - msg, msg);
}
