#!/bin/bash
# The module under valgrind memcheck: a throwaway PostgreSQL, nginx with
# `master_process off; daemon off;` under valgrind, a mix of requests (every
# route of the catalogue, errors, bodies over the limit, chunked bodies,
# client aborts on a locked row, stock checks with warehouses that answer,
# time out, refuse and hang, event streams over SSE and WebSocket with a
# slow subscriber dropped, a database restart under open streams), then a
# stop with streams still open.
# Passes when valgrind reports no invalid reads or writes and no definite
# leaks. Slow (a minute or two): `make valgrind-module` runs it.
#
#   tests/module/valgrind.sh [MODULE.so [WORKDIR]]
#
# MODULE.so defaults to $SHOP_BUILDDIR/module/ngx_http_shop_module.so (as
# `make check` runs it).
# Needs root or a user that can run PostgreSQL (tests/lib.sh), valgrind,
# curl and psql. SHOP_SRCDIR: the source tree (default: this script's).

set -u

so=$(readlink -f "${1:-${SHOP_BUILDDIR:-.}/module/ngx_http_shop_module.so}")
[ -r "$so" ] || { echo "Bail out! no module at $so (usage: $0 [MODULE.so [WORKDIR]])"; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$here/../.." && pwd)}
SHOP_BUILDDIR=${SHOP_BUILDDIR:-$(dirname "$(dirname "$so")")}
. "$SHOP_SRCDIR/tests/lib.sh"

work=${2:-}
if [ -z "$work" ]; then
    work=$(mktemp -d /tmp/shop-vg.XXXXXX)
    own_work=1
fi
mkdir -p "$work/ngx/logs" "$work/ngx/tmp"
chmod 755 "$work"

command -v valgrind >/dev/null || { echo "Bail out! valgrind is not installed"; exit 1; }

n=0
failed=0
ok() {
    local cond=$1; shift
    n=$((n + 1))
    if [ "$cond" = 0 ]; then echo "ok $n - $*"; else echo "not ok $n - $*"; failed=$((failed + 1)); fi
}

vg_pid=
hang_pid=
cleanup() {
    [ -n "$vg_pid" ] && kill -KILL "$vg_pid" 2>/dev/null
    [ -n "${lock_pid:-}" ] && kill "$lock_pid" 2>/dev/null
    [ -n "$hang_pid" ] && kill "$hang_pid" 2>/dev/null
    [ -n "${ws_pid:-}" ] && kill "$ws_pid" 2>/dev/null
    shop_pg_stop "$work/pg" >/dev/null 2>&1
}
trap cleanup EXIT

echo "1..8"

read -r pg_port ngx_port hang_port closed_port < <(shop_free_ports 4 | tr '\n' ' ')

# a warehouse database that accepts connections and never answers
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); held = []
while True:
    c, _ = s.accept(); held.append(c)
' "$hang_port" &
hang_pid=$!
shop_pg_start "$work/pg" "$pg_port" >/dev/null 2>&1 || { echo "Bail out! PostgreSQL did not start"; exit 1; }
shop_createdb shop >/dev/null
for f in "$SHOP_SRCDIR"/sql/[0-9]*.sql; do
    shop_psql shop -1 -f "$f" >/dev/null || { echo "Bail out! $f failed"; exit 1; }
done
shop_psql shop -v n=200 -f "$SHOP_SRCDIR/sql/seed.sql" >/dev/null
export PGHOST=$SHOP_PG_SOCKDIR PGPORT=$SHOP_PG_PORT PGUSER=shop PGDATABASE=shop

shop_write_secret "$work/token"
shop_write_secret "$work/webhook"
token=$(tr -d '\n' <"$work/token")

# nginx's own errors (a request line it cannot parse, ...) as problem+json,
# the way every server of the shop answers them (conf/nginx-problems.conf.in)
shop_render "$SHOP_SRCDIR/conf/nginx-problems.conf.in" "$work/ngx/problems.conf" PREFIX="$work/ngx" \
    || { echo "Bail out! cannot render problems.conf"; exit 1; }
