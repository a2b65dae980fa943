#!/bin/sh
# tests/live-gate.sh TEST [ARGS...]: how `make check` runs every test
# (LOG_COMPILER in Makefile.am).
#
# The unit tests and the checks that need no server run as they are. The
# live suites (everything else under tests/: the HTTP harness, the module's
# live and valgrind tests, fan-out, events, operations, the web servers)
# start their own PostgreSQL, shop-fcgi and nginx; when what they need is not
# installed, the gate reports the suite as skipped (a TAP "1..0 # SKIP" plan:
# with the TAP driver a skip is that, not exit status 77) instead of letting
# it fail. So `make check` and `make distcheck` pass for a build user on a
# machine without PostgreSQL or nginx, and run everything where they are.
#
#   SHOP_LIVE_TESTS=auto  (default) run the live suites when they can run
#   SHOP_LIVE_TESTS=yes   run them; a missing prerequisite is a failure
#   SHOP_LIVE_TESTS=no    skip them (a package build: debian/rules)
#
# They run as root (PostgreSQL then as `postgres`, nginx workers as nobody)
# or as any user who may run initdb and bind loopback ports.
test=$1

case "$test" in
    */tests/unit/*|tests/unit/*|*/tests/doc/*|tests/doc/*|*/tests/fuzz/*|tests/fuzz/*|\
    */tests/static/*|tests/static/*|*/tests/module/conf.sh|tests/module/conf.sh)
        exec "$@" ;;
esac

mode=${SHOP_LIVE_TESTS:-auto}
case "$mode" in
    no)  echo "1..0 # SKIP live suite (SHOP_LIVE_TESTS=no)"; exit 0 ;;
    yes|auto) ;;
    *)   echo "Bail out! SHOP_LIVE_TESTS=$mode: want auto, yes or no"; exit 1 ;;
esac

missing=
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $1"; }

pgbin=$(pg_config --bindir 2>/dev/null)
[ -x "$pgbin/initdb" ] || pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] && [ -x "$pgbin/pg_ctl" ] || missing="$missing initdb(postgresql)"
[ -x "${SHOP_NGINX:-/usr/sbin/nginx}" ] || missing="$missing ${SHOP_NGINX:-/usr/sbin/nginx}(nginx)"
for c in bash psql spawn-fcgi curl python3; do need "$c"; done
if [ "$(id -u)" = 0 ]; then
    need setpriv
    id postgres >/dev/null 2>&1 || id nobody >/dev/null 2>&1 || missing="$missing user(postgres)"
fi
case "$test" in
    *valgrind*) need valgrind ;;
esac

if [ -n "$missing" ]; then
    if [ "$mode" = yes ]; then
        echo "Bail out! SHOP_LIVE_TESTS=yes but missing:$missing"
        exit 1
    fi
    echo "1..0 # SKIP live suite, missing:$missing"
    exit 0
fi
exec "$@"
