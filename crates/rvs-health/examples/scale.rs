//! Checker cost at scale: N real servers (default 10,000) checked every `delay_loop` (default 5 s) by one engine
//! thread, measured as CPU time of this process (the checker only: the servers run in a child process) over a
//! window, beside an idle rvsd measured over the same window (when run as root: rvsd in a network namespace of
//! its own, created and removed here).
//!
//!     cargo run --release -p rvs-health --example scale -- [SERVERS] [DELAY_LOOP_S] [WINDOW_S] [tcp|http] \
//!         [idle|normal] [CLOSES] [ROUNDS]
//!
//! CLOSES: a comma-separated list of TCP_CHECK closes (`reset`, `graceful`; default `reset`), each a phase with an
//! engine of its own (started, warmed up for one delay_loop, measured over the window, stopped); ROUNDS rounds of
//! the phases, interleaved, so `reset,graceful 3` gives the ratio of the two in one run. `idle|normal`: the
//! checker thread's priority (default idle, rvsd's default; `normal` measures the CPU a check costs when it
//! does not yield).
//!
//! Everything runs on loopback: the real servers are 127.0.x.y:18080, all served by one listener on 0.0.0.0
//! (in the child process) that answers HTTP and closes.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use rvs_health::check::TcpClose;
use rvs_health::engine::{Health, Options, Priority};

const PORT: u16 = 18080;

/// On-CPU time in nanoseconds of all threads of process `pid` ("self" for this one): the scheduler's
/// sum_exec_runtime from /proc/PID/task/TID/schedstat, not 10 ms ticks, so an idle rvsd's few milliseconds show.
/// (Only live threads count: the engine thread measured lives through the whole window.)
fn cpu_ns(pid: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| {
            std::fs::read_to_string(e.path().join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

const NS_PER_S: f64 = 1e9;

/// This process's utime + stime in seconds (/proc/self/stat, 10 ms ticks, dead threads included): a cross-check of
/// [`cpu_ns`] with the accounting `top` and the earlier measurements used.
fn self_stat_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the name: state(0) ... utime(11) stime(12); USER_HZ is 100 on Linux.
    let t = f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    t as f64 / 100.0
}

fn serve() {
    // A backlog of 4096, not std's 128: 2,000 connections a second overflow 128 whenever this process waits 64 ms
    // for a core, and the checks then time out on dropped SYNs (the bench measured its own server).
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_reuse_address(true).expect("SO_REUSEADDR");
    s.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], PORT)).into())
        .expect("bind 0.0.0.0:18080");
    s.listen(4096).expect("listen");
    let l: TcpListener = s.into();
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        let mut b = [0u8; 1024];
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        // As an HTTP server does: a connection closed (TCP_CHECK's FIN) or reset before any request gets no
        // answer, only the close; writing to it would make the checker's kernel answer with a RST instead of the
        // orderly close the graceful mode is about.
        if matches!(s.read(&mut b), Ok(n) if n > 0) {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        }
    }
}

/// What one phase measured.
struct Phase {
    checks: u64,
    /// The checker process's CPU by /proc/self/stat's ticks (cross-check of `checker_s`).
    stat_s: f64,
    checker_s: f64,
    server_s: f64,
    rvsd_s: f64,
    late: u64,
    start_delay: Duration,
    el: f64,
    down: usize,
    applies: u64,
}

fn close_name(c: TcpClose) -> &'static str {
    match c {
        TcpClose::Reset => "reset",
        TcpClose::Graceful => "graceful",
    }
}

/// Start an engine on `cfg`, warm it up for one delay_loop, measure it over `window` seconds, stop it.
fn phase(
    cfg: &rvs_keepalived::Config,
    options: Options,
    delay: f64,
    window: u64,
    server_pid: &str,
    rvsd_pid: Option<&str>,
) -> Phase {
    let applies = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let a2 = applies.clone();
    let h = Health::start_with(
        cfg.clone(),
        Box::new(move |_d| {
            a2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }),
        options,
    )
    .expect("start");
    // Warm-up: one delay_loop (warmup spreads the first checks over it).
    std::thread::sleep(Duration::from_secs_f64(delay + 1.0));
    let (c0, s0, r0, k0) = (
        cpu_ns("self"),
        cpu_ns(server_pid),
        rvsd_pid.map(cpu_ns).unwrap_or(0),
        h.checks_done(),
    );
    let (late0, start_delay0) = (h.checks_late(), h.start_delay_total());
    let stat0 = self_stat_s();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(window));
    let el = t0.elapsed().as_secs_f64();
    let (c1, s1, r1, k1) = (
        cpu_ns("self"),
        cpu_ns(server_pid),
        rvsd_pid.map(cpu_ns).unwrap_or(0),
        h.checks_done(),
    );
    let stat_s = self_stat_s() - stat0;
    let p = Phase {
        checks: k1 - k0,
        stat_s,
        checker_s: (c1 - c0) as f64 / NS_PER_S,
        server_s: (s1 - s0) as f64 / NS_PER_S,
        rvsd_s: (r1 - r0) as f64 / NS_PER_S,
        late: h.checks_late() - late0,
        start_delay: h.start_delay_total().saturating_sub(start_delay0),
        el,
        down: h
            .status()
            .iter()
            .flat_map(|s| s.real_servers.iter())
            .filter(|r| r.state != "up")
            .count(),
        applies: applies.load(std::sync::atomic::Ordering::Relaxed),
    };
    h.stop();
    p
}

