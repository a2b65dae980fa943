#!/usr/bin/env bash
# tests/servers/run.sh: the web server examples of conf/ in front of the shop,
# each as shipped, with only its paths and port replaced: TAP, make check.
#
#   nginx-fcgi    conf/nginx-fcgi.example.conf   nginx fastcgi_pass -> shop-fcgi
#   nginx-module  conf/nginx-module.example.conf nginx with the module
#   lighttpd      conf/lighttpd.example.conf     lighttpd mod_fastcgi -> shop-fcgi
#   apache2       conf/apache2.example.conf      Apache mod_proxy_fcgi -> shop-fcgi
#
# One throwaway PostgreSQL (migrated, 50 products), one shop-fcgi under
# spawn-fcgi on a unix socket (as the examples expect), then each server in
# turn on a free loopback port, tests/servers/check.py against it (reads,
# conditional GET, problems, X-Request-Id, the admin token through the
# server, an SSE event arriving while the stream is open), and a stop by
# PID. A server that is not installed is a skipped case (lighttpd, apache2:
# apt-get install lighttpd apache2; nothing of theirs is started or changed
# but the process this test runs). SERVERS="lighttpd apache2" chooses.
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by make check).
set -u -o pipefail
SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHOP_BUILDDIR=${SHOP_BUILDDIR:-$SHOP_SRCDIR}
export SHOP_SRCDIR SHOP_BUILDDIR
. "$SHOP_SRCDIR/tests/lib.sh"

read -r -a SERVERS <<<"${SERVERS:-nginx-fcgi nginx-module lighttpd apache2}"
CONF=$SHOP_SRCDIR/conf
APACHE=${SHOP_APACHE:-/usr/sbin/apache2}
APACHE_MODULES=${SHOP_APACHE_MODULES:-/usr/lib/apache2/modules}
LIGHTTPD=${SHOP_LIGHTTPD:-/usr/sbin/lighttpd}

W=$(mktemp -d /tmp/shop-servers.XXXXXX)
chmod 755 "$W"
FCGI_PID="" SERVER_PID="" NGX=""
cleanup() {
    [ -n "$SERVER_PID" ] && shop_stop_pid "$SERVER_PID" TERM 10
    [ -n "$NGX" ] && shop_nginx_stop "$NGX"
    [ -n "$FCGI_PID" ] && shop_fcgi_stop "$FCGI_PID"
    shop_pg_stop "$W/pg"
    if [ "${KEEP:-0}" = 1 ]; then shop_say "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bail() { echo "Bail out! $*"; exit 1; }

n=0 rc=0
result() { # STATUS NAME [DIAG...]
    local st=$1 name=$2; shift 2
    n=$((n + 1))
    if [ "$st" = 0 ]; then echo "ok $n - $name"; else echo "not ok $n - $name"; rc=1; printf '#   %s\n' "$@"; fi
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

# tap FILE LABEL STATUS: FILE's results renumbered into ours, "LABEL: "
# before each; a script that exited non-zero without a failure, or ran fewer
# cases than it planned, adds a failure.
tap() {
    local line plan=0 seen=0 bad=0
    while IFS= read -r line; do
        case "$line" in
            'ok '*|'not ok '*)
                n=$((n + 1)) seen=$((seen + 1))
                case "$line" in 'not ok '*) rc=1 bad=1 ;; esac
                printf '%s\n' "$line" | sed -E "s/^(not ok|ok) [0-9]+ - /\\1 $n - $2: /" ;;
            '1..'*) plan=${line#1..} ;;
            *) printf '%s\n' "$line" | sed 's/^\([^#]\)/# \1/' ;;
        esac
    done <"$1"
    if [ "$seen" != "$plan" ] || { [ "$3" != 0 ] && [ "$bad" = 0 ]; }; then
        result 1 "$2: ran $seen of $plan cases, exit $3"
    fi
}

# sed_escape TEXT: TEXT as a literal sed replacement (s|...|TEXT|).
sed_escape() { printf '%s' "$1" | sed -e 's/[&|\\]/\\&/g'; }

# render EXAMPLE OUT SED-ARGS...: the example with its paths replaced; none
# of the machine's own (/etc/shop, /run/shop, /var/log) may remain.
render() {
    local in=$1 out=$2; shift 2
    sed "$@" "$in" >"$out" || return 1
    if grep -nE '/etc/shop|/run/shop|/var/log|/run/postgresql' "$out" >"$out.left"; then
        shop_say "$in: paths left after rendering:"; sed 's/^/#   /' "$out.left" >&2
        return 1
    fi
}

