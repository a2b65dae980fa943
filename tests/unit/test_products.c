/* Plan and render of every product and health handler against fabricated
 * results: statement ids, exact parameters, exact bodies and headers. */
#include "helpers.h"

#include <string.h>

#include "cursor.h"
#include "fields.h"
#include "json_strict.h"
#include "timefmt.h"

#define PRODUCT_42_JSON \
    "{\"id\":42,\"sku\":\"TEE-RED-M\",\"slug\":\"red-tee-m\",\"name\":\"Red tee, M\"," \
    "\"category\":\"apparel\",\"description\":\"A red tee.\",\"price_cents\":1999,\"currency\":\"EUR\"," \
    "\"version\":3,\"created_at\":\"2026-11-22T23:34:02.123Z\",\"updated_at\":\"2026-11-23T08:00:00.000Z\"}"

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

/* ---- health ------------------------------------------------------------------ */

static void
test_healthz(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/healthz");
    th_begin(e);
    assert_int_equal(e->c.nqueries, 0);   /* no database touched */
    assert_json_reply(e, 200, "{\"status\":\"ok\"}");
    th_finish(e, NULL);                   /* nothing to render: unchanged */
    assert_json_reply(e, 200, "{\"status\":\"ok\"}");
}

static void
test_readyz_ready(void **state)
{
    th_env *e = *state;
    static const char *const names[] = { "ok" };
    static const Oid types[] = { 23 };

    th_request(e, "GET", "/readyz");
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PING);
    assert_int_equal(e->c.queries[0].nparams, 0);
    assert_int_equal(e->c.queries[0].target, SHOP_TARGET_PRIMARY);
    PGresult *res = th_pg(e, 1, names, types);
    th_pg_row(res, (const char *const[]) { "1" });
    shop_result r = th_ok(res);
    th_finish(e, &r);
    assert_json_reply(e, 200, "{\"status\":\"ready\"}");
}

static void
check_readyz_down(shop_db_status st)
{
    th_env *e = th_new();

    th_request(e, "GET", "/readyz");
    th_begin(e);
    shop_result r = th_db(st);
    th_finish(e, &r);
    th_problem(e, 503, "unavailable");
    assert_non_null(th_header(e, "Retry-After"));
    th_free(e);
}

static void
test_readyz_down(void **state)
{
    (void) state;
    check_readyz_down(SHOP_DB_UNAVAILABLE);
    check_readyz_down(SHOP_DB_TIMEOUT);
    check_readyz_down(SHOP_DB_ERROR);
    check_readyz_down(SHOP_DB_RETRY);
}

/* ---- GET /products/{id} ---------------------------------------------------------- */

/* Plans GET /products/<key>: the id and slug parameters, or a 404 (NULL, NULL). */
static void
check_get_plan(const char *target, const char *id, const char *slug)
{
    th_env *e = th_new();

    th_request(e, "GET", target);
    th_begin(e);
    if (id == NULL && slug == NULL) {
        if (e->c.nqueries != 0) {
            print_error("%s: planned, expected 404\n", target);
        }
        th_problem(e, 404, "not-found");
        assert_int_equal(e->c.nqueries, 0);
    } else {
        if (e->c.nqueries != 1) {
            print_error("%s: not planned (%d)\n", target, e->c.resp.status);
            fail();
        }
        assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_GET);
        if (id) {
            assert_param(e, 0, 0, id);
        } else {
            assert_param_null(e, 0, 0);
        }
        if (slug) {
            assert_param(e, 0, 1, slug);
        } else {
            assert_param_null(e, 0, 1);
        }
    }
    th_free(e);
}

static void
test_get_plan(void **state)
{
    th_env *b = *state;

    check_get_plan("/products/42", "42", "42");
    check_get_plan("/products/red-tee", NULL, "red-tee");
    check_get_plan("/products/red-tee-m2", NULL, "red-tee-m2");
    check_get_plan("/products/ABC", NULL, NULL);
    check_get_plan("/products/red_tee", NULL, NULL);
    check_get_plan("/products/red.tee", NULL, NULL);
    check_get_plan("/products/caf%C3%A9", NULL, NULL);
    check_get_plan("/products/0", NULL, "0");
    check_get_plan("/products/007", NULL, "007");
    check_get_plan("/products/-1", NULL, "-1");
    check_get_plan("/products/9223372036854775807", "9223372036854775807", "9223372036854775807");
    check_get_plan("/products/9223372036854775808", NULL, "9223372036854775808");
    check_get_plan(th_fmt(b, "/products/%s", th_rep(b, "a", 100)), NULL, th_rep(b, "a", 100));
    check_get_plan(th_fmt(b, "/products/%s", th_rep(b, "a", 101)), NULL, NULL);
    check_get_plan(th_fmt(b, "/products/%s", th_rep(b, "9", 101)), NULL, NULL);
    check_get_plan("/products/%34%32", "42", "42");
}

