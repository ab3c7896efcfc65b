//! Does checking 10,000 real servers delay the data plane? HTTP through the VIP with rvsd's health checker on and
//! off, in interleaved rounds of the same run.
//!
//! `apt-get install wrk && cargo build --release -p rvsd -p rvsadm -p rvs-lab --bins --examples && \
//!  RVS_BIN_DIR=target/release target/release/examples/checks_dataplane [SERVERS] [DELAY_LOOP_S] [ROUNDS] [SECONDS] [tcp|http] [PHASES] [LOAD]`
//! (as root; default 10000 5 4 10 tcp off,idle,normal wrk). PHASES: a comma-separated subset of `off`, `idle`,
//! `normal`. LOAD: `wrk` (saturating: `wrk -t1 -c8`, as many requests as the machine carries) or a number, a
//! fixed rate in requests/s (an open-loop client of its own, below: the data plane is not saturated, so what the
//! checker costs shows as latency, not as requests lost). The XDP fast path (established flows forwarded in the kernel, never reaching rvsd's threads):
//! `RVS_LAB_RVSD_ARGS="--fast-path xdp"` (extra rvsd arguments, as for the lab tests).
//!
//! A lab (two real servers) whose rvsd runs `--keepalived FILE`. FILE has VIP:80 -> the two lab HTTP servers, plus
//! virtual servers VIP:10001.. of 200 real servers each, SERVERS in all: ports 20000.. of the two real-server
//! addresses, each checked (TCP_CHECK or HTTP_GET with `connect_port 80`, so the checks reach the real servers'
//! HTTP listener and pass) every DELAY_LOOP_S. Each round runs three phases, "off", "on idle", "on normal": FILE is
//! rewritten (the same virtual and real servers, without or with the checkers), rvsd gets SIGHUP, its checker
//! thread is put under SCHED_IDLE (rvsd's own choice) or, for "on normal", back under SCHED_OTHER with `chrt`
//! (what rvsd did before, for the comparison in the same run), the run waits one delay_loop + 2 s
//! (the checks' warmup spread) and then runs `wrk -t1 -c8 -d SECONDS --latency http://VIP/` (or the fixed-rate
//! client) from the client namespace (keep-alive connections through rvsd's NAT). Reported: requests/s, p50 and p99 latency per round,
//! the medians' ratios to "off", and rvsd's CPU per thread (on-CPU time from /proc/PID/task/*/schedstat) over the wrk
//! windows; and, over the last delay_loop seconds of each phase's wait (no client traffic), rvsd's CPU: "off" is an
//! idle rvsd, "on" the checker's cost alone, so the run also gives the checker's CPU as a ratio to an idle rvsd. Every load loop is bounded by wrk's -d (the fixed-rate client: SECONDS and a request count);
//! everything lives in the lab's namespaces and is removed at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use rvs_lab::lab::{self, Lab, LabConfig, VIP};
use rvs_lab::{LabError, Result};

const PER_VS: usize = 200;

/// A phase of a round: the checker off, on as rvsd runs it (SCHED_IDLE), or on at normal priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Off,
    Idle,
    Normal,
}

impl Phase {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "idle" => Some(Self::Idle),
            "normal" => Some(Self::Normal),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Idle => "on idle",
            Self::Normal => "on normal",
        }
    }
}

/// rvsd's metrics, on the director namespace's loopback: `rvs_health_checks_total` says whether the checker keeps
/// up (SERVERS / DELAY_LOOP_S checks a second) in each phase.
const METRICS: &str = "127.0.0.1:9120";

/// The counters read from rvsd's metrics around each wrk window.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    checks: f64,
    late: f64,
    start_delay_s: f64,
    /// XDP fast path: packets forwarded in the kernel, and all packets it saw.
    fast_forwarded: f64,
    fast_all: f64,
}

impl Counters {
    fn minus(self, o: Self) -> Self {
        Self {
            checks: self.checks - o.checks,
            late: self.late - o.late,
            start_delay_s: self.start_delay_s - o.start_delay_s,
            fast_forwarded: self.fast_forwarded - o.fast_forwarded,
            fast_all: self.fast_all - o.fast_all,
        }
    }
}

