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

static const shop_column order_cols[SHOP_O_NCOLS] = {
    [SHOP_O_ID]              = { "id", SHOP_OID_UUID },
    [SHOP_O_STATUS]          = { "status", SHOP_OID_TEXT },
    [SHOP_O_TOTAL_CENTS]     = { "total_cents", SHOP_OID_INT8 },
    [SHOP_O_CURRENCY]        = { "currency", SHOP_OID_TEXT },
    [SHOP_O_EMAIL]           = { "customer_email", SHOP_OID_TEXT },
    [SHOP_O_VERSION]         = { "version", SHOP_OID_INT4 },
    [SHOP_O_CREATED_AT]      = { "created_at", SHOP_OID_TIMESTAMPTZ },
    [SHOP_O_UPDATED_AT]      = { "updated_at", SHOP_OID_TIMESTAMPTZ },
    [SHOP_O_LINE_SKU]        = { "line_sku", SHOP_OID_TEXT },
    [SHOP_O_LINE_QUANTITY]   = { "line_quantity", SHOP_OID_INT4 },
    [SHOP_O_LINE_UNIT_PRICE] = { "line_unit_price_cents", SHOP_OID_INT8 },
    [SHOP_O_LINE_WAREHOUSE]  = { "line_warehouse", SHOP_OID_TEXT },
    [SHOP_O_SEQ]             = { "seq", SHOP_OID_INT8 },
    [SHOP_O_REPLAYED]        = { "replayed", SHOP_OID_BOOL },
};

static const shop_column warehouse_cols[] = {
    [SHOP_W_CODE]       = { "code", SHOP_OID_TEXT },
    [SHOP_W_NAME]       = { "name", SHOP_OID_TEXT },
    [SHOP_W_LATENCY_MS] = { "latency_ms", SHOP_OID_INT4 },
};

static const shop_column warehouse_put_cols[] = {
    [SHOP_W_CODE]       = { "code", SHOP_OID_TEXT },
    [SHOP_W_NAME]       = { "name", SHOP_OID_TEXT },
    [SHOP_W_LATENCY_MS] = { "latency_ms", SHOP_OID_INT4 },
    [SHOP_W_CREATED]    = { "created", SHOP_OID_BOOL },
};

static const shop_column stock_cols[] = {
    { "warehouse", SHOP_OID_TEXT }, { "sku", SHOP_OID_TEXT }, { "quantity", SHOP_OID_INT4 },
};

static const shop_column warehouse_stock_cols[SHOP_WS_NCOLS] = {
    [SHOP_WS_SKU]      = { "sku", SHOP_OID_TEXT },
    [SHOP_WS_KNOWN]    = { "known", SHOP_OID_BOOL },
    [SHOP_WS_QUANTITY] = { "quantity", SHOP_OID_INT4 },
};

static const shop_column events_prune_cols[] = {
    { "deleted", SHOP_OID_INT8 },
};

#define EVENT_COLS \
    [SHOP_E_COL_ID]    = { "id", SHOP_OID_INT8 }, \
    [SHOP_E_COL_TYPE]  = { "type", SHOP_OID_TEXT }, \
    [SHOP_E_COL_TOPIC] = { "topic", SHOP_OID_TEXT }, \
    [SHOP_E_COL_DATA]  = { "data", SHOP_OID_JSON }, \
    [SHOP_E_COL_AT]    = { "created_at", SHOP_OID_TIMESTAMPTZ }

static const shop_column events_read_cols[SHOP_E_READ_NCOLS] = {
    EVENT_COLS,
    [SHOP_E_COL_FINAL]    = { "final", SHOP_OID_INT8 },
    [SHOP_E_COL_MARK]     = { "mark", SHOP_OID_INT8 },
    [SHOP_E_COL_MARK_XID] = { "mark_xid", SHOP_OID_XID8 },
};

static const shop_column events_replay_cols[SHOP_E_REPLAY_NCOLS] = {
    EVENT_COLS,
    [SHOP_E_COL_NEXT_ID] = { "next_id", SHOP_OID_INT8 },
    [SHOP_E_COL_RESET]   = { "reset", SHOP_OID_BOOL },
};

