#!/bin/bash
# tests/fanout/run.sh: the stock check fan-out tests (fanout.py) on a shop of
# their own: a throwaway PostgreSQL, two shop-fcgi (stock deadline 250 ms and
# 1 s, with warehouse targets the test controls), nginx in front. TAP.
#
#   SHOP_BUILDDIR=/path/to/build tests/fanout/run.sh
#
# Everything started here is stopped here, by PID.
set -u -o pipefail
SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHOP_BUILDDIR=${SHOP_BUILDDIR:-$SHOP_SRCDIR}
. "$SHOP_SRCDIR/tests/lib.sh"

W=$(mktemp -d /tmp/shop-fanout.XXXXXX)
chmod 755 "$W"
A_PID= B_PID=
cleanup() {
    shop_nginx_stop "$W/ngx"
    [ -n "$A_PID" ] && shop_fcgi_stop "$A_PID"
    [ -n "$B_PID" ] && shop_fcgi_stop "$B_PID"
    shop_pg_stop "$W/pg"
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; else shop_say "kept $W"; fi
}
trap cleanup EXIT
bail() { echo "Bail out! $*"; exit 1; }

read -r PG_PORT A_PORT B_PORT HANG_PORT CLOSED_PORT <<<"$(shop_free_ports 5 | tr '\n' ' ')"
shop_pg_start "$W/pg" "$PG_PORT" "$W/pg/run" || bail "PostgreSQL did not start"
shop_createdb fanout && shop_migrate fanout >/dev/null || bail "migration failed"
shop_write_secret "$W/token" || bail "token"
DSN="host=$SHOP_PG_SOCKDIR port=$PG_PORT user=shop dbname=fanout"
TARGETS=(
    "SHOP_WAREHOUSE_FT_HANG_DATABASE=hostaddr=127.0.0.1 port=$HANG_PORT user=x dbname=x sslmode=disable gssencmode=disable"
    "SHOP_WAREHOUSE_FT_CLOSED_DATABASE=hostaddr=127.0.0.1 port=$CLOSED_PORT user=x dbname=x sslmode=disable gssencmode=disable"
)
shop_fcgi_start "$W/a.sock" "$W/a.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
    SHOP_STOCK_DEADLINE_MS=250 "${TARGETS[@]}" || bail "shop-fcgi (250 ms) did not start"
A_PID=$SHOP_FCGI_PID
shop_fcgi_start "$W/b.sock" "$W/b.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
    SHOP_STOCK_DEADLINE_MS=1000 "${TARGETS[@]}" || bail "shop-fcgi (1 s) did not start"
B_PID=$SHOP_FCGI_PID

mkdir -p "$W/ngx/logs" "$W/ngx/tmp"
cat >"$W/ngx/nginx.conf" <<CONF
worker_processes 1;
pid $W/ngx/nginx.pid;
error_log $W/ngx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $W/ngx/tmp/body; proxy_temp_path $W/ngx/tmp/proxy;
    fastcgi_temp_path $W/ngx/tmp/fastcgi; uwsgi_temp_path $W/ngx/tmp/uwsgi; scgi_temp_path $W/ngx/tmp/scgi;
    server { listen 127.0.0.1:$A_PORT;
        location / { include /etc/nginx/fastcgi_params; fastcgi_pass unix:$W/a.sock; } }
    server { listen 127.0.0.1:$B_PORT;
        location / { include /etc/nginx/fastcgi_params; fastcgi_pass unix:$W/b.sock; } }
}
CONF
shop_nginx_start "$W/ngx" || bail "nginx did not start"
shop_wait_http "http://127.0.0.1:$A_PORT/healthz" 10 || bail "no answer"

rc=0
python3 "$SHOP_SRCDIR/tests/fanout/fanout.py" --url "http://127.0.0.1:$A_PORT" --dsn "$DSN" \
    --token-file "$W/token" --hang-port "$HANG_PORT" --closed-port "$CLOSED_PORT" \
    --deadline-ms 250 --pid "$A_PID" --shops 2 | sed '/^1\.\./d' >"$W/a.tap" || rc=1
python3 "$SHOP_SRCDIR/tests/fanout/fanout.py" --url "http://127.0.0.1:$B_PORT" --dsn "$DSN" \
    --token-file "$W/token" --hang-port "$HANG_PORT" --closed-port "$CLOSED_PORT" \
    --deadline-ms 1000 --only latency | sed '/^1\.\./d' >"$W/b.tap" || rc=1

# One TAP stream: the two runs renumbered, then the sanitizer verdict.
awk '/^(not )?ok [0-9]+/ { n++; sub(/ok [0-9]+/, "ok " n) } { print } END { print n > "/dev/stderr" }' \
    "$W/a.tap" "$W/b.tap" 2>"$W/count"
n=$(cat "$W/count")
shop_fcgi_stop "$A_PID"; A_PID=
shop_fcgi_stop "$B_PID"; B_PID=
n=$((n + 1))
if grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/a.log" "$W/b.log"; then
    echo "not ok $n - shop-fcgi logs are free of sanitizer reports"; rc=1
    grep -h -A20 "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/a.log" "$W/b.log" | head -60 | sed 's/^/#   /'
else
    echo "ok $n - shop-fcgi logs are free of sanitizer reports"
fi
echo "1..$n"
exit $rc