# ---- the shop: PostgreSQL and shop-fcgi
read -r PG_PORT <<<"$(shop_free_ports 1)"
shop_pg_start "$W/pg" "$PG_PORT" "$W/pg/run" || bail "PostgreSQL did not start"
shop_createdb shop && shop_migrate shop >/dev/null || bail "migration failed"
shop_seed shop 50 >/dev/null || bail "seed failed"
shop_write_secret "$W/admin.token" && shop_write_secret "$W/webhook.secret" || bail "secrets"
DB_URL=$(shop_pg_url shop)
SOCK=$W/fcgi.sock
shop_fcgi_start "$SOCK" "$W/shop-fcgi.log" SHOP_DATABASE_URL="$DB_URL" \
    SHOP_ADMIN_TOKEN_FILE="$W/admin.token" SHOP_WEBHOOK_SECRET_FILE="$W/webhook.secret" \
    SHOP_BASE_PATH="" || bail "shop-fcgi did not start"
FCGI_PID=$SHOP_FCGI_PID

# check_server NAME BASE-URL PID LOGS...: waits for it, runs check.py.
check_server() {
    local name=$1 url=$2 pid=$3; shift 3
    if ! shop_wait_http "$url/healthz" 15 "$pid" 2>"$W/$name.wait"; then
        result 1 "$name: answers $url/healthz" "$(cat "$W/$name.wait")" \
            "$(shop_tail_logs 20 "$@" "$W/shop-fcgi.log")"
        return
    fi
    python3 "$SHOP_SRCDIR/tests/servers/check.py" "$url" "$W/admin.token" >"$W/$name.tap" 2>&1
    tap "$W/$name.tap" "$name" "$?"
    grep -q '^not ok' "$W/$name.tap" && shop_tail_logs 15 "$@" "$W/shop-fcgi.log"
}

nginx_base_conf() { # PREFIX: the main and http parts a throwaway nginx needs
    cat <<NGX
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 256; }
NGX
}
nginx_temp_paths() {
    local d
    for d in client_body proxy fastcgi uwsgi scgi; do printf '    %s_temp_path %s/tmp/%s;\n' "$d" "$1" "$d"; done
}

# check_nginx NAME PREFIX URL: nginx with PREFIX/nginx.conf started, checked, stopped
check_nginx() {
    NGX=$2
    shop_nginx_start "$2" || { result 1 "$1: starts" "$(shop_tail_logs 20 "$2/logs/error.log")"; return; }
    check_server "$1" "$3" "$SHOP_NGINX_PID" "$2/logs/error.log"
    shop_nginx_stop "$2"; NGX=""
}

run_nginx_fcgi() {
    local port=$1 p=$W/nginx-fcgi
    mkdir -p "$p/logs" "$p/tmp"
    render "$CONF/nginx-fcgi.example.conf" "$p/shop.conf" -e "s|/run/shop/fcgi.sock|$SOCK|g" || { result 1 "nginx-fcgi: render"; return; }
    { nginx_base_conf "$p"
      echo "http {"; nginx_temp_paths "$p"
      echo "    access_log off;"
      echo "    server {"
      echo "        listen 127.0.0.1:$port;"
      echo "        include $p/shop.conf;"
      echo "    }"
      echo "}"; } >"$p/nginx.conf"
    check_nginx nginx-fcgi "$p" "http://127.0.0.1:$port"
}

run_nginx_module() {
    local port=$1 p=$W/nginx-module so
    so=$(shop_module_so)
    [ -r "$so" ] || { result 1 "nginx-module: the module is built ($so)"; return; }
    mkdir -p "$p/logs" "$p/tmp"
    render "$CONF/nginx-module.example.conf" "$p/shop.conf" \
        -e "s|\"postgresql:///shop?host=/run/postgresql&user=shop\"|\"$(sed_escape "$DB_URL")\"|" \
        -e "s|/etc/shop/admin.token|$W/admin.token|" -e "s|/etc/shop/webhook.secret|$W/webhook.secret|" \
        -e "s|listen 80;|listen 127.0.0.1:$port;|" -e "s|/var/log/nginx/shop.log|$p/logs/shop.log|" \
        || { result 1 "nginx-module: render"; return; }
    { echo "load_module $so;"; nginx_base_conf "$p"
      echo "http {"; nginx_temp_paths "$p"
      echo "    include $p/shop.conf;"
      echo "}"; } >"$p/nginx.conf"
    check_nginx nginx-module "$p" "http://127.0.0.1:$port/api"
}

