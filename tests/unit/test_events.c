/* Events (events.c, stream.c): topics and resume positions, the event as
 * JSON, as an SSE frame and as a WebSocket text frame, and GET /events (SSE,
 * or the WebSocket handshake where the front-end can switch protocols; the
 * orders topic only with the admin token). */
#include "helpers.h"

#include <string.h>

#include "events.h"
#include "websocket.h"

/* ---- topics ------------------------------------------------------------------------ */

static void
check_topics(const char *list, int rc, unsigned bits)
{
    unsigned got = 0xdead;
    int r = shop_topics_parse(shop_cstr(list), &got);

    if (r != rc) {
        print_error("topics \"%s\": %d, expected %d\n", list, r, rc);
        fail();
    }
    if (rc == 0) {
        assert_int_equal(got, bits);
    }
}

static void
test_topics_parse(void **state)
{
    (void) state;
    check_topics("", 0, SHOP_TOPIC_PUBLIC);
    check_topics("orders", 0, SHOP_TOPIC_ORDERS);
    check_topics("stock", 0, SHOP_TOPIC_STOCK);
    check_topics("products", 0, SHOP_TOPIC_PRODUCTS);
    check_topics("prices", 0, SHOP_TOPIC_PRICES);
    check_topics("orders,stock", 0, SHOP_TOPIC_ORDERS | SHOP_TOPIC_STOCK);
    check_topics("prices,products,stock,orders", 0, SHOP_TOPIC_ALL);
    check_topics("orders,stock,products,prices", 0, SHOP_TOPIC_ALL);

    check_topics("orders,orders", -1, 0);              /* repeated */
    check_topics("orders,stock,orders", -1, 0);
    check_topics("orders,", -1, 0);                    /* trailing comma */
    check_topics(",orders", -1, 0);
    check_topics("orders,,stock", -1, 0);
    check_topics(",", -1, 0);
    check_topics("bogus", -1, 0);
    check_topics("orders,bogus", -1, 0);
    check_topics("Orders", -1, 0);
    check_topics("order", -1, 0);
    check_topics("orderss", -1, 0);
    check_topics("orders, stock", 0, SHOP_TOPIC_ORDERS | SHOP_TOPIC_STOCK);   /* blanks around names */
    check_topics(" orders", 0, SHOP_TOPIC_ORDERS);
    check_topics("\tproducts", 0, SHOP_TOPIC_PRODUCTS);           /* fuzz: events/topics-tab-before-name */
    check_topics("\t", -1, 0);
    check_topics("all", -1, 0);
    check_topics("*", -1, 0);
    /* The list is a length: bytes after it do not count. */
    unsigned got = 0;
    assert_int_equal(shop_topics_parse((shop_str) { "stock,orders", 5 }, &got), 0);
    assert_int_equal(got, SHOP_TOPIC_STOCK);

    assert_int_equal(shop_topic_bit("orders"), SHOP_TOPIC_ORDERS);
    assert_int_equal(shop_topic_bit("prices"), SHOP_TOPIC_PRICES);
    assert_int_equal(shop_topic_bit("stock"), SHOP_TOPIC_STOCK);
    assert_int_equal(shop_topic_bit("products"), SHOP_TOPIC_PRODUCTS);
    assert_int_equal(shop_topic_bit("bogus"), 0);
    assert_int_equal(shop_topic_bit(""), 0);
}

/* ---- event ids ----------------------------------------------------------------------- */

static void
check_id(const char *s, int rc, int64_t v)
{
    int64_t got = -42;
    int r = shop_event_id_parse(shop_cstr(s), &got);

    if (r != rc) {
        print_error("event id \"%s\": %d, expected %d\n", s, r, rc);
        fail();
    }
    if (rc == 0) {
        assert_int_equal(got, v);
    } else {
        assert_int_equal(got, -42);   /* untouched */
    }
}

