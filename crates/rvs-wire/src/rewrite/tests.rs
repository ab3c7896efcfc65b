use super::*;
use crate::checksum::{ipv4_header_ok, transport_ok};
use crate::parse;
use crate::parse::tests::{V4_TCP_SYN, v4_icmp_unreach, v6_udp_ext};
use crate::{IcmpPacket, IpVersion};
use std::net::Ipv4Addr;

fn fill_v4_tcp(mut b: Vec<u8>) -> Vec<u8> {
    let i = parse(&b).expect("valid");
    let mut ip = crate::Ipv4Packet::new_unchecked(&mut b[..]);
    ip.fill_checksum();
    let l4 = &mut b[i.l4_offset..i.ip_len];
    crate::TcpPacket::new_unchecked(l4).fill_checksum(i.src, i.dst);
    b
}

#[test]
fn v4_tcp_dnat() {
    let mut b = fill_v4_tcp(V4_TCP_SYN.to_vec());
    let mut i = parse(&b).expect("valid");
    assert!(ipv4_header_ok(&b) && transport_ok(&b, &i));
    let rip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 100));
    set_dst(&mut b, &mut i, rip, Some(8080)).expect("rewrite");
    let j = parse(&b).expect("valid");
    assert_eq!(j.dst, rip);
    assert!(matches!(
        j.transport,
        Transport::Tcp {
            sport: 40000,
            dport: 8080,
            ..
        }
    ));
    assert!(ipv4_header_ok(&b));
    assert!(transport_ok(&b, &j));
}

#[test]
fn errors_leave_packet_unchanged() {
    let b0 = fill_v4_tcp(V4_TCP_SYN.to_vec());
    let mut i = parse(&b0).expect("valid");
    let i0 = i;
    let mut b = b0.clone();
    let v6: IpAddr = "2001:db8::5".parse().expect("a");
    assert_eq!(
        set_src(&mut b, &mut i, v6, None),
        Err(WireError::AddressFamilyMismatch)
    );
    assert_eq!(
        set_inner_src(&mut b, &mut i, i0.src, None),
        Err(WireError::Unsupported)
    );
    let mut frag = i;
    frag.transport = Transport::Fragment {
        offset: 0,
        more: true,
    };
    assert_eq!(
        set_src(&mut b, &mut frag, i.dst, Some(1)),
        Err(WireError::Unsupported)
    );
    let mut lying = i;
    lying.ip_len = 4000;
    assert_eq!(
        set_src(&mut b, &mut lying, i.dst, Some(1)),
        Err(WireError::Truncated)
    );
    lying = i;
    lying.l4_offset = 39;
    assert_eq!(
        set_src(&mut b, &mut lying, i.dst, Some(1)),
        Err(WireError::Truncated)
    );
    // A transport offset inside the IP header is not this packet's parse.
    lying = i;
    lying.l4_offset = 8;
    assert_eq!(
        set_dst(&mut b, &mut lying, i.src, Some(1)),
        Err(WireError::Truncated)
    );
    assert_eq!(b, b0);
    assert_eq!(i, i0, "an Err leaves the PacketInfo unchanged too");
    // TTL that would expire.
    b[8] = 1;
    let mut i1 = parse(&b).expect("valid");
    let before = b.clone();
    assert_eq!(adjust_ttl(&mut b, &mut i1, -1), Err(WireError::TtlExceeded));
    assert_eq!(b, before);
}

#[test]
fn v4_udp_zero_checksum_stays_zero() {
    let mut b = v4_icmp_unreach()[28..].to_vec(); // the inner UDP packet as a packet of its own
    b[2..4].copy_from_slice(&32u16.to_be_bytes());
    crate::Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
    let mut i = parse(&b).expect("valid");
    assert_eq!(
        i.transport,
        Transport::Udp {
            sport: 5000,
            dport: 53
        }
    );
    set_src(
        &mut b,
        &mut i,
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 77)),
        Some(6000),
    )
    .expect("rw");
    assert_eq!(&b[26..28], &[0, 0]);
    assert!(ipv4_header_ok(&b));
    assert_eq!(
        parse(&b).expect("valid").transport,
        Transport::Udp {
            sport: 6000,
            dport: 53
        }
    );
}

#[test]
fn v6_udp_with_ext_headers() {
    let mut b = v6_udp_ext();
    let mut i = parse(&b).expect("valid");
    crate::UdpPacket::new_unchecked(&mut b[i.l4_offset..i.ip_len]).fill_checksum(i.src, i.dst);
    assert!(transport_ok(&b, &i));
    let new: IpAddr = "fd00::1234".parse().expect("a");
    set_src(&mut b, &mut i, new, Some(1)).expect("rw");
    let j = parse(&b).expect("valid");
    assert_eq!(j.src, new);
    assert!(transport_ok(&b, &j));
    assert_ne!(&b[62..64], &[0, 0]);
}

