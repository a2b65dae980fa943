/* The stock check's fan-out: one statement per warehouse, all in flight at
 * once on separate connections, one poll() loop until every one answered or
 * passed its deadline. No thread per warehouse, nothing sequential.
 *
 * A target is a database (SHOP_WAREHOUSE_<CODE>_DATABASE, by default the
 * shop's own) with a small pool of non-blocking connections. Connecting
 * counts against the deadline: a target without an idle connection connects
 * with PQconnectStartParams/PQconnectPoll inside the same loop (at most a
 * few connects per target at once); a connect still going at the deadline
 * is finished by the maintenance thread rather than thrown away.
 *
 * Pooled connections have warehouse_stock prepared (planning it costs about
 * twice its execution): the maintenance thread prepares them,
 * asynchronously, before they join the pool. A connection a request just
 * made sends its one query as SQL text (PQsendQueryParams: no extra round
 * trip on the request's time) and then goes to the maintenance thread to be
 * prepared. Results are checked against the catalogue's columns.
 *
 * A query past its deadline answers SHOP_DB_TIMEOUT and its connection is
 * closed, never returned to the pool mid-query (libpq 15 has no
 * non-blocking cancel; statement_timeout ends the query on the server
 * soon after). A target whose connect failed, or did not finish within a
 * few seconds, is down: its warehouses answer at once (error, or timeout
 * for a target that hangs) while a maintenance thread retries it once a
 * second. The same
 * thread replaces closed connections, so the next request finds one ready. */
#include "shop_fcgi.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A down target is tried again after this long, off the request path. */
#define FCGI_TARGET_RETRY_US    1000000
/* How long the maintenance thread gives one connect. */
#define FCGI_BG_CONNECT_US      3000000
/* Most background connects in flight at once. */
#define FCGI_BG_MAX             32
/* Most connects in flight per target (requests' and background ones): a
 * slow or hanging database is not met with a storm of new connections. */
#define FCGI_CONNECTING_MAX     4
/* statement_timeout of warehouse connections: the deadline and this margin. */
#define FCGI_WH_TIMEOUT_MARGIN_MS 250
/* A request waiting for a busy pool looks again this often. */
#define FCGI_WAIT_POLL_NS       2000000

struct fcgi_target {
    fcgi_target     *next;
    char            *dsn;          /* the connection string */
    char            *label;        /* for logs: the first code that used it */
    pthread_mutex_t  lock;
    PGconn         **idle;
    int              nidle;
    int              cap;          /* of idle[] */
    int              total;        /* idle, in use and connecting */
    int              size;         /* most connections */
    int              warm;         /* kept connected by the maintenance thread */
    shop_db_status   down;         /* SHOP_DB_OK, or what its warehouses answer */
    int64_t          retry_at;     /* when down: the next background try */
    int              bg;           /* background connects in flight */
    int              connecting;   /* requests' connects in flight */
    int              waiting;      /* queries waiting for a connection (FQ_WAIT) */
};

/* A connection the maintenance thread drives: connecting, then preparing
 * the statement; pooled when both are done. */
typedef enum { BG_CONNECT, BG_PREPARE_SEND, BG_PREPARE } fcgi_bg_state;

typedef struct {
    fcgi_target   *t;
    PGconn        *conn;
    short          events;
    fcgi_bg_state  state;
    int64_t        deadline;
    int            failed;         /* BG_PREPARE: an error result came */
} fcgi_bg;

/* The statement warehouse connections prepare; others go as SQL text. */
#define FCGI_WH_STMT  SHOP_STMT_WAREHOUSE_STOCK

static struct {
    pthread_mutex_t      lock;     /* the target list */
    fcgi_target         *targets;
    const shop_settings *settings;
    char                 options[160];
    pthread_t            tid;
    int                  running;
    int                  wake[2];  /* a request asks the maintenance thread to look */
    /* Connects requests gave up waiting for: finished in the background. */
    pthread_mutex_t      adopt_lock;
    fcgi_bg              adopt[FCGI_BG_MAX];
    int                  nadopt;
} fanout = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = { -1, -1 },
             .adopt_lock = PTHREAD_MUTEX_INITIALIZER };


/* ---- targets -------------------------------------------------------------- */

static void
fcgi_fanout_wake(void)
{
    ssize_t rc;

    if (fanout.wake[1] >= 0) {
        rc = write(fanout.wake[1], "w", 1);
        (void) rc;
    }
}

/* SHOP_WAREHOUSE_<CODE>_DATABASE: upper case, '-' as '_'; without one the
 * read replica (read_database), else the shop's database. */
