//! Direct routing and tunnelling in the XDP program, through BPF_PROG_TEST_RUN with byte fixtures.
//!
//! - Direct routing: the frame leaves with the real server's MAC and the IP packet byte for byte as it came (no TTL
//!   spent: IPVS takes the packet at LOCAL_IN).
//! - Tunnelling: what the program pushes is compared byte for byte with what the slow path builds for the same
//!   packet (`rvs_wire::encap::encapsulate`, the code rvsd's workers send): IPIP, IPv6-in-IPv6, GUE and GRE, each
//!   with ipvsadm's checksum options (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`: the outer UDP/GRE checksum the
//!   program derives in O(1) from the inner checksum equals the slow path's full sum), IPv4 and IPv6 inner
//!   packets, IPv4 and IPv6 outer headers, TOS/ECN and DF carried over. The outer IPv4 header's
//!   identification is the only field the two paths pick on their own, so it is read from the program's output.
//! - A packet that would not fit the egress MTU once encapsulated goes up unmodified (the slow path answers it).
//!
//! Needs root (CAP_BPF): FAILS under CI=true without it, skips (printing why) otherwise.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;
use rvs_wire::encap::{self, Outer, TunnelConfig, TunnelCsum, TunnelKind};
use rvs_xdp::testrun::{XDP_PASS, XDP_REDIRECT};
use rvs_xdp::{Egress, Encap, FastPath, Flow, FlowKey, L4, Options, OuterCsum, Program, Stat};

fn fast_path(test: &str) -> Option<FastPath> {
    if !common::may_load_bpf(test) {
        return None;
    }
    let mut fp = FastPath::load(Options {
        max_flow_entries: 1024,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{test}: loading the fast path: {e}"));
    fp.add_egress(LO).unwrap();
    Some(fp)
}

const LO: u32 = 1;
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const PUB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const PRIV_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const ETH: usize = 14;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn egress(mtu: u16) -> Egress {
    Egress {
        ifindex: LO,
        dst_mac: RS_MAC,
        src_mac: PRIV_MAC,
        mtu,
    }
}

/// A client frame (TCP ACK or UDP) of `len` payload bytes, with the IP TOS / traffic class `tos` and DF (IPv4).
fn frame(proto: L4, src: SocketAddr, dst: SocketAddr, tos: u8, df: bool, len: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(29) ^ 0x5a)
        .collect();
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, PUB_MAC);
    let mut out = Vec::new();
    macro_rules! l4 {
        ($ip:expr) => {
            match proto {
                L4::Udp => $ip
                    .udp(src.port(), dst.port())
                    .write(&mut out, &body)
                    .unwrap(),
                L4::Tcp => $ip
                    .tcp(src.port(), dst.port(), 7, 64240)
                    .ack(9)
                    .write(&mut out, &body)
                    .unwrap(),
            }
        };
    }
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => l4!(eth.ipv4(a.octets(), b.octets(), 57)),
        (IpAddr::V6(a), IpAddr::V6(b)) => l4!(eth.ipv6(a.octets(), b.octets(), 57)),
        _ => panic!("mixed families"),
    }
    if src.is_ipv4() {
        out[ETH + 1] = tos;
        out[ETH + 6] = if df {
            out[ETH + 6] | 0x40
        } else {
            out[ETH + 6] & !0x40
        };
        out[ETH + 10..ETH + 12].fill(0);
        let c = rvs_wire::checksum::ipv4_header(&out[ETH..ETH + 20]);
        out[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        out[ETH] = 0x60 | (tos >> 4);
        out[ETH + 1] = (out[ETH + 1] & 0x0f) | (tos << 4);
    }
    out
}

fn stat(fp: &FastPath, s: Stat) -> u64 {
    fp.stats().unwrap()[s as usize]
}

