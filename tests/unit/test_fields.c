/* Request bodies of POST /products and PATCH /products/{id}: every field
 * rule (API.md "Products"), unknown fields, the exact 422 error list; media
 * types, 413, and what reaches the handler at all. */
#include "helpers.h"

#include <string.h>

#define JSON_CT "application/json; charset=utf-8"

static th_env *
send(const char *method, const char *path, const char *content_type, const char *body)
{
    th_env *e = th_new();

    th_request(e, method, path);
    th_admin(e);
    th_body(e, content_type, body);
    th_begin(e);
    return e;
}

/* The body of a product with these JSON values (NULL: member absent) and
 * further members (",\"slug\":\"x\""). */
static const char *
product(th_env *b, const char *sku, const char *name, const char *price, const char *currency,
        const char *more)
{
    const char *s = "";

    if (sku) {
        s = th_fmt(b, "%s%s\"sku\":%s", s, *s ? "," : "", sku);
    }
    if (name) {
        s = th_fmt(b, "%s%s\"name\":%s", s, *s ? "," : "", name);
    }
    if (price) {
        s = th_fmt(b, "%s%s\"price_cents\":%s", s, *s ? "," : "", price);
    }
    if (currency) {
        s = th_fmt(b, "%s%s\"currency\":%s", s, *s ? "," : "", currency);
    }
    if (more) {   /* starts with ',' */
        s = th_fmt(b, "%s%s", s, *s ? more : more + 1);
    }
    return th_fmt(b, "{%s}", s);
}

/* A valid product with `more` members appended. */
static const char *
valid_with(th_env *b, const char *more)
{
    return product(b, "\"TEE-RED-M\"", "\"Red tee, M\"", "1999", "\"EUR\"", more);
}

static void
report(th_env *e, const char *body)
{
    print_error("body: %.300s\n -> %d %.600s\n", body, e->c.resp.status,
                th_cstr(e, e->c.resp.body));
}

/* POST: planned (errors NULL) or 422 with exactly these errors. */
static void
check_create(const char *body, const char *errors)
{
    th_env *e = send("POST", "/products", JSON_CT, body);

    if (errors == NULL) {
        if (e->c.nqueries != 1) {
            report(e, body);
            fail();
        }
        assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_CREATE);
    } else {
        if (e->c.resp.status != 422) {
            report(e, body);
        }
        struct json_object *p = th_problem(e, 422, "validation");
        th_assert_errors(e, p, errors);
        assert_int_equal(e->c.nqueries, 0);
    }
    th_free(e);
}

static void
check_update(const char *body, const char *errors)
{
    th_env *e = send("PATCH", "/products/42", JSON_CT, body);

    if (errors == NULL) {
        if (e->c.nqueries != 1) {
            report(e, body);
            fail();
        }
        assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_UPDATE);
    } else {
        if (e->c.resp.status != 422) {
            report(e, body);
        }
        struct json_object *p = th_problem(e, 422, "validation");
        th_assert_errors(e, p, errors);
        assert_int_equal(e->c.nqueries, 0);
    }
    th_free(e);
}

#define ERR(field, msg) "{\"field\":\"" field "\",\"message\":\"" msg "\"}"
#define SKU_SHAPE      "must be 1-64 of A-Z a-z 0-9 - _ ."
#define SLUG_SHAPE     "must be 1-100 of a-z 0-9 -"
#define CATEGORY_SHAPE "must be 1-64 of a-z 0-9 - _"
#define CURRENCY_SHAPE "must be an ISO 4217 code of three upper-case letters"

/* ---- POST /products --------------------------------------------------------- */

static void
test_create_exact_problem(void **state)
{
    th_env *e = send("POST", "/products", JSON_CT,
                     "{\"sku\":\"A\",\"name\":\"A\",\"price_cents\":-1,\"currency\":\"EUR\"}");
    (void) state;

    /* API.md's example, byte for byte (detail aside, which the contract leaves open). */
    th_problem(e, 422, "validation");
    assert_body(e, "{\"type\":\"https://shop.example/problems/validation\",\"title\":\"Validation failed\","
                   "\"status\":422,\"detail\":\"a field of the request is invalid\","
                   "\"errors\":[{\"field\":\"price_cents\",\"message\":\"must be >= 0\"}]}");
    th_free(e);
}

