
/*
 * GET /metrics: what every worker counted, in one answer.
 *
 * A shared-memory zone (shop_metrics_zone, or "shop_metrics" of the
 * smallest size when the directive is not given) holds the core's
 * counters (core/metrics.h), which every worker increments atomically,
 * one gauge slot per worker process, and the table of target labels
 * ("primary", "read", "stock:primary", "warehouse:north", ...) that gives
 * each pool's figures the same place in every slot, so that workers of two
 * configurations (a reload) still add up by target.
 *
 * - A request is counted once, at its end: a log-phase handler (it runs
 *   for every request nginx frees, 499s and timeouts too) counts the
 *   requests the shop's handler saw: route template, method, the status
 *   nginx logs, the time since the handler started and the time in the
 *   database. A stream (GET /events) is counted when its head is out: its
 *   request is freed then.
 *
 * - A worker claims a slot by its pid in init_process (first freeing the
 *   slots of processes that are gone: a crashed worker's, or a stale one
 *   with its own pid) and releases it in exit_process; workers of a reload
 *   take fresh slots while the old ones keep theirs until they exit. Every
 *   second (a cancelable timer: it never keeps a worker that shuts down)
 *   and before it answers GET /metrics, a worker writes its pools'
 *   connections by state, the jobs waiting for a connection and its event
 *   streams into its slot, and adds the events it delivered meanwhile to
 *   the counters.
 *
 * The zone survives a reload with the same name and size: the counters go
 * on. A new size is a new zone: they start again from zero.
 */


#include "ngx_http_shop_events.h"

#include <signal.h>


#define NGX_HTTP_SHOP_METRICS_EVERY   1000
#define NGX_HTTP_SHOP_METRICS_MAGIC   0x73686f704d657431   /* "shopMet1" */


typedef struct {
    uint64_t                   magic;
    uint64_t                   size;        /* of this struct */
    char                       targets[SHOP_METRICS_TARGETS]
                                      [NGX_HTTP_SHOP_LABEL_LEN];
    shop_metrics_counters      counters;
    shop_metrics_gauges        slots[SHOP_METRICS_SLOTS];
} ngx_http_shop_metrics_shm_t;


static ngx_int_t ngx_http_shop_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ssize_t ngx_http_shop_metrics_min_size(void);
static ngx_int_t ngx_http_shop_metrics_log(ngx_http_request_t *r);
static ngx_int_t ngx_http_shop_metrics_target(ngx_http_shop_metrics_shm_t *shm,
    u_char *label, ngx_log_t *log);
static shop_metrics_gauges *ngx_http_shop_metrics_claim(
    ngx_http_shop_metrics_shm_t *shm, ngx_log_t *log);
static void ngx_http_shop_metrics_refresh(void);
static void ngx_http_shop_metrics_timer(ngx_event_t *ev);


static ngx_str_t  ngx_http_shop_metrics_default = ngx_string("shop_metrics");

/* this worker's */
static ngx_http_shop_metrics_shm_t  *ngx_http_shop_metrics_shm;
static shop_metrics_gauges          *ngx_http_shop_metrics_slot;
static shop_metrics_view             ngx_http_shop_metrics_the_view;
static ngx_event_t                   ngx_http_shop_metrics_ev;

uint64_t    ngx_http_shop_events_delivered;
ngx_uint_t  ngx_http_shop_subscribers_ws;


/* shop_metrics_zone name [size]; */

char *
ngx_http_shop_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_shop_main_conf_t *smcf = conf;

    ssize_t     size, min;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (smcf->metrics_name.len) {
        return "is duplicate";
    }

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone name \"\" in \"%V\" directive",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    min = ngx_http_shop_metrics_min_size();
    size = min;

    if (cf->args->nelts == 3) {
        size = ngx_parse_size(&value[2]);

        if (size == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid zone size \"%V\" in \"%V\" directive",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (size < min) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "zone \"%V\" is too small in \"%V\" "
                               "directive: %V, it needs at least %uzk",
                               &value[1], &cmd->name, &value[2],
                               (size_t) (min + 1023) / 1024);
            return NGX_CONF_ERROR;
        }
    }

    smcf->metrics_name = value[1];
    smcf->metrics_size = size;

    return NGX_CONF_OK;
}


/* the counters and SHOP_METRICS_SLOTS slots, in pages, and the slab's own */

