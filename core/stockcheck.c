/* POST /stock/check: one statement per warehouse, run concurrently by the
 * front-end, each with the stock deadline; the answer merges whatever came
 * back in time. Only "no warehouse answered" is 503. */
#include <stdio.h>
#include <string.h>

#include "fields.h"
#include "handlers.h"
#include "params.h"

#define SHOP_CHECK_MAX_ITEMS 100

typedef struct {
    int           n;
    const char  **skus;
    int64_t      *requested;
} check_state;

void
shop_stock_check_plan(shop_ctx *c)
{
    static const char *const known[] = { "items", NULL };
    static const char *const item_known[] = { "sku", "quantity", NULL };
    shop_field_errors errs = { 0 };
    shop_fields f;
    struct json_object *items = NULL;
    check_state *st;
    int n = 0;

    if ((st = shop_calloc(c->arena, sizeof(*st))) == NULL) {
        return;
    }
    shop_fields_begin(&f, c, c->json, NULL, &errs, known);
    if (!json_object_object_get_ex(c->json, "items", &items) || items == NULL) {
        shop_fields_fail(&f, "items", "is required");
    } else if (!json_object_is_type(items, json_type_array)) {
        shop_fields_fail(&f, "items", "must be an array");
    } else if ((n = (int) json_object_array_length(items)) < 1 || n > SHOP_CHECK_MAX_ITEMS) {
        shop_fields_fail(&f, "items", "must have 1 to 100 elements");
        n = 0;
    } else {
        st->skus = shop_calloc(c->arena, sizeof(*st->skus) * (size_t) n);
        st->requested = shop_calloc(c->arena, sizeof(*st->requested) * (size_t) n);
        if (st->skus == NULL || st->requested == NULL) {
            return;
        }
        for (int i = 0; i < n; i++) {
            struct json_object *item = json_object_array_get_idx(items, (size_t) i);
            char prefix[24];
            snprintf(prefix, sizeof(prefix), "items[%d]", i);
            if (!json_object_is_type(item, json_type_object)) {
                shop_fields_fail(&f, prefix, "must be an object");
                continue;
            }
            strcat(prefix, ".");
            shop_fields g;
            shop_fields_begin(&g, c, item, shop_strndup(c->arena, prefix, strlen(prefix)), &errs, item_known);
            if (shop_field_token(&g, "sku", 1, 1, 64, shop_is_sku_char,
                                 "must be 1-64 of A-Z a-z 0-9 - _ .", &st->skus[i]) == 1) {
                for (int j = 0; j < i; j++) {
                    if (st->skus[j] != NULL && strcmp(st->skus[j], st->skus[i]) == 0) {
                        shop_fields_fail(&g, "sku", "appears more than once");
                        break;
                    }
                }
            }
            shop_field_int(&g, "quantity", 1, 1, 1000000000, &st->requested[i]);
        }
    }
    if (shop_fields_end(c, &errs) != 0) {
        return;
    }
    st->n = n;
    c->state = st;
    if (c->req->nwarehouses == 0) {
        shop_fail(c, SHOP_E_UNAVAILABLE, "no warehouse is known to the shop");
        return;
    }
    const char *skus = shop_pg_text_array(c->arena, st->skus, n);
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
    const check_state *st = c->state;
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
        shop_buf_add_int(&b, st->requested[i]);
        shop_buf_adds(&b, ",\"available\":");
        shop_buf_add_int(&b, available);
        shop_buf_adds(&b, ",\"by_warehouse\":{");
        shop_buf_add(&b, per.p, per.len);
        shop_buf_adds(&b, "},\"ok\":");
        shop_buf_adds(&b, known && available >= st->requested[i] ? "true" : "false");
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
