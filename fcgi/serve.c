/* Serving: check the database once, start the background threads (the
 * warehouse registry and the stock check's connections, the event hub,
 * retention), then N threads accept on fd 0 (the socket spawn-fcgi hands
 * over, or fd 3 from systemd) until a signal stops them: then no
 * connection is lost, the threads answer every request they accepted or
 * that is queued on our own socket before they end (listen.c). An event
 * stream moves to a thread of its own, so a request thread is never held
 * by one. */
#include "shop_fcgi.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

/* Requests being handled, and those finished after the stop signal (logs). */
static int fcgi_busy;
static int fcgi_drained;
static int fcgi_foreign_stop;

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
            FCGX_InitRequest(rq, fcgi_listen_fd(), 0);
        }

        /* After a stop signal too, on our own socket: until
         * fcgi_listen_stop() shut it and its queue is empty, accept() still
         * hands out the connections the kernel queued, and each is
         * answered. systemd's socket keeps them for the next process.
         * Every thread waits in accept() itself, with no lock (libfcgi's
         * threaded example takes one for platforms that need it): Linux
         * wakes one waiter per connection, and a lock handed from thread to
         * thread costs a wake-up per request. */
        if (fcgi_stopping() && fcgi_listen_shared()) {
            break;
        }
        rc = FCGX_Accept_r(rq);

        if (rc < 0) {
            if (fcgi_stopping()) {
                break;
            }
            if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
                continue;           /* systemd's socket: the tick */
            }
            if (rc == -EINVAL) {
                /* The listener was shut down, not by us: another process
                 * sharing it (spawn-fcgi -F N) got a stop signal, or an
                 * earlier process was given systemd's socket as standard
                 * input. Nothing can be accepted from it any more: stop,
                 * and exit 1, rather than fail every accept from now on. */
                if (!__atomic_exchange_n(&fcgi_foreign_stop, 1, __ATOMIC_RELAXED)) {
                    fcgi_log(FCGI_LOG_ERROR, "the listening socket was shut down by another "
                             "process (spawn-fcgi -F N, or systemd's socket given as standard "
                             "input): stopping; run one shop-fcgi per socket, and let systemd "
                             "pass its socket as fd 3");
                    kill(getpid(), SIGTERM);
                }
                fcgi_stop_wait(1000);
                continue;
            }
            /* EMFILE and the like: do not spin, try again. */
            fcgi_log(FCGI_LOG_ERROR, "thread %d: accept failed: %s", w->index,
                     rc > -1000 ? strerror(-rc) : "libfcgi error");
            nanosleep(&(struct timespec) { 0, 100L * 1000 * 1000 }, NULL);
            continue;
        }

        fcgi_listen_accepted(rq->ipcFd);
        __atomic_fetch_add(&fcgi_busy, 1, __ATOMIC_RELAXED);
        if (fcgi_request_handle(w, rq)) {
            rq = NULL;
        } else {
            rq->detached = fcgi_listen_unix();      /* close without lingering */
            FCGX_Finish_r(rq);
            /* A kept connection (fastcgi_keep_conn) would hold this thread
             * in the next accept: when stopping, close it. */
            if (fcgi_stopping() && rq->ipcFd >= 0) {
                FCGX_Free(rq, 1);
            }
        }
        __atomic_fetch_sub(&fcgi_busy, 1, __ATOMIC_RELAXED);
        if (fcgi_stopping()) {
            __atomic_fetch_add(&fcgi_drained, 1, __ATOMIC_RELAXED);
        }
    }

    if (rq != NULL) {
        FCGX_Free(rq, 1);
        free(rq);
    }
    fcgi_blocks_free(&w->blocks);
    return NULL;
}

/* The start-up check of a pool's database (the shop's, the read replica):
 * a schema that does not match the code stops us here; a database that is
 * merely down does not, its pool answers 503 until it is back. A ready
 * connection joins the pool. */
