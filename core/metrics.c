#include "metrics.h"

#include <stdio.h>
#include <string.h>

#include "handler.h"

static const int statuses[SHOP_METRICS_STATUSES] = {
    101, 200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 412, 413, 414, 415, 422,
    499, 500, 502, 503, 504, 0, 0, 0      /* 0: unused; the last row is "other" */
};

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const int64_t bucket_us[SHOP_METRICS_BUCKETS - 1] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000
};
static const char *const bucket_le[SHOP_METRICS_BUCKETS] = {
    "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "5", "+Inf"
};

static const char *const method_names[SHOP_METRICS_METHODS] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"
};

static int
status_index(int status)
{
    for (int i = 0; i < SHOP_METRICS_STATUSES - 1 && statuses[i] != 0; i++) {
        if (statuses[i] == status) {
            return i;
        }
    }
    return SHOP_METRICS_STATUSES - 1;
}

static int
bucket_index(int64_t us)
{
    int i = 0;
    while (i < SHOP_METRICS_BUCKETS - 1 && us > bucket_us[i]) {
        i++;
    }
    return i;
}

static int
method_index(unsigned method)
{
    for (int i = 0; i < SHOP_METRICS_METHODS; i++) {
        if (method == 1u << i) {
            return i;
        }
    }
    return SHOP_METRICS_METHODS - 1;
}

int
shop_metrics_route_index(const shop_ctx *c)
{
    size_t i = c->route ? (size_t) (c->route - shop_routes) : shop_route_count;
    return i < SHOP_METRICS_ROUTES - 1 ? (int) i : SHOP_METRICS_ROUTES - 1;
}

