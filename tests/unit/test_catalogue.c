/* The statement catalogue and shop_catalogue_check() against described
 * statements fabricated with PQmakeEmptyPGresult + PQsetResultAttrs.
 *
 * Such a result always has PQnparams() == 0 (libpq offers no way to set
 * parameter descriptions without a server), so the parameter-count check
 * can only be exercised as "the code passes N, the description 0": it
 * passes for statements with no parameters (ping) and must fail for every
 * other. Column checks of statements with parameters use a copy of the
 * statement with nparams set to 0. */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

static PGresult *
described(th_env *e, const shop_column *cols, int ncols)
{
    const char *names[32];
    Oid types[32];

    assert_true(ncols <= 32);
    for (int i = 0; i < ncols; i++) {
        names[i] = cols[i].name;
        types[i] = cols[i].type;
    }
    PGresult *d = th_pg(e, ncols, names, types);
    assert_int_equal(PQnparams(d), 0);
    return d;
}

static int
check(const shop_statement *st, const PGresult *d, char *err, size_t errlen)
{
    err[0] = '\0';
    return shop_catalogue_check(st, d, err, errlen);
}

static void
test_statements_well_formed(void **state)
{
    (void) state;
    for (int s = 0; s < SHOP_STMT_COUNT; s++) {
        const shop_statement *st = &shop_catalogue[s];
        assert_non_null(st->name);
        assert_true(strlen(st->name) > 0);
        assert_non_null(st->sql);
        assert_in_range(st->nparams, 0, SHOP_MAX_PARAMS);
        assert_non_null(st->cols);
        assert_true(st->ncols > 0);
        for (int t = 0; t < s; t++) {
            assert_string_not_equal(shop_catalogue[t].name, st->name);
        }
        for (int i = 0; i < st->ncols; i++) {
            assert_non_null(st->cols[i].name);
            for (int j = 0; j < i; j++) {
                assert_string_not_equal(st->cols[i].name, st->cols[j].name);
            }
        }
    }
}

/* $1 ... $nparams each appear in the SQL, and nothing higher. */
static void
test_placeholders_match_nparams(void **state)
{
    (void) state;
    for (int s = 0; s < SHOP_STMT_COUNT; s++) {
        const shop_statement *st = &shop_catalogue[s];
        int seen[SHOP_MAX_PARAMS + 2] = { 0 }, max = 0;
        for (const char *p = st->sql; *p; p++) {
            if (*p == '$' && p[1] >= '0' && p[1] <= '9') {
                int n = 0;
                for (p++; *p >= '0' && *p <= '9'; p++) {
                    n = n * 10 + (*p - '0');
                }
                p--;
                if (n < 1 || n > SHOP_MAX_PARAMS) {
                    print_error("%s: $%d\n", st->name, n);
                    fail();
                }
                seen[n] = 1;
                max = n > max ? n : max;
            }
        }
        if (max != st->nparams) {
            print_error("%s: uses $%d, declares %d parameters\n", st->name, max, st->nparams);
            fail();
        }
        for (int n = 1; n <= max; n++) {
            if (!seen[n]) {
                print_error("%s: $%d unused\n", st->name, n);
                fail();
            }
        }
    }
}

/* The render step reads product rows by index (SHOP_P_*). */
static void
test_product_columns(void **state)
{
    static const char *const names[SHOP_P_NCOLS] = {
        "id", "sku", "slug", "name", "category", "description", "price_cents", "currency",
        "version", "created_at", "updated_at",
    };
    static const Oid types[SHOP_P_NCOLS] = { 20, 25, 25, 25, 25, 25, 20, 25, 23, 1184, 1184 };
    static const shop_stmt_id product_stmts[] = {
        SHOP_STMT_PRODUCT_GET, SHOP_STMT_PRODUCT_LIST, SHOP_STMT_PRODUCT_LIST_FILTERED,
        SHOP_STMT_PRODUCT_CREATE, SHOP_STMT_PRODUCT_UPDATE, SHOP_STMT_PRODUCT_DELETE,
    };
    (void) state;

    for (size_t s = 0; s < sizeof(product_stmts) / sizeof(product_stmts[0]); s++) {
        const shop_statement *st = &shop_catalogue[product_stmts[s]];
        assert_int_equal(st->ncols, SHOP_P_NCOLS);
        for (int i = 0; i < SHOP_P_NCOLS; i++) {
            assert_string_equal(st->cols[i].name, names[i]);
            assert_int_equal(st->cols[i].type, types[i]);
        }
    }
    assert_int_equal(shop_catalogue[SHOP_STMT_PRODUCT_GET].nparams, 2);
    assert_int_equal(shop_catalogue[SHOP_STMT_PRODUCT_LIST].nparams, 2);
    assert_int_equal(shop_catalogue[SHOP_STMT_PRODUCT_LIST_FILTERED].nparams, 4);
    assert_int_equal(shop_catalogue[SHOP_STMT_PRODUCT_CREATE].nparams, 8);
    assert_int_equal(shop_catalogue[SHOP_STMT_PRODUCT_UPDATE].nparams, 9);
    assert_int_equal(shop_catalogue[SHOP_STMT_PRODUCT_DELETE].nparams, 3);
    assert_int_equal(shop_catalogue[SHOP_STMT_PING].nparams, 0);
}

static void
test_ping_matches(void **state)
{
    th_env *e = *state;
    const shop_statement *st = &shop_catalogue[SHOP_STMT_PING];
    char err[256];

    assert_int_equal(check(st, described(e, st->cols, st->ncols), err, sizeof(err)), 0);
}

