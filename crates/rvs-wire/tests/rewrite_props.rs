//! Property tests: packets built by an independent library (etherparse) are rewritten with
//! rvs-wire; the result must equal, byte for byte, the packet etherparse builds directly with
//! the new addresses/ports, and etherparse's checksum calculations must agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use etherparse::{
    Icmpv4Type, Icmpv6Type, Ipv4HeaderSlice, PacketBuilder, SlicedPacket, TransportSlice, icmpv4,
    icmpv6,
};
use proptest::prelude::*;
use rvs_wire::{IpVersion, Transport, parse, rewrite};

#[derive(Debug, Clone)]
struct Flow {
    v6: bool,
    tcp: bool,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    ttl: u8,
    flags: u8,
    payload: Vec<u8>,
    /// IPv4 option bytes (multiple of 4) or, for IPv6, the number of 8-byte extension headers.
    v4_opts: Vec<u8>,
    v6_exts: usize,
}

fn v4() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 4]>().prop_map(IpAddr::from)
}
fn v6() -> impl Strategy<Value = IpAddr> {
    any::<[u8; 16]>().prop_map(IpAddr::from)
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<u16>(),
        any::<u16>(),
        1u8..=255,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..80),
        (0usize..=10).prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n * 4)),
        0usize..=3,
    )
        .prop_flat_map(
            |(v6f, tcp, sport, dport, ttl, flags, payload, v4_opts, v6_exts)| {
                let addrs = if v6f {
                    (v6(), v6()).boxed()
                } else {
                    (v4(), v4()).boxed()
                };
                addrs.prop_map(move |(src, dst)| Flow {
                    v6: v6f,
                    tcp,
                    src,
                    dst,
                    sport,
                    dport,
                    ttl,
                    flags,
                    payload: payload.clone(),
                    v4_opts: v4_opts.clone(),
                    v6_exts,
                })
            },
        )
}

fn ip_builder(
    v6: bool,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    match (v6, src, dst) {
        (false, IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), ttl),
        (true, IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), ttl),
        _ => unreachable!("strategy keeps families consistent"),
    }
}

/// Inserts IPv4 options / IPv6 extension headers into a packet built without them, fixing the
/// lengths; the IPv4 header checksum is recomputed by etherparse.
fn splice(mut p: Vec<u8>, v6: bool, v4_opts: &[u8], v6_exts: usize) -> Vec<u8> {
    if !v6 {
        if v4_opts.is_empty() {
            return p;
        }
        p.splice(20..20, v4_opts.iter().copied());
        p[0] = 0x40 | u8::try_from((20 + v4_opts.len()) / 4).unwrap();
        let tl = u16::try_from(p.len()).unwrap();
        p[2..4].copy_from_slice(&tl.to_be_bytes());
        p[10] = 0;
        p[11] = 0;
        let c = Ipv4HeaderSlice::from_slice(&p)
            .unwrap()
            .to_header()
            .calc_header_checksum();
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    } else {
        let mut next = p[6];
        for i in 0..v6_exts {
            // Destination options, with a hop-by-hop header first in the chain; 8 bytes each (PadN).
            let kind = if i + 1 == v6_exts { 0 } else { 60 };
            let ext = [next, 0, 1, 4, 0, 0, 0, 0];
            p.splice(40..40, ext);
            next = kind;
        }
        // Headers were pushed front-first, so fix the chain: the last pushed is first.
        p[6] = next;
        let pl = u16::try_from(p.len() - 40).unwrap();
        p[4..6].copy_from_slice(&pl.to_be_bytes());
        p
    }
}

fn build(f: &Flow) -> Vec<u8> {
    let b = ip_builder(f.v6, f.src, f.dst, f.ttl);
    let mut out = Vec::new();
    if f.tcp {
        let mut t = b.tcp(f.sport, f.dport, 0x0102_0304, 4096);
        if f.flags & 1 != 0 {
            t = t.syn();
        }
        if f.flags & 2 != 0 {
            t = t.ack(0x0a0b_0c0d);
        }
        if f.flags & 4 != 0 {
            t = t.fin();
        }
        t.write(&mut out, &f.payload).unwrap();
    } else {
        b.udp(f.sport, f.dport).write(&mut out, &f.payload).unwrap();
    }
    splice(out, f.v6, &f.v4_opts, f.v6_exts)
}

