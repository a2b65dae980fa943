/* One request: FastCGI parameters and body into a shop_request, the core's
 * plan run on a pooled connection, the response written, one log line. */
#include "shop_fcgi.h"

#include <limits.h>
#include <string.h>

#include <fcgiapp.h>

/* The parameters the core needs; HTTP_* ones are request headers. */
enum {
    P_REQUEST_METHOD,
    P_REQUEST_URI,
    P_SCRIPT_NAME,
    P_PATH_INFO,
    P_QUERY_STRING,
    P_CONTENT_TYPE,
    P_CONTENT_LENGTH,
    P_AUTHORIZATION,
    P_IF_MATCH,
    P_IF_NONE_MATCH,
    P_REQUEST_ID,
    P_IDEMPOTENCY_KEY,
    P_LAST_EVENT_ID,
    P_SIGNATURE,
    P_COUNT
};

static const shop_str fcgi_param_names[P_COUNT] = {
    [P_REQUEST_METHOD]  = SHOP_STR("REQUEST_METHOD"),
    [P_REQUEST_URI]     = SHOP_STR("REQUEST_URI"),
    [P_SCRIPT_NAME]     = SHOP_STR("SCRIPT_NAME"),
    [P_PATH_INFO]       = SHOP_STR("PATH_INFO"),
    [P_QUERY_STRING]    = SHOP_STR("QUERY_STRING"),
    [P_CONTENT_TYPE]    = SHOP_STR("CONTENT_TYPE"),
    [P_CONTENT_LENGTH]  = SHOP_STR("CONTENT_LENGTH"),
    [P_AUTHORIZATION]   = SHOP_STR("HTTP_AUTHORIZATION"),
    [P_IF_MATCH]        = SHOP_STR("HTTP_IF_MATCH"),
    [P_IF_NONE_MATCH]   = SHOP_STR("HTTP_IF_NONE_MATCH"),
    [P_REQUEST_ID]      = SHOP_STR("HTTP_X_REQUEST_ID"),
    [P_IDEMPOTENCY_KEY] = SHOP_STR("HTTP_IDEMPOTENCY_KEY"),
    [P_LAST_EVENT_ID]   = SHOP_STR("HTTP_LAST_EVENT_ID"),
    [P_SIGNATURE]       = SHOP_STR("HTTP_SHOP_SIGNATURE"),
};

/* One pass over the environment. A header sent twice arrives as two
 * parameters of the same name; the core wants them joined with ", ". */
static void
fcgi_params_collect(shop_arena *a, char **envp, shop_str *out, int *seen)
{
    for (char **e = envp; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');

        if (eq == NULL) {
            continue;
        }
        size_t nlen = (size_t) (eq - *e);
        shop_str v = shop_cstr(eq + 1);

        for (int i = 0; i < P_COUNT; i++) {
            if (fcgi_param_names[i].n != nlen || memcmp(fcgi_param_names[i].p, *e, nlen) != 0) {
                continue;
            }
            if (!seen[i]) {
                out[i] = v;
                seen[i] = 1;
            } else if (i >= P_AUTHORIZATION) {
                char *j = shop_alloc(a, out[i].n + 2 + v.n + 1);
                if (j != NULL) {
                    memcpy(j, out[i].p, out[i].n);
                    memcpy(j + out[i].n, ", ", 2);
                    memcpy(j + out[i].n + 2, v.p, v.n);
                    j[out[i].n + 2 + v.n] = '\0';
                    out[i] = (shop_str) { j, out[i].n + 2 + v.n };
                }
            }
            break;
        }
    }
}

/* REQUEST_URI is the raw target: path and query as the client sent them.
 * Without it (servers other than nginx may omit it) the decoded CGI
 * variables are the best there is. */
