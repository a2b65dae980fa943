/* Orders: place (with Idempotency-Key), read, list, and move through the
 * state machine (order_state.c). */
#include <stdio.h>
#include <string.h>

#include "conditional.h"
#include "cursor.h"
#include "fields.h"
#include "handlers.h"
#include "order_state.h"
#include "page.h"
#include "params.h"
#include "timefmt.h"
#include "uri.h"

#define SHOP_ORDER_MAX_LINES    100
#define SHOP_ORDER_MAX_QUANTITY 10000
#define SHOP_EMAIL_MAX_CHARS    254

/* ---- rendering ------------------------------------------------------------ */

/* The order in rows [first, end) of res (one row per line). */
static void
add_order(shop_buf *b, const PGresult *res, int first, int end)
{
    shop_buf_adds(b, "{\"id\":");
    shop_buf_add_jsons(b, PQgetvalue(res, first, SHOP_O_ID));
    shop_buf_adds(b, ",\"status\":");
    shop_buf_add_jsons(b, PQgetvalue(res, first, SHOP_O_STATUS));
    shop_buf_adds(b, ",\"items\":[");
    for (int row = first; row < end; row++) {
        if (row > first) {
            shop_buf_addc(b, ',');
        }
        shop_buf_adds(b, "{\"sku\":");
        shop_buf_add_jsons(b, PQgetvalue(res, row, SHOP_O_LINE_SKU));
        shop_buf_adds(b, ",\"quantity\":");
        shop_buf_adds(b, PQgetvalue(res, row, SHOP_O_LINE_QUANTITY));
        shop_buf_adds(b, ",\"unit_price_cents\":");
        shop_buf_adds(b, PQgetvalue(res, row, SHOP_O_LINE_UNIT_PRICE));
        shop_buf_adds(b, ",\"warehouse\":");
        shop_buf_add_jsons(b, PQgetvalue(res, row, SHOP_O_LINE_WAREHOUSE));
        shop_buf_addc(b, '}');
    }
    shop_buf_adds(b, "],\"total_cents\":");
    shop_buf_adds(b, PQgetvalue(res, first, SHOP_O_TOTAL_CENTS));
    shop_buf_adds(b, ",\"currency\":");
    shop_buf_add_jsons(b, PQgetvalue(res, first, SHOP_O_CURRENCY));
    shop_buf_adds(b, ",\"customer_email\":");
    shop_buf_add_jsons(b, PQgetvalue(res, first, SHOP_O_EMAIL));
    shop_buf_adds(b, ",\"version\":");
    shop_buf_adds(b, PQgetvalue(res, first, SHOP_O_VERSION));
    shop_buf_adds(b, ",\"created_at\":");
    shop_buf_add_ts(b, PQgetvalue(res, first, SHOP_O_CREATED_AT));
    shop_buf_adds(b, ",\"updated_at\":");
    shop_buf_add_ts(b, PQgetvalue(res, first, SHOP_O_UPDATED_AT));
    shop_buf_addc(b, '}');
}

/* The row after the last line of the order starting at `first`. */
static int
order_end(const PGresult *res, int first)
{
    const char *id = PQgetvalue(res, first, SHOP_O_ID);
    int row = first + 1;

    while (row < PQntuples(res) && strcmp(PQgetvalue(res, row, SHOP_O_ID), id) == 0) {
        row++;
    }
    return row;
}

/* One order with its ETag; with its Location where it was placed. */
static void
reply_order(shop_ctx *c, const PGresult *res, int status, int location)
{
    shop_buf b;

    if (PQntuples(res) == 0) {
        shop_fail(c, SHOP_E_NOT_FOUND, "no such order");
        return;
    }
    shop_header_add(c, "ETag", shop_etag(c->arena, PQgetvalue(res, 0, SHOP_O_VERSION)));
    if (location) {
        shop_buf loc;
        shop_buf_init(&loc, c->arena, 80);
        shop_buf_add_str(&loc, c->req->base);
        shop_buf_adds(&loc, "/orders/");
        shop_buf_adds(&loc, PQgetvalue(res, 0, SHOP_O_ID));
        shop_header_add(c, "Location", shop_buf_str(&loc));
    }
    shop_buf_init(&b, c->arena, 512);
    add_order(&b, res, 0, order_end(res, 0));
    shop_reply_json(c, status, &b);
}

/* ---- POST /orders ------------------------------------------------------------ */

/* A sane address: one '@', a local part of 1-64, a dotted domain, no
 * spaces, no control characters. Deliverability is not ours to judge. */
static int
email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    size_t n = strlen(s);

    if (at == NULL || strchr(at + 1, '@') != NULL || at == s || at - s > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '<' || ch == '>' || ch == '"' || ch == ',' || ch == ';') {
            return 0;
        }
    }
    const char *domain = at + 1;
    const char *dot = strrchr(domain, '.');
    return dot != NULL && dot != domain && dot[1] != '\0' && domain[0] != '.'
           && strstr(domain, "..") == NULL && s[n - 1] != '.';
}

