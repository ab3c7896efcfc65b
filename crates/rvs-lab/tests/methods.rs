//! Direct routing and tunnelling end to end, in one lab shaped for them (`Method::Tun`: client -> router -> public
//! switch -> director; real servers on the private switch with the VIP on lo, replies to the router, `rvs-lab
//! decap` standing in for the kernel's tunnel modules).
//!
//! One lab, shared by every assertion (CI time): TCP and UDP, IPv4 and IPv6, route and tunnel (IPIP, GUE with
//! checksum, GRE with checksum), methods mixed in one service, rr over two real servers, the client's own address at
//! the real server, only the VIP seen by the client, 1 MiB both ways byte-identical, no reply crossing the
//! director (IPv4 and IPv6: the capture decodes both, tunnels included), `-L -c` states and counters as IPVS keeps
//! them for one-way traffic, and the tunnel MTU answered with ICMP "fragmentation needed" / ICMPv6 "packet too
//! big".

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rvs_lab::capture::Capture;
use rvs_lab::client::{self, Connection};
use rvs_lab::lab::{self, GUE_PORT, Lab, LabConfig, Method, ROUTED_CIP, ROUTED_CIP6, VIP, VIP6};
use rvs_lab::testing;
use rvs_lab::testing::adm;

fn v4(port: u16) -> String {
    format!("{VIP}:{port}")
}

fn v6(port: u16) -> String {
    format!("[{VIP6}]:{port}")
}

fn rip(i: usize, v6: bool) -> String {
    if v6 {
        format!("[{}]:0", lab::rip6(i))
    } else {
        format!("{}:0", lab::rip(i))
    }
}

/// Two GETs (new connections): (real server, client address it saw) each.
fn two_gets(lab: &Lab, vip: SocketAddr) -> Vec<(String, IpAddr)> {
    let r = lab.in_client(move || {
        (0..2)
            .map(|_| {
                let (name, seen) = client::get(vip, Duration::from_secs(10))?.who()?;
                Ok((name, seen.ip().to_canonical()))
            })
            .collect::<rvs_lab::error::Result<Vec<_>>>()
    });
    r.unwrap_or_else(|e| panic!("GET {vip}: {e}\n{}", diagnostics(lab)))
}

/// Two UDP queries from two client ports: (real server, client address it saw) each; the answer must come from the
/// VIP itself (checked by `udp_query`).
fn two_queries(lab: &Lab, vip: SocketAddr) -> Vec<(String, IpAddr)> {
    let r = lab.in_client(move || {
        (0..2)
            .map(|i| {
                let any: SocketAddr = if vip.is_ipv6() {
                    "[::]:0".parse().expect("addr")
                } else {
                    "0.0.0.0:0".parse().expect("addr")
                };
                let s = std::net::UdpSocket::bind(any)
                    .map_err(rvs_lab::error::LabError::io("udp bind"))?;
                let payload = format!("q{i}");
                let (name, seen, echoed) =
                    client::udp_query_on(&s, vip, payload.as_bytes(), Duration::from_secs(5))?;
                assert_eq!(echoed, payload.as_bytes());
                Ok((name, seen.ip().to_canonical()))
            })
            .collect::<rvs_lab::error::Result<Vec<_>>>()
    });
    r.unwrap_or_else(|e| panic!("UDP {vip}: {e}\n{}", diagnostics(lab)))
}

/// What a failure message needs: the connections, the director's neighbours, rvsd's log.
fn diagnostics(lab: &Lab) -> String {
    let d = lab.director();
    format!(
        "connections:\n{}\nneighbours:\n{}{}\nrvsd log:\n{}",
        lab.rvsadm(&["-L", "-n", "-c"]).unwrap_or_default(),
        lab.ip(&d, &["neigh"]).unwrap_or_default(),
        lab.ip(&d, &["-6", "neigh"]).unwrap_or_default(),
        lab.rvsd_log_text()
    )
}

