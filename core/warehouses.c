/* Warehouses and stock levels (the stock check is stockcheck.c). */
#include <string.h>

#include "fields.h"
#include "handlers.h"

static int
is_code_first(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* ^[a-z0-9][a-z0-9_-]{0,31}$ */
static int
code_ok(shop_str code)
{
    return code.n >= 1 && is_code_first((unsigned char) code.p[0])
           && shop_token_ok(code, 1, 32, shop_is_category_char);
}

static void
add_warehouse(shop_buf *b, const PGresult *res, int row)
{
    shop_buf_adds(b, "{\"code\":");
    shop_buf_add_jsons(b, PQgetvalue(res, row, SHOP_W_CODE));
    shop_buf_adds(b, ",\"name\":");
    shop_buf_add_jsons(b, PQgetvalue(res, row, SHOP_W_NAME));
    shop_buf_adds(b, ",\"latency_ms\":");
    shop_buf_adds(b, PQgetvalue(res, row, SHOP_W_LATENCY_MS));
    shop_buf_addc(b, '}');
}

void
shop_warehouse_list_plan(shop_ctx *c)
{
    shop_query *q = shop_plan_query(c, SHOP_STMT_WAREHOUSE_LIST);

    if (q != NULL) {
        q->target = SHOP_TARGET_READ;
    }
}

void
shop_warehouse_list_render(shop_ctx *c, const shop_result *r)
{
    shop_buf b;

    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    shop_buf_init(&b, c->arena, 256);
    shop_buf_adds(&b, "{\"items\":[");
    for (int i = 0; i < PQntuples(r[0].res); i++) {
        if (i) {
            shop_buf_addc(&b, ',');
        }
        add_warehouse(&b, r[0].res, i);
    }
    shop_buf_adds(&b, "]}");
    shop_reply_json(c, 200, &b);
}

void
shop_warehouse_put_plan(shop_ctx *c)
{
    static const char *const known[] = { "name", "latency_ms", NULL };
    shop_field_errors errs = { 0 };
    shop_fields f;
    const char *name = NULL;
    int64_t latency = 0;
    shop_query *q;

    shop_fields_begin(&f, c, c->json, NULL, &errs, known);
    if (!code_ok(c->params[0])) {
        shop_fields_fail(&f, "code", "must be 1-32 of a-z 0-9 - _, starting with a letter or digit");
    }
    shop_field_text(&f, "name", 1, 1, 200, 0, &name);
    int has_latency = shop_field_int(&f, "latency_ms", 0, 0, 10000, &latency);
    if (shop_fields_end(c, &errs) != 0 || (q = shop_plan_query(c, SHOP_STMT_WAREHOUSE_PUT)) == NULL) {
        return;
    }
    q->values[0] = c->params[0].p;
    q->values[1] = name;
    /* PUT replaces: no latency_ms means the default, 0. */
    q->values[2] = shop_fmt_int(c->arena, has_latency == 1 ? latency : 0);
}

void
shop_warehouse_put_render(shop_ctx *c, const shop_result *r)
{
    shop_buf b;

    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    int created = PQgetvalue(r[0].res, 0, SHOP_W_CREATED)[0] == 't';
    if (created) {
        shop_buf loc;
        shop_buf_init(&loc, c->arena, 64);
        shop_buf_add_str(&loc, c->req->base);
        shop_buf_adds(&loc, "/warehouses/");
        shop_buf_adds(&loc, PQgetvalue(r[0].res, 0, SHOP_W_CODE));
        shop_header_add(c, "Location", shop_buf_str(&loc));
    }
    shop_buf_init(&b, c->arena, 128);
    add_warehouse(&b, r[0].res, 0);
    shop_reply_json(c, created ? 201 : 200, &b);
}

void
shop_stock_put_plan(shop_ctx *c)
{
    static const char *const known[] = { "quantity", NULL };
    shop_field_errors errs = { 0 };
    shop_fields f;
    int64_t quantity = 0;
    shop_query *q;

    if (!code_ok(c->params[0])) {
        shop_fail(c, SHOP_E_NOT_FOUND, "no such warehouse");
        return;
    }
    if (!shop_token_ok(c->params[1], 1, 64, shop_is_sku_char)) {
        shop_fail(c, SHOP_E_NOT_FOUND, "no such sku");
        return;
    }
    shop_fields_begin(&f, c, c->json, NULL, &errs, known);
    shop_field_int(&f, "quantity", 1, 0, 1000000000, &quantity);
    if (shop_fields_end(c, &errs) != 0 || (q = shop_plan_query(c, SHOP_STMT_STOCK_PUT)) == NULL) {
        return;
    }
    q->values[0] = c->params[0].p;
    q->values[1] = c->params[1].p;
    q->values[2] = shop_fmt_int(c->arena, quantity);
}

void
shop_stock_put_render(shop_ctx *c, const shop_result *r)
{
    shop_buf b;

    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    shop_buf_init(&b, c->arena, 128);
    shop_buf_adds(&b, "{\"warehouse\":");
    shop_buf_add_jsons(&b, PQgetvalue(r[0].res, 0, 0));
    shop_buf_adds(&b, ",\"sku\":");
    shop_buf_add_jsons(&b, PQgetvalue(r[0].res, 0, 1));
    shop_buf_adds(&b, ",\"quantity\":");
    shop_buf_adds(&b, PQgetvalue(r[0].res, 0, 2));
    shop_buf_addc(&b, '}');
    shop_reply_json(c, 200, &b);
}
