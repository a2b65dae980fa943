#!/usr/bin/env bash
# tests/ops/durable.sh: what ./shopdev up runs is durable (issue 19, item 4).
# PostgreSQL as `up` starts it (SHOP_PG_DURABLE=1: fsync and
# synchronous_commit on), both front-ends of one nginx; orders answered 201
# by each front-end, then PostgreSQL crashes (pg_ctl stop -m immediate) and
# starts again: every acknowledged order is there with its lines, its stock
# and its order.created event. About 10 s. TAP; `make check` runs it.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`);
# SHOP_KEEP_TMP=1 keeps the temp dir. Logs: BUILD/tests/ops/durable-logs.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

ops_init durable
export SHOP_PG_DURABLE=1
ops_pg_up 50
ops_stock_up
ops_fcgi FCGI "$T/fcgi.sock" "$T/shop-fcgi.log"
read -r MPORT FPORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
ops_both "$T/nginx" "$MPORT" "$FPORT" "$T/fcgi.sock"
ops_nginx "$T/nginx"
ops_ready "http://127.0.0.1:$MPORT" "$NGINX_PID"
ops_ready "http://127.0.0.1:$FPORT" "$FCGI"
settings=$(shop_psql shop -tAc "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')")
tap_is "setup: PostgreSQL as ./shopdev up runs it ($settings)" \
    "$([ "$settings" = "fsync=on full_page_writes=on synchronous_commit=on" ]; echo $?)"

# Orders answered 201, the last one a moment before the crash: with
# synchronous_commit off its commit would still sit in the WAL buffers.
n=0
for front in "$MPORT" "$FPORT"; do
    for i in 1 2 3 4 5; do
        n=$((n + 1))
        curl -s -o "$T/order$n.json" -w '%{http_code}' -H 'Content-Type: application/json' \
             -d "{\"items\":[{\"sku\":\"SKU-00000$i\",\"quantity\":1}],\"customer_email\":\"durable@example.com\"}" \
             "http://127.0.0.1:$front/orders" >"$T/order$n.code"
    done
done
# The crash (SIGQUIT: pg_ctl stop -m immediate without its start-up time):
# no checkpoint, no shutdown record; then recovery from the WAL.
pg_pid=$(head -1 "$T/pg/data/postmaster.pid")
kill -QUIT "$pg_pid"
shop_wait_gone "$pg_pid" 30 2>/dev/null
ids=() bad=()
for k in $(seq 1 $n); do
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("id",""))' "$T/order$k.json" 2>/dev/null)
    if [ "$(cat "$T/order$k.code")" = 201 ] && [ -n "$id" ]; then ids+=("$id")
    else bad+=("order $k: $(cat "$T/order$k.code") $(cat "$T/order$k.json")"); fi
done
tap_is "ten orders answered 201 (five by each front-end)" "$([ ${#ids[@]} = 10 ]; echo $?)" "${bad[@]}"
shop_pg_start "$T/pg" "$PG_PORT" "$T/pg/run" 2>"$T/pg-restart.err"
tap_is "PostgreSQL crashed (SIGQUIT, an immediate shutdown) and recovered" "$?" "$(cat "$T/pg-restart.err")"

list=$(printf "'%s'," "${ids[@]}"); list=${list%,}
found=$(shop_psql shop -tAc "SELECT count(*) FROM shop.orders o WHERE o.id IN ($list)
    AND EXISTS (SELECT 1 FROM shop.order_lines l WHERE l.order_id = o.id)
    AND EXISTS (SELECT 1 FROM shop.events e WHERE e.type = 'order.created' AND e.data->>'id' = o.id::text)")
tap_is "every acknowledged order survived the crash, with its lines and its order.created event ($found of ${#ids[@]})" \
    "$([ "$found" = "${#ids[@]}" ]; echo $?)"

ops_nginx_alerts "$T/nginx"
ops_sanitizers
ops_done
