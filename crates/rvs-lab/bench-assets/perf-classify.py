#!/usr/bin/env python3
"""Classify the rvsd workers' perf samples by where in the kernel or user space they were taken.

Usage (during an rvs load, see BENCHMARKS.md):
    perf record -a -g -e cpu-clock -F 499 -o perf.data -- sleep 6
    perf script -i perf.data -F comm,ip,sym,dso > perf.txt
    python3 perf-classify.py perf.txt
"""
import sys


def samples(path):
    cur = None
    with open(path) as f:
        for line in f:
            if not line.strip():
                if cur:
                    yield cur
                cur = None
            elif not line.startswith((" ", "\t")):
                if cur:
                    yield cur
                cur = {"comm": line.split()[0], "frames": []}
            elif cur is not None:
                cur["frames"].append(line.strip())
    if cur:
        yield cur


def has(s, pat):
    return any(pat in f for f in s["frames"])


def classify(s):
    leaf = s["frames"][0] if s["frames"] else ""
    if "[kernel" not in leaf:
        return "user: rvsd" if "rvsd" in leaf else "user: libc/other"
    for entry, name in (("tun_chr_write_iter", "write()"), ("packet_sendmsg", "link send")):
        if not has(s, entry):
            continue
        if any(has(s, f) for f in ("tcp_v4_rcv", "udp_rcv", "udp4_lib_rcv", "udp_queue_rcv", "sock_def_readable",
                                   "udp_enqueue", "ip_local_deliver")):
            return f"{name}: delivery into the receiving host stack"
        if has(s, "br_"):
            return f"{name}: bridge"
        if has(s, "veth_xmit") or has(s, "dev_hard_start_xmit"):
            return f"{name}: veth transmit"
        if has(s, "ip_forward") or has(s, "fib_") or has(s, "ip_rcv") or has(s, "ip_route"):
            return f"{name}: IP receive + routing + forward"
        return "write(): tun_get_user itself" if name == "write()" else "link send: packet_snd itself"
    if has(s, "tun_chr_read_iter"):
        return "read() from the TUN"
    if has(s, "do_sys_poll"):
        return "poll() incl. sleep/wake"
    if has(s, "io_cqring_wait") and (has(s, "schedule") or "finish_task_switch" in leaf):
        return "io_uring: sleeping and waking"
    if has(s, "io_uring_enter"):
        return "io_uring: submission, completions, poll, task work"
    if "finish_task_switch" in leaf:
        return "context switch (other)"
    if has(s, "do_syscall_64"):
        return "other syscalls"
    return "kernel: other"


def main():
    rv = [s for s in samples(sys.argv[1]) if s["comm"].startswith("rvsd")]
    if not rv:
        sys.exit("no rvsd samples")
    counts = {}
    for s in rv:
        c = classify(s)
        counts[c] = counts.get(c, 0) + 1
    print(f"{len(rv)} rvsd samples")
    for c, v in sorted(counts.items(), key=lambda x: -x[1]):
        print(f"{100 * v / len(rv):5.1f}%  {c}")


if __name__ == "__main__":
    main()