static void
test_create_empty_object(void **state)
{
    th_env *e = send("POST", "/products", JSON_CT, "{}");
    (void) state;

    struct json_object *p = th_problem(e, 422, "validation");
    assert_string_equal(th_jstr(p, "detail"), "fields of the request are invalid");
    th_assert_errors(e, p, "[" ERR("sku", "is required") "," ERR("name", "is required") ","
                           ERR("price_cents", "is required") "," ERR("currency", "is required") "]");
    th_free(e);
}

static void
test_create_unknown_fields(void **state)
{
    th_env *b = *state;

    check_create(valid_with(b, ",\"color\":\"red\""), "[" ERR("color", "unknown field") "]");
    /* Server-owned members are not writable either. */
    check_create(valid_with(b, ",\"id\":1,\"version\":2,\"created_at\":\"x\",\"updated_at\":\"y\""),
                 "[" ERR("id", "unknown field") "," ERR("version", "unknown field") ","
                 ERR("created_at", "unknown field") "," ERR("updated_at", "unknown field") "]");
    check_create(valid_with(b, ",\"Name\":\"x\""), "[" ERR("Name", "unknown field") "]");
    check_create(valid_with(b, ",\"\":1"), "[" ERR("", "unknown field") "]");
    /* The field name is escaped in the problem. */
    check_create(valid_with(b, ",\"a\\\"b\":1"), "[{\"field\":\"a\\\"b\",\"message\":\"unknown field\"}]");
}

static void
test_create_error_list(void **state)
{
    th_env *b = *state;

    /* Every problem at once, unknown fields first, then in field order. */
    check_create(product(b, "\"bad sku\"", "\"\"", "1.5", "\"eur\"",
                         ",\"slug\":\"Bad\",\"category\":\"Bad\",\"description\":7,\"extra\":true"),
                 "[" ERR("extra", "unknown field") "," ERR("sku", SKU_SHAPE) "," ERR("slug", SLUG_SHAPE) ","
                 ERR("name", "must be 1 to 200 characters") "," ERR("category", CATEGORY_SHAPE) ","
                 ERR("description", "must be a string") "," ERR("price_cents", "must be an integer") ","
                 ERR("currency", CURRENCY_SHAPE) "]");
}

static void
test_create_sku(void **state)
{
    th_env *b = *state;
    const char *sku64 = th_fmt(b, "\"%s\"", th_rep(b, "A", 64));
    const char *sku65 = th_fmt(b, "\"%s\"", th_rep(b, "A", 65));

    check_create(product(b, "\"A\"", "\"n\"", "1", "\"EUR\"", NULL), NULL);
    check_create(product(b, "\"Az09-_.\"", "\"n\"", "1", "\"EUR\"", NULL), NULL);
    check_create(product(b, sku64, "\"n\"", "1", "\"EUR\"", NULL), NULL);
    check_create(product(b, sku65, "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", SKU_SHAPE) "]");
    check_create(product(b, "\"\"", "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", SKU_SHAPE) "]");
    check_create(product(b, "\"TEE RED\"", "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", SKU_SHAPE) "]");
    check_create(product(b, "\"TEE/RED\"", "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", SKU_SHAPE) "]");
    check_create(product(b, "\"T\xc3\x89\"", "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", SKU_SHAPE) "]");
    check_create(product(b, "\"A\\u0000\"", "\"n\"", "1", "\"EUR\"", NULL),
                 "[" ERR("sku", "must not contain NUL characters") "]");
    check_create(product(b, "5", "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", "must be a string") "]");
    check_create(product(b, "true", "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", "must be a string") "]");
    check_create(product(b, "[\"A\"]", "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", "must be a string") "]");
    check_create(product(b, "{}", "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", "must be a string") "]");
    check_create(product(b, "null", "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", "is required") "]");
    check_create(product(b, NULL, "\"n\"", "1", "\"EUR\"", NULL), "[" ERR("sku", "is required") "]");
}

