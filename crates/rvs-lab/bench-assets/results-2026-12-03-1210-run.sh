#!/bin/bash
# The quiet-window run (xdp engineer), 2026-12-03 12:10-12:30 UTC. Every step bounded by timeout.
set -u
cd /work/wt/xdp
O=/work/scratch-xdp/final
mkdir -p $O
T=$O/timeline.txt
step() { echo "$(date -u +%T) $* | load $(cut -d' ' -f1-3 /proc/loadavg)" >> $T; }
step "start, commit $(git rev-parse --short HEAD) (main $(git -C /work/main rev-parse --short HEAD))"
step "bench main"
timeout 600 nice -n 0 ./target/release/rvs-lab bench --rounds 3 --duration 4 \
  --paths direct,nft,rvs,rvs-xdp,rvs-xdp-tun --json $O/main.json > $O/main.log 2>&1
step "bench main done rc=$?"
timeout 240 ./target/release/rvs-lab bench --rounds 4 --duration 4 --paths nft,rvs,rvs-xdp,rvs-xdp-tun \
  --workloads newconn --json $O/newconn.json > $O/newconn.log 2>&1
step "newconn 4 rounds done rc=$?"
timeout 120 ./target/release/examples/capacity 5 1000000 64 1,16 > $O/capacity.log 2>&1
step "capacity done rc=$?"
if [ $(date -u +%H%M) -lt 1224 ]; then
  timeout 150 ./target/release/rvs-lab bench --rounds 2 --duration 4 --paths direct,nft,rvs-xdp \
    --workloads keepalive --http-servers 1 --json $O/ka-hs1.json > $O/ka-hs1.log 2>&1
  step "keepalive http-servers 1 done rc=$?"
fi
if [ $(date -u +%H%M) -lt 1226 ]; then
  timeout 60 /work/scratch-xdp/prof.sh $O/prof-xdp rvs-xdp > $O/prof-xdp.log 2>&1
  step "rvsd profile newconn rvs-xdp done rc=$?"
  timeout 60 /work/scratch-xdp/prof.sh $O/prof-xdp-tun rvs-xdp-tun > $O/prof-xdp-tun.log 2>&1
  step "rvsd profile newconn rvs-xdp-tun done rc=$?"
fi
if [ $(date -u +%H%M) -lt 1228 ]; then
  CI=true timeout 60 cargo test -p rvs-xdp --test prog instructions -- --nocapture > $O/prog-instructions.log 2>&1
  step "xdp instruction count done rc=$?"
fi
step "end"
