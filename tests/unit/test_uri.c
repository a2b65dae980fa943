/* Percent-decoding, query parameters, ids; and the list endpoint's query
 * parameters as GET /products reads them (limit, after, q, category). */
#include "helpers.h"

#include <string.h>

#include "cursor.h"
#include "uri.h"

static void
expect_decoded(th_env *e, const char *in, int plus, const char *out)
{
    shop_str r = SHOP_NULL_STR;

    if (shop_pct_decode(&e->core.arena, shop_cstr(in), plus, &r) != 0) {
        print_error("`%s` refused\n", in);
        fail();
    }
    assert_str(e, r, out);
}

static void
expect_refused(th_env *e, const char *in, int plus)
{
    shop_str r = SHOP_NULL_STR;

    if (shop_pct_decode(&e->core.arena, shop_cstr(in), plus, &r) == 0) {
        print_error("`%s` accepted\n", in);
        fail();
    }
}

static void
test_pct_decode(void **state)
{
    th_env *e = *state;

    expect_decoded(e, "", 0, "");
    expect_decoded(e, "abc", 0, "abc");
    expect_decoded(e, "a%20b", 0, "a b");
    expect_decoded(e, "%41%62%63", 0, "Abc");
    expect_decoded(e, "%2f%2F", 0, "//");
    expect_decoded(e, "%25", 0, "%");
    expect_decoded(e, "%2525", 0, "%25");        /* decoded once */
    expect_decoded(e, "a+b", 0, "a+b");
    expect_decoded(e, "a+b", 1, "a b");
    expect_decoded(e, "a%2Bb", 1, "a+b");
    expect_decoded(e, "%C3%A9t%C3%A9", 0, "\xc3\xa9t\xc3\xa9");
    expect_decoded(e, "\xc3\xa9", 0, "\xc3\xa9");
    expect_decoded(e, "%F0%9F%98%80", 0, "\xf0\x9f\x98\x80");

    expect_refused(e, "%", 0);
    expect_refused(e, "%4", 0);
    expect_refused(e, "a%4", 0);
    expect_refused(e, "%zz", 0);
    expect_refused(e, "%g1", 0);
    expect_refused(e, "%1g", 0);
    expect_refused(e, "% 1", 0);
    expect_refused(e, "%00", 0);
    expect_refused(e, "a%00", 1);
    expect_refused(e, "%FF", 0);
    expect_refused(e, "%C0%80", 0);
    expect_refused(e, "%ED%A0%80", 0);
    expect_refused(e, "%F4%90%80%80", 0);
    expect_refused(e, "%E2%82", 0);
    expect_refused(e, "\xff", 0);
    expect_refused(e, "\xc0\x80", 1);

    /* A NUL byte in the raw string. */
    shop_str r;
    assert_int_not_equal(shop_pct_decode(&e->core.arena, (shop_str) { "a\0b", 3 }, 0, &r), 0);
    assert_int_not_equal(shop_pct_decode(&e->core.arena, (shop_str) { "a\0%41", 5 }, 0, &r), 0);
    /* Only the given length is decoded. */
    assert_int_equal(shop_pct_decode(&e->core.arena, (shop_str) { "%41%42", 3 }, 0, &r), 0);
    assert_str(e, r, "A");
    assert_int_not_equal(shop_pct_decode(&e->core.arena, (shop_str) { "%41%42", 5 }, 0, &r), 0);
}

static void
expect_param(th_env *e, const char *query, const char *name, shop_qp want, const char *value)
{
    shop_str v = SHOP_NULL_STR;
    shop_qp got = shop_query_param(&e->core.arena, shop_cstr(query), name, &v);

    if (got != want) {
        print_error("?%s, %s: %d, expected %d\n", query, name, got, want);
        fail();
    }
    if (want == SHOP_QP_FOUND) {
        assert_str(e, v, value);
    }
}