/* The front-end's path is a slice of the request line: the parameter is
 * followed by "?query" in memory, never by NUL. */
static void
test_get_plan_param_is_terminated(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products/42?fields=all");
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    assert_param(e, 0, 0, "42");
    assert_param(e, 0, 1, "42");
}

static void
test_get_render(void **state)
{
    th_env *e = *state;
    th_product p = th_product_default();

    th_request(e, "GET", "/products/42");
    th_begin(e);
    shop_result r = th_ok(th_products(e, 1, &p));
    th_finish(e, &r);
    assert_json_reply(e, 200, PRODUCT_42_JSON);
    assert_string_equal(th_header(e, "ETag"), "\"3\"");
}

static void
test_get_render_escaping(void **state)
{
    th_env *e = *state;
    th_product p = th_product_default();

    p.v[SHOP_P_NAME] = "Say \"hi\" \\ back";
    p.v[SHOP_P_DESCRIPTION] = "line1\nline2\r\ttab\x01\x1f\x7f end \xe2\x82\xac </script>";
    p.v[SHOP_P_CREATED_AT] = "2026-01-02 03:04:05.9+00";
    p.v[SHOP_P_UPDATED_AT] = "2026-01-02 03:04:05.999999+00";
    p.v[SHOP_P_PRICE_CENTS] = "1000000000000";
    p.v[SHOP_P_VERSION] = "2147483647";
    th_request(e, "GET", "/products/red-tee-m");
    th_begin(e);
    shop_result r = th_ok(th_products(e, 1, &p));
    th_finish(e, &r);
    assert_json_reply(e, 200,
        "{\"id\":42,\"sku\":\"TEE-RED-M\",\"slug\":\"red-tee-m\",\"name\":\"Say \\\"hi\\\" \\\\ back\","
        "\"category\":\"apparel\",\"description\":\"line1\\nline2\\r\\ttab\\u0001\\u001f\x7f end \xe2\x82\xac </script>\","
        "\"price_cents\":1000000000000,\"currency\":\"EUR\",\"version\":2147483647,"
        "\"created_at\":\"2026-01-02T03:04:05.900Z\",\"updated_at\":\"2026-01-02T03:04:05.999Z\"}");
    assert_string_equal(th_header(e, "ETag"), "\"2147483647\"");
    struct json_object *o = th_json(e, e->c.resp.body);
    assert_string_equal(th_jstr(o, "name"), "Say \"hi\" \\ back");
    assert_string_equal(th_jstr(o, "description"), p.v[SHOP_P_DESCRIPTION]);
}

static void
test_get_not_found(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products/42");
    th_begin(e);
    shop_result r = th_ok(th_products(e, 0, NULL));
    th_finish(e, &r);
    th_problem(e, 404, "not-found");
    assert_null(th_header(e, "ETag"));
}

static void
check_if_none_match(const char *header, int not_modified)
{
    th_env *e = th_new();
    th_product p = th_product_default();

    th_request(e, "GET", "/products/42");
    e->req.if_none_match = th_s(e, header);
    th_begin(e);
    shop_result r = th_ok(th_products(e, 1, &p));
    th_finish(e, &r);
    assert_string_equal(th_header(e, "ETag"), "\"3\"");
    if (not_modified) {
        if (e->c.resp.status != 304) {
            print_error("If-None-Match: %s -> %d\n", header, e->c.resp.status);
        }
        assert_int_equal(e->c.resp.status, 304);
        assert_int_equal(e->c.resp.body.n, 0);
        assert_int_equal(e->c.resp.content_type.n, 0);
    } else {
        assert_json_reply(e, 200, PRODUCT_42_JSON);
    }
    th_free(e);
}

static void
test_get_if_none_match(void **state)
{
    (void) state;
    check_if_none_match("\"3\"", 1);
    check_if_none_match("W/\"3\"", 1);
    check_if_none_match("\"1\", \"3\"", 1);
    check_if_none_match("*", 1);
    check_if_none_match("\"4\"", 0);
    check_if_none_match("\"2\", W/\"4\"", 0);
    check_if_none_match("garbage", 0);
}

