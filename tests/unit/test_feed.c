/* The event feed's decisions (feed.c): the hub's reads (parameters, the
 * state row, cursor, when to read again, announcing local changes), a
 * stream's resume and replay batches, the reset frames, when a front-end
 * wakes its hub (shop_plan_emitted), and the verdict on subscribers that do
 * not keep up. */
#include "helpers.h"

#include <string.h>

#include "feed.h"
#include "websocket.h"

/* ---- the hub's read ----------------------------------------------------- */

/* An events_read result: the state row, then events ids[0 .. n). */
static PGresult *
read_result(th_env *e, const char *final, const char *mark, const char *xid, const int64_t *ids, int n)
{
    PGresult *res = th_pg_stmt(e, SHOP_STMT_EVENTS_READ);

    th_pg_row(res, (const char *const[]) { NULL, NULL, NULL, NULL, NULL, final, mark, xid });
    for (int i = 0; i < n; i++) {
        th_pg_row(res, (const char *const[]) { th_fmt(e, "%lld", (long long) ids[i]), "stock.changed",
                                               "stock", "{}", "2026-11-22 23:34:02.123+00",
                                               NULL, NULL, NULL });
    }
    return res;
}

static void
test_feed_start(void **state)
{
    th_env *e = *state;
    shop_feed f;
    shop_feed_query q;
    int64_t now = 1000000;

    shop_feed_init(&f);
    /* A new hub reads at once, asking only where the feed is. */
    assert_int_equal(shop_feed_next_read(&f, now), 0);
    shop_feed_query_init(&f, &q, now);
    assert_null(q.values[0]);
    assert_string_equal(q.values[1], "500");
    assert_null(q.values[2]);
    assert_null(q.values[3]);
    assert_null(q.values[4]);
    assert_string_equal(q.values[5], "false");

    /* Not settled yet: no cursor, and it reads again soon. */
    assert_int_equal(shop_feed_result(&f, read_result(e, NULL, "7", "900", NULL, 0)), 0);
    assert_int_equal(shop_feed_advance(&f, 0, 0), 0);
    assert_int_equal(f.cursor, -1);
    assert_int_equal(shop_feed_next_read(&f, now), SHOP_FEED_PENDING_MS);
    shop_feed_query_init(&f, &q, now);
    assert_null(q.values[0]);
    assert_null(q.values[2]);
    assert_string_equal(q.values[3], "7");
    assert_string_equal(q.values[4], "900");

    /* Settled: the hub starts from there (1: it just learnt its cursor). */
    assert_int_equal(shop_feed_result(&f, read_result(e, "7", NULL, NULL, NULL, 0)), 0);
    assert_int_equal(shop_feed_advance(&f, 0, 0), 1);
    assert_int_equal(f.cursor, 7);
    assert_int_equal(f.mark, 0);
    assert_int_equal(shop_feed_next_read(&f, now), SHOP_FEED_IDLE_MS);
    shop_feed_query_init(&f, &q, now);
    assert_string_equal(q.values[0], "7");
    assert_string_equal(q.values[2], "7");
    assert_null(q.values[3]);
}