static void
test_create_slug(void **state)
{
    th_env *b = *state;

    check_create(valid_with(b, ",\"slug\":\"red-tee-2\""), NULL);
    check_create(valid_with(b, ",\"slug\":\"0\""), NULL);
    check_create(valid_with(b, th_fmt(b, ",\"slug\":\"%s\"", th_rep(b, "a", 100))), NULL);
    check_create(valid_with(b, th_fmt(b, ",\"slug\":\"%s\"", th_rep(b, "a", 101))), "[" ERR("slug", SLUG_SHAPE) "]");
    check_create(valid_with(b, ",\"slug\":\"\""), "[" ERR("slug", SLUG_SHAPE) "]");
    check_create(valid_with(b, ",\"slug\":\"Red\""), "[" ERR("slug", SLUG_SHAPE) "]");
    check_create(valid_with(b, ",\"slug\":\"red_tee\""), "[" ERR("slug", SLUG_SHAPE) "]");
    check_create(valid_with(b, ",\"slug\":\"red tee\""), "[" ERR("slug", SLUG_SHAPE) "]");
    check_create(valid_with(b, ",\"slug\":\"caf\xc3\xa9\""), "[" ERR("slug", SLUG_SHAPE) "]");
    check_create(valid_with(b, ",\"slug\":1"), "[" ERR("slug", "must be a string") "]");
    check_create(valid_with(b, ",\"slug\":null"), NULL);   /* null: derived from the name */
}

static void
test_create_name(void **state)
{
    th_env *b = *state;
    const char *len = "must be 1 to 200 characters";

    check_create(product(b, "\"A\"", "\"x\"", "1", "\"EUR\"", NULL), NULL);
    /* Characters, not bytes: 200 of 2, 3 and 4 bytes each are fine, 201 are not. */
    check_create(product(b, "\"A\"", th_fmt(b, "\"%s\"", th_rep(b, "a", 200)), "1", "\"EUR\"", NULL), NULL);
    check_create(product(b, "\"A\"", th_fmt(b, "\"%s\"", th_rep(b, "a", 201)), "1", "\"EUR\"", NULL),
                 "[" ERR("name", "must be 1 to 200 characters") "]");
    check_create(product(b, "\"A\"", th_fmt(b, "\"%s\"", th_rep(b, "\xc3\xa9", 200)), "1", "\"EUR\"", NULL), NULL);
    check_create(product(b, "\"A\"", th_fmt(b, "\"%s\"", th_rep(b, "\xc3\xa9", 201)), "1", "\"EUR\"", NULL),
                 "[" ERR("name", "must be 1 to 200 characters") "]");
    check_create(product(b, "\"A\"", th_fmt(b, "\"%s\"", th_rep(b, "\xe2\x82\xac", 200)), "1", "\"EUR\"", NULL), NULL);
    check_create(product(b, "\"A\"", th_fmt(b, "\"%s\"", th_rep(b, "\xf0\x9f\x98\x80", 200)), "1", "\"EUR\"", NULL), NULL);
    check_create(product(b, "\"A\"", th_fmt(b, "\"%s\"", th_rep(b, "\xf0\x9f\x98\x80", 201)), "1", "\"EUR\"", NULL),
                 "[" ERR("name", "must be 1 to 200 characters") "]");
    /* Escapes count as the character they stand for. */
    check_create(product(b, "\"A\"", th_fmt(b, "\"%s\"", th_rep(b, "\\u00e9", 200)), "1", "\"EUR\"", NULL), NULL);
    check_create(product(b, "\"A\"", th_fmt(b, "\"%s\"", th_rep(b, "\\ud83d\\ude00", 201)), "1", "\"EUR\"", NULL),
                 "[" ERR("name", "must be 1 to 200 characters") "]");
    check_create(product(b, "\"A\"", "\"\"", "1", "\"EUR\"", NULL), "[" ERR("name", "must be 1 to 200 characters") "]");
    /* One line of text: no control characters. */
    check_create(product(b, "\"A\"", "\"a\\tb\"", "1", "\"EUR\"", NULL),
                 "[" ERR("name", "must not contain control characters") "]");
    check_create(product(b, "\"A\"", "\"a\\nb\"", "1", "\"EUR\"", NULL),
                 "[" ERR("name", "must not contain control characters") "]");
    check_create(product(b, "\"A\"", "\"a\\u001fb\"", "1", "\"EUR\"", NULL),
                 "[" ERR("name", "must not contain control characters") "]");
    check_create(product(b, "\"A\"", "\"a\\u007fb\"", "1", "\"EUR\"", NULL),
                 "[" ERR("name", "must not contain control characters") "]");
    check_create(product(b, "\"A\"", "\"a\\u0000b\"", "1", "\"EUR\"", NULL),
                 "[" ERR("name", "must not contain NUL characters") "]");
    check_create(product(b, "\"A\"", "42", "1", "\"EUR\"", NULL), "[" ERR("name", "must be a string") "]");
    check_create(product(b, "\"A\"", "null", "1", "\"EUR\"", NULL), "[" ERR("name", "is required") "]");
    (void) len;
}