static void
test_head_product(void **state)
{
    th_env *e = *state;
    th_product p = th_product_default();

    th_request(e, "HEAD", "/products/42");
    th_begin(e);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_GET);
    shop_result r = th_ok(th_products(e, 1, &p));
    th_finish(e, &r);
    /* The same answer as GET; the front-end sends no body. */
    assert_json_reply(e, 200, PRODUCT_42_JSON);
    assert_string_equal(th_header(e, "ETag"), "\"3\"");
}

static void
check_get_db_error(shop_result r, int status, const char *type)
{
    th_env *e = th_new();

    th_request(e, "GET", "/products/42");
    th_begin(e);
    th_finish(e, &r);
    th_problem(e, status, type);
    if (status == 503) {
        assert_non_null(th_header(e, "Retry-After"));
    }
    assert_null(th_header(e, "ETag"));
    th_free(e);
}

static void
test_get_db_errors(void **state)
{
    (void) state;
    check_get_db_error(th_db(SHOP_DB_UNAVAILABLE), 503, "unavailable");
    check_get_db_error(th_db(SHOP_DB_TIMEOUT), 503, "unavailable");
    check_get_db_error(th_db(SHOP_DB_ERROR), 500, "internal");
}

/* ---- GET /products ------------------------------------------------------------------ */

static void
test_list_render_empty(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products");
    th_begin(e);
    shop_result r = th_ok(th_products(e, 0, NULL));
    th_finish(e, &r);
    assert_json_reply(e, 200, "{\"items\":[],\"next\":null}");
}

static const char *
product_json(th_env *e, int id)
{
    return th_fmt(e,
        "{\"id\":%d,\"sku\":\"TEE-RED-M\",\"slug\":\"red-tee-m\",\"name\":\"Red tee, M\","
        "\"category\":\"apparel\",\"description\":\"A red tee.\",\"price_cents\":1999,\"currency\":\"EUR\","
        "\"version\":3,\"created_at\":\"2026-11-22T23:34:02.123Z\",\"updated_at\":\"2026-11-23T08:00:00.000Z\"}",
        id);
}

static void
test_list_render_last_page(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products?limit=2");
    th_begin(e);
    assert_param(e, 0, 1, "3");
    shop_result r = th_ok(th_products_seq(e, 2));   /* rows == limit: no more */
    th_finish(e, &r);
    assert_json_reply(e, 200, th_fmt(e, "{\"items\":[%s,%s],\"next\":null}", product_json(e, 1), product_json(e, 2)));
}

static void
test_list_render_next(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products?limit=2");
    th_begin(e);
    shop_result r = th_ok(th_products_seq(e, 3));   /* limit + 1 rows: a next page */
    th_finish(e, &r);
    /* "cDoy" is base64url("p:2"): the last row shown. */
    assert_json_reply(e, 200, th_fmt(e, "{\"items\":[%s,%s],\"next\":\"cDoy\"}", product_json(e, 1), product_json(e, 2)));

    /* The cursor leads to the next page. */
    th_env *f = th_new();
    th_request(f, "GET", "/products?limit=2&after=cDoy");
    th_begin(f);
    assert_int_equal(f->c.nqueries, 1);
    assert_param(f, 0, 0, "2");
    assert_param(f, 0, 1, "3");
    th_free(f);
}

static void
test_list_render_default_limit(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products?q=tee");
    th_begin(e);
    shop_result r = th_ok(th_products_seq(e, 51));
    th_finish(e, &r);
    struct json_object *o = th_json(e, e->c.resp.body), *items, *next;
    assert_true(json_object_object_get_ex(o, "items", &items));
    assert_int_equal(json_object_array_length(items), 50);
    assert_true(json_object_object_get_ex(o, "next", &next));
    shop_str key;
    assert_int_equal(shop_cursor_decode(&e->scratch.arena, 'p', shop_cstr(json_object_get_string(next)), &key), 0);
    assert_str(e, key, "50");
}

static void
test_list_render_max_limit(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products?limit=500");
    th_begin(e);
    shop_result r = th_ok(th_products_seq(e, 500));
    th_finish(e, &r);
    struct json_object *o = th_json(e, e->c.resp.body), *items, *next;
    assert_true(json_object_object_get_ex(o, "items", &items));
    assert_int_equal(json_object_array_length(items), 500);
    assert_true(json_object_object_get_ex(o, "next", &next));
    assert_null(next);
}

