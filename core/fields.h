/* Typed reads of a JSON object's members that collect every problem, so one
 * 422 names all the fields that are wrong. */
#ifndef SHOP_FIELDS_H
#define SHOP_FIELDS_H

#include <stdint.h>

#include <json-c/json.h>

#include "shop.h"

typedef struct {
    shop_buf buf;    /* the problem's "errors" array members so far */
    int      n;
} shop_field_errors;

typedef struct shop_fields {
    shop_ctx           *c;
    struct json_object *obj;
    const char         *prefix;   /* "items[2]." for members of nested objects */
    shop_field_errors  *errs;
} shop_fields;

/* Starts reading obj; every member not in known (NULL-terminated) is an
 * error. errs is shared by nested readers of the same body. */
void shop_fields_begin(shop_fields *f, shop_ctx *c, struct json_object *obj,
                       const char *prefix, shop_field_errors *errs, const char *const *known);
void shop_fields_fail(shop_fields *f, const char *name, const char *message);
/* Answers 422 with every collected error and returns -1; 0 when none. */
int  shop_fields_end(shop_ctx *c, shop_field_errors *errs);

/* Each returns 1 (present and valid, *out set), 0 (absent or null; an error
 * if required) or -1 (invalid, error recorded). */

/* Text of min...max characters; single-line text refuses control characters,
 * multiline text allows tab, CR and LF. */
int shop_field_text(shop_fields *f, const char *name, int required,
                    size_t min_chars, size_t max_chars, int multiline, const char **out);

/* ASCII of min...max bytes, each byte accepted by allowed(); `shape` is the
 * message when not ("must be 1-64 of A-Z a-z 0-9 - _ ."). */
int shop_field_token(shop_fields *f, const char *name, int required, size_t min, size_t max,
                     int (*allowed)(int ch), const char *shape, const char **out);

/* An integer (no fraction, no exponent) in min...max. */
int shop_field_int(shop_fields *f, const char *name, int required,
                   int64_t min, int64_t max, int64_t *out);

/* 1 when the member is present and null. */
int shop_field_is_null(shop_fields *f, const char *name);

/* Character classes for shop_field_token() and path parameters. */
int shop_is_sku_char(int ch);
int shop_is_slug_char(int ch);
int shop_is_category_char(int ch);
int shop_is_upper(int ch);
int shop_token_ok(shop_str s, size_t min, size_t max, int (*allowed)(int ch));

#endif
