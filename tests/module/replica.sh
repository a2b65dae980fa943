#!/usr/bin/env bash
# tests/module/replica.sh: shop_read_database against a real streaming
# replica, as one TAP test. Starts a primary PostgreSQL (migrated, seeded),
# makes a hot standby of it (pg_basebackup -R into a second data directory,
# streaming), and nginx with the module reading products, warehouses and the
# stock check's warehouses from the standby. Then:
#
#   - a product written through the primary is read back through the replica
#     (after the replication lag, measured);
#   - the primary down: product and warehouse GETs and the stock check still
#     answer (the replica), writes and order reads answer 503 at once (always
#     the primary), /readyz 503; the primary back: writes within 5 s;
#   - the replica down: its reads answer 503 at once (no quiet fall-back to
#     the primary), writes and order reads go on; the replica back: reads
#     within 5 s;
#   - GET /metrics shows the "read" and "stock:read" pools.
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
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

T=$(mktemp -d /tmp/shop-replica.XXXXXX) || { echo "Bail out! mktemp failed"; exit 1; }
chmod 755 "$T"
NP=$T/nginx
PRIMARY=$T/pg REPLICA=$T/rep

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    set +e
    shop_nginx_stop "$NP"
    shop_pg_stop "$REPLICA"
    shop_pg_stop "$PRIMARY"
    if [ "${SHOP_KEEP_TMP:-0}" = 1 ]; then diag "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bail() {
    printf '# %s\n' "$@"
    shop_tail_logs 30 "$NP/logs/error.log" "$PRIMARY/server.log" "$REPLICA/server.log"
    echo "Bail out! $1"
    exit 1
}

[ -r "$(shop_module_so)" ] || bail "the module is not built: $(shop_module_so)"
[ -x "$(shop_fcgi_bin)" ] || bail "shop-fcgi (for migrate) is not built: $(shop_fcgi_bin)"
BIN=$(shop_pgbin) || bail "no PostgreSQL server binaries"

mapfile -t PORTS < <(shop_free_ports 3)
PPORT=${PORTS[0]} RPORT=${PORTS[1]}
URL=http://127.0.0.1:${PORTS[2]}

shop_pg_start "$PRIMARY" "$PPORT" "$PRIMARY/run" 2>"$T/err" || bail "PostgreSQL did not start" "$(cat "$T/err")"
PURL=$(shop_pg_url shop)
out=$( { shop_createdb shop && shop_migrate shop && shop_seed shop 20; } 2>&1 ) || bail "database set-up failed" "$out"

# the hot standby: a base backup with -R (standby.signal, primary_conninfo)
t0=$(now)
mkdir -p "$REPLICA/run"
[ "$(id -u)" = 0 ] && chown "$(shop_pg_osuser):" "$REPLICA" "$REPLICA/run"
chmod 755 "$REPLICA" "$REPLICA/run"
(cd "$REPLICA" && shop_as_pg "$BIN/pg_basebackup" -D "$REPLICA/data" -R -X stream -c fast \
    -h "$PRIMARY/run" -p "$PPORT" -U shop) >"$T/basebackup.log" 2>&1 ||
    bail "pg_basebackup failed" "$(cat "$T/basebackup.log")"
shop_pg_start "$REPLICA" "$RPORT" "$REPLICA/run" 2>"$T/err" || bail "the standby did not start" "$(cat "$T/err")"
RURL=$(shop_pg_url shop)
standby_s=$(since "$t0")
rq() { psql -X -q -t -A -h "$REPLICA/run" -p "$RPORT" -U shop -d shop -c "$1" 2>&1; }
pq() { psql -X -q -t -A -h "$PRIMARY/run" -p "$PPORT" -U shop -d shop -c "$1" 2>&1; }
ok "$([ "$(rq 'SELECT pg_is_in_recovery()')" = t ] &&
      [ "$(pq "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ]; echo $?)" \
   "a streaming hot standby on port $RPORT, made and started in ${standby_s}s (pg_basebackup -R)"

shop_write_secret "$T/admin.token" && shop_write_secret "$T/webhook.secret" || bail "cannot write the token files"
TOKEN=$(tr -d ' \n' <"$T/admin.token")
{
    shop_nginx_prepare "$NP" WORKER_PROCESSES=1 ERROR_LOG_LEVEL=info ACCESS_LOG=off &&
    shop_nginx_add_module "$NP" module LISTEN="127.0.0.1:${PORTS[2]}" DATABASE="$PURL" \
        ADMIN_TOKEN_FILE="$T/admin.token" WEBHOOK_SECRET_FILE="$T/webhook.secret" POOL_SIZE=2 \
        SETTINGS="    shop_read_database \"$RURL\";
    shop_metrics_public on;"
} 2>"$T/err" || bail "nginx configuration" "$(cat "$T/err")"
shop_nginx_start "$NP" 2>"$T/err" || bail "nginx did not start" "$(cat "$T/err")"
shop_wait_http "$URL/readyz" 20 "$SHOP_NGINX_PID" 2>"$T/err" || bail "the module does not answer" "$(cat "$T/err")"

code() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$@"; }
admin() { curl -s -m 5 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
# until CODE SECONDS CURL-ARGS...: polls until the status is CODE; prints the seconds it took
until_code() {
    local want=$1 limit=$2 t; shift 2
    t=$(now)
    while [ "$(code "$@")" != "$want" ]; do
        awk -v a="$t" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }' && { echo "never"; return 1; }
        sleep 0.05
    done
    since "$t"
}
# reads CODE: GET products, a product, warehouses each answer CODE
reads() {
    local p c out=""
    for p in "/products?limit=5" "/products/$ID" /warehouses; do
        c=$(code "$URL$p"); out="$out $p=$c"
        [ "$c" = "$1" ] || { echo "$out"; return 1; }
    done
    echo "$out"
}
stock() { curl -s -m 5 -o "$T/stock" -w '%{http_code}' -H 'Content-Type: application/json' \
              --data '{"items":[{"sku":"SKU-000001","quantity":1}]}' "$URL/stock/check"; }

# ------------------------------------------------------------ reads from the replica

sku=REPL-$$-$RANDOM
c=$(admin -o "$T/created" -w '%{http_code}' --data "{\"sku\":\"$sku\",\"name\":\"Replica test\",\"price_cents\":100,\"currency\":\"EUR\"}" "$URL/products")
ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/created" 2>/dev/null)
lag=$(until_code 200 5 "$URL/products/$ID")
ok "$([ "$c" = 201 ] && [ "$lag" != never ]; echo $?)" \
   "POST /products $c on the primary; GET /products/$ID through the replica 200 after ${lag}s (replication lag)"

apps=$(rq "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shop-nginx'")
ok "$([ "$apps" -ge 1 ] 2>/dev/null; echo $?)" "the read pool's connections are on the standby ($apps there)"

order=$(admin -o "$T/order" -w '%{http_code}' --data '{"items":[{"sku":"SKU-000001","quantity":1}],"customer_email":"replica@example.com"}' "$URL/orders")
OID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/order" 2>/dev/null)
ok "$([ "$order" = 201 ] && [ "$(code "$URL/orders/$OID")" = 200 ]; echo $?)" "an order: POST 201, GET /orders/{id} 200 (the primary, at once)"

m=$(curl -s "$URL/metrics")
ok "$(printf '%s\n' "$m" | grep -q '^shop_pool_connections{target="read",state="idle"} 2$' &&
      printf '%s\n' "$m" | grep -q '^shop_pool_connections{target="stock:read",state="idle"}'; echo $?)" \
   "GET /metrics: target \"read\" 2 idle, and \"stock:read\" (the warehouses without a database of their own)" \
   "$(printf '%s\n' "$m" | grep '^shop_pool_connections' | grep idle)"

# ------------------------------------------------------------ the primary down

shop_pg_stop "$PRIMARY"
r=$(reads 200); rc=$?
ok "$rc" "the primary stopped: reads through the replica still answer:$r"
sc=$(stock)
ok "$([ "$sc" = 200 ] && grep -q '"complete":true' "$T/stock"; echo $?)" \
   "the stock check asks the replica: $sc $(head -c 120 "$T/stock")"
t=$(now)
w=$(admin -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/merge-patch+json' --data '{"description":"x"}' "$URL/products/$ID")
o=$(code "$URL/orders/$OID")
ready=$(code "$URL/readyz")
ok "$([ "$w" = 503 ] && [ "$o" = 503 ] && [ "$ready" = 503 ]; echo $?)" \
   "writes ($w) and order reads ($o) need the primary: 503 in $(since "$t")s; /readyz $ready"

shop_pg_start "$PRIMARY" "$PPORT" "$PRIMARY/run" 2>"$T/err" || bail "the primary did not start again" "$(cat "$T/err")"
back=$(until_code 200 5 -X PATCH -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/merge-patch+json' \
           --data '{"description":"back"}' "$URL/products/$ID")
ok "$([ "$back" != never ]; echo $?)" "the primary back: writes succeed again after ${back}s"

# ------------------------------------------------------------ the replica down

shop_pg_stop "$REPLICA"
t=$(now)
r=$(reads 503); rc=$?
took=$(since "$t")
ok "$([ "$rc" = 0 ] && awk -v s="$took" 'BEGIN { exit !(s < 1) }'; echo $?)" \
   "the replica stopped: its reads answer 503 at once (${took}s; no fall-back to the primary):$r"
sc=$(stock)
w=$(admin -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/merge-patch+json' --data '{"description":"y"}' "$URL/products/$ID")
o=$(code "$URL/orders/$OID")
ok "$([ "$w" = 200 ] && [ "$o" = 200 ] && [ "$(code "$URL/readyz")" = 200 ] && [ "$sc" = 503 ]; echo $?)" \
   "writes ($w), order reads ($o) and /readyz go on; the stock check, all its warehouses on the replica: $sc"

shop_pg_start "$REPLICA" "$RPORT" "$REPLICA/run" 2>"$T/err" || bail "the standby did not start again" "$(cat "$T/err")"
back=$(until_code 200 5 "$URL/products/$ID")
ok "$([ "$back" != never ] && [ "$(stock)" = 200 ]; echo $?)" "the replica back: reads (and the stock check) answer again after ${back}s"

out=$(grep -E '\[(alert|crit|emerg)\]|exited on signal' "$NP/logs/error.log" | head -n 10)
ok "$([ -z "$out" ]; echo $?)" "no alert, crit or emerg in nginx's error log, no worker crashed" "$out"

echo "1..$N"
[ "$FAILED" = 0 ]
