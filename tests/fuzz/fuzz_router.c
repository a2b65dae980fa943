/* The router and path parameters: shop_begin() with an arbitrary method and
 * request target (path, '?', query), so routing, percent-decoding of path
 * parameters, 404/405/OPTIONS and every handler's parameter checks run.
 * shop_route_find() is checked against a reference matcher written from
 * the template syntax ("/a/{x}": '/'-separated segments, {x} is one
 * non-empty segment).
 *
 * Input: byte 0 flags (admin token, a JSON body, absent headers as NULL,
 * a WebSocket upgrade), then the method up to '\n', then the target. */
#include <string.h>

#include "fuzz_common.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
ref_match(const char *tmpl, shop_str path, shop_str *params, int *nparams)
{
    size_t i = 0;
    const char *t = tmpl;
    int n = 0;

    if (path.n == 0) {
        return 0;
    }
    while (*t) {
        /* one segment each: both start with '/' */
        if (*t != '/' || i >= path.n || path.p[i] != '/') {
            return 0;
        }
        t++;
        i++;
        const char *te = strchr(t, '/');
        size_t tl = te ? (size_t) (te - t) : strlen(t);
        size_t ps = i;
        while (i < path.n && path.p[i] != '/') {
            i++;
        }
        size_t pl = i - ps;
        if (t[0] == '{') {
            if (pl == 0) {
                return 0;
            }
            params[n++] = (shop_str) { path.p + ps, pl };
        } else if (pl != tl || memcmp(t, path.p + ps, tl) != 0) {
            return 0;
        }
        t += tl;
    }
    *nparams = n;
    return i == path.n;
}

static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    unsigned flags = fz_byte(&in);
    shop_str method = fz_line(&in);
    shop_str target = fz_rest(&in);
    shop_settings s;
    shop_request req;
    fz_mem m;

    fz_mem_init(&m);
    fz_settings(&s);
    /* A short method byte picks a real one, so the fuzzer needn't spell it. */
    char *meth = method.n == 1 ? (char *) methods[(unsigned char) method.p[0] % 7] : fz_cstr(&m, method);
    const char *q = memchr(target.p, '?', target.n);
    shop_str path = { target.p, q ? (size_t) (q - target.p) : target.n };
    shop_str query = q ? (shop_str) { q + 1, target.n - path.n - 1 } : SHOP_STR("");
    fz_request(&req, &m, meth, path, query);
    if (flags & 1) {
        req.authorization = fz_copy(&m, SHOP_STR("Bearer " FZ_TOKEN));
    }
    if (flags & 2) {
        req.content_type = fz_copy(&m, SHOP_STR("application/json"));
        req.has_body = 1;
        shop_str b = fz_copy(&m, SHOP_STR("{}"));
        req.body = b.p;
        req.body_len = b.n;
        req.signature = fz_sign(&m, b.p, b.n, req.now_ms);
    }
    if (!(flags & 4)) {
        shop_str e = SHOP_STR("");
        if (req.content_type.p == NULL) {
            req.content_type = e;
        }
        if (req.authorization.p == NULL) {
            req.authorization = e;
        }
        if (req.signature.p == NULL) {
            req.signature = e;
        }
        req.if_match = req.if_none_match = req.request_id = req.idempotency_key = e;
        req.last_event_id = req.upgrade = req.connection = req.ws_key = req.ws_version = e;
    }
    if (flags & 8) {
        req.can_upgrade = 1;
        req.upgrade = fz_copy(&m, SHOP_STR("websocket"));
        req.connection = fz_copy(&m, SHOP_STR("keep-alive, Upgrade"));
        req.ws_key = fz_copy(&m, SHOP_STR("dGhlIHNhbXBsZSBub25jZQ=="));
        req.ws_version = fz_copy(&m, SHOP_STR("13"));
    }

    /* The router against the reference. */
    shop_match sm;
    shop_method want = req.method == SHOP_HEAD ? SHOP_GET : req.method;
    unsigned allowed = 0;
    const shop_route *first = NULL;
    shop_str rparams[3];
    int rn = 0;
    shop_route_find(req.path, req.method, &sm);
    for (size_t r = 0; r < shop_route_count; r++) {
        shop_str p[3];
        int n = 0;
        if (ref_match(shop_routes[r].tmpl, req.path, p, &n)) {
            allowed |= shop_routes[r].method | (shop_routes[r].method == SHOP_GET ? SHOP_HEAD : 0);
            if (first == NULL && shop_routes[r].method == want) {
                first = &shop_routes[r];
                memcpy(rparams, p, sizeof(p));
                rn = n;
            }
        }
    }
    FZ_ASSERT(sm.route == first, "router picked %s, reference %s", sm.route ? sm.route->tmpl : "-",
              first ? first->tmpl : "-");
    FZ_ASSERT(sm.allowed == allowed, "allowed %#x, reference %#x", sm.allowed, allowed);
    if (first != NULL) {
        FZ_ASSERT(sm.nparams == rn, "nparams %d, reference %d", sm.nparams, rn);
        for (int i = 0; i < rn; i++) {
            FZ_ASSERT(sm.params[i].p == rparams[i].p && sm.params[i].n == rparams[i].n, "param %d", i);
        }
    }

    fz_run(&m.arena, &s, &req, method.n == 1 ? shop_cstr(meth) : fz_copy(&m, method), flags >> 4);
    fz_mem_free(&m);
    return 0;
}
