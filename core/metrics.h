/* Prometheus metrics: fixed-size counters with no pointers inside, so the
 * nginx module can keep them in a shared-memory zone that every worker adds
 * to (atomically), and shop-fcgi in a process-wide struct. Rendering the
 * text exposition format is pure. */
#ifndef SHOP_METRICS_H
#define SHOP_METRICS_H

#include <stdint.h>

#include "buf.h"

struct shop_ctx;

#define SHOP_METRICS_ROUTES   32      /* route table rows, plus "unmatched" */
#define SHOP_METRICS_METHODS  8       /* one per shop_method bit */
#define SHOP_METRICS_STATUSES 24      /* see shop_metrics_status_index() */
#define SHOP_METRICS_BUCKETS  14      /* latency buckets, +Inf last */
#define SHOP_METRICS_TARGETS  16      /* pools: the primary and warehouse databases */
#define SHOP_METRICS_SLOTS    64      /* worker processes whose gauges add up */

/* Counters: only ever incremented, from every worker. */
typedef struct {
    uint64_t requests[SHOP_METRICS_ROUTES][SHOP_METRICS_METHODS][SHOP_METRICS_STATUSES];
    uint64_t request_buckets[SHOP_METRICS_ROUTES][SHOP_METRICS_BUCKETS];
    uint64_t request_sum_us[SHOP_METRICS_ROUTES];
    uint64_t db_buckets[SHOP_METRICS_BUCKETS];
    uint64_t db_sum_us;
    uint64_t events_delivered;
    uint64_t dropped_subscribers;
} shop_metrics_counters;

/* Gauges: each process or worker owns one slot and sets its own values. */
typedef struct {
    int64_t  pid;                     /* 0: slot unused */
    char     target[SHOP_METRICS_TARGETS][40];
    int64_t  idle[SHOP_METRICS_TARGETS];
    int64_t  busy[SHOP_METRICS_TARGETS];
    int64_t  connecting[SHOP_METRICS_TARGETS];
    int64_t  broken[SHOP_METRICS_TARGETS];
    int64_t  waiting;
    int64_t  subscribers_sse;
    int64_t  subscribers_ws;
} shop_metrics_gauges;

/* What a front-end hands the core for GET /metrics. */
typedef struct shop_metrics_view {
    const shop_metrics_counters *counters;
    const shop_metrics_gauges   *slots;
    int                          nslots;
    const char                  *process;   /* fcgi: its pid; the module: NULL (one zone) */
} shop_metrics_view;

/* The route of a finished request: its index in the route table, or the
 * "unmatched" row. */
int  shop_metrics_route_index(const struct shop_ctx *c);

/* Counts one finished request (route, method, status, durations). */
void shop_metrics_observe(shop_metrics_counters *m, int route, unsigned method, int status,
                          int64_t total_us, int64_t db_us, int db_used);

/* The whole exposition. `process` non-NULL adds a process="…" label to every
 * series (fcgi: figures are per process). */
void shop_metrics_render(shop_buf *b, const shop_metrics_counters *m,
                         const shop_metrics_gauges *slots, int nslots, const char *process);

#endif
