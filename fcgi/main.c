/* shop-fcgi: serve (no arguments), migrate, check, settings. */
#include "shop_fcgi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SHOP_VERSION
#define SHOP_VERSION "unknown"
#endif

#ifndef SHOP_SQL_DIR_DEFAULT
#define SHOP_SQL_DIR_DEFAULT "/usr/share/shop/sql"
#endif

static void
fcgi_usage(FILE *f)
{
    fprintf(f,
        "usage: " FCGI_PROG " [command]\n"
        "\n"
        "The shop API as a FastCGI responder.\n"
        "\n"
        "commands:\n"
        "  (none)     serve FastCGI on the socket passed as standard input, e.g.\n"
        "               spawn-fcgi -s /run/shop/fcgi.sock -M 0660 -U www-data -n -- " FCGI_PROG "\n"
        "  migrate    apply the schema migrations NNN_*.sql from $SHOP_SQL_DIR\n"
        "             (default " SHOP_SQL_DIR_DEFAULT ")\n"
        "  check      prepare every SQL statement and check it against the code\n"
        "  settings   list the settings and their environment variables\n"
        "  --help     this text\n"
        "  --version  the version\n"
        "\n"
        "Configuration comes from the environment only; the admin token and the\n"
        "webhook secret come from files the environment names. SIGTERM or SIGINT\n"
        "stop accepting, let requests in flight finish, and exit 0.\n");
}

static int
fcgi_check(const shop_settings *s)
{
    char err[512];
    PGconn *conn;
    int rc;

    conn = fcgi_pg_connect(s->database, FCGI_PROG " check", s->statement_timeout_ms, err,
                           sizeof(err));
    if (conn == NULL) {
        fprintf(stderr, FCGI_PROG " check: %s\n", err);
        return 1;
    }
    rc = fcgi_pg_prepare(conn, err, sizeof(err));
    PQfinish(conn);
    if (rc != 0) {
        fprintf(stderr, FCGI_PROG " check: %s\n", err);
        return 1;
    }
    printf("catalogue ok: %d statements\n", (int) SHOP_STMT_COUNT);
    return 0;
}

int
main(int argc, char **argv)
{
    shop_settings settings;
    const char *cmd = argc > 1 ? argv[1] : NULL;
    const char *dir;
    int rc;

    if (argc > 2) {
        fcgi_usage(stderr);
        return 2;
    }

    if (cmd == NULL) {
        if (fcgi_config_load(&settings, 1) != 0) {
            fcgi_config_release(&settings);
            return 2;
        }
        rc = fcgi_serve(&settings);
        fcgi_config_release(&settings);
        return rc;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fcgi_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf(FCGI_PROG " " SHOP_VERSION "\n");
        return 0;
    }
    if (strcmp(cmd, "settings") == 0) {
        fcgi_config_print();
        return 0;
    }
    if (strcmp(cmd, "migrate") == 0) {
        if (fcgi_config_load(&settings, 0) != 0) {
            return 2;
        }
        dir = getenv("SHOP_SQL_DIR");
        return fcgi_migrate(&settings, dir != NULL && dir[0] != '\0' ? dir : SHOP_SQL_DIR_DEFAULT);
    }
    if (strcmp(cmd, "check") == 0) {
        if (fcgi_config_load(&settings, 0) != 0) {
            return 2;
        }
        return fcgi_check(&settings);
    }

    fprintf(stderr, FCGI_PROG ": unknown command \"%s\"\n\n", cmd);
    fcgi_usage(stderr);
    return 2;
}