static ssize_t
ngx_http_shop_metrics_min_size(void)
{
    return (ssize_t) (ngx_align(sizeof(ngx_http_shop_metrics_shm_t),
                                ngx_pagesize)
                      + 8 * ngx_pagesize);
}


ngx_int_t
ngx_http_shop_metrics_init_conf(ngx_conf_t *cf)
{
    ngx_str_t                   *name;
    ssize_t                      size;
    ngx_shm_zone_t              *zone;
    ngx_http_handler_pt         *h;
    ngx_http_core_main_conf_t   *cmcf;
    ngx_http_shop_main_conf_t   *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_shop_module);

    /* no "shop;" anywhere: nothing to count */

    if (smcf->locations.nelts == 0) {
        return NGX_OK;
    }

    if (sizeof(((shop_metrics_gauges *) 0)->target[0])
        != NGX_HTTP_SHOP_LABEL_LEN)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shop: metrics.h and the module disagree on the "
                           "length of a target label");
        return NGX_ERROR;
    }

    if (smcf->metrics_name.len) {
        name = &smcf->metrics_name;
        size = smcf->metrics_size;

    } else {
        name = &ngx_http_shop_metrics_default;
        size = ngx_http_shop_metrics_min_size();
    }

    zone = ngx_shared_memory_add(cf, name, size, &ngx_http_shop_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    if (zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shop: the shared memory zone \"%V\" is used "
                           "twice", name);
        return NGX_ERROR;
    }

    zone->init = ngx_http_shop_metrics_init_zone;
    zone->data = smcf;          /* taken: replaced by the memory in init */

    smcf->metrics_zone = zone;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_shop_metrics_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_shop_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t              *shpool;
    ngx_http_shop_metrics_shm_t  *shm;

    if (data) {
        /* a reload, same name and size: the counters go on */

        shm = data;

        if (shm->magic != NGX_HTTP_SHOP_METRICS_MAGIC
            || shm->size != sizeof(ngx_http_shop_metrics_shm_t))
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "shop: the metrics zone \"%V\" was made by "
                          "another version of the module; give it another "
                          "name or size", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        shm_zone->data = shm;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    shpool->log_nomem = 0;

    shm = ngx_slab_calloc(shpool, sizeof(ngx_http_shop_metrics_shm_t));

    if (shm == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "shop: the metrics zone \"%V\" is too small for "
                      "%uz bytes of counters and slots",
                      &shm_zone->shm.name,
                      sizeof(ngx_http_shop_metrics_shm_t));
        return NGX_ERROR;
    }

    shm->magic = NGX_HTTP_SHOP_METRICS_MAGIC;
    shm->size = sizeof(ngx_http_shop_metrics_shm_t);

    shpool->data = shm;
    shm_zone->data = shm;

    return NGX_OK;
}


/* a request of a "shop;" location ends: counted once */

static ngx_int_t
ngx_http_shop_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t            status;
    ngx_http_shop_ctx_t  *ctx;

    if (ngx_http_shop_metrics_shm == NULL) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_shop_module);

    if (ctx == NULL || ctx->observed) {
        return NGX_OK;
    }

    ctx->observed = 1;

    /* what the access log says ($status): 499 for a client gone */

    status = r->err_status ? r->err_status : r->headers_out.status;

    shop_metrics_observe(&ngx_http_shop_metrics_shm->counters,
                         shop_metrics_route_index(&ctx->core),
                         (unsigned) ctx->req.method, (int) status,
                         ngx_http_shop_now_us() - ctx->start_us, ctx->db_us,
                         ctx->res != NULL);

    return NGX_OK;
}


/* worker start: the targets' places, a slot, the timer */

