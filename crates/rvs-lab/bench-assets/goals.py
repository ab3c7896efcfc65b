#!/usr/bin/env python3
"""Issue 10's goals from an `rvs-lab bench --json` file: the fast path's same-run (paired) ratios to kernel NAT and to
the direct path, per workload, median (min-max) over the rounds. Usage: goals.py FILE [PATH-LABEL]"""
import json, statistics, sys
d = json.load(open(sys.argv[1]))
fast = sys.argv[2] if len(sys.argv) > 2 else "rvs --fast-path xdp"
S = {}
for s in d["samples"]:
    if "error" in s: continue
    S.setdefault((s["workload"], s["path"]), {})[s["round"]] = s
def paired(w, p, base, f):
    a, b = S.get((w, p), {}), S.get((w, base), {})
    r = [f(a[k]) / f(b[k]) for k in a if k in b and f(a[k]) and f(b[k])]
    return "%.2fx (%.2f-%.2f)" % (statistics.median(r), min(r), max(r)) if r else "n/a"
def med(w, p, f):
    v = [f(s) for s in S.get((w, p), {}).values() if f(s) is not None]
    return statistics.median(v) if v else None
val = lambda s: s["value"]
p50 = lambda s: s["p50_s"]
p99 = lambda s: s["p99_s"]
print(f"{d['started']}: {d['rounds']} rounds x {d['duration_s']} s, http_servers {d.get('http_servers')}; fast path = {fast}")
for w in ["keepalive", "newconn", "udp", "bulk"]:
    if (w, fast) not in S: continue
    print(f"{w}: {fast} {med(w, fast, val):.4g}, NAT {med(w, 'kernel NAT', val):.4g}, direct {med(w, 'direct', val) or 0:.4g}; "
          f"paired vs NAT {paired(w, fast, 'kernel NAT', val)}, vs direct {paired(w, fast, 'direct', val)}")
    if w in ("keepalive", "newconn"):
        print(f"  p50 paired vs NAT {paired(w, fast, 'kernel NAT', p50)}; p99 medians: "
              + ", ".join(f"{p} {med(w, p, p99)*1e3:.2f} ms" for p in ["direct", "kernel NAT", "rvs", fast] if med(w, p, p99)))
        busy = lambda s: s["cpu_softirq_s"] / s["ops"] if s.get("cpu_softirq_s") and s.get("ops") else None
        print(f"  softirq per op paired vs NAT {paired(w, fast, 'kernel NAT', busy)}")
    share = [100.0 * s["xdp_forwarded"] / (s["xdp_forwarded"] + s["xdp_passed"]) for s in S[(w, fast)].values()
             if s.get("xdp_forwarded") is not None and (s["xdp_forwarded"] + s["xdp_passed"]) > 0]
    print("  fast-path share: " + ", ".join(f"{x:.1f} %" for x in share))