fn direct(test: &str, proto: L4, cip: &str, vip: &str) {
    let Some(mut fp) = fast_path(test) else {
        return;
    };
    let (c, v) = (sa(cip), sa(vip));
    let k = FlowKey::new(proto, c, v).unwrap();
    fp.insert(&k, &Flow::direct(&k, egress(1500))).unwrap();
    let f = frame(proto, c, v, 0x2e, true, 700);
    let r = fp.test_run(Program::FastPath, &f, 1).unwrap();
    assert_eq!(r.action, XDP_REDIRECT, "{test}: forwarded");
    assert_eq!(&r.data[..6], &RS_MAC, "{test}: to the real server's MAC");
    assert_eq!(&r.data[6..12], &PRIV_MAC, "{test}: from the egress");
    assert_eq!(
        &r.data[12..],
        &f[12..],
        "{test}: the IP packet leaves as it came (TTL too)"
    );
    let l3 = (f.len() - ETH) as u64;
    let n = fp.counters(&k).unwrap().unwrap();
    assert_eq!(
        (n.packets, n.bytes),
        (1, l3),
        "{test}: counted on the entry"
    );
    assert!(n.last_seen_ns > 0);
    assert_eq!(stat(&fp, Stat::Forwarded), 1);
}

#[test]
fn direct_routing_tcp_v4_changes_only_the_frame() {
    direct(
        "direct_routing_tcp_v4_changes_only_the_frame",
        L4::Tcp,
        "198.51.100.10:40000",
        "198.51.100.100:80",
    );
}

#[test]
fn direct_routing_udp_v6_changes_only_the_frame() {
    direct(
        "direct_routing_udp_v6_changes_only_the_frame",
        L4::Udp,
        "[2001:db8:1::10]:40000",
        "[2001:db8:1::100]:53",
    );
}

/// The slow path's tunnel configuration and the program's encapsulation for each `--tun-type` and checksum option
/// (`--tun-remcsum` is GUE's checksum for complete inner checksums; GRE ignores it, as IPVS does).
fn kinds(gue_sport: u16) -> Vec<(TunnelConfig, Encap)> {
    let gue = |csum, outer| {
        (
            TunnelConfig {
                kind: TunnelKind::Gue,
                port: 6080,
                csum,
            },
            Encap::Gue {
                sport: gue_sport,
                dport: 6080,
                csum: outer,
            },
        )
    };
    let gre = |csum, outer| {
        (
            TunnelConfig {
                kind: TunnelKind::Gre,
                port: 0,
                csum,
            },
            Encap::Gre { csum: outer },
        )
    };
    vec![
        (TunnelConfig::default(), Encap::Ip),
        gue(TunnelCsum::NoCsum, OuterCsum::None),
        gue(TunnelCsum::Csum, OuterCsum::Full),
        gue(TunnelCsum::RemCsum, OuterCsum::Full),
        gre(TunnelCsum::NoCsum, OuterCsum::None),
        gre(TunnelCsum::Csum, OuterCsum::Full),
        gre(TunnelCsum::RemCsum, OuterCsum::None),
    ]
}

/// Every encapsulation of one client packet equals the slow path's, byte for byte.
fn tunnel_matches_slow_path(test: &str, proto: L4, cip: &str, vip: &str, dsrc: &str, rip: &str) {
    let Some(mut fp) = fast_path(test) else {
        return;
    };
    let (c, v, src, dst) = (sa(cip), sa(vip), ip(dsrc), ip(rip));
    let k = FlowKey::new(proto, c, v).unwrap();
    let hash = 0x1234_abcd_u32;
    let gue_sport = encap::flow_src_port(hash);
    // tos 0xbb: DSCP 0x2e with ECN CE, which the outer header carries as ECT(0).
    for (df, tos) in [(true, 0xbb), (false, 0x01)] {
        for (tun, e) in kinds(gue_sport) {
            fp.insert(&k, &Flow::tunnel(e, src, dst, egress(1500)).unwrap())
                .unwrap();
            let f = frame(proto, c, v, tos, df, 300);
            let r = fp.test_run(Program::FastPath, &f, 1).unwrap();
            assert_eq!(r.action, XDP_REDIRECT, "{test} {tun:?}: forwarded");
            assert_eq!(&r.data[..6], &RS_MAC, "{test}");
            assert_eq!(&r.data[6..12], &PRIV_MAC, "{test}");
            let ethertype: [u8; 2] = if dst.is_ipv4() { [8, 0] } else { [0x86, 0xdd] };
            assert_eq!(
                &r.data[12..14],
                &ethertype,
                "{test} {tun:?}: outer ethertype"
            );
            let ident = u16::from_be_bytes([r.data[ETH + 4], r.data[ETH + 5]]);
            let outer = Outer {
                src,
                dst,
                ident: if dst.is_ipv4() { ident } else { 0 },
                flow_hash: hash,
            };
            let mut want = vec![0u8; f.len() + encap::MAX_OVERHEAD];
            let n = encap::encapsulate(&f[ETH..], &tun, &outer, &mut want).unwrap();
            assert_eq!(
                &r.data[ETH..],
                &want[..n],
                "{test} {tun:?} df={df} tos={tos:#x}: the slow path's bytes"
            );
            let got = fp.counters(&k).unwrap().unwrap();
            assert_eq!(
                got.bytes,
                (f.len() - ETH) as u64,
                "{test}: inner bytes counted"
            );
            fp.remove(&k).unwrap();
        }
    }
}

