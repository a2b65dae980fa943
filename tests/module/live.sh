#!/usr/bin/env bash
# tests/module/live.sh: the nginx module's live tests as one TAP test of
# `make check`. Sets up, once, a PostgreSQL of its own (random free port, a
# temp dir under /tmp), migrated and seeded, and nginx with the module
# (worker_processes 1, a pool of 2, and a /tiny/ location with a pool of 1
# and a queue of 2 for the exhaustion test); then runs, in this order,
#
#   tests/module/nonblocking.sh   the worker never waits for the database
#   tests/module/abort.sh         clients that go away mid-query
#   tests/module/exhaustion.sh    more slow requests than pool + queue hold
#   tests/module/restart.sh       PostgreSQL restarts under nginx (last: it
#                                 stops and starts the database)
#
# each against URL PGENV NGINX_PREFIX (tests/module/lib.sh), their TAP
# renumbered into one stream; a script that dies, bails out or runs fewer
# cases than it planned is a failure. Everything started here is stopped by
# PID on exit. SHOP_KEEP_TMP=1 keeps the temp dir.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`).
set -u

SRC=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SHOP_BUILDDIR:-$SRC/var/build}
export SHOP_SRCDIR=$SRC SHOP_BUILDDIR=$BUILD
# shellcheck source=SCRIPTDIR/../lib.sh
. "$SRC/tests/lib.sh"

N=0 FAILED=0
tap_ok() { N=$((N + 1)); printf 'ok %d - %s\n' "$N" "$1"; }
tap_not_ok() {
    N=$((N + 1)); FAILED=$((FAILED + 1))
    printf 'not ok %d - %s\n' "$N" "$1"; shift
    local l
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done
}
diag() { printf '# %s\n' "$*"; }