/// rvsd's health and fast-path counters (zeros when they cannot be read).
fn counters(lab: &Lab) -> Counters {
    let text = rvs_lab::netns::run_in(&lab.director(), || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(METRICS).map_err(LabError::io("metrics"))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(LabError::io("metrics"))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .map_err(LabError::io("metrics"))?;
        let mut body = String::new();
        s.read_to_string(&mut body)
            .map_err(LabError::io("metrics"))?;
        Ok(body)
    })
    .unwrap_or_default();
    let mut c = Counters::default();
    for l in text.lines() {
        let Some((name, v)) = l.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<f64>() else {
            continue;
        };
        match name {
            "rvs_health_checks_total" => c.checks = v,
            "rvs_health_checks_late_total" => c.late = v,
            "rvs_health_check_start_delay_seconds_total" => c.start_delay_s = v,
            n if n.starts_with("rvs_fastpath_packets_total{") => {
                c.fast_all += v;
                if n.contains("reason=\"forwarded\"") {
                    c.fast_forwarded += v;
                }
            }
            _ => {}
        }
    }
    c
}

/// Set the scheduling policy of rvsd's checker thread (`chrt -i` SCHED_IDLE, `chrt -o` SCHED_OTHER).
fn set_checker_policy(pid: u32, flag: &str) -> Result<()> {
    let dir =
        std::fs::read_dir(format!("/proc/{pid}/task")).map_err(LabError::io("rvsd's threads"))?;
    for e in dir.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == "rvsd-health" {
            let tid = e.file_name().to_string_lossy().into_owned();
            let st = Command::new("chrt")
                .args([flag, "-p", "0", &tid])
                .status()
                .map_err(LabError::io("chrt"))?;
            return if st.success() {
                Ok(())
            } else {
                Err(LabError::Check(format!("chrt {flag} -p 0 {tid} failed")))
            };
        }
    }
    Err(LabError::Check("rvsd has no rvsd-health thread".into()))
}

fn config(servers: usize, delay: u64, check: Option<&str>) -> String {
    let checker = |port: u16| match check {
        None => String::new(),
        Some("http") => format!(
            "  HTTP_GET {{\n   url {{\n    path /\n    status_code 200\n   }}\n   connect_port {port}\n   connect_timeout 3\n  }}\n"
        ),
        Some(_) => format!("  TCP_CHECK {{\n   connect_port {port}\n   connect_timeout 3\n  }}\n"),
    };
    let mut c = String::with_capacity(servers * 120);
    let _ = writeln!(
        c,
        "virtual_server {VIP} 80 {{\n delay_loop {delay}\n lb_algo rr\n lb_kind NAT\n protocol TCP"
    );
    for i in 1..=2 {
        let _ = writeln!(
            c,
            " real_server {} 80 {{\n  weight 1\n{} }}",
            lab::rip(i),
            checker(80)
        );
    }
    c.push_str("}\n");
    let mut left = servers;
    let mut vs = 0;
    while left > 0 {
        let n = left.min(PER_VS);
        let _ = writeln!(
            c,
            "virtual_server {VIP} {} {{\n delay_loop {delay}\n lb_algo wlc\n lb_kind NAT\n protocol TCP",
            10_001 + vs
        );
        for j in 0..n {
            let _ = writeln!(
                c,
                " real_server {} {} {{\n  weight 1\n{} }}",
                lab::rip(1 + j % 2),
                20_000 + j / 2,
                checker(80)
            );
        }
        c.push_str("}\n");
        left -= n;
        vs += 1;
    }
    c
}

/// CPU time in nanoseconds of each thread of `pid`, summed by thread name: the scheduler's on-CPU time
/// (/proc/PID/task/TID/schedstat, first field), not the 10 ms ticks of /proc/.../stat, so an idle rvsd's few
/// milliseconds are measured, not rounded to zero.
fn thread_ns(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        *out.entry(comm.trim().to_owned()).or_default() += ns;
    }
    out
}

