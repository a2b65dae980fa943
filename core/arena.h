/* Per-request memory: a bump allocator over blocks supplied by the front-end.
 * The front-end owns the blocks (nginx: the request pool; fcgi: a per-thread
 * list it frees or reuses after the response), so nothing allocated here is
 * ever freed one by one. */
#ifndef SHOP_ARENA_H
#define SHOP_ARENA_H

#include <stddef.h>

/* Returns a block of at least `size` bytes that lives until the request ends,
 * or NULL. */
typedef void *(*shop_arena_grow_fn)(void *owner, size_t size);

typedef struct shop_arena {
    char               *cur;
    char               *end;
    shop_arena_grow_fn  grow;
    void               *owner;
    int                 failed;   /* an allocation failed: the response becomes 500 */
} shop_arena;

void  shop_arena_init(shop_arena *a, shop_arena_grow_fn grow, void *owner);
/* 16-byte aligned; NULL (and a->failed set) when the owner has no memory. */
void *shop_alloc(shop_arena *a, size_t n);
void *shop_calloc(shop_arena *a, size_t n);
char *shop_strndup(shop_arena *a, const char *s, size_t n);

#endif