static void
test_event_id_parse(void **state)
{
    (void) state;
    check_id("0", 0, 0);
    check_id("1", 0, 1);
    check_id("1234", 0, 1234);
    check_id("9223372036854775807", 0, INT64_MAX);      /* 2^63 - 1 */
    check_id(" 5", 0, 5);                                /* surrounding spaces are trimmed */
    check_id("5 ", 0, 5);
    check_id("\t5 ", 0, 5);

    check_id("9223372036854775808", -1, 0);             /* 2^63 */
    check_id("18446744073709551616", -1, 0);
    check_id("99999999999999999999999", -1, 0);
    check_id("-1", -1, 0);
    check_id("-0", -1, 0);
    check_id("+5", -1, 0);
    check_id("00", -1, 0);                               /* leading zeros: not how ids are written */
    check_id("007", -1, 0);
    check_id("01", -1, 0);
    check_id("", -1, 0);
    check_id(" ", -1, 0);
    check_id("1 2", -1, 0);
    check_id("1_000", -1, 0);
    check_id("0x10", -1, 0);
    check_id("1e3", -1, 0);
    check_id("12a", -1, 0);
    check_id("abc", -1, 0);
}

/* ---- rows ----------------------------------------------------------------------------- */

/* An event row of events_replay (the state columns are NULL on event rows). */
static void
event_row(PGresult *res, const char *id, const char *type, const char *topic, const char *data)
{
    th_pg_row(res, (const char *const[]) { id, type, topic, data, "2026-11-22 23:34:02.123456+00",
                                           NULL, NULL });
}

/* ---- event JSON, SSE ---------------------------------------------------------------------- */

/* As PostgreSQL's json type keeps it: the text as written, spaces and all. */
#define SPACED_DATA \
    "{\"a\" : 1, \"s\" : \"x : y\", \"q\" : \"say \\\"hi\\\" : ok\",\n" \
    "\t\"n\" : [1, 2, {\"k\" : \"v  w\"}], \"b\" : \"c:\\\\\", \"z\" : null , \"e\" : \"\\u00e9 \\n\"}"
#define COMPACT_DATA \
    "{\"a\":1,\"s\":\"x : y\",\"q\":\"say \\\"hi\\\" : ok\"," \
    "\"n\":[1,2,{\"k\":\"v  w\"}],\"b\":\"c:\\\\\",\"z\":null,\"e\":\"\\u00e9 \\n\"}"

static PGresult *
one_event(th_env *e, const char *data)
{
    PGresult *res = th_pg_stmt(e, SHOP_STMT_EVENTS_REPLAY);
    event_row(res, "1234", "order.status_changed", "orders", data);
    return res;
}

