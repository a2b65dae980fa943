#include "settings.h"

#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define F(field) offsetof(shop_settings, field)

const shop_setting shop_setting_table[] = {
    { "database", "SHOP_DATABASE_URL", "shop_database", SHOP_SET_STRING, SHOP_SET_BOTH,
      "", 0, 0, F(database),
      "libpq connection string or URL of the shop's database (required)" },
    { "read_database", "SHOP_READ_DATABASE_URL", "shop_read_database", SHOP_SET_STRING, SHOP_SET_BOTH,
      "", 0, 0, F(read_database),
      "a read replica: GETs of products and warehouses and the stock check use it (writes and orders never)" },
    { "base_path", "SHOP_BASE_PATH", NULL, SHOP_SET_STRING, SHOP_SET_FCGI,
      "", 0, 0, F(base_path),
      "URL prefix the web server mounts the shop under, e.g. /api (the module uses its location)" },
    { "admin_token_file", "SHOP_ADMIN_TOKEN_FILE", "shop_admin_token_file", SHOP_SET_PATH, SHOP_SET_BOTH,
      "", 0, 0, F(admin_token_file),
      "file holding the admin bearer token (at least 16 characters); unset: admin endpoints answer 401/403" },
    { "webhook_secret_file", "SHOP_WEBHOOK_SECRET_FILE", "shop_webhook_secret_file", SHOP_SET_PATH, SHOP_SET_BOTH,
      "", 0, 0, F(webhook_secret_file),
      "file holding the payment webhook's HMAC secret (at least 16 characters)" },
    { "pool_size", "SHOP_POOL_SIZE", "shop_pool_size", SHOP_SET_INT, SHOP_SET_BOTH,
      "8", 1, 512, F(pool_size),
      "database connections per process (fcgi) or per worker (module)" },
    { "pool_queue", "SHOP_POOL_QUEUE", "shop_pool_queue", SHOP_SET_INT, SHOP_SET_BOTH,
      "1024", 0, 1000000, F(pool_queue),
      "requests that may wait for a busy pool; past it: 503" },
    { "pool_queue_timeout", "SHOP_POOL_QUEUE_TIMEOUT", NULL, SHOP_SET_MSEC, SHOP_SET_BOTH,
      "1s", 1, 600000, F(pool_queue_timeout_ms),
      "how long a request waits for a connection before 503 (module: second argument of shop_pool_queue)" },
    { "statement_timeout", "SHOP_STATEMENT_TIMEOUT", "shop_statement_timeout", SHOP_SET_MSEC, SHOP_SET_BOTH,
      "5s", 10, 3600000, F(statement_timeout_ms),
      "the database cancels a statement running longer than this" },
    { "threads", "SHOP_THREADS", NULL, SHOP_SET_INT, SHOP_SET_FCGI,
      "8", 1, 1024, F(threads),
      "request threads of one shop-fcgi process (best at pool_size: threads past the pool mostly wait for a connection)" },
    { "body_limit", "SHOP_BODY_LIMIT", "shop_body_limit", SHOP_SET_SIZE, SHOP_SET_BOTH,
      "1m", 1024, 64LL * 1024 * 1024, F(body_limit),
      "largest request body accepted; larger: 413" },
    { "stock_deadline", "SHOP_STOCK_DEADLINE_MS", "shop_stock_deadline", SHOP_SET_MSEC, SHOP_SET_BOTH,
      "250ms", 1, 60000, F(stock_deadline_ms),
      "how long the stock check waits for each warehouse" },
    { "event_retention", "SHOP_EVENT_RETENTION", "shop_event_retention", SHOP_SET_MSEC, SHOP_SET_BOTH,
      "24h", 60000, 366LL * 24 * 3600 * 1000, F(event_retention_ms),
      "events older than this are deleted; a resume from further back starts with a reset" },
    { "event_replay_limit", "SHOP_EVENT_REPLAY_LIMIT", "shop_event_replay_limit", SHOP_SET_INT, SHOP_SET_BOTH,
      "10000", 1, 1000000, F(event_replay_limit),
      "most events one resume replays; a resume from further back starts with a reset" },
    { "max_streams", "SHOP_MAX_STREAMS", NULL, SHOP_SET_INT, SHOP_SET_FCGI,
      "64", 1, 10000, F(max_streams),
      "open event streams of one shop-fcgi process (each holds a thread); past it: 503" },
    { "max_subscribers", NULL, "shop_max_subscribers", SHOP_SET_INT, SHOP_SET_MODULE,
      "10000", 1, 1000000, F(max_subscribers),
      "open event streams per nginx worker; past it: 503" },
    { "stream_buffer", "SHOP_STREAM_BUFFER", "shop_subscriber_buffer", SHOP_SET_SIZE, SHOP_SET_BOTH,
      "256k", 4096, 64LL * 1024 * 1024, F(stream_buffer),
      "unsent bytes a subscriber may fall behind before it is dropped (it resumes by id)" },
    { "warehouse_pool_size", "SHOP_WAREHOUSE_POOL_SIZE", "shop_warehouse_pool_size", SHOP_SET_INT, SHOP_SET_BOTH,
      "4", 1, 64, F(warehouse_pool_size),
      "stock-check connections per warehouse (per process or worker); warehouses sharing a database share its pool" },
    { "metrics_public", "SHOP_METRICS_PUBLIC", "shop_metrics_public", SHOP_SET_FLAG, SHOP_SET_BOTH,
      "off", 0, 1, F(metrics_public),
      "GET /metrics without the admin token (when the web server restricts who reaches it)" },
};

