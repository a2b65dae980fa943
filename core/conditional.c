#include "conditional.h"

#include <string.h>

#include "uri.h"

/* Takes the next element off a comma-separated list of entity tags (a W/
 * prefix is kept; commas inside quotes do not split). */
static shop_str
next_tag(shop_str *rest)
{
    shop_str s = *rest;
    size_t i = 0;
    int quoted = 0;

    while (i < s.n && (quoted || s.p[i] != ',')) {
        if (s.p[i] == '"') {
            quoted = !quoted;
        }
        i++;
    }
    shop_str tag = shop_str_trim((shop_str) { s.p, i });
    if (i < s.n) {
        i++;
    }
    rest->p = s.p + i;
    rest->n = s.n - i;
    return tag;
}

/* The version inside `"N"`, or 0. */
static int64_t
tag_version(shop_str tag)
{
    if (tag.n < 3 || tag.p[0] != '"' || tag.p[tag.n - 1] != '"') {
        return 0;
    }
    int64_t v = shop_parse_id((shop_str) { tag.p + 1, tag.n - 2 });
    return v <= 2147483647 ? v : 0;
}

const char *
shop_if_match_versions(shop_arena *a, shop_str h)
{
    shop_buf b;
    int any = 0;

    h = shop_str_trim(h);
    if (h.n == 0) {
        return NULL;
    }
    shop_buf_init(&b, a, 64);
    shop_buf_addc(&b, '{');
    while (h.n) {
        shop_str tag = next_tag(&h);
        if (tag.n == 1 && tag.p[0] == '*') {
            return NULL;
        }
        int64_t v = tag_version(tag);   /* W/ tags never match strongly */
        if (v > 0) {
            if (any++) {
                shop_buf_addc(&b, ',');
            }
            shop_buf_add_int(&b, v);
        }
    }
    shop_buf_addc(&b, '}');
    return shop_buf_str(&b).p;
}

int
shop_if_none_match(shop_str h, const char *version)
{
    size_t vlen = strlen(version);

    h = shop_str_trim(h);
    while (h.n) {
        shop_str tag = next_tag(&h);
        if (tag.n == 1 && tag.p[0] == '*') {
            return 1;
        }
        if (tag.n >= 2 && tag.p[0] == 'W' && tag.p[1] == '/') {
            tag.p += 2;
            tag.n -= 2;
        }
        if (tag.n == vlen + 2 && tag.p[0] == '"' && tag.p[tag.n - 1] == '"'
            && memcmp(tag.p + 1, version, vlen) == 0) {
            return 1;
        }
    }
    return 0;
}
