/* POST /webhooks/payments (webhook.c, auth.c): the Shop-Signature as a
 * request sees it, the three event shapes and their statement parameters,
 * the refusals (400 type, 422 fields), fingerprints, and rendering. */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SECRET  "whsec-test-0123456789abcdef"
#define NOW_S   (TH_NOW_MS / 1000)
#define UUID    TH_ORDER_ID

#define SUCCEEDED "{\"id\":\"evt_1\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\"," \
                  "\"amount_cents\":3998,\"currency\":\"EUR\"}"
#define FAILED    "{\"id\":\"evt_2\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "\"," \
                  "\"reason\":\"card_declined\"}"
#define REFUND    "{\"id\":\"evt_3\",\"type\":\"refund.created\",\"order_id\":\"" UUID "\"," \
                  "\"amount_cents\":3998,\"currency\":\"EUR\"}"

/* Hex HMAC-SHA256(secret, t "." body). */
static const char *
sign(th_env *e, const char *secret, long long t, const char *body, int upper)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    const char *text = th_fmt(e, "%lld.%s", t, body);
    char *out;

    assert_non_null(HMAC(EVP_sha256(), secret, (int) strlen(secret), (const unsigned char *) text,
                         strlen(text), mac, &maclen));
    out = shop_alloc(&e->scratch.arena, 2 * maclen + 1);
    assert_non_null(out);
    for (unsigned i = 0; i < maclen; i++) {
        snprintf(out + 2 * i, 3, upper ? "%02X" : "%02x", mac[i]);
    }
    return out;
}

static const char *
valid_sig(th_env *e, const char *body)
{
    return th_fmt(e, "t=%lld,v1=%s", (long long) NOW_S, sign(e, SECRET, NOW_S, body, 0));
}

/* A new env with the webhook request, signed with `sig` (NULL: a valid
 * signature; "": no header), begun. */
static th_env *
hook(const char *body, const char *sig)
{
    th_env *e = th_new();

    th_request(e, "POST", "/webhooks/payments");
    e->settings.webhook_secret = SECRET;
    e->settings.webhook_secret_len = strlen(SECRET);
    th_body(e, "application/json", body);
    e->req.signature = th_s(e, sig ? sig : valid_sig(e, body));
    th_begin(e);
    return e;
}

static th_env *
want_planned(const char *body)
{
    th_env *e = hook(body, NULL);

    if (e->c.nqueries != 1) {
        print_error("not planned (%d): %s\n%s\n", e->c.resp.status, body, th_cstr(e, e->c.resp.body));
        fail();
    }
    assert_int_equal(e->c.queries[0].stmt, SHOP_STMT_PAYMENT_EVENT);
    assert_int_equal(e->c.queries[0].target, SHOP_TARGET_PRIMARY);
    return e;
}

/* ---- Shop-Signature ---------------------------------------------------------------- */

static void
want_401(const char *body, const char *sig)
{
    th_env *e = hook(body, sig);

    if (e->c.resp.status != 401) {
        print_error("signature \"%s\": expected 401, got %d\n", sig, e->c.resp.status);
    }
    th_problem(e, 401, "unauthorized");
    assert_int_equal(e->c.nqueries, 0);
    assert_non_null(th_header(e, "WWW-Authenticate"));   /* RFC 9110 15.5.2 */
    th_free(e);
}

static void
want_signed(const char *body, const char *sig)
{
    th_env *e = hook(body, sig);

    if (e->c.nqueries != 1) {
        print_error("signature \"%s\": refused (%d) %s\n", sig, e->c.resp.status, th_cstr(e, e->c.resp.body));
        fail();
    }
    th_free(e);
}

