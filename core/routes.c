/* The route table: every endpoint of API.md, its flags and its handler. */
#include "handler.h"
#include "handlers.h"

#define ADMIN_JSON (SHOP_R_ADMIN | SHOP_R_JSON_BODY)

const shop_route shop_routes[] = {
    { SHOP_GET,    "/healthz",        0, shop_healthz_plan, NULL },
    { SHOP_GET,    "/readyz",         0, shop_readyz_plan, shop_readyz_render },
    { SHOP_GET,    "/metrics",        0, shop_metrics_plan, NULL },   /* token unless metrics_public */

    { SHOP_GET,    "/products",       0, shop_product_list_plan, shop_product_list_render },
    { SHOP_POST,   "/products",       ADMIN_JSON, shop_product_create_plan, shop_product_write_render },
    { SHOP_GET,    "/products/{id}",  0, shop_product_get_plan, shop_product_get_render },
    { SHOP_PATCH,  "/products/{id}",  ADMIN_JSON | SHOP_R_MERGE_PATCH,
      shop_product_update_plan, shop_product_write_render },
    { SHOP_DELETE, "/products/{id}",  SHOP_R_ADMIN, shop_product_delete_plan, shop_product_delete_render },

    { SHOP_GET,    "/warehouses",     0, shop_warehouse_list_plan, shop_warehouse_list_render },
    { SHOP_PUT,    "/warehouses/{code}", ADMIN_JSON, shop_warehouse_put_plan, shop_warehouse_put_render },
    { SHOP_PUT,    "/warehouses/{code}/stock/{sku}", ADMIN_JSON, shop_stock_put_plan, shop_stock_put_render },

    { SHOP_POST,   "/stock/check",    SHOP_R_JSON_BODY, shop_stock_check_plan, shop_stock_check_render },

    { SHOP_POST,   "/orders",         SHOP_R_JSON_BODY, shop_order_place_plan, shop_order_place_render },
    { SHOP_GET,    "/orders",         SHOP_R_ADMIN, shop_order_list_plan, shop_order_list_render },
    { SHOP_GET,    "/orders/{id}",    0, shop_order_get_plan, shop_order_get_render },
    { SHOP_POST,   "/orders/{id}/transitions", ADMIN_JSON,
      shop_order_transition_plan, shop_order_transition_render },

    { SHOP_GET,    "/events",         0, shop_events_plan, NULL },

    { SHOP_POST,   "/webhooks/payments", SHOP_R_SIGNED | SHOP_R_JSON_BODY,
      shop_webhook_plan, shop_webhook_render },
};

const size_t shop_route_count = sizeof(shop_routes) / sizeof(shop_routes[0]);
