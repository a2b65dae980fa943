/* A blocking pool of libpq connections shared by the request threads: the
 * shop's database ("primary"), and a read replica ("read", when
 * read_database is set) with the same code: the same catalogue prepared and
 * checked on each connection.
 *
 * Connections are made lazily, up to pool_size, each with the catalogue
 * prepared. A request that finds all of them busy waits on a condition
 * variable, bounded in number (pool_queue) and time (pool_queue_timeout).
 * When a connect fails the pool is "down" for a short while and requests
 * fail at once, so an outage costs each request microseconds, not a
 * connect timeout. */
#include "shop_fcgi.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long the pool answers 503 without trying after a failed connect. */
#define FCGI_POOL_DOWN_US  250000
/* A request turned away by a full pool is logged at most this often. */
#define FCGI_POOL_WARN_US  1000000
/* A database that stays down is mentioned again this often. */
#define FCGI_POOL_REMIND_US 30000000

struct fcgi_pool {
    pthread_mutex_t      lock;
    pthread_cond_t       cond;
    const shop_settings *settings;
    const char          *name;        /* "primary", "read": logs and metrics */
    const char          *dsn;
    const char          *app;         /* application_name */
    PGconn             **idle;
    int                  nidle;
    int                  total;       /* idle, in use and being connected */
    int                  connecting;
    int                  size;
    int                  waiting;
    int                  down;        /* the last connect failed */
    int64_t              down_until;  /* fcgi_now_us(): no connect tried before */
    int64_t              down_since;
    int64_t              reminded;
    int64_t              warned;      /* when a full pool was last logged */
    int                  turned_away; /* since then */
};

fcgi_pool *
fcgi_pool_create(const shop_settings *s, const char *name, const char *dsn, const char *app)
{
    pthread_condattr_t attr;
    fcgi_pool *p;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->settings = s;
    p->name = name;
    p->dsn = dsn;
    p->app = app;
    p->size = (int) s->pool_size;
    p->idle = calloc((size_t) p->size, sizeof(PGconn *));
    if (p->idle == NULL) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    /* Waits are measured on the monotonic clock, as fcgi_now_us(). */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &attr);
    pthread_condattr_destroy(&attr);
    return p;
}

void
fcgi_pool_adopt(fcgi_pool *p, PGconn *conn)
{
    pthread_mutex_lock(&p->lock);
    if (p->total < p->size) {
        p->idle[p->nidle++] = conn;
        p->total++;
        conn = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    PQfinish(conn);
}

/* An idle connection has nothing to read: if its socket is readable, the
 * server closed it (restart, terminated backend) or sent something we
 * never asked for. Either way it is not worth trusting with a request. */
static int
fcgi_pool_usable(PGconn *conn)
{
    struct pollfd pfd;

    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        return 0;
    }
    pfd.fd = PQsocket(conn);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (pfd.fd < 0) {
        return 0;
    }
    return poll(&pfd, 1, 0) == 0;
}

/* A new connection with the catalogue prepared, or NULL with err set (a
 * schema that no longer matches the code is refused like a database down). */
