use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::TcpFlags;

/// IPv4 198.51.100.7:40000 -> 203.0.113.9:80 TCP SYN, no options, no payload.
pub(crate) const V4_TCP_SYN: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, 0xab, 0xcd, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 198, 51, 100, 7, 203,
    0, 113, 9, // IPv4
    0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, // TCP
];

/// IPv6 2001:db8::1 -> 2001:db8::2 with HBH (8) + DST opts (8) then UDP 5353 -> 53, 4 bytes.
pub(crate) fn v6_udp_ext() -> Vec<u8> {
    let mut p = vec![0u8; 40 + 16 + 12];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&28u16.to_be_bytes());
    p[6] = proto::HOPOPT;
    p[7] = 33;
    p[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().expect("a").octets());
    p[24..40].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().expect("a").octets());
    p[40] = proto::IPV6_OPTS;
    p[48] = proto::UDP;
    p[56..58].copy_from_slice(&5353u16.to_be_bytes());
    p[58..60].copy_from_slice(&53u16.to_be_bytes());
    p[60..62].copy_from_slice(&12u16.to_be_bytes());
    p[64..68].copy_from_slice(b"ping");
    p
}

#[test]
fn v4_tcp() {
    let mut buf = V4_TCP_SYN.to_vec();
    buf.extend_from_slice(&[0xee; 6]); // Ethernet padding: ignored
    let i = parse(&buf).expect("valid");
    assert_eq!(i.version, IpVersion::V4);
    assert_eq!(i.src, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
    assert_eq!(i.dst, IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)));
    assert_eq!(i.protocol, proto::TCP);
    assert_eq!(i.ttl, 64);
    assert_eq!(i.l4_offset, 20);
    assert_eq!(i.ip_len, 40);
    assert_eq!(
        i.transport,
        Transport::Tcp {
            sport: 40000,
            dport: 80,
            flags: TcpFlags::SYN
        }
    );
}

#[test]
fn v4_options_skipped() {
    // Same packet with 8 bytes of options (IHL 7).
    let mut b = V4_TCP_SYN[..20].to_vec();
    b[0] = 0x47;
    b[3] = 48;
    b.extend_from_slice(&[1, 1, 1, 1, 1, 1, 1, 0]);
    b.extend_from_slice(&V4_TCP_SYN[20..]);
    let i = parse(&b).expect("valid");
    assert_eq!(i.l4_offset, 28);
    assert_eq!(i.ip_len, 48);
    assert!(matches!(
        i.transport,
        Transport::Tcp {
            sport: 40000,
            dport: 80,
            ..
        }
    ));
}

#[test]
fn v4_errors() {
    assert_eq!(parse(&[]), Err(WireError::Truncated));
    assert_eq!(parse(&[0x55; 40]), Err(WireError::BadVersion));
    let mut b = V4_TCP_SYN;
    b[0] = 0x43;
    assert_eq!(parse(&b), Err(WireError::BadHeaderLength));
    b = V4_TCP_SYN;
    b[3] = 36; // total length cuts the TCP header
    assert_eq!(parse(&b), Err(WireError::Truncated));
    b = V4_TCP_SYN;
    b[32] = 0x30; // data offset 3
    assert_eq!(parse(&b), Err(WireError::BadHeaderLength));
}

#[test]
fn v4_fragments_are_not_read_as_transport() {
    let mut b = V4_TCP_SYN;
    b[6] = 0x20; // MF, offset 0: a first fragment
    assert_eq!(
        parse(&b).expect("valid").transport,
        Transport::Fragment {
            offset: 0,
            more: true
        }
    );
    b[6] = 0x00;
    b[7] = 0x03; // offset 24 bytes; payload garbage must not matter
    b[32] = 0x00;
    let i = parse(&b).expect("valid");
    assert_eq!(
        i.transport,
        Transport::Fragment {
            offset: 24,
            more: false
        }
    );
    assert_eq!(i.protocol, proto::TCP);
}

#[test]
fn v6_ext_headers_walked() {
    let p = v6_udp_ext();
    let i = parse(&p).expect("valid");
    assert_eq!(i.version, IpVersion::V6);
    assert_eq!(i.protocol, proto::UDP);
    assert_eq!(i.l4_offset, 56);
    assert_eq!(i.ip_len, 68);
    assert_eq!(i.ttl, 33);
    assert_eq!(
        i.transport,
        Transport::Udp {
            sport: 5353,
            dport: 53
        }
    );
}

