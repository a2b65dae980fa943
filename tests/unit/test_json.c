/* shop_json_parse(): strict RFC 8259 (API.md "Conventions"): UTF-8 only,
 * no duplicate keys, depth <= 32, nothing after the value; and the UTF-8
 * helpers it is built on. */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

#include "json_strict.h"

/* Printable form of a test input for failure messages. */
static const char *
show(char *buf, size_t cap, const char *s, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch >= 0x20 && ch < 0x7f) {
            buf[o++] = (char) ch;
        } else {
            o += (size_t) snprintf(buf + o, cap - o, "\\x%02x", ch);
        }
    }
    buf[o] = '\0';
    return buf;
}

static struct json_object *
parse_ok(th_env *e, const char *s, size_t n, int line)
{
    const char *why = "(not set)";
    char buf[256];
    struct json_object *o = shop_json_parse(&e->core.arena, s, n, &why);

    if (why != NULL) {
        print_error("refused `%s`: %s\n", show(buf, sizeof(buf), s, n), why);
        json_object_put(o);
        _fail(__FILE__, line);
    }
    assert_true(e->njson < TH_MAX_JSON);
    e->json[e->njson++] = o;
    return o;
}

static void
parse_bad(th_env *e, const char *s, size_t n, const char *why_has, int line)
{
    const char *why = NULL;
    char buf[256];
    struct json_object *o = shop_json_parse(&e->core.arena, s, n, &why);

    if (o != NULL || why == NULL) {
        print_error("accepted `%s`\n", show(buf, sizeof(buf), s, n));
        json_object_put(o);
        _fail(__FILE__, line);
    }
    if (why_has != NULL && strstr(why, why_has) == NULL) {
        print_error("`%s` refused with \"%s\", expected a reason mentioning \"%s\"\n",
                    show(buf, sizeof(buf), s, n), why, why_has);
        _fail(__FILE__, line);
    }
}

/* Literals only (sizeof keeps embedded NULs). */
#define OK(s)       parse_ok(e, (s), sizeof(s) - 1, __LINE__)
#define BAD(s, why) parse_bad(e, (s), sizeof(s) - 1, (why), __LINE__)

#define UTF8 "UTF-8"

