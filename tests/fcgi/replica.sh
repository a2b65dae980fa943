#!/bin/bash
# tests/fcgi/replica.sh: shop-fcgi with a read replica
# (SHOP_READ_DATABASE_URL), replica.py on its socket. TAP.
#
#   SHOP_BUILDDIR=/path/to/build tests/fcgi/replica.sh
#
# 1. standby: a primary cluster and a streaming hot standby of it
#    (pg_basebackup -R, about 3 s); shop-fcgi reads products, warehouses
#    and stock from the standby, writes and orders go to the primary
#    (pg_stat_activity, and the standby's replay paused).
# 2. down: the read database does not exist yet (503 for reads, writes
#    fine), then it is created: reads recover without a restart.
#
# Everything started here is stopped here, by PID.
set -u -o pipefail
SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHOP_BUILDDIR=${SHOP_BUILDDIR:-$SHOP_SRCDIR}
. "$SHOP_SRCDIR/tests/lib.sh"

W=$(mktemp -d /tmp/shop-replica.XXXXXX)
chmod 755 "$W"
PIDS=() STANDBY=""
cleanup() {
    local p
    for p in "${PIDS[@]}"; do shop_fcgi_stop "$p"; done
    [ -n "$STANDBY" ] && standby_stop
    shop_pg_stop "$W/pg"
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; else shop_say "kept $W"; fi
}
trap cleanup EXIT
bail() { echo "Bail out! $*"; exit 1; }
command -v spawn-fcgi >/dev/null || bail "spawn-fcgi is not installed"

n=0 rc=0

read -r PG_PORT SB_PORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
shop_pg_start "$W/pg" "$PG_PORT" "$W/pg/run" || bail "PostgreSQL did not start"
shop_createdb shop && shop_migrate shop >/dev/null || bail "migration failed"
shop_seed shop 50 >/dev/null || bail "seed failed"
shop_write_secret "$W/token" || bail "token"
PRIMARY="host=$SHOP_PG_SOCKDIR port=$PG_PORT user=shop dbname=shop"

# ---- the standby: pg_basebackup of the primary, replaying its WAL --------
BIN=$(shop_pgbin) || bail "no PostgreSQL binaries"
standby_stop() {
    local pid
    pid=$(head -n 1 "$W/sb/data/postmaster.pid" 2>/dev/null) || return 0
    (cd "$W" && shop_as_pg "$BIN/pg_ctl" -D "$W/sb/data" -m fast -w -t 30 stop) >/dev/null 2>&1 || true
    shop_stop_pid "$pid" INT 15
    STANDBY=""
}
mkdir -p "$W/sb/run"
[ "$(id -u)" = 0 ] && chown "$(shop_pg_osuser):" "$W/sb" "$W/sb/run"
chmod 755 "$W/sb" "$W/sb/run"
(cd "$W" && shop_as_pg "$BIN/pg_basebackup" -h "$SHOP_PG_SOCKDIR" -p "$PG_PORT" -U shop \
    -D "$W/sb/data" -R -X stream -c fast) >"$W/basebackup.log" 2>&1 || bail "pg_basebackup failed"
# max_connections as the primary's (a hot standby needs at least as many).
(cd "$W" && shop_as_pg "$BIN/pg_ctl" -D "$W/sb/data" -l "$W/sb/server.log" -w -t 30 \
    -o "-p $SB_PORT -k $W/sb/run -c listen_addresses= -c hot_standby=on -c max_connections=200" \
    start) >"$W/sb-pg_ctl.log" 2>&1 || { tail -n 5 "$W/sb/server.log" | sed 's/^/#   /'; bail "the standby did not start"; }
STANDBY=1
REPLICA="host=$W/sb/run port=$SB_PORT user=shop dbname=shop"

shop_fcgi_start "$W/a.sock" "$W/a.log" SHOP_DATABASE_URL="$PRIMARY" \
    SHOP_READ_DATABASE_URL="$REPLICA" SHOP_ADMIN_TOKEN_FILE="$W/token" || bail "shop-fcgi did not start"
A=$SHOP_FCGI_PID; PIDS+=("$A")
python3 "$SHOP_SRCDIR/tests/fcgi/replica.py" standby --socket "$W/a.sock" --token-file "$W/token" \
    --primary "$PRIMARY" --replica "$REPLICA" >"$W/standby.tap"
shop_tap_merge "$W/standby.tap" standby
shop_fcgi_stop "$A"; PIDS=()
standby_stop

# ---- down, then up --------------------------------------------------------
LATER="host=$SHOP_PG_SOCKDIR port=$PG_PORT user=shop dbname=later"
shop_fcgi_start "$W/b.sock" "$W/b.log" SHOP_DATABASE_URL="$PRIMARY" \
    SHOP_READ_DATABASE_URL="$LATER" SHOP_ADMIN_TOKEN_FILE="$W/token" || bail "shop-fcgi did not start"
B=$SHOP_FCGI_PID; PIDS+=("$B")
CREATE="bash -c '. \"$SHOP_SRCDIR/tests/lib.sh\"; export SHOP_PG_SOCKDIR=\"$SHOP_PG_SOCKDIR\" SHOP_PG_PORT=$PG_PORT; shop_createdb later && shop_migrate later && shop_seed later 50'"
SHOP_SRCDIR=$SHOP_SRCDIR SHOP_BUILDDIR=$SHOP_BUILDDIR \
python3 "$SHOP_SRCDIR/tests/fcgi/replica.py" down --socket "$W/b.sock" --token-file "$W/token" \
    --primary "$PRIMARY" --log "$W/b.log" --create "$CREATE" >"$W/down.tap"
shop_tap_merge "$W/down.tap" down
shop_fcgi_stop "$B"; PIDS=()

n=$((n + 1))
if grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/a.log" "$W/b.log"; then
    echo "not ok $n - shop-fcgi logs are free of sanitizer reports"; rc=1
    grep -h -A20 "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/a.log" "$W/b.log" | head -40 | sed 's/^/#   /'
else
    echo "ok $n - shop-fcgi logs are free of sanitizer reports"
fi
echo "1..$n"
exit "$rc"
