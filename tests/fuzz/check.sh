#!/bin/bash
# `make fuzz` as TAP, for CI: `make ci-check` (Makefile.am) runs this under
# automake's TAP driver after `make check`, so every fuzz target is one
# result in the same summary .ci/run counts.
#
#   ok 1 - fuzz: make fuzz-build (clang, libFuzzer, ASan+UBSan) built 10 targets
#   ok 2 - fuzz body: reproducers replayed, 30 s of fuzzing, 123456 executions, no finding
#   ...
#
# It runs exactly `make fuzz` in the build directory (FUZZ_SECONDS per target,
# FUZZ_JOBS at a time; tests/fuzz/run.sh does the work) and reads the result
# run.sh leaves per target in tests/fuzz/out/logs/<target>.result. A failing
# target's diagnostics: the end of its log and its artifacts (the inputs).
#
# Environment: SHOP_SRCDIR, SHOP_BUILDDIR (make check sets them),
# FUZZ_SECONDS (30), FUZZ_JOBS (1).
set -u

SRC=${SHOP_SRCDIR:?SHOP_SRCDIR}
BUILD=${SHOP_BUILDDIR:?SHOP_BUILDDIR}
seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-1}
out=$BUILD/tests/fuzz/out
log=$BUILD/tests/fuzz/make-fuzz.log

n=0
result() { # STATUS NAME [DIAG FILE]
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        printf 'ok %d - %s\n' "$n" "$2"
    else
        printf 'not ok %d - %s\n' "$n" "$2"
        [ -n "${3:-}" ] && [ -s "$3" ] && tail -n 40 "$3" | sed 's/^/#   /'
    fi
}

targets=()
for f in "$SRC"/tests/fuzz/fuzz_*.c; do
    t=${f##*/fuzz_}; t=${t%.c}
    [ "$t" = common ] || targets+=("$t")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "Bail out! no tests/fuzz/fuzz_*.c"
    exit 1
fi

mkdir -p "$out/logs"
rm -f "$out"/logs/*.result
t0=$SECONDS
# A make of its own (not the jobserver of the make check running us).
# -j: fuzz-build compiles core/ again with clang, on every CPU.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" fuzz \
    FUZZ_SECONDS="$seconds" FUZZ_JOBS="$jobs" >"$log" 2>&1
rc=$?
echo "# make fuzz FUZZ_SECONDS=$seconds FUZZ_JOBS=$jobs: exit $rc in $((SECONDS - t0)) s (log: $log)"

built=0
for t in "${targets[@]}"; do [ -x "$out/fuzz_$t" ] && built=$((built + 1)); done
[ "$built" -eq ${#targets[@]} ] && grep -q '^fuzz: [0-9]* targets' "$log"
result $? "fuzz: make fuzz-build (clang, libFuzzer, ASan+UBSan) built $built of ${#targets[@]} targets" "$log"

total=0 failed=0
for t in "${targets[@]}"; do
    if [ ! -s "$out/logs/$t.result" ]; then
        result 1 "fuzz $t: ran (no result; see $log)"
        failed=$((failed + 1))
        continue
    fi
    read -r _ status execs <"$out/logs/$t.result"
    total=$((total + ${execs:-0}))
    case $status in
        ok)         what="reproducers replayed, $seconds s of fuzzing, $execs executions, no finding" ;;
        reproducer) what="a reproducer in tests/fuzz/crashes/$t still fails" ;;
        crash)      what="a finding after $execs executions (crash, leak, sanitizer report or broken oracle)" ;;
        *)          what="$status" ;;
    esac
    [ "$status" = ok ]
    st=$?
    [ "$st" = 0 ] || failed=$((failed + 1))
    result "$st" "fuzz $t: $what" "$out/logs/$t.log"
    if [ "$st" != 0 ] && [ -d "$out/artifacts/$t" ]; then
        find "$out/artifacts/$t" -type f | sed 's/^/#   artifact: /'
    fi
done

{ [ "$rc" = 0 ] && [ "$failed" = 0 ]; } || { [ "$rc" != 0 ] && [ "$failed" -gt 0 ]; }
result $? "fuzz: make fuzz's exit status agrees with the targets (exit $rc, $failed failed)" "$log"
echo "# fuzz: ${#targets[@]} targets, $total executions in all"
echo "1..$n"
