# shellcheck shell=bash
# tests/module/lib.sh: what the module's live tests share. Each test is
#
#     tests/module/NAME.sh URL PGENV NGINX_PREFIX
#
#   URL           where the module serves the shop, with its mount point
#                 (http://127.0.0.1:18080 or http://127.0.0.1:18080/api)
#   PGENV         a file of shell assignments for psql and the test: PGHOST,
#                 PGPORT, PGUSER, PGDATABASE; SHOP_ADMIN_TOKEN_FILE (or
#                 SHOP_ADMIN_TOKEN); PGDATA for restart.sh. "-": the caller's
#                 environment has them.
#   NGINX_PREFIX  the nginx prefix: nginx.pid (or logs/nginx.pid) and
#                 logs/error.log in it
#
# and prints TAP. Needs curl, psql, bash 4.

set -u

mt_n=0
mt_failed=0

mt_plan() { printf '1..%s\n' "$1"; }
mt_diag() { printf '# %s\n' "$*"; }

mt_ok() {
    local cond=$1; shift
    mt_n=$((mt_n + 1))
    if [ "$cond" = 0 ]; then
        printf 'ok %d - %s\n' "$mt_n" "$*"
    else
        printf 'not ok %d - %s\n' "$mt_n" "$*"
        mt_failed=$((mt_failed + 1))
    fi
}

mt_bail() { printf 'Bail out! %s\n' "$*"; exit 1; }

mt_done() { [ "$mt_failed" = 0 ]; exit $?; }

# mt_args URL PGENV PREFIX: sets MT_URL, MT_PREFIX, MT_TOKEN, MT_WORK; loads PGENV
mt_args() {
    [ $# -ge 3 ] || mt_bail "usage: $0 URL PGENV NGINX_PREFIX"
    MT_URL=${1%/}
    if [ "$2" != - ]; then
        [ -r "$2" ] || mt_bail "cannot read $2"
        set -a
        # shellcheck disable=SC1090
        . "$2"
        set +a
    fi
    MT_PREFIX=$3
    MT_PIDFILE=$MT_PREFIX/nginx.pid
    [ -s "$MT_PIDFILE" ] || MT_PIDFILE=$MT_PREFIX/logs/nginx.pid
    [ -s "$MT_PIDFILE" ] || mt_bail "no nginx.pid in $MT_PREFIX or $MT_PREFIX/logs: is nginx running?"
    MT_LOG=$MT_PREFIX/logs/error.log
    MT_TOKEN=${SHOP_ADMIN_TOKEN:-}
    if [ -z "$MT_TOKEN" ] && [ -n "${SHOP_ADMIN_TOKEN_FILE:-}" ]; then
        MT_TOKEN=$(tr -d ' \t\r\n' <"$SHOP_ADMIN_TOKEN_FILE")
    fi
    MT_WORK=$(mktemp -d /tmp/shop-mt.XXXXXX)
    trap 'mt_cleanup' EXIT
    export PGAPPNAME=shop-module-test
}

mt_cleanup() {
    mt_unlock
    rm -rf "$MT_WORK"
}

mt_psql() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

# mt_master: nginx's master PID; mt_workers: its workers' PIDs
mt_master() { cat "$MT_PIDFILE"; }
mt_workers() { pgrep -P "$(mt_master)" | sort; }

# mt_log_mark: the error log's size now; mt_log_since MARK: what came after
mt_log_mark() { stat -c %s "$MT_LOG" 2>/dev/null || echo 0; }
mt_log_since() { tail -c +"$(($1 + 1))" "$MT_LOG" 2>/dev/null; }

# mt_req OUT METHOD PATH [CURL ARGS...]: one request; OUT gets
# "status seconds" on its first line, then the response headers
mt_req() {
    local out=$1 method=$2 path=$3; shift 3
    curl -s -o /dev/null -D "$out.h" -w '%{http_code} %{time_total}\n' \
        -X "$method" "$@" "$MT_URL$path" >"$out" 2>/dev/null
    cat "$out.h" >>"$out" 2>/dev/null
    rm -f "$out.h"
}

mt_status() { head -n 1 "$1" | cut -d' ' -f1; }
mt_secs() { head -n 1 "$1" | cut -d' ' -f2; }
# mt_faster SECS LIMIT: SECS < LIMIT
mt_faster() { awk -v s="$1" -v l="$2" 'BEGIN { exit !(s < l) }'; }
mt_header() { grep -i "^$2:" "$1" | head -n 1 | cut -d' ' -f2- | tr -d '\r'; }

# mt_patch PRODUCT_ID OUT [CURL ARGS...]: PATCH the description (admin)
mt_patch() {
    local id=$1 out=$2; shift 2
    mt_req "$out" PATCH "/products/$id" -H "Authorization: Bearer $MT_TOKEN" \
        -H 'Content-Type: application/merge-patch+json' \
        --data "{\"description\":\"module test $$ $RANDOM\"}" "$@"
}

# mt_lock ID: a psql session holds a row lock on product ID until mt_unlock
mt_lock() {
    mkfifo "$MT_WORK/lock.in"
    psql -X -q -v ON_ERROR_STOP=1 <"$MT_WORK/lock.in" >"$MT_WORK/lock.out" 2>&1 &
    MT_LOCK_PID=$!
    exec {MT_LOCK_FD}>"$MT_WORK/lock.in"
    printf 'BEGIN;\nSELECT id FROM shop.products WHERE id = %s FOR UPDATE;\n' "$1" >&"$MT_LOCK_FD"
    local i
    for i in $(seq 50); do
        [ "$(mt_psql -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                          WHERE a.application_name = 'shop-module-test' AND a.state = 'idle in transaction'
                            AND l.locktype = 'transactionid'")" -ge 1 ] 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

mt_unlock() {
    [ -n "${MT_LOCK_FD:-}" ] || return 0
    printf 'COMMIT;\n' >&"$MT_LOCK_FD"
    exec {MT_LOCK_FD}>&-
    MT_LOCK_FD=
    wait "$MT_LOCK_PID" 2>/dev/null
}

# mt_waiting: statements of nginx's connections that wait for a lock
mt_waiting() {
    mt_psql -c "SELECT count(*) FROM pg_stat_activity
                WHERE application_name = 'shop-nginx' AND wait_event_type = 'Lock'"
}

# mt_product N: the id of the N-th product (1-based)
mt_product() { mt_psql -c "SELECT id FROM shop.products ORDER BY id OFFSET $(($1 - 1)) LIMIT 1"; }

# mt_fds PID: open file descriptors of a process
mt_fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
