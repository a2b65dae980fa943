#include "events.h"

#include <string.h>

#include "catalogue.h"
#include "timefmt.h"
#include "uri.h"
#include "websocket.h"

static const struct { const char *name; unsigned bit; } topics[] = {
    { "products", SHOP_TOPIC_PRODUCTS }, { "prices", SHOP_TOPIC_PRICES },
    { "stock", SHOP_TOPIC_STOCK },       { "orders", SHOP_TOPIC_ORDERS },
};

unsigned
shop_topic_bit(const char *topic)
{
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        if (strcmp(topics[i].name, topic) == 0) {
            return topics[i].bit;
        }
    }
    return 0;
}

int
shop_topics_parse(shop_str list, unsigned *out)
{
    unsigned bits = 0;
    shop_str name;

    if (list.n == 0) {
        *out = SHOP_TOPIC_PUBLIC;
        return 0;
    }
    while (shop_str_split(&list, ',', &name)) {
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
            if (shop_str_eq(name, topics[i].name)) {
                bit = topics[i].bit;
            }
        }
        if (bit == 0 || (bits & bit)) {
            return -1;
        }
        bits |= bit;
    }
    *out = bits;
    return 0;
}

int
shop_event_id_parse(shop_str s, int64_t *out)
{
    s = shop_str_trim(s);
    if (s.n == 1 && s.p[0] == '0') {
        *out = 0;
        return 0;
    }
    int64_t v = shop_parse_id(s);
    if (v <= 0) {
        return -1;
    }
    *out = v;
    return 0;
}

void
shop_buf_add_json_compact(shop_buf *b, const char *json, size_t n)
{
    size_t run = 0;
    int in_string = 0;

    for (size_t i = 0; i < n; i++) {
        char ch = json[i];
        if (in_string) {
            if (ch == '\\') {
                i++;
            } else if (ch == '"') {
                in_string = 0;
            }
        } else if (ch == '"') {
            in_string = 1;
        } else if (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r') {
            shop_buf_add(b, json + run, i - run);
            run = i + 1;
        }
    }
    if (run < n) {
        shop_buf_add(b, json + run, n - run);
    }
}

void
shop_event_json(shop_buf *b, const PGresult *res, int row)
{
    shop_buf_adds(b, "{\"id\":");
    shop_buf_adds(b, PQgetvalue(res, row, SHOP_E_COL_ID));
    shop_buf_adds(b, ",\"type\":");
    shop_buf_add_jsons(b, PQgetvalue(res, row, SHOP_E_COL_TYPE));
    shop_buf_adds(b, ",\"at\":");
    shop_buf_add_ts(b, PQgetvalue(res, row, SHOP_E_COL_AT));
    shop_buf_adds(b, ",\"data\":");
    shop_buf_add_json_compact(b, PQgetvalue(res, row, SHOP_E_COL_DATA),
                              (size_t) PQgetlength(res, row, SHOP_E_COL_DATA));
    shop_buf_addc(b, '}');
}

void
shop_event_sse(shop_buf *b, const PGresult *res, int row)
{
    /* The JSON is one line: compact, and strings escape their newlines. */
    shop_buf_adds(b, "id: ");
    shop_buf_adds(b, PQgetvalue(res, row, SHOP_E_COL_ID));
    shop_buf_adds(b, "\nevent: ");
    shop_buf_adds(b, PQgetvalue(res, row, SHOP_E_COL_TYPE));
    shop_buf_adds(b, "\ndata: ");
    shop_event_json(b, res, row);
    shop_buf_adds(b, "\n\n");
}

void
shop_event_ws(shop_buf *b, const PGresult *res, int row)
{
    unsigned char header[10];
    size_t start = b->len;

    /* Reserve the longest header, render, then move the payload up to the
     * header it really needs. */
    shop_buf_add(b, "\0\0\0\0\0\0\0\0\0\0", 10);
    shop_event_json(b, res, row);
    if (b->len < start + 10) {
        return;
    }
    size_t len = b->len - start - 10;
    size_t hl = shop_ws_header(header, SHOP_WS_TEXT, len);
    memmove(b->p + start + hl, b->p + start + 10, len);
    memcpy(b->p + start, header, hl);
    b->len = start + hl + len;
}
