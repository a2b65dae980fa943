#include "fields.h"

#include <string.h>

#include "handler.h"
#include "json_strict.h"

void
shop_fields_begin(shop_fields *f, shop_ctx *c, struct json_object *obj, const char *prefix,
                  shop_field_errors *errs, const char *const *known)
{
    f->c = c;
    f->obj = obj;
    f->prefix = prefix;
    f->errs = errs;
    if (errs->buf.arena == NULL) {
        shop_buf_init(&errs->buf, c->arena, 256);
        errs->n = 0;
    }
    json_object_object_foreach(obj, key, val) {
        (void) val;
        int ok = 0;
        for (const char *const *k = known; *k != NULL; k++) {
            ok |= strcmp(key, *k) == 0;
        }
        if (!ok) {
            shop_fields_fail(f, key, "unknown field");
        }
    }
}

void
shop_fields_fail(shop_fields *f, const char *name, const char *message)
{
    shop_buf *b = &f->errs->buf;
    size_t plen = f->prefix ? strlen(f->prefix) : 0;
    size_t nlen = strlen(name);

    if (f->errs->n++) {
        shop_buf_addc(b, ',');
    }
    shop_buf_adds(b, "{\"field\":");
    if (plen) {
        char *full = shop_alloc(f->c->arena, plen + nlen);
        if (full != NULL) {
            memcpy(full, f->prefix, plen);
            memcpy(full + plen, name, nlen);
            shop_buf_add_json(b, full, plen + nlen);
        }
    } else {
        shop_buf_add_json(b, name, nlen);
    }
    shop_buf_adds(b, ",\"message\":");
    shop_buf_add_jsons(b, message);
    shop_buf_addc(b, '}');
}

int
shop_fields_end(shop_ctx *c, shop_field_errors *errs)
{
    if (errs->n == 0) {
        return 0;
    }
    shop_buf m;
    shop_buf_init(&m, c->arena, errs->buf.len + 16);
    shop_buf_adds(&m, ",\"errors\":[");
    shop_buf_add(&m, errs->buf.p, errs->buf.len);
    shop_buf_addc(&m, ']');
    shop_fail_ext(c, SHOP_E_VALIDATION,
                  errs->n == 1 ? "a field of the request is invalid" : "fields of the request are invalid",
                  shop_buf_str(&m));
    return -1;
}

static struct json_object *
member(shop_fields *f, const char *name, int required)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(f->obj, name, &v) || v == NULL) {
        if (required) {
            shop_fields_fail(f, name, "is required");
        }
        return NULL;
    }
    return v;
}

int
shop_field_is_null(shop_fields *f, const char *name)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(f->obj, name, &v) && v == NULL;
}

/* The member as a string, or -1 when it is another type or holds a NUL. */
static int
string_member(shop_fields *f, const char *name, int required, const char **s, size_t *n)
{
    struct json_object *v = member(f, name, required);

    if (v == NULL) {
        return 0;
    }
    if (!json_object_is_type(v, json_type_string)) {
        shop_fields_fail(f, name, "must be a string");
        return -1;
    }
    *s = json_object_get_string(v);
    *n = (size_t) json_object_get_string_len(v);
    if (strlen(*s) != *n) {
        shop_fields_fail(f, name, "must not contain NUL characters");
        return -1;
    }
    return 1;
}

int
shop_field_text(shop_fields *f, const char *name, int required, size_t min_chars,
                size_t max_chars, int multiline, const char **out)
{
    const char *s;
    size_t n;
    int rc = string_member(f, name, required, &s, &n);

    if (rc != 1) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) s[i];
        if ((ch < 0x20 || ch == 0x7f)
            && !(multiline && (ch == '\n' || ch == '\r' || ch == '\t'))) {
            shop_fields_fail(f, name, "must not contain control characters");
            return -1;
        }
    }
    size_t chars = shop_utf8_chars(s, n);
    if (chars < min_chars || chars > max_chars) {
        char msg[64];
        if (min_chars == 0) {
            snprintf(msg, sizeof(msg), "must be at most %zu characters", max_chars);
        } else {
            snprintf(msg, sizeof(msg), "must be %zu to %zu characters", min_chars, max_chars);
        }
        shop_fields_fail(f, name, msg);
        return -1;
    }
    *out = s;
    return 1;
}

int
shop_token_ok(shop_str s, size_t min, size_t max, int (*allowed)(int ch))
{
    if (s.n < min || s.n > max) {
        return 0;
    }
    for (size_t i = 0; i < s.n; i++) {
        if (!allowed((unsigned char) s.p[i])) {
            return 0;
        }
    }
    return 1;
}

int
shop_field_token(shop_fields *f, const char *name, int required, size_t min, size_t max,
                 int (*allowed)(int ch), const char *shape, const char **out)
{
    const char *s;
    size_t n;
    int rc = string_member(f, name, required, &s, &n);

    if (rc != 1) {
        return rc;
    }
    if (!shop_token_ok((shop_str) { s, n }, min, max, allowed)) {
        shop_fields_fail(f, name, shape);
        return -1;
    }
    *out = s;
    return 1;
}

int
shop_field_int(shop_fields *f, const char *name, int required, int64_t min, int64_t max,
               int64_t *out)
{
    struct json_object *v = member(f, name, required);
    char msg[64];

    if (v == NULL) {
        return 0;
    }
    if (!json_object_is_type(v, json_type_int)) {
        shop_fields_fail(f, name, "must be an integer");
        return -1;
    }
    /* json-c saturates out-of-range integers, which then fail the range. */
    int64_t n = json_object_get_int64(v);
    if (n < min) {
        snprintf(msg, sizeof(msg), "must be >= %lld", (long long) min);
        shop_fields_fail(f, name, msg);
        return -1;
    }
    if (n > max || (n == INT64_MAX && json_object_get_uint64(v) > (uint64_t) INT64_MAX)) {
        snprintf(msg, sizeof(msg), "must be <= %lld", (long long) max);
        shop_fields_fail(f, name, msg);
        return -1;
    }
    *out = n;
    return 1;
}

int
shop_is_sku_char(int ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
           || ch == '-' || ch == '_' || ch == '.';
}

int
shop_is_slug_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
}

int
shop_is_category_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

int
shop_is_upper(int ch)
{
    return ch >= 'A' && ch <= 'Z';
}