static void
test_query_param(void **state)
{
    th_env *e = *state;

    expect_param(e, "", "limit", SHOP_QP_ABSENT, NULL);
    expect_param(e, "limit=5", "limit", SHOP_QP_FOUND, "5");
    expect_param(e, "a=1&limit=5&b=2", "limit", SHOP_QP_FOUND, "5");
    expect_param(e, "limit=", "limit", SHOP_QP_FOUND, "");
    expect_param(e, "limit", "limit", SHOP_QP_FOUND, "");
    expect_param(e, "limits=5", "limit", SHOP_QP_ABSENT, NULL);
    expect_param(e, "xlimit=5", "limit", SHOP_QP_ABSENT, NULL);
    expect_param(e, "LIMIT=5", "limit", SHOP_QP_ABSENT, NULL);
    expect_param(e, "&&limit=5&", "limit", SHOP_QP_FOUND, "5");
    expect_param(e, "limit=5&limit=5", "limit", SHOP_QP_BAD, NULL);
    expect_param(e, "limit=5&limit=6", "limit", SHOP_QP_BAD, NULL);
    expect_param(e, "limit=%zz", "limit", SHOP_QP_BAD, NULL);
    expect_param(e, "limit=%FF", "limit", SHOP_QP_BAD, NULL);
    expect_param(e, "q=red+tee%21", "q", SHOP_QP_FOUND, "red tee!");
    expect_param(e, "q=a=b", "q", SHOP_QP_FOUND, "a=b");
    expect_param(e, "q=%26", "q", SHOP_QP_FOUND, "&");
    expect_param(e, "q=%C3%A9", "q", SHOP_QP_FOUND, "\xc3\xa9");
}

static void
test_parse_id(void **state)
{
    (void) state;
    assert_int_equal(shop_parse_id(shop_cstr("1")), 1);
    assert_int_equal(shop_parse_id(shop_cstr("42")), 42);
    assert_true(shop_parse_id(shop_cstr("9223372036854775807")) == INT64_MAX);
    assert_int_equal(shop_parse_id(shop_cstr("9223372036854775808")), 0);
    assert_int_equal(shop_parse_id(shop_cstr("99999999999999999999")), 0);
    assert_int_equal(shop_parse_id(shop_cstr("0")), 0);
    assert_int_equal(shop_parse_id(shop_cstr("007")), 0);
    assert_int_equal(shop_parse_id(shop_cstr("-1")), 0);
    assert_int_equal(shop_parse_id(shop_cstr("+1")), 0);
    assert_int_equal(shop_parse_id(shop_cstr(" 1")), 0);
    assert_int_equal(shop_parse_id(shop_cstr("1 ")), 0);
    assert_int_equal(shop_parse_id(shop_cstr("1e3")), 0);
    assert_int_equal(shop_parse_id(shop_cstr("0x10")), 0);
    assert_int_equal(shop_parse_id(shop_cstr("")), 0);
    assert_int_equal(shop_parse_id((shop_str) { "123", 2 }), 12);
}

/* ---- GET /products?... ------------------------------------------------------ */

static void
list(th_env *e, const char *target)
{
    th_request(e, "GET", target);
    th_begin(e);
}

static void
expect_limit(const char *target, const char *planned)
{
    th_env *e = NULL;

    e = th_new();
    list(e, target);
    if (planned == NULL) {
        if (e->c.resp.status != 400) {
            print_error("%s: %d, expected 400\n", target, e->c.resp.status);
        }
        struct json_object *p = th_problem(e, 400, "bad-request");
        assert_non_null(strstr(th_jstr(p, "detail"), "limit"));
        assert_int_equal(e->c.nqueries, 0);
    } else {
        if (e->c.nqueries != 1) {
            print_error("%s: %d\n", target, e->c.resp.status);
        }
        assert_int_equal(e->c.nqueries, 1);
        assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_LIST);
        assert_param(e, 0, 0, "0");
        assert_param(e, 0, 1, planned);
    }
    th_free(e);
}

static void
test_list_limit(void **state)
{
    (void) state;
    expect_limit("/products", "51");               /* default 50, plus one */
    expect_limit("/products?limit=1", "2");
    expect_limit("/products?limit=50", "51");
    expect_limit("/products?limit=500", "501");
    expect_limit("/products?limit=0", NULL);
    expect_limit("/products?limit=501", NULL);
    expect_limit("/products?limit=abc", NULL);
    expect_limit("/products?limit=-1", NULL);
    expect_limit("/products?limit=1.5", NULL);
    expect_limit("/products?limit=", NULL);
    expect_limit("/products?limit", NULL);
    expect_limit("/products?limit=%35", "6");      /* decoded */
    expect_limit("/products?limit=5&limit=5", NULL);
    expect_limit("/products?limit=5&limit=6", NULL);
    expect_limit("/products?limit=99999999999999999999", NULL);
}

static void
expect_after(th_env *e, const char *cursor, const char *planned)
{
    char target[512];
    th_env *f = NULL;

    (void) e;
    snprintf(target, sizeof(target), "/products?after=%s", cursor);
    f = th_new();
    list(f, target);
    if (planned == NULL) {
        if (f->c.resp.status != 400) {
            print_error("after=%s: %d, expected 400\n", cursor, f->c.resp.status);
        }
        struct json_object *p = th_problem(f, 400, "bad-request");
        assert_non_null(strstr(th_jstr(p, "detail"), "after"));
    } else {
        if (f->c.nqueries != 1) {
            print_error("after=%s: %d\n", cursor, f->c.resp.status);
            fail();
        }
        assert_param(f, 0, 0, planned);
        assert_param(f, 0, 1, "51");
    }
    th_free(f);
}

