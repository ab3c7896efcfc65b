//! The check state machine on a fake clock: keepalived's retry/recovery timing, alpha, inhibit_on_failure,
//! misc_dynamic weights, quorum with hysteresis and the sorry server, state kept over a reload.

use std::time::Duration;

use rvs_health::state::{CheckId, Event, Monitor, Outcome, RsId};

fn s(x: u64) -> Duration {
    Duration::from_secs(x)
}

fn cfg(text: &str) -> rvs_keepalived::Config {
    rvs_keepalived::parse_str(text)
        .expect("valid config")
        .config
}

fn fail() -> Outcome {
    Outcome::Failure("connection refused".into())
}

fn ok() -> Outcome {
    Outcome::Success { weight: None }
}

const TWO: &str = "virtual_server 10.0.0.1 80 {\n delay_loop 10\n real_server 10.0.1.1 80 {\n  TCP_CHECK {\n   retry 2\n   delay_before_retry 3\n   warmup 0\n  }\n }\n real_server 10.0.1.2 80 {\n  inhibit_on_failure\n  TCP_CHECK {\n   warmup 0\n  }\n }\n}\n";

fn id(rs: usize) -> CheckId {
    CheckId {
        rs: RsId { vs: 0, rs },
        checker: 0,
    }
}

fn weights(m: &Monitor) -> Vec<(String, u32)> {
    m.desired().expect("desired")[0]
        .1
        .iter()
        .map(|d| (d.addr.to_string(), d.weight.get()))
        .collect()
}

#[test]
fn down_after_retry_plus_one_failures_up_after_one_success() {
    let mut m = Monitor::new(cfg(TWO), s(0), 1);
    assert_eq!(
        m.due(s(0)),
        vec![id(0), id(1)],
        "warmup 0: both due at once"
    );
    assert!(m.due(s(0)).is_empty(), "running checks are not due again");
    // Success: next check one delay_loop later.
    assert!(m.report(id(0), s(0), ok()).is_empty());
    assert_eq!(m.rs[0][0].checkers[0].next_at, Some(s(10)));
    // Failures 1 and 2 are retried after delay_before_retry; the third (retry + 1) takes it down.
    assert!(m.report(id(0), s(10), fail()).is_empty());
    assert_eq!(m.rs[0][0].checkers[0].next_at, Some(s(13)));
    assert!(m.report(id(0), s(13), fail()).is_empty());
    assert_eq!(m.rs[0][0].checkers[0].next_at, Some(s(16)));
    assert!(m.rs[0][0].alive);
    let ev = m.report(id(0), s(16), fail());
    assert!(
        ev.contains(&Event::RealServer {
            id: RsId { vs: 0, rs: 0 },
            alive: false,
            reason: "connection refused".into()
        }),
        "{ev:?}"
    );
    assert!(!m.rs[0][0].alive);
    assert_eq!(m.rs[0][0].changed_at, s(16));
    assert_eq!(
        m.rs[0][0].checkers[0].next_at,
        Some(s(26)),
        "down: checked every delay_loop"
    );
    assert_eq!(
        weights(&m),
        [("10.0.1.2".to_string(), 1)],
        "a failed server is removed"
    );
    // Further failures change nothing; one success brings it back.
    assert!(m.report(id(0), s(26), fail()).is_empty());
    let ev = m.report(id(0), s(36), ok());
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::RealServer { alive: true, .. })),
        "{ev:?}"
    );
    assert_eq!(weights(&m).len(), 2);
}

#[test]
fn retries_restart_after_a_success() {
    let mut m = Monitor::new(cfg(TWO), s(0), 1);
    m.due(s(0));
    m.report(id(0), s(0), fail());
    m.report(id(0), s(3), ok());
    m.report(id(0), s(13), fail());
    m.report(id(0), s(16), fail());
    assert!(
        m.rs[0][0].alive,
        "two failures after a success: still within retry 2"
    );
}

