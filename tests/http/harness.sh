#!/usr/bin/env bash
# tests/http/harness.sh: the HTTP suite as one TAP test of `make check`.
#
# Starts its own PostgreSQL (random free port, a temp dir under /tmp), migrates
# and seeds it with the built shop-fcgi, starts shop-fcgi under spawn-fcgi and
# one nginx with two server blocks (random free ports): fastcgi_pass to
# shop-fcgi, and the nginx module (load_module + shop;) on the same
# database; then:
#   - setup and the typed-SQL check: `shop-fcgi check` passes on the migrated
#     schema and fails, naming the statement and the column, on drift;
#   - configuration refusals at start-up;
#   - tests/http/suite.py against both front-ends (TARGETS below: fcgi and
#     module): the case table, the bad-input table, concurrency, orders, then
#     parity (the same requests to both; any difference fails); then a
#     database outage under both;
#   - SIGTERM ends shop-fcgi with status 0; the logs of both are sane; no
#     sanitizer report (a --enable-sanitizers build logs ASan/UBSan reports to
#     files; the module is never sanitized: Debian's nginx is not).
# The module's own live tests (non-blocking, aborts, pool exhaustion, restart)
# are tests/module/live.sh.
# Everything started here is stopped by PID on exit. Output is TAP on stdout;
# diagnostics are '#' lines. SHOP_KEEP_TMP=1 keeps the temp dir.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by `make check`).
set -u

SRC=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SHOP_BUILDDIR:-$SRC/var/build}
export SHOP_SRCDIR=$SRC SHOP_BUILDDIR=$BUILD
# shellcheck source=SCRIPTDIR/../lib.sh
. "$SRC/tests/lib.sh"

SEED_N=200
BODY_LIMIT=64k           # small, so the suite can cross it cheaply
BODY_LIMIT_BYTES=65536

# ------------------------------------------------------------------- TAP

N=0 FAILED=0
tap_ok() { N=$((N + 1)); printf 'ok %d - %s\n' "$N" "$1"; }
tap_not_ok() {
    N=$((N + 1)); FAILED=$((FAILED + 1))
    printf 'not ok %d - %s\n' "$N" "$1"; shift
    local l
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done
}
tap_is() { # NAME CONDITION-STATUS [DIAG...]
    local name=$1 st=$2; shift 2
    if [ "$st" = 0 ]; then tap_ok "$name"; else tap_not_ok "$name" "$@"; fi
}
diag() { printf '# %s\n' "$*"; }

# ------------------------------------------------------------- processes

