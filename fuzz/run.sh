#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 30) and fails, naming them, if
# any target finds a crash (a panic, an abort, a leak, an input slower than
# 10 s, or memory past the RSS limit).
#
#     fuzz/run.sh [SECONDS]
#
# Each target first replays its committed inputs: seeds/TARGET (small valid
# inputs) and regressions/TARGET (inputs that once crashed it). What the
# fuzzer learns goes to corpus/TARGET, crashing inputs to artifacts/TARGET,
# each target's output to artifacts/TARGET.log; none of those is committed.
# To replay one crash: cargo fuzz run TARGET artifacts/TARGET/crash-...
#
# Environment:
#   FUZZ_SANITIZER      address (default) or none. AddressSanitizer needs
#                       nightly-only compiler flags; on a stable toolchain the
#                       script sets RUSTC_BOOTSTRAP=1 to allow them. `none`
#                       builds and runs faster and still finds panics, aborts
#                       and runaway memory.
#   FUZZ_RSS_LIMIT_MB   memory limit of one target (default 2048); with
#                       AddressSanitizer it also bounds any single allocation.
#   FUZZ_TARGETS        the targets to run, space-separated (default: all).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-30}
case $seconds in
'' | *[!0-9]* | 0)
    echo "usage: fuzz/run.sh [SECONDS]  (a whole number of seconds per target)" >&2
    exit 2
    ;;
esac
sanitizer=${FUZZ_SANITIZER:-address}
rss_limit_mb=${FUZZ_RSS_LIMIT_MB:-2048}
# The toolchain may be stable: cargo fuzz passes nightly-only flags
# (-Zsanitizer), which RUSTC_BOOTSTRAP lets a stable compiler take.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
failed=()
for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target"
    # New inputs are written to the first directory only.
    dirs=("corpus/$target")
    for d in "seeds/$target" "regressions/$target"; do
        if [ -d "$d" ]; then dirs+=("$d"); fi
    done
    log="artifacts/$target.log"
    # Crashing inputs of this run are the files newer than this mark (older
    # ones may be left from earlier runs).
    mark="artifacts/$target.started"
    touch "$mark"
    echo "== $target: ${seconds}s"
    # -max_total_time bounds the fuzzing; `timeout` bounds everything else
    # (replaying the corpus, a hang in the fuzzer itself).
    set +e
    timeout --kill-after=30 $((seconds + 300)) \
        cargo fuzz run --sanitizer "$sanitizer" "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_limit_mb" -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    if [ "$status" = 0 ]; then
        grep -E '^stat::number_of_executed_units' "$log" | sed "s/^/   /" || true
    else
        failed+=("$target")
        echo "!! $target failed (exit $status); the end of $log:"
        tail -n 40 "$log" | sed "s/^/   /"
        find "artifacts/$target" -type f -newer "$mark" -printf '   input: fuzz/%p\n'
        if [ "$status" = 124 ] || [ "$status" = 137 ]; then
            echo "   (stopped by the time limit: a hang outside the fuzzer's own limits)"
        fi
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}; fix them and keep each input in fuzz/regressions/TARGET/"
    exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash"
