//! Side-by-side benchmarks: rvs against kernel NAT, HAProxy and the direct path.
//!
//! `rvs-lab bench` builds its own namespace lab (see [`topo`]), then measures every workload on every path,
//! interleaved (direct, kernel NAT, HAProxy, rvs, direct, ...) for a number of rounds, and prints median
//! (min–max) with the ratio to kernel NAT. `rvs-lab bench --icount` instead counts the core's instructions per
//! packet under valgrind. See BENCHMARKS.md at the top of the repository.

mod icount;
pub mod parse;
mod paths;
pub mod stats;
mod sys;
mod topo;
pub mod udp;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use paths::{Bench, PathKind};
use stats::{Row, Summary, Unit};

/// Workloads, in the order they are run within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// HTTP keep-alive requests/s (wrk, fixed connections), with latency p50/p99.
    Keepalive,
    /// New TCP connections/s: HTTP with `Connection: close`, one request per connection.
    Newconn,
    /// 64-byte UDP datagrams/s received by the real servers.
    Udp,
    /// Bulk TCP throughput (iperf3, one stream).
    Bulk,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Keepalive => "keepalive",
            Workload::Newconn => "newconn",
            Workload::Udp => "udp",
            Workload::Bulk => "bulk",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "rvs-lab bench",
    about = "Benchmarks rvs side by side with kernel NAT (nftables), HAProxy and the direct path"
)]
struct Args {
    /// Rounds; every round runs every workload on every path once, paths interleaved.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds per measurement (wrk -d, iperf3 -t, UDP send time).
    #[arg(long, default_value_t = 5)]
    duration: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// UDP flows (source ports) of the blaster.
    #[arg(long, default_value_t = 16)]
    udp_flows: usize,
    /// UDP payload bytes.
    #[arg(long, default_value_t = 64)]
    udp_size: usize,
    /// Paths to compare.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,nft,haproxy,rvs,rvs-sync,rvs-1w,rvs-link,rvs-xdp"
    )]
    paths: Vec<PathKind>,
    /// Workloads to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "keepalive,newconn,udp,bulk"
    )]
    workloads: Vec<Workload>,
    /// rvsd binary (default: next to this executable, built with cargo if missing).
    #[arg(long)]
    rvsd: Option<PathBuf>,
    /// rvsadm binary (default: next to this executable).
    #[arg(long)]
    rvsadm: Option<PathBuf>,
    /// Extra arguments for rvsd, e.g. "--workers 2" (split on whitespace).
    #[arg(long, default_value = "")]
    rvsd_args: String,
    /// Write every sample as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the scratch directory with configs and logs.
    #[arg(long)]
    keep_logs: bool,
    /// Scheduling priority (nice) of the benchmark and every process it starts: the load generators and servers
    /// then win the CPU against unrelated work on a shared machine. 0 leaves it alone.
    #[arg(long, default_value_t = -10, allow_hyphen_values = true)]
    nice: i32,
    /// Count rvs-core instructions per packet under valgrind instead of running the network benchmark.
    #[arg(long)]
    icount: bool,
    /// Packets per flow kind for --icount.
    #[arg(long, default_value_t = 100_000)]
    icount_packets: u64,
    #[command(subcommand)]
    helper: Option<Helper>,
}

/// Helpers the benchmark runs inside the namespaces (re-executing this binary).
#[derive(Debug, Subcommand)]
enum Helper {
    #[command(name = "__udp-send", hide = true)]
    UdpSend {
        #[arg(long)]
        target: std::net::SocketAddr,
        #[arg(long)]
        seconds: f64,
        #[arg(long, default_value_t = 16)]
        flows: usize,
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 100_000_000)]
        max_packets: u64,
    },
    #[command(name = "__udp-sink", hide = true)]
    UdpSink {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        seconds: f64,
        #[arg(long, default_value_t = 300)]
        idle_ms: u64,
    },
}

/// Entry point of `rvs-lab bench`; `args` are the arguments after `bench`.
pub fn main(args: Vec<String>) -> Result<()> {
    let args = Args::try_parse_from(std::iter::once("rvs-lab bench".to_string()).chain(args))
        .unwrap_or_else(|e| e.exit());
    match args.helper {
        Some(Helper::UdpSend {
            target,
            seconds,
            flows,
            size,
            max_packets,
        }) => return udp::send(target, seconds, flows, size, max_packets),
        Some(Helper::UdpSink {
            port,
            seconds,
            idle_ms,
        }) => return udp::sink(port, seconds, idle_ms),
        None => {}
    }
    if args.icount {
        return icount::run(args.icount_packets);
    }
    run_network(&args)
}

/// One measurement of one workload on one path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// requests/s, connections/s, packets/s or bits/s.
    pub value: f64,
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
    /// Operations counted (requests, connections, packets, bytes).
    pub ops: f64,
    /// Machine-wide busy and softirq CPU seconds during the measurement.
    pub cpu_busy_s: f64,
    pub cpu_softirq_s: f64,
    /// CPU seconds of the director's user-space process (rvsd or haproxy).
    pub proc_s: Option<f64>,
    /// UDP: datagrams sent (the rest were lost on the way).
    pub sent: Option<u64>,
    /// Bulk: TCP retransmissions of the sender.
    pub retransmits: Option<u64>,
}

type Results = BTreeMap<(Workload, PathKind), Vec<Result<Sample, String>>>;

