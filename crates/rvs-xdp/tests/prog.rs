//! The XDP program through BPF_PROG_TEST_RUN with byte fixtures: rewrites in both directions checked by an
//! independent parser (etherparse), every pass-up case, counters and last-seen. Nothing is attached anywhere.
//!
//! Needs root (CAP_BPF): FAILS under CI=true without it, skips (printing why) otherwise. As root a load failure
//! (the verifier refusing the program) is always a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rvs_xdp::testrun::{XDP_DROP, XDP_PASS, XDP_REDIRECT};
use rvs_xdp::{Egress, FastPath, Flow, FlowKey, L4, Options, Program, Stat};

fn fast_path(test: &str) -> Option<FastPath> {
    if !common::may_load_bpf(test) {
        return None;
    }
    Some(
        FastPath::load(Options {
            max_flow_entries: 1024,
            ..Options::default()
        })
        .unwrap_or_else(|e| panic!("{test}: loading the fast path: {e}")),
    )
}

const LO: u32 = 1;
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const PUB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const PRIV_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A NAT connection CIP -> VIP rewritten to RIP, as rvsd would install it: (in key, in flow, out key, out flow).
fn connection(proto: L4, cip: &str, vip: &str, rip: &str, mtu: u16) -> [(FlowKey, Flow); 2] {
    let (c, v, r) = (sa(cip), sa(vip), sa(rip));
    let to_rs = Egress {
        ifindex: LO,
        dst_mac: RS_MAC,
        src_mac: PRIV_MAC,
        mtu,
    };
    let to_client = Egress {
        ifindex: LO,
        dst_mac: CLIENT_MAC,
        src_mac: PUB_MAC,
        mtu,
    };
    let kin = FlowKey::new(proto, c, v).unwrap();
    let kout = FlowKey::new(proto, r, c).unwrap();
    [
        (kin, Flow::new(&kin, c, r, to_rs).unwrap()),
        (kout, Flow::new(&kout, v, c, to_client).unwrap()),
    ]
}

fn install(fp: &mut FastPath, entries: &[(FlowKey, Flow)]) {
    fp.add_egress(LO).unwrap();
    for (k, f) in entries {
        fp.insert(k, f).unwrap();
    }
}

#[derive(Clone, Copy)]
enum Tcp {
    Ack,
    Syn,
    Fin,
    Rst,
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

fn frame(proto: L4, src: &str, dst: &str, ttl: u8, flags: Tcp, body: &[u8]) -> Vec<u8> {
    let (s, d) = (sa(src), sa(dst));
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, PUB_MAC);
    let mut out = Vec::new();
    macro_rules! l4 {
        ($ip:expr) => {
            match proto {
                L4::Udp => $ip.udp(s.port(), d.port()).write(&mut out, body).unwrap(),
                L4::Tcp => {
                    let t = $ip.tcp(s.port(), d.port(), 0x1234_5678, 64240);
                    let t = match flags {
                        Tcp::Ack => t.ack(42),
                        Tcp::Syn => t.syn(),
                        Tcp::Fin => t.ack(42).fin(),
                        Tcp::Rst => t.rst(),
                    };
                    t.write(&mut out, body).unwrap()
                }
            }
        };
    }
    match (s.ip(), d.ip()) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            l4!(eth.ipv4(a.octets(), b.octets(), ttl))
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
            l4!(eth.ipv6(a.octets(), b.octets(), ttl))
        }
        _ => panic!("mixed families"),
    }
    out
}

/// What an independent parser sees in a frame, with every checksum verified.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    ttl: u8,
    payload: Vec<u8>,
}

