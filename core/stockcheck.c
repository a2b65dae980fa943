/* POST /stock/check: one statement per warehouse, run concurrently by the
 * front-end, each with the stock deadline; the answer merges whatever came
 * back in time. Only "no warehouse answered" is 503. */
#include <stdio.h>
#include <string.h>

#include "fields.h"
#include "handlers.h"
#include "page.h"
#include "params.h"

#define SHOP_CHECK_MAX_ITEMS    100
#define SHOP_CHECK_MAX_QUANTITY 1000000000

void
shop_stock_check_plan(shop_ctx *c)
{
    static const char *const known[] = { "items", NULL };
    shop_field_errors errs = { 0 };
    shop_fields f;
    shop_lines *st;

    if ((st = shop_alloc(c->arena, sizeof(*st))) == NULL) {
        return;
    }
    shop_fields_begin(&f, c, c->json, NULL, &errs, known);
    shop_read_lines(&f, SHOP_CHECK_MAX_ITEMS, SHOP_CHECK_MAX_QUANTITY, st);
    if (shop_fields_end(c, &errs) != 0) {
        return;
    }
    c->state = st;
    if (c->req->nwarehouses == 0) {
        shop_fail(c, SHOP_E_UNAVAILABLE, "no warehouse is known to the shop");
        return;
    }
    const char *skus = shop_pg_text_array(c->arena, st->skus, st->n);
    for (int w = 0; w < c->req->nwarehouses; w++) {
        shop_query *q = shop_plan_query(c, SHOP_STMT_WAREHOUSE_STOCK);
        if (q == NULL) {
            return;
        }
        q->target = SHOP_TARGET_WAREHOUSE(w);
        q->deadline_ms = (int) c->settings->stock_deadline_ms;
        q->values[0] = c->req->warehouses[w];
        q->values[1] = skus;
    }
}

static const char *
warehouse_status(const shop_result *r)
{
    switch (r->status) {
    case SHOP_DB_OK:
        return "ok";
    case SHOP_DB_TIMEOUT:
        return "timeout";
    case SHOP_DB_UNIQUE:
    case SHOP_DB_FOREIGN_KEY:
    case SHOP_DB_CHECK:
    case SHOP_DB_RAISED:
    case SHOP_DB_RETRY:
    case SHOP_DB_UNAVAILABLE:
    case SHOP_DB_ERROR:
        return "error";
    }
    return "error";
}

void
shop_stock_check_render(shop_ctx *c, const shop_result *r)
{
    const shop_lines *st = c->state;
    int nw = c->nqueries, answered = 0;
    shop_buf b;

    for (int w = 0; w < nw; w++) {
        /* A warehouse answer that does not hold one row per sku is an error. */
        answered += r[w].status == SHOP_DB_OK && PQntuples(r[w].res) == st->n;
    }
    if (answered == 0) {
        shop_fail(c, SHOP_E_UNAVAILABLE, "no warehouse answered the stock check in time");
        return;
    }
    shop_buf_init(&b, c->arena, 256 + (size_t) st->n * (96 + (size_t) nw * 24));
    shop_buf_adds(&b, "{\"items\":[");
    for (int i = 0; i < st->n; i++) {
        int64_t available = 0;
        int known = 0, k = 0;
        shop_buf per;

        shop_buf_init(&per, c->arena, 32 + (size_t) nw * 24);
        for (int w = 0; w < nw; w++) {
            if (r[w].status != SHOP_DB_OK || PQntuples(r[w].res) != st->n
                || PQgetvalue(r[w].res, i, SHOP_WS_KNOWN)[0] != 't') {
                continue;
            }
            const char *qty = PQgetvalue(r[w].res, i, SHOP_WS_QUANTITY);
            known = 1;
            available += shop_parse_int(qty);
            if (k++) {
                shop_buf_addc(&per, ',');
            }
            shop_buf_add_jsons(&per, c->req->warehouses[w]);
            shop_buf_addc(&per, ':');
            shop_buf_adds(&per, qty);
        }
        if (i) {
            shop_buf_addc(&b, ',');
        }
        shop_buf_adds(&b, "{\"sku\":");
        shop_buf_add_jsons(&b, st->skus[i]);
        shop_buf_adds(&b, ",\"requested\":");
        shop_buf_add_int(&b, st->quantities[i]);
        shop_buf_adds(&b, ",\"available\":");
        shop_buf_add_int(&b, available);
        shop_buf_adds(&b, ",\"by_warehouse\":{");
        shop_buf_add(&b, per.p, per.len);
        shop_buf_adds(&b, "},\"ok\":");
        shop_buf_adds(&b, known && available >= st->quantities[i] ? "true" : "false");
        if (!known) {
            shop_buf_adds(&b, ",\"unknown\":true");
        }
        shop_buf_addc(&b, '}');
    }
    shop_buf_adds(&b, "],\"warehouses\":{");
    for (int w = 0; w < nw; w++) {
        if (w) {
            shop_buf_addc(&b, ',');
        }
        shop_buf_add_jsons(&b, c->req->warehouses[w]);
        shop_buf_addc(&b, ':');
        shop_buf_addc(&b, '"');
        shop_buf_adds(&b, r[w].status == SHOP_DB_OK && PQntuples(r[w].res) != st->n
                          ? "error" : warehouse_status(&r[w]));
        shop_buf_addc(&b, '"');
    }
    shop_buf_adds(&b, "},\"complete\":");
    shop_buf_adds(&b, answered == nw ? "true" : "false");
    shop_buf_addc(&b, '}');
    shop_reply_json(c, 200, &b);
}
