#include "page.h"

#include <stdio.h>
#include <string.h>

#include "cursor.h"
#include "handler.h"
#include "uri.h"

int
shop_page_params(shop_ctx *c, char kind, shop_page *page)
{
    shop_str v, key;

    page->limit = SHOP_PAGE_DEFAULT;
    page->after = "0";
    switch (shop_query_param(c->arena, c->req->query, "limit", &v)) {
    case SHOP_QP_FOUND: {
        int64_t n = shop_parse_id(v);
        if (n >= 1 && n <= SHOP_PAGE_MAX) {
            page->limit = (int) n;
            break;
        }
    }
        /* fall through */
    case SHOP_QP_BAD:
        shop_fail(c, SHOP_E_BAD_REQUEST, "limit must be an integer from 1 to 500");
        return -1;
    case SHOP_QP_ABSENT:
        break;
    }
    switch (shop_query_param(c->arena, c->req->query, "after", &v)) {
    case SHOP_QP_FOUND:
        if (shop_cursor_decode(c->arena, kind, v, &key) == 0 && shop_parse_id(key) > 0) {
            page->after = key.p;
            break;
        }
        /* fall through */
    case SHOP_QP_BAD:
        shop_fail(c, SHOP_E_BAD_REQUEST, "after is not a valid cursor");
        return -1;
    case SHOP_QP_ABSENT:
        break;
    }
    return 0;
}

void
shop_read_lines(shop_fields *f, int max_items, int64_t max_quantity, shop_lines *out)
{
    static const char *const item_known[] = { "sku", "quantity", NULL };
    struct json_object *items = NULL;
    shop_ctx *c = f->c;
    char msg[48];
    int n;

    memset(out, 0, sizeof(*out));
    if (!json_object_object_get_ex(f->obj, "items", &items) || items == NULL) {
        shop_fields_fail(f, "items", "is required");
        return;
    }
    if (!json_object_is_type(items, json_type_array)) {
        shop_fields_fail(f, "items", "must be an array");
        return;
    }
    n = (int) json_object_array_length(items);
    if (n < 1 || n > max_items) {
        snprintf(msg, sizeof(msg), "must have 1 to %d elements", max_items);
        shop_fields_fail(f, "items", msg);
        return;
    }
    out->skus = shop_calloc(c->arena, sizeof(*out->skus) * (size_t) n);
    out->quantities = shop_calloc(c->arena, sizeof(*out->quantities) * (size_t) n);
    if (out->skus == NULL || out->quantities == NULL) {
        return;
    }
    for (int i = 0; i < n; i++) {
        struct json_object *item = json_object_array_get_idx(items, (size_t) i);
        char name[24];
        shop_fields g;

        if (!json_object_is_type(item, json_type_object)) {
            snprintf(name, sizeof(name), "items[%d]", i);
            shop_fields_fail(f, name, "must be an object");
            continue;
        }
        snprintf(name, sizeof(name), "items[%d].", i);
        shop_fields_begin(&g, c, item, shop_strndup(c->arena, name, strlen(name)), f->errs, item_known);
        if (shop_field_token(&g, "sku", 1, 1, 64, shop_is_sku_char,
                             "must be 1-64 of A-Z a-z 0-9 - _ .", &out->skus[i]) == 1) {
            for (int j = 0; j < i; j++) {
                if (out->skus[j] != NULL && strcmp(out->skus[j], out->skus[i]) == 0) {
                    shop_fields_fail(&g, "sku", "appears more than once");
                    break;
                }
            }
        }
        shop_field_int(&g, "quantity", 1, 1, max_quantity, &out->quantities[i]);
    }
    out->n = n;
}