/// Checks every checksum of `p` with etherparse's own calculations.
fn etherparse_checksums_ok(p: &[u8]) -> bool {
    let s = SlicedPacket::from_ip(p).expect("etherparse parses it");
    let Some(net) = s.net else { return false };
    match (net, s.transport) {
        (etherparse::NetSlice::Ipv4(ip), Some(TransportSlice::Tcp(t))) => {
            let h = ip.header().to_header();
            h.calc_header_checksum() == ip.header().header_checksum()
                && t.calc_checksum_ipv4(h.source, h.destination).unwrap() == t.checksum()
        }
        (etherparse::NetSlice::Ipv4(ip), Some(TransportSlice::Udp(u))) => {
            let h = ip.header().to_header();
            let ud = u.to_header();
            h.calc_header_checksum() == ip.header().header_checksum()
                && (ud.checksum == 0
                    || ud.calc_checksum_ipv4(&h, u.payload()).unwrap() == ud.checksum)
        }
        (etherparse::NetSlice::Ipv6(ip), Some(TransportSlice::Tcp(t))) => {
            let h = ip.header().to_header();
            t.calc_checksum_ipv6(h.source, h.destination).unwrap() == t.checksum()
        }
        (etherparse::NetSlice::Ipv6(ip), Some(TransportSlice::Udp(u))) => {
            let h = ip.header().to_header();
            let ud = u.to_header();
            ud.calc_checksum_ipv6(&h, u.payload()).unwrap() == ud.checksum
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Src,
    Dst,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Outer rewrite (the masq fast path) against an independent build.
    #[test]
    fn outer_rewrite_matches_etherparse(
        f in flow(),
        new4 in v4(),
        new6 in v6(),
        new_port in any::<u16>(),
        change_port in any::<bool>(),
        dst_side in any::<bool>(),
    ) {
        let mut buf = build(&f);
        prop_assert!(etherparse_checksums_ok(&buf));
        let mut info = parse(&buf).unwrap();
        prop_assert_eq!(info.version, if f.v6 { IpVersion::V6 } else { IpVersion::V4 });
        prop_assert_eq!(info.ip_len, buf.len());
        let new = if f.v6 { new6 } else { new4 };
        let port = change_port.then_some(new_port);
        let which = if dst_side { Which::Dst } else { Which::Src };
        let mut g = f.clone();
        match which {
            Which::Src => {
                rewrite::set_src(&mut buf, &mut info, new, port).unwrap();
                g.src = new;
                g.sport = port.unwrap_or(f.sport);
            }
            Which::Dst => {
                rewrite::set_dst(&mut buf, &mut info, new, port).unwrap();
                g.dst = new;
                g.dport = port.unwrap_or(f.dport);
            }
        }
        prop_assert!(etherparse_checksums_ok(&buf));
        prop_assert_eq!(&buf, &build(&g));
        let again = parse(&buf).unwrap();
        prop_assert_eq!(again, info, "the rewrite kept the PacketInfo current");
        prop_assert_eq!((again.src, again.dst), (g.src, g.dst));
        match again.transport {
            Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport } => {
                prop_assert_eq!((sport, dport), (g.sport, g.dport));
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    /// IPv4 UDP with checksum 0 keeps checksum 0; the IP header checksum stays right.
    #[test]
    fn v4_udp_zero_checksum_stays_zero(mut f in flow(), new in v4(), port in any::<u16>()) {
        f.v6 = false;
        f.tcp = false;
        f.src = IpAddr::from([198, 51, 100, 7]);
        f.dst = IpAddr::from([203, 0, 113, 9]);
        let zero = |mut p: Vec<u8>| {
            let l4 = usize::from(p[0] & 0x0f) * 4;
            p[l4 + 6] = 0;
            p[l4 + 7] = 0;
            p
        };
        let mut buf = zero(build(&f));
        let mut info = parse(&buf).unwrap();
        rewrite::set_dst(&mut buf, &mut info, new, Some(port)).unwrap();
        let mut g = f.clone();
        g.dst = new;
        g.dport = port;
        prop_assert_eq!(&buf, &zero(build(&g)));
        prop_assert!(etherparse_checksums_ok(&buf));
    }

    /// ICMP / ICMPv6 errors quoting a TCP/UDP packet (quote cut anywhere after 8 transport
    /// bytes): outer address + inner address and port rewritten, compared to an independent
    /// build; also checks the ICMP checksum and quoted IPv4 header checksum with etherparse.
    #[test]
    fn icmp_error_rewrite_matches_etherparse(
        f in flow(),
        new4 in v4(),
        new6 in v6(),
        new_port in any::<u16>(),
        cut in any::<proptest::sample::Index>(),
        outbound in any::<bool>(),
        kind in 0u8..3,
    ) {
        // The quoted packet: the inner flow as sent (f). The error travels back towards f.src,
        // from f.dst (outbound: real server side rewrites outer src and inner dst), or the
        // error travels towards f.dst's side when `!outbound`... we model both as the same bytes
        // with different rewritten fields.
        let inner = build(&f);
        let info_inner = parse(&inner).unwrap();
        let min = info_inner.l4_offset + 8;
        let qlen = min + cut.index(inner.len() - min + 1);
        let icmp = |quote: &[u8], src: IpAddr, dst: IpAddr| {
            let b = ip_builder(f.v6, src, dst, 64);
            let mut out = Vec::new();
            if f.v6 {
                let t = match kind {
                    0 => Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Port),
                    1 => Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded),
                    _ => Icmpv6Type::PacketTooBig { mtu: 1280 },
                };
                b.icmpv6(t).write(&mut out, quote).unwrap();
            } else {
                let t = match kind {
                    0 => Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port),
                    1 => Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
                    _ => Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 }),
                };
                b.icmpv4(t).write(&mut out, quote).unwrap();
            }
            out
        };
        // Error generated by f.dst about the packet f.src -> f.dst, sent to f.src.
        let mut buf = icmp(&inner[..qlen], f.dst, f.src);
        let mut info = parse(&buf).unwrap();
        let Transport::Icmp { error: Some(e), .. } = info.transport else {
            return Err(TestCaseError::fail(format!("not an ICMP error: {:?}", info.transport)));
        };
        prop_assert_eq!((e.src, e.dst), (f.src, f.dst));
        prop_assert_eq!(e.ports, Some((f.sport, f.dport)));
        let new = if f.v6 { new6 } else { new4 };
        let mut g = f.clone();
        let expected = if outbound {
            // Masq outbound: the real server (f.dst) becomes the VIP in both places.
            rewrite::set_src(&mut buf, &mut info, new, None).unwrap();
            rewrite::set_inner_dst(&mut buf, &mut info, new, Some(new_port)).unwrap();
            g.dst = new;
            g.dport = new_port;
            icmp(&build(&g)[..qlen], new, f.src)
        } else {
            // Inbound error about a reply: the client side (f.src) is rewritten.
            rewrite::set_dst(&mut buf, &mut info, new, None).unwrap();
            rewrite::set_inner_src(&mut buf, &mut info, new, Some(new_port)).unwrap();
            g.src = new;
            g.sport = new_port;
            icmp(&build(&g)[..qlen], f.dst, new)
        };
        // A quote that ends in the middle of the quoted L4 checksum leaves that half-quoted
        // byte stale (its new value depends on the unquoted byte): compare everything else;
        // the ICMP checksum over our bytes is verified below.
        let csum_at = info_inner.l4_offset + if f.tcp { 16 } else { 6 };
        if qlen == csum_at + 1 {
            let stale = e.inner_offset + csum_at;
            let icmp_csum = info.l4_offset + 2;
            for (k, (a, b)) in buf.iter().zip(expected.iter()).enumerate() {
                if k != stale && k != icmp_csum && k != icmp_csum + 1 {
                    prop_assert_eq!(a, b, "byte {}", k);
                }
            }
        } else {
            prop_assert_eq!(&buf, &expected);
        }
        prop_assert_eq!(parse(&buf).unwrap(), info, "the rewrites kept the PacketInfo current");

        // Independent checks of the checksums that matter.
        let s = SlicedPacket::from_ip(&buf).unwrap();
        match s.transport {
            Some(TransportSlice::Icmpv4(m)) => {
                prop_assert_eq!(m.icmp_type().calc_checksum(m.payload()), m.checksum());
                let q = Ipv4HeaderSlice::from_slice(m.payload()).unwrap();
                prop_assert_eq!(q.to_header().calc_header_checksum(), q.header_checksum());
            }
            Some(TransportSlice::Icmpv6(m)) => {
                let (IpAddr::V6(src), IpAddr::V6(dst)) = (parse(&buf).unwrap().src, parse(&buf).unwrap().dst) else {
                    unreachable!()
                };
                let c = m.icmp_type().calc_checksum(src.octets(), dst.octets(), m.payload()).unwrap();
                prop_assert_eq!(c, m.checksum());
            }
            other => prop_assert!(false, "unexpected transport {:?}", other),
        }
    }

    /// Truncating any valid packet anywhere never panics, and parse results stay in bounds.
    #[test]
    fn every_prefix_is_err_or_in_bounds(f in flow(), cut in any::<proptest::sample::Index>()) {
        let p = build(&f);
        let n = cut.index(p.len() + 1);
        if let Ok(i) = parse(&p[..n]) {
            prop_assert!(i.ip_len <= n && i.l4_offset <= i.ip_len);
        }
    }
}