static const char *
fcgi_fanout_dsn(const char *code)
{
    const shop_settings *s = fanout.settings;
    char name[128];
    size_t n = 0;
    const char *v;

    n = (size_t) snprintf(name, sizeof(name), "SHOP_WAREHOUSE_");
    for (const char *p = code; *p != '\0' && n < sizeof(name) - 16; p++) {
        name[n++] = (char) (*p == '-' ? '_' : toupper((unsigned char) *p));
    }
    memcpy(name + n, "_DATABASE", sizeof("_DATABASE"));
    v = getenv(name);
    if (v != NULL && v[0] != '\0') {
        return v;
    }
    return s->read_database != NULL && s->read_database[0] != '\0' ? s->read_database
                                                                    : s->database;
}

fcgi_target *
fcgi_fanout_target(const char *code)
{
    const char *dsn = fcgi_fanout_dsn(code);
    fcgi_target *t;

    pthread_mutex_lock(&fanout.lock);
    for (t = fanout.targets; t != NULL; t = t->next) {
        if (strcmp(t->dsn, dsn) == 0) {
            pthread_mutex_unlock(&fanout.lock);
            return t;
        }
    }
    t = calloc(1, sizeof(*t));
    if (t != NULL) {
        t->dsn = strdup(dsn);
        t->label = strdup(code);
        t->cap = 4;
        t->idle = calloc((size_t) t->cap, sizeof(PGconn *));
        if (t->dsn == NULL || t->label == NULL || t->idle == NULL) {
            free(t->dsn);
            free(t->label);
            free(t->idle);
            free(t);
            t = NULL;
        }
    }
    if (t != NULL) {
        pthread_mutex_init(&t->lock, NULL);
        t->size = (int) fanout.settings->warehouse_pool_size;
        t->down = SHOP_DB_OK;
        t->next = fanout.targets;
        fanout.targets = t;
    }
    pthread_mutex_unlock(&fanout.lock);
    return t;
}

void
fcgi_fanout_size(fcgi_target *t, int warehouses)
{
    int size = (int) fanout.settings->warehouse_pool_size * (warehouses > 0 ? warehouses : 1);
    int grow = 0;

    pthread_mutex_lock(&t->lock);
    if (size > t->cap) {
        PGconn **idle = realloc(t->idle, (size_t) size * sizeof(PGconn *));
        if (idle != NULL) {
            t->idle = idle;
            t->cap = size;
        }
    }
    t->size = size < t->cap ? size : t->cap;
    grow = warehouses > t->warm;
    t->warm = warehouses < t->size ? warehouses : t->size;
    pthread_mutex_unlock(&t->lock);
    if (grow) {
        fcgi_fanout_wake();
    }
}

/* A connection back to its target: kept when it is idle and healthy. */
static void
fcgi_target_release(fcgi_target *t, PGconn *conn)
{
    int keep = PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE;

    if (!keep) {
        PQfinish(conn);
    }
    pthread_mutex_lock(&t->lock);
    if (keep && t->nidle < t->cap) {
        t->idle[t->nidle++] = conn;
        conn = NULL;
    } else {
        t->total--;
    }
    pthread_mutex_unlock(&t->lock);
    if (keep && conn != NULL) {
        PQfinish(conn);
    }
}

/* A slot given up without a connection to return (closed, failed). */
static void
fcgi_target_drop(fcgi_target *t, shop_db_status down)
{
    int wake;

    pthread_mutex_lock(&t->lock);
    t->total--;
    if (down != SHOP_DB_OK && t->down == SHOP_DB_OK) {
        t->down = down;
        t->retry_at = fcgi_now_us() + FCGI_TARGET_RETRY_US;
        fcgi_log(FCGI_LOG_WARN, "warehouse database of %s is %s; retrying in the background",
                 t->label, down == SHOP_DB_TIMEOUT ? "not answering" : "unavailable");
    }
    wake = t->total < t->warm;
    pthread_mutex_unlock(&t->lock);
    if (wake) {
        fcgi_fanout_wake();
    }
}

/* A request's connect ended (either way). */
static void
fcgi_target_connected(fcgi_target *t)
{
    pthread_mutex_lock(&t->lock);
    t->connecting--;
    pthread_mutex_unlock(&t->lock);
}

/* Hands a connection to the maintenance thread: a connect a request's
 * deadline cut short (BG_CONNECT: pooled if it succeeds, the target down if
 * it fails or takes too long, so the work is not thrown away and a target
 * under load is not hit by a new connect per request), or a request's fresh
 * connection to prepare (BG_PREPARE_SEND). */