fn check_split(what: &str, got: &[(String, IpAddr)], cip: IpAddr) {
    let mut names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["rs1", "rs2"], "{what}: rr over both real servers");
    for (_, seen) in got {
        assert_eq!(
            *seen, cip,
            "{what}: the real server sees the client's own address"
        );
    }
}

/// 1 MiB up and the same 1 MiB back, compared byte for byte.
fn mib_echo(lab: &Lab, vip: SocketAddr) {
    let body: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sent = body.clone();
    let r = lab.in_client(move || client::echo(vip, &sent, Duration::from_secs(60)));
    match r {
        Ok(resp) => assert!(
            resp.body == body,
            "{vip}: 1 MiB came back different ({} bytes)",
            resp.body.len()
        ),
        Err(e) => panic!(
            "1 MiB echo via {vip}: {e}\nrvsd log:\n{}",
            lab.rvsd_log_text()
        ),
    }
}

#[test]
fn route_and_tunnel_tcp_udp_ipv4_ipv6_end_to_end() {
    if !testing::lab_available("route_and_tunnel") {
        return;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        router: true,
        method: Method::Tun,
        ..LabConfig::unique("m")
    };
    let lab = Lab::up(cfg).unwrap_or_else(|e| panic!("building the lab: {e}"));
    let (cip, cip6) = (IpAddr::V4(ROUTED_CIP), IpAddr::V6(ROUTED_CIP6));
    let gue = GUE_PORT.to_string();

    // A route real server must be on a directly connected network: the router's client link is not.
    adm(&lab, &["-A", "-t", &v4(80), "-s", "rr"]);
    let err = lab
        .rvsadm_output(&["-a", "-t", &v4(80), "-r", "198.18.0.10:0", "-g"])
        .expect("rvsadm runs");
    let text = String::from_utf8_lossy(&err.stderr).into_owned();
    assert!(
        !err.status.success() && text.contains("directly connected"),
        "{text}"
    );
    assert!(
        !adm(&lab, &["-L", "-n"]).contains("198.18.0.10"),
        "nothing changed"
    );

    // Phase 1: TCP v4 routed, UDP v4 tunnelled (IPIP + GUE with checksum: mixed in one service), TCP v6
    // tunnelled (IPv6-in-IPv6 + GRE with checksum), UDP v6 routed.
    for i in 1..=2 {
        adm(&lab, &["-a", "-t", &v4(80), "-r", &rip(i, false), "-g"]);
    }
    adm(&lab, &["-A", "-u", &v4(53), "-s", "rr"]);
    adm(&lab, &["-a", "-u", &v4(53), "-r", &rip(1, false), "-i"]);
    adm(
        &lab,
        &[
            "-a",
            "-u",
            &v4(53),
            "-r",
            &rip(2, false),
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            &gue,
            "--tun-csum",
        ],
    );
    adm(&lab, &["-A", "-t", &v6(80), "-s", "rr"]);
    adm(&lab, &["-a", "-t", &v6(80), "-r", &rip(1, true), "-i"]);
    adm(
        &lab,
        &[
            "-a",
            "-t",
            &v6(80),
            "-r",
            &rip(2, true),
            "-i",
            "--tun-type",
            "gre",
            "--tun-csum",
        ],
    );
    adm(&lab, &["-A", "-u", &v6(53), "-s", "rr"]);
    for i in 1..=2 {
        adm(&lab, &["-a", "-u", &v6(53), "-r", &rip(i, true), "-g"]);
    }
    let listing = adm(&lab, &["-L", "-n"]);
    assert!(
        listing.contains("Route") && listing.contains("Tunnel"),
        "{listing}"
    );

    let d = lab.director();
    let cap_pub = Capture::start(&d, lab::PUBLIC_IF, 200_000).expect("capture pub0");
    let cap_priv = Capture::start(&d, lab::PRIVATE_IF, 200_000).expect("capture priv0");

    check_split("TCP v4 route", &two_gets(&lab, lab::vip(80)), cip);
    check_split(
        "UDP v4 tunnel (ipip, gue)",
        &two_queries(&lab, lab::vip(53)),
        cip,
    );
    check_split(
        "TCP v6 tunnel (ipip, gre)",
        &two_gets(&lab, lab::vip6(80)),
        cip6,
    );
    check_split("UDP v6 route", &two_queries(&lab, lab::vip6(53)), cip6);
    mib_echo(&lab, lab::vip(80));
    mib_echo(&lab, lab::vip6(80));

    // Phase 2: every method swapped (edits bind new connections only): TCP v4 tunnelled, UDP v4 routed, TCP v6
    // routed, UDP v6 tunnelled.
    for i in 1..=2 {
        adm(&lab, &["-e", "-t", &v4(80), "-r", &rip(i, false), "-i"]);
        adm(&lab, &["-e", "-u", &v4(53), "-r", &rip(i, false), "-g"]);
        adm(&lab, &["-e", "-t", &v6(80), "-r", &rip(i, true), "-g"]);
        adm(
            &lab,
            &[
                "-e",
                "-u",
                &v6(53),
                "-r",
                &rip(i, true),
                "-i",
                "--tun-type",
                "gue",
                "--tun-port",
                &gue,
            ],
        );
    }
    check_split("TCP v4 tunnel", &two_gets(&lab, lab::vip(80)), cip);
    check_split("UDP v4 route", &two_queries(&lab, lab::vip(53)), cip);
    check_split("TCP v6 route", &two_gets(&lab, lab::vip6(80)), cip6);
    check_split(
        "UDP v6 tunnel (gue)",
        &two_queries(&lab, lab::vip6(53)),
        cip6,
    );
    mib_echo(&lab, lab::vip(80));
    mib_echo(&lab, lab::vip6(80));

    // One-armed: the router now sends VIP traffic to the director's address on the shared (private) network, so
    // it arrives and leaves by the same interface, as with a classic single-NIC LVS-DR director.
    let router = lab.router();
    lab.ip(
        &router,
        &[
            "route",
            "add",
            &format!("{VIP}/32"),
            "via",
            &lab::DIP.to_string(),
        ],
    )
    .expect("VIP via the DIP");
    lab.ip(
        &router,
        &[
            "-6",
            "route",
            "add",
            &format!("{VIP6}/128"),
            "via",
            &lab::DIP6.to_string(),
        ],
    )
    .expect("VIP6 via the DIP");
    check_split(
        "one-armed UDP v4 route",
        &two_queries(&lab, lab::vip(53)),
        cip,
    );
    check_split(
        "one-armed TCP v6 route",
        &two_gets(&lab, lab::vip6(80)),
        cip6,
    );
    let seen_pub = cap_pub.finish().expect("capture");
    let seen_priv = cap_priv.finish().expect("capture");
    // No reply ever crosses the director: nothing from the VIP (IPv4 or IPv6) arrives on either side.
    let replies: Vec<_> = seen_pub
        .iter()
        .chain(&seen_priv)
        .filter(|s| !s.is_outgoing() && (s.src.ip() == VIP || s.src.ip() == VIP6))
        .collect();
    assert!(
        replies.is_empty(),
        "replies seen at the director: {:?}",
        &replies[..replies.len().min(5)]
    );
    // The routed packets leave on the private side unchanged (still to the VIP); the tunnelled ones as GUE to the
    // real server (IPIP/GRE are not TCP/UDP, the capture does not list them).
    assert!(
        seen_priv
            .iter()
            .any(|s| s.is_outgoing() && s.dst.ip() == VIP && s.src.ip() == ROUTED_CIP)
    );
    // The capture decodes IPv6 (so the absence of IPv6 replies above means something): the client's IPv6 packets
    // arrive on the public side, routed ones leave on the private side still to the VIP, tunnelled ones inside
    // IPv6-in-IPv6 / GRE to the real server.
    assert!(
        seen_pub
            .iter()
            .any(|s| !s.is_outgoing() && s.dst.ip() == VIP6 && s.src.ip() == ROUTED_CIP6)
    );
    assert!(seen_priv.iter().any(|s| s.is_outgoing()
        && s.dst.ip() == VIP6
        && s.src.ip() == ROUTED_CIP6
        && s.tunnel.is_none()));
    assert!(seen_priv.iter().any(|s| {
        s.is_outgoing()
            && s.dst.ip() == VIP6
            && s.tunnel
                .is_some_and(|(_, rs)| rs == lab::rip6(1) || rs == lab::rip6(2))
    }));
    assert!(seen_priv.iter().any(|s| s.is_outgoing()
        && s.protocol == 17
        && s.dst.port() == GUE_PORT
        && s.dst.ip() == lab::rip(2)));
    // One-armed: client packets to the VIP arrived on the private side and left by it again.
    let one_armed_in = seen_priv
        .iter()
        .any(|s| !s.is_outgoing() && s.dst.ip() == VIP && s.dst.port() == 53);
    let one_armed_out = seen_priv
        .iter()
        .any(|s| s.is_outgoing() && s.dst.ip() == VIP && s.dst.port() == 53);
    assert!(
        one_armed_in && one_armed_out,
        "one-armed DR not seen on priv0"
    );

    // The tunnels' MTU: the client learnt it from the director's ICMP errors (1500 - 20 for IPIP over IPv4,
    // 1500 - 40 for IPv6-in-IPv6), or the 1 MiB above could not have crossed.
    let client_ns = lab.client();
    let route4 = lab
        .ip(&client_ns, &["route", "get", &VIP.to_string()])
        .expect("route get");
    assert!(
        route4.contains("mtu 1480"),
        "frag needed not learnt: {route4}"
    );
    let route6 = lab
        .ip(&client_ns, &["-6", "route", "get", &VIP6.to_string()])
        .expect("route get");
    assert!(
        route6.contains("mtu 1460"),
        "packet too big not learnt: {route6}"
    );

    // Connection states with one-way traffic, as IPVS shows them: the client's FIN moves ESTABLISHED to FIN_WAIT
    // (the input-only table), UDP shows UDP; nothing counts as active once the clients closed; no reply counted.
    let conns = adm(&lab, &["-L", "-n", "-c"]);
    assert!(conns.contains("FIN_WAIT"), "{conns}");
    assert!(conns.contains("UDP"), "{conns}");
    assert!(
        !conns.contains("CLOSE_WAIT"),
        "input-only states never wait for a server FIN: {conns}"
    );
    let stats = adm(&lab, &["-L", "-n", "--stats"]);
    let v4_80 = stats
        .lines()
        .find(|l| l.contains(&v4(80)) && l.starts_with("TCP"))
        .unwrap_or_else(|| panic!("{stats}"));
    let cols: Vec<&str> = v4_80.split_whitespace().collect();
    assert_eq!(
        cols.get(2),
        Some(&"6"),
        "6 connections (2 GETs + 1 echo, twice): {v4_80}"
    );
    assert_eq!(
        cols.get(4),
        Some(&"0"),
        "OutPkts 0 (replies bypass the director): {v4_80}"
    );
    let rates = adm(&lab, &["-L", "-n"]);
    for l in rates
        .lines()
        .filter(|l| l.contains("->") && (l.contains("Route") || l.contains("Tunnel")))
    {
        let c: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(
            c.get(4),
            Some(&"0"),
            "no active connection left: {l}\n{rates}"
        );
    }
}

