/* If-Match (strong comparison) as the versions the write functions accept,
 * If-None-Match (weak comparison) against a version. */
#include "helpers.h"

#include <string.h>

#include "conditional.h"

static void
expect_versions(th_env *e, const char *header, const char *want)
{
    const char *got = shop_if_match_versions(&e->core.arena, th_s(e, header));

    if (want == NULL) {
        if (got != NULL) {
            print_error("If-Match: %s -> %s, expected NULL\n", header, got);
            fail();
        }
        return;
    }
    if (got == NULL || strcmp(got, want) != 0) {
        print_error("If-Match: %s -> %s, expected %s\n", header, got ? got : "NULL", want);
        fail();
    }
}

static void
test_if_match_versions(void **state)
{
    th_env *e = *state;

    expect_versions(e, "", NULL);                 /* absent: no precondition */
    expect_versions(e, "   ", NULL);
    expect_versions(e, "*", NULL);                /* any current representation */
    expect_versions(e, " * ", NULL);
    expect_versions(e, "\"3\"", "{3}");
    expect_versions(e, "  \"3\"  ", "{3}");
    expect_versions(e, "\"3\", \"4\"", "{3,4}");
    expect_versions(e, "\"3\",\"4\",\"17\"", "{3,4,17}");
    expect_versions(e, "W/\"3\"", "{}");          /* weak tags never match strongly */
    expect_versions(e, "W/\"3\", \"4\"", "{4}");
    expect_versions(e, "garbage", "{}");
    expect_versions(e, "3", "{}");
    expect_versions(e, "\"\"", "{}");
    expect_versions(e, "\"0\"", "{}");
    expect_versions(e, "\"-1\"", "{}");
    expect_versions(e, "\"03\"", "{}");
    expect_versions(e, "\"abc\"", "{}");
    expect_versions(e, "\"3", "{}");
    expect_versions(e, "\"3,4\"", "{}");          /* the comma is inside the tag */
    expect_versions(e, "\"2147483647\"", "{2147483647}");
    expect_versions(e, "\"2147483648\"", "{}");   /* versions are integer */
    expect_versions(e, "\"99999999999999999999\"", "{}");
    expect_versions(e, ",,\"5\",,", "{5}");
}

static void
expect_inm(th_env *e, const char *header, const char *version, int want)
{
    int got = shop_if_none_match(th_s(e, header), version);

    if (got != want) {
        print_error("If-None-Match: %s vs version %s -> %d, expected %d\n", header, version, got, want);
        fail();
    }
}

static void
test_if_none_match(void **state)
{
    th_env *e = *state;

    expect_inm(e, "\"3\"", "3", 1);
    expect_inm(e, "W/\"3\"", "3", 1);            /* weak comparison */
    expect_inm(e, "\"4\"", "3", 0);
    expect_inm(e, "W/\"4\"", "3", 0);
    expect_inm(e, "\"33\"", "3", 0);
    expect_inm(e, "\"3\"", "33", 0);
    expect_inm(e, "\"1\", \"2\", \"3\"", "3", 1);
    expect_inm(e, "\"1\", W/\"3\"", "3", 1);
    expect_inm(e, "\"1\",\"2\"", "3", 0);
    expect_inm(e, "*", "3", 1);
    expect_inm(e, " * ", "3", 1);
    expect_inm(e, "3", "3", 0);                  /* not a tag */
    expect_inm(e, "w/\"3\"", "3", 0);            /* W/ is case-sensitive */
    expect_inm(e, "\"3", "3", 0);
    expect_inm(e, "", "3", 0);
    expect_inm(e, "garbage", "3", 0);
}

static void
test_etag(void **state)
{
    th_env *e = *state;

    assert_str(e, shop_etag(&e->core.arena, "3"), "\"3\"");
    assert_str(e, shop_etag(&e->core.arena, "2147483647"), "\"2147483647\"");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_if_match_versions),
        TH_TEST(test_if_none_match),
        TH_TEST(test_etag),
    };
    return cmocka_run_group_tests_name("conditional", tests, NULL, NULL);
}
