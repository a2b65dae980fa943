/* The handler core's interface to a front-end (the nginx module, shop-fcgi).
 *
 * The core does no I/O. A front-end turns an HTTP request into a
 * shop_request, reads the body (at most settings->body_limit bytes), then:
 *
 *     shop_ctx c;
 *     shop_begin(&c, &arena, &settings, &req);      route, validate, plan
 *     for each c.queries[i]:                          the front-end's only job:
 *         execute it, classify with shop_result_set() run the statements
 *     shop_finish(&c, results);                       render
 *     write c.resp; shop_release(&c);
 *
 * When shop_begin() plans no statement (c.nqueries == 0) the response is
 * already final. Statements come from the catalogue (catalogue.h) and are
 * prepared once per connection, so a query is a statement id and text
 * parameters. */
#ifndef SHOP_H
#define SHOP_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "arena.h"
#include "buf.h"
#include "catalogue.h"
#include "problem.h"
#include "settings.h"

/* Methods are bits so a route can list the ones it allows (the Allow header). */
typedef enum {
    SHOP_GET     = 1 << 0,
    SHOP_HEAD    = 1 << 1,
    SHOP_POST    = 1 << 2,
    SHOP_PUT     = 1 << 3,
    SHOP_PATCH   = 1 << 4,
    SHOP_DELETE  = 1 << 5,
    SHOP_OPTIONS = 1 << 6,
    SHOP_OTHER   = 1 << 7
} shop_method;

shop_method shop_method_parse(const char *name, size_t len);

typedef struct shop_request {
    shop_method  method;
    shop_str     base;            /* mount point, no trailing slash: "" or "/api" */
    shop_str     path;            /* raw (percent-encoded) path below base, from '/' */
    shop_str     query;           /* raw query string without '?' */
    /* The headers the core looks at: p NULL when absent (p set, n 0: sent
     * empty). Repeated headers are joined with ", " by the front-end. */
    shop_str     content_type;
    shop_str     authorization;
    shop_str     if_match;
    shop_str     if_none_match;
    shop_str     request_id;
    shop_str     idempotency_key;
    shop_str     last_event_id;
    shop_str     signature;       /* Shop-Signature */
    shop_str     upgrade;         /* Upgrade, Connection, Sec-WebSocket-Key and -Version */
    shop_str     connection;
    shop_str     ws_key;
    shop_str     ws_version;
    int          can_upgrade;     /* the front-end can switch to WebSocket (the module) */
    /* The body, complete, unless body_too_large. */
    int          has_body;        /* Content-Length or chunked */
    int          body_too_large;  /* over settings->body_limit: not read */
    const char  *body;
    size_t       body_len;
    shop_str     fresh_id;        /* a new random id (32 hex) for X-Request-Id */
    int64_t      now_ms;          /* wall clock, milliseconds since the epoch */
    /* The warehouse codes the front-end knows (refreshed from the
     * warehouse_list statement), for the stock check's fan-out. */
    const char *const *warehouses;
    int          nwarehouses;
    /* What GET /metrics shows (metrics.h); NULL when the front-end keeps none. */
    const struct shop_metrics_view *metrics;
} shop_request;

/* Where a statement runs: the shop's database, or the database of
 * warehouse i of shop_request.warehouses (by default the shop's too). */
#define SHOP_TARGET_PRIMARY       0
#define SHOP_TARGET_WAREHOUSE(i)  (1 + (i))
/* A read a replica may answer (settings.read_database); the primary without one. */
#define SHOP_TARGET_READ          (-1)

typedef struct shop_query {
    shop_stmt_id  stmt;
    int           target;
    int           deadline_ms;    /* > 0: answer SHOP_DB_TIMEOUT after this long */
    int           nparams;
    const char   *values[SHOP_MAX_PARAMS];   /* text format; NULL is SQL NULL */
} shop_query;

