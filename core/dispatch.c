/* shop_begin / shop_finish: what every request goes through, whatever its
 * route: request id, routing, authentication, body checks, then the
 * handler's plan and render steps; and the helpers handlers answer with. */
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "handler.h"
#include "json_strict.h"
#include "router.h"
#include "timefmt.h"
#include "uri.h"

static const shop_str json_content_type = { "application/json; charset=utf-8", 31 };
static const shop_str problem_type = { "application/problem+json", 24 };

shop_method
shop_method_parse(const char *name, size_t len)
{
    static const struct { const char *name; shop_method m; } methods[] = {
        { "GET", SHOP_GET }, { "HEAD", SHOP_HEAD }, { "POST", SHOP_POST }, { "PUT", SHOP_PUT },
        { "PATCH", SHOP_PATCH }, { "DELETE", SHOP_DELETE }, { "OPTIONS", SHOP_OPTIONS },
    };

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, name, len) == 0) {
            return methods[i].m;
        }
    }
    return SHOP_OTHER;
}

/* ---- answering ---------------------------------------------------------- */

void
shop_header_add(shop_ctx *c, const char *name, shop_str value)
{
    if (c->resp.nheaders < SHOP_MAX_HEADERS) {
        c->resp.headers[c->resp.nheaders].name = name;
        c->resp.headers[c->resp.nheaders].value = value;
        c->resp.nheaders++;
    }
}

void
shop_reply(shop_ctx *c, int status, shop_str content_type, shop_str body)
{
    c->resp.status = status;
    c->resp.content_type = content_type;
    c->resp.body = body;
}

void
shop_reply_json(shop_ctx *c, int status, shop_buf *body)
{
    shop_reply(c, status, json_content_type, shop_buf_str(body));
}

void
shop_fail_ext(shop_ctx *c, shop_err e, const char *detail, shop_str members)
{
    const shop_err_info *info = shop_err_info_of(e);
    shop_buf b;

    c->err = e;
    shop_buf_init(&b, c->arena, 192 + members.n);
    shop_buf_adds(&b, "{\"type\":\"" SHOP_PROBLEM_BASE);
    shop_buf_adds(&b, info->type);
    shop_buf_adds(&b, "\",\"title\":");
    shop_buf_add_jsons(&b, info->title);
    shop_buf_adds(&b, ",\"status\":");
    shop_buf_add_int(&b, info->status);
    shop_buf_adds(&b, ",\"detail\":");
    shop_buf_add_jsons(&b, detail);
    shop_buf_add_str(&b, members);
    shop_buf_addc(&b, '}');
    shop_reply(c, info->status, problem_type, shop_buf_str(&b));

    switch (e) {
    case SHOP_E_UNAUTHORIZED:
        /* The admin's scheme, unless the route named its own (the webhook's). */
        if (!(c->route != NULL && (c->route->flags & SHOP_R_SIGNED))) {
            shop_header_add(c, "WWW-Authenticate", SHOP_STR("Bearer realm=\"shop\""));
        } else {
            shop_header_add(c, "WWW-Authenticate", SHOP_STR("Shop-Signature"));
        }
        break;
    case SHOP_E_UNAVAILABLE:
        shop_header_add(c, "Retry-After", SHOP_STR("1"));
        break;
    case SHOP_OK:
    case SHOP_E_BAD_REQUEST:
    case SHOP_E_FORBIDDEN:
    case SHOP_E_NOT_FOUND:
    case SHOP_E_METHOD_NOT_ALLOWED:
    case SHOP_E_CONFLICT:
    case SHOP_E_PRECONDITION_FAILED:
    case SHOP_E_PAYLOAD_TOO_LARGE:
    case SHOP_E_UNSUPPORTED_MEDIA_TYPE:
    case SHOP_E_VALIDATION:
    case SHOP_E_INSUFFICIENT_STOCK:
    case SHOP_E_INVALID_TRANSITION:
    case SHOP_E_INTERNAL:
    case SHOP_ERR_COUNT:
        break;
    }
}

