//! High availability end to end: two directors on the same public and private networks, IPVS
//! connection sync between their rvsd (both ways), and a connection that survives `kill -9` of
//! the director it went through.
//!
//! Until VRRP moves the addresses, the test moves them itself: the client's neighbour entry for
//! the VIP and the real servers' default route are pointed at the surviving director (what a
//! gratuitous ARP and the VRRP gateway address do).

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::time::{Duration, Instant};

use rvs_lab::client::HttpConn;
use rvs_lab::lab::{self, Lab, LabConfig};
use rvs_lab::testing;

const SVC: &str = "198.51.100.100:80";

fn two_directors(test: &str) -> Option<Lab> {
    if !testing::lab_available(test) {
        return None;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        real_servers: 2,
        directors: 2,
        rvsd_directors: 2,
        ..LabConfig::unique("ha")
    };
    match Lab::up(cfg) {
        Ok(l) => Some(l),
        Err(e) => panic!("{test}: building the lab failed: {e}"),
    }
}

/// The MAC address of `ifname` in namespace `ns`.
fn mac(lab: &Lab, ns: &str, ifname: &str) -> String {
    let out = lab.ip(ns, &["-j", "link", "show", ifname]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap().to_owned()
}

/// Points the client's VIP and the real servers' gateway at director `k`.
fn steer_to(lab: &Lab, k: usize, real_servers: usize) {
    let m = mac(lab, &lab.director_n(k), lab::PUBLIC_IF);
    let vip = lab::VIP.to_string();
    lab.ip(
        &lab.client(),
        &[
            "neigh",
            "replace",
            &vip,
            "lladdr",
            &m,
            "dev",
            lab::HOST_IF,
            "nud",
            "permanent",
        ],
    )
    .unwrap();
    let gw = lab::dip(k).to_string();
    for i in 1..=real_servers {
        lab.ip(&lab.rs(i), &["route", "replace", "default", "via", &gw])
            .unwrap();
    }
}

fn service(lab: &Lab, k: usize) {
    lab.rvsadm_in(k, &["-A", "-t", SVC, "-s", "rr"]).unwrap();
    for i in 1..=2 {
        let rs = format!("{}:80", lab::rip(i));
        lab.rvsadm_in(k, &["-a", "-t", SVC, "-r", &rs, "-m"])
            .unwrap();
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sync_daemons_and_a_connection_surviving_kill_9() {
    let Some(mut lab) = two_directors("sync_daemons_and_a_connection_surviving_kill_9") else {
        return;
    };
    for k in 1..=2 {
        service(&lab, k);
        // Master and backup at once, on both directors: sync both ways.
        for state in ["master", "backup"] {
            lab.rvsadm_in(
                k,
                &[
                    "--start-daemon",
                    state,
                    "--mcast-interface",
                    lab::PRIVATE_IF,
                ],
            )
            .unwrap();
        }
    }
    // ipvsadm's errors and listing.
    let again = lab
        .rvsadm_output_in(
            1,
            &["--start-daemon", "master", "--mcast-interface", "priv0"],
        )
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("Daemon has already run"),
        "{again:?}"
    );
    let bad_if = lab
        .rvsadm_output_in(
            1,
            &["--start-daemon", "backup", "--mcast-interface", "nosuch0"],
        )
        .unwrap();
    assert!(!bad_if.status.success());
    assert_eq!(
        lab.rvsadm_in(1, &["-L", "--daemon"]).unwrap(),
        "master sync daemon (mcast=priv0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
         backup sync daemon (mcast=priv0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );

    // A keep-alive HTTP connection through director 1.
    steer_to(&lab, 1, 2);
    let (mut conn, first, local) = lab
        .in_client(|| {
            let mut c = HttpConn::connect(lab::vip(80), Duration::from_secs(5))?;
            let r = c.get(false)?;
            let local = c.local_addr()?;
            Ok((c, r.who()?.0, local))
        })
        .unwrap();
    let needle = format!("{}:{}", local.ip(), local.port());
    // Director 2 learns it by sync (same real server, ESTABLISHED).
    wait_for(
        "the connection on director 2",
        Duration::from_secs(10),
        || {
            let l = lab.rvsadm_in(2, &["-L", "-c", "-n"]).unwrap();
            l.lines()
                .any(|x| x.contains(&needle) && x.contains("ESTABLISHED"))
        },
    );
    let l2 = lab.rvsadm_in(2, &["-L", "-c", "-n"]).unwrap();
    let line = l2.lines().find(|x| x.contains(&needle)).unwrap().to_owned();
    let rs_ip = if first == "rs1" {
        lab::rip(1)
    } else {
        lab::rip(2)
    };
    assert!(line.contains(&format!("{rs_ip}:80")), "{line}");

    // kill -9 director 1's rvsd; the addresses move to director 2.
    lab.crash_rvsd_in(1).unwrap();
    let t = Instant::now();
    steer_to(&lab, 2, 2);
    let r = conn
        .get(false)
        .expect("the connection survives the failover");
    let stall = t.elapsed();
    assert_eq!(r.who().unwrap().0, first, "same real server after failover");
    eprintln!("failover (sync only, addresses moved by the test): {stall:?}");
    // Director 2 forwarded it (its counters), and stopping its daemons works once.
    let stats = lab.rvsadm_in(2, &["-L", "-n", "--stats"]).unwrap();
    assert!(stats.contains(SVC.split(':').next().unwrap()), "{stats}");
    lab.rvsadm_in(2, &["--stop-daemon", "backup"]).unwrap();
    let twice = lab
        .rvsadm_output_in(2, &["--stop-daemon", "backup"])
        .unwrap();
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("No daemon is running"),
        "{twice:?}"
    );
    lab.down().unwrap();
}
