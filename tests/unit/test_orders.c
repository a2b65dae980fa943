/* Orders (orders.c): POST /orders validation and statement parameters
 * (Idempotency-Key, fingerprint), GET /orders/{id}, GET /orders, the
 * transitions endpoint; rendering from fabricated order rows, and every
 * refusal our SQL functions raise (SHSTK, SH422, SHTRN, SH412, SH404). */
#include "helpers.h"

#include <string.h>

#include "cursor.h"
#include "order_state.h"

#define JSON_CT "application/json; charset=utf-8"
#define EMAIL   "ann@example.com"
#define ONE_ITEM "[{\"sku\":\"TEE-RED-M\",\"quantity\":2}]"
#define VALID   "{\"items\":" ONE_ITEM ",\"customer_email\":\"" EMAIL "\"}"

#define ORDER_JSON \
    "{\"id\":\"" TH_ORDER_ID "\",\"status\":\"pending\",\"items\":[" \
    "{\"sku\":\"TEE-RED-M\",\"quantity\":2,\"unit_price_cents\":1999,\"warehouse\":\"north\"}]," \
    "\"total_cents\":3998,\"currency\":\"EUR\",\"customer_email\":\"ann@example.com\",\"version\":1," \
    "\"created_at\":\"2026-11-22T23:34:02.123Z\",\"updated_at\":\"2026-11-23T08:00:00.000Z\"}"

static void
assert_json_reply(th_env *e, int status, const char *body)
{
    assert_int_equal(e->c.resp.status, status);
    assert_str(e, e->c.resp.content_type, JSON_CT);
    assert_body(e, body);
    th_json(e, e->c.resp.body);
    assert_int_equal(e->c.err, SHOP_OK);
}

/* ---- POST /orders: validation --------------------------------------------------- */

/* A new env with POST /orders of body (and Idempotency-Key key, if any), planned. */
static th_env *
place(const char *body, const char *key)
{
    th_env *e = th_new();

    th_request(e, "POST", "/orders");
    th_body(e, "application/json", body);
    if (key != NULL) {
        e->req.idempotency_key = th_s(e, key);
    }
    th_begin(e);
    return e;
}

static th_env *
want_planned(const char *body, const char *key)
{
    th_env *e = place(body, key);

    if (e->c.nqueries != 1) {
        print_error("not planned (%d): %s\n%s\n", e->c.resp.status, body, th_cstr(e, e->c.resp.body));
        fail();
    }
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_ORDER_PLACE);
    assert_int_equal(e->c.queries[0].target, SHOP_TARGET_PRIMARY);
    return e;
}

static void
want_422(const char *body, const char *errors)
{
    th_env *e = place(body, NULL);

    if (e->c.resp.status != 422) {
        print_error("expected 422, got %d: %s\n", e->c.resp.status, body);
    }
    struct json_object *p = th_problem(e, 422, "validation");
    assert_int_equal(e->c.nqueries, 0);
    th_assert_errors(e, p, errors);
    th_free(e);
}

/* {"items":[n items],"customer_email":EMAIL} with skus SKU-0, SKU-1, ... */
static const char *
n_items(th_env *b, int n)
{
    shop_buf buf;

    shop_buf_init(&buf, &b->scratch.arena, 64);
    shop_buf_adds(&buf, "{\"items\":[");
    for (int i = 0; i < n; i++) {
        shop_buf_adds(&buf, th_fmt(b, "%s{\"sku\":\"SKU-%d\",\"quantity\":1}", i ? "," : "", i));
    }
    shop_buf_adds(&buf, "],\"customer_email\":\"" EMAIL "\"}");
    return shop_buf_str(&buf).p;
}

static void
test_place_item_count(void **state)
{
    th_env *b = *state;
    th_env *e;

    want_422(n_items(b, 0), "[{\"field\":\"items\",\"message\":\"must have 1 to 100 elements\"}]");
    e = want_planned(n_items(b, 1), NULL);
    assert_param(e, 0, 0, "{\"SKU-0\"}");
    assert_param(e, 0, 1, "{1}");
    th_free(e);
    e = want_planned(n_items(b, 100), NULL);
    assert_int_equal(strncmp(th_param(e, 0, 0), "{\"SKU-0\",\"SKU-1\",", 17), 0);
    assert_non_null(strstr(th_param(e, 0, 0), ",\"SKU-99\"}"));
    assert_string_equal(th_param(e, 0, 1), th_fmt(b, "{1%s}", th_rep(b, ",1", 99)));
    th_free(e);
    want_422(n_items(b, 101), "[{\"field\":\"items\",\"message\":\"must have 1 to 100 elements\"}]");
}

static void
test_place_items_shape(void **state)
{
    (void) state;
    want_422("{\"customer_email\":\"" EMAIL "\"}", "[{\"field\":\"items\",\"message\":\"is required\"}]");
    want_422("{\"items\":null,\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items\",\"message\":\"is required\"}]");
    want_422("{\"items\":{\"sku\":\"A\",\"quantity\":1},\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items\",\"message\":\"must be an array\"}]");
    want_422("{\"items\":\"TEE-RED-M\",\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items\",\"message\":\"must be an array\"}]");
    want_422("{\"items\":[1],\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items[0]\",\"message\":\"must be an object\"}]");
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":1},\"B\",null,[]],\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items[1]\",\"message\":\"must be an object\"},"
             "{\"field\":\"items[2]\",\"message\":\"must be an object\"},"
             "{\"field\":\"items[3]\",\"message\":\"must be an object\"}]");
}

static void
check_quantity(const char *q, const char *message)
{
    th_env *b = th_new();
    const char *body = th_fmt(b, "{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":%s}],"
                                 "\"customer_email\":\"" EMAIL "\"}", q);
    if (message == NULL) {
        th_env *e = want_planned(body, NULL);
        assert_string_equal(th_param(e, 0, 1), th_fmt(b, "{%s}", q));
        th_free(e);
    } else {
        want_422(body, th_fmt(b, "[{\"field\":\"items[0].quantity\",\"message\":\"%s\"}]", message));
    }
    th_free(b);
}

