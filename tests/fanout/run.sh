#!/bin/bash
# tests/fanout/run.sh: the stock check fan-out tests (fanout.py) against
# every front-end in TARGETS, each on front-ends of its own over one
# throwaway PostgreSQL: two shops per target (stock deadline 250 ms and 1 s,
# with warehouse targets the test controls), nginx in front. TAP; `make
# check` runs it.
#
#   SHOP_BUILDDIR=/path/to/build tests/fanout/run.sh
#   FANOUT_TARGETS="fcgi module" tests/fanout/run.sh     (override the list)
#
#   fcgi    two shop-fcgi (SHOP_STOCK_DEADLINE_MS, SHOP_WAREHOUSE_FT_*_DATABASE),
#           nginx fastcgi_pass in front of each
#   module  one nginx (worker_processes 1) with two server blocks of the
#           module (shop_stock_deadline, shop_warehouse_database)
#
# The targets run one after the other; each starts and stops its own
# processes (fanout.py replaces the database's warehouses, and counts the
# connections held to the hanging target). Everything is stopped by PID.
set -u -o pipefail
SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHOP_BUILDDIR=${SHOP_BUILDDIR:-$SHOP_SRCDIR}
. "$SHOP_SRCDIR/tests/lib.sh"

# ---- the front-ends under test ------------------------------------------
TARGETS=(fcgi)
# The module's stock-check fan-out landed (0993b42);
# this line tests it too (comment it out to test shop-fcgi alone):
TARGETS+=(module)
[ -n "${FANOUT_TARGETS:-}" ] && read -r -a TARGETS <<<"$FANOUT_TARGETS"
# --------------------------------------------------------------------------

W=$(mktemp -d /tmp/shop-fanout.XXXXXX)
chmod 755 "$W"
PIDS=()     # shop-fcgi processes of the running target
NGX=""      # nginx prefix of the running target
cleanup() {
    local p
    [ -n "$NGX" ] && shop_nginx_stop "$NGX"
    for p in "${PIDS[@]}"; do shop_fcgi_stop "$p"; done
    shop_pg_stop "$W/pg"
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; else shop_say "kept $W"; fi
}
trap cleanup EXIT
bail() { echo "Bail out! $*"; exit 1; }

read -r PG_PORT HANG_PORT CLOSED_PORT <<<"$(shop_free_ports 3 | tr '\n' ' ')"
shop_pg_start "$W/pg" "$PG_PORT" "$W/pg/run" || bail "PostgreSQL did not start"
shop_createdb fanout && shop_migrate fanout >/dev/null || bail "migration failed"
shop_write_secret "$W/token" || bail "token"
shop_write_secret "$W/webhook" || bail "webhook secret"
DSN="host=$SHOP_PG_SOCKDIR port=$PG_PORT user=shop dbname=fanout"
# The warehouses ft-hang and ft-closed live elsewhere: a listener fanout.py
# opens and never answers, and a port nobody listens on.
WAREHOUSES=(
    "SHOP_WAREHOUSE_FT_HANG_DATABASE=hostaddr=127.0.0.1 port=$HANG_PORT user=x dbname=x sslmode=disable gssencmode=disable"
    "SHOP_WAREHOUSE_FT_CLOSED_DATABASE=hostaddr=127.0.0.1 port=$CLOSED_PORT user=x dbname=x sslmode=disable gssencmode=disable"
)

n=0 rc=0
result() { # COND-STATUS NAME [DIAG FILE...]
    local st=$1 name=$2; shift 2
    n=$((n + 1))
    if [ "$st" = 0 ]; then echo "ok $n - $name"; else echo "not ok $n - $name"; rc=1; fi
}

# fanout TARGET URL_A URL_B PID APPNAME SHOPS: fanout.py with the 250 ms shop
# (everything) and the 1 s shop (the latency test).
fanout() {
    local t=$1 a=$2 b=$3 pid=$4 app=$5 shops=$6
    python3 "$SHOP_SRCDIR/tests/fanout/fanout.py" --url "$a" --dsn "$DSN" \
        --token-file "$W/token" --hang-port "$HANG_PORT" --closed-port "$CLOSED_PORT" \
        --deadline-ms 250 --pid "$pid" --shops "$shops" --stock-appname "$app" >"$W/$t-a.tap" || rc=1
    shop_tap_merge "$W/$t-a.tap" "$t"
    python3 "$SHOP_SRCDIR/tests/fanout/fanout.py" --url "$b" --dsn "$DSN" \
        --token-file "$W/token" --hang-port "$HANG_PORT" --closed-port "$CLOSED_PORT" \
        --deadline-ms 1000 --only latency --stock-appname "$app" >"$W/$t-b.tap" || rc=1
    shop_tap_merge "$W/$t-b.tap" "$t (deadline 1 s)"
}