static void
add(uint64_t *p, uint64_t v)   /* NOLINT(readability-non-const-parameter): written atomically */
{
    __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

void
shop_metrics_observe(shop_metrics_counters *m, int route, unsigned method, int status,
                     int64_t total_us, int64_t db_us, int db_used)
{
    if (route < 0 || route >= SHOP_METRICS_ROUTES) {
        route = SHOP_METRICS_ROUTES - 1;
    }
    add(&m->requests[route][method_index(method)][status_index(status)], 1);
    add(&m->request_buckets[route][bucket_index(total_us)], 1);
    add(&m->request_sum_us[route], (uint64_t) (total_us > 0 ? total_us : 0));
    if (db_used) {
        add(&m->db_buckets[bucket_index(db_us)], 1);
        add(&m->db_sum_us, (uint64_t) (db_us > 0 ? db_us : 0));
    }
}

static uint64_t
load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static const char *
route_label(int i)
{
    return i < (int) shop_route_count ? shop_routes[i].tmpl : "unmatched";
}

/* ,process="x" or nothing. */
static void
add_process(shop_buf *b, const char *process, int first)
{
    if (process != NULL) {
        shop_buf_adds(b, first ? "process=\"" : ",process=\"");
        shop_buf_adds(b, process);
        shop_buf_addc(b, '"');
    }
}

static void
add_seconds(shop_buf *b, uint64_t us)
{
    shop_buf_add_int(b, (int64_t) (us / 1000000));
    shop_buf_addc(b, '.');
    char frac[7];
    for (int i = 5; i >= 0; i--) {
        frac[i] = (char) ('0' + us % 10);
        us /= 10;
    }
    shop_buf_add(b, frac, 6);
}

/* One histogram's bucket, sum and count lines; labels: `name="value"` pairs or "". */
static void
add_histogram(shop_buf *b, const char *name, const char *labels, const char *process,
              const uint64_t *buckets, uint64_t sum_us)
{
    uint64_t cumulative = 0;

    for (int i = 0; i < SHOP_METRICS_BUCKETS; i++) {
        cumulative += load(&buckets[i]);
        shop_buf_adds(b, name);
        shop_buf_adds(b, "_bucket{");
        shop_buf_adds(b, labels);
        shop_buf_adds(b, labels[0] ? ",le=\"" : "le=\"");
        shop_buf_adds(b, bucket_le[i]);
        shop_buf_addc(b, '"');
        add_process(b, process, 0);
        shop_buf_adds(b, "} ");
        shop_buf_add_int(b, (int64_t) cumulative);
        shop_buf_addc(b, '\n');
    }
    static const char *const tails[] = { "_sum", "_count" };
    for (int t = 0; t < 2; t++) {
        shop_buf_adds(b, name);
        shop_buf_adds(b, tails[t]);
        shop_buf_addc(b, '{');
        shop_buf_adds(b, labels);
        add_process(b, process, labels[0] == '\0');
        shop_buf_adds(b, "} ");
        if (t == 0) {
            add_seconds(b, load(&sum_us));
        } else {
            shop_buf_add_int(b, (int64_t) cumulative);
        }
        shop_buf_addc(b, '\n');
    }
}

static void
add_gauge(shop_buf *b, const char *name, const char *labels, const char *process, int64_t v)
{
    shop_buf_adds(b, name);
    shop_buf_addc(b, '{');
    shop_buf_adds(b, labels);
    add_process(b, process, labels[0] == '\0');
    shop_buf_adds(b, "} ");
    shop_buf_add_int(b, v);
    shop_buf_addc(b, '\n');
}

void
shop_metrics_render(shop_buf *b, const shop_metrics_counters *m, const shop_metrics_gauges *slots,
                    int nslots, const char *process)
{
    char labels[160];

    shop_buf_adds(b, "# HELP shop_build_info The shop's version.\n# TYPE shop_build_info gauge\n");
    add_gauge(b, "shop_build_info", "version=\"" SHOP_VERSION "\"", process, 1);

    shop_buf_adds(b, "# HELP shop_requests_total Requests answered, by route template, method and status.\n"
                     "# TYPE shop_requests_total counter\n");
    for (int r = 0; r < SHOP_METRICS_ROUTES; r++) {
        for (int me = 0; me < SHOP_METRICS_METHODS; me++) {
            for (int s = 0; s < SHOP_METRICS_STATUSES; s++) {
                uint64_t v = load(&m->requests[r][me][s]);
                if (v == 0) {
                    continue;
                }
                char status[8] = "other";
                if (s < SHOP_METRICS_STATUSES - 1) {
                    snprintf(status, sizeof(status), "%d", statuses[s]);
                }
                snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%s\"",
                         route_label(r), method_names[me], status);
                shop_buf_adds(b, "shop_requests_total{");
                shop_buf_adds(b, labels);
                add_process(b, process, 0);
                shop_buf_adds(b, "} ");
                shop_buf_add_int(b, (int64_t) v);
                shop_buf_addc(b, '\n');
            }
        }
    }

    shop_buf_adds(b, "# HELP shop_request_duration_seconds Time from request to response, by route template.\n"
                     "# TYPE shop_request_duration_seconds histogram\n");
    for (int r = 0; r < SHOP_METRICS_ROUTES; r++) {
        uint64_t any = 0;
        for (int i = 0; i < SHOP_METRICS_BUCKETS; i++) {
            any += load(&m->request_buckets[r][i]);
        }
        if (any == 0) {
            continue;
        }
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_label(r));
        add_histogram(b, "shop_request_duration_seconds", labels, process,
                      m->request_buckets[r], m->request_sum_us[r]);
    }

    shop_buf_adds(b, "# HELP shop_db_duration_seconds Time spent in the database per request.\n"
                     "# TYPE shop_db_duration_seconds histogram\n");
    add_histogram(b, "shop_db_duration_seconds", "", process, m->db_buckets, m->db_sum_us);

    /* Gauges add up over the slots; pools are per target. */
    static const char *const states[] = { "idle", "busy", "connecting", "broken" };
    shop_buf_adds(b, "# HELP shop_pool_connections Database connections by target and state.\n"
                     "# TYPE shop_pool_connections gauge\n");
    for (int t = 0; t < SHOP_METRICS_TARGETS; t++) {
        const char *name = NULL;
        int64_t sum[4] = { 0, 0, 0, 0 };
        for (int s = 0; s < nslots; s++) {
            if (slots[s].pid == 0 || slots[s].target[t][0] == '\0') {
                continue;
            }
            name = slots[s].target[t];
            sum[0] += slots[s].idle[t];
            sum[1] += slots[s].busy[t];
            sum[2] += slots[s].connecting[t];
            sum[3] += slots[s].broken[t];
        }
        for (int k = 0; name != NULL && k < 4; k++) {
            snprintf(labels, sizeof(labels), "target=\"%.40s\",state=\"%s\"", name, states[k]);
            add_gauge(b, "shop_pool_connections", labels, process, sum[k]);
        }
    }
    int64_t waiting = 0, sse = 0, ws = 0;
    for (int s = 0; s < nslots; s++) {
        if (slots[s].pid != 0) {
            waiting += slots[s].waiting;
            sse += slots[s].subscribers_sse;
            ws += slots[s].subscribers_ws;
        }
    }
    shop_buf_adds(b, "# HELP shop_pool_waiting Requests waiting for a database connection.\n"
                     "# TYPE shop_pool_waiting gauge\n");
    add_gauge(b, "shop_pool_waiting", "", process, waiting);
    shop_buf_adds(b, "# HELP shop_events_subscribers Open event streams by transport.\n"
                     "# TYPE shop_events_subscribers gauge\n");
    add_gauge(b, "shop_events_subscribers", "transport=\"sse\"", process, sse);
    add_gauge(b, "shop_events_subscribers", "transport=\"websocket\"", process, ws);
    shop_buf_adds(b, "# HELP shop_events_delivered_total Events written to subscribers.\n"
                     "# TYPE shop_events_delivered_total counter\n");
    add_gauge(b, "shop_events_delivered_total", "", process, (int64_t) load(&m->events_delivered));
    shop_buf_adds(b, "# HELP shop_events_dropped_subscribers_total Subscribers dropped for falling behind.\n"
                     "# TYPE shop_events_dropped_subscribers_total counter\n");
    add_gauge(b, "shop_events_dropped_subscribers_total", "", process,
              (int64_t) load(&m->dropped_subscribers));
}
