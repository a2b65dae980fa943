/* Runs a request's plan: the statements for the shop's database in order on
 * one pooled connection, reads a replica may answer (SHOP_TARGET_READ) on
 * one of the read pool when read_database is set, statements for
 * warehouses in the fan-out (fanout.c), all at once. The PGresults stay
 * with the caller until the response is written, because the render step
 * reads rows straight out of them.
 *
 * A replica that is down makes its reads 503 (with Retry-After), as the
 * shop's database being down makes everything 503: they never fall back
 * to the primary. Reads go to the replica so that the primary does not
 * carry them; shifting all of them onto it when the replica fails would
 * take the primary down with it at the worst moment, and clients would see
 * fresh and lagging data in turn. An operator who wants a fallback says so
 * in the connection string: libpq tries several hosts in order
 * (SHOP_READ_DATABASE_URL=postgresql://replica,primary/shop). */
#include "shop_fcgi.h"

#include <stdio.h>

/* The pool a statement runs on; NULL: a warehouse's (the fan-out). */
static fcgi_pool *
fcgi_exec_pool(fcgi_pool *p, fcgi_pool *read_pool, int target)
{
    if (target == SHOP_TARGET_PRIMARY) {
        return p;
    }
    if (target == SHOP_TARGET_READ) {
        return read_pool != NULL ? read_pool : p;
    }
    return NULL;
}

/* Runs the plan's statements for pool p, in order, on one connection. */
static void
fcgi_exec_pool_run(fcgi_pool *p, fcgi_pool *read_pool, fcgi_pool *run, const shop_ctx *c,
                   shop_result *results, PGresult **res, int64_t *db_us, int64_t *wait_us)
{
    char msg[256];
    PGconn *conn;
    int64_t t0;
    /* No answer by then: the database hangs (it would have cancelled). */
    int64_t bound_ms = c->settings->statement_timeout_ms + SHOP_STATEMENT_GRACE_MS;
    int timed_out;

    t0 = fcgi_now_us();
    conn = fcgi_pool_acquire(run);
    *wait_us += fcgi_now_us() - t0;

    for (int i = 0; i < c->nqueries; i++) {
        const shop_query *q = &c->queries[i];
        const shop_statement *st = &shop_catalogue[q->stmt];

        if (fcgi_exec_pool(p, read_pool, q->target) != run) {
            continue;
        }
        if (conn == NULL) {
            shop_result_fail(&results[i], SHOP_DB_UNAVAILABLE);
            continue;
        }

        t0 = fcgi_now_us();
        res[i] = fcgi_pg_exec_within(conn, st->name, q->nparams, q->values, bound_ms, &timed_out);
        *db_us += fcgi_now_us() - t0;

        if (timed_out) {
            /* The database does not answer (it hangs, or stopped): this
             * connection goes, the request gets its 503 now. */
            fcgi_log(FCGI_LOG_ERROR, "request %.*s: statement %s: no answer within %lld ms; "
                     "connection given up", (int) c->request_id.n, c->request_id.p, st->name,
                     (long long) bound_ms);
            shop_result_fail(&results[i], SHOP_DB_TIMEOUT);
            fcgi_pool_release(run, conn);
            conn = NULL;
            continue;
        }

        if (PQstatus(conn) != CONNECTION_OK) {
            fcgi_log(FCGI_LOG_ERROR, "request %.*s: statement %s: connection lost: %s",
                     (int) c->request_id.n, c->request_id.p, st->name,
                     fcgi_pg_message(PQerrorMessage(conn), msg, sizeof(msg)));
            shop_result_fail(&results[i], SHOP_DB_UNAVAILABLE);
            /* Release drops it; the next acquire makes a new one. */
            fcgi_pool_release(run, conn);
            conn = NULL;
            continue;
        }
        if (res[i] == NULL) {
            shop_result_fail(&results[i], SHOP_DB_ERROR);
            continue;
        }

        shop_result_set(&results[i], res[i]);

        /* Only the log may see what went wrong inside the database: the
         * first line of the server's message, never the parameters. */
        if (results[i].status == SHOP_DB_ERROR) {
            fcgi_log(FCGI_LOG_ERROR, "request %.*s: statement %s: %s",
                     (int) c->request_id.n, c->request_id.p, st->name,
                     fcgi_pg_message(PQresultErrorMessage(res[i]), msg, sizeof(msg)));
        } else if (results[i].status == SHOP_DB_TIMEOUT) {
            fcgi_log(FCGI_LOG_WARN, "request %.*s: statement %s: %s",
                     (int) c->request_id.n, c->request_id.p, st->name,
                     fcgi_pg_message(PQresultErrorMessage(res[i]), msg, sizeof(msg)));
        }
    }

    if (conn != NULL) {
        fcgi_pool_release(run, conn);
    }
}

void
fcgi_exec_plan(fcgi_pool *p, fcgi_pool *read_pool, const shop_ctx *c, const fcgi_warehouses *wh,
               shop_result *results, PGresult **res, int64_t *db_us, int64_t *wait_us)
{
    int on_primary = 0, on_read = 0, remote = 0;

    for (int i = 0; i < c->nqueries; i++) {
        fcgi_pool *run = fcgi_exec_pool(p, read_pool, c->queries[i].target);

        res[i] = NULL;
        if (run == NULL) {
            remote++;
        } else if (run == p) {
            on_primary++;
        } else {
            on_read++;
        }
    }
    if (remote > 0) {
        fcgi_fanout_exec(c, wh != NULL ? wh->targets : NULL, wh != NULL ? wh->n : 0,
                         results, res, db_us);
    }
    if (on_primary > 0) {
        fcgi_exec_pool_run(p, read_pool, p, c, results, res, db_us, wait_us);
    }
    if (on_read > 0) {
        fcgi_exec_pool_run(p, read_pool, read_pool, c, results, res, db_us, wait_us);
    }
    if (shop_plan_emitted(c, results)) {
        fcgi_hub_wake();            /* committed: the hub reads and announces it */
    }
}