static void
test_feed_reads(void **state)
{
    th_env *e = *state;
    static const int64_t some[] = { 11, 13, 14 };
    int64_t full[SHOP_EVENTS_BATCH];
    shop_feed f;
    shop_feed_query q;
    int64_t now = 1000000;

    shop_feed_init(&f);
    shop_feed_query_init(&f, &q, now);
    assert_int_equal(shop_feed_result(&f, read_result(e, "10", NULL, NULL, NULL, 0)), 0);
    shop_feed_advance(&f, 0, 0);

    /* A mark pending: back-off doubling to the cap, a wake-up reads at once. */
    assert_int_equal(shop_feed_result(&f, read_result(e, "10", "15", "1234", NULL, 0)), 0);
    shop_feed_advance(&f, 0, 0);
    assert_int_equal(f.cursor, 10);
    int64_t expect = SHOP_FEED_PENDING_MS;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(shop_feed_next_read(&f, now), expect);
        expect = expect * 2 > SHOP_FEED_PENDING_MAX_MS ? SHOP_FEED_PENDING_MAX_MS : expect * 2;
    }
    shop_feed_woken(&f, 0);
    now += SHOP_FEED_COALESCE_MS;
    assert_int_equal(shop_feed_next_read(&f, now), 0);
    shop_feed_query_init(&f, &q, now);
    assert_string_equal(q.values[3], "15");
    assert_string_equal(q.values[4], "1234");
    assert_string_equal(q.values[5], "false");

    /* Settled up to 15 with 12 and 15 never committed: the cursor passes the gaps. */
    assert_int_equal(shop_feed_result(&f, read_result(e, "15", NULL, NULL, some, 3)), 3);
    shop_feed_advance(&f, 3, 14);
    assert_int_equal(f.cursor, 15);
    assert_int_equal(shop_feed_next_read(&f, now), SHOP_FEED_IDLE_MS);
    assert_int_equal(f.pending_ms, 0);

    /* A local change: read, and tell the other processes; within the
     * coalescing window of the last read, at its end. */
    shop_feed_woken(&f, 1);
    assert_int_equal(shop_feed_next_read(&f, now), SHOP_FEED_COALESCE_MS);
    assert_int_equal(shop_feed_next_read(&f, now + 1), SHOP_FEED_COALESCE_MS - 1);
    now += SHOP_FEED_COALESCE_MS;
    assert_int_equal(shop_feed_next_read(&f, now), 0);
    shop_feed_query_init(&f, &q, now);
    assert_string_equal(q.values[5], "true");
    shop_feed_query_init(&f, &q, now);
    assert_string_equal(q.values[5], "false");     /* once */

    /* A full batch: the cursor stops at its last row, and it reads on at once. */
    for (int i = 0; i < SHOP_EVENTS_BATCH; i++) {
        full[i] = 16 + i;
    }
    assert_int_equal(shop_feed_result(&f, read_result(e, "2000", NULL, NULL, full, SHOP_EVENTS_BATCH)),
                     SHOP_EVENTS_BATCH);
    shop_feed_advance(&f, SHOP_EVENTS_BATCH, full[SHOP_EVENTS_BATCH - 1]);
    assert_int_equal(f.cursor, 515);
    assert_int_equal(shop_feed_next_read(&f, now), 0);

    /* A front-end that handed out fewer rows than it read (out of memory):
     * the cursor stays at the last one handed out, the rest a little later. */
    static const int64_t next[] = { 516, 517, 518 };
    assert_int_equal(shop_feed_result(&f, read_result(e, "2000", NULL, NULL, next, 3)), 3);
    shop_feed_advance(&f, 1, 516);
    assert_int_equal(f.cursor, 516);
    assert_int_equal(shop_feed_next_read(&f, now), SHOP_FEED_PENDING_MAX_MS);
    shop_feed_woken(&f, 0);
    assert_int_equal(shop_feed_next_read(&f, now + 1000), SHOP_FEED_PENDING_MAX_MS);
    /* Then all of them: the cursor goes to the settled bound. */
    assert_int_equal(shop_feed_result(&f, read_result(e, "2000", NULL, NULL, next + 1, 2)), 2);
    shop_feed_advance(&f, 2, 518);
    assert_int_equal(f.cursor, 2000);
    assert_int_equal(shop_feed_next_read(&f, now + 1000), 0);       /* the wake-up */
}

static void
test_feed_notified(void **state)
{
    shop_feed f;
    shop_feed_query q;
    (void) state;

    shop_feed_init(&f);
    shop_feed_query_init(&f, &q, 0);
    /* Its own announcement (its backend's pid) wakes nobody here. */
    shop_feed_notified(&f, 4242, 4242);
    assert_false(f.wake);
    shop_feed_notified(&f, 4243, 4242);
    assert_true(f.wake);
    assert_false(f.announce);                   /* not ours to announce */
}

static void
test_feed_bad_results(void **state)
{
    th_env *e = *state;
    shop_feed f;
    PGresult *res;

    shop_feed_init(&f);
    /* No state row. */
    assert_int_equal(shop_feed_result(&f, th_pg_stmt(e, SHOP_STMT_EVENTS_READ)), -1);
    /* An event row where the state row should be. */
    res = th_pg_stmt(e, SHOP_STMT_EVENTS_READ);
    th_pg_row(res, (const char *const[]) { "1", "t", "stock", "{}", "2026-11-22 23:34:02+00", NULL, NULL,
                                           NULL });
    assert_int_equal(shop_feed_result(&f, res), -1);
    /* Another statement's shape. */
    assert_int_equal(shop_feed_result(&f, th_pg_stmt(e, SHOP_STMT_EVENTS_REPLAY)), -1);
    assert_int_equal(f.cursor, -1);
}

/* ---- a stream's resume ---------------------------------------------------- */