/// Kills the processes a test started (by PID) when dropped.
struct Children(Vec<std::process::Child>);
impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn fwmark_service_groups_80_and_443_with_persistence_end_to_end() {
    if !testing::lab_available("fwmark_service") {
        return;
    }
    let nft_ok = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !nft_ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: nft (nftables) is missing"
        );
        eprintln!("SKIPPED fwmark_service: nft (nftables) is not installed");
        return;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        router: true,
        method: Method::Dr,
        ..LabConfig::unique("f")
    };
    let lab = Lab::up(cfg).unwrap_or_else(|e| panic!("building the lab: {e}"));
    let d = lab.director();
    // The user's side, as for IPVS: mark ports 80 and 443 of the VIP in mangle prerouting.
    let ruleset = format!(
        "table inet lvs {{\n  chain pre {{\n    type filter hook prerouting priority mangle;\n    \
         ip daddr {VIP} tcp dport {{ 80, 443 }} meta mark set 1\n    \
         ip6 daddr {VIP6} tcp dport {{ 80, 443 }} meta mark set 2\n  }}\n}}\n"
    );
    lab.nft(&d, "lvs.nft", &ruleset)
        .unwrap_or_else(|e| panic!("nft: {e}"));
    // The router routes the VIP to the director (rvsd steers no address for an fwmark service).
    lab.ip(
        &lab.router(),
        &[
            "route",
            "add",
            &format!("{VIP}/32"),
            "via",
            &lab::PUBLIC_IP.to_string(),
        ],
    )
    .expect("route the VIP to the director");
    lab.ip(
        &lab.router(),
        &[
            "-6",
            "route",
            "add",
            &format!("{VIP6}/128"),
            "via",
            &lab::PUBLIC_IP6.to_string(),
        ],
    )
    .expect("route the IPv6 VIP to the director");
    // A second HTTP server on 443 in each real server.
    let exe = env!("CARGO_BIN_EXE_rvs-lab");
    let mut kids = Children(Vec::new());
    for i in 1..=2 {
        let c = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.rs(i),
                exe,
                "serve",
                "--name",
                &format!("rs{i}"),
            ])
            .args(["--http", "[::]:443", "--udp", "[::]:5443"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("serve 443");
        kids.0.push(c);
    }
    for c in &mut kids.0 {
        let mut line = String::new();
        if let Some(out) = c.stdout.as_mut() {
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        }
        assert_eq!(line.trim(), "ready");
    }

    adm(&lab, &["-A", "-f", "1", "-s", "rr", "-p", "300"]);
    adm(
        &lab,
        &["-a", "-f", "1", "-r", &lab::rip(1).to_string(), "-g"],
    );
    adm(
        &lab,
        &["-a", "-f", "1", "-r", &lab::rip(2).to_string(), "-g"],
    );
    assert!(lab.ip(&d, &["rule"]).expect("rules").contains("fwmark 0x1"));

    let cip = IpAddr::V4(ROUTED_CIP);
    let mut seen = Vec::new();
    for port in [80, 443, 80, 443] {
        let got = two_gets(&lab, lab::vip(port));
        seen.extend(got);
    }
    let first = seen[0].0.clone();
    for (name, addr) in &seen {
        assert_eq!(
            *name, first,
            "one persistent real server for both ports: {seen:?}"
        );
        assert_eq!(*addr, cip);
    }
    let listing = adm(&lab, &["-L", "-n"]);
    assert!(listing.contains("FWM  1 rr persistent 300"), "{listing}");
    let conns = adm(&lab, &["-L", "-n", "-c"]);
    let tcp443 = conns
        .lines()
        .filter(|l| l.contains(&format!("{VIP}:443")))
        .count();
    let tcp80 = conns
        .lines()
        .filter(|l| l.contains(&format!("{VIP}:80")))
        .count();
    assert_eq!((tcp80, tcp443), (4, 4), "{conns}");
    assert!(
        conns.contains("0.0.0.1:0"),
        "one template keyed by the mark: {conns}"
    );

    // The same with IPv6 (`-f 2 -6`: ipvsadm wants -6 after -f): the mark set by an ip6 rule reaches rvsd through its own IPv6 policy rule.
    adm(&lab, &["-A", "-f", "2", "-6", "-s", "rr", "-p", "300"]);
    for i in 1..=2 {
        adm(&lab, &["-a", "-f", "2", "-6", "-r", &rip(i, true), "-g"]);
    }
    assert!(
        lab.ip(&d, &["-6", "rule"])
            .expect("rules")
            .contains("fwmark 0x2")
    );
    let cip6 = IpAddr::V6(ROUTED_CIP6);
    let mut seen6 = Vec::new();
    for port in [80, 443, 80, 443] {
        seen6.extend(two_gets(&lab, lab::vip6(port)));
    }
    let first6 = seen6[0].0.clone();
    for (name, addr) in &seen6 {
        assert_eq!(
            *name, first6,
            "IPv6: one persistent real server for both ports: {seen6:?}"
        );
        assert_eq!(*addr, cip6);
    }
    let listing = adm(&lab, &["-L", "-n"]);
    assert!(
        listing.contains("FWM  2 IPv6 rr persistent 300"),
        "{listing}"
    );
    let conns = adm(&lab, &["-L", "-n", "-c"]);
    for port in [80, 443] {
        let n = conns
            .lines()
            .filter(|l| l.contains(&format!("[{VIP6}]:{port}")))
            .count();
        assert_eq!(n, 4, "IPv6 :{port}\n{conns}");
    }
    adm(&lab, &["-D", "-f", "2", "-6"]);
    assert!(
        !lab.ip(&d, &["-6", "rule"])
            .expect("rules")
            .contains("fwmark 0x2")
    );

    // Deleting the service removes its TUN and rule.
    adm(&lab, &["-D", "-f", "1"]);
    assert!(!lab.ip(&d, &["rule"]).expect("rules").contains("fwmark 0x1"));
    assert!(!lab.ip(&d, &["link"]).expect("links").contains("rvsm1"));
}

