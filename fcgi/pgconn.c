/* One libpq connection: connect with the options the render step relies on,
 * then prepare and check the whole catalogue, so a schema that drifted from
 * the code is found before the first request uses it. */
#include "shop_fcgi.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

const char *
fcgi_pg_message(const char *msg, char *out, size_t outlen)
{
    size_t n;

    if (msg == NULL || msg[0] == '\0') {
        msg = "unknown error";
    }
    n = strcspn(msg, "\n");
    if (n >= outlen) {
        n = outlen - 1;
    }
    memcpy(out, msg, n);
    out[n] = '\0';
    return out;
}

/* libpq prints notices, and errors that arrive outside a query (a server
 * shutting down), on stderr as bare text; the log takes JSON lines only. */
static void
fcgi_pg_notice(void *arg, const char *message)
{
    char msg[256];

    (void) arg;
    fcgi_log(FCGI_LOG_WARN, "database says: %s", fcgi_pg_message(message, msg, sizeof(msg)));
}

void
fcgi_pg_quiet(PGconn *conn)
{
    if (conn != NULL) {
        PQsetNoticeProcessor(conn, fcgi_pg_notice, NULL);
    }
}

PGconn *
fcgi_pg_connect(const char *dsn, const char *app, int64_t statement_timeout_ms,
                char *err, size_t errlen)
{
    char options[160], msg[256];
    PGconn *conn;

    snprintf(options, sizeof(options), "%s -c statement_timeout=%lld", SHOP_PG_OPTIONS,
             (long long) statement_timeout_ms);

    /* Later keywords win over what the connection string sets: the string
     * may choose application_name and connect_timeout, not the options the
     * render step depends on. */
    const char *const keys[] = {
        "application_name", "connect_timeout", "dbname", "options", NULL
    };
    const char *const values[] = {
        app, "2", dsn, options, NULL
    };

    conn = PQconnectdbParams(keys, values, 1);
    if (conn == NULL) {
        snprintf(err, errlen, "cannot connect: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect: %s",
                 fcgi_pg_message(PQerrorMessage(conn), msg, sizeof(msg)));
        PQfinish(conn);
        return NULL;
    }
    fcgi_pg_quiet(conn);
    return conn;
}

int
fcgi_pg_prepare(PGconn *conn, char *err, size_t errlen)
{
    char msg[256];
    PGresult *res;
    int rc;

    for (int i = 0; i < SHOP_STMT_COUNT; i++) {
        const shop_statement *st = &shop_catalogue[i];

        res = PQprepare(conn, st->name, st->sql, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = PQstatus(conn) == CONNECTION_OK ? FCGI_PG_WRONG : FCGI_PG_DOWN;
            snprintf(err, errlen, "statement %s: PREPARE failed: %s", st->name,
                     fcgi_pg_message(res ? PQresultErrorMessage(res) : PQerrorMessage(conn),
                                     msg, sizeof(msg)));
            PQclear(res);
            return rc;
        }
        PQclear(res);

        res = PQdescribePrepared(conn, st->name);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = PQstatus(conn) == CONNECTION_OK ? FCGI_PG_WRONG : FCGI_PG_DOWN;
            snprintf(err, errlen, "statement %s: describe failed: %s", st->name,
                     fcgi_pg_message(res ? PQresultErrorMessage(res) : PQerrorMessage(conn),
                                     msg, sizeof(msg)));
            PQclear(res);
            return rc;
        }
        rc = shop_catalogue_check(st, res, err, errlen);
        PQclear(res);
        if (rc != 0) {
            return FCGI_PG_WRONG;
        }
    }
    return 0;
}

PGresult *
fcgi_pg_exec_within(PGconn *conn, const char *name, int nparams, const char *const *values,
                    int64_t timeout_ms, int *timed_out)
{
    int64_t deadline = fcgi_now_us() + timeout_ms * 1000;
    PGresult *last = NULL, *res;

    *timed_out = 0;
    if (!PQsendQueryPrepared(conn, name, nparams, values, NULL, NULL, 0)) {
        return NULL;
    }
    for ( ;; ) {
        while (PQisBusy(conn)) {
            struct pollfd pfd = { PQsocket(conn), POLLIN, 0 };
            int64_t left = deadline - fcgi_now_us();

            if (left <= 0) {
                /* The caller gives the connection up: a statement is still
                 * in flight on it (PQTRANS_ACTIVE). */
                *timed_out = 1;
                PQclear(last);
                return NULL;
            }
            if (poll(&pfd, 1, (int) ((left + 999) / 1000)) < 0 && errno != EINTR) {
                break;
            }
            if (!PQconsumeInput(conn)) {
                break;              /* lost: PQgetResult says so */
            }
        }
        res = PQgetResult(conn);
        if (res == NULL) {
            return last;
        }
        PQclear(last);
        last = res;
        if (PQstatus(conn) == CONNECTION_BAD) {
            return last;
        }
    }
}