static int
fcgi_serve_check(const shop_settings *s, fcgi_pool *pool, const char *name, const char *dsn,
                 const char *app, PGconn **out)
{
    char err[512];
    PGconn *conn;
    int rc;

    conn = fcgi_pg_connect(dsn, app, s->statement_timeout_ms, err, sizeof(err));
    if (conn == NULL) {
        fcgi_pool_down(pool, err);
        return 0;
    }
    rc = fcgi_pg_prepare(conn, err, sizeof(err));
    if (rc == FCGI_PG_WRONG) {
        fcgi_log(FCGI_LOG_ERROR, "%s database: catalogue mismatch, not serving: %s", name, err);
        PQfinish(conn);
        return -1;
    }
    if (rc != 0) {
        fcgi_pool_down(pool, err);
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
    fcgi_pool *pool, *read_pool = NULL;
    PGconn *conn = NULL, *read_conn = NULL;
    int replica = s->read_database != NULL && s->read_database[0] != '\0';
    int64_t t0;
    int n = (int) s->threads, started = 0, rc = 0, background = 0;

    fcgi_signals_install();
    if (fcgi_listen_open() != 0) {
        return 2;
    }

    if (FCGX_Init() != 0) {
        fprintf(stderr, FCGI_PROG ": FCGX_Init failed\n");
        return 1;
    }
    if (!fcgi_listen_shared() && FCGX_IsCGI()) {
        fprintf(stderr, FCGI_PROG ": standard input is not a FastCGI socket; "
                "start it with spawn-fcgi (see " FCGI_PROG " --help)\n");
        return 2;
    }

    fcgi_metrics_start();
    pool = fcgi_pool_create(s, "primary", s->database, FCGI_PROG);
    if (replica) {
        read_pool = fcgi_pool_create(s, "read", s->read_database, FCGI_PROG " read");
    }
    workers = calloc((size_t) n, sizeof(*workers));
    if (pool == NULL || workers == NULL || (replica && read_pool == NULL)) {
        fprintf(stderr, FCGI_PROG ": out of memory\n");
        fcgi_pool_destroy(pool);
        fcgi_pool_destroy(read_pool);
        free(workers);
        return 1;
    }
    if (fcgi_serve_check(s, pool, "primary", s->database, FCGI_PROG, &conn) != 0
        || (replica && fcgi_serve_check(s, read_pool, "read", s->read_database,
                                        FCGI_PROG " read", &read_conn) != 0)) {
        PQfinish(conn);
        fcgi_pool_destroy(pool);
        fcgi_pool_destroy(read_pool);
        free(workers);
        return 1;
    }
    if (read_conn != NULL) {
        fcgi_pool_adopt(read_pool, read_conn);
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
        workers[i].read_pool = read_pool;
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
        fcgi_log(FCGI_LOG_INFO, "serving with %d threads, pool of %lld connections%s",
                 started, (long long) s->pool_size,
                 replica ? ", and as many to the read replica" : "");
    }
    if (started < n) {
        /* Stop the ones already running the way a signal would. */
        raise(SIGTERM);
        rc = 1;
    }

    /* The main thread takes the stop signals (the others block them) and
     * waits for one; then the listener stops taking new connections, and
     * the request threads answer what was accepted or queued, and end. */
    while (!fcgi_stop_wait(60000)) {
        /* serving */
    }
    t0 = fcgi_now_us();
    if (started > 0) {
        fcgi_log(FCGI_LOG_INFO, "stop signal: %s; answering the %d requests in flight%s",
                 fcgi_listen_shared() ? "the socket stays open for the next process"
                                      : "refusing new connections",
                 __atomic_load_n(&fcgi_busy, __ATOMIC_RELAXED),
                 fcgi_listen_shared() ? "" : " and those in the accept queue");
    }
    fcgi_listen_stop();
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].tid, NULL);
    }
    if (started > 0) {
        fcgi_log(FCGI_LOG_INFO, "request threads done: %d requests answered after the stop "
                 "signal, in %lld ms", __atomic_load_n(&fcgi_drained, __ATOMIC_RELAXED),
                 (long long) ((fcgi_now_us() - t0) / 1000));
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
    fcgi_pool_destroy(read_pool);
    free(workers);
    if (__atomic_load_n(&fcgi_foreign_stop, __ATOMIC_RELAXED)) {
        rc = 1;
    }
    if (rc == 0) {
        fcgi_log(FCGI_LOG_INFO, "stopped");
    }
    return rc;
}