static void
fcgi_target_adopt(fcgi_target *t, PGconn *conn, short events, fcgi_bg_state state)
{
    int queued = 0;

    pthread_mutex_lock(&t->lock);
    if (state == BG_CONNECT) {
        t->connecting--;
    }
    t->bg++;
    pthread_mutex_unlock(&t->lock);

    pthread_mutex_lock(&fanout.adopt_lock);
    if (fanout.nadopt < FCGI_BG_MAX) {
        fanout.adopt[fanout.nadopt++] = (fcgi_bg) {
            t, conn, events, state, fcgi_now_us() + FCGI_BG_CONNECT_US
        };
        queued = 1;
    }
    pthread_mutex_unlock(&fanout.adopt_lock);

    if (queued) {
        fcgi_fanout_wake();
        return;
    }
    PQfinish(conn);
    pthread_mutex_lock(&t->lock);
    t->bg--;
    pthread_mutex_unlock(&t->lock);
    fcgi_target_drop(t, SHOP_DB_OK);
}

/* An idle connection has nothing to read; if it has, the server closed it. */
static int
fcgi_conn_usable(PGconn *conn)
{
    struct pollfd pfd = { PQsocket(conn), POLLIN, 0 };

    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE
        || pfd.fd < 0) {
        return 0;
    }
    return poll(&pfd, 1, 0) == 0;
}

/* Starts a non-blocking connect; NULL when it failed at once. */
static PGconn *
fcgi_target_connect_start(fcgi_target *t, int quiet)
{
    const char *const keys[] = { "application_name", "dbname", "options", NULL };
    const char *const values[] = { FCGI_PROG " stock", t->dsn, fanout.options, NULL };
    PGconn *conn = PQconnectStartParams(keys, values, 1);

    if (conn != NULL && PQstatus(conn) == CONNECTION_BAD) {
        char msg[256];
        if (!quiet) {
            fcgi_log(FCGI_LOG_ERROR, "warehouse database of %s: %s", t->label,
                     fcgi_pg_message(PQerrorMessage(conn), msg, sizeof(msg)));
        }
        PQfinish(conn);
        conn = NULL;
    }
    fcgi_pg_quiet(conn);
    return conn;
}


/* ---- one request's fan-out ------------------------------------------------ */

typedef enum {
    FQ_DONE,          /* result set */
    FQ_WAIT,          /* the target's pool is busy: look again soon */
    FQ_CONNECT,       /* PQconnectPoll */
    FQ_FLUSH,         /* query sent, output not all written */
    FQ_READ           /* waiting for the result */
} fq_state;

typedef struct {
    fcgi_target *t;
    PGconn      *conn;
    fq_state     state;
    short        events;      /* what poll() waits for */
    int          fresh;       /* connected by this request: nothing prepared */
    int64_t      deadline;    /* fcgi_now_us() */
} fcgi_fq;

/* The result's shape is what the render step reads (the statement was not
 * prepared, so nothing checked it before). */
static int
fcgi_result_shape_ok(const shop_statement *st, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        return 1;                   /* errors classify as they are */
    }
    if (PQnfields(res) != st->ncols) {
        return 0;
    }
    for (int i = 0; i < st->ncols; i++) {
        if (PQftype(res, i) != st->cols[i].type || strcmp(PQfname(res, i), st->cols[i].name) != 0) {
            return 0;
        }
    }
    return 1;
}

static void
fcgi_fq_fail(fcgi_fq *f, shop_result *r, shop_db_status status)
{
    shop_result_fail(r, status);
    f->state = FQ_DONE;
}

/* Takes an idle connection or a free slot; otherwise waits (FQ_WAIT). */
static void
fcgi_fq_acquire(fcgi_fq *f, shop_result *r)
{
    fcgi_target *t = f->t;
    PGconn *conn = NULL;
    int connect = 0;

    pthread_mutex_lock(&t->lock);
    if (f->state == FQ_WAIT) {
        t->waiting--;               /* counted again below if it still waits */
    }
    if (t->down != SHOP_DB_OK) {
        shop_db_status down = t->down;
        pthread_mutex_unlock(&t->lock);
        fcgi_fq_fail(f, r, down);
        return;
    }
    while (t->nidle > 0) {
        conn = t->idle[--t->nidle];
        if (fcgi_conn_usable(conn)) {
            break;
        }
        PQfinish(conn);             /* a dead socket: does not block */
        conn = NULL;
        t->total--;
    }
    if (conn == NULL && t->total < t->size && t->connecting + t->bg < FCGI_CONNECTING_MAX) {
        t->total++;
        t->connecting++;
        connect = 1;
    } else if (conn == NULL) {
        t->waiting++;
    }
    pthread_mutex_unlock(&t->lock);

    if (conn != NULL) {
        f->conn = conn;
        f->state = FQ_FLUSH;        /* sent by the caller */
        return;
    }
    if (!connect) {
        f->state = FQ_WAIT;
        return;
    }
    f->conn = fcgi_target_connect_start(t, 0);
    if (f->conn == NULL) {
        fcgi_target_connected(t);
        fcgi_target_drop(t, SHOP_DB_UNAVAILABLE);
        fcgi_fq_fail(f, r, SHOP_DB_UNAVAILABLE);
        return;
    }
    f->state = FQ_CONNECT;
    f->fresh = 1;
    f->events = POLLOUT;            /* as if PQconnectPoll said WRITING */
}

