/* GET /events as Server-Sent Events. The request thread that accepted the
 * request only writes the response head and hands the FastCGI request to a
 * stream thread of its own (small stack, detached), so open streams never
 * hold the threads that answer ordinary requests; max_streams bounds them.
 *
 * A stream with a resume position (Last-Event-ID or ?after=) first places
 * itself at the head of the hub's live feed, which tells it the process
 * cursor, then replays from the table (events_replay on a pooled
 * connection, up to that cursor, which the hub has settled) and then takes
 * the live feed, skipping ids it already sent: no gap, no duplicate. The
 * first batch checks the replay limit and the retention: a resume from
 * further back gets a reset and goes on from where the core says. A stream
 * that falls too far behind the live feed replays the same way. */
#include "shop_fcgi.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <fcgiapp.h>

#include "events.h"
#include "feed.h"
#include "handler.h"

#define FCGI_SSE_STACK        ((size_t) 256 * 1024)
#define FCGI_SSE_CHUNK        ((size_t) 64 * 1024)
/* A write to a client that takes no data for this long ends the stream. */
#define FCGI_SSE_SEND_TIMEOUT 60
/* How often an idle stream looks whether its client went away. */
#define FCGI_SSE_PROBE_US     1000000

struct fcgi_sse {
    FCGX_Request        *rq;
    const shop_settings *settings;
    fcgi_pool           *pool;
    unsigned             topics;
    int64_t              after;        /* -1: live only */
    int64_t              started;      /* fcgi_now_us() */
    char                 rid[130];
};

fcgi_sse *
fcgi_sse_prepare(shop_ctx *c, FCGX_Request *rq, const shop_settings *s, fcgi_pool *pool)
{
    fcgi_sse *st;
    size_t n;

    if (fcgi_hub_reserve() != 0) {
        /* Only X-Request-Id (headers[0]) stays: the stream's own headers go. */
        c->resp.nheaders = 1;
        c->resp.stream.kind = SHOP_STREAM_NONE;
        shop_fail(c, SHOP_E_UNAVAILABLE, "too many event streams are open; retry later");
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        fcgi_hub_unreserve();
        c->resp.nheaders = 1;
        c->resp.stream.kind = SHOP_STREAM_NONE;
        shop_fail(c, SHOP_E_INTERNAL, "the server ran out of memory");
        return NULL;
    }
    st->rq = rq;
    st->settings = s;
    st->pool = pool;
    st->topics = c->resp.stream.topics;
    st->after = c->resp.stream.after;
    st->started = fcgi_now_us();
    n = c->request_id.n < sizeof(st->rid) - 1 ? c->request_id.n : sizeof(st->rid) - 1;
    memcpy(st->rid, c->request_id.p, n);
    st->rid[n] = '\0';
    /* For the web server in front, not the client: nginx unbuffers the
     * stream (and drops the header), whatever fastcgi_buffering says. */
    shop_header_add(c, "X-Accel-Buffering", SHOP_STR("no"));
    fcgi_response_head(rq->out, &c->resp);
    return st;
}

/* The server sends nothing more once the request was read: a readable
 * socket means it closed the connection (the client went away). */
static int
fcgi_sse_gone(const fcgi_sse *st)
{
    struct pollfd pfd = { st->rq->ipcFd, POLLIN | POLLRDHUP, 0 };

    return poll(&pfd, 1, 0) > 0;
}

/* The next wake-up: a heartbeat, or a look at the socket. */
static int64_t
fcgi_sse_until(int64_t last_write, int64_t beat_us)
{
    int64_t probe = fcgi_now_us() + FCGI_SSE_PROBE_US;

    return last_write + beat_us < probe ? last_write + beat_us : probe;
}

/* Writes and flushes; -1 when the client is gone (or was dropped). */
static int
fcgi_sse_write(fcgi_sse *st, fcgi_sub *sub, const char *p, size_t n)
{
    int rc = 0;

    fcgi_hub_writing(sub, 1);
    while (n > 0) {
        int chunk = (int) (n > FCGI_SSE_CHUNK ? FCGI_SSE_CHUNK : n);
        if (FCGX_PutStr(p, chunk, st->rq->out) != chunk) {
            rc = -1;
            break;
        }
        p += chunk;
        n -= (size_t) chunk;
    }
    if (rc == 0 && (FCGX_FFlush(st->rq->out) != 0 || FCGX_GetError(st->rq->out) != 0)) {
        rc = -1;
    }
    fcgi_hub_writing(sub, 0);
    return rc;
}

