#include "uri.h"

#include <string.h>

#include "json_strict.h"

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int
shop_pct_decode(shop_arena *a, shop_str s, int plus_space, shop_str *out)
{
    if (memchr(s.p, '%', s.n) == NULL && (!plus_space || memchr(s.p, '+', s.n) == NULL)) {
        if (s.n && memchr(s.p, '\0', s.n) != NULL) {
            return -1;
        }
        if (!shop_utf8_valid(s.p, s.n)) {
            return -1;
        }
        *out = s;
        return 0;
    }
    char *d = shop_alloc(a, s.n + 1);
    size_t n = 0;
    if (d == NULL) {
        return -1;
    }
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= s.n) {
                return -1;
            }
            hi = hexval(s.p[i + 1]);
            lo = hexval(s.p[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            c = (char) (hi << 4 | lo);
            if (c == '\0') {
                return -1;
            }
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        } else if (c == '\0') {
            return -1;
        }
        d[n++] = c;
    }
    d[n] = '\0';
    if (!shop_utf8_valid(d, n)) {
        return -1;
    }
    *out = (shop_str) { d, n };
    return 0;
}

shop_qp
shop_query_param(shop_arena *a, shop_str query, const char *name, shop_str *value)
{
    size_t nlen = strlen(name);
    shop_qp found = SHOP_QP_ABSENT;
    size_t i = 0;

    while (i <= query.n && query.n) {
        size_t end = i;
        while (end < query.n && query.p[end] != '&') {
            end++;
        }
        shop_str pair = { query.p + i, end - i };
        const char *eq = memchr(pair.p, '=', pair.n);
        shop_str key = { pair.p, eq ? (size_t) (eq - pair.p) : pair.n };
        if (key.n == nlen && memcmp(key.p, name, nlen) == 0) {
            if (found == SHOP_QP_FOUND) {
                return SHOP_QP_BAD;
            }
            shop_str raw = eq ? (shop_str) { eq + 1, pair.n - key.n - 1 } : SHOP_STR("");
            if (shop_pct_decode(a, raw, 1, value) != 0) {
                return SHOP_QP_BAD;
            }
            found = SHOP_QP_FOUND;
        }
        i = end + 1;
    }
    return found;
}

int64_t
shop_parse_id(shop_str s)
{
    int64_t v = 0;

    if (s.n == 0 || s.n > 19 || s.p[0] == '0') {
        return 0;
    }
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return 0;
        }
        int d = s.p[i] - '0';
        if (v > (INT64_MAX - d) / 10) {
            return 0;
        }
        v = v * 10 + d;
    }
    return v;
}
