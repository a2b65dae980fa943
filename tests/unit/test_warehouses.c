/* Warehouses and stock levels (warehouses.c): GET /warehouses,
 * PUT /warehouses/{code} (create or update), PUT /warehouses/{code}/stock/{sku}:
 * path and body validation, statement parameters, rendering. */
#include "helpers.h"

#include <string.h>

#define JSON_CT "application/json; charset=utf-8"

static void
assert_json_reply(th_env *e, int status, const char *body)
{
    assert_int_equal(e->c.resp.status, status);
    assert_str(e, e->c.resp.content_type, JSON_CT);
    assert_body(e, body);
    th_json(e, e->c.resp.body);
    assert_int_equal(e->c.err, SHOP_OK);
}

/* A warehouse_list (3 columns) or warehouse_put (4 columns) result. */
static PGresult *
warehouses(th_env *e, shop_stmt_id stmt, int n, const char *const (*rows)[4])
{
    PGresult *res = th_pg_stmt(e, stmt);

    for (int i = 0; i < n; i++) {
        th_pg_row(res, rows[i]);
    }
    return res;
}

/* ---- GET /warehouses ------------------------------------------------------------- */

static void
test_list(void **state)
{
    th_env *e = *state;
    static const char *const rows[][4] = {
        { "east", "East \"Annex\"", "150", NULL },
        { "north", "North DC", "0", NULL },
        { "south", "S\xc3\xbc" "d", "10000", NULL },
    };

    th_request(e, "GET", "/warehouses");
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_WAREHOUSE_LIST);
    assert_int_equal(e->c.queries[0].nparams, 0);
    assert_int_equal(e->c.queries[0].target, SHOP_TARGET_READ);   /* a replica may answer */
    shop_result r = th_ok(warehouses(e, SHOP_STMT_WAREHOUSE_LIST, 3, rows));
    th_finish(e, &r);
    assert_json_reply(e, 200,
        "{\"items\":[{\"code\":\"east\",\"name\":\"East \\\"Annex\\\"\",\"latency_ms\":150},"
        "{\"code\":\"north\",\"name\":\"North DC\",\"latency_ms\":0},"
        "{\"code\":\"south\",\"name\":\"S\xc3\xbc" "d\",\"latency_ms\":10000}]}");
}

static void
test_list_empty_and_down(void **state)
{
    th_env *e = th_new();
    (void) state;

    th_request(e, "GET", "/warehouses");
    th_begin(e);
    shop_result r = th_ok(warehouses(e, SHOP_STMT_WAREHOUSE_LIST, 0, NULL));
    th_finish(e, &r);
    assert_json_reply(e, 200, "{\"items\":[]}");
    th_free(e);

    e = th_new();
    th_request(e, "GET", "/warehouses");
    th_begin(e);
    r = th_db(SHOP_DB_UNAVAILABLE);
    th_finish(e, &r);
    th_problem(e, 503, "unavailable");
    assert_non_null(th_header(e, "Retry-After"));
    th_free(e);
}

/* ---- PUT /warehouses/{code} ------------------------------------------------------------ */

static th_env *
put(const char *code, const char *body)
{
    th_env *e = th_new();

    th_request(e, "PUT", th_fmt(e, "/warehouses/%s", code));
    th_admin(e);
    th_body(e, "application/json", body);
    th_begin(e);
    return e;
}

/* PUT code body: planned with (code, name, latency) or a 422 with errors. */
static void
check_put(const char *code, const char *body, const char *errors,
          const char *p_code, const char *p_name, const char *p_latency)
{
    th_env *e = put(code, body);

    if (errors != NULL) {
        if (e->c.resp.status != 422) {
            print_error("PUT %s %s: expected 422, got %d\n", code, body, e->c.resp.status);
        }
        struct json_object *p = th_problem(e, 422, "validation");
        assert_int_equal(e->c.nqueries, 0);
        th_assert_errors(e, p, errors);
    } else {
        if (e->c.nqueries != 1) {
            print_error("PUT %s %s: not planned (%d) %s\n", code, body, e->c.resp.status,
                        th_cstr(e, e->c.resp.body));
            fail();
        }
        assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_WAREHOUSE_PUT);
        assert_param(e, 0, 0, p_code);
        assert_param(e, 0, 1, p_name);
        /* PUT replaces the warehouse: no latency_ms is the default, 0. */
        assert_param(e, 0, 2, p_latency ? p_latency : "0");
    }
    th_free(e);
}

#define CODE_ERR "[{\"field\":\"code\",\"message\":\"must be 1-32 of a-z 0-9 - _, starting with a letter or digit\"}]"

