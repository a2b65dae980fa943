#!/bin/bash
# tests/events/run.sh: the SSE event tests (events.py) against every
# front-end in TARGETS, each on processes of its own over one throwaway
# PostgreSQL; then a clean stop under open streams. TAP; `make check` runs it.
#
#   SHOP_BUILDDIR=/path/to/build tests/events/run.sh [--heartbeat]
#   EVENTS_TARGETS="fcgi module" tests/events/run.sh     (override the list)
#
#   fcgi    shop-fcgi (SHOP_MAX_STREAMS=8) behind nginx with the /events
#           location of conf/nginx-fcgi.server.conf.in (fastcgi_buffering
#           off, long read timeout); the stop: SIGTERM to shop-fcgi
#   module  nginx (worker_processes 1) with the module (shop_max_subscribers
#           8); events.py, then websocket.py (WebSocket is the module's
#           only); the stop: nginx -s quit.
#
# Next to each, the same shop with a small replay limit ($REPLAY_LIMIT, so
# that a reset takes tens of events, not 10,000): for fcgi a second
# shop-fcgi (SHOP_EVENT_REPLAY_LIMIT) behind a second nginx server, another
# process with a hub of its own; for the module a location /limited/ of the
# same server (shop_event_replay_limit). events.py and websocket.py get it
# as --limited-url. The main front-ends get the largest limit ($BIG_LIMIT):
# the concurrent writers' burst checks a resume mid-burst, and under load a
# client can be seconds (tens of thousands of events) behind the hub when it
# comes back; with the default (10,000) that resume would get a reset, which
# is right but not what that test is about.
#
# EVENTS_BURST=N: the concurrent writers' burst commits N events (default
# 20,000; 100,000 for the full check).
#
# Everything started here is stopped here, by PID.
set -u -o pipefail
SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHOP_BUILDDIR=${SHOP_BUILDDIR:-$SHOP_SRCDIR}
. "$SHOP_SRCDIR/tests/lib.sh"

# ---- the front-ends under test ------------------------------------------
TARGETS=(fcgi)
# The module's event hub landed (e21baab);
# this line tests it too (comment it out to test shop-fcgi alone):
TARGETS+=(module)
[ -n "${EVENTS_TARGETS:-}" ] && read -r -a TARGETS <<<"$EVENTS_TARGETS"
# --------------------------------------------------------------------------

W=$(mktemp -d /tmp/shop-events.XXXXXX)
chmod 755 "$W"
F_PID="" L_PID="" NGX="" C_PIDS=()
REPLAY_LIMIT=50 BIG_LIMIT=1000000
cleanup() {
    local p
    for p in "${C_PIDS[@]}"; do shop_stop_pid "$p" TERM 2; done
    [ -n "$NGX" ] && shop_nginx_stop "$NGX"
    [ -n "$F_PID" ] && shop_fcgi_stop "$F_PID"
    [ -n "$L_PID" ] && shop_fcgi_stop "$L_PID"
    shop_pg_stop "$W/pg"
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$W"; else shop_say "kept $W"; fi
}
trap cleanup EXIT
bail() { echo "Bail out! $*"; exit 1; }

read -r PG_PORT <<<"$(shop_free_ports 1)"
shop_pg_start "$W/pg" "$PG_PORT" "$W/pg/run" || bail "PostgreSQL did not start"
shop_createdb events && shop_migrate events >/dev/null || bail "migration failed"
shop_seed events 50 >/dev/null || bail "seed failed"
shop_write_secret "$W/token" || bail "token"
shop_write_secret "$W/webhook" || bail "webhook secret"
DSN="host=$SHOP_PG_SOCKDIR port=$PG_PORT user=shop dbname=events"
# The database restart events.py asks for: same directory, port and socket.
RESTART="bash -c '. \"$SHOP_SRCDIR/tests/lib.sh\"; shop_pg_stop \"$W/pg\" && shop_pg_start \"$W/pg\" $PG_PORT \"$W/pg/run\"' >/dev/null 2>&1"