/* Sends the events after *last up to `cursor` (settled by the hub), with
 * a reset first when the resume point is too far behind. 0, or -1 when the
 * stream must end. */
static int
fcgi_sse_replay(fcgi_sse *st, fcgi_sub *sub, fcgi_blocks *blocks, int64_t *last,
                int64_t cursor, int64_t *events)
{
    const char *name = shop_catalogue[SHOP_STMT_EVENTS_REPLAY].name;
    int first = 1;
    char msg[256];

    while (*last < cursor && !fcgi_stopping()) {
        shop_replay_query q;
        shop_replay_batch batch;
        shop_arena arena;
        shop_buf b;
        PGresult *res;
        PGconn *conn;
        int rc = 0, timed_out;
        int64_t sent = 0;

        conn = fcgi_pool_acquire(st->pool);
        if (conn == NULL) {
            return -1;
        }
        shop_replay_query_init(&q, st->settings, *last, cursor, first);
        /* Bounded: a timed-out connection is given up by the release. */
        res = fcgi_pg_exec_within(conn, name, 5, q.values,
                                  st->settings->statement_timeout_ms + SHOP_STATEMENT_GRACE_MS,
                                  &timed_out);
        fcgi_pool_release(st->pool, conn);
        if (shop_replay_result(res, *last, cursor, &batch) != 0) {
            fcgi_log(FCGI_LOG_WARN, "stream %s: replay failed: %s", st->rid,
                     timed_out ? "no answer in time"
                     : fcgi_pg_message(res ? PQresultErrorMessage(res) : "no result",
                                       msg, sizeof(msg)));
            PQclear(res);
            return -1;
        }

        shop_arena_init(&arena, fcgi_blocks_grow, blocks);
        shop_buf_init(&b, &arena, 4096);
        if (batch.reset) {
            fcgi_log(FCGI_LOG_INFO, "stream %s: resume after %lld is too far behind: from %lld",
                     st->rid, (long long) *last, (long long) batch.next_id);
            shop_reset_sse(&b, batch.next_id);
        }
        for (int i = 1; i <= batch.nevents; i++) {
            if (shop_topic_bit(PQgetvalue(res, i, SHOP_E_COL_TOPIC)) & st->topics) {
                shop_event_sse(&b, res, i);
                sent++;
            }
        }
        if (arena.failed || (b.len > 0 && fcgi_sse_write(st, sub, b.p, b.len) != 0)) {
            rc = -1;
        } else {
            *events += sent;
            fcgi_metrics_delivered((uint64_t) sent);
            *last = batch.last;
        }
        fcgi_blocks_reset(blocks);
        PQclear(res);
        if (rc != 0) {
            return -1;
        }
        first = 0;
    }
    return 0;
}

