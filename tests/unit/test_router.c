/* The router: every route of the table, 404 for unknown paths, 405 with the
 * Allow list (HEAD wherever GET is), OPTIONS 204, percent-decoded params. */
#include "helpers.h"

#include <string.h>

#include "router.h"

typedef struct {
    const char *method;
    const char *path;
    const char *tmpl;
    const char *p0, *p1;
} route_case;

static const route_case routes[] = {
    { "GET",    "/healthz", "/healthz", NULL, NULL },
    { "HEAD",   "/healthz", "/healthz", NULL, NULL },
    { "GET",    "/readyz", "/readyz", NULL, NULL },
    { "HEAD",   "/readyz", "/readyz", NULL, NULL },
    { "GET",    "/products", "/products", NULL, NULL },
    { "HEAD",   "/products", "/products", NULL, NULL },
    { "POST",   "/products", "/products", NULL, NULL },
    { "GET",    "/products/42", "/products/{id}", "42", NULL },
    { "HEAD",   "/products/red-tee", "/products/{id}", "red-tee", NULL },
    { "PATCH",  "/products/42", "/products/{id}", "42", NULL },
    { "DELETE", "/products/x", "/products/{id}", "x", NULL },
    { "GET",    "/warehouses", "/warehouses", NULL, NULL },
    { "PUT",    "/warehouses/north", "/warehouses/{code}", "north", NULL },
    { "PUT",    "/warehouses/north/stock/TEE-RED-M", "/warehouses/{code}/stock/{sku}", "north", "TEE-RED-M" },
    { "POST",   "/stock/check", "/stock/check", NULL, NULL },
    { "GET",    "/events", "/events", NULL, NULL },
    { "HEAD",   "/events", "/events", NULL, NULL },
    { "POST",   "/orders", "/orders", NULL, NULL },
    { "GET",    "/orders", "/orders", NULL, NULL },
    { "GET",    "/orders/0b6b3c1e-7f3a-4c1a-9d2e-3f4a5b6c7d8e", "/orders/{id}",
      "0b6b3c1e-7f3a-4c1a-9d2e-3f4a5b6c7d8e", NULL },
    { "POST",   "/orders/abc/transitions", "/orders/{id}/transitions", "abc", NULL },
    { "POST",   "/webhooks/payments", "/webhooks/payments", NULL, NULL },
};

static void
test_every_route_matches(void **state)
{
    (void) state;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const route_case *rc = &routes[i];
        shop_match m;
        shop_str path = shop_cstr(rc->path);

        shop_route_find(path, shop_method_parse(rc->method, strlen(rc->method)), &m);
        if (m.route == NULL) {
            print_error("%s %s: no route\n", rc->method, rc->path);
            fail();
        }
        assert_string_equal(m.route->tmpl, rc->tmpl);
        assert_int_equal(m.nparams, (rc->p0 != NULL) + (rc->p1 != NULL));
        if (rc->p0) {
            assert_int_equal(m.params[0].n, strlen(rc->p0));
            assert_memory_equal(m.params[0].p, rc->p0, m.params[0].n);
        }
        if (rc->p1) {
            assert_int_equal(m.params[1].n, strlen(rc->p1));
            assert_memory_equal(m.params[1].p, rc->p1, m.params[1].n);
        }
        /* HEAD is served by the GET route. */
        int head = strcmp(rc->method, "HEAD") == 0;
        assert_int_equal(m.route->method, head ? SHOP_GET : shop_method_parse(rc->method, strlen(rc->method)));
    }
}

/* Each row of the table is reachable with its own method and template. */
static void
test_route_table_reachable(void **state)
{
    th_env *e = *state;

    for (size_t r = 0; r < shop_route_count; r++) {
        const shop_route *rt = &shop_routes[r];
        char path[256];
        size_t n = 0;
        for (const char *t = rt->tmpl; *t != '\0';) {
            if (*t == '{') {
                memcpy(path + n, "v1", 2);
                n += 2;
                t = strchr(t, '}') + 1;
            } else {
                path[n++] = *t++;
            }
        }
        path[n] = '\0';
        shop_match m;
        shop_route_find((shop_str) { path, n }, rt->method, &m);
        assert_ptr_equal(m.route, rt);
        assert_true(m.allowed & rt->method);
        if (rt->method == SHOP_GET) {
            assert_true(m.allowed & SHOP_HEAD);
        }
        assert_non_null(rt->plan);
        /* Every template starts with '/' and has no trailing slash. */
        assert_int_equal(rt->tmpl[0], '/');
        assert_int_not_equal(rt->tmpl[strlen(rt->tmpl) - 1], '/');
        /* The name for logs and metrics. */
        assert_non_null(shop_allow_header(&e->core.arena, m.allowed).p);
    }
}