static void
test_place_quantity(void **state)
{
    (void) state;
    check_quantity("0", "must be >= 1");
    check_quantity("1", NULL);
    check_quantity("10000", NULL);
    check_quantity("10001", "must be <= 10000");
    check_quantity("-1", "must be >= 1");
    check_quantity("1.5", "must be an integer");
    check_quantity("1.0", "must be an integer");
    check_quantity("1e2", "must be an integer");
    check_quantity("\"2\"", "must be an integer");
    check_quantity("true", "must be an integer");
    check_quantity("null", "is required");
    check_quantity("99999999999999999999", "must be <= 10000");
    check_quantity("-99999999999999999999", "must be >= 1");
    want_422("{\"items\":[{\"sku\":\"TEE-RED-M\"}],\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items[0].quantity\",\"message\":\"is required\"}]");
}

static void
check_sku(const char *sku_json, const char *message)
{
    th_env *b = th_new();
    const char *body = th_fmt(b, "{\"items\":[{\"sku\":%s,\"quantity\":1}],\"customer_email\":\"" EMAIL "\"}",
                              sku_json);
    if (message == NULL) {
        th_env *e = want_planned(body, NULL);
        th_free(e);
    } else {
        want_422(body, th_fmt(b, "[{\"field\":\"items[0].sku\",\"message\":\"%s\"}]", message));
    }
    th_free(b);
}

static void
test_place_sku(void **state)
{
    th_env *b = *state;
    const char *shape = "must be 1-64 of A-Z a-z 0-9 - _ .";

    check_sku("\"TEE-RED-M\"", NULL);
    check_sku("\"a.b_c-D9\"", NULL);
    check_sku(th_fmt(b, "\"%s\"", th_rep(b, "A", 64)), NULL);
    check_sku(th_fmt(b, "\"%s\"", th_rep(b, "A", 65)), shape);
    check_sku("\"\"", shape);
    check_sku("\"TEE RED\"", shape);
    check_sku("\"TEE/RED\"", shape);
    check_sku("\"TEE\\\"RED\"", shape);
    check_sku("\"caf\\u00e9\"", shape);
    check_sku("\"A\\u0000B\"", "must not contain NUL characters");
    check_sku("42", "must be a string");
    check_sku("null", "is required");
    want_422("{\"items\":[{\"quantity\":1}],\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items[0].sku\",\"message\":\"is required\"}]");
}

static void
test_place_duplicate_sku(void **state)
{
    (void) state;
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":1},{\"sku\":\"B\",\"quantity\":1},"
             "{\"sku\":\"A\",\"quantity\":2}],\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items[2].sku\",\"message\":\"appears more than once\"}]");
    /* Spelled differently, the same sku. */
    want_422("{\"items\":[{\"sku\":\"AB\",\"quantity\":1},{\"sku\":\"\\u0041B\",\"quantity\":1}],"
             "\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items[1].sku\",\"message\":\"appears more than once\"}]");
    /* Three times: each repeat is named once. */
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":1},{\"sku\":\"A\",\"quantity\":1},"
             "{\"sku\":\"A\",\"quantity\":1}],\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items[1].sku\",\"message\":\"appears more than once\"},"
             "{\"field\":\"items[2].sku\",\"message\":\"appears more than once\"}]");
    /* Skus are case-sensitive: two different ones. */
    th_env *e = want_planned("{\"items\":[{\"sku\":\"abc\",\"quantity\":1},{\"sku\":\"ABC\",\"quantity\":1}],"
                             "\"customer_email\":\"" EMAIL "\"}", NULL);
    assert_param(e, 0, 0, "{\"abc\",\"ABC\"}");
    th_free(e);
}

static void
test_place_unknown_fields(void **state)
{
    (void) state;
    want_422("{\"items\":[{\"sku\":\"A\",\"quantity\":1,\"price_cents\":1}],\"customer_email\":\"" EMAIL "\"}",
             "[{\"field\":\"items[0].price_cents\",\"message\":\"unknown field\"}]");
    want_422("{\"items\":" ONE_ITEM ",\"customer_email\":\"" EMAIL "\",\"coupon\":\"FREE\"}",
             "[{\"field\":\"coupon\",\"message\":\"unknown field\"}]");
    want_422("{\"items\":" ONE_ITEM ",\"customer_email\":\"" EMAIL "\",\"currency\":null}",
             "[{\"field\":\"currency\",\"message\":\"unknown field\"}]");
    /* Everything wrong at once: one 422 names it all. */
    want_422("{\"x\":1,\"items\":[{\"sku\":\"\",\"quantity\":0,\"y\":2}]}",
             "[{\"field\":\"x\",\"message\":\"unknown field\"},"
             "{\"field\":\"items[0].y\",\"message\":\"unknown field\"},"
             "{\"field\":\"items[0].sku\",\"message\":\"must be 1-64 of A-Z a-z 0-9 - _ .\"},"
             "{\"field\":\"items[0].quantity\",\"message\":\"must be >= 1\"},"
             "{\"field\":\"customer_email\",\"message\":\"is required\"}]");
}

static void
check_email(const char *email_json, const char *message)
{
    th_env *b = th_new();
    const char *body = th_fmt(b, "{\"items\":" ONE_ITEM ",\"customer_email\":%s}", email_json);

    if (message == NULL) {
        th_env *e = want_planned(body, NULL);
        struct json_object *o = th_json(b, th_s(b, body));
        assert_string_equal(th_param(e, 0, 2), th_jstr(o, "customer_email"));
        th_free(e);
    } else {
        want_422(body, th_fmt(b, "[{\"field\":\"customer_email\",\"message\":\"%s\"}]", message));
    }
    th_free(b);
}

