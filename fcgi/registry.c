/* The warehouse registry: the codes the stock check fans out to, read with
 * the warehouse_list statement at start-up and then every few seconds by a
 * thread of its own, never on a request's time. A request holds a counted
 * reference to one immutable snapshot, so a refresh never changes a list a
 * request is iterating. A warehouse this process creates joins at once. */
#include "shop_fcgi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FCGI_REGISTRY_EVERY_MS 5000
/* While the list is empty (the database was down at start-up): sooner. */
#define FCGI_REGISTRY_EMPTY_MS 1000

static struct {
    pthread_mutex_t      lock;        /* cur and every snapshot's refs */
    pthread_mutex_t      build;       /* one builder at a time */
    fcgi_warehouses     *cur;
    const shop_settings *settings;
    fcgi_pool           *pool;
    pthread_t            tid;
    int                  running;
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER, .build = PTHREAD_MUTEX_INITIALIZER };

static void
fcgi_registry_free(fcgi_warehouses *w)
{
    if (w == NULL) {
        return;
    }
    for (int i = 0; i < w->n; i++) {
        free((char *) w->codes[i]);
    }
    free(w->codes);
    free(w->targets);
    free(w);
}

/* A snapshot of n codes (sorted, distinct) with their targets, the targets'
 * pools sized for the warehouses they serve. */
static fcgi_warehouses *
fcgi_registry_build(const char *const *codes, const size_t *lens, int n)
{
    fcgi_warehouses *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        return NULL;
    }
    w->refs = 1;
    w->codes = calloc((size_t) n + 1, sizeof(*w->codes));
    w->targets = calloc((size_t) n + 1, sizeof(*w->targets));
    if (w->codes == NULL || w->targets == NULL) {
        fcgi_registry_free(w);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        w->codes[i] = strndup(codes[i], lens[i]);
        if (w->codes[i] == NULL) {
            fcgi_registry_free(w);
            return NULL;
        }
        w->n = i + 1;
        w->targets[i] = fcgi_fanout_target(w->codes[i]);
        if (w->targets[i] == NULL) {
            fcgi_registry_free(w);
            return NULL;
        }
    }
    for (int i = 0; i < n; i++) {
        int count = 0, first = 1;
        for (int j = 0; j < n; j++) {
            if (w->targets[j] == w->targets[i]) {
                first = first && j >= i;
                count++;
            }
        }
        if (first) {
            fcgi_fanout_size(w->targets[i], count);
        }
    }
    return w;
}

static void
fcgi_registry_swap(fcgi_warehouses *w)
{
    fcgi_warehouses *old;

    pthread_mutex_lock(&reg.lock);
    old = reg.cur;
    reg.cur = w;
    if (old != NULL && --old->refs > 0) {
        old = NULL;
    }
    pthread_mutex_unlock(&reg.lock);
    fcgi_registry_free(old);
}

fcgi_warehouses *
fcgi_registry_get(void)
{
    fcgi_warehouses *w;

    pthread_mutex_lock(&reg.lock);
    w = reg.cur;
    if (w != NULL) {
        w->refs++;
    }
    pthread_mutex_unlock(&reg.lock);
    return w;
}

void
fcgi_registry_put(fcgi_warehouses *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&reg.lock);
    if (--w->refs > 0) {
        w = NULL;
    }
    pthread_mutex_unlock(&reg.lock);
    fcgi_registry_free(w);
}

