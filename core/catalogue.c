#include "catalogue.h"

#include <stdio.h>
#include <string.h>

#define COLS(a) (a), (int) (sizeof(a) / sizeof((a)[0]))

static const shop_column ping_cols[] = {
    { "ok", SHOP_OID_INT4 },
};

static const shop_column product_cols[SHOP_P_NCOLS] = {
    [SHOP_P_ID]          = { "id", SHOP_OID_INT8 },
    [SHOP_P_SKU]         = { "sku", SHOP_OID_TEXT },
    [SHOP_P_SLUG]        = { "slug", SHOP_OID_TEXT },
    [SHOP_P_NAME]        = { "name", SHOP_OID_TEXT },
    [SHOP_P_CATEGORY]    = { "category", SHOP_OID_TEXT },
    [SHOP_P_DESCRIPTION] = { "description", SHOP_OID_TEXT },
    [SHOP_P_PRICE_CENTS] = { "price_cents", SHOP_OID_INT8 },
    [SHOP_P_CURRENCY]    = { "currency", SHOP_OID_TEXT },
    [SHOP_P_VERSION]     = { "version", SHOP_OID_INT4 },
    [SHOP_P_CREATED_AT]  = { "created_at", SHOP_OID_TIMESTAMPTZ },
    [SHOP_P_UPDATED_AT]  = { "updated_at", SHOP_OID_TIMESTAMPTZ },
};

#define PRODUCT_COLS \
    "id, sku, slug, name, category, description, price_cents, currency, version, " \
    "created_at, updated_at"

const shop_statement shop_catalogue[SHOP_STMT_COUNT] = {
    [SHOP_STMT_PING] = {
        "ping", "SELECT 1 AS ok", 0, COLS(ping_cols) },

    /* $1 id (NULL when the key is not a number), $2 slug. The id branch runs
     * first and LIMIT stops the slug branch when it found the row. */
    [SHOP_STMT_PRODUCT_GET] = {
        "product_get",
        "(SELECT " PRODUCT_COLS " FROM shop.products WHERE id = $1::bigint)"
        " UNION ALL "
        "(SELECT " PRODUCT_COLS " FROM shop.products WHERE slug = $2::text) LIMIT 1",
        2, COLS(product_cols) },

    /* $1 after id, $2 page size + 1 (the extra row says there is a next page). */
    [SHOP_STMT_PRODUCT_LIST] = {
        "product_list",
        "SELECT " PRODUCT_COLS " FROM shop.products WHERE id > $1::bigint"
        " ORDER BY id LIMIT $2::integer",
        2, COLS(product_cols) },

    /* As product_list; $3 substring of name or sku (any case), $4 category;
     * NULL filters nothing. strpos, not LIKE: % and _ in q are literal. */
    [SHOP_STMT_PRODUCT_LIST_FILTERED] = {
        "product_list_filtered",
        "SELECT " PRODUCT_COLS " FROM shop.products WHERE id > $1::bigint"
        " AND ($3::text IS NULL OR strpos(lower(name), lower($3::text)) > 0"
        "      OR strpos(lower(sku), lower($3::text)) > 0)"
        " AND ($4::text IS NULL OR category = $4::text)"
        " ORDER BY id LIMIT $2::integer",
        4, COLS(product_cols) },

    [SHOP_STMT_PRODUCT_CREATE] = {
        "product_create",
        "SELECT " PRODUCT_COLS " FROM shop.product_create($1::text, $2::text, $3::boolean,"
        " $4::text, $5::text, $6::text, $7::bigint, $8::text)",
        8, COLS(product_cols) },

    [SHOP_STMT_PRODUCT_UPDATE] = {
        "product_update",
        "SELECT " PRODUCT_COLS " FROM shop.product_update($1::bigint, $2::text, $3::integer[],"
        " $4::text, $5::text, $6::text, $7::text, $8::bigint, $9::text)",
        9, COLS(product_cols) },

    [SHOP_STMT_PRODUCT_DELETE] = {
        "product_delete",
        "SELECT " PRODUCT_COLS " FROM shop.product_delete($1::bigint, $2::text, $3::integer[])",
        3, COLS(product_cols) },
};

int
shop_catalogue_check(const shop_statement *st, const PGresult *d, char *err, size_t errlen)
{
    int nfields = PQnfields(d);

    if (PQnparams(d) != st->nparams) {
        snprintf(err, errlen, "statement %s: takes %d parameters, the code passes %d",
                 st->name, PQnparams(d), st->nparams);
        return -1;
    }
    for (int i = 0; i < st->ncols; i++) {
        if (i >= nfields) {
            snprintf(err, errlen, "statement %s: column %d \"%s\" is missing (the schema returns %d columns)",
                     st->name, i + 1, st->cols[i].name, nfields);
            return -1;
        }
        if (strcmp(PQfname(d, i), st->cols[i].name) != 0) {
            snprintf(err, errlen, "statement %s: column %d is \"%s\", the code reads \"%s\"",
                     st->name, i + 1, PQfname(d, i), st->cols[i].name);
            return -1;
        }
        if (PQftype(d, i) != st->cols[i].type) {
            snprintf(err, errlen, "statement %s: column \"%s\" has type oid %u, the code reads oid %u",
                     st->name, st->cols[i].name, (unsigned) PQftype(d, i), (unsigned) st->cols[i].type);
            return -1;
        }
    }
    if (nfields > st->ncols) {
        snprintf(err, errlen, "statement %s: returns an unexpected column %d \"%s\"",
                 st->name, st->ncols + 1, PQfname(d, st->ncols));
        return -1;
    }
    return 0;
}
