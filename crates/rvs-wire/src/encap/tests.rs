use super::*;
use crate::{Transport, checksum, parse};

// 198.51.100.10:40000 -> 198.51.100.100:80 UDP "hi!!", DF, TTL 63, DSCP AF41 + CE.
const INNER_V4: [u8; 32] = [
    0x45, 0x8b, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 63, 17, 0x00, 0x00, 198, 51, 100, 10, 198, 51,
    100, 100, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x0c, 0x00, 0x00, b'h', b'i', b'!', b'!',
];

fn inner_v4() -> [u8; 32] {
    let mut p = INNER_V4;
    crate::Ipv4Packet::new_checked(&mut p[..])
        .expect("valid")
        .fill_checksum();
    p
}

fn inner_v6() -> Vec<u8> {
    let b = etherparse::PacketBuilder::ipv6(
        [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
        [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        61,
    )
    .tcp(40000, 80, 7, 1000)
    .syn();
    let mut v = Vec::new();
    b.write(&mut v, b"payload").expect("build");
    v
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

const DIP: [u8; 4] = [203, 0, 113, 1];
const RIP: [u8; 4] = [203, 0, 113, 11];

fn outer4() -> Outer {
    Outer {
        src: v4(DIP),
        dst: v4(RIP),
        ident: 0xabcd,
        flow_hash: 0x8000_0000,
    }
}

fn tun(kind: TunnelKind, csum: TunnelCsum) -> TunnelConfig {
    TunnelConfig {
        kind,
        port: 6080,
        csum,
    }
}

#[test]
fn ipip_v4_in_v4_bytes() {
    let inner = inner_v4();
    let mut out = [0u8; 128];
    let n = encapsulate(&inner, &TunnelConfig::default(), &outer4(), &mut out).expect("encap");
    assert_eq!(n, 52);
    #[rustfmt::skip]
    let want_hdr: [u8; 20] = [
        0x45, 0x8a, 0x00, 0x34, 0xab, 0xcd, 0x40, 0x00, 63, 4, 0x00, 0x00,
        203, 0, 113, 1, 203, 0, 113, 11,
    ];
    let mut want = want_hdr;
    want[10..12].copy_from_slice(&checksum::ipv4_header(&want_hdr).to_be_bytes());
    assert_eq!(
        &out[..20],
        &want,
        "DSCP kept, CE -> ECT(0), DF and TTL copied"
    );
    assert_eq!(&out[20..n], &inner[..]);
    // An independent parser agrees.
    let (h, _) = etherparse::Ipv4Header::from_slice(&out[..n]).expect("etherparse");
    assert_eq!(h.protocol, etherparse::IpNumber::IPV4);
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert!(h.dont_fragment);
}

#[test]
fn ipv6_in_ipv6_and_mixed_families() {
    let inner = inner_v6();
    let src: IpAddr = "2001:db8:2::1".parse().expect("a");
    let dst: IpAddr = "2001:db8:2::11".parse().expect("a");
    let o = Outer {
        src,
        dst,
        ident: 0,
        flow_hash: 1,
    };
    let mut out = [0u8; 256];
    let n = encapsulate(&inner, &TunnelConfig::default(), &o, &mut out).expect("encap");
    assert_eq!(n, 40 + inner.len());
    let (h, _) = etherparse::Ipv6Header::from_slice(&out[..n]).expect("v6");
    assert_eq!(h.next_header, etherparse::IpNumber::IPV6);
    assert_eq!(usize::from(h.payload_length), inner.len());
    assert_eq!(h.hop_limit, 61);
    assert_eq!(h.flow_label.value(), 0);
    assert_eq!(&out[40..n], &inner[..]);
    // IPv4 inner in an IPv6 outer: next header 4; IPv6 inner in IPv4: protocol 41, DF clear.
    let n = encapsulate(&inner_v4(), &TunnelConfig::default(), &o, &mut out).expect("4in6");
    assert_eq!((out[6], n), (PROTO_IPIP, 72));
    let n = encapsulate(&inner, &TunnelConfig::default(), &outer4(), &mut out).expect("6in4");
    assert_eq!(
        (out[9], out[6] & 0x40, n),
        (PROTO_IPV6, 0, 20 + inner.len())
    );
}

#[test]
fn gue_header_port_and_checksums() {
    let inner = inner_v4();
    let mut out = [0u8; 128];
    let n = encapsulate(
        &inner,
        &tun(TunnelKind::Gue, TunnelCsum::NoCsum),
        &outer4(),
        &mut out,
    )
    .expect("gue");
    assert_eq!(n, 20 + 8 + 4 + 32);
    assert_eq!(out[9], proto::UDP);
    let sport = u16::from_be_bytes([out[20], out[21]]);
    assert_eq!(sport, flow_src_port(0x8000_0000));
    assert_eq!(
        &out[22..28],
        &[0x17, 0xc0, 0x00, 44, 0, 0],
        "dport 6080, len, csum 0"
    );
    assert_eq!(&out[28..32], &[0, PROTO_IPIP, 0, 0], "GUE v0, no options");
    for csum in [TunnelCsum::Csum, TunnelCsum::RemCsum] {
        let n = encapsulate(&inner, &tun(TunnelKind::Gue, csum), &outer4(), &mut out)
            .expect("gue csum");
        let info = parse(&out[..n]).expect("parse");
        assert!(matches!(info.transport, Transport::Udp { dport: 6080, .. }));
        assert_ne!(&out[26..28], &[0, 0]);
        assert!(checksum::transport_ok(&out[..n], &info), "{csum:?}");
        let (udp, _) = etherparse::UdpHeader::from_slice(&out[20..n]).expect("udp");
        let (ip, _) = etherparse::Ipv4Header::from_slice(&out[..n]).expect("ip");
        assert_eq!(
            udp.calc_checksum_ipv4(&ip, &out[28..n]).expect("calc"),
            udp.checksum
        );
    }
}

#[test]
fn gre_with_and_without_checksum() {
    let inner = inner_v6();
    let mut out = [0u8; 256];
    let n = encapsulate(
        &inner,
        &tun(TunnelKind::Gre, TunnelCsum::NoCsum),
        &outer4(),
        &mut out,
    )
    .expect("gre");
    assert_eq!(n, 24 + inner.len());
    assert_eq!((out[9], &out[20..24]), (PROTO_GRE, &[0, 0, 0x86, 0xdd][..]));
    let n = encapsulate(
        &inner_v4(),
        &tun(TunnelKind::Gre, TunnelCsum::Csum),
        &outer4(),
        &mut out,
    )
    .expect("gre csum");
    assert_eq!(n, 28 + 32);
    assert_eq!(&out[20..24], &[0x80, 0, 0x08, 0x00]);
    assert_eq!(checksum::checksum(&out[20..n]), 0, "GRE checksum verifies");
    // --tun-remcsum means nothing to GRE in IPVS: no checksum field.
    let n = encapsulate(
        &inner_v4(),
        &tun(TunnelKind::Gre, TunnelCsum::RemCsum),
        &outer4(),
        &mut out,
    )
    .expect("gre remcsum");
    assert_eq!(n, 24 + 32);
}

#[test]
fn decapsulate_finds_every_inner_packet() {
    let mut out = [0u8; 256];
    for kind in [TunnelKind::Ipip, TunnelKind::Gue, TunnelKind::Gre] {
        for csum in [TunnelCsum::NoCsum, TunnelCsum::Csum] {
            for inner in [inner_v4().to_vec(), inner_v6()] {
                let t = tun(kind, csum);
                let n = encapsulate(&inner, &t, &outer4(), &mut out).expect("encap");
                let d = decapsulate(&out[..n], Some(6080))
                    .expect("decap")
                    .expect("tunnel");
                assert_eq!(d.kind, kind);
                assert_eq!(d.outer_src, v4(DIP));
                assert_eq!(&out[d.inner_offset..d.inner_end], &inner[..]);
            }
        }
    }
    // Plain UDP to another port is not a tunnel.
    assert_eq!(decapsulate(&inner_v4(), Some(6080)), Ok(None));
}

#[test]
fn errors_write_nothing() {
    let inner = inner_v4();
    let mut out = [0x5au8; 64];
    let mixed = Outer {
        dst: "2001:db8::1".parse().expect("a"),
        ..outer4()
    };
    let t = TunnelConfig::default();
    assert_eq!(
        encapsulate(&inner, &t, &mixed, &mut out),
        Err(WireError::AddressFamilyMismatch)
    );
    assert_eq!(
        encapsulate(&inner, &t, &outer4(), &mut out[..51]),
        Err(WireError::Truncated)
    );
    for n in 0..inner.len() {
        assert!(encapsulate(&inner[..n], &t, &outer4(), &mut out).is_err());
    }
    assert_eq!(out, [0x5a; 64]);
    // 65535 - 10 bytes of inner packet cannot take a 20-byte header.
    let mut big = vec![0u8; 65_525];
    big[..20].copy_from_slice(&inner[..20]);
    big[2..4].copy_from_slice(&65_525u16.to_be_bytes());
    let mut out = vec![0u8; 70_000];
    assert_eq!(
        encapsulate(&big, &t, &outer4(), &mut out),
        Err(WireError::BadLength)
    );
}

#[test]
fn flow_ports_stay_in_range() {
    assert_eq!(flow_src_port(0), 32768);
    assert_eq!(flow_src_port(u32::MAX), 60998);
    assert!(flow_src_port(12345) >= 32768);
    assert_eq!(TunnelConfig::default().overhead(false), 20);
    assert_eq!(
        tun(TunnelKind::Gue, TunnelCsum::Csum).overhead(true),
        MAX_OVERHEAD
    );
}

#[test]
fn frag_needed_quotes_and_verifies() {
    let offending = inner_v4();
    let mut out = [0u8; 600];
    let vip = v4([198, 51, 100, 100]);
    let n = too_big(&offending, vip, 1480, &mut out).expect("icmp");
    assert_eq!(n, 28 + 32);
    let info = parse(&out[..n]).expect("parse");
    assert_eq!(info.src, vip);
    assert_eq!(info.dst, v4([198, 51, 100, 10]));
    assert_eq!(info.ttl, 64);
    let Transport::Icmp {
        icmp_type: 3,
        code: 4,
        error: Some(e),
    } = info.transport
    else {
        panic!("not frag needed: {info:?}")
    };
    assert_eq!(e.ports, Some((40000, 80)));
    assert_eq!(&out[26..28], &1480u16.to_be_bytes());
    assert!(checksum::ipv4_header_ok(&out[..n]));
    assert!(checksum::transport_ok(&out[..n], &info));
    // An ICMP error is never answered with another.
    assert_eq!(
        too_big(&out[..n], vip, 1400, &mut [0u8; 600]),
        Err(WireError::Unsupported)
    );
    // A long packet is quoted up to 548 bytes.
    let long = {
        let b =
            etherparse::PacketBuilder::ipv4([198, 51, 100, 10], [198, 51, 100, 100], 64).udp(1, 2);
        let mut v = Vec::new();
        b.write(&mut v, &[7u8; 1400]).expect("build");
        v
    };
    assert_eq!(too_big(&long, vip, 1400, &mut out), Ok(576));
    assert_eq!(
        too_big(&long, "2001:db8::1".parse().expect("a"), 1400, &mut out),
        Err(WireError::AddressFamilyMismatch)
    );
}

#[test]
fn packet_too_big_v6() {
    let offending = inner_v6();
    let vip: IpAddr = "2001:db8:1::100".parse().expect("a");
    let mut out = [0u8; 1280];
    let n = too_big(&offending, vip, 1440, &mut out).expect("ptb");
    assert_eq!(n, 48 + offending.len());
    let info = parse(&out[..n]).expect("parse");
    assert!(matches!(
        info.transport,
        Transport::Icmp {
            icmp_type: 2,
            code: 0,
            error: Some(_)
        }
    ));
    assert_eq!(&out[44..48], &1440u32.to_be_bytes());
    assert!(checksum::transport_ok(&out[..n], &info));
    assert_eq!(
        too_big(&offending, vip, 1440, &mut out[..50]),
        Err(WireError::Truncated)
    );
}

#[test]
fn in_place_writes_the_same_bytes_as_the_copy() {
    let outer6 = Outer {
        src: "2001:db8:1::1".parse().expect("a"),
        dst: "2001:db8:1::11".parse().expect("a"),
        ident: 0,
        flow_hash: 7,
    };
    let inners: [Vec<u8>; 2] = [inner_v4().to_vec(), inner_v6()];
    for kind in [TunnelKind::Ipip, TunnelKind::Gue, TunnelKind::Gre] {
        for csum in [TunnelCsum::NoCsum, TunnelCsum::Csum, TunnelCsum::RemCsum] {
            for outer in [outer4(), outer6] {
                for inner in &inners {
                    let t = tun(kind, csum);
                    let mut copied = [0u8; 256];
                    let n = encapsulate(inner, &t, &outer, &mut copied).expect("encap");
                    // The inner packet where the headers end, garbage in front of it and after it.
                    let mut buf = [0xa5u8; 256];
                    let h = t.overhead(outer.dst.is_ipv6());
                    buf[h..h + inner.len()].copy_from_slice(inner);
                    let m = encapsulate_in_place(&mut buf, &t, &outer).expect("in place");
                    assert_eq!(m, n, "{kind:?} {csum:?} {outer:?}");
                    assert_eq!(&buf[..m], &copied[..n], "{kind:?} {csum:?} {outer:?}");
                }
            }
        }
    }
    // Errors write nothing: mixed families, no room for the inner packet, an inner packet that is not IP.
    let mut buf = [0x5au8; 40];
    let mixed = Outer {
        dst: "2001:db8::1".parse().expect("a"),
        ..outer4()
    };
    let t = TunnelConfig::default();
    assert_eq!(
        encapsulate_in_place(&mut buf, &t, &mixed),
        Err(WireError::AddressFamilyMismatch)
    );
    assert!(encapsulate_in_place(&mut buf, &t, &outer4()).is_err());
    assert!(encapsulate_in_place(&mut buf[..10], &t, &outer4()).is_err());
    assert_eq!(buf, [0x5a; 40]);
}