ngx_int_t
ngx_http_shop_metrics_start(ngx_cycle_t *cycle)
{
    u_char                      *name;
    ngx_uint_t                   i;
    ngx_slab_pool_t             *shpool;
    shop_metrics_gauges         *slot;
    ngx_http_shop_metrics_shm_t *shm;
    ngx_http_shop_main_conf_t   *smcf;
    ngx_http_shop_pool_conf_t  **pcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_shop_module);

    if (smcf == NULL || smcf->metrics_zone == NULL
        || smcf->metrics_zone->data == NULL)
    {
        return NGX_OK;
    }

    shm = smcf->metrics_zone->data;
    shpool = (ngx_slab_pool_t *) smcf->metrics_zone->shm.addr;

    ngx_http_shop_metrics_shm = shm;
    ngx_http_shop_events_delivered = 0;
    ngx_http_shop_subscribers_ws = 0;

    ngx_http_shop_metrics_the_view.counters = &shm->counters;
    ngx_http_shop_metrics_the_view.slots = shm->slots;
    ngx_http_shop_metrics_the_view.nslots = SHOP_METRICS_SLOTS;
    ngx_http_shop_metrics_the_view.process = NULL;

    /* each label has one place in every slot, whichever worker */

    pcf = smcf->pools.elts;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < smcf->pools.nelts; i++) {
        pcf[i]->target = ngx_http_shop_metrics_target(shm, pcf[i]->label,
                                                      cycle->log);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    slot = ngx_http_shop_metrics_claim(shm, cycle->log);

    if (slot == NULL) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "shop: metrics: all %d gauge slots are taken; this "
                      "worker's pools and streams are not shown (its "
                      "requests are counted)", SHOP_METRICS_SLOTS);

    } else {
        for (i = 0; i < smcf->pools.nelts; i++) {
            if (pcf[i]->target < 0) {
                continue;
            }

            name = (u_char *) slot->target[pcf[i]->target];
            ngx_cpystrn(name, pcf[i]->label, NGX_HTTP_SHOP_LABEL_LEN);
        }
    }

    ngx_http_shop_metrics_slot = slot;

    ngx_http_shop_metrics_ev.handler = ngx_http_shop_metrics_timer;
    ngx_http_shop_metrics_ev.data = NULL;
    ngx_http_shop_metrics_ev.log = cycle->log;
    ngx_http_shop_metrics_ev.cancelable = 1;

    ngx_http_shop_metrics_refresh();

    ngx_add_timer(&ngx_http_shop_metrics_ev, NGX_HTTP_SHOP_METRICS_EVERY);

    return NGX_OK;
}


/* the label's index in the zone's table (its mutex held); -1: full */

static ngx_int_t
ngx_http_shop_metrics_target(ngx_http_shop_metrics_shm_t *shm, u_char *label,
    ngx_log_t *log)
{
    ngx_uint_t  t;

    if (label[0] == '\0') {
        return -1;
    }

    for (t = 0; t < SHOP_METRICS_TARGETS; t++) {
        if (shm->targets[t][0] == '\0') {
            ngx_cpystrn((u_char *) shm->targets[t], label,
                        NGX_HTTP_SHOP_LABEL_LEN);
            return (ngx_int_t) t;
        }

        if (ngx_strcmp(shm->targets[t], label) == 0) {
            return (ngx_int_t) t;
        }
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "shop: metrics: more than %d targets; the pool \"%s\" is "
                  "not shown (a restart, not a reload, clears the table)",
                  SHOP_METRICS_TARGETS, label);

    return -1;
}


/* a slot for this process; first, those of processes that are gone */

