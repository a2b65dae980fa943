#!/bin/bash
# A quick benchmark of the module: wrk -t2 -c64 GET /products/{random id}
# (products.lua), requests/s, p50, p99, and the workers' RSS before and
# after. The full comparison (nginx ceiling, pgbench, fcgi) is tests/bench.
#
#   tests/module/bench.sh URL NGINX_PREFIX [SECONDS [CONNECTIONS]]
#
# SHOP_BENCH_PRODUCTS: ids are 1..N (default 1000).

set -u
url=${1:?usage: $0 URL NGINX_PREFIX [SECONDS [CONNECTIONS]]}
prefix=${2:?usage: $0 URL NGINX_PREFIX [SECONDS [CONNECTIONS]]}
secs=${3:-5}
conns=${4:-64}
here=$(cd "$(dirname "$0")" && pwd)

pidfile=$prefix/nginx.pid
[ -s "$pidfile" ] || pidfile=$prefix/logs/nginx.pid
master=$(cat "$pidfile")

rss() {
    local w total=0
    for w in $(pgrep -P "$master"); do
        total=$((total + $(awk '/^VmRSS/ { print $2 }' "/proc/$w/status")))
    done
    echo "$total"
}

before=$(rss)
wrk -t2 -c"$conns" -d"${secs}s" -s "$here/products.lua" "$url" | tail -n 1
after=$(rss)
echo "worker RSS: ${before} kB before, ${after} kB after ($(pgrep -P "$master" | wc -l) workers)"
