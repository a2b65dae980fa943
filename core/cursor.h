/* Keyset pagination cursors: opaque to clients, strict to decode. A cursor
 * is base64url (no padding) of "<kind>:<last key>". */
#ifndef SHOP_CURSOR_H
#define SHOP_CURSOR_H

#include "arena.h"
#include "buf.h"

shop_str shop_cursor_encode(shop_arena *a, char kind, shop_str key);
/* Returns 0 and the key, or -1 when s is not a cursor of that kind. */
int      shop_cursor_decode(shop_arena *a, char kind, shop_str s, shop_str *key);

#endif