static void
fcgi_request_target(shop_request *req, shop_arena *a, const shop_str *p, const shop_settings *s)
{
    shop_str path, base = shop_cstr(s->base_path);

    if (p[P_REQUEST_URI].n > 0) {
        const char *q = memchr(p[P_REQUEST_URI].p, '?', p[P_REQUEST_URI].n);

        path.p = p[P_REQUEST_URI].p;
        if (q != NULL) {
            path.n = (size_t) (q - path.p);
            req->query = (shop_str) { q + 1, p[P_REQUEST_URI].n - path.n - 1 };
        } else {
            path.n = p[P_REQUEST_URI].n;
            req->query = SHOP_STR("");
        }
    } else {
        size_t n = p[P_SCRIPT_NAME].n + p[P_PATH_INFO].n;
        char *j = shop_alloc(a, n + 1);

        if (j != NULL) {
            memcpy(j, p[P_SCRIPT_NAME].p, p[P_SCRIPT_NAME].n);
            memcpy(j + p[P_SCRIPT_NAME].n, p[P_PATH_INFO].p, p[P_PATH_INFO].n);
            j[n] = '\0';
            path = (shop_str) { j, n };
        } else {
            path = SHOP_STR("");
        }
        req->query = p[P_QUERY_STRING];
    }

    req->base = base;
    /* The prefix counts only as a whole segment: /api, /api/x, not /apix. */
    if (base.n > 0 && path.n >= base.n && memcmp(path.p, base.p, base.n) == 0) {
        if (path.n == base.n) {
            path = SHOP_STR("/");
        } else if (path.p[base.n] == '/') {
            path.p += base.n;
            path.n -= base.n;
        }
    }
    req->path = path;
}

/* Parses CONTENT_LENGTH: -1 when absent or not a number; a number too big
 * for int64 is simply too large. */
static int64_t
fcgi_content_length(shop_str v)
{
    int64_t n = 0;

    if (v.n == 0) {
        return -1;
    }
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') {
            return -1;
        }
        if (n > (INT64_MAX - 9) / 10) {
            n = INT64_MAX;
            continue;
        }
        n = n * 10 + (v.p[i] - '0');
    }
    return n;
}

/* Reads the body the core may see, then whatever else the server sends: a
 * responder that closes with unread input resets the connection, and the
 * server may lose the response. */
static void
fcgi_request_body(shop_request *req, shop_arena *a, FCGX_Request *rq, const shop_str *p,
                  const shop_settings *s)
{
    char drain[4096];
    int64_t len = fcgi_content_length(p[P_CONTENT_LENGTH]);
    int got, want;

    req->has_body = len > 0
                    || (len == 0 && (req->method & (SHOP_POST | SHOP_PUT | SHOP_PATCH)));
    req->body = "";
    req->body_len = 0;

    if (len > s->body_limit) {
        req->body_too_large = 1;
    } else if (len > 0) {
        char *body = shop_alloc(a, (size_t) len + 1);

        if (body != NULL) {
            size_t n = 0;

            while (n < (size_t) len) {
                want = (size_t) len - n > INT_MAX ? INT_MAX : (int) ((size_t) len - n);
                got = FCGX_GetStr(body + n, want, rq->in);
                if (got <= 0) {
                    break;
                }
                n += (size_t) got;
            }
            body[n] = '\0';
            req->body = body;
            req->body_len = n;
        }
    }

    while (FCGX_GetStr(drain, (int) sizeof(drain), rq->in) == (int) sizeof(drain)) {
        /* discard */
    }
}

static void
fcgi_put(FCGX_Stream *out, const char *p, size_t n)
{
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int) n;

        if (FCGX_PutStr(p, chunk, out) != chunk) {
            return;
        }
        p += chunk;
        n -= (size_t) chunk;
    }
}

static void
fcgi_puts(FCGX_Stream *out, const char *s)
{
    fcgi_put(out, s, strlen(s));
}

/* A header value is one line; a CR or LF would start a header of its own. */
static int
fcgi_header_safe(shop_str v)
{
    return memchr(v.p, '\r', v.n) == NULL && memchr(v.p, '\n', v.n) == NULL;
}