n=0 rc=0
result() { # COND-STATUS NAME
    n=$((n + 1))
    if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; rc=1; fi
}

# events TARGET URL PID [EVENTS.PY ARGS...]: events.py, renumbered, "TARGET: " before each.
events() {
    local t=$1 url=$2 pid=$3; shift 3
    python3 "$SHOP_SRCDIR/tests/events/events.py" --url "$url" --dsn "$DSN" \
        --token-file "$W/token" --pid "$pid" --max-streams 8 --restart-cmd "$RESTART" \
        --replay-limit "$REPLAY_LIMIT" "$@" "${EXTRA[@]}" >"$W/$t.tap" || rc=1
    shop_tap_merge "$W/$t.tap" "$t"
}

# websocket TARGET URL [WEBSOCKET.PY ARGS...]: websocket.py, the same way.
websocket() {
    local t=$1 url=$2; shift 2
    python3 "$SHOP_SRCDIR/tests/events/websocket.py" --url "$url" --dsn "$DSN" \
        --token-file "$W/token" --replay-limit "$REPLAY_LIMIT" "$@" "${EXTRA[@]}" >"$W/$t-ws.tap" || rc=1
    shop_tap_merge "$W/$t-ws.tap" "$t websocket"
}

# open_streams URL: three clients on /events (C_PIDS), then a second to settle.
open_streams() {
    local i
    for i in 1 2 3; do
        curl -sN --max-time 20 "$1/events" >"$W/term$i.out" 2>&1 &
        C_PIDS+=($!)
    done
    sleep 1
}

# streams_ended: waits for the three clients; sets crc (a curl exit status
# other than 0, if any) and ms (since t0).
streams_ended() {
    local p
    crc=0
    for p in "${C_PIDS[@]}"; do wait "$p" || crc=$?; done
    C_PIDS=()
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}

run_fcgi() {
    local port lport crc ms
    { read -r port; read -r lport; } <<<"$(shop_free_ports 2)"
    shop_fcgi_start "$W/fcgi.sock" "$W/fcgi.log" SHOP_DATABASE_URL="$DSN" SHOP_ADMIN_TOKEN_FILE="$W/token" \
        SHOP_MAX_STREAMS=8 SHOP_EVENT_REPLAY_LIMIT="$BIG_LIMIT" || bail "shop-fcgi did not start"
    F_PID=$SHOP_FCGI_PID
    shop_fcgi_start "$W/fcgi-limited.sock" "$W/fcgi-limited.log" SHOP_DATABASE_URL="$DSN" \
        SHOP_ADMIN_TOKEN_FILE="$W/token" SHOP_MAX_STREAMS=8 SHOP_EVENT_REPLAY_LIMIT="$REPLAY_LIMIT" ||
        bail "shop-fcgi (replay limit $REPLAY_LIMIT) did not start"
    L_PID=$SHOP_FCGI_PID
    NGX=$W/ngx-fcgi
    shop_nginx_prepare "$NGX" WORKER_PROCESSES=1 &&
    shop_nginx_add_server "$NGX" fcgi "$SHOP_SRCDIR/conf/nginx-fcgi.server.conf.in" \
        LISTEN="127.0.0.1:$port" BASE_PATH="" FCGI_SOCKET="$W/fcgi.sock" BODY_MAX=2m &&
    shop_nginx_add_server "$NGX" fcgi-limited "$SHOP_SRCDIR/conf/nginx-fcgi.server.conf.in" \
        LISTEN="127.0.0.1:$lport" BASE_PATH="" FCGI_SOCKET="$W/fcgi-limited.sock" BODY_MAX=2m ||
        bail "nginx configuration"
    shop_nginx_start "$NGX" || bail "nginx did not start"
    shop_wait_http "http://127.0.0.1:$port/healthz" 10 || bail "no answer"
    shop_wait_http "http://127.0.0.1:$lport/healthz" 10 || bail "no answer (replay limit $REPLAY_LIMIT)"

    events fcgi "http://127.0.0.1:$port" "$F_PID" --log "$W/fcgi.log" --limited-url "http://127.0.0.1:$lport"

    shop_fcgi_stop "$L_PID" && grep -q '"msg":"stopped"' "$W/fcgi-limited.log"
    result $? "fcgi: SIGTERM: shop-fcgi with the replay limit $REPLAY_LIMIT stopped"
    L_PID=""

    # SIGTERM with streams open: each ends cleanly (curl sees the end of the
    # chunked response: exit 0), shop-fcgi exits 0.
    open_streams "http://127.0.0.1:$port"
    t0=$(date +%s%N)
    kill -TERM "$F_PID"
    streams_ended
    [ "$crc" = 0 ] && [ "$ms" -lt 5000 ]
    result $? "fcgi: SIGTERM: three open streams end cleanly (curl exit $crc after ${ms} ms)"
    shop_wait_gone "$F_PID" 10 && grep -q '"msg":"stopped"' "$W/fcgi.log"
    result $? "fcgi: SIGTERM: shop-fcgi stopped"
    F_PID=""
    ! grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/fcgi.log" "$W/fcgi-limited.log"
    result $? "fcgi: shop-fcgi logs are free of sanitizer reports"
    grep -h -A20 "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$W/fcgi.log" "$W/fcgi-limited.log" |
        head -60 | sed 's/^/#   /'
    shop_nginx_stop "$NGX"; NGX=""
}