static void
test_create_category(void **state)
{
    th_env *b = *state;

    check_create(valid_with(b, ",\"category\":\"home-garden_2\""), NULL);
    check_create(valid_with(b, th_fmt(b, ",\"category\":\"%s\"", th_rep(b, "c", 64))), NULL);
    check_create(valid_with(b, th_fmt(b, ",\"category\":\"%s\"", th_rep(b, "c", 65))),
                 "[" ERR("category", CATEGORY_SHAPE) "]");
    check_create(valid_with(b, ",\"category\":\"\""), "[" ERR("category", CATEGORY_SHAPE) "]");
    check_create(valid_with(b, ",\"category\":\"Apparel\""), "[" ERR("category", CATEGORY_SHAPE) "]");
    check_create(valid_with(b, ",\"category\":\"a.b\""), "[" ERR("category", CATEGORY_SHAPE) "]");
    check_create(valid_with(b, ",\"category\":[]"), "[" ERR("category", "must be a string") "]");
    check_create(valid_with(b, ",\"category\":null"), NULL);
}

static void
test_create_description(void **state)
{
    th_env *b = *state;

    check_create(valid_with(b, ",\"description\":\"\""), NULL);
    check_create(valid_with(b, ",\"description\":\"line 1\\nline 2\\r\\n\\tindented\""), NULL);
    check_create(valid_with(b, th_fmt(b, ",\"description\":\"%s\"", th_rep(b, "\xe2\x82\xac", 5000))), NULL);
    check_create(valid_with(b, th_fmt(b, ",\"description\":\"%s\"", th_rep(b, "\xe2\x82\xac", 5001))),
                 "[" ERR("description", "must be at most 5000 characters") "]");
    check_create(valid_with(b, th_fmt(b, ",\"description\":\"%s\"", th_rep(b, "d", 5000))), NULL);
    check_create(valid_with(b, th_fmt(b, ",\"description\":\"%s\"", th_rep(b, "d", 5001))),
                 "[" ERR("description", "must be at most 5000 characters") "]");
    check_create(valid_with(b, ",\"description\":\"bell\\u0007\""),
                 "[" ERR("description", "must not contain control characters") "]");
    check_create(valid_with(b, ",\"description\":\"nul\\u0000\""),
                 "[" ERR("description", "must not contain NUL characters") "]");
    check_create(valid_with(b, ",\"description\":false"), "[" ERR("description", "must be a string") "]");
    check_create(valid_with(b, ",\"description\":null"), NULL);
}

