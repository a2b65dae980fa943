#include "buf.h"

#include <string.h>
#include <strings.h>

void
shop_buf_init(shop_buf *b, shop_arena *a, size_t cap)
{
    b->arena = a;
    b->len = 0;
    b->cap = cap < 64 ? 64 : cap;
    b->p = shop_alloc(a, b->cap);
    if (b->p == NULL) {
        b->cap = 0;
    }
}

static int
shop_buf_reserve(shop_buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap) {
        return 1;
    }
    if (b->p == NULL && b->cap == 0 && b->len == 0 && b->arena->failed) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) {
        cap *= 2;
    }
    char *p = shop_alloc(b->arena, cap);
    if (p == NULL) {
        return 0;
    }
    if (b->len) {
        memcpy(p, b->p, b->len);
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

void
shop_buf_add(shop_buf *b, const char *s, size_t n)
{
    if (n == 0 || !shop_buf_reserve(b, n)) {
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void
shop_buf_adds(shop_buf *b, const char *s)
{
    shop_buf_add(b, s, strlen(s));
}

void
shop_buf_addc(shop_buf *b, char c)
{
    if (shop_buf_reserve(b, 1)) {
        b->p[b->len++] = c;
    }
}

void
shop_buf_add_str(shop_buf *b, shop_str s)
{
    shop_buf_add(b, s.p, s.n);
}

void
shop_buf_add_int(shop_buf *b, int64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;

    do {
        tmp[--i] = (char) ('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        tmp[--i] = '-';
    }
    shop_buf_add(b, tmp + i, sizeof(tmp) - i);
}

void
shop_buf_add_json(shop_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    if (!shop_buf_reserve(b, n + 2)) {
        return;
    }
    shop_buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            continue;
        }
        shop_buf_add(b, s + run, i - run);
        run = i + 1;
        switch (ch) {
        case '"':  shop_buf_add(b, "\\\"", 2); break;
        case '\\': shop_buf_add(b, "\\\\", 2); break;
        case '\n': shop_buf_add(b, "\\n", 2); break;
        case '\r': shop_buf_add(b, "\\r", 2); break;
        case '\t': shop_buf_add(b, "\\t", 2); break;
        default: {
            char u[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
            shop_buf_add(b, u, 6);
        }
        }
    }
    shop_buf_add(b, s + run, n - run);
    shop_buf_addc(b, '"');
}

void
shop_buf_add_jsons(shop_buf *b, const char *s)
{
    shop_buf_add_json(b, s, strlen(s));
}

shop_str
shop_buf_str(shop_buf *b)
{
    if (!shop_buf_reserve(b, 0)) {
        return SHOP_STR("");
    }
    b->p[b->len] = '\0';
    return (shop_str) { b->p, b->len };
}

int
shop_str_eq(shop_str a, const char *lit)
{
    size_t n = strlen(lit);
    return a.n == n && (n == 0 || memcmp(a.p, lit, n) == 0);
}

int
shop_str_eq_nocase(shop_str a, const char *lit)
{
    size_t n = strlen(lit);
    return a.n == n && (n == 0 || strncasecmp(a.p, lit, n) == 0);
}

shop_str
shop_str_trim(shop_str s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) {
        s.n--;
    }
    return s;
}

int
shop_str_split(shop_str *rest, char sep, shop_str *item)
{
    if (rest->p == NULL) {
        return 0;
    }
    const char *at = rest->n ? memchr(rest->p, sep, rest->n) : NULL;
    size_t len = at ? (size_t) (at - rest->p) : rest->n;

    *item = shop_str_trim((shop_str) { rest->p, len });
    if (at != NULL) {
        rest->n -= len + 1;
        rest->p = at + 1;
    } else {
        *rest = SHOP_NULL_STR;
    }
    return 1;
}

shop_str
shop_cstr(const char *s)
{
    return (shop_str) { s, s ? strlen(s) : 0 };
}
