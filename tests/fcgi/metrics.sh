#!/bin/bash
# tests/fcgi/metrics.sh: GET /metrics of two shop-fcgi processes (metrics.py,
# FastCGI straight to each socket): each labels its figures with its pid and
# counts exactly what it answered; the admin token, or SHOP_METRICS_PUBLIC.
# TAP.
#
#   SHOP_BUILDDIR=/path/to/build tests/fcgi/metrics.sh
#
# Everything started here is stopped here, by PID.
set -u -o pipefail
SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHOP_BUILDDIR=${SHOP_BUILDDIR:-$SHOP_SRCDIR}
. "$SHOP_SRCDIR/tests/lib.sh"

W=$(mktemp -d /tmp/shop-metrics.XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do shop_fcgi_stop "$p"; done
    shop_pg_stop "$W/pg"
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; else shop_say "kept $W"; fi
}
trap cleanup EXIT
bail() { echo "Bail out! $*"; exit 1; }
command -v spawn-fcgi >/dev/null || bail "spawn-fcgi is not installed"

read -r PG_PORT <<<"$(shop_free_ports 1)"
shop_pg_start "$W/pg" "$PG_PORT" "$W/pg/run" || bail "PostgreSQL did not start"
shop_createdb metrics && shop_migrate metrics >/dev/null || bail "migration failed"
shop_seed metrics 50 >/dev/null || bail "seed failed"
shop_write_secret "$W/token" || bail "token"
DSN="host=$SHOP_PG_SOCKDIR port=$PG_PORT user=shop dbname=metrics"

shop_fcgi_start "$W/a.sock" "$W/a.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
    || bail "shop-fcgi a did not start"
A=$SHOP_FCGI_PID; PIDS+=("$A")
# B: warehouse north in "another" database (the same one, spelled apart).
shop_fcgi_start "$W/b.sock" "$W/b.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
    SHOP_METRICS_PUBLIC=on SHOP_WAREHOUSE_NORTH_DATABASE="$DSN connect_timeout=3" \
    || bail "shop-fcgi b did not start"
B=$SHOP_FCGI_PID; PIDS+=("$B")

rc=0
python3 "$SHOP_SRCDIR/tests/fcgi/metrics.py" --a "$W/a.sock" --pid-a "$A" --b "$W/b.sock" \
    --pid-b "$B" --token-file "$W/token" --b-public --b-warehouse north >"$W/metrics.tap" || rc=1
n=$(sed -n 's/^1\.\.//p' "$W/metrics.tap")
grep -v '^1\.\.' "$W/metrics.tap"

for p in "${PIDS[@]}"; do shop_fcgi_stop "$p"; done; PIDS=()
n=$((${n:-0} + 1))
if grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/a.log" "$W/b.log"; then
    echo "not ok $n - shop-fcgi logs are free of sanitizer reports"; rc=1
    grep -h -A20 "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/a.log" "$W/b.log" | head -40 | sed 's/^/#   /'
else
    echo "ok $n - shop-fcgi logs are free of sanitizer reports"
fi
# Operational lines are JSON with a level; none carries the token.
n=$((n + 1))
if grep -F -q -f <(tr -d '\n' <"$W/token") "$W/a.log" "$W/b.log"; then
    echo "not ok $n - the admin token appears in no log line"; rc=1
else
    echo "ok $n - the admin token appears in no log line"
fi
echo "1..$n"
exit "$rc"