fn parse_verified(data: &[u8]) -> Seen {
    let p = SlicedPacket::from_ethernet(data).unwrap();
    let eth = match p.link.unwrap() {
        etherparse::LinkSlice::Ethernet2(e) => e,
        other => panic!("not ethernet: {other:?}"),
    };
    let (sip, dip, ttl): (std::net::IpAddr, std::net::IpAddr, u8);
    let (mut s4, mut d4, mut s6, mut d6) = ([0u8; 4], [0u8; 4], [0u8; 16], [0u8; 16]);
    let v4 = match p.net.as_ref().unwrap() {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            assert_eq!(
                h.header_checksum(),
                h.to_header().calc_header_checksum(),
                "IPv4 header checksum"
            );
            (s4, d4) = (h.source(), h.destination());
            (sip, dip, ttl) = (s4.into(), d4.into(), h.ttl());
            true
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            (s6, d6) = (h.source(), h.destination());
            (sip, dip, ttl) = (s6.into(), d6.into(), h.hop_limit());
            false
        }
        NetSlice::Arp(_) => panic!("arp"),
    };
    let (sport, dport, body) = match p.transport.unwrap() {
        TransportSlice::Tcp(t) => {
            let want = if v4 {
                t.calc_checksum_ipv4(s4, d4).unwrap()
            } else {
                t.calc_checksum_ipv6(s6, d6).unwrap()
            };
            assert_eq!(t.checksum(), want, "TCP checksum");
            (t.source_port(), t.destination_port(), t.payload().to_vec())
        }
        TransportSlice::Udp(u) => {
            let h = u.to_header();
            if v4 && h.checksum == 0 {
                // no checksum: stays so
            } else {
                let want = if v4 {
                    h.calc_checksum_ipv4_raw(s4, d4, u.payload()).unwrap()
                } else {
                    h.calc_checksum_ipv6_raw(s6, d6, u.payload()).unwrap()
                };
                assert_eq!(h.checksum, want, "UDP checksum");
            }
            (h.source_port, h.destination_port, u.payload().to_vec())
        }
        other => panic!("unexpected transport {other:?}"),
    };
    Seen {
        dst_mac: eth.destination(),
        src_mac: eth.source(),
        src: SocketAddr::new(sip, sport),
        dst: SocketAddr::new(dip, dport),
        ttl,
        payload: body,
    }
}

fn stat(fp: &FastPath, s: Stat) -> u64 {
    fp.stats().unwrap()[s as usize]
}

/// One connection both ways: the client's packet leaves towards the real server, the reply towards the client.
fn both_directions(test: &str, proto: L4, cip: &str, vip: &str, rip: &str) {
    let Some(mut fp) = fast_path(test) else {
        return;
    };
    install(&mut fp, &connection(proto, cip, vip, rip, 1500));
    let body = payload(333, 7);

    let r = fp
        .test_run(
            Program::FastPath,
            &frame(proto, cip, vip, 64, Tcp::Ack, &body),
            1,
        )
        .unwrap();
    assert_eq!(r.action, XDP_REDIRECT, "client -> VIP forwarded");
    let seen = parse_verified(&r.data);
    assert_eq!(
        seen,
        Seen {
            dst_mac: RS_MAC,
            src_mac: PRIV_MAC,
            src: sa(cip),
            dst: sa(rip),
            ttl: 63,
            payload: body.clone(),
        }
    );

    let r = fp
        .test_run(
            Program::FastPath,
            &frame(proto, rip, cip, 64, Tcp::Ack, &body),
            1,
        )
        .unwrap();
    assert_eq!(r.action, XDP_REDIRECT, "real server -> client forwarded");
    let seen = parse_verified(&r.data);
    assert_eq!(
        seen,
        Seen {
            dst_mac: CLIENT_MAC,
            src_mac: PUB_MAC,
            src: sa(vip),
            dst: sa(cip),
            ttl: 63,
            payload: body,
        }
    );
    assert_eq!(stat(&fp, Stat::Forwarded), 2);
}

#[test]
fn tcp_v4_rewritten_both_ways() {
    both_directions(
        "tcp_v4_rewritten_both_ways",
        L4::Tcp,
        "198.51.100.10:40000",
        "198.51.100.100:80",
        "203.0.113.11:8080",
    );
}

#[test]
fn udp_v4_rewritten_both_ways() {
    both_directions(
        "udp_v4_rewritten_both_ways",
        L4::Udp,
        "198.51.100.10:40001",
        "198.51.100.100:5001",
        "203.0.113.12:5001",
    );
}

#[test]
fn tcp_v6_rewritten_both_ways() {
    both_directions(
        "tcp_v6_rewritten_both_ways",
        L4::Tcp,
        "[2001:db8:1::10]:40000",
        "[2001:db8:1::100]:80",
        "[2001:db8:2::11]:8080",
    );
}

#[test]
fn udp_v6_rewritten_both_ways() {
    both_directions(
        "udp_v6_rewritten_both_ways",
        L4::Udp,
        "[2001:db8:1::10]:40002",
        "[2001:db8:1::100]:53",
        "[2001:db8:2::12]:5353",
    );
}

