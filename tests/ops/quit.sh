#!/usr/bin/env bash
# tests/ops/quit.sh: `nginx -s quit` under load finishes every request in
# flight, slow ones too (a PATCH waiting on a row lock), on both front-ends
# of one nginx (tests/ops/quit.py). About 8 s. TAP; `make check` runs it.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`);
# SHOP_KEEP_TMP=1 keeps the temp dir. Logs: BUILD/tests/ops/quit-logs.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

ops_init quit
ops_pg_up 200
ops_stock_up
ops_fcgi FCGI "$T/fcgi.sock" "$T/shop-fcgi.log"
read -r MPORT FPORT <<<"$(shop_free_ports 2 | tr '\n' ' ')"
ops_both "$T/nginx" "$MPORT" "$FPORT" "$T/fcgi.sock"
ops_nginx "$T/nginx"
ops_ready "http://127.0.0.1:$MPORT" "$NGINX_PID"
ops_ready "http://127.0.0.1:$FPORT" "$FCGI"
tap_ok "setup: PostgreSQL, shop-fcgi (pid $FCGI), nginx (pid $NGINX_PID) with the module on :$MPORT and fastcgi_pass on :$FPORT"

ops_py quit.py --front "module=http://127.0.0.1:$MPORT" --front "fcgi=http://127.0.0.1:$FPORT" \
    --dsn "$DSN" --token-file "$T/admin.token" --master "$NGINX_PID" \
    --quit-cmd "$SHOP_NGINX -q -p $T/nginx -c $T/nginx/nginx.conf -s quit" --logs "$T/nginx/logs"

ops_nginx_alerts "$T/nginx"
shop_alive "$FCGI"
tap_is "shop-fcgi (pid $FCGI) untouched by nginx's quit" "$?"
ops_sanitizers
ops_done