static void
test_compact(void **state)
{
    th_env *e = *state;
    static const struct { const char *in, *out; } cases[] = {
        { SPACED_DATA, COMPACT_DATA },
        { "{}", "{}" },
        { " { } ", "{}" },
        { "{\"a\":\"\"}", "{\"a\":\"\"}" },
        { "{\"a\" : \"\\\\\" , \"b\" : \" \"}", "{\"a\":\"\\\\\",\"b\":\" \"}" },
        { "{\"a\" : \"\\\"\" , \"b\" : 2}", "{\"a\":\"\\\"\",\"b\":2}" },
        { "[ \"a b\" ,\r\n \"c\" ]", "[\"a b\",\"c\"]" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        shop_buf b;
        shop_buf_init(&b, &e->scratch.arena, 4);
        shop_buf_add_json_compact(&b, cases[i].in, strlen(cases[i].in));
        assert_string_equal(shop_buf_str(&b).p, cases[i].out);
    }
}

static void
test_event_json(void **state)
{
    th_env *e = *state;
    shop_buf b;

    shop_buf_init(&b, &e->scratch.arena, 16);
    shop_event_json(&b, one_event(e, SPACED_DATA), 0);
    const char *expected = "{\"id\":1234,\"type\":\"order.status_changed\",\"at\":\"2026-11-22T23:34:02.123Z\","
                           "\"data\":" COMPACT_DATA "}";
    assert_string_equal(shop_buf_str(&b).p, expected);
    struct json_object *o = th_json(e, shop_buf_str(&b));
    struct json_object *d = json_object_object_get(o, "data");
    assert_string_equal(th_jstr(d, "s"), "x : y");
    assert_string_equal(th_jstr(d, "q"), "say \"hi\" : ok");
    assert_string_equal(th_jstr(d, "b"), "c:\\");
    assert_string_equal(th_jstr(d, "e"), "\xc3\xa9 \n");
}

static void
test_event_sse(void **state)
{
    th_env *e = *state;
    shop_buf b;

    shop_buf_init(&b, &e->scratch.arena, 16);
    shop_buf_adds(&b, ": heartbeat\n\n");   /* appends */
    shop_event_sse(&b, one_event(e, SPACED_DATA), 0);
    assert_string_equal(shop_buf_str(&b).p,
        ": heartbeat\n\n"
        "id: 1234\nevent: order.status_changed\n"
        "data: {\"id\":1234,\"type\":\"order.status_changed\",\"at\":\"2026-11-22T23:34:02.123Z\","
        "\"data\":" COMPACT_DATA "}\n\n");
    /* One data line: no newline inside the JSON. */
    const char *data = strstr(shop_buf_str(&b).p, "data: ");
    assert_non_null(data);
    assert_string_equal(strchr(data, '\n'), "\n\n");
    assert_string_equal(SHOP_SSE_HEARTBEAT, ": heartbeat\n\n");
}

/* ---- WebSocket frames of events ----------------------------------------------------------- */

static void
check_ws_frame(th_env *e, size_t payload, const unsigned char *header, size_t hl)
{
    shop_buf j, w;
    const char *base = "{\"s\":\"\"}";

    /* The event JSON without padding, to find how much padding makes `payload`. */
    shop_buf_init(&j, &e->scratch.arena, 64);
    shop_event_json(&j, one_event(e, base), 0);
    assert_true(payload >= j.len);
    const char *data = th_fmt(e, "{\"s\":\"%s\"}", th_rep(e, "a", (int) (payload - j.len)));

    PGresult *res = one_event(e, data);
    shop_buf_init(&j, &e->scratch.arena, 64);
    shop_event_json(&j, res, 0);
    assert_int_equal(j.len, payload);

    shop_buf_init(&w, &e->scratch.arena, 16);
    shop_buf_adds(&w, "before");
    shop_event_ws(&w, res, 0);
    assert_int_equal(w.len, 6 + hl + payload);
    assert_memory_equal(w.p, "before", 6);
    assert_memory_equal(w.p + 6, header, hl);
    assert_memory_equal(w.p + 6 + hl, j.p, payload);

    /* shop_ws_header agrees. */
    unsigned char h[10];
    assert_int_equal(shop_ws_header(h, SHOP_WS_TEXT, payload), hl);
    assert_memory_equal(h, header, hl);
}

static void
test_event_ws(void **state)
{
    th_env *e = *state;
    static const unsigned char h125[] = { 0x81, 125 };
    static const unsigned char h126[] = { 0x81, 126, 0x00, 0x7e };
    static const unsigned char h65535[] = { 0x81, 126, 0xff, 0xff };
    static const unsigned char h65536[] = { 0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 };

    check_ws_frame(e, 125, h125, sizeof(h125));
    check_ws_frame(e, 126, h126, sizeof(h126));
    check_ws_frame(e, 65535, h65535, sizeof(h65535));
    check_ws_frame(e, 65536, h65536, sizeof(h65536));
}

/* ---- GET /events ------------------------------------------------------------------------- */

typedef struct {
    const char *upgrade, *connection, *key, *version, *last_event_id, *authorization;
    int can_upgrade;
} ev_headers;

#define ADMIN "Bearer " TH_TOKEN

static th_env *
events(const char *target, ev_headers h)
{
    th_env *e = th_new();

    th_request(e, "GET", target);
    e->req.can_upgrade = h.can_upgrade;
    if (h.upgrade) {
        e->req.upgrade = th_s(e, h.upgrade);
    }
    if (h.connection) {
        e->req.connection = th_s(e, h.connection);
    }
    if (h.key) {
        e->req.ws_key = th_s(e, h.key);
    }
    if (h.version) {
        e->req.ws_version = th_s(e, h.version);
    }
    if (h.last_event_id) {
        e->req.last_event_id = th_s(e, h.last_event_id);
    }
    if (h.authorization) {
        e->req.authorization = th_s(e, h.authorization);
    }
    th_begin(e);
    assert_int_equal(e->c.nqueries, 0);   /* the front-end reads the events itself */
    return e;
}

static void
assert_sse(th_env *e, unsigned topics, int64_t after)
{
    if (e->c.resp.status != 200) {
        print_error("expected the SSE stream, got %d %s\n", e->c.resp.status, th_cstr(e, e->c.resp.body));
        fail();
    }
    assert_str(e, e->c.resp.content_type, "text/event-stream; charset=utf-8");
    assert_int_equal(e->c.resp.body.n, 0);
    assert_string_equal(th_header(e, "Cache-Control"), "no-cache");
    assert_null(th_header(e, "X-Accel-Buffering"));      /* shop-fcgi adds it for nginx, not the core */
    assert_null(th_header(e, "Upgrade"));
    assert_null(th_header(e, "Sec-WebSocket-Accept"));
    assert_int_equal(e->c.resp.stream.kind, SHOP_STREAM_SSE);
    assert_int_equal(e->c.resp.stream.topics, topics);
    assert_int_equal(e->c.resp.stream.after, after);
    assert_int_equal(e->c.err, SHOP_OK);
}

static void
check_sse(const char *target, ev_headers h, unsigned topics, int64_t after)
{
    th_env *e = events(target, h);
    assert_sse(e, topics, after);
    th_free(e);
}

static void
check_400(const char *target, ev_headers h)
{
    th_env *e = events(target, h);

    if (e->c.resp.status != 400) {
        print_error("%s: expected 400, got %d\n", target, e->c.resp.status);
    }
    th_problem(e, 400, "bad-request");
    assert_int_equal(e->c.resp.stream.kind, SHOP_STREAM_NONE);
    th_free(e);
}

static void
test_events_sse(void **state)
{
    ev_headers none = { 0 };
    ev_headers lei7 = { .last_event_id = "7" };
    ev_headers admin = { .authorization = ADMIN };
    (void) state;

    /* No topics: the public ones, never the orders. */
    check_sse("/events", none, SHOP_TOPIC_PUBLIC, -1);
    check_sse("/events?topics=", none, SHOP_TOPIC_PUBLIC, -1);
    check_sse("/events", admin, SHOP_TOPIC_PUBLIC, -1);
    check_sse("/events?topics=orders", admin, SHOP_TOPIC_ORDERS, -1);
    check_sse("/events?topics=orders,prices", admin, SHOP_TOPIC_ORDERS | SHOP_TOPIC_PRICES, -1);
    check_sse("/events?topics=orders%2Cstock", admin, SHOP_TOPIC_ORDERS | SHOP_TOPIC_STOCK, -1);
    check_sse("/events?topics=prices,products,stock", none, SHOP_TOPIC_PUBLIC, -1);
    check_sse("/events?topics=prices,products,stock,orders", admin, SHOP_TOPIC_ALL, -1);
    check_sse("/events?after=0", none, SHOP_TOPIC_PUBLIC, 0);
    check_sse("/events?after=5", none, SHOP_TOPIC_PUBLIC, 5);
    check_sse("/events?after=9223372036854775807&topics=stock", none, SHOP_TOPIC_STOCK, INT64_MAX);
    check_sse("/events", lei7, SHOP_TOPIC_PUBLIC, 7);
    check_sse("/events?topics=prices", lei7, SHOP_TOPIC_PRICES, 7);
    /* ?after= wins over Last-Event-ID. */
    check_sse("/events?after=5", lei7, SHOP_TOPIC_PUBLIC, 5);
    check_sse("/events?after=0", lei7, SHOP_TOPIC_PUBLIC, 0);
    check_sse("/events?after=5", (ev_headers) { .last_event_id = "garbage" }, SHOP_TOPIC_PUBLIC, 5);
    check_sse("/events", (ev_headers) { .last_event_id = " 12 " }, SHOP_TOPIC_PUBLIC, 12);
}

/* The orders topic without the token: 401 with a challenge, a wrong token:
 * 403; either way a problem and no stream. */
static void
check_refused(const char *target, ev_headers h, int status, const char *type)
{
    th_env *e = events(target, h);

    th_problem(e, status, type);
    assert_int_equal(e->c.resp.stream.kind, SHOP_STREAM_NONE);
    assert_null(th_header(e, "Sec-WebSocket-Accept"));
    assert_null(th_header(e, "Upgrade"));
    if (status == 401) {
        assert_non_null(th_header(e, "WWW-Authenticate"));
        assert_true(strncmp(th_header(e, "WWW-Authenticate"), "Bearer", 6) == 0);
    }
    th_free(e);
}

static void
test_events_orders_need_admin(void **state)
{
    ev_headers none = { 0 }, wrong = { .authorization = "Bearer not-the-token" };
    ev_headers basic = { .authorization = "Basic dXNlcjpwYXNz" };
    ev_headers resume = { .last_event_id = "0" };
    (void) state;

    check_refused("/events?topics=orders", none, 401, "unauthorized");
    check_refused("/events?topics=stock,orders", none, 401, "unauthorized");
    check_refused("/events?topics=orders&after=0", none, 401, "unauthorized");
    check_refused("/events?topics=orders", resume, 401, "unauthorized");
    check_refused("/events?topics=orders", basic, 401, "unauthorized");
    check_refused("/events?topics=orders", wrong, 403, "forbidden");
    check_refused("/events?topics=prices,orders", wrong, 403, "forbidden");
    /* A bad token does not matter where no private topic is asked for. */
    check_sse("/events?topics=stock", wrong, SHOP_TOPIC_STOCK, -1);
}

static void
test_events_bad(void **state)
{
    ev_headers none = { 0 };
    (void) state;

    check_400("/events?topics=bogus", none);
    check_400("/events?topics=orders,", none);
    check_400("/events?topics=orders,orders", none);
    check_400("/events?topics=orders&topics=stock", none);
    check_400("/events?topics=orders+stock", none);
    check_400("/events?topics=%zz", none);
    check_400("/events?after=", none);
    check_400("/events?after=-1", none);
    check_400("/events?after=abc", none);
    check_400("/events?after=007", none);
    check_400("/events?after=9223372036854775808", none);
    check_400("/events?after=1&after=2", none);
    check_400("/events?after=%zz", none);
    check_400("/events", (ev_headers) { .last_event_id = "abc" });
    check_400("/events", (ev_headers) { .last_event_id = "-1" });
    check_400("/events", (ev_headers) { .last_event_id = "9223372036854775808" });
    check_400("/events?topics=stock", (ev_headers) { .last_event_id = "1.5" });
    /* A bad ?after= is refused even with a good Last-Event-ID. */
    check_400("/events?after=x", (ev_headers) { .last_event_id = "7" });
}

#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static ev_headers
ws(void)
{
    return (ev_headers) { .upgrade = "websocket", .connection = "Upgrade", .key = RFC_KEY, .version = "13",
                          .can_upgrade = 1 };
}

static void
check_handshake(const char *target, ev_headers h, unsigned topics, int64_t after)
{
    th_env *e = events(target, h);

    if (e->c.resp.status != 101) {
        print_error("%s: expected 101, got %d %s\n", target, e->c.resp.status, th_cstr(e, e->c.resp.body));
        fail();
    }
    assert_int_equal(e->c.resp.content_type.n, 0);
    assert_int_equal(e->c.resp.body.n, 0);
    assert_string_equal(th_header(e, "Upgrade"), "websocket");
    assert_string_equal(th_header(e, "Connection"), "Upgrade");
    assert_string_equal(th_header(e, "Sec-WebSocket-Accept"), RFC_ACCEPT);
    assert_null(th_header(e, "X-Accel-Buffering"));
    assert_int_equal(e->c.resp.stream.kind, SHOP_STREAM_WEBSOCKET);
    assert_int_equal(e->c.resp.stream.topics, topics);
    assert_int_equal(e->c.resp.stream.after, after);
    assert_int_equal(e->c.err, SHOP_OK);
    th_free(e);
}

static void
test_events_websocket(void **state)
{
    ev_headers h;
    (void) state;

    check_handshake("/events", ws(), SHOP_TOPIC_PUBLIC, -1);
    check_handshake("/events?topics=prices&after=3", ws(), SHOP_TOPIC_PRICES, 3);
    h = ws();
    h.last_event_id = "9";
    check_handshake("/events", h, SHOP_TOPIC_PUBLIC, 9);
    h = ws();
    h.authorization = ADMIN;
    check_handshake("/events?topics=orders", h, SHOP_TOPIC_ORDERS, -1);
    h = ws();
    h.upgrade = "WebSocket";
    h.connection = "keep-alive, Upgrade";
    check_handshake("/events", h, SHOP_TOPIC_PUBLIC, -1);
    h = ws();
    h.connection = "upgrade";
    h.key = " " RFC_KEY " ";
    h.version = " 13 ";
    check_handshake("/events", h, SHOP_TOPIC_PUBLIC, -1);

    /* The same request where the front-end cannot switch (fcgi): SSE. */
    h = ws();
    h.can_upgrade = 0;
    check_sse("/events", h, SHOP_TOPIC_PUBLIC, -1);
    h.version = "8";
    h.key = "bad";
    h.authorization = ADMIN;
    check_sse("/events?topics=orders", h, SHOP_TOPIC_ORDERS, -1);
    /* A module request without Upgrade: SSE. */
    check_sse("/events", (ev_headers) { .can_upgrade = 1 }, SHOP_TOPIC_PUBLIC, -1);
    /* Bad subscriptions are refused before the handshake, and so are
     * order events without the token. */
    check_400("/events?topics=bogus", ws());
    check_refused("/events?topics=orders", ws(), 401, "unauthorized");
    h = ws();
    h.authorization = "Bearer wrong-token-here";
    check_refused("/events?topics=orders", h, 403, "forbidden");
}

static void
test_events_websocket_refused(void **state)
{
    ev_headers h;
    (void) state;

    /* Connection must say upgrade. */
    h = ws();
    h.connection = NULL;
    check_400("/events", h);
    h.connection = "keep-alive";
    check_400("/events", h);
    h.connection = "upgrades";
    check_400("/events", h);
    /* An upgrade to something else (curl --http2 sends h2c) is ignored: SSE. */
    h = ws();
    h.upgrade = "h2c";
    {
        th_env *e = events("/events", h);
        assert_int_equal(e->c.resp.status, 200);
        assert_int_equal(e->c.resp.stream.kind, SHOP_STREAM_SSE);
        th_free(e);
    }
    /* Version other than 13: 400 naming the version we speak. */
    static const char *const versions[] = { "8", "12", "14", "", "13, 8", "013" };
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        h = ws();
        h.version = versions[i][0] ? versions[i] : NULL;
        th_env *e = events("/events", h);
        th_problem(e, 400, "bad-request");
        assert_string_equal(th_header(e, "Sec-WebSocket-Version"), "13");
        assert_null(th_header(e, "Sec-WebSocket-Accept"));
        assert_int_equal(e->c.resp.stream.kind, SHOP_STREAM_NONE);
        th_free(e);
    }
    /* Keys that are not the base64 of 16 bytes. */
    static const char *const keys[] = {
        "", "abc", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25jZSE=", "dGhlIHNhbXBsZSBub25j!Q==", "dGhlIHNhbXBsZSBub25jZQ==dGhl",
        "dGhlIHNhbXBsZSBub25jZSEh", "dGhlIHNhbXBs ZSBub25jZQ==",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        h = ws();
        h.key = keys[i][0] ? keys[i] : NULL;
        th_env *e = events("/events", h);
        if (e->c.resp.status != 400) {
            print_error("key \"%s\": expected 400, got %d\n", keys[i], e->c.resp.status);
        }
        th_problem(e, 400, "bad-request");
        assert_null(th_header(e, "Sec-WebSocket-Accept"));
        th_free(e);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_topics_parse),
        TH_TEST(test_event_id_parse),
        TH_TEST(test_compact),
        TH_TEST(test_event_json),
        TH_TEST(test_event_sse),
        TH_TEST(test_event_ws),
        TH_TEST(test_events_sse),
        TH_TEST(test_events_bad),
        TH_TEST(test_events_orders_need_admin),
        TH_TEST(test_events_websocket),
        TH_TEST(test_events_websocket_refused),
    };
    return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
