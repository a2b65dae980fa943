/* A growing byte string in the request arena: response bodies, headers, log
 * lines. Appends never fail loudly; when memory runs out the buffer stops
 * growing and the arena's failed flag turns the response into a 500. */
#ifndef SHOP_BUF_H
#define SHOP_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

typedef struct { const char *p; size_t n; } shop_str;

#define SHOP_STR(lit)  ((shop_str) { (lit), sizeof(lit) - 1 })
#define SHOP_NULL_STR  ((shop_str) { NULL, 0 })

typedef struct shop_buf {
    shop_arena *arena;
    char       *p;
    size_t      len;
    size_t      cap;
} shop_buf;

void  shop_buf_init(shop_buf *b, shop_arena *a, size_t cap);
void  shop_buf_add(shop_buf *b, const char *s, size_t n);
void  shop_buf_adds(shop_buf *b, const char *s);
void  shop_buf_addc(shop_buf *b, char c);
void  shop_buf_add_str(shop_buf *b, shop_str s);
void  shop_buf_add_int(shop_buf *b, int64_t v);
/* s as a JSON string literal: quoted, with ", \ and control characters escaped. */
void  shop_buf_add_json(shop_buf *b, const char *s, size_t n);
void  shop_buf_add_jsons(shop_buf *b, const char *s);
/* The contents, NUL-terminated (the NUL is not counted). */
shop_str shop_buf_str(shop_buf *b);

int   shop_str_eq(shop_str a, const char *lit);
int   shop_str_eq_nocase(shop_str a, const char *lit);
shop_str shop_str_trim(shop_str s);
/* Takes the next sep-separated item off *rest, trimmed of blanks; 0 when
 * *rest is used up (or was absent). "a," holds "a" and "". */
int      shop_str_split(shop_str *rest, char sep, shop_str *item);
shop_str shop_cstr(const char *s);

#endif
