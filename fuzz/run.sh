#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/fuzz_targets (whoever added it), on stable Rust (--sanitizer none), after
# copying the committed seeds into the (git-ignored) corpus. Prints the targets first, one line per target at the
# end (runs, executions, new corpus size), and fails if any target crashed.
#   fuzz/run.sh                 # 30 s per target
#   fuzz/run.sh 3600            # one hour per target
#   fuzz/run.sh --total 60      # 60 s shared by all targets (at least 5 s each): what CI runs
# Extra arguments after the time go to libFuzzer, e.g. `fuzz/run.sh 600 -jobs=2 -workers=2`.
# FUZZ_TARGETS="a b" limits the run to those targets.
set -euo pipefail
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2
    exit 1
fi
targets=(${FUZZ_TARGETS:-$(cargo fuzz list)})
if [ "${1:-}" = "--total" ]; then
    total="${2:-60}"
    shift 2 || true
    secs=$(( total / ${#targets[@]} ))
    [ "$secs" -lt 5 ] && secs=5
else
    secs="${1:-30}"
    shift || true
fi
echo "fuzz targets (${#targets[@]}, ${secs} s each): ${targets[*]}"
cargo fuzz build --sanitizer none >/dev/null
status=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    if [ -d "seeds/$target" ]; then
        cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
    fi
    echo "== $target: ${secs}s"
    log="$(mktemp)"
    set +e
    cargo fuzz run "$target" --sanitizer none "corpus/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 "$@" >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^stat::number_of_executed_units|panicked|ERROR|SUMMARY' "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "!! $target failed; crash input in fuzz/artifacts/$target/" >&2
        status=1
    fi
    execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log" | tail -1)
    summary+=("$target: ${execs:-?} executions in ${secs} s, corpus $(ls "corpus/$target" | wc -l) inputs")
    rm -f "$log"
done
echo "== fuzz summary"
printf '   %s\n' "${summary[@]}"
exit "$status"