static void
test_place_email(void **state)
{
    th_env *b = *state;
    const char *shape = "must be an email address";
    const char *len = "must be 3 to 254 characters";
    const char *local64 = th_rep(b, "l", 64);

    check_email("\"ann@example.com\"", NULL);
    check_email("\"first.last+tag@mail.example.co.uk\"", NULL);
    check_email("\"a@b.c\"", NULL);
    check_email("\"x_y-z@sub-domain.example\"", NULL);
    check_email("\"j\\u00fcrgen@example.de\"", NULL);

    check_email("\"\"", len);
    check_email("\"a@\"", len);
    check_email("\"plain\"", shape);
    check_email("\"@example.com\"", shape);
    check_email("\"ann@\"", shape);
    check_email("\"ann@example\"", shape);
    check_email("\"ann@.example.com\"", shape);
    check_email("\"ann@example.com.\"", shape);
    check_email("\"ann@example..com\"", shape);
    check_email("\"ann@example.\"", shape);
    check_email("\"ann@@example.com\"", shape);
    check_email("\"ann@b@example.com\"", shape);
    check_email("\"ann smith@example.com\"", shape);
    check_email("\"<ann@example.com>\"", shape);
    check_email("\"ann@example.com, bob@example.com\"", shape);
    check_email("\"ann@example.com;\"", shape);
    check_email("\"\\\"ann\\\"@example.com\"", shape);
    check_email("\"ann@example.com\\n\"", "must not contain control characters");
    check_email("\"ann\\u0000@example.com\"", "must not contain NUL characters");
    check_email("\"ann\\u007f@example.com\"", "must not contain control characters");
    check_email("42", "must be a string");
    check_email("null", "is required");
    check_email(th_fmt(b, "\"%s@example.com\"", local64), NULL);
    check_email(th_fmt(b, "\"%sl@example.com\"", local64), shape);   /* local part of 65 */

    /* 254 characters in all is the limit, 255 is over it: local 64 + "@" +
     * a domain of 189 or 190. */
    const char *d189 = th_fmt(b, "%s.%s.%s.com", th_rep(b, "d", 61), th_rep(b, "e", 61), th_rep(b, "f", 61));
    const char *e254 = th_fmt(b, "%s@%s", local64, d189);
    assert_int_equal(strlen(e254), 254);
    check_email(th_fmt(b, "\"%s\"", e254), NULL);
    const char *e255 = th_fmt(b, "%s@g%s", local64, d189);
    assert_int_equal(strlen(e255), 255);
    check_email(th_fmt(b, "\"%s\"", e255), len);
}

/* ---- POST /orders: parameters ------------------------------------------------------ */

static void
test_place_params(void **state)
{
    (void) state;
    th_env *e = want_planned("{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":2},"
                             "{\"sku\":\"MUG.1_b\",\"quantity\":10000}],"
                             "\"customer_email\":\"ann@example.com\"}", NULL);
    assert_int_equal(e->c.queries[0].nparams, 5);
    assert_param(e, 0, 0, "{\"TEE-RED-M\",\"MUG.1_b\"}");
    assert_param(e, 0, 1, "{2,10000}");
    assert_param(e, 0, 2, "ann@example.com");
    assert_param_null(e, 0, 3);                  /* no Idempotency-Key */
    const char *fp = th_param(e, 0, 4);
    assert_non_null(fp);
    assert_int_equal(strlen(fp), 64);
    assert_int_equal(strspn(fp, "0123456789abcdef"), 64);
    assert_int_equal(e->c.resp.status, 0);        /* nothing answered yet */
    th_free(e);
}

static void
check_key(const char *key, int ok)
{
    th_env *e = place(VALID, key);

    if (ok) {
        assert_int_equal(e->c.nqueries, 1);
        assert_param(e, 0, 3, key);
    } else {
        struct json_object *p = th_problem(e, 400, "bad-request");
        assert_int_equal(e->c.nqueries, 0);
        assert_non_null(strstr(th_jstr(p, "detail"), "Idempotency-Key"));
    }
    th_free(e);
}

static void
test_place_idempotency_key(void **state)
{
    th_env *b = *state;

    check_key("", 0);                            /* sent empty: API.md says 1-200 */
    check_key("k", 1);
    check_key(th_rep(b, "k", 200), 1);
    check_key(th_rep(b, "k", 201), 0);
    check_key(th_rep(b, "k", 1000), 0);
    check_key("order 2026-11-22 #1 (retry) ~!@$%^&*={}[]|\\:;\"'<>,.?/", 1);
    check_key(" ", 1);
    check_key("abc\x01", 0);
    check_key("abc\tdef", 0);
    check_key("abc\ndef", 0);
    check_key("abc\rdef", 0);
    check_key("abc\x1f", 0);
    check_key("abc\x7f", 0);
    check_key("caf\xc3\xa9", 0);
    check_key("\xff", 0);
    /* A NUL inside the value (the header is a length, not a C string). */
    th_env *e = th_new();
    th_request(e, "POST", "/orders");
    th_body(e, "application/json", VALID);
    e->req.idempotency_key = (shop_str) { "ab\0cd", 5 };
    th_begin(e);
    th_problem(e, 400, "bad-request");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
    /* A body that is invalid is 422 whatever the key. */
    e = th_new();
    th_request(e, "POST", "/orders");
    th_body(e, "application/json", "{\"items\":[]}");
    e->req.idempotency_key = th_s(e, "ok-key");
    th_begin(e);
    th_problem(e, 422, "validation");
    th_free(e);
}

static const char *
fingerprint_of(th_env *b, const char *body)
{
    th_env *e = want_planned(body, "same-key");
    const char *fp = th_fmt(b, "%s", th_param(e, 0, 4));
    th_free(e);
    return fp;
}

/* The fingerprint is of the content: the same however it is spelled, and
 * different whenever the order would be. */
static void
test_place_fingerprint(void **state)
{
    th_env *b = *state;
    const char *base = fingerprint_of(b, "{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":2},"
                                         "{\"sku\":\"MUG-1\",\"quantity\":1}],\"customer_email\":\"ann@example.com\"}");
    static const char *const same[] = {
        "{ \"items\" : [ { \"sku\" : \"TEE-RED-M\" , \"quantity\" : 2 } ,\n\t{\"sku\":\"MUG-1\",\"quantity\":1} ] ,"
        " \"customer_email\" : \"ann@example.com\" }\n",
        "{\"customer_email\":\"ann@example.com\",\"items\":[{\"quantity\":2,\"sku\":\"TEE-RED-M\"},"
        "{\"quantity\":1,\"sku\":\"MUG-1\"}]}",
        "{\"items\":[{\"sku\":\"\\u0054EE-RED-M\",\"quantity\":2},{\"sku\":\"MUG\\u002d1\",\"quantity\":1}],"
        "\"customer_email\":\"ann\\u0040example.com\"}",
    };
    static const char *const different[] = {
        /* another quantity */
        "{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":3},{\"sku\":\"MUG-1\",\"quantity\":1}],"
        "\"customer_email\":\"ann@example.com\"}",
        /* another sku */
        "{\"items\":[{\"sku\":\"TEE-RED-L\",\"quantity\":2},{\"sku\":\"MUG-1\",\"quantity\":1}],"
        "\"customer_email\":\"ann@example.com\"}",
        /* another address */
        "{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":2},{\"sku\":\"MUG-1\",\"quantity\":1}],"
        "\"customer_email\":\"bob@example.com\"}",
        /* a line less */
        "{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":2}],\"customer_email\":\"ann@example.com\"}",
        /* a line more */
        "{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":2},{\"sku\":\"MUG-1\",\"quantity\":1},"
        "{\"sku\":\"CAP\",\"quantity\":1}],\"customer_email\":\"ann@example.com\"}",
        /* the digits moved between sku and quantity */
        "{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":21},{\"sku\":\"MUG-\",\"quantity\":1}],"
        "\"customer_email\":\"ann@example.com\"}",
        /* the address case */
        "{\"items\":[{\"sku\":\"TEE-RED-M\",\"quantity\":2},{\"sku\":\"MUG-1\",\"quantity\":1}],"
        "\"customer_email\":\"Ann@example.com\"}",
    };

    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_string_equal(fingerprint_of(b, same[i]), base);
    }
    for (size_t i = 0; i < sizeof(different) / sizeof(different[0]); i++) {
        const char *fp = fingerprint_of(b, different[i]);
        if (strcmp(fp, base) == 0) {
            print_error("same fingerprint for different content: %s\n", different[i]);
            fail();
        }
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(fp, fingerprint_of(b, different[j]));
        }
    }
}