/// `ns` of CPU over `secs` of wall time, in % of one core.
fn pct(ns: u64, secs: f64) -> f64 {
    ns as f64 / 1e7 / secs.max(1e-9)
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(&0))))
        .collect()
}

/// wrk's figure like `1.23ms` in microseconds.
fn micros(s: &str) -> Option<f64> {
    let (num, mult) = if let Some(x) = s.strip_suffix("us") {
        (x, 1.0)
    } else if let Some(x) = s.strip_suffix("ms") {
        (x, 1e3)
    } else if let Some(x) = s.strip_suffix('s') {
        (x, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

struct Round {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: bool,
}

/// The load of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Load {
    /// wrk, saturating.
    Wrk,
    /// The fixed-rate client, requests/s.
    Rate(f64),
}

/// Keep-alive connections of the fixed-rate client (as wrk's -c8).
const RATE_CONNS: usize = 8;

/// The fixed-rate client: an open-loop load (wrk2's model; wrk2 is not packaged). RATE_CONNS keep-alive
/// connections in the client namespace, one thread each; connection j sends its i-th request at
/// `start + (j + i * RATE_CONNS) / rate` (or at once when it is behind), and a request's latency runs from that
/// intended time to the answer's last byte, so a stall counts against every request it delays (no coordinated
/// omission). Bounded: `secs` seconds, at most `rate * secs` requests; a failed request counts as an error and
/// its connection is opened again.
fn fixed_rate(lab: &Lab, rate: f64, secs: u64) -> Result<Round> {
    let vip = lab::vip(80);
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + Duration::from_secs(secs);
    let step = Duration::from_secs_f64(RATE_CONNS as f64 / rate);
    let mut handles = Vec::new();
    for j in 0..RATE_CONNS {
        let first = start + Duration::from_secs_f64(j as f64 / rate);
        handles.push(rvs_lab::netns::spawn_in(&lab.client(), move || {
            let mut lat_us: Vec<u32> =
                Vec::with_capacity((rate * secs as f64) as usize / RATE_CONNS + 16);
            let mut errors = 0u64;
            let mut conn = None;
            let mut due = first;
            while due < end {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if conn.is_none() {
                    conn = rvs_lab::client::HttpConn::connect(vip, Duration::from_secs(2)).ok();
                }
                let ok = conn.as_mut().is_some_and(|c| {
                    c.get(rvs_lab::client::Connection::KeepAlive)
                        .is_ok_and(|r| r.status == 200)
                });
                if ok {
                    let us = due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    lat_us.push(us);
                } else {
                    errors += 1;
                    conn = None;
                }
                due += step;
            }
            Ok((lat_us, errors))
        })?);
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h
            .join()
            .map_err(|_| LabError::Check("a fixed-rate client thread panicked".into()))??;
        all.extend(l);
        errors += e;
    }
    if all.is_empty() {
        return Err(LabError::Check(format!(
            "the fixed-rate client got no answer ({errors} errors)"
        )));
    }
    all.sort_unstable();
    let pct = |q: f64| f64::from(all[((all.len() - 1) as f64 * q).round() as usize]);
    Ok(Round {
        rps: all.len() as f64 / secs as f64,
        p50: pct(0.50),
        p99: pct(0.99),
        errors: errors > 0,
    })
}

/// TIME_WAIT sockets (IPv4) in the director's namespace (the checks' client side).
fn director_time_wait(lab: &Lab) -> u64 {
    rvs_lab::netns::run_in(&lab.director(), || {
        // thread-self: /proc/net follows the process's main thread, not this one (moved into the namespace).
        Ok(std::fs::read_to_string("/proc/thread-self/net/sockstat")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let w: Vec<&str> = l.strip_prefix("TCP:")?.split_whitespace().collect();
                w.windows(2)
                    .find(|p| p[0] == "tw")
                    .and_then(|p| p[1].parse().ok())
            })
            .unwrap_or(0))
    })
    .unwrap_or(0)
}

