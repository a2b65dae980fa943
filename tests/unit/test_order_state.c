/* The order state machine (order_state.c) against the table in API.md:
 * seven states, every one of the 49 (from, to) pairs, which moves restock,
 * the SQL text[] literals a move sends and the "allowed" lists of a 409. */
#include "helpers.h"

#include <string.h>

#include "order_state.h"

#define N SHOP_ORDER_NSTATES

/* API.md, "State machine", spelled out independently of the code. */
static const char *const names[N] = {
    "pending", "paid", "packed", "shipped", "delivered", "cancelled", "refunded",
};

/* legal[from][to] */
static const int legal[N][N] = {
    /*               pend paid pack ship deli canc refu */
    /* pending   */ { 0,   1,   0,   0,   0,   1,   0 },
    /* paid      */ { 0,   0,   1,   0,   0,   0,   1 },
    /* packed    */ { 0,   0,   0,   1,   0,   0,   1 },
    /* shipped   */ { 0,   0,   0,   0,   1,   0,   0 },
    /* delivered */ { 0,   0,   0,   0,   0,   0,   1 },
    /* cancelled */ { 0,   0,   0,   0,   0,   0,   0 },
    /* refunded  */ { 0,   0,   0,   0,   0,   0,   0 },
};

/* Cancelling, and refunding before shipment, return the stock; a refund
 * after delivery returns money only. */
static const int restocks[N][N] = {
    [SHOP_ORDER_PENDING][SHOP_ORDER_CANCELLED] = 1,
    [SHOP_ORDER_PAID][SHOP_ORDER_REFUNDED] = 1,
    [SHOP_ORDER_PACKED][SHOP_ORDER_REFUNDED] = 1,
};

static void
test_names(void **state)
{
    (void) state;
    assert_int_equal(N, 7);
    for (int i = 0; i < N; i++) {
        assert_string_equal(shop_order_state_name((shop_order_state) i), names[i]);
    }
    assert_string_equal(shop_order_state_name(SHOP_ORDER_NSTATES), "unknown");
    assert_string_equal(shop_order_state_name((shop_order_state) 99), "unknown");
    assert_string_equal(shop_order_state_name((shop_order_state) -1), "unknown");
}

static void
test_parse(void **state)
{
    shop_order_state s;
    (void) state;

    for (int i = 0; i < N; i++) {
        s = SHOP_ORDER_NSTATES;
        assert_int_equal(shop_order_state_parse(shop_cstr(names[i]), &s), 0);
        assert_int_equal(s, i);
    }
    static const char *const bad[] = {
        "", "PAID", "Paid", "paid ", " paid", "pai", "paidd", "unknown", "canceled", "refund", "new",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = SHOP_ORDER_PAID;
        assert_int_equal(shop_order_state_parse(shop_cstr(bad[i]), &s), -1);
        assert_int_equal(s, SHOP_ORDER_PAID);   /* untouched */
    }
    /* Only the given length counts: "paid" followed by more bytes in memory. */
    assert_int_equal(shop_order_state_parse((shop_str) { "paidX", 4 }, &s), 0);
    assert_int_equal(s, SHOP_ORDER_PAID);
    assert_int_equal(shop_order_state_parse((shop_str) { "paid\0", 5 }, &s), -1);
}

/* All 49 pairs: legal exactly where API.md says. */
static void
test_every_pair(void **state)
{
    int nlegal = 0;
    (void) state;

    for (int from = 0; from < N; from++) {
        unsigned next = shop_order_next((shop_order_state) from);
        assert_int_equal(next >> N, 0);   /* no bits past the seven states */
        for (int to = 0; to < N; to++) {
            int got = (next >> to) & 1;
            if (got != legal[from][to]) {
                print_error("%s -> %s: legal %d, expected %d\n", names[from], names[to], got, legal[from][to]);
                fail();
            }
            nlegal += got;
        }
    }
    assert_int_equal(nlegal, 8);
    assert_int_equal(shop_order_next(SHOP_ORDER_NSTATES), 0);
}

static void
test_final_states(void **state)
{
    (void) state;
    assert_int_equal(shop_order_next(SHOP_ORDER_CANCELLED), 0);
    assert_int_equal(shop_order_next(SHOP_ORDER_REFUNDED), 0);
    /* Nothing moves back to pending, nothing stays where it is. */
    for (int from = 0; from < N; from++) {
        assert_false(shop_order_next((shop_order_state) from) & (1u << SHOP_ORDER_PENDING));
        assert_false(shop_order_next((shop_order_state) from) & (1u << from));
    }
}