static void
test_signature_valid(void **state)
{
    th_env *b = *state;
    const char *body = SUCCEEDED;
    const char *good = sign(b, SECRET, NOW_S, body, 0);
    const char *other = sign(b, "whsec-old-secret", NOW_S, body, 0);

    want_signed(body, NULL);
    want_signed(body, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S, good));
    want_signed(body, th_fmt(b, "v1=%s,t=%lld", good, (long long) NOW_S));
    want_signed(body, th_fmt(b, " t=%lld , v1=%s ", (long long) NOW_S, good));
    /* Upper-case hex is the same digest. */
    want_signed(body, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S, sign(b, SECRET, NOW_S, body, 1)));
    /* Several v1 (secret rotation): one valid is enough, wherever it is. */
    want_signed(body, th_fmt(b, "t=%lld,v1=%s,v1=%s", (long long) NOW_S, other, good));
    want_signed(body, th_fmt(b, "t=%lld,v1=%s,v1=%s", (long long) NOW_S, good, other));
    want_signed(body, th_fmt(b, "t=%lld,v1=zz,v1=%s,v1=%s", (long long) NOW_S, other, good));
    /* Other schemes are ignored. */
    want_signed(body, th_fmt(b, "t=%lld,v0=abc,v1=%s", (long long) NOW_S, good));
    /* Within 300 s either way. */
    want_signed(body, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S - 299, sign(b, SECRET, NOW_S - 299, body, 0)));
    want_signed(body, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S + 299, sign(b, SECRET, NOW_S + 299, body, 0)));
}

static void
test_signature_refused(void **state)
{
    th_env *b = *state;
    const char *body = SUCCEEDED;
    const char *good = sign(b, SECRET, NOW_S, body, 0);

    /* wrong secret */
    want_401(body, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S, sign(b, "whsec-wrong", NOW_S, body, 0)));
    /* stale, future */
    want_401(body, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S - 301, sign(b, SECRET, NOW_S - 301, body, 0)));
    want_401(body, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S + 301, sign(b, SECRET, NOW_S + 301, body, 0)));
    want_401(body, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S - 86400, sign(b, SECRET, NOW_S - 86400, body, 0)));
    want_401(body, th_fmt(b, "t=0,v1=%s", sign(b, SECRET, 0, body, 0)));
    /* a valid mac for another t than the one sent */
    want_401(body, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S - 1, good));
    /* missing */
    want_401(body, "");
    want_401(body, "   ");
    /* malformed */
    want_401(body, th_fmt(b, "v1=%s", good));
    want_401(body, th_fmt(b, "t=%lld", (long long) NOW_S));
    want_401(body, th_fmt(b, "t=%lld,v1=", (long long) NOW_S));
    want_401(body, th_fmt(b, "t=abc,v1=%s", good));
    want_401(body, th_fmt(b, "t=%lldx,v1=%s", (long long) NOW_S, good));
    want_401(body, th_fmt(b, "t=-%lld,v1=%s", (long long) NOW_S, good));
    want_401(body, th_fmt(b, "t=+%lld,v1=%s", (long long) NOW_S, good));
    want_401(body, th_fmt(b, "t=%lld;v1=%s", (long long) NOW_S, good));
    want_401(body, th_fmt(b, "t=%lld v1=%s", (long long) NOW_S, good));
    want_401(body, th_fmt(b, "t=%lld,v1=%.63s", (long long) NOW_S, good));          /* a digit short */
    want_401(body, th_fmt(b, "t=%lld,v1=%s0", (long long) NOW_S, good));            /* a digit more */
    want_401(body, th_fmt(b, "t=%lld,v1=%.62sgg", (long long) NOW_S, good));        /* not hex */
    want_401(body, th_fmt(b, "t=%lld,V1=%s", (long long) NOW_S, good));
    want_401(body, th_fmt(b, "T=%lld,v1=%s", (long long) NOW_S, good));
    want_401(body, th_fmt(b, "t=99999999999999999999,v1=%s", good));
    want_401(body, "garbage");
    want_401(body, th_fmt(b, "sha256=%s", good));
    /* The body is not the one that was signed. */
    want_401(FAILED, th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S, good));
    want_401(SUCCEEDED " ", th_fmt(b, "t=%lld,v1=%s", (long long) NOW_S, good));
}

