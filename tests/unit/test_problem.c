/* Problem details (RFC 9457, API.md "Conventions") for every shop_err,
 * database results as answers, request ids, running out of memory, and the
 * JSON log line. */
#include "helpers.h"

#include <string.h>

/* API.md's list: the type names and statuses are the contract. */
static const struct {
    shop_err    err;
    int         status;
    const char *type;
} contract[] = {
    { SHOP_E_BAD_REQUEST,            400, "bad-request" },
    { SHOP_E_UNAUTHORIZED,           401, "unauthorized" },
    { SHOP_E_FORBIDDEN,              403, "forbidden" },
    { SHOP_E_NOT_FOUND,              404, "not-found" },
    { SHOP_E_METHOD_NOT_ALLOWED,     405, "method-not-allowed" },
    { SHOP_E_CONFLICT,               409, "conflict" },
    { SHOP_E_PRECONDITION_FAILED,    412, "precondition-failed" },
    { SHOP_E_PAYLOAD_TOO_LARGE,      413, "payload-too-large" },
    { SHOP_E_UNSUPPORTED_MEDIA_TYPE, 415, "unsupported-media-type" },
    { SHOP_E_VALIDATION,             422, "validation" },
    { SHOP_E_INSUFFICIENT_STOCK,     409, "insufficient-stock" },
    { SHOP_E_INVALID_TRANSITION,     409, "invalid-transition" },
    { SHOP_E_UNAVAILABLE,            503, "unavailable" },
    { SHOP_E_INTERNAL,               500, "internal" },
};

/* A context that has answered /healthz, ready to be failed. */
static th_env *
ready(void)
{
    th_env *e = th_new();
    th_request(e, "GET", "/healthz");
    th_begin(e);
    assert_int_equal(e->c.resp.status, 200);
    return e;
}

static void
test_error_table(void **state)
{
    (void) state;
    assert_int_equal(sizeof(contract) / sizeof(contract[0]), SHOP_ERR_COUNT - 1);
    for (size_t i = 0; i < sizeof(contract) / sizeof(contract[0]); i++) {
        const shop_err_info *info = shop_err_info_of(contract[i].err);
        assert_int_equal(info->status, contract[i].status);
        assert_string_equal(info->type, contract[i].type);
        assert_non_null(info->title);
        assert_true(strlen(info->title) > 0);
    }
    /* Out of range: internal. */
    assert_int_equal(shop_err_info_of(SHOP_ERR_COUNT)->status, 500);
    assert_int_equal(shop_err_info_of((shop_err) -1)->status, 500);
    assert_string_equal(shop_err_info_of(SHOP_E_VALIDATION)->title, "Validation failed");
}

static void
test_every_problem_rendered(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(contract) / sizeof(contract[0]); i++) {
        th_env *e = ready();
        const shop_err_info *info = shop_err_info_of(contract[i].err);

        shop_fail(&e->c, contract[i].err, "a \"quoted\" detail \\ with\nnewline");
        struct json_object *p = th_problem(e, contract[i].status, contract[i].type);
        assert_string_equal(th_jstr(p, "title"), info->title);
        assert_string_equal(th_jstr(p, "detail"), "a \"quoted\" detail \\ with\nnewline");
        assert_int_equal(json_object_object_length(p), 4);
        /* Member order and spelling, byte for byte. */
        assert_body(e, th_fmt(e, "{\"type\":\"https://shop.example/problems/%s\",\"title\":\"%s\",\"status\":%d,"
                                 "\"detail\":\"a \\\"quoted\\\" detail \\\\ with\\nnewline\"}",
                              contract[i].type, info->title, contract[i].status));

        const char *www = th_header(e, "WWW-Authenticate");
        const char *retry = th_header(e, "Retry-After");
        if (contract[i].status == 401) {
            assert_non_null(www);
            assert_true(strncmp(www, "Bearer", 6) == 0);
        } else {
            assert_null(www);
        }
        if (contract[i].status == 503) {
            assert_non_null(retry);
            assert_true(strlen(retry) > 0 && strspn(retry, "0123456789") == strlen(retry));
        } else {
            assert_null(retry);
        }
        assert_null(th_header(e, "Allow"));   /* only the router adds it, with 405 */
        th_free(e);
    }
}

static void
test_problem_extra_members(void **state)
{
    th_env *e = ready();
    (void) state;

    shop_fail_ext(&e->c, SHOP_E_INVALID_TRANSITION, "cannot go from pending to shipped",
                  SHOP_STR(",\"allowed\":[\"paid\",\"cancelled\"]"));
    struct json_object *p = th_problem(e, 409, "invalid-transition");
    struct json_object *allowed;
    assert_true(json_object_object_get_ex(p, "allowed", &allowed));
    assert_int_equal(json_object_array_length(allowed), 2);
    th_free(e);
}

