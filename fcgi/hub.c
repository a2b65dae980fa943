/* The event hub of one shop-fcgi process.
 *
 * One thread holds a connection of its own with LISTEN shop_events. On a
 * wake-up it reads the new rows once for the whole process (events_after
 * from the process cursor), keeps the leading rows that are ready (every
 * transaction that could still commit a smaller id has ended; see
 * shop.emit), renders each as an SSE frame and appends it to a ring shared
 * by the streams. Rows that are not ready yet are read again a few
 * milliseconds later, notification or not. After a lost connection it
 * reconnects, LISTENs again and reads on from its cursor: nothing is lost.
 *
 * A stream takes frames from the ring under the lock (copies; the writes to
 * its socket happen outside it). Each subscriber counts the bytes of its
 * topics published but not yet taken. One that has more than stream_buffer
 * waiting while its write to the client has been blocked for a second is
 * dropped: its socket is shut down, which ends the blocked write too (a
 * large batch alone drops nobody: a reading client takes it in
 * milliseconds). A stream that falls behind the ring itself replays from
 * the table instead, so the ring bounds the memory. */
#include "shop_fcgi.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "events.h"

/* The ring: at most this many events and bytes of frames. */
#define FCGI_HUB_RING        8192
#define FCGI_HUB_RING_BYTES  ((size_t) 16 * 1024 * 1024)
/* Rows per events_after read. */
#define FCGI_HUB_BATCH       500
#define FCGI_HUB_BATCH_STR   "500"
/* Non-ready rows: read again after this long, doubling up to the max. */
#define FCGI_HUB_PENDING_MS      2
#define FCGI_HUB_PENDING_MAX_MS  200
/* With nothing to do, read anyway this often (it also checks the connection). */
#define FCGI_HUB_IDLE_MS     30000
/* On SIGTERM streams get this long to end by themselves. */
#define FCGI_HUB_GRACE_US    2000000
/* A subscriber over its buffer is dropped once a write blocked this long. */
#define FCGI_HUB_STALL_US    1000000
/* The LISTEN thread looks for stalled subscribers this often. */
#define FCGI_HUB_SWEEP_MS    500

typedef struct {
    int64_t   id;
    unsigned  topic;
    size_t    len;
    char     *frame;
} fcgi_hub_event;

struct fcgi_sub {
    fcgi_sub  *next;
    fcgi_sub  *prev;
    int        fd;
    unsigned   topics;
    uint64_t   pos;          /* ring sequence of the next event to look at */
    size_t     backlog;      /* bytes of its topics published since its sync, not taken */
    int        live;         /* taking from the ring: may be dropped */
    int        dropped;
    int64_t    writing;      /* fcgi_now_us() when its current write began; 0: none */
};

static struct {
    pthread_mutex_t      lock;
    pthread_cond_t       cond;       /* new events, stop, a stream ended */
    fcgi_hub_event       ring[FCGI_HUB_RING];
    uint64_t             first;      /* the ring holds sequences [first, seq) */
    uint64_t             seq;
    size_t               bytes;
    int64_t              cursor;     /* every event <= cursor was published; -1: not yet read */
    int                  stopping;
    fcgi_sub            *subs;
    int                  streams;    /* slots taken */
    const shop_settings *settings;
    pthread_t            tid;
    int                  running;
    uint64_t             published;  /* events, for the log */
} hub;   /* zero-initialized, so the ring costs no file size; set up in fcgi_hub_start() */


/* ---- streams' side ---------------------------------------------------------- */

static void
fcgi_hub_deadline(struct timespec *ts, int64_t until_us)
{
    ts->tv_sec = (time_t) (until_us / 1000000);
    ts->tv_nsec = (long) (until_us % 1000000) * 1000;
}

int
fcgi_hub_reserve(void)
{
    int rc = -1;

    pthread_mutex_lock(&hub.lock);
    if (!hub.stopping && hub.streams < hub.settings->max_streams) {
        hub.streams++;
        rc = 0;
    }
    pthread_mutex_unlock(&hub.lock);
    return rc;
}

void
fcgi_hub_unreserve(void)
{
    pthread_mutex_lock(&hub.lock);
    hub.streams--;
    pthread_cond_broadcast(&hub.cond);
    pthread_mutex_unlock(&hub.lock);
}

