#include "json_strict.h"

#include <string.h>

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    const char          *why;
    unsigned            *keys;      /* member count of each object, in document order */
    size_t               nobjects;
    size_t               cap;
    shop_arena          *arena;
} shop_scan;

static int scan_value(shop_scan *s, int depth);

static int
fail(shop_scan *s, const char *why)
{
    if (s->why == NULL) {
        s->why = why;
    }
    return -1;
}

static void
skip_ws(shop_scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        s->p++;
    }
}

/* Length of the UTF-8 sequence at p, or 0 if it is not valid UTF-8. */
static size_t
utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t need;
    unsigned min, cp;

    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        need = 2; min = 0x80; cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3; min = 0x800; cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4; min = 0x10000; cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t) (end - p) < need) {
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return need;
}

int
shop_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *) s, *end = p + n;

    while (p < end) {
        size_t k = utf8_seq(p, end);
        if (k == 0) {
            return 0;
        }
        p += k;
    }
    return 1;
}

size_t
shop_utf8_chars(const char *s, size_t n)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        count += ((unsigned char) s[i] & 0xc0) != 0x80;
    }
    return count;
}

static int
hex4(const unsigned char *p, const unsigned char *end, unsigned *out)
{
    unsigned v = 0;

    if (end - p < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v |= c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v |= c - 'A' + 10;
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* A key may not hold \u0000: json-c cuts keys there, so "name\u0000x"
 * would arrive as "name". */
static int
scan_string(shop_scan *s, int key)
{
    s->p++;   /* the opening quote */
    while (s->p < s->end) {
        unsigned c = *s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20) {
            return fail(s, "a control character in a string must be escaped");
        }
        if (c == '\\') {
            if (s->end - s->p < 2) {
                break;
            }
            c = s->p[1];
            if (c == 'u') {
                unsigned u, lo;
                if (hex4(s->p + 2, s->end, &u) != 0) {
                    return fail(s, "a \\u escape needs four hex digits");
                }
                s->p += 6;
                if (u == 0 && key) {
                    return fail(s, "an object key holds a NUL character");
                }
                if (u >= 0xdc00 && u <= 0xdfff) {
                    return fail(s, "a string holds a lone surrogate");
                }
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u'
                        || hex4(s->p + 2, s->end, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff) {
                        return fail(s, "a string holds a lone surrogate");
                    }
                    s->p += 6;
                }
                continue;
            }
            if (strchr("\"\\/bfnrt", (int) c) == NULL || c == '\0') {
                return fail(s, "a string holds an invalid escape");
            }
            s->p += 2;
            continue;
        }
        size_t k = utf8_seq(s->p, s->end);
        if (k == 0) {
            return fail(s, "the body is not valid UTF-8");
        }
        s->p += k;
    }
    return fail(s, "a string is not terminated");
}

static int
scan_number(shop_scan *s)
{
    const unsigned char *p = s->p;

    if (p < s->end && *p == '-') {
        p++;
    }
    if (p >= s->end || *p < '0' || *p > '9') {
        return fail(s, "invalid JSON: a malformed number");
    }
    if (*p == '0') {
        p++;
        if (p < s->end && *p >= '0' && *p <= '9') {
            return fail(s, "invalid JSON: a number with a leading zero");
        }
    } else {
        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || *p < '0' || *p > '9') {
            return fail(s, "invalid JSON: a malformed number");
        }
        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= s->end || *p < '0' || *p > '9') {
            return fail(s, "invalid JSON: a malformed number");
        }
        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    s->p = p;
    return 0;
}

static int
scan_literal(shop_scan *s, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t) (s->end - s->p) < n || memcmp(s->p, lit, n) != 0) {
        return fail(s, "invalid JSON");
    }
    s->p += n;
    return 0;
}