static void
test_put_code(void **state)
{
    th_env *b = *state;
    const char *body = "{\"name\":\"North DC\"}";

    check_put("north", body, NULL, "north", "North DC", NULL);
    check_put("a", body, NULL, "a", "North DC", NULL);
    check_put("9lives", body, NULL, "9lives", "North DC", NULL);
    check_put("eu-west_2", body, NULL, "eu-west_2", "North DC", NULL);
    check_put("n%6Frth", body, NULL, "north", "North DC", NULL);
    check_put(th_rep(b, "w", 32), body, NULL, th_rep(b, "w", 32), "North DC", NULL);
    check_put(th_rep(b, "w", 33), body, CODE_ERR, NULL, NULL, NULL);
    check_put("North", body, CODE_ERR, NULL, NULL, NULL);
    check_put("-north", body, CODE_ERR, NULL, NULL, NULL);
    check_put("_north", body, CODE_ERR, NULL, NULL, NULL);
    check_put("nor.th", body, CODE_ERR, NULL, NULL, NULL);
    check_put("nor%20th", body, CODE_ERR, NULL, NULL, NULL);
    check_put("n%C3%B6rd", body, CODE_ERR, NULL, NULL, NULL);
    /* Path and body errors together, in one answer. */
    check_put("North", "{\"name\":\"\",\"latency_ms\":-1,\"x\":1}",
              "[{\"field\":\"x\",\"message\":\"unknown field\"},"
              "{\"field\":\"code\",\"message\":\"must be 1-32 of a-z 0-9 - _, starting with a letter or digit\"},"
              "{\"field\":\"name\",\"message\":\"must be 1 to 200 characters\"},"
              "{\"field\":\"latency_ms\",\"message\":\"must be >= 0\"}]",
              NULL, NULL, NULL);
    /* A code that does not decode names nothing. */
    th_env *e = put("nor%zzth", body);
    th_problem(e, 404, "not-found");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
}

static void
test_put_body(void **state)
{
    th_env *b = *state;

    check_put("north", "{\"name\":\"North DC\",\"latency_ms\":0}", NULL, "north", "North DC", "0");
    check_put("north", "{\"name\":\"North DC\",\"latency_ms\":150}", NULL, "north", "North DC", "150");
    check_put("north", "{\"name\":\"North DC\",\"latency_ms\":10000}", NULL, "north", "North DC", "10000");
    check_put("north", "{\"name\":\"North DC\",\"latency_ms\":null}", NULL, "north", "North DC", NULL);
    check_put("north", "{\"name\":\"North DC\",\"latency_ms\":10001}",
              "[{\"field\":\"latency_ms\",\"message\":\"must be <= 10000\"}]", NULL, NULL, NULL);
    check_put("north", "{\"name\":\"North DC\",\"latency_ms\":-1}",
              "[{\"field\":\"latency_ms\",\"message\":\"must be >= 0\"}]", NULL, NULL, NULL);
    check_put("north", "{\"name\":\"North DC\",\"latency_ms\":1.5}",
              "[{\"field\":\"latency_ms\",\"message\":\"must be an integer\"}]", NULL, NULL, NULL);
    check_put("north", "{\"name\":\"North DC\",\"latency_ms\":\"100\"}",
              "[{\"field\":\"latency_ms\",\"message\":\"must be an integer\"}]", NULL, NULL, NULL);
    check_put("north", "{}", "[{\"field\":\"name\",\"message\":\"is required\"}]", NULL, NULL, NULL);
    check_put("north", "{\"latency_ms\":5}", "[{\"field\":\"name\",\"message\":\"is required\"}]",
              NULL, NULL, NULL);
    check_put("north", "{\"name\":null}", "[{\"field\":\"name\",\"message\":\"is required\"}]", NULL, NULL, NULL);
    check_put("north", "{\"name\":\"\"}", "[{\"field\":\"name\",\"message\":\"must be 1 to 200 characters\"}]",
              NULL, NULL, NULL);
    check_put("north", "{\"name\":42}", "[{\"field\":\"name\",\"message\":\"must be a string\"}]",
              NULL, NULL, NULL);
    check_put("north", "{\"name\":\"a\\nb\"}",
              "[{\"field\":\"name\",\"message\":\"must not contain control characters\"}]", NULL, NULL, NULL);
    check_put("north", th_fmt(b, "{\"name\":\"%s\"}", th_rep(b, "n", 200)), NULL, "north", th_rep(b, "n", 200),
              NULL);
    check_put("north", th_fmt(b, "{\"name\":\"%s\"}", th_rep(b, "\xc3\xa9", 200)), NULL, "north",
              th_rep(b, "\xc3\xa9", 200), NULL);   /* characters, not bytes */
    check_put("north", th_fmt(b, "{\"name\":\"%s\"}", th_rep(b, "n", 201)),
              "[{\"field\":\"name\",\"message\":\"must be 1 to 200 characters\"}]", NULL, NULL, NULL);
    check_put("north", "{\"name\":\"North DC\",\"code\":\"south\"}",
              "[{\"field\":\"code\",\"message\":\"unknown field\"}]", NULL, NULL, NULL);

    /* Admin only; JSON only. */
    th_env *e = th_new();
    th_request(e, "PUT", "/warehouses/north");
    th_body(e, "application/json", "{\"name\":\"North DC\"}");
    th_begin(e);
    th_problem(e, 401, "unauthorized");
    th_free(e);
    e = th_new();
    th_request(e, "PUT", "/warehouses/north");
    th_admin(e);
    th_body(e, "text/plain", "{\"name\":\"North DC\"}");
    th_begin(e);
    th_problem(e, 415, "unsupported-media-type");
    th_free(e);
}