static void
test_list_db_error(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products");
    th_begin(e);
    shop_result r = th_db(SHOP_DB_TIMEOUT);
    th_finish(e, &r);
    th_problem(e, 503, "unavailable");
    assert_non_null(th_header(e, "Retry-After"));
}

/* ---- POST /products ---------------------------------------------------------------- */

static th_env *
create(const char *body, const char *base)
{
    th_env *e = th_new();

    th_request(e, "POST", "/products");
    if (base) {
        e->req.base = th_s(e, base);
    }
    th_admin(e);
    th_body(e, JSON_CT, body);
    th_begin(e);
    return e;
}

static void
test_create_plan(void **state)
{
    th_env *e = create("{\"sku\":\"TEE-RED-M\",\"slug\":\"red-tee-m\",\"name\":\"Red tee, M\",\"category\":\"apparel\","
                       "\"description\":\"Soft.\",\"price_cents\":1999,\"currency\":\"EUR\"}", NULL);
    (void) state;

    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_CREATE);
    assert_param(e, 0, 0, "TEE-RED-M");
    assert_param(e, 0, 1, "red-tee-m");
    assert_param(e, 0, 2, "f");          /* the slug was given */
    assert_param(e, 0, 3, "Red tee, M");
    assert_param(e, 0, 4, "apparel");
    assert_param(e, 0, 5, "Soft.");
    assert_param(e, 0, 6, "1999");
    assert_param(e, 0, 7, "EUR");
    th_free(e);

    e = create("{\"sku\":\"A\",\"name\":\"Plain\",\"price_cents\":0,\"currency\":\"USD\"}", NULL);
    assert_param(e, 0, 0, "A");
    assert_param(e, 0, 1, "plain");
    assert_param(e, 0, 2, "t");          /* derived */
    assert_param(e, 0, 4, "general");    /* API.md: default general */
    assert_param(e, 0, 5, "");
    assert_param(e, 0, 6, "0");
    th_free(e);

    e = create("{\"sku\":\"A\",\"name\":\"Plain\",\"price_cents\":1000000000000,\"currency\":\"USD\","
               "\"category\":null,\"description\":null,\"slug\":null}", NULL);
    assert_param(e, 0, 1, "plain");
    assert_param(e, 0, 2, "t");
    assert_param(e, 0, 4, "general");
    assert_param(e, 0, 5, "");
    assert_param(e, 0, 6, "1000000000000");
    th_free(e);
}

static const char *
derived_slug(th_env *b, const char *name_json, const char *sku)
{
    th_env *e = create(th_fmt(b, "{\"sku\":\"%s\",\"name\":%s,\"price_cents\":1,\"currency\":\"EUR\"}", sku, name_json),
                       NULL);
    if (e->c.nqueries != 1) {
        print_error("name %s: %d %s\n", name_json, e->c.resp.status, th_cstr(e, e->c.resp.body));
        fail();
    }
    assert_param(e, 0, 2, "t");
    const char *slug = th_fmt(b, "%s", th_param(e, 0, 1));
    th_free(e);
    return slug;
}

static void
test_slug_derivation(void **state)
{
    th_env *b = *state;

    assert_string_equal(derived_slug(b, "\"Red tee, M\"", "X"), "red-tee-m");
    assert_string_equal(derived_slug(b, "\"  --Hello,   World!!  \"", "X"), "hello-world");
    assert_string_equal(derived_slug(b, "\"ABC 123 xyz\"", "X"), "abc-123-xyz");
    assert_string_equal(derived_slug(b, "\"a_b.c/d\\\\e\"", "X"), "a-b-c-d-e");
    /* Non-ASCII letters are separators, like punctuation. */
    assert_string_equal(derived_slug(b, "\"Gr\xc3\xbcne \xc3\x84pfel\"", "X"), "gr-ne-pfel");
    assert_string_equal(derived_slug(b, "\"caf\xc3\xa9\"", "X"), "caf");
    /* Nothing usable in the name: the sku's. */
    assert_string_equal(derived_slug(b, "\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\"", "TEE_RED.M"), "tee-red-m");
    assert_string_equal(derived_slug(b, "\"!!! ???\"", "Sku-9"), "sku-9");
    assert_string_equal(derived_slug(b, "\"-\"", "---"), "product");
    /* At most 100. */
    assert_string_equal(derived_slug(b, th_fmt(b, "\"%s\"", th_rep(b, "A", 150)), "X"), th_rep(b, "a", 100));
    assert_string_equal(derived_slug(b, th_fmt(b, "\"%s\"", th_rep(b, "ab ", 60)), "X"),
                        th_fmt(b, "%sa", th_rep(b, "ab-", 33)));
}

