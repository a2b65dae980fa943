/* Shared pieces of the libFuzzer targets in tests/fuzz/.
 *
 * Every target takes the fuzzer's bytes, builds what the core is handed by
 * a front-end (a shop_request, a settings struct, raw header values), calls
 * the core, checks what came back against the API's promises (the oracles
 * below abort, so a broken promise is a crash like any other) and frees
 * everything: arena blocks, the parsed body (shop_release), PGresults.
 * LeakSanitizer is on.
 *
 * Values handed to the core are copied into malloc'ed buffers of exactly
 * their length (no NUL after them), so AddressSanitizer catches a parser
 * that reads one byte past a header or a body. */
#ifndef SHOP_FUZZ_COMMON_H
#define SHOP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "handler.h"
#include "shop.h"

#define FZ_TOKEN   "fuzz-admin-token-0123456789abcdef"
#define FZ_SECRET  "whsec-fuzz-0123456789abcdef0123456789"
#define FZ_FRESH   "0123456789abcdef0123456789abcdef"
/* 2026-11-22T23:34:02.123Z */
#define FZ_NOW_MS  1795390442123LL

/* Aborts with a message: a broken invariant is a finding. */
#define FZ_ASSERT(cond, ...) \
    do { if (!(cond)) fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)
void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* FUZZ_AVOID_KNOWN=1 in the environment steers the targets around the
 * findings already reported (tests/fuzz/README.md lists them), so a long
 * run looks for new ones. Unset: the full harness, which reproduces them. */
int fz_avoid_known(void);

/* ---- reading the fuzzer's input ------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t         n;
} fz_in;

/* The next byte (0 when the input is used up). */
uint8_t  fz_byte(fz_in *in);
/* The bytes up to the next '\n' (not included) or the end. */
shop_str fz_line(fz_in *in);
/* Everything left. */
shop_str fz_rest(fz_in *in);

/* ---- memory ---------------------------------------------------------------- */

/* An arena over malloc'ed blocks plus a list of other malloc'ed copies;
 * fz_mem_free() releases all of it. */
typedef struct {
    shop_arena  arena;
    void      **blocks;
    size_t      nblocks;
    size_t      cap;
} fz_mem;

void     fz_mem_init(fz_mem *m);
void     fz_mem_free(fz_mem *m);
/* A malloc'ed copy of exactly s.n bytes, freed with m (NULL when s.p is NULL). */
shop_str fz_copy(fz_mem *m, shop_str s);
/* A malloc'ed NUL-terminated copy (for APIs that take C strings). */
char    *fz_cstr(fz_mem *m, shop_str s);

/* ---- the core's inputs ----------------------------------------------------- */

/* Defaults, the admin token FZ_TOKEN and the webhook secret FZ_SECRET. */
void fz_settings(shop_settings *s);

/* A request as a front-end would hand it over; all strings copied into m. */
void fz_request(shop_request *r, fz_mem *m, const char *method, shop_str path, shop_str query);

/* "t=<now>,v1=<hex HMAC-SHA256(FZ_SECRET, t "." body)>" in m. */
shop_str fz_sign(fz_mem *m, const char *body, size_t len, int64_t now_ms);

/* ---- oracles ---------------------------------------------------------------- */

/* Checks a response and a plan after shop_begin() (planned = 1) or
 * shop_finish() (planned = 0):
 * - X-Request-Id first, at most SHOP_MAX_HEADERS headers, no CR, LF or NUL
 *   in any header value (no header injection);
 * - a status the API knows; no 5xx at plan time (hostile input is a 4xx);
 * - a JSON body parses as strict UTF-8 JSON, a problem body names its status;
 * - every planned statement exists, has the catalogue's parameter count,
 *   and every parameter is NUL-terminated valid UTF-8 (what PostgreSQL
 *   accepts as text; anything else would be a 500 from the database). */
void fz_check_response(const shop_ctx *c, int planned);

/* Runs the whole request path: shop_begin, the oracles, then (when a plan
 * was made) shop_finish with every statement failed as `fail` says
 * (SHOP_DB_OK is never fabricated), the oracles again; then the log line
 * (one JSON object, whatever the method bytes) and the metrics counters,
 * and shop_release. `method` is the method as the client sent it. */
void fz_run(shop_arena *a, const shop_settings *s, const shop_request *req, shop_str method,
            unsigned fail);

#endif
