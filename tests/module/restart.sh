#!/bin/bash
# PostgreSQL restarts under a running nginx: during the outage requests get
# 503 (with Retry-After) at once; once the database is back, requests
# succeed again, without touching nginx (same master, same workers).
#
#   tests/module/restart.sh URL PGENV NGINX_PREFIX      (see lib.sh)
#
# PGENV must name PGDATA. As root, pg_ctl runs as the owner of PGDATA.

. "$(dirname "$0")/lib.sh"
mt_args "$@"
mt_plan 11

[ -n "${PGDATA:-}" ] && [ -r "$PGDATA/postmaster.opts" ] || mt_bail "PGENV must give PGDATA of a running cluster"
pgctl=${PGCTL:-$(pg_config --bindir)/pg_ctl}
[ -x "$pgctl" ] || pgctl=$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)

as_owner() {
    local u; u=$(stat -c %U "$PGDATA")
    if [ "$(id -u)" = 0 ] && [ "$u" != root ]; then
        (cd / && setpriv --reuid="$u" --regid="$(stat -c %G "$PGDATA")" --init-groups -- "$@")
    else
        (cd / && "$@")
    fi
}

# start again with the options it runs with now
eval "set -- $(cat "$PGDATA/postmaster.opts")"
shift
opts=
while [ $# -gt 0 ]; do
    case $1 in
    -D) shift ;;
    *) opts="$opts $(printf '%q' "$1")" ;;
    esac
    shift
done

id=$(mt_product 1)
master=$(mt_master)
workers=$(mt_workers | tr '\n' ' ')

mt_req "$MT_WORK/r" GET /readyz
[ "$(mt_status "$MT_WORK/r")" = 200 ]
mt_ok $? "before: GET /readyz is 200"

# requests in flight when it goes: a PATCH waiting for a row lock. A fast
# shutdown ends the lock holder too, and a waiter may then commit before its
# own backend ends: 200 is right for it, if the table shows the change.
v0=$(mt_psql -c "SELECT version FROM shop.products WHERE id = $id")
mt_lock "$id" >/dev/null
pids=
for i in 1 2 3 4; do
    mt_patch "$id" "$MT_WORK/inflight.$i" -m 10 &
    pids="$pids $!"
done
for i in $(seq 50); do [ "$(mt_waiting)" -ge 1 ] && break; sleep 0.05; done

as_owner "$pgctl" -D "$PGDATA" -m fast -w -t 30 stop >"$MT_WORK/stop.log" 2>&1
mt_ok $? "pg_ctl stop -m fast"

# shellcheck disable=SC2086
wait $pids
mt_unlock 2>/dev/null
bad=0 committed=0
for i in 1 2 3 4; do
    case $(mt_status "$MT_WORK/inflight.$i") in
    503) mt_faster "$(mt_secs "$MT_WORK/inflight.$i")" 5 || bad=$((bad + 1)) ;;
    200) committed=$((committed + 1)) ;;
    *) bad=$((bad + 1)) ;;
    esac
done
mt_ok $bad "4 PATCHes in flight when the database went: 503 each, or 200 if committed while it stopped" \
    "($committed x 200, $bad neither)"
[ $bad = 0 ] || mt_diag "their answers (status seconds): $(for i in 1 2 3 4; do
    printf '%s; ' "$(head -n 1 "$MT_WORK/inflight.$i")"; done)"

bad=0; slow=0; noretry=0; n=0; worst=0
end=$((SECONDS + 2))
while [ $SECONDS -lt $end ]; do
    for path in "/products/$id" /readyz; do
        mt_req "$MT_WORK/d" GET "$path"
        n=$((n + 1))
        [ "$(mt_status "$MT_WORK/d")" = 503 ] || bad=$((bad + 1))
        [ -n "$(mt_header "$MT_WORK/d" Retry-After)" ] || noretry=$((noretry + 1))
        s=$(mt_secs "$MT_WORK/d")
        mt_faster "$s" 0.2 || slow=$((slow + 1))
        mt_faster "$s" "$worst" || worst=$s
    done
    sleep 0.05
done
mt_ok $bad "database down: $n requests, all 503 ($bad were not)"
mt_ok $noretry "... each with Retry-After"
mt_ok $slow "... each within 200 ms (slowest ${worst}s): the pool fails fast"

mt_req "$MT_WORK/h" GET /healthz
[ "$(mt_status "$MT_WORK/h")" = 200 ]
mt_ok $? "GET /healthz is 200 all along"

as_owner "$pgctl" -D "$PGDATA" -w -t 30 -l "$PGDATA/shop-restart.log" -o "$opts" start >"$MT_WORK/start.log" 2>&1
mt_ok $? "pg_ctl start"

t0=$(date +%s.%N)
ok=1
for i in $(seq 100); do
    mt_req "$MT_WORK/u" GET /readyz
    if [ "$(mt_status "$MT_WORK/u")" = 200 ]; then ok=0; break; fi
    sleep 0.1
done
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
good=0
for i in $(seq 20); do
    mt_req "$MT_WORK/g" GET "/products/$id"
    [ "$(mt_status "$MT_WORK/g")" = 200 ] && good=$((good + 1))
done
[ $ok = 0 ] && [ $good = 20 ]
mt_ok $? "database back: /readyz 200 after ${secs}s, then 20/20 GET /products/$id are 200"

v1=$(mt_psql -c "SELECT version FROM shop.products WHERE id = $id")
[ -n "$v0" ] && [ -n "$v1" ] && [ $((v1 - v0)) -ge "$committed" ] && [ $((v1 - v0)) -le 4 ]
mt_ok $? "every in-flight PATCH answered 200 is in the table (version $v0 -> $v1, $committed x 200)"

[ "$(mt_master)" = "$master" ] && [ "$(mt_workers | tr '\n' ' ')" = "$workers" ]
mt_ok $? "nginx untouched: master $master, workers $workers"

mt_done