/* ---- POST /orders: rendering --------------------------------------------------------- */

static void
test_place_render_created(void **state)
{
    th_env *e = *state;
    th_order o = th_order_default();

    th_request(e, "POST", "/orders");
    e->req.base = SHOP_STR("/api");
    th_body(e, "application/json", VALID);
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    shop_result r = th_ok(th_orders(e, 1, &o));
    th_finish(e, &r);
    assert_json_reply(e, 201, ORDER_JSON);
    assert_string_equal(th_header(e, "Location"), "/api/orders/" TH_ORDER_ID);
    assert_string_equal(th_header(e, "ETag"), "\"1\"");
}

static void
test_place_render_replayed(void **state)
{
    th_env *e = *state;
    th_order o = th_order_default();

    o.v[SHOP_O_REPLAYED] = "t";
    o.v[SHOP_O_STATUS] = "paid";
    o.v[SHOP_O_VERSION] = "2";
    th_request(e, "POST", "/orders");
    e->req.base = SHOP_STR("/api");
    th_body(e, "application/json", VALID);
    e->req.idempotency_key = th_s(e, "k-1");
    th_begin(e);
    shop_result r = th_ok(th_orders(e, 1, &o));
    th_finish(e, &r);
    assert_int_equal(e->c.resp.status, 200);
    assert_string_equal(th_header(e, "Location"), "/api/orders/" TH_ORDER_ID);
    assert_string_equal(th_header(e, "ETag"), "\"2\"");
    struct json_object *j = th_json(e, e->c.resp.body);
    assert_string_equal(th_jstr(j, "id"), TH_ORDER_ID);
    assert_string_equal(th_jstr(j, "status"), "paid");
    assert_null(strstr(th_cstr(e, e->c.resp.body), "replayed"));
}

/* One order of several lines: one object, its lines in row order. */
static void
test_place_render_lines(void **state)
{
    th_env *e = *state;
    th_order o[3] = { th_order_default(), th_order_default(), th_order_default() };

    o[0].v[SHOP_O_TOTAL_CENTS] = o[1].v[SHOP_O_TOTAL_CENTS] = o[2].v[SHOP_O_TOTAL_CENTS] = "8547";
    o[1].v[SHOP_O_LINE_QUANTITY] = "1";
    o[1].v[SHOP_O_LINE_WAREHOUSE] = "south";
    o[2].v[SHOP_O_LINE_SKU] = "MUG \"1\"";
    o[2].v[SHOP_O_LINE_QUANTITY] = "3";
    o[2].v[SHOP_O_LINE_UNIT_PRICE] = "850";
    o[2].v[SHOP_O_LINE_WAREHOUSE] = "east-2";
    th_request(e, "POST", "/orders");
    th_body(e, "application/json", VALID);
    th_begin(e);
    shop_result r = th_ok(th_orders(e, 3, o));
    th_finish(e, &r);
    assert_json_reply(e, 201,
        "{\"id\":\"" TH_ORDER_ID "\",\"status\":\"pending\",\"items\":["
        "{\"sku\":\"TEE-RED-M\",\"quantity\":2,\"unit_price_cents\":1999,\"warehouse\":\"north\"},"
        "{\"sku\":\"TEE-RED-M\",\"quantity\":1,\"unit_price_cents\":1999,\"warehouse\":\"south\"},"
        "{\"sku\":\"MUG \\\"1\\\"\",\"quantity\":3,\"unit_price_cents\":850,\"warehouse\":\"east-2\"}],"
        "\"total_cents\":8547,\"currency\":\"EUR\",\"customer_email\":\"ann@example.com\",\"version\":1,"
        "\"created_at\":\"2026-11-22T23:34:02.123Z\",\"updated_at\":\"2026-11-23T08:00:00.000Z\"}");
    assert_string_equal(th_header(e, "Location"), "/orders/" TH_ORDER_ID);
}

static th_env *
place_answer(shop_result r)
{
    th_env *e = th_new();

    th_request(e, "POST", "/orders");
    th_body(e, "application/json", VALID);
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    th_finish(e, &r);
    assert_null(th_header(e, "Location"));
    assert_null(th_header(e, "ETag"));
    return e;
}

static void
test_place_render_insufficient_stock(void **state)
{
    (void) state;
    shop_result r = th_raised("SHSTK", "not enough stock for some items");
    r.detail = ",\"items\":[{\"sku\":\"TEE-RED-M\",\"requested\":2,\"available\":1},"
               "{\"sku\":\"MUG-1\",\"requested\":5,\"available\":0}]";
    th_env *e = place_answer(r);
    struct json_object *p = th_problem(e, 409, "insufficient-stock");
    struct json_object *items;
    assert_string_equal(th_jstr(p, "detail"), "not enough stock for some items");
    assert_true(json_object_object_get_ex(p, "items", &items));
    assert_string_equal(json_object_to_json_string_ext(items, JSON_C_TO_STRING_PLAIN),
                        "[{\"sku\":\"TEE-RED-M\",\"requested\":2,\"available\":1},"
                        "{\"sku\":\"MUG-1\",\"requested\":5,\"available\":0}]");
    th_free(e);
}

