#!/usr/bin/env python3
"""Medians and same-run ratios from an `rvs-lab bench --json` file: DR/TUN against NAT on each data path."""
import json, statistics, sys
d = json.load(open(sys.argv[1]))
S = {}
for s in d["samples"]:
    if "error" in s: continue
    S.setdefault((s["workload"], s["path"]), []).append(s)
def med(w, p, f):
    v = [f(s) for s in S.get((w, p), []) if f(s) is not None]
    return statistics.median(v) if v else None
def paired(w, p, base, f):
    a = {s["round"]: f(s) for s in S.get((w, p), [])}
    b = {s["round"]: f(s) for s in S.get((w, base), [])}
    r = [a[k] / b[k] for k in a if k in b and a[k] and b[k]]
    return (statistics.median(r), min(r), max(r)) if r else None
val = lambda s: s["value"]
groups = [("TUN data path", "rvs", ["rvs-dr", "rvs-tun"]), ("fast path", "rvs --fast-path xdp", ["rvs DR (-g) xdp", "rvs TUN (-i) xdp"])]
labels = {"rvs-dr": "rvs DR (-g)", "rvs-tun": "rvs TUN (-i)"}
for name, base, others in groups:
    others = [labels.get(o, o) for o in others]
    print(f"\n{name}: against {base}")
    for w in ["keepalive", "newconn", "udp", "bulk"]:
        b = med(w, base, val)
        if b is None: continue
        row = [f"{w}: NAT {b:.4g}"]
        for o in others:
            m = med(w, o, val)
            p = paired(w, o, base, val)
            if m is None: row.append(f"{o} n/a"); continue
            row.append(f"{o} {m:.4g} ({m/b:.2f}x; paired {p[0]:.2f}x, {p[1]:.2f}-{p[2]:.2f}x)" if p else f"{o} {m:.4g} ({m/b:.2f}x)")
        print("  " + " | ".join(row))
    for w in ["keepalive", "newconn", "udp"]:
        for o in [base] + others:
            x = med(w, o, lambda s: s["proc_s"] / s["ops"] if s.get("proc_s") is not None and s["ops"] else None)
            y = med(w, o, lambda s: s["cpu_softirq_s"] / s["ops"] if s["ops"] else None)
            if x is not None or y is not None:
                print(f"  {w} {o}: rvsd CPU/op {x*1e6 if x else float('nan'):.3g} us, softirq/op {y*1e6 if y else float('nan'):.3g} us")