const size_t shop_setting_count = sizeof(shop_setting_table) / sizeof(shop_setting_table[0]);

const char *
shop_setting_type_name(shop_setting_type type)
{
    switch (type) {
    case SHOP_SET_STRING: return "string";
    case SHOP_SET_PATH:   return "file";
    case SHOP_SET_INT:    return "integer";
    case SHOP_SET_SIZE:   return "size";
    case SHOP_SET_MSEC:   return "duration";
    case SHOP_SET_FLAG:   return "on/off";
    }
    return "value";
}

const shop_setting *
shop_setting_by_name(const char *name)
{
    for (size_t i = 0; i < shop_setting_count; i++) {
        if (strcmp(shop_setting_table[i].name, name) == 0) {
            return &shop_setting_table[i];
        }
    }
    return NULL;
}

const shop_setting *
shop_setting_by_env(const char *env)
{
    for (size_t i = 0; i < shop_setting_count; i++) {
        if (shop_setting_table[i].env != NULL && strcmp(shop_setting_table[i].env, env) == 0) {
            return &shop_setting_table[i];
        }
    }
    return NULL;
}

const shop_setting *
shop_setting_by_directive(const char *directive, size_t len)
{
    for (size_t i = 0; i < shop_setting_count; i++) {
        const char *d = shop_setting_table[i].directive;
        if (d != NULL && strlen(d) == len && memcmp(d, directive, len) == 0) {
            return &shop_setting_table[i];
        }
    }
    return NULL;
}

void
shop_settings_defaults(shop_settings *s)
{
    char err[128];

    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < shop_setting_count; i++) {
        const shop_setting *d = &shop_setting_table[i];
        /* The defaults are part of the table; a bad one is a programming error
         * caught by the unit tests. */
        (void) shop_setting_set(s, d, d->def, strlen(d->def), err, sizeof(err));
    }
}

/* Parses a non-negative decimal integer followed by a unit suffix. */
static int
shop_parse_scaled(const char *v, size_t len, shop_setting_type type, int64_t *out)
{
    size_t i = 0;
    int64_t n = 0;

    if (len == 0) {
        return -1;
    }
    while (i < len && v[i] >= '0' && v[i] <= '9') {
        if (n > (INT64_MAX - 9) / 10) {
            return -1;
        }
        n = n * 10 + (v[i] - '0');
        i++;
    }
    if (i == 0) {
        return -1;
    }
    const char *unit = v + i;
    size_t ulen = len - i;
    int64_t scale = 1;

    switch (type) {
    case SHOP_SET_INT:
        if (ulen != 0) {
            return -1;
        }
        break;
    case SHOP_SET_SIZE:
        if (ulen == 1 && (unit[0] == 'k' || unit[0] == 'K')) {
            scale = 1024;
        } else if (ulen == 1 && (unit[0] == 'm' || unit[0] == 'M')) {
            scale = 1024LL * 1024;
        } else if (ulen != 0) {
            return -1;
        }
        break;
    case SHOP_SET_MSEC:
        if (ulen == 0 || (ulen == 2 && memcmp(unit, "ms", 2) == 0)) {
            scale = 1;
        } else if (ulen == 1 && unit[0] == 's') {
            scale = 1000;
        } else if (ulen == 1 && unit[0] == 'm') {
            scale = 60LL * 1000;
        } else if (ulen == 1 && unit[0] == 'h') {
            scale = 3600LL * 1000;
        } else {
            return -1;
        }
        break;
    case SHOP_SET_STRING:
    case SHOP_SET_PATH:
    case SHOP_SET_FLAG:
        return -1;
    }
    if (n > INT64_MAX / scale) {
        return -1;
    }
    *out = n * scale;
    return 0;
}

