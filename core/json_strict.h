/* Request bodies are parsed by json-c, which is lenient (single quotes, NaN,
 * lone surrogates, duplicate keys silently merged). shop_json_parse() first
 * checks the text against RFC 8259 itself, then lets json-c build the tree
 * and confirms no object lost a duplicate key on the way. */
#ifndef SHOP_JSON_STRICT_H
#define SHOP_JSON_STRICT_H

#include <stddef.h>

#include <json-c/json.h>

#include "arena.h"

#define SHOP_JSON_MAX_DEPTH 32

/* Returns the parsed value (the caller json_object_put()s it), or NULL with a
 * client-facing reason in *why. The body `null` is NULL with *why NULL. */
struct json_object *shop_json_parse(shop_arena *a, const char *text, size_t len,
                                    const char **why);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int shop_utf8_valid(const char *s, size_t n);
/* Number of code points in valid UTF-8. */
size_t shop_utf8_chars(const char *s, size_t n);

#endif