run_fcgi() {
    local a_port b_port a_pid b_pid
    read -r a_port b_port <<<"$(shop_free_ports 2 | tr '\n' ' ')"
    shop_fcgi_start "$W/a.sock" "$W/a.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
        SHOP_STOCK_DEADLINE_MS=250 "${WAREHOUSES[@]}" || bail "shop-fcgi (250 ms) did not start"
    a_pid=$SHOP_FCGI_PID; PIDS+=("$a_pid")
    shop_fcgi_start "$W/b.sock" "$W/b.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
        SHOP_STOCK_DEADLINE_MS=1000 "${WAREHOUSES[@]}" || bail "shop-fcgi (1 s) did not start"
    b_pid=$SHOP_FCGI_PID; PIDS+=("$b_pid")
    NGX=$W/ngx-fcgi
    shop_nginx_prepare "$NGX" WORKER_PROCESSES=1 &&
    shop_nginx_add_server "$NGX" a "$SHOP_SRCDIR/conf/nginx-fcgi.server.conf.in" \
        LISTEN="127.0.0.1:$a_port" BASE_PATH="" FCGI_SOCKET="$W/a.sock" BODY_MAX=2m &&
    shop_nginx_add_server "$NGX" b "$SHOP_SRCDIR/conf/nginx-fcgi.server.conf.in" \
        LISTEN="127.0.0.1:$b_port" BASE_PATH="" FCGI_SOCKET="$W/b.sock" BODY_MAX=2m || bail "nginx configuration"
    shop_nginx_start "$NGX" || bail "nginx did not start"
    shop_wait_http "http://127.0.0.1:$a_port/healthz" 10 || bail "no answer"

    fanout fcgi "http://127.0.0.1:$a_port" "http://127.0.0.1:$b_port" "$a_pid" 'shop-fcgi stock' 2

    shop_nginx_stop "$NGX"; NGX=""
    shop_fcgi_stop "$a_pid"; shop_fcgi_stop "$b_pid"; PIDS=()
    ! grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/a.log" "$W/b.log"
    result $? "fcgi: shop-fcgi logs are free of sanitizer reports"
    grep -h -A20 "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/a.log" "$W/b.log" | head -60 | sed 's/^/#   /'
}

run_module() {
    local a_port b_port worker common
    read -r a_port b_port <<<"$(shop_free_ports 2 | tr '\n' ' ')"
    NGX=$W/ngx-module
    common=(DATABASE="$DSN" ADMIN_TOKEN_FILE="$W/token" WEBHOOK_SECRET_FILE="$W/webhook" POOL_SIZE=2)
    shop_nginx_prepare "$NGX" WORKER_PROCESSES=1 &&
    shop_nginx_add_module "$NGX" a LISTEN="127.0.0.1:$a_port" "${common[@]}" \
        SETTINGS="$(shop_module_warehouse_settings SHOP_STOCK_DEADLINE_MS=250 "${WAREHOUSES[@]}")" &&
    shop_nginx_add_module "$NGX" b LISTEN="127.0.0.1:$b_port" "${common[@]}" \
        SETTINGS="$(shop_module_warehouse_settings SHOP_STOCK_DEADLINE_MS=1000 "${WAREHOUSES[@]}")" \
        || bail "nginx configuration"
    shop_nginx_start "$NGX" || bail "nginx did not start"
    shop_wait_http "http://127.0.0.1:$a_port/readyz" 10 "$SHOP_NGINX_PID" || bail "no answer"
    worker=$(pgrep -P "$SHOP_NGINX_PID" | head -n 1)

    # --pid: the one worker (its descriptors); --shops 2: the two servers
    fanout module "http://127.0.0.1:$a_port" "http://127.0.0.1:$b_port" "$worker" 'shop-nginx%' 2

    ! grep -E '\[(alert|crit|emerg)\]|exited on signal' "$NGX/logs/error.log" >"$W/module-alerts"
    result $? "module: no alert, crit or emerg in nginx's error log, no worker crashed"
    head -n 20 "$W/module-alerts" | sed 's/^/#   /'
    shop_nginx_stop "$NGX"; NGX=""
}

for t in "${TARGETS[@]}"; do
    case "$t" in
        fcgi)   run_fcgi ;;
        module) run_module ;;
        *)      bail "unknown target $t (fcgi, module)" ;;
    esac
done
echo "1..$n"
exit $rc
