#!/usr/bin/env bash
# tests/ops/outage.sh: PostgreSQL stops under load and starts again, both
# front-ends of one nginx (tests/ops/outage.py): fast 503 unavailable with
# Retry-After while it is down (none hangs), /healthz 200, /readyz 503;
# recovery within 5 s without restarting nginx or shop-fcgi; no half-written
# order or event. About 15 s. TAP; `make check` runs it.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`);
# SHOP_KEEP_TMP=1 keeps the temp dir. Logs: BUILD/tests/ops/outage-logs.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

ops_init outage
ops_pg_up 200
ops_stock_up
ops_fcgi FCGI "$T/fcgi.sock" "$T/shop-fcgi.log"
read -r MPORT FPORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
ops_both "$T/nginx" "$MPORT" "$FPORT" "$T/fcgi.sock"
ops_nginx "$T/nginx"
ops_ready "http://127.0.0.1:$MPORT" "$NGINX_PID"
ops_ready "http://127.0.0.1:$FPORT" "$FCGI"
tap_ok "setup: PostgreSQL (port $PG_PORT), shop-fcgi (pid $FCGI), nginx (pid $NGINX_PID) with the module on :$MPORT and fastcgi_pass on :$FPORT"

LIB=$(printf '%q' "$SRC/tests/lib.sh")
ops_py outage.py --front "module=http://127.0.0.1:$MPORT" --front "fcgi=http://127.0.0.1:$FPORT" \
    --dsn "$DSN" --master "$NGINX_PID" --fcgi-pid "$FCGI" --down 2.0 \
    --stop-cmd ". $LIB && echo T=\$(date +%s.%N) && shop_pg_stop $T/pg" \
    --start-cmd ". $LIB && echo T=\$(date +%s.%N) && shop_pg_start $T/pg $PG_PORT $T/pg/run"

ops_nginx_alerts "$T/nginx"
ops_sanitizers
ops_done