run_module() {
    local port worker master crc ms
    read -r port <<<"$(shop_free_ports 1)"
    NGX=$W/ngx-module
    shop_nginx_prepare "$NGX" WORKER_PROCESSES=1 ERROR_LOG_LEVEL=info &&
    shop_nginx_add_module "$NGX" module LISTEN="127.0.0.1:$port" DATABASE="$DSN" \
        ADMIN_TOKEN_FILE="$W/token" WEBHOOK_SECRET_FILE="$W/webhook" POOL_SIZE=2 \
        SETTINGS="    shop_max_subscribers 8;
    shop_event_replay_limit $BIG_LIMIT;" \
        LOCATIONS="    location /limited/ { shop; shop_event_replay_limit $REPLAY_LIMIT; }" ||
        bail "nginx configuration"
    shop_nginx_start "$NGX" || bail "nginx did not start"
    master=$SHOP_NGINX_PID
    shop_wait_http "http://127.0.0.1:$port/readyz" 10 "$master" || bail "no answer"
    worker=$(pgrep -P "$master" | head -n 1)

    # --pid: the one worker (its RSS); no --log: the drop message is shop-fcgi's
    events module "http://127.0.0.1:$port" "$worker" --limited-url "http://127.0.0.1:$port/limited"
    websocket module "http://127.0.0.1:$port" --limited-url "http://127.0.0.1:$port/limited"

    # nginx -s quit with streams open: each ends cleanly, nginx exits.
    open_streams "http://127.0.0.1:$port"
    t0=$(date +%s%N)
    "$SHOP_NGINX" -q -p "$NGX" -c "$NGX/nginx.conf" -s quit 2>/dev/null
    streams_ended
    [ "$crc" = 0 ] && [ "$ms" -lt 5000 ]
    result $? "module: nginx -s quit: three open streams end cleanly (curl exit $crc after ${ms} ms)"
    shop_wait_gone "$master" 10
    result $? "module: nginx -s quit: nginx stopped"
    ! grep -E '\[(alert|crit|emerg)\]|exited on signal' "$NGX/logs/error.log" >"$W/module-alerts"
    result $? "module: no alert, crit or emerg in nginx's error log, no worker crashed"
    head -n 20 "$W/module-alerts" | sed 's/^/#   /'
    shop_nginx_stop "$NGX"; NGX=""
}

EXTRA=("$@")
for t in "${TARGETS[@]}"; do
    case "$t" in
        fcgi)   run_fcgi ;;
        module) run_module ;;
        *)      bail "unknown target $t (fcgi, module)" ;;
    esac
done
echo "1..$n"
exit $rc