#[test]
fn icmp_error_inner_rewrite() {
    let mut b = v4_icmp_unreach();
    // Give the inner UDP a real checksum, the inner IP header a checksum, then the outer.
    {
        let (src, dst) = (
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        );
        crate::UdpPacket::new_unchecked(&mut b[48..]).fill_checksum(src, dst);
        crate::Ipv4Packet::new_unchecked(&mut b[28..]).fill_checksum();
        IcmpPacket::new_unchecked(&mut b[20..]).fill_checksum();
        crate::Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
    }
    let mut i = parse(&b).expect("valid");
    assert!(transport_ok(&b, &i));
    // Outbound NAT of an error from the real server: outer src RIP->VIP, inner dst RIP->VIP.
    let vip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    set_src(&mut b, &mut i, vip, None).expect("outer");
    set_inner_dst(&mut b, &mut i, vip, Some(80)).expect("inner");
    let j = parse(&b).expect("valid");
    let Transport::Icmp { error: Some(e), .. } = j.transport else {
        panic!("lost the error")
    };
    assert_eq!((e.dst, e.ports), (vip, Some((5000, 80))));
    assert!(ipv4_header_ok(&b));
    assert!(ipv4_header_ok(&b[28..]));
    assert!(transport_ok(&b, &j), "outer ICMP checksum");
    assert!(
        crate::UdpPacket::new_unchecked(&b[48..]).verify_checksum(e.src, e.dst),
        "inner UDP"
    );
    assert_eq!(j.version, IpVersion::V4);
}

#[test]
fn adjust_ttl_v4_and_v6() {
    let mut b = fill_v4_tcp(V4_TCP_SYN.to_vec());
    let mut i = parse(&b).expect("valid");
    adjust_ttl(&mut b, &mut i, -1).expect("ttl");
    assert_eq!(b[8], 63);
    assert!(ipv4_header_ok(&b));
    adjust_ttl(&mut b, &mut i, 127).expect("ttl");
    assert_eq!(b[8], 190);
    adjust_ttl(&mut b, &mut i, 127).expect("ttl");
    assert_eq!(b[8], 255);
    assert!(ipv4_header_ok(&b));
    let mut v6 = v6_udp_ext();
    let mut i = parse(&v6).expect("valid");
    adjust_ttl(&mut v6, &mut i, -1).expect("hop");
    assert_eq!(v6[7], 32);
}

#[test]
fn inner_port_rewrite_needs_quoted_ports() {
    let mut b = v4_icmp_unreach();
    b[35] = 0x10; // quoted packet is a non-first fragment: no ports
    let mut i = parse(&b).expect("valid");
    let before = b.clone();
    let a = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    assert_eq!(
        set_inner_dst(&mut b, &mut i, a, Some(80)),
        Err(WireError::Unsupported)
    );
    assert_eq!(b, before);
    set_inner_dst(&mut b, &mut i, a, None).expect("address only");
    assert_eq!(&b[44..48], &[203, 0, 113, 1]);
    // The quoted "UDP checksum" bytes of a fragment are payload: left alone.
    assert_eq!(&b[54..56], &before[54..56]);
}

#[test]
fn v6_icmp_error_inner_and_outer() {
    use crate::parse::tests::v6_icmp_too_big;
    let mut b = v6_icmp_too_big();
    let mut i = parse(&b).expect("valid");
    let Transport::Icmp { error: Some(e), .. } = i.transport else {
        panic!("no error")
    };
    // Fill in a real inner UDP checksum and the outer ICMPv6 checksum.
    let il4 = e.inner_l4_offset;
    crate::UdpPacket::new_unchecked(&mut b[il4..]).fill_checksum(e.src, e.dst);
    crate::Icmpv6Packet::new_unchecked(&mut b[i.l4_offset..]).fill_checksum(i.src, i.dst);
    assert!(transport_ok(&b, &i));
    let vip: IpAddr = "2001:db8:ffff::1".parse().expect("a");
    set_dst(&mut b, &mut i, vip, None).expect("outer dst");
    set_inner_src(&mut b, &mut i, vip, Some(7)).expect("inner src");
    let j = parse(&b).expect("valid");
    assert_eq!(j.dst, vip);
    assert!(
        transport_ok(&b, &j),
        "ICMPv6 checksum with the new pseudo-header"
    );
    let Transport::Icmp {
        error: Some(e2), ..
    } = j.transport
    else {
        panic!("no error")
    };
    assert_eq!((e2.src, e2.ports), (vip, Some((7, 53))));
    assert!(crate::UdpPacket::new_unchecked(&b[il4..]).verify_checksum(e2.src, e2.dst));
}
