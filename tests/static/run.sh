#!/bin/bash
# Static analysis of the C sources: cppcheck and clang-tidy, with the
# configuration checked in beside this script (cppcheck.supp,
# clang-tidy.supp) and at the top of the tree (.clang-tidy).
#
#   tests/static/run.sh [core|fcgi|module ...]     (default: all three)
#
# Prints every finding as  file:line: tool [check] message, then a summary
# per tool and file, and exits 1 when any is left after the suppressions
# (each suppression is a known false positive, with its reason in the
# .supp file). Needs cppcheck, clang-tidy, pkg-config with libpq, json-c and
# libcrypto, and for module/ Debian's nginx-dev sources (NGX_SRC, default
# /usr/share/nginx/src): nginx's configure is run once into a cache
# directory for objs/ngx_auto_config.h, or point NGX_BUILDDIR at the
# module build's directory (the one holding ngx_auto_config.h).
#
# Environment: JOBS (clang-tidy processes, default: the number of CPUs),
# CPPCHECK, CLANG_TIDY (the tools), STATIC_OUT (where the reports go,
# default a temporary directory).
set -u -o pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/static
cd "$top" || exit 2

CPPCHECK=${CPPCHECK:-cppcheck}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
NGX_SRC=${NGX_SRC:-/usr/share/nginx/src}
out=${STATIC_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/shop-static.XXXXXX")}
mkdir -p "$out"

for tool in "$CPPCHECK" "$CLANG_TIDY" pkg-config; do
    if ! command -v "$tool" >/dev/null; then
        echo "static: $tool not found (apt-get install cppcheck clang-tidy pkg-config)" >&2
        exit 2
    fi
done

dirs=("$@")
[ ${#dirs[@]} -eq 0 ] && dirs=(core fcgi module)

# shellcheck disable=SC2207  # word splitting of pkg-config's flags is wanted
deps=($(pkg-config --cflags libpq json-c libcrypto)) || exit 2
# What Makefile.am defines (AM_CPPFLAGS, and shop-fcgi's own).
common=(-std=c11 -D_GNU_SOURCE -DSHOP_VERSION='"0.0.0"' -Icore "${deps[@]}")
fcgi_defs=(-DSHOP_SQL_DIR_DEFAULT='"/usr/share/shop/sql"')

# nginx's headers, and the two that its configure writes.
ngx_objs() {
    if [ -n "${NGX_BUILDDIR:-}" ]; then
        echo "$NGX_BUILDDIR"
        return
    fi
    local cache=${TMPDIR:-/tmp}/shop-static-ngx
    if [ ! -f "$cache/objs/ngx_auto_config.h" ]; then
        rm -rf "$cache" && mkdir -p "$cache" && cp -r "$NGX_SRC/." "$cache/src-copy" || return 1
        # Debian's flags (--with-compat, threads, ssl, ...) decide the
        # NGX_* macros, hence the structures the module sees.
        # shellcheck disable=SC1091  # conf_flags is nginx-dev's
        (cd "$cache/src-copy" && . ./conf_flags && ./configure "${NGX_CONF_FLAGS[@]}" \
            --builddir="$cache/objs" >"$cache/configure.log" 2>&1) || {
            echo "static: nginx configure failed, see $cache/configure.log" >&2
            return 1
        }
    fi
    echo "$cache/objs"
}

# Checks off for module/ only, as nginx's API makes them moot there:
#   misc-unused-parameters  nginx fixes every callback's signature
#       (ngx_conf_t *cf, ngx_command_t *cmd, void *conf, ...);
#   performance-no-int-to-ptr  NGX_CONF_ERROR and friends are (void *) -1.
module_checks=--checks=-misc-unused-parameters,-performance-no-int-to-ptr

files=()
declare -A flags_of extra_of
for d in "${dirs[@]}"; do
    case $d in
    core|fcgi) ;;
    module)
        ls module/*.c >/dev/null 2>&1 || { echo "static: no module/*.c yet, skipped"; continue; }
        objs=$(ngx_objs) || exit 2
        ngx=(-I"$NGX_SRC/src/core" -I"$NGX_SRC/src/event" -I"$NGX_SRC/src/event/modules"
             -I"$NGX_SRC/src/os/unix" -I"$NGX_SRC/src/http" -I"$NGX_SRC/src/http/modules"
             -I"$NGX_SRC/src/http/v2"
             -I"$objs" -Imodule)
        ;;
    *) echo "static: unknown directory $d" >&2; exit 2 ;;
    esac
    for f in "$d"/*.c; do
        [ -f "$f" ] || continue
        files+=("$f")
        case $d in
        core) flags_of[$f]="${common[*]}" ;;
        fcgi) flags_of[$f]="${common[*]} ${fcgi_defs[*]}" ;;
        module) flags_of[$f]="${common[*]} ${ngx[*]}"; extra_of[$f]=$module_checks ;;
        esac
    done
done
[ ${#files[@]} -gt 0 ] || { echo "static: nothing to check"; exit 0; }

# ---- cppcheck ---------------------------------------------------------------
# One run per directory (its own include paths). --enable: warning, style,
# performance, portability (not information: missing system headers are not
# findings). variableScope is disabled in cppcheck.supp, with the reason.
: >"$out/cppcheck.txt"
for d in "${dirs[@]}"; do
    dfiles=()
    for f in "${files[@]}"; do [ "${f%%/*}" = "$d" ] && dfiles+=("$f"); done
    [ ${#dfiles[@]} -gt 0 ] || continue
    # shellcheck disable=SC2206  # the flags were joined with spaces above
    fl=(${flags_of[${dfiles[0]}]})
    inc=()
    for x in "${fl[@]}"; do
        case $x in -I/usr/include*) ;; -I*|-D*) inc+=("$x") ;; esac
    done
    "$CPPCHECK" --quiet --std=c11 --library=posix --enable=warning,style,performance,portability \
        --inline-suppr --suppressions-list="$here/cppcheck.supp" \
        --suppress="*:$NGX_SRC/*" --suppress="*:${TMPDIR:-/tmp}/*" \
        --template='{file}:{line}: cppcheck [{id}] {message}' \
        "${inc[@]}" "${dfiles[@]}" 2>>"$out/cppcheck.txt" >/dev/null
done

# ---- clang-tidy ---------------------------------------------------------------
: >"$out/clang-tidy.raw"
TOP=$top
export CLANG_TIDY TOP
# shellcheck disable=SC2016  # $1 and $fl are the inner bash's
for f in "${files[@]}"; do
    printf '%s\x1f%s\x1f%s\n' "$f" "${extra_of[$f]:-}" "${flags_of[$f]}"
done | xargs -P "$JOBS" -d '\n' -n 1 bash -c '
    IFS=$'"'"'\x1f'"'"' read -r f extra fl <<<"$1"
    # shellcheck disable=SC2086
    "$CLANG_TIDY" --quiet --header-filter="^$TOP/(core|fcgi|module)/" $extra "$f" -- $fl 2>/dev/null' _ \
    >"$out/clang-tidy.raw"
# Keep the warning lines, once each (a header is seen by many files), as
# file:line: clang-tidy [check] message. A message may run over several
# lines until the one ending in [check]: those are joined first.
awk '/^[^ ]+:[0-9]+:[0-9]+: (warning|error): / { msg = $0; if (msg ~ /\]$/) { print msg; msg = "" }; next }
     msg != "" { msg = msg " " $0; if ($0 ~ /\]$/) { print msg; msg = "" } }' "$out/clang-tidy.raw" \
    | sed -E "s#^$top/##; s#^([^:]+):([0-9]+):[0-9]+: (warning|error): (.*) \[([^]]+)\]\$#\1:\2: clang-tidy [\5] \4#" \
    | sort -u >"$out/clang-tidy.all"
# clang-tidy.supp: "file check  # reason" lines drop that check in that file.
cp "$out/clang-tidy.all" "$out/clang-tidy.txt"
while read -r file check _; do
    case $file in ''|'#'*) continue ;; esac
    grep -v -F "$file:" "$out/clang-tidy.txt" >"$out/keep" || true
    grep -F "$file:" "$out/clang-tidy.txt" | grep -v -F "[$check]" >>"$out/keep" || true
    sort -u "$out/keep" -o "$out/clang-tidy.txt"
done <"$here/clang-tidy.supp"

# ---- report ---------------------------------------------------------------------
sed -E "s|^$top/||" "$out/cppcheck.txt" | sort -u >"$out/cppcheck.sorted"
cat "$out/cppcheck.sorted" "$out/clang-tidy.txt"
echo
echo "static analysis of ${dirs[*]} (${#files[@]} files); findings per tool and file:"
cat "$out/cppcheck.sorted" "$out/clang-tidy.txt" \
    | awk '{ split($1, a, ":"); n[$2 " " a[1]]++ } END { for (k in n) printf "  %-12s %-32s %d\n", substr(k, 1, index(k, " ") - 1), substr(k, index(k, " ") + 1), n[k] }' \
    | sort
nc=$(wc -l <"$out/cppcheck.sorted")
nt=$(wc -l <"$out/clang-tidy.txt")
echo "cppcheck: $nc, clang-tidy: $nt (reports in $out)"
[ "$nc" -eq 0 ] && [ "$nt" -eq 0 ]