static PGconn *
fcgi_pool_connect(fcgi_pool *p, char *err, size_t errlen)
{
    PGconn *conn;
    int rc;

    conn = fcgi_pg_connect(p->dsn, p->app, p->settings->statement_timeout_ms, err, errlen);
    if (conn == NULL) {
        return NULL;
    }
    rc = fcgi_pg_prepare(conn, err, errlen);
    if (rc == FCGI_PG_WRONG) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (catalogue mismatch: not serving with it)");
    }
    if (rc != 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* A connect failed: logged when the database goes down (error), then once
 * every FCGI_POOL_REMIND_US while it stays down (warn). Locked. */
static void
fcgi_pool_failed(fcgi_pool *p, const char *err)
{
    int64_t now = fcgi_now_us();

    if (!p->down) {
        fcgi_log(FCGI_LOG_ERROR, "%s database unavailable, answering 503 until it is back: %s",
                 p->name, err);
        p->down_since = p->reminded = now;
    } else if (now - p->reminded >= FCGI_POOL_REMIND_US) {
        fcgi_log(FCGI_LOG_WARN, "%s database still unavailable after %lld s: %s", p->name,
                 (long long) ((now - p->down_since) / 1000000), err);
        p->reminded = now;
    }
    p->down = 1;
    p->down_until = now + FCGI_POOL_DOWN_US;
}

/* Every connection busy: the request answers 503. Logged (warn) once a
 * second at most, with how many were turned away meanwhile. Locked. */
static void
fcgi_pool_turned_away(fcgi_pool *p, const char *why)
{
    int64_t now = fcgi_now_us();

    p->turned_away++;
    if (now - p->warned < FCGI_POOL_WARN_US) {
        return;
    }
    fcgi_log(FCGI_LOG_WARN, "%s pool: %d requests answered 503 since the last report, the "
             "last as %s (%d connections, %d waiting)", p->name, p->turned_away, why, p->size,
             p->waiting);
    p->warned = now;
    p->turned_away = 0;
}

void
fcgi_pool_down(fcgi_pool *p, const char *err)
{
    pthread_mutex_lock(&p->lock);
    fcgi_pool_failed(p, err);
    pthread_mutex_unlock(&p->lock);
}

PGconn *
fcgi_pool_acquire(fcgi_pool *p)
{
    struct timespec deadline;
    char err[512];
    int64_t now, until;
    PGconn *conn;
    int rc;

    now = fcgi_now_us();
    until = now + p->settings->pool_queue_timeout_ms * 1000;
    deadline.tv_sec = (time_t) (until / 1000000);
    deadline.tv_nsec = (long) (until % 1000000) * 1000;

    pthread_mutex_lock(&p->lock);
    for ( ;; ) {
        while (p->nidle > 0) {
            conn = p->idle[--p->nidle];
            if (fcgi_pool_usable(conn)) {
                pthread_mutex_unlock(&p->lock);
                return conn;
            }
            /* PQfinish on a dead socket does not block. */
            PQfinish(conn);
            p->total--;
        }

        if (p->total < p->size) {
            if (fcgi_now_us() < p->down_until) {
                break;
            }
            /* Take the slot, connect without holding the lock. */
            p->total++;
            p->connecting++;
            pthread_mutex_unlock(&p->lock);

            conn = fcgi_pool_connect(p, err, sizeof(err));

            pthread_mutex_lock(&p->lock);
            p->connecting--;
            if (conn != NULL) {
                if (p->down) {
                    fcgi_log(FCGI_LOG_INFO, "%s database is back after %lld ms", p->name,
                             (long long) ((fcgi_now_us() - p->down_since) / 1000));
                }
                p->down = 0;
                p->down_until = 0;
                pthread_mutex_unlock(&p->lock);
                return conn;
            }
            p->total--;
            fcgi_pool_failed(p, err);
            /* Waiters see the pool down and give up at once. */
            pthread_cond_broadcast(&p->cond);
            break;
        }

        if (p->waiting >= p->settings->pool_queue) {
            fcgi_pool_turned_away(p, "its queue is full");
            break;
        }
        p->waiting++;
        rc = pthread_cond_timedwait(&p->cond, &p->lock, &deadline);
        p->waiting--;
        if (rc == ETIMEDOUT) {
            fcgi_pool_turned_away(p, "no connection came free in time");
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void
fcgi_pool_release(fcgi_pool *p, PGconn *conn)
{
    int keep = PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE;

    if (!keep) {
        PQfinish(conn);
    }
    pthread_mutex_lock(&p->lock);
    if (keep) {
        p->idle[p->nidle++] = conn;
    } else {
        p->total--;
    }
    /* Either a connection or a free slot: one waiter can proceed. */
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void
fcgi_pool_gauges(fcgi_pool *p, int64_t gauges[4], int64_t *waiting)
{
    pthread_mutex_lock(&p->lock);
    gauges[0] += p->nidle;
    gauges[1] += p->total - p->nidle - p->connecting;
    gauges[2] += p->connecting;
    /* Slots the pool cannot fill while its database is down. */
    gauges[3] += p->down ? p->size - p->total : 0;
    *waiting += p->waiting;
    pthread_mutex_unlock(&p->lock);
}

void
fcgi_pool_destroy(fcgi_pool *p)
{
    if (p == NULL) {
        return;
    }
    for (int i = 0; i < p->nidle; i++) {
        PQfinish(p->idle[i]);
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->idle);
    free(p);
}
