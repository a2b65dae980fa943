#include "cursor.h"

#include <string.h>

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

shop_str
shop_cursor_encode(shop_arena *a, char kind, shop_str key)
{
    size_t n = key.n + 2;
    unsigned char raw[160];
    shop_buf b;

    if (n > sizeof(raw)) {
        return SHOP_STR("");
    }
    raw[0] = (unsigned char) kind;
    raw[1] = ':';
    memcpy(raw + 2, key.p, key.n);
    shop_buf_init(&b, a, (n + 2) / 3 * 4 + 1);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = raw[i] << 16;
        if (i + 1 < n) {
            v |= raw[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= raw[i + 2];
        }
        shop_buf_addc(&b, b64url[v >> 18 & 63]);
        shop_buf_addc(&b, b64url[v >> 12 & 63]);
        if (i + 1 < n) {
            shop_buf_addc(&b, b64url[v >> 6 & 63]);
        }
        if (i + 2 < n) {
            shop_buf_addc(&b, b64url[v & 63]);
        }
    }
    return shop_buf_str(&b);
}

static int
b64val(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int) (p - b64url) : -1;
}

int
shop_cursor_decode(shop_arena *a, char kind, shop_str s, shop_str *key)
{
    unsigned char raw[162];
    size_t n = 0;

    /* The longest cursor shop_cursor_encode() makes: 160 bytes, 214 characters. */
    if (s.n < 4 || s.n > 214 || s.n % 4 == 1) {
        return -1;
    }
    for (size_t i = 0; i < s.n; i += 4) {
        size_t left = s.n - i < 4 ? s.n - i : 4;
        unsigned v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = j < left ? b64val(s.p[i + j]) : 0;
            if (d < 0) {
                return -1;
            }
            v = v << 6 | (unsigned) d;
        }
        /* Bits past the last whole byte must be zero: one cursor, one spelling. */
        if ((left == 2 && (v & 0xffff)) || (left == 3 && (v & 0xff))) {
            return -1;
        }
        raw[n++] = (unsigned char) (v >> 16);
        if (left > 2) {
            raw[n++] = (unsigned char) (v >> 8);
        }
        if (left > 3) {
            raw[n++] = (unsigned char) v;
        }
    }
    if (n < 3 || raw[0] != (unsigned char) kind || raw[1] != ':') {
        return -1;
    }
    char *k = shop_strndup(a, (const char *) raw + 2, n - 2);
    if (k == NULL) {
        return -1;
    }
    *key = (shop_str) { k, n - 2 };
    return 0;
}
