#!/bin/bash
# `make static-check` as TAP, for CI: `make ci-check` (Makefile.am) runs this
# under automake's TAP driver after `make check`, so static analysis counts
# in the same summary .ci/run reads. One result per tool and directory:
#
#   ok 1 - static: the analysis ran (cppcheck, clang-tidy on core fcgi module, 54 files)
#   ok 2 - static: cppcheck finds nothing in core/
#   not ok 7 - static: clang-tidy finds nothing in module/ (11 findings)
#   #   module/ngx_http_shop_events.c:854: clang-tidy [bugprone-narrowing-conversions] ...
#
# It runs exactly `make static-check` (tests/static/run.sh with the checked-in
# configuration and suppressions) in the build directory, with its reports in
# tests/static/out there, and splits them by tool and directory.
#
# Environment: SHOP_BUILDDIR (make check sets it).
set -u

BUILD=${SHOP_BUILDDIR:?SHOP_BUILDDIR}
out=$BUILD/tests/static/out
log=$BUILD/tests/static/make-static-check.log

rm -rf "$out"
mkdir -p "$out"
t0=$SECONDS
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL STATIC_OUT="$out" make -C "$BUILD" static-check >"$log" 2>&1
rc=$?
echo "# make static-check: exit $rc in $((SECONDS - t0)) s (log: $log)"

n=0
summary=$(grep -E '^static analysis of ' "$log" | tail -n 1)
n=$((n + 1))
if [ -f "$out/cppcheck.sorted" ] && [ -f "$out/clang-tidy.txt" ] && [ -n "$summary" ]; then
    summary=${summary#static analysis of }
    echo "ok $n - static: the analysis ran (${summary%%;*})"
else
    echo "not ok $n - static: the analysis ran (make static-check exit $rc)"
    tail -n 30 "$log" | sed 's/^/#   /'
    echo "1..$n"
    exit 0
fi

for tool in cppcheck clang-tidy; do
    case $tool in cppcheck) f=$out/cppcheck.sorted ;; *) f=$out/clang-tidy.txt ;; esac
    for d in core fcgi module; do
        n=$((n + 1))
        found=$(grep -E "^$d/" "$f")
        if [ -z "$found" ]; then
            echo "ok $n - static: $tool finds nothing in $d/"
        else
            echo "not ok $n - static: $tool finds nothing in $d/ ($(wc -l <<<"$found") findings)"
            sed 's/^/#   /' <<<"$found"
        fi
    done
done

# make static-check fails exactly when there are findings (run.sh exits 1,
# make 2); a finding outside the three directories (none of the results
# above) is a failure of its own.
n=$((n + 1))
nfind=$(cat "$out/cppcheck.sorted" "$out/clang-tidy.txt" | grep -c .)
other=$(cat "$out/cppcheck.sorted" "$out/clang-tidy.txt" | grep -vE '^(core|fcgi|module)/')
if { { [ "$rc" = 0 ] && [ "$nfind" = 0 ]; } || { [ "$rc" != 0 ] && [ "$nfind" -gt 0 ]; }; } && [ -z "$other" ]; then
    echo "ok $n - static: make static-check's exit status agrees with the findings (exit $rc, $nfind findings)"
else
    echo "not ok $n - static: make static-check's exit status agrees with the findings (exit $rc, $nfind findings)"
    [ -n "$other" ] && sed 's/^/#   outside core, fcgi, module: /' <<<"$other"
    tail -n 30 "$log" | sed 's/^/#   /'
fi
echo "1..$n"
