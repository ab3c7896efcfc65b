//! Checker cost at scale: N real servers (default 10,000) checked every `delay_loop` (default 5 s) by one engine
//! thread, measured as CPU time of this process (the checker only: the servers run in a child process) over a
//! window, beside an idle rvsd measured over the same window (when run as root: rvsd in a network namespace of
//! its own, created and removed here).
//!
//!     cargo run --release -p rvs-health --example scale -- [SERVERS] [DELAY_LOOP_S] [WINDOW_S] [tcp|http]
//!
//! Everything runs on loopback: the real servers are 127.0.x.y:18080, all served by one listener on 0.0.0.0
//! (in the child process) that answers HTTP and closes.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const PORT: u16 = 18080;

fn cpu_ticks(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the name: state(0) ... utime(11) stime(12).
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

fn ticks_per_s() -> f64 {
    100.0 // USER_HZ on Linux
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
        let _ = s.read(&mut b);
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
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
    let applies = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let a2 = applies.clone();
    let h = rvs_health::engine::Health::start(
        cfg,
        Box::new(move |_d| {
            a2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }),
    )
    .expect("start");

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
    // Warm-up: one delay_loop (warmup spreads the first checks over it).
    std::thread::sleep(Duration::from_secs_f64(delay + 1.0));
    // `ip netns exec` execs rvsd in place: the child's PID is rvsd's.
    let rvsd_child_pid = rvsd.as_ref().map(|c| c.id().to_string());
    let (c0, s0, r0, k0) = (
        cpu_ticks("self"),
        cpu_ticks(&server.id().to_string()),
        rvsd_child_pid.as_deref().map(cpu_ticks).unwrap_or(0),
        h.checks_done(),
    );
    let (late0, start_delay0) = (h.checks_late(), h.start_delay_total());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(window));
    let el = t0.elapsed().as_secs_f64();
    let (c1, s1, r1, k1) = (
        cpu_ticks("self"),
        cpu_ticks(&server.id().to_string()),
        rvsd_child_pid.as_deref().map(cpu_ticks).unwrap_or(0),
        h.checks_done(),
    );
    let (late, start_delay) = (
        h.checks_late() - late0,
        h.start_delay_total().saturating_sub(start_delay0),
    );
    let checker_s = (c1 - c0) as f64 / ticks_per_s();
    let server_s = (s1 - s0) as f64 / ticks_per_s();
    let rvsd_s = (r1 - r0) as f64 / ticks_per_s();
    let checks = k1 - k0;
    let down = h
        .status()
        .iter()
        .flat_map(|s| s.real_servers.iter())
        .filter(|r| r.state != "up")
        .count();
    println!("real servers {n}, {kind} checks every {delay} s, window {el:.1} s");
    println!(
        "checks completed: {checks} ({:.0}/s; expected {:.0}/s)",
        checks as f64 / el,
        n as f64 / delay
    );
    println!(
        "checks started late (>= {:?} after due): {late}; mean start delay {:.2} ms",
        rvs_health::engine::LATE,
        start_delay.as_secs_f64() * 1e3 / checks.max(1) as f64
    );
    println!(
        "checker CPU: {checker_s:.2} s = {:.1}% of one core, {:.1} us per check",
        100.0 * checker_s / el,
        1e6 * checker_s / checks.max(1) as f64
    );
    println!(
        "server child CPU (the other end, for scale): {server_s:.2} s = {:.1}% of one core",
        100.0 * server_s / el
    );
    if rvsd.is_some() {
        println!(
            "idle rvsd CPU over the same window: {rvsd_s:.2} s = {:.2}% of one core; checker / idle rvsd = {}",
            100.0 * rvsd_s / el,
            if rvsd_s > 0.0 {
                format!("{:.1}x", checker_s / rvsd_s)
            } else {
                "inf (idle rvsd used < 10 ms)".into()
            }
        );
    } else {
        println!("idle rvsd not measured (needs root and target/release/rvsd)");
    }
    println!(
        "real servers not up at the end: {down}; configuration applies: {}",
        applies.load(std::sync::atomic::Ordering::Relaxed)
    );
    h.stop();
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