#[test]
fn ipip_gue_gre_v4_in_v4_tcp_as_the_slow_path() {
    tunnel_matches_slow_path(
        "ipip_gue_gre_v4_in_v4_tcp_as_the_slow_path",
        L4::Tcp,
        "198.51.100.10:40000",
        "198.51.100.100:80",
        "203.0.113.1",
        "203.0.113.11",
    );
}

#[test]
fn ipip_gue_gre_v4_in_v4_udp_as_the_slow_path() {
    tunnel_matches_slow_path(
        "ipip_gue_gre_v4_in_v4_udp_as_the_slow_path",
        L4::Udp,
        "198.51.100.10:40000",
        "198.51.100.100:53",
        "203.0.113.1",
        "203.0.113.12",
    );
}

#[test]
fn six_in_six_gue_gre_tcp_as_the_slow_path() {
    tunnel_matches_slow_path(
        "six_in_six_gue_gre_tcp_as_the_slow_path",
        L4::Tcp,
        "[2001:db8:1::10]:40000",
        "[2001:db8:1::100]:80",
        "2001:db8:2::1",
        "2001:db8:2::11",
    );
}

#[test]
fn v6_in_v4_and_v4_in_v6_udp_as_the_slow_path() {
    let t = "v6_in_v4_and_v4_in_v6_udp_as_the_slow_path";
    tunnel_matches_slow_path(
        t,
        L4::Udp,
        "[2001:db8:1::10]:40000",
        "[2001:db8:1::100]:53",
        "203.0.113.1",
        "203.0.113.11",
    );
    tunnel_matches_slow_path(
        t,
        L4::Udp,
        "198.51.100.10:40000",
        "198.51.100.100:53",
        "2001:db8:2::1",
        "2001:db8:2::11",
    );
}

/// A packet that fits the egress but not once encapsulated goes up as it came; one byte less is forwarded.
#[test]
fn too_big_once_encapsulated_goes_up_unmodified() {
    let Some(mut fp) = fast_path("too_big_once_encapsulated_goes_up_unmodified") else {
        return;
    };
    let (c, v) = (sa("198.51.100.10:40000"), sa("198.51.100.100:80"));
    let k = FlowKey::new(L4::Tcp, c, v).unwrap();
    for (e, overhead, dst) in [
        (Encap::Ip, 20, "203.0.113.11"),
        (
            Encap::Gre {
                csum: OuterCsum::None,
            },
            24,
            "203.0.113.11",
        ),
        (
            Encap::Gre {
                csum: OuterCsum::Full,
            },
            28,
            "203.0.113.11",
        ),
        (
            Encap::Gue {
                sport: 40000,
                dport: 6080,
                csum: OuterCsum::None,
            },
            52,
            "2001:db8:2::11",
        ),
    ] {
        let src = if dst.contains(':') {
            "2001:db8:2::1"
        } else {
            "203.0.113.1"
        };
        fp.insert(
            &k,
            &Flow::tunnel(e, ip(src), ip(dst), egress(1500)).unwrap(),
        )
        .unwrap();
        // IP length = 20 + 20 (TCP) + payload.
        let fits = 1500 - overhead - 40;
        let before = stat(&fp, Stat::PassMtu);
        let big = frame(L4::Tcp, c, v, 0, true, fits + 1);
        let r = fp.test_run(Program::FastPath, &big, 1).unwrap();
        assert_eq!(r.action, XDP_PASS, "{e:?}: one byte too big");
        assert_eq!(r.data, big, "{e:?}: passed up unmodified");
        assert_eq!(stat(&fp, Stat::PassMtu), before + 1);
        let ok = frame(L4::Tcp, c, v, 0, true, fits);
        let r = fp.test_run(Program::FastPath, &ok, 1).unwrap();
        assert_eq!(r.action, XDP_REDIRECT, "{e:?}: just fits");
        assert_eq!(r.data.len(), ok.len() + overhead, "{e:?}");
        fp.remove(&k).unwrap();
    }
}

