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

fn ha_lab(test: &str, vrrp: &str) -> Option<Lab> {
    if !testing::lab_available(test) {
        return None;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        real_servers: 2,
        directors: 2,
        rvsd_directors: 2,
        ha: true,
        ha_vrrp: vrrp.into(),
        ..LabConfig::unique("hv")
    };
    match Lab::up(cfg) {
        Ok(l) => Some(l),
        Err(e) => panic!("{test}: building the lab failed: {e}"),
    }
}

/// The VRRP state director `k` logged last for `instance`.
fn vrrp_state(lab: &Lab, k: usize, instance: &str) -> Option<String> {
    let raw = std::fs::read_to_string(lab.rvsd_log_in(k)).unwrap_or_default();
    // Without the terminal colours.
    let mut log = String::with_capacity(raw.len());
    let mut esc = false;
    for c in raw.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => log.push(c),
        }
    }
    log.lines()
        .rfind(|l| l.contains("VRRP state change") && l.contains(instance))
        .and_then(|l| l.split("to=").nth(1))
        .map(|r| {
            r.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_owned()
        })
}

/// One request on the session; the time it took, or the error.
fn ping(conn: &mut HttpConn) -> Result<(String, Duration), String> {
    let t = Instant::now();
    let r = conn.get(false).map_err(|e| e.to_string())?;
    Ok((r.who().map_err(|e| e.to_string())?.0, t.elapsed()))
}

