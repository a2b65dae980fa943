/* The order state machine: seven states and the only legal moves.
 *
 *   pending   -> paid | cancelled
 *   paid      -> packed | refunded
 *   packed    -> shipped | refunded
 *   shipped   -> delivered
 *   delivered -> refunded
 *   cancelled, refunded: final
 *
 * Cancelling, and refunding before shipment, return the reserved stock. */
#ifndef SHOP_ORDER_STATE_H
#define SHOP_ORDER_STATE_H

#include "arena.h"
#include "buf.h"

typedef enum {
    SHOP_ORDER_PENDING,
    SHOP_ORDER_PAID,
    SHOP_ORDER_PACKED,
    SHOP_ORDER_SHIPPED,
    SHOP_ORDER_DELIVERED,
    SHOP_ORDER_CANCELLED,
    SHOP_ORDER_REFUNDED,
    SHOP_ORDER_NSTATES
} shop_order_state;

const char *shop_order_state_name(shop_order_state s);
/* Returns 0 and the state, or -1 when name is none. */
int shop_order_state_parse(shop_str name, shop_order_state *out);

/* The states `from` may move to, as a bit set (1 << state). */
unsigned shop_order_next(shop_order_state from);
/* 1 when the move from -> to returns the order's stock to its warehouses. */
int shop_order_restocks(shop_order_state from, shop_order_state to);

/* SQL text[] literals for a move to `to`: the states it may start from, and
 * those of them that restock. */
const char *shop_order_sources(shop_arena *a, shop_order_state to);
const char *shop_order_restock_sources(shop_arena *a, shop_order_state to);

/* JSON array of the states `from` may move to: ["paid","cancelled"]. */
void shop_buf_add_next_states(shop_buf *b, shop_order_state from);

#endif