static void
test_place_render_validation(void **state)
{
    (void) state;
    shop_result r = th_raised("SH422", "items of the order are invalid");
    r.detail = ",\"errors\":[{\"field\":\"items[0].sku\",\"message\":\"no such product\"},"
               "{\"field\":\"items[1].sku\",\"message\":\"all items of an order must share one currency\"}]";
    th_env *e = place_answer(r);
    struct json_object *p = th_problem(e, 422, "validation");
    th_assert_errors(e, p, "[{\"field\":\"items[0].sku\",\"message\":\"no such product\"},"
                           "{\"field\":\"items[1].sku\",\"message\":\"all items of an order must share one currency\"}]");
    th_free(e);

    /* The same Idempotency-Key with another body. */
    r = th_raised("SH422", "the Idempotency-Key was already used with a different request");
    r.detail = ",\"errors\":[{\"field\":\"Idempotency-Key\",\"message\":\"was already used with a different request body\"}]";
    e = place_answer(r);
    p = th_problem(e, 422, "validation");
    th_assert_errors(e, p, "[{\"field\":\"Idempotency-Key\",\"message\":\"was already used with a different request body\"}]");
    th_free(e);
}

static void
test_place_render_db_down(void **state)
{
    (void) state;
    static const shop_db_status down[] = { SHOP_DB_UNAVAILABLE, SHOP_DB_TIMEOUT, SHOP_DB_RETRY };
    for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++) {
        th_env *e = place_answer(th_db(down[i]));
        json_object *p = th_problem(e, 503, "unavailable");
        assert_string_equal(th_header(e, "Retry-After"), "1");
        /* It may have committed: the client is told how to find out safely
         * (a conflict that rolled back is a plain retry). */
        const char *detail = json_object_get_string(json_object_object_get(p, "detail"));
        assert_true((strstr(detail, "retry with the same Idempotency-Key") != NULL)
                    == (down[i] != SHOP_DB_RETRY));
        th_free(e);
    }
    th_env *e = place_answer(th_db(SHOP_DB_ERROR));
    th_problem(e, 500, "internal");
    th_free(e);
    e = place_answer(th_db(SHOP_DB_CHECK));   /* the CHECK (quantity >= 0) guard */
    th_problem(e, 422, "validation");
    th_free(e);
}

/* ---- GET /orders/{id} ------------------------------------------------------------------ */

static void
check_get_plan(const char *id, const char *expected)
{
    th_env *e = th_new();

    th_request(e, "GET", th_fmt(e, "/orders/%s", id));
    th_begin(e);
    if (expected == NULL) {
        if (e->c.nqueries) {
            print_error("%s: planned, expected 404\n", id);
        }
        struct json_object *p = th_problem(e, 404, "not-found");
        (void) p;
        assert_int_equal(e->c.nqueries, 0);
    } else {
        if (e->c.nqueries != 1) {
            print_error("%s: not planned (%d)\n", id, e->c.resp.status);
            fail();
        }
        assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_ORDER_GET);
        assert_param(e, 0, 0, expected);
    }
    th_free(e);
}

static void
test_get_plan(void **state)
{
    (void) state;
    check_get_plan(TH_ORDER_ID, TH_ORDER_ID);
    check_get_plan("0B5E2C9A-3F4D-4E6B-9A7C-1D2E3F4A5B6C", TH_ORDER_ID);
    check_get_plan("0b5E2c9A-3f4D-4e6B-9a7C-1d2E3f4A5b6C", TH_ORDER_ID);
    check_get_plan("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000");
    check_get_plan("%30b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6c", TH_ORDER_ID);   /* %30 is '0' */

    check_get_plan("0b5e2c9a3f4d4e6b9a7c1d2e3f4a5b6c", NULL);          /* no dashes */
    check_get_plan("{0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6c}", NULL);
    check_get_plan("urn:uuid:0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6c", NULL);
    check_get_plan("0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6", NULL);       /* 35 */
    check_get_plan("0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6c0", NULL);     /* 37 */
    check_get_plan("0b5e2c9g-3f4d-4e6b-9a7c-1d2e3f4a5b6c", NULL);      /* g */
    check_get_plan("0b5e2c9a-3f4d-4e6b-9a7c_1d2e3f4a5b6c", NULL);
    check_get_plan("0b5e2c9a-3f4d4-e6b-9a7c-1d2e3f4a5b6c", NULL);      /* dash moved */
    check_get_plan("0b5e2c9a--3f4d-4e6b-9a7c-1d2e3f4a5b6", NULL);
    check_get_plan("%200b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6", NULL);    /* leading space */
    check_get_plan("0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6%00", NULL);
    check_get_plan("0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6%zz", NULL);
    check_get_plan("42", NULL);
    check_get_plan("%C3%A90b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b", NULL);
    check_get_plan("----------------------------------------", NULL);
    check_get_plan("------------------------------------", NULL);     /* 36 dashes */
}

static void
test_get_render(void **state)
{
    th_env *e = *state;
    th_order o = th_order_default();

    th_request(e, "GET", "/orders/" TH_ORDER_ID);
    e->req.base = SHOP_STR("/api");
    th_begin(e);
    shop_result r = th_ok(th_orders(e, 1, &o));
    th_finish(e, &r);
    assert_json_reply(e, 200, ORDER_JSON);
    assert_string_equal(th_header(e, "ETag"), "\"1\"");
    assert_null(th_header(e, "Location"));
}

static void
test_get_render_missing_and_conditional(void **state)
{
    th_env *e = th_new();
    th_order o = th_order_default();
    (void) state;

    th_request(e, "GET", "/orders/" TH_ORDER_ID);
    th_begin(e);
    shop_result r = th_ok(th_orders(e, 0, NULL));
    th_finish(e, &r);
    th_problem(e, 404, "not-found");
    assert_null(th_header(e, "ETag"));
    th_free(e);

    e = th_new();
    th_request(e, "GET", "/orders/" TH_ORDER_ID);
    e->req.if_none_match = th_s(e, "\"1\"");
    th_begin(e);
    r = th_ok(th_orders(e, 1, &o));
    th_finish(e, &r);
    assert_int_equal(e->c.resp.status, 304);
    assert_int_equal(e->c.resp.body.n, 0);
    assert_string_equal(th_header(e, "ETag"), "\"1\"");
    th_free(e);

    e = th_new();
    th_request(e, "GET", "/orders/" TH_ORDER_ID);
    e->req.if_none_match = th_s(e, "\"2\", W/\"3\"");
    th_begin(e);
    r = th_ok(th_orders(e, 1, &o));
    th_finish(e, &r);
    assert_json_reply(e, 200, ORDER_JSON);
    th_free(e);

    e = th_new();
    th_request(e, "GET", "/orders/" TH_ORDER_ID);
    th_begin(e);
    r = th_db(SHOP_DB_UNAVAILABLE);
    th_finish(e, &r);
    th_problem(e, 503, "unavailable");
    assert_non_null(th_header(e, "Retry-After"));
    th_free(e);
}