static void
test_405_has_allow(void **state)
{
    th_env *e = *state;

    th_request(e, "DELETE", "/products");
    th_begin(e);
    th_problem(e, 405, "method-not-allowed");
    assert_string_equal(th_header(e, "Allow"), "GET, HEAD, POST, OPTIONS");
}

/* ---- database results ------------------------------------------------------- */

static th_env *
db_answer(const shop_result *r, int *ok)
{
    th_env *e = ready();
    *ok = shop_db_ok(&e->c, r);
    return e;
}

static void
check_db(shop_result r, int status, const char *type, const char *detail)
{
    int ok;
    th_env *e = db_answer(&r, &ok);

    assert_int_equal(ok, 0);
    struct json_object *p = th_problem(e, status, type);
    if (detail) {
        assert_string_equal(th_jstr(p, "detail"), detail);
    }
    if (status == 503) {
        assert_non_null(th_header(e, "Retry-After"));
    }
    th_free(e);
}

static void
test_db_statuses(void **state)
{
    th_env *b = *state;
    int ok;

    shop_result r = th_ok(th_products(b, 0, NULL));
    th_env *e = db_answer(&r, &ok);
    assert_int_equal(ok, 1);
    assert_int_equal(e->c.resp.status, 200);   /* untouched */
    th_free(e);

    check_db(th_unique("whatever_key"), 409, "conflict", NULL);
    check_db(th_db(SHOP_DB_FOREIGN_KEY), 409, "conflict", NULL);
    check_db(th_db(SHOP_DB_CHECK), 422, "validation", NULL);
    check_db(th_db(SHOP_DB_RETRY), 503, "unavailable", NULL);
    check_db(th_db(SHOP_DB_TIMEOUT), 503, "unavailable", NULL);
    check_db(th_db(SHOP_DB_UNAVAILABLE), 503, "unavailable", NULL);
    check_db(th_db(SHOP_DB_ERROR), 500, "internal", NULL);
}

static void
test_db_raised(void **state)
{
    (void) state;
    check_db(th_raised("SH400", "the order has no items"), 400, "bad-request", "the order has no items");
    check_db(th_raised("SH404", "no such product"), 404, "not-found", "no such product");
    check_db(th_raised("SH409", "taken"), 409, "conflict", "taken");
    check_db(th_raised("SH412", "version mismatch"), 412, "precondition-failed", "version mismatch");
    check_db(th_raised("SH422", "bad amount"), 422, "validation", "bad amount");
    check_db(th_raised("SHSTK", "not enough stock"), 409, "insufficient-stock", "not enough stock");
    check_db(th_raised("SH404", NULL), 404, "not-found", NULL);
    /* A code we do not know is ours but unexpected: 500, and its text stays inside. */
    shop_result r = th_raised("SH999", "internal: table shop.x at /var/lib/postgresql");
    int ok;
    th_env *e = db_answer(&r, &ok);
    th_problem(e, 500, "internal");
    assert_null(strstr(th_cstr(e, e->c.resp.body), "shop.x"));
    assert_null(strstr(th_cstr(e, e->c.resp.body), "/var/lib"));
    th_free(e);
}

static void
test_db_raised_members(void **state)
{
    shop_result r = th_raised("SHSTK", "not enough stock");
    int ok;
    (void) state;

    r.detail = ",\"short\":[{\"sku\":\"TEE-RED-M\",\"requested\":3,\"available\":1}]";
    th_env *e = db_answer(&r, &ok);
    struct json_object *p = th_problem(e, 409, "insufficient-stock");
    struct json_object *s;
    assert_true(json_object_object_get_ex(p, "short", &s));
    assert_int_equal(json_object_array_length(s), 1);
    th_free(e);

    /* A DETAIL that is not members is not pasted in. */
    r.detail = "Key (sku)=(X) already exists.";
    e = db_answer(&r, &ok);
    th_problem(e, 409, "insufficient-stock");
    assert_null(strstr(th_cstr(e, e->c.resp.body), "Key (sku)"));
    th_free(e);
}

