# shellcheck shell=bash
# shellcheck disable=SC2034  # DSN, DB_URL, PG_PORT, NGINX_PID are outputs for the caller
# tests/ops/lib.sh: what the operations tests (tests/ops/*.sh, issue 7) share
# on top of tests/lib.sh: a temp dir, a TAP counter, PostgreSQL with the
# shop's schema and sample data, shop-fcgi processes, nginx instances, and
# a cleanup that stops every one of them by PID (and keeps the logs next to
# the build, in tests/ops/NAME-logs).
#
# A test script: ops_init NAME; ops_pg_up; ops_fcgi ...; ops_nginx ...;
# ops_py SCRIPT.py ARGS... (its TAP renumbered into ours); ops_done.

SRC=${SHOP_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${SHOP_BUILDDIR:-$SRC/var/build}
export SHOP_SRCDIR=$SRC SHOP_BUILDDIR=$BUILD
# shellcheck source=SCRIPTDIR/../lib.sh
. "$SRC/tests/lib.sh"
OPS=$SRC/tests/ops

# ------------------------------------------------------------------- TAP

N=0 FAILED=0
tap_ok() { N=$((N + 1)); printf 'ok %d - %s\n' "$N" "$1"; }
tap_not_ok() {
    N=$((N + 1)); FAILED=$((FAILED + 1))
    printf 'not ok %d - %s\n' "$N" "$1"; shift
    local l
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done
}
tap_is() { # NAME STATUS [DIAG...]
    local name=$1 st=$2; shift 2
    if [ "$st" = 0 ]; then tap_ok "$name"; else tap_not_ok "$name" "$@"; fi
}
tap_skip() { N=$((N + 1)); printf 'ok %d - %s # SKIP %s\n' "$N" "$1" "$2"; }
diag() { printf '# %s\n' "$*"; }

# ------------------------------------------------------------- processes

T="" FCGI_PIDS=() NGINX_PREFIXES=() PG_DIRS=() OPS_NAME=""

# shellcheck disable=SC2317  # invoked by the EXIT trap
ops_cleanup() {
    set +e
    local p d keep
    for p in "${NGINX_PREFIXES[@]}"; do shop_nginx_stop "$p"; done
    for p in "${FCGI_PIDS[@]}"; do shop_fcgi_stop "$p" 10; done
    # shop-fcgi processes a python part started (ops_fcgi_cmd): their PIDs in files
    for p in "$T"/*.fcgi-pid; do [ -s "$p" ] && shop_fcgi_stop "$(cat "$p")" 10; done
    for d in "${PG_DIRS[@]}"; do shop_pg_stop "$d"; done
    [ -n "$T" ] || return 0
    keep=$BUILD/tests/ops/$OPS_NAME-logs
    if mkdir -p "$keep" 2>/dev/null; then
        rm -f "$keep"/*
        find "$T" -maxdepth 4 \( -name '*.log' -o -name '*.out' -o -name 'asan*' -o -name 'ubsan*' \) \
            -type f -size -20M -exec cp --backup=numbered -t "$keep/" {} + 2>/dev/null
    fi
    if [ "${SHOP_KEEP_TMP:-0}" = 1 ]; then diag "kept $T"; else rm -rf "$T"; fi
}

bail() {
    local m
    for m in "$@"; do printf '# %s\n' "$m"; done
    echo "Bail out! $1"
    exit 1
}

# ops_init NAME: the temp dir ($T), sanitizer report files, the cleanup.
ops_init() {
    OPS_NAME=$1
    T=$(mktemp -d "/tmp/shop-ops-$1.XXXXXX") || { echo "Bail out! mktemp failed"; exit 1; }
    chmod 755 "$T"
    mkdir -p "$T/san"
    trap ops_cleanup EXIT
    trap 'exit 130' INT TERM
    # A sanitizer build (configure --enable-sanitizers) writes its reports
    # to files; every shop-fcgi started here inherits these options.
    export ASAN_OPTIONS="log_path=$T/san/asan:detect_leaks=1:abort_on_error=0"
    export UBSAN_OPTIONS="print_stacktrace=1:log_path=$T/san/ubsan"
    [ -x "$(shop_fcgi_bin)" ] || bail "shop-fcgi is not built: $(shop_fcgi_bin)"
    [ -r "$(shop_module_so)" ] || bail "the nginx module is not built: $(shop_module_so)"
    diag "source $SRC, build $BUILD, temp $T"
}

# ops_pg_up [PRODUCTS] [DIR]: PostgreSQL in $T/pg (or DIR), database `shop`
# migrated and seeded, the admin token and webhook secret; sets DSN (a libpq
# conninfo string), DB_URL and PG_PORT.
ops_pg_up() {
    local n=${1:-200} dir=${2:-$T/pg} out
    read -r PG_PORT <<<"$(shop_free_ports 1)"
    shop_pg_start "$dir" "$PG_PORT" "$dir/run" 2>"$T/pg-start.err" || bail "PostgreSQL did not start" "$(cat "$T/pg-start.err")"
    PG_DIRS+=("$dir")
    out=$( { shop_createdb shop && shop_migrate shop && shop_seed shop "$n"; } 2>&1) || bail "database set-up failed" "$out"
    DSN="host=$SHOP_PG_SOCKDIR port=$PG_PORT user=shop dbname=shop"
    DB_URL=$(shop_pg_url shop)
    if ! shop_write_secret "$T/admin.token" || ! shop_write_secret "$T/webhook.secret"; then
        bail "cannot write the token files"
    fi
}

# ops_stock_up: the products the load orders (SKU-000001..20) get a million
# units in north, so no order of the load runs short.
ops_stock_up() {
    shop_psql shop -c "UPDATE shop.stock SET quantity = 1000000 WHERE warehouse = 'north' AND product_id <= 20" >/dev/null \
        || bail "stock top-up failed"
}

# ops_fcgi VAR SOCKET LOG [ENV...]: one shop-fcgi under spawn-fcgi on SOCKET,
# its PID in VAR (and FCGI_PIDS, so the cleanup stops it).
ops_fcgi() {
    local var=$1 sock=$2 log=$3; shift 3
    shop_fcgi_start "$sock" "$log" SHOP_DATABASE_URL="$DB_URL" SHOP_ADMIN_TOKEN_FILE="$T/admin.token" \
        SHOP_WEBHOOK_SECRET_FILE="$T/webhook.secret" "$@" 2>"$T/fcgi-start.err" \
        || bail "shop-fcgi did not start" "$(cat "$T/fcgi-start.err")"
    FCGI_PIDS+=("$SHOP_FCGI_PID")
    printf -v "$var" '%s' "$SHOP_FCGI_PID"
}

# ops_fcgi_cmd NAME SOCKET LOG [ENV...]: a shell command that starts one more
# shop-fcgi like ops_fcgi (for a python part to run, e.g. a rolling restart)
# and leaves its PID in $T/NAME.fcgi-pid, which the cleanup stops.
ops_fcgi_cmd() {
    local name=$1 sock=$2 log=$3 e quoted=""; shift 3
    for e in SHOP_DATABASE_URL="$DB_URL" SHOP_ADMIN_TOKEN_FILE="$T/admin.token" \
             SHOP_WEBHOOK_SECRET_FILE="$T/webhook.secret" "$@"; do
        quoted+=" $(printf '%q' "$e")"
    done
    # shellcheck disable=SC2016  # $SHOP_FCGI_PID: expanded where the command runs
    printf '. %q && shop_fcgi_start %q %q%s && echo "$SHOP_FCGI_PID" >%q' \
        "$SRC/tests/lib.sh" "$sock" "$log" "$quoted" "$T/$name.fcgi-pid"
}

# ops_nginx PREFIX: tests and starts nginx in PREFIX (its conf.d rendered by
# the caller); NGINX_PID is its master.
ops_nginx() {
    shop_nginx_start "$1" 2>"$T/nginx-start.err" || bail "nginx did not start" "$(cat "$T/nginx-start.err")"
    NGINX_PREFIXES+=("$1")
    NGINX_PID=$SHOP_NGINX_PID
}

# ops_both PREFIX MODULE_PORT FCGI_PORT FCGI_SOCKET [MODULE SETTINGS]: one
# nginx serving both front-ends, as ./shopdev up does: the module and
# fastcgi_pass to FCGI_SOCKET; 2 workers, an access log with the request id;
# OPS_SHUTDOWN_TIMEOUT: worker_shutdown_timeout (10s, as shipped).
ops_both() {
    local prefix=$1 mport=$2 fport=$3 sock=$4 settings=${5:-}
    {
        shop_nginx_prepare "$prefix" WORKER_PROCESSES=2 ERROR_LOG_LEVEL=info \
            ACCESS_LOG="$prefix/logs/access.log shop" WORKER_SHUTDOWN_TIMEOUT="${OPS_SHUTDOWN_TIMEOUT:-10s}" &&
        shop_nginx_add_server "$prefix" fcgi "$SRC/conf/nginx-fcgi.server.conf.in" \
            LISTEN="127.0.0.1:$fport" BASE_PATH="" FCGI_SOCKET="$sock" BODY_MAX=2m &&
        shop_nginx_add_module "$prefix" module LISTEN="127.0.0.1:$mport" DATABASE="$DB_URL" \
            ADMIN_TOKEN_FILE="$T/admin.token" WEBHOOK_SECRET_FILE="$T/webhook.secret" POOL_SIZE=4 \
            SETTINGS="$settings"
    } 2>"$T/nginx-conf.err" || bail "nginx configuration" "$(cat "$T/nginx-conf.err")"
}

# ops_ready URL PID: waits for URL/readyz (bails out after 20 s).
ops_ready() {
    shop_wait_http "$1/readyz" 20 "$2" 2>"$T/wait.err" || bail "$1 does not answer" "$(cat "$T/wait.err")"
}

# ops_py SCRIPT ARGS...: a python part (tests/ops/SCRIPT), its TAP renumbered
# into ours; a crash (exit status other than 0 or 1) is a failure.
ops_py() {
    local script=$1 line rc; shift
    while IFS= read -r line; do
        case "$line" in
            "ok "*)      N=$((N + 1)); printf 'ok %d%s\n' "$N" "$(sed -E 's/^ok [0-9]+//' <<<"$line")" ;;
            "not ok "*)  N=$((N + 1)); FAILED=$((FAILED + 1))
                         printf 'not ok %d%s\n' "$N" "$(sed -E 's/^not ok [0-9]+//' <<<"$line")" ;;
            1..*)        ;;
            "#"*)        printf '%s\n' "$line" ;;
            *)           printf '#   %s\n' "$line" ;;
        esac
    done < <(timeout 300 python3 "$OPS/$script" "$@" 2>&1; echo "rc=$?" >"$T/py.rc")
    rc=$(sed -n 's/^rc=//p' "$T/py.rc" 2>/dev/null)
    case "$rc" in
        0|1) ;;
        *) tap_not_ok "$script ran to completion" "exit status ${rc:-?} (124: timed out after 300 s)" ;;
    esac
}

# ops_sanitizers: no ASan/UBSan/LSan report from the shop-fcgi processes.
ops_sanitizers() {
    local reports f msgs=()
    reports=$(find "$T/san" -type f 2>/dev/null | sort)
    if [ -z "$reports" ]; then
        if grep -Eq '^SANITIZER_FLAGS = .*-fsanitize' "$BUILD/Makefile" 2>/dev/null; then
            tap_ok "sanitizers: no ASan/UBSan/LSan report from shop-fcgi"
        else
            tap_ok "sanitizers: no report (not a sanitizer build)"
        fi
    else
        for f in $reports; do msgs+=("---- $(basename "$f")" "$(head -n 40 "$f")"); done
        tap_not_ok "sanitizers: no ASan/UBSan/LSan report ($(wc -l <<<"$reports") found)" "${msgs[@]}"
    fi
}

# ops_nginx_alerts PREFIX [EXPECTED [WHY]]: no alert/crit/emerg and no
# crashed worker in the error log, apart from lines matching the regex
# EXPECTED (WHY says why they are expected).
ops_nginx_alerts() {
    local out n=0
    out=$(grep -E '\[(alert|crit|emerg)\]|exited on signal' "$1/logs/error.log" 2>/dev/null)
    if [ -n "${2:-}" ] && [ -n "$out" ]; then
        n=$(grep -cE "$2" <<<"$out")
        out=$(grep -vE "$2" <<<"$out")
    fi
    out=$(head -n 20 <<<"$out")
    [ -z "$out" ]
    tap_is "nginx: no alert, crit or emerg in the error log, no worker crashed${3:+ ($n expected: $3)}" "$?" "$out"
}

ops_done() {
    echo "1..$N"
    exit 0
}
