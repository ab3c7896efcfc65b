#!/bin/bash
# The quiet-window run (xdp engineer), 2026-12-03 09:05-09:28 UTC. Every step bounded by timeout.
set -u
cd /work/wt/xdp
O=/tmp/xdpb/final
mkdir -p $O
T=$O/timeline.txt
step() { echo "$(date -u +%T) $* | load $(cut -d' ' -f1-3 /proc/loadavg)" >> $T; }
step "start, commit $(git rev-parse --short HEAD)"
step "bench main"
timeout 900 nice -n 0 ./target/release/rvs-lab bench --rounds 3 --duration 4 \
  --paths direct,nft,rvs,rvs-xdp,rvs-dr,rvs-tun,rvs-dr-xdp,rvs-tun-xdp --json $O/main.json > $O/main.log 2>&1
step "bench main done rc=$?"
timeout 300 ./target/release/examples/capacity 5 1000000 64 1,16 > $O/capacity.log 2>&1
step "capacity done rc=$?"
if [ $(date -u +%H%M) -lt 0924 ]; then
  timeout 150 ./target/release/rvs-lab bench --rounds 2 --duration 4 --paths direct,nft,rvs-xdp \
    --workloads keepalive --http-servers 1 --json $O/ka-hs1.json > $O/ka-hs1.log 2>&1
  step "keepalive http-servers 1 done rc=$?"
fi
if [ $(date -u +%H%M) -lt 0925 ]; then
  timeout 120 ./target/release/rvs-lab bench --rounds 2 --duration 3 --paths direct,nft,rvs-xdp \
    --workloads udp --udp-flows 1 --json $O/udp1.json > $O/udp1.log 2>&1
  step "udp one flow done rc=$?"
fi
step "end"