void
shop_fail(shop_ctx *c, shop_err e, const char *detail)
{
    shop_fail_ext(c, e, detail, SHOP_STR(""));
}

char *
shop_fmt_int(shop_arena *a, int64_t v)
{
    shop_buf b;
    shop_buf_init(&b, a, 24);
    shop_buf_add_int(&b, v);
    return (char *) shop_buf_str(&b).p;
}

const char *
shop_bool_param(int v)
{
    return v ? "t" : "f";
}

shop_str
shop_etag(shop_arena *a, const char *version)
{
    shop_buf b;
    shop_buf_init(&b, a, 16);
    shop_buf_addc(&b, '"');
    shop_buf_adds(&b, version);
    shop_buf_addc(&b, '"');
    return shop_buf_str(&b);
}

shop_query *
shop_plan_query(shop_ctx *c, shop_stmt_id stmt)
{
    shop_query *q = shop_alloc(c->arena, sizeof(*q) * (size_t) (c->nqueries + 1));

    if (q == NULL) {
        return NULL;
    }
    if (c->nqueries) {
        memcpy(q, c->queries, sizeof(*q) * (size_t) c->nqueries);
    }
    c->queries = q;
    q = &c->queries[c->nqueries++];
    memset(q, 0, sizeof(*q));
    q->stmt = stmt;
    q->target = SHOP_TARGET_PRIMARY;
    q->nparams = shop_catalogue[stmt].nparams;
    return q;
}

/* ---- database results ---------------------------------------------------- */

void
shop_result_fail(shop_result *r, shop_db_status status)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
}

static shop_db_status
classify_sqlstate(const char *st)
{
    static const struct { const char *code; shop_db_status status; } codes[] = {
        { "23505", SHOP_DB_UNIQUE }, { "23503", SHOP_DB_FOREIGN_KEY }, { "23514", SHOP_DB_CHECK },
        { "40001", SHOP_DB_RETRY }, { "40P01", SHOP_DB_RETRY }, { "55P03", SHOP_DB_RETRY },
        { "57014", SHOP_DB_TIMEOUT },
        { "57P01", SHOP_DB_UNAVAILABLE }, { "57P02", SHOP_DB_UNAVAILABLE },
        { "57P03", SHOP_DB_UNAVAILABLE }, { "53300", SHOP_DB_UNAVAILABLE },
    };

    if (st[0] == 'S' && st[1] == 'H') {
        return SHOP_DB_RAISED;
    }
    if (st[0] == '0' && st[1] == '8') {
        return SHOP_DB_UNAVAILABLE;   /* connection exceptions */
    }
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcmp(codes[i].code, st) == 0) {
            return codes[i].status;
        }
    }
    return SHOP_DB_ERROR;
}

void
shop_result_set(shop_result *r, const PGresult *res)
{
    memset(r, 0, sizeof(*r));
    r->res = res;
    if (res == NULL) {
        r->status = SHOP_DB_UNAVAILABLE;
        return;
    }
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
    case PGRES_SINGLE_TUPLE:
        r->status = SHOP_DB_OK;
        return;
    case PGRES_FATAL_ERROR:
    case PGRES_NONFATAL_ERROR:
    case PGRES_BAD_RESPONSE:
    case PGRES_EMPTY_QUERY:
    case PGRES_COPY_OUT:
    case PGRES_COPY_IN:
    case PGRES_COPY_BOTH:
    case PGRES_PIPELINE_SYNC:
    case PGRES_PIPELINE_ABORTED:
        break;
    }
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (st == NULL || strlen(st) != 5) {
        /* No SQLSTATE: libpq's own failure, i.e. the connection. */
        r->status = PQresultStatus(res) == PGRES_FATAL_ERROR ? SHOP_DB_UNAVAILABLE : SHOP_DB_ERROR;
        return;
    }
    memcpy(r->sqlstate, st, 6);
    r->status = classify_sqlstate(st);
    r->constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    if (r->status == SHOP_DB_RAISED) {
        r->message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        r->detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    }
}