/* Restocking: exactly pending->cancelled, paid->refunded, packed->refunded;
 * never delivered->refunded, never an illegal move. */
static void
test_restocks(void **state)
{
    (void) state;
    for (int from = 0; from < N; from++) {
        for (int to = 0; to < N; to++) {
            int got = shop_order_restocks((shop_order_state) from, (shop_order_state) to);
            if (got != restocks[from][to]) {
                print_error("%s -> %s: restocks %d, expected %d\n", names[from], names[to], got,
                            restocks[from][to]);
                fail();
            }
        }
    }
    assert_false(shop_order_restocks(SHOP_ORDER_DELIVERED, SHOP_ORDER_REFUNDED));
    assert_false(shop_order_restocks(SHOP_ORDER_SHIPPED, SHOP_ORDER_REFUNDED));   /* illegal anyway */
    assert_false(shop_order_restocks(SHOP_ORDER_PAID, SHOP_ORDER_CANCELLED));     /* illegal */
}

/* The text[] literals a move to `to` sends: where it may come from, and
 * which of those restock. */
static void
test_sources(void **state)
{
    th_env *e = *state;
    shop_arena *a = &e->scratch.arena;
    static const struct { shop_order_state to; const char *from, *restock; } cases[] = {
        { SHOP_ORDER_PENDING,   "{}",                       "{}" },
        { SHOP_ORDER_PAID,      "{pending}",                "{}" },
        { SHOP_ORDER_PACKED,    "{paid}",                   "{}" },
        { SHOP_ORDER_SHIPPED,   "{packed}",                 "{}" },
        { SHOP_ORDER_DELIVERED, "{shipped}",                "{}" },
        { SHOP_ORDER_CANCELLED, "{pending}",                "{pending}" },
        { SHOP_ORDER_REFUNDED,  "{paid,packed,delivered}",  "{paid,packed}" },
    };

    assert_int_equal(sizeof(cases) / sizeof(cases[0]), N);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(shop_order_sources(a, cases[i].to), cases[i].from);
        assert_string_equal(shop_order_restock_sources(a, cases[i].to), cases[i].restock);
    }
    /* The literals agree with the table for every target. */
    for (int to = 0; to < N; to++) {
        const char *from = shop_order_sources(a, (shop_order_state) to);
        const char *re = shop_order_restock_sources(a, (shop_order_state) to);
        for (int s = 0; s < N; s++) {
            const char *hit = strstr(from, names[s]);
            assert_int_equal(hit != NULL, legal[s][to]);
            assert_int_equal(strstr(re, names[s]) != NULL, restocks[s][to]);
        }
    }
}

static void
test_allowed_json(void **state)
{
    th_env *e = *state;
    static const char *const expected[N] = {
        [SHOP_ORDER_PENDING]   = "[\"paid\",\"cancelled\"]",
        [SHOP_ORDER_PAID]      = "[\"packed\",\"refunded\"]",
        [SHOP_ORDER_PACKED]    = "[\"shipped\",\"refunded\"]",
        [SHOP_ORDER_SHIPPED]   = "[\"delivered\"]",
        [SHOP_ORDER_DELIVERED] = "[\"refunded\"]",
        [SHOP_ORDER_CANCELLED] = "[]",
        [SHOP_ORDER_REFUNDED]  = "[]",
    };

    for (int from = 0; from < N; from++) {
        shop_buf b;
        shop_buf_init(&b, &e->scratch.arena, 8);
        shop_buf_adds(&b, "x");   /* appends, keeps what was there */
        shop_buf_add_next_states(&b, (shop_order_state) from);
        shop_str s = shop_buf_str(&b);
        assert_string_equal(s.p + 1, expected[from]);
        assert_int_equal(s.p[0], 'x');
        /* Valid JSON, and the same set as the table. */
        struct json_object *arr = th_json(e, (shop_str) { s.p + 1, s.n - 1 });
        int n = 0;
        for (int to = 0; to < N; to++) {
            n += legal[from][to];
        }
        assert_int_equal((int) json_object_array_length(arr), n);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_names),
        TH_TEST(test_parse),
        TH_TEST(test_every_pair),
        TH_TEST(test_final_states),
        TH_TEST(test_restocks),
        TH_TEST(test_sources),
        TH_TEST(test_allowed_json),
    };
    return cmocka_run_group_tests_name("order_state", tests, NULL, NULL);
}