#[test]
fn inhibit_on_failure_keeps_weight_zero() {
    let mut m = Monitor::new(cfg(TWO), s(0), 1);
    m.due(s(0));
    m.report(id(1), s(0), fail());
    assert!(m.rs[0][1].alive, "retry 1: one failure is retried");
    m.report(id(1), s(1), fail());
    assert!(!m.rs[0][1].alive);
    assert_eq!(
        weights(&m),
        [("10.0.1.1".to_string(), 1), ("10.0.1.2".to_string(), 0)]
    );
}

#[test]
fn alpha_starts_down_until_a_success() {
    let c = cfg(
        "virtual_server 10.0.0.1 80 {\n alpha\n real_server 10.0.1.1 80 {\n  TCP_CHECK {\n   warmup 0\n  }\n }\n}\n",
    );
    let mut m = Monitor::new(c, s(0), 1);
    assert!(!m.rs[0][0].alive);
    assert!(weights(&m).is_empty());
    m.due(s(0));
    m.report(id(0), s(0), ok());
    assert_eq!(weights(&m), [("10.0.1.1".to_string(), 1)]);
}

#[test]
fn warmup_spreads_first_checks() {
    let mut text = String::from("virtual_server 10.0.0.1 80 {\n delay_loop 5\n");
    for i in 1..=50 {
        text.push_str(&format!(
            " real_server 10.0.1.{i} 80 {{\n  TCP_CHECK {{\n  }}\n }}\n"
        ));
    }
    text.push_str("}\n");
    let m = Monitor::new(cfg(&text), s(100), 7);
    let firsts: Vec<Duration> = m.rs[0]
        .iter()
        .map(|r| r.checkers[0].next_at.expect("scheduled"))
        .collect();
    assert!(
        firsts.iter().all(|t| *t >= s(100) && *t < s(105)),
        "within [now, now + warmup)"
    );
    let distinct: std::collections::BTreeSet<_> = firsts.iter().collect();
    assert!(distinct.len() > 40, "spread, not all at once");
}

#[test]
fn misc_dynamic_exit_code_sets_the_weight() {
    let c = cfg(
        "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n  weight 5\n  MISC_CHECK {\n   misc_path /bin/true\n   misc_dynamic\n   warmup 0\n  }\n }\n}\n",
    );
    let mut m = Monitor::new(c, s(0), 1);
    m.due(s(0));
    let ev = m.report(id(0), s(0), Outcome::Success { weight: Some(10) });
    assert!(
        ev.contains(&Event::Weight {
            id: RsId { vs: 0, rs: 0 },
            weight: 10
        }),
        "{ev:?}"
    );
    assert_eq!(weights(&m), [("10.0.1.1".to_string(), 10)]);
    m.report(id(0), s(60), Outcome::Success { weight: None });
    assert_eq!(
        weights(&m),
        [("10.0.1.1".to_string(), 5)],
        "exit 0: the configured weight"
    );
}

#[test]
fn quorum_loss_brings_the_sorry_server_hysteresis_dampens() {
    // Three servers of weight 1, quorum 2, hysteresis 1: lost below 1 (i.e. at 0), regained at 3.
    let c = cfg(
        "virtual_server 10.0.0.1 80 {\n quorum 2\n hysteresis 1\n sorry_server 10.0.9.9 80\n real_server 10.0.1.1 80 {\n  TCP_CHECK {\n   retry 0\n   warmup 0\n  }\n }\n real_server 10.0.1.2 80 {\n  TCP_CHECK {\n   retry 0\n   warmup 0\n  }\n }\n real_server 10.0.1.3 80 {\n  TCP_CHECK {\n   retry 0\n   warmup 0\n  }\n }\n}\n",
    );
    let mut m = Monitor::new(c, s(0), 1);
    assert!(m.vs[0].quorum_up);
    m.due(s(0));
    m.report(id(0), s(0), fail());
    m.report(id(1), s(0), fail());
    assert!(
        m.vs[0].quorum_up,
        "weight 1 is not below quorum - hysteresis = 1"
    );
    assert_eq!(weights(&m), [("10.0.1.3".to_string(), 1)]);
    let ev = m.report(id(2), s(0), fail());
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Quorum { up: false, .. })),
        "{ev:?}"
    );
    assert_eq!(
        weights(&m),
        [("10.0.9.9".to_string(), 1)],
        "the sorry server answers"
    );
    m.report(id(0), s(60), ok());
    m.report(id(1), s(60), ok());
    assert!(!m.vs[0].quorum_up, "weight 2 < quorum + hysteresis = 3");
    assert_eq!(
        weights(&m),
        [("10.0.9.9".to_string(), 1)],
        "alive servers stay out while the sorry server serves"
    );
    let ev = m.report(id(2), s(60), ok());
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Quorum { up: true, .. })),
        "{ev:?}"
    );
    assert_eq!(weights(&m).len(), 3, "real servers back, sorry server gone");
}

