#include "params.h"

#include <string.h>

#include <openssl/sha.h>

const char *
shop_pg_text_array(shop_arena *a, const char *const *items, int n)
{
    shop_buf b;

    shop_buf_init(&b, a, 64);
    shop_buf_addc(&b, '{');
    for (int i = 0; i < n; i++) {
        if (i) {
            shop_buf_addc(&b, ',');
        }
        shop_buf_addc(&b, '"');
        for (const char *p = items[i]; *p != '\0'; p++) {
            if (*p == '"' || *p == '\\') {
                shop_buf_addc(&b, '\\');
            }
            shop_buf_addc(&b, *p);
        }
        shop_buf_addc(&b, '"');
    }
    shop_buf_addc(&b, '}');
    return shop_buf_str(&b).p;
}

const char *
shop_pg_int_array(shop_arena *a, const int64_t *items, int n)
{
    shop_buf b;

    shop_buf_init(&b, a, 64);
    shop_buf_addc(&b, '{');
    for (int i = 0; i < n; i++) {
        if (i) {
            shop_buf_addc(&b, ',');
        }
        shop_buf_add_int(&b, items[i]);
    }
    shop_buf_addc(&b, '}');
    return shop_buf_str(&b).p;
}

int
shop_uuid_parse(shop_arena *a, shop_str s, const char **out)
{
    char *u;

    if (s.n != 36) {
        return 0;
    }
    u = shop_alloc(a, 37);
    if (u == NULL) {
        return 0;
    }
    for (size_t i = 0; i < 36; i++) {
        char ch = s.p[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') {
                return 0;
            }
        } else if (ch >= 'A' && ch <= 'F') {
            ch = (char) (ch - 'A' + 'a');
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return 0;
        }
        u[i] = ch;
    }
    u[36] = '\0';
    *out = u;
    return 1;
}

const char *
shop_sha256_hex(shop_arena *a, const char *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[SHA256_DIGEST_LENGTH];
    char *out = shop_alloc(a, 2 * sizeof(d) + 1);

    if (out == NULL) {
        return NULL;
    }
    SHA256((const unsigned char *) data, n, d);
    for (size_t i = 0; i < sizeof(d); i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * sizeof(d)] = '\0';
    return out;
}

int64_t
shop_parse_int(const char *s)
{
    int neg = *s == '-';
    int64_t v = 0;

    for (s += neg; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (*s - '0');
    }
    return neg ? -v : v;
}
