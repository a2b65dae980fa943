#!/bin/bash
# More concurrent slow requests than the pool holds (connections x pipeline
# depth in flight, plus the queue): the excess gets 503 with Retry-After at
# once, the queued ones 503 after the queue timeout, the rest complete once
# the database moves again; nothing hangs and the pool stays usable.
#
#   tests/module/exhaustion.sh URL PGENV NGINX_PREFIX      (see lib.sh)
#
# URL: a location with a small pool, e.g.
#     location /tiny/ { shop; shop_pool_size 1; shop_pool_queue 2 500ms; }
# SHOP_POOL_SIZE and SHOP_POOL_QUEUE (environment or PGENV) tell the test
# that location's numbers (default 1 and 2); the pipeline depth is 32.

. "$(dirname "$0")/lib.sh"
mt_args "$@"
mt_plan 7

size=${SHOP_POOL_SIZE:-1}
queue=${SHOP_POOL_QUEUE:-2}
depth=${SHOP_PIPELINE_DEPTH:-32}
cap=$((size * depth + queue))
extra=16
n=$((cap + extra))

a=$(mt_product 1)
[ -n "$a" ] || mt_bail "no products: seed the database"
mark=$(mt_log_mark)

mt_lock "$a"
mt_ok $? "a psql session holds a row lock on product $a"

t0=$(date +%s.%N)
pids=
for i in $(seq $n); do
    mt_patch "$a" "$MT_WORK/x.$i" -m 20 &
    pids="$pids $!"
done
sleep 2
mt_unlock
# shellcheck disable=SC2086
wait $pids
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')

ok=0; busy=0; fast=0; other=0; noretry=0
for i in $(seq $n); do
    f=$MT_WORK/x.$i
    case $(mt_status "$f") in
    200) ok=$((ok + 1)) ;;
    503)
        busy=$((busy + 1))
        mt_faster "$(mt_secs "$f")" 0.3 && fast=$((fast + 1))
        [ -n "$(mt_header "$f" Retry-After)" ] || noretry=$((noretry + 1))
        ;;
    *) other=$((other + 1)) ;;
    esac
done
mt_diag "$n requests for a capacity of $cap ($size x $depth in flight + $queue queued): $ok x 200, $busy x 503 ($fast within 0.3 s), $other other, ${secs}s in all"

[ $other = 0 ]
mt_ok $? "every request got an answer, 200 or 503; none hung (all done in ${secs}s)"

[ $fast -ge $extra ]
mt_ok $? "the excess got 503 at once: $fast answers within 0.3 s (>= $extra)"

[ $busy -ge $((n - size * depth)) ]
mt_ok $? "$busy x 503: everything past what the connections carry (>= $((n - size * depth)))"

[ $noretry = 0 ] && [ $busy -gt 0 ]
mt_ok $? "every 503 carries Retry-After"

[ $ok -ge 1 ]
mt_ok $? "the requests in flight completed once the lock went: $ok x 200"

good=0
for i in $(seq 10); do
    mt_req "$MT_WORK/g" GET "/products/$a"
    [ "$(mt_status "$MT_WORK/g")" = 200 ] && good=$((good + 1))
done
above=$(mt_log_since "$mark" | grep -E '\[(error|crit|alert|emerg)\]')
[ $good = 10 ] && [ -z "$above" ]
mt_ok $? "the pool is usable again (10/10 GET 200) and logged no error"
[ -z "$above" ] || printf '%s\n' "$above" | head -n 5 | sed 's/^/#   /'

mt_done
