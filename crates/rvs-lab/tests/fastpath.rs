//! End-to-end through rvsd's XDP fast path (`--fast-path xdp`): flows move to the fast path once established and
//! come back for FIN; the counters users see agree with the traffic; the fallback when XDP cannot be used; nothing
//! attached after rvsd stops or crashes. One lab per test (unique names).
//!
//! Needs root, namespaces and BPF: FAILS under CI=true without them, skips (printing why) otherwise.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::time::Duration;

use rvs_lab::client::{Connection, HttpConn};
use rvs_lab::lab::{self, Lab, LabConfig, VIP};
use rvs_lab::testing::{self, adm};

const T: Duration = Duration::from_secs(5);

fn fast_lab(test: &str, extra: &[&str]) -> Option<Lab> {
    if !testing::lab_available(test) {
        return None;
    }
    testing::reap_stale_test_labs();
    let mut rvsd_args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    if rvsd_args.is_empty() {
        rvsd_args = vec!["--fast-path".into(), "xdp".into()];
    }
    let cfg = LabConfig {
        real_servers: 2,
        rvsd: true,
        rvsd_args,
        ..LabConfig::unique("")
    };
    let lab = Lab::up(cfg).unwrap_or_else(|e| panic!("{test}: building the lab failed: {e}"));
    adm(&lab, &["-A", "-t", &format!("{VIP}:80"), "-s", "rr"]);
    for i in 1..=2 {
        adm(
            &lab,
            &[
                "-a",
                "-t",
                &format!("{VIP}:80"),
                "-r",
                &format!("{}:80", lab::rip(i)),
                "-m",
            ],
        );
    }
    Some(lab)
}

