/* Paths and query strings, as sent (still percent-encoded). */
#ifndef SHOP_URI_H
#define SHOP_URI_H

#include <stdint.h>

#include "arena.h"
#include "buf.h"

/* Percent-decodes s ('+' is a space when plus_space). Returns 0, or -1 when
 * an escape is malformed or the result holds a NUL or is not UTF-8. */
int shop_pct_decode(shop_arena *a, shop_str s, int plus_space, shop_str *out);

typedef enum {
    SHOP_QP_ABSENT = 0,
    SHOP_QP_FOUND,
    SHOP_QP_BAD        /* malformed escape or given twice */
} shop_qp;

/* Looks `name` up in a raw query string and decodes its value. */
shop_qp shop_query_param(shop_arena *a, shop_str query, const char *name, shop_str *value);

/* A positive 63-bit decimal without sign or leading zeros; 0 when s is not one. */
int64_t shop_parse_id(shop_str s);

#endif