/* ---- GET /orders ------------------------------------------------------------------------ */

static th_env *
list(const char *target)
{
    th_env *e = th_new();

    th_request(e, "GET", target);
    th_admin(e);
    th_begin(e);
    return e;
}

/* Plans target: limit + 1, after, status (NULL for SQL NULL); or a 400 (limit NULL). */
static void
check_list_plan(const char *target, const char *after, const char *limit, const char *status)
{
    th_env *e = list(target);

    if (limit == NULL) {
        if (e->c.nqueries) {
            print_error("%s: planned, expected 400\n", target);
        }
        th_problem(e, 400, "bad-request");
        assert_int_equal(e->c.nqueries, 0);
    } else {
        if (e->c.nqueries != 1) {
            print_error("%s: not planned (%d)\n", target, e->c.resp.status);
            fail();
        }
        assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_ORDER_LIST);
        assert_param(e, 0, 0, after);
        assert_param(e, 0, 1, limit);
        if (status) {
            assert_param(e, 0, 2, status);
        } else {
            assert_param_null(e, 0, 2);
        }
    }
    th_free(e);
}

static void
test_list_plan(void **state)
{
    th_env *b = *state;
    const char *c17 = th_cstr(b, shop_cursor_encode(&b->scratch.arena, 'o', SHOP_STR("17")));
    const char *c0 = th_cstr(b, shop_cursor_encode(&b->scratch.arena, 'o', SHOP_STR("0")));
    const char *cp = th_cstr(b, shop_cursor_encode(&b->scratch.arena, 'p', SHOP_STR("17")));
    const char *cx = th_cstr(b, shop_cursor_encode(&b->scratch.arena, 'o', SHOP_STR("x")));

    check_list_plan("/orders", "0", "51", NULL);
    check_list_plan("/orders?limit=1", "0", "2", NULL);
    check_list_plan("/orders?limit=500", "0", "501", NULL);
    check_list_plan("/orders?limit=0", NULL, NULL, NULL);
    check_list_plan("/orders?limit=501", NULL, NULL, NULL);
    check_list_plan("/orders?limit=-1", NULL, NULL, NULL);
    check_list_plan("/orders?limit=abc", NULL, NULL, NULL);
    check_list_plan("/orders?limit=", NULL, NULL, NULL);
    check_list_plan("/orders?limit=1&limit=2", NULL, NULL, NULL);
    check_list_plan(th_fmt(b, "/orders?after=%s", c17), "17", "51", NULL);
    check_list_plan(th_fmt(b, "/orders?after=%s&limit=3&status=paid", c17), "17", "4", "paid");
    check_list_plan(th_fmt(b, "/orders?after=%s", c0), NULL, NULL, NULL);
    check_list_plan(th_fmt(b, "/orders?after=%s", cp), NULL, NULL, NULL);   /* a product cursor */
    check_list_plan(th_fmt(b, "/orders?after=%s", cx), NULL, NULL, NULL);
    check_list_plan("/orders?after=17", NULL, NULL, NULL);
    check_list_plan("/orders?after=", NULL, NULL, NULL);
    check_list_plan("/orders?after=%%%%", NULL, NULL, NULL);
    for (int i = 0; i < SHOP_ORDER_NSTATES; i++) {
        const char *name = shop_order_state_name((shop_order_state) i);
        check_list_plan(th_fmt(b, "/orders?status=%s", name), "0", "51", name);
    }
    check_list_plan("/orders?status=PAID", NULL, NULL, NULL);
    check_list_plan("/orders?status=bogus", NULL, NULL, NULL);
    check_list_plan("/orders?status=", NULL, NULL, NULL);
    check_list_plan("/orders?status=paid&status=packed", NULL, NULL, NULL);
    check_list_plan("/orders?status=paid,packed", NULL, NULL, NULL);
    check_list_plan("/orders?status=pa%69d", "0", "51", "paid");

    /* Admin only. */
    th_env *e = th_new();
    th_request(e, "GET", "/orders");
    th_begin(e);
    th_problem(e, 401, "unauthorized");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
}

/* Orders A (2 lines, seq 3), B (1 line, seq 5), C (2 lines, seq 9). */
static PGresult *
three_orders(th_env *e, int norders)
{
    static const char *const ids[3] = {
        "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b",
        "00000000-0000-4000-8000-00000000000c",
    };
    static const char *const seqs[3] = { "3", "5", "9" };
    static const int lines[3] = { 2, 1, 2 };
    th_order rows[5];
    int n = 0;

    for (int i = 0; i < norders; i++) {
        for (int l = 0; l < lines[i]; l++) {
            rows[n] = th_order_default();
            rows[n].v[SHOP_O_ID] = ids[i];
            rows[n].v[SHOP_O_SEQ] = seqs[i];
            rows[n].v[SHOP_O_LINE_SKU] = l ? "MUG-1" : "TEE-RED-M";
            n++;
        }
    }
    return th_orders(e, n, rows);
}

#define LINE_TEE "{\"sku\":\"TEE-RED-M\",\"quantity\":2,\"unit_price_cents\":1999,\"warehouse\":\"north\"}"
#define LINE_MUG "{\"sku\":\"MUG-1\",\"quantity\":2,\"unit_price_cents\":1999,\"warehouse\":\"north\"}"
#define ORDER_TAIL "\"total_cents\":3998,\"currency\":\"EUR\",\"customer_email\":\"ann@example.com\"," \
    "\"version\":1,\"created_at\":\"2026-11-22T23:34:02.123Z\",\"updated_at\":\"2026-11-23T08:00:00.000Z\"}"
