//! Throughput of the scale-out lab with 1, 2 and 3 directors behind the router's ECMP, in one run: what
//! `rvs-lab up --directors N` can and cannot show on this machine (SCALING.md, "A bench with N directors").
//!
//! `apt-get install wrk bird2 && cargo build --release -p rvsd -p rvsadm -p rvs-announce -p rvs-lab --bins --examples && \
//!  RVS_BIN_DIR=target/release target/release/examples/ecmp_throughput [ROUNDS] [SECONDS]` (as root; default 2 10).
//!
//! For each round and each N in 1, 2, 3 (interleaved: 1 2 3 1 2 3 ...): the ECMP lab with N directors (BIRD on the
//! router and on every director, rvsd --sloppy-tcp, rvs-announce), two real servers by direct routing, every
//! director configured alike (`-s mh -b mh-port`); once the router has one next hop per director,
//! `wrk -t2 -c48 -d SECONDS` from the client namespace through the VIP (keep-alive HTTP; 48 connections so the
//! router's 5-tuple hash spreads them). Reported per N: requests/s, each director's rvsd CPU (utime + stime of
//! its process) and the whole machine's busy CPU (/proc/stat) over the wrk window. Every load loop is bounded by
//! wrk's -d; everything lives in the lab's namespaces and is removed after each measurement.

use std::process::Command;
use std::time::{Duration, Instant};

use rvs_lab::lab::{self, Lab, LabConfig};
use rvs_lab::{LabError, Result};

/// Busy and total jiffies of the whole machine (/proc/stat's cpu line).
fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// utime + stime of a process, in clock ticks.
fn proc_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

/// The pid of the rvsd running in namespace `ns`.
fn rvsd_pid(ns: &str) -> Option<u32> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "rvsd")
        })
}

struct Measure {
    rps: f64,
    rvsd_cpu: Vec<f64>,
    machine_busy: f64,
}

fn wrk_rps(lab: &Lab, secs: u64) -> Result<f64> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.client(), "wrk", "-t2", "-c48"])
        .arg(format!("-d{secs}s"))
        .args(["--timeout", "2s"])
        .arg(format!("http://{}/", lab::vip(80)))
        .output()
        .map_err(LabError::io("running wrk (apt-get install wrk)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|x| x.trim().parse::<f64>().ok())
        .ok_or_else(|| LabError::Check(format!("cannot read wrk's output:\n{text}")))
}

fn measure(n: usize, secs: u64) -> Result<Measure> {
    let cfg = LabConfig {
        real_servers: 2,
        directors: n,
        rvsd_directors: n,
        router: true,
        bgp: true,
        method: lab::Method::Dr,
        rvsd_args: vec!["--sloppy-tcp".into()],
        ..LabConfig::unique(&format!("ecmptp{n}"))
    };
    let lab = Lab::up(cfg)?;
    let r = (|| {
        let vip = format!("{}:80", lab::VIP);
        for k in 1..=n {
            lab.rvsadm_in(k, &["-A", "-t", &vip, "-s", "mh", "-b", "mh-port"])?;
            for i in 1..=2 {
                lab.rvsadm_in(
                    k,
                    &["-a", "-t", &vip, "-r", &format!("{}:80", lab::rip(i)), "-g"],
                )?;
            }
        }
        let all: Vec<usize> = (1..=n).collect();
        lab.wait_vip_next_hops(&all, Duration::from_secs(30))?;
        let pids: Vec<Option<u32>> = (1..=n).map(|k| rvsd_pid(&lab.director_n(k))).collect();
        let before: Vec<u64> = pids.iter().map(|p| p.map_or(0, proc_ticks)).collect();
        let (b0, t0) = machine_ticks();
        let t = Instant::now();
        let rps = wrk_rps(&lab, secs)?;
        let wall = t.elapsed().as_secs_f64();
        let (b1, t1) = machine_ticks();
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
        let rvsd_cpu = pids
            .iter()
            .zip(&before)
            .map(|(p, b)| p.map_or(0, proc_ticks).saturating_sub(*b) as f64 / 100.0 / wall * 100.0)
            .collect();
        Ok(Measure {
            rps,
            rvsd_cpu,
            machine_busy: (b1 - b0) as f64 / (t1 - t0).max(1) as f64 * cores * 100.0,
        })
    })();
    if r.is_err() {
        for k in 1..=n {
            eprintln!("director {k}'s rvsd log:\n{}", lab.rvsd_log_text_in(k));
        }
    }
    lab.down()?;
    r
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (rounds, secs) = (num(1, 2), num(2, 10));
    let mut rps: [Vec<f64>; 3] = Default::default();
    for r in 0..rounds {
        for n in 1..=3 {
            let m = measure(n, secs)?;
            let cpu: Vec<String> = m.rvsd_cpu.iter().map(|c| format!("{c:.0}%")).collect();
            println!(
                "round {} directors {n}: {:8.0} req/s  rvsd CPU per director [{}] (sum {:.0}%)  machine busy {:.0}% of {} cores",
                r + 1,
                m.rps,
                cpu.join(" "),
                m.rvsd_cpu.iter().sum::<f64>(),
                m.machine_busy,
                std::thread::available_parallelism().map_or(1, |c| c.get())
            );
            rps[n - 1].push(m.rps);
        }
    }
    let med = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let one = med(&rps[0]).max(1e-9);
    for (i, v) in rps.iter().enumerate() {
        println!(
            "directors {}: median {:.0} req/s, {:.3}x one director",
            i + 1,
            med(v),
            med(v) / one
        );
    }
    Ok(())
}