static void
test_resume_next(void **state)
{
    (void) state;
    assert_int_equal(shop_resume_next(5, -1), SHOP_RESUME_WAIT);
    assert_int_equal(shop_resume_next(-1, -1), SHOP_RESUME_WAIT);
    assert_int_equal(shop_resume_next(-1, 10), SHOP_RESUME_LIVE);
    assert_int_equal(shop_resume_next(10, 10), SHOP_RESUME_LIVE);
    assert_int_equal(shop_resume_next(11, 10), SHOP_RESUME_LIVE);
    assert_int_equal(shop_resume_next(0, 10), SHOP_RESUME_REPLAY);
    assert_int_equal(shop_resume_next(9, 10), SHOP_RESUME_REPLAY);
}

static void
test_replay_query(void **state)
{
    th_env *e = *state;
    shop_replay_query q;

    e->settings.event_replay_limit = 10000;
    e->settings.event_retention_ms = 86400000;
    shop_replay_query_init(&q, &e->settings, 3, 900, 1);
    assert_string_equal(q.values[0], "3");
    assert_string_equal(q.values[1], "900");
    assert_string_equal(q.values[2], "500");
    assert_string_equal(q.values[3], "10000");
    assert_string_equal(q.values[4], "86400000");
    /* Later batches of the same replay check nothing. */
    shop_replay_query_init(&q, &e->settings, 503, 900, 0);
    assert_string_equal(q.values[0], "503");
    assert_null(q.values[3]);
    assert_null(q.values[4]);
}

static PGresult *
replay_result(th_env *e, const char *next_id, const char *reset, int64_t from, int n)
{
    PGresult *res = th_pg_stmt(e, SHOP_STMT_EVENTS_REPLAY);

    th_pg_row(res, (const char *const[]) { NULL, NULL, NULL, NULL, NULL, next_id, reset });
    for (int i = 0; i < n; i++) {
        th_pg_row(res, (const char *const[]) { th_fmt(e, "%lld", (long long) (from + i)), "product.created",
                                               "products", "{}", "2026-11-22 23:34:02.123+00", NULL, NULL });
    }
    return res;
}

static void
test_replay_result(void **state)
{
    th_env *e = *state;
    shop_replay_batch b;

    /* A short batch: the replay reached upto. */
    assert_int_equal(shop_replay_result(replay_result(e, "4", "f", 4, 3), 3, 900, &b), 0);
    assert_int_equal(b.nevents, 3);
    assert_false(b.reset);
    assert_int_equal(b.next_id, 4);
    assert_int_equal(b.last, 900);
    /* Nothing in the table up to upto: done too. */
    assert_int_equal(shop_replay_result(replay_result(e, "4", "f", 0, 0), 3, 900, &b), 0);
    assert_int_equal(b.nevents, 0);
    assert_int_equal(b.last, 900);
    /* A full batch: on from its last row. */
    assert_int_equal(shop_replay_result(replay_result(e, "4", "f", 4, SHOP_EVENTS_BATCH), 3, 900, &b), 0);
    assert_int_equal(b.last, 4 + SHOP_EVENTS_BATCH - 1);
    /* Too far behind: a reset, and the rows start at next_id. */
    assert_int_equal(shop_replay_result(replay_result(e, "851", "t", 851, 50), 0, 900, &b), 0);
    assert_true(b.reset);
    assert_int_equal(b.next_id, 851);
    assert_int_equal(b.nevents, 50);
    assert_int_equal(b.last, 900);
    /* Not a replay result. */
    assert_int_equal(shop_replay_result(th_pg_stmt(e, SHOP_STMT_EVENTS_REPLAY), 3, 900, &b), -1);
    assert_int_equal(shop_replay_result(replay_result(e, NULL, "f", 0, 0), 3, 900, &b), -1);
    assert_int_equal(shop_replay_result(th_pg_stmt(e, SHOP_STMT_EVENTS_READ), 3, 900, &b), -1);
}

static void
test_reset_frames(void **state)
{
    th_env *e = *state;
    shop_buf b;
    static const char json[] = "{\"type\":\"reset\",\"data\":{\"reason\":\"too-far-behind\",\"next_id\":851}}";

    shop_buf_init(&b, &e->scratch.arena, 16);
    shop_reset_sse(&b, 851);
    assert_int_equal(b.len, strlen("id: 850\nevent: reset\ndata: {\"reason\":\"too-far-behind\",\"next_id\":851}\n\n"));
    assert_memory_equal(b.p, "id: 850\nevent: reset\ndata: {\"reason\":\"too-far-behind\",\"next_id\":851}\n\n",
                        b.len);

    shop_buf_init(&b, &e->scratch.arena, 16);
    shop_reset_ws(&b, 851);
    assert_int_equal(b.len, 2 + strlen(json));
    assert_int_equal((unsigned char) b.p[0], 0x81);         /* FIN, text */
    assert_int_equal((unsigned char) b.p[1], strlen(json)); /* unmasked, short length */
    assert_memory_equal(b.p + 2, json, strlen(json));
}