int
fcgi_hub_streams(void)
{
    int n;

    pthread_mutex_lock(&hub.lock);
    n = hub.streams;
    pthread_mutex_unlock(&hub.lock);
    return n;
}

fcgi_sub *
fcgi_hub_subscribe(int fd, unsigned topics)
{
    fcgi_sub *sub = calloc(1, sizeof(*sub));

    if (sub == NULL) {
        return NULL;
    }
    sub->fd = fd;
    sub->topics = topics;
    pthread_mutex_lock(&hub.lock);
    sub->pos = hub.seq;
    sub->next = hub.subs;
    if (hub.subs != NULL) {
        hub.subs->prev = sub;
    }
    hub.subs = sub;
    pthread_mutex_unlock(&hub.lock);
    return sub;
}

void
fcgi_hub_unsubscribe(fcgi_sub *sub)
{
    if (sub == NULL) {
        return;
    }
    pthread_mutex_lock(&hub.lock);
    if (sub->prev != NULL) {
        sub->prev->next = sub->next;
    } else {
        hub.subs = sub->next;
    }
    if (sub->next != NULL) {
        sub->next->prev = sub->prev;
    }
    pthread_mutex_unlock(&hub.lock);
    free(sub);
}

void
fcgi_hub_writing(fcgi_sub *sub, int on)
{
    pthread_mutex_lock(&hub.lock);
    sub->writing = on ? fcgi_now_us() : 0;
    pthread_mutex_unlock(&hub.lock);
}

int
fcgi_hub_dropped(fcgi_sub *sub)
{
    int d;

    pthread_mutex_lock(&hub.lock);
    d = sub->dropped;
    pthread_mutex_unlock(&hub.lock);
    return d;
}

