/* The event stream's inputs: Last-Event-ID and ?after= (shop_event_id_parse),
 * ?topics= (shop_topics_parse), each against a reference from its contract,
 * and GET /events through shop_begin() with those and the WebSocket
 * handshake headers (Upgrade, Connection, Sec-WebSocket-Key and -Version).
 *
 * Input: byte 0 flags (bit 0: the front-end can upgrade; bit 1: absent
 * headers as NULL), then lines: Last-Event-ID, the query string, Upgrade,
 * Connection, Sec-WebSocket-Key, Sec-WebSocket-Version. */
#include <string.h>

#include "events.h"
#include "fuzz_common.h"
#include "websocket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
ref_event_id(shop_str s, int64_t *out)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++, s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) {
        s.n--;
    }
    if (s.n == 0 || s.n > 19 || (s.p[0] == '0' && s.n > 1)) {
        return -1;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t) (s.p[i] - '0');   /* 19 digits fit in uint64 */
    }
    if (v > (uint64_t) INT64_MAX) {
        return -1;
    }
    *out = (int64_t) v;
    return 0;
}

static int
ref_topics(shop_str s, unsigned *out)
{
    static const char *const names[] = { "products", "prices", "stock", "orders" };
    unsigned bits = 0;
    size_t i = 0;

    if (s.n == 0) {
        *out = SHOP_TOPIC_PUBLIC;
        return 0;
    }
    for (;;) {
        size_t e = i;
        while (e < s.n && s.p[e] != ',') {
            e++;
        }
        /* blanks around a name do not count (core/buf.c's shop_str_split) */
        size_t b = i, z = e;
        while (b < z && (s.p[b] == ' ' || s.p[b] == '\t')) {
            b++;
        }
        while (z > b && (s.p[z - 1] == ' ' || s.p[z - 1] == '\t')) {
            z--;
        }
        unsigned bit = 0;
        for (unsigned k = 0; k < 4; k++) {
            if (strlen(names[k]) == z - b && memcmp(names[k], s.p + b, z - b) == 0) {
                bit = shop_topic_bit(names[k]);
            }
        }
        if (bit == 0 || (bits & bit)) {
            return -1;
        }
        bits |= bit;
        if (e == s.n) {
            break;
        }
        i = e + 1;
    }
    *out = bits;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = { data, size };
    unsigned flags = fz_byte(&in);
    fz_mem m;
    shop_settings s;
    shop_request req;

    fz_mem_init(&m);
    shop_str leid = fz_copy(&m, fz_line(&in));
    shop_str query = fz_line(&in);
    shop_str upgrade = fz_copy(&m, fz_line(&in));
    shop_str connection = fz_copy(&m, fz_line(&in));
    shop_str key = fz_copy(&m, fz_line(&in));
    shop_str version = fz_copy(&m, fz_rest(&in));

    int64_t a = -7, b = -7;
    int ra = shop_event_id_parse(leid, &a), rb = ref_event_id(leid, &b);
    FZ_ASSERT(ra == rb && (ra != 0 || a == b), "event id %.*s: %d/%lld, reference %d/%lld",
              (int) leid.n, leid.p, ra, (long long) a, rb, (long long) b);

    unsigned ta = 0, tb = 0;
    shop_str qcopy = fz_copy(&m, query);
    ra = shop_topics_parse(qcopy, &ta);
    rb = ref_topics(qcopy, &tb);
    FZ_ASSERT(ra == rb && (ra != 0 || ta == tb), "topics %.*s: %d/%u, reference %d/%u",
              (int) qcopy.n, qcopy.p, ra, ta, rb, tb);

    /* The handshake key: a good one is the base64 of 16 bytes, and its
     * accept value is 28 base64 characters. */
    if (shop_ws_key_ok(key)) {
        char acc[29];
        shop_ws_accept(key, acc);
        FZ_ASSERT(strlen(acc) == 28 && acc[27] == '=', "accept %s", acc);
    }

    fz_settings(&s);
    fz_request(&req, &m, "GET", SHOP_STR("/events"), query);
    shop_str e = flags & 2 ? SHOP_NULL_STR : SHOP_STR("");
    req.content_type = req.authorization = req.if_match = req.if_none_match = e;
    req.request_id = req.idempotency_key = req.signature = e;
    req.last_event_id = leid;
    req.can_upgrade = flags & 1;
    req.upgrade = upgrade;
    req.connection = connection;
    req.ws_key = key;
    req.ws_version = version;

    shop_ctx c;
    shop_begin(&c, &m.arena, &s, &req);
    fz_check_response(&c, 1);
    FZ_ASSERT(c.nqueries == 0, "GET /events planned a statement");
    if (c.resp.status == 200 || c.resp.status == 101) {
        FZ_ASSERT(c.resp.stream.kind == (c.resp.status == 101 ? SHOP_STREAM_WEBSOCKET : SHOP_STREAM_SSE),
                  "stream kind %d for %d", (int) c.resp.stream.kind, c.resp.status);
        FZ_ASSERT(c.resp.stream.topics != 0 && (c.resp.stream.topics & ~SHOP_TOPIC_ALL) == 0,
                  "topics %#x", c.resp.stream.topics);
        /* No token is ever sent here: the orders topic is never granted. */
        FZ_ASSERT((c.resp.stream.topics & SHOP_TOPIC_PRIVATE) == 0, "orders without the token");
        FZ_ASSERT(c.resp.stream.after >= -1, "after %lld", (long long) c.resp.stream.after);
    } else {
        FZ_ASSERT(c.resp.stream.kind == SHOP_STREAM_NONE, "a stream with status %d", c.resp.status);
    }
    shop_release(&c);
    fz_mem_free(&m);
    return 0;
}