run_lighttpd() {
    local port=$1 p=$W/lighttpd
    mkdir -p "$p/html"
    # lighttpd opens its error log after it dropped to nobody
    [ "$(id -u)" = 0 ] && chown nobody: "$p"
    render "$CONF/lighttpd.example.conf" "$p/shop.conf" -e "s|/run/shop/fcgi.sock|$SOCK|g" || { result 1 "lighttpd: render"; return; }
    { echo "server.document-root = \"$p/html\""
      echo "server.bind = \"127.0.0.1\""
      echo "server.port = $port"
      echo "server.pid-file = \"$p/lighttpd.pid\""
      echo "server.errorlog = \"$p/error.log\""
      if [ "$(id -u)" = 0 ]; then echo 'server.username = "nobody"'; echo 'server.groupname = "nogroup"'; fi
      echo "include \"$p/shop.conf\""; } >"$p/lighttpd.conf"
    if ! "$LIGHTTPD" -tt -f "$p/lighttpd.conf" >"$p/check.log" 2>&1; then
        result 1 "lighttpd: lighttpd -tt accepts the example" "$(cat "$p/check.log")"; return
    fi
    "$LIGHTTPD" -D -f "$p/lighttpd.conf" </dev/null >>"$p/stderr.log" 2>&1 &
    SERVER_PID=$!
    check_server lighttpd "http://127.0.0.1:$port" "$SERVER_PID" "$p/error.log" "$p/stderr.log"
    shop_stop_pid "$SERVER_PID" TERM 10; SERVER_PID=""
}

run_apache2() {
    local port=$1 p=$W/apache2 m
    mkdir -p "$p/run"
    render "$CONF/apache2.example.conf" "$p/shop.conf" -e "s|/run/shop/fcgi.sock|$SOCK|g" \
        -e "s|<VirtualHost \*:80>|<VirtualHost *:$port>|" || { result 1 "apache2: render"; return; }
    { for m in mpm_event authz_core proxy proxy_fcgi; do
          echo "LoadModule ${m}_module $APACHE_MODULES/mod_$m.so"
      done
      echo "ServerRoot \"$p\""
      echo "ServerName localhost"
      echo "Listen 127.0.0.1:$port"
      echo "PidFile $p/apache2.pid"
      echo "DefaultRuntimeDir $p/run"
      echo "ErrorLog $p/error.log"
      echo "LogLevel warn"
      if [ "$(id -u)" = 0 ]; then echo "User nobody"; echo "Group nogroup"; fi
      echo "Include $p/shop.conf"; } >"$p/apache2.conf"
    if ! "$APACHE" -t -f "$p/apache2.conf" >"$p/check.log" 2>&1; then
        result 1 "apache2: apache2 -t accepts the example" "$(cat "$p/check.log")"; return
    fi
    "$APACHE" -f "$p/apache2.conf" -DFOREGROUND </dev/null >>"$p/error.log" 2>&1 &
    SERVER_PID=$!
    check_server apache2 "http://127.0.0.1:$port" "$SERVER_PID" "$p/error.log"
    shop_stop_pid "$SERVER_PID" TERM 10; SERVER_PID=""
}

for s in "${SERVERS[@]}"; do
    read -r port <<<"$(shop_free_ports 1)"
    case "$s" in
        nginx-fcgi)   run_nginx_fcgi "$port" ;;
        nginx-module) run_nginx_module "$port" ;;
        lighttpd)     if [ -x "$LIGHTTPD" ]; then run_lighttpd "$port"; else skip "lighttpd" "not installed ($LIGHTTPD)"; fi ;;
        apache2)      if [ -x "$APACHE" ] && [ -r "$APACHE_MODULES/mod_proxy_fcgi.so" ]; then run_apache2 "$port"
                      else skip "apache2" "not installed ($APACHE, mod_proxy_fcgi)"; fi ;;
        *) bail "unknown server $s" ;;
    esac
done

# shop-fcgi served them all and stops cleanly.
shop_fcgi_stop "$FCGI_PID"; st=$?
result "$st" "shop-fcgi stops on SIGTERM after serving every server"
FCGI_PID=""
echo "1..$n"
exit "$rc"
