#!/usr/bin/env bash
# What ONE change costs with 10,000 services x 10 real servers (110,000 rule lines) loaded into a live rvsd running
# in a private, empty network namespace (veth pairs inside it only; no traffic is sent): `rvsadm -a` / `-d` end to end
# (process start included), then benches/change.rs's changes over one control connection.
# Needs root. Usage: crates/rvsadm/benches/change_rvsd.sh   (from the workspace root)
# RVSD_ARGS adds rvsd options (e.g. RVSD_ARGS=--no-save to leave the rules file out).
. "$(dirname "$0")/rvsd_netns.sh" change
cargo bench -q -p rvsadm --bench change --no-run 2>/dev/null
write_rules
# shellcheck disable=SC2086 # RVSD_ARGS is a list of options
rvsd_up --rules "$RULES.saved" ${RVSD_ARGS:-}

adm -R <"$RULES" || { tail -5 "$TMP/rvsd.log"; exit 1; }
echo "loaded: $(adm -S -n | wc -l) rule lines"

ms() { echo $(( ($2 - $1) / 1000 )); }
for i in 1 2 3 4 5; do
    a=$(date +%s%N)
    adm -a -t 198.51.100.$i:1000 -r 203.0.113.201:8080 -m -w 1
    b=$(date +%s%N)
    adm -d -t 198.51.100.$i:1000 -r 203.0.113.201:8080
    c=$(date +%s%N)
    echo "rvsadm -a: $(ms "$a" "$b") us, rvsadm -d: $(ms "$b" "$c") us (end to end, process start included)"
done
a=$(date +%s%N); "$BIN/rvsadm" -h >/dev/null 2>&1 || true; b=$(date +%s%N)
echo "bare rvsadm process (rvsadm -h): $(ms "$a" "$b") us"
# The same, without the two `date` processes in each figure (a process start costs ~1 ms on these VMs): 50 adds and
# 50 deletes, and 100 bare processes, each timed as one loop.
n=50
a=$(date +%s%N)
for i in $(seq 1 $n); do
    adm -a -t 198.51.100.9:1000 -r 203.0.113.201:$((8000 + i)) -m -w 1
done
b=$(date +%s%N)
for i in $(seq 1 $n); do
    adm -d -t 198.51.100.9:1000 -r 203.0.113.201:$((8000 + i))
done
c=$(date +%s%N)
for i in $(seq 1 $((2 * n))); do "$BIN/rvsadm" -h >/dev/null 2>&1 || true; done
d=$(date +%s%N)
echo "in loops of $n: rvsadm -a $(( (b - a) / n / 1000 )) us, rvsadm -d $(( (c - b) / n / 1000 )) us, bare rvsadm -h $(( (d - c) / (2 * n) / 1000 )) us each (end to end, process start included)"
RVS_SOCKET="$SOCK" cargo bench -q -p rvsadm --bench change