/* Whatever the name, the derived slug is a valid slug (API.md: 1-100 of
 * a-z 0-9 -) without leading, trailing or doubled dashes. */
static void
test_slug_derivation_always_valid(void **state)
{
    th_env *b = *state;
    static const char *const units[] = { "a", "B", "7", " ", "-", "\xc3\xa9", "!", "ab ", "a  ", "xy-" };

    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        for (int n = 1; n <= 200; n += (n < 40 ? 1 : 23)) {
            const char *name = th_rep(b, units[u], n);
            if (shop_utf8_chars(name, strlen(name)) > 200) {
                continue;
            }
            const char *slug = derived_slug(b, th_fmt(b, "\"%s\"", name), "SKU-1");
            size_t len = strlen(slug);
            if (!shop_token_ok(shop_cstr(slug), 1, 100, shop_is_slug_char) || slug[0] == '-'
                || slug[len - 1] == '-' || strstr(slug, "--") != NULL) {
                print_error("name \"%s\" -> slug \"%s\"\n", name, slug);
                fail();
            }
        }
    }
}

static void
test_create_render(void **state)
{
    th_env *e = create("{\"sku\":\"TEE-RED-M\",\"name\":\"Red tee, M\",\"price_cents\":1999,\"currency\":\"EUR\"}", "/api");
    th_product p = th_product_default();
    (void) state;

    shop_result r = th_ok(th_products(e, 1, &p));
    th_finish(e, &r);
    assert_json_reply(e, 201, PRODUCT_42_JSON);
    assert_string_equal(th_header(e, "Location"), "/api/products/42");
    assert_string_equal(th_header(e, "ETag"), "\"3\"");
    th_free(e);

    e = create("{\"sku\":\"TEE-RED-M\",\"name\":\"Red tee, M\",\"price_cents\":1999,\"currency\":\"EUR\"}", NULL);
    r = th_ok(th_products(e, 1, &p));
    th_finish(e, &r);
    assert_int_equal(e->c.resp.status, 201);
    assert_string_equal(th_header(e, "Location"), "/products/42");
    th_free(e);
}

static void
check_write_error(const char *method, shop_result r, int status, const char *type, const char *detail)
{
    th_env *e = th_new();

    if (strcmp(method, "POST") == 0) {
        th_request(e, "POST", "/products");
        th_body(e, JSON_CT, "{\"sku\":\"TEE-RED-M\",\"name\":\"Red tee\",\"price_cents\":1,\"currency\":\"EUR\"}");
    } else {
        th_request(e, "PATCH", "/products/42");
        th_body(e, JSON_CT, "{\"slug\":\"taken\"}");
    }
    th_admin(e);
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    th_finish(e, &r);
    struct json_object *p = th_problem(e, status, type);
    if (detail) {
        assert_string_equal(th_jstr(p, "detail"), detail);
    }
    if (status == 503) {
        assert_non_null(th_header(e, "Retry-After"));
    }
    assert_null(th_header(e, "Location"));
    assert_null(th_header(e, "ETag"));
    th_free(e);
}

static void
test_write_errors(void **state)
{
    th_env *b = *state;

    for (int m = 0; m < 2; m++) {
        const char *method = m ? "PATCH" : "POST";
        check_write_error(method, th_unique("products_sku_key"), 409, "conflict",
                          "a product with this sku already exists");
        check_write_error(method, th_unique("products_slug_key"), 409, "conflict",
                          "a product with this slug already exists");
        check_write_error(method, th_unique("products_pkey"), 409, "conflict", NULL);
        check_write_error(method, th_unique(NULL), 409, "conflict", NULL);
        check_write_error(method, th_db(SHOP_DB_CHECK), 422, "validation", NULL);
        check_write_error(method, th_raised("SH404", "no such product"), 404, "not-found", "no such product");
        check_write_error(method, th_raised("SH412", "version mismatch"), 412, "precondition-failed", NULL);
        check_write_error(method, th_db(SHOP_DB_UNAVAILABLE), 503, "unavailable", NULL);
        check_write_error(method, th_db(SHOP_DB_TIMEOUT), 503, "unavailable", NULL);
        check_write_error(method, th_db(SHOP_DB_RETRY), 503, "unavailable", NULL);
        check_write_error(method, th_db(SHOP_DB_ERROR), 500, "internal", NULL);
        /* OK but no row: the function broke its promise. */
        check_write_error(method, th_ok(th_products(b, 0, NULL)), 500, "internal", NULL);
    }
}