fn wrk(lab: &Lab, secs: u64) -> Result<Round> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.client(), "wrk", "-t1", "-c8"])
        .arg(format!("-d{secs}s"))
        .args(["--latency", "--timeout", "2s"])
        .arg(format!("http://{}/", lab::vip(80)))
        .output()
        .map_err(LabError::io("running wrk (apt-get install wrk)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(LabError::Check(format!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let field = |label: &str| {
        text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(label)).then(|| w.next().map(str::to_owned))?
        })
    };
    let parse = |label: &str| field(label).as_deref().and_then(micros);
    let rps = field("Requests/sec:").and_then(|x| x.parse::<f64>().ok());
    match (rps, parse("50%"), parse("99%")) {
        (Some(rps), Some(p50), Some(p99)) => Ok(Round {
            rps,
            p50,
            p99,
            errors: text.contains("Non-2xx") || text.contains("Socket errors"),
        }),
        _ => Err(LabError::Check(format!(
            "cannot read wrk's output:\n{text}"
        ))),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `median [min - max]` of `v`.
fn spread(v: &[f64], prec: usize) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.prec$} [{min:.prec$} - {max:.prec$}]",
        median(v.to_vec())
    )
}

fn real_servers(lab: &Lab) -> usize {
    lab.rvsadm(&["-L", "-n"])
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("  ->") && !l.contains("RemoteAddress"))
                .count()
        })
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (servers, delay, rounds, secs) =
        (num(1, 10_000) as usize, num(2, 5), num(3, 4), num(4, 10));
    let kind = args.get(5).map(String::as_str).unwrap_or("tcp").to_owned();
    let phases: Vec<Phase> = args
        .get(6)
        .map(String::as_str)
        .unwrap_or("off,idle,normal")
        .split(',')
        .map(|p| Phase::parse(p).ok_or_else(|| LabError::Invalid(format!("phase '{p}'"))))
        .collect::<Result<_>>()?;
    let load = match args.get(7).map(String::as_str) {
        None | Some("wrk") => Load::Wrk,
        Some(r) => match r.parse::<f64>() {
            Ok(v) if v > 0.0 => Load::Rate(v),
            _ => return Err(LabError::Invalid(format!("LOAD '{r}': wrk or requests/s"))),
        },
    };
    if phases.first() != Some(&Phase::Off) {
        return Err(LabError::Invalid(
            "PHASES must start with off (the comparison)".into(),
        ));
    }
    let file = std::env::temp_dir().join(format!("rvs-checks-dp-{}.conf", std::process::id()));
    let mut rvsd_args = vec![
        "--keepalived".into(),
        file.display().to_string(),
        "--metrics".into(),
        METRICS.into(),
    ];
    rvsd_args.extend(rvs_lab::testing::extra_rvsd_args());
    std::fs::write(&file, config(servers, delay, None)).map_err(LabError::io("writing FILE"))?;
    let cfg = LabConfig {
        rvsd: false,
        rvsd_args,
        ..LabConfig::unique("ckdp")
    };
    let mut lab = Lab::up(cfg)?;
    let result = run(
        &mut lab, &file, servers, delay, rounds, secs, &kind, &phases, load,
    );
    let _ = std::fs::remove_file(&file);
    if result.is_err() {
        eprintln!("rvsd's log:\n{}", lab.rvsd_log_text());
    }
    lab.down()?;
    result
}

/// One phase of one round, as measured.
struct Measured {
    round: Round,
    /// Counters' increase over the wrk window.
    delta: Counters,
    window_s: f64,
    /// The no-load window before the load: rvsd's CPU in ns (all threads, and the checker thread) and its length.
    quiet_total: u64,
    quiet_health: u64,
    quiet_s: f64,
}