static void
test_ping_drift(void **state)
{
    th_env *e = *state;
    const shop_statement *st = &shop_catalogue[SHOP_STMT_PING];
    char err[256];

    /* Renamed. */
    shop_column renamed[] = { { "okay", SHOP_OID_INT4 } };
    assert_int_not_equal(check(st, described(e, renamed, 1), err, sizeof(err)), 0);
    assert_non_null(strstr(err, "ping"));
    assert_non_null(strstr(err, "okay"));
    /* Another type. */
    shop_column retyped[] = { { "ok", SHOP_OID_INT8 } };
    assert_int_not_equal(check(st, described(e, retyped, 1), err, sizeof(err)), 0);
    assert_non_null(strstr(err, "ping"));
    assert_non_null(strstr(err, "20"));
    /* An extra column. */
    shop_column extra[] = { { "ok", SHOP_OID_INT4 }, { "more", SHOP_OID_TEXT } };
    assert_int_not_equal(check(st, described(e, extra, 2), err, sizeof(err)), 0);
    assert_non_null(strstr(err, "more"));
    /* No column. */
    assert_int_not_equal(check(st, described(e, NULL, 0), err, sizeof(err)), 0);
    assert_non_null(strstr(err, "ok"));
}

static void
test_param_count_checked(void **state)
{
    th_env *e = *state;
    char err[256], want[64];

    for (int s = 0; s < SHOP_STMT_COUNT; s++) {
        const shop_statement *st = &shop_catalogue[s];
        int rc = check(st, described(e, st->cols, st->ncols), err, sizeof(err));
        if (st->nparams == 0) {
            if (rc != 0) {
                print_error("%s: %s\n", st->name, err);
                fail();
            }
            continue;
        }
        /* The description says 0 parameters, the code passes nparams. */
        assert_int_not_equal(rc, 0);
        assert_non_null(strstr(err, st->name));
        snprintf(want, sizeof(want), "passes %d", st->nparams);
        assert_non_null(strstr(err, want));
    }
}

/* Column drift, for every statement (as if it took no parameters). */
static void
test_column_drift_every_statement(void **state)
{
    th_env *e = *state;
    char err[256];

    for (int s = 0; s < SHOP_STMT_COUNT; s++) {
        shop_statement st = shop_catalogue[s];
        shop_column cols[33];
        st.nparams = 0;
        assert_true(st.ncols < 32);

        /* As described: fine. */
        if (check(&st, described(e, st.cols, st.ncols), err, sizeof(err)) != 0) {
            print_error("%s: %s\n", st.name, err);
            fail();
        }
        for (int i = 0; i < st.ncols; i++) {
            th_env *f = th_new();
            memcpy(cols, st.cols, sizeof(cols[0]) * (size_t) st.ncols);
            cols[i].name = "renamed_column";
            assert_int_not_equal(check(&st, described(f, cols, st.ncols), err, sizeof(err)), 0);
            assert_non_null(strstr(err, st.name));
            assert_non_null(strstr(err, "renamed_column"));

            memcpy(cols, st.cols, sizeof(cols[0]) * (size_t) st.ncols);
            cols[i].type = cols[i].type == SHOP_OID_TEXT ? SHOP_OID_INT8 : SHOP_OID_TEXT;
            assert_int_not_equal(check(&st, described(f, cols, st.ncols), err, sizeof(err)), 0);
            assert_non_null(strstr(err, st.cols[i].name));
            th_free(f);
        }
        /* A column missing, one too many, two swapped. */
        assert_int_not_equal(check(&st, described(e, st.cols, st.ncols - 1), err, sizeof(err)), 0);
        assert_non_null(strstr(err, st.cols[st.ncols - 1].name));
        memcpy(cols, st.cols, sizeof(cols[0]) * (size_t) st.ncols);
        cols[st.ncols] = (shop_column) { "surprise", SHOP_OID_TEXT };
        assert_int_not_equal(check(&st, described(e, cols, st.ncols + 1), err, sizeof(err)), 0);
        assert_non_null(strstr(err, "surprise"));
        if (st.ncols >= 2) {
            memcpy(cols, st.cols, sizeof(cols[0]) * (size_t) st.ncols);
            cols[0] = st.cols[1];
            cols[1] = st.cols[0];
            assert_int_not_equal(check(&st, described(e, cols, st.ncols), err, sizeof(err)), 0);
        }
        /* Keep the env's result list short. */
        for (int i = 0; i < e->npg; i++) {
            PQclear(e->pg[i]);
        }
        e->npg = 0;
    }
}

static void
test_message_fits(void **state)
{
    th_env *e = *state;
    shop_statement st = shop_catalogue[SHOP_STMT_PRODUCT_UPDATE];
    char err[16];

    /* A short buffer gets a truncated, terminated message. */
    st.nparams = 0;
    shop_column cols[1] = { { "x", SHOP_OID_TEXT } };
    memset(err, 'Z', sizeof(err));
    assert_int_not_equal(shop_catalogue_check(&st, described(e, cols, 1), err, sizeof(err)), 0);
    assert_non_null(memchr(err, '\0', sizeof(err)));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_statements_well_formed),
        TH_TEST(test_placeholders_match_nparams),
        TH_TEST(test_product_columns),
        TH_TEST(test_ping_matches),
        TH_TEST(test_ping_drift),
        TH_TEST(test_param_count_checked),
        TH_TEST(test_column_drift_every_statement),
        TH_TEST(test_message_fits),
    };
    return cmocka_run_group_tests_name("catalogue", tests, NULL, NULL);
}
