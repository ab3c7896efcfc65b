//! The event loop against real loopback servers: a server that stops is removed within
//! delay_loop + retry x (delay_before_retry + connect_timeout) (+ one connect_timeout for the first failing
//! check), comes back after one success, and the status says why.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rvs_health::engine::{Desired, Health};

fn ports(d: &Desired) -> Vec<(u16, u32)> {
    d.services[0]
        .1
        .iter()
        .map(|x| (x.port, x.weight.get()))
        .collect()
}

fn wait_for(
    rx: &mpsc::Receiver<Desired>,
    limit: Duration,
    what: &str,
    f: impl Fn(&Desired) -> bool,
) -> Desired {
    let end = Instant::now() + limit;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(d) if f(&d) => return d,
            Ok(_) => {}
            Err(_) => panic!("{what}: not within {limit:?}"),
        }
    }
}

#[test]
fn failure_and_recovery_through_the_engine() {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (pa, pb) = (
        a.local_addr().expect("a").port(),
        b.local_addr().expect("b").port(),
    );
    let text = format!(
        "virtual_server 10.0.0.1 80 {{\n delay_loop 0.3\n connect_timeout 0.5\n retry 2\n delay_before_retry 0.2\n \
         real_server 127.0.0.1 {pa} {{\n  TCP_CHECK {{\n  }}\n }}\n \
         real_server 127.0.0.1 {pb} {{\n  inhibit_on_failure\n  TCP_CHECK {{\n  }}\n }}\n}}\n"
    );
    let cfg = rvs_keepalived::parse_str(&text).expect("valid").config;
    let (tx, rx) = mpsc::channel();
    let h = Health::start(
        cfg,
        Box::new(move |d: &Desired| {
            let _ = tx.send(d.clone());
            Ok(())
        }),
    )
    .expect("start");
    let first = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("initial configuration");
    assert_eq!(
        ports(&first),
        [(pa, 1), (pb, 1)],
        "everything in before the first check"
    );

    // Stop server a: removed. Bound: delay_loop + connect_timeout + retry x (delay_before_retry +
    // connect_timeout) = 0.3 + 0.5 + 2 x 0.7 = 2.2 s; generous slack for a loaded machine.
    let t = Instant::now();
    drop(a);
    wait_for(
        &rx,
        Duration::from_secs(15),
        "removal of the stopped server",
        |d| ports(d) == [(pb, 1)],
    );
    let took = t.elapsed();
    eprintln!("stopped server removed after {took:?} (bound 2.2 s on an idle machine)");

    let st = h.status();
    let rs = &st[0].real_servers[0];
    assert_eq!(
        (rs.state.as_str(), rs.weight, rs.last_result.as_str()),
        ("down", None, "failure")
    );
    assert!(rs.reason.contains("connection refused"), "{}", rs.reason);
    assert!(rs.changed_unix_ms > 0);
    assert_eq!(st[0].real_servers[1].state, "up");

    // Stop b: inhibited (weight 0), not removed.
    drop(b);
    wait_for(&rx, Duration::from_secs(15), "inhibit of b", |d| {
        ports(d) == [(pb, 0)]
    });

    // a comes back: one success is enough.
    let a2 = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], pa))).expect("rebind a");
    wait_for(&rx, Duration::from_secs(15), "recovery of a", |d| {
        ports(d) == [(pa, 1), (pb, 0)]
    });

    // A reload that removes b and adds nothing keeps a's state (no flap back to the initial state).
    let text2 = format!(
        "virtual_server 10.0.0.1 80 {{\n delay_loop 0.3\n connect_timeout 0.5\n retry 2\n delay_before_retry 0.2\n \
         real_server 127.0.0.1 {pa} {{\n  TCP_CHECK {{\n  }}\n }}\n}}\n"
    );
    h.reload(rvs_keepalived::parse_str(&text2).expect("valid").config)
        .expect("reload");
    wait_for(&rx, Duration::from_secs(5), "reloaded configuration", |d| {
        ports(d) == [(pa, 1)]
    });
    assert_eq!(h.status()[0].real_servers.len(), 1);
    h.stop();
    drop(a2);
}

/// The scheduling policy (field 41 of /proc/PID/task/TID/stat) of this process's thread named `name`.
fn thread_policy(name: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // Fields after the command's closing parenthesis start at field 3 (state).
        let after = stat.rsplit_once(')')?.1;
        return after.split_whitespace().nth(41 - 3)?.parse().ok();
    }
    None
}

#[test]
fn the_checker_thread_runs_under_sched_idle() {
    let cfg = rvs_keepalived::parse_str(
        "virtual_server 10.0.0.1 80 {\n delay_loop 60\n real_server 127.0.0.1 9 {\n  TCP_CHECK {\n  }\n }\n}\n",
    )
    .expect("valid")
    .config;
    let h = Health::start(cfg, Box::new(|_: &Desired| Ok(()))).expect("start");
    // The thread sets its policy first thing; give it a moment on a loaded machine.
    let end = Instant::now() + Duration::from_secs(10);
    let mut policy = None;
    while Instant::now() < end {
        policy = thread_policy("rvsd-health");
        if policy == Some(libc_sched_idle()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    h.stop();
    assert_eq!(
        policy,
        Some(libc_sched_idle()),
        "rvsd-health must run under SCHED_IDLE (5), found {policy:?}"
    );
}

/// SCHED_IDLE in linux/sched.h.
fn libc_sched_idle() -> u32 {
    5
}