/* Idempotency-Key: 1-200 printable ASCII characters. */
static int
idempotency_key_ok(shop_str k)
{
    if (k.n < 1 || k.n > 200) {
        return 0;
    }
    for (size_t i = 0; i < k.n; i++) {
        if ((unsigned char) k.p[i] < 0x20 || (unsigned char) k.p[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

void
shop_order_place_plan(shop_ctx *c)
{
    static const char *const known[] = { "items", "customer_email", NULL };
    shop_field_errors errs = { 0 };
    shop_fields f;
    shop_lines lines;
    const char *email = NULL;
    shop_query *q;

    shop_fields_begin(&f, c, c->json, NULL, &errs, known);
    shop_read_lines(&f, SHOP_ORDER_MAX_LINES, SHOP_ORDER_MAX_QUANTITY, &lines);
    if (shop_field_text(&f, "customer_email", 1, 3, SHOP_EMAIL_MAX_CHARS, 0, &email) == 1
        && !email_ok(email)) {
        shop_fields_fail(&f, "customer_email", "must be an email address");
    }
    if (shop_fields_end(c, &errs) != 0) {
        return;
    }
    shop_str key = c->req->idempotency_key;
    if (key.p != NULL && !idempotency_key_ok(key)) {   /* present, even if empty */
        shop_fail(c, SHOP_E_BAD_REQUEST, "Idempotency-Key must be 1-200 printable ASCII characters");
        return;
    }

    /* What "the same body" means for Idempotency-Key: the same address and
     * lines, however the JSON was spelled. */
    shop_buf fp;
    shop_buf_init(&fp, c->arena, 64 + (size_t) lines.n * 32);
    shop_buf_adds(&fp, email);
    for (int i = 0; i < lines.n; i++) {
        shop_buf_addc(&fp, '\n');
        shop_buf_adds(&fp, lines.skus[i]);
        shop_buf_addc(&fp, ' ');
        shop_buf_add_int(&fp, lines.quantities[i]);
    }
    shop_str fps = shop_buf_str(&fp);

    if ((q = shop_plan_query(c, SHOP_STMT_ORDER_PLACE)) == NULL) {
        return;
    }
    q->values[0] = shop_pg_text_array(c->arena, lines.skus, lines.n);
    q->values[1] = shop_pg_int_array(c->arena, lines.quantities, lines.n);
    q->values[2] = email;
    q->values[3] = key.p != NULL ? shop_strndup(c->arena, key.p, key.n) : NULL;
    q->values[4] = shop_sha256_hex(c->arena, fps.p, fps.n);
}

void
shop_order_place_render(shop_ctx *c, const shop_result *r)
{
    if (r[0].status == SHOP_DB_UNAVAILABLE || r[0].status == SHOP_DB_TIMEOUT) {
        /* The statement may have committed before the answer was lost (a
         * retryable conflict rolled back: the generic answer). */
        shop_fail(c, SHOP_E_UNAVAILABLE, "the order may or may not have been placed: retry with "
                  "the same Idempotency-Key, which returns the order if it was");
        return;
    }
    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    /* A replay (same Idempotency-Key and body) answers like the first time, with 200. */
    int replayed = PQntuples(r[0].res) > 0 && PQgetvalue(r[0].res, 0, SHOP_O_REPLAYED)[0] == 't';
    reply_order(c, r[0].res, replayed ? 200 : 201, 1);
}

/* ---- GET /orders/{id} ---------------------------------------------------------- */

void
shop_order_get_plan(shop_ctx *c)
{
    const char *id;
    shop_query *q;

    if (!shop_uuid_parse(c->arena, c->params[0], &id)) {
        shop_fail(c, SHOP_E_NOT_FOUND, "no such order");
        return;
    }
    if ((q = shop_plan_query(c, SHOP_STMT_ORDER_GET)) != NULL) {
        q->values[0] = id;
    }
}

void
shop_order_get_render(shop_ctx *c, const shop_result *r)
{
    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    if (PQntuples(r[0].res) > 0 && c->req->if_none_match.n
        && shop_if_none_match(c->req->if_none_match, PQgetvalue(r[0].res, 0, SHOP_O_VERSION))) {
        shop_header_add(c, "ETag", shop_etag(c->arena, PQgetvalue(r[0].res, 0, SHOP_O_VERSION)));
        shop_reply(c, 304, SHOP_NULL_STR, SHOP_NULL_STR);
        return;
    }
    reply_order(c, r[0].res, 200, 0);
}

/* ---- GET /orders ----------------------------------------------------------------- */

typedef struct {
    int limit;
} order_list_state;

void
shop_order_list_plan(shop_ctx *c)
{
    shop_str v;
    shop_page page;
    const char *status = NULL;
    shop_order_state st;
    order_list_state *ls;
    shop_query *q;

    if (shop_page_params(c, 'o', &page) != 0) {
        return;
    }
    switch (shop_query_param(c->arena, c->req->query, "status", &v)) {
    case SHOP_QP_FOUND:
        if (shop_order_state_parse(v, &st) == 0) {
            status = shop_order_state_name(st);
            break;
        }
        /* fall through */
    case SHOP_QP_BAD:
        shop_fail(c, SHOP_E_BAD_REQUEST,
                  "status must be one of pending, paid, packed, shipped, delivered, cancelled, refunded");
        return;
    case SHOP_QP_ABSENT:
        break;
    }
    if ((ls = shop_alloc(c->arena, sizeof(*ls))) == NULL
        || (q = shop_plan_query(c, SHOP_STMT_ORDER_LIST)) == NULL) {
        return;
    }
    ls->limit = page.limit;
    c->state = ls;
    q->values[0] = page.after;
    q->values[1] = shop_fmt_int(c->arena, page.limit + 1);
    q->values[2] = status;
}

void
shop_order_list_render(shop_ctx *c, const shop_result *r)
{
    const order_list_state *ls = c->state;
    const PGresult *res = r[0].res;
    shop_buf b;
    int shown = 0, row = 0, rows;
    const char *last_seq = NULL;

    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    rows = PQntuples(res);
    shop_buf_init(&b, c->arena, 256 + (size_t) rows * 200);
    shop_buf_adds(&b, "{\"items\":[");
    while (row < rows && shown < ls->limit) {
        int end = order_end(res, row);
        if (shown++) {
            shop_buf_addc(&b, ',');
        }
        add_order(&b, res, row, end);
        last_seq = PQgetvalue(res, row, SHOP_O_SEQ);
        row = end;
    }
    shop_buf_adds(&b, "],\"next\":");
    if (row < rows && last_seq != NULL) {
        shop_str cur = shop_cursor_encode(c->arena, 'o', shop_cstr(last_seq));
        shop_buf_add_json(&b, cur.p, cur.n);
    } else {
        shop_buf_adds(&b, "null");
    }
    shop_buf_addc(&b, '}');
    shop_reply_json(c, 200, &b);
}

/* ---- POST /orders/{id}/transitions ------------------------------------------------ */

typedef struct {
    shop_order_state to;
} transition_state;

/* Fills a transition statement's move parameters ($2..$4 of order_transition). */
void
shop_order_move_params(shop_ctx *c, const char **values, shop_order_state to)
{
    values[0] = shop_order_state_name(to);
    values[1] = shop_order_sources(c->arena, to);
    values[2] = shop_order_restock_sources(c->arena, to);
}

void
shop_order_transition_plan(shop_ctx *c)
{
    static const char *const known[] = { "to", NULL };
    shop_field_errors errs = { 0 };
    shop_fields f;
    const char *id, *to_name = NULL;
    transition_state *ts;
    shop_query *q;

    if (!shop_uuid_parse(c->arena, c->params[0], &id)) {
        shop_fail(c, SHOP_E_NOT_FOUND, "no such order");
        return;
    }
    if ((ts = shop_alloc(c->arena, sizeof(*ts))) == NULL) {
        return;
    }
    shop_fields_begin(&f, c, c->json, NULL, &errs, known);
    if (shop_field_text(&f, "to", 1, 1, 32, 0, &to_name) == 1
        && shop_order_state_parse(shop_cstr(to_name), &ts->to) != 0) {
        shop_fields_fail(&f, "to",
                         "must be one of pending, paid, packed, shipped, delivered, cancelled, refunded");
    }
    if (shop_fields_end(c, &errs) != 0 || (q = shop_plan_query(c, SHOP_STMT_ORDER_TRANSITION)) == NULL) {
        return;
    }
    c->state = ts;
    q->values[0] = id;
    shop_order_move_params(c, &q->values[1], ts->to);
    q->values[4] = shop_if_match_versions(c->arena, c->req->if_match);
}

/* 409 invalid-transition: the database said which state the order is in. */
int
shop_order_refuse_move(shop_ctx *c, const shop_result *r, shop_order_state to)
{
    shop_order_state from;
    shop_buf m;

    if (r->status != SHOP_DB_RAISED || strcmp(r->sqlstate, "SHTRN") != 0) {
        return 0;
    }
    if (r->detail == NULL || shop_order_state_parse(shop_cstr(r->detail), &from) != 0) {
        shop_fail(c, SHOP_E_INTERNAL, "the server could not complete the request");
        return 1;
    }
    shop_buf_init(&m, c->arena, 128);
    shop_buf_adds(&m, ",\"from\":\"");
    shop_buf_adds(&m, shop_order_state_name(from));
    shop_buf_adds(&m, "\",\"to\":\"");
    shop_buf_adds(&m, shop_order_state_name(to));
    shop_buf_adds(&m, "\",\"allowed\":");
    shop_buf_add_next_states(&m, from);
    shop_fail_ext(c, SHOP_E_INVALID_TRANSITION, "the order cannot make this move from its current status",
                  shop_buf_str(&m));
    return 1;
}

void
shop_order_transition_render(shop_ctx *c, const shop_result *r)
{
    const transition_state *ts = c->state;

    if (shop_order_refuse_move(c, &r[0], ts->to) || !shop_db_ok(c, &r[0])) {
        return;
    }
    reply_order(c, r[0].res, 200, 0);
}

/* Shared with the payment webhook. */
void
shop_order_reply(shop_ctx *c, const PGresult *res)
{
    reply_order(c, res, 200, 0);
}
