//! Reporting, apart from measuring: one line per sample while the bench runs, then the tables (median (min–max),
//! ratio to kernel NAT, paired per-round ratios, CPU per operation, the fast path's share of packets) and the JSON
//! of every sample.

use super::paths::PathKind;
use super::stats::{self, Row, Summary, Unit};
use super::{Args, Results, Sample, Workload};
use crate::error::{LabError, Result};

pub(super) fn show_sample(w: Workload, s: &Sample) -> String {
    let main = match w {
        Workload::Keepalive | Workload::Newconn => format!("{:.0} req/s", s.value),
        Workload::Udp => format!(
            "{:.0} pkt/s (sent {}, sink socket drops {}, lost {:.1}%)",
            s.value,
            s.sent.unwrap_or(0),
            s.sink_drops.unwrap_or(0),
            s.sent
                .filter(|&n| n > 0)
                .map(|n| 100.0 * (1.0 - s.ops / n as f64))
                .unwrap_or(0.0)
        ),
        Workload::Bulk => format!(
            "{:.2} Gbit/s ({} retransmits)",
            s.value / 1e9,
            s.retransmits.unwrap_or(0)
        ),
    };
    let lat = match (s.p50_s, s.p99_s) {
        (Some(a), Some(b)) => format!(" p50 {:.0} µs p99 {:.0} µs", a * 1e6, b * 1e6),
        _ => String::new(),
    };
    let proc_s = s
        .proc_s
        .map(|p| format!(" proc {p:.2} s"))
        .unwrap_or_default();
    format!(
        "{main}{lat}  cpu {:.2} s (softirq {:.2} s){proc_s}",
        s.cpu_busy_s, s.cpu_softirq_s
    )
}

/// Summary of one field over the rounds of (workload, path); `Err` with the first failure if any round failed.
fn summarize(
    results: &Results,
    w: Workload,
    p: PathKind,
    field: impl Fn(&Sample) -> Option<f64>,
) -> Result<Summary, String> {
    let Some(samples) = results.get(&(w, p)) else {
        return Err("not run".into());
    };
    let mut v = Vec::new();
    for s in samples {
        match s {
            Ok(s) => match field(s) {
                Some(x) => v.push(x),
                None => return Err("n/a".into()),
            },
            Err(e) if e.starts_with("n/a") => return Err(e.clone()),
            Err(e) => return Err(format!("failed: {}", first_line(e))),
        }
    }
    Summary::of(&v).ok_or_else(|| "no samples".into())
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("");
    if l.len() > 80 {
        format!("{}…", &l[..l.floor_char_boundary(80)])
    } else {
        l.to_string()
    }
}

/// The result tables (throughput and latency; CPU cost), ratios to kernel NAT.
pub(super) fn report(paths: &[PathKind], results: &Results) -> String {
    let labels: Vec<&str> = paths.iter().map(|p| p.label()).collect();
    let base = paths.iter().position(|&p| p == PathKind::Nft).unwrap_or(0);
    let row = |metric: &str,
               unit: Unit,
               lower: bool,
               w: Workload,
               f: &dyn Fn(&Sample) -> Option<f64>|
     -> (Workload, Row) {
        (
            w,
            Row {
                metric: metric.to_string(),
                unit,
                lower_is_better: lower,
                cells: paths.iter().map(|&p| summarize(results, w, p, f)).collect(),
            },
        )
    };
    let main_rows = vec![
        row(
            "HTTP keep-alive requests/s",
            Unit::PerSecond,
            false,
            Workload::Keepalive,
            &|s| Some(s.value),
        ),
        row(
            "keep-alive latency p50",
            Unit::Seconds,
            true,
            Workload::Keepalive,
            &|s| s.p50_s,
        ),
        row(
            "keep-alive latency p99",
            Unit::Seconds,
            true,
            Workload::Keepalive,
            &|s| s.p99_s,
        ),
        row(
            "new connections/s",
            Unit::PerSecond,
            false,
            Workload::Newconn,
            &|s| Some(s.value),
        ),
        row(
            "new-connection latency p99",
            Unit::Seconds,
            true,
            Workload::Newconn,
            &|s| s.p99_s,
        ),
        row(
            "UDP packets/s received",
            Unit::PerSecond,
            false,
            Workload::Udp,
            &|s| Some(s.value),
        ),
        row(
            "bulk TCP throughput",
            Unit::BitsPerSecond,
            false,
            Workload::Bulk,
            &|s| Some(s.value),
        ),
    ];
    let per_op = |x: f64, s: &Sample| (s.ops > 0.0).then(|| x / s.ops);
    let cpu_rows = vec![
        row(
            "softirq per keep-alive request (whole machine)",
            Unit::Seconds,
            true,
            Workload::Keepalive,
            &|s| per_op(s.cpu_softirq_s, s),
        ),
        row(
            "director process CPU per keep-alive request",
            Unit::Seconds,
            true,
            Workload::Keepalive,
            &|s| s.proc_s.and_then(|p| per_op(p, s)),
        ),
        row(
            "softirq per new connection (whole machine)",
            Unit::Seconds,
            true,
            Workload::Newconn,
            &|s| per_op(s.cpu_softirq_s, s),
        ),
        row(
            "director process CPU per new connection",
            Unit::Seconds,
            true,
            Workload::Newconn,
            &|s| s.proc_s.and_then(|p| per_op(p, s)),
        ),
        row(
            "softirq per UDP packet (whole machine)",
            Unit::Seconds,
            true,
            Workload::Udp,
            &|s| per_op(s.cpu_softirq_s, s),
        ),
        row(
            "director process CPU per UDP packet",
            Unit::Seconds,
            true,
            Workload::Udp,
            &|s| s.proc_s.and_then(|p| per_op(p, s)),
        ),
    ];
    let has = |w: Workload| {
        paths
            .iter()
            .any(|&p| results.get(&(w, p)).is_some_and(|v| !v.is_empty()))
    };
    let keep = |rows: Vec<(Workload, Row)>| -> Vec<Row> {
        rows.into_iter()
            .filter(|(w, _)| has(*w))
            .map(|(_, r)| r)
            .collect()
    };
    let mut out = String::new();
    out.push_str("Median (min–max) over the rounds; (ratio to kernel NAT's median).\n\n");
    out.push_str(&stats::markdown_table(&labels, base, &keep(main_rows)));
    out.push_str(
        "\nCPU cost per operation: softirq time of the whole machine (the kernel's packet work in every namespace: \
         client, director, real servers), and utime+stime of the director's user-space process (rvsd or HAProxy; \
         the kernel paths have none).\n\n",
    );
    out.push_str(&stats::markdown_table(&labels, base, &keep(cpu_rows)));
    out.push_str(&fast_path_table(paths, results));
    if paths.contains(&PathKind::Nft) {
        out.push_str(
            "\nPaired ratios to kernel NAT: each round's figure divided by kernel NAT's figure of the same round \
             (measured seconds apart), median (min–max) over the rounds. Less sensitive to slow drift of the \
             machine's load than the ratio of medians.\n\n",
        );
        out.push_str(&paired_table(paths, results));
    }
    out
}

