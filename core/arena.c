#include "arena.h"

#include <stdint.h>
#include <string.h>

/* Blocks are asked for in this size at least, so small requests stay in one. */
#define SHOP_ARENA_BLOCK 16384

void
shop_arena_init(shop_arena *a, shop_arena_grow_fn grow, void *owner)
{
    a->cur = a->end = NULL;
    a->grow = grow;
    a->owner = owner;
    a->failed = 0;
}

void *
shop_alloc(shop_arena *a, size_t n)
{
    size_t pad = (size_t) (-(uintptr_t) a->cur & 15);
    size_t room = (size_t) (a->end - a->cur);

    if (a->cur != NULL && pad <= room && n <= room - pad) {
        void *p = a->cur + pad;
        a->cur += pad + n;
        return p;
    }

    size_t want = n + 16 > SHOP_ARENA_BLOCK ? n + 16 : SHOP_ARENA_BLOCK;
    char *block = a->grow ? a->grow(a->owner, want) : NULL;
    if (block == NULL) {
        a->failed = 1;
        return NULL;
    }
    pad = (size_t) (-(uintptr_t) block & 15);
    /* A large one-off allocation keeps the current block for later small ones. */
    if (n + 16 >= SHOP_ARENA_BLOCK && a->cur != NULL) {
        return block + pad;
    }
    a->cur = block + pad + n;
    a->end = block + want;
    return block + pad;
}

void *
shop_calloc(shop_arena *a, size_t n)
{
    void *p = shop_alloc(a, n);
    if (p != NULL) {
        memset(p, 0, n);
    }
    return p;
}

char *
shop_strndup(shop_arena *a, const char *s, size_t n)
{
    char *p = shop_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}