static void
fcgi_fq_lost(fcgi_fq *f, shop_result *r, const char *what)
{
    char msg[256];

    fcgi_log(FCGI_LOG_ERROR, "warehouse database of %s: %s: %s", f->t->label, what,
             fcgi_pg_message(PQerrorMessage(f->conn), msg, sizeof(msg)));
    PQfinish(f->conn);
    f->conn = NULL;
    fcgi_target_drop(f->t, SHOP_DB_OK);
    fcgi_fq_fail(f, r, SHOP_DB_UNAVAILABLE);
}

static void
fcgi_fq_send(fcgi_fq *f, const shop_query *q, shop_result *r)
{
    const shop_statement *st = &shop_catalogue[q->stmt];

    int sent = q->stmt == FCGI_WH_STMT && !f->fresh
               ? PQsendQueryPrepared(f->conn, st->name, q->nparams, q->values, NULL, NULL, 0)
               : PQsendQueryParams(f->conn, st->sql, q->nparams, NULL, q->values, NULL, NULL, 0);

    if (PQsetnonblocking(f->conn, 1) != 0 || !sent) {
        fcgi_fq_lost(f, r, "send failed");
        return;
    }
    f->state = FQ_FLUSH;
    f->events = POLLOUT | POLLIN;
}

static void
fcgi_fq_flush(fcgi_fq *f, shop_result *r)
{
    int rc = PQflush(f->conn);

    if (rc < 0) {
        fcgi_fq_lost(f, r, "send failed");
    } else if (rc == 0) {
        f->state = FQ_READ;
        f->events = POLLIN;
    }
}

static const char *
fcgi_sqlstate(const PGresult *res)
{
    const char *v = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return v != NULL ? v : "";
}

static void
fcgi_fq_read(fcgi_fq *f, const shop_query *q, shop_result *r, PGresult **resp,
             const shop_ctx *c)
{
    const shop_statement *st = &shop_catalogue[q->stmt];
    PGresult *one;

    if (!PQconsumeInput(f->conn)) {
        fcgi_fq_lost(f, r, "connection lost");
        return;
    }
    while (!PQisBusy(f->conn)) {
        one = PQgetResult(f->conn);
        if (one == NULL) {
            break;
        }
        if (*resp == NULL) {
            *resp = one;
        } else {
            PQclear(one);
        }
    }
    if (PQisBusy(f->conn)) {
        return;                     /* more to come */
    }

    /* The statement is complete and the connection idle again: pooled, or
     * first prepared by the maintenance thread. */
    if (f->fresh && PQstatus(f->conn) == CONNECTION_OK
        && PQtransactionStatus(f->conn) == PQTRANS_IDLE) {
        fcgi_target_adopt(f->t, f->conn, POLLOUT, BG_PREPARE_SEND);
    } else if (*resp != NULL && PQresultStatus(*resp) == PGRES_FATAL_ERROR
               && strcmp(fcgi_sqlstate(*resp), "26000") == 0) {
        /* Its statement is not prepared (the database was replaced?): a
         * new connection prepares it again. */
        PQfinish(f->conn);
        fcgi_target_drop(f->t, SHOP_DB_OK);
    } else {
        fcgi_target_release(f->t, f->conn);
    }
    f->conn = NULL;
    f->state = FQ_DONE;
    if (*resp == NULL) {
        shop_result_fail(r, SHOP_DB_ERROR);
        return;
    }
    if (!fcgi_result_shape_ok(st, *resp)) {
        fcgi_log(FCGI_LOG_ERROR, "request %.*s: warehouse database of %s: statement %s "
                 "returns columns the code does not read", (int) c->request_id.n,
                 c->request_id.p, f->t->label, st->name);
        shop_result_fail(r, SHOP_DB_ERROR);
        return;
    }
    shop_result_set(r, *resp);
    if (r->status == SHOP_DB_ERROR) {
        char msg[256];
        fcgi_log(FCGI_LOG_ERROR, "request %.*s: warehouse database of %s: statement %s: %s",
                 (int) c->request_id.n, c->request_id.p, f->t->label, st->name,
                 fcgi_pg_message(PQresultErrorMessage(*resp), msg, sizeof(msg)));
    }
}

