/* POST /stock/check (stockcheck.c): the fan-out plan (one statement per
 * warehouse, its target and deadline), validation, and the merged answer
 * from whatever each warehouse returned: ok, timeout, error, wrong shapes,
 * unknown skus, nobody answering. */
#include "helpers.h"

#include <string.h>

#define JSON_CT "application/json; charset=utf-8"

static const char *const three[] = { "east", "north", "south" };

/* A new env with POST /stock/check of body, the front-end knowing warehouses w[0..nw). */
static th_env *
check(const char *body, const char *const *w, int nw)
{
    th_env *e = th_new();

    th_request(e, "POST", "/stock/check");
    th_body(e, "application/json", body);
    e->req.warehouses = w;
    e->req.nwarehouses = nw;
    th_begin(e);
    return e;
}

/* ---- plan ------------------------------------------------------------------------------- */

static void
test_plan(void **state)
{
    (void) state;
    th_env *e = check("{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":2},{\"sku\":\"MUG.1\",\"quantity\":1}]}",
                      three, 3);

    assert_int_equal(e->c.nqueries, 3);
    assert_int_equal(e->c.resp.status, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(e->c.queries[i].stmt, SHOP_STMT_WAREHOUSE_STOCK);
        assert_int_equal(e->c.queries[i].target, SHOP_TARGET_WAREHOUSE(i));
        assert_int_not_equal(e->c.queries[i].target, SHOP_TARGET_PRIMARY);
        assert_int_equal(e->c.queries[i].deadline_ms, 250);   /* the default */
        assert_int_equal(e->c.queries[i].nparams, 2);
        assert_param(e, i, 0, three[i]);
        assert_param(e, i, 1, "{\"TEE-RED-M\",\"MUG.1\"}");
    }
    th_free(e);
}

static void
test_plan_deadline_and_one_warehouse(void **state)
{
    (void) state;
    th_env *e = th_new();
    static const char *const one[] = { "north" };

    th_request(e, "POST", "/stock/check");
    th_body(e, "application/json", "{\"items\":[{\"sku\":\"A\",\"quantity\":1}]}");
    e->settings.stock_deadline_ms = 1000;
    e->req.warehouses = one;
    e->req.nwarehouses = 1;
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].target, SHOP_TARGET_WAREHOUSE(0));
    assert_int_equal(e->c.queries[0].deadline_ms, 1000);
    assert_param(e, 0, 0, "north");
    assert_param(e, 0, 1, "{\"A\"}");
    th_free(e);
}

static void
test_plan_no_warehouse(void **state)
{
    (void) state;
    th_env *e = check("{\"items\":[{\"sku\":\"A\",\"quantity\":1}]}", NULL, 0);

    th_problem(e, 503, "unavailable");
    assert_string_equal(th_header(e, "Retry-After"), "1");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);

    /* A bad request is still the client's fault first. */
    e = check("{\"items\":[]}", NULL, 0);
    th_problem(e, 422, "validation");
    th_free(e);
}

static void
want_422(const char *body, const char *errors)
{
    th_env *e = check(body, three, 3);

    if (e->c.resp.status != 422) {
        print_error("expected 422, got %d: %s\n", e->c.resp.status, body);
    }
    struct json_object *p = th_problem(e, 422, "validation");
    assert_int_equal(e->c.nqueries, 0);
    th_assert_errors(e, p, errors);
    th_free(e);
}

static const char *
n_items(th_env *b, int n)
{
    shop_buf buf;

    shop_buf_init(&buf, &b->scratch.arena, 64);
    shop_buf_adds(&buf, "{\"items\":[");
    for (int i = 0; i < n; i++) {
        shop_buf_adds(&buf, th_fmt(b, "%s{\"sku\":\"S%d\",\"quantity\":1}", i ? "," : "", i));
    }
    shop_buf_adds(&buf, "]}");
    return shop_buf_str(&buf).p;
}

