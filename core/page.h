/* Keyset pagination (?limit=N&after=CURSOR) and the {"sku","quantity"} lines
 * that orders and the stock check both take. */
#ifndef SHOP_PAGE_H
#define SHOP_PAGE_H

#include <stdint.h>

#include "fields.h"

#define SHOP_PAGE_DEFAULT 50
#define SHOP_PAGE_MAX     500

typedef struct {
    int         limit;
    const char *after;     /* the last key of the previous page, "0" for the first */
} shop_page;

/* Reads limit and after (a cursor of `kind`); 0, or -1 with a 400 answered. */
int shop_page_params(shop_ctx *c, char kind, shop_page *page);

typedef struct {
    int          n;
    const char **skus;
    int64_t     *quantities;
} shop_lines;

/* Reads member "items": 1..max_items objects {"sku", "quantity" 1..max_quantity},
 * each sku once. Problems go to f's error list. */
void shop_read_lines(shop_fields *f, int max_items, int64_t max_quantity, shop_lines *out);

#endif
