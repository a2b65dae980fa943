/* What handlers see of the core: planning statements, answering, failing.
 * A handler is a plan function (request -> statements or a final answer)
 * and a render function (statement results -> answer). */
#ifndef SHOP_HANDLER_H
#define SHOP_HANDLER_H

#include "shop.h"

typedef void (*shop_plan_fn)(shop_ctx *c);
typedef void (*shop_render_fn)(shop_ctx *c, const shop_result *r);

/* Route flags. */
#define SHOP_R_ADMIN        1   /* needs the admin bearer token */
#define SHOP_R_JSON_BODY    2   /* takes a JSON object body (c->json) */
#define SHOP_R_MERGE_PATCH  4   /* also accepts application/merge-patch+json */
#define SHOP_R_SIGNED       8   /* needs a valid Shop-Signature over the raw body */

typedef struct shop_route {
    shop_method     method;
    const char     *tmpl;      /* "/products/{id}": {name} matches one segment */
    unsigned        flags;
    shop_plan_fn    plan;
    shop_render_fn  render;
} shop_route;

extern const shop_route shop_routes[];
extern const size_t     shop_route_count;

/* Adds a statement to the plan; its values are filled in by the caller. */
shop_query *shop_plan_query(shop_ctx *c, shop_stmt_id stmt);

void shop_reply(shop_ctx *c, int status, shop_str content_type, shop_str body);
void shop_reply_json(shop_ctx *c, int status, shop_buf *body);
void shop_header_add(shop_ctx *c, const char *name, shop_str value);

void shop_fail(shop_ctx *c, shop_err e, const char *detail);
/* members: extra JSON members appended to the problem, each starting with ','. */
void shop_fail_ext(shop_ctx *c, shop_err e, const char *detail, shop_str members);

/* Answers a failed statement the generic way (503, 500, our functions'
 * SHxxx codes, ...). Returns 1 when r is OK and the handler goes on. */
int  shop_db_ok(shop_ctx *c, const shop_result *r);

/* Printf-free formatting in the request arena. */
char *shop_fmt_int(shop_arena *a, int64_t v);
const char *shop_bool_param(int v);

/* `"<version>"` */
shop_str shop_etag(shop_arena *a, const char *version);

#endif
