# shellcheck shell=bash
# shellcheck disable=SC2034  # SHOP_PG_*, SHOP_FCGI_PID, SHOP_NGINX_PID are outputs for the caller
# tests/lib.sh: start and stop a throwaway shop (PostgreSQL, shop-fcgi under
# spawn-fcgi, nginx). Sourced by ./shopdev, tests/http/harness.sh and
# tests/bench/run, so the three start things the same way.
#
# Every start function records the PID it started; every stop function stops
# that PID (and only that one) and waits until the process is gone.
# Diagnostics go to stderr, prefixed with '#' (harmless inside TAP output).
#
# Inputs (set before calling): SHOP_SRCDIR (the source tree), SHOP_BUILDDIR
# (an out-of-tree build with fcgi/shop-fcgi in it).

SHOP_PGBIN=${SHOP_PGBIN:-}
SHOP_NGINX=${SHOP_NGINX:-/usr/sbin/nginx}

shop_say() { printf '# %s\n' "$*" >&2; }

# The PostgreSQL server binaries (initdb, pg_ctl, postgres, pgbench).
shop_pgbin() {
    if [ -z "$SHOP_PGBIN" ]; then
        SHOP_PGBIN=$(pg_config --bindir 2>/dev/null || true)
        if [ ! -x "$SHOP_PGBIN/initdb" ]; then
            SHOP_PGBIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
        fi
    fi
    if [ ! -x "$SHOP_PGBIN/initdb" ]; then
        shop_say "no PostgreSQL server binaries (initdb) found; install the postgresql package"
        return 1
    fi
    printf '%s\n' "$SHOP_PGBIN"
}

# initdb and postgres refuse to run as root: as root they run as `postgres`
# (from postgresql-common; else `nobody`), otherwise as the caller.
shop_pg_osuser() {
    if [ "$(id -u)" != 0 ]; then id -un
    elif id postgres >/dev/null 2>&1; then echo postgres
    else echo nobody
    fi
}

shop_as_pg() {
    if [ "$(id -u)" = 0 ]; then
        local u; u=$(shop_pg_osuser)
        setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
    else
        "$@"
    fi
}

