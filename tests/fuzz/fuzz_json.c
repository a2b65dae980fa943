/* The strict JSON parser alone (shop_json_parse) and the UTF-8 checks it
 * rests on, with differential oracles:
 * - what shop_json_parse accepts, json-c in strict mode with UTF-8
 *   validation accepts too, nested at most 32 deep;
 * - an accepted value printed by json-c parses again to an equal value;
 * - no accepted object key holds an escaped NUL (json-c would cut it);
 * - shop_utf8_valid agrees with a table-driven reference (RFC 3629), and
 *   shop_utf8_chars counts code points of valid text. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fuzz_common.h"
#include "json_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 3629, section 4, byte by byte. Returns code points, or -1. */
static long
ref_utf8(const uint8_t *s, size_t n)
{
    long count = 0;
    size_t i = 0;

    while (i < n) {
        uint8_t b = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (b <= 0x7f) {
            need = 0;
        } else if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b == 0xe0) {
            need = 2; lo = 0xa0;
        } else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) {
            need = 2;
        } else if (b == 0xed) {
            need = 2; hi = 0x9f;
        } else if (b == 0xf0) {
            need = 3; lo = 0x90;
        } else if (b >= 0xf1 && b <= 0xf3) {
            need = 3;
        } else if (b == 0xf4) {
            need = 3; hi = 0x8f;
        } else {
            return -1;
        }
        if (n - i - 1 < need) {
            return -1;
        }
        for (size_t k = 1; k <= need; k++) {
            uint8_t c = s[i + k];
            if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xbf)) {
                return -1;
            }
        }
        i += need + 1;
        count++;
    }
    return count;
}

static int
depth_of(struct json_object *v)
{
    int d = 0;

    switch (json_object_get_type(v)) {
    case json_type_object: {
        json_object_object_foreach(v, key, child) {
            (void) key;
            int cd = depth_of(child);
            d = cd > d ? cd : d;
        }
        return d + 1;
    }
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            int cd = depth_of(json_object_array_get_idx(v, i));
            d = cd > d ? cd : d;
        }
        return d + 1;
    case json_type_null:
    case json_type_boolean:
    case json_type_double:
    case json_type_int:
    case json_type_string:
        return 0;
    }
    return 0;
}

/* 1 when an object key of the (valid JSON) text escapes a NUL: json-c
 * keeps keys as C strings, so "a\u0000b" would become "a". */
static int
key_with_nul(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i] != '"') {
            continue;
        }
        i++;
        int nul = 0;
        while (i < n && t[i] != '"') {
            if (t[i] == '\\') {
                nul |= i + 5 < n && memcmp(t + i, "\\u0000", 6) == 0;
                i++;
            }
            i++;
        }
        size_t j = i + 1;
        while (j < n && (t[j] == ' ' || t[j] == '\t' || t[j] == '\n' || t[j] == '\r')) {
            j++;
        }
        if (nul && j < n && t[j] == ':') {
            return 1;
        }
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_mem m;
    const char *why = NULL;
    shop_str text;
    long ref;

    fz_mem_init(&m);
    text = fz_copy(&m, (shop_str) { (const char *) data, size });

    ref = ref_utf8(data, size);
    FZ_ASSERT((ref >= 0) == (shop_utf8_valid(text.p, text.n) != 0),
              "shop_utf8_valid says %d, RFC 3629 says %ld", shop_utf8_valid(text.p, text.n), ref);
    if (ref >= 0) {
        FZ_ASSERT((long) shop_utf8_chars(text.p, text.n) == ref, "shop_utf8_chars %zu, expected %ld",
                  shop_utf8_chars(text.p, text.n), ref);
    }

    struct json_object *v = shop_json_parse(&m.arena, text.p, text.n, &why);
    if (why == NULL) {
        /* Accepted (v NULL is the body `null`). */
        FZ_ASSERT(ref >= 0, "accepted a body that is not UTF-8");
        FZ_ASSERT(!key_with_nul(text.p, text.n),
                  "accepted an object key holding \\u0000, which json-c cuts at the NUL");
        FZ_ASSERT(depth_of(v) <= SHOP_JSON_MAX_DEPTH, "accepted depth %d", depth_of(v));

        /* json-c, strict and UTF-8 validating, on the same text. */
        if (memchr(data, '\0', size) == NULL) {
            char *z = fz_cstr(&m, text);
            json_tokener *tok = json_tokener_new_ex(SHOP_JSON_MAX_DEPTH + 2);
            FZ_ASSERT(tok != NULL, "out of memory");
            json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
            struct json_object *w = json_tokener_parse_ex(tok, z, (int) size + 1);
            enum json_tokener_error e = json_tokener_get_error(tok);
            json_tokener_free(tok);
            FZ_ASSERT(e == json_tokener_success, "json-c refuses what shop_json_parse accepted (%s)",
                      json_tokener_error_desc(e));
            FZ_ASSERT(json_object_equal(v, w), "json-c reads another value");
            json_object_put(w);
        }

        /* Printed and parsed again: the same value. */
        {
            const char *out = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
            const char *why2 = NULL;
            struct json_object *again = shop_json_parse(&m.arena, out, strlen(out), &why2);
            FZ_ASSERT(why2 == NULL, "json-c's own output is refused (%s): %s", why2, out);
            FZ_ASSERT(json_object_equal(v, again), "round trip changed the value: %s", out);
            json_object_put(again);
        }
        json_object_put(v);
    } else {
        FZ_ASSERT(v == NULL, "a reason (%s) and a value", why);
        FZ_ASSERT(why[0] != '\0', "an empty reason");
    }
    fz_mem_free(&m);
    return 0;
}