static void
test_create_price(void **state)
{
    th_env *b = *state;

    check_create(product(b, "\"A\"", "\"n\"", "0", "\"EUR\"", NULL), NULL);
    check_create(product(b, "\"A\"", "\"n\"", "-0", "\"EUR\"", NULL), NULL);
    check_create(product(b, "\"A\"", "\"n\"", "1000000000000", "\"EUR\"", NULL), NULL);
    check_create(product(b, "\"A\"", "\"n\"", "1000000000001", "\"EUR\"", NULL),
                 "[" ERR("price_cents", "must be <= 1000000000000") "]");
    check_create(product(b, "\"A\"", "\"n\"", "-1", "\"EUR\"", NULL), "[" ERR("price_cents", "must be >= 0") "]");
    check_create(product(b, "\"A\"", "\"n\"", "9223372036854775807", "\"EUR\"", NULL),
                 "[" ERR("price_cents", "must be <= 1000000000000") "]");
    check_create(product(b, "\"A\"", "\"n\"", "9223372036854775808", "\"EUR\"", NULL),   /* 2^63 */
                 "[" ERR("price_cents", "must be <= 1000000000000") "]");
    check_create(product(b, "\"A\"", "\"n\"", "18446744073709551616", "\"EUR\"", NULL),
                 "[" ERR("price_cents", "must be <= 1000000000000") "]");
    check_create(product(b, "\"A\"", "\"n\"", "-9223372036854775808", "\"EUR\"", NULL),
                 "[" ERR("price_cents", "must be >= 0") "]");
    check_create(product(b, "\"A\"", "\"n\"", "-9223372036854775809", "\"EUR\"", NULL),   /* -2^63-1 */
                 "[" ERR("price_cents", "must be >= 0") "]");
    check_create(product(b, "\"A\"", "\"n\"", "1.5", "\"EUR\"", NULL), "[" ERR("price_cents", "must be an integer") "]");
    check_create(product(b, "\"A\"", "\"n\"", "1.0", "\"EUR\"", NULL), "[" ERR("price_cents", "must be an integer") "]");
    check_create(product(b, "\"A\"", "\"n\"", "1e3", "\"EUR\"", NULL), "[" ERR("price_cents", "must be an integer") "]");
    check_create(product(b, "\"A\"", "\"n\"", "1E400", "\"EUR\"", NULL), "[" ERR("price_cents", "must be an integer") "]");
    check_create(product(b, "\"A\"", "\"n\"", "\"100\"", "\"EUR\"", NULL), "[" ERR("price_cents", "must be an integer") "]");
    check_create(product(b, "\"A\"", "\"n\"", "true", "\"EUR\"", NULL), "[" ERR("price_cents", "must be an integer") "]");
    check_create(product(b, "\"A\"", "\"n\"", "[1]", "\"EUR\"", NULL), "[" ERR("price_cents", "must be an integer") "]");
    check_create(product(b, "\"A\"", "\"n\"", "null", "\"EUR\"", NULL), "[" ERR("price_cents", "is required") "]");
    check_create(product(b, "\"A\"", "\"n\"", NULL, "\"EUR\"", NULL), "[" ERR("price_cents", "is required") "]");
}

static void
test_create_currency(void **state)
{
    th_env *b = *state;

    check_create(product(b, "\"A\"", "\"n\"", "1", "\"USD\"", NULL), NULL);
    check_create(product(b, "\"A\"", "\"n\"", "1", "\"eur\"", NULL), "[" ERR("currency", CURRENCY_SHAPE) "]");
    check_create(product(b, "\"A\"", "\"n\"", "1", "\"Eur\"", NULL), "[" ERR("currency", CURRENCY_SHAPE) "]");
    check_create(product(b, "\"A\"", "\"n\"", "1", "\"EU\"", NULL), "[" ERR("currency", CURRENCY_SHAPE) "]");
    check_create(product(b, "\"A\"", "\"n\"", "1", "\"EURO\"", NULL), "[" ERR("currency", CURRENCY_SHAPE) "]");
    check_create(product(b, "\"A\"", "\"n\"", "1", "\"E1R\"", NULL), "[" ERR("currency", CURRENCY_SHAPE) "]");
    check_create(product(b, "\"A\"", "\"n\"", "1", "\"\"", NULL), "[" ERR("currency", CURRENCY_SHAPE) "]");
    check_create(product(b, "\"A\"", "\"n\"", "1", "\"\xc3\x89UR\"", NULL), "[" ERR("currency", CURRENCY_SHAPE) "]");
    check_create(product(b, "\"A\"", "\"n\"", "1", "978", NULL), "[" ERR("currency", "must be a string") "]");
    check_create(product(b, "\"A\"", "\"n\"", "1", "null", NULL), "[" ERR("currency", "is required") "]");
}