int
shop_db_ok(shop_ctx *c, const shop_result *r)
{
    switch (r->status) {
    case SHOP_DB_OK:
        return 1;
    case SHOP_DB_UNIQUE:
        shop_fail(c, SHOP_E_CONFLICT, "a resource with these values already exists");
        return 0;
    case SHOP_DB_FOREIGN_KEY:
        shop_fail(c, SHOP_E_CONFLICT, "the resource is referenced by another one");
        return 0;
    case SHOP_DB_CHECK:
        shop_fail(c, SHOP_E_VALIDATION, "a value is outside what the shop accepts");
        return 0;
    case SHOP_DB_RAISED: {
        static const struct { const char *code; shop_err err; } raised[] = {
            { "SH400", SHOP_E_BAD_REQUEST }, { "SH404", SHOP_E_NOT_FOUND },
            { "SH409", SHOP_E_CONFLICT }, { "SH412", SHOP_E_PRECONDITION_FAILED },
            { "SH422", SHOP_E_VALIDATION }, { "SHSTK", SHOP_E_INSUFFICIENT_STOCK },
        };
        const char *msg = r->message ? r->message : "the request was refused";
        /* Our functions put extra problem members (",\"errors\":[...]") in DETAIL. */
        shop_str members = r->detail && r->detail[0] == ',' ? shop_cstr(r->detail) : SHOP_STR("");
        for (size_t i = 0; i < sizeof(raised) / sizeof(raised[0]); i++) {
            if (strcmp(raised[i].code, r->sqlstate) == 0) {
                shop_fail_ext(c, raised[i].err, msg, members);
                return 0;
            }
        }
        shop_fail(c, SHOP_E_INTERNAL, "the server could not complete the request");
        return 0;
    }
    case SHOP_DB_RETRY:
        shop_fail(c, SHOP_E_UNAVAILABLE, "the database was busy; retry the request");
        return 0;
    case SHOP_DB_TIMEOUT:
        shop_fail(c, SHOP_E_UNAVAILABLE, "the database did not answer in time");
        return 0;
    case SHOP_DB_UNAVAILABLE:
        shop_fail(c, SHOP_E_UNAVAILABLE, "the database is unavailable");
        return 0;
    case SHOP_DB_ERROR:
        shop_fail(c, SHOP_E_INTERNAL, "the server could not complete the request");
        return 0;
    }
    shop_fail(c, SHOP_E_INTERNAL, "the server could not complete the request");
    return 0;
}

/* ---- the request's way through ------------------------------------------ */

/* A client's X-Request-Id is kept when nothing in it could trip a log or a header. */
static int
sane_request_id(shop_str id)
{
    if (id.n == 0 || id.n > 128) {
        return 0;
    }
    for (size_t i = 0; i < id.n; i++) {
        char ch = id.p[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
              || ch == '.' || ch == '_' || ch == ':' || ch == '-')) {
            return 0;
        }
    }
    return 1;
}

/* application/json (or merge-patch+json where allowed), charset utf-8 if any. */
static int
media_type_ok(shop_str ct, int merge_patch)
{
    shop_str type, param;

    if (ct.n == 0 || !shop_str_split(&ct, ';', &type)) {
        return 0;
    }
    if (!shop_str_eq_nocase(type, "application/json")
        && !(merge_patch && shop_str_eq_nocase(type, "application/merge-patch+json"))) {
        return 0;
    }
    while (shop_str_split(&ct, ';', &param)) {
        shop_str name, value = param;
        if (!shop_str_split(&value, '=', &name) || value.p == NULL) {
            continue;
        }
        value = shop_str_trim(value);
        if (value.n >= 2 && value.p[0] == '"' && value.p[value.n - 1] == '"') {
            value.p++;
            value.n -= 2;
        }
        if (shop_str_eq_nocase(name, "charset") && !shop_str_eq_nocase(value, "utf-8")) {
            return 0;
        }
    }
    return 1;
}