T=$(mktemp -d /tmp/shop-http.XXXXXX) || { echo "Bail out! mktemp failed"; exit 1; }
chmod 755 "$T"
mkdir -p "$T/san"
FCGI_PID="" NGINX_PREFIX=$T/nginx FCGI_LOG=$T/shop-fcgi.log FCGI_SOCK=$T/fcgi.sock
MODULE_LOG=$T/nginx/logs/shop-module.log
KEEP_LOGS=$BUILD/tests/http/harness-logs

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    set +e
    shop_nginx_stop "$NGINX_PREFIX"
    [ -n "$FCGI_PID" ] && shop_fcgi_stop "$FCGI_PID" 10
    [ -n "${SHOP_PG_DIR:-}" ] && shop_pg_stop "$SHOP_PG_DIR"
    # Keep the logs next to the build for a post-mortem; drop the rest.
    if mkdir -p "$KEEP_LOGS" 2>/dev/null; then
        rm -f "$KEEP_LOGS"/*
        cp "$FCGI_LOG" "$MODULE_LOG" "$NGINX_PREFIX/logs/error.log" "$NGINX_PREFIX/logs/access.log" \
           "$T/pg/server.log" "$T"/suite*.out "$KEEP_LOGS/" 2>/dev/null
        cp "$T"/san/* "$KEEP_LOGS/" 2>/dev/null
    fi
    if [ "${SHOP_KEEP_TMP:-0}" = 1 ]; then diag "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failure_logs() {
    shop_tail_logs 40 "$FCGI_LOG" "$MODULE_LOG" "$NGINX_PREFIX/logs/error.log" "$T/pg/server.log"
    diag "full logs: $KEEP_LOGS"
}

bail() {
    printf '# %s\n' "$@"
    failure_logs
    echo "Bail out! $1"
    exit 1
}

# A sanitizer build (configure --enable-sanitizers) writes its reports to
# files; every shop-fcgi run below inherits these options.
SANITIZED=no
if grep -Eq '^SANITIZER_FLAGS = .*-fsanitize' "$BUILD/Makefile" 2>/dev/null; then SANITIZED=yes; fi
export ASAN_OPTIONS="log_path=$T/san/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$T/san/ubsan"
diag "source $SRC, build $BUILD (sanitizers: $SANITIZED), temp $T"

[ -x "$(shop_fcgi_bin)" ] || bail "shop-fcgi is not built: $(shop_fcgi_bin)"

# ------------------------------------------------------------------ setup

mapfile -t PORTS < <(shop_free_ports 3)
PG_PORT=${PORTS[0]} FCGI_HTTP_PORT=${PORTS[1]} MODULE_HTTP_PORT=${PORTS[2]}

t0=$(date +%s%N)
if shop_pg_start "$T/pg" "$PG_PORT" "$T/pg/run" 2>"$T/pg-start.err"; then
    tap_ok "setup: PostgreSQL on 127.0.0.1:$PG_PORT ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
else
    bail "PostgreSQL did not start" "$(cat "$T/pg-start.err")"
fi
export PGHOST=$SHOP_PG_SOCKDIR PGPORT=$SHOP_PG_PORT PGUSER=shop PGDATABASE=shop

shop_createdb shop >/dev/null 2>"$T/createdb.err" || bail "CREATE DATABASE failed" "$(cat "$T/createdb.err")"
out=$(shop_migrate shop 2>&1); rc=$?
tap_is "migrate: shop-fcgi migrate applies sql/ to an empty database" "$rc" "exit $rc" "$out"
[ "$rc" = 0 ] || bail "migration failed"
before=$(shop_psql shop -tAc "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'shop'")
out=$(shop_migrate shop 2>&1); rc=$?
after=$(shop_psql shop -tAc "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'shop'")
[ "$rc" = 0 ] && [ "$before" = "$after" ]
tap_is "migrate: a second run succeeds and changes nothing" "$?" "exit $rc, relations $before -> $after" "$out"
out=$(shop_seed shop "$SEED_N" 2>&1) || bail "seed.sql failed" "$out"
diag "seeded $(shop_psql shop -tAc 'SELECT count(*) FROM shop.products') products"

TOKEN_FILE=$T/admin.token SECRET_FILE=$T/webhook.secret
if ! shop_write_secret "$TOKEN_FILE" || ! shop_write_secret "$SECRET_FILE"; then
    bail "cannot write the token files"
fi

FCGI_ENV=(
    SHOP_DATABASE_URL="$(shop_pg_url shop)"
    SHOP_ADMIN_TOKEN_FILE="$TOKEN_FILE"
    SHOP_WEBHOOK_SECRET_FILE="$SECRET_FILE"
    SHOP_BASE_PATH=""
    SHOP_BODY_LIMIT="$BODY_LIMIT"
    SHOP_THREADS=4
    SHOP_POOL_SIZE=4
)

# ------------------------------------------------- typed SQL: shop-fcgi check

out=$(shop_fcgi_run "${FCGI_ENV[@]}" -- check 2>&1); rc=$?
tap_is "check: every catalogue statement prepares against the migrated schema" "$rc" "exit $rc" "$out"

# drift_case NAME SQL STATEMENT COLUMN: a scratch database, migrated, then SQL;
# `shop-fcgi check` must fail and name STATEMENT and COLUMN.
drift_case() {
    local name=$1 sql=$2 stmt=$3 col=$4 db=shop_drift out rc
    shop_dropdb "$db" >/dev/null 2>&1
    if ! out=$( { shop_createdb "$db" && shop_migrate "$db" && shop_psql "$db" -c "$sql"; } 2>&1); then
        tap_not_ok "check: drift ($name): scratch database set up" "$out"
        return
    fi
    out=$(shop_fcgi_run "${FCGI_ENV[@]}" SHOP_DATABASE_URL="$(shop_pg_url "$db")" -- check 2>&1); rc=$?
    [ "$rc" != 0 ]
    tap_is "check: drift ($name): exits non-zero (got $rc)" "$?" "$out"
    grep -q "$stmt" <<<"$out"
    tap_is "check: drift ($name): names the statement $stmt" "$?" "output: $out"
    grep -q "$col" <<<"$out"
    tap_is "check: drift ($name): names the column $col" "$?" "output: $out"
    shop_dropdb "$db" >/dev/null 2>&1
}
drift_case "products.category renamed to kind" \
    'ALTER TABLE shop.products RENAME COLUMN category TO kind' product_get category
drift_case "products.price_cents bigint -> integer" \
    'ALTER TABLE shop.products ALTER COLUMN price_cents TYPE integer' product_get price_cents

shop_dropdb shop_empty >/dev/null 2>&1
shop_createdb shop_empty >/dev/null 2>&1
out=$(shop_fcgi_run "${FCGI_ENV[@]}" SHOP_DATABASE_URL="$(shop_pg_url shop_empty)" -- check 2>&1); rc=$?
[ "$rc" != 0 ]
tap_is "check: a database without the schema fails (got $rc)" "$?" "$out"
shop_dropdb shop_empty >/dev/null 2>&1

# --------------------------------------------- configuration refused at start

# refuse_case NAME PATTERN VAR=VALUE...: shop-fcgi (serving mode, no socket)
# must exit non-zero at once with a message matching PATTERN.
refuse_case() {
    local name=$1 pat=$2 out rc; shift 2
    out=$(timeout 10 env -i PATH="$PATH" ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS" \
              "${FCGI_ENV[@]}" "$@" "$(shop_fcgi_bin)" </dev/null 2>&1); rc=$?
    [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -Eq "$pat" <<<"$out"
    tap_is "config: $name is refused at start-up naming it (exit $rc)" "$?" "output: $out"
}
refuse_case "SHOP_THREADS=abc" 'SHOP_THREADS' SHOP_THREADS=abc
refuse_case "SHOP_THREADS=0" 'SHOP_THREADS' SHOP_THREADS=0
refuse_case "SHOP_BODY_LIMIT=12q" 'SHOP_BODY_LIMIT' SHOP_BODY_LIMIT=12q
refuse_case "SHOP_POOL_SIZE=-1" 'SHOP_POOL_SIZE' SHOP_POOL_SIZE=-1
cp "$TOKEN_FILE" "$T/readable.token" && chmod 0644 "$T/readable.token"
refuse_case "a world-readable admin token file" 'SHOP_ADMIN_TOKEN_FILE|readable.token' SHOP_ADMIN_TOKEN_FILE="$T/readable.token"
refuse_case "a missing admin token file" 'SHOP_ADMIN_TOKEN_FILE|no-such.token' SHOP_ADMIN_TOKEN_FILE="$T/no-such.token"
refuse_case "an empty SHOP_DATABASE_URL" 'SHOP_DATABASE_URL' SHOP_DATABASE_URL=

# ------------------------------------------------------------- front-ends

if shop_fcgi_start "$FCGI_SOCK" "$FCGI_LOG" "${FCGI_ENV[@]}" 2>"$T/fcgi-start.err"; then
    FCGI_PID=$SHOP_FCGI_PID
    tap_ok "setup: shop-fcgi under spawn-fcgi (pid $FCGI_PID, unix socket)"
else
    bail "shop-fcgi did not start" "$(cat "$T/fcgi-start.err")"
fi

# One nginx, one server block per front-end, both on the same database with
# the same token, secret and body limit: shop-fcgi behind fastcgi_pass, and
# the nginx module (load_module + shop;). suite.py runs every case against
# each and compares them in its parity section.
TARGETS=()
{
    shop_nginx_prepare "$NGINX_PREFIX" ERROR_LOG_LEVEL=warn WORKER_PROCESSES=2 \
        ACCESS_LOG="$NGINX_PREFIX/logs/access.log shop" &&
    shop_nginx_add_server "$NGINX_PREFIX" fcgi "$SRC/conf/nginx-fcgi.server.conf.in" \
        LISTEN="127.0.0.1:$FCGI_HTTP_PORT" BASE_PATH="" FCGI_SOCKET="$FCGI_SOCK" BODY_MAX=256k &&
    shop_nginx_add_module "$NGINX_PREFIX" module \
        LISTEN="127.0.0.1:$MODULE_HTTP_PORT" DATABASE="$(shop_pg_url shop)" \
        ADMIN_TOKEN_FILE="$TOKEN_FILE" WEBHOOK_SECRET_FILE="$SECRET_FILE" \
        BODY_LIMIT="$BODY_LIMIT" POOL_SIZE=2 ACCESS_LOG="$MODULE_LOG shop_module_json"
} 2>"$T/nginx-conf.err" || bail "nginx configuration" "$(cat "$T/nginx-conf.err")"
TARGETS+=("fcgi=http://127.0.0.1:$FCGI_HTTP_PORT" "module=http://127.0.0.1:$MODULE_HTTP_PORT")

shop_nginx_start "$NGINX_PREFIX" 2>"$T/nginx-start.err" || bail "nginx did not start" "$(cat "$T/nginx-start.err")"
NGINX_PID=$SHOP_NGINX_PID
tap_ok "setup: nginx (pid $NGINX_PID) with shop-fcgi behind fastcgi_pass and the module loaded"
for t in "${TARGETS[@]}"; do
    # Ready: the module's pool connects after the workers start, shop-fcgi's
    # on first use; /readyz answers 200 once each reaches the database.
    pid=$FCGI_PID; [ "${t%%=*}" = fcgi ] || pid=$NGINX_PID
    if shop_wait_http "${t#*=}/readyz" 20 "$pid" 2>"$T/wait.err"; then
        tap_ok "setup: ${t%%=*} front answers GET /readyz at ${t#*=}"
    else
        bail "${t%%=*} front does not answer" "$(cat "$T/wait.err")"
    fi
done

# ------------------------------------------------------------------ suite

SUITE_ARGS=(--token-file "$TOKEN_FILE" --body-limit "$BODY_LIMIT_BYTES" --pool-size 4)
# orders.py (issue 4): the payment webhook cases sign their requests with the secret shop-fcgi reads.
SUITE_ARGS+=(--webhook-secret-file "$SECRET_FILE")
for t in "${TARGETS[@]}"; do SUITE_ARGS+=(--target "$t"); done

# run_suite LABEL ARGS...: suite.py's TAP, renumbered into ours.
run_suite() {
    local label=$1 line rcfile=$T/suite-$1.rc; shift
    while IFS= read -r line; do
        case "$line" in
            "ok "*)      N=$((N + 1)); printf 'ok %d%s\n' "$N" "$(sed -E 's/^ok [0-9]+//' <<<"$line")" ;;
            "not ok "*)  N=$((N + 1)); FAILED=$((FAILED + 1))
                         printf 'not ok %d%s\n' "$N" "$(sed -E 's/^not ok [0-9]+//' <<<"$line")" ;;
            1..*)        ;;
            "#"*)        printf '%s\n' "$line" ;;
            *)           printf '#   %s\n' "$line" ;;
        esac
    done < <(timeout 900 python3 "$SRC/tests/http/suite.py" "${SUITE_ARGS[@]}" "$@" 2>&1 | tee "$T/suite-$label.out"
             echo "${PIPESTATUS[0]}" >"$rcfile")
    # The status is written just after the output ends: give it a moment.
    local rc i=0
    while [ ! -s "$rcfile" ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    rc=$(cat "$rcfile" 2>/dev/null || echo '?')
    # suite.py exits 1 when a case failed (already counted); anything else is a crash.
    case "$rc" in
        0|1) ;;
        *) tap_not_ok "suite.py ($label) ran to completion" "exit status $rc (124: timed out)" ;;
    esac
}

run_suite main --phase main

# The database goes away: health stays up, readiness and data answer 503
# quickly; it comes back: the shop recovers without a restart.
if shop_pg_stop "$SHOP_PG_DIR"; then
    run_suite outage-down --phase outage-down
    if shop_pg_start "$T/pg" "$PG_PORT" "$T/pg/run" 2>"$T/pg-restart.err"; then
        run_suite outage-up --phase outage-up
    else
        tap_not_ok "outage: PostgreSQL restarted" "$(cat "$T/pg-restart.err")"
    fi
else
    tap_not_ok "outage: PostgreSQL stopped"
fi

# --------------------------------------------------------- logs and exit

# json_log_ok FILE: every line is one JSON object; the request the suite sent
# with X-Request-Id abc-123 is there with that id and its status. shop-fcgi
# writes these lines to stderr; the module's come from $shop_log through
# access_log.
json_log_ok() {
    python3 - "$1" <<'EOF'
import json, sys
bad, found, n = [], False, 0
for i, line in enumerate(open(sys.argv[1], encoding="utf-8", errors="replace"), 1):
    line = line.rstrip("\n")
    if not line.strip():
        continue
    n += 1
    try:
        o = json.loads(line)
        if not isinstance(o, dict):
            raise ValueError("not an object")
    except ValueError as e:
        if not line.startswith("==") and "Sanitizer" not in line:   # sanitizer output has its own check
            bad.append("line %d: %s: %r" % (i, e, line[:200]))
        continue
    if "abc-123" in o.values() and 200 in o.values():
        found = True
print("%d lines" % n)
for b in bad[:10]:
    print(b)
if not found:
    print("no log line carries request id abc-123 with status 200")
sys.exit(1 if bad or not found else 0)
EOF
}
out=$(json_log_ok "$FCGI_LOG")
tap_is "logs: shop-fcgi logs one JSON object per line, with the request id" "$?" "$out"
out=$(json_log_ok "$MODULE_LOG")
tap_is "logs: the module logs one JSON object per line (\$shop_log), with the request id" "$?" "$out"

out=$(grep -E 'upstream prematurely closed|upstream sent|recv\(\) failed|readv\(\) failed|connect\(\) to unix|\[alert\]|\[crit\]|\[emerg\]' \
          "$NGINX_PREFIX/logs/error.log" 2>/dev/null | head -n 20)
[ -z "$out" ]
tap_is "logs: nginx saw no broken upstream responses" "$?" "$out"

if shop_alive "$FCGI_PID"; then
    kill -TERM "$FCGI_PID"
    if shop_wait_gone "$FCGI_PID" 15; then
        wait "$FCGI_PID"; rc=$?
        tap_is "shutdown: shop-fcgi exits 0 on SIGTERM (got $rc)" "$rc"
    else
        tap_not_ok "shutdown: shop-fcgi exits on SIGTERM within 15 s"
        kill -KILL "$FCGI_PID" 2>/dev/null
    fi
    FCGI_PID=""
else
    tap_not_ok "shutdown: shop-fcgi still running after the suite"
fi

reports=$(find "$T/san" -type f 2>/dev/null | sort)
if [ -z "$reports" ]; then
    if [ "$SANITIZED" = yes ]; then tap_ok "sanitizers: no ASan/UBSan/LSan report"
    else tap_ok "sanitizers: no report (not a sanitizer build)"; fi
else
    msgs=()
    for f in $reports; do msgs+=("---- $(basename "$f")" "$(head -n 60 "$f")"); done
    tap_not_ok "sanitizers: no ASan/UBSan/LSan report ($(wc -l <<<"$reports") found)" "${msgs[@]}"
fi

[ "$FAILED" -gt 0 ] && failure_logs
echo "1..$N"
exit 0