static void
test_validation(void **state)
{
    th_env *b = *state;
    th_env *e;

    e = check(n_items(b, 1), three, 3);
    assert_int_equal(e->c.nqueries, 3);
    th_free(e);
    e = check(n_items(b, 100), three, 3);
    assert_int_equal(e->c.nqueries, 3);
    th_free(e);
    want_422(n_items(b, 0), "[{\"field\":\"items\",\"message\":\"must have 1 to 100 elements\"}]");
    want_422(n_items(b, 101), "[{\"field\":\"items\",\"message\":\"must have 1 to 100 elements\"}]");
    want_422("{}", "[{\"field\":\"items\",\"message\":\"is required\"}]");
    want_422("{\"items\":{}}", "[{\"field\":\"items\",\"message\":\"must be an array\"}]");
    want_422("{\"items\":[\"A\"]}", "[{\"field\":\"items[0]\",\"message\":\"must be an object\"}]");
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":1}],\"warehouses\":[\"north\"]}",
             "[{\"field\":\"warehouses\",\"message\":\"unknown field\"}]");
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":1,\"x\":0}]}",
             "[{\"field\":\"items[0].x\",\"message\":\"unknown field\"}]");
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":0}]}",
             "[{\"field\":\"items[0].quantity\",\"message\":\"must be >= 1\"}]");
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":1000000001}]}",
             "[{\"field\":\"items[0].quantity\",\"message\":\"must be <= 1000000000\"}]");
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":1.5}]}",
             "[{\"field\":\"items[0].quantity\",\"message\":\"must be an integer\"}]");
    want_422("{\"items\":[{\"sku\":\"A\"}]}", "[{\"field\":\"items[0].quantity\",\"message\":\"is required\"}]");
    want_422("{\"items\":[{\"sku\":\"A B\",\"quantity\":1}]}",
             "[{\"field\":\"items[0].sku\",\"message\":\"must be 1-64 of A-Z a-z 0-9 - _ .\"}]");
    want_422("{\"items\":[{\"quantity\":1}]}", "[{\"field\":\"items[0].sku\",\"message\":\"is required\"}]");
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":1},{\"sku\":\"A\",\"quantity\":2}]}",
             "[{\"field\":\"items[1].sku\",\"message\":\"appears more than once\"}]");
}

/* ---- render ----------------------------------------------------------------------------- */

/* One warehouse's answer: rows of (sku, known, quantity). */
static shop_result
stock(th_env *e, int n, const char *const (*rows)[3])
{
    PGresult *res = th_pg_stmt(e, SHOP_STMT_WAREHOUSE_STOCK);

    for (int i = 0; i < n; i++) {
        th_pg_row(res, rows[i]);
    }
    return th_ok(res);
}

#define TWO_ITEMS "{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":2},{\"sku\":\"MUG-1\",\"quantity\":5}]}"

static const char *const east[][3] = { { "TEE-RED-M", "t", "0" }, { "MUG-1", "t", "4" } };
static const char *const north[][3] = { { "TEE-RED-M", "t", "3" }, { "MUG-1", "t", "0" } };
static const char *const south[][3] = { { "TEE-RED-M", "t", "2" }, { "MUG-1", "t", "2" } };

static th_env *
render(const char *body, const shop_result *r)
{
    th_env *e = check(body, three, 3);

    assert_int_equal(e->c.nqueries, 3);
    th_finish(e, r);
    return e;
}

static void
test_render_all_ok(void **state)
{
    th_env *b = *state;
    shop_result r[3] = { stock(b, 2, east), stock(b, 2, north), stock(b, 2, south) };
    th_env *e = render(TWO_ITEMS, r);

    assert_int_equal(e->c.resp.status, 200);
    assert_str(e, e->c.resp.content_type, JSON_CT);
    assert_body(e,
        "{\"items\":["
        "{\"sku\":\"TEE-RED-M\",\"requested\":2,\"available\":5,"
        "\"by_warehouse\":{\"east\":0,\"north\":3,\"south\":2},\"ok\":true},"
        "{\"sku\":\"MUG-1\",\"requested\":5,\"available\":6,"
        "\"by_warehouse\":{\"east\":4,\"north\":0,\"south\":2},\"ok\":true}],"
        "\"warehouses\":{\"east\":\"ok\",\"north\":\"ok\",\"south\":\"ok\"},\"complete\":true}");
    th_json(e, e->c.resp.body);
    assert_int_equal(e->c.err, SHOP_OK);
    th_free(e);
}