#[test]
fn demo_with_tunnelling_shows_every_hop_and_no_reply_at_the_director() {
    if !testing::lab_available("demo_tun") {
        return;
    }
    let prefix = LabConfig::unique("d").prefix;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvs-lab"))
        .args([
            "demo",
            "--method",
            "tun",
            "--requests",
            "20",
            "--prefix",
            &prefix,
        ])
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("-i -w 1"), "{text}");
    assert!(
        text.contains("[in tunnel 203.0.113.1 -> 203.0.113."),
        "{text}"
    );
    assert!(text.contains("seen at the director: 0"), "{text}");
    assert!(
        text.lines().any(|l| l.contains(", answering")
            && l.split_whitespace().nth(2) == Some("198.51.100.100:80")),
        "the real server answers from the VIP: {text}"
    );
}

/// Packets that reached rvsd's TUN (the slow path) so far.
fn tun_packets(lab: &Lab) -> u64 {
    let out = lab
        .ip(
            &lab.director(),
            &["-s", "-o", "link", "show", "dev", "rvs0"],
        )
        .unwrap_or_else(|e| panic!("ip -s link: {e}"));
    // "... RX: bytes packets ... TX: bytes packets ...": the TUN's TX is what the kernel handed rvsd.
    let f: Vec<&str> = out.split_whitespace().collect();
    let tx = f
        .iter()
        .position(|w| w.starts_with("TX:"))
        .unwrap_or_else(|| panic!("no TX counters in {out}"));
    let nums: Vec<u64> = f[tx..].iter().filter_map(|w| w.parse().ok()).collect();
    nums[1]
}

