/* Serving: check the database once, start the background threads (the
 * warehouse registry and the stock check's connections, the event hub,
 * retention), then N threads accept on fd 0 (the socket spawn-fcgi hands
 * over) until a signal stops them. An event stream moves to a thread of its
 * own, so a request thread is never held by one. */
#include "shop_fcgi.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcgiapp.h>

/* The accept lock, as in libfcgi's threaded example: one thread in accept. */
static pthread_mutex_t fcgi_accept_lock = PTHREAD_MUTEX_INITIALIZER;

static void *
fcgi_worker_run(void *arg)
{
    fcgi_worker *w = arg;
    FCGX_Request *rq = NULL;
    int rc;

    fcgi_rid_seed(&w->rid);

    for ( ;; ) {
        if (rq == NULL) {
            /* On the heap: a stream's thread takes the request over. */
            rq = malloc(sizeof(*rq));
            if (rq == NULL) {
                if (fcgi_stop_wait(100)) {
                    break;
                }
                continue;
            }
            FCGX_InitRequest(rq, 0, 0);
        }

        pthread_mutex_lock(&fcgi_accept_lock);
        rc = fcgi_stopping() ? -1 : FCGX_Accept_r(rq);
        pthread_mutex_unlock(&fcgi_accept_lock);

        if (rc < 0) {
            if (fcgi_stopping()) {
                break;
            }
            /* EMFILE and the like: do not spin, try again. */
            fcgi_log(FCGI_LOG_ERROR, "thread %d: accept failed: %s", w->index,
                     rc > -1000 ? strerror(-rc) : "libfcgi error");
            nanosleep(&(struct timespec) { 0, 100L * 1000 * 1000 }, NULL);
            continue;
        }

        if (fcgi_request_handle(w, rq)) {
            rq = NULL;
        } else {
            FCGX_Finish_r(rq);
        }
    }

    if (rq != NULL) {
        FCGX_Free(rq, 1);
        free(rq);
    }
    fcgi_blocks_free(&w->blocks);
    return NULL;
}

/* The start-up check: a schema that does not match the code stops us here;
 * a database that is merely down does not, the pool answers 503 until it
 * is back. */
static int
fcgi_serve_check(const shop_settings *s, PGconn **out)
{
    char err[512];
    PGconn *conn;
    int rc;

    conn = fcgi_pg_connect(s, FCGI_PROG, s->statement_timeout_ms, err, sizeof(err));
    if (conn == NULL) {
        fcgi_log(FCGI_LOG_WARN, "database unavailable at start-up, answering 503 until it is "
                 "back: %s", err);
        return 0;
    }
    rc = fcgi_pg_prepare(conn, err, sizeof(err));
    if (rc == FCGI_PG_WRONG) {
        fcgi_log(FCGI_LOG_ERROR, "catalogue mismatch, not serving: %s", err);
        fprintf(stderr, FCGI_PROG ": catalogue mismatch: %s\n", err);
        PQfinish(conn);
        return -1;
    }
    if (rc != 0) {
        fcgi_log(FCGI_LOG_WARN, "database unavailable at start-up, answering 503 until it is "
                 "back: %s", err);
        PQfinish(conn);
        return 0;
    }
    *out = conn;
    return 0;
}

int
fcgi_serve(const shop_settings *s)
{
    sigset_t block, old;
    fcgi_worker *workers;
    fcgi_pool *pool;
    PGconn *conn = NULL;
    int n = (int) s->threads, started = 0, rc = 0, background = 0;

    fcgi_signals_install();

    if (FCGX_Init() != 0) {
        fprintf(stderr, FCGI_PROG ": FCGX_Init failed\n");
        return 1;
    }
    if (FCGX_IsCGI()) {
        fprintf(stderr, FCGI_PROG ": standard input is not a FastCGI socket; "
                "start it with spawn-fcgi (see " FCGI_PROG " --help)\n");
        return 2;
    }

    pool = fcgi_pool_create(s);
    workers = calloc((size_t) n, sizeof(*workers));
    if (pool == NULL || workers == NULL) {
        fprintf(stderr, FCGI_PROG ": out of memory\n");
        fcgi_pool_destroy(pool);
        free(workers);
        return 1;
    }
    if (fcgi_serve_check(s, &conn) != 0) {
        fcgi_pool_destroy(pool);
        free(workers);
        return 1;
    }

    /* No thread but this one takes the stop signals: it only waits, so no
     * request's I/O is interrupted. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);

    /* The stock check's targets, then the registry that names them (its
     * first list read on the start-up connection), the hub, retention. */
    if (fcgi_fanout_start(s) == 0) {
        background++;
        if (fcgi_registry_start(s, pool, conn) == 0) {
            background++;
            if (fcgi_hub_start(s) == 0) {
                background++;
                if (fcgi_retention_start(s, pool) == 0) {
                    background++;
                }
            }
        }
    }
    if (conn != NULL) {
        fcgi_pool_adopt(pool, conn);
    }
    if (background < 4) {
        n = 0;                      /* stop at once, as below */
        rc = 1;
    }

    for (int i = 0; i < n; i++) {
        workers[i].index = i;
        workers[i].settings = s;
        workers[i].pool = pool;
        errno = pthread_create(&workers[i].tid, NULL, fcgi_worker_run, &workers[i]);
        if (errno != 0) {
            fcgi_log(FCGI_LOG_ERROR, "cannot start thread %d: %s", i, strerror(errno));
            break;
        }
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (started == 0) {
        rc = 1;
        raise(SIGTERM);             /* the background threads stop on it */
    } else {
        fcgi_log(FCGI_LOG_INFO, "serving with %d threads, pool of %lld connections",
                 started, (long long) s->pool_size);
    }
    if (started < n) {
        /* Stop the ones already running the way a signal would. */
        raise(SIGTERM);
        rc = 1;
    }

    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].tid, NULL);
    }

    /* Streams end first (they use the pool), then the rest. */
    if (background >= 3) {
        fcgi_hub_stop();
    }
    if (background >= 4) {
        fcgi_retention_stop();
    }
    if (background >= 2) {
        fcgi_registry_stop();
    }
    if (background >= 1) {
        fcgi_fanout_stop();
    }
    fcgi_pool_destroy(pool);
    free(workers);
    if (rc == 0) {
        fcgi_log(FCGI_LOG_INFO, "stopped");
    }
    return rc;
}
