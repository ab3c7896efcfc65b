#!/usr/bin/env bash
# Times `rvsadm -R` of 10,000 services x 10 real servers (110,000 rule lines) against a live rvsd
# running in a private, empty network namespace (veth pairs inside it only; no traffic is sent).
# Needs root. Usage: crates/rvsadm/benches/restore_rvsd.sh   (from the workspace root)
set -euo pipefail
NS="rvsadm-bench-$$"
TMP="$(mktemp -d /tmp/rvsadm-bench.XXXXXX)"
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

ip netns exec "$NS" "$BIN/rvsd" --socket "$SOCK" --no-save --public-if pub0 --private-if priv0 \
    --workers 1 2>"$TMP/rvsd.log" &
PID=$!
for _ in $(seq 1 100); do
    RVS_SOCKET="$SOCK" "$BIN/rvsadm" -L -n >/dev/null 2>&1 && break
    sleep 0.1
done
RVS_SOCKET="$SOCK" "$BIN/rvsadm" -L -n >/dev/null || { cat "$TMP/rvsd.log"; exit 1; }

start=$(date +%s%N)
RVS_SOCKET="$SOCK" "$BIN/rvsadm" -R <"$RULES" || { tail -5 "$TMP/rvsd.log"; exit 1; }
end=$(date +%s%N)
echo "rvsadm -R (10,000 services x 10 real servers) through rvsd: $(( (end - start) / 1000000 )) ms"
start=$(date +%s%N)
n=$(RVS_SOCKET="$SOCK" "$BIN/rvsadm" -S -n | wc -l)
end=$(date +%s%N)
echo "rvsadm -S -n: $n lines in $(( (end - start) / 1000000 )) ms"
[ "$n" -eq 110000 ]
