/* The query-string parser: shop_query_param() and shop_pct_decode() against
 * a reference written from their contracts, and the list endpoints that
 * read parameters (GET /products?limit&after&q&category, GET
 * /orders?limit&after&status, GET /events?topics&after) through
 * shop_begin().
 *
 * Input: byte 0 picks the endpoint (or, for 3, the bare parser with the
 * parameter name on the first line); the rest is the raw query string. */
#include <string.h>

#include "fuzz_common.h"
#include "uri.h"
#include "json_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Returns the decoded length, or -1. out has room for s.n bytes. */
static long
ref_decode(shop_str s, int plus, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '%') {
            if (s.n - i < 3 || hexv(s.p[i + 1]) < 0 || hexv(s.p[i + 2]) < 0) {
                return -1;
            }
            c = (char) (hexv(s.p[i + 1]) * 16 + hexv(s.p[i + 2]));
            i += 2;
        } else if (plus && c == '+') {
            c = ' ';
        }
        if (c == '\0') {
            return -1;
        }
        out[n++] = c;
    }
    return shop_utf8_valid(out, n) ? (long) n : -1;
}

static void
check_param(fz_mem *m, shop_str query, const char *name)
{
    shop_str value = SHOP_NULL_STR, first = SHOP_NULL_STR;
    int count = 0;
    size_t i = 0, nlen = strlen(name);

    /* Reference: '&'-separated pairs, the key is up to the first '='. */
    while (query.n && i <= query.n) {
        size_t e = i;
        while (e < query.n && query.p[e] != '&') {
            e++;
        }
        const char *eq = memchr(query.p + i, '=', e - i);
        size_t kl = eq ? (size_t) (eq - (query.p + i)) : e - i;
        if (kl == nlen && memcmp(query.p + i, name, nlen) == 0) {
            if (count++ == 0) {
                first = eq ? (shop_str) { eq + 1, e - (size_t) (eq + 1 - query.p) } : SHOP_STR("");
            }
        }
        i = e + 1;
    }
    char *ref = fz_cstr(m, query);   /* room enough */
    long rn = count ? ref_decode(first, 1, ref) : 0;
    shop_qp want = count == 0 ? SHOP_QP_ABSENT : (rn < 0 || count > 1) ? SHOP_QP_BAD : SHOP_QP_FOUND;

    shop_qp got = shop_query_param(&m->arena, query, name, &value);
    FZ_ASSERT(got == want, "shop_query_param(%s) = %d, reference %d", name, (int) got, (int) want);
    if (got == SHOP_QP_FOUND) {
        FZ_ASSERT(value.n == (size_t) rn && (rn == 0 || memcmp(value.p, ref, (size_t) rn) == 0),
                  "decoded %.*s, reference %.*s", (int) value.n, value.p, (int) rn, ref);
        FZ_ASSERT(memchr(value.p, '\0', value.n) == NULL, "a NUL in a decoded value");
    }

    /* shop_pct_decode on the whole string, without '+' rules. */
    shop_str out;
    long r2 = ref_decode(query, 0, ref);
    int rc = shop_pct_decode(&m->arena, query, 0, &out);
    FZ_ASSERT((rc == 0) == (r2 >= 0), "shop_pct_decode %d, reference %ld", rc, r2);
    if (rc == 0) {
        FZ_ASSERT(out.n == (size_t) r2 && (r2 == 0 || memcmp(out.p, ref, (size_t) r2) == 0),
                  "pct_decode differs from the reference");
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const targets[] = { "/products", "/orders", "/events" };
    static const char *const names[] = { "limit", "after", "q", "category", "status", "topics" };
    fz_in in = { data, size };
    unsigned sel = fz_byte(&in);
    shop_settings s;
    shop_request req;
    fz_mem m;

    fz_mem_init(&m);
    if (sel % 4 == 3) {
        shop_str name = fz_line(&in);
        shop_str query = fz_copy(&m, fz_rest(&in));
        check_param(&m, query, name.n ? fz_cstr(&m, name) : names[(sel >> 2) % 6]);
        fz_mem_free(&m);
        return 0;
    }
    shop_str query = fz_rest(&in);
    fz_settings(&s);
    fz_request(&req, &m, "GET", shop_cstr(targets[sel % 4]), query);
    req.authorization = fz_copy(&m, SHOP_STR("Bearer " FZ_TOKEN));
    if (sel & 4) {
        req.last_event_id = fz_copy(&m, SHOP_STR("41"));
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        check_param(&m, req.query, names[i]);
    }
    fz_run(&m.arena, &s, &req, SHOP_STR("GET"), sel >> 3);
    fz_mem_free(&m);
    return 0;
}
