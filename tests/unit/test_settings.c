/* The configuration table: every row well-formed, every default valid,
 * bad values refused with a message naming the setting; shop_secret_parse. */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

#include "settings.h"

static int64_t
field_int(const shop_settings *s, const shop_setting *d)
{
    return *(const int64_t *) (const void *) ((const char *) s + d->offset);
}

static const char *
field_str(const shop_settings *s, const shop_setting *d)
{
    return *(const char *const *) (const void *) ((const char *) s + d->offset);
}

static int
numeric(const shop_setting *d)
{
    return d->type == SHOP_SET_INT || d->type == SHOP_SET_SIZE || d->type == SHOP_SET_MSEC
           || d->type == SHOP_SET_FLAG;
}

static void
test_table_well_formed(void **state)
{
    (void) state;
    assert_true(shop_setting_count > 0);
    for (size_t i = 0; i < shop_setting_count; i++) {
        const shop_setting *d = &shop_setting_table[i];
        assert_non_null(d->name);
        assert_non_null(d->def);
        assert_non_null(d->help);
        assert_true(strlen(d->help) > 10);
        assert_true(d->scope != 0 && (d->scope & ~SHOP_SET_BOTH) == 0);
        /* fcgi reads environment variables, the module directives. */
        if (d->scope & SHOP_SET_FCGI) {
            assert_non_null(d->env);
            assert_true(strncmp(d->env, "SHOP_", 5) == 0);
        }
        if ((d->scope & SHOP_SET_MODULE) && d->directive != NULL) {
            assert_true(strncmp(d->directive, "shop_", 5) == 0);
        }
        assert_true(d->offset + sizeof(int64_t) <= sizeof(shop_settings));
        if (numeric(d)) {
            assert_true(d->min <= d->max);
        }
        for (size_t j = 0; j < i; j++) {
            const shop_setting *o = &shop_setting_table[j];
            assert_string_not_equal(o->name, d->name);
            assert_int_not_equal(o->offset, d->offset);
            if (o->env && d->env) {
                assert_string_not_equal(o->env, d->env);
            }
            if (o->directive && d->directive) {
                assert_string_not_equal(o->directive, d->directive);
            }
        }
    }
}

static void
test_lookups(void **state)
{
    (void) state;
    for (size_t i = 0; i < shop_setting_count; i++) {
        const shop_setting *d = &shop_setting_table[i];
        assert_ptr_equal(shop_setting_by_name(d->name), d);
        if (d->env) {
            assert_ptr_equal(shop_setting_by_env(d->env), d);
        }
        if (d->directive) {
            assert_ptr_equal(shop_setting_by_directive(d->directive, strlen(d->directive)), d);
        }
    }
    assert_null(shop_setting_by_name("nope"));
    assert_null(shop_setting_by_name(""));
    assert_null(shop_setting_by_env("SHOP_NOPE"));
    assert_null(shop_setting_by_env("pool_size"));
    assert_null(shop_setting_by_directive("shop_nope", 9));
    assert_null(shop_setting_by_directive("shop_pool_siz", 13));
    /* The directive is given by length, as nginx's ngx_str_t. */
    assert_ptr_equal(shop_setting_by_directive("shop_pool_size;", 14), shop_setting_by_name("pool_size"));
}

static void
test_every_default_parses(void **state)
{
    th_env *e = *state;
    shop_settings s, defaults;
    char err[256];

    shop_settings_defaults(&defaults);
    for (size_t i = 0; i < shop_setting_count; i++) {
        const shop_setting *d = &shop_setting_table[i];
        memset(&s, 0, sizeof(s));
        err[0] = '\0';
        if (shop_setting_set(&s, d, d->def, strlen(d->def), err, sizeof(err)) != 0) {
            print_error("default of %s (\"%s\") refused: %s\n", d->name, d->def, err);
            fail();
        }
        if (numeric(d)) {
            assert_in_range(field_int(&s, d), d->min, d->max);
            assert_true(field_int(&s, d) == field_int(&defaults, d));
        } else {
            assert_string_equal(field_str(&defaults, d), d->def);
        }
    }
    (void) e;
}

