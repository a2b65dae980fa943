/* The event hub of one shop-fcgi process.
 *
 * One thread holds a connection of its own with LISTEN shop_events. On a
 * wake-up (another process's notification, or a change committed by one of
 * this process's request threads), and again a few milliseconds later
 * while the feed has a mark that is not settled yet, it reads the events
 * once for the whole process (events_read from the process cursor, see
 * core/feed.h), renders each settled one as an SSE frame and appends it to
 * a ring shared by the streams. A read after a local change also wakes
 * the other processes' hubs. After a lost connection it reconnects,
 * LISTENs again and reads on from its cursor: nothing is lost.
 *
 * A stream takes frames from the ring under the lock (copies; the writes to
 * its socket happen outside it). Each subscriber counts the bytes of its
 * topics published but not yet taken; the core's verdict
 * (shop_subscriber_verdict) says when one that does not keep up is
 * dropped: its socket is shut down, which ends a blocked write too. A
 * stream that falls behind the ring itself replays from the table instead,
 * so the ring bounds the memory. */
#include "shop_fcgi.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "feed.h"

/* The ring: at most this many events and bytes of frames. */
#define FCGI_HUB_RING        8192
#define FCGI_HUB_RING_BYTES  ((size_t) 16 * 1024 * 1024)
/* On SIGTERM streams get this long to end by themselves. */
#define FCGI_HUB_GRACE_US    2000000
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
    int        dropped;      /* a shop_sub_verdict other than KEEP */
    int64_t    writing;      /* fcgi_now_us() when its current write began; 0: none */
};

/* Request threads: a change committed (an eventfd; -1 until the hub runs). */
static int hub_wake_fd = -1;

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