/* What became of a statement, as the render step needs it. */
typedef enum {
    SHOP_DB_OK,            /* res holds the rows */
    SHOP_DB_UNIQUE,        /* 23505, constraint names which */
    SHOP_DB_FOREIGN_KEY,   /* 23503 */
    SHOP_DB_CHECK,         /* 23514 */
    SHOP_DB_RAISED,        /* one of our functions refused: SQLSTATE class SH, detail is JSON */
    SHOP_DB_RETRY,         /* serialization failure or deadlock (40001, 40P01) */
    SHOP_DB_TIMEOUT,       /* statement timeout or the front-end's deadline */
    SHOP_DB_UNAVAILABLE,   /* no connection: database down, pool exhausted */
    SHOP_DB_ERROR          /* anything else: 500, details only in the log */
} shop_db_status;

typedef struct shop_result {
    shop_db_status  status;
    const PGresult *res;          /* the rows (OK) or the error result; may be NULL */
    char            sqlstate[6];
    const char     *constraint;   /* of a constraint violation */
    const char     *message;      /* of SH-class errors: written for clients */
    const char     *detail;       /* of SH-class errors: JSON members */
} shop_result;

/* Classifies a finished PGresult (reads fields only). */
void shop_result_set(shop_result *r, const PGresult *res);
/* A result that never reached the database. */
void shop_result_fail(shop_result *r, shop_db_status status);

typedef struct { const char *name; shop_str value; } shop_header;

#define SHOP_MAX_HEADERS 8

/* GET /events answers with a stream the front-end keeps open. */
typedef enum {
    SHOP_STREAM_NONE = 0,
    SHOP_STREAM_SSE,
    SHOP_STREAM_WEBSOCKET
} shop_stream_kind;

typedef struct {
    shop_stream_kind kind;
    unsigned         topics;      /* SHOP_TOPIC_* bits (events.h) */
    int64_t          after;       /* replay retained events with a larger id; -1: live only */
} shop_stream;

typedef struct shop_response {
    int          status;
    shop_str     content_type;    /* empty: no body */
    shop_header  headers[SHOP_MAX_HEADERS];
    int          nheaders;        /* headers[0] is always X-Request-Id */
    shop_str     body;
    shop_stream  stream;          /* kind != NONE: headers now, then events */
} shop_response;

struct shop_route;

typedef struct shop_ctx {
    shop_arena              *arena;
    const shop_settings     *settings;
    const shop_request      *req;
    const struct shop_route *route;        /* NULL: no route matched */
    shop_str                 params[3];    /* decoded path parameters */
    shop_str                 request_id;

    shop_query              *queries;      /* the plan */
    int                      nqueries;
    void                    *state;        /* what the handler keeps from plan to render */
    struct json_object      *json;         /* parsed body; shop_release() frees it */

    shop_response            resp;
    shop_err                 err;          /* SHOP_OK or what the response reports */
} shop_ctx;

void shop_begin(shop_ctx *c, shop_arena *a, const shop_settings *s, const shop_request *req);
/* results[i] belongs to c->queries[i]. */
void shop_finish(shop_ctx *c, const shop_result *results);
void shop_release(shop_ctx *c);

/* 1 when a statement of the plan that may write events succeeded: the
 * front-end then wakes its event hub (the change is committed). */
int  shop_plan_emitted(const shop_ctx *c, const shop_result *results);

/* The route template for logs and metrics ("/products/{id}"), "-" when none. */
const char *shop_route_name(const shop_ctx *c);

/* One JSON log line (no newline) describing a finished request: total time,
 * time in the database, time waiting for a connection. */
shop_str shop_log_line(shop_ctx *c, shop_str method, int64_t total_us, int64_t db_us,
                       int64_t wait_us);

/* How long past statement_timeout a front-end waits for a statement's
 * answer before it gives the connection up (a database that hangs, or
 * stopped, never sends the cancel's error): then 503. */
#define SHOP_STATEMENT_GRACE_MS 1000

/* Connection options both front-ends pass to libpq, so text values come out
 * the way the render step reads them (UTC timestamps, ISO dates), and so
 * that shop.emit leaves the wake-up to the front-end: it wakes every hub
 * once the change committed (shop_feed_woken), not one NOTIFY per writer. */
#define SHOP_PG_OPTIONS "-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3" \
    " -c shop.wakeup=deferred"

#endif
