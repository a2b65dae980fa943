#!/bin/bash
# The worker never waits for the database: while a PATCH of product A waits
# for a row lock another session holds, /healthz and GET of product B answer
# in milliseconds from the same worker; after the lock goes, the PATCH
# completes. Run it against nginx with worker_processes 1 and a pool of 2+.
#
#   tests/module/nonblocking.sh URL PGENV NGINX_PREFIX      (see lib.sh)

. "$(dirname "$0")/lib.sh"
mt_args "$@"
mt_plan 9

a=$(mt_product 1)
b=$(mt_product 2)
[ -n "$a" ] && [ -n "$b" ] || mt_bail "no products: seed the database"
nworkers=$(mt_workers | wc -l)
[ "$nworkers" = 1 ] || mt_diag "nginx has $nworkers workers; the proof needs worker_processes 1"

mt_lock "$a"
mt_ok $? "a psql session holds a row lock on product $a"

mt_patch "$a" "$MT_WORK/patch" &
patch=$!

# the PATCH reaches the database and waits there
for i in $(seq 50); do [ "$(mt_waiting)" -ge 1 ] && break; sleep 0.05; done
kill -0 "$patch" 2>/dev/null && [ "$(mt_waiting)" -ge 1 ]
mt_ok $? "PATCH /products/$a waits for the lock in the database"

slow=0; worst=0
for i in $(seq 10); do
    mt_req "$MT_WORK/h" GET /healthz
    s=$(mt_secs "$MT_WORK/h")
    [ "$(mt_status "$MT_WORK/h")" = 200 ] && mt_faster "$s" 0.1 || slow=$((slow + 1))
    mt_faster "$s" "$worst" || worst=$s
done
mt_ok $slow "GET /healthz x10 while the PATCH waits: 200 in < 100 ms each (slowest ${worst}s)"

slow=0; worst=0
for i in $(seq 10); do
    mt_req "$MT_WORK/b" GET "/products/$b"
    s=$(mt_secs "$MT_WORK/b")
    [ "$(mt_status "$MT_WORK/b")" = 200 ] && mt_faster "$s" 0.1 || slow=$((slow + 1))
    mt_faster "$s" "$worst" || worst=$s
done
mt_ok $slow "GET /products/$b x10 while the PATCH waits: 200 in < 100 ms each (slowest ${worst}s)"

mt_req "$MT_WORK/r" GET /readyz
[ "$(mt_status "$MT_WORK/r")" = 200 ] && mt_faster "$(mt_secs "$MT_WORK/r")" 0.1
mt_ok $? "GET /readyz answers 200 from the database meanwhile ($(mt_secs "$MT_WORK/r")s)"

kill -0 "$patch" 2>/dev/null
mt_ok $? "the PATCH is still waiting after all that"

sleep 0.3
mt_unlock
wait "$patch"
st=$(mt_status "$MT_WORK/patch")
[ "$st" = 200 ]
mt_ok $? "after the lock goes, the PATCH completes: $st in $(mt_secs "$MT_WORK/patch")s"

mt_faster 0.3 "$(mt_secs "$MT_WORK/patch")"
mt_ok $? "the PATCH did wait for the lock (>= 0.3 s)"

[ "$(mt_psql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shop-nginx'
                 AND state = 'idle in transaction'")" = 0 ]
mt_ok $? "no connection of nginx's is left inside a transaction"

mt_done