cat >"$work/ngx/nginx.conf" <<EOF
load_module $so;
master_process off;
daemon off;
worker_processes 1;
pid $work/ngx/nginx.pid;
error_log $work/ngx/logs/error.log info;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/ngx/tmp/body;
    proxy_temp_path $work/ngx/tmp/proxy;
    fastcgi_temp_path $work/ngx/tmp/fastcgi;
    uwsgi_temp_path $work/ngx/tmp/uwsgi;
    scgi_temp_path $work/ngx/tmp/scgi;
    shop_database "host=$SHOP_PG_SOCKDIR port=$SHOP_PG_PORT user=shop dbname=shop";
    shop_admin_token_file $work/token;
    shop_webhook_secret_file $work/webhook;
    shop_pool_size 2;
    shop_body_limit 64k;
    shop_stock_deadline 500ms;
    shop_warehouse_pool_size 2;
    shop_warehouse_database vg-hang "hostaddr=127.0.0.1 port=$hang_port user=x dbname=x";
    shop_warehouse_database vg-closed "hostaddr=127.0.0.1 port=$closed_port user=x dbname=x";
    server {
        listen 127.0.0.1:$ngx_port;
        include $work/ngx/problems.conf;
        location / { shop; }
        location /tiny/ { shop; shop_pool_size 1; shop_pool_queue 1 300ms; }
        location /small/ { shop; shop_subscriber_buffer 4k; }
    }
}
EOF

valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,possible \
    --errors-for-leak-kinds=definite --track-origins=yes --num-callers=30 \
    --suppressions="$here/valgrind.supp" \
    --log-file="$work/valgrind.log" \
    "$SHOP_NGINX" -p "$work/ngx" -c "$work/ngx/nginx.conf" >"$work/nginx.out" 2>&1 &
vg_pid=$!

u=http://127.0.0.1:$ngx_port
shop_wait_http "$u/readyz" 60 "$vg_pid" 2>/dev/null
ok $? "nginx with the module runs under valgrind and answers /readyz"

auth="Authorization: Bearer $token"
json='Content-Type: application/json'
req() { curl -s -o /dev/null -w '%{http_code}\n' "$@"; }

: >"$work/codes"
{
    for i in $(seq 20); do
        req "$u/healthz"; req "$u/readyz"; req "$u/products/$i"; req "$u/products/product-$i"
        req "$u/products?limit=5&after=$(printf 'p:%s' "$i" | base64)"
        req "$u/products?q=product&category=books&limit=3"
        req -I "$u/products/$i"; req -X OPTIONS "$u/products"; req -X PUT "$u/products"
        req "$u/nope"; req "$u/products/x-$i" -H 'If-None-Match: "1"'
    done
    for i in $(seq 10); do
        req -X POST "$u/products" -H "$auth" -H "$json" \
            -d "{\"sku\":\"VG-$i\",\"name\":\"Valgrind $i\",\"price_cents\":$i,\"currency\":\"EUR\"}"
        req -X POST "$u/products" -H "$auth" -H "$json" -H 'Transfer-Encoding: chunked' \
            -d "{\"sku\":\"VGC-$i\",\"name\":\"Valgrind chunked $i\",\"price_cents\":$i,\"currency\":\"EUR\"}"
        req -X PATCH "$u/products/valgrind-$i" -H "$auth" -H 'Content-Type: application/merge-patch+json' \
            -H 'If-Match: "1"' -d '{"price_cents":999}'
        req -X PATCH "$u/products/valgrind-$i" -H "$auth" -H "$json" -H 'If-Match: "1"' -d '{"price_cents":1}'
        req -X DELETE "$u/products/valgrind-$i" -H "$auth"
        req -X DELETE "$u/products/valgrind-chunked-$i" -H "$auth"
        req -X POST "$u/products" -H "$auth" -H "$json" -d '{"sku":"","bogus":1}'
        req -X POST "$u/products" -H "$auth" -H "$json" -d '{"a":'
        req -X POST "$u/products" -H "$json" -d '{}'
        head -c 100000 /dev/zero | tr '\0' 'a' | req -X POST "$u/products" -H "$auth" -H "$json" --data-binary @-
        head -c 100000 /dev/zero | tr '\0' 'a' | req -X POST "$u/products" -H "$auth" -H "$json" \
            -H 'Transfer-Encoding: chunked' --data-binary @-
    done
} >>"$work/codes"
bad=$(grep -cvE '^(200|201|204|304|400|401|404|405|409|412|413|415|422)$' "$work/codes")
ok "$bad" "$(wc -l <"$work/codes") requests of every kind answered as the API says ($bad unexpected)"