/* 1 when the body is fit for the handler; otherwise the answer is set. */
static int
read_body(shop_ctx *c)
{
    const shop_request *req = c->req;
    const char *why = NULL;

    if (req->body_too_large) {
        shop_fail(c, SHOP_E_PAYLOAD_TOO_LARGE, "the request body is larger than the limit");
        return 0;
    }
    if (!media_type_ok(req->content_type, (c->route->flags & SHOP_R_MERGE_PATCH) != 0)) {
        shop_fail(c, SHOP_E_UNSUPPORTED_MEDIA_TYPE,
                  (c->route->flags & SHOP_R_MERGE_PATCH)
                  ? "the body must be application/json or application/merge-patch+json (UTF-8)"
                  : "the body must be application/json (UTF-8)");
        return 0;
    }
    c->json = shop_json_parse(c->arena, req->body ? req->body : "", req->body_len, &why);
    if (why != NULL) {
        shop_fail(c, SHOP_E_BAD_REQUEST, why);
        return 0;
    }
    if (!json_object_is_type(c->json, json_type_object)) {
        shop_fail_ext(c, SHOP_E_VALIDATION, "the body must be a JSON object",
                      SHOP_STR(",\"errors\":[{\"field\":\"\",\"message\":\"must be a JSON object\"}]"));
        return 0;
    }
    return 1;
}

/* Out of memory anywhere: a fixed answer that needs none. */
static void
finalize(shop_ctx *c)
{
    if (!c->arena->failed) {
        return;
    }
    c->nqueries = 0;   /* never run a plan whose answer is already lost */
    c->err = SHOP_E_INTERNAL;
    c->resp.status = 500;
    c->resp.content_type = problem_type;
    c->resp.nheaders = 1;
    c->resp.body = SHOP_STR("{\"type\":\"" SHOP_PROBLEM_BASE "internal\",\"title\":\"Internal server error\","
                            "\"status\":500,\"detail\":\"the server ran out of memory\"}");
}

void
shop_begin(shop_ctx *c, shop_arena *a, const shop_settings *s, const shop_request *req)
{
    shop_match m;

    memset(c, 0, sizeof(*c));
    c->arena = a;
    c->settings = s;
    c->req = req;
    c->request_id = sane_request_id(req->request_id) ? req->request_id : req->fresh_id;
    shop_header_add(c, "X-Request-Id", c->request_id);

    shop_route_find(req->path, req->method, &m);
    if (m.route == NULL) {
        if (m.allowed == 0) {
            shop_fail(c, SHOP_E_NOT_FOUND, "no such resource");
        } else if (req->method == SHOP_OPTIONS) {
            shop_header_add(c, "Allow", shop_allow_header(a, m.allowed | SHOP_OPTIONS));
            shop_reply(c, 204, SHOP_NULL_STR, SHOP_NULL_STR);
        } else {
            shop_header_add(c, "Allow", shop_allow_header(a, m.allowed | SHOP_OPTIONS));
            shop_fail(c, SHOP_E_METHOD_NOT_ALLOWED, "the resource does not support this method");
        }
        finalize(c);
        return;
    }
    c->route = m.route;
    /* Undecodable parameters name nothing that could exist. Handlers get
     * them NUL-terminated, ready to be statement parameters. */
    for (int i = 0; i < m.nparams; i++) {
        shop_str v;
        if (shop_pct_decode(a, m.params[i], 0, &v) != 0) {
            shop_fail(c, SHOP_E_NOT_FOUND, "no such resource");
            finalize(c);
            return;
        }
        c->params[i] = (shop_str) { shop_strndup(a, v.p, v.n), v.n };
        if (c->params[i].p == NULL) {
            finalize(c);
            return;
        }
    }
    if (m.route->flags & SHOP_R_ADMIN) {
        shop_err e = shop_auth_admin(s, req->authorization);
        if (e != SHOP_OK) {
            shop_fail(c, e, e == SHOP_E_UNAUTHORIZED ? "this needs the admin bearer token"
                                                      : "the token is not valid");
            finalize(c);
            return;
        }
    }
    if (m.route->flags & SHOP_R_SIGNED) {
        const char *why = NULL;
        if (req->body_too_large) {
            shop_fail(c, SHOP_E_PAYLOAD_TOO_LARGE, "the request body is larger than the limit");
            finalize(c);
            return;
        }
        if (!shop_auth_signature(s, a, req->signature, req->body, req->body_len, req->now_ms, &why)) {
            shop_fail(c, SHOP_E_UNAUTHORIZED, why);
            finalize(c);
            return;
        }
    }
    if ((m.route->flags & SHOP_R_JSON_BODY) && !read_body(c)) {
        finalize(c);
        return;
    }
    m.route->plan(c);
    finalize(c);
}

