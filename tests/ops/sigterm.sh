#!/usr/bin/env bash
# tests/ops/sigterm.sh: a rolling restart of two shop-fcgi behind one nginx
# upstream under load loses no request (tests/ops/sigterm.py): SIGTERM to
# responder A while a slow PATCH (waiting on a row lock a psql session holds)
# is in flight on it, A started again, then the same for B. The pair:
# tests/fcgi/pair.server.conf.in (two spawn-fcgi unix sockets,
# fastcgi_next_upstream error timeout, max_fails=0 so a restarted responder
# is used again at once); a second server goes straight to A. About 10 s.
# TAP; `make check` runs it.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`);
# SHOP_KEEP_TMP=1 keeps the temp dir. Logs: BUILD/tests/ops/sigterm-logs.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

ops_init sigterm
ops_pg_up 200
ops_stock_up
ops_fcgi A "$T/a.sock" "$T/a.log"
ops_fcgi B "$T/b.sock" "$T/b.log"
read -r PAIR_PORT DIRECT_PORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
# The pair: shop-fcgi's own template (tests/fcgi) when it is there and takes
# these placeholders, else ours (the same upstream).
pair_conf() {
    [ -r "$1" ] && PAIR_CONF=$1 &&
    shop_nginx_add_server "$T/nginx" pair "$1" \
        LISTEN="127.0.0.1:$PAIR_PORT" SOCKET_A="$T/a.sock" SOCKET_B="$T/b.sock" MAX_FAILS=0
}
{
    shop_nginx_prepare "$T/nginx" WORKER_PROCESSES=2 ERROR_LOG_LEVEL=info ACCESS_LOG="$T/nginx/logs/access.log shop" &&
    { pair_conf "$SRC/tests/fcgi/pair.server.conf.in" 2>/dev/null || pair_conf "$OPS/pair.server.conf.in"; } &&
    shop_nginx_add_server "$T/nginx" direct "$OPS/direct.server.conf.in" \
        LISTEN="127.0.0.1:$DIRECT_PORT" SOCKET="$T/a.sock"
} 2>"$T/nginx-conf.err" || bail "nginx configuration" "$(cat "$T/nginx-conf.err")"
diag "the pair: ${PAIR_CONF#"$SRC"/}"
ops_nginx "$T/nginx"
ops_ready "http://127.0.0.1:$PAIR_PORT" "$NGINX_PID"
ops_ready "http://127.0.0.1:$DIRECT_PORT" "$A"
tap_ok "setup: shop-fcgi A (pid $A) and B (pid $B) behind nginx (pid $NGINX_PID): the pair on :$PAIR_PORT, A alone on :$DIRECT_PORT"

ops_py sigterm.py --pair "http://127.0.0.1:$PAIR_PORT" --direct "http://127.0.0.1:$DIRECT_PORT" \
    --dsn "$DSN" --token-file "$T/admin.token" --pid-a "$A" --pid-b "$B" --log-a "$T/a.log" \
    --restart-a "$(ops_fcgi_cmd a2 "$T/a.sock" "$T/a2.log")" \
    --restart-b "$(ops_fcgi_cmd b2 "$T/b.sock" "$T/b2.log")"

# Our children: their exit status.
for who in A B; do
    pid=${!who}
    if shop_alive "$pid"; then
        tap_not_ok "$who (pid $pid) exited 0 after SIGTERM" "still running"
    else
        st=0; wait "$pid" 2>/dev/null || st=$?
        tap_is "$who (pid $pid) exited 0 after SIGTERM (status $st)" "$([ "$st" = 0 ] && echo 0 || echo 1)" \
            "$(tail -n 5 "$T/$(tr 'AB' 'ab' <<<"$who").log")"
    fi
done
FCGI_PIDS=()
n2=$(grep -c '"route"' "$T/a2.log" 2>/dev/null); n2b=$(grep -c '"route"' "$T/b2.log" 2>/dev/null)
diag "after the restart A answered ${n2:-0} requests, B ${n2b:-0}"
refused=$(grep -c 'Connection refused' "$T/nginx/logs/error.log")
out=$(grep -E 'prematurely closed|reset by peer|timed out|no live upstreams|Broken pipe' "$T/nginx/logs/error.log" | head -n 10)
[ -z "$out" ]
tap_is "nginx saw no reset, premature close or timeout from a responder ($refused refused connects went to the other)" "$?" "$out"
# A restart removes the socket and binds a new one, then spawn-fcgi gives it
# mode 0666: a connect in between finds no file, or a socket nginx's workers
# may not write to yet. nginx logs that at crit and treats it as an error of
# that server (the next one takes the request).
ops_nginx_alerts "$T/nginx" 'connect\(\) to unix:.*\.sock failed \((2: No such file or directory|13: Permission denied)\)' \
    "connects while a restart re-created a socket"
ops_sanitizers
ops_done