#[test]
fn sorry_server_inhibit_keeps_it_at_weight_zero() {
    let c = cfg(
        "virtual_server 10.0.0.1 80 {\n sorry_server 10.0.9.9 80\n sorry_server_inhibit\n real_server 10.0.1.1 80 {\n  TCP_CHECK {\n   retry 0\n   warmup 0\n  }\n }\n}\n",
    );
    let mut m = Monitor::new(c, s(0), 1);
    assert_eq!(
        weights(&m),
        [("10.0.1.1".to_string(), 1), ("10.0.9.9".to_string(), 0)]
    );
    m.due(s(0));
    m.report(id(0), s(0), fail());
    assert_eq!(weights(&m), [("10.0.9.9".to_string(), 1)]);
}

#[test]
fn no_checkers_always_alive_and_all_checkers_must_be_up() {
    let c = cfg(
        "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n }\n real_server 10.0.1.2 80 {\n  TCP_CHECK {\n   retry 0\n   warmup 0\n  }\n  HTTP_GET {\n   url {\n    path /\n   }\n   retry 0\n   warmup 0\n  }\n }\n}\n",
    );
    let mut m = Monitor::new(c, s(0), 1);
    let due = m.due(s(0));
    assert_eq!(due.len(), 2);
    m.report(due[0], s(0), ok());
    m.report(due[1], s(0), Outcome::Failure("HTTP status 500".into()));
    assert_eq!(weights(&m), [("10.0.1.1".to_string(), 1)]);
    assert_eq!(m.rs[0][1].reason, "HTTP status 500");
}

#[test]
fn a_reload_keeps_the_state_of_servers_checked_the_same_way() {
    let mut m = Monitor::new(cfg(TWO), s(0), 1);
    m.due(s(0));
    m.report(id(1), s(0), fail());
    m.report(id(1), s(1), fail());
    assert!(!m.rs[0][1].alive);
    // The new file adds a server and changes the first one's check; the failed one stays failed.
    let text = TWO.replace("retry 2", "retry 5").replace(
        " real_server 10.0.1.2 80 {",
        " real_server 10.0.1.3 80 {\n }\n real_server 10.0.1.2 80 {",
    );
    let n = Monitor::with_previous(cfg(&text), s(5), 2, Some(&m));
    assert!(!n.rs[0][2].alive, "unchanged server keeps its failed state");
    assert_eq!(n.rs[0][2].changed_at, s(1));
    assert!(n.rs[0][1].alive, "new server without checkers");
    assert_eq!(
        n.rs[0][0].checkers[0].next_at,
        Some(s(5)),
        "changed checker starts afresh (warmup 0)"
    );
}

fn many(n: usize, delay_loop: u64) -> rvs_keepalived::Config {
    let mut text = format!("virtual_server 10.0.0.1 80 {{\n delay_loop {delay_loop}\n");
    for i in 0..n {
        text.push_str(&format!(
            " real_server 10.{}.{}.{} 80 {{\n  weight {}\n  TCP_CHECK {{\n   retry 0\n  }}\n }}\n",
            1 + i / 65536,
            (i / 256) % 256,
            i % 256,
            1 + i % 10
        ));
    }
    text.push_str("}\n");
    cfg(&text)
}

