#!/usr/bin/env bash
# tests/packaging/run.sh: the Debian packages, built, installed into this
# machine, serving, and purged. TAP. Run as root through
# `./shopdev package-test` (not part of make check: it installs packages).
#
#   1. make dist from a configured build of the source tree; the tarball is
#      unpacked in a temp dir and `dpkg-buildpackage -b -us -uc` builds
#      libnginx-mod-http-shop and shop-fcgi there (the package build runs the
#      unit tests, the module's nginx -t tests and the man page checks);
#      lintian on the .changes: no error, every other tag printed.
#   2. dpkg -i both: the module enabled the Debian way (the link in
#      /etc/nginx/modules-enabled), nginx -t of the machine's configuration
#      still passes; the system user shop; /etc/shop/shop.conf a conffile,
#      the secrets root:shop 0640; the socket unit enabled.
#   3. A throwaway PostgreSQL (tests/lib.sh); /etc/shop/shop.conf pointed at
#      it; `shop-fcgi migrate` as the user shop, twice; `shop-fcgi check`.
#   4. shop-fcgi as its units would run it (systemd does not run in this
#      container): ListenStream, SocketUser/Group/Mode from shop-fcgi.socket,
#      User, Group, EnvironmentFile, ExecStart from shop-fcgi.service,
#      through spawn-fcgi -n (the socket on fd 0; systemd's fd 3 with
#      LISTEN_FDS is tests/fcgi/socketact.py's).
#   5. /usr/sbin/nginx, workers as www-data, a configuration of its own (temp
#      prefix, loopback ports) that includes /etc/nginx/modules-enabled/*.conf
#      and the two installed examples: the module
#      (nginx-module.example.conf) and fastcgi_pass to /run/shop/fcgi.sock
#      (nginx-fcgi.example.conf). curl gets products through both; a product
#      created through one (the admin token from /etc/shop) is seen through
#      the other.
#   6. dpkg --purge: nothing left in /etc/nginx/modules-enabled, /etc/shop,
#      systemd's enablement; /etc/nginx as it was before; the system user
#      shop kept (Debian practice; this test then removes it when it did not
#      exist before, to leave the machine as it found it).
#
# The machine's own nginx (the nginx service) is never started, stopped or
# reloaded; its configuration is only read (nginx -t).
#
# Environment: SHOP_SRCDIR (default: this checkout), PKG_OUT (where the .deb
# files, the lintian output and the build log are kept; default
# $SHOP_SRCDIR/var/packages), SHOP_KEEP_TMP=1 keeps the temp dir.
set -u -o pipefail

SHOP_SRCDIR=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export SHOP_SRCDIR SHOP_BUILDDIR=${SHOP_BUILDDIR:-$SHOP_SRCDIR}
. "$SHOP_SRCDIR/tests/lib.sh"
OUT=${PKG_OUT:-$SHOP_SRCDIR/var/packages}
PKGS=(libnginx-mod-http-shop shop-fcgi)

