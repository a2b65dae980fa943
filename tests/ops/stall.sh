#!/usr/bin/env bash
# tests/ops/stall.sh: PostgreSQL stalls (SIGSTOP of the postmaster and every
# backend, then SIGCONT) under stock-check load, both front-ends of one
# nginx (tests/ops/stall.py): every wait is bounded in the stall, /healthz
# answers, and both answer stock checks again within 2 s of SIGCONT without
# a reload or restart (issue 19). Statement timeout 2 s on both; a 20 s
# stall (STALL_SECONDS), which left a module stock-check pool down for good
# before the fix. Then terminate.py: every backend of the front-ends
# terminated three times while the database stays up (pg_terminate_backend):
# only statements in flight fail. About 40 s.
# TAP; `make check` runs it.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`);
# SHOP_KEEP_TMP=1 keeps the temp dir. Logs: BUILD/tests/ops/stall-logs.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

ops_init stall
ops_pg_up 200
ops_stock_up
ops_fcgi FCGI "$T/fcgi.sock" "$T/shop-fcgi.log" SHOP_STATEMENT_TIMEOUT=2s
read -r MPORT FPORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
ops_both "$T/nginx" "$MPORT" "$FPORT" "$T/fcgi.sock" "shop_statement_timeout 2s;"
ops_nginx "$T/nginx"
ops_ready "http://127.0.0.1:$MPORT" "$NGINX_PID"
ops_ready "http://127.0.0.1:$FPORT" "$FCGI"
PG_PID=$(head -1 "$T/pg/data/postmaster.pid")
tap_ok "setup: PostgreSQL (port $PG_PORT, pid $PG_PID), shop-fcgi (pid $FCGI), nginx (pid $NGINX_PID) with the module on :$MPORT and fastcgi_pass on :$FPORT"

ops_py stall.py --front "module=http://127.0.0.1:$MPORT" --front "fcgi=http://127.0.0.1:$FPORT" \
    --dsn "$DSN" --pg-pid "$PG_PID" --statement-timeout 2 --stall "${STALL_SECONDS:-20}"
# The same servers: the database closes their connections while it stays up.
ops_py terminate.py --front "module=http://127.0.0.1:$MPORT" --front "fcgi=http://127.0.0.1:$FPORT" \
    --dsn "$DSN"

# A transaction that writes events holds back every later one until it
# ends: shop.emit refuses to write one after 2 s.
out=$(shop_psql shop -v ON_ERROR_STOP=1 2>&1 <<'SQL'
BEGIN;
SELECT shop.emit('product.updated', 'products', '{"ops":"first"}');
SELECT pg_sleep(2.2);
SELECT shop.emit('product.updated', 'products', '{"ops":"late"}');
COMMIT;
SQL
)
tap_is "shop.emit refuses an event in a transaction older than 2 s, and nothing of it commits" \
    "$(printf '%s' "$out" | grep -q 'must end within 2 s' \
       && [ "$(shop_psql shop -tAc "SELECT count(*) FROM shop.events WHERE data->>'ops' IS NOT NULL")" = 0 ]; echo $?)" \
    "$out"

# shop-fcgi gone: nginx answers 503 with the same status in the problem
# (it was a 502 whose body said 503), Retry-After, and how to retry an order.
shop_fcgi_stop "$FCGI"
out=$(curl -s -D - -o "$T/down.json" -H 'Content-Type: application/json' \
      -d '{"items":[{"sku":"SKU-000001","quantity":1}],"customer_email":"a@example.com"}' \
      "http://127.0.0.1:$FPORT/orders")
status=$(printf '%s' "$out" | head -1 | cut -d' ' -f2)
tap_is "[fcgi] shop-fcgi stopped: POST /orders is 503 with a 503 problem, Retry-After and the Idempotency-Key advice" \
    "$( [ "$status" = 503 ] && printf '%s' "$out" | grep -qi '^Retry-After: 1' \
        && grep -q '"status":503' "$T/down.json" && grep -q 'Idempotency-Key' "$T/down.json"; echo $?)" \
    "status $status" "$(cat "$T/down.json")"

ops_nginx_alerts "$T/nginx"
ops_sanitizers
ops_done
