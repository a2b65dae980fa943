#include "fuzz_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "json_strict.h"
#include "metrics.h"

void
fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "\n==FUZZ ORACLE== %s:%d: %s\n  ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

int
fz_avoid_known(void)
{
    static int avoid = -1;

    if (avoid < 0) {
        const char *v = getenv("FUZZ_AVOID_KNOWN");
        avoid = v != NULL && v[0] != '\0' && v[0] != '0';
    }
    return avoid;
}

/* ---- input ---------------------------------------------------------------- */

uint8_t
fz_byte(fz_in *in)
{
    if (in->n == 0) {
        return 0;
    }
    in->n--;
    return *in->p++;
}

shop_str
fz_line(fz_in *in)
{
    const uint8_t *nl = in->n ? memchr(in->p, '\n', in->n) : NULL;
    size_t len = nl ? (size_t) (nl - in->p) : in->n;
    shop_str s = { (const char *) in->p, len };

    in->p += len + (nl != NULL);
    in->n -= len + (nl != NULL);
    return s;
}

shop_str
fz_rest(fz_in *in)
{
    shop_str s = { (const char *) in->p, in->n };

    in->p += in->n;
    in->n = 0;
    return s;
}

/* ---- memory ---------------------------------------------------------------- */

static void *
fz_keep(fz_mem *m, size_t size)
{
    if (m->nblocks == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        void **blocks = realloc(m->blocks, cap * sizeof(*blocks));
        if (blocks == NULL) {
            abort();
        }
        m->blocks = blocks;
        m->cap = cap;
    }
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        abort();
    }
    m->blocks[m->nblocks++] = p;
    return p;
}

static void *
fz_grow(void *owner, size_t size)
{
    return fz_keep(owner, size);
}

void
fz_mem_init(fz_mem *m)
{
    memset(m, 0, sizeof(*m));
    shop_arena_init(&m->arena, fz_grow, m);
}

void
fz_mem_free(fz_mem *m)
{
    for (size_t i = 0; i < m->nblocks; i++) {
        free(m->blocks[i]);
    }
    free(m->blocks);
    memset(m, 0, sizeof(*m));
}

shop_str
fz_copy(fz_mem *m, shop_str s)
{
    if (s.p == NULL) {
        return SHOP_NULL_STR;
    }
    /* Exactly n bytes: ASan reports a read of p[n]. malloc(0) is a valid
     * pointer to nothing, like an empty header value. */
    char *p = fz_keep(m, s.n);
    if (s.n) {
        memcpy(p, s.p, s.n);
    }
    return (shop_str) { p, s.n };
}

char *
fz_cstr(fz_mem *m, shop_str s)
{
    char *p = fz_keep(m, s.n + 1);
    if (s.n) {
        memcpy(p, s.p, s.n);
    }
    p[s.n] = '\0';
    return p;
}

/* ---- the core's inputs ------------------------------------------------------ */

void
fz_settings(shop_settings *s)
{
    shop_settings_defaults(s);
    s->admin_token = FZ_TOKEN;
    s->admin_token_len = strlen(FZ_TOKEN);
    s->webhook_secret = FZ_SECRET;
    s->webhook_secret_len = strlen(FZ_SECRET);
}

static const char *const fz_warehouses[] = { "north", "south" };

/* What both front-ends hand the core for GET /metrics (a server without
 * metrics answers 503, which is its configuration, not the request's). */
static const shop_metrics_view *
fz_metrics_view(void)
{
    static shop_metrics_counters counters;      /* 48 KiB: not on the stack */
    static shop_metrics_gauges slot = { .pid = 1, .waiting = 2 };
    static const shop_metrics_view view = { &counters, &slot, 1, NULL };

    return &view;
}

void
fz_request(shop_request *r, fz_mem *m, const char *method, shop_str path, shop_str query)
{
    memset(r, 0, sizeof(*r));
    r->method = shop_method_parse(method, strlen(method));
    r->base = SHOP_STR("");
    r->path = fz_copy(m, path);
    r->query = fz_copy(m, query);
    r->fresh_id = SHOP_STR(FZ_FRESH);
    r->now_ms = FZ_NOW_MS;
    r->warehouses = fz_warehouses;
    r->nwarehouses = 2;
    r->metrics = fz_metrics_view();
}

