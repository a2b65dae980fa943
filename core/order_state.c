#include "order_state.h"

#include <string.h>

static const char *const state_names[SHOP_ORDER_NSTATES] = {
    [SHOP_ORDER_PENDING] = "pending",     [SHOP_ORDER_PAID] = "paid",
    [SHOP_ORDER_PACKED] = "packed",       [SHOP_ORDER_SHIPPED] = "shipped",
    [SHOP_ORDER_DELIVERED] = "delivered", [SHOP_ORDER_CANCELLED] = "cancelled",
    [SHOP_ORDER_REFUNDED] = "refunded",
};

#define S(x) (1u << SHOP_ORDER_##x)

const char *
shop_order_state_name(shop_order_state s)
{
    return (unsigned) s < SHOP_ORDER_NSTATES ? state_names[s] : "unknown";
}

int
shop_order_state_parse(shop_str name, shop_order_state *out)
{
    for (int i = 0; i < SHOP_ORDER_NSTATES; i++) {
        if (shop_str_eq(name, state_names[i])) {
            *out = (shop_order_state) i;
            return 0;
        }
    }
    return -1;
}

unsigned
shop_order_next(shop_order_state from)
{
    switch (from) {
    case SHOP_ORDER_PENDING:   return S(PAID) | S(CANCELLED);
    case SHOP_ORDER_PAID:      return S(PACKED) | S(REFUNDED);
    case SHOP_ORDER_PACKED:    return S(SHIPPED) | S(REFUNDED);
    case SHOP_ORDER_SHIPPED:   return S(DELIVERED);
    case SHOP_ORDER_DELIVERED: return S(REFUNDED);
    case SHOP_ORDER_CANCELLED: return 0;
    case SHOP_ORDER_REFUNDED:  return 0;
    case SHOP_ORDER_NSTATES:   return 0;
    }
    return 0;
}

int
shop_order_restocks(shop_order_state from, shop_order_state to)
{
    if (!(shop_order_next(from) & (1u << to))) {
        return 0;
    }
    switch (from) {
    case SHOP_ORDER_PENDING:   return to == SHOP_ORDER_CANCELLED;
    case SHOP_ORDER_PAID:      return to == SHOP_ORDER_REFUNDED;
    case SHOP_ORDER_PACKED:    return to == SHOP_ORDER_REFUNDED;
    case SHOP_ORDER_SHIPPED:   return 0;
    case SHOP_ORDER_DELIVERED: return 0;   /* money back, the goods are with the customer */
    case SHOP_ORDER_CANCELLED: return 0;
    case SHOP_ORDER_REFUNDED:  return 0;
    case SHOP_ORDER_NSTATES:   return 0;
    }
    return 0;
}

static const char *
state_set(shop_arena *a, shop_order_state to, int restocking)
{
    shop_buf b;

    shop_buf_init(&b, a, 64);
    shop_buf_addc(&b, '{');
    for (int i = 0; i < SHOP_ORDER_NSTATES; i++) {
        shop_order_state from = (shop_order_state) i;
        if ((shop_order_next(from) & (1u << to)) && (!restocking || shop_order_restocks(from, to))) {
            if (b.len > 1) {
                shop_buf_addc(&b, ',');
            }
            shop_buf_adds(&b, state_names[from]);
        }
    }
    shop_buf_addc(&b, '}');
    return shop_buf_str(&b).p;
}

const char *
shop_order_sources(shop_arena *a, shop_order_state to)
{
    return state_set(a, to, 0);
}

const char *
shop_order_restock_sources(shop_arena *a, shop_order_state to)
{
    return state_set(a, to, 1);
}

void
shop_buf_add_next_states(shop_buf *b, shop_order_state from)
{
    unsigned next = shop_order_next(from);
    int n = 0;

    shop_buf_addc(b, '[');
    for (int i = 0; i < SHOP_ORDER_NSTATES; i++) {
        if (next & (1u << i)) {
            if (n++) {
                shop_buf_addc(b, ',');
            }
            shop_buf_addc(b, '"');
            shop_buf_adds(b, state_names[i]);
            shop_buf_addc(b, '"');
        }
    }
    shop_buf_addc(b, ']');
}