/* The status line and the headers, without the blank line. FCGX_FPrintF has
 * no %zu and its own printf engine: snprintf + PutStr. */
static void
fcgi_response_headers(FCGX_Stream *out, const shop_response *r)
{
    char line[96];
    int n;

    n = snprintf(line, sizeof(line), "Status: %d %s\r\n", r->status, shop_status_reason(r->status));
    fcgi_put(out, line, (size_t) n);

    if (r->content_type.n > 0 && fcgi_header_safe(r->content_type)) {
        fcgi_puts(out, "Content-Type: ");
        fcgi_put(out, r->content_type.p, r->content_type.n);
        fcgi_puts(out, "\r\n");
    }
    for (int i = 0; i < r->nheaders && i < SHOP_MAX_HEADERS; i++) {
        const shop_header *h = &r->headers[i];

        if (h->name == NULL || !fcgi_header_safe(h->value)) {
            continue;
        }
        fcgi_puts(out, h->name);
        fcgi_puts(out, ": ");
        fcgi_put(out, h->value.p, h->value.n);
        fcgi_puts(out, "\r\n");
    }
}

void
fcgi_response_head(FCGX_Stream *out, const shop_response *r)
{
    fcgi_response_headers(out, r);
    fcgi_puts(out, "\r\n");
}

static void
fcgi_response_write(FCGX_Stream *out, const shop_response *r, int head)
{
    char line[96];
    int n, bodyless = r->status == 204 || r->status == 304 || r->status < 200;

    fcgi_response_headers(out, r);
    if (!bodyless) {
        n = snprintf(line, sizeof(line), "Content-Length: %llu\r\n",
                     (unsigned long long) r->body.n);
        fcgi_put(out, line, (size_t) n);
    }
    fcgi_puts(out, "\r\n");

    if (!head && !bodyless) {
        fcgi_put(out, r->body.p, r->body.n);
    }
}

/* When not even the results fit in memory, say so without the core. */
static void
fcgi_response_oom(FCGX_Stream *out, shop_str request_id)
{
    static const char body[] =
        "{\"type\":\"" SHOP_PROBLEM_BASE "internal\",\"title\":\"Internal server error\","
        "\"status\":500}";
    char line[64];
    int n;

    fcgi_puts(out, "Status: 500 Internal Server Error\r\n"
                   "Content-Type: application/problem+json\r\n");
    if (request_id.n > 0 && fcgi_header_safe(request_id)) {
        fcgi_puts(out, "X-Request-Id: ");
        fcgi_put(out, request_id.p, request_id.n);
        fcgi_puts(out, "\r\n");
    }
    n = snprintf(line, sizeof(line), "Content-Length: %d\r\n\r\n", (int) sizeof(body) - 1);
    fcgi_put(out, line, (size_t) n);
    fcgi_put(out, body, sizeof(body) - 1);
}

/* A warehouse this process just created joins the stock check at once. */
static void
fcgi_request_after(const shop_ctx *c, const shop_request *req)
{
    if (req->method == SHOP_PUT && (c->resp.status == 200 || c->resp.status == 201)
        && strcmp(shop_route_name(c), "/warehouses/{code}") == 0 && c->params[0].n > 0) {
        fcgi_registry_added(c->params[0].p, c->params[0].n);
    }
}