shop_str
fz_sign(fz_mem *m, const char *body, size_t len, int64_t now_ms)
{
    static const char hex[] = "0123456789abcdef";
    char t[24];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int tn = snprintf(t, sizeof(t), "%lld", (long long) (now_ms / 1000));
    size_t n = (size_t) tn + 1 + len;
    unsigned char *text = fz_keep(m, n);

    memcpy(text, t, (size_t) tn);
    text[tn] = '.';
    if (len) {
        memcpy(text + tn + 1, body, len);
    }
    if (HMAC(EVP_sha256(), FZ_SECRET, (int) strlen(FZ_SECRET), text, n, mac, &maclen) == NULL) {
        abort();
    }
    char *h = fz_keep(m, 2 + (size_t) tn + 4 + 2 * maclen);
    size_t o = 0;
    memcpy(h + o, "t=", 2); o += 2;
    memcpy(h + o, t, (size_t) tn); o += (size_t) tn;
    memcpy(h + o, ",v1=", 4); o += 4;
    for (unsigned i = 0; i < maclen; i++) {
        h[o++] = hex[mac[i] >> 4];
        h[o++] = hex[mac[i] & 15];
    }
    return (shop_str) { h, o };
}

/* ---- oracles ------------------------------------------------------------------ */

static int
known_status(int st)
{
    static const int ok[] = { 101, 200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 412,
                              413, 415, 422, 500, 503 };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (ok[i] == st) {
            return 1;
        }
    }
    return 0;
}

static void
check_json_body(const shop_response *r)
{
    char *text = malloc(r->body.n + 1);
    json_tokener *tok = json_tokener_new_ex(64);

    FZ_ASSERT(text != NULL && tok != NULL, "out of memory");
    memcpy(text, r->body.p, r->body.n);
    text[r->body.n] = '\0';
    FZ_ASSERT(strlen(text) == r->body.n, "a NUL inside a JSON body: %.*s", (int) r->body.n, text);
    FZ_ASSERT(shop_utf8_valid(text, r->body.n), "the JSON body is not UTF-8: %s", text);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *o = json_tokener_parse_ex(tok, text, (int) r->body.n + 1);
    enum json_tokener_error e = json_tokener_get_error(tok);
    json_tokener_free(tok);
    FZ_ASSERT(e == json_tokener_success, "the body is not valid JSON (%s): %s",
              json_tokener_error_desc(e), text);

    if (r->content_type.n == 24 && memcmp(r->content_type.p, "application/problem+json", 24) == 0) {
        struct json_object *v;
        FZ_ASSERT(json_object_is_type(o, json_type_object), "a problem that is no object: %s", text);
        FZ_ASSERT(json_object_object_get_ex(o, "status", &v) && json_object_is_type(v, json_type_int)
                  && json_object_get_int(v) == r->status,
                  "the problem's status is not the response's %d: %s", r->status, text);
        FZ_ASSERT(json_object_object_get_ex(o, "type", &v) && json_object_is_type(v, json_type_string)
                  && strncmp(json_object_get_string(v), SHOP_PROBLEM_BASE,
                             strlen(SHOP_PROBLEM_BASE)) == 0,
                  "the problem has no type: %s", text);
        FZ_ASSERT(json_object_object_get_ex(o, "detail", &v) && json_object_is_type(v, json_type_string),
                  "the problem has no detail: %s", text);
    }
    json_object_put(o);
    free(text);
}