# the HTTP suite, when there is one (its verdict is the suite's business:
# here it only drives the module through every route)
if [ -r "$SHOP_SRCDIR/tests/http/suite.py" ] && command -v python3 >/dev/null; then
    timeout 900 python3 "$SHOP_SRCDIR/tests/http/suite.py" --target "module=$u" \
        --token-file "$work/token" --webhook-secret-file "$work/webhook" \
        --body-limit 65536 >"$work/suite.tap" 2>&1
    echo "# HTTP suite under valgrind: $(grep -c '^ok' "$work/suite.tap") ok," \
         "$(grep -c '^not ok' "$work/suite.tap") not ok ($work/suite.tap)"
fi

# the stock check: warehouses that answer, one slower than the deadline
# (its connection is replaced), one whose port is closed, one that hangs;
# clients that give up mid-fan-out; warehouses created meanwhile
check() {
    req -m "${2:-10}" -X POST "$u/stock/check" -H "$json" \
        -d "{\"items\":[{\"sku\":\"SKU-$(printf '%06d' "$1")\",\"quantity\":1},{\"sku\":\"NOPE\",\"quantity\":2}]}"
}
: >"$work/stock"
{
    for i in $(seq 10); do check "$i"; done
    req -X PUT "$u/warehouses/vg-slow" -H "$auth" -H "$json" -d '{"name":"Slow","latency_ms":3000}'
    for i in $(seq 5); do check "$i"; done
    req -X PUT "$u/warehouses/vg-closed" -H "$auth" -H "$json" -d '{"name":"Closed"}'
    req -X PUT "$u/warehouses/vg-hang" -H "$auth" -H "$json" -d '{"name":"Hangs"}'
    for i in $(seq 5); do check "$i"; done
    aborts=
    for i in $(seq 6); do check "$i" 0.2 & aborts="$aborts $!"; done
    wait $aborts
    req -X POST "$u/stock/check" -H "$json" -d '{"items":[]}'
    req -X PUT "$u/warehouses/vg-slow" -H "$auth" -H "$json" -d '{"name":"Slow","latency_ms":0}'
    for i in $(seq 5); do check "$i"; done
} >>"$work/stock" 2>/dev/null
bad=$(grep -cvE '^(000|200|201|422|503)$' "$work/stock")
[ "$bad" = 0 ] && [ "$(grep -c '^200$' "$work/stock")" -ge 10 ]
ok $? "$(wc -l <"$work/stock") stock checks and warehouse PUTs answered ($bad unexpected," \
      "$(grep -c '^200$' "$work/stock") x 200)"

# event streams: SSE (live, topic-filtered, replayed from the table) and
# WebSocket (events, ping, close, refused frames), a slow subscriber that is
# dropped; three streams stay open through the database restart below and
# until the stop, which then ends them
sse() { curl -sN --max-time "$1" "$u$2" >"$3" 2>/dev/null & }
sse 20 "/events" "$work/sse-live"
sse 20 "/events?topics=prices" "$work/sse-prices"
sse 20 "/events?after=0" "$work/sse-replay"
sse 600 "/events?topics=products" "$work/sse-long"
long_pid=$!
python3 - "$u" "$SHOP_SRCDIR/tests/events" "$work" <<'PY' &
import socket, sys, time
sys.path.insert(0, sys.argv[2])
from wsclient import OP_PING, OP_PONG, OP_TEXT, OP_CLOSE, WebSocket
u, work = sys.argv[1], sys.argv[3]
# a subscriber on a 4k buffer that never reads: dropped
slow = WebSocket(u, "/small/events")
slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
ws = WebSocket(u, "/events?topics=products")
kept = WebSocket(u, "/events")
ws.send(OP_PING, b"vg")
seen, pong = 0, False
t_end = time.time() + 60
while time.time() < t_end and not (pong and seen >= 50):
    fr = ws.recv(timeout=5)
    if fr is None:
        break
    seen += fr[0] == OP_TEXT
    pong = pong or (fr[0] == OP_PONG and fr[1] == b"vg")
def closing(w):
    fr = w.recv(timeout=10)
    while fr is not None and fr[0] != OP_CLOSE:
        fr = w.recv(timeout=10)
    return fr[1][:2] if fr else None
ws.close(1000)
codes = [closing(ws)]
for bad in (lambda w: w.send(OP_TEXT, b"x", mask=False), lambda w: w.send(OP_TEXT, b"x" * 5000)):
    w = WebSocket(u, "/events")
    bad(w)
    codes.append(closing(w))
    w.shutdown()
ok = pong and seen >= 50 and codes == [b"\x03\xe8", b"\x03\xea", b"\x03\xf1"]
open(work + "/ws-result", "w").write("%s %d %s\n" % (ok, seen, codes))
time.sleep(600)     # "kept" stays open until the stop
PY
ws_pid=$!
sleep 3
psql -X -q -c "SELECT shop.emit('test.vg', 'products', json_build_object('n', i, 'pad', repeat('x', 1000)))
               FROM generate_series(1, 600) i" >/dev/null