static void *
fcgi_sse_run(void *arg)
{
    fcgi_sse *st = arg;
    fcgi_blocks blocks = { 0 };
    int64_t last = st->after, cursor = 0, events = 0, beat_us = SHOP_SSE_HEARTBEAT_MS * (int64_t) 1000;
    int64_t last_write;
    int need_sync = 1, rc;
    const char *why = "client gone";
    struct timeval tv = { FCGI_SSE_SEND_TIMEOUT, 0 };
    fcgi_sub *sub;

    setsockopt(st->rq->ipcFd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sub = fcgi_hub_subscribe(st->rq->ipcFd, st->topics);
    /* A comment first: nginx sends the response head only with body bytes. */
    if (sub == NULL
        || fcgi_sse_write(st, sub, SHOP_SSE_HEARTBEAT, sizeof(SHOP_SSE_HEARTBEAT) - 1) != 0) {
        why = sub == NULL ? "out of memory" : "client gone";
        goto done;
    }
    last_write = fcgi_now_us();

    for ( ;; ) {
        shop_arena arena;
        shop_buf b;

        if (need_sync) {
            rc = fcgi_hub_sync(sub, fcgi_sse_until(last_write, beat_us), &cursor);
            if (rc == FCGI_HUB_END) {
                why = fcgi_stopping() ? "shutdown" : "dropped";
                break;
            }
            if (rc == FCGI_HUB_IDLE) {
                if (fcgi_now_us() < last_write + beat_us) {
                    if (fcgi_sse_gone(st)) {
                        break;
                    }
                    continue;
                }
                if (fcgi_sse_write(st, sub, SHOP_SSE_HEARTBEAT, sizeof(SHOP_SSE_HEARTBEAT) - 1) != 0) {
                    break;
                }
                last_write = fcgi_now_us();
                continue;
            }
            if (last < 0) {
                last = cursor;
            } else if (shop_resume_next(last, cursor) == SHOP_RESUME_REPLAY) {
                if (fcgi_sse_replay(st, sub, &blocks, &last, cursor, &events) != 0) {
                    why = fcgi_stopping() ? "shutdown" : "replay failed or client gone";
                    break;
                }
                last_write = fcgi_now_us();
            }
            if (fcgi_hub_go_live(sub) != 0) {
                continue;           /* fell behind while replaying: again */
            }
            need_sync = 0;
        }

        shop_arena_init(&arena, fcgi_blocks_grow, &blocks);
        shop_buf_init(&b, &arena, 4096);
        rc = fcgi_hub_next(sub, &b, FCGI_SSE_CHUNK, fcgi_sse_until(last_write, beat_us), &last);
        if (rc == FCGI_HUB_END) {
            why = fcgi_stopping() ? "shutdown" : "dropped";
            fcgi_blocks_reset(&blocks);
            break;
        }
        if (rc == FCGI_HUB_RESYNC) {
            need_sync = 1;
        } else if (rc == FCGI_HUB_IDLE && fcgi_now_us() < last_write + beat_us) {
            if (fcgi_sse_gone(st)) {
                fcgi_blocks_reset(&blocks);
                break;
            }
        } else if (rc == FCGI_HUB_EVENTS || rc == FCGI_HUB_IDLE) {
            const char *p = rc == FCGI_HUB_EVENTS ? b.p : SHOP_SSE_HEARTBEAT;
            size_t n = rc == FCGI_HUB_EVENTS ? b.len : sizeof(SHOP_SSE_HEARTBEAT) - 1;

            if (arena.failed || fcgi_sse_write(st, sub, p, n) != 0) {
                fcgi_blocks_reset(&blocks);
                break;
            }
            if (rc == FCGI_HUB_EVENTS) {
                /* Count frames, not bytes: one "id: " line each. */
                int64_t sent = 0;
                for (size_t i = 0; i + 4 <= b.len; i++) {
                    sent += (i == 0 || b.p[i - 1] == '\n') && memcmp(b.p + i, "id: ", 4) == 0;
                }
                events += sent;
                fcgi_metrics_delivered((uint64_t) sent);
            }
            last_write = fcgi_now_us();
        }
        fcgi_blocks_reset(&blocks);
    }

done:
    if (sub != NULL && fcgi_hub_dropped(sub) != NULL) {
        why = fcgi_hub_dropped(sub);
    }
    fcgi_hub_unsubscribe(sub);
    FCGX_Finish_r(st->rq);
    free(st->rq);
    fcgi_blocks_free(&blocks);
    fcgi_log(FCGI_LOG_INFO, "stream %s ended after %lld ms, %lld events: %s", st->rid,
             (long long) ((fcgi_now_us() - st->started) / 1000), (long long) events, why);
    free(st);
    fcgi_hub_unreserve();
    return NULL;
}

int
fcgi_sse_start(fcgi_sse *st)
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t block, old;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, FCGI_SSE_STACK);
    /* Stop signals belong to the main thread. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    errno = pthread_create(&tid, &attr, fcgi_sse_run, st);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (errno != 0) {
        fcgi_log(FCGI_LOG_ERROR, "stream %s: cannot start its thread: %s", st->rid,
                 strerror(errno));
        free(st);
        fcgi_hub_unreserve();
        return 0;
    }
    return 1;
}