/// Packets that reached rvsd's TUN (the slow path) so far.
fn tun_packets(lab: &Lab) -> u64 {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.director(),
            "cat",
            "/sys/class/net/rvs0/statistics/tx_packets",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The service's (conns, inpkts, outpkts) from `-L -n --stats --exact`.
fn service_stats(lab: &Lab) -> (u64, u64, u64) {
    let out = adm(lab, &["-L", "-n", "--stats", "--exact"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("TCP"))
        .unwrap_or_else(|| panic!("no service line in\n{out}"));
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    (f[0], f[1], f[2])
}

fn conn_states(lab: &Lab) -> Vec<String> {
    adm(lab, &["-L", "-n", "-c"])
        .lines()
        .filter(|l| l.starts_with("TCP"))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

#[test]
fn keep_alive_moves_to_the_fast_path_and_back_for_fin_with_agreeing_counters() {
    let Some(lab) = fast_lab("fastpath_keep_alive", &[]) else {
        return;
    };
    assert!(
        lab.rvsd_log_text().contains("XDP fast path attached"),
        "rvsd log:\n{}",
        lab.rvsd_log_text()
    );
    // With the fast path and no --tx, the slow path's forwarded packets leave on the link (--tx link).
    assert!(
        lab.rvsd_log_text().contains("tx=Link"),
        "rvsd log:\n{}",
        lab.rvsd_log_text()
    );
    const N: usize = 200;
    let (tun_during, ok) = lab
        .in_client(move || -> rvs_lab::Result<(u64, usize)> {
            let mut c = HttpConn::connect(lab::vip(80), T)?;
            c.get(Connection::KeepAlive)?; // the handshake and the first request: slow path; the core offers the connection
            std::thread::sleep(Duration::from_millis(500));
            Ok((
                0,
                (0..N)
                    .filter(|_| c.get(Connection::KeepAlive).is_ok())
                    .count(),
            ))
        })
        .unwrap_or_else(|e| panic!("client: {e}\n{}", lab.rvsd_log_text()));
    let _ = tun_during;
    assert_eq!(ok, N, "every request answered");
    let tun_after = tun_packets(&lab);
    // The handshake, the first request and its answer, the close: a handful through the TUN; N requests and
    // N answers (at least 2N segments) did not go there.
    assert!(
        tun_after < (N as u64) / 2,
        "{tun_after} packets went through the TUN for {N} keep-alive requests\n{}",
        lab.rvsd_log_text()
    );
    // The counters users see include the fast path's packets (credited once a second).
    std::thread::sleep(Duration::from_millis(2500));
    let (conns, inpkts, outpkts) = service_stats(&lab);
    assert_eq!(conns, 1);
    assert!(
        inpkts > N as u64 && outpkts > N as u64,
        "in {inpkts} out {outpkts}"
    );
    // The connection closed by the client: FIN goes up, the core leaves ESTABLISHED.
    let states = conn_states(&lab);
    assert!(
        states.iter().all(|s| s != "ESTABLISHED"),
        "after the close: {states:?}"
    );
}

#[test]
fn demanded_xdp_refuses_where_it_cannot_attach_and_auto_falls_back() {
    let Some(mut lab) = fast_lab(
        "fastpath_fallback",
        &["--fast-path", "auto", "--fast-path-entries", "16"],
    ) else {
        return;
    };
    // A bridge has no native XDP (no ndo_bpf): as the private interface, the attach must fail.
    lab.stop_rvsd().unwrap();
    lab.ip(&lab.director(), &["link", "add", "brx0", "type", "bridge"])
        .unwrap();
    lab.ip(&lab.director(), &["link", "set", "brx0", "up"])
        .unwrap();
    let bins = rvs_lab::bins::find().unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.director()])
        .arg(&bins.rvsd)
        .args([
            "--socket",
            "/nonexistent/rvsd-test.sock",
            "--no-save",
            "--tun",
            "rvsx0",
        ])
        .args([
            "--public-if",
            "pub0",
            "--private-if",
            "brx0",
            "--fast-path",
            "xdp",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "rvsd started without the XDP it was told to need:\n{err}"
    );
    assert!(err.contains("--fast-path xdp"), "{err}");
    // The same with auto: says so once and runs on the TUN alone (the unusable socket path makes it exit after).
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.director()])
        .arg(&bins.rvsd)
        .args([
            "--socket",
            "/nonexistent/rvsd-test.sock",
            "--no-save",
            "--tun",
            "rvsx0",
        ])
        .args([
            "--public-if",
            "pub0",
            "--private-if",
            "brx0",
            "--fast-path",
            "auto",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("XDP fast path unavailable").count(), 1, "{err}");
    // Nothing attached to the director's interfaces after either.
    let links = std::process::Command::new("ip")
        .args(["-n", &lab.director(), "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("xdp"), "{links}");
}

#[test]
fn nothing_stays_attached_after_stop_or_crash() {
    let Some(mut lab) = fast_lab("fastpath_cleanup", &[]) else {
        return;
    };
    let xdp_on = |lab: &Lab| {
        let out = std::process::Command::new("ip")
            .args(["-n", &lab.director(), "link", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    };
    assert!(xdp_on(&lab), "attached while rvsd runs");
    lab.crash_rvsd().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !xdp_on(&lab),
        "a SIGKILLed rvsd leaves no program attached (bpf_links die with it)"
    );
    lab.start_rvsd().unwrap();
    assert!(xdp_on(&lab), "a restart attaches again");
    lab.stop_rvsd().unwrap();
    assert!(!xdp_on(&lab), "SIGTERM detaches");
}

/// A keep-alive connection opened in the client namespace (the socket stays there when used from the test thread),
/// after its first request and the time for rvsd to install it.
fn warm_conn(lab: &Lab) -> (HttpConn, String) {
    let (c, rs) = lab
        .in_client(|| {
            let mut c = HttpConn::connect(lab::vip(80), T)?;
            let r = c.get(Connection::KeepAlive)?;
            Ok((c, r.real_server.unwrap_or_default()))
        })
        .unwrap_or_else(|e| panic!("client: {e}\n{}", lab.rvsd_log_text()));
    std::thread::sleep(Duration::from_millis(500));
    (c, rs)
}

/// `n` requests on `c`; returns how many packets reached the TUN meanwhile.
fn burst(lab: &Lab, c: &mut HttpConn, n: usize) -> u64 {
    let before = tun_packets(lab);
    for i in 0..n {
        c.get(Connection::KeepAlive)
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", lab.rvsd_log_text()));
    }
    tun_packets(lab) - before
}

#[test]
fn a_service_edit_flushes_the_fast_path_and_valid_flows_come_back() {
    let Some(lab) = fast_lab("fastpath_edit", &[]) else {
        return;
    };
    let (mut c, _) = warm_conn(&lab);
    let fast = burst(&lab, &mut c, 50);
    assert!(fast < 25, "{fast} packets through the TUN before the edit");
    adm(&lab, &["-E", "-t", &format!("{VIP}:80"), "-s", "wlc"]);
    // The edit flushed every entry before rvsadm returned: the next request goes through the slow path...
    let after_edit = burst(&lab, &mut c, 1);
    assert!(
        after_edit >= 1,
        "the request after the edit bypassed the slow path"
    );
    // ... where the core offers the connection again (its service is still there).
    std::thread::sleep(Duration::from_millis(500));
    let back = burst(&lab, &mut c, 50);
    assert!(
        back < 25,
        "{back} packets through the TUN after the flow came back"
    );
}

#[test]
fn a_deleted_real_server_takes_its_flows_off_the_fast_path() {
    let Some(lab) = fast_lab("fastpath_delete_rs", &[]) else {
        return;
    };
    let (mut c, rs) = warm_conn(&lab);
    let i: usize = rs
        .trim_start_matches("rs")
        .parse()
        .unwrap_or_else(|_| panic!("real server {rs:?}"));
    assert!(burst(&lab, &mut c, 30) < 15);
    adm(
        &lab,
        &[
            "-d",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            &format!("{}:80", lab::rip(i)),
        ],
    );
    // IPVS (expire_nodest_conn=0) keeps a deleted real server's connection until it times out and drops its
    // packets: they leave the fast path for the slow path, where they are dropped and counted.
    std::thread::sleep(Duration::from_millis(500));
    let before = tun_packets(&lab);
    assert!(
        c.get(Connection::KeepAlive).is_err(),
        "a request on a deleted real server's connection was answered"
    );
    let slow = tun_packets(&lab) - before;
    assert!(
        slow >= 1,
        "the request to a deleted real server bypassed the slow path"
    );
    let v: serde_json::Value = serde_json::from_str(&adm(&lab, &["-L", "-n", "--json"])).unwrap();
    assert!(
        v["defense"]["drops"]["dest_unavailable"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "dropped and counted: {}",
        v["defense"]
    );
}

#[test]
fn a_busy_fast_path_flow_does_not_expire_and_an_idle_one_does() {
    let Some(lab) = fast_lab("fastpath_expiry", &[]) else {
        return;
    };
    adm(&lab, &["--set", "3", "3", "3"]);
    let (mut c, _) = warm_conn(&lab);
    // 6 s of requests on the fast path, twice the timeout: last-seen is credited before every expiry.
    let start = std::time::Instant::now();
    let mut tun = 0;
    while start.elapsed() < Duration::from_secs(6) {
        tun += burst(&lab, &mut c, 1);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        tun < 10,
        "{tun} packets through the TUN: not on the fast path"
    );
    assert_eq!(
        conn_states(&lab),
        ["ESTABLISHED"],
        "busy on the fast path, still there"
    );
    // Idle beyond the timeout: the core expires it (and the fast path forgets it).
    std::thread::sleep(Duration::from_secs(5));
    assert!(conn_states(&lab).is_empty(), "{:?}", conn_states(&lab));
}

#[test]
fn a_udp_flow_takes_the_fast_path_and_is_counted() {
    let Some(lab) = fast_lab("fastpath_udp", &[]) else {
        return;
    };
    let vip53 = format!("{VIP}:53");
    adm(&lab, &["-A", "-u", &vip53, "-s", "rr"]);
    adm(
        &lab,
        &[
            "-a",
            "-u",
            &vip53,
            "-r",
            &format!("{}:53", lab::rip(1)),
            "-m",
        ],
    );
    let sock = lab
        .in_client(|| {
            let s =
                std::net::UdpSocket::bind("0.0.0.0:0").map_err(rvs_lab::LabError::io("bind"))?;
            rvs_lab::client::udp_query_on(&s, lab::vip(53), b"first", T)?;
            Ok(s)
        })
        .unwrap_or_else(|e| panic!("udp: {e}\n{}", lab.rvsd_log_text()));
    std::thread::sleep(Duration::from_millis(500));
    let before = tun_packets(&lab);
    for k in 0..100u8 {
        let (_, seen, payload) = rvs_lab::client::udp_query_on(&sock, lab::vip(53), &[b'q', k], T)
            .unwrap_or_else(|e| panic!("query {k}: {e}\n{}", lab.rvsd_log_text()));
        assert_eq!(seen.ip(), std::net::IpAddr::V4(lab::CIP));
        assert_eq!(payload, [b'q', k]);
    }
    let slow = tun_packets(&lab) - before;
    assert!(slow < 20, "{slow} of 200 datagrams through the TUN");
    std::thread::sleep(Duration::from_millis(2500));
    let out = adm(&lab, &["-L", "-n", "--stats", "--exact"]);
    let line = out.lines().find(|l| l.starts_with("UDP")).unwrap();
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(f[0], 1, "one UDP connection: {line}");
    assert!(
        f[1] >= 101 && f[2] >= 101,
        "datagrams in/out counted: {line}"
    );
}

#[test]
fn an_ipv6_keep_alive_flow_takes_the_fast_path() {
    let Some(lab) = fast_lab("fastpath_ipv6", &[]) else {
        return;
    };
    let vip = format!("[{}]:80", lab::VIP6);
    adm(&lab, &["-A", "-t", &vip, "-s", "rr"]);
    adm(
        &lab,
        &[
            "-a",
            "-t",
            &vip,
            "-r",
            &format!("[{}]:80", lab::rip6(1)),
            "-m",
        ],
    );
    let mut c = lab
        .in_client(|| {
            let mut c = HttpConn::connect(lab::vip6(80), T)?;
            c.get(Connection::KeepAlive)?;
            Ok(c)
        })
        .unwrap_or_else(|e| panic!("client: {e}\n{}", lab.rvsd_log_text()));
    std::thread::sleep(Duration::from_millis(500));
    let slow = burst(&lab, &mut c, 50);
    assert!(
        slow < 25,
        "{slow} packets through the TUN for 50 IPv6 keep-alive requests"
    );
    let r = c.get(Connection::KeepAlive).unwrap();
    let (_, seen) = r.who().unwrap();
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V6(lab::CIP6),
        "the real server sees the client"
    );
}

/// Where a fast-path lab's rvsd serves metrics (its own namespace's loopback).
const METRICS: &str = "127.0.0.1:9100";

fn fast_metrics_lab(test: &str) -> Option<Lab> {
    fast_lab(test, &["--fast-path", "xdp", "--metrics", METRICS])
}

/// One sample of rvsd's `/metrics` (`name{labels}` exactly as exposed).
fn metric(lab: &Lab, sample: &str) -> f64 {
    let addr: std::net::SocketAddr = METRICS.parse().unwrap();
    let text = rvs_lab::netns::run_in(&lab.director(), move || {
        let mut c = HttpConn::connect(addr, T)?;
        Ok(
            String::from_utf8_lossy(&c.request("GET", "/metrics", &[], Connection::Close)?.body)
                .into_owned(),
        )
    })
    .unwrap_or_else(|e| panic!("scraping: {e}\n{}", lab.rvsd_log_text()));
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
}

/// A client RST: the program passes it up, the core moves the connection out of ESTABLISHED (CLOSE, as IPVS's
/// state table does for a RST) and the fast path lets go of it.
#[test]
fn a_reset_takes_the_flow_off_the_fast_path() {
    let Some(lab) = fast_metrics_lab("fastpath_rst") else {
        return;
    };
    let (mut c, _) = warm_conn(&lab);
    assert!(burst(&lab, &mut c, 30) < 15, "on the fast path");
    assert_eq!(metric(&lab, "rvs_fastpath_connections"), 1.0);
    let rst_before = metric(
        &lab,
        "rvs_fastpath_packets_total{reason=\"pass_tcp_flags\"}",
    );
    let before = tun_packets(&lab);
    c.reset().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        tun_packets(&lab) > before,
        "the RST did not reach the slow path"
    );
    assert!(
        metric(
            &lab,
            "rvs_fastpath_packets_total{reason=\"pass_tcp_flags\"}"
        ) > rst_before,
        "the program did not pass the RST up"
    );
    assert_eq!(conn_states(&lab), ["CLOSE"], "{}", lab.rvsd_log_text());
    assert_eq!(
        metric(&lab, "rvs_fastpath_connections"),
        0.0,
        "the entries stayed after the RST"
    );
}

/// Never a black hole: the private switch's port loses NAPI (GRO off on the veth peer of the director's private
/// interface, nothing attached there), so frames redirected into the director's interface would be dropped after
/// the program. rvsd notices within a second, says why once, takes the connection off the fast path, and the
/// traffic keeps flowing on the slow path; when the port takes frames again, the connection comes back.
#[test]
fn an_egress_that_drops_redirected_frames_is_left_to_the_slow_path() {
    let Some(lab) = fast_metrics_lab("fastpath_no_napi") else {
        return;
    };
    let private = "rvs_fastpath_egress_redirect{interface=\"priv0\"}";
    assert_eq!(metric(&lab, private), 1.0, "{}", lab.rvsd_log_text());
    let (mut c, _) = warm_conn(&lab);
    assert!(burst(&lab, &mut c, 30) < 15, "on the fast path");
    rvs_lab::netns::run_in(&lab.privsw(), || rvs_lab::netns::set_gro("d1", false)).unwrap();
    // Requests right away: the ones within the first second may need a retransmission, none may be lost.
    let start = std::time::Instant::now();
    let mut slow = 0;
    while start.elapsed() < Duration::from_secs(3) {
        slow += burst(&lab, &mut c, 5);
    }
    assert_eq!(metric(&lab, private), 0.0);
    let log = lab.rvsd_log_text();
    assert_eq!(
        log.matches("does not transmit redirected XDP frames")
            .count(),
        1,
        "said once, with the reason:\n{log}"
    );
    assert_eq!(metric(&lab, "rvs_fastpath_connections"), 0.0);
    assert!(
        slow >= 10,
        "only {slow} packets through the TUN: still on the fast path"
    );
    let steady = burst(&lab, &mut c, 20);
    assert!(
        steady >= 40,
        "{steady} packets through the TUN for 20 requests on the slow path"
    );
    // The port takes redirected frames again: the connection is offered again and returns.
    rvs_lab::netns::run_in(&lab.privsw(), || rvs_lab::netns::set_gro("d1", true)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(metric(&lab, private), 1.0);
    burst(&lab, &mut c, 1); // the packet at which the core offers it again
    std::thread::sleep(Duration::from_millis(500));
    let back = burst(&lab, &mut c, 30);
    assert!(
        back < 15,
        "{back} packets through the TUN after the port came back"
    );
    assert!(
        lab.rvsd_log_text()
            .contains("transmits redirected XDP frames again")
    );
}

/// A bpffs of the test's own, in a directory only it uses (rvsd runs under `ip netns exec`, whose fresh /sys hides
/// /sys/fs/bpf; a bpffs mounted by rvsd itself would die with its mount namespace). Unmounted on drop, which also
/// releases whatever is still pinned in it.
struct BpfFs(std::path::PathBuf);

impl BpfFs {
    fn mount(tag: &str) -> BpfFs {
        let dir =
            std::path::PathBuf::from(format!("/run/rvs-test-bpf-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success(), "mounting a bpffs at {}", dir.display());
        BpfFs(dir)
    }

    /// rvsd's pin directory inside it.
    fn pins(&self) -> std::path::PathBuf {
        self.0.join("rvsd")
    }

    fn pinned(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.pins())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn pinned_lab(test: &str, bpf: &BpfFs) -> Option<Lab> {
    let pins = bpf.pins().display().to_string();
    fast_lab(
        test,
        &[
            "--fast-path",
            "xdp",
            "--metrics",
            METRICS,
            "--fast-path-pin-dir",
            &pins,
        ],
    )
}

fn xdp_attached(lab: &Lab) -> bool {
    let out = std::process::Command::new("ip")
        .args(["-n", &lab.director(), "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

/// A planned restart (SIGUSR2) leaves the program attached with its links and maps pinned: the established
/// connection keeps flowing in XDP while no rvsd runs; the next rvsd takes the map and the links over (the flow
/// stays on the fast path and what was forwarded meanwhile is counted); a stop then removes every pin.
#[test]
fn a_planned_restart_keeps_fast_path_flows_and_a_stop_removes_every_pin() {
    if !testing::lab_available("fastpath_handover") {
        return;
    }
    let bpf = BpfFs::mount("handover");
    let Some(mut lab) = pinned_lab("fastpath_handover", &bpf) else {
        return;
    };
    let (mut c, _) = warm_conn(&lab);
    assert!(burst(&lab, &mut c, 30) < 15, "on the fast path");
    std::thread::sleep(Duration::from_millis(1500));
    let (_, in_before, _) = service_stats(&lab);
    let status = lab.hand_over_rvsd().unwrap();
    assert!(status.contains("75"), "exit after a hand-over: {status}");
    assert!(
        xdp_attached(&lab),
        "the program stays attached for the next rvsd"
    );
    let pinned = bpf.pinned();
    assert!(
        pinned.iter().filter(|p| p.starts_with("link_")).count() == 2
            && pinned.contains(&"rvs_flows".to_owned()),
        "{pinned:?}"
    );
    // No rvsd at all: the pinned program forwards the established connection on its own.
    const GAP: usize = 20;
    for i in 0..GAP {
        c.get(Connection::KeepAlive).unwrap_or_else(|e| {
            panic!(
                "request {i} with no rvsd running: {e}\n{}",
                lab.rvsd_log_text()
            )
        });
    }
    lab.start_rvsd().unwrap();
    let log = lab.rvsd_log_text();
    assert!(
        log.contains("fast path taken over from the previous rvsd")
            && log.contains("connections=1"),
        "{log}"
    );
    assert!(
        !bpf.pinned().iter().any(|p| p.starts_with("link_")),
        "the links belong to the running rvsd again: {:?}",
        bpf.pinned()
    );
    assert_eq!(metric(&lab, "rvs_fastpath_connections"), 1.0);
    assert!(
        burst(&lab, &mut c, 30) < 15,
        "still on the fast path after the restart"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let (_, inpkts, outpkts) = service_stats(&lab);
    assert!(
        inpkts >= (GAP + 30) as u64 && outpkts >= (GAP + 30) as u64,
        "the requests forwarded while no rvsd ran are counted: in {inpkts} out {outpkts}"
    );
    // ... once: the previous run credited its own packets (in_before; they are not handed over: a new rvsd's counters
    // start at zero) and cleared them. Each request is at most two packets in (the request, an ACK).
    assert!(
        inpkts <= 2 * (GAP + 30) as u64 + 10,
        "packets of the previous run ({in_before}) counted again: in {inpkts}"
    );
    assert_eq!(conn_states(&lab), ["ESTABLISHED"]);
    lab.stop_rvsd().unwrap();
    assert!(!xdp_attached(&lab), "a stop detaches");
    assert!(
        bpf.pinned().is_empty(),
        "a stop removes every pin: {:?}",
        bpf.pinned()
    );
}

/// A crash (SIGKILL) cannot unpin: its links die with it (nothing stays attached) but its maps stay pinned; the
/// next start (no hand-over) removes them and starts with new, empty maps.
#[test]
fn a_start_after_a_crash_removes_what_the_last_run_pinned() {
    if !testing::lab_available("fastpath_crash_pins") {
        return;
    }
    let bpf = BpfFs::mount("crash");
    let Some(mut lab) = pinned_lab("fastpath_crash_pins", &bpf) else {
        return;
    };
    let (mut c, _) = warm_conn(&lab);
    assert!(burst(&lab, &mut c, 30) < 15, "on the fast path");
    use std::os::unix::fs::MetadataExt;
    let inode = |bpf: &BpfFs| std::fs::metadata(bpf.pins().join("rvs_flows")).map(|m| m.ino());
    let before = inode(&bpf).unwrap();
    lab.crash_rvsd().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!xdp_attached(&lab), "a crash leaves nothing attached");
    assert_eq!(
        inode(&bpf).unwrap(),
        before,
        "the crashed run's map is still pinned"
    );
    lab.start_rvsd().unwrap();
    let log = lab.rvsd_log_text();
    assert!(
        log.contains("removed the fast-path pins a previous rvsd left"),
        "{log}"
    );
    assert!(!log.contains("taken over"), "{log}");
    assert_ne!(
        inode(&bpf).unwrap(),
        before,
        "a new map, not the crashed run's"
    );
    assert_eq!(metric(&lab, "rvs_fastpath_connections"), 0.0);
    lab.stop_rvsd().unwrap();
    assert!(bpf.pinned().is_empty(), "{:?}", bpf.pinned());
}

/// A planned restart keeps direct-routing and tunnel flows on the fast path too: the pinned program forwards them
/// (a MAC rewrite; GUE with `--tun-csum`, its outer checksum derived in the program) while no rvsd runs, and the
/// next rvsd adopts both entries (checked against the connections it took over with the table), so they stay in
/// XDP, and counts every client packet once (the replies never cross the director: OutPkts stays 0).
#[test]
fn a_planned_restart_adopts_route_and_tunnel_flows() {
    const TEST: &str = "fastpath_handover_methods";
    if !testing::lab_available(TEST) {
        return;
    }
    testing::reap_stale_test_labs();
    let bpf = BpfFs::mount("methods");
    let pins = bpf.pins().display().to_string();
    let cfg = LabConfig {
        router: true,
        method: lab::Method::Tun,
        rvsd_args: [
            "--fast-path",
            "xdp",
            "--metrics",
            METRICS,
            "--fast-path-pin-dir",
            &pins,
        ]
        .map(str::to_owned)
        .to_vec(),
        ..LabConfig::unique("mh")
    };
    let mut lab = Lab::up(cfg).unwrap_or_else(|e| panic!("{TEST}: building the lab failed: {e}"));
    let vip = format!("{VIP}:80");
    let gue = lab::GUE_PORT.to_string();
    adm(&lab, &["-A", "-t", &vip, "-s", "rr"]);
    let (rs1, rs2) = (format!("{}:80", lab::rip(1)), format!("{}:80", lab::rip(2)));
    adm(&lab, &["-a", "-t", &vip, "-r", &rs1, "-g"]);
    let tun = [
        "-i",
        "--tun-type",
        "gue",
        "--tun-port",
        gue.as_str(),
        "--tun-csum",
    ];
    adm(
        &lab,
        &[&["-a", "-t", vip.as_str(), "-r", rs2.as_str()][..], &tun].concat(),
    );
    // One keep-alive connection per real server (rr): one direct-routing flow, one tunnel flow.
    let mut conns: Vec<HttpConn> = (0..2).map(|_| warm_conn(&lab).0).collect();
    const N: usize = 30;
    for c in &mut conns {
        assert!(burst(&lab, c, N) < 15, "on the fast path");
    }
    assert_eq!(metric(&lab, "rvs_fastpath_connections"), 2.0);
    std::thread::sleep(Duration::from_millis(1500));
    let status = lab.hand_over_rvsd().unwrap();
    assert!(status.contains("75"), "exit after a hand-over: {status}");
    // No rvsd: the pinned program forwards both flows on its own.
    const GAP: usize = 20;
    for c in &mut conns {
        for i in 0..GAP {
            c.get(Connection::KeepAlive).unwrap_or_else(|e| {
                panic!(
                    "request {i} with no rvsd running: {e}\n{}",
                    lab.rvsd_log_text()
                )
            });
        }
    }
    lab.start_rvsd().unwrap();
    let log = lab.rvsd_log_text();
    assert!(
        log.contains("fast path taken over from the previous rvsd")
            && log.contains("connections=2")
            && log.contains("stale=0"),
        "{log}"
    );
    assert_eq!(metric(&lab, "rvs_fastpath_connections"), 2.0);
    for c in &mut conns {
        let up = burst(&lab, c, N);
        assert!(
            up < 15,
            "{up} packets through the TUN: still on the fast path after the restart"
        );
    }
    std::thread::sleep(Duration::from_millis(2500));
    let (_, inpkts, outpkts) = service_stats(&lab);
    // Each request is one or two client packets (the request, an ACK of the answer), on each connection.
    let (least, most) = (2 * (GAP + N) as u64, 2 * 2 * (GAP + N) as u64 + 10);
    assert!(
        inpkts >= least,
        "the packets forwarded while no rvsd ran are counted: in {inpkts} < {least}"
    );
    assert!(
        inpkts <= most,
        "packets of the previous run counted again: in {inpkts} > {most}"
    );
    assert_eq!(outpkts, 0, "no reply crosses the director");
    assert_eq!(conn_states(&lab), ["ESTABLISHED", "ESTABLISHED"]);
    lab.stop_rvsd().unwrap();
    assert!(
        bpf.pinned().is_empty(),
        "a stop removes every pin: {:?}",
        bpf.pinned()
    );
}