/// A service's (InPkts, OutPkts) from `-L -n --stats --exact`.
fn service_packets(lab: &Lab, proto: &str, vip: &str) -> (u64, u64) {
    let out = adm(lab, &["-L", "-n", "--stats", "--exact"]);
    let line = out
        .lines()
        .find(|l| l.starts_with(proto) && l.contains(vip))
        .unwrap_or_else(|| panic!("no {proto} {vip} in\n{out}"));
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    (f[1], f[2])
}

/// Direct routing and tunnelling on the XDP fast path (`--fast-path xdp`): once a connection is established its
/// packets are forwarded in XDP (a MAC rewrite for `-g`, the encapsulation pushed in the program for `-i`: IPIP,
/// IPv6-in-IPv6, GUE and GRE), so they no longer reach rvsd's TUN, while the answers keep coming (from the VIP,
/// straight from the real servers) and the service counters still count every client packet and no reply. Mixed
/// methods in each service (rr alternates them), TCP keep-alive and UDP, IPv4 and IPv6. Two rounds: the tunnels
/// without checksum, then edited (`-e`) to ipvsadm's checksum options (GRE `--tun-csum` for TCP over IPv4 and
/// IPv6, GUE `--tun-csum` for TCP and UDP over IPv6, GUE `--tun-remcsum` for UDP over IPv4), which the program
/// builds too (the GUE real servers' UDP sockets take only datagrams whose outer checksum is right; GRE's is
/// compared byte for byte with the slow path's in crates/rvs-xdp/tests/methods_prog.rs).
#[test]
fn route_and_tunnel_flows_take_the_xdp_fast_path() {
    if !testing::lab_available("route_and_tunnel_xdp") {
        return;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        router: true,
        method: Method::Tun,
        rvsd_args: vec!["--fast-path".into(), "xdp".into()],
        ..LabConfig::unique("mx")
    };
    let lab = Lab::up(cfg).unwrap_or_else(|e| panic!("building the lab: {e}"));
    assert!(
        lab.rvsd_log_text().contains("XDP fast path attached"),
        "{}",
        lab.rvsd_log_text()
    );
    let gue = GUE_PORT.to_string();
    let tun_gue = ["-i", "--tun-type", "gue", "--tun-port", gue.as_str()];
    let tun_gre = ["-i", "--tun-type", "gre"];
    // rs1 / rs2 of each service: route + IPIP, GUE + GRE, route + GUE, route + IPv6-in-IPv6.
    let services: [(&str, String, bool, [&[&str]; 2]); 4] = [
        ("-t", v4(80), false, [&["-g"], &["-i"]]),
        ("-t", v6(80), true, [&tun_gue, &tun_gre]),
        ("-u", v4(53), false, [&["-g"], &tun_gue]),
        ("-u", v6(53), true, [&["-g"], &["-i"]]),
    ];
    for (p, vip, six, methods) in &services {
        adm(&lab, &["-A", p, vip, "-s", "rr"]);
        for (i, m) in methods.iter().enumerate() {
            let mut a = vec!["-a", p, vip.as_str()];
            let r = rip(i + 1, *six);
            a.extend(["-r", r.as_str()]);
            a.extend(m.iter().copied());
            adm(&lab, &a);
        }
    }

    fast_path_round(&lab, 1, "no tunnel checksum");
    let gue_csum = [
        "-i",
        "--tun-type",
        "gue",
        "--tun-port",
        gue.as_str(),
        "--tun-csum",
    ];
    let gue_remcsum = [
        "-i",
        "--tun-type",
        "gue",
        "--tun-port",
        gue.as_str(),
        "--tun-remcsum",
    ];
    let gre_csum = ["-i", "--tun-type", "gre", "--tun-csum"];
    for (p, vip, i, six, m) in [
        ("-t", v4(80), 2, false, &gre_csum[..]),
        ("-t", v6(80), 1, true, &gue_csum[..]),
        ("-t", v6(80), 2, true, &gre_csum[..]),
        ("-u", v4(53), 2, false, &gue_remcsum[..]),
        ("-u", v6(53), 2, true, &gue_csum[..]),
    ] {
        let r = rip(i, six);
        let mut a = vec!["-e", p, vip.as_str(), "-r", r.as_str()];
        a.extend(m.iter().copied());
        adm(&lab, &a);
    }
    fast_path_round(&lab, 2, "tunnel checksums");
}

