/* Admin bearer tokens (API.md "Authentication"): missing -> 401 with
 * WWW-Authenticate: Bearer, wrong -> 403; the webhook's Shop-Signature. */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"

static shop_err
admin(th_env *e, const char *header)
{
    return shop_auth_admin(&e->settings, th_s(e, header));
}

static void
test_auth_admin(void **state)
{
    th_env *e = *state;

    assert_int_equal(admin(e, "Bearer " TH_TOKEN), SHOP_OK);
    assert_int_equal(admin(e, "bearer " TH_TOKEN), SHOP_OK);      /* the scheme is case-insensitive */
    assert_int_equal(admin(e, "BEARER " TH_TOKEN), SHOP_OK);
    assert_int_equal(admin(e, "  Bearer   " TH_TOKEN "  "), SHOP_OK);

    assert_int_equal(admin(e, ""), SHOP_E_UNAUTHORIZED);          /* missing */
    assert_int_equal(admin(e, "Bearer"), SHOP_E_UNAUTHORIZED);
    assert_int_equal(admin(e, "Bearer "), SHOP_E_UNAUTHORIZED);
    assert_int_equal(admin(e, "Bearer    "), SHOP_E_UNAUTHORIZED);
    assert_int_equal(admin(e, "Basic YWRtaW46c2VjcmV0"), SHOP_E_UNAUTHORIZED);
    assert_int_equal(admin(e, TH_TOKEN), SHOP_E_UNAUTHORIZED);
    assert_int_equal(admin(e, "Token " TH_TOKEN), SHOP_E_UNAUTHORIZED);
    assert_int_equal(admin(e, "Bearer" TH_TOKEN), SHOP_E_UNAUTHORIZED);

    assert_int_equal(admin(e, "Bearer wrong"), SHOP_E_FORBIDDEN);
    assert_int_equal(admin(e, "Bearer " TH_TOKEN "x"), SHOP_E_FORBIDDEN);
    assert_int_equal(admin(e, "Bearer x" TH_TOKEN), SHOP_E_FORBIDDEN);
    assert_int_equal(admin(e, "Bearer S3CRET-ADMIN-TOKEN-0123456789"), SHOP_E_FORBIDDEN);  /* tokens are not */
    char shorter[64];
    snprintf(shorter, sizeof(shorter), "Bearer %.*s", (int) strlen(TH_TOKEN) - 1, TH_TOKEN);
    assert_int_equal(admin(e, shorter), SHOP_E_FORBIDDEN);
}

static void
test_auth_token_not_configured(void **state)
{
    th_env *e = *state;

    e->settings.admin_token = NULL;
    e->settings.admin_token_len = 0;
    assert_int_equal(admin(e, "Bearer " TH_TOKEN), SHOP_E_FORBIDDEN);
    assert_int_equal(admin(e, "Bearer "), SHOP_E_UNAUTHORIZED);
    assert_int_equal(admin(e, ""), SHOP_E_UNAUTHORIZED);
    e->settings.admin_token = "";
    assert_int_equal(admin(e, "Bearer x"), SHOP_E_FORBIDDEN);
}

static void
test_secret_equal(void **state)
{
    (void) state;
    assert_true(shop_secret_equal("abc", 3, "abc", 3));
    assert_true(shop_secret_equal("", 0, "", 0));
    assert_false(shop_secret_equal("abc", 3, "abd", 3));
    assert_false(shop_secret_equal("abc", 3, "ab", 2));
    assert_false(shop_secret_equal("ab", 2, "abc", 3));
    assert_false(shop_secret_equal("abc", 3, "abc", 4));   /* "abc\0" */
    assert_false(shop_secret_equal("", 0, "a", 1));
}

/* ---- through shop_begin: POST /products ------------------------------------- */

static void
post_product(th_env *e, const char *authorization)
{
    th_request(e, "POST", "/products");
    th_body(e, "application/json", "{\"sku\":\"A\",\"name\":\"A\",\"price_cents\":1,\"currency\":\"EUR\"}");
    if (authorization != NULL) {
        e->req.authorization = th_s(e, authorization);
    }
    th_begin(e);
}