static void
fcgi_fq_connect(fcgi_fq *f, const shop_query *q, shop_result *r)
{
    char msg[256];

    switch (PQconnectPoll(f->conn)) {
    case PGRES_POLLING_READING:
        f->events = POLLIN;
        return;
    case PGRES_POLLING_WRITING:
        f->events = POLLOUT;
        return;
    case PGRES_POLLING_OK:
        fcgi_target_connected(f->t);
        fcgi_fq_send(f, q, r);
        if (f->state == FQ_FLUSH) {
            fcgi_fq_flush(f, r);
        }
        return;
    case PGRES_POLLING_FAILED:
    case PGRES_POLLING_ACTIVE:
        break;
    }
    fcgi_log(FCGI_LOG_ERROR, "warehouse database of %s: cannot connect: %s", f->t->label,
             fcgi_pg_message(PQerrorMessage(f->conn), msg, sizeof(msg)));
    PQfinish(f->conn);
    f->conn = NULL;
    fcgi_target_connected(f->t);
    fcgi_target_drop(f->t, SHOP_DB_UNAVAILABLE);
    fcgi_fq_fail(f, r, SHOP_DB_UNAVAILABLE);
}

/* The deadline passed: whatever is in flight is closed, never pooled. */
static void
fcgi_fq_expire(fcgi_fq *f, shop_result *r)
{
    switch (f->state) {
    case FQ_CONNECT:
        fcgi_target_adopt(f->t, f->conn, f->events, BG_CONNECT);
        f->conn = NULL;
        break;
    case FQ_FLUSH:
    case FQ_READ:
        PQfinish(f->conn);
        f->conn = NULL;
        fcgi_target_drop(f->t, SHOP_DB_OK);
        break;
    case FQ_WAIT:
        pthread_mutex_lock(&f->t->lock);
        f->t->waiting--;
        pthread_mutex_unlock(&f->t->lock);
        break;
    case FQ_DONE:
        break;
    }
    fcgi_fq_fail(f, r, SHOP_DB_TIMEOUT);
}

void
fcgi_fanout_exec(const shop_ctx *c, fcgi_target *const *targets, int ntargets,
                 shop_result *results, PGresult **res, int64_t *db_us)
{
    int n = c->nqueries, pending = 0;
    fcgi_fq *fq = calloc((size_t) n, sizeof(*fq));
    struct pollfd *pfd = calloc((size_t) n, sizeof(*pfd));
    int *map = calloc((size_t) n, sizeof(*map));
    int64_t t0 = fcgi_now_us();

    if (fq == NULL || pfd == NULL || map == NULL) {
        for (int i = 0; i < n; i++) {
            if (c->queries[i].target >= SHOP_TARGET_WAREHOUSE(0)) {
                shop_result_fail(&results[i], SHOP_DB_ERROR);
            }
        }
        free(fq);
        free(pfd);
        free(map);
        return;
    }

    /* Everything goes out at once. */
    for (int i = 0; i < n; i++) {
        const shop_query *q = &c->queries[i];
        int w = q->target - SHOP_TARGET_WAREHOUSE(0);
        int64_t ms = q->deadline_ms > 0 ? q->deadline_ms : fanout.settings->stock_deadline_ms;

        fq[i].state = FQ_DONE;
        if (q->target < SHOP_TARGET_WAREHOUSE(0)) {
            continue;               /* not ours: the shop's or the read pool */
        }
        if (w < 0 || w >= ntargets || targets[w] == NULL) {
            shop_result_fail(&results[i], SHOP_DB_ERROR);
            continue;
        }
        fq[i].t = targets[w];
        fq[i].deadline = t0 + ms * 1000;
        fcgi_fq_acquire(&fq[i], &results[i]);
        if (fq[i].state == FQ_FLUSH && fq[i].conn != NULL) {
            fcgi_fq_send(&fq[i], q, &results[i]);
            if (fq[i].state == FQ_FLUSH) {
                fcgi_fq_flush(&fq[i], &results[i]);
            }
        }
    }

    for ( ;; ) {
        int64_t now = fcgi_now_us(), wait = INT64_MAX;
        int npfd = 0, waiting = 0;
        struct timespec ts;

        pending = 0;
        for (int i = 0; i < n; i++) {
            if (fq[i].state == FQ_DONE) {
                continue;
            }
            if (now >= fq[i].deadline) {
                fcgi_fq_expire(&fq[i], &results[i]);
                continue;
            }
            if (fq[i].state == FQ_WAIT) {
                fcgi_fq_acquire(&fq[i], &results[i]);
                if (fq[i].state == FQ_FLUSH && fq[i].conn != NULL) {
                    fcgi_fq_send(&fq[i], &c->queries[i], &results[i]);
                    if (fq[i].state == FQ_FLUSH) {
                        fcgi_fq_flush(&fq[i], &results[i]);
                    }
                }
                if (fq[i].state == FQ_DONE) {
                    continue;
                }
            }
            pending++;
            if (fq[i].deadline - now < wait) {
                wait = fq[i].deadline - now;
            }
            if (fq[i].state == FQ_WAIT) {
                waiting = 1;
                continue;
            }
            pfd[npfd].fd = PQsocket(fq[i].conn);
            pfd[npfd].events = fq[i].events;
            pfd[npfd].revents = 0;
            map[npfd++] = i;
        }
        if (pending == 0) {
            break;
        }
        ts.tv_sec = (time_t) (wait / 1000000);
        ts.tv_nsec = (long) (wait % 1000000) * 1000;
        if (waiting && (ts.tv_sec > 0 || ts.tv_nsec > FCGI_WAIT_POLL_NS)) {
            ts.tv_sec = 0;
            ts.tv_nsec = FCGI_WAIT_POLL_NS;
        }
        if (ppoll(pfd, (nfds_t) npfd, &ts, NULL) < 0 && errno != EINTR) {
            fcgi_log(FCGI_LOG_ERROR, "stock check: poll failed: %s", strerror(errno));
            nanosleep(&(struct timespec) { 0, 1000000 }, NULL);
            continue;
        }
        for (int k = 0; k < npfd; k++) {
            int i = map[k];

            if (pfd[k].revents == 0) {
                continue;
            }
            switch (fq[i].state) {
            case FQ_CONNECT:
                fcgi_fq_connect(&fq[i], &c->queries[i], &results[i]);
                break;
            case FQ_FLUSH:
                if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                    if (!PQconsumeInput(fq[i].conn)) {
                        fcgi_fq_lost(&fq[i], &results[i], "connection lost");
                        break;
                    }
                }
                fcgi_fq_flush(&fq[i], &results[i]);
                if (fq[i].state == FQ_READ) {
                    fcgi_fq_read(&fq[i], &c->queries[i], &results[i], &res[i], c);
                }
                break;
            case FQ_READ:
                fcgi_fq_read(&fq[i], &c->queries[i], &results[i], &res[i], c);
                break;
            case FQ_WAIT:
            case FQ_DONE:
                break;
            }
        }
    }

    *db_us += fcgi_now_us() - t0;
    free(fq);
    free(pfd);
    free(map);
}


