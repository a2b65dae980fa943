/* The catalogue: list, get, create, merge-patch and delete products. */
#include <string.h>

#include "conditional.h"
#include "cursor.h"
#include "fields.h"
#include "handlers.h"
#include "json_strict.h"
#include "page.h"
#include "timefmt.h"
#include "uri.h"

#define SHOP_Q_MAX_CHARS  200

static void
add_product(shop_buf *b, const PGresult *res, int row)
{
    static const char *const keys[SHOP_P_NCOLS] = {
        [SHOP_P_ID] = "{\"id\":", [SHOP_P_SKU] = ",\"sku\":", [SHOP_P_SLUG] = ",\"slug\":",
        [SHOP_P_NAME] = ",\"name\":", [SHOP_P_CATEGORY] = ",\"category\":",
        [SHOP_P_DESCRIPTION] = ",\"description\":", [SHOP_P_PRICE_CENTS] = ",\"price_cents\":",
        [SHOP_P_CURRENCY] = ",\"currency\":", [SHOP_P_VERSION] = ",\"version\":",
        [SHOP_P_CREATED_AT] = ",\"created_at\":", [SHOP_P_UPDATED_AT] = ",\"updated_at\":",
    };

    for (int col = 0; col < SHOP_P_NCOLS; col++) {
        const char *v = PQgetvalue(res, row, col);
        shop_buf_adds(b, keys[col]);
        switch (col) {
        case SHOP_P_ID:
        case SHOP_P_PRICE_CENTS:
        case SHOP_P_VERSION:
            shop_buf_add(b, v, (size_t) PQgetlength(res, row, col));
            break;
        case SHOP_P_CREATED_AT:
        case SHOP_P_UPDATED_AT:
            shop_buf_add_ts(b, v);
            break;
        default:
            shop_buf_add_json(b, v, (size_t) PQgetlength(res, row, col));
        }
    }
    shop_buf_addc(b, '}');
}

/* {id} is a positive 63-bit id or a slug; 0 when it can be neither. */
static int
product_key(shop_ctx *c, const char **id, const char **slug)
{
    shop_str key = c->params[0];
    int64_t n = shop_parse_id(key);

    *id = n > 0 ? key.p : NULL;
    *slug = shop_token_ok(key, 1, 100, shop_is_slug_char) ? key.p : NULL;
    if (*id == NULL && *slug == NULL) {
        shop_fail(c, SHOP_E_NOT_FOUND, "no such product");
        return 0;
    }
    return 1;
}

/* ---- GET /products -------------------------------------------------------- */

typedef struct {
    int limit;
} list_state;

void
shop_product_list_plan(shop_ctx *c)
{
    shop_arena *a = c->arena;
    shop_str q, category;
    shop_page page;
    shop_qp has_q, has_cat;
    list_state *st;
    shop_query *qr;

    if (shop_page_params(c, 'p', &page) != 0) {
        return;
    }
    has_q = shop_query_param(a, c->req->query, "q", &q);
    if (has_q == SHOP_QP_BAD || (has_q == SHOP_QP_FOUND && shop_utf8_chars(q.p, q.n) > SHOP_Q_MAX_CHARS)) {
        shop_fail(c, SHOP_E_BAD_REQUEST, "q must be UTF-8 text of at most 200 characters, given once");
        return;
    }
    has_cat = shop_query_param(a, c->req->query, "category", &category);
    if (has_cat == SHOP_QP_BAD
        || (has_cat == SHOP_QP_FOUND && !shop_token_ok(category, 1, 64, shop_is_category_char))) {
        shop_fail(c, SHOP_E_BAD_REQUEST, "category must be 1-64 of a-z 0-9 - _");
        return;
    }

    st = shop_alloc(a, sizeof(*st));
    if (st == NULL) {
        return;
    }
    st->limit = page.limit;
    c->state = st;

    int filtered = (has_q == SHOP_QP_FOUND && q.n > 0) || has_cat == SHOP_QP_FOUND;
    qr = shop_plan_query(c, filtered ? SHOP_STMT_PRODUCT_LIST_FILTERED : SHOP_STMT_PRODUCT_LIST);
    if (qr == NULL) {
        return;
    }
    qr->target = SHOP_TARGET_READ;
    qr->values[0] = page.after;
    qr->values[1] = shop_fmt_int(a, page.limit + 1);
    if (filtered) {
        qr->values[2] = has_q == SHOP_QP_FOUND && q.n > 0 ? shop_strndup(a, q.p, q.n) : NULL;
        qr->values[3] = has_cat == SHOP_QP_FOUND ? shop_strndup(a, category.p, category.n) : NULL;
    }
}

