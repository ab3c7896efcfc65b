//! parse + every view + every rewrite on arbitrary bytes: must never panic, and a rewrite of a
//! packet whose checksums verified must leave them verifying.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rvs_wire::checksum::{ipv4_header_ok, transport_ok};
use rvs_wire::{
    IcmpPacket, Icmpv6Packet, IpVersion, Ipv4Packet, Ipv6Packet, TcpPacket, Transport, UdpPacket,
    parse, rewrite,
};

fn views(data: &[u8]) {
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        let _ = (
            p.header_len(),
            p.total_len(),
            p.frag_offset(),
            p.ttl(),
            p.src_addr(),
        );
        let _ = (
            p.options().len(),
            p.payload().len(),
            p.verify_checksum(),
            p.dscp(),
            p.ecn(),
        );
    }
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        let _ = (
            p.payload().len(),
            p.flow_label(),
            p.traffic_class(),
            p.chain(),
            p.dst_addr(),
        );
    }
    let (s, d) = (
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    );
    if let Ok(t) = TcpPacket::new_checked(data) {
        let _ = (
            t.flags(),
            t.options().len(),
            t.payload().len(),
            t.verify_checksum(s, d),
        );
        let _ = (
            t.seq_number(),
            t.ack_number(),
            t.window_len(),
            t.urgent_at(),
        );
    }
    if let Ok(u) = UdpPacket::new_checked(data) {
        let _ = (u.payload().len(), u.verify_checksum(s, d), u.is_empty());
    }
    if let Ok(m) = IcmpPacket::new_checked(data) {
        let _ = (
            m.is_error(),
            m.data().len(),
            m.verify_checksum(),
            m.rest_of_header(),
        );
    }
    if let Ok(m) = Icmpv6Packet::new_checked(data) {
        let _ = (m.is_error(), m.verify_checksum(s, d), m.echo_seq_no());
    }
    // Unchecked views on arbitrary bytes must not panic either.
    let p = Ipv4Packet::new_unchecked(data);
    let _ = (p.payload().len(), p.options().len(), p.header().len());
    let t = TcpPacket::new_unchecked(data);
    let _ = (t.payload().len(), t.options().len());
}

fn addrs(v: IpVersion, seed: u8) -> (IpAddr, u16) {
    let port = u16::from(seed).wrapping_mul(257);
    match v {
        IpVersion::V4 => (IpAddr::V4(Ipv4Addr::new(203, 0, 113, seed)), port),
        IpVersion::V6 => (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(seed))),
            port,
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    views(data);
    let Ok(mut info) = parse(data) else { return };
    assert!(info.ip_len <= data.len() && info.l4_offset <= info.ip_len);
    let seed = data.last().copied().unwrap_or(0);
    let (addr, port) = addrs(info.version, seed);
    let v4_ok = info.version == IpVersion::V6 || ipv4_header_ok(data);
    let l4_ok = transport_ok(data, &info);

    let mut buf = data.to_vec();
    let with_port = matches!(
        info.transport,
        Transport::Tcp { .. } | Transport::Udp { .. }
    );
    let p = with_port.then_some(port);
    rewrite::set_src(&mut buf, &mut info, addr, p).expect("outer set_src on a parsed packet");
    rewrite::set_dst(&mut buf, &mut info, addr, p).expect("outer set_dst on a parsed packet");
    let _ = rewrite::adjust_ttl(&mut buf, &mut info, -1);
    let _ = rewrite::set_src(&mut buf, &mut info, addrs(IpVersion::V6, seed).0, None);
    let _ = rewrite::set_src(&mut buf, &mut info, addrs(IpVersion::V4, seed).0, None);
    if let Transport::Icmp { error: Some(e), .. } = info.transport {
        let inner_ok = info.version == IpVersion::V6
            || ipv4_header_ok(data.get(e.inner_offset..info.ip_len).unwrap_or(&[]));
        let ip = e.ports.map(|_| port);
        rewrite::set_inner_src(&mut buf, &mut info, addr, ip).expect("inner src");
        rewrite::set_inner_dst(&mut buf, &mut info, addr, ip).expect("inner dst");
        if inner_ok {
            assert!(
                ipv4_header_ok(buf.get(e.inner_offset..info.ip_len).unwrap_or(&[]))
                    || info.version == IpVersion::V6
            );
        }
    }
    let again = parse(&buf).expect("a rewritten packet still parses");
    assert_eq!(again.ip_len, info.ip_len);
    assert_eq!(again.l4_offset, info.l4_offset);
    assert_eq!(again.dst, addr);
    assert_eq!(again, info, "the rewrites kept the PacketInfo current");
    if v4_ok {
        assert!(
            info.version == IpVersion::V6 || ipv4_header_ok(&buf),
            "IPv4 header checksum broken"
        );
    }
    if l4_ok {
        assert!(transport_ok(&buf, &again), "transport checksum broken");
    }
    // Rewrites with an arbitrary (possibly lying) PacketInfo must not panic.
    let mut lie = info;
    lie.l4_offset = usize::from(seed) * 3;
    lie.ip_len = data.len().saturating_sub(usize::from(seed % 7));
    let _ = rewrite::set_src(&mut buf, &mut lie, addr, Some(1));
    let _ = rewrite::set_inner_dst(&mut buf, &mut lie, addr, Some(1));
    let _ = rewrite::adjust_ttl(&mut buf, &mut lie, 1);
});
