/* Operations: /healthz answers without the database, /readyz asks it,
 * /metrics shows what the front-end counted. */
#include "auth.h"
#include "handlers.h"
#include "metrics.h"

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

void
shop_metrics_plan(shop_ctx *c)
{
    const shop_metrics_view *m = c->req->metrics;
    shop_buf b;

    if (!c->settings->metrics_public) {
        shop_err e = shop_auth_admin(c->settings, c->req->authorization);
        if (e != SHOP_OK) {
            shop_fail(c, e, e == SHOP_E_UNAUTHORIZED ? "this needs the admin bearer token"
                                                      : "the token is not valid");
            return;
        }
    }
    if (m == NULL || m->counters == NULL) {
        shop_fail(c, SHOP_E_UNAVAILABLE, "this server keeps no metrics");
        return;
    }
    shop_buf_init(&b, c->arena, 16384);
    shop_metrics_render(&b, m->counters, m->slots, m->nslots, m->process);
    shop_reply(c, 200, SHOP_STR("text/plain; version=0.0.4; charset=utf-8"), shop_buf_str(&b));
}
