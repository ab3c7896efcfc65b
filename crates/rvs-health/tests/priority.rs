//! `Options::priority` is applied by the checker thread itself. A test binary of its own: the thread is found by
//! name, and the other tests' engines would have threads of the same name.

use std::time::{Duration, Instant};

use rvs_health::engine::{Desired, Health, Options, Priority, set_thread_priority};

/// The scheduling policy (field 41 of /proc/PID/task/TID/stat) of this process's threads named `name`.
fn policies(name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/task")
        .expect("/proc")
        .flatten()
    {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis start at field 3 (state).
        if let Some(p) = stat
            .rsplit_once(')')
            .and_then(|(_, a)| a.split_whitespace().nth(41 - 3)?.parse().ok())
        {
            out.push(p);
        }
    }
    out
}

#[test]
fn normal_priority_is_set_even_when_inherited_idle() {
    // The creating thread is put under SCHED_IDLE (allowed unprivileged), so the checker thread inherits it and
    // shows SCHED_OTHER (0) only if it sets the asked-for policy itself.
    set_thread_priority(Priority::Idle).expect("SCHED_IDLE for the test thread");
    let cfg = rvs_keepalived::parse_str(
        "virtual_server 10.0.0.1 80 {\n delay_loop 60\n real_server 127.0.0.1 9 {\n  TCP_CHECK {\n  }\n }\n}\n",
    )
    .expect("valid")
    .config;
    let h = Health::start_with(
        cfg,
        Box::new(|_: &Desired| Ok(())),
        Options {
            priority: Priority::Normal,
            ..Options::default()
        },
    )
    .expect("start");
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < end {
        seen = policies("rvsd-health");
        if seen == [0] {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    h.stop();
    assert_eq!(
        seen,
        [0],
        "the checker thread must switch to SCHED_OTHER (0) with Priority::Normal (SCHED_IDLE is 5)"
    );
}