#[test]
fn v6_fragment_and_esp() {
    let mut p = v6_udp_ext();
    p[48] = proto::IPV6_FRAG; // dest-opts now points to a fragment header at 56
    p[56] = proto::UDP;
    p[57] = 0;
    p[58..60].copy_from_slice(&0x0009u16.to_be_bytes()); // offset 8, M=1
    let i = parse(&p).expect("valid");
    assert_eq!(
        i.transport,
        Transport::Fragment {
            offset: 8,
            more: true
        }
    );
    assert_eq!(i.protocol, proto::UDP);
    assert_eq!(i.l4_offset, 64);

    p[48] = proto::ESP;
    let i = parse(&p).expect("valid");
    assert_eq!((i.protocol, i.transport), (proto::ESP, Transport::Other));
}

/// ICMPv4 port unreachable from 203.0.113.9 to 198.51.100.7 quoting a UDP datagram
/// 198.51.100.7:5000 -> 203.0.113.9:53 (full quote of a 12-byte datagram).
pub(crate) fn v4_icmp_unreach() -> Vec<u8> {
    let mut p = vec![
        0x45,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        64,
        proto::ICMP,
        0,
        0,
        203,
        0,
        113,
        9,
        198,
        51,
        100,
        7, // IP
        3,
        3,
        0,
        0,
        0,
        0,
        0,
        0, // ICMP dest unreach, port unreach
        0x45,
        0,
        0,
        32,
        0,
        1,
        0,
        0,
        63,
        proto::UDP,
        0,
        0,
        198,
        51,
        100,
        7,
        203,
        0,
        113,
        9, // inner IP
        0x13,
        0x88,
        0x00,
        0x35,
        0x00,
        0x0c,
        0,
        0,
        b'a',
        b'b',
        b'c',
        b'd', // inner UDP
    ];
    let n = p.len();
    p[2..4].copy_from_slice(&u16::try_from(n).expect("small").to_be_bytes());
    p
}

#[test]
fn v4_icmp_error_quoted_packet() {
    let p = v4_icmp_unreach();
    let i = parse(&p).expect("valid");
    let Transport::Icmp {
        icmp_type: 3,
        code: 3,
        error: Some(e),
    } = i.transport
    else {
        panic!("not an ICMP error: {:?}", i.transport);
    };
    assert_eq!(e.inner_offset, 28);
    assert_eq!(e.inner_l4_offset, 48);
    assert_eq!(e.src, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)));
    assert_eq!(e.dst, IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)));
    assert_eq!(e.protocol, proto::UDP);
    assert_eq!(e.ports, Some((5000, 53)));

    // Quote cut to the IP header + 2 bytes: no ports, still an error.
    let mut short = p[..50].to_vec();
    short[3] = 50;
    let i = parse(&short).expect("valid");
    assert!(matches!(
        i.transport,
        Transport::Icmp {
            error: Some(IcmpError { ports: None, .. }),
            ..
        }
    ));
    // Quote cut inside the inner IP header: malformed.
    let mut short = p[..40].to_vec();
    short[3] = 40;
    assert_eq!(parse(&short), Err(WireError::Truncated));
    // Echo reply: not an error.
    let mut echo = p.clone();
    echo[20] = 0;
    echo[21] = 0;
    assert_eq!(
        parse(&echo).expect("valid").transport,
        Transport::Icmp {
            icmp_type: 0,
            code: 0,
            error: None
        }
    );
}

#[test]
fn icmp_in_wrong_family_is_other() {
    let mut p = V4_TCP_SYN;
    p[9] = proto::ICMPV6;
    assert_eq!(parse(&p).expect("valid").transport, Transport::Other);
}

