#include "feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"
#include "websocket.h"


static void
put_id(char *dst, size_t n, int64_t v)
{
    snprintf(dst, n, "%lld", (long long) v);
}

static int64_t
get_id(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* ---- a hub's read of the feed ------------------------------------------- */

void
shop_feed_init(shop_feed *f)
{
    memset(f, 0, sizeof(*f));
    f->cursor = -1;
    f->final = -1;
    f->wake = 1;
}

void
shop_feed_woken(shop_feed *f, int local)
{
    f->wake = 1;
    if (local) {
        f->announce = 1;
    }
}

void
shop_feed_notified(shop_feed *f, int from_pid, int self_pid)
{
    if (from_pid != self_pid) {
        shop_feed_woken(f, 0);
    }
}

void
shop_feed_query_init(shop_feed *f, shop_feed_query *q, int64_t now_ms)
{
    memset(q, 0, sizeof(*q));
    put_id(q->after, sizeof(q->after), f->cursor);
    put_id(q->final, sizeof(q->final), f->final);
    put_id(q->mark, sizeof(q->mark), f->mark);
    snprintf(q->batch, sizeof(q->batch), "%d", SHOP_EVENTS_BATCH);
    snprintf(q->xid, sizeof(q->xid), "%s", f->mark_xid);

    q->values[0] = f->cursor >= 0 ? q->after : NULL;
    q->values[1] = q->batch;
    q->values[2] = f->final >= 0 ? q->final : NULL;
    q->values[3] = f->mark > 0 ? q->mark : NULL;
    q->values[4] = f->mark > 0 ? q->xid : NULL;
    q->values[5] = f->announce ? "true" : "false";

    f->wake = 0;
    f->announce = 0;
    f->read_ms = now_ms;
}

int
shop_feed_result(shop_feed *f, const PGresult *res)
{
    int n;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != SHOP_E_READ_NCOLS
        || PQntuples(res) < 1 || !PQgetisnull(res, 0, SHOP_E_COL_ID)) {
        return -1;
    }
    if (!PQgetisnull(res, 0, SHOP_E_COL_FINAL)) {
        f->final = get_id(res, 0, SHOP_E_COL_FINAL);
    }
    if (PQgetisnull(res, 0, SHOP_E_COL_MARK)
        || (size_t) PQgetlength(res, 0, SHOP_E_COL_MARK_XID) >= sizeof(f->mark_xid)) {
        f->mark = 0;
        f->mark_xid[0] = '\0';
    } else {
        f->mark = get_id(res, 0, SHOP_E_COL_MARK);
        memcpy(f->mark_xid, PQgetvalue(res, 0, SHOP_E_COL_MARK_XID),
               (size_t) PQgetlength(res, 0, SHOP_E_COL_MARK_XID) + 1);
    }
    n = PQntuples(res) - 1;
    f->nrows = n;
    return n;
}

int
shop_feed_advance(shop_feed *f, int n, int64_t last)
{
    f->starved = n < f->nrows;
    f->more = f->starved || f->nrows >= SHOP_EVENTS_BATCH;
    if (f->cursor < 0) {
        if (f->final < 0) {
            return 0;
        }
        f->cursor = f->final;
        return 1;
    }
    if (n > 0 && last > f->cursor) {
        f->cursor = last;
    }
    /* Everything settled was read: the gaps up to the bound are settled too. */
    if (!f->more && f->final > f->cursor) {
        f->cursor = f->final;
    }
    return 0;
}

int64_t
shop_feed_next_read(shop_feed *f, int64_t now_ms)
{
    if (f->starved) {
        return SHOP_FEED_PENDING_MAX_MS;    /* the rest once memory is back */
    }
    if (f->more) {
        return 0;
    }
    if (f->wake) {
        int64_t since = now_ms - f->read_ms;
        return since >= SHOP_FEED_COALESCE_MS || since < 0 ? 0 : SHOP_FEED_COALESCE_MS - since;
    }
    if (f->mark > 0 || f->final < 0) {
        /* A transaction that drew an id up to the mark still runs: its
         * commit wakes us too, but a rollback does not. */
        f->pending_ms = f->pending_ms == 0 ? SHOP_FEED_PENDING_MS
                        : f->pending_ms * 2 > SHOP_FEED_PENDING_MAX_MS ? SHOP_FEED_PENDING_MAX_MS
                        : f->pending_ms * 2;
        return f->pending_ms;
    }
    f->pending_ms = 0;
    return SHOP_FEED_IDLE_MS;
}

