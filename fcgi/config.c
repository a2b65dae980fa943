/* Configuration: the core's settings table, one environment variable per
 * row. Bad values stop the start-up with a message naming the variable. */
#include "shop_fcgi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A token file is a line; anything this big is the wrong file. */
#define FCGI_SECRET_MAX 4096

/* The secrets' buffers: the settings point into them until
 * fcgi_config_release(). */
static struct {
    char   *data;
    size_t  size;
} fcgi_secrets[2];
static int fcgi_nsecrets;

/* Reads a secret file that only its owner (and group) may read. */
static int
fcgi_config_secret(const char *var, const char *path, const char **out, size_t *outlen)
{
    char err[160];
    struct stat st;
    size_t start, n, len = 0;
    ssize_t got = 0;
    char *data;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, FCGI_PROG ": %s: cannot read %s: %s\n", var, path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, FCGI_PROG ": %s: %s is not a regular file\n", var, path);
        close(fd);
        return -1;
    }
    if (st.st_mode & S_IROTH) {
        fprintf(stderr, FCGI_PROG ": %s: %s is readable by others (mode %04o); "
                "chmod o-r it\n", var, path, (unsigned) (st.st_mode & 07777));
        close(fd);
        return -1;
    }
    data = malloc(FCGI_SECRET_MAX + 1);
    if (data == NULL) {
        fprintf(stderr, FCGI_PROG ": out of memory\n");
        close(fd);
        return -1;
    }
    for ( ;; ) {
        got = read(fd, data + len, FCGI_SECRET_MAX + 1 - len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        len += (size_t) got;
        if (len > FCGI_SECRET_MAX) {
            break;
        }
    }
    close(fd);
    if (got < 0) {
        fprintf(stderr, FCGI_PROG ": %s: cannot read %s: %s\n", var, path, strerror(errno));
        explicit_bzero(data, FCGI_SECRET_MAX + 1);
        free(data);
        return -1;
    }
    if (len > FCGI_SECRET_MAX) {
        fprintf(stderr, FCGI_PROG ": %s: %s is larger than %d bytes\n", var, path,
                FCGI_SECRET_MAX);
        explicit_bzero(data, FCGI_SECRET_MAX + 1);
        free(data);
        return -1;
    }
    /* The message says what is wrong with the contents, never the contents. */
    if (shop_secret_parse(data, len, &start, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, FCGI_PROG ": %s: %s %s\n", var, path, err);
        explicit_bzero(data, FCGI_SECRET_MAX + 1);
        free(data);
        return -1;
    }
    memmove(data, data + start, n);
    data[n] = '\0';
    fcgi_secrets[fcgi_nsecrets].data = data;
    fcgi_secrets[fcgi_nsecrets].size = FCGI_SECRET_MAX + 1;
    fcgi_nsecrets++;
    *out = data;
    *outlen = n;
    return 0;
}

/* A connection string libpq cannot parse fails here, at start-up, not at
 * every connect. libpq's message quotes the offending part, which may be
 * the password (an URI with a bad percent-escape quotes all of it): it is
 * printed only for strings that hold no password. */
static int
fcgi_config_dsn(const char *var, const char *dsn)
{
    char *msg = NULL, line[256];
    PQconninfoOption *opts;

    if (dsn == NULL || dsn[0] == '\0') {
        return 0;
    }
    opts = PQconninfoParse(dsn, &msg);
    if (opts != NULL) {
        PQconninfoFree(opts);
        return 0;
    }
    if (msg == NULL) {
        fprintf(stderr, FCGI_PROG ": %s: out of memory\n", var);
    } else if (strstr(dsn, "password") != NULL || strchr(dsn, '@') != NULL) {
        fprintf(stderr, FCGI_PROG ": %s: not a valid libpq connection string or URL (libpq's "
                "message is left out: it would quote the string, which may hold a password)\n",
                var);
    } else {
        fprintf(stderr, FCGI_PROG ": %s: not a valid libpq connection string or URL: %s\n", var,
                fcgi_pg_message(msg, line, sizeof(line)));
    }
    PQfreemem(msg);
    return -1;
}