#[test]
fn every_prefix_parses_to_err_or_consistent_info() {
    let mut fixtures = vec![
        V4_TCP_SYN.to_vec(),
        v6_udp_ext(),
        v4_icmp_unreach(),
        v6_icmp_too_big(),
    ];
    let mut frag = v6_udp_ext();
    frag[48] = proto::IPV6_FRAG;
    fixtures.push(frag);
    let mut rewritten = 0;
    for full in fixtures {
        for n in 0..=full.len() {
            // Cut the buffer only (length fields now lie) ...
            let cut = &full[..n];
            if let Ok(i) = parse(cut) {
                assert!(
                    i.ip_len <= cut.len() && i.l4_offset <= i.ip_len,
                    "prefix {n}"
                );
            }
            // ... and cut with the length fields fixed up (a consistent shorter packet).
            let mut fixed = cut.to_vec();
            match fixed.first().map(|b| b >> 4) {
                Some(4) if n >= 4 => {
                    fixed[2..4].copy_from_slice(&u16::try_from(n).expect("small").to_be_bytes())
                }
                Some(6) if n >= 40 => fixed[4..6]
                    .copy_from_slice(&u16::try_from(n - 40).expect("small").to_be_bytes()),
                _ => {}
            }
            if let Ok(mut i) = parse(&fixed) {
                assert!(
                    i.ip_len <= fixed.len() && i.l4_offset <= i.ip_len,
                    "fixed prefix {n}"
                );
                // Whatever parsed can be rewritten (shorter quotes included).
                let with_port =
                    matches!(i.transport, Transport::Tcp { .. } | Transport::Udp { .. });
                let p = with_port.then_some(9);
                let dst = i.dst;
                crate::rewrite::set_src(&mut fixed, &mut i, dst, p).expect("rewrite parsed prefix");
                crate::rewrite::adjust_ttl(&mut fixed, &mut i, -1).expect("ttl");
                if let Transport::Icmp { error: Some(e), .. } = i.transport {
                    let ip = e.ports.map(|_| 7);
                    crate::rewrite::set_inner_dst(&mut fixed, &mut i, e.src, ip)
                        .expect("inner rewrite");
                }
                assert!(parse(&fixed).is_ok(), "rewritten prefix {n} still parses");
                rewritten += 1;
            }
        }
    }
    // 5 full packets + 4 shorter fragment payloads + 12 shorter quotes of each ICMP error = 33.
    assert_eq!(rewritten, 33, "prefixes that parsed");
}

/// ICMPv6 packet too big from 2001:db8::2 to 2001:db8::1 quoting `v6_udp_ext()` in full.
pub(crate) fn v6_icmp_too_big() -> Vec<u8> {
    let inner = v6_udp_ext();
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&u16::try_from(8 + inner.len()).expect("small").to_be_bytes());
    p[6] = proto::ICMPV6;
    p[7] = 255;
    p[8..24].copy_from_slice(&inner[24..40]);
    p[24..40].copy_from_slice(&inner[8..24]);
    p.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0x05, 0x00]); // type 2, MTU 1280
    p.extend_from_slice(&inner);
    p
}

#[test]
fn v6_icmp_error_quoted_packet_with_ext_headers() {
    let p = v6_icmp_too_big();
    let i = parse(&p).expect("valid");
    let Transport::Icmp {
        icmp_type: 2,
        code: 0,
        error: Some(e),
    } = i.transport
    else {
        panic!("not an ICMPv6 error: {:?}", i.transport);
    };
    assert_eq!(e.inner_offset, 48);
    assert_eq!(e.inner_l4_offset, 48 + 56);
    assert_eq!(e.protocol, proto::UDP);
    assert_eq!(e.ports, Some((5353, 53)));
    assert_eq!(e.src, "2001:db8::1".parse::<IpAddr>().expect("a"));
    // Echo request: informational, no quote.
    let mut echo = p.clone();
    echo[40] = 128;
    assert!(matches!(
        parse(&echo).expect("valid").transport,
        Transport::Icmp {
            icmp_type: 128,
            error: None,
            ..
        }
    ));
    // Quote cut inside the extension headers: malformed.
    let mut cut = p[..48 + 50].to_vec();
    cut[4..6].copy_from_slice(&58u16.to_be_bytes());
    assert_eq!(parse(&cut), Err(WireError::Truncated));
}

#[test]
fn quoted_packet_of_the_other_family_is_rejected() {
    let mut p = v4_icmp_unreach();
    p[28] = 0x60;
    assert_eq!(parse(&p), Err(WireError::AddressFamilyMismatch));
    p[28] = 0x75;
    assert_eq!(parse(&p), Err(WireError::BadVersion));
}

#[test]
fn quoted_non_first_fragment_has_no_ports_and_options_are_skipped() {
    let mut p = v4_icmp_unreach();
    p[34] = 0x00;
    p[35] = 0x10; // inner offset 128 bytes
    let i = parse(&p).expect("valid");
    let Transport::Icmp { error: Some(e), .. } = i.transport else {
        panic!("no error")
    };
    assert_eq!((e.protocol, e.ports), (proto::UDP, None));

    // Inner header with 4 bytes of options: ports read after them.
    let mut q = v4_icmp_unreach();
    q[28] = 0x46;
    q.splice(48..48, [1, 1, 1, 0]);
    let n = u16::try_from(q.len()).expect("small");
    q[2..4].copy_from_slice(&n.to_be_bytes());
    let i = parse(&q).expect("valid");
    let Transport::Icmp { error: Some(e), .. } = i.transport else {
        panic!("no error")
    };
    assert_eq!((e.inner_l4_offset, e.ports), (52, Some((5000, 53))));
}
