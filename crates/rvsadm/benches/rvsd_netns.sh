#!/usr/bin/env bash
# Sourced by restore_rvsd.sh and change_rvsd.sh (their shared preamble): a live rvsd in a private, empty network
# namespace (veth pairs inside it only; no traffic is sent), the rules text restore.rs measures, and cleanup on exit
# (rvsd killed by its PID, the namespace and the temporary directory removed).
# Usage: `. "$(dirname "$0")/rvsd_netns.sh" NAME`, then `write_rules` and `rvsd_up RVSD_OPTIONS...`.
# Sets NS, TMP, SOCK, RULES, BIN; `adm ARGS...` runs rvsadm against this rvsd.
set -euo pipefail
NS="rvsadm-$1-$$"
TMP="$(mktemp -d "/tmp/rvsadm-$1.XXXXXX")"
SOCK="$TMP/rvsd.sock"
RULES="$TMP/rules"
BIN="${RVS_BIN_DIR:-target/release}"
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

[ -n "${RVS_BIN_DIR:-}" ] || cargo build --release -q -p rvsd -p rvsadm

adm() { RVS_SOCKET="$SOCK" "$BIN/rvsadm" "$@"; }

# The criterion bench writes the same rules text it measures (run once, no measurement).
write_rules() {
    RVSADM_BENCH_WRITE="$RULES" cargo bench -q -p rvsadm --bench restore -- --test >/dev/null
    echo "rules: $(wc -l <"$RULES") lines"
}

# Starts rvsd (one worker) in the namespace with the options given, and waits until it answers.
rvsd_up() {
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip -n "$NS" link add pub0 type veth peer name pub1
    ip -n "$NS" link set pub1 up
    ip -n "$NS" addr add 198.51.100.254/24 dev pub0
    ip -n "$NS" link set pub0 up
    ip -n "$NS" link add priv0 type veth peer name priv1
    ip -n "$NS" link set priv1 up
    ip -n "$NS" addr add 203.0.113.254/24 dev priv0
    ip -n "$NS" link set priv0 up

    ip netns exec "$NS" "$BIN/rvsd" --socket "$SOCK" "$@" --public-if pub0 --private-if priv0 \
        --workers 1 2>"$TMP/rvsd.log" &
    PID=$!
    for _ in $(seq 1 100); do
        adm -L -n >/dev/null 2>&1 && break
        sleep 0.1
    done
    adm -L -n >/dev/null || { cat "$TMP/rvsd.log"; exit 1; }
}
