/* /healthz answers without the database; /readyz asks it. */
#include "handlers.h"

void
shop_healthz_plan(shop_ctx *c)
{
    shop_reply(c, 200, SHOP_STR("application/json; charset=utf-8"), SHOP_STR("{\"status\":\"ok\"}"));
}

void
shop_readyz_plan(shop_ctx *c)
{
    shop_plan_query(c, SHOP_STMT_PING);
}

void
shop_readyz_render(shop_ctx *c, const shop_result *r)
{
    if (r[0].status != SHOP_DB_OK) {
        shop_fail(c, SHOP_E_UNAVAILABLE, "the database does not answer");
        return;
    }
    shop_reply(c, 200, SHOP_STR("application/json; charset=utf-8"), SHOP_STR("{\"status\":\"ready\"}"));
}
