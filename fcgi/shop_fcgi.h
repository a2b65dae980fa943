/* shop-fcgi: the FastCGI front-end. Blocking I/O on threads; the handler core
 * (core/shop.h) does the rest. One header for the few interfaces between the
 * files of this directory. */
#ifndef SHOP_FCGI_H
#define SHOP_FCGI_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "shop.h"

#define FCGI_PROG "shop-fcgi"


/* config.c: the settings table read from the environment. */

/* Fills s from defaults and SHOP_* variables, checks the combination and, with
 * read_secrets, loads the token and secret files. Prints what is wrong and
 * returns -1. */
int  fcgi_config_load(shop_settings *s, int read_secrets);
/* Wipes and frees the secrets fcgi_config_load() read. */
void fcgi_config_release(shop_settings *s);
void fcgi_config_print(void);


/* log.c: operational messages of the serving process, one JSON line each. */

typedef enum { FCGI_LOG_INFO, FCGI_LOG_WARN, FCGI_LOG_ERROR } fcgi_log_level;

void fcgi_log(fcgi_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Writes a whole line with one write(2), so lines of threads never mix. */
void fcgi_log_write(const char *line, size_t len);


/* clock.c */

int64_t fcgi_now_us(void);            /* monotonic */
int64_t fcgi_wall_ms(void);           /* since the epoch */


/* pgconn.c: one libpq connection with the catalogue prepared. */

#define FCGI_PG_DOWN  -2              /* the database did not answer */
#define FCGI_PG_WRONG -1              /* it answered, but not as the catalogue expects */

/* statement_timeout_ms 0: none. Returns the connection or NULL with err set. */
PGconn *fcgi_pg_connect(const shop_settings *s, const char *app, int64_t statement_timeout_ms,
                        char *err, size_t errlen);
/* Prepares and checks every catalogue statement: 0, FCGI_PG_WRONG or FCGI_PG_DOWN. */
int  fcgi_pg_prepare(PGconn *conn, char *err, size_t errlen);
/* The first line of libpq's message, for one-line logs. */
const char *fcgi_pg_message(const char *msg, char *out, size_t outlen);


/* pool.c: connections shared by the request threads. */

typedef struct fcgi_pool fcgi_pool;

fcgi_pool *fcgi_pool_create(const shop_settings *s);
/* Hands over a ready connection made at start-up. */
void  fcgi_pool_adopt(fcgi_pool *p, PGconn *conn);
/* A connection, or NULL when none comes in time (the request answers 503). */
PGconn *fcgi_pool_acquire(fcgi_pool *p);
void  fcgi_pool_release(fcgi_pool *p, PGconn *conn);
void  fcgi_pool_destroy(fcgi_pool *p);


/* exec.c: results[i] and res[i] for c->queries[i]; the caller PQclear()s
 * res[] after writing the response. db_us grows by the time spent in the
 * database. */
void fcgi_exec_plan(fcgi_pool *p, const shop_ctx *c, shop_result *results, PGresult **res,
                    int64_t *db_us);


/* blocks.c: the per-thread memory behind a request arena. */

typedef struct fcgi_block fcgi_block;

typedef struct fcgi_blocks {
    fcgi_block *used;                 /* handed to the arena during this request */
    fcgi_block *spare;                /* kept between requests */
} fcgi_blocks;

void *fcgi_blocks_grow(void *owner, size_t size);
/* The request ended: keep one ordinary block for the next one, free the rest. */
void  fcgi_blocks_reset(fcgi_blocks *b);
void  fcgi_blocks_free(fcgi_blocks *b);


/* rid.c: request ids from a per-thread generator. */

typedef struct fcgi_rid {
    uint64_t s[4];
} fcgi_rid;

void fcgi_rid_seed(fcgi_rid *r);
/* Writes 32 lowercase hex digits and a NUL. */
void fcgi_rid_next(fcgi_rid *r, char out[33]);


/* request.c: one request from FastCGI parameters to the log line. */

struct FCGX_Request;

typedef struct fcgi_worker {
    pthread_t             tid;
    int                   index;
    const shop_settings  *settings;
    fcgi_pool            *pool;
    fcgi_blocks           blocks;
    fcgi_rid              rid;
} fcgi_worker;

void fcgi_request_handle(fcgi_worker *w, struct FCGX_Request *rq);


/* serve.c */

int  fcgi_serve(const shop_settings *s);


/* signals.c */

void fcgi_signals_install(void);
int  fcgi_stopping(void);


/* migrate.c */

int  fcgi_migrate(const shop_settings *s, const char *dir);

#endif