/// One round of [`route_and_tunnel_flows_take_the_xdp_fast_path`] (`round`: counters are the services' totals).
fn fast_path_round(lab: &Lab, round: usize, what: &str) {
    const N: usize = 150;
    let before = tun_packets(lab);
    let mut packets = 0u64;
    for vip in [lab::vip(80), lab::vip6(80)] {
        // Two keep-alive connections (rr: one per real server, one per method): the handshake and the first
        // request on the slow path, which offers the connection; then N requests each.
        let seen = lab
            .in_client(move || -> rvs_lab::Result<Vec<(String, usize)>> {
                let mut conns = Vec::new();
                for _ in 0..2 {
                    let mut c = client::HttpConn::connect(vip, Duration::from_secs(5))?;
                    let (name, _) = c.get(Connection::KeepAlive)?.who()?;
                    conns.push((c, name));
                }
                std::thread::sleep(Duration::from_millis(500));
                Ok(conns
                    .into_iter()
                    .map(|(mut c, name)| {
                        (
                            name,
                            (0..N)
                                .filter(|_| c.get(Connection::KeepAlive).is_ok())
                                .count(),
                        )
                    })
                    .collect())
            })
            .unwrap_or_else(|e| panic!("keep-alive via {vip}: {e}\n{}", diagnostics(lab)));
        let mut names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["rs1", "rs2"], "{vip}: one connection per method");
        for (name, ok) in &seen {
            assert_eq!(*ok, N, "{vip} via {name}: every request answered");
        }
        packets += 4 * N as u64; // at least a request and an ACK of the answer per request, two connections
    }
    for vip in [lab::vip(53), lab::vip6(53)] {
        let seen = lab
            .in_client(move || -> rvs_lab::Result<Vec<(String, usize)>> {
                let any: SocketAddr = if vip.is_ipv6() {
                    "[::]:0".parse().expect("addr")
                } else {
                    "0.0.0.0:0".parse().expect("addr")
                };
                let mut socks = Vec::new();
                for _ in 0..2 {
                    let s = std::net::UdpSocket::bind(any)
                        .map_err(rvs_lab::error::LabError::io("udp bind"))?;
                    let (name, _, _) =
                        client::udp_query_on(&s, vip, b"first", Duration::from_secs(5))?;
                    socks.push((s, name));
                }
                std::thread::sleep(Duration::from_millis(500));
                Ok(socks
                    .into_iter()
                    .map(|(s, name)| {
                        let ok = (0..N)
                            .filter(|i| {
                                let q = format!("q{i}");
                                client::udp_query_on(&s, vip, q.as_bytes(), Duration::from_secs(2))
                                    .is_ok_and(|(n, _, echoed)| n == name && echoed == q.as_bytes())
                            })
                            .count();
                        (name, ok)
                    })
                    .collect())
            })
            .unwrap_or_else(|e| panic!("UDP via {vip}: {e}\n{}", diagnostics(lab)));
        let mut names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["rs1", "rs2"], "{vip}: one flow per method");
        for (name, ok) in &seen {
            assert_eq!(
                *ok, N,
                "{vip} via {name}: every datagram echoed by the same server"
            );
        }
        packets += 2 * N as u64;
    }
    let through_tun = tun_packets(lab) - before;
    eprintln!(
        "route_and_tunnel_xdp ({what}): {through_tun} packets through the TUN for at least {packets} client packets"
    );
    assert!(
        through_tun < packets / 10,
        "{what}: {through_tun} of at least {packets} client packets went through rvsd's TUN\n{}",
        diagnostics(lab)
    );
    // The fast path's packets are credited to the services (once a second): every client packet counted, no reply.
    std::thread::sleep(Duration::from_millis(2500));
    for (p, vip, n) in [
        ("TCP", v4(80), round * 2 * 2 * N),
        ("TCP", v6(80), round * 2 * 2 * N),
        ("UDP", v4(53), round * 2 * N),
        ("UDP", v6(53), round * 2 * N),
    ] {
        let (inpkts, outpkts) = service_packets(lab, p, &vip);
        assert!(
            inpkts >= n as u64,
            "{what}: {p} {vip}: InPkts {inpkts} < {n}"
        );
        assert_eq!(outpkts, 0, "{p} {vip}: no reply crosses the director");
    }
}