static void
test_list_after(void **state)
{
    th_env *e = *state;
    shop_str c42 = shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("42"));

    expect_after(e, th_cstr(e, c42), "42");
    expect_after(e, th_cstr(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("9223372036854775807"))),
                 "9223372036854775807");
    /* Not a cursor, or not one of products. */
    expect_after(e, "", NULL);
    expect_after(e, "42", NULL);
    expect_after(e, "cDo", NULL);                   /* 3 chars */
    expect_after(e, "%zz", NULL);
    expect_after(e, "!!!!", NULL);
    expect_after(e, th_cstr(e, shop_cursor_encode(&e->core.arena, 'o', SHOP_STR("42"))), NULL);
    expect_after(e, th_cstr(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("abc"))), NULL);
    expect_after(e, th_cstr(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("0"))), NULL);
    expect_after(e, th_cstr(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("-1"))), NULL);
    expect_after(e, th_cstr(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("042"))), NULL);
    expect_after(e, th_cstr(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("9223372036854775808"))), NULL);
    expect_after(e, th_cstr(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR(""))), NULL);
    /* Given twice. */
    char twice[256];
    snprintf(twice, sizeof(twice), "%s&after=%s", th_cstr(e, c42), th_cstr(e, c42));
    expect_after(e, twice, NULL);
}

static void
test_list_filters(void **state)
{
    th_env *e = *state;

    list(e, "/products?q=Red+Tee&category=apparel&limit=10");
    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_LIST_FILTERED);
    assert_param(e, 0, 0, "0");
    assert_param(e, 0, 1, "11");
    assert_param(e, 0, 2, "Red Tee");
    assert_param(e, 0, 3, "apparel");
}

static void
test_list_q_only(void **state)
{
    th_env *e = *state;

    /* % and _ stay literal (the statement uses strpos, not LIKE). */
    list(e, "/products?q=50%25_off");
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_LIST_FILTERED);
    assert_param(e, 0, 2, "50%_off");
    assert_param_null(e, 0, 3);
}

static void
test_list_category_only(void **state)
{
    th_env *e = *state;

    list(e, "/products?category=home_garden-2");
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_LIST_FILTERED);
    assert_param_null(e, 0, 2);
    assert_param(e, 0, 3, "home_garden-2");
}

static void
test_list_empty_q_is_unfiltered(void **state)
{
    th_env *e = *state;

    list(e, "/products?q=");
    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_LIST);
}

static void
test_list_q_length(void **state)
{
    th_env *e = *state;
    char target[2048] = "/products?q=";

    /* 200 characters of two bytes each: fine. */
    for (int i = 0; i < 200; i++) {
        strcat(target, "%C3%A9");
    }
    list(e, target);
    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(strlen(th_param(e, 0, 2)), 400);

    th_env *f = NULL;
    f = th_new();
    strcat(target, "x");
    list(f, target);
    th_problem(f, 400, "bad-request");
    assert_int_equal(f->c.nqueries, 0);
    th_free(f);
}

static void
expect_bad_list(const char *target)
{
    th_env *e = NULL;

    e = th_new();
    list(e, target);
    if (e->c.resp.status != 400) {
        print_error("%s: %d\n", target, e->c.resp.status);
    }
    th_problem(e, 400, "bad-request");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
}

static void
test_list_bad_filters(void **state)
{
    (void) state;
    expect_bad_list("/products?q=a&q=b");
    expect_bad_list("/products?q=%FF");
    expect_bad_list("/products?q=%00");
    expect_bad_list("/products?category=Apparel");
    expect_bad_list("/products?category=");
    expect_bad_list("/products?category=a%20b");
    expect_bad_list("/products?category=a&category=b");
    expect_bad_list("/products?category=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); /* 65 */
}

static void
test_list_unknown_params_ignored(void **state)
{
    th_env *e = *state;

    list(e, "/products?utm_source=x&sort=name");
    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_LIST);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_pct_decode),
        TH_TEST(test_query_param),
        TH_TEST(test_parse_id),
        TH_TEST(test_list_limit),
        TH_TEST(test_list_after),
        TH_TEST(test_list_filters),
        TH_TEST(test_list_q_only),
        TH_TEST(test_list_category_only),
        TH_TEST(test_list_empty_q_is_unfiltered),
        TH_TEST(test_list_q_length),
        TH_TEST(test_list_bad_filters),
        TH_TEST(test_list_unknown_params_ignored),
    };
    return cmocka_run_group_tests_name("uri", tests, NULL, NULL);
}