/* ---- metrics ------------------------------------------------------------------ */

/* "warehouse:north,south": the codes of wh that t serves (else the first
 * code that used it). */
static void
fcgi_fanout_label(char *out, size_t size, const fcgi_target *t, const fcgi_warehouses *wh)
{
    size_t n = (size_t) snprintf(out, size, "warehouse:");
    int any = 0;

    for (int k = 0; wh != NULL && k < wh->n && n < size; k++) {
        if (wh->targets[k] == t) {
            n += (size_t) snprintf(out + n, size - n, "%s%s", any ? "," : "", wh->codes[k]);
            any = 1;
        }
    }
    if (!any && n < size) {
        snprintf(out + n, size - n, "%s", t->label);
    }
}

int
fcgi_fanout_gauges(shop_metrics_gauges *g, int from, int64_t *waiting,
                   const fcgi_warehouses *wh)
{
    const shop_settings *s = fanout.settings;
    int i = from;

    pthread_mutex_lock(&fanout.lock);
    for (fcgi_target *t = fanout.targets; t != NULL && i < SHOP_METRICS_TARGETS; t = t->next) {
        /* Named by role, as the module names them: the shop's database,
         * the replica, else a warehouse's own database by its codes. */
        if (strcmp(t->dsn, s->database) == 0) {
            snprintf(g->target[i], sizeof(g->target[i]), "stock:primary");
        } else if (s->read_database != NULL && strcmp(t->dsn, s->read_database) == 0) {
            snprintf(g->target[i], sizeof(g->target[i]), "stock:read");
        } else {
            fcgi_fanout_label(g->target[i], sizeof(g->target[i]), t, wh);
        }
        pthread_mutex_lock(&t->lock);
        g->idle[i] = t->nidle;
        g->connecting[i] = t->connecting + t->bg;
        g->busy[i] = t->total - t->nidle - t->connecting - t->bg;
        g->broken[i] = t->down != SHOP_DB_OK && t->size > t->total ? t->size - t->total : 0;
        *waiting += t->waiting;
        pthread_mutex_unlock(&t->lock);
        i++;
    }
    pthread_mutex_unlock(&fanout.lock);
    return i;
}


/* ---- the maintenance thread ----------------------------------------------- */

/* Starts the connects the targets need: down ones due for a try, and up
 * ones below their warm count. */