static const char *
shop_setting_form(shop_setting_type type)
{
    switch (type) {
    case SHOP_SET_INT:    return "an integer";
    case SHOP_SET_SIZE:   return "a size (bytes, or with k or m)";
    case SHOP_SET_MSEC:   return "a duration (ms, s, m or h)";
    case SHOP_SET_STRING: return "a string";
    case SHOP_SET_PATH:   return "a file name";
    case SHOP_SET_FLAG:   return "on or off";
    }
    return "a value";
}

int
shop_setting_set(shop_settings *s, const shop_setting *d, const char *value, size_t len,
                 char *err, size_t errlen)
{
    char *field = (char *) s + d->offset;
    int64_t n;

    switch (d->type) {
    case SHOP_SET_STRING:
    case SHOP_SET_PATH:
        if (memchr(value, '\0', len) != NULL || value[len] != '\0') {
            snprintf(err, errlen, "%s: must be a plain string", d->name);
            return -1;
        }
        if (d->type == SHOP_SET_PATH && len > 0 && value[0] != '/') {
            snprintf(err, errlen, "%s: \"%.*s\" must be an absolute file name", d->name,
                     (int) (len > 200 ? 200 : len), value);
            return -1;
        }
        *(const char **) field = value;
        return 0;
    case SHOP_SET_INT:
    case SHOP_SET_SIZE:
    case SHOP_SET_MSEC:
        if (shop_parse_scaled(value, len, d->type, &n) != 0) {
            snprintf(err, errlen, "%s: \"%.*s\" is not %s", d->name,
                     (int) (len > 40 ? 40 : len), value, shop_setting_form(d->type));
            return -1;
        }
        if (n < d->min || n > d->max) {
            snprintf(err, errlen, "%s: %lld is outside %lld ... %lld", d->name,
                     (long long) n, (long long) d->min, (long long) d->max);
            return -1;
        }
        *(int64_t *) field = n;
        return 0;
    case SHOP_SET_FLAG: {
        static const char *const on[] = { "on", "1", "true", "yes" };
        static const char *const off[] = { "off", "0", "false", "no" };
        shop_str v = { value, len };
        for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
            if (shop_str_eq_nocase(v, on[i]) || shop_str_eq_nocase(v, off[i])) {
                *(int64_t *) field = shop_str_eq_nocase(v, on[i]);
                return 0;
            }
        }
        snprintf(err, errlen, "%s: \"%.*s\" is not %s", d->name,
                 (int) (len > 40 ? 40 : len), value, shop_setting_form(d->type));
        return -1;
    }
    }
    snprintf(err, errlen, "%s: unknown setting type", d->name);
    return -1;
}

int
shop_settings_check(const shop_settings *s, int scope, char *err, size_t errlen)
{
    if (s->database == NULL || s->database[0] == '\0') {
        snprintf(err, errlen, "database: no database given (%s)",
                 scope == SHOP_SET_MODULE ? "shop_database" : "SHOP_DATABASE_URL");
        return -1;
    }
    if (s->base_path != NULL && s->base_path[0] != '\0'
        && (s->base_path[0] != '/' || s->base_path[strlen(s->base_path) - 1] == '/')) {
        snprintf(err, errlen, "base_path: \"%s\" must start with / and not end with /",
                 s->base_path);
        return -1;
    }
    return 0;
}

int
shop_secret_parse(const char *data, size_t len, size_t *start, size_t *n, char *err, size_t errlen)
{
    size_t b = 0, e = len;

    while (b < e && (data[b] == ' ' || data[b] == '\t' || data[b] == '\r' || data[b] == '\n')) {
        b++;
    }
    while (e > b && (data[e - 1] == ' ' || data[e - 1] == '\t' || data[e - 1] == '\r'
                     || data[e - 1] == '\n')) {
        e--;
    }
    if (e - b < 16) {
        snprintf(err, errlen, "must hold at least 16 characters");
        return -1;
    }
    for (size_t i = b; i < e; i++) {
        if ((unsigned char) data[i] < 0x21 || (unsigned char) data[i] > 0x7e) {
            snprintf(err, errlen, "must be one line of printable ASCII without spaces");
            return -1;
        }
    }
    *start = b;
    *n = e - b;
    return 0;
}
