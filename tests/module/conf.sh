#!/bin/bash
# make check: the module loads into Debian's /usr/sbin/nginx, and nginx -t
# accepts good directives and refuses bad ones, naming the directive, the
# setting and the file. No database or network needed.
#
#   tests/module/conf.sh [MODULE.so]   (default $SHOP_BUILDDIR/module/...)

set -u

so=${1:-${SHOP_BUILDDIR:-.}/module/ngx_http_shop_module.so}
nginx=${SHOP_NGINX:-/usr/sbin/nginx}
work=$(mktemp -d /tmp/shop-conf.XXXXXX)
trap 'rm -rf "$work"' EXIT

n=0
failed=0
echo "1..29"

[ -r "$so" ] || { echo "Bail out! no module at $so"; exit 1; }
so=$(cd "$(dirname "$so")" && pwd)/$(basename "$so")

umask 077
printf 'a-token-of-32-characters-0123456\n' >"$work/token"
printf 'short\n' >"$work/short"
printf 'a-secret-of-32-characters-012345\n' >"$work/open"
chmod 0644 "$work/open"
mkdir -p "$work/logs" "$work/tmp"

# conf HTTP_LINES...: a whole nginx.conf around lines of the http block
conf() {
    cat >"$work/nginx.conf" <<CONF
load_module $so;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { }
http {
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    access_log off;
$(printf '    %s\n' "$@")
}
CONF
}

# accept NAME LINES...: nginx -t passes, without a warning
accept() {
    local name=$1; shift
    n=$((n + 1))
    conf "$@"
    if "$nginx" -t -p "$work" -c "$work/nginx.conf" >"$work/out" 2>&1 \
       && ! grep -q '\[warn\]' "$work/out"; then
        echo "ok $n - $name"
    else
        echo "not ok $n - $name"; failed=$((failed + 1))
        sed 's/^/#   /' "$work/out"
    fi
}

# refuse NAME PATTERN LINES...: nginx -t fails and says PATTERN (grep -E)
refuse() {
    local name=$1 pattern=$2; shift 2
    n=$((n + 1))
    conf "$@"
    if ! "$nginx" -t -p "$work" -c "$work/nginx.conf" >"$work/out" 2>&1 \
       && grep -Eq "$pattern" "$work/out"; then
        echo "ok $n - $name"
        grep emerg "$work/out" | head -n 1 | sed 's/^/#   /'
    else
        echo "not ok $n - $name (wanted: $pattern)"; failed=$((failed + 1))
        sed 's/^/#   /' "$work/out"
    fi
}

db='shop_database "host=/nonexistent/socket dbname=shop user=shop";'
# nginx -t binds what it listens on: a unix socket needs no privilege
listen="listen unix:$work/http.sock;"

accept "the module loads; every directive at http level, shop; in locations" \
    "$db" "shop_pool_size 4;" "shop_pool_queue 100 250ms;" "shop_statement_timeout 2s;" \
    "shop_body_limit 64k;" "shop_admin_token_file $work/token;" \
    "shop_webhook_secret_file $work/token;" "shop_stock_deadline 300ms;" \
    "shop_warehouse_pool_size 2;" "shop_event_retention 2h;" "shop_max_subscribers 100;" \
    "shop_subscriber_buffer 64k;" 'shop_read_database "host=/nonexistent/socket dbname=replica";' \
    "shop_metrics_public off;" "shop_metrics_zone shop_metrics_test 512k;" \
    "server { $listen location / { shop; } location /api/ { shop; shop_pool_size 2; } }"

accept "settings at server and location level, shop_pool_queue without a timeout" \
    "server { $listen $db shop_pool_queue 5; location = /x { shop; shop_body_limit 2m; } }"

accept "shop_database as a URL; shop; in a location with an if block" \
    'shop_database "postgresql:///shop?host=/nonexistent&port=5432&user=shop";' \
    "server { $listen location / { shop; if (\$arg_x) { set \$y 1; } } }"

refuse "shop_pool_size 0: out of range, naming directive and setting" \
    'invalid value in "shop_pool_size" directive: pool_size: 0 is outside 1' \
    "$db" "server { $listen location / { shop; shop_pool_size 0; } }"

refuse "shop_pool_size abc: not an integer" \
    '"shop_pool_size" directive: pool_size: "abc" is not an integer' \
    "$db" "shop_pool_size abc;"

refuse "shop_statement_timeout 5x: not a duration" \
    '"shop_statement_timeout" directive: statement_timeout: "5x" is not a duration' \
    "$db" "shop_statement_timeout 5x;"

refuse "shop_pool_queue 10 2x: the timeout is checked too" \
    '"shop_pool_queue" directive: pool_queue_timeout' \
    "$db" "shop_pool_queue 10 2x;"

refuse "shop_body_limit 512: below the minimum" \
    '"shop_body_limit" directive: body_limit: 512 is outside' \
    "$db" "shop_body_limit 512;"