static void
test_render_short(void **state)
{
    th_env *b = *state;
    shop_result r[3] = { stock(b, 2, east), stock(b, 2, north), stock(b, 2, south) };
    th_env *e = render("{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":6},{\"sku\":\"MUG-1\",\"quantity\":6}]}", r);
    struct json_object *o = th_json(e, e->c.resp.body);
    struct json_object *items = json_object_object_get(o, "items");

    assert_int_equal(e->c.resp.status, 200);
    /* 5 < 6: not ok; exactly 6: ok */
    assert_false(json_object_get_boolean(json_object_object_get(json_object_array_get_idx(items, 0), "ok")));
    assert_true(json_object_get_boolean(json_object_object_get(json_object_array_get_idx(items, 1), "ok")));
    assert_null(json_object_object_get(json_object_array_get_idx(items, 0), "unknown"));
    th_free(e);
}

static void
test_render_timeout(void **state)
{
    th_env *b = *state;
    shop_result r[3] = { stock(b, 2, east), th_db(SHOP_DB_TIMEOUT), stock(b, 2, south) };
    th_env *e = render(TWO_ITEMS, r);

    assert_int_equal(e->c.resp.status, 200);
    assert_body(e,
        "{\"items\":["
        "{\"sku\":\"TEE-RED-M\",\"requested\":2,\"available\":2,"
        "\"by_warehouse\":{\"east\":0,\"south\":2},\"ok\":true},"
        "{\"sku\":\"MUG-1\",\"requested\":5,\"available\":6,"
        "\"by_warehouse\":{\"east\":4,\"south\":2},\"ok\":true}],"
        "\"warehouses\":{\"east\":\"ok\",\"north\":\"timeout\",\"south\":\"ok\"},\"complete\":false}");
    assert_null(th_header(e, "Retry-After"));
    th_free(e);
}

static void
test_render_error_statuses(void **state)
{
    th_env *b = *state;
    static const shop_db_status errors[] = {
        SHOP_DB_UNIQUE, SHOP_DB_FOREIGN_KEY, SHOP_DB_CHECK, SHOP_DB_RAISED,
        SHOP_DB_RETRY, SHOP_DB_UNAVAILABLE, SHOP_DB_ERROR,
    };

    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        shop_result r[3] = { stock(b, 2, east), stock(b, 2, north), th_db(errors[i]) };
        th_env *e = render(TWO_ITEMS, r);
        struct json_object *o = th_json(e, e->c.resp.body);
        struct json_object *w = json_object_object_get(o, "warehouses");
        assert_int_equal(e->c.resp.status, 200);
        assert_string_equal(th_jstr(w, "south"), "error");
        assert_string_equal(th_jstr(w, "east"), "ok");
        assert_false(json_object_get_boolean(json_object_object_get(o, "complete")));
        assert_non_null(strstr(th_cstr(e, e->c.resp.body),
                               "{\"sku\":\"TEE-RED-M\",\"requested\":2,\"available\":3,"
                               "\"by_warehouse\":{\"east\":0,\"north\":3},\"ok\":true}"));
        th_free(e);
    }
}

/* An answer that does not hold one row per sku is that warehouse's error. */
static void
test_render_wrong_rows(void **state)
{
    th_env *b = *state;
    static const char *const too_many[][3] = {
        { "TEE-RED-M", "t", "9" }, { "MUG-1", "t", "9" }, { "CAP", "t", "9" },
    };

    shop_result r[3] = { stock(b, 1, east), stock(b, 2, north), stock(b, 3, too_many) };
    th_env *e = render(TWO_ITEMS, r);
    assert_int_equal(e->c.resp.status, 200);
    assert_body(e,
        "{\"items\":["
        "{\"sku\":\"TEE-RED-M\",\"requested\":2,\"available\":3,\"by_warehouse\":{\"north\":3},\"ok\":true},"
        "{\"sku\":\"MUG-1\",\"requested\":5,\"available\":0,\"by_warehouse\":{\"north\":0},\"ok\":false}],"
        "\"warehouses\":{\"east\":\"error\",\"north\":\"ok\",\"south\":\"error\"},\"complete\":false}");
    th_free(e);

    /* No rows at all from every warehouse: nobody answered usefully. */
    shop_result z[3] = { stock(b, 0, NULL), stock(b, 0, NULL), stock(b, 0, NULL) };
    e = render(TWO_ITEMS, z);
    th_problem(e, 503, "unavailable");
    th_free(e);
}

