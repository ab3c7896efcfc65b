#!/usr/bin/env bash
# What ONE change costs with 10,000 services x 10 real servers (110,000 rule lines) loaded into a live rvsd running
# in a private, empty network namespace (veth pairs inside it only; no traffic is sent): `rvsadm -a` / `-d` end to end
# (process start included), then benches/change.rs's changes over one control connection.
# Needs root. Usage: crates/rvsadm/benches/change_rvsd.sh   (from the workspace root)
# RVSD_ARGS adds rvsd options (e.g. RVSD_ARGS=--no-save to leave the rules file out).
set -euo pipefail
NS="rvsadm-change-$$"
TMP="$(mktemp -d /tmp/rvsadm-change.XXXXXX)"
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
cargo bench -q -p rvsadm --bench change --no-run 2>/dev/null
# the criterion bench writes the same rules text it measures (run once, no measurement)
RVSADM_BENCH_WRITE="$RULES" cargo bench -q -p rvsadm --bench restore -- --test >/dev/null
echo "rules: $(wc -l <"$RULES") lines"

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

ip netns exec "$NS" "$BIN/rvsd" --socket "$SOCK" --rules "$RULES.saved" ${RVSD_ARGS:-} --public-if pub0 --private-if priv0 \
    --workers 1 2>"$TMP/rvsd.log" &
PID=$!
for _ in $(seq 1 100); do
    RVS_SOCKET="$SOCK" "$BIN/rvsadm" -L -n >/dev/null 2>&1 && break
    sleep 0.1
done
RVS_SOCKET="$SOCK" "$BIN/rvsadm" -L -n >/dev/null || { cat "$TMP/rvsd.log"; exit 1; }

RVS_SOCKET="$SOCK" "$BIN/rvsadm" -R <"$RULES" || { tail -5 "$TMP/rvsd.log"; exit 1; }
echo "loaded: $(RVS_SOCKET="$SOCK" "$BIN/rvsadm" -S -n | wc -l) rule lines"

ms() { echo $(( ($2 - $1) / 1000 )); }
for i in 1 2 3 4 5; do
    a=$(date +%s%N)
    RVS_SOCKET="$SOCK" "$BIN/rvsadm" -a -t 198.51.100.$i:1000 -r 203.0.113.201:8080 -m -w 1
    b=$(date +%s%N)
    RVS_SOCKET="$SOCK" "$BIN/rvsadm" -d -t 198.51.100.$i:1000 -r 203.0.113.201:8080
    c=$(date +%s%N)
    echo "rvsadm -a: $(ms "$a" "$b") us, rvsadm -d: $(ms "$b" "$c") us (end to end, process start included)"
done
a=$(date +%s%N); "$BIN/rvsadm" -h >/dev/null 2>&1 || true; b=$(date +%s%N)
echo "bare rvsadm process (rvsadm -h): $(ms "$a" "$b") us"
RVS_SOCKET="$SOCK" cargo bench -q -p rvsadm --bench change
