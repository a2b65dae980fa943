/* Keyset cursors: base64url without padding of "<kind>:<key>", one spelling
 * per cursor, of one kind only. */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

#include "cursor.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
roundtrip(th_env *e, char kind, shop_str key)
{
    shop_str cur = shop_cursor_encode(&e->core.arena, kind, key);
    shop_str back = SHOP_NULL_STR;

    assert_true(cur.n > 0);
    for (size_t i = 0; i < cur.n; i++) {
        assert_non_null(memchr(b64url, cur.p[i], sizeof(b64url) - 1));   /* URL-safe, no '=' */
    }
    assert_int_equal(cur.n % 4 == 1, 0);
    if (shop_cursor_decode(&e->core.arena, kind, cur, &back) != 0) {
        print_error("cursor %s of key %s does not decode\n", th_cstr(e, cur), th_cstr(e, key));
        fail();
    }
    assert_int_equal(back.n, key.n);
    assert_memory_equal(back.p, key.p, key.n);
    assert_int_equal(back.p[back.n], '\0');
    /* Of another kind: refused. */
    for (const char *k = "opwsx"; *k; k++) {
        if (*k != kind) {
            assert_int_not_equal(shop_cursor_decode(&e->core.arena, *k, cur, &back), 0);
        }
    }
}

static void
test_known_spellings(void **state)
{
    th_env *e = *state;
    shop_str key;

    assert_str(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("2")), "cDoy");
    assert_str(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("42")), "cDo0Mg");
    assert_str(e, shop_cursor_encode(&e->core.arena, 'p', SHOP_STR("123")), "cDoxMjM");
    assert_int_equal(shop_cursor_decode(&e->core.arena, 'p', SHOP_STR("cDo0Mg"), &key), 0);
    assert_str(e, key, "42");
}

static void
test_roundtrip_many_ids(void **state)
{
    th_env *e = *state;
    char buf[32];

    for (int64_t id = 1; id < 20000; id += (id < 300 ? 1 : 97)) {
        snprintf(buf, sizeof(buf), "%lld", (long long) id);
        roundtrip(e, 'p', shop_cstr(buf));
    }
    for (int64_t id = 1; id > 0 && id <= INT64_MAX / 7; id *= 7) {
        snprintf(buf, sizeof(buf), "%lld", (long long) id);
        roundtrip(e, 'p', shop_cstr(buf));
    }
    roundtrip(e, 'p', SHOP_STR("9223372036854775807"));
    roundtrip(e, 'o', SHOP_STR("2026-11-22T23:34:02.123Z,0b6b3c1e-7f3a-4c1a-9d2e-3f4a5b6c7d8e"));
    /* Keys of every length mod 3, and any bytes. */
    roundtrip(e, 'p', (shop_str) { "\0\xff\x80", 3 });
    roundtrip(e, 'p', SHOP_STR("a"));
    roundtrip(e, 'p', SHOP_STR("ab"));
    roundtrip(e, 'p', SHOP_STR("abc"));
}

static void
expect_refused(th_env *e, char kind, const char *s)
{
    shop_str key;

    if (shop_cursor_decode(&e->core.arena, kind, shop_cstr(s), &key) == 0) {
        print_error("cursor `%s` accepted as %s\n", s, th_cstr(e, key));
        fail();
    }
}

static void
test_refused(void **state)
{
    th_env *e = *state;

    expect_refused(e, 'p', "");
    expect_refused(e, 'p', "c");
    expect_refused(e, 'p', "cDo");          /* "p:" with no key */
    expect_refused(e, 'p', "cDoyA");        /* length 1 mod 4 */
    expect_refused(e, 'p', "cDoy=");
    expect_refused(e, 'p', "cDo0Mg==");     /* padding is not our spelling */
    expect_refused(e, 'p', "cDo0Mh");       /* non-canonical: stray low bits */
    expect_refused(e, 'p', "cDo0Mj");
    expect_refused(e, 'p', "cDoxMjN");      /* non-canonical in the 3-char tail */
    expect_refused(e, 'p', "cDo0+g");       /* standard base64 alphabet */
    expect_refused(e, 'p', "cDo0/g");
    expect_refused(e, 'p', "cDo0 g");
    expect_refused(e, 'p', "cDo0Mg\n");
    expect_refused(e, 'p', "bzo0Mg");       /* "o:42": another kind */
    expect_refused(e, 'p', "cCo0Mg");       /* "p*42": no colon */
    expect_refused(e, 'p', "NDI");          /* "42" without a kind */

    /* Too long. */
    char lng[260];
    memset(lng, 'A', sizeof(lng) - 1);
    lng[sizeof(lng) - 1] = '\0';
    expect_refused(e, 'p', lng);

    /* NUL inside the given length. */
    shop_str key;
    assert_int_not_equal(shop_cursor_decode(&e->core.arena, 'p', (shop_str) { "cDo0\0g", 6 }, &key), 0);
}

static void
test_encode_limits(void **state)
{
    th_env *e = *state;
    char big[200];

    memset(big, '1', sizeof(big));
    /* 158 bytes of key fit, longer keys give no cursor. */
    shop_str c = shop_cursor_encode(&e->core.arena, 'p', (shop_str) { big, 158 });
    assert_true(c.n > 0);
    roundtrip(e, 'p', (shop_str) { big, 100 });
    c = shop_cursor_encode(&e->core.arena, 'p', (shop_str) { big, 159 });
    assert_int_equal(c.n, 0);
}

/* Regression: every cursor shop_cursor_encode() hands out (keys up to 158
 * bytes) must decode; decode once refused those over 200 characters. */
static void
test_every_encoded_cursor_decodes(void **state)
{
    th_env *e = *state;
    char big[200];

    memset(big, '7', sizeof(big));
    for (size_t n = 1; n <= 158; n++) {
        shop_str c = shop_cursor_encode(&e->core.arena, 'p', (shop_str) { big, n });
        shop_str key;
        if (c.n == 0) {
            continue;
        }
        if (shop_cursor_decode(&e->core.arena, 'p', c, &key) != 0) {
            print_error("a %zu-byte key encodes to a %zu-char cursor that does not decode\n", n, c.n);
            fail();
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_known_spellings),
        TH_TEST(test_roundtrip_many_ids),
        TH_TEST(test_refused),
        TH_TEST(test_encode_limits),
        TH_TEST(test_every_encoded_cursor_decodes),
    };
    return cmocka_run_group_tests_name("cursor", tests, NULL, NULL);
}