#define ORDER_A "{\"id\":\"00000000-0000-4000-8000-00000000000a\",\"status\":\"pending\",\"items\":[" \
    LINE_TEE "," LINE_MUG "]," ORDER_TAIL
#define ORDER_B "{\"id\":\"00000000-0000-4000-8000-00000000000b\",\"status\":\"pending\",\"items\":[" \
    LINE_TEE "]," ORDER_TAIL
#define ORDER_C "{\"id\":\"00000000-0000-4000-8000-00000000000c\",\"status\":\"pending\",\"items\":[" \
    LINE_TEE "," LINE_MUG "]," ORDER_TAIL

static void
test_list_render(void **state)
{
    th_env *b = *state;
    th_env *e;
    shop_result r;
    shop_str key;

    /* limit 2, three orders came back (limit + 1): two shown, next after B. */
    e = list("/orders?limit=2");
    r = th_ok(three_orders(e, 3));
    th_finish(e, &r);
    struct json_object *o = th_json(e, e->c.resp.body);
    const char *next = th_jstr(o, "next");
    assert_non_null(next);
    next = th_fmt(b, "%s", next);   /* outlives e */
    assert_int_equal(shop_cursor_decode(&b->scratch.arena, 'o', shop_cstr(next), &key), 0);
    assert_str(b, key, "5");
    assert_json_reply(e, 200, th_fmt(b, "{\"items\":[" ORDER_A "," ORDER_B "],\"next\":\"%s\"}", next));
    th_free(e);

    /* limit 3, three orders: all shown, no next page. */
    e = list("/orders?limit=3");
    r = th_ok(three_orders(e, 3));
    th_finish(e, &r);
    assert_json_reply(e, 200, "{\"items\":[" ORDER_A "," ORDER_B "," ORDER_C "],\"next\":null}");
    th_free(e);

    /* limit 2, exactly two orders (three rows): no next page. */
    e = list("/orders?limit=2");
    r = th_ok(three_orders(e, 2));
    th_finish(e, &r);
    assert_json_reply(e, 200, "{\"items\":[" ORDER_A "," ORDER_B "],\"next\":null}");
    th_free(e);

    /* limit 1, the first order has two lines: it is shown whole, next after A. */
    e = list("/orders?limit=1");
    r = th_ok(three_orders(e, 2));
    th_finish(e, &r);
    o = th_json(e, e->c.resp.body);
    next = th_jstr(o, "next");
    assert_non_null(next);
    next = th_fmt(b, "%s", next);
    assert_int_equal(shop_cursor_decode(&b->scratch.arena, 'o', shop_cstr(next), &key), 0);
    assert_str(b, key, "3");
    assert_json_reply(e, 200, th_fmt(b, "{\"items\":[" ORDER_A "],\"next\":\"%s\"}", next));
    th_free(e);

    /* The cursor it hands out is one the plan takes. */
    e = list(th_fmt(b, "/orders?limit=1&after=%s", next));
    assert_int_equal(e->c.nqueries, 1);
    assert_param(e, 0, 0, "3");
    th_free(e);

    /* Nothing. */
    e = list("/orders?status=refunded");
    r = th_ok(th_orders(e, 0, NULL));
    th_finish(e, &r);
    assert_json_reply(e, 200, "{\"items\":[],\"next\":null}");
    th_free(e);

    e = list("/orders");
    r = th_db(SHOP_DB_TIMEOUT);
    th_finish(e, &r);
    th_problem(e, 503, "unavailable");
    assert_non_null(th_header(e, "Retry-After"));
    th_free(e);
}

/* ---- POST /orders/{id}/transitions ------------------------------------------------------ */

static th_env *
transition(const char *id, const char *body, const char *if_match)
{
    th_env *e = th_new();

    th_request(e, "POST", th_fmt(e, "/orders/%s/transitions", id));
    th_admin(e);
    th_body(e, "application/json", body);
    if (if_match) {
        e->req.if_match = th_s(e, if_match);
    }
    th_begin(e);
    return e;
}

static void
test_transition_params(void **state)
{
    th_env *b = *state;
    static const char *const from[SHOP_ORDER_NSTATES] = {
        "{}", "{pending}", "{paid}", "{packed}", "{shipped}", "{pending}", "{paid,packed,delivered}",
    };
    static const char *const restock[SHOP_ORDER_NSTATES] = {
        "{}", "{}", "{}", "{}", "{}", "{pending}", "{paid,packed}",
    };

    for (int i = 0; i < SHOP_ORDER_NSTATES; i++) {
        const char *to = shop_order_state_name((shop_order_state) i);
        th_env *e = transition("0B5E2C9A-3F4D-4E6B-9A7C-1D2E3F4A5B6C", th_fmt(b, "{\"to\":\"%s\"}", to), NULL);
        if (e->c.nqueries != 1) {
            print_error("to %s: not planned (%d)\n", to, e->c.resp.status);
            fail();
        }
        assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_ORDER_TRANSITION);
        assert_param(e, 0, 0, TH_ORDER_ID);
        assert_param(e, 0, 1, to);
        assert_param(e, 0, 2, from[i]);
        assert_param(e, 0, 3, restock[i]);
        assert_param_null(e, 0, 4);
        th_free(e);
    }
}

static void
check_if_match(const char *if_match, const char *versions)
{
    th_env *e = transition(TH_ORDER_ID, "{\"to\":\"paid\"}", if_match);

    assert_int_equal(e->c.nqueries, 1);
    if (versions) {
        assert_param(e, 0, 4, versions);
    } else {
        assert_param_null(e, 0, 4);
    }
    th_free(e);
}

static void
test_transition_if_match(void **state)
{
    (void) state;
    check_if_match(NULL, NULL);
    check_if_match("*", NULL);
    check_if_match("\"3\"", "{3}");
    check_if_match(" \"3\" , \"4\" ", "{3,4}");
    check_if_match("W/\"3\"", "{}");        /* weak tags never match strongly */
    check_if_match("\"abc\"", "{}");
    check_if_match("\"0\"", "{}");
    check_if_match("\"2147483648\"", "{}");
    check_if_match("\"2147483647\"", "{2147483647}");
}

static void
check_transition_422(const char *body, const char *errors)
{
    th_env *e = transition(TH_ORDER_ID, body, NULL);
    struct json_object *p = th_problem(e, 422, "validation");

    assert_int_equal(e->c.nqueries, 0);
    th_assert_errors(e, p, errors);
    th_free(e);
}

