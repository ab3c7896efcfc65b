//! End-to-end through rvsd's XDP fast path (`--fast-path xdp`): flows move to the fast path once established and
//! come back for FIN; the counters users see agree with the traffic; the fallback when XDP cannot be used; nothing
//! attached after rvsd stops or crashes. One lab per test (unique names).
//!
//! Needs root, namespaces and BPF: FAILS under CI=true without them, skips (printing why) otherwise.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::time::Duration;

use rvs_lab::client::HttpConn;
use rvs_lab::lab::{self, Lab, LabConfig, VIP};
use rvs_lab::testing;

const T: Duration = Duration::from_secs(5);

fn adm(lab: &Lab, args: &[&str]) -> String {
    match lab.rvsadm(args) {
        Ok(out) => out,
        Err(e) => panic!(
            "rvsadm {}: {e}\nrvsd log:\n{}",
            args.join(" "),
            lab.rvsd_log_text()
        ),
    }
}

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
    const N: usize = 200;
    let (tun_during, ok) = lab
        .in_client(move || -> rvs_lab::Result<(u64, usize)> {
            let mut c = HttpConn::connect(lab::vip(80), T)?;
            c.get(false)?; // the handshake and the first request: slow path; the core offers the connection
            std::thread::sleep(Duration::from_millis(500));
            Ok((0, (0..N).filter(|_| c.get(false).is_ok()).count()))
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
