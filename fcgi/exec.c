/* Runs a request's plan: every statement for the shop's database, in
 * order, on one pooled connection; statements for warehouses go to the
 * fan-out (fanout.c), all at once. The PGresults stay with the caller
 * until the response is written, because the render step reads rows
 * straight out of them. */
#include "shop_fcgi.h"

#include <stdio.h>

/* The shop's own statements; reads a replica could answer run there too
 * (no replica pool yet). */
static int
fcgi_on_pool(int target)
{
    return target == SHOP_TARGET_PRIMARY || target == SHOP_TARGET_READ;
}

void
fcgi_exec_plan(fcgi_pool *p, const shop_ctx *c, const fcgi_warehouses *wh,
               shop_result *results, PGresult **res, int64_t *db_us, int64_t *wait_us)
{
    char msg[256];
    PGconn *conn = NULL;
    int64_t t0;
    int primary = 0, remote = 0;

    for (int i = 0; i < c->nqueries; i++) {
        res[i] = NULL;
        if (fcgi_on_pool(c->queries[i].target)) {
            primary++;
        } else {
            remote++;
        }
    }
    if (remote > 0) {
        fcgi_fanout_exec(c, wh != NULL ? wh->targets : NULL, wh != NULL ? wh->n : 0,
                         results, res, db_us);
    }
    if (primary > 0) {
        t0 = fcgi_now_us();
        conn = fcgi_pool_acquire(p);
        *wait_us += fcgi_now_us() - t0;
    }

    for (int i = 0; i < c->nqueries; i++) {
        const shop_query *q = &c->queries[i];
        const shop_statement *st = &shop_catalogue[q->stmt];

        if (!fcgi_on_pool(q->target)) {
            continue;
        }
        if (conn == NULL) {
            shop_result_fail(&results[i], SHOP_DB_UNAVAILABLE);
            continue;
        }

        t0 = fcgi_now_us();
        res[i] = PQexecPrepared(conn, st->name, q->nparams, q->values, NULL, NULL, 0);
        *db_us += fcgi_now_us() - t0;

        if (PQstatus(conn) != CONNECTION_OK) {
            fcgi_log(FCGI_LOG_ERROR, "request %.*s: statement %s: connection lost: %s",
                     (int) c->request_id.n, c->request_id.p, st->name,
                     fcgi_pg_message(PQerrorMessage(conn), msg, sizeof(msg)));
            shop_result_fail(&results[i], SHOP_DB_UNAVAILABLE);
            /* Release drops it; the next acquire makes a new one. */
            fcgi_pool_release(p, conn);
            conn = NULL;
            continue;
        }
        if (res[i] == NULL) {
            shop_result_fail(&results[i], SHOP_DB_ERROR);
            continue;
        }

        shop_result_set(&results[i], res[i]);

        /* Only the log may see what went wrong inside the database. */
        if (results[i].status == SHOP_DB_ERROR) {
            fcgi_log(FCGI_LOG_ERROR, "request %.*s: statement %s: %s",
                     (int) c->request_id.n, c->request_id.p, st->name,
                     fcgi_pg_message(PQresultErrorMessage(res[i]), msg, sizeof(msg)));
        }
    }

    if (conn != NULL) {
        fcgi_pool_release(p, conn);
    }
}
