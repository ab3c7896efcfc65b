#!/bin/bash
# The final quiet-window bench (bench engineer). Run from /work/wt/bench as root.
set -u
cd /work/wt/bench
R=target/release
A=crates/rvs-lab/bench-assets/results-2026-12-02-final
T=$A-timeline.txt
stamp() { echo "$(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg) $*" | tee -a $T; }
stamp "start; main at $(git rev-parse --short HEAD)"
PATHS=${PATHS:-direct,nft,rvs,rvs-xdp,rvs-dr,rvs-tun,rvs-dr-xdp,rvs-tun-xdp}
$R/rvs-lab bench --rounds ${ROUNDS:-3} --duration ${DUR:-4} --paths $PATHS \
  --rvsd $R/rvsd --rvsadm $R/rvsadm --json $A-main.json > $A-main.md 2> $A-main.log
stamp "main bench done (exit $?)"
$R/examples/capacity 5 1000000 64 1,16 > $A-capacity.txt 2>&1
stamp "capacity done (exit $?)"
for pw in newconn:nft newconn:rvs-xdp keepalive:direct keepalive:rvs-xdp; do
  w=${pw%%:*}; p=${pw#*:}
  $R/rvs-lab bench --rounds 1 --duration 10 --paths $p --workloads $w --rvsd $R/rvsd --rvsadm $R/rvsadm > $A-perf-$w-$p.md 2> $A-perf-$w-$p.log &
  bpid=$!
  for i in $(seq 300); do pgrep -f "wrk.*-d 10s" >/dev/null && break; sleep 0.1; done
  sleep 2
  perf record -a -g -e cpu-clock -F 499 -o /tmp/benchfinal/perf-$w-$p.data -- sleep 4 2>/dev/null
  wait $bpid
  perf report -i /tmp/benchfinal/perf-$w-$p.data --stdio --no-children -g none --sort comm,sym --percent-limit 0.7 2>/dev/null | grep -v "^$" | head -150 > $A-perf-$w-$p.txt
  stamp "perf $w $p done"
done
cargo test -p rvs-xdp --test prog instructions -- --nocapture > $A-xdp-instructions.txt 2>&1
stamp "xdp instructions done"