/// An IPv4 UDP datagram without a checksum (0) gives no inner sum to derive the outer checksum from: with a
/// checksum option it goes up unmodified (the slow path sums it in full); without one it is forwarded.
#[test]
fn a_udp_datagram_without_checksum_goes_up_for_a_checksummed_tunnel() {
    let Some(mut fp) =
        fast_path("a_udp_datagram_without_checksum_goes_up_for_a_checksummed_tunnel")
    else {
        return;
    };
    let (c, v) = (sa("198.51.100.10:40000"), sa("198.51.100.100:53"));
    let k = FlowKey::new(L4::Udp, c, v).unwrap();
    let mut f = frame(L4::Udp, c, v, 0, true, 100);
    f[ETH + 26..ETH + 28].fill(0);
    let (src, dst) = (ip("203.0.113.1"), ip("203.0.113.11"));
    for (csum, kind) in [(OuterCsum::Full, "gue"), (OuterCsum::Full, "gre")] {
        let e = if kind == "gue" {
            Encap::Gue {
                sport: 40000,
                dport: 6080,
                csum,
            }
        } else {
            Encap::Gre { csum }
        };
        fp.insert(&k, &Flow::tunnel(e, src, dst, egress(1500)).unwrap())
            .unwrap();
        let r = fp.test_run(Program::FastPath, &f, 1).unwrap();
        assert_eq!(r.action, XDP_PASS, "{kind}: passed up");
        assert_eq!(r.data, f, "{kind}: unmodified");
    }
    assert_eq!(stat(&fp, Stat::PassAction), 2);
    let e = Encap::Gue {
        sport: 40000,
        dport: 6080,
        csum: OuterCsum::None,
    };
    fp.insert(&k, &Flow::tunnel(e, src, dst, egress(1500)).unwrap())
        .unwrap();
    let r = fp.test_run(Program::FastPath, &f, 1).unwrap();
    assert_eq!(r.action, XDP_REDIRECT, "no outer checksum: forwarded");
    assert_eq!(
        &r.data[ETH + 32..],
        &f[ETH..],
        "the inner datagram as it came"
    );
}

/// What the state machine must see still goes up for these methods too (SYN, FIN, RST), unmodified.
#[test]
fn handshake_and_teardown_go_up_for_direct_and_tunnel() {
    let Some(mut fp) = fast_path("handshake_and_teardown_go_up_for_direct_and_tunnel") else {
        return;
    };
    let (c, v) = (sa("198.51.100.10:40000"), sa("198.51.100.100:80"));
    let k = FlowKey::new(L4::Tcp, c, v).unwrap();
    for flow in [
        Flow::direct(&k, egress(1500)),
        Flow::tunnel(
            Encap::Ip,
            ip("203.0.113.1"),
            ip("203.0.113.11"),
            egress(1500),
        )
        .unwrap(),
    ] {
        fp.insert(&k, &flow).unwrap();
        for flags in [0x02u8, 0x11, 0x04] {
            let mut f = frame(L4::Tcp, c, v, 0, true, 10);
            let th = ETH + 20;
            f[th + 13] = flags;
            // Fix the TCP checksum for the changed flags (complete checksums, as a NIC delivers).
            let old = u16::from_be_bytes([f[th + 12], 0x10]);
            let new = u16::from_be_bytes([f[th + 12], flags]);
            let c0 = u16::from_be_bytes([f[th + 16], f[th + 17]]);
            let s = u32::from(!c0) + u32::from(!old) + u32::from(new);
            let s = (s & 0xffff) + (s >> 16);
            let c1 = !(((s & 0xffff) + (s >> 16)) as u16);
            f[th + 16..th + 18].copy_from_slice(&c1.to_be_bytes());
            let r = fp.test_run(Program::FastPath, &f, 1).unwrap();
            assert_eq!(r.action, XDP_PASS, "flags {flags:#x}");
            assert_eq!(r.data, f);
        }
    }
    assert_eq!(stat(&fp, Stat::PassTcpFlags), 6);
    assert_eq!(stat(&fp, Stat::Forwarded), 0);
}