/* Regression: json-c keeps object keys as C strings, so "name\u0000x" would
 * arrive as "name"; keys holding \u0000 are refused. */
static void
test_create_key_with_nul(void **state)
{
    th_env *e = send("POST", "/products", JSON_CT,
                     "{\"sku\":\"A\",\"name\\u0000x\":\"smuggled\",\"price_cents\":1,\"currency\":\"EUR\"}");
    (void) state;

    if (e->c.nqueries != 0) {
        print_error("accepted; name = %s\n", th_param(e, 0, 3) ? th_param(e, 0, 3) : "NULL");
    }
    assert_int_equal(e->c.nqueries, 0);
    assert_true(e->c.resp.status == 400 || e->c.resp.status == 422);
    th_free(e);
}

/* ---- PATCH /products/{id} ------------------------------------------------------ */

static void
test_update_fields(void **state)
{
    th_env *b = *state;

    check_update("{}", NULL);
    check_update("{\"name\":\"New name\",\"slug\":\"new\",\"category\":\"c\",\"description\":\"d\","
                 "\"price_cents\":5,\"currency\":\"USD\"}", NULL);
    check_update("{\"sku\":\"OTHER\"}", "[" ERR("sku", "cannot be changed") "]");
    check_update("{\"sku\":null}", "[" ERR("sku", "cannot be changed") "]");
    check_update("{\"name\":null}", "[" ERR("name", "cannot be removed") "]");
    check_update("{\"slug\":null}", "[" ERR("slug", "cannot be removed") "]");
    check_update("{\"price_cents\":null}", "[" ERR("price_cents", "cannot be removed") "]");
    check_update("{\"currency\":null}", "[" ERR("currency", "cannot be removed") "]");
    check_update("{\"category\":null,\"description\":null}", NULL);
    check_update("{\"id\":7}", "[" ERR("id", "unknown field") "]");
    check_update("{\"version\":3}", "[" ERR("version", "unknown field") "]");
    check_update("{\"name\":\"\"}", "[" ERR("name", "must be 1 to 200 characters") "]");
    check_update(th_fmt(b, "{\"name\":\"%s\"}", th_rep(b, "\xc3\xa9", 200)), NULL);
    check_update(th_fmt(b, "{\"name\":\"%s\"}", th_rep(b, "\xc3\xa9", 201)),
                 "[" ERR("name", "must be 1 to 200 characters") "]");
    check_update(th_fmt(b, "{\"description\":\"%s\"}", th_rep(b, "\xc3\xa9", 5001)),
                 "[" ERR("description", "must be at most 5000 characters") "]");
    check_update("{\"slug\":\"Bad\"}", "[" ERR("slug", SLUG_SHAPE) "]");
    check_update("{\"category\":\"Bad\"}", "[" ERR("category", CATEGORY_SHAPE) "]");
    check_update("{\"price_cents\":-1}", "[" ERR("price_cents", "must be >= 0") "]");
    check_update("{\"price_cents\":1000000000001}", "[" ERR("price_cents", "must be <= 1000000000000") "]");
    check_update("{\"price_cents\":1e3}", "[" ERR("price_cents", "must be an integer") "]");
    check_update("{\"currency\":\"usd\"}", "[" ERR("currency", CURRENCY_SHAPE) "]");
    check_update("{\"name\":5,\"sku\":\"X\",\"color\":1}",
                 "[" ERR("color", "unknown field") "," ERR("sku", "cannot be changed") ","
                 ERR("name", "must be a string") "]");
}

