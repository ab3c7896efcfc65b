//! The lab's user-space decapsulator (`rvs-lab decap`) takes GRO-merged tunnel frames whole (issue 11).
//!
//! GRO on the private switch's port (needed for native XDP redirect into the director's veth) merges IPIP frames
//! of one TCP flow into a super-packet whose inner checksum is partial. The decapsulator used to write such frames
//! into its TUN as plain bytes, and the real server's stack dropped every one as a checksum error (bulk TCP through
//! tunnels under 19 Mbit/s). This test sends 4 MiB, on the XDP fast path, through an IPIP real server and reads the real server's own
//! counters: super-packets did cross the TUN (so GRO was in play) and not one TCP checksum error was counted.

use std::net::SocketAddr;
use std::time::Duration;

use rvs_lab::client;
use rvs_lab::lab::{HTTP_PORT, Lab, LabConfig, Method, VIP, rip};
use rvs_lab::netns;
use rvs_lab::testing;

/// `InCsumErrors` of the `Tcp:` lines of /proc/net/snmp, in namespace `ns`.
fn tcp_csum_errors(ns: &str) -> u64 {
    netns::run_in(ns, || {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp")
            .map_err(rvs_lab::error::LabError::io("reading /proc/net/snmp"))?;
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next().unwrap_or(""), tcp.next().unwrap_or(""));
        let col = names
            .split_whitespace()
            .position(|n| n == "InCsumErrors")
            .unwrap_or(usize::MAX);
        Ok(values
            .split_whitespace()
            .nth(col)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    })
    .unwrap_or_else(|e| panic!("TCP counters of {ns}: {e}"))
}

/// (bytes, packets) received by the decapsulator's TUN in namespace `ns`.
fn tun_rx(lab: &Lab, ns: &str) -> (u64, u64) {
    let json = lab
        .ip(ns, &["-s", "-j", "link", "show", "tunl-rvs"])
        .unwrap_or_else(|e| panic!("the decapsulator's TUN in {ns}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let rx = &v[0]["stats64"]["rx"];
    (
        rx["bytes"].as_u64().unwrap_or(0),
        rx["packets"].as_u64().unwrap_or(0),
    )
}

#[test]
// Not in the default run: the shape it tests (the switch port's GRO merging redirected tunnel frames) arises only
// under load. On a quiet machine every NAPI poll finds one frame and nothing merges (CI saw a mean of 1210-1398
// bytes in four runs, with 0 checksum errors), so the test's own guard fails. Run it beside load with `--ignored`.
#[ignore = "needs GRO to merge the redirected frames, which happens only under load; run with --ignored beside load"]
fn merged_tunnel_frames_reach_the_real_server_whole_without_checksum_errors() {
    if !testing::lab_available("merged_tunnel_frames") {
        return;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        router: true,
        method: Method::Tun,
        real_servers: 1,
        // The fast path redirects the encapsulated frames into the director's private veth, whose switch-side peer
        // merges them (GRO, as the XDP redirect needs): the shape that broke. (The slow path's frames, sent one
        // by one from a socket, arrive unmerged here.)
        rvsd_args: vec!["--fast-path".into(), "xdp".into()],
        ..LabConfig::unique("d")
    };
    let lab = Lab::up(cfg).unwrap_or_else(|e| panic!("building the lab: {e}"));
    let svc = format!("{VIP}:{HTTP_PORT}");
    let rs = format!("{}:{HTTP_PORT}", rip(1));
    lab.rvsadm(&["-A", "-t", &svc, "-s", "rr"])
        .unwrap_or_else(|e| panic!("{e}"));
    lab.rvsadm(&["-a", "-t", &svc, "-r", &rs, "-i"])
        .unwrap_or_else(|e| panic!("{e}"));
    let ns = lab.rs(1);
    let errors_before = tcp_csum_errors(&ns);

    let body: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sent = body.clone();
    let vip = SocketAddr::new(VIP.into(), HTTP_PORT);
    let resp = lab
        .in_client(move || client::echo(vip, &sent, Duration::from_secs(60)))
        .unwrap_or_else(|e| panic!("4 MiB through the tunnel: {e}\n{}", lab.rvsd_log_text()));
    assert!(resp.body == body, "4 MiB came back different");

    let errors = tcp_csum_errors(&ns) - errors_before;
    let (bytes, packets) = tun_rx(&lab, &ns);
    assert!(packets > 0, "nothing crossed the decapsulator's TUN");
    let mean = bytes / packets;
    eprintln!(
        "decapsulator TUN: {packets} packets, {bytes} bytes (mean {mean}); TCP checksum errors {errors}"
    );
    assert!(
        mean > 1500,
        "no merged frame crossed the TUN (mean {mean} bytes): GRO was not in play, the test shows nothing"
    );
    assert_eq!(
        errors, 0,
        "the real server counted TCP checksum errors: merged frames lost their offload metadata"
    );
}