static void
test_default_values(void **state)
{
    shop_settings s;
    (void) state;

    shop_settings_defaults(&s);
    assert_int_equal(s.body_limit, 1024 * 1024);               /* API.md: default 1 MiB */
    assert_int_equal(s.stock_deadline_ms, 250);                /* API.md: default 250 ms */
    assert_true(s.event_retention_ms == 24LL * 3600 * 1000);   /* API.md: default 24 h */
    assert_int_equal(s.statement_timeout_ms, 5000);
    assert_int_equal(s.pool_queue_timeout_ms, 1000);
    assert_int_equal(s.pool_size, 8);
    assert_null(s.admin_token);
    assert_null(s.webhook_secret);
}

static int
set(shop_settings *s, const char *name, const char *value, char *err, size_t errlen)
{
    const shop_setting *d = shop_setting_by_name(name);

    assert_non_null(d);
    err[0] = '\0';
    return shop_setting_set(s, d, value, strlen(value), err, errlen);
}

static void
want_value(const char *name, const char *value, int64_t want)
{
    shop_settings s;
    char err[256];

    shop_settings_defaults(&s);
    if (set(&s, name, value, err, sizeof(err)) != 0) {
        print_error("%s=\"%s\" refused: %s\n", name, value, err);
        fail();
    }
    assert_true(field_int(&s, shop_setting_by_name(name)) == want);
}

static void
want_refused(const char *name, const char *value)
{
    shop_settings s, before;
    char err[256], prefix[64];

    shop_settings_defaults(&s);
    before = s;
    if (set(&s, name, value, err, sizeof(err)) == 0) {
        print_error("%s=\"%s\" accepted\n", name, value);
        fail();
    }
    /* The message names the setting... */
    snprintf(prefix, sizeof(prefix), "%s:", name);
    if (strncmp(err, prefix, strlen(prefix)) != 0) {
        print_error("%s=\"%s\": message \"%s\" does not name the setting\n", name, value, err);
        fail();
    }
    /* ...and the settings are unchanged. */
    assert_memory_equal(&s, &before, sizeof(s));
}

static void
test_sizes(void **state)
{
    (void) state;
    want_value("body_limit", "1024", 1024);
    want_value("body_limit", "64k", 65536);
    want_value("body_limit", "64K", 65536);
    want_value("body_limit", "2m", 2 * 1024 * 1024);
    want_value("body_limit", "2M", 2 * 1024 * 1024);
    want_value("body_limit", "64m", 64 * 1024 * 1024);      /* the maximum */
    want_refused("body_limit", "1023");                     /* below the minimum */
    want_refused("body_limit", "65m");                      /* above the maximum */
    want_refused("body_limit", "1g");
    want_refused("body_limit", "1kb");
    want_refused("body_limit", "k");
    want_refused("body_limit", "1 k");
    want_refused("body_limit", " 1k");
    want_refused("body_limit", "1.5m");
    want_refused("body_limit", "-1");
    want_refused("body_limit", "");
    want_refused("body_limit", "99999999999999999999");
    want_refused("body_limit", "9999999999999999m");        /* overflows when scaled */
}

static void
test_durations(void **state)
{
    (void) state;
    want_value("statement_timeout", "10", 10);              /* the minimum */
    want_value("statement_timeout", "250ms", 250);
    want_value("statement_timeout", "2s", 2000);
    want_value("statement_timeout", "1m", 60000);
    want_value("statement_timeout", "1h", 3600000);         /* the maximum */
    want_refused("statement_timeout", "9");
    want_refused("statement_timeout", "9ms");
    want_refused("statement_timeout", "2h");
    want_refused("statement_timeout", "3600001");
    want_refused("statement_timeout", "1.5s");
    want_refused("statement_timeout", "1S");
    want_refused("statement_timeout", "1sec");
    want_refused("statement_timeout", "1d");
    want_refused("statement_timeout", "s");
    want_refused("statement_timeout", "");
    want_refused("statement_timeout", "-5s");
    want_refused("statement_timeout", "99999999999999999h");
    want_value("stock_deadline", "1", 1);
    want_value("stock_deadline", "60s", 60000);
    want_refused("stock_deadline", "0");
    want_refused("stock_deadline", "61s");
    want_value("event_retention", "1m", 60000);
    want_refused("event_retention", "59s");
    want_value("event_retention", "8784h", 8784LL * 3600 * 1000);   /* 366 days */
    want_refused("event_retention", "8785h");
}

