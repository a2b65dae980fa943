/* A blocking pool of libpq connections shared by the request threads.
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
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long the pool answers 503 without trying after a failed connect. */
#define FCGI_POOL_DOWN_US  250000

struct fcgi_pool {
    pthread_mutex_t      lock;
    pthread_cond_t       cond;
    const shop_settings *settings;
    PGconn             **idle;
    int                  nidle;
    int                  total;       /* idle, in use and being connected */
    int                  size;
    int                  waiting;
    int64_t              down_until;  /* fcgi_now_us() */
};

fcgi_pool *
fcgi_pool_create(const shop_settings *s)
{
    pthread_condattr_t attr;
    fcgi_pool *p;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->settings = s;
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

static PGconn *
fcgi_pool_connect(fcgi_pool *p)
{
    char err[512];
    PGconn *conn;
    int rc;

    conn = fcgi_pg_connect(p->settings, FCGI_PROG, p->settings->statement_timeout_ms,
                           err, sizeof(err));
    if (conn == NULL) {
        fcgi_log(FCGI_LOG_ERROR, "database unavailable: %s", err);
        return NULL;
    }
    rc = fcgi_pg_prepare(conn, err, sizeof(err));
    if (rc == FCGI_PG_WRONG) {
        /* The schema no longer matches the code: refuse to serve with it. */
        fcgi_log(FCGI_LOG_ERROR, "catalogue mismatch, not serving: %s", err);
    } else if (rc != 0) {
        fcgi_log(FCGI_LOG_ERROR, "database unavailable: %s", err);
    }
    if (rc != 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

PGconn *
fcgi_pool_acquire(fcgi_pool *p)
{
    struct timespec deadline;
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
            pthread_mutex_unlock(&p->lock);

            conn = fcgi_pool_connect(p);

            pthread_mutex_lock(&p->lock);
            if (conn != NULL) {
                p->down_until = 0;
                pthread_mutex_unlock(&p->lock);
                return conn;
            }
            p->total--;
            p->down_until = fcgi_now_us() + FCGI_POOL_DOWN_US;
            /* Waiters see the pool down and give up at once. */
            pthread_cond_broadcast(&p->cond);
            break;
        }

        if (p->waiting >= p->settings->pool_queue) {
            break;
        }
        p->waiting++;
        rc = pthread_cond_timedwait(&p->cond, &p->lock, &deadline);
        p->waiting--;
        if (rc == ETIMEDOUT) {
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
