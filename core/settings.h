/* The one configuration table. Every setting of either front-end is a row
 * here: its name, its environment variable (fcgi), its nginx directive
 * (module), its type, default, limits and one line of help. Front-ends only
 * map their own syntax onto shop_setting_set(). */
#ifndef SHOP_SETTINGS_H
#define SHOP_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SHOP_SET_STRING,    /* free text (a libpq connection string, a path prefix) */
    SHOP_SET_PATH,      /* a file name; the file is read by the front-end */
    SHOP_SET_INT,       /* a plain integer */
    SHOP_SET_SIZE,      /* bytes, with an optional k or m suffix */
    SHOP_SET_MSEC,      /* milliseconds, with an optional ms, s, m or h suffix */
    SHOP_SET_FLAG       /* on or off (also 1/0, true/false, yes/no) */
} shop_setting_type;

/* Where a setting applies. */
#define SHOP_SET_FCGI    1
#define SHOP_SET_MODULE  2
#define SHOP_SET_BOTH    (SHOP_SET_FCGI | SHOP_SET_MODULE)

typedef struct shop_settings {
    const char *database;
    const char *read_database;
    const char *base_path;
    const char *admin_token_file;
    const char *webhook_secret_file;
    int64_t     pool_size;
    int64_t     pool_queue;
    int64_t     pool_queue_timeout_ms;
    int64_t     statement_timeout_ms;
    int64_t     threads;
    int64_t     body_limit;
    int64_t     stock_deadline_ms;
    int64_t     event_retention_ms;
    int64_t     event_replay_limit;
    int64_t     max_streams;
    int64_t     max_subscribers;
    int64_t     stream_buffer;
    int64_t     warehouse_pool_size;
    int64_t     metrics_public;

    /* Loaded by the front-end from the files above, never from the command line. */
    const char *admin_token;
    size_t      admin_token_len;
    const char *webhook_secret;
    size_t      webhook_secret_len;
} shop_settings;

typedef struct shop_setting {
    const char        *name;
    const char        *env;
    const char        *directive;
    shop_setting_type  type;
    int                scope;
    const char        *def;
    int64_t            min;
    int64_t            max;
    size_t             offset;
    const char        *help;
} shop_setting;

extern const shop_setting shop_setting_table[];
extern const size_t       shop_setting_count;

/* What a setting's values are, in a word ("integer", "duration", "on/off"...),
 * for `shop-fcgi settings` and the man pages. */
const char *shop_setting_type_name(shop_setting_type type);

const shop_setting *shop_setting_by_name(const char *name);
const shop_setting *shop_setting_by_env(const char *env);
const shop_setting *shop_setting_by_directive(const char *directive, size_t len);

/* Every setting at its default. */
void shop_settings_defaults(shop_settings *s);

/* Parses `value` (len bytes followed by a NUL) into the setting's field.
 * Strings are not copied: the caller keeps `value` alive as long as the
 * settings. Returns 0, or -1 with a message naming the setting in err. */
int  shop_setting_set(shop_settings *s, const shop_setting *def,
                      const char *value, size_t len, char *err, size_t errlen);

/* Checks that the combination is usable (database given, ...). */
int  shop_settings_check(const shop_settings *s, int scope, char *err, size_t errlen);

/* Parses a token or secret file's contents: surrounding whitespace trimmed,
 * at least 16 bytes, printable ASCII. Returns the trimmed span, or -1. */
int  shop_secret_parse(const char *data, size_t len, size_t *start, size_t *n,
                       char *err, size_t errlen);

#endif