static void
test_request_missing_token(void **state)
{
    th_env *e = *state;

    post_product(e, NULL);
    th_problem(e, 401, "unauthorized");
    assert_non_null(th_header(e, "WWW-Authenticate"));
    assert_true(strncmp(th_header(e, "WWW-Authenticate"), "Bearer", 6) == 0);
    assert_int_equal(e->c.nqueries, 0);
}

static void
test_request_basic(void **state)
{
    th_env *e = *state;

    post_product(e, "Basic YWRtaW46c2VjcmV0");
    th_problem(e, 401, "unauthorized");
    assert_true(strncmp(th_header(e, "WWW-Authenticate"), "Bearer", 6) == 0);
    assert_int_equal(e->c.nqueries, 0);
}

static void
test_request_wrong_token(void **state)
{
    th_env *e = *state;

    post_product(e, "Bearer not-the-token-at-all-000");
    th_problem(e, 403, "forbidden");
    assert_null(th_header(e, "WWW-Authenticate"));
    assert_int_equal(e->c.nqueries, 0);
}

static void
test_request_right_token(void **state)
{
    th_env *e = *state;

    post_product(e, "Bearer " TH_TOKEN);
    assert_int_equal(e->c.err, SHOP_OK);
    assert_int_equal(e->c.nqueries, 1);
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PRODUCT_CREATE);
}

static void
test_request_lowercase_bearer(void **state)
{
    th_env *e = *state;

    post_product(e, "bearer " TH_TOKEN);
    assert_int_equal(e->c.nqueries, 1);
}

static void
test_request_token_not_configured(void **state)
{
    th_env *e = *state;

    e->settings.admin_token = NULL;
    e->settings.admin_token_len = 0;
    post_product(e, "Bearer " TH_TOKEN);
    th_problem(e, 403, "forbidden");
    assert_int_equal(e->c.nqueries, 0);
}

static void
test_auth_before_body(void **state)
{
    th_env *e = *state;

    /* A stranger learns nothing about the body rules. */
    th_request(e, "POST", "/products");
    th_body(e, "text/plain", "not json");
    th_begin(e);
    th_problem(e, 401, "unauthorized");
}

static void
test_public_routes_need_no_token(void **state)
{
    static const char *const targets[] = { "/healthz", "/readyz", "/products", "/products/42" };
    (void) state;

    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        th_env *e = NULL;
        e = th_new();
        th_request(e, "GET", targets[i]);
        e->req.authorization = th_s(e, "Bearer wrong");   /* ignored where not needed */
        th_begin(e);
        assert_int_equal(e->c.err, SHOP_OK);
        th_free(e);
    }
}

static void
test_admin_routes_need_token(void **state)
{
    static const char *const targets[][2] = {
        { "POST", "/products" }, { "PATCH", "/products/42" }, { "DELETE", "/products/42" },
    };
    (void) state;

    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        th_env *e = NULL;
        e = th_new();
        th_request(e, targets[i][0], targets[i][1]);
        th_body(e, "application/json", "{}");
        th_begin(e);
        th_problem(e, 401, "unauthorized");
        th_free(e);
    }
}

/* ---- Shop-Signature ------------------------------------------------------------ */

#define SECRET "whsec-0123456789abcdef"

static const char *
sign(th_env *e, const char *secret, long long t, const char *body)
{
    char text[1024], *out;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int n = snprintf(text, sizeof(text), "%lld.%s", t, body);

    HMAC(EVP_sha256(), secret, (int) strlen(secret), (unsigned char *) text, (size_t) n, mac, &maclen);
    out = shop_alloc(&e->scratch.arena, 2 * maclen + 1);
    for (unsigned i = 0; i < maclen; i++) {
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    }
    return out;
}

static int
check_sig(th_env *e, const char *header, const char *body, const char **why)
{
    *why = NULL;
    return shop_auth_signature(&e->settings, &e->core.arena, th_s(e, header), body, strlen(body),
                               TH_NOW_MS, why);
}

