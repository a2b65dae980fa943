/* The configuration parser: shop_setting_set() for every row of the table
 * with arbitrary values, checked against a reference reading of the row's
 * type (integer; size with k/m; duration with ms/s/m/h) and limits; also
 * the lookups by name, environment variable and directive,
 * shop_settings_check() and shop_secret_parse().
 *
 * Numeric values are handed over in buffers of exactly their length.
 * String and path values are kept by the settings as C strings, and
 * shop_setting_set() checks the NUL at value[len], so they come
 * NUL-terminated, as both front-ends have them.
 *
 * Input: byte 0 picks the row, byte 1 the error buffer's size, the rest is
 * the value. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
ref_value(const shop_setting *d, shop_str v, int64_t *out)
{
    size_t i = 0;
    uint64_t n = 0;

    if (d->type == SHOP_SET_FLAG) {
        static const char *const words[] = { "off", "on", "0", "1", "false", "true", "no", "yes" };
        for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
            if (shop_str_eq_nocase(v, words[w])) {
                *out = (int64_t) (w % 2);
                return 0;
            }
        }
        return -1;
    }
    while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9') {
        if (n > (uint64_t) INT64_MAX / 10) {
            return -1;
        }
        n = n * 10 + (uint64_t) (v.p[i] - '0');
        i++;
    }
    if (i == 0 || n > (uint64_t) INT64_MAX) {
        return -1;
    }
    shop_str u = { v.p + i, v.n - i };
    uint64_t scale = 0;
    switch (d->type) {
    case SHOP_SET_INT:
        scale = u.n == 0 ? 1 : 0;
        break;
    case SHOP_SET_SIZE:
        scale = u.n == 0 ? 1 : shop_str_eq_nocase(u, "k") ? 1024 : shop_str_eq_nocase(u, "m") ? 1048576 : 0;
        break;
    case SHOP_SET_MSEC:
        scale = u.n == 0 || shop_str_eq(u, "ms") ? 1 : shop_str_eq(u, "s") ? 1000
              : shop_str_eq(u, "m") ? 60000 : shop_str_eq(u, "h") ? 3600000 : 0;
        break;
    case SHOP_SET_STRING:
    case SHOP_SET_PATH:
    case SHOP_SET_FLAG:
        return -1;
    }
    if (scale == 0 || n > (uint64_t) INT64_MAX / scale) {
        return -1;
    }
    int64_t r = (int64_t) (n * scale);
    if (r < d->min || r > d->max) {
        return -1;
    }
    *out = r;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    const shop_setting *d = &shop_setting_table[fz_byte(&in) % shop_setting_count];
    size_t errlen = 1 + fz_byte(&in) % 160;
    shop_str raw = fz_rest(&in);
    shop_settings s;
    fz_mem m;
    char *err = malloc(errlen);

    fz_mem_init(&m);
    fz_settings(&s);
    memset(err, 'X', errlen);

    int numeric = d->type != SHOP_SET_STRING && d->type != SHOP_SET_PATH;
    const char *value = numeric ? fz_copy(&m, raw).p : fz_cstr(&m, raw);
    if (value == NULL) {
        value = fz_cstr(&m, SHOP_STR(""));
    }
    int rc = shop_setting_set(&s, d, value, raw.n, err, errlen);
    const char *field = (const char *) &s + d->offset;

    if (numeric) {
        int64_t want = 0;
        int rr = ref_value(d, raw, &want);
        FZ_ASSERT(rc == rr, "%s = \"%.*s\": %d, reference %d", d->name, (int) raw.n, raw.p, rc, rr);
        if (rc == 0) {
            FZ_ASSERT(*(const int64_t *) field == want, "%s: %lld, reference %lld", d->name,
                      (long long) *(const int64_t *) field, (long long) want);
        }
    } else if (rc == 0) {
        FZ_ASSERT(*(const char *const *) field == value, "%s: the string was not kept", d->name);
        FZ_ASSERT(strlen(value) == raw.n, "%s: a value with a NUL inside accepted", d->name);
        FZ_ASSERT(d->type != SHOP_SET_PATH || raw.n == 0 || value[0] == '/', "%s: relative path", d->name);
    }
    if (rc != 0) {
        FZ_ASSERT(memchr(err, '\0', errlen) != NULL, "the error message is not terminated");
        FZ_ASSERT(errlen < 2 || err[0] != '\0', "an empty error message");
    }

    /* Lookups with the value as a name. */
    char *name = fz_cstr(&m, raw);
    const shop_setting *byname = shop_setting_by_name(name);
    FZ_ASSERT(byname == NULL || strcmp(byname->name, name) == 0, "by name");
    const shop_setting *byenv = shop_setting_by_env(name);
    FZ_ASSERT(byenv == NULL || strcmp(byenv->env, name) == 0, "by env");
    const shop_setting *bydir = shop_setting_by_directive(fz_copy(&m, raw).p, raw.n);
    FZ_ASSERT(bydir == NULL || (strlen(bydir->directive) == raw.n
                                && memcmp(bydir->directive, raw.p, raw.n) == 0), "by directive");

    char e2[96];
    (void) shop_settings_check(&s, SHOP_SET_FCGI, e2, sizeof(e2));
    (void) shop_settings_check(&s, SHOP_SET_MODULE, e2, sizeof(e2));

    size_t start = 0, n = 0;
    shop_str secret = fz_copy(&m, raw);
    if (shop_secret_parse(secret.p ? secret.p : "", raw.n, &start, &n, e2, sizeof(e2)) == 0) {
        FZ_ASSERT(n >= 16 && start + n <= raw.n, "secret span %zu+%zu of %zu", start, n, raw.n);
        for (size_t i = start; i < start + n; i++) {
            FZ_ASSERT(raw.p[i] > 0x20 && raw.p[i] < 0x7f, "secret byte %#x", (unsigned char) raw.p[i]);
        }
    }
    free(err);
    fz_mem_free(&m);
    return 0;
}
