/* Metrics: counting (route, method, status, latency buckets), the text
 * exposition, and GET /metrics (the token unless metrics_public). */
#include <string.h>

#include "helpers.h"
#include "metrics.h"

static shop_metrics_counters counters;
static shop_metrics_gauges slots[2];

static void
reset(void)
{
    memset(&counters, 0, sizeof(counters));
    memset(slots, 0, sizeof(slots));
}

static const char *
render(th_env *e, int nslots, const char *process)
{
    shop_buf b;
    shop_buf_init(&b, &e->scratch.arena, 4096);
    shop_metrics_render(&b, &counters, slots, nslots, process);
    return shop_buf_str(&b).p;
}

static void
test_observe_and_render(void **state)
{
    th_env *e = *state;

    reset();
    /* GET /products/{id} twice (200 fast, 404 slower), one unmatched 404. */
    th_request(e, "GET", "/products/42");
    th_begin(e);
    int route = shop_metrics_route_index(&e->c);
    assert_string_equal(shop_routes[route].tmpl, "/products/{id}");
    shop_metrics_observe(&counters, route, SHOP_GET, 200, 800, 300, 1);
    shop_metrics_observe(&counters, route, SHOP_GET, 404, 30000, 20000, 1);
    shop_metrics_observe(&counters, SHOP_METRICS_ROUTES - 1, SHOP_GET, 404, 100, 0, 0);

    const char *t = render(e, 0, NULL);
    assert_non_null(strstr(t, "# TYPE shop_requests_total counter\n"));
    assert_non_null(strstr(t, "shop_requests_total{route=\"/products/{id}\",method=\"GET\",status=\"200\"} 1\n"));
    assert_non_null(strstr(t, "shop_requests_total{route=\"/products/{id}\",method=\"GET\",status=\"404\"} 1\n"));
    assert_non_null(strstr(t, "shop_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n"));
    /* Buckets are cumulative: 800 us is in le=0.001 and above, 30 ms from 0.05. */
    assert_non_null(strstr(t, "shop_request_duration_seconds_bucket{route=\"/products/{id}\",le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(t, "shop_request_duration_seconds_bucket{route=\"/products/{id}\",le=\"0.001\"} 1\n"));
    assert_non_null(strstr(t, "shop_request_duration_seconds_bucket{route=\"/products/{id}\",le=\"0.025\"} 1\n"));
    assert_non_null(strstr(t, "shop_request_duration_seconds_bucket{route=\"/products/{id}\",le=\"0.05\"} 2\n"));
    assert_non_null(strstr(t, "shop_request_duration_seconds_bucket{route=\"/products/{id}\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(t, "shop_request_duration_seconds_sum{route=\"/products/{id}\"} 0.030800\n"));
    assert_non_null(strstr(t, "shop_request_duration_seconds_count{route=\"/products/{id}\"} 2\n"));
    /* The database histogram counts only requests that used it. */
    assert_non_null(strstr(t, "shop_db_duration_seconds_count{} 2\n"));
    assert_non_null(strstr(t, "shop_db_duration_seconds_sum{} 0.020300\n"));
    assert_non_null(strstr(t, "shop_build_info{version=\""));
}

static void
test_gauges_add_up(void **state)
{
    th_env *e = *state;

    reset();
    for (int s = 0; s < 2; s++) {
        slots[s].pid = 100 + s;
        strcpy(slots[s].target[0], "primary");
        slots[s].idle[0] = 3;
        slots[s].busy[0] = 1 + s;
        slots[s].waiting = 2;
        slots[s].subscribers_sse = 10;
        slots[s].subscribers_ws = s;
    }
    counters.events_delivered = 77;
    counters.dropped_subscribers = 2;
    const char *t = render(e, 2, NULL);
    assert_non_null(strstr(t, "shop_pool_connections{target=\"primary\",state=\"idle\"} 6\n"));
    assert_non_null(strstr(t, "shop_pool_connections{target=\"primary\",state=\"busy\"} 3\n"));
    assert_non_null(strstr(t, "shop_pool_waiting{} 4\n"));
    assert_non_null(strstr(t, "shop_events_subscribers{transport=\"sse\"} 20\n"));
    assert_non_null(strstr(t, "shop_events_subscribers{transport=\"websocket\"} 1\n"));
    assert_non_null(strstr(t, "shop_events_delivered_total{} 77\n"));
    assert_non_null(strstr(t, "shop_events_dropped_subscribers_total{} 2\n"));
    /* A slot no process owns does not count. */
    slots[1].pid = 0;
    t = render(e, 2, NULL);
    assert_non_null(strstr(t, "shop_pool_waiting{} 2\n"));
}

static void
test_process_label(void **state)
{
    th_env *e = *state;

    reset();
    shop_metrics_observe(&counters, 0, SHOP_GET, 200, 10, 0, 0);
    const char *t = render(e, 0, "4242");
    assert_non_null(strstr(t, "shop_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\",process=\"4242\"} 1\n"));
    assert_non_null(strstr(t, "shop_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.00025\",process=\"4242\"} 1\n"));
    assert_non_null(strstr(t, "shop_db_duration_seconds_count{process=\"4242\"} 0\n"));
    assert_non_null(strstr(t, "shop_pool_waiting{process=\"4242\"} 0\n"));
}

static th_env *
get_metrics(const char *auth, int public_, int with_view)
{
    static shop_metrics_view view;
    th_env *e = th_new();

    reset();
    view = (shop_metrics_view) { &counters, slots, 0, NULL };
    e->settings.metrics_public = public_;
    th_request(e, "GET", "/metrics");
    if (auth != NULL) {
        e->req.authorization = shop_cstr(auth);
    }
    e->req.metrics = with_view ? &view : NULL;
    th_begin(e);
    return e;
}

static void
test_route(void **state)
{
    th_env *e;
    (void) state;

    e = get_metrics(NULL, 0, 1);
    th_problem(e, 401, "unauthorized");
    th_free(e);
    e = get_metrics("Bearer wrong-token-wrong-token-x", 0, 1);
    th_problem(e, 403, "forbidden");
    th_free(e);
    e = get_metrics("Bearer " TH_TOKEN, 0, 1);
    assert_int_equal(e->c.resp.status, 200);
    assert_int_equal(e->c.nqueries, 0);
    assert_non_null(strstr(th_cstr(e, e->c.resp.content_type), "text/plain; version=0.0.4"));
    assert_non_null(strstr(th_cstr(e, e->c.resp.body), "# TYPE shop_requests_total counter"));
    th_free(e);
    /* Public metrics (the web server restricts who gets here): no token needed. */
    e = get_metrics(NULL, 1, 1);
    assert_int_equal(e->c.resp.status, 200);
    th_free(e);
    /* A front-end that keeps none. */
    e = get_metrics("Bearer " TH_TOKEN, 0, 0);
    th_problem(e, 503, "unavailable");
    th_free(e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_observe_and_render),
        TH_TEST(test_gauges_add_up),
        TH_TEST(test_process_label),
        TH_TEST(test_route),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