static void
test_signature(void **state)
{
    th_env *e = *state;
    const char *body = "{\"id\":\"evt_1\"}";
    long long now = TH_NOW_MS / 1000;
    char h[512];
    const char *why;

    e->settings.webhook_secret = SECRET;
    e->settings.webhook_secret_len = strlen(SECRET);

    snprintf(h, sizeof(h), "t=%lld,v1=%s", now, sign(e, SECRET, now, body));
    assert_true(check_sig(e, h, body, &why));
    snprintf(h, sizeof(h), " t=%lld , v1=%s ", now, sign(e, SECRET, now, body));
    assert_true(check_sig(e, h, body, &why));
    /* Secret rotation: any v1 may match. */
    snprintf(h, sizeof(h), "t=%lld,v1=%s,v1=%s", now, sign(e, "old-secret-0123456789", now, body),
             sign(e, SECRET, now, body));
    assert_true(check_sig(e, h, body, &why));
    /* Up to 300 s either way is fine (now is x.123 s: t = now - 299 is 299.123 s
     * ago, t = now + 300 is 299.877 s ahead), more is not. */
    snprintf(h, sizeof(h), "t=%lld,v1=%s", now - 299, sign(e, SECRET, now - 299, body));
    assert_true(check_sig(e, h, body, &why));
    snprintf(h, sizeof(h), "t=%lld,v1=%s", now + 300, sign(e, SECRET, now + 300, body));
    assert_true(check_sig(e, h, body, &why));
    snprintf(h, sizeof(h), "t=%lld,v1=%s", now - 300, sign(e, SECRET, now - 300, body));
    assert_false(check_sig(e, h, body, &why));   /* 300.123 s */
    snprintf(h, sizeof(h), "t=%lld,v1=%s", now - 301, sign(e, SECRET, now - 301, body));
    assert_false(check_sig(e, h, body, &why));
    assert_non_null(why);
    snprintf(h, sizeof(h), "t=%lld,v1=%s", now + 301, sign(e, SECRET, now + 301, body));
    assert_false(check_sig(e, h, body, &why));

    /* Wrong secret, other body, other t, garbage. */
    snprintf(h, sizeof(h), "t=%lld,v1=%s", now, sign(e, "another-secret-0123", now, body));
    assert_false(check_sig(e, h, body, &why));
    snprintf(h, sizeof(h), "t=%lld,v1=%s", now, sign(e, SECRET, now, "{}"));
    assert_false(check_sig(e, h, body, &why));
    snprintf(h, sizeof(h), "t=%lld,v1=%s", now - 1, sign(e, SECRET, now, body));
    assert_false(check_sig(e, h, body, &why));
    assert_false(check_sig(e, "", body, &why));
    assert_non_null(why);
    assert_false(check_sig(e, "t=1", body, &why));
    snprintf(h, sizeof(h), "v1=%s", sign(e, SECRET, now, body));
    assert_false(check_sig(e, h, body, &why));
    snprintf(h, sizeof(h), "t=%lld,v1=zz", now);
    assert_false(check_sig(e, h, body, &why));
    snprintf(h, sizeof(h), "t=-%lld,v1=%s", now, sign(e, SECRET, now, body));
    assert_false(check_sig(e, h, body, &why));

    /* Not configured: nothing passes. */
    e->settings.webhook_secret = NULL;
    e->settings.webhook_secret_len = 0;
    snprintf(h, sizeof(h), "t=%lld,v1=%s", now, sign(e, SECRET, now, body));
    assert_false(check_sig(e, h, body, &why));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_auth_admin),
        TH_TEST(test_auth_token_not_configured),
        TH_TEST(test_secret_equal),
        TH_TEST(test_request_missing_token),
        TH_TEST(test_request_basic),
        TH_TEST(test_request_wrong_token),
        TH_TEST(test_request_right_token),
        TH_TEST(test_request_lowercase_bearer),
        TH_TEST(test_request_token_not_configured),
        TH_TEST(test_auth_before_body),
        TH_TEST(test_public_routes_need_no_token),
        TH_TEST(test_admin_routes_need_token),
        TH_TEST(test_signature),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
