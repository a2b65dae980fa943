/* Shared helpers of the core's unit tests: memory for the request arena,
 * a request builder, fabricated libpq results and response checks.
 *
 * Every test runs with a fresh th_env (TH_TEST() sets it up and tears it
 * down, also when the test fails): what the env hands out (arena blocks,
 * PGresults, parsed JSON, the shop_ctx) is released at teardown, so the
 * sanitizers' leak check stays quiet. */
#ifndef SHOP_TEST_HELPERS_H
#define SHOP_TEST_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "handler.h"
#include "shop.h"

#define TH_TOKEN    "s3cret-admin-token-0123456789"
#define TH_FRESH_ID "0123456789abcdef0123456789abcdef"
/* 2026-11-22T23:34:02.123Z */
#define TH_NOW_MS   1795390442123LL

#define TH_MAX_PG   64
#define TH_MAX_JSON 32

/* An arena over malloc'ed blocks, all freed at teardown. */
typedef struct {
    shop_arena  arena;
    void      **blocks;
    size_t      nblocks;
    size_t      cap;
    size_t      limit;      /* grow refuses once this many blocks exist */
} th_mem;

typedef struct th_env {
    th_mem              core;       /* the request arena the core allocates from */
    th_mem              scratch;    /* the tests' own copies */
    shop_settings       settings;   /* defaults, admin token TH_TOKEN */
    shop_request        req;
    shop_ctx            c;
    int                 begun;
    PGresult           *pg[TH_MAX_PG];
    int                 npg;
    struct json_object *json[TH_MAX_JSON];
    int                 njson;
} th_env;

int th_setup(void **state);
int th_teardown(void **state);
#define TH_TEST(f) cmocka_unit_test_setup_teardown(f, th_setup, th_teardown)

/* A further env inside one test, for one more request (shop_begin runs
 * once per env); th_free() it before the test ends. */
th_env *th_new(void);
void    th_free(th_env *e);

/* n copies of unit, in the env's scratch arena. */
const char *th_rep(th_env *e, const char *unit, int n);
/* printf into the env's scratch arena. */
const char *th_fmt(th_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void th_mem_init(th_mem *m);
void th_mem_free(th_mem *m);

/* ---- requests ----------------------------------------------------------- */

/* A request for "METHOD", target "path[?query]" below base "" (the strings
 * are copied into the scratch arena, each NUL-terminated). */
void      th_request(th_env *e, const char *method, const char *target);
/* The body and its Content-Type (NULL: no Content-Type header). */
void      th_body(th_env *e, const char *content_type, const char *body);
void      th_body_n(th_env *e, const char *content_type, const char *body, size_t n);
/* Authorization: Bearer TH_TOKEN */
void      th_admin(th_env *e);
/* A string the core sees as a header value (copied, not NUL-terminated
 * past its length in spirit: the copy is followed by 'Z' bytes). */
shop_str  th_s(th_env *e, const char *s);
/* shop_begin() on the env's request. */
shop_ctx *th_begin(th_env *e);
/* shop_finish() with one result per planned query. */
void      th_finish(th_env *e, const shop_result *results);

/* ---- results -------------------------------------------------------------- */

/* An empty PGRES_TUPLES_OK result with these columns (owned by the env). */
PGresult   *th_pg(th_env *e, int ncols, const char *const *names, const Oid *types);
/* Appends a row; values[i] NULL is SQL NULL. */
void        th_pg_row(PGresult *res, const char *const *values);

typedef struct { const char *v[SHOP_P_NCOLS]; } th_product;
/* Product 42, TEE-RED-M, version 3 (see helpers.c). */
th_product  th_product_default(void);
PGresult   *th_products(th_env *e, int n, const th_product *rows);
/* n products with ids 1..n. */
PGresult   *th_products_seq(th_env *e, int n);

/* An empty result with the columns (catalogue names and types) of stmt. */
PGresult   *th_pg_stmt(th_env *e, shop_stmt_id stmt);

#define TH_ORDER_ID "0b5e2c9a-3f4d-4e6b-9a7c-1d2e3f4a5b6c"
typedef struct { const char *v[SHOP_O_NCOLS]; } th_order;
/* One line of order TH_ORDER_ID: pending, 2 x TEE-RED-M at 1999 from
 * north, total 3998 EUR, version 1, seq 7, not replayed (see helpers.c). */
th_order    th_order_default(void);
/* An order statement's result (the order once per line). */
PGresult   *th_orders(th_env *e, int n, const th_order *rows);

shop_result th_ok(const PGresult *res);
shop_result th_db(shop_db_status status);
shop_result th_raised(const char *sqlstate, const char *message);
shop_result th_unique(const char *constraint);

/* ---- answers -------------------------------------------------------------- */

/* A NUL-terminated copy of s ("" when empty). */
const char *th_cstr(th_env *e, shop_str s);
/* The value of the response header `name`, or NULL; asserts it is not repeated. */
const char *th_header(th_env *e, const char *name);
/* Parses text with json-c (strict, UTF-8 validated, nothing after the
 * value); fails the test when it is not valid JSON. Owned by the env. */
struct json_object *th_json(th_env *e, shop_str text);
/* Asserts the response is the problem `type` with `status` (Content-Type,
 * body members type/title/status/detail, X-Request-Id) and returns the body. */
struct json_object *th_problem(th_env *e, int status, const char *type);
/* The string member `key` of o, or NULL. */
const char *th_jstr(struct json_object *o, const char *key);
/* Asserts errors == exactly the JSON text `expected` (e.g. "[{...}]"). */
void        th_assert_errors(th_env *e, struct json_object *problem, const char *expected);

#define assert_str(e, s, lit) assert_string_equal(th_cstr((e), (s)), (lit))
#define assert_body(e, lit)   assert_str((e), (e)->c.resp.body, (lit))
/* Planned query i's parameter p (NULL for SQL NULL). */
#define th_param(e, i, p)     ((e)->c.queries[(i)].values[(p)])
#define assert_param(e, i, p, lit) assert_string_equal(th_param((e), (i), (p)), (lit))
#define assert_param_null(e, i, p) assert_null(th_param((e), (i), (p)))

#endif