static void
test_signature_before_body(void **state)
{
    th_env *b = *state;
    th_env *e;

    /* Not JSON and not signed: 401, the body is not looked at. */
    want_401("{not json", "t=1,v1=00");
    /* Signed, not JSON: 400. */
    e = hook("{not json", NULL);
    th_problem(e, 400, "bad-request");
    th_free(e);
    /* Signed, the wrong media type: 415. */
    e = th_new();
    th_request(e, "POST", "/webhooks/payments");
    e->settings.webhook_secret = SECRET;
    e->settings.webhook_secret_len = strlen(SECRET);
    th_body(e, "text/plain", SUCCEEDED);
    e->req.signature = th_s(e, valid_sig(b, SUCCEEDED));
    th_begin(e);
    th_problem(e, 415, "unsupported-media-type");
    th_free(e);
    /* Too large: 413 whatever the signature. */
    e = th_new();
    th_request(e, "POST", "/webhooks/payments");
    e->settings.webhook_secret = SECRET;
    e->settings.webhook_secret_len = strlen(SECRET);
    e->req.content_type = th_s(e, "application/json");
    e->req.has_body = 1;
    e->req.body_too_large = 1;
    th_begin(e);
    th_problem(e, 413, "payload-too-large");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
    /* No secret configured: nothing is accepted. */
    e = th_new();
    th_request(e, "POST", "/webhooks/payments");
    th_body(e, "application/json", SUCCEEDED);
    e->req.signature = th_s(e, valid_sig(b, SUCCEEDED));
    th_begin(e);
    th_problem(e, 401, "unauthorized");
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
    /* The admin token is not a way in. */
    e = th_new();
    th_request(e, "POST", "/webhooks/payments");
    e->settings.webhook_secret = SECRET;
    e->settings.webhook_secret_len = strlen(SECRET);
    th_admin(e);
    th_body(e, "application/json", SUCCEEDED);
    th_begin(e);
    th_problem(e, 401, "unauthorized");
    th_free(e);
}

/* ---- the three event shapes ---------------------------------------------------------------- */

static void
test_payment_succeeded(void **state)
{
    (void) state;
    th_env *e = want_planned(SUCCEEDED);

    assert_int_equal(e->c.queries[0].nparams, 8);
    assert_param(e, 0, 0, "evt_1");
    assert_int_equal(strlen(th_param(e, 0, 1)), 64);
    assert_param(e, 0, 2, UUID);
    assert_param(e, 0, 3, "paid");
    assert_param(e, 0, 4, "{pending}");
    assert_param(e, 0, 5, "{}");
    assert_param(e, 0, 6, "3998");
    assert_param(e, 0, 7, "EUR");
    th_free(e);
}

static void
test_payment_failed(void **state)
{
    (void) state;
    th_env *e = want_planned(FAILED);

    assert_param(e, 0, 0, "evt_2");
    assert_int_equal(strlen(th_param(e, 0, 1)), 64);
    assert_param(e, 0, 2, UUID);
    assert_param(e, 0, 3, "cancelled");
    assert_param(e, 0, 4, "{pending}");
    assert_param(e, 0, 5, "{pending}");     /* cancelling returns the stock */
    assert_param_null(e, 0, 6);             /* no amount, no currency */
    assert_param_null(e, 0, 7);
    th_free(e);
}

static void
test_refund_created(void **state)
{
    (void) state;
    th_env *e = want_planned(REFUND);

    assert_param(e, 0, 0, "evt_3");
    assert_param(e, 0, 2, UUID);
    assert_param(e, 0, 3, "refunded");
    assert_param(e, 0, 4, "{paid,packed,delivered}");
    assert_param(e, 0, 5, "{paid,packed}");  /* not after delivery */
    assert_param(e, 0, 6, "3998");
    assert_param(e, 0, 7, "EUR");
    th_free(e);

    /* Upper-case order ids are the same order; amount 0 is an amount. */
    e = want_planned("{\"id\":\"evt_4\",\"type\":\"refund.created\","
                     "\"order_id\":\"0B5E2C9A-3F4D-4E6B-9A7C-1D2E3F4A5B6C\",\"amount_cents\":0,\"currency\":\"USD\"}");
    assert_param(e, 0, 2, UUID);
    assert_param(e, 0, 6, "0");
    assert_param(e, 0, 7, "USD");
    th_free(e);
    e = want_planned("{\"id\":\"evt_5\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\","
                     "\"amount_cents\":1000000000000,\"currency\":\"JPY\"}");
    assert_param(e, 0, 6, "1000000000000");
    th_free(e);
}

static void
want_400(const char *body)
{
    th_env *e = hook(body, NULL);

    if (e->c.resp.status != 400) {
        print_error("expected 400, got %d: %s\n", e->c.resp.status, body);
    }
    struct json_object *p = th_problem(e, 400, "bad-request");
    assert_non_null(strstr(th_jstr(p, "detail"), "type"));
    assert_int_equal(e->c.nqueries, 0);
    th_free(e);
}