#[allow(clippy::too_many_arguments)]
fn run(
    lab: &mut Lab,
    file: &std::path::Path,
    servers: usize,
    delay: u64,
    rounds: u64,
    secs: u64,
    kind: &str,
    phases: &[Phase],
    load: Load,
) -> Result<()> {
    let t = Instant::now();
    lab.start_rvsd()?;
    let pid = lab
        .rvsd_pid()
        .ok_or_else(|| LabError::Invalid("no rvsd".into()))?;
    let mode = rvs_lab::testing::extra_rvsd_args().join(" ");
    eprintln!(
        "rvsd {pid} ({}) up with {} real servers in {:.1} s",
        if mode.is_empty() { "TUN path" } else { &mode },
        real_servers(lab),
        t.elapsed().as_secs_f64()
    );
    let expected = servers + 2;
    let due_rate = expected as f64 / delay.max(1) as f64;
    let mut measured: Vec<Vec<Measured>> = phases.iter().map(|_| Vec::new()).collect();
    let mut cpu: Vec<BTreeMap<String, u64>> = phases.iter().map(|_| BTreeMap::new()).collect();
    for r in 0..rounds {
        for (p, &phase) in phases.iter().enumerate() {
            let conf = config(servers, delay, (phase != Phase::Off).then_some(kind));
            std::fs::write(file, conf).map_err(LabError::io("writing FILE"))?;
            let st = Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .map_err(LabError::io("kill -HUP"))?;
            if !st.success() {
                return Err(LabError::Check("kill -HUP rvsd failed".into()));
            }
            // rvsd runs its checker under SCHED_IDLE; the "normal" phase puts it back to SCHED_OTHER for the
            // comparison (what rvsd did before), the others restore SCHED_IDLE.
            set_checker_policy(pid, if phase == Phase::Normal { "-o" } else { "-i" })?;
            // The wait (the reload, then the checks' warmup spread) doubles as the no-load window: rvsd's CPU
            // over its last delay_loop seconds, with no client traffic (2 s after the SIGHUP, so the reload's
            // parse is outside it). "off": an idle rvsd; "on": the checker's cost alone.
            std::thread::sleep(Duration::from_secs(2));
            let quiet_before = thread_ns(pid);
            let tq = Instant::now();
            std::thread::sleep(Duration::from_secs(delay));
            let quiet_s = tq.elapsed().as_secs_f64();
            let quiet = delta(&thread_ns(pid), &quiet_before);
            let quiet_total = quiet.values().sum::<u64>();
            let quiet_health = *quiet.get("rvsd-health").unwrap_or(&0);
            let before_counters = counters(lab);
            let before = thread_ns(pid);
            let t = Instant::now();
            let round = match load {
                Load::Wrk => wrk(lab, secs)?,
                Load::Rate(r) => fixed_rate(lab, r, secs)?,
            };
            let window_s = t.elapsed().as_secs_f64();
            let d = delta(&thread_ns(pid), &before);
            // Counted over the wrk window (the scrapes at its ends are outside it).
            let delta_c = counters(lab).minus(before_counters);
            let health = pct(*d.get("rvsd-health").unwrap_or(&0), window_s);
            for (k, v) in d {
                *cpu[p].entry(k).or_default() += v;
            }
            let n = real_servers(lab);
            let tw = director_time_wait(lab);
            println!(
                "round {} checks {:10}: no load: rvsd {:6.3}% (rvsd-health {:6.3}%) of a core over {quiet_s:.1} s",
                r + 1,
                phase.label(),
                pct(quiet_total, quiet_s),
                pct(quiet_health, quiet_s),
            );
            println!(
                "round {} checks {:10}: {:8.0} req/s  p50 {:7.0} us  p99 {:7.0} us  rvsd-health {health:5.1}%  checks/s {:5.0} (due {:.0})  late {:.0}  mean start delay {:.1} ms  fast path {:.0}% of {:.0} pkts  real servers {n}/{expected}  director TIME_WAIT {tw}{}",
                r + 1,
                phase.label(),
                round.rps,
                round.p50,
                round.p99,
                delta_c.checks / window_s,
                if phase == Phase::Off { 0.0 } else { due_rate },
                delta_c.late,
                1e3 * delta_c.start_delay_s / delta_c.checks.max(1.0),
                100.0 * delta_c.fast_forwarded / delta_c.fast_all.max(1.0),
                delta_c.fast_all,
                if round.errors {
                    "  (the load reported errors)"
                } else {
                    ""
                }
            );
            if n != expected {
                return Err(LabError::Check(format!(
                    "{n} real servers in rvsadm -L, expected {expected}: checks failed?"
                )));
            }
            measured[p].push(Measured {
                round,
                delta: delta_c,
                window_s,
                quiet_total,
                quiet_health,
                quiet_s,
            });
        }
    }
    println!(
        "{rounds} interleaved rounds of {secs} s, {servers} real servers, {kind} checks every {delay} s, {}, load {}: \
         median [min - max] over the rounds; ratios to \"off\" of the same round",
        if mode.is_empty() { "TUN path" } else { &mode },
        match load {
            Load::Wrk => "wrk -t1 -c8 (saturating)".to_string(),
            Load::Rate(r) =>
                format!("fixed rate {r:.0} req/s over {RATE_CONNS} keep-alive connections"),
        }
    );
    type Get = fn(&Round) -> f64;
    let figures: [(&str, Get, usize); 3] = [
        ("req/s", |r| r.rps, 0),
        ("p50 us", |r| r.p50, 0),
        ("p99 us", |r| r.p99, 0),
    ];
    for (p, phase) in phases.iter().enumerate() {
        let mut line = format!("  {:10}", phase.label());
        for (name, get, prec) in figures {
            let v: Vec<f64> = measured[p].iter().map(|m| get(&m.round)).collect();
            let _ = write!(line, "  {name} {}", spread(&v, prec));
            if p != 0 {
                let ratios: Vec<f64> = measured[p]
                    .iter()
                    .zip(&measured[0])
                    .map(|(m, off)| get(&m.round) / get(&off.round))
                    .collect();
                let _ = write!(line, " (x {})", spread(&ratios, 3));
            }
        }
        if *phase != Phase::Off {
            let rate: Vec<f64> = measured[p]
                .iter()
                .map(|m| m.delta.checks / m.window_s)
                .collect();
            let late: f64 = measured[p].iter().map(|m| m.delta.late).sum();
            let checks: f64 = measured[p].iter().map(|m| m.delta.checks).sum();
            let delay_s: f64 = measured[p].iter().map(|m| m.delta.start_delay_s).sum();
            let _ = write!(
                line,
                "  checks/s {} of {due_rate:.0} due; late {late:.0} of {checks:.0}; mean start delay {:.2} ms",
                spread(&rate, 0),
                1e3 * delay_s / checks.max(1.0)
            );
        }
        println!("{line}");
    }
    // The checker's CPU against an idle rvsd: with no load, "on"'s checker thread against "off"'s whole
    // process (summed over the rounds).
    let quiet = |p: usize| {
        let m = &measured[p];
        let wall: f64 = m.iter().map(|m| m.quiet_s).sum();
        let total: u64 = m.iter().map(|m| m.quiet_total).sum();
        let health: u64 = m.iter().map(|m| m.quiet_health).sum();
        (pct(total, wall), pct(health, wall))
    };
    let (idle_rvsd, _) = quiet(0);
    println!(
        "no load (the last {delay} s of each reload's wait, {rounds} rounds): off (idle rvsd) {idle_rvsd:.3}% of a core"
    );
    for (p, phase) in phases.iter().enumerate().skip(1) {
        let (total, health) = quiet(p);
        println!(
            "  {:10} rvsd {total:.3}%, rvsd-health {health:.3}% of a core; checker / idle rvsd = {}",
            phase.label(),
            if idle_rvsd > 0.0 {
                format!("{:.0}x", health / idle_rvsd)
            } else {
                "inf (idle rvsd: no CPU time)".into()
            }
        );
    }
    println!("rvsd CPU by thread over the load windows (% of one core):");
    let names: std::collections::BTreeSet<&String> = cpu.iter().flat_map(|c| c.keys()).collect();
    for name in names {
        let pct = |p: usize| {
            let wall: f64 = measured[p].iter().map(|m| m.window_s).sum();
            pct(*cpu[p].get(name).unwrap_or(&0), wall)
        };
        if (0..phases.len()).any(|p| pct(p) > 0.0) {
            let cols: Vec<String> = phases
                .iter()
                .enumerate()
                .map(|(p, ph)| format!("{} {:5.1}%", ph.label(), pct(p)))
                .collect();
            println!("  {name:16} {}", cols.join("  "));
        }
    }
    Ok(())
}