static void
test_valid_documents(void **state)
{
    th_env *e = *state;
    struct json_object *o, *v;

    OK("{}");
    OK("[]");
    OK("{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false,\"e\":\"x\",\"f\":-0.5e+10,\"g\":{}}");
    OK("[true,false,null]");
    OK("[0,-0,1,-1,0.5,1e3,1E3,1e-3,1E+3,-0.0e-0,123.456e789]");
    OK(" \t\r\n{ \"a\" : [ 1 , 2 ] } \n\t\r ");
    OK("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\"]");
    OK("[\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xef\xbf\xbf\"]");
    OK("[\"\x7f\"]");              /* DEL needs no escape */
    OK("{\"\":\"\"}");             /* the empty key */
    OK("{\"a\":{\"a\":{\"a\":1}}}"); /* one key at several levels is not a duplicate */
    OK("[{\"a\":1},{\"a\":2}]");   /* nor in sibling objects */
    OK("{\"a\":1,\"A\":2}");       /* keys are case-sensitive */

    o = OK("{\"\\u0061\":\"\\ud83d\\ude00\\uDBFF\\uDFFF\"}");
    assert_true(json_object_object_get_ex(o, "a", &v));
    assert_string_equal(json_object_get_string(v), "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
}

static void
test_big_numbers(void **state)
{
    th_env *e = *state;

    /* Valid JSON whatever its size; the fields decide what fits. */
    OK("[100000000000000000000000000000000000000000]");
    OK("[-100000000000000000000000000000000000000000]");
    OK("[9223372036854775808,-9223372036854775809,18446744073709551616]");
    OK("[1e400,-1e400,1e-400]");
    OK("[0.000000000000000000000000000000000000000000000001]");
}

/* Regression: a top-level number or literal is valid JSON, though json-c
 * waits for more input after it (json_tokener_continue); the body `null`
 * gives NULL with *why NULL. */
static void
test_top_level_scalars(void **state)
{
    th_env *e = *state;
    const char *why = "(not set)";
    struct json_object *o;

    o = OK("\"text\"");
    assert_true(json_object_is_type(o, json_type_string));
    o = OK("1");
    assert_true(json_object_is_type(o, json_type_int));
    assert_int_equal(json_object_get_int(o), 1);
    o = OK("-0");
    assert_true(json_object_is_type(o, json_type_int));
    o = OK("1e3");
    assert_true(json_object_is_type(o, json_type_double));
    o = OK("true");
    assert_true(json_object_get_boolean(o));
    o = OK("false");
    assert_true(json_object_is_type(o, json_type_boolean));
    assert_false(json_object_get_boolean(o));

    o = shop_json_parse(&e->core.arena, "null", 4, &why);
    assert_null(o);
    assert_null(why);
}

static void
test_invalid_utf8(void **state)
{
    th_env *e = *state;

    /* Inside strings. */
    BAD("[\"\xc0\x80\"]", UTF8);           /* overlong NUL */
    BAD("[\"\xc1\xbf\"]", UTF8);           /* overlong 0x7f */
    BAD("[\"\xe0\x80\x80\"]", UTF8);       /* overlong, 3 bytes */
    BAD("[\"\xe0\x9f\xbf\"]", UTF8);       /* overlong U+07FF */
    BAD("[\"\xf0\x80\x80\x80\"]", UTF8);   /* overlong, 4 bytes */
    BAD("[\"\xf0\x8f\xbf\xbf\"]", UTF8);   /* overlong U+FFFF */
    BAD("[\"\xed\xa0\x80\"]", UTF8);       /* encoded surrogate U+D800 */
    BAD("[\"\xed\xbf\xbf\"]", UTF8);       /* encoded surrogate U+DFFF */
    BAD("[\"\xed\xa0\xbd\xed\xb8\x80\"]", UTF8); /* CESU-8 pair */
    BAD("[\"\xf4\x90\x80\x80\"]", UTF8);   /* U+110000 */
    BAD("[\"\xf5\x80\x80\x80\"]", UTF8);
    BAD("[\"\xf8\x88\x80\x80\x80\"]", UTF8);
    BAD("[\"\xfe\"]", UTF8);
    BAD("[\"\xff\"]", UTF8);
    BAD("[\"\x80\"]", UTF8);               /* lone continuation byte */
    BAD("[\"\xbf\xbf\"]", UTF8);
    BAD("[\"\xc3\"]", UTF8);               /* truncated 2-byte */
    BAD("[\"\xe2\x82\"]", UTF8);           /* truncated 3-byte */
    BAD("[\"\xf0\x9f\x98\"]", UTF8);       /* truncated 4-byte */
    BAD("[\"\xe2\x82x\"]", UTF8);          /* broken by an ASCII byte */
    BAD("[\"\xc3\xa9\xc3\"]", UTF8);
    /* At the very end of the body. */
    BAD("[\"\xe2\x82", UTF8);
    BAD("[\"\xc3", UTF8);
    /* In keys. */
    BAD("{\"\xc0\x80\":1}", UTF8);
    BAD("{\"\xed\xa0\x80\":1}", UTF8);
    /* Outside strings: not UTF-8, or not JSON. */
    BAD("\xff", NULL);
    BAD("[\xc0\x80]", NULL);
    BAD("[1,\xe2\x82]", NULL);
}

static void
test_surrogate_escapes(void **state)
{
    th_env *e = *state;

    BAD("[\"\\ud800\"]", "surrogate");          /* lone high */
    BAD("[\"\\udbff\"]", "surrogate");
    BAD("[\"\\udc00\"]", "surrogate");          /* lone low */
    BAD("[\"\\udfff\"]", "surrogate");
    BAD("[\"\\ud800x\"]", "surrogate");
    BAD("[\"\\ud800\\u0041\"]", "surrogate");   /* high then not a low */
    BAD("[\"\\ud800\\ud800\"]", "surrogate");
    BAD("[\"\\udc00\\ud800\"]", "surrogate");   /* reversed pair */
    BAD("[\"\\ude00\\ud83d\"]", "surrogate");
    BAD("[\"\\ud800\\n\"]", "surrogate");
    BAD("[\"\\ud800\\", NULL);
    BAD("{\"\\udc00\":1}", "surrogate");        /* in a key */

    OK("[\"\\ud800\\udc00\"]");
    OK("[\"\\uD83D\\uDE00\"]");
    OK("[\"\\udbff\\udfff\"]");
    OK("[\"\\ud7ff\\ue000\"]");                 /* just outside the range */
}

static void
test_escapes(void **state)
{
    th_env *e = *state;

    BAD("[\"\\x41\"]", "escape");
    BAD("[\"\\'\"]", "escape");
    BAD("[\"\\a\"]", "escape");
    BAD("[\"\\U0041\"]", "escape");
    BAD("[\"\\u12\"]", "\\u");
    BAD("[\"\\u12G4\"]", "\\u");
    BAD("[\"\\u", NULL);
    BAD("[\"\\", NULL);
    BAD("[\"\\\0\"]", NULL);
    BAD("[\"abc]", NULL);
    BAD("[\"abc", NULL);
    BAD("\"", NULL);
}

static void
test_control_characters(void **state)
{
    th_env *e = *state;
    char doc[8] = "[\"?\"]";

    for (int ch = 0; ch < 0x20; ch++) {
        doc[2] = (char) ch;
        parse_bad(e, doc, 5, "control", __LINE__);
    }
    BAD("{\"a\tb\":1}", "control");
    OK("[\"\\u0000\\u001f\\t\"]");
}

static void
test_duplicate_keys(void **state)
{
    th_env *e = *state;

    BAD("{\"a\":1,\"a\":2}", "duplicate");
    BAD("{\"a\":1,\"a\":1}", "duplicate");
    BAD("{\"a\":1,\"\\u0061\":2}", "duplicate");      /* equal once unescaped */
    BAD("{\"\\u00e9\":1,\"\xc3\xa9\":2}", "duplicate");
    BAD("{\"\\/\":1,\"/\":2}", "duplicate");
    BAD("{\"a\":1,\"b\":2,\"c\":3,\"a\":4}", "duplicate");
    BAD("{\"x\":{\"a\":1,\"a\":2}}", "duplicate");    /* nested */
    BAD("{\"x\":{\"y\":{\"z\":{\"a\":1,\"a\":2}}}}", "duplicate");
    BAD("[{\"a\":1,\"a\":2}]", "duplicate");          /* inside an array */
    BAD("[1,[2,{\"b\":1}],{\"a\":[],\"a\":{}}]", "duplicate");
    BAD("{\"a\":[{\"b\":1},{\"b\":1,\"b\":2}]}", "duplicate");
    BAD("{\"a\":{\"x\":1},\"a\":{\"y\":1,\"z\":2}}", "duplicate");
    BAD("[{},{},{\"k\":{},\"k\":{}}]", "duplicate");
}

static char *
nest(th_env *e, int depth, const char *open, const char *inner, const char *close)
{
    size_t ol = strlen(open), il = strlen(inner), cl = strlen(close);
    char *s = shop_alloc(&e->scratch.arena, (size_t) depth * (ol + cl) + il + 1);
    char *p = s;

    assert_non_null(s);
    for (int i = 0; i < depth; i++, p += ol) {
        memcpy(p, open, ol);
    }
    memcpy(p, inner, il);
    p += il;
    for (int i = 0; i < depth; i++, p += cl) {
        memcpy(p, close, cl);
    }
    *p = '\0';
    return s;
}

static void
test_depth(void **state)
{
    th_env *e = *state;
    char *s;

    s = nest(e, 32, "[", "", "]");
    parse_ok(e, s, strlen(s), __LINE__);
    s = nest(e, 33, "[", "", "]");
    parse_bad(e, s, strlen(s), "32", __LINE__);

    s = nest(e, 32, "{\"a\":", "1", "}");
    parse_ok(e, s, strlen(s), __LINE__);
    s = nest(e, 33, "{\"a\":", "1", "}");
    parse_bad(e, s, strlen(s), "32", __LINE__);

    s = nest(e, 31, "{\"a\":", "[]", "}");          /* mixed: 32 */
    parse_ok(e, s, strlen(s), __LINE__);
    s = nest(e, 16, "[{\"a\":", "[]", "}]");        /* mixed: 33 */
    parse_bad(e, s, strlen(s), "32", __LINE__);

    s = nest(e, 5000, "[", "", "]");                /* no stack trouble */
    parse_bad(e, s, strlen(s), "32", __LINE__);
    s = nest(e, 100000, "[", "", "");              /* nor unterminated */
    parse_bad(e, s, strlen(s), NULL, __LINE__);
}

static void
test_grammar(void **state)
{
    th_env *e = *state;

    /* Empty and whitespace-only bodies. */
    BAD("", "empty");
    BAD(" \t\r\n ", "empty");
    /* Trailing data. */
    BAD("{}x", "after");
    BAD("{} {}", "after");
    BAD("{}]", "after");
    BAD("[]]", "after");
    BAD("{}\0", NULL);
    BAD("[1] 2", "after");
    BAD("\"a\"\"b\"", "after");
    /* Numbers. */
    BAD("[NaN]", NULL);
    BAD("[nan]", NULL);
    BAD("[Infinity]", NULL);
    BAD("[-Infinity]", NULL);
    BAD("[01]", "leading zero");
    BAD("[-01]", "leading zero");
    BAD("[00]", "leading zero");
    BAD("[1.]", "number");
    BAD("[1.e3]", "number");
    BAD("[.5]", NULL);
    BAD("[+1]", NULL);
    BAD("[-]", "number");
    BAD("-", "number");
    BAD("[- 1]", "number");
    BAD("[1e]", "number");
    BAD("[1e+]", "number");
    BAD("[1E-]", "number");
    BAD("[0x10]", NULL);
    BAD("[1_000]", NULL);
    /* Strings and keys. */
    BAD("['a']", NULL);
    BAD("{'a':1}", NULL);
    BAD("{a:1}", "key");
    BAD("{1:1}", "key");
    BAD("{\"a\"}", "':'");
    BAD("{\"a\" 1}", "':'");
    BAD("{\"a\":}", NULL);
    /* Separators. */
    BAD("[1,]", NULL);
    BAD("[,1]", NULL);
    BAD("[1 2]", NULL);
    BAD("{\"a\":1,}", NULL);
    BAD("{\"a\":1 \"b\":2}", NULL);
    BAD("{,}", NULL);
    BAD("[", NULL);
    BAD("{", NULL);
    BAD("{\"a\":", NULL);
    BAD("{\"a\":1", NULL);
    BAD("]", NULL);
    BAD("}", NULL);
    /* Literals. */
    BAD("[tru]", NULL);
    BAD("[True]", NULL);
    BAD("[nul]", NULL);
    BAD("[NULL]", NULL);
    BAD("[falsey]", NULL);
    BAD("[truefalse]", NULL);
    BAD("[undefined]", NULL);
    /* Not JSON at all. */
    BAD("\xef\xbb\xbf{}", NULL);      /* a byte order mark */
    BAD("\xef\xbb\xbf", NULL);
    BAD("/* c */ {}", NULL);
    BAD("{} // c", NULL);
    BAD("\f{}", NULL);               /* form feed is not JSON whitespace */
    BAD("\xc2\xa0{}", NULL);         /* nor is NBSP */
    BAD("\0", NULL);
    BAD("{\"a\":1}\n\0", NULL);
}

static void
test_utf8_helpers(void **state)
{
    (void) state;

    assert_true(shop_utf8_valid("", 0));
    assert_true(shop_utf8_valid("abc", 3));
    assert_true(shop_utf8_valid("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 18));
    assert_false(shop_utf8_valid("\xc0\x80", 2));
    assert_false(shop_utf8_valid("\xe0\x80\x80", 3));
    assert_false(shop_utf8_valid("\xed\xa0\x80", 3));
    assert_false(shop_utf8_valid("\xf4\x90\x80\x80", 4));
    assert_false(shop_utf8_valid("\xe2\x82", 2));
    assert_false(shop_utf8_valid("\xe2\x82\xac", 2));   /* the length counts */
    assert_false(shop_utf8_valid("\x80", 1));

    assert_int_equal(shop_utf8_chars("", 0), 0);
    assert_int_equal(shop_utf8_chars("abc", 3), 3);
    assert_int_equal(shop_utf8_chars("\xc3\xa9t\xc3\xa9", 5), 3);
    assert_int_equal(shop_utf8_chars("\xe2\x82\xac\xf0\x9f\x98\x80", 7), 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_valid_documents),
        TH_TEST(test_big_numbers),
        TH_TEST(test_top_level_scalars),
        TH_TEST(test_invalid_utf8),
        TH_TEST(test_surrogate_escapes),
        TH_TEST(test_escapes),
        TH_TEST(test_control_characters),
        TH_TEST(test_duplicate_keys),
        TH_TEST(test_depth),
        TH_TEST(test_grammar),
        TH_TEST(test_utf8_helpers),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