static void
test_db_error_leaks_nothing(void **state)
{
    shop_result r = th_db(SHOP_DB_ERROR);
    int ok;
    (void) state;

    r.message = "relation \"shop.products\" does not exist";
    r.detail = "SELECT * FROM shop.products; /usr/lib/postgresql/15";
    r.constraint = "products_pkey";
    snprintf(r.sqlstate, sizeof(r.sqlstate), "42P01");
    th_env *e = db_answer(&r, &ok);
    struct json_object *p = th_problem(e, 500, "internal");
    const char *body = th_cstr(e, e->c.resp.body);
    assert_null(strstr(body, "shop.products"));
    assert_null(strstr(body, "relation"));
    assert_null(strstr(body, "SELECT"));
    assert_null(strstr(body, "/usr"));
    assert_null(strstr(body, "42P01"));
    assert_null(strstr(body, "products_pkey"));
    assert_int_equal(json_object_object_length(p), 4);
    th_free(e);
}

static void
test_result_set(void **state)
{
    th_env *e = *state;
    shop_result r;

    shop_result_set(&r, NULL);
    assert_int_equal(r.status, SHOP_DB_UNAVAILABLE);

    PGresult *ok = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    e->pg[e->npg++] = ok;
    shop_result_set(&r, ok);
    assert_int_equal(r.status, SHOP_DB_OK);
    assert_ptr_equal(r.res, ok);

    PGresult *cmd = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
    e->pg[e->npg++] = cmd;
    shop_result_set(&r, cmd);
    assert_int_equal(r.status, SHOP_DB_OK);

    /* An error without SQLSTATE is libpq's own: the connection. */
    PGresult *fatal = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
    e->pg[e->npg++] = fatal;
    shop_result_set(&r, fatal);
    assert_int_equal(r.status, SHOP_DB_UNAVAILABLE);
    assert_ptr_equal(r.res, fatal);

    PGresult *bad = PQmakeEmptyPGresult(NULL, PGRES_BAD_RESPONSE);
    e->pg[e->npg++] = bad;
    shop_result_set(&r, bad);
    assert_int_equal(r.status, SHOP_DB_ERROR);

    PGresult *empty = PQmakeEmptyPGresult(NULL, PGRES_EMPTY_QUERY);
    e->pg[e->npg++] = empty;
    shop_result_set(&r, empty);
    assert_int_equal(r.status, SHOP_DB_ERROR);

    shop_result_fail(&r, SHOP_DB_TIMEOUT);
    assert_int_equal(r.status, SHOP_DB_TIMEOUT);
    assert_null(r.res);
    assert_null(r.constraint);
    assert_null(r.message);
}

/* ---- request ids -------------------------------------------------------------- */

static const char *
request_id_for(const char *given)
{
    static char out[256];
    th_env *e = th_new();

    th_request(e, "GET", "/healthz");
    if (given != NULL) {
        e->req.request_id = th_s(e, given);
    }
    th_begin(e);
    snprintf(out, sizeof(out), "%s", th_header(e, "X-Request-Id"));
    assert_str(e, e->c.request_id, out);
    th_free(e);
    return out;
}

static void
test_request_id(void **state)
{
    th_env *b = *state;
    const char *id128 = th_rep(b, "a", 128);
    const char *id129 = th_rep(b, "a", 129);

    assert_string_equal(request_id_for(NULL), TH_FRESH_ID);
    assert_string_equal(request_id_for(""), TH_FRESH_ID);
    assert_string_equal(request_id_for("abc-123"), "abc-123");
    assert_string_equal(request_id_for("Req_1.2:3-x"), "Req_1.2:3-x");
    assert_string_equal(request_id_for("0b6b3c1e-7f3a-4c1a-9d2e-3f4a5b6c7d8e"), "0b6b3c1e-7f3a-4c1a-9d2e-3f4a5b6c7d8e");
    assert_string_equal(request_id_for(id128), id128);
    assert_string_equal(request_id_for(id129), TH_FRESH_ID);
    assert_string_equal(request_id_for("has space"), TH_FRESH_ID);
    assert_string_equal(request_id_for("quote\"d"), TH_FRESH_ID);
    assert_string_equal(request_id_for("back\\slash"), TH_FRESH_ID);
    assert_string_equal(request_id_for("new\nline"), TH_FRESH_ID);
    assert_string_equal(request_id_for("cr\rlf"), TH_FRESH_ID);
    assert_string_equal(request_id_for("caf\xc3\xa9"), TH_FRESH_ID);
    assert_string_equal(request_id_for("a,b"), TH_FRESH_ID);
    assert_string_equal(request_id_for("<script>"), TH_FRESH_ID);
}

