#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- memory ----------------------------------------------------------------- */

static void *
th_grow(void *owner, size_t size)
{
    th_mem *m = owner;

    if (m->nblocks >= m->limit) {
        return NULL;
    }
    if (m->nblocks == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        void **blocks = realloc(m->blocks, cap * sizeof(*blocks));
        if (blocks == NULL) {
            return NULL;
        }
        m->blocks = blocks;
        m->cap = cap;
    }
    void *p = malloc(size);
    if (p != NULL) {
        m->blocks[m->nblocks++] = p;
    }
    return p;
}

void
th_mem_init(th_mem *m)
{
    memset(m, 0, sizeof(*m));
    m->limit = (size_t) -1;
    shop_arena_init(&m->arena, th_grow, m);
}

void
th_mem_free(th_mem *m)
{
    for (size_t i = 0; i < m->nblocks; i++) {
        free(m->blocks[i]);
    }
    free(m->blocks);
    memset(m, 0, sizeof(*m));
}

int
th_setup(void **state)
{
    th_env *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        return -1;
    }
    th_mem_init(&e->core);
    th_mem_init(&e->scratch);
    shop_settings_defaults(&e->settings);
    e->settings.admin_token = TH_TOKEN;
    e->settings.admin_token_len = strlen(TH_TOKEN);
    th_request(e, "GET", "/healthz");
    *state = e;
    return 0;
}

/* Envs th_new() handed out and th_free() has not taken back yet (a test
 * that failed half-way): the test's teardown frees them. */
static th_env *th_extra[64];

static void
th_env_free(th_env *e)
{
    if (e->begun) {
        shop_release(&e->c);
    }
    for (int i = 0; i < e->npg; i++) {
        PQclear(e->pg[i]);
    }
    for (int i = 0; i < e->njson; i++) {
        json_object_put(e->json[i]);
    }
    th_mem_free(&e->core);
    th_mem_free(&e->scratch);
    free(e);
}

int
th_teardown(void **state)
{
    th_env *e = *state;

    for (size_t i = 0; i < sizeof(th_extra) / sizeof(th_extra[0]); i++) {
        if (th_extra[i] != NULL) {
            th_env_free(th_extra[i]);
            th_extra[i] = NULL;
        }
    }
    if (e != NULL) {
        th_env_free(e);
    }
    *state = NULL;
    return 0;
}

th_env *
th_new(void)
{
    th_env *e = NULL;
    size_t i = 0;

    while (i < sizeof(th_extra) / sizeof(th_extra[0]) && th_extra[i] != NULL) {
        i++;
    }
    assert_true(i < sizeof(th_extra) / sizeof(th_extra[0]));
    assert_int_equal(th_setup((void **) &e), 0);
    th_extra[i] = e;
    return e;
}

void
th_free(th_env *e)
{
    for (size_t i = 0; i < sizeof(th_extra) / sizeof(th_extra[0]); i++) {
        if (th_extra[i] == e) {
            th_extra[i] = NULL;
        }
    }
    th_env_free(e);
}

const char *
th_rep(th_env *e, const char *unit, int n)
{
    size_t ul = strlen(unit);
    char *s = shop_alloc(&e->scratch.arena, ul * (size_t) n + 1);

    assert_non_null(s);
    for (int i = 0; i < n; i++) {
        memcpy(s + ul * (size_t) i, unit, ul);
    }
    s[ul * (size_t) n] = '\0';
    return s;
}

