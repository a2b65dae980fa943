#!/bin/sh
# Runs the libFuzzer targets: `make fuzz` calls it as
#   run.sh <srcdir>/tests/fuzz <builddir>/tests/fuzz [target ...]
# (no targets: every fuzz_* binary in the build directory).
#
# For each target:
#  1. every committed reproducer in crashes/<target>/ is run once: a finding
#     that is not fixed yet fails the run, a fixed one is a regression test;
#  2. the fuzzer runs for FUZZ_SECONDS (default 30) from the seed corpus
#     corpus/<target>/ (read only) and a working corpus in the build
#     directory (kept between runs), with dict/<target>.dict if there is one.
# A crash, leak, sanitizer report or oracle failure fails the run; its input
# is left in <builddir>/tests/fuzz/artifacts/<target>/ and its log is shown.
#
# Environment: FUZZ_SECONDS, FUZZ_JOBS (targets run at once, default 1),
# FUZZ_ARGS (more libFuzzer flags), FUZZ_AVOID_KNOWN=1 (the targets step
# around findings already reported; see README.md).
set -u

src=${1:?usage: run.sh SRCDIR/tests/fuzz BUILDDIR/tests/fuzz [target ...]}
out=${2:?usage: run.sh SRCDIR/tests/fuzz BUILDDIR/tests/fuzz [target ...]}
shift 2
seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-1}

if [ $# -eq 0 ]; then
    for b in "$out"/fuzz_*; do
        [ -x "$b" ] && set -- "$@" "${b##*/fuzz_}"
    done
fi
if [ $# -eq 0 ]; then
    echo "run.sh: no fuzz targets in $out (make fuzz-build)" >&2
    exit 1
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# One target; writes $out/logs/<t>.result: "<t> <status> <execs>".
fuzz_one() {
    t=$1
    bin=$out/fuzz_$t
    log=$out/logs/$t.log
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t" "$out/logs"
    : >"$log"
    status=ok
    if [ ! -x "$bin" ]; then
        echo "$t missing 0" >"$out/logs/$t.result"
        return
    fi
    # 1. Reproducers of earlier findings.
    if [ -d "$src/crashes/$t" ] && [ -n "$(ls -A "$src/crashes/$t" 2>/dev/null)" ]; then
        for f in "$src/crashes/$t"/*; do
            case $f in *.txt|*.md) continue ;; esac
            if ! "$bin" "$f" >>"$log" 2>&1; then
                echo "# $t: reproducer ${f##*/} still fails" >>"$log"
                status=reproducer
            fi
        done
    fi
    # 2. Fuzzing.
    case $t in body) dname=json ;; *) dname=$t ;; esac
    dict=
    if [ -f "$src/dict/$dname.dict" ]; then dict="-dict=$src/dict/$dname.dict"; fi
    # shellcheck disable=SC2086  # FUZZ_ARGS and $dict are lists of flags
    if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
            -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" $dict ${FUZZ_ARGS:-} \
            "$out/corpus/$t" "$src/corpus/$t" >>"$log" 2>&1; then
        status=crash
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "$t $status ${execs:-0}" >"$out/logs/$t.result"
}

running=0
for t in "$@"; do
    fuzz_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

failed=0
total=0
for t in "$@"; do
    read -r name status execs <"$out/logs/$t.result"
    total=$((total + execs))
    printf '%-12s %-10s %12s executions\n' "$name" "$status" "$execs"
    if [ "$status" != ok ]; then
        failed=$((failed + 1))
        echo "---- $out/logs/$t.log (last 40 lines)"
        tail -40 "$out/logs/$t.log"
        ls "$out/artifacts/$t" 2>/dev/null | sed "s|^|artifact: $out/artifacts/$t/|"
        echo "----"
    fi
done
echo "fuzz: $# targets, $total executions, $failed failed"
[ "$failed" -eq 0 ]