static void
test_type(void **state)
{
    (void) state;
    want_400("{\"id\":\"evt_1\",\"type\":\"payment.refunded\",\"order_id\":\"" UUID "\"}");
    want_400("{\"id\":\"evt_1\",\"type\":\"Payment.Succeeded\",\"order_id\":\"" UUID "\","
             "\"amount_cents\":1,\"currency\":\"EUR\"}");
    want_400("{\"id\":\"evt_1\",\"type\":\"payment.succeeded \",\"order_id\":\"" UUID "\","
             "\"amount_cents\":1,\"currency\":\"EUR\"}");
    want_400("{\"id\":\"evt_1\",\"type\":\"\",\"order_id\":\"" UUID "\"}");
    want_400("{\"id\":\"evt_1\",\"order_id\":\"" UUID "\",\"amount_cents\":1,\"currency\":\"EUR\"}");
    want_400("{\"id\":\"evt_1\",\"type\":null,\"order_id\":\"" UUID "\"}");
    want_400("{\"id\":\"evt_1\",\"type\":5,\"order_id\":\"" UUID "\"}");
    want_400("{\"id\":\"evt_1\",\"type\":[\"payment.failed\"],\"order_id\":\"" UUID "\"}");
    want_400("{\"id\":\"evt_1\",\"type\":{\"name\":\"payment.failed\"},\"order_id\":\"" UUID "\"}");
    want_400("{}");
}

/* Regression: a type holding an escaped NUL ("payment.succeeded\u0000…") is
 * no known type: 400, not taken for payment.succeeded. */
static void
test_type_with_nul(void **state)
{
    (void) state;
    want_400("{\"id\":\"evt_1\",\"type\":\"payment.succeeded\\u0000\",\"order_id\":\"" UUID "\","
             "\"amount_cents\":1,\"currency\":\"EUR\"}");
    want_400("{\"id\":\"evt_1\",\"type\":\"payment.failed\\u0000.v2\",\"order_id\":\"" UUID "\","
             "\"reason\":\"x\"}");
}

static void
want_422(const char *body, const char *errors)
{
    th_env *e = hook(body, NULL);

    if (e->c.resp.status != 422) {
        print_error("expected 422, got %d: %s\n", e->c.resp.status, body);
    }
    struct json_object *p = th_problem(e, 422, "validation");
    assert_int_equal(e->c.nqueries, 0);
    th_assert_errors(e, p, errors);
    th_free(e);
}

#define REQ(f) "{\"field\":\"" f "\",\"message\":\"is required\"}"
#define UNK(f) "{\"field\":\"" f "\",\"message\":\"unknown field\"}"