static void
test_unknown_paths(void **state)
{
    static const char *const paths[] = {
        "", "/", "/nope", "/product", "/productsx", "/products/", "/products/42/",
        "/products/42/x", "/products//", "//products", "/PRODUCTS", "/Products/42",
        "/healthz/", "/healthz/x", "/api/products", "/orders/x/transitions/",
        "/warehouses/north/stock", "/warehouses/north/stock/", "/warehouses//stock/x",
        "/product%73", "/webhooks", "/webhooks/payments/x", "/stock", "/stock/check/x",
        "/events/1",
    };

    (void) state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        shop_match m;
        shop_route_find(shop_cstr(paths[i]), SHOP_GET, &m);
        if (m.route != NULL || m.allowed != 0) {
            print_error("%s: matched %s\n", paths[i], m.route ? m.route->tmpl : "(allowed only)");
            fail();
        }
    }
}

static void
test_404_response(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/nope?limit=1");
    th_begin(e);
    th_problem(e, 404, "not-found");
    assert_int_equal(e->c.nqueries, 0);
    assert_null(e->c.route);
    assert_string_equal(shop_route_name(&e->c), "-");
    assert_null(th_header(e, "Allow"));
}

static void
test_trailing_slash_is_404(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products/");
    th_begin(e);
    th_problem(e, 404, "not-found");
    assert_int_equal(e->c.nqueries, 0);
}

typedef struct {
    const char *method;
    const char *path;
    const char *allow;
} allow_case;

static const allow_case not_allowed[] = {
    { "POST",    "/healthz", "GET, HEAD, OPTIONS" },
    { "DELETE",  "/readyz", "GET, HEAD, OPTIONS" },
    { "PUT",     "/products", "GET, HEAD, POST, OPTIONS" },
    { "DELETE",  "/products", "GET, HEAD, POST, OPTIONS" },
    { "PATCH",   "/products", "GET, HEAD, POST, OPTIONS" },
    { "POST",    "/products/42", "GET, HEAD, PATCH, DELETE, OPTIONS" },
    { "PUT",     "/products/42", "GET, HEAD, PATCH, DELETE, OPTIONS" },
    { "BREW",    "/products/42", "GET, HEAD, PATCH, DELETE, OPTIONS" },
    { "get",     "/products", "GET, HEAD, POST, OPTIONS" },   /* methods are case-sensitive */
    { "POST",    "/warehouses", "GET, HEAD, OPTIONS" },
    { "GET",     "/warehouses/north", "PUT, OPTIONS" },
    { "DELETE",  "/warehouses/north/stock/X", "PUT, OPTIONS" },
    { "PUT",     "/orders", "GET, HEAD, POST, OPTIONS" },
    { "DELETE",  "/orders/abc", "GET, HEAD, OPTIONS" },
    { "GET",     "/orders/abc/transitions", "POST, OPTIONS" },
    { "GET",     "/webhooks/payments", "POST, OPTIONS" },
    { "HEAD",    "/webhooks/payments", "POST, OPTIONS" },
    { "GET",     "/stock/check", "POST, OPTIONS" },
    { "POST",    "/events", "GET, HEAD, OPTIONS" },
};

static void
test_405_allow(void **state)
{
    th_env *e = *state;

    for (size_t i = 0; i < sizeof(not_allowed) / sizeof(not_allowed[0]); i++) {
        const allow_case *ac = &not_allowed[i];
        th_env *fresh = NULL;
        /* A fresh env per request (shop_begin once per ctx). */
        fresh = th_new();
        th_request(fresh, ac->method, ac->path);
        th_begin(fresh);
        if (fresh->c.resp.status != 405) {
            print_error("%s %s: %d\n", ac->method, ac->path, fresh->c.resp.status);
        }
        th_problem(fresh, 405, "method-not-allowed");
        assert_int_equal(fresh->c.nqueries, 0);
        const char *allow = th_header(fresh, "Allow");
        assert_non_null(allow);
        assert_string_equal(allow, ac->allow);
        th_free(fresh);
    }
    (void) e;
}

static void
test_options(void **state)
{
    static const allow_case options[] = {
        { "OPTIONS", "/products", "GET, HEAD, POST, OPTIONS" },
        { "OPTIONS", "/products/42", "GET, HEAD, PATCH, DELETE, OPTIONS" },
        { "OPTIONS", "/healthz", "GET, HEAD, OPTIONS" },
        { "OPTIONS", "/orders", "GET, HEAD, POST, OPTIONS" },
        { "OPTIONS", "/webhooks/payments", "POST, OPTIONS" },
    };
    (void) state;

    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        th_env *e = NULL;
        e = th_new();
        th_request(e, options[i].method, options[i].path);
        th_begin(e);
        assert_int_equal(e->c.resp.status, 204);
        assert_int_equal(e->c.resp.body.n, 0);
        assert_int_equal(e->c.resp.content_type.n, 0);
        assert_int_equal(e->c.nqueries, 0);
        assert_int_equal(e->c.err, SHOP_OK);
        assert_string_equal(th_header(e, "Allow"), options[i].allow);
        th_free(e);
    }
}

static void
test_options_unknown_is_404(void **state)
{
    th_env *e = *state;

    th_request(e, "OPTIONS", "/nope");
    th_begin(e);
    th_problem(e, 404, "not-found");
}

static void
test_head_is_get(void **state)
{
    th_env *e = *state;

    th_request(e, "HEAD", "/healthz");
    th_begin(e);
    assert_int_equal(e->c.resp.status, 200);
    assert_string_equal(shop_route_name(&e->c), "/healthz");
}

