//! Side-by-side benchmarks: rvs against kernel NAT, HAProxy and the direct path.
//!
//! `rvs-lab bench` builds the lab ([`crate::lab`], shaped for every method, with the comparison paths), then measures
//! every workload on every path, interleaved (direct, kernel NAT, HAProxy, rvs, direct, ...) for a number of rounds,
//! and prints (see [`report`]) median (min–max) with the ratio to kernel NAT. `rvs-lab bench --icount` instead counts the core's instructions per
//! packet under valgrind. See BENCHMARKS.md at the top of the repository.

mod icount;
pub mod parse;
mod paths;
mod report;
pub mod stats;
pub(crate) mod sys;
pub mod udp;

use crate::cmd;
use crate::error::{LabError, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use paths::{Bench, PathKind};
use report::{machine_description, report, show_sample, to_json};

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
    /// Real servers behind the HTTP service of the balancing paths (kernel NAT, HAProxy, rvs): 2, or 1 (the server
    /// the direct path reaches), which takes the second nginx off the two cores: with 2, three busy processes (wrk
    /// and two nginx) share two CPUs and requests wait for a scheduler slice; direct always has one.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    http_servers: u8,
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
    /// UDP: datagrams the real servers' kernels dropped at the sink's socket (`Udp: RcvbufErrors` of their
    /// namespaces): lost at the receiver, not on the path.
    pub sink_drops: Option<u64>,
    /// Bulk: TCP retransmissions of the sender.
    pub retransmits: Option<u64>,
    /// With the fast path: what the XDP program forwarded and passed up during the measurement.
    pub fast_path: Option<paths::FastPathCount>,
}

type Results = BTreeMap<(Workload, PathKind), Vec<Result<Sample, String>>>;

fn run_network(args: &Args) -> Result<()> {
    if args.rounds == 0 || args.rounds > 50 || args.duration == 0 || args.duration > 120 {
        return Err(LabError::Invalid(
            "--rounds must be 1..=50 and --duration 1..=120 s".into(),
        ));
    }
    if args.paths.is_empty() || args.workloads.is_empty() {
        return Err(LabError::Invalid("nothing to run".into()));
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
    if args.nice != 0 {
        let pid = std::process::id().to_string();
        let n = args.nice.to_string();
        if let Err(e) = cmd::run_checked(&["renice", "-n", &n, "-p", &pid]) {
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
        "Settings: {} rounds, interleaved; {} s per measurement; wrk -t{} -c{}; HTTP real servers {}; UDP {} flows x {}-byte payload, batched sender (sendmmsg x {}); nice {}",
        args.rounds,
        args.duration,
        args.threads,
        args.connections,
        args.http_servers,
        args.udp_flows,
        args.udp_size,
        udp::BATCH,
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
            .map_err(LabError::io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

fn now_utc() -> String {
    cmd::run_checked(&["date", "-u", "+%Y-%m-%d %H:%M UTC"])
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown date".into())
}

/// Bound for one tool run: the measurement plus generous start-up and drain time.
fn bound(duration: u32) -> Duration {
    Duration::from_secs(u64::from(duration) + 20)
}