static th_env *
put_answer(const char *base, shop_result r)
{
    th_env *e = th_new();

    th_request(e, "PUT", "/warehouses/north");
    e->req.base = shop_cstr(base);
    th_admin(e);
    th_body(e, "application/json", "{\"name\":\"North DC\",\"latency_ms\":50}");
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    th_finish(e, &r);
    return e;
}

static void
test_put_render(void **state)
{
    th_env *b = *state;
    static const char *const created[][4] = { { "north", "North DC", "50", "t" } };
    static const char *const updated[][4] = { { "north", "North DC", "50", "f" } };

    th_env *e = put_answer("/api", th_ok(warehouses(b, SHOP_STMT_WAREHOUSE_PUT, 1, created)));
    assert_json_reply(e, 201, "{\"code\":\"north\",\"name\":\"North DC\",\"latency_ms\":50}");
    assert_string_equal(th_header(e, "Location"), "/api/warehouses/north");
    th_free(e);

    e = put_answer("", th_ok(warehouses(b, SHOP_STMT_WAREHOUSE_PUT, 1, created)));
    assert_int_equal(e->c.resp.status, 201);
    assert_string_equal(th_header(e, "Location"), "/warehouses/north");
    th_free(e);

    e = put_answer("/api", th_ok(warehouses(b, SHOP_STMT_WAREHOUSE_PUT, 1, updated)));
    assert_json_reply(e, 200, "{\"code\":\"north\",\"name\":\"North DC\",\"latency_ms\":50}");
    assert_null(th_header(e, "Location"));
    th_free(e);

    e = put_answer("/api", th_db(SHOP_DB_TIMEOUT));
    th_problem(e, 503, "unavailable");
    assert_null(th_header(e, "Location"));
    th_free(e);
    e = put_answer("/api", th_db(SHOP_DB_CHECK));
    th_problem(e, 422, "validation");
    th_free(e);
}

/* ---- PUT /warehouses/{code}/stock/{sku} ------------------------------------------------- */

static th_env *
put_stock(const char *code, const char *sku, const char *body)
{
    th_env *e = th_new();

    th_request(e, "PUT", th_fmt(e, "/warehouses/%s/stock/%s", code, sku));
    th_admin(e);
    th_body(e, "application/json", body);
    th_begin(e);
    return e;
}

static void
check_stock_404(const char *code, const char *sku)
{
    th_env *e = put_stock(code, sku, "{\"quantity\":5}");

    if (e->c.nqueries) {
        print_error("%s/%s: planned, expected 404\n", code, sku);
    }
    th_problem(e, 404, "not-found");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
}

static void
check_stock_ok(const char *code, const char *sku, const char *body, const char *p_code,
               const char *p_sku, const char *p_qty)
{
    th_env *e = put_stock(code, sku, body);

    if (e->c.nqueries != 1) {
        print_error("%s/%s %s: not planned (%d)\n", code, sku, body, e->c.resp.status);
        fail();
    }
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_STOCK_PUT);
    assert_param(e, 0, 0, p_code);
    assert_param(e, 0, 1, p_sku);
    assert_param(e, 0, 2, p_qty);
    th_free(e);
}

static void
check_stock_422(const char *body, const char *errors)
{
    th_env *e = put_stock("north", "TEE-RED-M", body);
    struct json_object *p = th_problem(e, 422, "validation");

    assert_int_equal(e->c.nqueries, 0);
    th_assert_errors(e, p, errors);
    th_free(e);
}