static void
test_fields_per_type(void **state)
{
    (void) state;
    /* payment.succeeded */
    want_422("{\"id\":\"e\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\",\"currency\":\"EUR\"}",
             "[" REQ("amount_cents") "]");
    want_422("{\"id\":\"e\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\",\"amount_cents\":1}",
             "[" REQ("currency") "]");
    want_422("{\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\",\"amount_cents\":1,\"currency\":\"EUR\"}",
             "[" REQ("id") "]");
    want_422("{\"id\":\"e\",\"type\":\"payment.succeeded\",\"amount_cents\":1,\"currency\":\"EUR\"}",
             "[" REQ("order_id") "]");
    want_422("{\"type\":\"payment.succeeded\"}",
             "[" REQ("id") "," REQ("order_id") "," REQ("amount_cents") "," REQ("currency") "]");
    want_422("{\"id\":\"e\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\",\"amount_cents\":1,"
             "\"currency\":\"EUR\",\"reason\":\"x\"}", "[" UNK("reason") "]");
    want_422("{\"id\":\"e\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\",\"amount_cents\":1,"
             "\"currency\":\"EUR\",\"created\":1}", "[" UNK("created") "]");
    /* payment.failed: no amount, no currency, a reason */
    want_422("{\"id\":\"e\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "\"}", "[" REQ("reason") "]");
    want_422("{\"id\":\"e\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "\",\"reason\":\"x\","
             "\"amount_cents\":1,\"currency\":\"EUR\"}", "[" UNK("amount_cents") "," UNK("currency") "]");
    want_422("{\"id\":\"e\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "\",\"reason\":\"\"}",
             "[{\"field\":\"reason\",\"message\":\"must be 1 to 200 characters\"}]");
    want_422("{\"id\":\"e\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "\",\"reason\":\"a\\nb\"}",
             "[{\"field\":\"reason\",\"message\":\"must not contain control characters\"}]");
    want_422("{\"id\":\"e\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "\",\"reason\":7}",
             "[{\"field\":\"reason\",\"message\":\"must be a string\"}]");
    /* refund.created */
    want_422("{\"id\":\"e\",\"type\":\"refund.created\",\"order_id\":\"" UUID "\"}",
             "[" REQ("amount_cents") "," REQ("currency") "]");
    want_422("{\"id\":\"e\",\"type\":\"refund.created\",\"order_id\":\"" UUID "\",\"amount_cents\":1,"
             "\"currency\":\"EUR\",\"reason\":\"customer asked\"}", "[" UNK("reason") "]");
    /* shapes of values */
    want_422("{\"id\":\"e\",\"type\":\"refund.created\",\"order_id\":\"" UUID "\",\"amount_cents\":-1,"
             "\"currency\":\"EUR\"}", "[{\"field\":\"amount_cents\",\"message\":\"must be >= 0\"}]");
    want_422("{\"id\":\"e\",\"type\":\"refund.created\",\"order_id\":\"" UUID "\",\"amount_cents\":1000000000001,"
             "\"currency\":\"EUR\"}", "[{\"field\":\"amount_cents\",\"message\":\"must be <= 1000000000000\"}]");
    want_422("{\"id\":\"e\",\"type\":\"refund.created\",\"order_id\":\"" UUID "\",\"amount_cents\":39.98,"
             "\"currency\":\"EUR\"}", "[{\"field\":\"amount_cents\",\"message\":\"must be an integer\"}]");
    want_422("{\"id\":\"e\",\"type\":\"refund.created\",\"order_id\":\"" UUID "\",\"amount_cents\":\"3998\","
             "\"currency\":\"EUR\"}", "[{\"field\":\"amount_cents\",\"message\":\"must be an integer\"}]");
    want_422("{\"id\":\"e\",\"type\":\"refund.created\",\"order_id\":\"" UUID "\",\"amount_cents\":1,"
             "\"currency\":\"eur\"}",
             "[{\"field\":\"currency\",\"message\":\"must be an ISO 4217 code of three upper-case letters\"}]");
    want_422("{\"id\":\"e\",\"type\":\"refund.created\",\"order_id\":\"" UUID "\",\"amount_cents\":1,"
             "\"currency\":\"EURO\"}",
             "[{\"field\":\"currency\",\"message\":\"must be an ISO 4217 code of three upper-case letters\"}]");
    want_422("{\"id\":\"evt 1\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "\",\"reason\":\"x\"}",
             "[{\"field\":\"id\",\"message\":\"must be 1-200 printable ASCII characters\"}]");
    want_422("{\"id\":\"\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "\",\"reason\":\"x\"}",
             "[{\"field\":\"id\",\"message\":\"must be 1-200 printable ASCII characters\"}]");
    want_422("{\"id\":42,\"type\":\"payment.failed\",\"order_id\":\"" UUID "\",\"reason\":\"x\"}",
             "[{\"field\":\"id\",\"message\":\"must be a string\"}]");
}

static void
test_order_id(void **state)
{
    th_env *b = *state;
    const char *uuid_err = "[{\"field\":\"order_id\",\"message\":\"must be a UUID\"}]";
    static const char *const bad[] = {
        "not-a-uuid", "42", "0b5e2c9a3f4d4e6b9a7c1d2e3f4a5b6c", "0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6",
        "0b5e2c9g-3f4d-4e6b-9a7c-1d2e3f4a5b6c", "0b5e2c9a-3f4d4-e6b-9a7c-1d2e3f4a5b6c",
        "{0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        want_422(th_fmt(b, "{\"id\":\"e\",\"type\":\"payment.failed\",\"order_id\":\"%s\",\"reason\":\"x\"}", bad[i]),
                 uuid_err);
    }
    want_422("{\"id\":\"e\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "0\",\"reason\":\"x\"}",
             "[{\"field\":\"order_id\",\"message\":\"must be 1 to 36 characters\"}]");
    want_422("{\"id\":\"e\",\"type\":\"payment.failed\",\"order_id\":12,\"reason\":\"x\"}",
             "[{\"field\":\"order_id\",\"message\":\"must be a string\"}]");
}

/* ---- fingerprints -------------------------------------------------------------------------- */

static const char *
fingerprint_of(th_env *b, const char *body)
{
    th_env *e = want_planned(body);
    const char *fp = th_fmt(b, "%s", th_param(e, 0, 1));
    th_free(e);
    return fp;
}

