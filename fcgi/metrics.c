/* This process's metrics (GET /metrics). Each shop-fcgi keeps its own and
 * shows them with a process label, its pid: several responders behind one
 * web server are told apart, and Prometheus (or whoever sums them) adds
 * them up. Scraping through the web server reaches one responder per
 * request; scrape each socket, or sum what you get by `process`.
 *
 * Counters (requests by route, method and status; the latency histograms;
 * events delivered; subscribers dropped) are the core's
 * shop_metrics_counters, added to with atomics by every thread. Gauges are
 * not kept up to date on every change: a GET /metrics reads them from the
 * pools, the stock check's targets and the hub into a slot in the request's
 * arena. Pool targets, by role as the nginx module names them: "primary"
 * (the shop's database), "read" (the replica, when read_database is set),
 * "stock:primary" or "stock:read" (the stock check's pool for warehouses
 * without a database of their own), "warehouse:<code>[,<code>...]" (a
 * SHOP_WAREHOUSE_<CODE>_DATABASE, by the codes it serves). States: idle,
 * busy, connecting, broken (slots a database that is down leaves empty). */
#include "shop_fcgi.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static shop_metrics_counters fcgi_counters;
static char fcgi_process[24];

void
fcgi_metrics_start(void)
{
    snprintf(fcgi_process, sizeof(fcgi_process), "%lld", (long long) getpid());
}

void
fcgi_metrics_observe(const shop_ctx *c, int status, int64_t total_us, int64_t db_us, int db_used)
{
    shop_metrics_observe(&fcgi_counters, shop_metrics_route_index(c), c->req->method, status,
                         total_us, db_us, db_used);
}

void
fcgi_metrics_delivered(uint64_t events)
{
    __atomic_fetch_add(&fcgi_counters.events_delivered, events, __ATOMIC_RELAXED);
}

void
fcgi_metrics_dropped(void)
{
    __atomic_fetch_add(&fcgi_counters.dropped_subscribers, 1, __ATOMIC_RELAXED);
}

/* One pool's figures into target slot i. */
static void
fcgi_metrics_pool(shop_metrics_gauges *g, int i, const char *name, fcgi_pool *p)
{
    int64_t v[4] = { 0, 0, 0, 0 };

    fcgi_pool_gauges(p, v, &g->waiting);
    snprintf(g->target[i], sizeof(g->target[i]), "%s", name);
    g->idle[i] = v[0];
    g->busy[i] = v[1];
    g->connecting[i] = v[2];
    g->broken[i] = v[3];
}

const shop_metrics_view *
fcgi_metrics_view(shop_arena *a, fcgi_pool *pool, fcgi_pool *read_pool)
{
    shop_metrics_view *v = shop_calloc(a, sizeof(*v));
    shop_metrics_gauges *g = shop_calloc(a, sizeof(*g));
    fcgi_warehouses *wh;
    int i = 0;

    if (v == NULL || g == NULL) {
        return NULL;
    }
    g->pid = (int64_t) getpid();
    fcgi_metrics_pool(g, i++, "primary", pool);
    if (read_pool != NULL) {
        fcgi_metrics_pool(g, i++, "read", read_pool);
    }
    wh = fcgi_registry_get();
    fcgi_fanout_gauges(g, i, &g->waiting, wh);
    fcgi_registry_put(wh);
    g->subscribers_sse = fcgi_hub_streams();

    v->counters = &fcgi_counters;
    v->slots = g;
    v->nslots = 1;
    v->process = fcgi_process;
    return v;
}
