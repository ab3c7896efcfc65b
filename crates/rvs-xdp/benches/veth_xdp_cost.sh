#!/usr/bin/env bash
# What an XDP program on the director's veths costs the packets it passes up (issue 10: new connections 0.86x kernel
# NAT with the fast path on, 0.93x on the TUN path alone), without rvsd: plain routing through a director namespace,
# HTTP through it (wrk, `Connection: close` = new connections, or keep-alive), under `perf record -a -g`, in four
# variants interleaved per round:
#   none  no XDP anywhere (plain routing as the bench's `direct` path runs it)
#   dir   an XDP_PASS program on the director's pub0 and priv0 (what the fast path adds to every passed-up packet)
#   wire  an XDP_PASS program on the switches' sender-facing ports (c1, r1) only: every frame reaches the director
#         as a fresh page-pool buffer with 256 bytes of headroom, as a NIC's receive ring would give it
#   both  dir + wire
# Prints per variant: requests/s, the lab processes' CPU per request (perf cpu-clock samples of this run's wrk and
# nginx worker, by PID, softirq work done in their context included; ksoftirqd is shared with the rest of the
# machine and left out, so under overload part of the softirq work is not counted), and the µs per request spent in veth's XDP receive (veth_xdp_rcv_skb) and in its copy
# (skb_pp_cow_data: veth copies every skb that is cloned, has a kmalloc'ed head, or < 256 bytes of headroom before
# running the program; TCP transmits clones, so every locally sent TCP segment is copied).
# Needs root, clang, wrk, nginx, perf. Namespaces vxc-$$-{c,ps,d,qs,r}; removed at exit, also on failure.
# Usage: crates/rvs-xdp/benches/veth_xdp_cost.sh [ROUNDS] [SECONDS] [nc|ka]     (defaults: 3 5 nc)
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-5}
WL=${3:-nc}
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 20 ]] || { echo "ROUNDS 1..20" >&2; exit 2; }
[[ $SECS =~ ^[0-9]+$ && $SECS -ge 1 && $SECS -le 60 ]] || { echo "SECONDS 1..60" >&2; exit 2; }
[[ $WL == nc || $WL == ka ]] || { echo "workload nc or ka" >&2; exit 2; }
P=vxc-$$
TMP=$(mktemp -d)
NGINX_PID=
cleanup() {
    [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null || true
    for n in c ps d qs r; do ip netns del "$P-$n" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/pass.c" <<'EOF'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }
char _license[] SEC("license") = "Dual MIT/GPL";
EOF
clang -O2 -g -target bpf -I"/usr/include/$(uname -m)-linux-gnu" -c "$TMP/pass.c" -o "$TMP/pass.o"

# client - public switch (ps) - director (plain routing) - private switch (qs) - real server, as rvs-lab's lab.
for n in c ps d qs r; do ip netns add "$P-$n"; ip -n "$P-$n" link set lo up; done
for sw in ps qs; do ip -n "$P-$sw" link add br0 type bridge; ip -n "$P-$sw" link set br0 up; done
ip -n "$P-ps" link add c1 type veth peer name eth0 netns "$P-c"
ip -n "$P-ps" link add d1 type veth peer name pub0 netns "$P-d"
ip -n "$P-qs" link add d1 type veth peer name priv0 netns "$P-d"
ip -n "$P-qs" link add r1 type veth peer name eth0 netns "$P-r"
for p in c1 d1; do ip -n "$P-ps" link set "$p" master br0 up; done
for p in d1 r1; do ip -n "$P-qs" link set "$p" master br0 up; done
ip netns exec "$P-ps" ethtool -K d1 gro on >/dev/null
ip netns exec "$P-qs" ethtool -K d1 gro on >/dev/null
ip -n "$P-c" addr add 198.51.100.10/24 dev eth0
ip -n "$P-d" addr add 198.51.100.1/24 dev pub0
ip -n "$P-d" addr add 203.0.113.1/24 dev priv0
ip -n "$P-r" addr add 203.0.113.11/24 dev eth0
for x in "c eth0" "d pub0" "d priv0" "r eth0"; do set -- $x; ip -n "$P-$1" link set "$2" up; done
ip -n "$P-c" route add default via 198.51.100.1
ip -n "$P-r" route add default via 203.0.113.1
# Complete checksums, as the lab's senders send them.
ip netns exec "$P-c" ethtool -K eth0 tx off >/dev/null
ip netns exec "$P-r" ethtool -K eth0 tx off >/dev/null
ip netns exec "$P-d" sysctl -qw net.ipv4.ip_forward=1
for n in c d r; do
    ip netns exec "$P-$n" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1 \
        net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192
done
cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err warn;
events { worker_connections 16384; multi_accept on; }
http { access_log off; default_type text/plain; keepalive_requests 100000000; keepalive_timeout 120s;
  server { listen 80 backlog=8192; location / { return 200 "hello\n"; } } }
EOF
ip netns exec "$P-r" nginx -c "$TMP/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 50); do ip netns exec "$P-c" curl -s -m 1 -o /dev/null http://203.0.113.11/ && break; sleep 0.1; done
WORKERS=$(pgrep -P "$NGINX_PID" | paste -sd,)

xdp() { # xdp NS DEV on|off
    if [[ $3 == on ]]; then ip -n "$1" link set dev "$2" xdpdrv obj "$TMP/pass.o" sec xdp
    else ip -n "$1" link set dev "$2" xdp off 2>/dev/null || true; fi
}
variant() {
    local d=off w=off
    [[ $1 == dir || $1 == both ]] && d=on
    [[ $1 == wire || $1 == both ]] && w=on
    xdp "$P-d" pub0 off; xdp "$P-d" priv0 off; xdp "$P-ps" c1 off; xdp "$P-qs" r1 off
    xdp "$P-d" pub0 $d; xdp "$P-d" priv0 $d; xdp "$P-ps" c1 $w; xdp "$P-qs" r1 $w
}
HDR=()
[[ $WL == nc ]] && HDR=(-H "Connection: close")
F=1999
echo "workload $WL, $ROUNDS rounds x $SECS s, wrk -t1 -c32; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    for v in none dir wire both; do
        variant "$v"
        sleep 0.3
        # ip netns exec execs wrk: $! is wrk's PID.
        timeout $((SECS + 10)) ip netns exec "$P-c" wrk -t1 -c32 -d"${SECS}s" "${HDR[@]}" http://203.0.113.11/ \
            >"$TMP/wrk.txt" 2>&1 &
        TPID=$!
        sleep 0.2
        WPID=$(pgrep -P "$TPID" wrk || pgrep -P "$TPID" | head -1)
        perf record -q -g -F $F -e cpu-clock -p "$WPID,$WORKERS" -o "$TMP/perf.data" -- sleep "$SECS" 2>/dev/null
        wait "$TPID" || true
        rps=$(awk '/Requests\/sec/{print $2}' "$TMP/wrk.txt")
        tot=$(perf script -i "$TMP/perf.data" -F comm 2>/dev/null | wc -l)
        perf report -i "$TMP/perf.data" --children --percentage relative --sort sym -g none --stdio 2>/dev/null \
            >"$TMP/report.txt" || true
        us() { # µs per request of symbol $1 (children), from the report's relative percentage
            local pct
            pct=$(grep -E "\] $1\$" "$TMP/report.txt" | head -1 | awk '{print $1}' | tr -d %)
            awk -v p="${pct:-0}" -v t="$tot" -v f=$F -v r="$rps" -v s="$SECS" \
                'BEGIN { printf "%.2f", p / 100 * t / f * 1e6 / (r * s) }'
        }
        printf 'round %d %-4s %9s req/s  lab CPU %6s us/req  veth_xdp_rcv_skb %5s  skb_pp_cow_data %5s us/req\n' \
            "$r" "$v" "$rps" "$(awk -v t="$tot" -v f=$F -v r="$rps" -v s="$SECS" \
            'BEGIN { printf "%.2f", t / f * 1e6 / (r * s) }')" "$(us veth_xdp_rcv_skb)" "$(us skb_pp_cow_data)"
    done
done