fn run_network(args: &Args) -> Result<()> {
    if args.rounds == 0 || args.rounds > 50 || args.duration == 0 || args.duration > 120 {
        bail!("--rounds must be 1..=50 and --duration 1..=120 s");
    }
    if args.paths.is_empty() || args.workloads.is_empty() {
        bail!("nothing to run");
    }
    let mut tools = vec!["ip", "nginx", "wrk"];
    if args.paths.contains(&PathKind::Nft) {
        tools.push("nft");
    }
    if args.paths.contains(&PathKind::Haproxy) {
        tools.push("haproxy");
    }
    if args.workloads.contains(&Workload::Bulk) {
        tools.push("iperf3");
    }
    sys::ensure_tools(&tools)?;
    paths::remove_stale_labs();
    if args.nice != 0 {
        let pid = std::process::id().to_string();
        let n = args.nice.to_string();
        if let Err(e) = sys::sh(&["renice", "-n", &n, "-p", &pid]) {
            eprintln!("bench: renice failed ({e:#}); running at normal priority");
        }
    }

    let mut bench = Bench::new(args)?;
    let started = now_utc();
    eprintln!(
        "bench: lab {} up; {} rounds x {} workloads x {} paths, {} s each",
        bench.prefix,
        args.rounds,
        args.workloads.len(),
        args.paths.len(),
        args.duration
    );

    // Validation pass (not counted): every path must carry one short HTTP run, else it is reported as failing.
    let mut broken: BTreeMap<PathKind, String> = BTreeMap::new();
    for &p in &args.paths {
        if let Err(e) = bench.validate(p) {
            eprintln!("bench: path {} does not work: {e:#}", p.label());
            broken.insert(p, format!("{e:#}"));
        }
    }

    let mut results: Results = BTreeMap::new();
    for round in 1..=args.rounds {
        for &w in &args.workloads {
            for &p in &args.paths {
                if (w, p) == (Workload::Udp, PathKind::Haproxy) {
                    results
                        .entry((w, p))
                        .or_default()
                        .push(Err("n/a (HAProxy has no UDP)".into()));
                    continue;
                }
                if let Some(why) = broken.get(&p) {
                    results
                        .entry((w, p))
                        .or_default()
                        .push(Err(format!("path down: {why}")));
                    continue;
                }
                let r = bench.measure(p, w);
                match &r {
                    Ok(s) => eprintln!(
                        "bench: round {round} {:<9} {:<10} {}",
                        w.name(),
                        p.label(),
                        show_sample(w, s)
                    ),
                    Err(e) => eprintln!(
                        "bench: round {round} {:<9} {:<10} FAILED: {e:#}",
                        w.name(),
                        p.label()
                    ),
                }
                results
                    .entry((w, p))
                    .or_default()
                    .push(r.map_err(|e| format!("{e:#}")));
            }
        }
    }
    if args.keep_logs {
        bench.keep_logs();
    }
    let logs = bench.log_dir();
    drop(bench);

    let machine = machine_description();
    println!("# rvs-lab bench, {started}");
    println!();
    println!("Machine: {machine}");
    println!(
        "Settings: {} rounds, interleaved; {} s per measurement; wrk -t{} -c{}; UDP {} flows x {}-byte payload; nice {}",
        args.rounds,
        args.duration,
        args.threads,
        args.connections,
        args.udp_flows,
        args.udp_size,
        args.nice
    );
    println!();
    println!("{}", report(&args.paths, &results));
    for (p, why) in &broken {
        println!("- {} did not work: {why}", p.label());
    }
    if args.keep_logs {
        println!("Logs kept in {}", logs.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, to_json(&started, &machine, args, &results)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn show_sample(w: Workload, s: &Sample) -> String {
    let main = match w {
        Workload::Keepalive | Workload::Newconn => format!("{:.0} req/s", s.value),
        Workload::Udp => format!(
            "{:.0} pkt/s (sent {}, lost {:.1}%)",
            s.value,
            s.sent.unwrap_or(0),
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
fn report(paths: &[PathKind], results: &Results) -> String {
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

fn to_json(started: &str, machine: &str, args: &Args, results: &Results) -> Result<String> {
    let mut samples = Vec::new();
    for ((w, p), v) in results {
        for (i, s) in v.iter().enumerate() {
            samples.push(match s {
                Ok(s) => serde_json::json!({
                    "workload": w.name(), "path": p.label(), "round": i + 1, "value": s.value,
                    "p50_s": s.p50_s, "p99_s": s.p99_s, "ops": s.ops, "cpu_busy_s": s.cpu_busy_s,
                    "cpu_softirq_s": s.cpu_softirq_s, "proc_s": s.proc_s,
                    "udp_sent": s.sent, "tcp_retransmits": s.retransmits,
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
        "udp_flows": args.udp_flows, "udp_size": args.udp_size, "samples": samples,
    });
    Ok(serde_json::to_string_pretty(&doc)?)
}

fn now_utc() -> String {
    sys::sh(&["date", "-u", "+%Y-%m-%d %H:%M UTC"])
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown date".into())
}

fn machine_description() -> String {
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
    let kernel = sys::sh(&["uname", "-r"]).unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

/// Bound for one tool run: the measurement plus generous start-up and drain time.
fn bound(duration: u32) -> Duration {
    Duration::from_secs(u64::from(duration) + 20)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
            retransmits: None,
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
    }
}
