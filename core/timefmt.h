/* Timestamps come from PostgreSQL as text in ISO style at UTC (the
 * connection's DateStyle and TimeZone, see SHOP_PG_OPTIONS):
 * "2026-11-22 23:34:02.123456+00". The API shows RFC 3339 UTC with
 * milliseconds: "2026-11-22T23:34:02.123Z". */
#ifndef SHOP_TIMEFMT_H
#define SHOP_TIMEFMT_H

#include <stdint.h>

#include "buf.h"

/* Appends the quoted API form of a PostgreSQL timestamptz text. */
void shop_buf_add_ts(shop_buf *b, const char *pg);
/* Appends the API form of a Unix time in milliseconds (unquoted). */
void shop_buf_add_ms(shop_buf *b, int64_t ms);

#endif