static void
test_request_id_on_every_answer(void **state)
{
    static const char *const targets[][2] = {
        { "GET", "/healthz" }, { "GET", "/nope" }, { "DELETE", "/healthz" }, { "OPTIONS", "/products" },
        { "POST", "/products" }, { "GET", "/products/ABC" }, { "GET", "/products?limit=0" },
    };
    (void) state;

    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        th_env *e = th_new();
        th_request(e, targets[i][0], targets[i][1]);
        e->req.request_id = th_s(e, "trace-1");
        th_begin(e);
        assert_string_equal(e->c.resp.headers[0].name, "X-Request-Id");
        assert_str(e, e->c.resp.headers[0].value, "trace-1");
        th_free(e);
    }
}

/* ---- out of memory ------------------------------------------------------------- */

static void
test_out_of_memory(void **state)
{
    th_env *e = *state;

    e->core.limit = 0;            /* the arena gets no block at all */
    th_request(e, "GET", "/products/ABC");
    th_begin(e);
    assert_int_equal(e->c.resp.status, 500);
    assert_str(e, e->c.resp.content_type, "application/problem+json");
    assert_int_equal(e->c.resp.nheaders, 1);
    assert_string_equal(th_header(e, "X-Request-Id"), TH_FRESH_ID);
    struct json_object *p = th_json(e, e->c.resp.body);
    assert_string_equal(th_jstr(p, "type"), "https://shop.example/problems/internal");
    assert_int_equal(e->c.err, SHOP_E_INTERNAL);
}

/* The arena runs dry after `room` bytes, at every point of the request. */
static void
oom_sweep(const char *method, const char *target, const char *body, int planned)
{
    for (size_t room = 0; room <= 3072; room += 8) {
        th_env *e = th_new();
        char *block = shop_alloc(&e->scratch.arena, room + 16);
        e->core.arena.cur = block;
        e->core.arena.end = block + room;
        e->core.limit = 0;
        th_request(e, method, target);
        th_admin(e);
        if (body) {
            th_body(e, "application/json", body);
        }
        th_begin(e);
        if (e->core.arena.failed) {
            /* A clean 500, and no statement left for the front-end to run:
             * it executes whatever is planned (fcgi/request.c). */
            if (e->c.nqueries != 0) {
                print_error("%s %s, %zu bytes: out of memory, answered %d, yet %d statement(s) planned\n",
                            method, target, room, e->c.resp.status, e->c.nqueries);
            }
            assert_int_equal(e->c.resp.status, 500);
            th_json(e, e->c.resp.body);
            assert_int_equal(e->c.nqueries, 0);
        } else {
            assert_int_equal(e->c.nqueries, planned);
        }
        th_free(e);
    }
}

static void
test_out_of_memory_everywhere(void **state)
{
    (void) state;
    oom_sweep("GET", "/products/42", NULL, 1);
    oom_sweep("DELETE", "/products/42", NULL, 1);
    oom_sweep("GET", "/healthz", NULL, 0);
    oom_sweep("GET", "/products/ABC", NULL, 0);
}

/* Regression: when the arena fails after the handler planned its statement,
 * the answer is 500 and the plan is dropped, so no front-end runs a write
 * whose answer is already lost. */
static void
test_out_of_memory_after_plan(void **state)
{
    (void) state;
    oom_sweep("GET", "/products?limit=10&q=tee", NULL, 1);
    oom_sweep("POST", "/products",
              "{\"sku\":\"A\",\"name\":\"Red tee\",\"price_cents\":1,\"currency\":\"EUR\"}", 1);
}

/* ---- the log line ---------------------------------------------------------------- */

static struct json_object *
log_line(th_env *e, const char *method, int64_t total_us, int64_t db_us)
{
    shop_str line = shop_log_line(&e->c, shop_cstr(method), total_us, db_us, 0);
    assert_null(memchr(line.p, '\n', line.n));
    struct json_object *o = th_json(e, line);
    assert_true(json_object_is_type(o, json_type_object));
    return o;
}

static void
assert_member_int(struct json_object *o, const char *key, int64_t want)
{
    struct json_object *v;
    assert_true(json_object_object_get_ex(o, key, &v));
    assert_true(json_object_is_type(v, json_type_int));
    assert_true(json_object_get_int64(v) == want);
}