/* ---- when a front-end wakes its hub ------------------------------------------------ */

static void
check_emitted(const char *method, const char *target, const char *body, shop_db_status st, int expect)
{
    th_env *e = th_new();
    shop_result r[2];

    th_request(e, method, target);
    if (body) {
        th_body(e, "application/json", body);
    }
    th_admin(e);
    th_begin(e);
    assert_int_equal(e->c.nqueries, 1);
    memset(r, 0, sizeof(r));
    r[0].status = st;
    assert_int_equal(shop_plan_emitted(&e->c, r), expect);
    th_free(e);
}

static void
test_plan_emitted(void **state)
{
    static const char product[] = "{\"sku\":\"A-1\",\"name\":\"A\",\"price_cents\":1,\"currency\":\"EUR\"}";
    (void) state;

    /* A change that committed: its events are in the table. */
    check_emitted("POST", "/products", product, SHOP_DB_OK, 1);
    check_emitted("PUT", "/warehouses/north/stock/A-1", "{\"quantity\":3}", SHOP_DB_OK, 1);
    /* One that failed wrote nothing; a read writes nothing. */
    check_emitted("POST", "/products", product, SHOP_DB_UNIQUE, 0);
    check_emitted("POST", "/products", product, SHOP_DB_TIMEOUT, 0);
    check_emitted("GET", "/products/1", NULL, SHOP_DB_OK, 0);
    /* A warehouse has no events. */
    check_emitted("PUT", "/warehouses/north", "{\"name\":\"North\"}", SHOP_DB_OK, 0);
}

/* ---- slow subscribers ----------------------------------------------------- */

static void
test_subscriber_verdict(void **state)
{
    const size_t buf = 256 * 1024;
    (void) state;

    /* Within its buffer: kept, however long its output waits (short of a minute). */
    assert_int_equal(shop_subscriber_verdict(0, buf, -1), SHOP_SUB_KEEP);
    assert_int_equal(shop_subscriber_verdict(buf, buf, 59999), SHOP_SUB_KEEP);
    /* Over it: kept while its output moves, dropped once it waited a second. */
    assert_int_equal(shop_subscriber_verdict(buf + 1, buf, -1), SHOP_SUB_KEEP);
    assert_int_equal(shop_subscriber_verdict(buf + 1, buf, 999), SHOP_SUB_KEEP);
    assert_int_equal(shop_subscriber_verdict(buf + 1, buf, 1000), SHOP_SUB_DROP_SLOW);
    /* Far over it: dropped at once, even while its output moves. */
    assert_int_equal(shop_subscriber_verdict(buf * SHOP_SUB_OVER_MAX, buf, -1), SHOP_SUB_KEEP);
    assert_int_equal(shop_subscriber_verdict(buf * (SHOP_SUB_OVER_MAX + 1), buf, -1), SHOP_SUB_DROP_BEHIND);
    /* Taking nothing for a minute: dropped, whatever its backlog. */
    assert_int_equal(shop_subscriber_verdict(10, buf, SHOP_SUB_STALL_MS), SHOP_SUB_DROP_STALLED);

    assert_string_equal(shop_sub_verdict_reason(SHOP_SUB_DROP_SLOW), "dropped: the client does not keep up");
    assert_string_equal(shop_sub_verdict_reason(SHOP_SUB_DROP_BEHIND), "dropped: the client falls ever behind");
    assert_string_equal(shop_sub_verdict_reason(SHOP_SUB_DROP_STALLED), "dropped: the client takes no data");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_feed_start),
        TH_TEST(test_feed_reads),
        TH_TEST(test_feed_bad_results),
        TH_TEST(test_feed_notified),
        TH_TEST(test_resume_next),
        TH_TEST(test_replay_query),
        TH_TEST(test_replay_result),
        TH_TEST(test_reset_frames),
        TH_TEST(test_plan_emitted),
        TH_TEST(test_subscriber_verdict),
    };
    return cmocka_run_group_tests_name("feed", tests, NULL, NULL);
}
