/* Statement parameters in PostgreSQL's text forms. */
#ifndef SHOP_PARAMS_H
#define SHOP_PARAMS_H

#include <stdint.h>

#include "arena.h"
#include "buf.h"

/* A text[] literal of n strings, each quoted: {"a","b\"c"}. */
const char *shop_pg_text_array(shop_arena *a, const char *const *items, int n);
/* An integer[] literal: {1,2,3}. */
const char *shop_pg_int_array(shop_arena *a, const int64_t *items, int n);

/* 1 when s is a UUID (8-4-4-4-12 hex digits); *out is its lower-case form. */
int shop_uuid_parse(shop_arena *a, shop_str s, const char **out);

/* A decimal integer as PostgreSQL prints one (trusted input). */
int64_t shop_parse_int(const char *s);

/* Lower-case hex SHA-256 of data. */
const char *shop_sha256_hex(shop_arena *a, const char *data, size_t n);

#endif
