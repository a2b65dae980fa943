/* `shop-fcgi migrate`: applies sql/NNN_name.sql in numeric order, each file
 * in its own transaction, recorded with its SHA-256 in
 * public.shop_schema_migrations. An advisory lock serialises concurrent
 * runs; a file changed after it was applied is an error, not a re-run. */
#include "shop_fcgi.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* pg_advisory_lock key: "shopmigr" in ASCII, unlikely to meet another's. */
#define FCGI_MIGRATE_LOCK  "8316019240602265458"

typedef struct {
    long  version;
    char *name;
} fcgi_migration;

static int
fcgi_migration_cmp(const void *a, const void *b)
{
    const fcgi_migration *x = a, *y = b;

    return (x->version > y->version) - (x->version < y->version);
}

/* NNN_something.sql: returns the version, or -1 for other files. */
static long
fcgi_migration_version(const char *name)
{
    size_t len = strlen(name), digits = strspn(name, "0123456789");
    char *end;
    long v;

    if (digits == 0 || digits > 9 || name[digits] != '_' || len < digits + 5
        || strcmp(name + len - 4, ".sql") != 0)
    {
        return -1;
    }
    v = strtol(name, &end, 10);
    return end == name + digits ? v : -1;
}

static int
fcgi_migration_list(const char *dir, fcgi_migration **out, size_t *count)
{
    fcgi_migration *list = NULL, *grown;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *d;

    d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, FCGI_PROG " migrate: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        long v = fcgi_migration_version(de->d_name);

        if (v < 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            grown = realloc(list, cap * sizeof(*list));
            if (grown == NULL) {
                break;
            }
            list = grown;
        }
        list[n].version = v;
        list[n].name = strdup(de->d_name);
        if (list[n].name == NULL) {
            break;
        }
        n++;
    }
    closedir(d);
    if (de != NULL) {
        fprintf(stderr, FCGI_PROG " migrate: out of memory\n");
        goto fail;
    }

    if (n > 1) {
        qsort(list, n, sizeof(*list), fcgi_migration_cmp);
    }
    for (size_t i = 1; i < n; i++) {
        if (list[i].version == list[i - 1].version) {
            fprintf(stderr, FCGI_PROG " migrate: %s and %s have the same version %ld\n",
                    list[i - 1].name, list[i].name, list[i].version);
            goto fail;
        }
    }
    *out = list;
    *count = n;
    return 0;

fail:
    for (size_t i = 0; i < n; i++) {
        free(list[i].name);
    }
    free(list);
    return -1;
}

/* Reads a whole SQL file; NUL bytes cannot go to the server as text. */
static char *
fcgi_migration_read(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    char *data = NULL, *grown;
    size_t n = 0, cap = 0, got;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, FCGI_PROG " migrate: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    for ( ;; ) {
        if (cap - n < 8192) {
            cap = cap ? cap * 2 : 65536;
            grown = realloc(data, cap);
            if (grown == NULL) {
                fprintf(stderr, FCGI_PROG " migrate: out of memory\n");
                goto fail;
            }
            data = grown;
        }
        got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, FCGI_PROG " migrate: cannot read %s\n", path);
        goto fail;
    }
    fclose(f);
    data[n] = '\0';
    if (strlen(data) != n) {
        fprintf(stderr, FCGI_PROG " migrate: %s contains a NUL byte\n", path);
        free(data);
        return NULL;
    }
    *len = n;
    return data;

fail:
    fclose(f);
    free(data);
    return NULL;
}

