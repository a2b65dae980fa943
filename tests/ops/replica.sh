#!/usr/bin/env bash
# tests/ops/replica.sh: scale-out reads (issue 7). A primary and a real
# streaming replica (pg_basebackup -R, a second PostgreSQL on its own port);
# shop-fcgi with SHOP_READ_DATABASE_URL and the module with
# shop_read_database pointing at the replica (tests/ops/replica.py): with the
# replica's replay paused, writes and order reads still work (the primary),
# product and warehouse reads and the stock check show the replica's older
# data; replay resumed, they catch up. A front-end whose build does not know
# the setting yet is skipped, saying so. About 10 s. TAP; `make check` runs it.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`);
# SHOP_KEEP_TMP=1 keeps the temp dir. Logs: BUILD/tests/ops/replica-logs.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

ops_init replica
ops_pg_up 200
PRIMARY_SOCK=$SHOP_PG_SOCKDIR PRIMARY_PORT=$PG_PORT PRIMARY_DIR=$SHOP_PG_DIR

# The replica: a base backup of the primary with the standby settings (-R),
# started on a port of its own.
R=$T/replica
mkdir -p "$R" && chmod 755 "$R"
[ "$(id -u)" = 0 ] && chown "$(shop_pg_osuser):" "$R"
t0=$(date +%s%N)
if ! (cd "$R" && shop_as_pg "$(shop_pgbin)/pg_basebackup" -D "$R/data" -R -X stream -c fast --no-sync \
          -h "$PRIMARY_SOCK" -p "$PRIMARY_PORT" -U shop) >"$T/basebackup.log" 2>&1; then
    bail "pg_basebackup failed" "$(cat "$T/basebackup.log")"
fi
read -r RPORT <<<"$(shop_free_ports 1)"
shop_pg_start "$R" "$RPORT" "$R/run" 2>"$T/replica-start.err" || bail "the replica did not start" "$(cat "$T/replica-start.err")"
PG_DIRS+=("$R")
REPLICA_URL=$(shop_pg_url shop)
REPLICA_DSN="host=$SHOP_PG_SOCKDIR port=$RPORT user=shop dbname=shop"
# tests/lib.sh's PostgreSQL variables: the primary's again
SHOP_PG_DIR=$PRIMARY_DIR SHOP_PG_SOCKDIR=$PRIMARY_SOCK SHOP_PG_PORT=$PRIMARY_PORT
export PGHOST=$PRIMARY_SOCK PGPORT=$PRIMARY_PORT
tap_ok "setup: primary on :$PRIMARY_PORT, streaming replica on :$RPORT (pg_basebackup -R and start: $(( ($(date +%s%N) - t0) / 1000000 )) ms)"

ops_fcgi FCGI "$T/fcgi.sock" "$T/shop-fcgi.log" SHOP_READ_DATABASE_URL="$REPLICA_URL"
read -r MPORT FPORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
FRONTS=(--front "fcgi=http://127.0.0.1:$FPORT")
# The module: shop_read_database, if this build of it has the directive
# (nginx -t says so); else the module is skipped and serves from the primary.
ops_both "$T/nginx" "$MPORT" "$FPORT" "$T/fcgi.sock" "    shop_read_database \"$REPLICA_URL\";"
if "$SHOP_NGINX" -t -q -p "$T/nginx" -c "$T/nginx/nginx.conf" >"$T/nginx-t.out" 2>&1; then
    FRONTS+=(--front "module=http://127.0.0.1:$MPORT")
elif grep -q 'unknown directive "shop_read_database"' "$T/nginx-t.out"; then
    ops_both "$T/nginx" "$MPORT" "$FPORT" "$T/fcgi.sock"
    FRONTS+=(--skip "module=this build of the module has no shop_read_database directive yet (nginx -t: unknown directive)")
else
    bail "nginx -t failed" "$(cat "$T/nginx-t.out")"
fi
ops_nginx "$T/nginx"
ops_ready "http://127.0.0.1:$MPORT" "$NGINX_PID"
ops_ready "http://127.0.0.1:$FPORT" "$FCGI"

ops_py replica.py "${FRONTS[@]}" --dsn "$DSN" --replica-dsn "$REPLICA_DSN" --token-file "$T/admin.token"

ops_nginx_alerts "$T/nginx"
ops_sanitizers
ops_done
