/* Request bodies through the whole request path: shop_begin() on every
 * route that takes a JSON body, so the strict JSON parser, the media type
 * check and every handler's field readers see hostile bytes. The webhook
 * body is signed here with the settings' secret, so its parser is reached.
 *
 * Input: byte 0 picks the route, byte 1 the Content-Type and which headers
 * follow as lines, byte 2 how the statements fail in shop_finish(); then
 * one line per enabled header (If-Match, Idempotency-Key, Content-Type,
 * Shop-Signature), then the body. */
#include <string.h>

#include "fuzz_common.h"

static const struct { const char *method, *path; } routes[] = {
    { "POST",  "/products" },
    { "PATCH", "/products/1" },
    { "PATCH", "/products/red-tee-m" },
    { "POST",  "/orders" },
    { "POST",  "/stock/check" },
    { "POST",  "/webhooks/payments" },
    { "PUT",   "/warehouses/x" },
    { "PUT",   "/warehouses/north/stock/TEE-RED-M" },
    { "POST",  "/orders/0b5e7d1c-3f6a-4c2e-9a51-8d2f0e4b7c19/transitions" },
};

static const char *const content_types[] = {
    "application/json", "application/json; charset=utf-8", "application/merge-patch+json",
    "Application/JSON ; Charset=\"UTF-8\"", NULL /* absent */, NULL /* from the input */,
    "text/plain", "application/json; charset=latin1",
};

#define F_IF_MATCH     0x08
#define F_IDEMPOTENCY  0x10
#define F_SIGNATURE    0x20   /* the signature header from the input, not computed */
#define F_NULL_ABSENT  0x40   /* absent headers as {NULL, 0}, else as "" (fcgi) */
#define F_TOO_LARGE    0x80

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    unsigned route = fz_byte(&in) % (sizeof(routes) / sizeof(routes[0]));
    unsigned flags = fz_byte(&in);
    unsigned fail = fz_byte(&in);
    shop_settings s;
    shop_request req;
    fz_mem m;
    shop_str absent = flags & F_NULL_ABSENT ? SHOP_NULL_STR : SHOP_STR("");

    fz_mem_init(&m);
    fz_settings(&s);
    fz_request(&req, &m, routes[route].method, shop_cstr(routes[route].path), SHOP_STR(""));
    req.content_type = req.if_match = req.if_none_match = req.request_id = absent;
    req.idempotency_key = req.last_event_id = req.signature = req.upgrade = absent;
    req.connection = req.ws_key = req.ws_version = absent;
    req.authorization = fz_copy(&m, SHOP_STR("Bearer " FZ_TOKEN));

    if (flags & F_IF_MATCH) {
        req.if_match = fz_copy(&m, fz_line(&in));
    }
    if (flags & F_IDEMPOTENCY) {
        req.idempotency_key = fz_copy(&m, fz_line(&in));
    }
    unsigned ct = flags & 7;
    if (ct == 5) {
        req.content_type = fz_copy(&m, fz_line(&in));
    } else if (content_types[ct] != NULL) {
        req.content_type = fz_copy(&m, shop_cstr(content_types[ct]));
    }
    shop_str sig = flags & F_SIGNATURE ? fz_line(&in) : SHOP_NULL_STR;
    shop_str body = fz_copy(&m, fz_rest(&in));

    req.has_body = 1;
    if (flags & F_TOO_LARGE) {
        req.body_too_large = 1;
    } else {
        req.body = body.p;
        req.body_len = body.n;
    }
    req.signature = flags & F_SIGNATURE ? fz_copy(&m, sig)
                                        : fz_sign(&m, body.p, body.n, req.now_ms);

    fz_run(&m.arena, &s, &req, shop_cstr(routes[route].method), fail);
    fz_mem_free(&m);
    return 0;
}