#[test]
fn vrrp_failover_and_failback_keep_sessions_on_their_real_servers() {
    // VRRP v3 at 0.3 s: master down interval of the backup (priority 100) = 0.9 s + 0.18 s skew.
    let Some(mut lab) = ha_lab(
        "vrrp_failover_and_failback_keep_sessions_on_their_real_servers",
        "version=3,advert-int=0.3,preempt-delay=12",
    ) else {
        return;
    };
    let master_down = Duration::from_millis(900 + 180);
    for k in 1..=2 {
        service(&lab, k);
        lab.rvsadm_in(k, &["-A", "-u", "198.51.100.100:53", "-s", "rr"])
            .unwrap();
        for i in 1..=2 {
            let rs = format!("{}:53", lab::rip(i));
            lab.rvsadm_in(k, &["-a", "-u", "198.51.100.100:53", "-r", &rs, "-m"])
                .unwrap();
        }
    }
    let t = Instant::now();
    while vrrp_state(&lab, 1, "VI_PUBLIC").as_deref() != Some("MASTER")
        || vrrp_state(&lab, 1, "VI_GATEWAY").as_deref() != Some("MASTER")
    {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "director 1 never master; its log:\n{}\ndirector 2:\n{}",
            lab.rvsd_log_text_in(1),
            lab.rvsd_log_text_in(2)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(vrrp_state(&lab, 2, "VI_PUBLIC").as_deref(), Some("BACKUP"));
    // The backup does not answer for the VIP: no proxy neighbour there.
    let proxy2 = lab
        .ip(&lab.director_n(2), &["neigh", "show", "proxy"])
        .unwrap();
    assert!(!proxy2.contains(&lab::VIP.to_string()), "{proxy2}");
    let proxy1 = lab
        .ip(&lab.director_n(1), &["neigh", "show", "proxy"])
        .unwrap();
    assert!(proxy1.contains(&lab::VIP.to_string()), "{proxy1}");

    // An interactive session and a UDP flow through director 1.
    let (mut conn, first) = lab
        .in_client(|| {
            let mut c = HttpConn::connect(lab::vip(80), Duration::from_secs(10))?;
            let r = c.get(false)?;
            Ok((c, r.who()?.0))
        })
        .unwrap();
    let udp = lab
        .in_client(|| {
            std::net::UdpSocket::bind("0.0.0.0:0").map_err(rvs_lab::LabError::io("udp bind"))
        })
        .unwrap();
    let uaddr: std::net::SocketAddr = "198.51.100.100:53".parse().unwrap();
    let (udp_rs, _, _) =
        rvs_lab::client::udp_query_on(&udp, uaddr, b"x", Duration::from_secs(2)).unwrap();
    // Wait for director 2 to hold both by sync.
    wait_for(
        "both flows synced to director 2",
        Duration::from_secs(10),
        || {
            let l = lab.rvsadm_in(2, &["-L", "-c", "-n"]).unwrap();
            l.contains("ESTABLISHED") && l.contains("UDP")
        },
    );

    // State and counters in `rvsadm --json -L --daemon`.
    let j: serde_json::Value =
        serde_json::from_str(&lab.rvsadm_in(2, &["--json", "-L", "--daemon"]).unwrap()).unwrap();
    let vi = j["vrrp"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "VI_PUBLIC")
        .unwrap()
        .clone();
    assert_eq!(
        (vi["state"].as_str(), vi["vrid"].as_u64()),
        (Some("BACKUP"), Some(51))
    );
    let backup = j["sync"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "backup")
        .unwrap()
        .clone();
    let created = backup["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[0] == "created")
        .and_then(|c| c[1].as_u64())
        .unwrap();
    assert!(created >= 2, "{j}");
    assert_eq!(j["daemons"].as_array().map(Vec::len), Some(2));

    // kill -9 the master's rvsd while the session keeps talking.
    lab.crash_rvsd_in(1).unwrap();
    let killed = Instant::now();
    let mut worst = Duration::ZERO;
    let mut answers = 0;
    while killed.elapsed() < Duration::from_secs(4) || answers < 5 {
        let (who, took) = ping(&mut conn).expect("the session survives (no reset)");
        assert_eq!(who, first, "same real server after failover");
        worst = worst.max(took);
        answers += 1;
        std::thread::sleep(Duration::from_millis(20));
        assert!(killed.elapsed() < Duration::from_secs(30));
    }
    eprintln!(
        "failover: longest stall {worst:?} (master down interval {master_down:?}), director 2: {:?}",
        vrrp_state(&lab, 2, "VI_PUBLIC")
    );
    assert_eq!(vrrp_state(&lab, 2, "VI_PUBLIC").as_deref(), Some("MASTER"));
    assert!(
        worst < master_down + Duration::from_secs(1) + Duration::from_millis(600),
        "stall {worst:?}"
    );
    let (udp_after, _, _) =
        rvs_lab::client::udp_query_on(&udp, uaddr, b"y", Duration::from_secs(3)).unwrap();
    assert_eq!(udp_after, udp_rs, "the UDP flow keeps its real server");

    // Failback: director 1 comes back, learns the connections by sync (refresh) during its
    // preempt delay, then preempts; the session goes on without a reset.
    lab.start_rvsd_in(1).unwrap();
    for state in ["master", "backup"] {
        lab.rvsadm_in(
            1,
            &[
                "--start-daemon",
                state,
                "--mcast-interface",
                lab::PRIVATE_IF,
            ],
        )
        .unwrap();
    }
    let back = Instant::now();
    let mut worst_back = Duration::ZERO;
    while vrrp_state(&lab, 1, "VI_PUBLIC").as_deref() != Some("MASTER")
        || back.elapsed() < Duration::from_secs(14)
    {
        let (who, took) = ping(&mut conn).expect("the session survives failback");
        assert_eq!(who, first);
        worst_back = worst_back.max(took);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            back.elapsed() < Duration::from_secs(40),
            "director 1 never preempted"
        );
    }
    for _ in 0..10 {
        let (who, took) = ping(&mut conn).expect("the session survives failback");
        assert_eq!(who, first);
        worst_back = worst_back.max(took);
    }
    eprintln!("failback: longest stall {worst_back:?}");
    assert_eq!(vrrp_state(&lab, 2, "VI_PUBLIC").as_deref(), Some("BACKUP"));
    lab.down().unwrap();
}
