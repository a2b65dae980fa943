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

ops_nginx_alerts "$T/nginx"
ops_sanitizers
ops_done
