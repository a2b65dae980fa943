#!/usr/bin/env bash
# tests/module/metrics.sh: GET /metrics of the nginx module, as one TAP test.
# Starts its own PostgreSQL and an nginx with 2 workers and checks that
#
#   - N requests spread over both workers are all counted, once each, in one
#     answer (the zone shop_metrics_zone; both workers' pids are in the JSON
#     access log), with the request and database histograms;
#   - route labels are templates (/products/{id}), 404/405 are "unmatched";
#   - GET /metrics needs the admin token (401, 403), unless the location has
#     shop_metrics_public on (allow/deny in front: 200 and nginx's 403);
#   - gauges: each worker's slot (2 workers x pool 2 = 4 idle connections),
#     SSE subscribers, events delivered; a killed worker's slot is taken
#     back by its replacement, a reload's old workers let go of theirs and
#     the counters go on;
#   - the JSON access log (conf/nginx-shop-log.conf) has the route template,
#     db_time, pool_wait and the request id the response carried.
#
# Everything it starts it stops by PID. SHOP_KEEP_TMP=1 keeps the temp dir.
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`).
set -u

SRC=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SHOP_BUILDDIR:-$SRC/var/build}
export SHOP_SRCDIR=$SRC SHOP_BUILDDIR=$BUILD
# shellcheck source=SCRIPTDIR/../lib.sh
. "$SRC/tests/lib.sh"

N=0 FAILED=0
ok() {
    local cond=$1; shift
    N=$((N + 1))
    if [ "$cond" = 0 ]; then printf 'ok %d - %s\n' "$N" "$1"
    else
        FAILED=$((FAILED + 1)); printf 'not ok %d - %s\n' "$N" "$1"; shift
        local l; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done
    fi
}
diag() { printf '# %s\n' "$*"; }

T=$(mktemp -d /tmp/shop-metrics.XXXXXX) || { echo "Bail out! mktemp failed"; exit 1; }
chmod 755 "$T"
NP=$T/nginx
SSE_PID=

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    set +e
    [ -n "$SSE_PID" ] && shop_stop_pid "$SSE_PID" TERM 2
    shop_nginx_stop "$NP"
    [ -n "${SHOP_PG_DIR:-}" ] && shop_pg_stop "$SHOP_PG_DIR"
    if [ "${SHOP_KEEP_TMP:-0}" = 1 ]; then diag "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bail() {
    printf '# %s\n' "$@"
    shop_tail_logs 30 "$NP/logs/error.log"
    echo "Bail out! $1"
    exit 1
}

[ -r "$(shop_module_so)" ] || bail "the module is not built: $(shop_module_so)"
[ -x "$(shop_fcgi_bin)" ] || bail "shop-fcgi (for migrate) is not built: $(shop_fcgi_bin)"

mapfile -t PORTS < <(shop_free_ports 2)
URL=http://127.0.0.1:${PORTS[1]}

shop_pg_start "$T/pg" "${PORTS[0]}" "$T/pg/run" 2>"$T/err" || bail "PostgreSQL did not start" "$(cat "$T/err")"
out=$( { shop_createdb shop && shop_migrate shop && shop_seed shop 20; } 2>&1 ) || bail "database set-up failed" "$out"
shop_write_secret "$T/admin.token" && shop_write_secret "$T/webhook.secret" || bail "cannot write the token files"
TOKEN=$(tr -d ' \n' <"$T/admin.token")

{
    shop_nginx_prepare "$NP" WORKER_PROCESSES=2 ERROR_LOG_LEVEL=info ACCESS_LOG=off &&
    shop_nginx_add_module "$NP" module LISTEN="127.0.0.1:${PORTS[1]}" DATABASE="$(shop_pg_url shop)" \
        ADMIN_TOKEN_FILE="$T/admin.token" WEBHOOK_SECRET_FILE="$T/webhook.secret" POOL_SIZE=2 \
        LOCATIONS="    location /pub/ { allow 127.0.0.1; deny all; shop; shop_metrics_public on; }
    location /closed/ { deny all; shop; shop_metrics_public on; }"
} 2>"$T/err" || bail "nginx configuration" "$(cat "$T/err")"
shop_nginx_start "$NP" 2>"$T/err" || bail "nginx did not start" "$(cat "$T/err")"
shop_wait_http "$URL/readyz" 20 "$SHOP_NGINX_PID" 2>"$T/err" || bail "the module does not answer" "$(cat "$T/err")"
diag "PostgreSQL on port ${PORTS[0]}, nginx $SHOP_NGINX_PID (2 workers) at $URL"

JSONLOG=$NP/logs/shop-module.json

# scrape FILE [PATH]: GET /metrics with the token
scrape() { curl -s -H "Authorization: Bearer $TOKEN" -o "$1" "$URL${2:-/metrics}"; }
# value FILE SERIES: the value of one series (exact name and labels), 0 if absent
value() { awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }' "$1"; }
workers() { pgrep -P "$SHOP_NGINX_PID" | sort; }
# settle: the workers write their gauges every second
settle() { sleep 1.3; }
# up FILE: the primary's ready connections, idle or busy (a busy one: a
# worker's warehouse list refresh, every 5 s, caught in the act)
up() { echo $(( $(value "$1" "$IDLE") + $(value "$1" "$BUSY") )); }
# up_is N FILE: scrapes into FILE until up is N (new workers connect first:
# under load that takes a while), at most 8 s
up_is() {
    local i
    for i in $(seq 40); do
        scrape "$2"
        [ "$(up "$2")" = "$1" ] && return 0
        sleep 0.2
    done
    return 1
}
# wait_workers N: until the master has N workers (and no other child)
wait_workers() {
    local i
    for i in $(seq 100); do [ "$(workers | wc -l)" = "$1" ] && return 0; sleep 0.1; done
    return 1
}

P='shop_requests_total{route="/products/{id}",method="GET",status="200"}'
IDLE='shop_pool_connections{target="primary",state="idle"}'
BUSY='shop_pool_connections{target="primary",state="busy"}'

# ------------------------------------------------------------ counting

scrape "$T/m0"
n=200
seq 1 "$n" | awk '{ print ($1 % 20) + 1 }' |
    xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' "$URL/products/{}" >"$T/codes"
scrape "$T/m1"
good=$(grep -c '^200$' "$T/codes")
d=$(( $(value "$T/m1" "$P") - $(value "$T/m0" "$P") ))
ok "$([ "$good" = "$n" ] && [ "$d" = "$n" ]; echo $?)" \
   "$n GET /products/{id} over 8 connections at a time: $good answered 200, $d counted (one answer, both workers)" \
   "$(grep -v '^200$' "$T/codes" | sort | uniq -c)"

pids=$(grep -F '"route":"/products/{id}"' "$JSONLOG" | sed -E 's/.*"pid":([0-9]+).*/\1/' | sort | uniq -c)
ok "$([ "$(printf '%s\n' "$pids" | grep -c .)" = 2 ]; echo $?)" \
   "both workers answered some of them (JSON access log: $(printf '%s' "$pids" | tr -s ' \n' ' '))"

H='shop_request_duration_seconds_count{route="/products/{id}"}'
D='shop_db_duration_seconds_count{}'
dh=$(( $(value "$T/m1" "$H") - $(value "$T/m0" "$H") ))
dd=$(( $(value "$T/m1" "$D") - $(value "$T/m0" "$D") ))
inf=$(value "$T/m1" 'shop_request_duration_seconds_bucket{route="/products/{id}",le="+Inf"}')
ok "$([ "$dh" = "$n" ] && [ "$dd" -ge "$n" ] && [ "$inf" = "$(value "$T/m1" "$H")" ]; echo $?)" \
   "histograms: request duration +$dh for the route (+Inf bucket = count), database duration +$dd"

# ------------------------------------------------------------ labels

curl -s -o /dev/null "$URL/no/such/path/42"
curl -s -o /dev/null -X DELETE "$URL/healthz"
curl -s -o /dev/null "$URL/products/no-such-slug-7"
scrape "$T/m2"
routes=$(grep -oE 'route="[^"]*"' "$T/m2" | sort -u | tr '\n' ' ')
bad=$(grep -oE 'route="[^"]*"' "$T/m2" | grep -vE 'route="(/[a-z/]*(\{[a-z]+\}[a-z/]*)*|unmatched)"' | sort -u)
ok "$([ -z "$bad" ] && grep -qF 'route="/products/{id}"' "$T/m2"; echo $?)" \
   "route labels are templates: $routes" "not templates: $bad"
ok "$([ "$(value "$T/m2" 'shop_requests_total{route="unmatched",method="GET",status="404"}')" -ge 1 ] &&
      [ "$(value "$T/m2" 'shop_requests_total{route="unmatched",method="DELETE",status="405"}')" -ge 1 ] &&
      [ "$(value "$T/m2" 'shop_requests_total{route="/products/{id}",method="GET",status="404"}')" -ge 1 ]; echo $?)" \
   "a path no route has is \"unmatched\" 404, a wrong method \"unmatched\" 405, an unknown slug its route's 404"

# ------------------------------------------------------------ who may see it

c1=$(curl -s -o /dev/null -D "$T/h401" -w '%{http_code}' "$URL/metrics")
c2=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer not-the-token-0123456789' "$URL/metrics")
c3=$(curl -s -o "$T/m3" -D "$T/h200" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$URL/metrics")
ok "$([ "$c1" = 401 ] && grep -qi '^WWW-Authenticate: Bearer' "$T/h401" && [ "$c2" = 403 ] && [ "$c3" = 200 ] &&
      grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/h200"; echo $?)" \
   "GET /metrics: no token $c1 (WWW-Authenticate), a wrong one $c2, the admin token $c3 text/plain; version=0.0.4"
c4=$(curl -s -o "$T/m4" -w '%{http_code}' "$URL/pub/metrics")
c5=$(curl -s -o /dev/null -w '%{http_code}' "$URL/closed/metrics")
ok "$([ "$c4" = 200 ] && grep -q '^shop_build_info' "$T/m4" && [ "$c5" = 403 ]; echo $?)" \
   "shop_metrics_public on behind allow/deny: allowed $c4 without a token, denied $c5 (nginx's)"

# ------------------------------------------------------------ gauges

settle
up_is 4 "$T/m5"
ok "$([ "$(up "$T/m5")" = 4 ] &&
      [ "$(value "$T/m5" 'shop_pool_connections{target="primary",state="broken"}')" = 0 ] &&
      [ "$(value "$T/m5" 'shop_pool_waiting{}')" = 0 ] &&
      grep -q '^shop_pool_connections{target="stock:primary",state="idle"}' "$T/m5"; echo $?)" \
   "gauges add up over both slots: primary up $(up "$T/m5") (idle $(value "$T/m5" "$IDLE"); 2 workers x 2), broken 0, waiting 0; stock:primary shown" \
   "$(grep '^shop_pool' "$T/m5")"

E='shop_requests_total{route="/events",method="GET",status="200"}'
S='shop_events_subscribers{transport="sse"}'
DL='shop_events_delivered_total{}'
curl -s -N -o "$T/sse" "$URL/events?topics=products" &
SSE_PID=$!
sleep 0.5
settle
scrape "$T/m6"
ok "$([ "$(value "$T/m6" "$S")" = 1 ] && [ $(( $(value "$T/m6" "$E") - $(value "$T/m5" "$E") )) = 1 ]; echo $?)" \
   "an open SSE stream: subscribers{sse} $(value "$T/m6" "$S"), counted once at its head (/events 200 +$(( $(value "$T/m6" "$E") - $(value "$T/m5" "$E") )))"

id=$(shop_psql shop -tAc 'SELECT id FROM shop.products ORDER BY id LIMIT 1')
curl -s -o /dev/null -X PATCH -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/merge-patch+json' \
    --data '{"description":"metrics test"}' "$URL/products/$id"
for _ in $(seq 30); do grep -q '^event: product.updated' "$T/sse" && break; sleep 0.1; done
settle
scrape "$T/m7"
ok "$([ $(( $(value "$T/m7" "$DL") - $(value "$T/m6" "$DL") )) -ge 1 ] && grep -q '^event: product.updated' "$T/sse"; echo $?)" \
   "an event reached the stream: events_delivered_total +$(( $(value "$T/m7" "$DL") - $(value "$T/m6" "$DL") ))"
shop_stop_pid "$SSE_PID" TERM 2; SSE_PID=
settle
sleep 0.5
scrape "$T/m8"
ok "$([ "$(value "$T/m8" "$S")" = 0 ]; echo $?)" "the stream gone: subscribers{sse} $(value "$T/m8" "$S")"

# ------------------------------------------------------------ slots: a crash, a reload

before=$(workers | tr '\n' ' ')
victim=$(workers | head -n 1)
kill -KILL "$victim"
shop_wait_gone "$victim" 5
wait_workers 2
settle
up_is 4 "$T/m9"
after=$(workers | tr '\n' ' ')
ok "$([ "$(up "$T/m9")" = 4 ] && grep -q "gauge slot [0-9]* of process $victim, which is gone, is free again" "$NP/logs/error.log"; echo $?)" \
   "a worker killed ($victim of $before): its replacement takes its slot back (log), primary up $(up "$T/m9"), not 6; workers now $after" \
   "$(grep 'gauge slot' "$NP/logs/error.log" | tail -n 3)" "$(grep '^shop_pool' "$T/m9")"

c_before=$(value "$T/m9" "$P")
old=$(workers)
"$SHOP_NGINX" -q -p "$NP" -c "$NP/nginx.conf" -s reload 2>/dev/null
gone=0
for _ in $(seq 100); do
    still=0
    for w in $old; do shop_alive "$w" && still=1; done
    [ "$still" = 0 ] && { gone=1; break; }
    sleep 0.1
done
wait_workers 2
settle
up_is 4 "$T/m10"
ok "$([ "$gone" = 1 ] && [ "$(up "$T/m10")" = 4 ] && [ "$(value "$T/m10" "$P")" -ge "$c_before" ] && [ "$c_before" -ge "$n" ]; echo $?)" \
   "nginx -s reload: the old workers exited, the new ones' slots give up $(up "$T/m10"); the counters went on ($c_before -> $(value "$T/m10" "$P"))" \
   "$(grep '^shop_pool' "$T/m10")"

# ------------------------------------------------------------ the JSON access log

rid=$(curl -s -D - -o /dev/null "$URL/products/3" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }')
line=$(grep -F "\"request_id\":\"$rid\"" "$JSONLOG" | tail -n 1)
check=$(printf '%s\n' "$line" | python3 -c '
import json, sys
d = json.loads(sys.stdin.readline())
assert d["route"] == "/products/{id}", d
assert d["status"] == 200 and d["method"] == "GET", d
assert isinstance(d["db_time"], (int, float)) and isinstance(d["pool_wait"], (int, float)), d
assert d["db_time"] <= d["request_time"] + 0.001, d
assert isinstance(d["pid"], int), d
print("ok")' 2>&1)
bad=$(python3 -c '
import json, sys
n = 0
for l in open(sys.argv[1]):
    json.loads(l); n += 1
print(n)' "$JSONLOG" 2>&1)
ok "$([ "$check" = ok ] && [ -n "$rid" ]; echo $?)" \
   "JSON access log (shop_json): the line of X-Request-Id $rid has the route template, db_time, pool_wait, pid; all $bad lines parse" \
   "$line" "$check"

out=$(grep -E '\[(alert|crit|emerg)\]|exited on signal' "$NP/logs/error.log" | grep -v "process $victim exited on signal 9" | head -n 10)
ok "$([ -z "$out" ]; echo $?)" "no alert, crit or emerg in the error log; no worker crashed but the one killed" "$out"

echo "1..$N"
[ "$FAILED" = 0 ]