int
shop_plan_emitted(const shop_ctx *c, const shop_result *results)
{
    for (int i = 0; i < c->nqueries; i++) {
        if ((shop_catalogue[c->queries[i].stmt].flags & SHOP_EMITS)
            && results[i].status == SHOP_DB_OK) {
            return 1;
        }
    }
    return 0;
}

void
shop_finish(shop_ctx *c, const shop_result *results)
{
    if (c->route != NULL && c->route->render != NULL && c->nqueries > 0) {
        c->route->render(c, results);
    }
    finalize(c);
}

void
shop_release(shop_ctx *c)
{
    if (c->json != NULL) {
        json_object_put(c->json);
        c->json = NULL;
    }
}

const char *
shop_route_name(const shop_ctx *c)
{
    return c->route ? c->route->tmpl : "-";
}

/* Microseconds as milliseconds with three decimals. */
static void
add_millis(shop_buf *b, int64_t us)
{
    if (us < 0) {
        us = 0;
    }
    shop_buf_add_int(b, us / 1000);
    shop_buf_addc(b, '.');
    shop_buf_addc(b, (char) ('0' + us / 100 % 10));
    shop_buf_addc(b, (char) ('0' + us / 10 % 10));
    shop_buf_addc(b, (char) ('0' + us % 10));
}

shop_str
shop_log_line(shop_ctx *c, shop_str method, int64_t total_us, int64_t db_us, int64_t wait_us)
{
    shop_buf b;

    shop_buf_init(&b, c->arena, 320);
    shop_buf_adds(&b, "{\"time\":\"");
    shop_buf_add_ms(&b, c->req->now_ms);
    shop_buf_adds(&b, "\",\"level\":");
    shop_buf_adds(&b, c->resp.status >= 500 ? "\"error\"" : "\"info\"");
    shop_buf_adds(&b, ",\"request_id\":");
    shop_buf_add_json(&b, c->request_id.p, c->request_id.n);
    /* A method is a token; anything else in it is shown as '?'. */
    shop_buf_adds(&b, ",\"method\":\"");
    for (size_t i = 0; i < method.n && i < 16; i++) {
        char ch = method.p[i];
        shop_buf_addc(&b, (char) (ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? ch : '?'));
    }
    shop_buf_addc(&b, '"');
    shop_buf_adds(&b, ",\"route\":");
    shop_buf_add_jsons(&b, shop_route_name(c));
    shop_buf_adds(&b, ",\"status\":");
    shop_buf_add_int(&b, c->resp.status);
    shop_buf_adds(&b, ",\"bytes\":");
    shop_buf_add_int(&b, (int64_t) c->resp.body.n);
    shop_buf_adds(&b, ",\"total_ms\":");
    add_millis(&b, total_us);
    shop_buf_adds(&b, ",\"db_ms\":");
    add_millis(&b, db_us);
    shop_buf_adds(&b, ",\"pool_wait_ms\":");
    add_millis(&b, wait_us);
    if (c->err != SHOP_OK) {
        shop_buf_adds(&b, ",\"problem\":\"");
        shop_buf_adds(&b, shop_err_info_of(c->err)->type);
        shop_buf_addc(&b, '"');
    }
    shop_buf_addc(&b, '}');
    return shop_buf_str(&b);
}