/* Every SHOP_WAREHOUSE_<CODE>_DATABASE in the environment. */
static int
fcgi_config_warehouse_dsns(void)
{
    char var[128];

    for (char **e = environ; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        size_t n = eq != NULL ? (size_t) (eq - *e) : 0;

        if (n < sizeof(var) && n > sizeof("SHOP_WAREHOUSE__DATABASE") - 1
            && strncmp(*e, "SHOP_WAREHOUSE_", 15) == 0
            && strncmp(eq - 9, "_DATABASE", 9) == 0) {
            memcpy(var, *e, n);
            var[n] = '\0';
            if (fcgi_config_dsn(var, eq + 1) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* The check names the setting ("base_path: ..."); the operator set a
 * variable, so name that too. */
static void
fcgi_config_complain(const char *err)
{
    const shop_setting *d = NULL;
    char name[64];
    size_t n = strcspn(err, ":");

    if (n < sizeof(name)) {
        memcpy(name, err, n);
        name[n] = '\0';
        d = shop_setting_by_name(name);
    }
    if (d != NULL && d->env != NULL && strstr(err, d->env) == NULL) {
        fprintf(stderr, FCGI_PROG ": %s: %s\n", d->env, err);
    } else {
        fprintf(stderr, FCGI_PROG ": %s\n", err);
    }
}

int
fcgi_config_load(shop_settings *s, int read_secrets)
{
    char err[256];
    const char *v;

    shop_settings_defaults(s);

    for (size_t i = 0; i < shop_setting_count; i++) {
        const shop_setting *d = &shop_setting_table[i];

        if (!(d->scope & SHOP_SET_FCGI) || d->env == NULL) {
            continue;
        }
        v = getenv(d->env);
        if (v == NULL) {
            continue;
        }
        if (shop_setting_set(s, d, v, strlen(v), err, sizeof(err)) != 0) {
            fprintf(stderr, FCGI_PROG ": %s: %s\n", d->env, err);
            return -1;
        }
    }

    if (shop_settings_check(s, SHOP_SET_FCGI, err, sizeof(err)) != 0) {
        fcgi_config_complain(err);
        return -1;
    }
    if (fcgi_config_dsn("SHOP_DATABASE_URL", s->database) != 0
        || fcgi_config_dsn("SHOP_READ_DATABASE_URL", s->read_database) != 0
        || fcgi_config_warehouse_dsns() != 0) {
        return -1;
    }

    if (!read_secrets) {
        return 0;
    }
    if (s->admin_token_file != NULL && s->admin_token_file[0] != '\0'
        && fcgi_config_secret("SHOP_ADMIN_TOKEN_FILE", s->admin_token_file,
                              &s->admin_token, &s->admin_token_len) != 0)
    {
        return -1;
    }
    if (s->webhook_secret_file != NULL && s->webhook_secret_file[0] != '\0'
        && fcgi_config_secret("SHOP_WEBHOOK_SECRET_FILE", s->webhook_secret_file,
                              &s->webhook_secret, &s->webhook_secret_len) != 0)
    {
        return -1;
    }
    return 0;
}

void
fcgi_config_release(shop_settings *s)
{
    for (int i = 0; i < fcgi_nsecrets; i++) {
        explicit_bzero(fcgi_secrets[i].data, fcgi_secrets[i].size);
        free(fcgi_secrets[i].data);
    }
    fcgi_nsecrets = 0;
    s->admin_token = s->webhook_secret = NULL;
    s->admin_token_len = s->webhook_secret_len = 0;
}

void
fcgi_config_print(void)
{
    for (size_t i = 0; i < shop_setting_count; i++) {
        const shop_setting *d = &shop_setting_table[i];
        char limits[64];

        if (!(d->scope & SHOP_SET_FCGI) || d->env == NULL) {
            continue;
        }
        switch (d->type) {
        case SHOP_SET_INT:
        case SHOP_SET_SIZE:
        case SHOP_SET_MSEC:
            snprintf(limits, sizeof(limits), ", %lld ... %lld%s", (long long) d->min,
                     (long long) d->max,
                     d->type == SHOP_SET_SIZE ? " bytes" : d->type == SHOP_SET_MSEC ? " ms" : "");
            break;
        case SHOP_SET_STRING:
        case SHOP_SET_PATH:
        case SHOP_SET_FLAG:
            limits[0] = '\0';
            break;
        }
        printf("%-26s %s (%s, default \"%s\"%s)\n    %s\n", d->env, d->name,
               shop_setting_type_name(d->type), d->def, limits, d->help);
    }
}
