/* GET /events: checks the subscription (topics, resume position, the
 * WebSocket handshake) and answers with the headers of a stream; the
 * front-end then keeps the connection and writes events to it. */
#include <string.h>

#include "auth.h"
#include "events.h"
#include "handlers.h"
#include "uri.h"
#include "websocket.h"

/* 1 when a comma-separated header value holds `token` (any case). */
static int
has_token(shop_str list, const char *token)
{
    shop_str item;

    while (shop_str_split(&list, ',', &item)) {
        if (shop_str_eq_nocase(item, token)) {
            return 1;
        }
    }
    return 0;
}

void
shop_events_plan(shop_ctx *c)
{
    const shop_request *req = c->req;
    shop_str topics = SHOP_STR(""), after;
    shop_stream st = { SHOP_STREAM_SSE, SHOP_TOPIC_PUBLIC, -1 };

    if (shop_query_param(c->arena, req->query, "topics", &topics) == SHOP_QP_BAD
        || shop_topics_parse(topics, &st.topics) != 0) {
        shop_fail(c, SHOP_E_BAD_REQUEST, "topics must be a comma-separated list of orders, stock, products, prices");
        return;
    }
    /* Order events carry customers' addresses and the orders' only keys:
     * refused, as a problem, before any event is sent. */
    if (st.topics & SHOP_TOPIC_PRIVATE) {
        shop_err e = shop_auth_admin(c->settings, req->authorization);
        if (e != SHOP_OK) {
            shop_fail(c, e, e == SHOP_E_UNAUTHORIZED ? "the orders topic needs the admin bearer token"
                                                      : "the token is not valid");
            return;
        }
    }
    /* ?after= wins over Last-Event-ID: a client that names a position means it. */
    switch (shop_query_param(c->arena, req->query, "after", &after)) {
    case SHOP_QP_FOUND:
        if (shop_event_id_parse(after, &st.after) == 0) {
            break;
        }
        /* fall through */
    case SHOP_QP_BAD:
        shop_fail(c, SHOP_E_BAD_REQUEST, "after must be an event id");
        return;
    case SHOP_QP_ABSENT:
        if (req->last_event_id.n && shop_event_id_parse(req->last_event_id, &st.after) != 0) {
            shop_fail(c, SHOP_E_BAD_REQUEST, "Last-Event-ID must be an event id");
            return;
        }
        break;
    }

    /* Upgrades other than to WebSocket (h2c, ...), and any upgrade on a
     * front-end that cannot switch protocols, are ignored (RFC 9110 7.8). */
    if (req->can_upgrade && has_token(req->upgrade, "websocket")) {
        char accept[29];
        if (!has_token(req->connection, "upgrade")) {
            shop_fail(c, SHOP_E_BAD_REQUEST, "a WebSocket upgrade needs Connection: Upgrade");
            return;
        }
        if (!shop_str_eq(shop_str_trim(req->ws_version), "13")) {
            shop_header_add(c, "Sec-WebSocket-Version", SHOP_STR("13"));
            shop_fail(c, SHOP_E_BAD_REQUEST, "Sec-WebSocket-Version must be 13");
            return;
        }
        if (!shop_ws_key_ok(req->ws_key)) {
            shop_fail(c, SHOP_E_BAD_REQUEST, "Sec-WebSocket-Key must be the base64 of 16 bytes");
            return;
        }
        shop_ws_accept(req->ws_key, accept);
        st.kind = SHOP_STREAM_WEBSOCKET;
        shop_header_add(c, "Upgrade", SHOP_STR("websocket"));
        shop_header_add(c, "Connection", SHOP_STR("Upgrade"));
        shop_header_add(c, "Sec-WebSocket-Accept", (shop_str) { shop_strndup(c->arena, accept, 28), 28 });
        shop_reply(c, 101, SHOP_NULL_STR, SHOP_NULL_STR);
    } else {
        shop_header_add(c, "Cache-Control", SHOP_STR("no-cache"));
        shop_reply(c, 200, SHOP_STR("text/event-stream; charset=utf-8"), SHOP_NULL_STR);
    }
    c->resp.stream = st;
}
