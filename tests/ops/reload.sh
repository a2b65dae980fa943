#!/usr/bin/env bash
# tests/ops/reload.sh: `nginx -s reload` under load loses no request, on both
# front-ends of one nginx (the module, and fastcgi_pass to shop-fcgi), with
# SSE subscribers connected that resume by Last-Event-ID without a gap or a
# duplicate (tests/ops/reload.py). About 10 s. TAP; `make check` runs it.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`);
# SHOP_KEEP_TMP=1 keeps the temp dir. Logs: BUILD/tests/ops/reload-logs.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

ops_init reload
ops_pg_up 200
ops_stock_up
ops_fcgi FCGI "$T/fcgi.sock" "$T/shop-fcgi.log"
read -r MPORT FPORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
# Old workers close what is left (the proxied fcgi event streams) 2 s after
# a reload: those subscribers resume by Last-Event-ID on a new worker.
OPS_SHUTDOWN_TIMEOUT=2s ops_both "$T/nginx" "$MPORT" "$FPORT" "$T/fcgi.sock"
ops_nginx "$T/nginx"
ops_ready "http://127.0.0.1:$MPORT" "$NGINX_PID"
ops_ready "http://127.0.0.1:$FPORT" "$FCGI"
tap_ok "setup: PostgreSQL, shop-fcgi (pid $FCGI), nginx (pid $NGINX_PID) with the module on :$MPORT and fastcgi_pass on :$FPORT"

ops_py reload.py --front "module=http://127.0.0.1:$MPORT" --front "fcgi=http://127.0.0.1:$FPORT" \
    --dsn "$DSN" --master "$NGINX_PID" \
    --reload-cmd "$SHOP_NGINX -q -p $T/nginx -c $T/nginx/nginx.conf -s reload" \
    --duration 5 --reloads 1.5,3.2

shop_alive "$FCGI"
tap_is "shop-fcgi (pid $FCGI) still serving, never restarted" "$?"
ops_nginx_alerts "$T/nginx"
ops_sanitizers
ops_done