static int
fcgi_sha256_hex(const char *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        return -1;
    }
    for (size_t i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

/* Runs a command that returns no rows; prints the server's message on error. */
static int
fcgi_migrate_exec(PGconn *conn, const char *what, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, FCGI_PROG " migrate: %s: %s", what,
                res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

static int
fcgi_migration_apply(PGconn *conn, const fcgi_migration *m, const char *sql, const char *sum)
{
    char version[24];
    const char *values[3];
    PGresult *res;

    if (fcgi_migrate_exec(conn, m->name, "BEGIN") != 0) {
        return -1;
    }
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* The server's message shows the line of the file (LINE n:). */
        fprintf(stderr, FCGI_PROG " migrate: %s: %s", m->name,
                res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    PQclear(res);

    snprintf(version, sizeof(version), "%ld", m->version);
    values[0] = version;
    values[1] = m->name;
    values[2] = sum;
    res = PQexecParams(conn,
                       "INSERT INTO public.shop_schema_migrations (version, name, checksum)"
                       " VALUES ($1, $2, $3)", 3, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, FCGI_PROG " migrate: %s: recording it failed: %s", m->name,
                PQresultErrorMessage(res));
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    PQclear(res);

    return fcgi_migrate_exec(conn, m->name, "COMMIT");
}

/* The checksum recorded for a version, or NULL when it was never applied. */
static const char *
fcgi_migration_applied(const PGresult *done, long version)
{
    char v[24];

    snprintf(v, sizeof(v), "%ld", version);
    for (int i = 0; i < PQntuples(done); i++) {
        if (strcmp(PQgetvalue(done, i, 0), v) == 0) {
            return PQgetvalue(done, i, 2);
        }
    }
    return NULL;
}

static int
fcgi_migrate_run(PGconn *conn, const char *dir, const fcgi_migration *list, size_t n)
{
    size_t applied = 0, skipped = 0;
    char sum[65];
    PGresult *done;
    int rc = 0;

    done = PQexec(conn, "SELECT version, name, checksum FROM public.shop_schema_migrations"
                        " ORDER BY version");
    if (PQresultStatus(done) != PGRES_TUPLES_OK) {
        fprintf(stderr, FCGI_PROG " migrate: reading shop_schema_migrations: %s",
                PQresultErrorMessage(done));
        PQclear(done);
        return -1;
    }

    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *recorded;
        size_t len;
        char *sql;

        sql = fcgi_migration_read(dir, list[i].name, &len);
        if (sql == NULL) {
            rc = -1;
            break;
        }
        if (fcgi_sha256_hex(sql, len, sum) != 0) {
            fprintf(stderr, FCGI_PROG " migrate: %s: cannot compute its checksum\n",
                    list[i].name);
            free(sql);
            rc = -1;
            break;
        }
        recorded = fcgi_migration_applied(done, list[i].version);
        if (recorded != NULL) {
            if (strcmp(recorded, sum) != 0) {
                fprintf(stderr, FCGI_PROG " migrate: %s was changed after it was applied "
                        "(recorded sha256 %s, the file has %s); add a new migration instead\n",
                        list[i].name, recorded, sum);
                rc = -1;
            }
            skipped++;
        } else if (fcgi_migration_apply(conn, &list[i], sql, sum) == 0) {
            printf("applied %s\n", list[i].name);
            fflush(stdout);
            applied++;
        } else {
            rc = -1;
        }
        free(sql);
    }
    PQclear(done);

    if (rc == 0) {
        printf("migrations: %zu applied, %zu already applied\n", applied, skipped);
    }
    return rc;
}

int
fcgi_migrate(const shop_settings *s, const char *dir)
{
    fcgi_migration *list = NULL;
    char err[512];
    PGconn *conn;
    size_t n = 0;
    int rc;

    if (fcgi_migration_list(dir, &list, &n) != 0) {
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, FCGI_PROG " migrate: no NNN_name.sql files in %s\n", dir);
        free(list);
        return 1;
    }

    /* No statement timeout: a migration may rewrite a big table. */
    conn = fcgi_pg_connect(s->database, FCGI_PROG " migrate", 0, err, sizeof(err));
    if (conn == NULL) {
        fprintf(stderr, FCGI_PROG " migrate: %s\n", err);
        rc = 1;
        goto done;
    }
    /* NOTICEs ("already exists, skipping") are noise here. */
    PQclear(PQexec(conn, "SET client_min_messages = warning"));

    /* Taken before the table exists: two first runs must not race on it.
     * The lock is the session's; closing the connection releases it. */
    if (fcgi_migrate_exec(conn, "lock", "SELECT pg_advisory_lock(" FCGI_MIGRATE_LOCK ")") != 0
        || fcgi_migrate_exec(conn, "shop_schema_migrations",
               "CREATE TABLE IF NOT EXISTS public.shop_schema_migrations ("
               " version integer PRIMARY KEY,"
               " name text NOT NULL,"
               " checksum text NOT NULL,"
               " applied_at timestamptz NOT NULL DEFAULT now())") != 0)
    {
        rc = 1;
    } else {
        rc = fcgi_migrate_run(conn, dir, list, n) == 0 ? 0 : 1;
    }
    PQfinish(conn);

done:
    for (size_t i = 0; i < n; i++) {
        free(list[i].name);
    }
    free(list);
    return rc;
}