const char *
th_fmt(th_env *e, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    s = shop_alloc(&e->scratch.arena, (size_t) n + 1);
    assert_non_null(s);
    va_start(ap, fmt);
    vsnprintf(s, (size_t) n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- requests --------------------------------------------------------------- */

/* A copy followed by bytes that must never be read as part of the value. */
static char *
th_copy_padded(th_env *e, const char *s, size_t n)
{
    char *p = shop_alloc(&e->scratch.arena, n + 5);

    assert_non_null(p);
    memcpy(p, s, n);
    memcpy(p + n, "\x01ZZ\"", 5);
    return p;
}

shop_str
th_s(th_env *e, const char *s)
{
    size_t n = strlen(s);
    return (shop_str) { th_copy_padded(e, s, n), n };
}

void
th_request(th_env *e, const char *method, const char *target)
{
    size_t n = strlen(target);
    /* The path and query share one buffer, as in a request line: the path is
     * followed by '?' when there is a query, by NUL otherwise. */
    char *t = shop_strndup(&e->scratch.arena, target, n);
    const char *q = strchr(t, '?');

    assert_non_null(t);
    memset(&e->req, 0, sizeof(e->req));
    e->req.method = shop_method_parse(method, strlen(method));
    e->req.base = SHOP_STR("");
    e->req.path = (shop_str) { t, q ? (size_t) (q - t) : n };
    e->req.query = q ? (shop_str) { q + 1, n - (size_t) (q + 1 - t) } : SHOP_STR("");
    e->req.fresh_id = SHOP_STR(TH_FRESH_ID);
    e->req.now_ms = TH_NOW_MS;
}

void
th_body_n(th_env *e, const char *content_type, const char *body, size_t n)
{
    e->req.content_type = content_type ? th_s(e, content_type) : SHOP_NULL_STR;
    e->req.has_body = 1;
    e->req.body = th_copy_padded(e, body, n);
    e->req.body_len = n;
}

void
th_body(th_env *e, const char *content_type, const char *body)
{
    th_body_n(e, content_type, body, strlen(body));
}

void
th_admin(th_env *e)
{
    e->req.authorization = th_s(e, "Bearer " TH_TOKEN);
}

shop_ctx *
th_begin(th_env *e)
{
    assert_false(e->begun);
    shop_begin(&e->c, &e->core.arena, &e->settings, &e->req);
    e->begun = 1;
    assert_true(e->c.resp.nheaders >= 1);
    assert_string_equal(e->c.resp.headers[0].name, "X-Request-Id");
    /* Every planned statement is in the catalogue with its parameter count. */
    for (int i = 0; i < e->c.nqueries; i++) {
        assert_in_range(e->c.queries[i].stmt, 0, SHOP_STMT_COUNT - 1);
        assert_int_equal(e->c.queries[i].nparams, shop_catalogue[e->c.queries[i].stmt].nparams);
        for (int p = e->c.queries[i].nparams; p < SHOP_MAX_PARAMS; p++) {
            assert_null(e->c.queries[i].values[p]);
        }
    }
    return &e->c;
}

void
th_finish(th_env *e, const shop_result *results)
{
    assert_true(e->begun);
    shop_finish(&e->c, results);
    assert_string_equal(e->c.resp.headers[0].name, "X-Request-Id");
}

/* ---- results ---------------------------------------------------------------- */

static PGresult *
th_keep(th_env *e, PGresult *res)
{
    assert_non_null(res);
    if (e->npg >= TH_MAX_PG) {
        PQclear(res);
        fail_msg("more than %d PGresults in one env", TH_MAX_PG);
    }
    e->pg[e->npg++] = res;
    return res;
}

PGresult *
th_pg(th_env *e, int ncols, const char *const *names, const Oid *types)
{
    PGresult *res = th_keep(e, PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK));
    PGresAttDesc att[32];

    assert_true(ncols <= 32);
    memset(att, 0, sizeof(att));
    for (int i = 0; i < ncols; i++) {
        att[i].name = (char *) names[i];
        att[i].tableid = 0;
        att[i].columnid = 0;
        att[i].format = 0;
        att[i].typid = types[i];
        att[i].typlen = -1;
        att[i].atttypmod = -1;
    }
    assert_int_equal(PQsetResultAttrs(res, ncols, att), 1);
    return res;
}

void
th_pg_row(PGresult *res, const char *const *values)
{
    int row = PQntuples(res);

    for (int i = 0; i < PQnfields(res); i++) {
        const char *v = values[i];
        assert_int_equal(PQsetvalue(res, row, i, (char *) v, v ? (int) strlen(v) : -1), 1);
    }
}

th_product
th_product_default(void)
{
    th_product p = { {
        [SHOP_P_ID] = "42",
        [SHOP_P_SKU] = "TEE-RED-M",
        [SHOP_P_SLUG] = "red-tee-m",
        [SHOP_P_NAME] = "Red tee, M",
        [SHOP_P_CATEGORY] = "apparel",
        [SHOP_P_DESCRIPTION] = "A red tee.",
        [SHOP_P_PRICE_CENTS] = "1999",
        [SHOP_P_CURRENCY] = "EUR",
        [SHOP_P_VERSION] = "3",
        [SHOP_P_CREATED_AT] = "2026-11-22 23:34:02.123456+00",
        [SHOP_P_UPDATED_AT] = "2026-11-23 08:00:00+00",
    } };
    return p;
}

PGresult *
th_products(th_env *e, int n, const th_product *rows)
{
    const char *names[SHOP_P_NCOLS];
    Oid types[SHOP_P_NCOLS];
    const shop_statement *st = &shop_catalogue[SHOP_STMT_PRODUCT_GET];

    for (int i = 0; i < SHOP_P_NCOLS; i++) {
        names[i] = st->cols[i].name;
        types[i] = st->cols[i].type;
    }
    PGresult *res = th_pg(e, SHOP_P_NCOLS, names, types);
    for (int r = 0; r < n; r++) {
        th_pg_row(res, rows[r].v);
    }
    return res;
}

PGresult *
th_products_seq(th_env *e, int n)
{
    th_product *rows = shop_alloc(&e->scratch.arena, sizeof(*rows) * (size_t) (n ? n : 1));

    assert_non_null(rows);
    for (int i = 0; i < n; i++) {
        rows[i] = th_product_default();
        rows[i].v[SHOP_P_ID] = shop_fmt_int(&e->scratch.arena, i + 1);
    }
    return th_products(e, n, rows);
}

PGresult *
th_pg_stmt(th_env *e, shop_stmt_id stmt)
{
    const shop_statement *st = &shop_catalogue[stmt];
    const char *names[32];
    Oid types[32];

    assert_true(st->ncols <= 32);
    for (int i = 0; i < st->ncols; i++) {
        names[i] = st->cols[i].name;
        types[i] = st->cols[i].type;
    }
    return th_pg(e, st->ncols, names, types);
}

th_order
th_order_default(void)
{
    th_order o = { {
        [SHOP_O_ID] = TH_ORDER_ID,
        [SHOP_O_STATUS] = "pending",
        [SHOP_O_TOTAL_CENTS] = "3998",
        [SHOP_O_CURRENCY] = "EUR",
        [SHOP_O_EMAIL] = "ann@example.com",
        [SHOP_O_VERSION] = "1",
        [SHOP_O_CREATED_AT] = "2026-11-22 23:34:02.123456+00",
        [SHOP_O_UPDATED_AT] = "2026-11-23 08:00:00+00",
        [SHOP_O_LINE_SKU] = "TEE-RED-M",
        [SHOP_O_LINE_QUANTITY] = "2",
        [SHOP_O_LINE_UNIT_PRICE] = "1999",
        [SHOP_O_LINE_WAREHOUSE] = "north",
        [SHOP_O_SEQ] = "7",
        [SHOP_O_REPLAYED] = "f",
    } };
    return o;
}

PGresult *
th_orders(th_env *e, int n, const th_order *rows)
{
    PGresult *res = th_pg_stmt(e, SHOP_STMT_ORDER_GET);

    for (int r = 0; r < n; r++) {
        th_pg_row(res, rows[r].v);
    }
    return res;
}

shop_result
th_ok(const PGresult *res)
{
    shop_result r;
    shop_result_set(&r, res);
    assert_int_equal(r.status, SHOP_DB_OK);
    return r;
}

shop_result
th_db(shop_db_status status)
{
    shop_result r;
    shop_result_fail(&r, status);
    return r;
}

shop_result
th_raised(const char *sqlstate, const char *message)
{
    shop_result r = th_db(SHOP_DB_RAISED);
    snprintf(r.sqlstate, sizeof(r.sqlstate), "%s", sqlstate);
    r.message = message;
    return r;
}

shop_result
th_unique(const char *constraint)
{
    shop_result r = th_db(SHOP_DB_UNIQUE);
    snprintf(r.sqlstate, sizeof(r.sqlstate), "23505");
    r.constraint = constraint;
    return r;
}

/* ---- answers ---------------------------------------------------------------- */

const char *
th_cstr(th_env *e, shop_str s)
{
    if (s.n == 0) {
        return "";
    }
    char *p = shop_strndup(&e->scratch.arena, s.p, s.n);
    assert_non_null(p);
    return p;
}

const char *
th_header(th_env *e, const char *name)
{
    const char *found = NULL;

    for (int i = 0; i < e->c.resp.nheaders; i++) {
        if (strcasecmp(e->c.resp.headers[i].name, name) == 0) {
            assert_null(found);   /* never twice */
            found = th_cstr(e, e->c.resp.headers[i].value);
        }
    }
    return found;
}

struct json_object *
th_json(th_env *e, shop_str text)
{
    const char *s = th_cstr(e, text);
    size_t n = strlen(s);
    json_tokener *tok = json_tokener_new_ex(64);

    assert_int_equal(n, text.n);   /* no NUL inside */
    assert_non_null(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    /* n + 1: the terminating NUL tells json-c the text ends there. */
    struct json_object *o = json_tokener_parse_ex(tok, s, (int) n + 1);
    enum json_tokener_error err = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (err != json_tokener_success) {
        print_error("not valid JSON (%s): %s\n", json_tokener_error_desc(err), s);
        json_object_put(o);
        fail();
    }
    assert_true(e->njson < TH_MAX_JSON);
    e->json[e->njson++] = o;
    return o;
}

const char *
th_jstr(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) {
        return NULL;
    }
    return json_object_get_string(v);
}

struct json_object *
th_problem(th_env *e, int status, const char *type)
{
    const shop_response *r = &e->c.resp;
    struct json_object *o, *v;
    char uri[128];

    assert_int_equal(r->status, status);
    assert_str(e, r->content_type, "application/problem+json");
    o = th_json(e, r->body);
    assert_true(json_object_is_type(o, json_type_object));
    snprintf(uri, sizeof(uri), "%s%s", SHOP_PROBLEM_BASE, type);
    assert_non_null(th_jstr(o, "type"));
    assert_string_equal(th_jstr(o, "type"), uri);
    assert_non_null(th_jstr(o, "title"));
    assert_true(json_object_object_get_ex(o, "status", &v));
    assert_true(json_object_is_type(v, json_type_int));
    assert_int_equal(json_object_get_int(v), status);
    assert_non_null(th_jstr(o, "detail"));
    assert_non_null(th_header(e, "X-Request-Id"));
    assert_int_not_equal(e->c.err, SHOP_OK);
    assert_int_equal(shop_err_info_of(e->c.err)->status, status);
    assert_string_equal(shop_err_info_of(e->c.err)->type, type);
    return o;
}

void
th_assert_errors(th_env *e, struct json_object *problem, const char *expected)
{
    struct json_object *errors;
    (void) e;

    assert_true(json_object_object_get_ex(problem, "errors", &errors));
    assert_string_equal(json_object_to_json_string_ext(errors, JSON_C_TO_STRING_PLAIN
                                                               | JSON_C_TO_STRING_NOSLASHESCAPE),
                        expected);
}