static shop_metrics_gauges *
ngx_http_shop_metrics_claim(ngx_http_shop_metrics_shm_t *shm, ngx_log_t *log)
{
    int64_t               pid, p, zero;
    ngx_uint_t            i;
    shop_metrics_gauges  *slot;

    pid = (int64_t) ngx_pid;

    for (i = 0; i < SHOP_METRICS_SLOTS; i++) {
        p = __atomic_load_n(&shm->slots[i].pid, __ATOMIC_ACQUIRE);

        if (p == 0) {
            continue;
        }

        /* ours already: a process that had this pid died without exit */

        if (p != pid
            && (kill((pid_t) p, 0) == 0 || ngx_errno != NGX_ESRCH))
        {
            continue;
        }

        if (__atomic_compare_exchange_n(&shm->slots[i].pid, &p, 0, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "shop: metrics: gauge slot %ui of process %L, "
                          "which is gone, is free again", i, p);
        }
    }

    for (i = 0; i < SHOP_METRICS_SLOTS; i++) {
        slot = &shm->slots[i];
        zero = 0;

        if (!__atomic_compare_exchange_n(&slot->pid, &zero, pid, 0,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        {
            continue;
        }

        /* what a former owner left */

        ngx_memzero((u_char *) slot + sizeof(slot->pid),
                    sizeof(shop_metrics_gauges) - sizeof(slot->pid));

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                       "shop: metrics: gauge slot %ui for process %L", i, pid);

        return slot;
    }

    return NULL;
}


static void
ngx_http_shop_metrics_timer(ngx_event_t *ev)
{
    ngx_http_shop_metrics_refresh();

    if (ngx_http_shop_metrics_shm) {
        ngx_add_timer(ev, NGX_HTTP_SHOP_METRICS_EVERY);
    }
}


#define ngx_http_shop_metrics_set(field, value)                               \
    __atomic_store_n(&(field), (int64_t) (value), __ATOMIC_RELAXED)


/* this worker's figures into its slot; its deliveries into the counters */

static void
ngx_http_shop_metrics_refresh(void)
{
    int64_t                      waiting;
    ngx_int_t                    t;
    ngx_uint_t                   i;
    shop_metrics_gauges         *slot;
    ngx_http_shop_main_conf_t   *smcf;
    ngx_http_shop_pool_conf_t  **pcf;
    int64_t                      idle[SHOP_METRICS_TARGETS];
    int64_t                      busy[SHOP_METRICS_TARGETS];
    int64_t                      connecting[SHOP_METRICS_TARGETS];
    int64_t                      broken[SHOP_METRICS_TARGETS];

    if (ngx_http_shop_metrics_shm == NULL) {
        return;
    }

    if (ngx_http_shop_events_delivered) {
        __atomic_fetch_add(&ngx_http_shop_metrics_shm->counters.events_delivered,
                           ngx_http_shop_events_delivered, __ATOMIC_RELAXED);
        ngx_http_shop_events_delivered = 0;
    }

    slot = ngx_http_shop_metrics_slot;

    if (slot == NULL) {
        return;
    }

    smcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_shop_module);
    if (smcf == NULL) {
        return;
    }

    ngx_memzero(idle, sizeof(idle));
    ngx_memzero(busy, sizeof(busy));
    ngx_memzero(connecting, sizeof(connecting));
    ngx_memzero(broken, sizeof(broken));
    waiting = 0;

    pcf = smcf->pools.elts;

    for (i = 0; i < smcf->pools.nelts; i++) {
        t = pcf[i]->target;

        if (t < 0 || pcf[i]->pool == NULL) {
            continue;
        }

        ngx_http_shop_pool_gauges(pcf[i]->pool, &idle[t], &busy[t],
                                  &connecting[t], &broken[t], &waiting);
    }

    for (t = 0; t < SHOP_METRICS_TARGETS; t++) {
        ngx_http_shop_metrics_set(slot->idle[t], idle[t]);
        ngx_http_shop_metrics_set(slot->busy[t], busy[t]);
        ngx_http_shop_metrics_set(slot->connecting[t], connecting[t]);
        ngx_http_shop_metrics_set(slot->broken[t], broken[t]);
    }

    ngx_http_shop_metrics_set(slot->waiting, waiting);
    ngx_http_shop_metrics_set(slot->subscribers_ws,
                              ngx_http_shop_subscribers_ws);
    ngx_http_shop_metrics_set(slot->subscribers_sse,
                              ngx_http_shop_subscribers
                              - ngx_http_shop_subscribers_ws);
}


const shop_metrics_view *
ngx_http_shop_metrics_view(ngx_uint_t fresh)
{
    if (ngx_http_shop_metrics_shm == NULL) {
        return NULL;
    }

    if (fresh) {
        ngx_http_shop_metrics_refresh();
    }

    return &ngx_http_shop_metrics_the_view;
}


void
ngx_http_shop_metrics_dropped(void)
{
    if (ngx_http_shop_metrics_shm) {
        __atomic_fetch_add(
                    &ngx_http_shop_metrics_shm->counters.dropped_subscribers,
                    1, __ATOMIC_RELAXED);
    }
}


/* worker exit: the last deliveries counted, the slot let go */

void
ngx_http_shop_metrics_stop(ngx_cycle_t *cycle)
{
    shop_metrics_gauges  *slot;

    if (ngx_http_shop_metrics_ev.timer_set) {
        ngx_del_timer(&ngx_http_shop_metrics_ev);
    }

    ngx_http_shop_metrics_refresh();

    slot = ngx_http_shop_metrics_slot;

    if (slot) {
        __atomic_store_n(&slot->pid, 0, __ATOMIC_RELEASE);
        ngx_http_shop_metrics_slot = NULL;
    }

    ngx_http_shop_metrics_shm = NULL;
}
