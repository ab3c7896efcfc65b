//! Arbitrary packet sequences through `rvs_core::Director::process`, both directions, with time
//! advancing and expiry: must never panic. Invariants checked on every packet:
//! * `Pass` leaves the packet untouched;
//! * a `Forward`ed packet still parses, and if its checksums verified before, they still do;
//! * the reply to a packet forwarded inbound, when forwarded outbound, comes from VIP:vport.
//!
//! Input: records `[ctl, len, body[len]]`. `ctl & 3 == 0`: body is a raw packet; otherwise the
//! body's bytes pick fields of a well-formed packet (client/real-server side, TCP flags, IPv4 or
//! IPv6, TCP or UDP, wrapped in an ICMP error or not), so the fuzzer reaches deep connection
//! states. `ctl >> 4` advances the clock in 250 ms steps; `ctl & 8` runs `expire`.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use rvs_core::{ConfigOp, DestSpec, Direction, Director, DirectorConfig, Protocol, ServiceKey, ServiceSpec, Timestamp, Verdict, Weight};
use rvs_wire::checksum::{ipv4_header_ok, transport_ok};
use rvs_wire::{
    IcmpPacket, Icmpv6Packet, IpVersion, Ipv4Packet, PacketInfo, TcpPacket, Transport, UdpPacket,
    parse,
};

const VIP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

fn rip4(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, 10 + (i & 1))
}
fn rip6() -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10)
}

fn director() -> Director {
    // Two shards, not four: the director is built and drained an hour ahead for every input, and
    // that drain walks each shard's 4096-bucket timer wheel (perf: ~60 % of the time with four
    // shards under trace-compares). Two still spread connections over shards (by client address
    // and port), so a lookup in the wrong shard would still show.
    let d = Director::new(DirectorConfig {
        shards: 2,
        hash_seed: 7,
        ..DirectorConfig::default()
    });
    let tcp4 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: VIP4.into(),
        port: 80,
    };
    let udp4 = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: VIP4.into(),
        port: 53,
    };
    let tcp6 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: VIP6.into(),
        port: 80,
    };
    let ops = vec![
        ConfigOp::AddService(ServiceSpec::new(tcp4.clone(), "rr")),
        ConfigOp::AddDest(tcp4.clone(), DestSpec::masq(rip4(0).into(), 8080, Weight(1))),
        ConfigOp::AddDest(tcp4, DestSpec::masq(rip4(1).into(), 8080, Weight(2))),
        ConfigOp::AddService(ServiceSpec::new(udp4.clone(), "wlc")),
        ConfigOp::AddDest(udp4, DestSpec::masq(rip4(0).into(), 53, Weight(1))),
        ConfigOp::AddService(ServiceSpec::new(tcp6.clone(), "rr")),
        ConfigOp::AddDest(tcp6, DestSpec::masq(rip6().into(), 80, Weight(1))),
    ];
    d.apply_batch(ops).expect("fuzz director config");
    d
}

fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// A well-formed packet (checksums right) described by `body`.
fn synth(body: &[u8]) -> Vec<u8> {
    let kind = byte(body, 0);
    let (v6, udp, reply, icmp) = (kind & 1 != 0, kind & 2 != 0, kind & 4 != 0, kind & 8 != 0);
    let udp = udp && !v6; // only a v4 UDP service
    let client_n = byte(body, 1);
    let cport = u16::from_be_bytes([byte(body, 2), byte(body, 3)]) | 1024;
    let flags = byte(body, 4);
    let payload = body.get(5..).unwrap_or(&[]);
    let payload = &payload[..payload.len().min(40)];
    let (client, vip, rip): (IpAddr, IpAddr, IpAddr) = if v6 {
        let c = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(client_n));
        (c.into(), VIP6.into(), rip6().into())
    } else {
        (
            Ipv4Addr::new(198, 51, 100, client_n).into(),
            VIP4.into(),
            rip4(client_n >> 7).into(),
        )
    };
    let vport = if udp { 53 } else { 80 };
    let rport = if udp {
        53
    } else if v6 {
        80
    } else {
        8080
    };
    // Plain: client -> VIP (or the real server's reply). ICMP errors quote what their sender
    // saw: a real server reports on a forwarded packet (client -> RIP) to the client; a
    // client-side host reports on a reply (VIP -> client) to the VIP.
    let (src, sport, dst, dport) = match (icmp, reply) {
        (false, false) => (client, cport, vip, vport),
        (false, true) => (rip, rport, client, cport),
        (true, false) => (client, cport, rip, rport),
        (true, true) => (vip, vport, client, cport),
    };
    let inner = ip_packet(
        src,
        dst,
        if udp { 17 } else { 6 },
        &l4(src, dst, udp, sport, dport, flags, payload),
    );
    if !icmp {
        return inner;
    }
    // ICMP error about `inner`, sent back to its source by its destination.
    let quote = &inner[..inner.len().min(usize::from(kind >> 4) * 4 + 28)];
    let mut m = vec![if v6 { 1 } else { 3 }, 3, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quote);
    if v6 {
        Icmpv6Packet::new_unchecked(&mut m[..]).fill_checksum(dst, src);
        ip_packet(dst, src, 58, &m)
    } else {
        IcmpPacket::new_unchecked(&mut m[..]).fill_checksum();
        ip_packet(dst, src, 1, &m)
    }
}