int
fcgi_hub_sync(fcgi_sub *sub, int64_t until, int64_t *cursor)
{
    struct timespec ts;
    int rc;

    fcgi_hub_deadline(&ts, until);
    pthread_mutex_lock(&hub.lock);
    while (hub.cursor < 0 && !hub.stopping && !sub->dropped) {
        if (pthread_cond_timedwait(&hub.cond, &hub.lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (hub.stopping || sub->dropped) {
        rc = FCGI_HUB_END;
    } else if (hub.cursor < 0) {
        rc = FCGI_HUB_IDLE;
    } else {
        sub->pos = hub.seq;
        sub->backlog = 0;
        sub->live = 0;
        *cursor = hub.cursor;
        rc = FCGI_HUB_EVENTS;
    }
    pthread_mutex_unlock(&hub.lock);
    return rc;
}

int
fcgi_hub_go_live(fcgi_sub *sub)
{
    int rc = 0;

    pthread_mutex_lock(&hub.lock);
    if (sub->pos < hub.first || sub->backlog > (size_t) hub.settings->stream_buffer) {
        rc = FCGI_HUB_RESYNC;
    } else {
        sub->live = 1;
    }
    pthread_mutex_unlock(&hub.lock);
    return rc;
}

int
fcgi_hub_next(fcgi_sub *sub, shop_buf *out, size_t max, int64_t until, int64_t *last)
{
    struct timespec ts;
    int rc = FCGI_HUB_IDLE;

    fcgi_hub_deadline(&ts, until);
    pthread_mutex_lock(&hub.lock);
    for ( ;; ) {
        if (hub.stopping || sub->dropped) {
            rc = FCGI_HUB_END;
            break;
        }
        if (sub->pos < hub.first) {
            sub->live = 0;
            rc = FCGI_HUB_RESYNC;
            break;
        }
        while (sub->pos < hub.seq && out->len < max) {
            const fcgi_hub_event *e = &hub.ring[sub->pos % FCGI_HUB_RING];

            if (e->topic & sub->topics) {
                sub->backlog -= e->len <= sub->backlog ? e->len : sub->backlog;
                if (e->id > *last) {
                    shop_buf_add(out, e->frame, e->len);
                    *last = e->id;
                    rc = FCGI_HUB_EVENTS;
                }
            }
            sub->pos++;
        }
        if (rc == FCGI_HUB_EVENTS) {
            break;
        }
        if (pthread_cond_timedwait(&hub.cond, &hub.lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&hub.lock);
    return rc;
}


/* ---- the LISTEN thread -------------------------------------------------------- */

/* Drops the subscribers over their buffer whose write is stuck. Locked. */
static void
fcgi_hub_sweep_locked(void)
{
    size_t limit = (size_t) hub.settings->stream_buffer;
    int64_t now = fcgi_now_us();

    for (fcgi_sub *sub = hub.subs; sub != NULL; sub = sub->next) {
        if (sub->live && !sub->dropped && sub->backlog > limit && sub->writing != 0
            && now - sub->writing >= FCGI_HUB_STALL_US) {
            /* It does not read: end it, and the write blocked on it. */
            sub->dropped = 1;
            fcgi_metrics_dropped();
            shutdown(sub->fd, SHUT_RDWR);
            pthread_cond_broadcast(&hub.cond);
        }
    }
}

static void
fcgi_hub_sweep(void)
{
    pthread_mutex_lock(&hub.lock);
    fcgi_hub_sweep_locked();
    pthread_mutex_unlock(&hub.lock);
}

/* Appends rendered events and counts them against each subscriber. */
static void
fcgi_hub_publish(fcgi_hub_event *ev, int n)
{
    pthread_mutex_lock(&hub.lock);
    for (int i = 0; i < n; i++) {
        while (hub.seq - hub.first >= FCGI_HUB_RING
               || (hub.bytes + ev[i].len > FCGI_HUB_RING_BYTES && hub.first < hub.seq)) {
            fcgi_hub_event *old = &hub.ring[hub.first % FCGI_HUB_RING];
            hub.bytes -= old->len;
            free(old->frame);
            old->frame = NULL;
            hub.first++;
        }
        hub.ring[hub.seq % FCGI_HUB_RING] = ev[i];
        hub.seq++;
        hub.bytes += ev[i].len;
        hub.cursor = ev[i].id;
        for (fcgi_sub *sub = hub.subs; sub != NULL; sub = sub->next) {
            if (!(ev[i].topic & sub->topics) || sub->dropped) {
                continue;
            }
            sub->backlog += ev[i].len;
        }
    }
    fcgi_hub_sweep_locked();
    hub.published += (uint64_t) n;
    pthread_cond_broadcast(&hub.cond);
    pthread_mutex_unlock(&hub.lock);
}

static void
fcgi_hub_set_cursor(int64_t cursor)
{
    pthread_mutex_lock(&hub.lock);
    if (hub.cursor < 0) {
        hub.cursor = cursor;
        pthread_cond_broadcast(&hub.cond);
    }
    pthread_mutex_unlock(&hub.lock);
}

static int64_t
fcgi_hub_cursor(void)
{
    int64_t c;

    pthread_mutex_lock(&hub.lock);
    c = hub.cursor;
    pthread_mutex_unlock(&hub.lock);
    return c;
}

static void
fcgi_hub_stopping(void)
{
    pthread_mutex_lock(&hub.lock);
    hub.stopping = 1;
    pthread_cond_broadcast(&hub.cond);
    pthread_mutex_unlock(&hub.lock);
}

/* While the database is down the hub tries once a second: the first
 * failure is logged, then one every FCGI_HUB_REMIND_US. */
#define FCGI_HUB_REMIND_US  30000000

static int64_t fcgi_hub_warned;      /* the LISTEN thread's; 0: up */

static void
fcgi_hub_failed(const char *what, const char *why)
{
    int64_t now = fcgi_now_us();

    if (fcgi_hub_warned == 0 || now - fcgi_hub_warned >= FCGI_HUB_REMIND_US) {
        fcgi_log(FCGI_LOG_WARN, "events: %s%s%s; retrying every second", what,
                 why[0] != '\0' ? ": " : "", why);
        fcgi_hub_warned = now;
    }
}

/* Connects, LISTENs and, the first time, finds where the live feed starts. */
static PGconn *
fcgi_hub_connect(void)
{
    char err[512];
    PGconn *conn;
    PGresult *res;

    conn = fcgi_pg_connect(hub.settings->database, FCGI_PROG " events",
                           hub.settings->statement_timeout_ms, err, sizeof(err));
    if (conn == NULL) {
        fcgi_hub_failed(err, "");
        return NULL;
    }
    if (fcgi_pg_prepare(conn, err, sizeof(err)) != 0) {
        fcgi_hub_failed(err, "");
        PQfinish(conn);
        return NULL;
    }
    /* LISTEN before reading: a change committed in between wakes us. */
    res = PQexec(conn, "LISTEN shop_events");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fcgi_hub_failed("LISTEN failed", fcgi_pg_message(PQerrorMessage(conn), err, sizeof(err)));
        PQclear(res);
        PQfinish(conn);
        return NULL;
    }
    PQclear(res);
    if (fcgi_hub_cursor() < 0) {
        res = PQexecPrepared(conn, shop_catalogue[SHOP_STMT_EVENTS_HEAD].name, 0, NULL, NULL,
                             NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            fcgi_hub_failed("events_head failed",
                            fcgi_pg_message(PQerrorMessage(conn), err, sizeof(err)));
            PQclear(res);
            PQfinish(conn);
            return NULL;
        }
        fcgi_hub_set_cursor(strtoll(PQgetvalue(res, 0, 0), NULL, 10));
        PQclear(res);
    }
    if (PQsetnonblocking(conn, 0) != 0) {
        PQfinish(conn);
        return NULL;
    }
    fcgi_hub_warned = 0;
    return conn;
}

/* Reads and publishes every ready event after the cursor: 0 when all rows
 * were ready, 1 when some were not yet, -1 when the connection failed. */
static int
fcgi_hub_read(PGconn *conn, fcgi_blocks *blocks)
{
    const char *name = shop_catalogue[SHOP_STMT_EVENTS_AFTER].name;
    fcgi_hub_event ev[FCGI_HUB_BATCH];
    char after[24], msg[256];

    for ( ;; ) {
        const char *values[2] = { after, FCGI_HUB_BATCH_STR };
        PGresult *res;
        int n, ready, nev = 0;
        shop_arena arena;

        snprintf(after, sizeof(after), "%lld", (long long) fcgi_hub_cursor());
        res = PQexecPrepared(conn, name, 2, values, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            fcgi_log(FCGI_LOG_WARN, "events: reading events failed: %s",
                     fcgi_pg_message(res ? PQresultErrorMessage(res) : PQerrorMessage(conn),
                                     msg, sizeof(msg)));
            PQclear(res);
            return -1;
        }
        n = PQntuples(res);
        ready = shop_events_ready(res);

        shop_arena_init(&arena, fcgi_blocks_grow, blocks);
        for (int i = 0; i < ready; i++) {
            shop_buf b;

            shop_buf_init(&b, &arena, 512);
            shop_event_sse(&b, res, i);
            if (arena.failed || (ev[nev].frame = malloc(b.len)) == NULL) {
                break;              /* out of memory: the rest comes next time */
            }
            memcpy(ev[nev].frame, b.p, b.len);
            ev[nev].len = b.len;
            ev[nev].id = strtoll(PQgetvalue(res, i, SHOP_E_COL_ID), NULL, 10);
            ev[nev].topic = shop_topic_bit(PQgetvalue(res, i, SHOP_E_COL_TOPIC));
            nev++;
        }
        fcgi_blocks_reset(blocks);
        PQclear(res);
        if (nev > 0) {
            fcgi_hub_publish(ev, nev);
        }
        if (nev < ready || ready < n) {
            return 1;
        }
        if (n < FCGI_HUB_BATCH) {
            return 0;
        }
    }
}

/* 1 when a wake-up came. libpq queues one it parsed while reading a result,
 * and parses what followed the result only when asked: both are in its
 * buffer, not on the socket, and poll() would not see them. */
static int
fcgi_hub_notified(PGconn *conn)
{
    PGnotify *nf;
    int any = 0;

    while ((nf = PQnotifies(conn)) != NULL) {
        PQfreemem(nf);
        any = 1;
    }
    return any;
}

static void *
fcgi_hub_run(void *arg)
{
    fcgi_blocks blocks = { 0 };
    PGconn *conn = NULL;
    int64_t pending_ms = 0, read_at = 0;
    int read_now = 1;
    char msg[256];

    (void) arg;
    while (!fcgi_stopping()) {
        struct pollfd pfd[2];
        int64_t now, wait;
        int rc;

        if (conn == NULL) {
            conn = fcgi_hub_connect();
            if (conn == NULL) {
                fcgi_stop_wait(1000);
                continue;
            }
            fcgi_log(FCGI_LOG_INFO, "events: listening from event %lld",
                     (long long) fcgi_hub_cursor());
            read_now = 1;           /* what committed while we were away */
        }

        now = fcgi_now_us();
        if (read_now || now >= read_at) {
            rc = fcgi_hub_read(conn, &blocks);
            if (rc < 0) {
                PQfinish(conn);
                conn = NULL;
                continue;
            }
            if (rc == 1) {
                /* Rows not ready yet: again soon, notification or not. */
                pending_ms = pending_ms == 0 ? FCGI_HUB_PENDING_MS
                             : pending_ms * 2 > FCGI_HUB_PENDING_MAX_MS ? FCGI_HUB_PENDING_MAX_MS
                             : pending_ms * 2;
            } else {
                pending_ms = 0;
            }
            now = fcgi_now_us();
            read_at = now + (pending_ms > 0 ? pending_ms : FCGI_HUB_IDLE_MS) * 1000;
            read_now = fcgi_hub_notified(conn);
        }

        wait = read_now ? 0 : (read_at - now + 999) / 1000;
        if (wait > FCGI_HUB_SWEEP_MS) {
            wait = FCGI_HUB_SWEEP_MS;
        }
        pfd[0] = (struct pollfd) { PQsocket(conn), POLLIN, 0 };
        pfd[1] = (struct pollfd) { fcgi_stop_fd(), POLLIN, 0 };
        if (poll(pfd, 2, (int) (wait > 0 ? wait : 0)) < 0 && errno != EINTR) {
            fcgi_stop_wait(10);
        }
        if (pfd[1].revents & POLLIN) {
            break;
        }
        if (pfd[0].revents != 0) {
            if (!PQconsumeInput(conn)) {
                fcgi_log(FCGI_LOG_WARN, "events: connection lost: %s; reconnecting",
                         fcgi_pg_message(PQerrorMessage(conn), msg, sizeof(msg)));
                PQfinish(conn);
                conn = NULL;
                continue;
            }
            read_now |= fcgi_hub_notified(conn);
        }
        fcgi_hub_sweep();
    }
    fcgi_hub_stopping();
    PQfinish(conn);
    fcgi_blocks_free(&blocks);
    return NULL;
}

int
fcgi_hub_start(const shop_settings *s)
{
    pthread_condattr_t attr;

    hub.settings = s;
    hub.cursor = -1;
    pthread_mutex_init(&hub.lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&hub.cond, &attr);
    pthread_condattr_destroy(&attr);

    errno = pthread_create(&hub.tid, NULL, fcgi_hub_run, NULL);
    if (errno != 0) {
        fcgi_log(FCGI_LOG_ERROR, "events: cannot start the LISTEN thread: %s", strerror(errno));
        return -1;
    }
    hub.running = 1;
    return 0;
}

void
fcgi_hub_stop(void)
{
    struct timespec ts;
    int cut = 0;

    fcgi_hub_stopping();
    pthread_mutex_lock(&hub.lock);
    fcgi_hub_deadline(&ts, fcgi_now_us() + FCGI_HUB_GRACE_US);
    while (hub.streams > 0) {
        if (pthread_cond_timedwait(&hub.cond, &hub.lock, &ts) == ETIMEDOUT) {
            /* Stuck in a write to a client that does not read: cut them,
             * and any that subscribe late, once a second. */
            for (fcgi_sub *sub = hub.subs; sub != NULL; sub = sub->next) {
                shutdown(sub->fd, SHUT_RDWR);
                cut++;
            }
            fcgi_hub_deadline(&ts, fcgi_now_us() + 1000000);
        }
    }
    pthread_mutex_unlock(&hub.lock);
    if (cut > 0) {
        fcgi_log(FCGI_LOG_WARN, "events: cut %d streams that did not end in time", cut);
    }
    if (hub.running) {
        pthread_join(hub.tid, NULL);
        hub.running = 0;
    }
    for (uint64_t q = hub.first; q < hub.seq; q++) {
        free(hub.ring[q % FCGI_HUB_RING].frame);
    }
    hub.first = hub.seq;
    hub.bytes = 0;
    pthread_cond_destroy(&hub.cond);
}
