/* The catalogue: every SQL statement the shop runs, by id. Front-ends prepare
 * all of them on each new connection and check each one's parameter count
 * and result columns (names and types) against what the render step reads,
 * so a schema that drifted from the code refuses to serve. */
#ifndef SHOP_CATALOGUE_H
#define SHOP_CATALOGUE_H

#include <stddef.h>

#include <libpq-fe.h>

#define SHOP_MAX_PARAMS 12

typedef enum {
    SHOP_STMT_PING,
    SHOP_STMT_PRODUCT_GET,
    SHOP_STMT_PRODUCT_LIST,
    SHOP_STMT_PRODUCT_LIST_FILTERED,
    SHOP_STMT_PRODUCT_CREATE,
    SHOP_STMT_PRODUCT_UPDATE,
    SHOP_STMT_PRODUCT_DELETE,
    SHOP_STMT_WAREHOUSE_LIST,
    SHOP_STMT_WAREHOUSE_PUT,
    SHOP_STMT_STOCK_PUT,
    SHOP_STMT_ORDER_PLACE,
    SHOP_STMT_ORDER_GET,
    SHOP_STMT_ORDER_LIST,
    SHOP_STMT_ORDER_TRANSITION,
    SHOP_STMT_PAYMENT_EVENT,
    SHOP_STMT_WAREHOUSE_STOCK,
    SHOP_STMT_EVENTS_READ,
    SHOP_STMT_EVENTS_REPLAY,
    SHOP_STMT_EVENTS_PRUNE,
    SHOP_STMT_COUNT
} shop_stmt_id;

/* PostgreSQL type OIDs the render step knows how to read. */
#define SHOP_OID_BOOL         16
#define SHOP_OID_INT8         20
#define SHOP_OID_INT4         23
#define SHOP_OID_TEXT         25
#define SHOP_OID_JSON        114
#define SHOP_OID_TIMESTAMPTZ 1184
#define SHOP_OID_UUID       2950
#define SHOP_OID_XID8       5069

typedef struct {
    const char *name;
    Oid         type;
} shop_column;

typedef struct {
    const char        *name;       /* the prepared statement's name */
    const char        *sql;
    int                nparams;
    const shop_column *cols;
    int                ncols;
    int                flags;
} shop_statement;

/* Statement flags. */
#define SHOP_EMITS  1   /* may write events: once it committed, the hubs are woken */

extern const shop_statement shop_catalogue[SHOP_STMT_COUNT];

/* Compares a statement with its PQdescribePrepared() result. Returns 0, or
 * -1 with a message naming the statement and the first difference. */
int shop_catalogue_check(const shop_statement *st, const PGresult *described,
                         char *err, size_t errlen);

/* Columns of a product row, in the order every product statement returns them. */
enum {
    SHOP_P_ID, SHOP_P_SKU, SHOP_P_SLUG, SHOP_P_NAME, SHOP_P_CATEGORY, SHOP_P_DESCRIPTION,
    SHOP_P_PRICE_CENTS, SHOP_P_CURRENCY, SHOP_P_VERSION, SHOP_P_CREATED_AT, SHOP_P_UPDATED_AT,
    SHOP_P_NCOLS
};

/* Columns of every order statement: the order once per line. */
enum {
    SHOP_O_ID, SHOP_O_STATUS, SHOP_O_TOTAL_CENTS, SHOP_O_CURRENCY, SHOP_O_EMAIL, SHOP_O_VERSION,
    SHOP_O_CREATED_AT, SHOP_O_UPDATED_AT, SHOP_O_LINE_SKU, SHOP_O_LINE_QUANTITY,
    SHOP_O_LINE_UNIT_PRICE, SHOP_O_LINE_WAREHOUSE, SHOP_O_SEQ, SHOP_O_REPLAYED,
    SHOP_O_NCOLS
};

/* Columns of warehouse_stock: one row per requested sku, in request order. */
enum { SHOP_WS_SKU, SHOP_WS_KNOWN, SHOP_WS_QUANTITY, SHOP_WS_NCOLS };

/* Columns of events_read and events_replay: the event, then the state the
 * first row carries (see feed.h). */
enum { SHOP_E_COL_ID, SHOP_E_COL_TYPE, SHOP_E_COL_TOPIC, SHOP_E_COL_DATA, SHOP_E_COL_AT,
       SHOP_E_NEVENT };
enum { SHOP_E_COL_FINAL = SHOP_E_NEVENT, SHOP_E_COL_MARK, SHOP_E_COL_MARK_XID, SHOP_E_READ_NCOLS };
enum { SHOP_E_COL_NEXT_ID = SHOP_E_NEVENT, SHOP_E_COL_RESET, SHOP_E_REPLAY_NCOLS };

/* Columns of warehouse statements. */
enum { SHOP_W_CODE, SHOP_W_NAME, SHOP_W_LATENCY_MS, SHOP_W_CREATED, SHOP_W_NCOLS };

#endif