refuse "a directive given twice at one level" \
    '"shop_pool_size" directive is duplicate' \
    "$db" "shop_pool_size 2;" "shop_pool_size 3;"

refuse "shop; without shop_database" \
    'database: no database given \(shop_database\)' \
    "server { $listen location / { shop; } }"

refuse "shop_database that libpq cannot parse" \
    'invalid value in "shop_database" directive: missing "=" after "dbname" in connection info string in .*nginx.conf:[0-9]+' \
    'shop_database "host=/tmp dbname";' "server { $listen location / { shop; } }"

refuse "shop_admin_token_file missing: nginx -t names the file" \
    "\"shop_admin_token_file\" directive: cannot open \"$work/missing\"" \
    "$db" "shop_admin_token_file $work/missing;"

refuse "shop_admin_token_file readable by others" \
    "\"shop_admin_token_file\" directive: \"$work/open\" is accessible by others \\(mode 0644\\)" \
    "$db" "shop_admin_token_file $work/open;"

refuse "shop_webhook_secret_file too short" \
    "\"shop_webhook_secret_file\" directive: \"$work/short\" must hold at least 16" \
    "$db" "shop_webhook_secret_file $work/short;"

refuse "shop_admin_token_file is a directory" \
    "\"shop_admin_token_file\" directive: \"$work/tmp\" is not a regular file" \
    "$db" "shop_admin_token_file $work/tmp;"

accept "shop_warehouse_database lines at http, server and location level" \
    "$db" 'shop_warehouse_database north "hostaddr=127.0.0.1 port=5433 dbname=wh";' \
    "server { $listen shop_warehouse_database south_2 \"host=/nonexistent dbname=wh\";" \
    "  location / { shop; } location /x/ { shop; shop_stock_deadline 1s;" \
    "  shop_warehouse_database east \"dbname=wh\"; shop_warehouse_database west \"dbname=wh\"; } }"

refuse "shop_warehouse_database with a code a warehouse cannot have" \
    'invalid warehouse code "North" in "shop_warehouse_database" directive' \
    "$db" 'shop_warehouse_database North "dbname=wh";'

refuse "shop_warehouse_database twice for one code at one level" \
    '"shop_warehouse_database" for warehouse "north" is duplicate' \
    "$db" 'shop_warehouse_database north "dbname=a";' 'shop_warehouse_database north "dbname=b";'

refuse "shop_warehouse_database that libpq cannot parse" \
    'invalid value in "shop_warehouse_database" directive: missing "=" after "wh"' \
    "$db" 'shop_warehouse_database north "wh";'

accept "shop_metrics_zone without a size; shop_read_database \"\" turns an inherited one off" \
    "$db" "shop_metrics_zone m;" 'shop_read_database "dbname=replica";' \
    "server { $listen location = /metrics { allow 127.0.0.1; deny all; shop; shop_metrics_public on; }" \
    "  location / { shop; shop_read_database \"\"; } }"

refuse "shop_metrics_zone smaller than its counters and slots" \
    'zone "m" is too small in "shop_metrics_zone" directive: 64k, it needs at least [0-9]+k' \
    "$db" "shop_metrics_zone m 64k;" "server { $listen location / { shop; } }"

refuse "shop_metrics_zone with a size that is not one" \
    'invalid zone size "12q" in "shop_metrics_zone" directive' \
    "$db" "shop_metrics_zone m 12q;"

refuse "shop_metrics_zone twice" \
    '"shop_metrics_zone" directive is duplicate' \
    "$db" "shop_metrics_zone m;" "shop_metrics_zone n 1m;"

refuse "shop_metrics_zone in a server: one zone for all, http level only" \
    '"shop_metrics_zone" directive is not allowed here' \
    "$db" "server { $listen shop_metrics_zone m; }"

refuse "shop_metrics_public neither on nor off" \
    '"shop_metrics_public" directive: metrics_public: "maybe" is not on or off' \
    "$db" "shop_metrics_public maybe;"

refuse "shop_read_database that libpq cannot parse" \
    'invalid value in "shop_read_database" directive: missing "=" after "replica"' \
    "$db" 'shop_read_database "replica";' "server { $listen location / { shop; } }"

refuse "shop_read_database with an unknown option" \
    'invalid value in "shop_read_database" directive: invalid connection option "colour"' \
    "$db" 'shop_read_database "dbname=replica colour=blue";'

refuse "shop; outside a location" \
    '"shop" directive is not allowed here' \
    "$db" "server { $listen shop; }"

n=$((n + 1))
conf 'shop_database "host=db.example.com dbname=shop";' "server { $listen location / { shop; } }"
if "$nginx" -t -p "$work" -c "$work/nginx.conf" >"$work/out" 2>&1 \
   && grep -q 'blocking DNS lookup' "$work/out"; then
    echo "ok $n - a host name in shop_database: a warning, hostaddr= advised"
else
    echo "not ok $n - a host name in shop_database: a warning"; failed=$((failed + 1))
    sed 's/^/#   /' "$work/out"
fi

[ "$failed" = 0 ]
