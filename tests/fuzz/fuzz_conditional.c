/* If-Match and If-None-Match: shop_if_match_versions() (the integer[]
 * literal handed to the write statements) and shop_if_none_match(),
 * against a reference list split (RFC 9110 entity-tag lists: commas inside
 * a quoted tag do not split, elements are trimmed), and through
 * shop_begin() on PATCH/DELETE /products/1 and POST /orders/{id}/transitions.
 *
 * Input: byte 0 picks the route and how the statement fails, the first
 * line is the version the resource has (If-None-Match), the rest the
 * header value. */
#include <stdlib.h>
#include <string.h>

#include "conditional.h"
#include "fuzz_common.h"
#include "uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct { shop_str tags[4096]; int n; int star; } tag_list;

static shop_str
trim(shop_str s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++, s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) {
        s.n--;
    }
    return s;
}

static void
split(shop_str h, tag_list *l)
{
    size_t i = 0, start = 0;
    int quoted = 0;

    l->n = 0;
    l->star = 0;
    h = trim(h);
    if (h.n == 0) {
        return;
    }
    for (i = 0; i <= h.n; i++) {
        if (i < h.n && h.p[i] == '"') {
            quoted = !quoted;
        }
        if (i == h.n || (h.p[i] == ',' && !quoted)) {
            shop_str t = trim((shop_str) { h.p + start, i - start });
            if (t.n == 1 && t.p[0] == '*') {
                l->star = 1;
            }
            if (l->n < 4096) {
                l->tags[l->n++] = t;
            }
            start = i + 1;
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct { const char *method, *path; } routes[] = {
        { "PATCH", "/products/1" }, { "DELETE", "/products/red-tee-m" },
        { "POST", "/orders/0b5e7d1c-3f6a-4c2e-9a51-8d2f0e4b7c19/transitions" },
        { "GET", "/products/1" },
    };
    fz_in in = { data, size };
    unsigned sel = fz_byte(&in);
    fz_mem m;
    tag_list *l = malloc(sizeof(*l));

    fz_mem_init(&m);
    char *version = fz_cstr(&m, fz_line(&in));
    shop_str h = fz_copy(&m, fz_rest(&in));
    split(h, l);

    /* If-Match: NULL exactly when absent or "*" is an element; else "{...}"
     * of the versions named as strong "N" tags (positive, int4). */
    const char *v = shop_if_match_versions(&m.arena, h);
    FZ_ASSERT((v == NULL) == (l->n == 0 || l->star), "If-Match NULL %d, elements %d, star %d", v == NULL,
              l->n, l->star);
    if (v != NULL) {
        size_t vn = strlen(v);
        FZ_ASSERT(vn >= 2 && v[0] == '{' && v[vn - 1] == '}', "not an array literal: %s", v);
        int count = 0;
        for (int i = 0; i < l->n; i++) {
            shop_str t = l->tags[i];
            if (t.n >= 3 && t.p[0] == '"' && t.p[t.n - 1] == '"') {
                int64_t id = shop_parse_id((shop_str) { t.p + 1, t.n - 2 });
                count += id > 0 && id <= 2147483647;
            }
        }
        int commas = 0;
        for (size_t i = 1; i + 1 < vn; i++) {
            FZ_ASSERT((v[i] >= '0' && v[i] <= '9') || v[i] == ',', "bad character in %s", v);
            commas += v[i] == ',';
        }
        FZ_ASSERT(count == (vn == 2 ? 0 : commas + 1), "%d versions named, literal %s", count, v);
    }

    /* If-None-Match: 1 exactly when "*" or an element is "V" or W/"V". */
    int want = l->star;
    size_t vl = strlen(version);
    for (int i = 0; i < l->n && !want; i++) {
        shop_str t = l->tags[i];
        if (t.n >= 2 && t.p[0] == 'W' && t.p[1] == '/') {
            t.p += 2, t.n -= 2;
        }
        want = t.n == vl + 2 && t.p[0] == '"' && t.p[t.n - 1] == '"' && memcmp(t.p + 1, version, vl) == 0;
    }
    int got = shop_if_none_match(h, version);
    FZ_ASSERT(got == want, "If-None-Match %d, reference %d", got, want);

    /* Through the request path. */
    shop_settings s;
    shop_request req;
    unsigned r = sel % 4;
    fz_settings(&s);
    fz_request(&req, &m, routes[r].method, shop_cstr(routes[r].path), SHOP_STR(""));
    req.authorization = fz_copy(&m, SHOP_STR("Bearer " FZ_TOKEN));
    req.if_match = h;
    req.if_none_match = h;
    if (r != 1 && r != 3) {
        const char *body = r == 0 ? "{\"name\":\"x\"}" : "{\"to\":\"paid\"}";
        req.content_type = fz_copy(&m, SHOP_STR("application/json"));
        req.has_body = 1;
        shop_str b = fz_copy(&m, shop_cstr(body));
        req.body = b.p;
        req.body_len = b.n;
    }
    fz_run(&m.arena, &s, &req, shop_cstr(routes[r].method), sel >> 2);
    free(l);
    fz_mem_free(&m);
    return 0;
}