# True while PID names a live process (not a zombie). Works for processes of
# other users too, unlike kill -0 as non-root.
shop_alive() {
    local pid=${1:-}
    case "$pid" in ''|*[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/status" ] || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

# shop_wait_gone PID SECONDS: waits until PID is gone; 1 if it is still there.
shop_wait_gone() {
    local pid=$1 limit=$(( ${2:-10} * 10 )) i=0
    while shop_alive "$pid"; do
        [ "$i" -ge "$limit" ] && return 1
        sleep 0.1; i=$((i + 1))
    done
    return 0
}

# shop_stop_pid PID [SIGNAL] [SECONDS]: SIGNAL (TERM), wait, then KILL.
shop_stop_pid() {
    local pid=$1 sig=${2:-TERM} secs=${3:-10}
    shop_alive "$pid" || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    if ! shop_wait_gone "$pid" "$secs"; then
        shop_say "pid $pid did not stop after SIG$sig within ${secs}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        shop_wait_gone "$pid" 5 || return 1
    fi
    return 0
}

# shop_free_ports N: N distinct free TCP ports on 127.0.0.1, one a line,
# picked at random below the ephemeral range (so outgoing connections do not
# take them between now and their use).
shop_free_ports() {
    python3 - "${1:-1}" <<'EOF'
import random, socket, sys
n, got = int(sys.argv[1]), []
while len(got) < n:
    p = random.randrange(20000, 32000)
    if p in got:
        continue
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as servers do: TIME_WAIT is no listener
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    got.append(p)
print("\n".join(map(str, got)))
EOF
}

# shop_port_taken PORT: true when something listens on 127.0.0.1:PORT.
shop_port_taken() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as servers do: TIME_WAIT is no listener
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
EOF
}

# shop_wait_http URL SECONDS [PID]: polls until URL answers 2xx; gives up
# early when PID (the server) died.
shop_wait_http() {
    local url=$1 limit=$(( ${2:-15} * 10 )) pid=${3:-} i=0
    while ! curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
        if [ -n "$pid" ] && ! shop_alive "$pid"; then
            shop_say "pid $pid exited while waiting for $url"
            return 1
        fi
        [ "$i" -ge "$limit" ] && { shop_say "$url did not answer within $((limit / 10))s"; return 1; }
        sleep 0.1; i=$((i + 1))
    done
}

# shop_check_path PATH: refuses paths the generated configuration files and
# command lines cannot carry.
shop_check_path() {
    case "$1" in
        *[[:space:]\'\"\;\&\?\#\$\`\\]*)
            shop_say "unsupported character (space, quote, ;&?#\$\`\\) in path: $1"; return 1 ;;
    esac
}

# ---------------------------------------------------------------- PostgreSQL
#
# shop_pg_start DIR PORT [SOCKDIR]: a cluster in DIR/data (initdb on first
# use), unix socket in SOCKDIR (default DIR/run; mode 755 so other users,
# e.g. nginx workers, reach it), TCP on 127.0.0.1:PORT, trust auth, superuser
# `shop`, fsync, synchronous_commit and full_page_writes off (a throwaway:
# a crash may lose acknowledged commits) unless SHOP_PG_DURABLE=1 (what
# `./shopdev up` runs). Sets SHOP_PG_DIR, SHOP_PG_PORT, SHOP_PG_SOCKDIR,
# SHOP_PG_PID and exports PGHOST/PGPORT/PGUSER.
shop_pg_start() {
    local dir=$1 port=$2 sock=${3:-$1/run} bin u fast=""
    bin=$(shop_pgbin) || return 1
    [ "${SHOP_PG_DURABLE:-0}" = 1 ] || fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    shop_check_path "$dir" && shop_check_path "$sock" || return 1
    # sun_path holds 107 bytes; "/.s.PGSQL.PORT" takes up to 16 of them.
    if [ $(( ${#sock} + 16 )) -gt 107 ]; then
        shop_say "socket directory path too long for a unix socket (${#sock} bytes): $sock"
        return 1
    fi
    u=$(shop_pg_osuser)
    mkdir -p "$dir" "$sock" || return 1
    if [ "$(id -u)" = 0 ]; then chown "$u:" "$dir" "$sock" || return 1; fi
    chmod 755 "$dir" "$sock"
    if [ ! -s "$dir/data/PG_VERSION" ]; then
        if ! (cd "$dir" && shop_as_pg "$bin/initdb" -D "$dir/data" -U shop -A trust -E UTF8 \
                  --locale=C.UTF-8 --no-sync) >"$dir/initdb.log" 2>&1; then
            shop_say "initdb failed:"; sed 's/^/#   /' "$dir/initdb.log" >&2
            return 1
        fi
    fi
    if shop_port_taken "$port"; then
        shop_say "port $port on 127.0.0.1 is taken; choose another"
        return 1
    fi
    if ! (cd "$dir" && shop_as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
              -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c max_connections=200 $fast" \
              start) >"$dir/pg_ctl.log" 2>&1; then
        shop_say "PostgreSQL did not start:"; tail -n 20 "$dir/pg_ctl.log" "$dir/server.log" 2>/dev/null | sed 's/^/#   /' >&2
        return 1
    fi
    SHOP_PG_DIR=$dir SHOP_PG_PORT=$port SHOP_PG_SOCKDIR=$sock
    SHOP_PG_PID=$(head -n 1 "$dir/data/postmaster.pid")
    export PGHOST=$sock PGPORT=$port PGUSER=shop
}

# shop_pg_running DIR: the postmaster's PID when the cluster in DIR runs.
shop_pg_running() {
    local pid
    [ -r "$1/data/postmaster.pid" ] || return 1
    pid=$(head -n 1 "$1/data/postmaster.pid")
    shop_alive "$pid" || return 1
    printf '%s\n' "$pid"
}

# shop_pg_port DIR: the port the running cluster in DIR listens on.
shop_pg_port() { sed -n 4p "$1/data/postmaster.pid" 2>/dev/null; }

# shop_pg_stop DIR: fast shutdown through pg_ctl (as the cluster's user),
# then waits for the postmaster's PID; SIGINT/SIGKILL by PID if pg_ctl fails.
shop_pg_stop() {
    local dir=$1 pid bin
    pid=$(shop_pg_running "$dir") || return 0
    bin=$(shop_pgbin) || return 1
    (cd "$dir" && shop_as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop) >/dev/null 2>&1 || true
    shop_stop_pid "$pid" INT 15
}

# shop_pg_url DB: the libpq URL of database DB on the running cluster (unix socket).
shop_pg_url() { printf 'postgresql:///%s?host=%s&port=%s&user=shop\n' "$1" "$SHOP_PG_SOCKDIR" "$SHOP_PG_PORT"; }

# shop_psql DB ARGS...: psql as the superuser `shop`, stopping at the first error.
shop_psql() {
    local db=$1; shift
    PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 \
        -h "$SHOP_PG_SOCKDIR" -p "$SHOP_PG_PORT" -U shop -d "$db" "$@"
}

# shop_createdb DB: creates DB unless it exists.
shop_createdb() {
    if [ "$(shop_psql postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'")" != 1 ]; then
        shop_psql postgres -c "CREATE DATABASE \"$1\""
    fi
}

# shop_dropdb DB
shop_dropdb() { shop_psql postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"; }

# shop_seed DB N: the sample data (sql/seed.sql; safe to run twice).
shop_seed() {
    shop_psql "$1" -v n="$2" -f "$SHOP_SRCDIR/sql/seed.sql" && shop_psql "$1" -c 'VACUUM ANALYZE'
}

# ------------------------------------------------------------------- shop-fcgi

shop_fcgi_bin() { printf '%s\n' "$SHOP_BUILDDIR/fcgi/shop-fcgi"; }

# shop_fcgi_run VAR=VALUE... -- ARGS...: runs shop-fcgi (a subcommand) with
# exactly the given environment (plus PATH and the sanitizer options, when set).
shop_fcgi_run() {
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    [ "${1:-}" = -- ] && shift
    env -i PATH="$PATH" ${ASAN_OPTIONS:+ASAN_OPTIONS="$ASAN_OPTIONS"} \
        ${UBSAN_OPTIONS:+UBSAN_OPTIONS="$UBSAN_OPTIONS"} "${envs[@]}" "$(shop_fcgi_bin)" "$@"
}

# shop_migrate DB: applies sql/NNN_*.sql with `shop-fcgi migrate`.
shop_migrate() {
    shop_fcgi_run SHOP_DATABASE_URL="$(shop_pg_url "$1")" SHOP_SQL_DIR="$SHOP_SRCDIR/sql" -- migrate
}

# shop_write_secret FILE: 32 random hex characters, mode 0640 (never
# world-readable; shop-fcgi refuses a world-readable secret). Keeps an
# existing file that already holds a well-formed secret when KEEP=1.
shop_write_secret() {
    local f=$1
    if [ "${KEEP:-0}" = 1 ] && [ -s "$f" ] && grep -Eq '^[0-9a-f]{32}$' "$f"; then
        chmod 0640 "$f"; return 0
    fi
    (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$f" && echo >>"$f") || return 1
    chmod 0640 "$f"
}

# shop_fcgi_start SOCKET LOG VAR=VALUE...: shop-fcgi under spawn-fcgi on a
# unix socket (mode 0666: nginx workers run as another user). spawn-fcgi -n
# execs shop-fcgi in place, so the PID we start is shop-fcgi's, and its
# stderr (one JSON line per request) goes to LOG. setsid: a Ctrl-C in the
# terminal does not reach it; whoever started it stops it by PID.
# Sets SHOP_FCGI_PID.
shop_fcgi_start() {
    local sock=$1 log=$2 i=0; shift 2
    local spawn; spawn=$(command -v spawn-fcgi) || { shop_say "spawn-fcgi is not installed"; return 1; }
    [ -x "$(shop_fcgi_bin)" ] || { shop_say "not built: $(shop_fcgi_bin)"; return 1; }
    rm -f "$sock"
    env -i PATH="$PATH" ${ASAN_OPTIONS:+ASAN_OPTIONS="$ASAN_OPTIONS"} \
        ${UBSAN_OPTIONS:+UBSAN_OPTIONS="$UBSAN_OPTIONS"} "$@" \
        setsid "$spawn" -n -s "$sock" -M 0666 -- "$(shop_fcgi_bin)" </dev/null >>"$log" 2>&1 &
    SHOP_FCGI_PID=$!
    # Ready when the socket exists and spawn-fcgi has exec'd shop-fcgi.
    while [ ! -S "$sock" ] || [ "$(readlink "/proc/$SHOP_FCGI_PID/exe" 2>/dev/null)" != "$(readlink -f "$(shop_fcgi_bin)")" ]; do
        if ! shop_alive "$SHOP_FCGI_PID"; then
            shop_say "shop-fcgi exited at start-up:"; tail -n 20 "$log" | sed 's/^/#   /' >&2
            return 1
        fi
        [ "$i" -ge 100 ] && { shop_say "shop-fcgi did not come up within 10s"; return 1; }
        sleep 0.1; i=$((i + 1))
    done
}

# shop_fcgi_stop PID [SECONDS]: SIGTERM (shop-fcgi finishes in-flight
# requests and exits 0), then waits; SIGKILL after SECONDS (10).
shop_fcgi_stop() { shop_stop_pid "$1" TERM "${2:-10}"; }

# ----------------------------------------------------------------------- nginx
#
# The configuration is generated from templates in conf/: every @NAME@ in a
# template is replaced by the value given as NAME=VALUE (plain bash, no
# envsubst), and a placeholder left over is an error.
#
# shop_render TEMPLATE OUT NAME=VALUE... (when a NAME repeats, the first wins)
shop_render() {
    local in=$1 out=$2 text kv; shift 2
    text=$(<"$in") || return 1
    for kv in "$@"; do
        # Quoted replacement: bash 5.2 would otherwise expand '&' in it.
        text=${text//"@${kv%%=*}@"/"${kv#*=}"}
    done
    if grep -qE '@[A-Z][A-Z0-9_]*@' <<<"$text"; then
        shop_say "$in: unreplaced placeholder(s): $(grep -oE '@[A-Z][A-Z0-9_]*@' <<<"$text" | sort -u | tr '\n' ' ')"
        return 1
    fi
    printf '%s\n' "$text" >"$out"
}

# shop_nginx_prepare PREFIX VAR=VALUE...: renders conf/nginx.conf.in and the
# shared conf/nginx-problems.conf.in into PREFIX. Front-ends then add their
# server blocks with shop_nginx_add_server. VARs: WORKER_PROCESSES (auto),
# ERROR_LOG_LEVEL (warn), ACCESS_LOG ("off" or "PATH shop"),
# WORKER_SHUTDOWN_TIMEOUT (10s: how long old workers may finish requests).
shop_nginx_prepare() {
    local prefix=$1; shift
    shop_check_path "$prefix" || return 1
    mkdir -p "$prefix/logs" "$prefix/tmp" "$prefix/conf.d" "$prefix/html" || return 1
    rm -f "$prefix"/conf.d/*.conf
    # The first value given for a name wins: the caller's, then the defaults.
    shop_render "$SHOP_SRCDIR/conf/nginx.conf.in" "$prefix/nginx.conf" \
        PREFIX="$prefix" "$@" WORKER_PROCESSES=auto ERROR_LOG_LEVEL=warn ACCESS_LOG=off \
        WORKER_SHUTDOWN_TIMEOUT=10s || return 1
    shop_render "$SHOP_SRCDIR/conf/nginx-problems.conf.in" "$prefix/problems.conf" PREFIX="$prefix"
}

# shop_nginx_add_server PREFIX NAME TEMPLATE VAR=VALUE...: one server block,
# rendered to PREFIX/conf.d/server-NAME.conf (PREFIX is always substituted).
shop_nginx_add_server() {
    local prefix=$1 name=$2 tpl=$3; shift 3
    shop_render "$tpl" "$prefix/conf.d/server-$name.conf" PREFIX="$prefix" "$@"
}

# shop_nginx_add_main PREFIX NAME LINE...: main-context lines (load_module) in
# PREFIX/conf.d/main-NAME.conf.
shop_nginx_add_main() {
    local prefix=$1 name=$2; shift 2
    printf '%s\n' "$@" >"$prefix/conf.d/main-$name.conf"
}

# shop_nginx_add_http PREFIX NAME LINE...: http-context lines (log_format) in
# PREFIX/conf.d/http-NAME.conf, included before every server block.
shop_nginx_add_http() {
    local prefix=$1 name=$2; shift 2
    printf '%s\n' "$@" >"$prefix/conf.d/http-$name.conf"
}

# ------------------------------------------------------------ the nginx module

# shop_module_so: the module built next to shop-fcgi.
shop_module_so() { printf '%s\n' "$SHOP_BUILDDIR/module/ngx_http_shop_module.so"; }

# shop_module_has DIRECTIVE: true when the built module knows DIRECTIVE (its
# name is a string of its own in the .so), so a configuration can use a
# directive only once the module has it.
shop_module_has() {
    LC_ALL=C grep -qaP "\\x00$1\\x00" "$(shop_module_so)" 2>/dev/null
}

# shop_nginx_add_module PREFIX NAME VAR=VALUE...: loads the module (once) and
# adds a server block from conf/nginx-module.server.conf.in as
# PREFIX/conf.d/server-NAME.conf. VARs: LISTEN, DATABASE, ADMIN_TOKEN_FILE,
# WEBHOOK_SECRET_FILE (required); BASE_PATH (""), BODY_LIMIT (1m),
# POOL_SIZE (2), SETTINGS and LOCATIONS (extra lines, ""), ACCESS_LOG
# (PREFIX/logs/shop-NAME.log, JSON lines).
shop_nginx_add_module() {
    local prefix=$1 name=$2 so; shift 2
    so=$(shop_module_so)
    [ -r "$so" ] || { shop_say "the nginx module is not built: $so"; return 1; }
    shop_check_path "$so" || return 1
    shop_nginx_add_main "$prefix" module "load_module $so;" || return 1
    shop_nginx_add_http "$prefix" module \
        "# the module's JSON log line per request (as shop-fcgi logs them)" \
        "log_format shop_module_json escape=none '\$shop_log';" \
        "# nginx's JSON access log with the module's variables: log_format shop_json" \
        "include $SHOP_SRCDIR/conf/nginx-shop-log.conf;" || return 1
    shop_nginx_add_server "$prefix" "$name" "$SHOP_SRCDIR/conf/nginx-module.server.conf.in" "$@" \
        BASE_PATH="" BODY_LIMIT=1m POOL_SIZE=2 SETTINGS="" LOCATIONS="" \
        ACCESS_LOG="$prefix/logs/shop-$name.log shop_module_json"
}

# shop_module_warehouse_settings VAR=VALUE...: the module's lines for the
# fan-out settings given the shop-fcgi way: SHOP_STOCK_DEADLINE_MS=250ms ->
# `shop_stock_deadline 250ms;`, SHOP_WAREHOUSE_NORTH_DC_DATABASE=dsn ->
# `shop_warehouse_database north-dc "dsn";` (the code: lower case, '_' as
# '-', as shop-fcgi reads it). Other VARs are ignored. A directive the built
# module does not know yet is left out, with a warning (the module then asks
# the shop's database for those warehouses).
shop_module_warehouse_settings() {
    local kv name val code
    for kv in "$@"; do
        name=${kv%%=*} val=${kv#*=}
        case "$name" in
            SHOP_STOCK_DEADLINE_MS)
                case "$val" in *[!0-9]*) ;; ?*) val=${val}ms ;; esac
                printf '    shop_stock_deadline %s;\n' "$val" ;;
            SHOP_WAREHOUSE_*_DATABASE)
                code=${name#SHOP_WAREHOUSE_}; code=${code%_DATABASE}
                code=$(tr 'A-Z_' 'a-z-' <<<"$code")
                case "$val" in *[\"\\]*)
                    shop_say "$name: a DSN with a quote or backslash cannot go into nginx.conf; left out"; continue ;;
                esac
                if shop_module_has shop_warehouse_database; then
                    printf '    shop_warehouse_database %s "%s";\n' "$code" "$val"
                else
                    shop_say "the module has no shop_warehouse_database yet: warehouse $code is asked in the shop's database there"
                fi ;;
        esac
    done
}

# shop_nginx_start PREFIX: tests the configuration, starts nginx (it
# daemonises; master as the caller, workers as nobody when root) and sets
# SHOP_NGINX_PID from its pid file.
shop_nginx_start() {
    local prefix=$1 i=0
    # Workers run as another user: they need to traverse to the sockets.
    chmod 755 "$prefix"
    if ! "$SHOP_NGINX" -t -q -p "$prefix" -c "$prefix/nginx.conf" 2>"$prefix/logs/nginx-t.log"; then
        shop_say "nginx -t failed:"; sed 's/^/#   /' "$prefix/logs/nginx-t.log" >&2
        return 1
    fi
    rm -f "$prefix/nginx.pid"
    if ! "$SHOP_NGINX" -p "$prefix" -c "$prefix/nginx.conf" 2>>"$prefix/logs/error.log"; then
        shop_say "nginx did not start:"; tail -n 20 "$prefix/logs/error.log" | sed 's/^/#   /' >&2
        return 1
    fi
    while [ ! -s "$prefix/nginx.pid" ]; do
        [ "$i" -ge 100 ] && { shop_say "nginx wrote no pid file within 10s"; return 1; }
        sleep 0.1; i=$((i + 1))
    done
    SHOP_NGINX_PID=$(<"$prefix/nginx.pid")
}

# shop_nginx_running PREFIX: the master's PID when the nginx of PREFIX runs.
shop_nginx_running() {
    local pid
    [ -s "$1/nginx.pid" ] || return 1
    pid=$(<"$1/nginx.pid")
    shop_alive "$pid" || return 1
    printf '%s\n' "$pid"
}

# shop_nginx_stop PREFIX: graceful quit through the pid file (nginx -s quit),
# waits for the master; SIGTERM/SIGKILL by PID when it lingers.
shop_nginx_stop() {
    local prefix=$1 pid
    pid=$(shop_nginx_running "$prefix") || return 0
    "$SHOP_NGINX" -q -p "$prefix" -c "$prefix/nginx.conf" -s quit 2>/dev/null || kill -QUIT "$pid" 2>/dev/null || true
    if ! shop_wait_gone "$pid" 10; then
        shop_stop_pid "$pid" TERM 5
    fi
}

# shop_tail_logs LINES FILE...: the tails of log files as '#' diagnostics.
shop_tail_logs() {
    local n=$1 f; shift
    for f in "$@"; do
        [ -s "$f" ] || continue
        printf '# ---- last %s lines of %s\n' "$n" "$f"
        tail -n "$n" "$f" | sed 's/^/#   /'
    done
}

# shop_tap_merge FILE [LABEL]: FILE's TAP results renumbered after the
# caller's count $n, "LABEL: " before each name; a "not ok" sets rc=1 (the
# caller's status). The plan goes; comments and other lines stay.
shop_tap_merge() {
    local line label=${2:+$2: }
    while IFS= read -r line; do
        case "$line" in
            "ok "*)     n=$((n + 1))
                        printf 'ok %d - %s%s\n' "$n" "$label" "$(sed -E 's/^ok [0-9]+( - )?//' <<<"$line")" ;;
            "not ok "*) n=$((n + 1)); rc=1
                        printf 'not ok %d - %s%s\n' "$n" "$label" "$(sed -E 's/^not ok [0-9]+( - )?//' <<<"$line")" ;;
            1..*)       ;;
            *)          printf '%s\n' "$line" ;;
        esac
    done <"$1"
}
