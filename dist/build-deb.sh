#!/usr/bin/env bash
# Build the Debian package "rvs": rvsd + rvsadm, the systemd unit, /etc/rvs/rules, /etc/default/rvsd, man pages
# and shell completions generated from the command-line definitions (rvs-dist), the dashboard and scrape examples.
#   dist/build-deb.sh [--profile dev|release] [--output DIR]      (default: release, target/debian/)
# Needs cargo-deb (cargo install --locked cargo-deb@3.8.0; .ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
out=target/debian
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --output) out="$2"; shift 2 ;;
        *) echo "usage: $0 [--profile dev|release] [--output DIR]" >&2; exit 2 ;;
    esac
done
cargo build --locked --profile "$profile" -p rvsd -p rvsadm -p rvs-dist
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
rm -rf dist/gen
"target/$dir/rvs-dist" dist/gen
gzip -9n dist/gen/man/*.8
mkdir -p "$out"
cargo deb --locked -p rvsd --no-build --profile "$profile" --output "$out"