void
shop_product_list_render(shop_ctx *c, const shop_result *r)
{
    const list_state *st = c->state;
    shop_buf b;

    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    int rows = PQntuples(r[0].res);
    int shown = rows > st->limit ? st->limit : rows;

    shop_buf_init(&b, c->arena, 64 + (size_t) shown * 360);
    shop_buf_adds(&b, "{\"items\":[");
    for (int i = 0; i < shown; i++) {
        if (i) {
            shop_buf_addc(&b, ',');
        }
        add_product(&b, r[0].res, i);
    }
    shop_buf_adds(&b, "],\"next\":");
    if (rows > st->limit) {
        const char *last = PQgetvalue(r[0].res, shown - 1, SHOP_P_ID);
        shop_str cur = shop_cursor_encode(c->arena, 'p', shop_cstr(last));
        shop_buf_add_json(&b, cur.p, cur.n);
    } else {
        shop_buf_adds(&b, "null");
    }
    shop_buf_addc(&b, '}');
    shop_reply_json(c, 200, &b);
}

/* ---- GET /products/{id} --------------------------------------------------- */

void
shop_product_get_plan(shop_ctx *c)
{
    const char *id, *slug;
    shop_query *q;

    if (!product_key(c, &id, &slug) || (q = shop_plan_query(c, SHOP_STMT_PRODUCT_GET)) == NULL) {
        return;
    }
    q->target = SHOP_TARGET_READ;
    q->values[0] = id;
    q->values[1] = slug;
}

void
shop_product_get_render(shop_ctx *c, const shop_result *r)
{
    shop_buf b;

    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    if (PQntuples(r[0].res) == 0) {
        shop_fail(c, SHOP_E_NOT_FOUND, "no such product");
        return;
    }
    const char *version = PQgetvalue(r[0].res, 0, SHOP_P_VERSION);
    shop_header_add(c, "ETag", shop_etag(c->arena, version));
    if (c->req->if_none_match.n && shop_if_none_match(c->req->if_none_match, version)) {
        shop_reply(c, 304, SHOP_NULL_STR, SHOP_NULL_STR);
        return;
    }
    shop_buf_init(&b, c->arena, 512);
    add_product(&b, r[0].res, 0);
    shop_reply_json(c, 200, &b);
}

/* ---- POST /products, PATCH /products/{id} --------------------------------- */

static const char sku_shape[] = "must be 1-64 of A-Z a-z 0-9 - _ .";
static const char slug_shape[] = "must be 1-100 of a-z 0-9 -";
static const char category_shape[] = "must be 1-64 of a-z 0-9 - _";
static const char currency_shape[] = "must be an ISO 4217 code of three upper-case letters";

/* A slug from the name: lower-case ASCII letters and digits, runs of
 * anything else as one '-', at most 100; the sku's when the name has none. */
static char *
derive_slug(shop_arena *a, const char *name, const char *sku)
{
    char *out = shop_alloc(a, 101);
    size_t n = 0;

    if (out == NULL) {
        return NULL;
    }
    for (int pass = 0; pass < 2 && n == 0; pass++) {
        const char *s = pass == 0 ? name : sku;
        int dash = 0;
        for (; *s != '\0' && n < 100; s++) {
            char ch = *s;
            if (ch >= 'A' && ch <= 'Z') {
                ch = (char) (ch - 'A' + 'a');
            }
            if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
                if (dash && n > 0) {
                    if (n >= 99) {
                        break;   /* no room for a dash and a character */
                    }
                    out[n++] = '-';
                }
                dash = 0;
                out[n++] = ch;
            } else {
                dash = 1;
            }
        }
    }
    if (n == 0) {
        memcpy(out, "product", 8);
        return out;
    }
    out[n] = '\0';
    return out;
}

static const char *
int_param(shop_ctx *c, int present, int64_t v)
{
    return present == 1 ? shop_fmt_int(c->arena, v) : NULL;
}

void
shop_product_create_plan(shop_ctx *c)
{
    static const char *const known[] = {
        "sku", "slug", "name", "category", "description", "price_cents", "currency", NULL
    };
    shop_field_errors errs = { 0 };
    shop_fields f;
    const char *sku = NULL, *slug = NULL, *name = NULL, *category = "general", *description = "";
    const char *currency = NULL;
    int64_t price = 0;
    shop_query *q;

    shop_fields_begin(&f, c, c->json, NULL, &errs, known);
    shop_field_token(&f, "sku", 1, 1, 64, shop_is_sku_char, sku_shape, &sku);
    shop_field_token(&f, "slug", 0, 1, 100, shop_is_slug_char, slug_shape, &slug);
    shop_field_text(&f, "name", 1, 1, 200, 0, &name);
    shop_field_token(&f, "category", 0, 1, 64, shop_is_category_char, category_shape, &category);
    shop_field_text(&f, "description", 0, 0, 5000, 1, &description);
    int has_price = shop_field_int(&f, "price_cents", 1, 0, 1000000000000LL, &price);
    shop_field_token(&f, "currency", 1, 3, 3, shop_is_upper, currency_shape, &currency);
    if (shop_fields_end(c, &errs) != 0 || (q = shop_plan_query(c, SHOP_STMT_PRODUCT_CREATE)) == NULL) {
        return;
    }
    q->values[0] = sku;
    q->values[1] = slug ? slug : derive_slug(c->arena, name, sku);
    q->values[2] = shop_bool_param(slug == NULL);
    q->values[3] = name;
    q->values[4] = category;
    q->values[5] = description;
    q->values[6] = int_param(c, has_price, price);
    q->values[7] = currency;
}