#[test]
fn first_checks_are_evenly_spaced_over_the_warmup() {
    // 1,000 checkers, warmup = delay_loop = 5 s: 10 first checks in every 50 ms, not independent random draws
    // (which put 3 in some 50 ms and 18 in others, a clump that recurs every delay_loop).
    let m = Monitor::new(many(1000, 5), s(100), 7);
    let mut bins = [0u32; 100];
    let mut firsts = Vec::new();
    for r in &m.rs[0] {
        let t = r.checkers[0].next_at.expect("scheduled");
        assert!(t >= s(100) && t < s(105), "within [now, now + warmup)");
        bins[((t - s(100)).as_millis() / 50) as usize] += 1;
        firsts.push(t);
    }
    assert!(
        bins.iter().all(|&b| (9..=11).contains(&b)),
        "10 a bin: {bins:?}"
    );
    // Still random: another seed orders the checkers differently.
    let other = Monitor::new(many(1000, 5), s(100), 8);
    let moved = other.rs[0]
        .iter()
        .zip(&firsts)
        .filter(|(r, t)| r.checkers[0].next_at != Some(**t))
        .count();
    assert!(
        moved > 900,
        "only {moved} of 1000 first checks moved with the seed"
    );
}

#[test]
fn waiting_to_start_does_not_delay_the_next_round() {
    let mut m = Monitor::new(cfg(TWO), s(0), 1);
    assert_eq!(m.due(s(0)), vec![id(0), id(1)]);
    // Both were due at 0 and waited 4 s for the checker; each then took 100 ms. keepalived's interval (end of one
    // check to the start of the next, 10 s) counts from when it would have ended: 10.1 s, not 14.1 s.
    m.report_timed(
        id(0),
        s(4) + Duration::from_millis(100),
        Duration::from_millis(100),
        ok(),
    );
    assert_eq!(
        m.rs[0][0].checkers[0].next_at,
        Some(s(10) + Duration::from_millis(100))
    );
    // Far behind (30 s late): no burst of immediate re-checks, at most one a half delay_loop after it ended.
    m.report_timed(id(1), s(30), Duration::from_millis(100), ok());
    assert_eq!(m.rs[0][1].checkers[0].next_at, Some(s(35)));
    // Retries too: delay_before_retry (3 s) from the would-be end.
    assert_eq!(m.due(s(11)), vec![id(0)]);
    m.report_timed(id(0), s(12), Duration::from_millis(500), fail());
    assert_eq!(
        m.rs[0][0].checkers[0].next_at,
        Some(s(13) + Duration::from_millis(600))
    );
    // `report` (no duration known) is keepalived's rule from the end.
    assert_eq!(m.due(s(14)), vec![id(0)]);
    m.report(id(0), s(14), ok());
    assert_eq!(m.rs[0][0].checkers[0].next_at, Some(s(24)));
}

#[test]
fn live_weight_follows_every_change() {
    // 200 servers of weights 1..=10, each up or down at random; the live weight (kept as checks report) equals
    // the sum over the alive servers after every report.
    let mut m = Monitor::new(many(200, 5), s(0), 3);
    let brute = |m: &Monitor| -> u64 {
        m.rs[0]
            .iter()
            .zip(&m.config.virtual_servers[0].real_servers)
            .filter(|(st, _)| st.alive)
            .map(|(_, rs)| u64::from(rs.weight))
            .sum()
    };
    assert_eq!(m.live_weight(0), brute(&m));
    assert_eq!(
        m.live_weight(0),
        (0..200u64).map(|i| 1 + i % 10).sum::<u64>()
    );
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut downs = 0;
    for step in 0..2000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let r = (x % 200) as usize;
        let o = if x >> 40 & 1 == 0 { ok() } else { fail() };
        m.report(id(r), s(step), o);
        downs += usize::from(!m.rs[0][r].alive);
        assert_eq!(m.live_weight(0), brute(&m), "after step {step}");
    }
    assert!(downs > 100, "the sequence took servers down ({downs})");
}