const char *
fcgi_hub_dropped(fcgi_sub *sub)
{
    int d;

    pthread_mutex_lock(&hub.lock);
    d = sub->dropped;
    pthread_mutex_unlock(&hub.lock);
    return d ? shop_sub_verdict_reason((shop_sub_verdict) d) : NULL;
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

/* Drops the subscribers the core's verdict drops. Locked. */
static void
fcgi_hub_sweep_locked(void)
{
    size_t limit = (size_t) hub.settings->stream_buffer;
    int64_t now = fcgi_now_us();

    for (fcgi_sub *sub = hub.subs; sub != NULL; sub = sub->next) {
        shop_sub_verdict v;

        if (!sub->live || sub->dropped) {
            continue;
        }
        v = shop_subscriber_verdict(sub->backlog, limit,
                                    sub->writing != 0 ? (now - sub->writing) / 1000 : -1);
        if (v != SHOP_SUB_KEEP) {
            /* End it, and the write blocked on it. */
            sub->dropped = (int) v;
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

/* Appends rendered events, counts them against each subscriber and moves
 * the process cursor (every id up to it is published or never comes). */
static void
fcgi_hub_publish(fcgi_hub_event *ev, int n, int64_t cursor)
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
        for (fcgi_sub *sub = hub.subs; sub != NULL; sub = sub->next) {
            if (!(ev[i].topic & sub->topics) || sub->dropped) {
                continue;
            }
            sub->backlog += ev[i].len;
        }
    }
    if (cursor > hub.cursor) {
        hub.cursor = cursor;
    }
    fcgi_hub_sweep_locked();
    hub.published += (uint64_t) n;
    pthread_cond_broadcast(&hub.cond);
    pthread_mutex_unlock(&hub.lock);
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

/* Connects and LISTENs; the first read finds where the live feed starts. */
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
    if (PQsetnonblocking(conn, 0) != 0) {
        PQfinish(conn);
        return NULL;
    }
    fcgi_hub_warned = 0;
    return conn;
}

static shop_feed feed;              /* the LISTEN thread's */

/* One events_read: publishes the settled events after the cursor. 0, or
 * -1 when the connection failed. */
static int
fcgi_hub_read(PGconn *conn, fcgi_blocks *blocks)
{
    const char *name = shop_catalogue[SHOP_STMT_EVENTS_READ].name;
    fcgi_hub_event ev[SHOP_EVENTS_BATCH];
    shop_feed_query q;
    shop_arena arena;
    PGresult *res;
    int n, nev = 0, timed_out;
    char msg[256];

    shop_feed_query_init(&feed, &q, fcgi_now_us() / 1000);
    res = fcgi_pg_exec_within(conn, name, 6, q.values,
                              hub.settings->statement_timeout_ms + SHOP_STATEMENT_GRACE_MS,
                              &timed_out);
    n = shop_feed_result(&feed, res);
    if (n < 0) {
        fcgi_log(FCGI_LOG_WARN, "events: reading events failed: %s",
                 timed_out ? "no answer in time"
                 : fcgi_pg_message(res ? PQresultErrorMessage(res) : PQerrorMessage(conn),
                                   msg, sizeof(msg)));
        PQclear(res);
        return -1;
    }

    shop_arena_init(&arena, fcgi_blocks_grow, blocks);
    for (int i = 1; i <= n; i++) {
        shop_buf b;

        shop_buf_init(&b, &arena, 512);
        shop_event_sse(&b, res, i);
        if (arena.failed || (ev[nev].frame = malloc(b.len)) == NULL) {
            break;              /* out of memory: the rest a little later */
        }
        memcpy(ev[nev].frame, b.p, b.len);
        ev[nev].len = b.len;
        ev[nev].id = strtoll(PQgetvalue(res, i, SHOP_E_COL_ID), NULL, 10);
        ev[nev].topic = shop_topic_bit(PQgetvalue(res, i, SHOP_E_COL_TOPIC));
        nev++;
    }
    fcgi_blocks_reset(blocks);
    PQclear(res);
    if (shop_feed_advance(&feed, nev, nev > 0 ? ev[nev - 1].id : 0)) {
        fcgi_log(FCGI_LOG_INFO, "events: listening from event %lld", (long long) feed.cursor);
    }
    if (nev > 0 || feed.cursor >= 0) {
        fcgi_hub_publish(ev, nev, feed.cursor);
    }
    return 0;
}

/* Takes the wake-ups libpq parsed. It queues one it parsed while reading a
 * result, and parses what followed the result only when asked: both are in
 * its buffer, not on the socket, and poll() would not see them. Our own
 * announcements wake the other processes, not us. */
static void
fcgi_hub_notified(PGconn *conn)
{
    PGnotify *nf;

    while ((nf = PQnotifies(conn)) != NULL) {
        shop_feed_notified(&feed, nf->be_pid, PQbackendPID(conn));
        PQfreemem(nf);
    }
}

void
fcgi_hub_wake(void)
{
    uint64_t one = 1;

    if (hub_wake_fd >= 0 && write(hub_wake_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is full of wake-ups already */
    }
}

static void *
fcgi_hub_run(void *arg)
{
    fcgi_blocks blocks = { 0 };
    PGconn *conn = NULL;
    int64_t read_at = 0;
    char msg[256];

    (void) arg;
    shop_feed_init(&feed);
    while (!fcgi_stopping()) {
        struct pollfd pfd[3];
        int64_t now, wait;

        if (conn == NULL) {
            conn = fcgi_hub_connect();
            if (conn == NULL) {
                fcgi_stop_wait(1000);
                continue;
            }
            if (feed.cursor >= 0) {
                fcgi_log(FCGI_LOG_INFO, "events: listening again, reading on from event %lld",
                         (long long) feed.cursor);
            }
            shop_feed_woken(&feed, 0);      /* what committed while we were away */
            read_at = 0;
        }

        now = fcgi_now_us();
        if (now >= read_at) {
            if (fcgi_hub_read(conn, &blocks) < 0) {
                PQfinish(conn);
                conn = NULL;
                continue;
            }
            fcgi_hub_notified(conn);
            now = fcgi_now_us();
            read_at = now + shop_feed_next_read(&feed, now / 1000) * 1000;
        }

        wait = (read_at - now + 999) / 1000;
        if (wait > FCGI_HUB_SWEEP_MS) {
            wait = FCGI_HUB_SWEEP_MS;
        }
        pfd[0] = (struct pollfd) { PQsocket(conn), POLLIN, 0 };
        pfd[1] = (struct pollfd) { fcgi_stop_fd(), POLLIN, 0 };
        pfd[2] = (struct pollfd) { hub_wake_fd, POLLIN, 0 };
        if (poll(pfd, 3, (int) (wait > 0 ? wait : 0)) < 0 && errno != EINTR) {
            fcgi_stop_wait(10);
        }
        if (pfd[1].revents & POLLIN) {
            break;
        }
        if (pfd[2].revents & POLLIN) {
            uint64_t count;
            if (read(hub_wake_fd, &count, sizeof(count)) > 0) {
                shop_feed_woken(&feed, 1);
            }
        }
        if (pfd[0].revents != 0) {
            if (!PQconsumeInput(conn)) {
                fcgi_log(FCGI_LOG_WARN, "events: connection lost: %s; reconnecting",
                         fcgi_pg_message(PQerrorMessage(conn), msg, sizeof(msg)));
                PQfinish(conn);
                conn = NULL;
                continue;
            }
            fcgi_hub_notified(conn);
        }
        if (feed.wake) {
            now = fcgi_now_us();
            read_at = now + shop_feed_next_read(&feed, now / 1000) * 1000;
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
    /* Request threads wake the LISTEN thread when a change committed. */
    hub_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (hub_wake_fd < 0) {
        fcgi_log(FCGI_LOG_ERROR, "events: eventfd: %s", strerror(errno));
        return -1;
    }
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
    if (hub_wake_fd >= 0) {
        close(hub_wake_fd);
        hub_wake_fd = -1;
    }
}