/// The share of packets the XDP program forwarded (of all it saw, rvsd's exit line), per round, for every path and
/// workload that ran with the fast path; empty when none did.
fn fast_path_table(paths: &[PathKind], results: &Results) -> String {
    let mut rows = String::new();
    for &p in paths {
        for w in [
            Workload::Keepalive,
            Workload::Newconn,
            Workload::Udp,
            Workload::Bulk,
        ] {
            let Some(v) = results.get(&(w, p)) else {
                continue;
            };
            let shares: Vec<String> = v
                .iter()
                .filter_map(|s| s.as_ref().ok().and_then(|s| s.fast_path))
                .map(|c| format!("{:.1} %", 100.0 * c.share()))
                .collect();
            if !shares.is_empty() {
                rows.push_str(&format!(
                    "| {} | {} | {} |\n",
                    p.label(),
                    w.name(),
                    shares.join(", ")
                ));
            }
        }
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "\nShare of packets on the fast path (forwarded by XDP / all the program saw on pub0 and priv0), per \
         round:\n\n| path | workload | rounds |\n|---|---|---|\n{rows}"
    )
}

/// Per-round ratio of `p`'s figure to kernel NAT's figure of the same round, for the rounds where both exist.
fn paired_ratios(results: &Results, w: Workload, p: PathKind) -> Vec<f64> {
    let (Some(a), Some(b)) = (results.get(&(w, p)), results.get(&(w, PathKind::Nft))) else {
        return Vec::new();
    };
    if a.iter().chain(b).any(Result::is_err) {
        // As in the main table: a path with a failed round has no figure.
        return Vec::new();
    }
    a.iter()
        .zip(b)
        .filter_map(|(x, y)| match (x, y) {
            (Ok(x), Ok(y)) if y.value > 0.0 => Some(x.value / y.value),
            _ => None,
        })
        .collect()
}