n=0 rc=0
result() { # STATUS NAME [DIAG...]
    local st=$1 name=$2; shift 2
    n=$((n + 1))
    if [ "$st" = 0 ]; then echo "ok $n - $name"
    else echo "not ok $n - $name"; rc=1; [ $# -gt 0 ] && printf '%s\n' "$@" | sed 's/^/#   /'; fi
}
bail() { echo "Bail out! $*"; exit 1; }
diag() { printf '# %s\n' "$@"; }

[ "$(id -u)" = 0 ] || bail "run as root (it installs packages): ./shopdev package-test"
for c in dpkg-buildpackage dpkg-checkbuilddeps lintian spawn-fcgi curl python3; do
    command -v "$c" >/dev/null || bail "$c is missing (apt-get install dpkg-dev lintian spawn-fcgi curl python3)"
done
for p in "${PKGS[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
        bail "$p is already installed (state: $(dpkg-query -W -f='${Status}' "$p")); purge it first"
    fi
done
[ -e /etc/shop ] && bail "/etc/shop exists; this test would take it over"

W=$(mktemp -d /tmp/shop-pkg.XXXXXX)
chmod 755 "$W"
NGX=$W/nginx FCGI_PID="" INSTALLED=0 MADE_RUN_SHOP=0

# ---- the machine before
USER_BEFORE=0; getent passwd shop >/dev/null && USER_BEFORE=1
snapshot() { # the state of the machine's nginx and systemd enablement
    (cd /etc/nginx && find . -printf '%p %y %m %u:%g %l\n' | sort
     find . -type f -exec md5sum {} + | sort)
    echo "--- nginx packages"
    dpkg-query -W -f='${Package} ${Version} ${Status}\n' 'nginx*' 'libnginx-mod-*' 2>/dev/null | sort
    echo "--- systemd"
    find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled -name '*shop*' 2>/dev/null | sort
    echo "--- nginx service running: $(if [ -s /run/nginx.pid ] && shop_alive "$(cat /run/nginx.pid)"; then echo yes; else echo no; fi)"
}
snapshot >"$W/before.state"

cleanup() {
    set +e
    [ -n "$FCGI_PID" ] && shop_fcgi_stop "$FCGI_PID"
    shop_nginx_stop "$NGX"
    if [ "$INSTALLED" = 1 ]; then
        diag "cleanup: purging ${PKGS[*]}"
        dpkg --purge "${PKGS[@]}" >/dev/null 2>&1
    fi
    [ "$USER_BEFORE" = 0 ] && getent passwd shop >/dev/null && deluser --system --quiet shop >/dev/null 2>&1
    getent group shop >/dev/null && [ "$USER_BEFORE" = 0 ] && delgroup --system --quiet shop >/dev/null 2>&1
    [ "$MADE_RUN_SHOP" = 1 ] && rm -rf /run/shop
    shop_pg_stop "$W/pg"
    if [ "${SHOP_KEEP_TMP:-0}" = 1 ]; then diag "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. build
t0=$SECONDS
mkdir -p "$W/dist" "$OUT"
if [ ! -x "$SHOP_SRCDIR/configure" ]; then
    (cd "$SHOP_SRCDIR" && autoreconf -fi) >"$W/autoreconf.log" 2>&1 || bail "autoreconf failed: $(tail -5 "$W/autoreconf.log")"
fi
if ! (cd "$W/dist" && "$SHOP_SRCDIR/configure" && make dist) >"$W/dist.log" 2>&1; then
    bail "make dist failed: $(tail -20 "$W/dist.log")"
fi
tarball=$(ls "$W"/dist/shop-*.tar.gz)
tar -C "$W" -xzf "$tarball" || bail "cannot unpack $tarball"
srcpkg=$(ls -d "$W"/shop-*/)
(cd "$srcpkg" && dpkg-checkbuilddeps) >"$W/builddeps.log" 2>&1
result $? "build dependencies installed (dpkg-checkbuilddeps)" "$(cat "$W/builddeps.log")"
(cd "$srcpkg" && dpkg-buildpackage -b -us -uc) >"$W/build.log" 2>&1
st=$?
cp "$W/build.log" "$OUT/build.log"
result "$st" "dpkg-buildpackage -b -us -uc from the make dist tarball ($((SECONDS - t0)) s)" \
    "$(tail -n 30 "$W/build.log")"
[ "$st" = 0 ] || exit 1
rm -f "$OUT"/*.deb "$OUT"/*.ddeb "$OUT"/*.changes "$OUT"/*.buildinfo
cp "$W"/*.deb "$W"/*.changes "$W"/*.buildinfo "$OUT/" 2>/dev/null
cp "$W"/*.ddeb "$OUT/" 2>/dev/null
diag "packages (in ${OUT#"$SHOP_SRCDIR"/}):"
(cd "$W" && ls -l ./*.deb ./*.ddeb 2>/dev/null) | sed 's/^/#   /'
grep -E '^(PASS|FAIL|SKIP|ERROR|# (TOTAL|PASS|SKIP|FAIL|ERROR))' "$W/build.log" | grep -v '^PASS' | sed 's/^/#   make check in the package build: /'

changes=$(ls "$W"/*.changes)
lintian --info --display-info --pedantic "$changes" >"$W/lintian.txt" 2>&1
cp "$W/lintian.txt" "$OUT/lintian.txt"
errors=$(grep -c '^E: ' "$W/lintian.txt")
result "$([ "$errors" = 0 ]; echo $?)" "lintian: no error ($(grep -c '^[EWIPX]: ' "$W/lintian.txt") tags in all; overrides in debian/*.lintian-overrides)" \
    "$(grep '^E: ' "$W/lintian.txt")"
grep -E '^[EWIPX]: ' "$W/lintian.txt" | sed 's/^/#   lintian: /'

deb() { ls "$W"/"$1"_*.deb; }
for p in "${PKGS[@]}"; do
    diag "$p: $(dpkg-deb -f "$(deb "$p")" Depends)"
done
dpkg-deb -f "$(deb libnginx-mod-http-shop)" Depends | grep -q 'nginx-abi-'
result $? "libnginx-mod-http-shop depends on nginx-abi-* ($(dpkg-deb -f "$(deb libnginx-mod-http-shop)" Depends | grep -o 'nginx-abi-[^ ,]*'); this nginx provides $(dpkg-query -W -f='${Provides}' nginx))"

# ---- 2. install
INSTALLED=1
dpkg -i "$(deb libnginx-mod-http-shop)" "$(deb shop-fcgi)" >"$W/install.log" 2>&1
result $? "dpkg -i libnginx-mod-http-shop shop-fcgi" "$(cat "$W/install.log")"
grep -iE 'warn|error' "$W/install.log" | sed 's/^/#   dpkg: /'

link=/etc/nginx/modules-enabled/50-mod-http-shop.conf
[ -L "$link" ] && [ "$(readlink "$link")" = /usr/share/nginx/modules-available/mod-http-shop.conf ] \
    && grep -qx 'load_module modules/ngx_http_shop_module.so;' "$(readlink -f "$link")"
result $? "the module is enabled: $link -> $(readlink "$link")"
out=$(/usr/sbin/nginx -t 2>&1)
result $? "nginx -t: the machine's configuration with the module loaded" "$out"
pw=$(getent passwd shop)
[ -n "$pw" ] && [ "$(cut -d: -f3 <<<"$pw")" -lt 1000 ] && [ "$(cut -d: -f7 <<<"$pw")" = /usr/sbin/nologin ]
result $? "system user shop: $pw"
dpkg-query -W -f='${Conffiles}\n' shop-fcgi | grep -q ' /etc/shop/shop.conf '
result $? "/etc/shop/shop.conf is a conffile"
bad=
for f in /etc/shop/admin.token /etc/shop/webhook.secret; do
    [ "$(stat -c '%U:%G %a' "$f" 2>/dev/null)" = "root:shop 640" ] && grep -Eq '^[0-9a-f]{48}$' "$f" || bad="$bad $f($(stat -c '%U:%G %a' "$f" 2>&1))"
done
result "$([ -z "$bad" ]; echo $?)" "secrets made by postinst: root:shop 0640, 48 hex digits" "bad:$bad"
[ -L /etc/systemd/system/sockets.target.wants/shop-fcgi.socket ] && \
    ! [ -e /etc/systemd/system/multi-user.target.wants/shop-fcgi.service ]
result $? "shop-fcgi.socket enabled (sockets.target.wants), the service left to socket activation"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify /lib/systemd/system/shop-fcgi.socket /lib/systemd/system/shop-fcgi.service 2>&1)
result "$([ -z "$(grep -v 'Failed to \(connect\|open\|get\|determine\)\|System has not been booted\|/run/systemd' <<<"$out")" ]; echo $?)" \
    "systemd-analyze verify: the installed units" "$out"

# ---- 3. the database
read -r PG_PORT NGX_MODULE_PORT NGX_FCGI_PORT <<<"$(shop_free_ports 3 | tr '\n' ' ')"
shop_pg_start "$W/pg" "$PG_PORT" "$W/pg/run" || bail "PostgreSQL did not start"
shop_createdb shoppkg >/dev/null || bail "createdb"
DB_URL=$(shop_pg_url shoppkg)
sed_escape() { printf '%s' "$1" | sed -e 's/[&|\\]/\\&/g'; }
sed -i "s|^SHOP_DATABASE_URL=.*|SHOP_DATABASE_URL='$(sed_escape "$DB_URL")'|" /etc/shop/shop.conf
grep -q "^SHOP_DATABASE_URL='$DB_URL'$" /etc/shop/shop.conf
result $? "/etc/shop/shop.conf points at the test database ($DB_URL)"
as_shop() { runuser -u shop -- sh -c 'cd /; set -a; . /etc/shop/shop.conf; set +a; exec "$@"' sh "$@"; }
out=$(as_shop shop-fcgi migrate 2>&1)
result $? "shop-fcgi migrate (as shop, /etc/shop/shop.conf, /usr/share/shop/sql)" "$out"
diag "$(printf '%s\n' "$out" | tail -n 3)"
out=$(as_shop shop-fcgi migrate 2>&1)
result $? "shop-fcgi migrate again: nothing to do" "$out"
out=$(as_shop shop-fcgi check 2>&1)
result $? "shop-fcgi check: $out" "$out"
shop_psql shoppkg -v n=20 -f /usr/share/doc/shop-fcgi/examples/seed.sql >/dev/null 2>"$W/seed.log"
result $? "the sample data (the installed examples/seed.sql, 20 products)" "$(cat "$W/seed.log")"

# ---- 4. shop-fcgi as the units run it
unit() { sed -n "s/^$2=//p" "/lib/systemd/system/shop-fcgi.$1" | tail -n 1; }
LISTEN=$(unit socket ListenStream) S_USER=$(unit socket SocketUser) S_GROUP=$(unit socket SocketGroup)
S_MODE=$(unit socket SocketMode) U=$(unit service User) G=$(unit service Group)
ENVFILE=$(unit service EnvironmentFile) EXEC=$(unit service ExecStart)
diag "units: ListenStream=$LISTEN $S_USER:$S_GROUP $S_MODE; User=$U Group=$G EnvironmentFile=$ENVFILE ExecStart=$EXEC"
[ -d "$(dirname "$LISTEN")" ] || { mkdir -p "$(dirname "$LISTEN")"; MADE_RUN_SHOP=1; }
# spawn-fcgi will not make root the socket's owner (-U root): it makes it
# the user's, and SocketUser is applied after (systemd makes it so itself).
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c 'set -a; . "$1"; set +a; shift; exec setsid "$@"' sh "$ENVFILE" \
    spawn-fcgi -n -s "$LISTEN" -M "$S_MODE" -G "$S_GROUP" -u "$U" -g "$G" -- $EXEC \
    </dev/null >"$W/shop-fcgi.journal" 2>&1 &
FCGI_PID=$!
i=0
while [ ! -S "$LISTEN" ] || [ "$(readlink "/proc/$FCGI_PID/exe")" != "$EXEC" ]; do
    shop_alive "$FCGI_PID" && [ $i -lt 100 ] || break
    sleep 0.1; i=$((i + 1))
done
chown "$S_USER" "$LISTEN" 2>/dev/null
[ -S "$LISTEN" ] && [ "$(stat -c '%U:%G %a' "$LISTEN")" = "$S_USER:$S_GROUP ${S_MODE#0}" ] \
    && [ "$(ps -o user= -p "$FCGI_PID")" = "$U" ]
result $? "shop-fcgi runs as $(ps -o user= -p "$FCGI_PID" 2>/dev/null) on $LISTEN ($(stat -c '%U:%G %a' "$LISTEN" 2>&1))" \
    "$(tail -n 20 "$W/shop-fcgi.journal")"

# ---- 5. nginx with the installed module and the installed examples
mkdir -p "$NGX/logs" "$NGX/tmp" "$NGX/conf.d"
# load_module modules/... is relative to nginx's prefix: Debian's is
# /usr/share/nginx, whose modules/ links to /usr/lib/nginx/modules; ours too
ln -s /usr/lib/nginx/modules "$NGX/modules"
sed -e "s|\"postgresql:///shop?host=/run/postgresql&user=shop\"|\"$(sed_escape "$DB_URL")\"|" \
    -e "s|listen 80;|listen 127.0.0.1:$NGX_MODULE_PORT;|" -e "s|/var/log/nginx/shop.log|$NGX/logs/shop.log|" \
    /usr/share/doc/libnginx-mod-http-shop/examples/nginx-module.example.conf >"$NGX/conf.d/module.conf"
{ echo "server {"
  echo "    listen 127.0.0.1:$NGX_FCGI_PORT;"
  echo "    include /usr/share/doc/shop-fcgi/examples/nginx-fcgi.example.conf;"
  echo "}"; } >"$NGX/conf.d/fcgi.conf"
{ echo "user www-data;"
  echo "include /etc/nginx/modules-enabled/*.conf;"
  echo "pid $NGX/nginx.pid;"
  echo "error_log $NGX/logs/error.log warn;"
  echo "events { worker_connections 256; }"
  echo "http {"
  for d in client_body proxy fastcgi uwsgi scgi; do echo "    ${d}_temp_path $NGX/tmp/$d;"; done
  echo "    access_log off;"
  echo "    include $NGX/conf.d/*.conf;"
  echo "}"; } >"$NGX/nginx.conf"
shop_nginx_start "$NGX" 2>"$W/nginx-start.log"
result $? "nginx (workers www-data) with modules-enabled/*.conf and the two installed examples" \
    "$(cat "$W/nginx-start.log")" "$(shop_tail_logs 20 "$NGX/logs/error.log")"

MODULE_URL=http://127.0.0.1:$NGX_MODULE_PORT/api FCGI_URL=http://127.0.0.1:$NGX_FCGI_PORT
TOKEN=$(cat /etc/shop/admin.token)
for t in module fcgi; do
    url=$MODULE_URL; [ "$t" = fcgi ] && url=$FCGI_URL
    shop_wait_http "$url/readyz" 10 2>/dev/null
    body=$(curl -sS --max-time 5 -w '\n%{http_code}' "$url/products?limit=3" 2>&1)
    code=$(tail -n 1 <<<"$body") json=$(sed '$d' <<<"$body")
    items=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))' <<<"$json" 2>/dev/null)
    result "$([ "$code" = 200 ] && [ "$items" = 3 ]; echo $?)" \
        "curl $url/products?limit=3: $code, ${items:-no} items ($t: $([ "$t" = module ] && echo "the installed module in nginx" || echo "nginx -> /run/shop/fcgi.sock -> the installed shop-fcgi"))" \
        "$json" "$(shop_tail_logs 10 "$NGX/logs/error.log" "$W/shop-fcgi.journal")"
done
sku=PKG-$$
code=$(curl -sS -o "$W/post.json" -w '%{http_code}' --max-time 5 -X POST "$MODULE_URL/products" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"sku\":\"$sku\",\"name\":\"Package test\",\"price_cents\":100,\"currency\":\"EUR\"}")
result "$([ "$code" = 201 ]; echo $?)" "POST /products through the module with /etc/shop/admin.token: $code" "$(cat "$W/post.json")"
code=$(curl -sS -o "$W/get.json" -w '%{http_code}' --max-time 5 "$FCGI_URL/products?q=$sku")
grep -q "\"sku\":\"$sku\"" "$W/get.json"
result $? "... and shop-fcgi sees it ($code): one database" "$(cat "$W/get.json")"
grep -q '"route":"/products"' "$W/shop-fcgi.journal"
result $? "shop-fcgi logs its requests to stderr (the journal under systemd)" "$(tail -n 5 "$W/shop-fcgi.journal")"

shop_nginx_stop "$NGX"
shop_fcgi_stop "$FCGI_PID"; wait "$FCGI_PID" 2>/dev/null; st=$?
result "$st" "shop-fcgi stops on SIGTERM with status $st"
FCGI_PID=""
[ "$MADE_RUN_SHOP" = 1 ] && rm -rf /run/shop && MADE_RUN_SHOP=0

# ---- 6. purge
dpkg --purge "${PKGS[@]}" >"$W/purge.log" 2>&1
result $? "dpkg --purge ${PKGS[*]}" "$(cat "$W/purge.log")"
grep -iE 'warn|error' "$W/purge.log" | sed 's/^/#   dpkg: /'
INSTALLED=0
left=$(ls -d /etc/nginx/modules-enabled/*shop* /usr/share/nginx/modules-available/*shop* \
          /usr/lib/nginx/modules/*shop* /etc/shop /usr/share/shop /usr/share/doc/shop-fcgi \
          /usr/share/doc/libnginx-mod-http-shop /lib/systemd/system/shop-fcgi.* 2>/dev/null)
left="$left$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
          /var/lib/systemd/deb-systemd-helper-masked -name '*shop*' 2>/dev/null)"
result "$([ -z "$left" ]; echo $?)" "nothing of the packages is left (modules-enabled, /etc/shop, units, enablement)" "$left"
for p in "${PKGS[@]}"; do
    s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
    [ -z "$s" ] || [ "$s" = "unknown ok not-installed" ]
    result $? "$p: ${s:-unknown to dpkg}"
done
out=$(/usr/sbin/nginx -t 2>&1)
result $? "nginx -t: the machine's configuration after the purge" "$out"
if getent passwd shop >/dev/null; then
    diag "the system user shop is kept by the purge (Debian practice: files it owns may outlive the package)"
    if [ "$USER_BEFORE" = 0 ]; then
        deluser --system --quiet shop >/dev/null 2>&1; delgroup --system --quiet shop >/dev/null 2>&1
        diag "... and removed by this test, which made it"
    fi
fi
snapshot >"$W/after.state"
d=$(diff "$W/before.state" "$W/after.state")
result "$([ -z "$d" ]; echo $?)" "the machine's nginx as it was: /etc/nginx, nginx packages, systemd, the service's state" "$d"

echo "1..$n"
exit "$rc"
