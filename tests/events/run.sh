#!/bin/bash
# tests/events/run.sh: the SSE event tests (events.py) on a shop of their
# own: a throwaway PostgreSQL, shop-fcgi (SHOP_MAX_STREAMS=8), nginx with
# the /events settings (fastcgi_buffering off, long read timeout); then a
# clean stop under open streams (SIGTERM). TAP.
#
#   SHOP_BUILDDIR=/path/to/build tests/events/run.sh [--heartbeat]
#
# Everything started here is stopped here, by PID.
set -u -o pipefail
SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHOP_BUILDDIR=${SHOP_BUILDDIR:-$SHOP_SRCDIR}
. "$SHOP_SRCDIR/tests/lib.sh"

W=$(mktemp -d /tmp/shop-events.XXXXXX)
chmod 755 "$W"
F_PID= C_PIDS=()
cleanup() {
    local p
    for p in "${C_PIDS[@]}"; do shop_stop_pid "$p" TERM 2; done
    shop_nginx_stop "$W/ngx"
    [ -n "$F_PID" ] && shop_fcgi_stop "$F_PID"
    shop_pg_stop "$W/pg"
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; else shop_say "kept $W"; fi
}
trap cleanup EXIT
bail() { echo "Bail out! $*"; exit 1; }

read -r PG_PORT HTTP_PORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
shop_pg_start "$W/pg" "$PG_PORT" "$W/pg/run" || bail "PostgreSQL did not start"
shop_createdb events && shop_migrate events >/dev/null || bail "migration failed"
shop_seed events 50 >/dev/null || bail "seed failed"
shop_write_secret "$W/token" || bail "token"
DSN="host=$SHOP_PG_SOCKDIR port=$PG_PORT user=shop dbname=events"
shop_fcgi_start "$W/fcgi.sock" "$W/fcgi.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
    SHOP_MAX_STREAMS=8 || bail "shop-fcgi did not start"
F_PID=$SHOP_FCGI_PID

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
    server { listen 127.0.0.1:$HTTP_PORT;
        location = /events {
            include /etc/nginx/fastcgi_params;
            fastcgi_pass unix:$W/fcgi.sock;
            fastcgi_buffering off;
            fastcgi_read_timeout 1h;
            gzip off;
        }
        location / { include /etc/nginx/fastcgi_params; fastcgi_pass unix:$W/fcgi.sock; }
    }
}
CONF
shop_nginx_start "$W/ngx" || bail "nginx did not start"
shop_wait_http "http://127.0.0.1:$HTTP_PORT/healthz" 10 || bail "no answer"

# The database restart events.py asks for: same directory, port and socket.
RESTART="bash -c '. \"$SHOP_SRCDIR/tests/lib.sh\"; shop_pg_stop \"$W/pg\" && shop_pg_start \"$W/pg\" $PG_PORT \"$W/pg/run\"' >/dev/null 2>&1"

rc=0
python3 "$SHOP_SRCDIR/tests/events/events.py" --url "http://127.0.0.1:$HTTP_PORT" --dsn "$DSN" \
    --token-file "$W/token" --pid "$F_PID" --max-streams 8 --restart-cmd "$RESTART" \
    --log "$W/fcgi.log" "$@" | sed '/^1\.\./d' >"$W/tap" || rc=1
cat "$W/tap"
n=$(grep -cE '^(not )?ok ' "$W/tap")

# SIGTERM with streams open: each ends cleanly (curl sees the end of the
# chunked response: exit 0), shop-fcgi exits 0.
for i in 1 2 3; do
    curl -sN --max-time 20 "http://127.0.0.1:$HTTP_PORT/events" >"$W/term$i.out" 2>&1 &
    C_PIDS+=($!)
done
sleep 1
t0=$(date +%s%N)
kill -TERM "$F_PID"
crc=0
for p in "${C_PIDS[@]}"; do wait "$p" || crc=$?; done
C_PIDS=()
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
n=$((n + 1))
if [ "$crc" = 0 ] && [ "$ms" -lt 5000 ]; then
    echo "ok $n - SIGTERM: three open streams end cleanly in ${ms} ms"
else
    echo "not ok $n - SIGTERM: three open streams end cleanly (curl exit $crc after ${ms} ms)"; rc=1
fi
frc=0
shop_wait_gone "$F_PID" 10 || frc=1
n=$((n + 1))
if [ "$frc" = 0 ] && grep -q '"msg":"stopped"' "$W/fcgi.log"; then
    echo "ok $n - SIGTERM: shop-fcgi stopped"
else
    echo "not ok $n - SIGTERM: shop-fcgi stopped"; rc=1
fi
F_PID=
n=$((n + 1))
if grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/fcgi.log"; then
    echo "not ok $n - shop-fcgi log is free of sanitizer reports"; rc=1
    grep -h -A20 "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/fcgi.log" | head -60 | sed 's/^/#   /'
else
    echo "ok $n - shop-fcgi log is free of sanitizer reports"
fi
echo "1..$n"
exit $rc
