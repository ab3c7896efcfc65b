//! `rvs-lab million`'s bounded version (issue 15): a few thousand TCP connections through rvsd, opened slowly from
//! sources all over 198.18.0.0/15, held idle, then each used once, then reset. The full run (a million, a release
//! rvsd) is a command: `rvs-lab million` (RELIABILITY.md). `RVS_MILLION_CONNS` sets the count here.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::time::Duration;

use rvs_lab::million::{self, MillionOptions};
use rvs_lab::{LabConfig, testing};

#[test]
fn thousands_of_connections_held_idle_then_used_and_drained() {
    if !testing::lab_available("million") {
        return;
    }
    testing::reap_stale_test_labs();
    let conns: u64 = std::env::var("RVS_MILLION_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let opts = MillionOptions {
        conns,
        real_servers: 2,
        openers: 2,
        rate: 2000,
        window: 1000,
        use_rate: 4000,
        idle: Duration::from_secs(3),
        phase: Duration::from_secs(120),
        ..MillionOptions::default()
    };
    let cfg = LabConfig {
        rvsd_args: testing::extra_rvsd_args(),
        ..LabConfig::unique("m")
    };
    let r = million::run(&opts, cfg).unwrap();
    eprintln!("{r}");
    // Every connection opened, is one table entry, and is still there after the idle time.
    assert_eq!((r.opened, r.open_failed), (conns, 0), "{r}");
    assert_eq!(r.entries_held, conns, "one table entry a connection:\n{r}");
    assert_eq!(
        r.entries_after_idle, conns,
        "nothing expired or dropped while idle:\n{r}"
    );
    // Listing and stats answer with the table full; -c lists every entry (two header lines).
    for l in &r.listings {
        assert!(l.ok, "rvsadm {} failed with the table full:\n{r}", l.args);
    }
    let c = r.listings.iter().find(|l| l.args.ends_with("-c")).unwrap();
    assert_eq!(
        c.lines as u64,
        conns + 2,
        "-L -n -c lists every connection:\n{r}"
    );
    // Every connection, used after the idle time, reached a real server that saw the client's own address and
    // port (checked by the opener), spread by rr.
    assert_eq!((r.used_ok, r.used_bad, r.unanswered), (conns, 0, 0), "{r}");
    for rs in ["rs1=", "rs2="] {
        let n: u64 = r
            .by_server
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(rs))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(
            n >= conns / 3,
            "rr spreads the connections: {}\n{r}",
            r.by_server
        );
    }
    // The resets put every entry in CLOSE (10 s); expiry empties the table close to that.
    let drain = r.drain_secs.unwrap_or(f64::INFINITY);
    assert!(
        (9.0..=25.0).contains(&drain),
        "the table drains after the resets in about CLOSE's 10 s, took {drain} s:\n{r}"
    );
    // rvsd's memory: no per-connection buffer (the slab's first chunks dominate at this size; RELIABILITY.md has
    // the figure at a million).
    let grown = r.rss_held_kib.saturating_sub(r.rss_before_kib) * 1024;
    assert!(
        grown <= 16 * 1024 * 1024 + conns * 512,
        "rvsd grew {grown} bytes for {conns} connections:\n{r}"
    );
    assert_eq!(r.drops, "none", "no packet dropped by rvsd:\n{r}");
}