static void
test_transition_validation(void **state)
{
    (void) state;
    const char *states = "must be one of pending, paid, packed, shipped, delivered, cancelled, refunded";
    char buf[256];

    snprintf(buf, sizeof(buf), "[{\"field\":\"to\",\"message\":\"%s\"}]", states);
    check_transition_422("{\"to\":\"bogus\"}", buf);
    check_transition_422("{\"to\":\"PAID\"}", buf);
    check_transition_422("{\"to\":\"paid \"}", buf);
    check_transition_422("{}", "[{\"field\":\"to\",\"message\":\"is required\"}]");
    check_transition_422("{\"to\":null}", "[{\"field\":\"to\",\"message\":\"is required\"}]");
    check_transition_422("{\"to\":\"\"}", "[{\"field\":\"to\",\"message\":\"must be 1 to 32 characters\"}]");
    check_transition_422("{\"to\":7}", "[{\"field\":\"to\",\"message\":\"must be a string\"}]");
    check_transition_422("{\"to\":[\"paid\"]}", "[{\"field\":\"to\",\"message\":\"must be a string\"}]");
    check_transition_422("{\"to\":\"paid\",\"from\":\"pending\"}",
                         "[{\"field\":\"from\",\"message\":\"unknown field\"}]");

    /* A bad id is 404 before the body is looked at. */
    th_env *e = transition("not-a-uuid", "{\"to\":\"bogus\"}", NULL);
    th_problem(e, 404, "not-found");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
    e = transition("0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6", "{\"to\":\"paid\"}", NULL);
    th_problem(e, 404, "not-found");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
}

static th_env *
transition_answer(const char *to, shop_result r)
{
    th_env *e = th_new();

    th_request(e, "POST", "/orders/" TH_ORDER_ID "/transitions");
    e->req.base = SHOP_STR("/api");
    th_admin(e);
    th_body(e, "application/json", th_fmt(e, "{\"to\":\"%s\"}", to));
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    th_finish(e, &r);
    return e;
}

static void
test_transition_render(void **state)
{
    th_env *b = *state;
    th_order o = th_order_default();

    o.v[SHOP_O_STATUS] = "paid";
    o.v[SHOP_O_VERSION] = "2";
    th_env *e = transition_answer("paid", th_ok(th_orders(b, 1, &o)));
    assert_int_equal(e->c.resp.status, 200);
    assert_str(e, e->c.resp.content_type, JSON_CT);
    struct json_object *j = th_json(e, e->c.resp.body);
    assert_string_equal(th_jstr(j, "status"), "paid");
    assert_string_equal(th_header(e, "ETag"), "\"2\"");
    assert_null(th_header(e, "Location"));
    th_free(e);
}

static void
test_transition_render_refused(void **state)
{
    (void) state;
    shop_result r = th_raised("SHTRN", "the order cannot move from paid to cancelled");
    r.detail = "paid";
    th_env *e = transition_answer("cancelled", r);
    struct json_object *p = th_problem(e, 409, "invalid-transition");
    assert_string_equal(th_jstr(p, "from"), "paid");
    assert_string_equal(th_jstr(p, "to"), "cancelled");
    struct json_object *allowed;
    assert_true(json_object_object_get_ex(p, "allowed", &allowed));
    assert_string_equal(json_object_to_json_string_ext(allowed, JSON_C_TO_STRING_PLAIN),
                        "[\"packed\",\"refunded\"]");
    assert_non_null(strstr(th_cstr(e, e->c.resp.body),
                           ",\"from\":\"paid\",\"to\":\"cancelled\",\"allowed\":[\"packed\",\"refunded\"]}"));
    th_free(e);

    /* From a final state nothing is allowed. */
    r.detail = "refunded";
    e = transition_answer("shipped", r);
    p = th_problem(e, 409, "invalid-transition");
    assert_true(json_object_object_get_ex(p, "allowed", &allowed));
    assert_int_equal(json_object_array_length(allowed), 0);
    th_free(e);

    /* A DETAIL that names no state: our bug, not the client's. */
    r.detail = "bogus";
    e = transition_answer("shipped", r);
    th_problem(e, 500, "internal");
    th_free(e);
    r.detail = NULL;
    e = transition_answer("shipped", r);
    th_problem(e, 500, "internal");
    th_free(e);

    r = th_raised("SH412", "If-Match does not match the current version");
    e = transition_answer("paid", r);
    th_problem(e, 412, "precondition-failed");
    th_free(e);
    r = th_raised("SH404", "no such order");
    e = transition_answer("paid", r);
    struct json_object *nf = th_problem(e, 404, "not-found");
    assert_string_equal(th_jstr(nf, "detail"), "no such order");
    th_free(e);
    e = transition_answer("paid", th_db(SHOP_DB_UNAVAILABLE));
    th_problem(e, 503, "unavailable");
    assert_string_equal(th_header(e, "Retry-After"), "1");
    th_free(e);
    e = transition_answer("paid", th_db(SHOP_DB_RETRY));
    th_problem(e, 503, "unavailable");
    th_free(e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_place_item_count),
        TH_TEST(test_place_items_shape),
        TH_TEST(test_place_quantity),
        TH_TEST(test_place_sku),
        TH_TEST(test_place_duplicate_sku),
        TH_TEST(test_place_unknown_fields),
        TH_TEST(test_place_email),
        TH_TEST(test_place_params),
        TH_TEST(test_place_idempotency_key),
        TH_TEST(test_place_fingerprint),
        TH_TEST(test_place_render_created),
        TH_TEST(test_place_render_replayed),
        TH_TEST(test_place_render_lines),
        TH_TEST(test_place_render_insufficient_stock),
        TH_TEST(test_place_render_validation),
        TH_TEST(test_place_render_db_down),
        TH_TEST(test_get_plan),
        TH_TEST(test_get_render),
        TH_TEST(test_get_render_missing_and_conditional),
        TH_TEST(test_list_plan),
        TH_TEST(test_list_render),
        TH_TEST(test_transition_params),
        TH_TEST(test_transition_if_match),
        TH_TEST(test_transition_validation),
        TH_TEST(test_transition_render),
        TH_TEST(test_transition_render_refused),
    };
    return cmocka_run_group_tests_name("orders", tests, NULL, NULL);
}
