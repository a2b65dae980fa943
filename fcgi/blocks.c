/* The memory behind a thread's request arena: malloc'd blocks on a list,
 * freed together when the request ends. One ordinary block survives for the
 * next request, so small requests never call malloc. */
#include "shop_fcgi.h"

#include <stdlib.h>

/* Blocks up to this size are worth keeping; a large body's block is not. */
#define FCGI_BLOCK_KEEP  ((size_t) 64 * 1024)

struct fcgi_block {
    fcgi_block *next;
    size_t      size;
    /* Keeps the data behind the header 16-byte aligned, as malloc's is. */
    _Alignas(16) char data[];
};

void *
fcgi_blocks_grow(void *owner, size_t size)
{
    fcgi_blocks *b = owner;
    fcgi_block *blk;

    if (b->spare != NULL && b->spare->size >= size) {
        blk = b->spare;
        b->spare = NULL;
    } else {
        blk = malloc(sizeof(fcgi_block) + size);
        if (blk == NULL) {
            return NULL;
        }
        blk->size = size;
    }
    blk->next = b->used;
    b->used = blk;
    return blk->data;
}

void
fcgi_blocks_reset(fcgi_blocks *b)
{
    fcgi_block *blk, *next;

    for (blk = b->used; blk != NULL; blk = next) {
        next = blk->next;
        if (b->spare == NULL && blk->size <= FCGI_BLOCK_KEEP) {
            b->spare = blk;
            blk->next = NULL;
        } else {
            free(blk);
        }
    }
    b->used = NULL;
}

void
fcgi_blocks_free(fcgi_blocks *b)
{
    fcgi_blocks_reset(b);
    free(b->spare);
    b->spare = NULL;
}
