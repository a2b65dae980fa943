#!/bin/bash
# tests/doc/man.sh: the generated documentation against the code (make check;
# no server needed). TAP.
#   - shop-fcgi(8) and ngx_http_shop_module(8) format without a warning
#     (man --warnings, as lintian runs it; groff -ww without man-db)
#   - shop-fcgi(8) documents exactly the variables `shop-fcgi settings` lists
#   - every directive and variable in the module's tables is documented, and
#     every directive the settings table names is one the module has
#   - the sample shop.conf names only known variables, and shop-fcgi accepts
#     every value in it, the commented-out defaults included
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (set by make check).
set -u
SRC=${SHOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SHOP_BUILDDIR:-.}
FCGI=$BUILD/fcgi/shop-fcgi
FCGI_MAN=$BUILD/doc/shop-fcgi.8
NGX_MAN=$BUILD/doc/ngx_http_shop_module.8
CONF=$BUILD/doc/shop.conf
TSV=$BUILD/doc/settings.tsv

n=0 failed=0
ok()     { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; printf '#   %s\n' "$@"; }
check()  { local name=$1 st=$2; shift 2; if [ "$st" = 0 ]; then ok "$name"; else not_ok "$name" "$@"; fi; }

for f in "$FCGI" "$FCGI_MAN" "$NGX_MAN" "$CONF" "$TSV"; do
    [ -e "$f" ] || { echo "Bail out! not built: $f"; exit 1; }
done
echo "1..9"

# ---- formatting
lint() {
    if ! command -v man >/dev/null 2>&1 && ! command -v groff >/dev/null 2>&1; then
        return 0        # neither man-db nor groff: nothing to lint with
    fi
    if command -v man >/dev/null 2>&1; then
        LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$1" 2>&1 >/dev/null </dev/null
    else
        groff -mandoc -ww -Tutf8 -z "$1" 2>&1
    fi
}
for page in "$FCGI_MAN" "$NGX_MAN"; do
    # "can't break line": a path of the install prefix longer than a line
    # (make distcheck's are); the Debian package's are checked by lintian
    out=$(lint "$page" | grep -v "can't break line")
    check "$(basename "$page") formats without warnings" "$([ -z "$out" ]; echo $?)" "$out"
done

# ---- shop-fcgi(8) ENVIRONMENT = shop-fcgi settings
# (the page's own extras, e.g. SHOP_SQL_DIR, must be names fcgi/ reads)
from_bin=$("$FCGI" settings | awk '/^SHOP_/ { print $1 }' | sort)
from_man=$(sed -n 's/^\.It Ev \(SHOP_[A-Z0-9_]*\)$/\1/p' "$FCGI_MAN" | sort)
missing=$(comm -23 <(echo "$from_bin") <(echo "$from_man"))
extra=
for v in $(comm -13 <(echo "$from_bin") <(echo "$from_man")); do
    grep -q "\"$v\"" "$SRC"/fcgi/*.c || extra="$extra $v"
done
check "shop-fcgi(8) documents every variable of shop-fcgi settings ($(echo "$from_bin" | wc -l)), and none shop-fcgi does not read" \
    "$([ -z "$missing$extra" ]; echo $?)" "missing: $(echo $missing)" "unknown to fcgi/:$extra"
bad=
for v in $from_bin; do
    def=$("$FCGI" settings | awk -v v="$v" '$1 == v { match($0, /default "[^"]*"/); print substr($0, RSTART + 9, RLENGTH - 10) }')
    entry=$(awk -v v="$v" '$0 == ".It Ev " v { on = 1; next } /^\.It / { on = 0 } on' "$FCGI_MAN")
    if [ -z "$def" ]; then
        grep -qx 'unset\.' <<<"$entry" || bad="$bad $v"
    else
        grep -qxF ".Ql $def ." <<<"$entry" || bad="$bad $v"
    fi
done
check "shop-fcgi(8) gives each variable the default shop-fcgi has" "$([ -z "$bad" ]; echo $?)" "wrong:$bad"

# ---- ngx_http_shop_module(8)
undoc=$(awk '/^\.Ss / { d = $2 } /^\.It Va / { d = $3 } /^Not documented\.$/ { print d }' "$NGX_MAN")
check "every directive and variable of the module is documented (doc/ngx_http_shop_module.directives)" \
    "$([ -z "$undoc" ]; echo $?)" "not documented: $(echo $undoc)"
nd=$(grep -c '^\.Ss ' "$NGX_MAN")
nv=$(grep -c '^\.It Va ' "$NGX_MAN")
check "ngx_http_shop_module(8): $nd directives, $nv variables" "$([ "$nd" -gt 10 ] && [ "$nv" -ge 2 ]; echo $?)" \
    "too few: the module's tables were not found"
missing=
while IFS=$'\t' read -r name env dir type scope rest; do
    [ "$dir" = - ] || [ "$scope" = fcgi ] && continue
    grep -qx "\.Ss $dir" "$NGX_MAN" || missing="$missing $dir"
done <"$TSV"
if [ -z "$missing" ]; then
    ok "every directive the settings table names is a directive of the module"
else
    ok "every directive the settings table names is a directive of the module # TODO the module has no$missing yet"
fi

# ---- shop.conf
known=$("$FCGI" settings | awk '/^SHOP_/ { print $1 }')
unknown=
for v in $(sed -n 's/^#\{0,1\}\(SHOP_[A-Z0-9_]*\)=.*/\1/p' "$CONF"); do
    grep -qx "$v" <<<"$known" || unknown="$unknown $v"
done
check "shop.conf names only variables shop-fcgi knows" "$([ -z "$unknown" ]; echo $?)" "unknown:$unknown"
# Every line uncommented, read as the unit and shells read it; then a command
# that loads the configuration first: exit 2 is a refused value, anything
# else (the database is unreachable on purpose) means all were accepted.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed -n 's/^#\{0,1\}\(SHOP_[A-Z0-9_]*=.*\)/\1/p' "$CONF" | grep -v '^SHOP_\(ADMIN_TOKEN\|WEBHOOK_SECRET\)_FILE=' >"$tmp"
out=$(env -i PATH="$PATH" sh -c 'set -a; . "$1"; set +a; SHOP_DATABASE_URL="postgresql:///x?host=/nonexistent&connect_timeout=1"; SHOP_SQL_DIR=/nonexistent; exec "$2" migrate' sh "$tmp" "$FCGI" 2>&1)
st=$?
check "shop-fcgi accepts every value in shop.conf (exit $st)" "$([ "$st" != 2 ]; echo $?)" "$out"

exit $((failed > 0))
