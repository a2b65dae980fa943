/* The route table: every endpoint of API.md, its flags and its handler. */
#include "handler.h"
#include "handlers.h"

const shop_route shop_routes[] = {
    { SHOP_GET,    "/healthz",        0, shop_healthz_plan, NULL },
    { SHOP_GET,    "/readyz",         0, shop_readyz_plan, shop_readyz_render },

    { SHOP_GET,    "/products",       0, shop_product_list_plan, shop_product_list_render },
    { SHOP_POST,   "/products",       SHOP_R_ADMIN | SHOP_R_JSON_BODY,
      shop_product_create_plan, shop_product_write_render },
    { SHOP_GET,    "/products/{id}",  0, shop_product_get_plan, shop_product_get_render },
    { SHOP_PATCH,  "/products/{id}",  SHOP_R_ADMIN | SHOP_R_JSON_BODY | SHOP_R_MERGE_PATCH,
      shop_product_update_plan, shop_product_write_render },
    { SHOP_DELETE, "/products/{id}",  SHOP_R_ADMIN, shop_product_delete_plan, shop_product_delete_render },
};

const size_t shop_route_count = sizeof(shop_routes) / sizeof(shop_routes[0]);
