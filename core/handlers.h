/* Every handler's plan and render step, for the route table. */
#ifndef SHOP_HANDLERS_H
#define SHOP_HANDLERS_H

#include "handler.h"

void shop_healthz_plan(shop_ctx *c);
void shop_readyz_plan(shop_ctx *c);
void shop_readyz_render(shop_ctx *c, const shop_result *r);

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

#endif