static void
test_fingerprints(void **state)
{
    th_env *b = *state;
    const char *s = fingerprint_of(b, SUCCEEDED);
    const char *f = fingerprint_of(b, FAILED);
    const char *r = fingerprint_of(b, REFUND);

    assert_int_equal(strspn(s, "0123456789abcdef"), 64);
    /* The same content, spelled differently. */
    assert_string_equal(fingerprint_of(b,
        " {\n \"currency\" : \"EUR\" , \"amount_cents\" : 3998 , \"order_id\" : \"" UUID "\" ,"
        " \"type\" : \"payment.succeeded\" , \"id\" : \"evt_1\" }\n"), s);
    assert_string_equal(fingerprint_of(b,
        "{\"id\":\"evt_1\",\"type\":\"payment.succeeded\",\"order_id\":\"0B5E2C9A-3F4D-4E6B-9A7C-1D2E3F4A5B6C\","
        "\"amount_cents\":3998,\"currency\":\"\\u0045UR\"}"), s);
    assert_string_equal(fingerprint_of(b,
        "{\"reason\":\"card\\u005fdeclined\",\"order_id\":\"" UUID "\",\"type\":\"payment.failed\",\"id\":\"evt_2\"}"),
        f);
    assert_string_equal(fingerprint_of(b,
        "{\"type\":\"refund.created\",\"id\":\"evt_3\",\"amount_cents\":3998,\"currency\":\"EUR\","
        "\"order_id\":\"" UUID "\"}"), r);
    /* The event id is its own parameter, not part of the content. */
    assert_string_equal(fingerprint_of(b,
        "{\"id\":\"evt_99\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\","
        "\"amount_cents\":3998,\"currency\":\"EUR\"}"), s);

    /* Different content. */
    const char *different[] = {
        f, r,
        fingerprint_of(b, "{\"id\":\"evt_1\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\","
                          "\"amount_cents\":3999,\"currency\":\"EUR\"}"),
        fingerprint_of(b, "{\"id\":\"evt_1\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\","
                          "\"amount_cents\":3998,\"currency\":\"USD\"}"),
        fingerprint_of(b, "{\"id\":\"evt_1\",\"type\":\"payment.succeeded\","
                          "\"order_id\":\"00000000-0000-4000-8000-000000000001\","
                          "\"amount_cents\":3998,\"currency\":\"EUR\"}"),
        fingerprint_of(b, "{\"id\":\"evt_2\",\"type\":\"payment.failed\",\"order_id\":\"" UUID "\","
                          "\"reason\":\"insufficient_funds\"}"),
        fingerprint_of(b, "{\"id\":\"evt_2\",\"type\":\"payment.failed\","
                          "\"order_id\":\"00000000-0000-4000-8000-000000000001\",\"reason\":\"card_declined\"}"),
        fingerprint_of(b, "{\"id\":\"evt_1\",\"type\":\"payment.succeeded\",\"order_id\":\"" UUID "\","
                          "\"amount_cents\":39,\"currency\":\"EUR\"}"),
    };
    for (size_t i = 0; i < sizeof(different) / sizeof(different[0]); i++) {
        assert_string_not_equal(different[i], s);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(different[i], different[j]) == 0) {
                print_error("different events %zu and %zu share a fingerprint\n", i, j);
                fail();
            }
        }
    }
}

/* ---- rendering ------------------------------------------------------------------------------ */

static th_env *
answer(const char *body, shop_result r)
{
    th_env *e = want_planned(body);

    th_finish(e, &r);
    assert_null(th_header(e, "Location"));
    return e;
}