req -X PATCH "$u/products/3" -H "$auth" -H "$json" -d '{"price_cents":4242}' >/dev/null
for i in $(seq 100); do [ -s "$work/ws-result" ] && break; sleep 0.3; done
sleep 2
n_live=$(grep -c '^id: ' "$work/sse-live")
n_prices=$(grep -c '^event: price.changed' "$work/sse-prices")
n_replay=$(grep -c '^id: ' "$work/sse-replay")
[ "$n_live" -ge 601 ] && [ "$n_prices" -ge 1 ] && [ "$n_replay" -ge 601 ] \
    && grep -q '^True' "$work/ws-result" 2>/dev/null \
    && grep -q 'dropped: the client' "$work/ngx/logs/error.log"
ok $? "event streams: SSE live $n_live, prices $n_prices, replayed $n_replay events; WebSocket:" \
      "$(cut -c1-60 "$work/ws-result" 2>/dev/null); a slow one dropped"

# clients that give up while their statement waits for a row lock; then
# more requests than the small pool holds
mkfifo "$work/lock.in"
psql -X -q <"$work/lock.in" >/dev/null 2>&1 &
lock_pid=$!
exec 7>"$work/lock.in"
echo "BEGIN; SELECT id FROM shop.products WHERE id = 1 FOR UPDATE;" >&7
sleep 0.5
pids=
for i in $(seq 6); do
    req -m 0.5 -X PATCH "$u/products/1" -H "$auth" -H "$json" -d '{"price_cents":5}' >/dev/null &
    pids="$pids $!"
done
for i in $(seq 40); do
    req -m 5 -X PATCH "$u/tiny/products/1" -H "$auth" -H "$json" -d '{"price_cents":6}' >>"$work/tiny" &
    pids="$pids $!"
done
sleep 1.5
echo "COMMIT;" >&7
exec 7>&-
wait $pids
wait "$lock_pid"; lock_pid=
[ "$(grep -c 503 "$work/tiny")" -ge 1 ] && [ "$(req "$u/products/1")" = 200 ]
ok $? "client aborts and an exhausted pool: the pool recovers"

# the database goes away and comes back
shop_pg_stop "$work/pg" >/dev/null 2>&1
down=$(req "$u/products/2")
shop_pg_start "$work/pg" "$pg_port" >/dev/null 2>&1
up=000
for i in $(seq 100); do up=$(req "$u/readyz"); [ "$up" = 200 ] && break; sleep 0.1; done
[ "$down" = 503 ] && [ "$up" = 200 ] && [ "$(req "$u/products/2")" = 200 ]
ok $? "database restart: $down while down, $up after"

kill "$hang_pid" 2>/dev/null; wait "$hang_pid" 2>/dev/null; hang_pid=
psql -X -q -c "SELECT shop.emit('test.vg', 'products', '{}')" >/dev/null
kill -QUIT "$vg_pid"
for i in $(seq 300); do kill -0 "$vg_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$vg_pid" 2>/dev/null; then
    kill -KILL "$vg_pid"
fi
wait "$vg_pid" 2>/dev/null
vg_pid=
kill "$ws_pid" 2>/dev/null; wait "$ws_pid" "$long_pid" 2>/dev/null; ws_pid=

errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$work/valgrind.log" | tail -n 1)
[ "${errors:-x}" = 0 ]
ok $? "valgrind: ${errors:-no} errors (invalid reads, writes, uses of uninitialised values)"
grep -A 25 -E 'Invalid (read|write)|uninitialised|definitely lost in' "$work/valgrind.log" | head -n 60 | sed 's/^/#   /'

definite=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$work/valgrind.log" | tail -n 1)
[ "${definite:-0}" = 0 ]
ok $? "valgrind: definitely lost ${definite:-0} bytes"
grep -E 'definitely lost|indirectly lost|possibly lost|still reachable|ERROR SUMMARY' "$work/valgrind.log" | sed 's/^/# /'
echo "# valgrind log: $work/valgrind.log"

if [ "$failed" = 0 ] && [ "${own_work:-0}" = 1 ]; then
    shop_pg_stop "$work/pg" >/dev/null 2>&1
    rm -rf "$work"
    echo "# (passed: $work removed)"
fi
[ "$failed" = 0 ]