#define ORDER_COLS \
    "id, status, total_cents, currency, customer_email, version, created_at, updated_at, " \
    "line_sku, line_quantity, line_unit_price_cents, line_warehouse, seq, replayed"

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
        8, COLS(product_cols), SHOP_EMITS },

    [SHOP_STMT_PRODUCT_UPDATE] = {
        "product_update",
        "SELECT " PRODUCT_COLS " FROM shop.product_update($1::bigint, $2::text, $3::integer[],"
        " $4::text, $5::text, $6::text, $7::text, $8::bigint, $9::text)",
        9, COLS(product_cols), SHOP_EMITS },

    [SHOP_STMT_PRODUCT_DELETE] = {
        "product_delete",
        "SELECT " PRODUCT_COLS " FROM shop.product_delete($1::bigint, $2::text, $3::integer[])",
        3, COLS(product_cols), SHOP_EMITS },

    [SHOP_STMT_WAREHOUSE_LIST] = {
        "warehouse_list",
        "SELECT code, name, latency_ms FROM shop.warehouses ORDER BY code",
        0, COLS(warehouse_cols) },

    /* $1 code, $2 name, $3 latency_ms: a PUT replaces both. */
    [SHOP_STMT_WAREHOUSE_PUT] = {
        "warehouse_put",
        "SELECT code, name, latency_ms, created FROM shop.put_warehouse($1::text, $2::text, $3::integer)",
        3, COLS(warehouse_put_cols) },

    [SHOP_STMT_STOCK_PUT] = {
        "stock_put",
        "SELECT warehouse, sku, quantity FROM shop.put_stock($1::text, $2::text, $3::integer)",
        3, COLS(stock_cols), SHOP_EMITS },

    /* $1 skus, $2 quantities, $3 email, $4 Idempotency-Key, $5 request fingerprint. */
    [SHOP_STMT_ORDER_PLACE] = {
        "order_place",
        "SELECT " ORDER_COLS " FROM shop.place_order($1::text[], $2::integer[], $3::text,"
        " $4::text, $5::text)",
        5, COLS(order_cols), SHOP_EMITS },

    [SHOP_STMT_ORDER_GET] = {
        "order_get",
        "SELECT " ORDER_COLS " FROM shop.order_rows($1::uuid, false)",
        1, COLS(order_cols) },

    /* $1 after seq, $2 orders per page + 1, $3 status or NULL. */
    [SHOP_STMT_ORDER_LIST] = {
        "order_list",
        "SELECT o.id, o.status, o.total_cents, o.currency, o.customer_email, o.version,"
        " o.created_at, o.updated_at, l.sku AS line_sku, l.quantity AS line_quantity,"
        " l.unit_price_cents AS line_unit_price_cents, l.warehouse AS line_warehouse,"
        " o.seq, false AS replayed"
        " FROM (SELECT * FROM shop.orders WHERE seq > $1::bigint"
        "       AND ($3::text IS NULL OR status = $3::text) ORDER BY seq LIMIT $2::integer) o"
        " JOIN shop.order_lines l ON l.order_id = o.id ORDER BY o.seq, l.line",
        3, COLS(order_cols) },

    /* $1 id, $2 target state, $3 states it may come from, $4 those that
     * restock, $5 If-Match versions or NULL. */
    [SHOP_STMT_ORDER_TRANSITION] = {
        "order_transition",
        "SELECT " ORDER_COLS " FROM shop.transition_order($1::uuid, $2::text, $3::text[],"
        " $4::text[], $5::integer[])",
        5, COLS(order_cols), SHOP_EMITS },

    /* $1 event id, $2 fingerprint, $3 order id, $4..$6 the move as for
     * order_transition, $7 amount, $8 currency (NULL: not part of the event). */
    [SHOP_STMT_PAYMENT_EVENT] = {
        "payment_event",
        "SELECT " ORDER_COLS " FROM shop.apply_payment_event($1::text, $2::text, $3::uuid,"
        " $4::text, $5::text[], $6::text[], $7::bigint, $8::text)",
        8, COLS(order_cols), SHOP_EMITS },

    /* One warehouse's part of the stock check: $1 warehouse, $2 skus. It
     * first waits the warehouse's simulated latency_ms. */
    [SHOP_STMT_WAREHOUSE_STOCK] = {
        "warehouse_stock",
        "SELECT w.sku, p.id IS NOT NULL AS known, coalesce(s.quantity, 0) AS quantity"
        " FROM shop.warehouse_delay($1::text) d"
        " CROSS JOIN unnest($2::text[]) WITH ORDINALITY AS w (sku, i)"
        " LEFT JOIN shop.products p ON p.sku = w.sku"
        " LEFT JOIN shop.stock s ON s.product_id = p.id AND s.warehouse = $1::text"
        " ORDER BY w.i",
        2, COLS(warehouse_stock_cols) },

    /* The hub's read: $1 its cursor, $2 the batch, $3..$5 the feed's state
     * (settled bound, mark, mark xid), $6 wake the other hubs. See
     * sql/005_events_feed.sql and feed.h. */
    [SHOP_STMT_EVENTS_READ] = {
        "events_read",
        "SELECT id, type, topic, data, created_at, final, mark, mark_xid"
        " FROM shop.events_read($1::bigint, $2::integer, $3::bigint, $4::bigint, $5::xid8,"
        " $6::boolean)",
        6, COLS(events_read_cols) },

    /* A stream's replay: events in ($1, $2], at most $3; $4 the replay
     * limit and $5 the retention on the first batch of a resume (NULL after). */
    [SHOP_STMT_EVENTS_REPLAY] = {
        "events_replay",
        "SELECT id, type, topic, data, created_at, next_id, reset"
        " FROM shop.events_replay($1::bigint, $2::bigint, $3::integer, $4::integer, $5::bigint)",
        5, COLS(events_replay_cols) },

    /* Retention: deletes at most $2 events older than $1 milliseconds. */
    [SHOP_STMT_EVENTS_PRUNE] = {
        "events_prune",
        "SELECT shop.events_prune($1::bigint, $2::integer) AS deleted",
        2, COLS(events_prune_cols) },
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