static void
test_render_all_failed(void **state)
{
    (void) state;
    shop_result r[3] = { th_db(SHOP_DB_TIMEOUT), th_db(SHOP_DB_UNAVAILABLE), th_db(SHOP_DB_ERROR) };
    th_env *e = render(TWO_ITEMS, r);

    th_problem(e, 503, "unavailable");
    assert_string_equal(th_header(e, "Retry-After"), "1");
    th_free(e);

    shop_result t[3] = { th_db(SHOP_DB_TIMEOUT), th_db(SHOP_DB_TIMEOUT), th_db(SHOP_DB_TIMEOUT) };
    e = render(TWO_ITEMS, t);
    th_problem(e, 503, "unavailable");
    th_free(e);
}

static void
test_render_unknown(void **state)
{
    th_env *b = *state;
    static const char *const e_rows[][3] = { { "NOPE", "f", "0" }, { "MUG-1", "t", "1" } };
    static const char *const n_rows[][3] = { { "NOPE", "f", "0" }, { "MUG-1", "t", "2" } };
    static const char *const s_rows[][3] = { { "NOPE", "f", "0" }, { "MUG-1", "t", "3" } };
    shop_result r[3] = { stock(b, 2, e_rows), stock(b, 2, n_rows), stock(b, 2, s_rows) };
    th_env *e = render("{\"items\":[{\"sku\":\"NOPE\",\"quantity\":1},{\"sku\":\"MUG-1\",\"quantity\":6}]}", r);

    assert_int_equal(e->c.resp.status, 200);
    assert_body(e,
        "{\"items\":["
        "{\"sku\":\"NOPE\",\"requested\":1,\"available\":0,\"by_warehouse\":{},\"ok\":false,\"unknown\":true},"
        "{\"sku\":\"MUG-1\",\"requested\":6,\"available\":6,"
        "\"by_warehouse\":{\"east\":1,\"north\":2,\"south\":3},\"ok\":true}],"
        "\"warehouses\":{\"east\":\"ok\",\"north\":\"ok\",\"south\":\"ok\"},\"complete\":true}");
    th_free(e);
}

/* The smallest case, exactly as API.md draws it. */
static void
test_render_exact_small(void **state)
{
    th_env *b = *state;
    static const char *const ns[] = { "north", "south", "east" };
    static const char *const n_rows[][3] = { { "TEE-RED-M", "t", "3" } };
    static const char *const s_rows[][3] = { { "TEE-RED-M", "t", "2" } };
    shop_result r[3] = { stock(b, 1, n_rows), stock(b, 1, s_rows), th_db(SHOP_DB_TIMEOUT) };
    th_env *e = check("{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":2}]}", ns, 3);

    th_finish(e, r);
    assert_int_equal(e->c.resp.status, 200);
    assert_str(e, e->c.resp.content_type, JSON_CT);
    assert_body(e,
        "{\"items\":[{\"sku\":\"TEE-RED-M\",\"requested\":2,\"available\":5,"
        "\"by_warehouse\":{\"north\":3,\"south\":2},\"ok\":true}],"
        "\"warehouses\":{\"north\":\"ok\",\"south\":\"ok\",\"east\":\"timeout\"},\"complete\":false}");
    th_free(e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_plan),
        TH_TEST(test_plan_deadline_and_one_warehouse),
        TH_TEST(test_plan_no_warehouse),
        TH_TEST(test_validation),
        TH_TEST(test_render_all_ok),
        TH_TEST(test_render_short),
        TH_TEST(test_render_timeout),
        TH_TEST(test_render_error_statuses),
        TH_TEST(test_render_wrong_rows),
        TH_TEST(test_render_all_failed),
        TH_TEST(test_render_unknown),
        TH_TEST(test_render_exact_small),
    };
    return cmocka_run_group_tests_name("stockcheck", tests, NULL, NULL);
}
