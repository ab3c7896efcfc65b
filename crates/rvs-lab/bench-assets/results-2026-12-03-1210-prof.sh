#!/bin/bash
# Profile rvsd (perf record -g -p, 4 s) during 1-round 8 s newconn runs of the given rvs fast-path paths.
# usage: prof.sh OUTDIR PATHS   (every path an rvs --fast-path path: the validation runs are told apart by the
# fast-path share line each prints)
set -u
out=$1; paths=$2
mkdir -p $out
cd /work/wt/xdp
target/release/rvs-lab bench --rounds 1 --duration 8 --workloads newconn --paths $paths --json $out/bench.json > $out/bench.md 2> $out/bench.log &
bp=$!
npaths=$(echo ${paths//,/ } | wc -w)
for i in $(seq 1 600); do
  [ "$(grep -c 'of the packets on the fast path' $out/bench.log)" -ge "$npaths" ] && break
  sleep 0.1
done
seen=" "
# the validation rvsd has stopped when its share line is printed: the next one is the measurement
for p in ${paths//,/ }; do
  pid=
  for i in $(seq 1 900); do
    kill -0 $bp 2>/dev/null || break
    cand=$(for q in $(pgrep -x rvsd); do grep -qa "rvsb$bp" /proc/$q/cmdline 2>/dev/null && echo $q; done | head -1)
    if [ -n "$cand" ] && [[ "$seen" != *" $cand "* ]]; then seen="$seen$cand "; pid=$cand; break; fi
    sleep 0.1
  done
  [ -z "$pid" ] && break
  sleep 2
  timeout 20 perf record -g -e cpu-clock -F 999 -p $pid -o $out/perf-$p.data -- sleep 4 > $out/perf-$p.log 2>&1
  echo "profiled $p pid $pid"
done
wait $bp