static int
scan_container(shop_scan *s, int depth, int object)
{
    size_t slot = 0;
    unsigned members = 0;

    if (depth > SHOP_JSON_MAX_DEPTH) {
        return fail(s, "JSON nested deeper than 32 levels");
    }
    if (object) {
        if (s->nobjects == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 32;
            unsigned *keys = shop_alloc(s->arena, cap * sizeof(*keys));
            if (keys == NULL) {
                return fail(s, "the body is too complex");
            }
            if (s->nobjects) {
                memcpy(keys, s->keys, s->nobjects * sizeof(*keys));
            }
            s->keys = keys;
            s->cap = cap;
        }
        slot = s->nobjects++;
    }
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == (object ? '}' : ']')) {
        s->p++;
        if (object) {
            s->keys[slot] = 0;
        }
        return 0;
    }
    for (;;) {
        if (object) {
            skip_ws(s);
            if (s->p >= s->end || *s->p != '"') {
                return fail(s, "invalid JSON: an object key must be a string");
            }
            if (scan_string(s, 1) != 0) {
                return -1;
            }
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':') {
                return fail(s, "invalid JSON: expected ':'");
            }
            s->p++;
            members++;
        }
        if (scan_value(s, depth) != 0) {
            return -1;
        }
        skip_ws(s);
        if (s->p >= s->end) {
            return fail(s, "invalid JSON: the body ends too early");
        }
        if (*s->p == ',') {
            s->p++;
            continue;
        }
        if (*s->p == (object ? '}' : ']')) {
            s->p++;
            break;
        }
        return fail(s, object ? "invalid JSON: expected ',' or '}'" : "invalid JSON: expected ',' or ']'");
    }
    if (object) {
        s->keys[slot] = members;
    }
    return 0;
}

static int
scan_value(shop_scan *s, int depth)
{
    skip_ws(s);
    if (s->p >= s->end) {
        return fail(s, "invalid JSON: a value is missing");
    }
    switch (*s->p) {
    case '{': return scan_container(s, depth + 1, 1);
    case '[': return scan_container(s, depth + 1, 0);
    case '"': return scan_string(s, 0);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
            return scan_number(s);
        }
        if (*s->p >= 0x80 && utf8_seq(s->p, s->end) == 0) {
            return fail(s, "the body is not valid UTF-8");
        }
        return fail(s, "invalid JSON");
    }
}

/* Walks json-c's tree in document order: an object with fewer members than
 * the text had lost a duplicate key. */
static int
same_members(struct json_object *v, const unsigned *keys, size_t n, size_t *next)
{
    switch (json_object_get_type(v)) {
    case json_type_object: {
        if (*next >= n || (size_t) json_object_object_length(v) != keys[*next]) {
            return 0;
        }
        (*next)++;
        json_object_object_foreach(v, key, child) {
            (void) key;
            if (!same_members(child, keys, n, next)) {
                return 0;
            }
        }
        return 1;
    }
    case json_type_array: {
        size_t len = json_object_array_length(v);
        for (size_t i = 0; i < len; i++) {
            if (!same_members(json_object_array_get_idx(v, i), keys, n, next)) {
                return 0;
            }
        }
        return 1;
    }
    case json_type_null:
    case json_type_boolean:
    case json_type_double:
    case json_type_int:
    case json_type_string:
        return 1;
    }
    return 0;
}

struct json_object *
shop_json_parse(shop_arena *a, const char *text, size_t len, const char **why)
{
    shop_scan s = { (const unsigned char *) text, (const unsigned char *) text + len,
                    NULL, NULL, 0, 0, a };

    *why = NULL;
    skip_ws(&s);
    if (s.p == s.end) {
        *why = "the body is empty";
        return NULL;
    }
    if (scan_value(&s, 0) != 0) {
        *why = s.why;
        return NULL;
    }
    skip_ws(&s);
    if (s.p != s.end) {
        *why = "invalid JSON: data after the top-level value";
        return NULL;
    }

    json_tokener *tok = json_tokener_new_ex(SHOP_JSON_MAX_DEPTH + 2);
    if (tok == NULL) {
        *why = "the body could not be parsed";
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    struct json_object *root = json_tokener_parse_ex(tok, text, (int) len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    if (e == json_tokener_continue) {
        /* A bare number at the very end: json-c waits for a terminator. */
        root = json_tokener_parse_ex(tok, "", 1);
        e = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);
    if (root == NULL && e != json_tokener_success) {
        *why = "invalid JSON";
        return NULL;
    }

    size_t next = 0;
    if (!same_members(root, s.keys, s.nobjects, &next) || next != s.nobjects) {
        json_object_put(root);
        *why = "the body has a duplicate key";
        return NULL;
    }
    return root;
}