/* 1 when the result lists exactly the codes of w. */
static int
fcgi_registry_same(const fcgi_warehouses *w, const PGresult *res)
{
    int n = PQntuples(res);

    if (w == NULL || w->n != n) {
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(w->codes[i], PQgetvalue(res, i, SHOP_W_CODE)) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Reads warehouse_list on conn and installs it; 0 or -1. */
static int
fcgi_registry_load(PGconn *conn)
{
    const shop_statement *st = &shop_catalogue[SHOP_STMT_WAREHOUSE_LIST];
    fcgi_warehouses *cur, *w = NULL;
    const char **codes;
    size_t *lens;
    PGresult *res;
    int n, rc = -1;

    res = PQexecPrepared(conn, st->name, 0, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[256];
        fcgi_log(FCGI_LOG_WARN, "warehouse list: %s",
                 fcgi_pg_message(res ? PQresultErrorMessage(res) : PQerrorMessage(conn),
                                 msg, sizeof(msg)));
        PQclear(res);
        return -1;
    }
    n = PQntuples(res);

    pthread_mutex_lock(&reg.build);
    cur = fcgi_registry_get();
    if (fcgi_registry_same(cur, res)) {
        rc = 0;
    } else {
        codes = calloc((size_t) n + 1, sizeof(*codes));
        lens = calloc((size_t) n + 1, sizeof(*lens));
        if (codes != NULL && lens != NULL) {
            for (int i = 0; i < n; i++) {
                codes[i] = PQgetvalue(res, i, SHOP_W_CODE);
                lens[i] = (size_t) PQgetlength(res, i, SHOP_W_CODE);
            }
            w = fcgi_registry_build(codes, lens, n);
        }
        free(codes);
        free(lens);
        if (w != NULL) {
            fcgi_registry_swap(w);
            fcgi_log(FCGI_LOG_INFO, "warehouses: %d known to the stock check", n);
            rc = 0;
        }
    }
    fcgi_registry_put(cur);
    pthread_mutex_unlock(&reg.build);
    PQclear(res);
    return rc;
}

void
fcgi_registry_added(const char *code, size_t len)
{
    fcgi_warehouses *cur, *w;
    const char **codes;
    size_t *lens;
    int n, at;

    pthread_mutex_lock(&reg.build);
    cur = fcgi_registry_get();
    n = cur != NULL ? cur->n : 0;
    for (at = 0; at < n; at++) {
        int cmp = strncmp(cur->codes[at], code, len);
        if (cmp == 0 && cur->codes[at][len] == '\0') {
            at = -1;                /* known already */
            break;
        }
        if (cmp > 0 || (cmp == 0 && cur->codes[at][len] != '\0')) {
            break;                  /* sorts after the new one */
        }
    }
    if (at >= 0) {
        codes = calloc((size_t) n + 2, sizeof(*codes));
        lens = calloc((size_t) n + 2, sizeof(*lens));
        if (codes != NULL && lens != NULL) {
            for (int i = 0, j = 0; i <= n; i++) {
                if (i == at) {
                    codes[j] = code;
                    lens[j++] = len;
                }
                if (i < n) {
                    codes[j] = cur->codes[i];
                    lens[j++] = strlen(cur->codes[i]);
                }
            }
            w = fcgi_registry_build(codes, lens, n + 1);
            if (w != NULL) {
                fcgi_registry_swap(w);
            }
        }
        free(codes);
        free(lens);
    }
    fcgi_registry_put(cur);
    pthread_mutex_unlock(&reg.build);
}

static void *
fcgi_registry_run(void *arg)
{
    PGconn *conn;
    fcgi_warehouses *w;
    int empty;

    (void) arg;
    for ( ;; ) {
        w = fcgi_registry_get();
        empty = w == NULL || w->n == 0;
        fcgi_registry_put(w);
        if (fcgi_stop_wait(empty ? FCGI_REGISTRY_EMPTY_MS : FCGI_REGISTRY_EVERY_MS)) {
            break;
        }
        conn = fcgi_pool_acquire(reg.pool);
        if (conn == NULL) {
            continue;
        }
        fcgi_registry_load(conn);
        fcgi_pool_release(reg.pool, conn);
    }
    return NULL;
}

int
fcgi_registry_start(const shop_settings *s, fcgi_pool *pool, PGconn *conn)
{
    reg.settings = s;
    reg.pool = pool;
    if (conn == NULL || fcgi_registry_load(conn) != 0) {
        fcgi_warehouses *w = fcgi_registry_build(NULL, NULL, 0);
        if (w == NULL) {
            return -1;
        }
        fcgi_registry_swap(w);
    }
    errno = pthread_create(&reg.tid, NULL, fcgi_registry_run, NULL);
    if (errno != 0) {
        fcgi_log(FCGI_LOG_ERROR, "warehouses: cannot start the registry thread: %s",
                 strerror(errno));
        return -1;
    }
    reg.running = 1;
    return 0;
}

void
fcgi_registry_stop(void)
{
    if (reg.running) {
        pthread_join(reg.tid, NULL);
        reg.running = 0;
    }
    fcgi_registry_swap(NULL);
}