static void
test_stock_path(void **state)
{
    th_env *b = *state;

    check_stock_ok("north", "TEE-RED-M", "{\"quantity\":5}", "north", "TEE-RED-M", "5");
    check_stock_ok("north", "a.b_c-9", "{\"quantity\":5}", "north", "a.b_c-9", "5");
    check_stock_ok("north", "TEE%2dRED", "{\"quantity\":5}", "north", "TEE-RED", "5");
    check_stock_ok("north", th_rep(b, "S", 64), "{\"quantity\":5}", "north", th_rep(b, "S", 64), "5");
    check_stock_404("North", "TEE-RED-M");
    check_stock_404("-north", "TEE-RED-M");
    check_stock_404(th_rep(b, "w", 33), "TEE-RED-M");
    check_stock_404("no%20rth", "TEE-RED-M");
    check_stock_404("north", th_rep(b, "S", 65));
    check_stock_404("north", "TEE%20RED");
    check_stock_404("north", "TEE%2FRED");
    check_stock_404("north", "caf%C3%A9");
    check_stock_404("north", "TEE%00");
    check_stock_404("north", "TEE%zz");
    /* A bad path is 404 before the body is judged. */
    th_env *e = put_stock("North", "TEE-RED-M", "{\"quantity\":-1,\"x\":1}");
    th_problem(e, 404, "not-found");
    th_free(e);
}

static void
test_stock_quantity(void **state)
{
    (void) state;
    check_stock_ok("north", "TEE-RED-M", "{\"quantity\":0}", "north", "TEE-RED-M", "0");
    check_stock_ok("north", "TEE-RED-M", "{\"quantity\":1}", "north", "TEE-RED-M", "1");
    check_stock_ok("north", "TEE-RED-M", "{\"quantity\":1000000000}", "north", "TEE-RED-M", "1000000000");
    check_stock_422("{\"quantity\":1000000001}", "[{\"field\":\"quantity\",\"message\":\"must be <= 1000000000\"}]");
    check_stock_422("{\"quantity\":-1}", "[{\"field\":\"quantity\",\"message\":\"must be >= 0\"}]");
    check_stock_422("{\"quantity\":2.5}", "[{\"field\":\"quantity\",\"message\":\"must be an integer\"}]");
    check_stock_422("{\"quantity\":\"5\"}", "[{\"field\":\"quantity\",\"message\":\"must be an integer\"}]");
    check_stock_422("{\"quantity\":null}", "[{\"field\":\"quantity\",\"message\":\"is required\"}]");
    check_stock_422("{}", "[{\"field\":\"quantity\",\"message\":\"is required\"}]");
    check_stock_422("{\"quantity\":5,\"warehouse\":\"south\"}",
                    "[{\"field\":\"warehouse\",\"message\":\"unknown field\"}]");
    check_stock_422("{\"quantity\":99999999999999999999}",
                    "[{\"field\":\"quantity\",\"message\":\"must be <= 1000000000\"}]");
}

static void
test_stock_render(void **state)
{
    th_env *e = *state;

    th_request(e, "PUT", "/warehouses/north/stock/TEE-RED-M");
    th_admin(e);
    th_body(e, "application/json", "{\"quantity\":7}");
    th_begin(e);
    PGresult *res = th_pg_stmt(e, SHOP_STMT_STOCK_PUT);
    th_pg_row(res, (const char *const[]) { "north", "TEE-RED-M", "7" });
    shop_result r = th_ok(res);
    th_finish(e, &r);
    assert_json_reply(e, 200, "{\"warehouse\":\"north\",\"sku\":\"TEE-RED-M\",\"quantity\":7}");
    assert_null(th_header(e, "Location"));
}

static void
test_stock_render_errors(void **state)
{
    (void) state;
    static const struct { const char *code, *msg; int status; const char *type; } cases[] = {
        { "SH404", "no such warehouse", 404, "not-found" },
        { "SH404", "no such sku", 404, "not-found" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        th_env *e = put_stock("north", "TEE-RED-M", "{\"quantity\":7}");
        shop_result r = th_raised(cases[i].code, cases[i].msg);
        th_finish(e, &r);
        struct json_object *p = th_problem(e, cases[i].status, cases[i].type);
        assert_string_equal(th_jstr(p, "detail"), cases[i].msg);
        th_free(e);
    }
    th_env *e = put_stock("north", "TEE-RED-M", "{\"quantity\":7}");
    shop_result r = th_db(SHOP_DB_UNAVAILABLE);
    th_finish(e, &r);
    th_problem(e, 503, "unavailable");
    th_free(e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_list),
        TH_TEST(test_list_empty_and_down),
        TH_TEST(test_put_code),
        TH_TEST(test_put_body),
        TH_TEST(test_put_render),
        TH_TEST(test_stock_path),
        TH_TEST(test_stock_quantity),
        TH_TEST(test_stock_render),
        TH_TEST(test_stock_render_errors),
    };
    return cmocka_run_group_tests_name("warehouses", tests, NULL, NULL);
}