static void
test_params_percent_decoded(void **state)
{
    th_env *e = *state;

    th_request(e, "GET", "/products/red%2Dtee%2d2");
    th_begin(e);
    assert_string_equal(shop_route_name(&e->c), "/products/{id}");
    assert_str(e, e->c.params[0], "red-tee-2");
    /* Handlers get NUL-terminated parameters. */
    assert_string_equal(e->c.params[0].p, "red-tee-2");
    assert_int_equal(e->c.nqueries, 1);
    assert_param_null(e, 0, 0);
    assert_param(e, 0, 1, "red-tee-2");
}

static void
test_two_params_decoded(void **state)
{
    th_env *e = *state;

    th_request(e, "PUT", "/warehouses/n%6Frth/stock/TEE%2DRED%2DM");
    shop_match m;
    shop_route_find(e->req.path, e->req.method, &m);
    assert_non_null(m.route);
    assert_int_equal(m.nparams, 2);
    /* The router hands out raw segments; shop_begin decodes them. */
    assert_int_equal(m.params[0].n, strlen("n%6Frth"));
    th_begin(e);   /* no token: 401, but the params are decoded first */
    assert_str(e, e->c.params[0], "north");
    assert_str(e, e->c.params[1], "TEE-RED-M");
}

static void
test_bad_escapes_are_404(void **state)
{
    static const char *const paths[] = {
        "/products/%zz", "/products/%4", "/products/%", "/products/a%2", "/products/%G0",
        "/products/%00", "/products/a%00b", "/products/%FF", "/products/%C0%80",
        "/products/%ED%A0%80", "/products/%E2%82", "/products/%F4%90%80%80",
    };
    (void) state;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        th_env *e = NULL;
        e = th_new();
        th_request(e, "GET", paths[i]);
        th_begin(e);
        if (e->c.resp.status != 404) {
            print_error("%s: %d\n", paths[i], e->c.resp.status);
        }
        th_problem(e, 404, "not-found");
        assert_int_equal(e->c.nqueries, 0);
        th_free(e);
    }
}

static void
test_decoded_slash_is_one_segment(void **state)
{
    th_env *e = *state;

    /* %2F does not split the path: one segment "a/b", which is no product. */
    th_request(e, "GET", "/products/a%2Fb");
    th_begin(e);
    assert_string_equal(shop_route_name(&e->c), "/products/{id}");
    th_problem(e, 404, "not-found");
    assert_int_equal(e->c.nqueries, 0);
}

static void
test_method_parse(void **state)
{
    (void) state;
    assert_int_equal(shop_method_parse("GET", 3), SHOP_GET);
    assert_int_equal(shop_method_parse("HEAD", 4), SHOP_HEAD);
    assert_int_equal(shop_method_parse("POST", 4), SHOP_POST);
    assert_int_equal(shop_method_parse("PUT", 3), SHOP_PUT);
    assert_int_equal(shop_method_parse("PATCH", 5), SHOP_PATCH);
    assert_int_equal(shop_method_parse("DELETE", 6), SHOP_DELETE);
    assert_int_equal(shop_method_parse("OPTIONS", 7), SHOP_OPTIONS);
    assert_int_equal(shop_method_parse("get", 3), SHOP_OTHER);
    assert_int_equal(shop_method_parse("GETX", 4), SHOP_OTHER);
    assert_int_equal(shop_method_parse("GETX", 3), SHOP_GET);   /* the length counts */
    assert_int_equal(shop_method_parse("", 0), SHOP_OTHER);
    assert_int_equal(shop_method_parse("TRACE", 5), SHOP_OTHER);
    assert_int_equal(shop_method_parse("CONNECT", 7), SHOP_OTHER);
}

static void
test_allow_header(void **state)
{
    th_env *e = *state;
    shop_arena *a = &e->core.arena;

    assert_str(e, shop_allow_header(a, 0), "");
    assert_str(e, shop_allow_header(a, SHOP_GET), "GET");
    assert_str(e, shop_allow_header(a, SHOP_OPTIONS | SHOP_DELETE | SHOP_GET), "GET, DELETE, OPTIONS");
    assert_str(e, shop_allow_header(a, SHOP_GET | SHOP_HEAD | SHOP_POST | SHOP_PUT | SHOP_PATCH
                                       | SHOP_DELETE | SHOP_OPTIONS | SHOP_OTHER),
               "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_every_route_matches),
        TH_TEST(test_route_table_reachable),
        TH_TEST(test_unknown_paths),
        TH_TEST(test_404_response),
        TH_TEST(test_trailing_slash_is_404),
        TH_TEST(test_405_allow),
        TH_TEST(test_options),
        TH_TEST(test_options_unknown_is_404),
        TH_TEST(test_head_is_get),
        TH_TEST(test_params_percent_decoded),
        TH_TEST(test_two_params_decoded),
        TH_TEST(test_bad_escapes_are_404),
        TH_TEST(test_decoded_slash_is_one_segment),
        TH_TEST(test_method_parse),
        TH_TEST(test_allow_header),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