/// Time per packet of each method in one run (BPF_PROG_TEST_RUN, one repetition per run: an encapsulated packet
/// cannot be run again as it is), beside NAT and an empty program. A figure, printed (`--nocapture`); the test
/// asserts only that every measured run was forwarded.
#[test]
fn time_per_packet_by_method() {
    let Some(mut fp) = fast_path("time_per_packet_by_method") else {
        return;
    };
    let (c, v, r) = (
        sa("198.51.100.10:40000"),
        sa("198.51.100.100:80"),
        sa("203.0.113.11:80"),
    );
    let k = FlowKey::new(L4::Tcp, c, v).unwrap();
    let pkt = frame(L4::Tcp, c, v, 0, true, 64);
    let (d4, r4) = (ip("203.0.113.1"), ip("203.0.113.11"));
    let flows = [
        ("masq", Flow::new(&k, c, r, egress(1500)).unwrap()),
        ("dr", Flow::direct(&k, egress(1500))),
        (
            "ipip",
            Flow::tunnel(Encap::Ip, d4, r4, egress(1500)).unwrap(),
        ),
        (
            "gue",
            Flow::tunnel(
                Encap::Gue {
                    sport: 40000,
                    dport: 6080,
                    csum: OuterCsum::None,
                },
                d4,
                r4,
                egress(1500),
            )
            .unwrap(),
        ),
        (
            "gre",
            Flow::tunnel(
                Encap::Gre {
                    csum: OuterCsum::None,
                },
                d4,
                r4,
                egress(1500),
            )
            .unwrap(),
        ),
        (
            "gue-csum",
            Flow::tunnel(
                Encap::Gue {
                    sport: 40000,
                    dport: 6080,
                    csum: OuterCsum::Full,
                },
                d4,
                r4,
                egress(1500),
            )
            .unwrap(),
        ),
        (
            "gre-csum",
            Flow::tunnel(
                Encap::Gre {
                    csum: OuterCsum::Full,
                },
                d4,
                r4,
                egress(1500),
            )
            .unwrap(),
        ),
    ];
    const RUNS: u32 = 3000;
    let mut out = Vec::new();
    // Interleaved: each round measures every method once, so load changes hit all of them alike.
    let mut total = vec![0u64; flows.len() + 1];
    for _ in 0..RUNS {
        for (i, (_, f)) in flows.iter().enumerate() {
            fp.insert(&k, f).unwrap();
            let run = fp.test_run(Program::FastPath, &pkt, 1).unwrap();
            assert_eq!(run.action, XDP_REDIRECT);
            total[i] += u64::from(run.duration_ns);
        }
        total[flows.len()] += u64::from(fp.test_run(Program::Empty, &pkt, 1).unwrap().duration_ns);
    }
    let mean = |i: usize| total[i] as f64 / f64::from(RUNS);
    for (i, (name, _)) in flows.iter().enumerate() {
        out.push(format!(
            "{name} {:.0} ns ({:.2}x masq)",
            mean(i),
            mean(i) / mean(0)
        ));
    }
    let s = fp.program_stats(Program::FastPath).unwrap();
    println!(
        "per packet, one repetition per run, {RUNS} interleaved rounds: {}; empty program {:.0} ns; program {} xlated insns ({} verified)",
        out.join(", "),
        mean(flows.len()),
        s.xlated_insns,
        s.verified_insns
    );
}