fn paired_table(paths: &[PathKind], results: &Results) -> String {
    let mut out = String::from("| workload |");
    for p in paths {
        out.push_str(&format!(" {} |", p.label()));
    }
    out.push_str("\n|---|");
    for _ in paths {
        out.push_str("---|");
    }
    out.push('\n');
    for (w, name) in [
        (Workload::Keepalive, "keep-alive requests/s"),
        (Workload::Newconn, "new connections/s"),
        (Workload::Udp, "UDP packets/s"),
        (Workload::Bulk, "bulk TCP throughput"),
    ] {
        if !results.contains_key(&(w, PathKind::Nft)) {
            continue;
        }
        out.push_str(&format!("| {name} |"));
        for &p in paths {
            match Summary::of(&paired_ratios(results, w, p)) {
                Some(s) => out.push_str(&format!(
                    " {} ({}–{}) |",
                    stats::format_ratio(Some(s.median)),
                    stats::format_ratio(Some(s.min)),
                    stats::format_ratio(Some(s.max))
                )),
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out
}

pub(super) fn to_json(
    started: &str,
    machine: &str,
    args: &Args,
    results: &Results,
) -> Result<String> {
    let mut samples = Vec::new();
    for ((w, p), v) in results {
        for (i, s) in v.iter().enumerate() {
            samples.push(match s {
                Ok(s) => serde_json::json!({
                    "workload": w.name(), "path": p.label(), "round": i + 1, "value": s.value,
                    "p50_s": s.p50_s, "p99_s": s.p99_s, "ops": s.ops, "cpu_busy_s": s.cpu_busy_s,
                    "cpu_softirq_s": s.cpu_softirq_s, "proc_s": s.proc_s,
                    "udp_sent": s.sent, "udp_sink_drops": s.sink_drops, "tcp_retransmits": s.retransmits,
                    "xdp_forwarded": s.fast_path.map(|c| c.forwarded),
                    "xdp_passed": s.fast_path.map(|c| c.passed),
                }),
                Err(e) => serde_json::json!({
                    "workload": w.name(), "path": p.label(), "round": i + 1, "error": e,
                }),
            });
        }
    }
    let doc = serde_json::json!({
        "started": started, "machine": machine, "rounds": args.rounds, "duration_s": args.duration,
        "wrk_threads": args.threads, "wrk_connections": args.connections,
        "http_servers": args.http_servers, "udp_flows": args.udp_flows, "udp_batch": super::udp::BATCH, "udp_size": args.udp_size, "samples": samples,
    });
    serde_json::to_string_pretty(&doc)
        .map_err(|e| LabError::io("formatting the results as JSON")(e.into()))
}

pub(super) fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = crate::cmd::run_checked(&["uname", "-r"]).unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn sample(value: f64, ops: f64) -> Sample {
        Sample {
            value,
            ops,
            cpu_busy_s: 1.0,
            cpu_softirq_s: 0.5,
            p50_s: Some(1e-4),
            p99_s: Some(1e-3),
            proc_s: None,
            sent: None,
            sink_drops: None,
            retransmits: None,
            fast_path: None,
        }
    }

    #[test]
    fn report_ratios_to_kernel_nat_and_shows_failures() {
        let mut r: Results = BTreeMap::new();
        r.insert(
            (Workload::Keepalive, PathKind::Direct),
            vec![Ok(sample(30_000.0, 150_000.0)); 3],
        );
        r.insert(
            (Workload::Keepalive, PathKind::Nft),
            vec![
                Ok(sample(20_000.0, 100_000.0)),
                Ok(sample(10_000.0, 50_000.0)),
                Ok(sample(15_000.0, 75_000.0)),
            ],
        );
        r.insert(
            (Workload::Keepalive, PathKind::Rvs),
            vec![Ok(sample(1.0, 1.0)), Err("rvsd exited\nmore".into())],
        );
        let out = report(&[PathKind::Direct, PathKind::Nft, PathKind::Rvs], &r);
        let line = out
            .lines()
            .find(|l| l.starts_with("| HTTP keep-alive requests/s"))
            .unwrap();
        assert_eq!(
            line,
            "| HTTP keep-alive requests/s | 30.0k (30.0k–30.0k) (2.00x) | 15.0k (10.0k–20.0k) (1.00x) | failed: rvsd exited |"
        );
        // softirq per request: 0.5 s / 150k requests = 3.33 µs on the direct path.
        let cpu = out
            .lines()
            .find(|l| l.starts_with("| softirq per keep-alive request"))
            .unwrap();
        assert!(cpu.contains("3.33 µs"), "{cpu}");
        // The director process row has no figures for kernel paths.
        assert!(out.contains("| n/a |"), "{out}");
        // Paired ratios: direct 30k against 20k, 10k, 15k -> 1.5, 3.0, 2.0 -> median 2.00x.
        let paired = out
            .lines()
            .find(|l| l.starts_with("| keep-alive requests/s"))
            .unwrap();
        assert_eq!(
            paired,
            "| keep-alive requests/s | 2.00x (1.50x–3.00x) | 1.00x (1.00x–1.00x) | – |"
        );
        // Workloads that were not run leave no rows.
        assert!(!out.contains("UDP packets/s"), "{out}");
        // No fast path, no share table.
        assert!(!out.contains("Share of packets"), "{out}");
        let xdp = |forwarded, passed| Sample {
            fast_path: Some(super::super::paths::FastPathCount { forwarded, passed }),
            ..sample(1.0, 1.0)
        };
        r.insert(
            (Workload::Bulk, PathKind::RvsXdp),
            vec![Ok(xdp(990, 10)), Err("rvsd exited".into()), Ok(xdp(0, 0))],
        );
        let out = report(&[PathKind::Nft, PathKind::RvsXdp], &r);
        assert!(
            out.contains("| rvs --fast-path xdp | bulk | 99.0 %, 0.0 % |"),
            "{out}"
        );
    }
}