fn l4(
    src: IpAddr,
    dst: IpAddr,
    udp: bool,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    if udp {
        let len = u16::try_from(8 + payload.len()).unwrap_or(8);
        s.extend_from_slice(&len.to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(payload);
        UdpPacket::new_unchecked(&mut s[..]).fill_checksum(src, dst);
    } else {
        s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        s.extend_from_slice(payload);
        TcpPacket::new_unchecked(&mut s[..]).fill_checksum(src, dst);
    }
    s
}

fn ip_packet(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let tl = u16::try_from(20 + payload.len())
                .unwrap_or(20)
                .to_be_bytes();
            let mut p = vec![0x45, 0, tl[0], tl[1], 0, 0, 0x40, 0, 64, proto, 0, 0];
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(payload);
            Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let pl = u16::try_from(payload.len()).unwrap_or(0).to_be_bytes();
            let mut p = vec![0x60, 0, 0, 0, pl[0], pl[1], proto, 64];
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(payload);
            p
        }
        _ => Vec::new(),
    }
}

fn checksums_ok(p: &[u8], i: &PacketInfo) -> bool {
    (i.version == IpVersion::V6 || ipv4_header_ok(p)) && transport_ok(p, i)
}

fn ports(i: &PacketInfo) -> Option<(u16, u16)> {
    match i.transport {
        Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport } => {
            Some((sport, dport))
        }
        _ => None,
    }
}

/// Processes one packet, checks the invariants, returns the verdict.
fn feed(d: &Director, now: u64, random: u64, pkt: &mut [u8]) -> Verdict {
    let before = pkt.to_vec();
    let was_ok = parse(&before).is_ok_and(|i| checksums_ok(&before, &i));
    let v = d.process(Timestamp(now), random, pkt);
    if std::env::var_os("RVS_FUZZ_DEBUG").is_some() {
        eprintln!(
            "{v:?} {:?}",
            parse(pkt).map(|i| (i.src, i.dst, i.transport))
        );
    }
    match v {
        Verdict::Pass => assert_eq!(pkt, &before[..], "Pass must leave the packet untouched"),
        Verdict::Forward(_) => {
            let i = parse(pkt).expect("a forwarded packet parses");
            if was_ok {
                assert!(checksums_ok(pkt, &i), "forwarding broke a checksum: {i:?}");
            }
        }
        // Direct routing and tunnelling hand the packet on unchanged (the encapsulation is the caller's).
        Verdict::Route { .. } | Verdict::Tunnel { .. } => {
            assert_eq!(pkt, &before[..], "Route/Tunnel must leave the packet unchanged")
        }
        Verdict::Drop(_) => {}
    }
    v
}

/// The reply a real server would send to a forwarded inbound TCP/UDP packet.
fn reply_to(fwd: &[u8], i: &PacketInfo) -> Option<Vec<u8>> {
    let (sport, dport) = ports(i)?;
    let udp = matches!(i.transport, Transport::Udp { .. });
    let flags = match i.transport {
        Transport::Tcp { flags, .. } if flags.syn() => 0x12,
        _ => 0x10,
    };
    let payload = fwd
        .get(i.l4_offset + if udp { 8 } else { 20 }..i.ip_len)
        .unwrap_or(&[]);
    let seg = l4(i.dst, i.src, udp, dport, sport, flags, payload);
    Some(ip_packet(i.dst, i.src, i.protocol, &seg))
}

fuzz_target!(|data: &[u8]| {
    let d = director();
    let mut now = 1_000u64;
    let mut random = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rest = data;
    while let [ctl, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        now += u64::from(ctl >> 4) * 250;
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut pkt = if ctl & 3 == 0 {
            body.to_vec()
        } else {
            synth(body)
        };
        let orig = parse(&pkt).ok();
        if feed(&d, now, random, &mut pkt) == Verdict::Forward(Direction::In)
            && let (Some(o), Ok(i)) = (orig, parse(&pkt))
            && let Some(mut r) = reply_to(&pkt, &i)
        {
            if feed(&d, now, random ^ 1, &mut r) == Verdict::Forward(Direction::Out) {
                let ri = parse(&r).expect("forwarded reply parses");
                assert_eq!(ri.src, o.dst, "reply must come from the VIP");
                assert_eq!(ri.dst, o.src, "reply must go to the client");
                if let (Some((_, vport)), Some((rs, _))) = (ports(&o), ports(&ri)) {
                    assert_eq!(rs, vport, "reply must come from the virtual port");
                }
            }
        }
        if ctl & 8 != 0 {
            d.expire(Timestamp(now));
        }
    }
    d.estimate_rates(Timestamp(now));
    let _ = (
        d.connections(Timestamp(now)),
        d.services(),
        d.drop_counters(),
        d.conn_count(),
    );
    d.expire(Timestamp(now + 3_600_000));
    // An hour on, beyond every timeout (900 s at most), nothing is left.
    assert_eq!(d.conn_count(), 0, "connections left an hour past every timeout");
    assert_eq!(d.template_count(), 0, "templates left an hour past every timeout");
});