static void
test_update_plan_values(void **state)
{
    th_env *e = send("PATCH", "/products/42", "application/merge-patch+json",
                     "{\"name\":\"New\",\"price_cents\":0,\"category\":null,\"description\":null}");
    (void) state;

    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_UPDATE);
    assert_param(e, 0, 0, "42");
    assert_param(e, 0, 1, "42");
    assert_param_null(e, 0, 2);              /* no If-Match */
    assert_param(e, 0, 3, "New");
    assert_param_null(e, 0, 4);              /* slug untouched */
    assert_param(e, 0, 5, "general");        /* removing the category restores the default */
    assert_param(e, 0, 6, "");               /* removing the description empties it */
    assert_param(e, 0, 7, "0");
    assert_param_null(e, 0, 8);
    th_free(e);

    e = send("PATCH", "/products/red-tee", JSON_CT, "{}");
    assert_int_equal(e->c.nqueries, 1);
    assert_param_null(e, 0, 0);
    assert_param(e, 0, 1, "red-tee");
    for (int p = 2; p < 9; p++) {
        assert_param_null(e, 0, p);
    }
    th_free(e);
}

static void
test_update_if_match(void **state)
{
    static const struct { const char *header; const char *versions; } cases[] = {
        { "\"3\"", "{3}" }, { "\"3\", \"4\"", "{3,4}" }, { "W/\"3\"", "{}" },
        { "garbage", "{}" }, { "*", NULL }, { "", NULL },
    };
    (void) state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        th_env *e = th_new();
        th_request(e, "PATCH", "/products/42");
        th_admin(e);
        th_body(e, JSON_CT, "{\"price_cents\":1}");
        e->req.if_match = th_s(e, cases[i].header);
        th_begin(e);
        assert_int_equal(e->c.nqueries, 1);
        if (cases[i].versions) {
            assert_param(e, 0, 2, cases[i].versions);
        } else {
            assert_param_null(e, 0, 2);
        }
        th_free(e);
    }
}

static void
test_update_bad_key_is_404(void **state)
{
    th_env *e = send("PATCH", "/products/ABC", JSON_CT, "{\"name\":\"x\"}");
    (void) state;

    th_problem(e, 404, "not-found");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
}

/* ---- what reaches a handler --------------------------------------------------- */

static void
check_media(const char *method, const char *content_type, int ok)
{
    th_env *e = th_new();
    const char *path = strcmp(method, "POST") == 0 ? "/products" : "/products/42";

    th_request(e, method, path);
    th_admin(e);
    th_body(e, content_type, "{\"sku\":\"A\",\"name\":\"n\",\"price_cents\":1,\"currency\":\"EUR\"}");
    if (strcmp(method, "PATCH") == 0) {
        th_body(e, content_type, "{\"name\":\"n\"}");
    }
    th_begin(e);
    if (ok) {
        if (e->c.nqueries != 1) {
            print_error("%s Content-Type: %s -> %d\n", method, content_type ? content_type : "(none)",
                        e->c.resp.status);
            fail();
        }
    } else {
        if (e->c.resp.status != 415) {
            print_error("%s Content-Type: %s -> %d, expected 415\n", method,
                        content_type ? content_type : "(none)", e->c.resp.status);
        }
        th_problem(e, 415, "unsupported-media-type");
        assert_int_equal(e->c.nqueries, 0);
    }
    th_free(e);
}

static void
test_media_types(void **state)
{
    (void) state;
    check_media("POST", "application/json", 1);
    check_media("POST", "application/json; charset=utf-8", 1);
    check_media("POST", "application/json; charset=UTF-8", 1);
    check_media("POST", "application/json;charset=utf-8", 1);
    check_media("POST", "application/json; charset=\"utf-8\"", 1);
    check_media("POST", "Application/JSON; Charset=Utf-8", 1);
    check_media("POST", "application/json ; charset=utf-8 ", 1);
    check_media("POST", "application/json; charset=latin1", 0);
    check_media("POST", "application/json; charset=iso-8859-1", 0);
    check_media("POST", "application/json; charset=utf-16", 0);
    check_media("POST", "application/json; charset=\"latin1\"", 0);
    check_media("POST", "application/json; charset=utf-8; charset=latin1", 0);
    check_media("POST", "text/plain", 0);
    check_media("POST", "text/json", 0);
    check_media("POST", "application/jsonx", 0);
    check_media("POST", "application/json-patch+json", 0);
    check_media("POST", "application/x-www-form-urlencoded", 0);
    check_media("POST", "", 0);
    check_media("POST", "application/merge-patch+json", 0);         /* only on PATCH */
    check_media("PATCH", "application/merge-patch+json", 1);
    check_media("PATCH", "application/merge-patch+json; charset=utf-8", 1);
    check_media("PATCH", "application/json", 1);
    check_media("PATCH", "application/merge-patch+json; charset=latin1", 0);
    check_media("PATCH", "text/plain", 0);
}