static void
fcgi_fanout_plan_bg(fcgi_bg *bg, int *nbg)
{
    int64_t now = fcgi_now_us();

    pthread_mutex_lock(&fanout.lock);
    for (fcgi_target *t = fanout.targets; t != NULL && *nbg < FCGI_BG_MAX; t = t->next) {
        int start = 0;

        pthread_mutex_lock(&t->lock);
        if (t->down != SHOP_DB_OK) {
            start = t->bg == 0 && now >= t->retry_at && t->total < t->size;
        } else {
            start = t->total < t->warm;
        }
        if (start) {
            t->total++;
            t->bg++;
        }
        pthread_mutex_unlock(&t->lock);
        if (!start) {
            continue;
        }
        PGconn *conn = fcgi_target_connect_start(t, 1);
        if (conn == NULL) {
            pthread_mutex_lock(&t->lock);
            t->total--;
            t->bg--;
            if (t->down == SHOP_DB_OK) {
                t->down = SHOP_DB_UNAVAILABLE;
            }
            t->retry_at = now + FCGI_TARGET_RETRY_US;
            pthread_mutex_unlock(&t->lock);
            continue;
        }
        bg[*nbg].t = t;
        bg[*nbg].conn = conn;
        bg[*nbg].events = POLLOUT;
        bg[*nbg].state = BG_CONNECT;
        bg[*nbg].deadline = now + FCGI_BG_CONNECT_US;
        (*nbg)++;
    }
    pthread_mutex_unlock(&fanout.lock);
}

/* A background connect ended: pooled (and the target up) or given up. */
static void
fcgi_bg_finish(fcgi_bg *b, shop_db_status failed)
{
    fcgi_target *t = b->t;
    int was_down;

    if (failed == SHOP_DB_OK && PQsetnonblocking(b->conn, 1) != 0) {
        failed = SHOP_DB_UNAVAILABLE;
    }
    if (failed != SHOP_DB_OK) {
        PQfinish(b->conn);
        b->conn = NULL;
    }
    pthread_mutex_lock(&t->lock);
    t->bg--;
    was_down = t->down != SHOP_DB_OK;
    if (failed == SHOP_DB_OK && t->nidle < t->cap) {
        t->idle[t->nidle++] = b->conn;
        b->conn = NULL;
        t->down = SHOP_DB_OK;
    } else {
        t->total--;
        if (failed != SHOP_DB_OK) {
            t->down = failed;
            t->retry_at = fcgi_now_us() + FCGI_TARGET_RETRY_US;
        }
    }
    pthread_mutex_unlock(&t->lock);
    PQfinish(b->conn);
    b->conn = NULL;
    if (was_down && failed == SHOP_DB_OK) {
        fcgi_log(FCGI_LOG_INFO, "warehouse database of %s is back", t->label);
    } else if (!was_down && failed != SHOP_DB_OK && !fcgi_stopping()) {
        fcgi_log(FCGI_LOG_WARN, "warehouse database of %s is %s; retrying in the background",
                 t->label, failed == SHOP_DB_TIMEOUT ? "not answering" : "unavailable");
    }
}

/* Sends the PREPARE; 0, or -1 when the connection failed. */
static int
fcgi_bg_prepare_send(fcgi_bg *b)
{
    const shop_statement *st = &shop_catalogue[FCGI_WH_STMT];
    int rc;

    if (PQsetnonblocking(b->conn, 1) != 0 || !PQsendPrepare(b->conn, st->name, st->sql, 0, NULL)) {
        return -1;
    }
    rc = PQflush(b->conn);
    b->state = BG_PREPARE;
    b->failed = 0;
    b->events = rc == 1 ? POLLIN | POLLOUT : POLLIN;
    return rc < 0 ? -1 : 0;
}

/* 1 when the PREPARE succeeded, 0 while it runs, -1 when it failed. The
 * error and the end of the results may come in different reads: the
 * failure is kept in b->failed until the end (else a connection without
 * the statement was pooled, and every check on it failed). */
static int
fcgi_bg_prepare_step(fcgi_bg *b)
{
    PGresult *res;

    if (b->events & POLLOUT) {
        int rc = PQflush(b->conn);
        if (rc < 0) {
            return -1;
        }
        b->events = rc == 1 ? POLLIN | POLLOUT : POLLIN;
    }
    if (!PQconsumeInput(b->conn)) {
        return -1;
    }
    while (!PQisBusy(b->conn)) {
        res = PQgetResult(b->conn);
        if (res == NULL) {
            return b->failed ? -1 : 1;
        }
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            char msg[256];
            int was_up;
            pthread_mutex_lock(&b->t->lock);
            was_up = b->t->down == SHOP_DB_OK;
            pthread_mutex_unlock(&b->t->lock);
            if (was_up) {
                fcgi_log(FCGI_LOG_ERROR, "warehouse database of %s: PREPARE %s failed: %s",
                         b->t->label, shop_catalogue[FCGI_WH_STMT].name,
                         fcgi_pg_message(PQresultErrorMessage(res), msg, sizeof(msg)));
            }
            b->failed = 1;
        }
        PQclear(res);
    }
    return 0;
}

