#!/bin/bash
# tests/fcgi/sigterm.sh: shop-fcgi stops without dropping a request. TAP.
#
#   SHOP_BUILDDIR=/path/to/build tests/fcgi/sigterm.sh
#   SIGTERM_SECONDS=8 (the load's length)  SIGTERM_CONNECTIONS=32 (per wrk)
#
# 1. backlog (backlog.py, no web server): SHOP_THREADS=2, both busy with a
#    stock check on a slow warehouse, 6 more requests in the accept backlog,
#    SIGTERM: a new connection is refused, all 8 are answered 200, exit.
# 1b. systemd's socket (socketact.py holds it as systemd does, fd 3 with
#    LISTEN_FDS): SIGTERM leaves it open, requests queued meanwhile are
#    answered by the next process, an idle process stops within a second.
# 2. pair under load: two shop-fcgi (two spawn-fcgi unix sockets) in one
#    nginx upstream (tests/fcgi/pair.server.conf.in: fastcgi_next_upstream
#    error timeout, no keepalive); two wrk at once, GET /products/{id} and
#    POST /stock/check (nginx never retries a POST on another server once
#    it was sent); SIGTERM to one responder a third into the run. Checks:
#    0 non-2xx, 0 socket errors in both, the stopped one exited 0 within
#    10 s and answered requests until then, nginx logged no upstream reset,
#    premature close or timeout (refused connects are expected: the next
#    upstream took them).
#
# Everything started here is stopped here, by PID.
set -u -o pipefail
SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHOP_BUILDDIR=${SHOP_BUILDDIR:-$SHOP_SRCDIR}
. "$SHOP_SRCDIR/tests/lib.sh"

SECONDS_LOAD=${SIGTERM_SECONDS:-8}
CONNS=${SIGTERM_CONNECTIONS:-32}

W=$(mktemp -d /tmp/shop-sigterm.XXXXXX)
chmod 755 "$W"
PIDS=() NGX=""
cleanup() {
    local p
    [ -n "$NGX" ] && shop_nginx_stop "$NGX"
    for p in "${PIDS[@]}"; do shop_fcgi_stop "$p"; done
    shop_pg_stop "$W/pg"
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; else shop_say "kept $W"; fi
}
trap cleanup EXIT
bail() { echo "Bail out! $*"; exit 1; }
for tool in wrk spawn-fcgi curl python3; do
    command -v "$tool" >/dev/null || bail "$tool is not installed"
done

n=0 rc=0
result() { # STATUS NAME
    n=$((n + 1))
    if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; rc=1; fi
}
# exit_status PID: waits for our child PID (not in a subshell: only this
# shell can wait for it); its exit status in $st.
exit_status() { st=0; wait "$1" 2>/dev/null || st=$?; }

read -r PG_PORT HTTP_PORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
shop_pg_start "$W/pg" "$PG_PORT" "$W/pg/run" || bail "PostgreSQL did not start"
shop_createdb sigterm && shop_migrate sigterm >/dev/null || bail "migration failed"
shop_seed sigterm 1000 >/dev/null || bail "seed failed"
shop_write_secret "$W/token" || bail "token"
DSN="host=$SHOP_PG_SOCKDIR port=$PG_PORT user=shop dbname=sigterm"

# ---- 1. the accept backlog ------------------------------------------------
shop_psql sigterm -c "INSERT INTO shop.warehouses (code, name, latency_ms) VALUES ('slow', 'Slow', 1000)" \
    >/dev/null || bail "slow warehouse"
shop_fcgi_start "$W/busy.sock" "$W/busy.log" SHOP_DATABASE_URL="$DSN" SHOP_THREADS=2 \
    SHOP_STOCK_DEADLINE_MS=3000 || bail "shop-fcgi did not start"