static void
test_render_applied(void **state)
{
    th_env *b = *state;
    th_order o = th_order_default();

    o.v[SHOP_O_STATUS] = "paid";
    o.v[SHOP_O_VERSION] = "2";
    th_env *e = answer(SUCCEEDED, th_ok(th_orders(b, 1, &o)));
    assert_int_equal(e->c.resp.status, 200);
    assert_str(e, e->c.resp.content_type, "application/json; charset=utf-8");
    assert_body(e,
        "{\"id\":\"" UUID "\",\"status\":\"paid\",\"items\":["
        "{\"sku\":\"TEE-RED-M\",\"quantity\":2,\"unit_price_cents\":1999,\"warehouse\":\"north\"}],"
        "\"total_cents\":3998,\"currency\":\"EUR\",\"customer_email\":\"ann@example.com\",\"version\":2,"
        "\"created_at\":\"2026-11-22T23:34:02.123Z\",\"updated_at\":\"2026-11-23T08:00:00.000Z\"}");
    assert_string_equal(th_header(e, "ETag"), "\"2\"");
    th_free(e);

    /* A provider's retry: the same answer, 200 (not 201). */
    o.v[SHOP_O_REPLAYED] = "t";
    e = answer(SUCCEEDED, th_ok(th_orders(b, 1, &o)));
    assert_int_equal(e->c.resp.status, 200);
    struct json_object *j = th_json(e, e->c.resp.body);
    assert_string_equal(th_jstr(j, "status"), "paid");
    assert_string_equal(th_header(e, "ETag"), "\"2\"");
    th_free(e);

    /* No row: the order is gone. */
    e = answer(FAILED, th_ok(th_orders(b, 0, NULL)));
    th_problem(e, 404, "not-found");
    th_free(e);
}

static void
check_refused(const char *body, const char *from, const char *to, const char *allowed)
{
    shop_result r = th_raised("SHTRN", "the order cannot move");
    r.detail = from;
    th_env *e = answer(body, r);
    struct json_object *p = th_problem(e, 409, "invalid-transition");
    struct json_object *a;

    assert_string_equal(th_jstr(p, "from"), from);
    assert_string_equal(th_jstr(p, "to"), to);
    assert_true(json_object_object_get_ex(p, "allowed", &a));
    assert_string_equal(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN), allowed);
    th_free(e);
}

static void
test_render_invalid_transition(void **state)
{
    (void) state;
    check_refused(SUCCEEDED, "cancelled", "paid", "[]");
    check_refused(SUCCEEDED, "paid", "paid", "[\"packed\",\"refunded\"]");
    check_refused(FAILED, "shipped", "cancelled", "[\"delivered\"]");
    check_refused(REFUND, "pending", "refunded", "[\"paid\",\"cancelled\"]");
    check_refused(REFUND, "refunded", "refunded", "[]");
}

static void
test_render_refusals(void **state)
{
    (void) state;
    shop_result r = th_raised("SH422", "the event does not match the order");
    r.detail = ",\"errors\":[{\"field\":\"amount_cents\",\"message\":\"does not match the order total\"},"
               "{\"field\":\"currency\",\"message\":\"does not match the order currency\"}]";
    th_env *e = answer(SUCCEEDED, r);
    struct json_object *p = th_problem(e, 422, "validation");
    th_assert_errors(e, p, "[{\"field\":\"amount_cents\",\"message\":\"does not match the order total\"},"
                           "{\"field\":\"currency\",\"message\":\"does not match the order currency\"}]");
    th_free(e);

    r = th_raised("SH422", "the event id was already used for a different event");
    r.detail = ",\"errors\":[{\"field\":\"id\",\"message\":\"was already used for a different event\"}]";
    e = answer(REFUND, r);
    p = th_problem(e, 422, "validation");
    th_assert_errors(e, p, "[{\"field\":\"id\",\"message\":\"was already used for a different event\"}]");
    th_free(e);

    e = answer(FAILED, th_raised("SH404", "no such order"));
    p = th_problem(e, 404, "not-found");
    assert_string_equal(th_jstr(p, "detail"), "no such order");
    th_free(e);

    e = answer(FAILED, th_db(SHOP_DB_UNAVAILABLE));
    th_problem(e, 503, "unavailable");
    assert_string_equal(th_header(e, "Retry-After"), "1");
    th_free(e);
    e = answer(FAILED, th_db(SHOP_DB_RETRY));
    th_problem(e, 503, "unavailable");
    th_free(e);
    e = answer(FAILED, th_db(SHOP_DB_ERROR));
    th_problem(e, 500, "internal");
    th_free(e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_signature_valid),
        TH_TEST(test_signature_refused),
        TH_TEST(test_signature_before_body),
        TH_TEST(test_payment_succeeded),
        TH_TEST(test_payment_failed),
        TH_TEST(test_refund_created),
        TH_TEST(test_type),
        TH_TEST(test_type_with_nul),
        TH_TEST(test_fields_per_type),
        TH_TEST(test_order_id),
        TH_TEST(test_fingerprints),
        TH_TEST(test_render_applied),
        TH_TEST(test_render_invalid_transition),
        TH_TEST(test_render_refusals),
    };
    return cmocka_run_group_tests_name("webhook", tests, NULL, NULL);
}