/* ---- a stream's resume ---------------------------------------------------- */

shop_resume_step
shop_resume_next(int64_t last, int64_t hub_cursor)
{
    if (hub_cursor < 0) {
        return SHOP_RESUME_WAIT;
    }
    if (last < 0 || last >= hub_cursor) {
        return SHOP_RESUME_LIVE;
    }
    return SHOP_RESUME_REPLAY;
}

void
shop_replay_query_init(shop_replay_query *q, const shop_settings *s, int64_t after, int64_t upto,
                       int first)
{
    memset(q, 0, sizeof(*q));
    put_id(q->after, sizeof(q->after), after);
    put_id(q->upto, sizeof(q->upto), upto);
    snprintf(q->batch, sizeof(q->batch), "%d", SHOP_EVENTS_BATCH);
    put_id(q->limit, sizeof(q->limit), s->event_replay_limit);
    put_id(q->retention, sizeof(q->retention), s->event_retention_ms);
    q->values[0] = q->after;
    q->values[1] = q->upto;
    q->values[2] = q->batch;
    q->values[3] = first ? q->limit : NULL;
    q->values[4] = first ? q->retention : NULL;
}

int
shop_replay_result(const PGresult *res, int64_t after, int64_t upto, shop_replay_batch *out)
{
    memset(out, 0, sizeof(*out));
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != SHOP_E_REPLAY_NCOLS
        || PQntuples(res) < 1 || !PQgetisnull(res, 0, SHOP_E_COL_ID)
        || PQgetisnull(res, 0, SHOP_E_COL_NEXT_ID)) {
        return -1;
    }
    out->nevents = PQntuples(res) - 1;
    out->next_id = get_id(res, 0, SHOP_E_COL_NEXT_ID);
    out->reset = PQgetvalue(res, 0, SHOP_E_COL_RESET)[0] == 't';
    if (out->nevents >= SHOP_EVENTS_BATCH) {
        out->last = get_id(res, out->nevents, SHOP_E_COL_ID);
    } else {
        /* Up to upto every id is settled: what is not in the table is not coming. */
        out->last = upto;
    }
    if (out->last < after) {
        out->last = after;
    }
    return 0;
}

static void
reset_json(shop_buf *b, int64_t next_id)
{
    shop_buf_adds(b, "{\"reason\":\"too-far-behind\",\"next_id\":");
    shop_buf_add_int(b, next_id);
    shop_buf_addc(b, '}');
}

void
shop_reset_sse(shop_buf *b, int64_t next_id)
{
    shop_buf_adds(b, "id: ");
    shop_buf_add_int(b, next_id - 1);
    shop_buf_adds(b, "\nevent: reset\ndata: ");
    reset_json(b, next_id);
    shop_buf_adds(b, "\n\n");
}

void
shop_reset_ws(shop_buf *b, int64_t next_id)
{
    unsigned char header[10];
    shop_buf json;
    size_t hl;

    shop_buf_init(&json, b->arena, 96);
    shop_buf_adds(&json, "{\"type\":\"reset\",\"data\":");
    reset_json(&json, next_id);
    shop_buf_addc(&json, '}');
    hl = shop_ws_header(header, SHOP_WS_TEXT, json.len);
    shop_buf_add(b, (const char *) header, hl);
    shop_buf_add(b, json.p, json.len);
}

/* ---- slow subscribers ----------------------------------------------------- */

shop_sub_verdict
shop_subscriber_verdict(size_t backlog, size_t buffer, int64_t waiting_ms)
{
    if (waiting_ms >= SHOP_SUB_STALL_MS) {
        return SHOP_SUB_DROP_STALLED;
    }
    if (backlog > buffer && waiting_ms >= SHOP_SUB_GRACE_MS) {
        return SHOP_SUB_DROP_SLOW;
    }
    if (backlog / SHOP_SUB_OVER_MAX > buffer) {
        return SHOP_SUB_DROP_BEHIND;
    }
    return SHOP_SUB_KEEP;
}

const char *
shop_sub_verdict_reason(shop_sub_verdict v)
{
    switch (v) {
    case SHOP_SUB_DROP_SLOW:
        return "dropped: the client does not keep up";
    case SHOP_SUB_DROP_BEHIND:
        return "dropped: the client falls ever behind";
    case SHOP_SUB_DROP_STALLED:
        return "dropped: the client takes no data";
    case SHOP_SUB_KEEP:
        break;
    }
    return "kept";
}
