#!/bin/bash
# Clients that go away while their statement waits in the database: the
# pool forgets them, reads and drops their results when they come, and
# stays usable; nothing is leaked and the error log has nothing above info.
#
#   tests/module/abort.sh URL PGENV NGINX_PREFIX      (see lib.sh)

. "$(dirname "$0")/lib.sh"
mt_args "$@"
mt_plan 8

a=$(mt_product 1)
b=$(mt_product 2)
[ -n "$a" ] || mt_bail "no products: seed the database"
mark=$(mt_log_mark)
worker=$(mt_workers | head -n 1)

# warm: every connection of the pool in use once
for i in $(seq 20); do mt_req "$MT_WORK/w" GET "/products/$b"; done
fds=$(mt_fds "$worker")
conns=$(mt_psql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shop-nginx'")

mt_lock "$a"
mt_ok $? "a psql session holds a row lock on product $a"

n=8
pids=
for i in $(seq $n); do
    mt_patch "$a" "$MT_WORK/abort.$i" -m 0.5 &
    pids="$pids $!"
done
# shellcheck disable=SC2086
wait $pids
gone=0
for i in $(seq $n); do [ "$(mt_status "$MT_WORK/abort.$i")" = 000 ] && gone=$((gone + 1)); done
[ $gone = $n ]
mt_ok $? "$n clients sent PATCH /products/$a and gave up after 0.5 s ($gone without an answer)"

waiting=$(mt_waiting)
[ "$waiting" -ge 1 ]
mt_ok $? "their statements still wait in the database ($waiting waiting for the lock)"

mt_unlock
for i in $(seq 50); do [ "$(mt_waiting)" = 0 ] && break; sleep 0.1; done

good=0
for i in $(seq 30); do
    mt_req "$MT_WORK/g" GET "/products/$b"
    [ "$(mt_status "$MT_WORK/g")" = 200 ] && good=$((good + 1))
done
mt_patch "$a" "$MT_WORK/p"
[ $good = 30 ] && [ "$(mt_status "$MT_WORK/p")" = 200 ]
mt_ok $? "lock released: 30/30 GET /products/$b are 200, PATCH /products/$a is $(mt_status "$MT_WORK/p")"

now=$(mt_psql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shop-nginx'")
[ "$now" = "$conns" ]
mt_ok $? "the pool kept its connections: $conns before, $now after"

[ "$(mt_psql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shop-nginx'
                 AND state <> 'idle'")" = 0 ]
mt_ok $? "every connection of nginx's is idle again"

[ "$(mt_fds "$worker")" = "$fds" ]
mt_ok $? "the worker's open files: $fds before, $(mt_fds "$worker") after"

above=$(mt_log_since "$mark" | grep -E '\[(warn|error|crit|alert|emerg)\]')
[ -z "$above" ]
mt_ok $? "nothing above info in the error log"
[ -z "$above" ] || printf '%s\n' "$above" | head -n 5 | sed 's/^/#   /'

mt_done
