/* Events as the hub sends them: topics, resume positions, SSE frames and
 * WebSocket frames. Pure functions; the front-ends own the sockets. */
#ifndef SHOP_EVENTS_H
#define SHOP_EVENTS_H

#include <stdint.h>

#include <libpq-fe.h>

#include "buf.h"

#define SHOP_TOPIC_PRODUCTS  1u
#define SHOP_TOPIC_PRICES    2u
#define SHOP_TOPIC_STOCK     4u
#define SHOP_TOPIC_ORDERS    8u
#define SHOP_TOPIC_ALL       15u
/* What anyone may read: no personal data, no order ids. */
#define SHOP_TOPIC_PUBLIC    (SHOP_TOPIC_PRODUCTS | SHOP_TOPIC_PRICES | SHOP_TOPIC_STOCK)
/* What needs the admin token. */
#define SHOP_TOPIC_PRIVATE   SHOP_TOPIC_ORDERS

/* "orders,stock" -> bits; empty -> the public topics. -1 on an unknown or
 * repeated name. */
int      shop_topics_parse(shop_str list, unsigned *out);
unsigned shop_topic_bit(const char *topic);

/* A resume position (Last-Event-ID or ?after=): 0 ... 2^63-1. */
int      shop_event_id_parse(shop_str s, int64_t *out);

/* Rows are those of events_read and events_replay (feed.h).
 * The event as the API shows it: {"id":1,"type":"…","at":"…","data":{…}}. */
void     shop_event_json(shop_buf *b, const PGresult *res, int row);
/* One SSE frame: id:, event:, data: lines and a blank line. */
void     shop_event_sse(shop_buf *b, const PGresult *res, int row);
/* One WebSocket text frame carrying the event JSON. */
void     shop_event_ws(shop_buf *b, const PGresult *res, int row);

#define SHOP_SSE_HEARTBEAT      ": heartbeat\n\n"
#define SHOP_SSE_HEARTBEAT_MS   15000

/* Copies JSON text without insignificant whitespace. */
void     shop_buf_add_json_compact(shop_buf *b, const char *json, size_t n);

#endif
