//! Scale-out: N directors behind the router's ECMP, each announcing the VIP over BGP with BIRD, the announcement
//! driven by rvs-announce from rvsd's health. Real BIRD, real rvsd, real kernel multipath routes.
//!
//! Needs root, namespaces, TUN and bird2: FAILS under CI=true without them, skips (printing why) otherwise.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::time::Duration;

use rvs_lab::lab::{self, Lab, LabConfig};
use rvs_lab::{bgp, testing};

const ROUTE_WAIT: Duration = Duration::from_secs(20);

fn ecmp_available(test: &str) -> bool {
    if !testing::lab_available(test) {
        return false;
    }
    if let Err(e) = bgp::bird_binary() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {e} (CI=true: this is a failure, not a skip)");
        }
        eprintln!("SKIPPED {test}: {e}");
        return false;
    }
    testing::reap_stale_test_labs();
    true
}

fn ecmp_lab(tag: &str, directors: usize, real_servers: usize) -> Lab {
    let cfg = LabConfig {
        real_servers,
        directors,
        rvsd_directors: directors,
        router: true,
        bgp: true,
        ..LabConfig::unique(tag)
    };
    Lab::up(cfg).unwrap_or_else(|e| panic!("building the ECMP lab: {e}"))
}

fn adm(lab: &Lab, k: usize, args: &[&str]) -> String {
    lab.rvsadm_in(k, args).unwrap_or_else(|e| {
        panic!(
            "director {k}: rvsadm {}: {e}\n{}",
            args.join(" "),
            lab.rvsd_log_text_in(k)
        )
    })
}

fn vip80() -> String {
    format!("{}:80", lab::VIP)
}

#[test]
fn the_vip_is_announced_only_while_rvsd_serves_it() {
    if !ecmp_available("announce_follows_health") {
        return;
    }
    let mut lab = ecmp_lab("bgp", 3, 2);
    // rvsd runs everywhere but serves no VIP yet: nothing is announced.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        lab.vip_next_hops().unwrap().is_empty(),
        "announced before any service exists"
    );
    for k in 1..=3 {
        adm(&lab, k, &["-A", "-t", &vip80(), "-s", "mh"]);
        adm(
            &lab,
            k,
            &[
                "-a",
                "-t",
                &vip80(),
                "-r",
                &format!("{}:80", lab::rip(1)),
                "-m",
            ],
        );
    }
    lab.wait_vip_next_hops(&[1, 2, 3], ROUTE_WAIT)
        .unwrap_or_else(|e| panic!("{e}\nannounce1: {}", lab.announce_log(1)));
    // Director 2's only real server fails its health check (weight 0): withdrawn; back: announced.
    adm(
        &lab,
        2,
        &[
            "-e",
            "-t",
            &vip80(),
            "-r",
            &format!("{}:80", lab::rip(1)),
            "-m",
            "-w",
            "0",
        ],
    );
    lab.wait_vip_next_hops(&[1, 3], ROUTE_WAIT).unwrap();
    adm(
        &lab,
        2,
        &[
            "-e",
            "-t",
            &vip80(),
            "-r",
            &format!("{}:80", lab::rip(1)),
            "-m",
            "-w",
            "1",
        ],
    );
    lab.wait_vip_next_hops(&[1, 2, 3], ROUTE_WAIT).unwrap();
    // rvsd 3 stops cleanly: withdrawn (rvs-announce sees no rvsd; BIRD sees its TUN go).
    let status = lab.stop_rvsd_in(3).unwrap();
    assert!(!status.contains("killed"), "{status}");
    lab.wait_vip_next_hops(&[1, 2], ROUTE_WAIT).unwrap();
    // rvsd 1 crashes (SIGKILL): withdrawn too.
    lab.crash_rvsd_in(1).unwrap();
    lab.wait_vip_next_hops(&[2], ROUTE_WAIT).unwrap();
    // rvsd 1 comes back with its saved rules: announced again.
    lab.start_rvsd_in(1).unwrap();
    lab.wait_vip_next_hops(&[1, 2], ROUTE_WAIT).unwrap();
    // Director 2 powered off (links gone, every process killed): BFD takes it out; revived: back in.
    lab.fail_director(2).unwrap();
    lab.wait_vip_next_hops(&[1], ROUTE_WAIT).unwrap();
    lab.revive_director(2).unwrap();
    lab.wait_vip_next_hops(&[1, 2], ROUTE_WAIT)
        .unwrap_or_else(|e| panic!("{e}\nannounce2: {}", lab.announce_log(2)));
    let names = lab.namespaces();
    lab.down().unwrap();
    assert!(names.iter().all(|n| !rvs_lab::netns::exists(n)));
}