static void
test_integers(void **state)
{
    (void) state;
    want_value("pool_size", "1", 1);
    want_value("pool_size", "512", 512);
    want_refused("pool_size", "0");
    want_refused("pool_size", "513");
    want_refused("pool_size", "abc");
    want_refused("pool_size", "8k");                          /* plain integers take no unit */
    want_refused("pool_size", "8s");
    want_refused("pool_size", "+8");
    want_refused("pool_size", "0x8");
    want_refused("pool_size", "8 ");
    want_refused("pool_size", "");
    want_refused("pool_size", "9223372036854775808");
    want_value("pool_queue", "0", 0);
    want_refused("threads", "0");
    want_value("threads", "1024", 1024);
    want_refused("threads", "1025");
}

/* Flags: on/off and the usual spellings, any case; nothing else. */
static void
test_flags(void **state)
{
    (void) state;
    want_value("metrics_public", "on", 1);
    want_value("metrics_public", "ON", 1);
    want_value("metrics_public", "yes", 1);
    want_value("metrics_public", "true", 1);
    want_value("metrics_public", "1", 1);
    want_value("metrics_public", "off", 0);
    want_value("metrics_public", "No", 0);
    want_value("metrics_public", "false", 0);
    want_value("metrics_public", "0", 0);
    want_refused("metrics_public", "2");
    want_refused("metrics_public", "onn");
    want_refused("metrics_public", "o");
    want_refused("metrics_public", "");
}

/* Every numeric setting: its bounds are accepted, one past them refused. */
static void
test_every_bound(void **state)
{
    char v[32];
    (void) state;

    for (size_t i = 0; i < shop_setting_count; i++) {
        const shop_setting *d = &shop_setting_table[i];
        if (!numeric(d)) {
            continue;
        }
        snprintf(v, sizeof(v), "%lld", (long long) d->min);
        want_value(d->name, v, d->min);
        snprintf(v, sizeof(v), "%lld", (long long) d->max);
        want_value(d->name, v, d->max);
        snprintf(v, sizeof(v), "%lld", (long long) d->max + 1);
        want_refused(d->name, v);
        if (d->min > 0) {
            snprintf(v, sizeof(v), "%lld", (long long) d->min - 1);
            want_refused(d->name, v);
        }
        want_refused(d->name, "x");
        want_refused(d->name, "");
    }
}

static void
test_strings_and_paths(void **state)
{
    shop_settings s;
    char err[256];
    (void) state;

    shop_settings_defaults(&s);
    assert_int_equal(set(&s, "database", "postgresql:///shop?host=/run/postgresql", err, sizeof(err)), 0);
    assert_string_equal(s.database, "postgresql:///shop?host=/run/postgresql");
    assert_int_equal(set(&s, "admin_token_file", "/etc/shop/admin.token", err, sizeof(err)), 0);
    assert_string_equal(s.admin_token_file, "/etc/shop/admin.token");
    assert_int_equal(set(&s, "admin_token_file", "", err, sizeof(err)), 0);
    want_refused("admin_token_file", "admin.token");          /* not absolute */
    want_refused("admin_token_file", "./admin.token");
    want_refused("webhook_secret_file", "secret");

    /* An embedded NUL is refused. */
    const shop_setting *d = shop_setting_by_name("database");
    shop_settings before = s;
    assert_int_not_equal(shop_setting_set(&s, d, "a\0b", 3, err, sizeof(err)), 0);
    assert_true(strncmp(err, "database:", 9) == 0);
    assert_memory_equal(&s, &before, sizeof(s));
}