T=$(mktemp -d /tmp/shop-live.XXXXXX) || { echo "Bail out! mktemp failed"; exit 1; }
chmod 755 "$T"
NGINX_PREFIX=$T/nginx
KEEP_LOGS=$BUILD/tests/module/live-logs

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    set +e
    shop_nginx_stop "$NGINX_PREFIX"
    [ -n "${SHOP_PG_DIR:-}" ] && shop_pg_stop "$SHOP_PG_DIR"
    if mkdir -p "$KEEP_LOGS" 2>/dev/null; then
        rm -f "$KEEP_LOGS"/*
        cp "$NGINX_PREFIX/logs/error.log" "$NGINX_PREFIX/logs/shop-module.log" "$T/pg/server.log" \
           "$T/pg/data/shop-restart.log" "$T"/*.tap "$KEEP_LOGS/" 2>/dev/null
    fi
    if [ "${SHOP_KEEP_TMP:-0}" = 1 ]; then diag "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bail() {
    printf '# %s\n' "$@"
    shop_tail_logs 30 "$NGINX_PREFIX/logs/error.log" "$T/pg/server.log"
    echo "Bail out! $1"
    exit 1
}

[ -r "$(shop_module_so)" ] || bail "the module is not built: $(shop_module_so)"
[ -x "$(shop_fcgi_bin)" ] || bail "shop-fcgi (for migrate) is not built: $(shop_fcgi_bin)"

# ------------------------------------------------------------------ setup

mapfile -t PORTS < <(shop_free_ports 2)
PG_PORT=${PORTS[0]} HTTP_PORT=${PORTS[1]}
URL=http://127.0.0.1:$HTTP_PORT

shop_pg_start "$T/pg" "$PG_PORT" "$T/pg/run" 2>"$T/pg-start.err" || bail "PostgreSQL did not start" "$(cat "$T/pg-start.err")"
out=$( { shop_createdb shop && shop_migrate shop && shop_seed shop 50; } 2>&1 ) || bail "database set-up failed" "$out"
shop_write_secret "$T/admin.token" && shop_write_secret "$T/webhook.secret" || bail "cannot write the token files"

{
    shop_nginx_prepare "$NGINX_PREFIX" WORKER_PROCESSES=1 ERROR_LOG_LEVEL=info ACCESS_LOG=off &&
    shop_nginx_add_module "$NGINX_PREFIX" module \
        LISTEN="127.0.0.1:$HTTP_PORT" DATABASE="$(shop_pg_url shop)" \
        ADMIN_TOKEN_FILE="$T/admin.token" WEBHOOK_SECRET_FILE="$T/webhook.secret" \
        BODY_LIMIT=64k POOL_SIZE=2 \
        LOCATIONS="    location /tiny/ { shop; shop_pool_size 1; shop_pool_queue 2 500ms; }   # exhaustion.sh"
} 2>"$T/nginx-conf.err" || bail "nginx configuration" "$(cat "$T/nginx-conf.err")"
shop_nginx_start "$NGINX_PREFIX" 2>"$T/nginx-start.err" || bail "nginx did not start" "$(cat "$T/nginx-start.err")"
shop_wait_http "$URL/readyz" 20 "$SHOP_NGINX_PID" 2>"$T/wait.err" || bail "the module does not answer" "$(cat "$T/wait.err")"
tap_ok "setup: PostgreSQL on 127.0.0.1:$PG_PORT, nginx (pid $SHOP_NGINX_PID, 1 worker) with the module at $URL"

PGENV=$T/pgenv
cat >"$PGENV" <<EOF
PGHOST=$SHOP_PG_SOCKDIR
PGPORT=$SHOP_PG_PORT
PGUSER=shop
PGDATABASE=shop
PGDATA=$SHOP_PG_DIR/data
SHOP_ADMIN_TOKEN_FILE=$T/admin.token
EOF

# ------------------------------------------------------------------ tests

# run_live NAME URL [VAR=VALUE...]: tests/module/NAME.sh URL PGENV PREFIX,
# its TAP renumbered into ours with "NAME: " before each description.
run_live() {
    local name=$1 url=$2 line planned="" got=0 bailed="" rc; shift 2
    env "$@" timeout 180 bash "$SRC/tests/module/$name.sh" "$url" "$PGENV" "$NGINX_PREFIX" >"$T/$name.tap" 2>&1
    rc=$?
    while IFS= read -r line; do
        case "$line" in
            "ok "*)      got=$((got + 1)); N=$((N + 1))
                         printf 'ok %d - %s: %s\n' "$N" "$name" "$(sed -E 's/^ok [0-9]+( - )?//' <<<"$line")" ;;
            "not ok "*)  got=$((got + 1)); N=$((N + 1)); FAILED=$((FAILED + 1))
                         printf 'not ok %d - %s: %s\n' "$N" "$name" "$(sed -E 's/^not ok [0-9]+( - )?//' <<<"$line")" ;;
            1..*)        planned=${line#1..} ;;
            "Bail out!"*) bailed=$line ;;
            "#"*)        printf '%s\n' "$line" ;;
            *)           printf '#   %s\n' "$line" ;;
        esac
    done <"$T/$name.tap"
    if [ -n "$bailed" ] || [ -z "$planned" ] || [ "$got" != "$planned" ]; then
        tap_not_ok "$name: ran to completion (${got} of ${planned:-?} planned, exit $rc${bailed:+, $bailed})"
    fi
}

run_live nonblocking "$URL"
run_live abort "$URL"
run_live exhaustion "$URL/tiny" SHOP_POOL_SIZE=1 SHOP_POOL_QUEUE=2
run_live restart "$URL"

# -------------------------------------------------------------- the end

out=$(grep -E '\[(alert|crit|emerg)\]|exited on signal' "$NGINX_PREFIX/logs/error.log" 2>/dev/null | head -n 20)
if [ -z "$out" ]; then tap_ok "logs: no alert, crit or emerg in nginx's error log, no worker crashed"
else tap_not_ok "logs: no alert, crit or emerg in nginx's error log, no worker crashed" "$out"; fi

if shop_alive "$SHOP_NGINX_PID"; then tap_ok "nginx (pid $SHOP_NGINX_PID) still runs after all of it"
else tap_not_ok "nginx (pid $SHOP_NGINX_PID) still runs after all of it"; fi

[ "$FAILED" -gt 0 ] && { shop_tail_logs 40 "$NGINX_PREFIX/logs/error.log"; diag "full logs: $KEEP_LOGS"; }
echo "1..$N"
exit 0