/// TIME_WAIT sockets of this network namespace (IPv4), from /proc/net/sockstat.
fn time_wait() -> u64 {
    std::fs::read_to_string("/proc/net/sockstat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("TCP:")?;
            let w: Vec<&str> = rest.split_whitespace().collect();
            w.windows(2)
                .find(|p| p[0] == "tw")
                .and_then(|p| p[1].parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        serve();
        return;
    }
    let n: usize = args.get(1).and_then(|x| x.parse().ok()).unwrap_or(10_000);
    let delay: f64 = args.get(2).and_then(|x| x.parse().ok()).unwrap_or(5.0);
    let window: u64 = args.get(3).and_then(|x| x.parse().ok()).unwrap_or(30);
    let kind = args.get(4).cloned().unwrap_or_else(|| "tcp".into());
    let priority = match args.get(5).map(String::as_str) {
        None | Some("idle") => Priority::Idle,
        Some("normal") => Priority::Normal,
        Some(o) => panic!("priority '{o}': idle or normal"),
    };
    let closes: Vec<TcpClose> = args
        .get(6)
        .map(String::as_str)
        .unwrap_or("reset")
        .split(',')
        .map(|c| match c {
            "reset" => TcpClose::Reset,
            "graceful" => TcpClose::Graceful,
            o => panic!("close '{o}': reset or graceful"),
        })
        .collect();
    let rounds: usize = args.get(7).and_then(|x| x.parse().ok()).unwrap_or(1);
    let exe = std::env::current_exe().expect("exe");
    let mut server = std::process::Command::new(exe)
        .arg("--serve")
        .spawn()
        .expect("server child");
    std::thread::sleep(Duration::from_millis(300));

    let mut conf =
        format!("virtual_server 198.51.100.100 80 {{\n delay_loop {delay}\n connect_timeout 2\n");
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 1);
        let check = match kind.as_str() {
            "http" => "HTTP_GET {\n url {\n path /\n }\n }",
            _ => "TCP_CHECK {\n }",
        };
        conf.push_str(&format!(
            " real_server 127.0.{a}.{b} {PORT} {{\n  {check}\n }}\n"
        ));
    }
    conf.push_str("}\n");
    let t = Instant::now();
    let cfg = rvs_keepalived::parse_str(&conf).expect("config").config;
    eprintln!(
        "parsed {n} real servers ({} KB) in {:?}",
        conf.len() / 1024,
        t.elapsed()
    );

    // Idle rvsd beside it, when we can (root): its own namespace, no services.
    let ns = format!("rvsscale{}", std::process::id());
    let mut rvsd = None;
    let rvsd_bin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/rvsd");
    if rvsd_bin.exists()
        && std::process::Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .is_ok_and(|s| s.success())
    {
        let sock = std::env::temp_dir().join(format!("{ns}.sock"));
        rvsd = std::process::Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&rvsd_bin)
            .arg("--socket")
            .arg(&sock)
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
    }
    // `ip netns exec` execs rvsd in place: the child's PID is rvsd's.
    let rvsd_child_pid = rvsd.as_ref().map(|c| c.id().to_string());
    let server_pid = server.id().to_string();
    println!(
        "real servers {n}, {kind} checks every {delay} s, checker {priority:?}, window {window} s, {rounds} round(s) of {}",
        closes
            .iter()
            .map(|c| close_name(*c))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut per_check: Vec<Vec<f64>> = closes.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for (i, &close) in closes.iter().enumerate() {
            let tw0 = time_wait();
            let p = phase(
                &cfg,
                Options {
                    priority,
                    tcp_close: close,
                },
                delay,
                window,
                &server_pid,
                rvsd_child_pid.as_deref(),
            );
            let us = 1e6 * p.checker_s / p.checks.max(1) as f64;
            per_check[i].push(us);
            println!(
                "round {} close {:8}: checks {:.0}/s (expected {:.0}/s), late {}, mean start delay {:.2} ms; \
                 checker CPU {:.2} s = {:.1}% of a core = {us:.1} us per check (by /proc/self/stat ticks: {:.1} us); server child {:.1}% of a core; \
                 idle rvsd {}; TIME_WAIT sockets {} -> {}; not up {}; applies {}",
                r + 1,
                close_name(close),
                p.checks as f64 / p.el,
                n as f64 / delay,
                p.late,
                p.start_delay.as_secs_f64() * 1e3 / p.checks.max(1) as f64,
                p.checker_s,
                100.0 * p.checker_s / p.el,
                1e6 * p.stat_s / p.checks.max(1) as f64,
                100.0 * p.server_s / p.el,
                if rvsd.is_some() {
                    format!(
                        "{:.3}% of a core (checker / idle rvsd = {})",
                        100.0 * p.rvsd_s / p.el,
                        if p.rvsd_s > 0.0 {
                            format!("{:.0}x", p.checker_s / p.rvsd_s)
                        } else {
                            "inf: idle rvsd used no CPU".into()
                        }
                    )
                } else {
                    "not measured (needs root and target/release/rvsd)".into()
                },
                tw0,
                time_wait(),
                p.down,
                p.applies,
            );
        }
    }
    for (i, &close) in closes.iter().enumerate() {
        let m = median(per_check[i].clone());
        let mut line = format!(
            "close {:8}: CPU per check, median of {rounds}: {m:.1} us",
            close_name(close)
        );
        if i > 0 {
            let ratios: Vec<f64> = per_check[i]
                .iter()
                .zip(&per_check[0])
                .map(|(a, b)| a / b)
                .collect();
            line.push_str(&format!(
                " = {:.3}x {} (per-round ratios {:?})",
                median(ratios.clone()),
                close_name(closes[0]),
                ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>()
            ));
        }
        println!("{line}");
    }
    let _ = server.kill();
    let _ = server.wait();
    if let Some(mut r) = rvsd {
        let _ = r.kill();
        let _ = r.wait();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &ns])
            .status();
    }
}