static void
test_settings_check(void **state)
{
    shop_settings s;
    char err[256];
    (void) state;

    shop_settings_defaults(&s);
    err[0] = '\0';
    assert_int_not_equal(shop_settings_check(&s, SHOP_SET_FCGI, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "SHOP_DATABASE_URL"));
    assert_int_not_equal(shop_settings_check(&s, SHOP_SET_MODULE, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "shop_database"));

    s.database = "dbname=shop";
    assert_int_equal(shop_settings_check(&s, SHOP_SET_FCGI, err, sizeof(err)), 0);
    s.base_path = "/api";
    assert_int_equal(shop_settings_check(&s, SHOP_SET_FCGI, err, sizeof(err)), 0);
    s.base_path = "";
    assert_int_equal(shop_settings_check(&s, SHOP_SET_FCGI, err, sizeof(err)), 0);
    s.base_path = "/api/";
    assert_int_not_equal(shop_settings_check(&s, SHOP_SET_FCGI, err, sizeof(err)), 0);
    assert_true(strncmp(err, "base_path:", 10) == 0);
    s.base_path = "api";
    assert_int_not_equal(shop_settings_check(&s, SHOP_SET_FCGI, err, sizeof(err)), 0);
    s.base_path = "/";
    assert_int_not_equal(shop_settings_check(&s, SHOP_SET_FCGI, err, sizeof(err)), 0);
}

static void
expect_secret(const char *data, size_t len, size_t start, size_t n)
{
    size_t s = 99, k = 99;
    char err[128] = "";

    if (shop_secret_parse(data, len, &s, &k, err, sizeof(err)) != 0) {
        print_error("secret refused: %s\n", err);
        fail();
    }
    assert_int_equal(s, start);
    assert_int_equal(k, n);
}

static void
expect_bad_secret(const char *data, size_t len)
{
    size_t s, k;
    char err[128] = "";

    assert_int_not_equal(shop_secret_parse(data, len, &s, &k, err, sizeof(err)), 0);
    assert_true(strlen(err) > 0);
}

#define S(lit) (lit), (sizeof(lit) - 1)

static void
test_secret_parse(void **state)
{
    (void) state;
    expect_secret(S("0123456789abcdef"), 0, 16);
    expect_secret(S("0123456789abcdef\n"), 0, 16);
    expect_secret(S("  0123456789abcdef\r\n"), 2, 16);
    expect_secret(S("\t\n0123456789abcdef0123456789abcdef\n\n"), 2, 32);
    expect_secret(S("!~#$%&'()*+,-./:;<=>?@[]^_`{|}"), 0, 30);
    expect_bad_secret("", 0);
    expect_bad_secret(S("\n"));
    expect_bad_secret(S("0123456789abcde"));          /* 15 */
    expect_bad_secret(S("  0123456789abcde  \n"));
    expect_bad_secret(S("01234567 89abcdef"));        /* a space inside */
    expect_bad_secret(S("01234567\t89abcdef"));
    expect_bad_secret(S("0123456789abcdef\nsecond"));  /* two lines */
    expect_bad_secret(S("0123456789abcdef\x7f"));
    expect_bad_secret(S("0123456789abcd\xc3\xa9"));    /* not ASCII */
    expect_bad_secret(S("0123456789abcdef\0"));        /* NUL inside the given length */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_table_well_formed),
        TH_TEST(test_lookups),
        TH_TEST(test_every_default_parses),
        TH_TEST(test_default_values),
        TH_TEST(test_sizes),
        TH_TEST(test_durations),
        TH_TEST(test_integers),
        TH_TEST(test_every_bound),
        TH_TEST(test_flags),
        TH_TEST(test_strings_and_paths),
        TH_TEST(test_settings_check),
        TH_TEST(test_secret_parse),
    };
    return cmocka_run_group_tests_name("settings", tests, NULL, NULL);
}
