#!/usr/bin/env bash
# Runs every cargo-fuzz target for N seconds each (default 30), on stable Rust
# (--sanitizer none), after copying the committed seeds into the (git-ignored) corpus.
#   fuzz/run.sh            # 30 s per target
#   fuzz/run.sh 3600       # one hour per target
# Extra arguments after N go to libFuzzer, e.g. `fuzz/run.sh 600 -jobs=2 -workers=2`.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2
    exit 1
fi
status=0
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    if [ -d "seeds/$target" ]; then
        cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
    fi
    echo "== $target: ${secs}s"
    if ! cargo fuzz run "$target" --sanitizer none "corpus/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 "$@"; then
        echo "!! $target failed; crash input in fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