/* ---- PATCH /products/{id} ------------------------------------------------------------ */

static void
test_update_render(void **state)
{
    th_env *e = *state;
    th_product p = th_product_default();

    p.v[SHOP_P_VERSION] = "4";
    p.v[SHOP_P_PRICE_CENTS] = "2499";
    th_request(e, "PATCH", "/products/red-tee-m");
    e->req.base = th_s(e, "/api");
    th_admin(e);
    th_body(e, "application/merge-patch+json", "{\"price_cents\":2499}");
    e->req.if_match = th_s(e, "\"3\"");
    th_begin(e);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_UPDATE);
    assert_param_null(e, 0, 0);
    assert_param(e, 0, 1, "red-tee-m");
    assert_param(e, 0, 2, "{3}");
    assert_param(e, 0, 7, "2499");
    shop_result r = th_ok(th_products(e, 1, &p));
    th_finish(e, &r);
    assert_int_equal(e->c.resp.status, 200);
    assert_string_equal(th_header(e, "ETag"), "\"4\"");
    assert_null(th_header(e, "Location"));
    struct json_object *o = th_json(e, e->c.resp.body), *v;
    assert_true(json_object_object_get_ex(o, "price_cents", &v));
    assert_int_equal(json_object_get_int64(v), 2499);
    assert_true(json_object_object_get_ex(o, "version", &v));
    assert_int_equal(json_object_get_int(v), 4);
}

/* ---- DELETE /products/{id} --------------------------------------------------------- */

static th_env *
delete(const char *target, const char *if_match)
{
    th_env *e = th_new();

    th_request(e, "DELETE", target);
    th_admin(e);
    if (if_match) {
        e->req.if_match = th_s(e, if_match);
    }
    th_begin(e);
    return e;
}

static void
test_delete_plan(void **state)
{
    (void) state;
    th_env *e = delete("/products/42", NULL);
    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_DELETE);
    assert_param(e, 0, 0, "42");
    assert_param(e, 0, 1, "42");
    assert_param_null(e, 0, 2);
    th_free(e);

    e = delete("/products/red-tee", "\"3\", \"4\"");
    assert_param_null(e, 0, 0);
    assert_param(e, 0, 1, "red-tee");
    assert_param(e, 0, 2, "{3,4}");
    th_free(e);

    e = delete("/products/42", "W/\"3\"");
    assert_param(e, 0, 2, "{}");
    th_free(e);

    e = delete("/products/NOPE", NULL);
    th_problem(e, 404, "not-found");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
}

