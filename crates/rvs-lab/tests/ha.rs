//! High availability end to end: two directors on the same public and private networks, IPVS
//! connection sync between their rvsd (both ways), and a connection that survives `kill -9` of
//! the director it went through.
//!
//! Until VRRP moves the addresses, the test moves them itself: the client's neighbour entry for
//! the VIP and the real servers' default route are pointed at the surviving director (what a
//! gratuitous ARP and the VRRP gateway address do).

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rvs_lab::client::{Connection, HttpConn};
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

/// A keep-alive session from the client to `vip`: the connection, the real server that answered its first GET,
/// and the client's own address of it.
fn session(lab: &Lab, vip: SocketAddr, timeout: Duration) -> (HttpConn, String, SocketAddr) {
    lab.in_client(move || {
        let mut c = HttpConn::connect(vip, timeout)?;
        let who = c.get(Connection::KeepAlive)?.who()?.0;
        let local = c.local_addr()?;
        Ok((c, who, local))
    })
    .unwrap_or_else(|e| panic!("a keep-alive session to {vip}: {e}"))
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
    let adm = |args: &[&str]| {
        if let Err(e) = lab.rvsadm_in(k, args) {
            panic!(
                "director {k}: rvsadm {}: {e}\nits log:\n{}",
                args.join(" "),
                lab.rvsd_log_text_in(k)
            );
        }
    };
    adm(&["-A", "-t", SVC, "-s", "rr"]);
    for i in 1..=2 {
        let rs = format!("{}:80", lab::rip(i));
        adm(&["-a", "-t", SVC, "-r", &rs, "-m"]);
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
        // Master and backup at once, on both directors: sync both ways (director 2's backup starts late,
        // below, to show it learns existing connections by refresh).
        for state in ["master", "backup"] {
            if (k, state) == (2, "backup") {
                continue;
            }
            start_sync(&lab, k, state);
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
    let (mut conn, first, local) = session(&lab, lab::vip(80), Duration::from_secs(5));
    let needle = format!("{}:{}", local.ip(), local.port());
    // Director 1's master has sent it once already; director 2's backup starts only now and learns it from the
    // refresh (every 10 s of activity, rvs-sync's ExportPolicy) while the session keeps talking.
    std::thread::sleep(Duration::from_millis(1500));
    let (took, _) = late_backup_learns(
        &lab,
        &mut conn,
        &needle,
        Duration::from_secs(20),
        Duration::from_millis(250),
        "a late backup never learnt the connection",
    );
    eprintln!("late backup learnt the connection after {took:?}");
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
        .get(Connection::KeepAlive)
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

/// An HA lab; its rvsd get `RVS_LAB_RVSD_ARGS` (the suite in another mode).
fn ha_lab(test: &str, vrrp: &str) -> Option<Lab> {
    ha_lab_with(test, vrrp, testing::extra_rvsd_args(), false)
}

/// An HA lab with these rvsd arguments; `unicast`: VRRP adverts unicast between the directors
/// ([`LabConfig::ha_unicast`]).
fn ha_lab_with(test: &str, vrrp: &str, rvsd_args: Vec<String>, unicast: bool) -> Option<Lab> {
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
        ha_unicast: unicast,
        rvsd_args,
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
    let named = format!("instance={instance} ");
    log.lines()
        .rfind(|l| l.contains("VRRP state change") && l.contains(&named))
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
/// Starts director `k`'s sync daemon `state` (`master` or `backup`) on the private interface.
fn start_sync(lab: &Lab, k: usize, state: &str) {
    testing::adm_in(
        lab,
        k,
        &[
            "--start-daemon",
            state,
            "--mcast-interface",
            lab::PRIVATE_IF,
        ],
    );
}

/// Starts director 2's backup sync daemon late (the session already runs) and keeps the session talking, one
/// request per `pause`, until director 2 lists its connection (`needle`) ESTABLISHED; panics with `what` after
/// `bound`. Returns how long that took and the requests sent meanwhile.
fn late_backup_learns(
    lab: &Lab,
    conn: &mut HttpConn,
    needle: &str,
    bound: Duration,
    pause: Duration,
    what: &str,
) -> (Duration, u64) {
    start_sync(lab, 2, "backup");
    let late = Instant::now();
    let mut requests = 0u64;
    loop {
        let l = lab.rvsadm_in(2, &["-L", "-c", "-n"]).unwrap();
        if l.lines()
            .any(|x| x.contains(needle) && x.contains("ESTABLISHED"))
        {
            return (late.elapsed(), requests);
        }
        assert!(late.elapsed() < bound, "{what}");
        ping(conn).expect("keep-alive request");
        requests += 1;
        std::thread::sleep(pause);
    }
}

fn ping(conn: &mut HttpConn) -> Result<(String, Duration), String> {
    let t = Instant::now();
    let r = conn.get(Connection::KeepAlive).map_err(|e| e.to_string())?;
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
    let (mut conn, first, _) = session(&lab, lab::vip(80), Duration::from_secs(10));
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

    // A large transfer in progress (an 8 MiB POST /echo written at about 2 MiB/s, so it spans the failover, then
    // echoed back): the bytes must come back identical.
    let big = lab
        .in_client(|| {
            std::net::TcpStream::connect_timeout(&lab::vip(80), Duration::from_secs(5))
                .map_err(rvs_lab::LabError::io("connecting the transfer"))
        })
        .unwrap();
    let transfer = std::thread::spawn(move || paced_echo(big, 8 << 20, 2 << 20));

    // kill -9 the master's rvsd while the session keeps talking.
    let retrans_before = lab.in_client(|| Ok(retrans_segs())).unwrap();
    std::thread::sleep(Duration::from_millis(500));
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
        worst < master_down + Duration::from_secs(1),
        "stall {worst:?}"
    );
    let (sent, took) = transfer
        .join()
        .unwrap()
        .expect("the transfer survives the failover");
    let retrans = lab.in_client(|| Ok(retrans_segs())).unwrap() - retrans_before;
    eprintln!(
        "transfer: {sent} bytes echoed back identical in {took:?}; client TCP segments retransmitted during the \
         failover (both connections): {retrans}"
    );
    let (udp_after, _, _) =
        rvs_lab::client::udp_query_on(&udp, uaddr, b"y", Duration::from_secs(3)).unwrap();
    assert_eq!(udp_after, udp_rs, "the UDP flow keeps its real server");

    // Failback: director 1 comes back, learns the connections by sync (refresh) during its
    // preempt delay, then preempts; the session goes on without a reset.
    lab.start_rvsd_in(1).unwrap();
    for state in ["master", "backup"] {
        start_sync(&lab, 1, state);
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

/// Waits until director 1 is master of every instance in `names` and director 2 backup.
fn wait_master(lab: &Lab, names: &[&str]) {
    let t = Instant::now();
    while names
        .iter()
        .any(|n| vrrp_state(lab, 1, n).as_deref() != Some("MASTER"))
    {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "director 1 never master of {names:?}; its log:\n{}\ndirector 2:\n{}",
            lab.rvsd_log_text_in(1),
            lab.rvsd_log_text_in(2)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in names {
        assert_eq!(vrrp_state(lab, 2, n).as_deref(), Some("BACKUP"), "{n}");
    }
}

#[test]
fn ipv6_vrrp_failover_keeps_a_session() {
    // IPv6 instances (VRRP v3 from the link-local addresses) for VIP6 and the real servers' IPv6 gateway; a session
    // to [VIP6]:80 survives kill -9 of the master: the backup's unsolicited neighbour advertisements move the
    // client's and the real servers' neighbour entries (NUD alone would take 5 s and more).
    let Some(mut lab) = ha_lab(
        "ipv6_vrrp_failover_keeps_a_session",
        "version=3,advert-int=0.3,preempt-delay=12",
    ) else {
        return;
    };
    let master_down = Duration::from_millis(900 + 180);
    let svc6 = format!("[{}]:80", lab::VIP6);
    for k in 1..=2 {
        lab.rvsadm_in(k, &["-A", "-t", &svc6, "-s", "rr"]).unwrap();
        for i in 1..=2 {
            let rs = format!("[{}]:80", lab::rip6(i));
            lab.rvsadm_in(k, &["-a", "-t", &svc6, "-r", &rs, "-m"])
                .unwrap();
        }
    }
    wait_master(&lab, &["VI_PUBLIC6", "VI_GATEWAY6"]);
    let vip6 = lab::VIP6.to_string();
    let proxy = |lab: &Lab, k: usize| {
        lab.ip(&lab.director_n(k), &["-6", "neigh", "show", "proxy"])
            .unwrap()
    };
    assert!(proxy(&lab, 1).contains(&vip6), "{}", proxy(&lab, 1));
    assert!(!proxy(&lab, 2).contains(&vip6), "{}", proxy(&lab, 2));
    // The gateway address lives on the master's private interface only.
    let gw6 = lab::HA_GATEWAY6.to_string();
    let has_gw = |lab: &Lab, k: usize| {
        lab.ip(
            &lab.director_n(k),
            &["-6", "addr", "show", "dev", lab::PRIVATE_IF],
        )
        .unwrap()
        .contains(&gw6)
    };
    assert!(has_gw(&lab, 1) && !has_gw(&lab, 2));

    let (worst, retrans) = ipv6_session_across_a_master_crash(&mut lab);
    eprintln!(
        "IPv6 failover: longest stall {worst:?} (master down interval {master_down:?}), client TCP segments \
         retransmitted: {retrans}"
    );
    assert_eq!(vrrp_state(&lab, 2, "VI_PUBLIC6").as_deref(), Some("MASTER"));
    assert_eq!(
        vrrp_state(&lab, 2, "VI_GATEWAY6").as_deref(),
        Some("MASTER")
    );
    assert!(
        worst < master_down + Duration::from_secs(1),
        "stall {worst:?}"
    );
    assert!(proxy(&lab, 2).contains(&vip6), "{}", proxy(&lab, 2));
    assert!(has_gw(&lab, 2));
    // The client's neighbour entry for VIP6 now names director 2 (its unsolicited neighbour advertisement).
    let m2 = mac(&lab, &lab.director_n(2), lab::PUBLIC_IF);
    let n = lab
        .ip(&lab.client(), &["-6", "neigh", "show", &vip6])
        .unwrap();
    assert!(
        n.contains(&m2),
        "client's neighbour entry {n:?}, director 2 is {m2}"
    );
    lab.down().unwrap();
}

/// Opens an HTTP session to VIP6:80 from the client, waits until director 2 holds it (synced), kills director 1's
/// rvsd and keeps the session talking for at least 4 s: it must not reset and must stay on its real server.
/// Returns the longest stall and the client's TCP segments retransmitted meanwhile.
fn ipv6_session_across_a_master_crash(lab: &mut Lab) -> (Duration, i64) {
    let (mut conn, first, _) = session(lab, lab::vip6(80), Duration::from_secs(10));
    let needle = format!("{}", lab.cip6());
    wait_for(
        "the IPv6 session synced to director 2",
        Duration::from_secs(10),
        || {
            let l = lab.rvsadm_in(2, &["-L", "-c", "-n"]).unwrap();
            l.lines()
                .any(|x| x.contains(&needle) && x.contains("ESTABLISHED"))
        },
    );

    talk_across_a_master_crash(lab, &mut conn, &first)
}

/// Kills director 1's rvsd and keeps `conn` talking for at least 4 s: it must not reset and must stay on the real
/// server `first`. Returns the longest stall and the client's TCP segments retransmitted meanwhile.
fn talk_across_a_master_crash(lab: &mut Lab, conn: &mut HttpConn, first: &str) -> (Duration, i64) {
    let retrans_before = lab.in_client(|| Ok(retrans_segs())).unwrap();
    lab.crash_rvsd_in(1).unwrap();
    let killed = Instant::now();
    let mut worst = Duration::ZERO;
    let mut answers = 0;
    while killed.elapsed() < Duration::from_secs(4) || answers < 5 {
        let (who, took) = ping(conn).expect("the session survives (no reset)");
        assert_eq!(who, first, "same real server after failover");
        worst = worst.max(took);
        answers += 1;
        std::thread::sleep(Duration::from_millis(20));
        assert!(killed.elapsed() < Duration::from_secs(30));
    }
    let retrans = lab.in_client(|| Ok(retrans_segs())).unwrap() - retrans_before;
    (worst, retrans)
}

/// nftables in director `k`'s namespace counting IPv6 VRRP (protocol 112) both ways, and dropping what goes to or
/// comes from the VRRP group ff02::12: named counters `mcast_in`, `mcast_out`, `unicast_in`, `unicast_out`.
fn count_ipv6_vrrp_drop_multicast(lab: &Lab, k: usize) {
    let ruleset = "table ip6 rvs_vrrp_test {\n\
         counter mcast_in {}\n counter mcast_out {}\n counter unicast_in {}\n counter unicast_out {}\n\
         chain in { type filter hook input priority 0; policy accept;\n\
           meta l4proto 112 ip6 daddr ff02::12 counter name mcast_in drop\n\
           meta l4proto 112 counter name unicast_in\n }\n\
         chain out { type filter hook output priority 0; policy accept;\n\
           meta l4proto 112 ip6 daddr ff02::12 counter name mcast_out drop\n\
           meta l4proto 112 counter name unicast_out\n }\n}\n";
    lab.nft(&lab.director_n(k), &format!("vrrp{k}.nft"), ruleset)
        .unwrap_or_else(|e| panic!("nft: {e}"));
}

/// Packets counted so far by the named counter of [`count_ipv6_vrrp_drop_multicast`] in director `k`.
fn vrrp_counter(lab: &Lab, k: usize, name: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.director_n(k),
            "nft",
            "-j",
            "list",
            "counter",
        ])
        .args(["ip6", "rvs_vrrp_test", name])
        .output()
        .expect("nft");
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|x| x["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("no counter {name} in {v}"))
}

/// Director `k`'s transitions of `instance` so far (`rvsadm --json -L --daemon`).
fn vrrp_transitions(lab: &Lab, k: usize, instance: &str) -> u64 {
    let j: serde_json::Value =
        serde_json::from_str(&lab.rvsadm_in(k, &["--json", "-L", "--daemon"]).unwrap()).unwrap();
    j["vrrp"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == instance))
        .and_then(|v| v["transitions"].as_u64())
        .unwrap_or_else(|| panic!("no VRRP instance {instance} in {j}"))
}

#[test]
fn ipv6_vrrp_with_unicast_peers_fails_over() {
    // The IPv6 instances advertise to the other director's global address (unicast-src / unicast-peer, keepalived's
    // unicast_src_ip / unicast_peer), and nftables in both directors drops VRRP to ff02::12: the backup staying
    // backup, and its takeover after kill -9 of the master's rvsd, run on unicast adverts alone.
    let test = "ipv6_vrrp_with_unicast_peers_fails_over";
    let nft_ok = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !nft_ok && testing::lab_available(test) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: nft (nftables) is missing"
        );
        eprintln!("SKIPPED {test}: nft (nftables) is not installed");
        return;
    }
    let Some(mut lab) = ha_lab_with(
        test,
        "version=3,advert-int=0.3,preempt-delay=12",
        testing::extra_rvsd_args(),
        true,
    ) else {
        return;
    };
    let master_down = Duration::from_millis(900 + 180);
    let svc6 = format!("[{}]:80", lab::VIP6);
    for k in 1..=2 {
        count_ipv6_vrrp_drop_multicast(&lab, k);
        lab.rvsadm_in(k, &["-A", "-t", &svc6, "-s", "rr"]).unwrap();
        for i in 1..=2 {
            let rs = format!("[{}]:80", lab::rip6(i));
            lab.rvsadm_in(k, &["-a", "-t", &svc6, "-r", &rs, "-m"])
                .unwrap();
        }
    }
    wait_master(&lab, &["VI_PUBLIC6", "VI_GATEWAY6"]);
    // Three master down intervals with the group dropped: director 2 stays backup only because director 1's
    // unicast adverts reach it.
    let names = ["VI_PUBLIC6", "VI_GATEWAY6"];
    let before: Vec<u64> = names.iter().map(|n| vrrp_transitions(&lab, 2, n)).collect();
    std::thread::sleep(3 * master_down);
    let after: Vec<u64> = names.iter().map(|n| vrrp_transitions(&lab, 2, n)).collect();
    assert_eq!(
        before,
        after,
        "director 2 changed state with multicast VRRP dropped; its log:\n{}",
        lab.rvsd_log_text_in(2)
    );
    for n in names {
        assert_eq!(vrrp_state(&lab, 2, n).as_deref(), Some("BACKUP"), "{n}");
    }
    let heard = vrrp_counter(&lab, 2, "unicast_in");
    assert!(
        heard >= 6,
        "director 2 received {heard} unicast IPv6 adverts"
    );

    let (worst, retrans) = ipv6_session_across_a_master_crash(&mut lab);
    eprintln!(
        "IPv6 unicast VRRP failover: longest stall {worst:?} (master down interval {master_down:?}), client TCP \
         segments retransmitted: {retrans}"
    );
    for n in names {
        assert_eq!(vrrp_state(&lab, 2, n).as_deref(), Some("MASTER"), "{n}");
    }
    assert!(
        worst < master_down + Duration::from_secs(1),
        "stall {worst:?}"
    );
    // Nothing went to or came from the group; both directors sent unicast adverts (director 2's as master now).
    for k in 1..=2 {
        for c in ["mcast_in", "mcast_out"] {
            assert_eq!(vrrp_counter(&lab, k, c), 0, "director {k}: {c}");
        }
        let sent = vrrp_counter(&lab, k, "unicast_out");
        assert!(sent > 0, "director {k} sent no unicast IPv6 adverts");
    }
    let sent2 = vrrp_counter(&lab, 2, "unicast_out");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        vrrp_counter(&lab, 2, "unicast_out") > sent2,
        "director 2 as master sends unicast adverts"
    );
    let m2 = mac(&lab, &lab.director_n(2), lab::PUBLIC_IF);
    let n = lab
        .ip(
            &lab.client(),
            &["-6", "neigh", "show", &lab::VIP6.to_string()],
        )
        .unwrap();
    assert!(
        n.contains(&m2),
        "client's neighbour entry {n:?}, director 2 is {m2}"
    );
    lab.down().unwrap();
}

#[test]
fn sync_group_moves_the_nat_pair_as_one() {
    // The VIP (public side) and the real servers' gateway (private side) are one vrrp_sync_group: director 1's
    // private link going down puts its gateway instance in FAULT, and the group takes the VIP instance with it, so
    // director 2 holds both (a VIP on one director and the gateway on the other would send replies through a
    // director that has no NAT state for them). The link back: director 1 takes both back (preemption).
    let Some(lab) = ha_lab(
        "sync_group_moves_the_nat_pair_as_one",
        "version=3,advert-int=0.3",
    ) else {
        return;
    };
    for k in 1..=2 {
        service(&lab, k);
    }
    wait_master(&lab, &["VI_PUBLIC", "VI_GATEWAY"]);
    let d1 = lab.director_n(1);
    // The VIP is answered for (proxy neighbour), never a local address; the gateway is an address of priv0, put
    // back when something removes it (seen over rtnetlink: rvsd does not poll addresses).
    let pub_addrs = lab
        .ip(&d1, &["addr", "show", "dev", lab::PUBLIC_IF])
        .unwrap();
    assert!(
        !pub_addrs.contains(&format!("{}/", lab::VIP)),
        "{pub_addrs}"
    );
    let gw = format!("{}/32", lab::HA_GATEWAY);
    let has_gw = |lab: &Lab| {
        lab.ip(&d1, &["addr", "show", "dev", lab::PRIVATE_IF])
            .unwrap()
            .contains(&gw)
    };
    assert!(has_gw(&lab));
    lab.ip(&d1, &["addr", "del", &gw, "dev", lab::PRIVATE_IF])
        .unwrap();
    let removed = Instant::now();
    wait_for(
        "the gateway address back on director 1",
        Duration::from_secs(5),
        || has_gw(&lab),
    );
    eprintln!(
        "gateway address removed by hand: back after {:?}",
        removed.elapsed()
    );
    lab.ip(&d1, &["link", "set", lab::PRIVATE_IF, "down"])
        .unwrap();
    let down = Instant::now();
    wait_for("director 2 master of both", Duration::from_secs(5), || {
        vrrp_state(&lab, 2, "VI_PUBLIC").as_deref() == Some("MASTER")
            && vrrp_state(&lab, 2, "VI_GATEWAY").as_deref() == Some("MASTER")
    });
    let took = down.elapsed();
    eprintln!(
        "sync group: director 2 master of the VIP and the gateway {took:?} after director 1's private link went down"
    );
    assert_eq!(vrrp_state(&lab, 1, "VI_GATEWAY").as_deref(), Some("FAULT"));
    assert_eq!(
        vrrp_state(&lab, 1, "VI_PUBLIC").as_deref(),
        Some("FAULT"),
        "the VIP's instance follows its group (its own interface is up)"
    );
    // Director 1 no longer answers for the VIP; director 2 does, and serves a new connection.
    let proxy = |k: usize| {
        lab.ip(&lab.director_n(k), &["neigh", "show", "proxy"])
            .unwrap()
            .contains(&lab::VIP.to_string())
    };
    assert!(!proxy(1) && proxy(2));
    let who = lab
        .in_client(|| {
            let mut c = HttpConn::connect(lab::vip(80), Duration::from_secs(5))?;
            Ok(c.get(Connection::KeepAlive)?.who()?.0)
        })
        .unwrap();
    assert!(who.starts_with("rs"), "{who}");
    // The group notify line says when every member went over.
    let log = std::fs::read_to_string(lab.rvsd_log_in(2)).unwrap_or_default();
    assert!(
        log.contains("VRRP sync group state change"),
        "director 2's log"
    );

    lab.ip(&d1, &["link", "set", lab::PRIVATE_IF, "up"])
        .unwrap();
    wait_for(
        "director 1 master of both again",
        Duration::from_secs(8),
        || {
            vrrp_state(&lab, 1, "VI_PUBLIC").as_deref() == Some("MASTER")
                && vrrp_state(&lab, 1, "VI_GATEWAY").as_deref() == Some("MASTER")
        },
    );
    wait_for("director 2 backup of both", Duration::from_secs(3), || {
        vrrp_state(&lab, 2, "VI_PUBLIC").as_deref() == Some("BACKUP")
            && vrrp_state(&lab, 2, "VI_GATEWAY").as_deref() == Some("BACKUP")
    });
    lab.down().unwrap();
}

/// Director `k`'s effective priority of `instance`, from `rvsadm --json -L --daemon`.
fn vrrp_priority(lab: &Lab, k: usize, instance: &str) -> Option<u64> {
    let j: serde_json::Value =
        serde_json::from_str(&lab.rvsadm_in(k, &["--json", "-L", "--daemon"]).ok()?).ok()?;
    j["vrrp"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == instance)?["priority"]
        .as_u64()
}

#[test]
fn a_failing_vrrp_script_lowers_the_priority_and_moves_the_vip() {
    // Director 1 reads keepalived.conf: VI_1 at priority 150 tracks a vrrp_script (weight -60, rise 2, fall 2)
    // that succeeds while a flag file exists; director 2 runs VI_1 at priority 100 from --vrrp. The script failing
    // takes director 1 to 90: director 2 preempts. The script back: director 1 at 150 preempts again.
    let test = "a_failing_vrrp_script_lowers_the_priority_and_moves_the_vip";
    if !testing::lab_available(test) {
        return;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        real_servers: 1,
        directors: 2,
        rvsd: false,
        rvsd_directors: 0,
        ..LabConfig::unique("hs")
    };
    let mut lab = match Lab::up(cfg) {
        Ok(l) => l,
        Err(e) => panic!("{test}: building the lab failed: {e}"),
    };
    let flag = lab.state_dir.join("healthy");
    std::fs::write(&flag, b"").unwrap();
    // The configuration comes through a FIFO written once: rvsd must read the file once at start (VRRP, LVS and
    // checks from one read; a second read would wait for a writer that never comes, and rvsd would not start).
    let conf = lab.state_dir.join("keepalived.conf");
    let made = std::process::Command::new("mkfifo")
        .arg(&conf)
        .status()
        .unwrap();
    assert!(made.success());
    let text = format!(
        "vrrp_script chk {{\n  script \"test -e {flag}\"\n  interval 0.5\n  weight -60\n  rise 2\n  fall 2\n}}\n\
             vrrp_instance VI_1 {{\n  interface {pub_if}\n  virtual_router_id 51\n  priority 150\n  version 3\n  \
             advert_int 0.3\n  virtual_ipaddress {{\n    {vip}\n  }}\n  track_script {{\n    chk\n  }}\n}}\n",
        flag = flag.display(),
        pub_if = lab::PUBLIC_IF,
        vip = lab::VIP
    );
    let fifo = conf.clone();
    let writer = std::thread::spawn(move || std::fs::write(fifo, text));
    lab.cfg.rvsd_args = vec!["--keepalived".into(), conf.display().to_string()];
    lab.start_rvsd_in(1).unwrap();
    writer.join().unwrap().unwrap();
    lab.cfg.rvsd_args = vec![
        "--vrrp".into(),
        format!(
            "name=VI_1,interface={},vrid=51,priority=100,address={},version=3,advert-int=0.3",
            lab::PUBLIC_IF,
            lab::VIP
        ),
    ];
    lab.start_rvsd_in(2).unwrap();
    let state = |lab: &Lab, k| vrrp_state(lab, k, "VI_1");
    wait_for("director 1 master at 150", Duration::from_secs(10), || {
        state(&lab, 1).as_deref() == Some("MASTER") && vrrp_priority(&lab, 1, "VI_1") == Some(150)
    });
    wait_for("director 2 backup", Duration::from_secs(3), || {
        state(&lab, 2).as_deref() == Some("BACKUP")
    });

    std::fs::remove_file(&flag).unwrap();
    let failed = Instant::now();
    wait_for("director 2 master", Duration::from_secs(10), || {
        state(&lab, 2).as_deref() == Some("MASTER")
    });
    eprintln!(
        "script failing -> director 2 master after {:?} (fall 2 x 0.5 s, then the master-down interval)",
        failed.elapsed()
    );
    assert_eq!(vrrp_priority(&lab, 1, "VI_1"), Some(90));
    wait_for("director 1 backup", Duration::from_secs(3), || {
        state(&lab, 1).as_deref() == Some("BACKUP")
    });

    std::fs::write(&flag, b"").unwrap();
    wait_for("director 1 master again", Duration::from_secs(10), || {
        state(&lab, 1).as_deref() == Some("MASTER")
    });
    assert_eq!(vrrp_priority(&lab, 1, "VI_1"), Some(150));
    wait_for("director 2 backup again", Duration::from_secs(3), || {
        state(&lab, 2).as_deref() == Some("BACKUP")
    });
    lab.down().unwrap();
}

/// Packets that reached director `k`'s TUN (rvsd's slow path) so far.
fn tun_packets(lab: &Lab, k: usize) -> u64 {
    lab.ip(&lab.director_n(k), &["-j", "-s", "link", "show", "rvs0"])
        .ok()
        .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
        .and_then(|v| v[0]["stats64"]["tx"]["packets"].as_u64())
        .unwrap_or(0)
}

#[test]
fn with_the_xdp_fast_path_sync_refreshes_and_failover_keeps_sessions() {
    // --fast-path xdp on both directors: the session's packets are forwarded by XDP, never seen by the core, yet the
    // core's last-seen is credited from the fast path (once a second), so the master's sync refreshes the
    // connection: a backup started late learns it while only XDP forwards it. Then kill -9 of the master: the
    // session continues through director 2, whose fast path takes it over too.
    let Some(mut lab) = ha_lab_with(
        "with_the_xdp_fast_path_sync_refreshes_and_failover_keeps_sessions",
        "version=3,advert-int=0.3,preempt-delay=12",
        vec!["--fast-path".into(), "xdp".into()],
        false,
    ) else {
        return;
    };
    let master_down = Duration::from_millis(900 + 180);
    for k in 1..=2 {
        assert!(
            lab.rvsd_log_text_in(k).contains("XDP fast path attached"),
            "director {k}: {}",
            lab.rvsd_log_text_in(k)
        );
        service(&lab, k);
    }
    wait_master(&lab, &["VI_PUBLIC", "VI_GATEWAY"]);
    // Director 2's backup daemon starts late, below.
    lab.rvsadm_in(2, &["--stop-daemon", "backup"]).unwrap();
    let (mut conn, first, local) = session(&lab, lab::vip(80), Duration::from_secs(10));
    let needle = format!("{}:{}", local.ip(), local.port());
    std::thread::sleep(Duration::from_millis(500));
    let tun_before = tun_packets(&lab, 1);
    for _ in 0..100 {
        ping(&mut conn).expect("keep-alive request");
    }
    let slow = tun_packets(&lab, 1) - tun_before;
    assert!(
        slow < 50,
        "{slow} packets of 100 keep-alive requests went through director 1's TUN"
    );
    let tun_late = tun_packets(&lab, 1);
    let (took, requests) = late_backup_learns(
        &lab,
        &mut conn,
        &needle,
        Duration::from_secs(25),
        Duration::from_millis(100),
        "a late backup never learnt a connection the fast path forwards",
    );
    let slow_late = tun_packets(&lab, 1) - tun_late;
    eprintln!(
        "XDP: the late backup learnt the connection after {took:?} ({requests} requests, {slow_late} packets \
         through director 1's TUN meanwhile)"
    );
    assert!(
        slow_late < requests,
        "the requests went through the slow path ({slow_late} TUN packets for {requests} requests)"
    );

    let (worst, retrans) = talk_across_a_master_crash(&mut lab, &mut conn, &first);
    eprintln!(
        "XDP failover: longest stall {worst:?} (master down interval {master_down:?}), client TCP segments \
         retransmitted: {retrans}"
    );
    assert_eq!(vrrp_state(&lab, 2, "VI_PUBLIC").as_deref(), Some("MASTER"));
    assert!(
        worst < master_down + Duration::from_secs(1),
        "stall {worst:?}"
    );
    // Director 2's fast path serves the synced connection after the takeover.
    std::thread::sleep(Duration::from_millis(500));
    let tun2 = tun_packets(&lab, 2);
    for _ in 0..100 {
        ping(&mut conn).expect("keep-alive request after failover");
    }
    let slow2 = tun_packets(&lab, 2) - tun2;
    eprintln!("XDP: {slow2} packets of 100 requests through director 2's TUN after the takeover");
    assert!(
        slow2 < 50,
        "{slow2} packets of 100 requests went through director 2's TUN"
    );
    lab.down().unwrap();
}

/// Sends `len` bytes of a pattern as `POST /echo` at about `rate` bytes/s, reads the echo and checks it is
/// identical. Returns the bytes and the time taken.
fn paced_echo(
    mut s: std::net::TcpStream,
    len: usize,
    rate: usize,
) -> Result<(usize, Duration), String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let body: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: rvs-lab\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    let chunk = 64 << 10;
    for (i, c) in body.chunks(chunk).enumerate() {
        s.write_all(c).map_err(|e| format!("writing: {e}"))?;
        let due = Duration::from_secs_f64(((i + 1) * chunk) as f64 / rate as f64);
        if let Some(w) = due.checked_sub(t.elapsed()) {
            std::thread::sleep(w);
        }
    }
    let mut r = BufReader::new(s);
    let mut clen = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line)
            .map_err(|e| format!("reading: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            clen = v.trim().parse::<usize>().ok();
        }
    }
    let n = clen.ok_or("no content-length")?;
    let mut got = vec![0u8; n];
    r.read_exact(&mut got)
        .map_err(|e| format!("reading the echo: {e}"))?;
    if got != body {
        return Err(format!("echo differs ({n} bytes back of {len})"));
    }
    Ok((len, t.elapsed()))
}

/// The calling thread's network namespace's TCP RetransSegs (/proc/net/snmp).
fn retrans_segs() -> i64 {
    let t = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default();
    let mut tcp = t.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RetransSegs")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