int
fcgi_request_handle(fcgi_worker *w, FCGX_Request *rq)
{
    shop_str params[P_COUNT];
    int seen[P_COUNT];
    char fresh[33];
    shop_request req;
    shop_arena arena;
    shop_ctx c;
    shop_result *results = NULL;
    PGresult **res = NULL;
    fcgi_warehouses *wh;
    int64_t t0, db_us = 0, wait_us = 0;
    fcgi_sse *stream = NULL;
    int streaming = 0, status = 0;

    t0 = fcgi_now_us();
    shop_arena_init(&arena, fcgi_blocks_grow, &w->blocks);

    /* Request headers the client did not send are absent (p NULL), as the
     * core tells them apart from headers sent empty; the CGI variables are
     * "" when missing (CONTENT_TYPE too: nginx sends it even empty). */
    for (int i = 0; i < P_COUNT; i++) {
        params[i] = i >= P_AUTHORIZATION ? SHOP_NULL_STR : SHOP_STR("");
        seen[i] = 0;
    }
    fcgi_params_collect(&arena, rq->envp, params, seen);

    memset(&req, 0, sizeof(req));
    req.method = shop_method_parse(params[P_REQUEST_METHOD].p, params[P_REQUEST_METHOD].n);
    fcgi_request_target(&req, &arena, params, w->settings);
    req.content_type = params[P_CONTENT_TYPE];
    req.authorization = params[P_AUTHORIZATION];
    req.if_match = params[P_IF_MATCH];
    req.if_none_match = params[P_IF_NONE_MATCH];
    req.request_id = params[P_REQUEST_ID];
    req.idempotency_key = params[P_IDEMPOTENCY_KEY];
    req.last_event_id = params[P_LAST_EVENT_ID];
    req.signature = params[P_SIGNATURE];
    fcgi_request_body(&req, &arena, rq, params, w->settings);
    fcgi_rid_next(&w->rid, fresh);
    req.fresh_id = (shop_str) { fresh, 32 };
    req.now_ms = fcgi_wall_ms();
    wh = fcgi_registry_get();
    if (wh != NULL) {
        req.warehouses = wh->codes;
        req.nwarehouses = wh->n;
    }
    /* The router matches "/metrics" byte for byte: only that path reads
     * the gauges (the pools' and the hub's locks). */
    if ((req.method & (SHOP_GET | SHOP_HEAD)) && shop_str_eq(req.path, "/metrics")) {
        req.metrics = fcgi_metrics_view(&arena, w->pool, w->read_pool);
    }

    shop_begin(&c, &arena, w->settings, &req);

    if (c.nqueries == 0 && c.resp.stream.kind == SHOP_STREAM_SSE) {
        stream = fcgi_sse_prepare(&c, rq, w->settings, w->pool);
    }

    if (c.nqueries > 0) {
        results = shop_calloc(&arena, (size_t) c.nqueries * sizeof(shop_result));
        res = shop_calloc(&arena, (size_t) c.nqueries * sizeof(PGresult *));
    }
    if (c.nqueries > 0 && (results == NULL || res == NULL)) {
        fcgi_response_oom(rq->out, c.request_id);
        status = 500;
        res = NULL;
    } else if (stream == NULL) {
        if (c.nqueries > 0) {
            fcgi_exec_plan(w->pool, w->read_pool, &c, wh, results, res, &db_us, &wait_us);
            shop_finish(&c, results);
            fcgi_request_after(&c, &req);
        }
        fcgi_response_write(rq->out, &c.resp, req.method == SHOP_HEAD);
    }

    /* Counted once, here: an event stream when its head is written. */
    int64_t total_us = fcgi_now_us() - t0;
    fcgi_metrics_observe(&c, status != 0 ? status : c.resp.status, total_us, db_us,
                         c.nqueries > 0 && res != NULL);

    shop_str line = shop_log_line(&c, params[P_REQUEST_METHOD], total_us, db_us, wait_us);
    char *nl = shop_alloc(&arena, line.n + 1);
    if (nl != NULL && line.n > 0) {
        memcpy(nl, line.p, line.n);
        nl[line.n] = '\n';
        fcgi_log_write(nl, line.n + 1);
    }

    shop_release(&c);
    for (int i = 0; res != NULL && i < c.nqueries; i++) {
        PQclear(res[i]);
    }
    fcgi_registry_put(wh);
    fcgi_blocks_reset(&w->blocks);
    /* Only now: the stream's thread may end rq, and with it the parameters
     * the log line above read. */
    if (stream != NULL) {
        streaming = fcgi_sse_start(stream);
    }
    return streaming;
}