static void
test_delete_render(void **state)
{
    th_env *b = *state;
    th_product p = th_product_default();

    th_env *e = delete("/products/42", NULL);
    shop_result r = th_ok(th_products(b, 1, &p));
    th_finish(e, &r);
    assert_int_equal(e->c.resp.status, 204);
    assert_int_equal(e->c.resp.body.n, 0);
    assert_int_equal(e->c.resp.content_type.n, 0);
    assert_int_equal(e->c.err, SHOP_OK);
    th_free(e);

    static const struct { shop_db_status st; const char *code; int status; const char *type; } cases[] = {
        { SHOP_DB_FOREIGN_KEY, NULL, 409, "conflict" },
        { SHOP_DB_RAISED, "SH404", 404, "not-found" },
        { SHOP_DB_RAISED, "SH412", 412, "precondition-failed" },
        { SHOP_DB_UNAVAILABLE, NULL, 503, "unavailable" },
        { SHOP_DB_TIMEOUT, NULL, 503, "unavailable" },
        { SHOP_DB_ERROR, NULL, 500, "internal" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        e = delete("/products/42", "\"3\"");
        r = cases[i].code ? th_raised(cases[i].code, "refused") : th_db(cases[i].st);
        th_finish(e, &r);
        th_problem(e, cases[i].status, cases[i].type);
        th_free(e);
    }
}

/* ---- timestamps ------------------------------------------------------------------- */

static const char *
ts(th_env *e, const char *pg)
{
    shop_buf b;
    shop_buf_init(&b, &e->core.arena, 16);
    shop_buf_add_ts(&b, pg);
    return th_cstr(e, shop_buf_str(&b));
}

static void
test_timestamps(void **state)
{
    th_env *e = *state;

    assert_string_equal(ts(e, "2026-11-22 23:34:02.123456+00"), "\"2026-11-22T23:34:02.123Z\"");
    assert_string_equal(ts(e, "2026-11-22 23:34:02+00"), "\"2026-11-22T23:34:02.000Z\"");
    assert_string_equal(ts(e, "2026-11-22 23:34:02.1+00"), "\"2026-11-22T23:34:02.100Z\"");
    assert_string_equal(ts(e, "2026-11-22 23:34:02.12+00"), "\"2026-11-22T23:34:02.120Z\"");
    assert_string_equal(ts(e, "2026-11-22 23:34:02.123+00"), "\"2026-11-22T23:34:02.123Z\"");
    assert_string_equal(ts(e, "2026-11-22 23:34:02.1234+00"), "\"2026-11-22T23:34:02.123Z\"");
    assert_string_equal(ts(e, "2026-11-22 23:34:02.12345+00"), "\"2026-11-22T23:34:02.123Z\"");
    /* Truncated, never rounded (rounding .9995 would change the second). */
    assert_string_equal(ts(e, "2026-12-31 23:59:59.999999+00"), "\"2026-12-31T23:59:59.999Z\"");
    assert_string_equal(ts(e, "2026-11-22 23:34:02.000999+00"), "\"2026-11-22T23:34:02.000Z\"");
    assert_string_equal(ts(e, "2026-11-22 23:34:02.5"), "\"2026-11-22T23:34:02.500Z\"");
    assert_string_equal(ts(e, "2026-11-22 23:34:02"), "\"2026-11-22T23:34:02.000Z\"");
    /* Not a timestamp we know: passed through as a JSON string. */
    assert_string_equal(ts(e, "infinity"), "\"infinity\"");
    assert_string_equal(ts(e, ""), "\"\"");
}

static void
test_unix_millis(void **state)
{
    th_env *e = *state;
    shop_buf b;

    shop_buf_init(&b, &e->core.arena, 16);
    shop_buf_add_ms(&b, TH_NOW_MS);
    assert_str(e, shop_buf_str(&b), "2026-11-22T23:34:02.123Z");
    shop_buf_init(&b, &e->core.arena, 16);
    shop_buf_add_ms(&b, 0);
    assert_str(e, shop_buf_str(&b), "1970-01-01T00:00:00.000Z");
    shop_buf_init(&b, &e->core.arena, 16);
    shop_buf_add_ms(&b, 1);
    assert_str(e, shop_buf_str(&b), "1970-01-01T00:00:00.001Z");
    shop_buf_init(&b, &e->core.arena, 16);
    shop_buf_add_ms(&b, 951782400999LL);
    assert_str(e, shop_buf_str(&b), "2000-02-29T00:00:00.999Z");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_healthz),
        TH_TEST(test_readyz_ready),
        TH_TEST(test_readyz_down),
        TH_TEST(test_get_plan),
        TH_TEST(test_get_plan_param_is_terminated),
        TH_TEST(test_get_render),
        TH_TEST(test_get_render_escaping),
        TH_TEST(test_get_not_found),
        TH_TEST(test_get_if_none_match),
        TH_TEST(test_head_product),
        TH_TEST(test_get_db_errors),
        TH_TEST(test_list_render_empty),
        TH_TEST(test_list_render_last_page),
        TH_TEST(test_list_render_next),
        TH_TEST(test_list_render_default_limit),
        TH_TEST(test_list_render_max_limit),
        TH_TEST(test_list_db_error),
        TH_TEST(test_create_plan),
        TH_TEST(test_slug_derivation),
        TH_TEST(test_slug_derivation_always_valid),
        TH_TEST(test_create_render),
        TH_TEST(test_write_errors),
        TH_TEST(test_update_render),
        TH_TEST(test_delete_plan),
        TH_TEST(test_delete_render),
        TH_TEST(test_timestamps),
        TH_TEST(test_unix_millis),
    };
    return cmocka_run_group_tests_name("products", tests, NULL, NULL);
}