/// Checksums stay right for any addresses, ports and payload (the one's-complement edge cases included).
#[test]
fn checksums_hold_over_many_random_rewrites() {
    let Some(mut fp) = fast_path("checksums_hold_over_many_random_rewrites") else {
        return;
    };
    fp.add_egress(LO).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..300 {
        let r = next();
        let proto = if i % 2 == 0 { L4::Tcp } else { L4::Udp };
        let v6 = i % 3 == 0;
        let addr = |r: u64, v6: bool| -> String {
            if v6 {
                format!(
                    "2001:db8:{:x}:{:x}::{:x}",
                    r & 0xffff,
                    (r >> 16) & 0xffff,
                    (r >> 32) & 0xffff
                )
            } else {
                format!("198.18.{}.{}", (r >> 8) & 0xff, r & 0xff)
            }
        };
        let port = |r: u64| (r as u16).max(1);
        let fmt = |a: String, p: u16, v6: bool| {
            if v6 {
                format!("[{a}]:{p}")
            } else {
                format!("{a}:{p}")
            }
        };
        let (r2, r3) = (next(), next());
        let c = fmt(addr(r, v6), port(r >> 40), v6);
        let v = fmt(addr(r2, v6), port(r2 >> 40), v6);
        let rip = fmt(addr(r3, v6), port(r3 >> 40), v6);
        if c == v || c == rip {
            continue;
        }
        let conn = connection(proto, &c, &v, &rip, 1500);
        for (k, f) in &conn {
            fp.insert(k, f).unwrap();
        }
        let body = payload((r >> 48) as usize % 200, r as u8);
        let out = fp
            .test_run(
                Program::FastPath,
                &frame(proto, &c, &v, 64, Tcp::Ack, &body),
                1,
            )
            .unwrap();
        assert_eq!(out.action, XDP_REDIRECT, "case {i}: {c} -> {v}");
        let seen = parse_verified(&out.data);
        assert_eq!((seen.src, seen.dst), (sa(&c), sa(&rip)), "case {i}");
        let back = fp
            .test_run(
                Program::FastPath,
                &frame(proto, &rip, &c, 64, Tcp::Ack, &body),
                1,
            )
            .unwrap();
        assert_eq!(back.action, XDP_REDIRECT, "case {i}: reply");
        let seen = parse_verified(&back.data);
        assert_eq!((seen.src, seen.dst), (sa(&v), sa(&c)), "case {i}: reply");
        for (k, _) in &conn {
            fp.remove(k).unwrap();
        }
    }
}