void
fz_check_response(const shop_ctx *c, int planned)
{
    const shop_response *r = &c->resp;

    FZ_ASSERT(r->nheaders >= 1 && r->nheaders <= SHOP_MAX_HEADERS, "nheaders %d", r->nheaders);
    FZ_ASSERT(strcmp(r->headers[0].name, "X-Request-Id") == 0, "first header is %s", r->headers[0].name);
    for (int i = 0; i < r->nheaders; i++) {
        shop_str v = r->headers[i].value;
        FZ_ASSERT(r->headers[i].name != NULL, "header %d has no name", i);
        for (size_t k = 0; k < v.n; k++) {
            FZ_ASSERT(v.p[k] != '\r' && v.p[k] != '\n' && v.p[k] != '\0',
                      "header %s carries a CR, LF or NUL: %.*s", r->headers[i].name, (int) v.n, v.p);
        }
    }
    FZ_ASSERT(!c->arena->failed, "the arena failed without a memory limit");

    if (planned && c->nqueries > 0) {
        FZ_ASSERT(r->status == 0 && c->err == SHOP_OK,
                  "a plan with %d statements also answered %d", c->nqueries, r->status);
        for (int i = 0; i < c->nqueries; i++) {
            const shop_query *q = &c->queries[i];
            FZ_ASSERT(q->stmt >= 0 && q->stmt < SHOP_STMT_COUNT, "statement id %d", (int) q->stmt);
            FZ_ASSERT(q->nparams == shop_catalogue[q->stmt].nparams, "%s: %d parameters, catalogue %d",
                      shop_catalogue[q->stmt].name, q->nparams, shop_catalogue[q->stmt].nparams);
            for (int p = 0; p < SHOP_MAX_PARAMS; p++) {
                const char *v = q->values[p];
                if (p >= q->nparams) {
                    FZ_ASSERT(v == NULL, "%s: value %d past nparams", shop_catalogue[q->stmt].name, p);
                } else if (v != NULL) {
                    FZ_ASSERT(shop_utf8_valid(v, strlen(v)), "%s: parameter $%d is not UTF-8: %s",
                              shop_catalogue[q->stmt].name, p + 1, v);
                }
            }
        }
        return;
    }

    FZ_ASSERT(known_status(r->status), "status %d", r->status);
    if (planned) {
        FZ_ASSERT(r->status < 500, "hostile input answered %d: %.*s", r->status, (int) r->body.n,
                  r->body.p ? r->body.p : "");
    }
    if (r->status >= 400) {
        FZ_ASSERT(c->err != SHOP_OK && shop_err_info_of(c->err)->status == r->status,
                  "status %d with err %d", r->status, (int) c->err);
    }
    if (r->body.n > 0) {
        FZ_ASSERT(r->content_type.n > 0, "a body without a Content-Type");
        if (memmem(r->content_type.p, r->content_type.n, "json", 4) != NULL) {
            check_json_body(r);
        }
    }
}

/* The log line: a strict JSON object on one line. */
static void
check_log_line(shop_ctx *c, shop_str method)
{
    shop_str line = shop_log_line(c, method, 1234, 567, 89);
    shop_response r = { 0 };

    for (size_t i = 0; i < line.n; i++) {
        FZ_ASSERT(line.p[i] != '\n' && line.p[i] != '\r', "a line break in the log line");
    }
    r.body = line;
    r.status = 200;
    r.content_type = SHOP_STR("application/json");
    check_json_body(&r);
}

void
fz_run(shop_arena *a, const shop_settings *s, const shop_request *req, shop_str method, unsigned fail)
{
    static shop_metrics_counters metrics;   /* 48 KiB: not on the stack */
    static const shop_db_status failures[] = {
        SHOP_DB_UNIQUE, SHOP_DB_FOREIGN_KEY, SHOP_DB_CHECK, SHOP_DB_RAISED,
        SHOP_DB_RETRY, SHOP_DB_TIMEOUT, SHOP_DB_UNAVAILABLE, SHOP_DB_ERROR,
    };
    static const char *const raised[] = { "SH400", "SH404", "SH409", "SH412", "SH422", "SHSTK",
                                          "SHTRN", "SHXXX" };
    shop_ctx c;

    shop_begin(&c, a, s, req);
    fz_check_response(&c, 1);
    if (c.nqueries > 0) {
        shop_result *res = calloc((size_t) c.nqueries, sizeof(*res));
        FZ_ASSERT(res != NULL, "out of memory");
        for (int i = 0; i < c.nqueries; i++) {
            shop_db_status st = failures[(fail + (unsigned) i) % 8];
            shop_result_fail(&res[i], st);
            if (st == SHOP_DB_RAISED) {
                memcpy(res[i].sqlstate, raised[(fail >> 3) % 8], 6);
                res[i].message = "refused";
                res[i].detail = (fail >> 6) & 1 ? "paid" : ",\"errors\":[]";
            } else if (st == SHOP_DB_UNIQUE) {
                res[i].constraint = (fail >> 6) & 1 ? "products_sku_key" : "products_slug_key";
            }
        }
        shop_finish(&c, res);
        fz_check_response(&c, 0);
        free(res);
    }
    check_log_line(&c, method);
    int route = shop_metrics_route_index(&c);
    FZ_ASSERT(route >= 0 && route < SHOP_METRICS_ROUTES, "metrics route index %d", route);
    FZ_ASSERT(c.route == NULL || shop_routes[route].tmpl == c.route->tmpl, "metrics route %d is not %s",
              route, c.route->tmpl);
    shop_metrics_observe(&metrics, route, (unsigned) req->method, c.resp.status, 1234, 567, c.nqueries > 0);
    shop_release(&c);
}