void
shop_product_update_plan(shop_ctx *c)
{
    static const char *const known[] = {
        "name", "slug", "category", "description", "price_cents", "currency", "sku", NULL
    };
    static const char *const fixed[] = { "name", "slug", "price_cents", "currency", NULL };
    shop_field_errors errs = { 0 };
    shop_fields f;
    const char *id, *slug_key, *name = NULL, *slug = NULL, *category = NULL, *description = NULL;
    const char *currency = NULL;
    int64_t price = 0;
    shop_query *q;

    if (!product_key(c, &id, &slug_key)) {
        return;
    }
    shop_fields_begin(&f, c, c->json, NULL, &errs, known);
    if (json_object_object_get_ex(c->json, "sku", NULL)) {
        shop_fields_fail(&f, "sku", "cannot be changed");
    }
    /* Merge patch: null removes a member. Removing the category or the
     * description restores their defaults; the rest cannot be removed. */
    for (const char *const *k = fixed; *k != NULL; k++) {
        if (shop_field_is_null(&f, *k)) {
            shop_fields_fail(&f, *k, "cannot be removed");
        }
    }
    shop_field_text(&f, "name", 0, 1, 200, 0, &name);
    shop_field_token(&f, "slug", 0, 1, 100, shop_is_slug_char, slug_shape, &slug);
    shop_field_token(&f, "category", 0, 1, 64, shop_is_category_char, category_shape, &category);
    if (shop_field_is_null(&f, "category")) {
        category = "general";
    }
    shop_field_text(&f, "description", 0, 0, 5000, 1, &description);
    if (shop_field_is_null(&f, "description")) {
        description = "";
    }
    int has_price = shop_field_int(&f, "price_cents", 0, 0, 1000000000000LL, &price);
    shop_field_token(&f, "currency", 0, 3, 3, shop_is_upper, currency_shape, &currency);
    if (shop_fields_end(c, &errs) != 0 || (q = shop_plan_query(c, SHOP_STMT_PRODUCT_UPDATE)) == NULL) {
        return;
    }
    q->values[0] = id;
    q->values[1] = slug_key;
    q->values[2] = shop_if_match_versions(c->arena, c->req->if_match);
    q->values[3] = name;
    q->values[4] = slug;
    q->values[5] = category;
    q->values[6] = description;
    q->values[7] = int_param(c, has_price, price);
    q->values[8] = currency;
}

void
shop_product_write_render(shop_ctx *c, const shop_result *r)
{
    shop_buf b;

    if (r[0].status == SHOP_DB_UNIQUE && r[0].constraint != NULL) {
        if (strcmp(r[0].constraint, "products_sku_key") == 0) {
            shop_fail(c, SHOP_E_CONFLICT, "a product with this sku already exists");
            return;
        }
        if (strcmp(r[0].constraint, "products_slug_key") == 0) {
            shop_fail(c, SHOP_E_CONFLICT, "a product with this slug already exists");
            return;
        }
    }
    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    if (PQntuples(r[0].res) != 1) {
        shop_fail(c, SHOP_E_INTERNAL, "the server could not complete the request");
        return;
    }
    const PGresult *res = r[0].res;
    shop_header_add(c, "ETag", shop_etag(c->arena, PQgetvalue(res, 0, SHOP_P_VERSION)));
    if (c->route->method == SHOP_POST) {
        shop_buf loc;
        shop_buf_init(&loc, c->arena, 64);
        shop_buf_add_str(&loc, c->req->base);
        shop_buf_adds(&loc, "/products/");
        shop_buf_adds(&loc, PQgetvalue(res, 0, SHOP_P_ID));
        shop_header_add(c, "Location", shop_buf_str(&loc));
    }
    shop_buf_init(&b, c->arena, 512);
    add_product(&b, res, 0);
    shop_reply_json(c, c->route->method == SHOP_POST ? 201 : 200, &b);
}

/* ---- DELETE /products/{id} ------------------------------------------------- */

void
shop_product_delete_plan(shop_ctx *c)
{
    const char *id, *slug;
    shop_query *q;

    if (!product_key(c, &id, &slug) || (q = shop_plan_query(c, SHOP_STMT_PRODUCT_DELETE)) == NULL) {
        return;
    }
    q->values[0] = id;
    q->values[1] = slug;
    q->values[2] = shop_if_match_versions(c->arena, c->req->if_match);
}

void
shop_product_delete_render(shop_ctx *c, const shop_result *r)
{
    if (r[0].status == SHOP_DB_FOREIGN_KEY) {
        shop_fail(c, SHOP_E_CONFLICT, "the product is referenced by an order");
        return;
    }
    if (!shop_db_ok(c, &r[0])) {
        return;
    }
    shop_reply(c, 204, SHOP_NULL_STR, SHOP_NULL_STR);
}
