/* Event retention: a thread deletes events older than event_retention,
 * at most FCGI_PRUNE_BATCH per statement and with a pooled connection only
 * for that statement, so it never holds a request up for long. Several
 * processes may prune at once: the statement skips rows another one has
 * locked. */
#include "shop_fcgi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FCGI_PRUNE_BATCH      1000
#define FCGI_PRUNE_BATCH_STR  "1000"
#define FCGI_PRUNE_FIRST_MS   2000       /* after start-up */
#define FCGI_PRUNE_EVERY_MS   60000
#define FCGI_PRUNE_PAUSE_MS   20         /* between two full batches */

static struct {
    const shop_settings *settings;
    fcgi_pool           *pool;
    pthread_t            tid;
    int                  running;
} ret;

/* One pass: batches until one deletes less than a full batch. */
static void
fcgi_retention_pass(void)
{
    const char *name = shop_catalogue[SHOP_STMT_EVENTS_PRUNE].name;
    char age[24], msg[256];
    const char *values[2] = { age, FCGI_PRUNE_BATCH_STR };
    long long total = 0, n;

    snprintf(age, sizeof(age), "%lld", (long long) ret.settings->event_retention_ms);
    do {
        PGconn *conn = fcgi_pool_acquire(ret.pool);
        PGresult *res;

        if (conn == NULL) {
            return;
        }
        res = PQexecPrepared(conn, name, 2, values, NULL, NULL, 0);
        fcgi_pool_release(ret.pool, conn);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            fcgi_log(FCGI_LOG_WARN, "events: pruning failed: %s",
                     fcgi_pg_message(res ? PQresultErrorMessage(res) : "no result",
                                     msg, sizeof(msg)));
            PQclear(res);
            return;
        }
        n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        total += n;
    } while (n >= FCGI_PRUNE_BATCH && !fcgi_stop_wait(FCGI_PRUNE_PAUSE_MS));
    if (total > 0) {
        fcgi_log(FCGI_LOG_INFO, "events: pruned %lld events older than %lld ms", total,
                 (long long) ret.settings->event_retention_ms);
    }
}

static void *
fcgi_retention_run(void *arg)
{
    (void) arg;
    if (fcgi_stop_wait(FCGI_PRUNE_FIRST_MS)) {
        return NULL;
    }
    do {
        fcgi_retention_pass();
    } while (!fcgi_stop_wait(FCGI_PRUNE_EVERY_MS));
    return NULL;
}

int
fcgi_retention_start(const shop_settings *s, fcgi_pool *pool)
{
    ret.settings = s;
    ret.pool = pool;
    errno = pthread_create(&ret.tid, NULL, fcgi_retention_run, NULL);
    if (errno != 0) {
        fcgi_log(FCGI_LOG_ERROR, "events: cannot start the retention thread: %s",
                 strerror(errno));
        return -1;
    }
    ret.running = 1;
    return 0;
}

void
fcgi_retention_stop(void)
{
    if (ret.running) {
        pthread_join(ret.tid, NULL);
        ret.running = 0;
    }
}