pid=$SHOP_FCGI_PID; PIDS+=("$pid")
# The registry knows the slow warehouse once /readyz answers from the pool.
for _ in $(seq 50); do
    st=$(python3 -c "import sys; sys.path.insert(0, '$SHOP_SRCDIR/tests/fcgi')
from fcgiclient import request; print(request('unix:$W/busy.sock', 'GET', '/readyz')[0])" 2>/dev/null)
    [ "$st" = 200 ] && break; sleep 0.1
done
python3 "$SHOP_SRCDIR/tests/fcgi/backlog.py" --socket "$W/busy.sock" --pid "$pid" --threads 2 \
    --queued 6 >"$W/backlog.tap"
shop_tap_merge "$W/backlog.tap"
exit_status "$pid"; PIDS=()
result "$([ "$st" = 0 ] && echo 0 || echo 1)" "backlog: shop-fcgi exited 0 (status $st)"

# ---- 1b. systemd's socket (LISTEN_FDS): left open, the next process answers
python3 "$SHOP_SRCDIR/tests/fcgi/socketact.py" --bin "$(shop_fcgi_bin)" --socket "$W/sd.sock" \
    --log "$W/sd.log" --threads 2 SHOP_DATABASE_URL="$DSN" SHOP_STOCK_DEADLINE_MS=3000 \
    >"$W/socketact.tap"
shop_tap_merge "$W/socketact.tap"
shop_psql sigterm -c "DELETE FROM shop.warehouses WHERE code = 'slow'" >/dev/null

# ---- 2. a pair behind nginx, under load -------------------------------------
# A stock deadline far above the load's latency: a check whose warehouses
# all miss a 250 ms deadline on a busy machine (sanitizers, wrk on the same
# cores) is a 503 that has nothing to do with stopping.
shop_fcgi_start "$W/a.sock" "$W/a.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
    SHOP_STOCK_DEADLINE_MS=3000 || bail "shop-fcgi a did not start"
A=$SHOP_FCGI_PID; PIDS+=("$A")
shop_fcgi_start "$W/b.sock" "$W/b.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
    SHOP_STOCK_DEADLINE_MS=3000 || bail "shop-fcgi b did not start"
B=$SHOP_FCGI_PID; PIDS+=("$B")
NGX=$W/ngx
shop_nginx_prepare "$NGX" WORKER_PROCESSES=1 &&
shop_nginx_add_server "$NGX" pair "$SHOP_SRCDIR/tests/fcgi/pair.server.conf.in" \
    LISTEN="127.0.0.1:$HTTP_PORT" SOCKET_A="$W/a.sock" SOCKET_B="$W/b.sock" MAX_FAILS=1 \
    || bail "nginx configuration"
shop_nginx_start "$NGX" || bail "nginx did not start"
URL="http://127.0.0.1:$HTTP_PORT"
shop_wait_http "$URL/readyz" 10 || bail "no answer through nginx"

cat >"$W/get.lua" <<'EOF'
request = function()
  return wrk.format("GET", "/products/" .. math.random(1, 1000))
end
EOF
cat >"$W/post.lua" <<'EOF'
request = function()
  local body = string.format('{"items":[{"sku":"SKU-%06d","quantity":1}]}', math.random(1, 1000))
  return wrk.format("POST", "/stock/check", { ["Content-Type"] = "application/json" }, body)
end
EOF
wrk -t1 -c"$CONNS" -d"${SECONDS_LOAD}s" --timeout 5s -s "$W/get.lua" "$URL" >"$W/wrk-get.out" 2>&1 &
WG=$!
wrk -t1 -c"$CONNS" -d"${SECONDS_LOAD}s" --timeout 5s -s "$W/post.lua" "$URL" >"$W/wrk-post.out" 2>&1 &
WP=$!
sleep "$(awk -v s="$SECONDS_LOAD" 'BEGIN { printf "%.1f", s / 3 }')"
before=$(grep -c '"route"' "$W/a.log")
t0=$(date +%s%N)
kill -TERM "$A"
exit_status "$A"; t1=$(date +%s%N); PIDS=("$B")
after=$(grep -c '"route"' "$W/a.log")
wait "$WG" "$WP"

result "$([ "$st" = 0 ] && echo 0 || echo 1)" \
    "pair: the stopped responder exited 0 (status $st, $(( (t1 - t0) / 1000000 )) ms after SIGTERM)"
echo "# it answered $before requests before SIGTERM and $((after - before)) after it"
for w in get post; do
    cat "$W/wrk-$w.out" | sed 's/^/#   /'
    total=$(awk '/requests in/ { print $1 }' "$W/wrk-$w.out")
    non2xx=$(awk '/Non-2xx/ { print $NF }' "$W/wrk-$w.out"); non2xx=${non2xx:-0}
    sockerr=$(awk -F'[ ,]+' '/Socket errors/ { print $5 + $7 + $9 + $11 }' "$W/wrk-$w.out"); sockerr=${sockerr:-0}
    [ -n "$total" ] && [ "$total" -gt 0 ] && [ "$non2xx" = 0 ] && [ "$sockerr" = 0 ]
    result $? "pair: wrk $w: ${total:-?} requests, $non2xx non-2xx, $sockerr socket errors"
done
# What answered non-2xx, by the shop's log lines (the load's, not a drop).
grep -h '"route"' "$W/a.log" "$W/b.log" | grep -v '"status":2' | head -n 5 | sed 's/^/#   shop: /'
refused=$(grep -c 'Connection refused' "$NGX/logs/error.log")
grep -E 'prematurely closed|reset by peer|timed out|no live upstreams|Broken pipe' "$NGX/logs/error.log" >"$W/ngx-bad"
[ ! -s "$W/ngx-bad" ]
result $? "pair: nginx saw no reset, premature close or timeout from a responder ($refused refused connects went to the other)"
head -n 5 "$W/ngx-bad" | sed 's/^/#   /'

shop_nginx_stop "$NGX"; NGX=""
shop_fcgi_stop "$B"; PIDS=()
! grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W"/*.log
result $? "shop-fcgi logs are free of sanitizer reports"
grep -h -A20 "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W"/*.log | head -40 | sed 's/^/#   /'
echo "1..$n"
exit "$rc"
