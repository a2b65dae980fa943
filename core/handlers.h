/* Every handler's plan and render step, for the route table. */
#ifndef SHOP_HANDLERS_H
#define SHOP_HANDLERS_H

#include "handler.h"
#include "order_state.h"

void shop_healthz_plan(shop_ctx *c);
void shop_readyz_plan(shop_ctx *c);
void shop_readyz_render(shop_ctx *c, const shop_result *r);
void shop_metrics_plan(shop_ctx *c);

void shop_product_list_plan(shop_ctx *c);
void shop_product_list_render(shop_ctx *c, const shop_result *r);
void shop_product_get_plan(shop_ctx *c);
void shop_product_get_render(shop_ctx *c, const shop_result *r);
void shop_product_create_plan(shop_ctx *c);
void shop_product_update_plan(shop_ctx *c);
/* Create and update answer alike: the product, its ETag. */
void shop_product_write_render(shop_ctx *c, const shop_result *r);
void shop_product_delete_plan(shop_ctx *c);
void shop_product_delete_render(shop_ctx *c, const shop_result *r);

void shop_warehouse_list_plan(shop_ctx *c);
void shop_warehouse_list_render(shop_ctx *c, const shop_result *r);
void shop_warehouse_put_plan(shop_ctx *c);
void shop_warehouse_put_render(shop_ctx *c, const shop_result *r);
void shop_stock_put_plan(shop_ctx *c);
void shop_stock_put_render(shop_ctx *c, const shop_result *r);

void shop_stock_check_plan(shop_ctx *c);
void shop_stock_check_render(shop_ctx *c, const shop_result *r);

void shop_order_place_plan(shop_ctx *c);
void shop_order_place_render(shop_ctx *c, const shop_result *r);
void shop_order_get_plan(shop_ctx *c);
void shop_order_get_render(shop_ctx *c, const shop_result *r);
void shop_order_list_plan(shop_ctx *c);
void shop_order_list_render(shop_ctx *c, const shop_result *r);
void shop_order_transition_plan(shop_ctx *c);
void shop_order_transition_render(shop_ctx *c, const shop_result *r);

void shop_events_plan(shop_ctx *c);

void shop_webhook_plan(shop_ctx *c);
void shop_webhook_render(shop_ctx *c, const shop_result *r);

/* Shared by transitions and the webhook: the move's statement parameters
 * (target, source states, restocking states), the 409 when the database
 * says the order is elsewhere (returns 1 when it answered), and the reply. */
void shop_order_move_params(shop_ctx *c, const char **values, shop_order_state to);
int  shop_order_refuse_move(shop_ctx *c, const shop_result *r, shop_order_state to);
void shop_order_reply(shop_ctx *c, const PGresult *res);

#endif