static void *
fcgi_fanout_run(void *arg)
{
    fcgi_bg bg[FCGI_BG_MAX];
    struct pollfd pfd[FCGI_BG_MAX + 2];
    int nbg = 0;
    char drain[64];

    (void) arg;
    for ( ;; ) {
        int stop = fcgi_stopping(), npfd = 0;
        int64_t now = fcgi_now_us(), wait = 250000;

        pthread_mutex_lock(&fanout.adopt_lock);
        while (fanout.nadopt > 0 && nbg < FCGI_BG_MAX) {
            bg[nbg++] = fanout.adopt[--fanout.nadopt];
        }
        pthread_mutex_unlock(&fanout.adopt_lock);
        for (int i = 0; i < nbg; ) {
            if (bg[i].state == BG_PREPARE_SEND && fcgi_bg_prepare_send(&bg[i]) != 0) {
                fcgi_bg_finish(&bg[i], SHOP_DB_UNAVAILABLE);
                bg[i] = bg[--nbg];
                continue;
            }
            i++;
        }
        if (!stop) {
            fcgi_fanout_plan_bg(bg, &nbg);
        }
        for (int i = 0; i < nbg; ) {
            if (stop || now >= bg[i].deadline) {
                fcgi_bg_finish(&bg[i], SHOP_DB_TIMEOUT);
                bg[i] = bg[--nbg];
                continue;
            }
            i++;
        }
        if (stop) {
            break;
        }

        pfd[npfd++] = (struct pollfd) { fcgi_stop_fd(), POLLIN, 0 };
        pfd[npfd++] = (struct pollfd) { fanout.wake[0], POLLIN, 0 };
        for (int i = 0; i < nbg; i++) {
            pfd[npfd++] = (struct pollfd) { PQsocket(bg[i].conn), bg[i].events, 0 };
            if (bg[i].deadline - now < wait) {
                wait = bg[i].deadline - now;
            }
        }
        poll(pfd, (nfds_t) npfd, (int) ((wait + 999) / 1000));
        if (pfd[1].revents & POLLIN) {
            while (read(fanout.wake[0], drain, sizeof(drain)) > 0) {
                /* drain */
            }
        }
        for (int i = nbg - 1; i >= 0; i--) {
            if (pfd[2 + i].revents == 0) {
                continue;
            }
            if (bg[i].state == BG_PREPARE) {
                int rc = fcgi_bg_prepare_step(&bg[i]);
                if (rc == 0) {
                    continue;
                }
                fcgi_bg_finish(&bg[i], rc > 0 ? SHOP_DB_OK : SHOP_DB_UNAVAILABLE);
                bg[i] = bg[--nbg];
                continue;
            }
            switch (PQconnectPoll(bg[i].conn)) {
            case PGRES_POLLING_READING:
                bg[i].events = POLLIN;
                continue;
            case PGRES_POLLING_WRITING:
                bg[i].events = POLLOUT;
                continue;
            case PGRES_POLLING_OK:
                if (fcgi_bg_prepare_send(&bg[i]) == 0) {
                    continue;       /* pooled once prepared */
                }
                fcgi_bg_finish(&bg[i], SHOP_DB_UNAVAILABLE);
                break;
            case PGRES_POLLING_FAILED:
            case PGRES_POLLING_ACTIVE:
                fcgi_bg_finish(&bg[i], SHOP_DB_UNAVAILABLE);
                break;
            }
            bg[i] = bg[--nbg];
        }
    }
    return NULL;
}

int
fcgi_fanout_start(const shop_settings *s)
{
    fanout.settings = s;
    snprintf(fanout.options, sizeof(fanout.options), "%s -c statement_timeout=%lld",
             SHOP_PG_OPTIONS, (long long) (s->stock_deadline_ms + FCGI_WH_TIMEOUT_MARGIN_MS));
    if (pipe2(fanout.wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        fcgi_log(FCGI_LOG_ERROR, "stock check: pipe: %s", strerror(errno));
        return -1;
    }
    errno = pthread_create(&fanout.tid, NULL, fcgi_fanout_run, NULL);
    if (errno != 0) {
        fcgi_log(FCGI_LOG_ERROR, "stock check: cannot start its thread: %s", strerror(errno));
        return -1;
    }
    fanout.running = 1;
    return 0;
}

void
fcgi_fanout_stop(void)
{
    fcgi_target *t, *next;

    if (fanout.running) {
        fcgi_fanout_wake();
        pthread_join(fanout.tid, NULL);
        fanout.running = 0;
    }
    for (t = fanout.targets; t != NULL; t = next) {
        next = t->next;
        for (int i = 0; i < t->nidle; i++) {
            PQfinish(t->idle[i]);
        }
        pthread_mutex_destroy(&t->lock);
        free(t->idle);
        free(t->dsn);
        free(t->label);
        free(t);
    }
    fanout.targets = NULL;
    for (int i = 0; i < 2; i++) {
        if (fanout.wake[i] >= 0) {
            close(fanout.wake[i]);
            fanout.wake[i] = -1;
        }
    }
}
