/* The event feed's decisions, made once for both front-ends: how a hub
 * reads the events table (settled bounds and marks, batches, when to read
 * again, when to wake the other processes), how a stream resumes (wait for
 * the hub, replay in batches, join live), where a resume too far behind
 * gets its reset, and when a subscriber that does not keep up is dropped.
 * Pure: the clock comes in as arguments; the front-ends keep the sockets,
 * timers, threads and locks. sql/005_events_feed.sql has the SQL side. */
#ifndef SHOP_FEED_H
#define SHOP_FEED_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "buf.h"
#include "settings.h"

/* Rows per events_read and per replay batch. */
#define SHOP_EVENTS_BATCH        500
/* A mark not settled yet: read again after this, doubling up to the max. */
#define SHOP_FEED_PENDING_MS     2
#define SHOP_FEED_PENDING_MAX_MS 200
/* Wake-ups within this long of the last read wait for its end: under a
 * stream of writes a hub reads every few milliseconds, not once per write. */
#define SHOP_FEED_COALESCE_MS    2
/* With nothing to do a hub reads anyway this often: it notices a change
 * whose wake-up never came (its writer died after the commit) and a dead
 * connection. */
#define SHOP_FEED_IDLE_MS        1000

/* ---- a hub's read of the feed ------------------------------------------- */

typedef struct {
    int64_t  cursor;        /* every event up to it was handed out; -1: not started */
    int64_t  final;         /* every id up to it is settled; -1: not known yet */
    int64_t  mark;          /* last id drawn when the mark was taken; 0: none */
    char     mark_xid[24];  /* the mark's xid8, as text */
    int64_t  pending_ms;    /* back-off while the mark is not settled */
    int64_t  read_ms;       /* when the last read was sent (the caller's clock) */
    int      nrows;         /* event rows of the last result */
    unsigned wake:1;        /* a wake-up (notification, local write) since the read began */
    unsigned announce:1;    /* a local write the other processes were not told about */
    unsigned more:1;        /* settled rows wait: a full batch, or some not handed out */
    unsigned starved:1;     /* the front-end handed out fewer rows than it read */
} shop_feed;

/* The parameters of one events_read; values[] point into the struct. */
typedef struct {
    char        after[24], batch[24], final[24], mark[24], xid[24];
    const char *values[6];
} shop_feed_query;

void    shop_feed_init(shop_feed *f);
/* A change was committed here (local: 1, which the next read also
 * announces to the other processes), or a wake-up came some other way. */
void    shop_feed_woken(shop_feed *f, int local);
/* A notification from backend from_pid on the hub's connection, whose own
 * backend is self_pid: its own announcements are for the other processes. */
void    shop_feed_notified(shop_feed *f, int from_pid, int self_pid);
/* Fills q for the next read, sent at now_ms; the wake-ups so far are
 * answered by it. */
void    shop_feed_query_init(shop_feed *f, shop_feed_query *q, int64_t now_ms);
/* Takes the state row of an events_read result (row 0). Returns the
 * number of event rows (rows 1 ... n), or -1 when the result is not one. */
int     shop_feed_result(shop_feed *f, const PGresult *res);
/* n of the rows were handed out (fewer than read: out of memory; last: the
 * id of the last one, if n > 0). Returns 1 when the hub just learnt where
 * the feed is (it had no cursor). */
int     shop_feed_advance(shop_feed *f, int n, int64_t last);
/* When to read next, with no read in flight: 0 at once, else in that many
 * milliseconds. Called after each read (it steps the back-off) and on a
 * wake-up. */
int64_t shop_feed_next_read(shop_feed *f, int64_t now_ms);

/* ---- a stream's resume ---------------------------------------------------- */

typedef enum {
    SHOP_RESUME_WAIT,       /* the hub has no cursor yet */
    SHOP_RESUME_LIVE,       /* join the live feed: nothing to read from the table */
    SHOP_RESUME_REPLAY      /* read the table after `last`, up to the hub's cursor */
} shop_resume_step;

/* last: the last id the stream sent or skipped (-1: none asked for). */
shop_resume_step shop_resume_next(int64_t last, int64_t hub_cursor);

typedef struct {
    char        after[24], upto[24], batch[24], limit[24], retention[24];
    const char *values[5];
} shop_replay_query;

/* One replay batch: events in (after, upto]; first: the first batch of
 * this resume, which checks the replay limit and the retention. */
void shop_replay_query_init(shop_replay_query *q, const shop_settings *s, int64_t after,
                            int64_t upto, int first);

typedef struct {
    int      nevents;       /* event rows: 1 ... nevents */
    int      reset;         /* the stream skips to next_id: say so first */
    int64_t  next_id;
    int64_t  last;          /* where the stream stands after this batch */
} shop_replay_batch;

/* Reads a replay result for the query (after, upto). -1: not one. */
int shop_replay_result(const PGresult *res, int64_t after, int64_t upto, shop_replay_batch *out);

/* The reset a stream gets before it skips ahead: SSE (its id: line makes a
 * reconnecting EventSource resume at next_id) and a WebSocket text frame. */
void shop_reset_sse(shop_buf *b, int64_t next_id);
void shop_reset_ws(shop_buf *b, int64_t next_id);

/* ---- slow subscribers ----------------------------------------------------- */

/* Output waiting this long (a blocked write): over its buffer it is dropped. */
#define SHOP_SUB_GRACE_MS   1000
/* This far over its buffer it is dropped at once, blocked or not. */
#define SHOP_SUB_OVER_MAX   64
/* A client that takes nothing at all for this long is dropped. */
#define SHOP_SUB_STALL_MS   60000

typedef enum {
    SHOP_SUB_KEEP,
    SHOP_SUB_DROP_SLOW,     /* over its buffer, and its output waits */
    SHOP_SUB_DROP_BEHIND,   /* reads, but falls ever further behind */
    SHOP_SUB_DROP_STALLED   /* takes no data at all */
} shop_sub_verdict;

/* backlog: bytes published for it and not yet written; waiting_ms: how long
 * its output has waited for the socket (-1: it does not wait). A dropped
 * subscriber may resume by id. */
shop_sub_verdict shop_subscriber_verdict(size_t backlog, size_t buffer, int64_t waiting_ms);
const char      *shop_sub_verdict_reason(shop_sub_verdict v);

#endif