#[test]
fn udp_v4_without_checksum_stays_without() {
    let Some(mut fp) = fast_path("udp_v4_without_checksum_stays_without") else {
        return;
    };
    let (c, v, r) = (
        "198.51.100.10:40003",
        "198.51.100.100:5001",
        "203.0.113.11:5001",
    );
    install(&mut fp, &connection(L4::Udp, c, v, r, 1500));
    let mut f = frame(L4::Udp, c, v, 64, Tcp::Ack, &payload(64, 1));
    f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
    let out = fp.test_run(Program::FastPath, &f, 1).unwrap();
    assert_eq!(out.action, XDP_REDIRECT);
    assert_eq!(&out.data[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    assert_eq!(parse_verified(&out.data).dst, sa(r));
}

/// Recompute an IPv4 header checksum after a test edited the header (at `ip`).
fn fix_ipv4_checksum(f: &mut [u8], ip: usize) {
    let ihl = usize::from(f[ip] & 0xf) * 4;
    f[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
    let mut s: u32 = f[ip..ip + ihl]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    f[ip + 10..ip + 12].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

/// Every packet the program must not touch: it returns XDP_PASS, the bytes are unchanged, the reason is counted.
#[test]
fn everything_else_passes_up_unmodified() {
    let Some(mut fp) = fast_path("everything_else_passes_up_unmodified") else {
        return;
    };
    let (c, v, r) = (
        "198.51.100.10:40000",
        "198.51.100.100:80",
        "203.0.113.11:8080",
    );
    let (c6, v6, r6) = (
        "[2001:db8:1::10]:40000",
        "[2001:db8:1::100]:80",
        "[2001:db8:2::11]:8080",
    );
    install(&mut fp, &connection(L4::Tcp, c, v, r, 1000));
    install(&mut fp, &connection(L4::Tcp, c6, v6, r6, 1000));
    install(&mut fp, &connection(L4::Udp, c6, v6, r6, 1000));
    let body = payload(100, 3);
    let tcp = frame(L4::Tcp, c, v, 64, Tcp::Ack, &body);
    let mut cases: Vec<(&str, Vec<u8>, Stat)> = vec![
        (
            "miss (other client port)",
            frame(L4::Tcp, "198.51.100.10:40009", v, 64, Tcp::Ack, &body),
            Stat::PassMiss,
        ),
        (
            "miss (UDP on a TCP connection's ports)",
            frame(L4::Udp, c, v, 64, Tcp::Ack, &body),
            Stat::PassMiss,
        ),
        (
            "SYN",
            frame(L4::Tcp, c, v, 64, Tcp::Syn, &body),
            Stat::PassTcpFlags,
        ),
        (
            "FIN",
            frame(L4::Tcp, c, v, 64, Tcp::Fin, &body),
            Stat::PassTcpFlags,
        ),
        (
            "RST",
            frame(L4::Tcp, r, c, 64, Tcp::Rst, &[]),
            Stat::PassTcpFlags,
        ),
        (
            "TTL 1",
            frame(L4::Tcp, c, v, 1, Tcp::Ack, &body),
            Stat::PassTtl,
        ),
        (
            "TTL 0",
            frame(L4::Tcp, c, v, 0, Tcp::Ack, &body),
            Stat::PassTtl,
        ),
        (
            "hop limit 1",
            frame(L4::Tcp, c6, v6, 1, Tcp::Ack, &body),
            Stat::PassTtl,
        ),
        (
            "over the egress MTU",
            frame(L4::Tcp, c, v, 64, Tcp::Ack, &payload(1000, 9)),
            Stat::PassMtu,
        ),
        (
            "over the egress MTU (v6)",
            frame(L4::Tcp, c6, v6, 64, Tcp::Ack, &payload(1000, 9)),
            Stat::PassMtu,
        ),
        // (A frame shorter than an Ethernet header cannot be test-run: the kernel refuses it, as drivers do.)
        (
            "truncated IPv4",
            tcp[..14 + 12].to_vec(),
            Stat::PassMalformed,
        ),
        (
            "truncated TCP",
            tcp[..14 + 20 + 10].to_vec(),
            Stat::PassMalformed,
        ),
        (
            "IPv4 total length beyond the frame",
            tcp[..tcp.len() - 1].to_vec(),
            Stat::PassMalformed,
        ),
    ];
    // ARP.
    let mut arp = tcp.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    cases.push(("ARP", arp, Stat::PassNotIp));
    // ICMP (protocol 1) to the VIP.
    let mut icmp = tcp.clone();
    icmp[14 + 9] = 1;
    fix_ipv4_checksum(&mut icmp, 14);
    cases.push(("ICMP", icmp, Stat::PassProto));
    // Fragments: more-fragments set, and a non-zero offset.
    for (what, flags) in [
        ("first fragment (MF)", [0x20u8, 0x00]),
        ("later fragment (offset)", [0x00, 0x10]),
    ] {
        let mut f = tcp.clone();
        f[14 + 6..14 + 8].copy_from_slice(&flags);
        fix_ipv4_checksum(&mut f, 14);
        cases.push((what, f, Stat::PassFragment));
    }
    // IPv4 options: four NOPs inserted after the fixed header.
    let mut opt = tcp[..14 + 20].to_vec();
    opt.extend_from_slice(&[1, 1, 1, 1]);
    opt.extend_from_slice(&tcp[14 + 20..]);
    opt[14] = 0x46;
    let tot = u16::from_be_bytes([opt[16], opt[17]]) + 4;
    opt[16..18].copy_from_slice(&tot.to_be_bytes());
    fix_ipv4_checksum(&mut opt, 14);
    cases.push(("IPv4 options", opt, Stat::PassOptions));
    // IPv6 with a hop-by-hop header (8 bytes of PadN) before TCP.
    let t6 = frame(L4::Tcp, c6, v6, 64, Tcp::Ack, &body);
    let mut ext = t6[..14 + 40].to_vec();
    ext.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    ext.extend_from_slice(&t6[14 + 40..]);
    ext[14 + 6] = 0; // next header: hop-by-hop
    let plen = u16::from_be_bytes([ext[14 + 4], ext[14 + 5]]) + 8;
    ext[14 + 4..14 + 6].copy_from_slice(&plen.to_be_bytes());
    cases.push(("IPv6 extension header", ext, Stat::PassOptions));
    // IPv6 UDP with a zero checksum (invalid in IPv6).
    let mut u6 = frame(L4::Udp, c6, v6, 64, Tcp::Ack, &body);
    u6[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&[0, 0]);
    cases.push(("IPv6 UDP without checksum", u6, Stat::PassUdpNoChecksum6));
    // ICMPv6.
    let mut icmp6 = t6.clone();
    icmp6[14 + 6] = 58;
    cases.push(("ICMPv6", icmp6, Stat::PassProto));

    for (what, pkt, why) in cases {
        let before = stat(&fp, why);
        let out = fp.test_run(Program::FastPath, &pkt, 1).unwrap();
        assert_eq!(out.action, XDP_PASS, "{what}: passed up");
        assert_eq!(out.data, pkt, "{what}: unmodified");
        assert_eq!(
            stat(&fp, why),
            before + 1,
            "{what}: counted as {}",
            why.name()
        );
    }
    assert_eq!(stat(&fp, Stat::Forwarded), 0);
    // None of them touched the connection's counters.
    for (k, _) in fp.entries() {
        assert_eq!(fp.counters(&k).unwrap().unwrap().packets, 0);
    }
}

fn coarse_monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn counters_and_last_seen_per_direction() {
    let Some(mut fp) = fast_path("counters_and_last_seen_per_direction") else {
        return;
    };
    let (c, v, r) = (
        "198.51.100.10:40000",
        "198.51.100.100:80",
        "203.0.113.11:8080",
    );
    let conn = connection(L4::Tcp, c, v, r, 1500);
    install(&mut fp, &conn);
    let (kin, kout) = (conn[0].0, conn[1].0);
    assert_eq!(
        fp.counters(&kin).unwrap().unwrap(),
        Default::default(),
        "fresh entry"
    );
    let t0 = coarse_monotonic_ns();
    let req = frame(L4::Tcp, c, v, 64, Tcp::Ack, &payload(100, 1));
    for _ in 0..3 {
        assert_eq!(
            fp.test_run(Program::FastPath, &req, 1).unwrap().action,
            XDP_REDIRECT
        );
    }
    // A packet passed up (FIN) is not the fast path's to count.
    fp.test_run(
        Program::FastPath,
        &frame(L4::Tcp, c, v, 64, Tcp::Fin, &[]),
        1,
    )
    .unwrap();
    let reply = frame(L4::Tcp, r, c, 64, Tcp::Ack, &payload(1000, 2));
    assert_eq!(
        fp.test_run(Program::FastPath, &reply, 1).unwrap().action,
        XDP_REDIRECT
    );
    let t1 = coarse_monotonic_ns();

    let cin = fp.counters(&kin).unwrap().unwrap();
    assert_eq!((cin.packets, cin.bytes), (3, 3 * (req.len() as u64 - 14)));
    assert!(
        cin.last_seen_ns >= t0 && cin.last_seen_ns <= t1,
        "{cin:?} within [{t0}, {t1}]"
    );
    let cout = fp.counters(&kout).unwrap().unwrap();
    assert_eq!((cout.packets, cout.bytes), (1, reply.len() as u64 - 14));
    assert!(cout.last_seen_ns >= t0 && cout.last_seen_ns <= t1);

    // Removing an entry hands back its last counters; its packets then go up again.
    assert_eq!(fp.remove(&kin).unwrap(), Some(cin));
    assert_eq!(fp.remove(&kin).unwrap(), None);
    assert_eq!(
        fp.test_run(Program::FastPath, &req, 1).unwrap().action,
        XDP_PASS
    );
}

/// An entry whose action this program does not implement (a newer rvsd's, through a pinned map) is never applied
/// half-way: the packet goes up unmodified and is counted; the entry's counters stay untouched.
#[test]
fn an_unknown_action_passes_up_unmodified() {
    let Some(mut fp) = fast_path("an_unknown_action_passes_up_unmodified") else {
        return;
    };
    for (c, v, r) in [
        (
            "198.51.100.10:40000",
            "198.51.100.100:80",
            "203.0.113.11:8080",
        ),
        (
            "[2001:db8:1::10]:40000",
            "[2001:db8:1::100]:80",
            "[2001:db8:2::11]:8080",
        ),
    ] {
        let [(kin, fin), out] = connection(L4::Tcp, c, v, r, 1500);
        let unknown = fin.with_action_byte(0xee, 0);
        assert_eq!(unknown.action(), None);
        install(&mut fp, &[(kin, unknown), out]);
        let pkt = frame(L4::Tcp, c, v, 64, Tcp::Ack, &payload(60, 9));
        let before = stat(&fp, Stat::PassAction);
        let run = fp.test_run(Program::FastPath, &pkt, 1).unwrap();
        assert_eq!(run.action, XDP_PASS, "{c}: passed up");
        assert_eq!(run.data, pkt, "{c}: unmodified");
        assert_eq!(stat(&fp, Stat::PassAction), before + 1, "{c}: counted");
        assert_eq!(fp.counters(&kin).unwrap().unwrap().packets, 0);
    }
    assert_eq!(stat(&fp, Stat::Forwarded), 0);
}

#[test]
fn egress_outside_the_tx_ports_is_a_counted_drop() {
    let Some(mut fp) = fast_path("egress_outside_the_tx_ports_is_a_counted_drop") else {
        return;
    };
    let conn = connection(
        L4::Udp,
        "198.51.100.10:40000",
        "198.51.100.100:5001",
        "203.0.113.11:5001",
        1500,
    );
    for (k, f) in &conn {
        fp.insert(k, f).unwrap(); // no add_egress
    }
    let out = fp
        .test_run(
            Program::FastPath,
            &frame(
                L4::Udp,
                "198.51.100.10:40000",
                "198.51.100.100:5001",
                64,
                Tcp::Ack,
                &[1; 10],
            ),
            1,
        )
        .unwrap();
    assert_eq!(out.action, XDP_DROP);
    assert_eq!(stat(&fp, Stat::DropRedirect), 1);
}

#[test]
fn a_full_map_refuses_and_keeps_what_it_has() {
    let Some(_) = fast_path("a_full_map_refuses_and_keeps_what_it_has") else {
        return;
    };
    let mut fp = FastPath::load(Options {
        max_flow_entries: 2,
        ..Options::default()
    })
    .unwrap();
    let a = connection(
        L4::Tcp,
        "198.51.100.10:1",
        "198.51.100.100:80",
        "203.0.113.11:80",
        1500,
    );
    let b = connection(
        L4::Tcp,
        "198.51.100.10:2",
        "198.51.100.100:80",
        "203.0.113.11:80",
        1500,
    );
    install(&mut fp, &a);
    assert!(matches!(
        fp.insert(&b[0].0, &b[0].1),
        Err(rvs_xdp::Error::Full)
    ));
    assert_eq!(fp.entries().len(), 2);
}

/// Instructions and time per packet, beside an empty program (printed; run with --nocapture to see them).
/// Asserts only what cannot depend on the machine: the figures exist and the fast path did forward.
#[test]
fn instructions_and_time_per_packet() {
    let Some(mut fp) = fast_path("instructions_and_time_per_packet") else {
        return;
    };
    // Two entries rewriting into each other, so every repetition hits (TTL 255 allows 254 of them).
    let (a, b) = (sa("198.51.100.10:40000"), sa("198.51.100.100:80"));
    let (c, d) = (sa("198.51.100.10:40000"), sa("203.0.113.11:8080"));
    let e = Egress {
        ifindex: LO,
        dst_mac: RS_MAC,
        src_mac: PRIV_MAC,
        mtu: 1500,
    };
    let k1 = FlowKey::new(L4::Tcp, a, b).unwrap();
    let k2 = FlowKey::new(L4::Tcp, c, d).unwrap();
    fp.add_egress(LO).unwrap();
    fp.insert(&k1, &Flow::new(&k1, c, d, e).unwrap()).unwrap();
    fp.insert(&k2, &Flow::new(&k2, a, b, e).unwrap()).unwrap();
    let pkt = frame(
        L4::Tcp,
        "198.51.100.10:40000",
        "198.51.100.100:80",
        255,
        Tcp::Ack,
        &payload(64, 5),
    );
    let mut measure = |which| {
        let mut total = 0u64;
        let rounds = 40;
        for _ in 0..rounds {
            total += u64::from(fp.test_run(which, &pkt, 250).unwrap().duration_ns);
        }
        total as f64 / f64::from(rounds)
    };
    let (fast_ns, empty_ns) = (measure(Program::FastPath), measure(Program::Empty));
    let s = fp.program_stats(Program::FastPath).unwrap();
    let e = fp.program_stats(Program::Empty).unwrap();
    let forwarded = stat(&fp, Stat::Forwarded);
    println!(
        "fast path: {} xlated insns ({} verified), {fast_ns:.0} ns/packet; empty program: {} insns, {empty_ns:.0} ns/packet; \
         forwarded {forwarded} of {} runs",
        s.xlated_insns,
        s.verified_insns,
        e.xlated_insns,
        40 * 250
    );
    assert!(s.xlated_insns > e.xlated_insns && e.xlated_insns > 0);
    assert_eq!(forwarded, 40 * 250, "every repetition took the fast path");
}