static void
test_log_line(void **state)
{
    th_env *e = *state;
    struct json_object *v;

    th_request(e, "GET", "/products/ABC");
    e->req.request_id = th_s(e, "trace-42");
    th_begin(e);
    struct json_object *o = log_line(e, "GET", 1234567, 89);
    assert_string_equal(th_jstr(o, "time"), "2026-11-22T23:34:02.123Z");
    assert_string_equal(th_jstr(o, "level"), "info");
    assert_string_equal(th_jstr(o, "request_id"), "trace-42");
    assert_string_equal(th_jstr(o, "method"), "GET");
    assert_string_equal(th_jstr(o, "route"), "/products/{id}");
    assert_member_int(o, "status", 404);
    assert_member_int(o, "bytes", (int64_t) e->c.resp.body.n);
    assert_true(json_object_object_get_ex(o, "total_ms", &v));
    assert_true(json_object_is_type(v, json_type_double));
    assert_string_equal(json_object_get_string(v), "1234.567");
    assert_true(json_object_object_get_ex(o, "db_ms", &v));
    assert_string_equal(json_object_get_string(v), "0.089");
    assert_string_equal(th_jstr(o, "problem"), "not-found");
    /* The raw line, for the spelling of the numbers. */
    const char *raw = th_cstr(e, shop_log_line(&e->c, SHOP_STR("GET"), 1234567, 89, 0));
    assert_non_null(strstr(raw, "\"total_ms\":1234.567,"));
    assert_non_null(strstr(raw, "\"db_ms\":0.089"));
}

static void
test_log_line_ok_and_errors(void **state)
{
    th_env *e = th_new();
    (void) state;

    th_request(e, "GET", "/healthz");
    th_begin(e);
    struct json_object *o = log_line(e, "GET", 0, 0);
    assert_string_equal(th_jstr(o, "level"), "info");
    assert_string_equal(th_jstr(o, "route"), "/healthz");
    assert_string_equal(th_jstr(o, "request_id"), TH_FRESH_ID);
    assert_member_int(o, "status", 200);
    assert_member_int(o, "bytes", 15);
    assert_false(json_object_object_get_ex(o, "problem", NULL));
    th_free(e);

    e = th_new();
    th_request(e, "GET", "/nope");
    th_begin(e);
    o = log_line(e, "GET", -5, -1);      /* clock trouble: never negative */
    assert_string_equal(th_jstr(o, "route"), "-");
    assert_non_null(strstr(th_cstr(e, shop_log_line(&e->c, SHOP_STR("GET"), -5, -1, -1)), "\"total_ms\":0.000"));
    th_free(e);

    e = th_new();
    th_request(e, "GET", "/readyz");
    th_begin(e);
    shop_result r = th_db(SHOP_DB_UNAVAILABLE);
    th_finish(e, &r);
    o = log_line(e, "GET", 1, 1);
    assert_string_equal(th_jstr(o, "level"), "error");
    assert_member_int(o, "status", 503);
    assert_string_equal(th_jstr(o, "problem"), "unavailable");
    th_free(e);
}

static void
test_log_line_odd_methods(void **state)
{
    th_env *e = *state;

    th_request(e, "X", "/healthz");
    th_begin(e);
    /* A method is a token: anything else shows as '?', so the line stays one JSON line. */
    struct json_object *o = log_line(e, "WEIRD\"\\\n", 1, 1);
    assert_string_equal(th_jstr(o, "method"), "WEIRD???");
    o = log_line(e, "AVERYLONGMETHODNAMEINDEED", 1, 1);   /* cut at 16 */
    assert_string_equal(th_jstr(o, "method"), "AVERYLONGMETHODN");
}

/* Regression: whatever method a client sends, the log line stays valid
 * JSON (non-token bytes show as '?', at most 16 of them). */
static void
test_log_line_method_not_utf8(void **state)
{
    th_env *e = *state;

    th_request(e, "X", "/healthz");
    th_begin(e);
    log_line(e, "G\xff\xfeT", 1, 1);
    log_line(e, "AAAAAAAAAAAAAAA\xc3\xa9", 1, 1);    /* é straddles byte 16 */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_error_table),
        TH_TEST(test_every_problem_rendered),
        TH_TEST(test_problem_extra_members),
        TH_TEST(test_405_has_allow),
        TH_TEST(test_db_statuses),
        TH_TEST(test_db_raised),
        TH_TEST(test_db_raised_members),
        TH_TEST(test_db_error_leaks_nothing),
        TH_TEST(test_result_set),
        TH_TEST(test_request_id),
        TH_TEST(test_request_id_on_every_answer),
        TH_TEST(test_out_of_memory),
        TH_TEST(test_out_of_memory_everywhere),
        TH_TEST(test_out_of_memory_after_plan),
        TH_TEST(test_log_line),
        TH_TEST(test_log_line_ok_and_errors),
        TH_TEST(test_log_line_odd_methods),
        TH_TEST(test_log_line_method_not_utf8),
    };
    return cmocka_run_group_tests_name("problem", tests, NULL, NULL);
}