/* Regression: no Content-Type ({NULL, 0}) is 415, without touching NULL. */
static void
test_media_type_missing(void **state)
{
    (void) state;
    check_media("POST", NULL, 0);
    check_media("PATCH", NULL, 0);
}

static void
test_body_too_large(void **state)
{
    th_env *e = *state;

    th_request(e, "POST", "/products");
    th_admin(e);
    th_body(e, "text/plain", "");   /* not read, so nothing else matters */
    e->req.body = NULL;
    e->req.body_len = 0;
    e->req.body_too_large = 1;
    th_begin(e);
    th_problem(e, 413, "payload-too-large");
    assert_int_equal(e->c.nqueries, 0);
}

static void
check_bad_body(const char *body, size_t n, int status, const char *type)
{
    th_env *e = th_new();

    th_request(e, "POST", "/products");
    th_admin(e);
    th_body_n(e, JSON_CT, body, n);
    th_begin(e);
    if (e->c.resp.status != status) {
        print_error("body `%.80s` -> %d, expected %d\n", body, e->c.resp.status, status);
    }
    struct json_object *p = th_problem(e, status, type);
    if (status == 422) {
        th_assert_errors(e, p, "[" ERR("", "must be a JSON object") "]");
    }
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
}

#define BAD_BODY(lit, status, type) check_bad_body((lit), sizeof(lit) - 1, (status), (type))

static void
test_bad_bodies(void **state)
{
    (void) state;
    BAD_BODY("", 400, "bad-request");
    BAD_BODY("  \r\n\t", 400, "bad-request");
    BAD_BODY("{", 400, "bad-request");
    BAD_BODY("{\"sku\":\"A\",\"sku\":\"B\"}", 400, "bad-request");
    BAD_BODY("{\"name\":\"\xc0\x80\"}", 400, "bad-request");
    BAD_BODY("{\"name\":\"\\ud800\"}", 400, "bad-request");
    BAD_BODY("{} {}", 400, "bad-request");
    BAD_BODY("\xef\xbb\xbf{}", 400, "bad-request");
    BAD_BODY("[]", 422, "validation");
    BAD_BODY("[{}]", 422, "validation");
    BAD_BODY("\"text\"", 422, "validation");
}

/* Regression: a body that is a JSON number, true/false or null is 422 "must
 * be a JSON object", like [] and "text". */
static void
test_scalar_bodies(void **state)
{
    (void) state;
    BAD_BODY("1", 422, "validation");
    BAD_BODY("true", 422, "validation");
    BAD_BODY("null", 422, "validation");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_create_exact_problem),
        TH_TEST(test_create_empty_object),
        TH_TEST(test_create_unknown_fields),
        TH_TEST(test_create_error_list),
        TH_TEST(test_create_sku),
        TH_TEST(test_create_slug),
        TH_TEST(test_create_name),
        TH_TEST(test_create_category),
        TH_TEST(test_create_description),
        TH_TEST(test_create_price),
        TH_TEST(test_create_currency),
        TH_TEST(test_create_key_with_nul),
        TH_TEST(test_update_fields),
        TH_TEST(test_update_plan_values),
        TH_TEST(test_update_if_match),
        TH_TEST(test_update_bad_key_is_404),
        TH_TEST(test_media_types),
        TH_TEST(test_body_too_large),
        TH_TEST(test_bad_bodies),
        TH_TEST(test_scalar_bodies),
        TH_TEST(test_media_type_missing),
    };
    return cmocka_run_group_tests_name("fields", tests, NULL, NULL);
}
