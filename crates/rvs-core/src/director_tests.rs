//! Simulated-clock tests of the director: packets in, verdicts and rewritten bytes out.
#![allow(clippy::unwrap_used, clippy::too_many_arguments)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{Ipv4Header, Ipv6Header, PacketBuilder, TcpHeader, UdpHeader};
use proptest::prelude::*;

use crate::*;

const VIP: [u8; 4] = [198, 51, 100, 250];
const CIP: [u8; 4] = [198, 51, 100, 10];
const RIP1: [u8; 4] = [203, 0, 113, 1];
const RIP2: [u8; 4] = [203, 0, 113, 2];

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn tcp_key(port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip(VIP),
        port,
    }
}

fn udp_key(port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: ip(VIP),
        port,
    }
}

#[derive(Clone, Copy, Default)]
struct F {
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
}
const SYN: F = F {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
};
const SYNACK: F = F {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
};
const ACK: F = F {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
};
const FIN: F = F {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
};
const RST: F = F {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
};

fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, f: F, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1000, 4096);
    if f.syn {
        b = b.syn();
    }
    if f.ack {
        b = b.ack(77);
    }
    if f.fin {
        b = b.fin();
    }
    if f.rst {
        b = b.rst();
    }
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

fn inet_sum_ok(data: &[u8]) -> bool {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u32::from(u16::from_be_bytes([c[0], c[1]]))
        } else {
            u32::from(c[0]) << 8
        };
        sum += w;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// Verifies every checksum of a packet with etherparse (and the ICMP sum by hand).
fn verify(pkt: &[u8]) -> Result<(), String> {
    match pkt[0] >> 4 {
        4 => {
            let (h, rest) = Ipv4Header::from_slice(pkt).map_err(|e| e.to_string())?;
            if h.calc_header_checksum() != h.header_checksum {
                return Err("ipv4 header checksum".into());
            }
            let plen = usize::from(h.total_len) - h.header_len();
            let payload = &rest[..plen];
            match h.protocol.0 {
                6 => {
                    let (t, data) = TcpHeader::from_slice(payload).map_err(|e| e.to_string())?;
                    if t.calc_checksum_ipv4(&h, data).unwrap() != t.checksum {
                        return Err("tcp checksum".into());
                    }
                }
                17 => {
                    let (u, data) = UdpHeader::from_slice(payload).map_err(|e| e.to_string())?;
                    if u.checksum != 0 && u.calc_checksum_ipv4(&h, data).unwrap() != u.checksum {
                        return Err("udp checksum".into());
                    }
                }
                1 => {
                    if !inet_sum_ok(payload) {
                        return Err("icmp checksum".into());
                    }
                    let inner = &payload[8..];
                    let (ih, _) = Ipv4Header::from_slice(inner).map_err(|e| e.to_string())?;
                    if ih.calc_header_checksum() != ih.header_checksum {
                        return Err("inner ipv4 header checksum".into());
                    }
                }
                _ => {}
            }
            Ok(())
        }
        6 => {
            let (h, rest) = Ipv6Header::from_slice(pkt).map_err(|e| e.to_string())?;
            let payload = &rest[..usize::from(h.payload_length)];
            match h.next_header.0 {
                6 => {
                    let (t, data) = TcpHeader::from_slice(payload).map_err(|e| e.to_string())?;
                    if t.calc_checksum_ipv6(&h, data).unwrap() != t.checksum {
                        return Err("tcp6 checksum".into());
                    }
                }
                17 => {
                    let (u, data) = UdpHeader::from_slice(payload).map_err(|e| e.to_string())?;
                    if u.calc_checksum_ipv6(&h, data).unwrap() != u.checksum {
                        return Err("udp6 checksum".into());
                    }
                }
                _ => {}
            }
            Ok(())
        }
        _ => Err("version".into()),
    }
}

fn addrs4(pkt: &[u8]) -> ([u8; 4], u16, [u8; 4], u16) {
    let s = [pkt[12], pkt[13], pkt[14], pkt[15]];
    let d = [pkt[16], pkt[17], pkt[18], pkt[19]];
    let l4 = usize::from(pkt[0] & 0xf) * 4;
    let sp = u16::from_be_bytes([pkt[l4], pkt[l4 + 1]]);
    let dp = u16::from_be_bytes([pkt[l4 + 2], pkt[l4 + 3]]);
    (s, sp, d, dp)
}

/// A director with one service (test-rr) and the given destinations (weight 1, masq).
fn setup(key: ServiceKey, dests: &[([u8; 4], u16)], persist: Option<Persistence>) -> Director {
    let d = Director::default();
    let mut spec = ServiceSpec::new(key, "rr");
    spec.persistence = persist;
    let mut ops = vec![ConfigOp::AddService(spec)];
    for (a, p) in dests {
        ops.push(ConfigOp::AddDest(
            key,
            DestSpec::masq(ip(*a), *p, Weight(1)),
        ));
    }
    d.apply_batch(ops).unwrap();
    d
}

fn dest_counts(d: &Director, key: &ServiceKey, addr: [u8; 4]) -> (u32, u32, u32) {
    let s = d.service(key).unwrap();
    let x = s.dests.iter().find(|x| x.spec.addr == ip(addr)).unwrap();
    (x.active_conns, x.inactive_conns, x.persistent_conns)
}

fn only_conn(d: &Director, now: u64) -> ConnSnapshot {
    let c = d.connections(Timestamp(now));
    let c: Vec<_> = c.into_iter().filter(|c| !c.template).collect();
    assert_eq!(c.len(), 1, "{c:?}");
    c.into_iter().next().unwrap()
}

/// Sends a packet and checks verdict + checksums; returns the rewritten bytes.
fn send(d: &Director, now: u64, mut p: Vec<u8>, want: Verdict) -> Vec<u8> {
    let v = d.process(Timestamp(now), 7, &mut p);
    assert_eq!(v, want);
    if let Verdict::Forward(_) = v {
        verify(&p).unwrap();
    }
    p
}

#[test]
fn tcp_handshake_close_and_expiry_with_exact_counters() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 8080)], None);
    let fwd_in = Verdict::Forward(Direction::In);
    let fwd_out = Verdict::Forward(Direction::Out);

    let p = send(&d, 1000, tcp4(CIP, 40000, VIP, 80, SYN, b""), fwd_in);
    assert_eq!(addrs4(&p), (CIP, 40000, RIP1, 8080));
    let c = only_conn(&d, 1000);
    assert_eq!(c.state, "SYN_RECV");
    assert_eq!(c.expires_in_ms, 60_000);
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 1, 0));

    let p = send(&d, 1010, tcp4(RIP1, 8080, CIP, 40000, SYNACK, b""), fwd_out);
    assert_eq!(addrs4(&p), (VIP, 80, CIP, 40000));
    assert_eq!(only_conn(&d, 1010).state, "SYN_RECV");

    send(&d, 1020, tcp4(CIP, 40000, VIP, 80, ACK, b"GET /"), fwd_in);
    let c = only_conn(&d, 1020);
    assert_eq!(c.state, "ESTABLISHED");
    assert_eq!(c.expires_in_ms, 900_000);
    assert_eq!(dest_counts(&d, &key, RIP1), (1, 0, 0));

    send(&d, 2000, tcp4(CIP, 40000, VIP, 80, FIN, b""), fwd_in);
    assert_eq!(only_conn(&d, 2000).state, "CLOSE_WAIT");
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 1, 0));
    send(&d, 2010, tcp4(RIP1, 8080, CIP, 40000, FIN, b""), fwd_out);
    let c = only_conn(&d, 2010);
    assert_eq!(c.state, "TIME_WAIT");
    assert_eq!(c.expires_in_ms, 120_000);
    send(&d, 2020, tcp4(CIP, 40000, VIP, 80, ACK, b""), fwd_in);
    assert_eq!(only_conn(&d, 2020).state, "TIME_WAIT");

    // TIME_WAIT lasts 120 s from the last packet, to the ms.
    assert_eq!(d.expire(Timestamp(2020 + 119_999)), 0);
    assert_eq!(d.conn_count(), 1);
    assert_eq!(d.expire(Timestamp(2020 + 120_000)), 1);
    assert_eq!(d.conn_count(), 0);
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 0, 0));

    // Counters: 4 packets in, 2 out, 1 connection.
    let s = d.service(&key).unwrap();
    assert_eq!(s.stats.conns, 1);
    assert_eq!(s.stats.inpkts, 4);
    assert_eq!(s.stats.outpkts, 2);
    assert_eq!(s.dests[0].stats.inpkts, 4);
    assert_eq!(s.stats.inbytes, 40 * 4 + 5);
    assert_eq!(s.stats.outbytes, 80);
}

#[test]
fn established_expires_after_900s_idle_and_refreshes() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 8080)], None);
    let fwd_in = Verdict::Forward(Direction::In);
    send(&d, 0, tcp4(CIP, 1, VIP, 80, SYN, b""), fwd_in);
    send(&d, 10, tcp4(CIP, 1, VIP, 80, ACK, b""), fwd_in);
    // Traffic at 500 s pushes expiry to 1400 s (lazy re-arm).
    send(&d, 500_000, tcp4(CIP, 1, VIP, 80, ACK, b"x"), fwd_in);
    assert_eq!(d.expire(Timestamp(910_010)), 0);
    assert_eq!(d.expire(Timestamp(1_399_999)), 0);
    assert_eq!(dest_counts(&d, &key, RIP1), (1, 0, 0));
    assert_eq!(d.expire(Timestamp(1_400_000)), 1);
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 0, 0));
}

#[test]
fn rst_closes_in_10s_and_syn_recv_times_out_in_60s() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 8080)], None);
    let fwd_in = Verdict::Forward(Direction::In);
    send(&d, 0, tcp4(CIP, 1, VIP, 80, SYN, b""), fwd_in);
    send(&d, 5, tcp4(CIP, 1, VIP, 80, ACK, b""), fwd_in);
    assert_eq!(dest_counts(&d, &key, RIP1), (1, 0, 0));
    send(&d, 100, tcp4(CIP, 1, VIP, 80, RST, b""), fwd_in);
    assert_eq!(only_conn(&d, 100).state, "CLOSE");
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 1, 0));
    // A second, half-open connection.
    send(&d, 200, tcp4(CIP, 2, VIP, 80, SYN, b""), fwd_in);
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 2, 0));
    assert_eq!(d.expire(Timestamp(10_099)), 0);
    assert_eq!(d.expire(Timestamp(10_100)), 1);
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 1, 0));
    assert_eq!(d.expire(Timestamp(60_199)), 0);
    assert_eq!(d.expire(Timestamp(60_200)), 1);
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 0, 0));
    // RST from the server on an established connection.
    send(&d, 70_000, tcp4(CIP, 3, VIP, 80, SYN, b""), fwd_in);
    send(&d, 70_001, tcp4(CIP, 3, VIP, 80, ACK, b""), fwd_in);
    send(
        &d,
        70_002,
        tcp4(RIP1, 8080, CIP, 3, RST, b""),
        Verdict::Forward(Direction::Out),
    );
    assert_eq!(only_conn(&d, 70_002).state, "CLOSE");
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 1, 0));
}

#[test]
fn non_syn_without_connection_is_dropped_and_counted() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 8080)], None);
    let p = tcp4(CIP, 5, VIP, 80, ACK, b"");
    let orig = p.clone();
    let p = send(&d, 0, p, Verdict::Drop(DropReason::NotSyn));
    assert_eq!(p, orig);
    send(
        &d,
        0,
        tcp4(CIP, 5, VIP, 80, F::default(), b""),
        Verdict::Drop(DropReason::NotSyn),
    );
    assert_eq!(d.drop_counters().get(DropReason::NotSyn), 2);
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn syn_on_time_wait_reschedules() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 8080), (RIP2, 8080)], None);
    let fwd_in = Verdict::Forward(Direction::In);
    let p = send(&d, 0, tcp4(CIP, 9, VIP, 80, SYN, b""), fwd_in);
    assert_eq!(addrs4(&p).2, RIP1);
    send(&d, 1, tcp4(CIP, 9, VIP, 80, ACK, b""), fwd_in);
    send(&d, 2, tcp4(CIP, 9, VIP, 80, FIN, b""), fwd_in);
    send(
        &d,
        3,
        tcp4(RIP1, 8080, CIP, 9, FIN, b""),
        Verdict::Forward(Direction::Out),
    );
    assert_eq!(only_conn(&d, 3).state, "TIME_WAIT");
    let p = send(&d, 4, tcp4(CIP, 9, VIP, 80, SYN, b""), fwd_in);
    assert_eq!(addrs4(&p).2, RIP2);
    assert_eq!(only_conn(&d, 4).state, "SYN_RECV");
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 0, 0));
    assert_eq!(dest_counts(&d, &key, RIP2), (0, 1, 0));
}

#[test]
fn udp_conn_expires_after_timeout_and_timeouts_are_settable() {
    let key = udp_key(53);
    let d = setup(key, &[(RIP1, 5353)], None);
    let p = send(
        &d,
        0,
        udp4(CIP, 3333, VIP, 53, b"q"),
        Verdict::Forward(Direction::In),
    );
    assert_eq!(addrs4(&p), (CIP, 3333, RIP1, 5353));
    let c = only_conn(&d, 0);
    assert_eq!(c.state, "UDP");
    assert_eq!(c.expires_in_ms, 300_000);
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 1, 0));
    let p = send(
        &d,
        1000,
        udp4(RIP1, 5353, CIP, 3333, b"a"),
        Verdict::Forward(Direction::Out),
    );
    assert_eq!(addrs4(&p), (VIP, 53, CIP, 3333));
    assert_eq!(d.expire(Timestamp(300_999)), 0);
    assert_eq!(d.expire(Timestamp(301_000)), 1);
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 0, 0));

    d.apply(ConfigOp::SetTimeouts(Timeouts {
        tcp_s: 0,
        tcp_fin_s: 0,
        udp_s: 10,
    }))
    .unwrap();
    assert_eq!(
        d.timeouts(),
        Timeouts {
            tcp_s: 900,
            tcp_fin_s: 120,
            udp_s: 10
        }
    );
    send(
        &d,
        400_000,
        udp4(CIP, 3334, VIP, 53, b"q"),
        Verdict::Forward(Direction::In),
    );
    assert_eq!(d.expire(Timestamp(409_999)), 0);
    assert_eq!(d.expire(Timestamp(410_000)), 1);
}

#[test]
fn tcp_timeouts_apply_to_established_and_fin_wait() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 8080)], None);
    d.apply(ConfigOp::SetTimeouts(Timeouts {
        tcp_s: 50,
        tcp_fin_s: 7,
        udp_s: 0,
    }))
    .unwrap();
    let fwd_in = Verdict::Forward(Direction::In);
    send(&d, 0, tcp4(CIP, 1, VIP, 80, SYN, b""), fwd_in);
    send(&d, 1, tcp4(CIP, 1, VIP, 80, ACK, b""), fwd_in);
    assert_eq!(only_conn(&d, 1).expires_in_ms, 50_000);
    // Server closes first: output FIN on ESTABLISHED -> FIN_WAIT.
    send(
        &d,
        2,
        tcp4(RIP1, 8080, CIP, 1, FIN, b""),
        Verdict::Forward(Direction::Out),
    );
    let c = only_conn(&d, 2);
    assert_eq!(c.state, "FIN_WAIT");
    assert_eq!(c.expires_in_ms, 7_000);
    assert_eq!(d.expire(Timestamp(7_001)), 0);
    assert_eq!(d.expire(Timestamp(7_002)), 1);
    assert_eq!(d.timeouts().udp_s, 300);
}

#[test]
fn persistence_pins_masked_clients_and_template_outlives_connections() {
    let key = tcp_key(80);
    let persist = Persistence {
        timeout_s: 60,
        netmask: IpAddr::V4(Ipv4Addr::new(255, 255, 255, 0)),
    };
    let d = setup(key, &[(RIP1, 80), (RIP2, 80)], Some(persist));
    let fwd_in = Verdict::Forward(Direction::In);
    let first = addrs4(&send(&d, 0, tcp4(CIP, 1000, VIP, 80, SYN, b""), fwd_in)).2;
    // Same /24, other ports and hosts: same real server every time (rr would alternate).
    for (k, host) in [10u8, 11, 12, 200].iter().enumerate() {
        let c = [198, 51, 100, *host];
        let p = send(
            &d,
            10 + k as u64,
            tcp4(c, 2000 + k as u16, VIP, 80, SYN, b""),
            fwd_in,
        );
        assert_eq!(addrs4(&p).2, first);
    }
    assert_eq!(d.template_count(), 1);
    assert_eq!(dest_counts(&d, &key, first), (0, 5, 1));
    let t: Vec<_> = d
        .connections(Timestamp(13))
        .into_iter()
        .filter(|c| c.template)
        .collect();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].caddr, ip([198, 51, 100, 0]));
    assert_eq!(t[0].cport, 0);
    assert_eq!(t[0].state, "NONE");
    assert_eq!(t[0].expires_in_ms, 60_000);
    // Another /24 goes through the scheduler and gets its own template.
    let other = addrs4(&send(
        &d,
        20,
        tcp4([198, 51, 101, 1], 1, VIP, 80, SYN, b""),
        fwd_in,
    ))
    .2;
    assert_ne!(other, first);
    assert_eq!(d.template_count(), 2);
    // Establish everything, then reset it at 70 s. Templates (60 s) outlive their timeout while
    // they control connections (re-armed for another 60 s when their timer fires), then expire.
    let clients = [
        ([198, 51, 100, 10], 1000u16),
        ([198, 51, 100, 10], 2000),
        ([198, 51, 100, 11], 2001),
        ([198, 51, 100, 12], 2002),
        ([198, 51, 100, 200], 2003),
        ([198, 51, 101, 1], 1),
    ];
    for (c, port) in clients {
        send(&d, 100, tcp4(c, port, VIP, 80, ACK, b""), fwd_in);
    }
    assert_eq!(dest_counts(&d, &key, first), (5, 0, 1));
    let mut conns_gone = None;
    let mut templates_gone = None;
    let mut t = 0;
    while t < 130_000 {
        t += 1000;
        if t == 70_000 {
            for (c, port) in clients {
                send(&d, t, tcp4(c, port, VIP, 80, RST, b""), fwd_in);
            }
            assert_eq!(dest_counts(&d, &key, first), (0, 5, 1));
        }
        d.expire(Timestamp(t));
        if conns_gone.is_none() && d.conn_count() == 0 {
            conns_gone = Some(t);
        }
        if templates_gone.is_none() && d.template_count() == 0 {
            templates_gone = Some(t);
        }
    }
    assert_eq!(conns_gone, Some(80_000));
    // Timers fired at 61 s (first expire call after 60.013/60.020 s) with connections: re-armed
    // to 121 s; by then no connection is left.
    assert_eq!(templates_gone, Some(121_000));
    assert_eq!(dest_counts(&d, &key, first), (0, 0, 0));
    assert_eq!(dest_counts(&d, &key, other), (0, 0, 0));
}

#[test]
fn persistence_template_refreshed_by_new_connections() {
    let key = tcp_key(0);
    let persist = Persistence {
        timeout_s: 30,
        netmask: IpAddr::V4(Ipv4Addr::BROADCAST),
    };
    let d = setup(key, &[(RIP1, 0), (RIP2, 0)], Some(persist));
    let fwd_in = Verdict::Forward(Direction::In);
    // Port-0 service: all ports; the real server keeps the client's port.
    let p = send(&d, 0, tcp4(CIP, 1, VIP, 443, SYN, b""), fwd_in);
    let (_, _, r, rp) = addrs4(&p);
    assert_eq!(rp, 443);
    send(&d, 1, tcp4(CIP, 1, VIP, 443, RST, b""), fwd_in); // SYN_RECV stays on RST
    // A connection to another port at 20 s goes to the same server and refreshes the template.
    let p = send(&d, 20_000, tcp4(CIP, 2, VIP, 22, SYN, b""), fwd_in);
    assert_eq!(addrs4(&p).2, r);
    assert_eq!(addrs4(&p).3, 22);
    let t = d
        .connections(Timestamp(20_000))
        .into_iter()
        .find(|c| c.template)
        .unwrap();
    assert_eq!(t.vport, 0);
    assert_eq!(t.expires_in_ms, 30_000);
}

#[test]
fn quiesced_destination_keeps_connections_gets_no_new_ones() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 80), (RIP2, 80)], None);
    let fwd_in = Verdict::Forward(Direction::In);
    assert_eq!(
        addrs4(&send(&d, 0, tcp4(CIP, 1, VIP, 80, SYN, b""), fwd_in)).2,
        RIP1
    );
    send(&d, 1, tcp4(CIP, 1, VIP, 80, ACK, b""), fwd_in);
    d.apply(ConfigOp::EditDest(
        key,
        DestSpec::masq(ip(RIP1), 80, Weight(0)),
    ))
    .unwrap();
    for port in 2..10 {
        let p = send(&d, 3, tcp4(CIP, port, VIP, 80, SYN, b""), fwd_in);
        assert_eq!(addrs4(&p).2, RIP2);
    }
    let p = send(&d, 4, tcp4(CIP, 1, VIP, 80, ACK, b"more"), fwd_in);
    assert_eq!(addrs4(&p).2, RIP1);
    assert_eq!(dest_counts(&d, &key, RIP1), (1, 0, 0));
    // All quiesced: no destination.
    d.apply(ConfigOp::EditDest(
        key,
        DestSpec::masq(ip(RIP2), 80, Weight(0)),
    ))
    .unwrap();
    send(
        &d,
        6,
        tcp4(CIP, 99, VIP, 80, SYN, b""),
        Verdict::Drop(DropReason::NoDestination),
    );
    assert_eq!(d.drop_counters().get(DropReason::NoDestination), 1);
}

#[test]
fn deleted_destination_connections_are_dropped_until_expiry() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 80), (RIP2, 80)], None);
    let fwd_in = Verdict::Forward(Direction::In);
    send(&d, 0, tcp4(CIP, 1, VIP, 80, SYN, b""), fwd_in);
    send(&d, 1, tcp4(CIP, 1, VIP, 80, ACK, b""), fwd_in);
    d.apply(ConfigOp::DeleteDest(key, ip(RIP1), 80)).unwrap();
    assert_eq!(d.service(&key).unwrap().dests.len(), 1);
    assert_eq!(
        d.apply(ConfigOp::DeleteDest(key, ip(RIP1), 80)),
        Err(ConfigError::NoSuchDestination)
    );
    // expire_nodest_conn = 0 (IPVS's default): the old connection's packets are dropped (and
    // counted) while its entry lives on; a late reply from RIP1 still goes out.
    send(
        &d,
        3,
        tcp4(CIP, 1, VIP, 80, ACK, b"x"),
        Verdict::Drop(DropReason::DestUnavailable),
    );
    assert_eq!(d.drop_counters().get(DropReason::DestUnavailable), 1);
    send(
        &d,
        4,
        tcp4(RIP1, 80, CIP, 1, ACK, b"y"),
        Verdict::Forward(Direction::Out),
    );
    // New connections go to RIP2.
    let p = send(&d, 5, tcp4(CIP, 2, VIP, 80, SYN, b""), fwd_in);
    assert_eq!(addrs4(&p).2, RIP2);
    // Re-adding RIP1 makes a fresh destination; the old connection keeps the old one.
    d.apply(ConfigOp::AddDest(
        key,
        DestSpec::masq(ip(RIP1), 80, Weight(1)),
    ))
    .unwrap();
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 0, 0));
    assert_eq!(d.expire(Timestamp(900_004)), 2);
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn deleting_a_service_drops_its_connections() {
    let key = tcp_key(80);
    let other = udp_key(53);
    let d = setup(key, &[(RIP1, 80)], None);
    d.apply_batch(vec![
        ConfigOp::AddService(ServiceSpec::new(other, "rr")),
        ConfigOp::AddDest(other, DestSpec::masq(ip(RIP2), 53, Weight(1))),
    ])
    .unwrap();
    let fwd_in = Verdict::Forward(Direction::In);
    send(&d, 0, tcp4(CIP, 1, VIP, 80, SYN, b""), fwd_in);
    send(&d, 0, udp4(CIP, 1, VIP, 53, b""), fwd_in);
    assert_eq!(d.conn_count(), 2);
    d.apply(ConfigOp::DeleteService(key)).unwrap();
    assert_eq!(d.conn_count(), 1);
    // No service, no connection: the VIP's port 80 now belongs to the local stack.
    send(&d, 2, tcp4(CIP, 1, VIP, 80, ACK, b""), Verdict::Pass);
    send(&d, 2, tcp4(RIP1, 80, CIP, 1, ACK, b""), Verdict::Pass);
    // The other service's connection is untouched.
    send(
        &d,
        3,
        udp4(RIP2, 53, CIP, 1, b"r"),
        Verdict::Forward(Direction::Out),
    );
    d.apply(ConfigOp::Clear).unwrap();
    assert_eq!(d.conn_count(), 0);
    assert!(d.services().is_empty());
}

#[test]
fn batch_is_all_or_nothing_and_errors_read_like_ipvsadm() {
    let d = Director::default();
    let key = tcp_key(80);
    let r = d.apply_batch(vec![
        ConfigOp::AddService(ServiceSpec::new(key, "rr")),
        ConfigOp::AddDest(key, DestSpec::masq(ip(RIP1), 80, Weight(1))),
        ConfigOp::AddDest(tcp_key(81), DestSpec::masq(ip(RIP1), 80, Weight(1))),
    ]);
    assert_eq!(r, Err((2, ConfigError::ServiceNotDefined)));
    assert!(d.services().is_empty());
    send(&d, 0, tcp4(CIP, 1, VIP, 80, SYN, b""), Verdict::Pass);

    d.apply(ConfigOp::AddService(ServiceSpec::new(key, "rr")))
        .unwrap();
    let e = d
        .apply(ConfigOp::AddService(ServiceSpec::new(key, "rr")))
        .unwrap_err();
    assert_eq!(e.to_string(), "Service already exists");
    let e = d
        .apply(ConfigOp::AddService(ServiceSpec::new(tcp_key(1), "nope")))
        .unwrap_err();
    assert_eq!(e.to_string(), "Scheduler or persistence engine not found");
    d.apply(ConfigOp::AddDest(
        key,
        DestSpec::masq(ip(RIP1), 80, Weight(1)),
    ))
    .unwrap();
    let e = d
        .apply(ConfigOp::AddDest(
            key,
            DestSpec::masq(ip(RIP1), 80, Weight(1)),
        ))
        .unwrap_err();
    assert_eq!(e.to_string(), "Destination already exists");
    let e = d
        .apply(ConfigOp::EditDest(
            key,
            DestSpec::masq(ip(RIP2), 80, Weight(1)),
        ))
        .unwrap_err();
    assert_eq!(e.to_string(), "No such destination");
    let e = d.apply(ConfigOp::DeleteService(tcp_key(9))).unwrap_err();
    assert_eq!(e.to_string(), "Service not defined");
    let e = d
        .apply(ConfigOp::AddDest(
            key,
            DestSpec::masq(ip(RIP2), 80, Weight(70_000)),
        ))
        .unwrap_err();
    assert_eq!(e.to_string(), "Invalid argument");
    // A failing batch leaves weights and timeouts alone too.
    let r = d.apply_batch(vec![
        ConfigOp::EditDest(key, DestSpec::masq(ip(RIP1), 80, Weight(0))),
        ConfigOp::SetTimeouts(Timeouts {
            tcp_s: 5,
            tcp_fin_s: 0,
            udp_s: 0,
        }),
        ConfigOp::DeleteService(tcp_key(9)),
    ]);
    assert_eq!(r, Err((2, ConfigError::ServiceNotDefined)));
    assert_eq!(d.service(&key).unwrap().dests[0].spec.weight, Weight(1));
    assert_eq!(d.timeouts().tcp_s, 900);
}

#[test]
fn thresholds_overload_and_recover() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 80), (RIP2, 80)], None);
    let mut s = DestSpec::masq(ip(RIP1), 80, Weight(1));
    s.u_threshold = 2;
    s.l_threshold = 1;
    d.apply(ConfigOp::EditDest(key, s)).unwrap();
    let fwd_in = Verdict::Forward(Direction::In);
    let mut to1 = 0;
    for port in 1..=10 {
        let p = send(&d, 0, tcp4(CIP, port, VIP, 80, SYN, b""), fwd_in);
        if addrs4(&p).2 == RIP1 {
            to1 += 1;
        }
    }
    assert_eq!(to1, 2);
    assert!(d.service(&key).unwrap().dests[0].overloaded);
    // RST both RIP1 connections (SYN_RECV stays on RST); expire all: back under the lower mark.
    d.expire(Timestamp(60_000));
    assert!(!d.service(&key).unwrap().dests[0].overloaded);
}

#[test]
fn icmp_errors_about_tracked_connections_are_translated() {
    let key = udp_key(53);
    let d = setup(key, &[(RIP1, 5353)], None);
    send(
        &d,
        0,
        udp4(CIP, 3333, VIP, 53, b"q"),
        Verdict::Forward(Direction::In),
    );
    // Client says "port unreachable" about our reply VIP:53 -> CIP:3333.
    let quoted = udp4(VIP, 53, CIP, 3333, b"answer");
    let b =
        PacketBuilder::ipv4(CIP, VIP, 64).icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ));
    let mut p = Vec::new();
    b.write(&mut p, &quoted).unwrap();
    let p = send(&d, 1, p, Verdict::Forward(Direction::In));
    assert_eq!(&p[16..20], &RIP1);
    let inner = &p[28..];
    assert_eq!(&inner[12..16], &RIP1);
    assert_eq!(u16::from_be_bytes([inner[20], inner[21]]), 5353);
    assert_eq!(&inner[16..20], &CIP);

    // A router on the real-server side: "host unreachable" about CIP:3333 -> RIP1:5353.
    let quoted = udp4(CIP, 3333, RIP1, 5353, b"q");
    let b =
        PacketBuilder::ipv4(RIP1, CIP, 64).icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Host,
        ));
    let mut p = Vec::new();
    b.write(&mut p, &quoted).unwrap();
    let p = send(&d, 2, p, Verdict::Forward(Direction::Out));
    assert_eq!(&p[12..16], &VIP);
    let inner = &p[28..];
    assert_eq!(&inner[16..20], &VIP);
    assert_eq!(u16::from_be_bytes([inner[22], inner[23]]), 53);

    // About an untracked flow: not ours.
    let quoted = udp4(CIP, 1, RIP2, 9, b"q");
    let b =
        PacketBuilder::ipv4(RIP2, CIP, 64).icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Host,
        ));
    let mut p = Vec::new();
    b.write(&mut p, &quoted).unwrap();
    send(&d, 3, p, Verdict::Pass);
}

#[test]
fn non_vip_traffic_passes_untouched_and_bad_input_is_counted() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 80)], None);
    for p in [
        tcp4(CIP, 1, [198, 51, 100, 99], 80, SYN, b""),
        tcp4(RIP1, 80, CIP, 1, ACK, b""), // untracked reply
        udp4(CIP, 1, VIP, 80, b""),       // VIP but no UDP service
        tcp4(CIP, 1, VIP, 81, SYN, b""),  // VIP, other port
    ] {
        let orig = p.clone();
        let p = send(&d, 0, p, Verdict::Pass);
        assert_eq!(p, orig);
    }
    // Ping to the VIP: the local stack answers.
    let b = PacketBuilder::ipv4(CIP, VIP, 64).icmpv4_echo_request(1, 1);
    let mut p = Vec::new();
    b.write(&mut p, b"ping").unwrap();
    send(&d, 0, p, Verdict::Pass);
    // Fragments.
    let mut frag = tcp4(CIP, 1, VIP, 80, SYN, b"0123456789abcdef");
    frag[6] |= 0x20; // MF
    let mut h = Ipv4Header::from_slice(&frag).unwrap().0;
    h.header_checksum = h.calc_header_checksum();
    frag[10..12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    send(&d, 0, frag.clone(), Verdict::Drop(DropReason::Fragment));
    frag[19] = 99;
    let mut h = Ipv4Header::from_slice(&frag).unwrap().0;
    h.header_checksum = 0;
    frag[10..12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    send(&d, 0, frag, Verdict::Pass);
    // Garbage.
    let mut junk = vec![0x45, 0, 0, 200, 1, 2, 3];
    assert_eq!(
        d.process(Timestamp(0), 0, &mut junk),
        Verdict::Drop(DropReason::Malformed)
    );
    let mut empty: Vec<u8> = Vec::new();
    assert_eq!(
        d.process(Timestamp(0), 0, &mut empty),
        Verdict::Drop(DropReason::Malformed)
    );
    let c = d.drop_counters();
    assert_eq!(c.get(DropReason::Fragment), 1);
    assert_eq!(c.get(DropReason::Malformed), 2);
    assert_eq!(c.total(), 3);
}

#[test]
fn ipv6_service_round_trip() {
    let vip: Ipv6Addr = "2001:db8::80".parse().unwrap();
    let rip: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let cip: Ipv6Addr = "2001:db8:2::7".parse().unwrap();
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V6(vip),
        port: 80,
    };
    let d = Director::default();
    d.apply_batch(vec![
        ConfigOp::AddService(ServiceSpec::new(key, "rr")),
        ConfigOp::AddDest(key, DestSpec::masq(IpAddr::V6(rip), 8080, Weight(1))),
    ])
    .unwrap();
    // Mixed families are refused for masq.
    assert!(matches!(
        d.apply(ConfigOp::AddDest(
            key,
            DestSpec::masq(ip(RIP1), 80, Weight(1))
        )),
        Err(ConfigError::InvalidArgument(_))
    ));
    let mk = |s: Ipv6Addr, sp: u16, dd: Ipv6Addr, dp: u16, syn: bool| {
        let mut b = PacketBuilder::ipv6(s.octets(), dd.octets(), 64).tcp(sp, dp, 1, 1000);
        b = if syn { b.syn() } else { b.ack(1) };
        let mut v = Vec::new();
        b.write(&mut v, b"hello").unwrap();
        v
    };
    let p = send(
        &d,
        0,
        mk(cip, 5555, vip, 80, true),
        Verdict::Forward(Direction::In),
    );
    assert_eq!(&p[24..40], &rip.octets());
    let p = send(
        &d,
        1,
        mk(rip, 8080, cip, 5555, true),
        Verdict::Forward(Direction::Out),
    );
    assert_eq!(&p[8..24], &vip.octets());
    assert_eq!(u16::from_be_bytes([p[40], p[41]]), 80);
    send(
        &d,
        2,
        mk(cip, 5555, vip, 80, false),
        Verdict::Forward(Direction::In),
    );
    assert_eq!(only_conn(&d, 2).state, "ESTABLISHED");
}

#[test]
fn zero_and_rates() {
    let key = udp_key(53);
    let d = setup(key, &[(RIP1, 53)], None);
    d.estimate_rates(Timestamp(0));
    let mut now = 0;
    for round in 0..60u16 {
        for k in 0..100u16 {
            send(
                &d,
                now,
                udp4(CIP, 1000 + k + round * 100, VIP, 53, b"0123456789"),
                Verdict::Forward(Direction::In),
            );
        }
        now += 2000;
        d.estimate_rates(Timestamp(now));
    }
    let s = d.service(&key).unwrap();
    assert_eq!(s.rates.cps, 50);
    assert_eq!(s.rates.inpps, 50);
    assert_eq!(s.rates.inbps, 50 * 38);
    assert_eq!(s.dests[0].rates.inpps, 50);
    assert_eq!(s.stats.conns, 6000);
    d.apply(ConfigOp::Zero(Some(key))).unwrap();
    let s = d.service(&key).unwrap();
    assert_eq!(s.stats, Stats::default());
    assert_eq!(s.rates, Rates::default());
    assert_eq!(s.dests[0].stats, Stats::default());
}

#[test]
fn one_packet_udp_is_not_tracked() {
    let key = udp_key(53);
    let d = Director::default();
    let mut spec = ServiceSpec::new(key, "rr");
    spec.one_packet = true;
    d.apply_batch(vec![
        ConfigOp::AddService(spec),
        ConfigOp::AddDest(key, DestSpec::masq(ip(RIP1), 53, Weight(1))),
        ConfigOp::AddDest(key, DestSpec::masq(ip(RIP2), 53, Weight(1))),
    ])
    .unwrap();
    let a = addrs4(&send(
        &d,
        0,
        udp4(CIP, 1, VIP, 53, b"q"),
        Verdict::Forward(Direction::In),
    ))
    .2;
    let b = addrs4(&send(
        &d,
        0,
        udp4(CIP, 1, VIP, 53, b"q"),
        Verdict::Forward(Direction::In),
    ))
    .2;
    assert_ne!(a, b);
    assert_eq!(d.conn_count(), 0);
    assert_eq!(d.service(&key).unwrap().stats.conns, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn rewritten_packets_verify(
        c in any::<[u8; 4]>(),
        cport in 1u16..,
        vport in prop::sample::select(vec![80u16, 53]),
        rport in 1u16..,
        payload in prop::collection::vec(any::<u8>(), 0..300),
        udp in any::<bool>(),
        zero_udp_csum in any::<bool>(),
    ) {
        // Client addresses outside the VIP/RIP nets.
        let caddr = [10, c[1], c[2], c[3].max(1)];
        let key = if udp { udp_key(vport) } else { tcp_key(vport) };
        let d = setup(key, &[(RIP1, rport)], None);
        let mut p = if udp {
            udp4(caddr, cport, VIP, vport, &payload)
        } else {
            tcp4(caddr, cport, VIP, vport, SYN, &payload)
        };
        if udp && zero_udp_csum {
            p[26] = 0;
            p[27] = 0;
        }
        prop_assert_eq!(d.process(Timestamp(0), 1, &mut p), Verdict::Forward(Direction::In));
        prop_assert!(verify(&p).is_ok(), "{:?}", verify(&p));
        prop_assert_eq!(addrs4(&p), (caddr, cport, RIP1, rport));
        if udp && zero_udp_csum {
            prop_assert_eq!(&p[26..28], &[0u8, 0]);
        }
        let mut r = if udp {
            udp4(RIP1, rport, caddr, cport, &payload)
        } else {
            tcp4(RIP1, rport, caddr, cport, SYNACK, &payload)
        };
        prop_assert_eq!(d.process(Timestamp(1), 2, &mut r), Verdict::Forward(Direction::Out));
        prop_assert!(verify(&r).is_ok(), "{:?}", verify(&r));
        prop_assert_eq!(addrs4(&r), (VIP, vport, caddr, cport));
    }

    #[test]
    fn garbage_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        let d = setup(tcp_key(80), &[(RIP1, 80)], None);
        let _ = d.process(Timestamp(0), 0, &mut bytes);
        // A TCP/IPv4 header with random tail bytes.
        let mut p = tcp4(CIP, 1, VIP, 80, SYN, b"");
        p.extend_from_slice(&bytes);
        let _ = d.process(Timestamp(0), 0, &mut p);
    }
}

#[test]
fn concurrent_workers_keep_counters_exact() {
    let key = tcp_key(80);
    let d = std::sync::Arc::new(setup(key, &[(RIP1, 80), (RIP2, 80)], None));
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let d = d.clone();
            std::thread::spawn(move || {
                let c = [10, 1, t, 1];
                for port in 1..=300u16 {
                    let mut p = tcp4(c, port, VIP, 80, SYN, b"");
                    assert_eq!(
                        d.process(Timestamp(0), u64::from(port), &mut p),
                        Verdict::Forward(Direction::In)
                    );
                    let rs = [p[16], p[17], p[18], p[19]];
                    let mut p = tcp4(c, port, VIP, 80, ACK, b"");
                    d.process(Timestamp(1), 0, &mut p);
                    if port % 3 == 0 {
                        let mut p = tcp4(rs, 80, c, port, FIN, b"");
                        assert_eq!(
                            d.process(Timestamp(2), 0, &mut p),
                            Verdict::Forward(Direction::Out)
                        );
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = d.service(&key).unwrap();
    let active: u32 = s.dests.iter().map(|x| x.active_conns).sum();
    let inactive: u32 = s.dests.iter().map(|x| x.inactive_conns).sum();
    assert_eq!(active, 800);
    assert_eq!(inactive, 400);
    assert_eq!(s.dests[0].active_conns + s.dests[0].inactive_conns, 600);
    assert_eq!(s.stats.conns, 1200);
    assert_eq!(s.stats.inpkts, 2400);
    assert_eq!(s.stats.outpkts, 400);
    assert_eq!(d.conn_count(), 1200);
    // FIN_WAIT (120 s) first, then ESTABLISHED (900 s).
    assert_eq!(d.expire(Timestamp(120_002)), 400);
    assert_eq!(d.expire(Timestamp(900_001)), 800);
    let s = d.service(&key).unwrap();
    assert!(
        s.dests
            .iter()
            .all(|x| x.active_conns == 0 && x.inactive_conns == 0)
    );
}

#[test]
fn memory_per_ipv4_connection_is_under_96_bytes() {
    let key = udp_key(53);
    let d = Director::new(DirectorConfig {
        shards: 8,
        ..DirectorConfig::default()
    });
    d.apply_batch(vec![
        ConfigOp::AddService(ServiceSpec::new(key, "rr")),
        ConfigOp::AddDest(key, DestSpec::masq(ip(RIP1), 53, Weight(1))),
    ])
    .unwrap();
    let n: u32 = 100_000;
    for k in 0..n {
        let c = [10, (k >> 16) as u8, (k >> 8) as u8, k as u8];
        let mut p = udp4(c, 1000, VIP, 53, b"");
        assert_eq!(
            d.process(Timestamp(0), 0, &mut p),
            Verdict::Forward(Direction::In)
        );
    }
    let m = d.memory();
    assert_eq!(m.conns, n as usize);
    let per = m.table_bytes as f64 / f64::from(n);
    assert!(per <= 96.0, "{per} bytes per connection");
    assert!(per >= 64.0, "{per}: the entry alone is 64 bytes");
}

#[test]
fn editing_the_service_keeps_connections() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 80), (RIP2, 80)], None);
    let fwd_in = Verdict::Forward(Direction::In);
    // Three connections: RIP1, RIP2, RIP1 (rr).
    for port in 1..=3 {
        send(&d, 0, tcp4(CIP, port, VIP, 80, SYN, b""), fwd_in);
        send(&d, 1, tcp4(CIP, port, VIP, 80, ACK, b""), fwd_in);
    }
    assert_eq!(dest_counts(&d, &key, RIP1), (2, 0, 0));
    d.apply(ConfigOp::EditService(ServiceSpec::new(key, "wlc")))
        .unwrap();
    assert_eq!(d.service(&key).unwrap().spec.scheduler, "wlc");
    // Existing connections continue where they were.
    let p = send(&d, 3, tcp4(CIP, 1, VIP, 80, ACK, b"x"), fwd_in);
    assert_eq!(addrs4(&p).2, RIP1);
    let p = send(&d, 3, tcp4(CIP, 2, VIP, 80, ACK, b"x"), fwd_in);
    assert_eq!(addrs4(&p).2, RIP2);
    // wlc sends the next one to the least loaded server.
    let p = send(&d, 4, tcp4(CIP, 4, VIP, 80, SYN, b""), fwd_in);
    assert_eq!(addrs4(&p).2, RIP2);
    assert_eq!(d.conn_count(), 4);
    // An unknown scheduler is refused and changes nothing.
    assert_eq!(
        d.apply(ConfigOp::EditService(ServiceSpec::new(key, "bogus"))),
        Err(ConfigError::SchedulerNotFound)
    );
    assert_eq!(d.service(&key).unwrap().spec.scheduler, "wlc");
    // Adding a destination does not disturb anything either.
    d.apply(ConfigOp::AddDest(
        key,
        DestSpec::masq(ip([203, 0, 113, 3]), 80, Weight(1)),
    ))
    .unwrap();
    let p = send(&d, 7, tcp4(CIP, 3, VIP, 80, ACK, b"x"), fwd_in);
    assert_eq!(addrs4(&p).2, RIP1);
    assert_eq!(dest_counts(&d, &key, RIP1), (2, 0, 0));
    assert_eq!(dest_counts(&d, &key, RIP2), (1, 1, 0));
}

#[test]
fn icmpv6_error_is_translated_with_pseudo_header_checksum() {
    let vip: Ipv6Addr = "2001:db8::80".parse().unwrap();
    let rip: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let cip: Ipv6Addr = "2001:db8:2::7".parse().unwrap();
    let key = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: IpAddr::V6(vip),
        port: 53,
    };
    let d = Director::default();
    d.apply_batch(vec![
        ConfigOp::AddService(ServiceSpec::new(key, "rr")),
        ConfigOp::AddDest(key, DestSpec::masq(IpAddr::V6(rip), 5353, Weight(1))),
    ])
    .unwrap();
    let udp6 = |s: Ipv6Addr, sp: u16, dd: Ipv6Addr, dp: u16| {
        let b = PacketBuilder::ipv6(s.octets(), dd.octets(), 64).udp(sp, dp);
        let mut v = Vec::new();
        b.write(&mut v, b"data").unwrap();
        v
    };
    send(
        &d,
        0,
        udp6(cip, 4444, vip, 53),
        Verdict::Forward(Direction::In),
    );
    // The client reports our reply VIP:53 -> CIP:4444 unreachable.
    let b = PacketBuilder::ipv6(cip.octets(), vip.octets(), 64).icmpv6(
        etherparse::Icmpv6Type::DestinationUnreachable(
            etherparse::icmpv6::DestUnreachableCode::Port,
        ),
    );
    let mut p = Vec::new();
    b.write(&mut p, &udp6(vip, 53, cip, 4444)).unwrap();
    let p = send(&d, 1, p, Verdict::Forward(Direction::In));
    assert_eq!(&p[24..40], &rip.octets());
    let inner = &p[48..];
    assert_eq!(&inner[8..24], &rip.octets());
    assert_eq!(u16::from_be_bytes([inner[40], inner[41]]), 5353);
    // ICMPv6 checksum over the pseudo-header with the new destination.
    let icmp = &p[40..];
    let mut ph = Vec::new();
    ph.extend_from_slice(&p[8..40]);
    ph.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, 58]);
    ph.extend_from_slice(icmp);
    assert!(inet_sum_ok(&ph));
}

#[test]
fn persistence_follows_quiesced_but_not_deleted_destinations() {
    let key = tcp_key(80);
    let persist = Persistence {
        timeout_s: 300,
        netmask: IpAddr::V4(Ipv4Addr::BROADCAST),
    };
    let d = setup(key, &[(RIP1, 80), (RIP2, 80)], Some(persist));
    let fwd_in = Verdict::Forward(Direction::In);
    let first = addrs4(&send(&d, 0, tcp4(CIP, 1, VIP, 80, SYN, b""), fwd_in)).2;
    let second = if first == RIP1 { RIP2 } else { RIP1 };
    // Quiesced: the client keeps its server (expire_quiescent_template = 0).
    d.apply(ConfigOp::EditDest(
        key,
        DestSpec::masq(ip(first), 80, Weight(0)),
    ))
    .unwrap();
    let p = send(&d, 2, tcp4(CIP, 2, VIP, 80, SYN, b""), fwd_in);
    assert_eq!(addrs4(&p).2, first);
    // Deleted: the template is replaced; the client moves to the other server.
    d.apply(ConfigOp::DeleteDest(key, ip(first), 80)).unwrap();
    let p = send(&d, 4, tcp4(CIP, 3, VIP, 80, SYN, b""), fwd_in);
    assert_eq!(addrs4(&p).2, second);
    assert_eq!(d.template_count(), 1);
    assert_eq!(dest_counts(&d, &key, second), (0, 1, 1));
    // The old connections to the deleted server are dropped (expire_nodest_conn = 0).
    send(
        &d,
        5,
        tcp4(CIP, 1, VIP, 80, ACK, b""),
        Verdict::Drop(DropReason::DestUnavailable),
    );
}

/// A template controls its connections through holds that go back however a connection ends or is never made:
/// one-packet datagrams (no connection at all), a TIME_WAIT connection replaced by a new SYN, expiry. A leaked hold would re-arm the template forever.
#[test]
fn template_holds_are_given_back_on_every_path() {
    let persist = Persistence {
        timeout_s: 10,
        netmask: IpAddr::V4(Ipv4Addr::BROADCAST),
    };
    // One-packet UDP: scheduled through the template, never tracked.
    let ukey = udp_key(53);
    let d = Director::default();
    let mut spec = ServiceSpec::new(ukey, "rr");
    spec.one_packet = true;
    spec.persistence = Some(persist);
    d.apply_batch(vec![
        ConfigOp::AddService(spec),
        ConfigOp::AddDest(ukey, DestSpec::masq(ip(RIP1), 53, Weight(1))),
    ])
    .unwrap();
    for t in 0..3 {
        send(
            &d,
            t,
            udp4(CIP, 1, VIP, 53, b"q"),
            Verdict::Forward(Direction::In),
        );
    }
    assert_eq!((d.conn_count(), d.template_count()), (0, 1));
    assert_eq!(
        d.expire(Timestamp(10_003)),
        1,
        "no hold left: the template expires on time"
    );
    assert_eq!(dest_counts(&d, &ukey, RIP1), (0, 0, 0));

    // TCP: a connection replaced from TIME_WAIT, then expired; the template follows within its timeout.
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 8080), (RIP2, 8080)], Some(persist));
    let fwd_in = Verdict::Forward(Direction::In);
    send(&d, 0, tcp4(CIP, 9, VIP, 80, SYN, b""), fwd_in);
    send(&d, 1, tcp4(CIP, 9, VIP, 80, ACK, b""), fwd_in);
    send(&d, 2, tcp4(CIP, 9, VIP, 80, FIN, b""), fwd_in);
    send(
        &d,
        3,
        tcp4(RIP1, 8080, CIP, 9, FIN, b""),
        Verdict::Forward(Direction::Out),
    );
    assert_eq!(only_conn(&d, 3).state, "TIME_WAIT");
    let p = send(&d, 4, tcp4(CIP, 9, VIP, 80, SYN, b""), fwd_in);
    assert_eq!(addrs4(&p).2, RIP1, "the template still pins the client");
    let mut t = 4;
    let mut conn_gone = None;
    while d.template_count() > 0 && t < 300_000 {
        t += 1000;
        d.expire(Timestamp(t));
        if conn_gone.is_none() && d.conn_count() == 0 {
            conn_gone = Some(t);
        }
    }
    let conn_gone = conn_gone.expect("the connection expires");
    assert!(
        t <= conn_gone + 11_000,
        "connection gone at {conn_gone} ms, template at {t} ms: a hold leaked"
    );
    assert_eq!(dest_counts(&d, &key, RIP1), (0, 0, 0));
}

/// The VIP filter (vips.rs) follows the published table, and a packet to an address that only
/// shares a VIP's bucket (a client here) is classified exactly: its replies still go out.
#[test]
fn vip_filter_follows_the_table_and_collisions_classify_exactly() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 80)], None);
    assert!(d.vips.may_contain(ip(VIP)));
    // A client address in 198.18.0.0/15 sharing the VIP's bucket (expected: ~32 of 131072).
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let client = (0..1u32 << 17)
        .map(|k| Ipv4Addr::from(base + k))
        .find(|a| d.vips.may_contain(IpAddr::V4(*a)))
        .expect("an address in the VIP's bucket")
        .octets();
    let fwd_in = Verdict::Forward(Direction::In);
    let fwd_out = Verdict::Forward(Direction::Out);
    send(&d, 0, tcp4(client, 4000, VIP, 80, SYN, b""), fwd_in);
    let reply = send(&d, 1, tcp4(RIP1, 80, client, 4000, SYNACK, b""), fwd_out);
    assert_eq!(addrs4(&reply), (VIP, 80, client, 4000));
    send(&d, 2, tcp4(client, 4000, VIP, 80, ACK, b"x"), fwd_in);
    assert_eq!(only_conn(&d, 2).state, "ESTABLISHED");
    // A batch that fails counts none of its VIPs.
    let vip2 = (1..=255u8)
        .map(|k| [198, 51, 100, k])
        .find(|a| !d.vips.may_contain(ip(*a)))
        .expect("an address the filter rules out");
    let key2 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip(vip2),
        port: 80,
    };
    assert!(
        d.apply_batch(vec![
            ConfigOp::AddService(ServiceSpec::new(key2, "rr")),
            ConfigOp::AddService(ServiceSpec::new(key, "rr")),
        ])
        .is_err()
    );
    assert!(!d.vips.may_contain(ip(vip2)));
    d.apply(ConfigOp::AddService(ServiceSpec::new(key2, "rr")))
        .unwrap();
    assert!(d.vips.may_contain(ip(vip2)));
    // Deleted: no VIP left in its bucket, the client's packets pass as anyone's.
    d.apply(ConfigOp::DeleteService(key)).unwrap();
    assert!(!d.vips.may_contain(ip(VIP)));
    send(&d, 3, tcp4(client, 4000, VIP, 80, ACK, b""), Verdict::Pass);
    send(&d, 3, tcp4(RIP1, 80, client, 4000, ACK, b""), Verdict::Pass);
}

/// An address that shares `vip`'s filter bucket while `vip` is the only VIP (198.18.0.0/15;
/// ~32 expected of 131,072).
fn filter_neighbour(d: &Director, vip: [u8; 4]) -> [u8; 4] {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    (0..1u32 << 17)
        .map(|k| Ipv4Addr::from(base + k).octets())
        .find(|a| *a != vip && d.vips.may_contain(ip(*a)))
        .expect("an address in the VIP's bucket")
}

/// The filter counts a VIP once per address, whatever its services: a VIP in the same bucket
/// coming and going (in separate changes or one batch, two services on it, a failed batch, a
/// clear) never uncounts another VIP, whose established flow keeps forwarding both ways.
#[test]
fn vip_filter_counts_per_address_and_a_neighbours_churn_keeps_flows() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 80)], None);
    let fwd_in = Verdict::Forward(Direction::In);
    let fwd_out = Verdict::Forward(Direction::Out);
    send(&d, 0, tcp4(CIP, 4000, VIP, 80, SYN, b""), fwd_in);
    send(&d, 0, tcp4(RIP1, 80, CIP, 4000, SYNACK, b""), fwd_out);
    let flows = |now| {
        send(&d, now, tcp4(CIP, 4000, VIP, 80, ACK, b"q"), fwd_in);
        let r = send(&d, now, tcp4(RIP1, 80, CIP, 4000, ACK, b"r"), fwd_out);
        assert_eq!(addrs4(&r), (VIP, 80, CIP, 4000));
    };
    let vip2 = filter_neighbour(&d, VIP);
    let k2 = |protocol, port| ServiceKey::Addr {
        protocol,
        addr: ip(vip2),
        port,
    };
    let (t2, u2) = (k2(Protocol::Tcp, 80), k2(Protocol::Udp, 53));
    d.apply_batch(vec![
        ConfigOp::AddService(ServiceSpec::new(t2, "rr")),
        ConfigOp::AddService(ServiceSpec::new(u2, "rr")),
        ConfigOp::AddDest(u2, DestSpec::masq(ip(RIP2), 53, Weight(1))),
    ])
    .unwrap();
    send(&d, 1, udp4(CIP, 5000, vip2, 53, b"x"), fwd_in);
    // One of vip2's two services goes: vip2 is still a VIP, its other service's flow goes on.
    d.apply(ConfigOp::DeleteService(t2)).unwrap();
    assert!(d.vips.may_contain(ip(vip2)));
    send(&d, 2, udp4(CIP, 5000, vip2, 53, b"y"), fwd_in);
    send(&d, 2, udp4(RIP2, 53, CIP, 5000, b"z"), fwd_out);
    flows(2);
    // Both gone: the shared bucket still holds VIP.
    d.apply(ConfigOp::DeleteService(u2)).unwrap();
    assert!(d.vips.may_contain(ip(VIP)));
    flows(3);
    send(&d, 3, udp4(CIP, 5000, vip2, 53, b"y"), Verdict::Pass);
    // Added and deleted in one batch, and a batch that fails after adding: nothing counted twice
    // or left over (VIP's bucket would otherwise stay taken after the clear below).
    d.apply_batch(vec![
        ConfigOp::AddService(ServiceSpec::new(t2, "rr")),
        ConfigOp::DeleteService(t2),
    ])
    .unwrap();
    assert!(
        d.apply_batch(vec![
            ConfigOp::AddService(ServiceSpec::new(t2, "rr")),
            ConfigOp::DeleteService(u2),
        ])
        .is_err()
    );
    flows(4);
    // VIP deleted and re-added in one batch stays counted throughout.
    d.apply_batch(vec![
        ConfigOp::DeleteService(key),
        ConfigOp::AddService(ServiceSpec::new(key, "rr")),
        ConfigOp::AddDest(key, DestSpec::masq(ip(RIP1), 80, Weight(1))),
    ])
    .unwrap();
    assert!(d.vips.may_contain(ip(VIP)));
    send(&d, 5, tcp4(CIP, 4001, VIP, 80, SYN, b""), fwd_in);
    d.apply(ConfigOp::Clear).unwrap();
    assert!(!d.vips.may_contain(ip(VIP)) && !d.vips.may_contain(ip(vip2)));
    send(&d, 6, tcp4(CIP, 4001, VIP, 80, ACK, b""), Verdict::Pass);
}

/// A neighbour VIP added and deleted over and over while another worker forwards an established
/// flow: the flow's VIP stays counted (the filter is a superset of every published table), so
/// not one of its packets is taken for a reply or passed. Bounded: 300 changes, 2000 packets.
#[test]
fn vip_filter_churn_beside_flowing_packets() {
    let key = tcp_key(80);
    let d = setup(key, &[(RIP1, 80)], None);
    send(
        &d,
        0,
        tcp4(CIP, 4000, VIP, 80, SYN, b""),
        Verdict::Forward(Direction::In),
    );
    let vip2 = filter_neighbour(&d, VIP);
    let k2 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip(vip2),
        port: 80,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..150 {
                d.apply(ConfigOp::AddService(ServiceSpec::new(k2, "rr")))
                    .unwrap();
                d.apply(ConfigOp::DeleteService(k2)).unwrap();
            }
        });
        for i in 0..1000u64 {
            let mut p = tcp4(CIP, 4000, VIP, 80, ACK, b"q");
            assert_eq!(
                d.process(Timestamp(1), i, &mut p),
                Verdict::Forward(Direction::In),
                "in #{i}"
            );
            let mut p = tcp4(RIP1, 80, CIP, 4000, ACK, b"r");
            assert_eq!(
                d.process(Timestamp(1), i, &mut p),
                Verdict::Forward(Direction::Out),
                "out #{i}"
            );
        }
    });
    assert!(d.vips.may_contain(ip(VIP)));
}

/// The connections that cannot prove a packet's VIP send it to the snapshot, which classifies
/// it as before: a fwmark service's connection (VIP-less; of an address a VIP or not) and one
/// whose service was deleted but not yet purged (the moment between publication and purge).
#[test]
fn unproven_connections_are_classified_by_the_snapshot() {
    let key = tcp_key(80);
    let fwm = ServiceKey::Fwmark {
        mark: Fwmark(7),
        ipv6: false,
    };
    let d = setup(key, &[(RIP1, 80)], None);
    d.apply_batch(vec![
        ConfigOp::AddService(ServiceSpec::new(fwm, "rr")),
        ConfigOp::AddDest(fwm, DestSpec::masq(ip(RIP2), 80, Weight(1))),
    ])
    .unwrap();
    let fwd_in = Verdict::Forward(Direction::In);
    let marked = |now, mut p: Vec<u8>| {
        let v = d.process_marked(Timestamp(now), 1, Fwmark(7), &mut p);
        assert_eq!(v, fwd_in);
        p
    };
    // Marked SYN to the VIP: the fwmark service's connection (to RIP2). Unmarked after: the VIP
    // is one (address service), so the connection is used as IPVS would, to RIP2.
    let p = marked(0, tcp4(CIP, 4000, VIP, 80, SYN, b""));
    assert_eq!(addrs4(&p).2, RIP2);
    let p = send(&d, 1, tcp4(CIP, 4000, VIP, 80, ACK, b"x"), fwd_in);
    assert_eq!(addrs4(&p).2, RIP2);
    // Marked SYN to an address in VIP's bucket that is no VIP: unmarked after, not ours.
    let near = filter_neighbour(&d, VIP);
    let p = marked(1, tcp4(CIP, 4001, near, 80, SYN, b""));
    assert_eq!(addrs4(&p).2, RIP2);
    let before = d.conn_count();
    send(&d, 2, tcp4(CIP, 4001, near, 80, ACK, b"x"), Verdict::Pass);
    assert_eq!(
        d.conn_count(),
        before,
        "an unproven connection is left as it was"
    );
    // A deleted service's connection still in the table: dropped and removed, as before.
    send(&d, 2, tcp4(CIP, 4002, VIP, 80, SYN, b""), fwd_in);
    let svc = d.services.load().get(&key).unwrap().clone();
    svc.shared
        .deleted
        .store(true, std::sync::atomic::Ordering::SeqCst);
    send(
        &d,
        3,
        tcp4(CIP, 4002, VIP, 80, ACK, b""),
        Verdict::Drop(DropReason::ServiceDeleted),
    );
    assert_eq!(
        d.conn_count(),
        before,
        "the deleted service's connection is gone"
    );
}

/// Listings keep configuration order (as IPVS lists its services: in the order they were added),
/// whatever the sharded table's layout: an edited service or one whose real servers changed keeps
/// its place, a deleted and re-added one goes last, and a VIP stays a VIP until its last service
/// goes.
#[test]
fn services_list_in_configuration_order_and_vips_follow_their_last_service() {
    let d = Director::default();
    let ports = [443u16, 80, 8080, 22, 53, 1, 65535, 3000];
    let ops = ports
        .iter()
        .map(|&p| ConfigOp::AddService(ServiceSpec::new(tcp_key(p), "rr")))
        .chain(std::iter::once(ConfigOp::AddService(ServiceSpec::new(
            udp_key(53),
            "rr",
        ))))
        .collect();
    d.apply_batch(ops).unwrap();
    let listed = |d: &Director| d.services().iter().map(|s| s.spec.key).collect::<Vec<_>>();
    let mut want: Vec<ServiceKey> = ports.iter().map(|&p| tcp_key(p)).collect();
    want.push(udp_key(53));
    assert_eq!(listed(&d), want);

    d.apply_batch(vec![
        ConfigOp::EditService(ServiceSpec::new(tcp_key(80), "wlc")),
        ConfigOp::AddDest(tcp_key(8080), DestSpec::masq(ip(RIP1), 80, Weight(1))),
        ConfigOp::DeleteService(tcp_key(443)),
        ConfigOp::AddService(ServiceSpec::new(tcp_key(443), "rr")),
    ])
    .unwrap();
    want.remove(0);
    want.push(tcp_key(443));
    assert_eq!(
        listed(&d),
        want,
        "edits keep their place; a re-added service goes last"
    );

    // The VIP has services until the last goes: a reply from it is then not ours.
    let all: Vec<ConfigOp> = want.iter().map(|&k| ConfigOp::DeleteService(k)).collect();
    let (last, rest) = all.split_last().unwrap();
    d.apply_batch(rest.to_vec()).unwrap();
    assert!(
        d.services.load().is_vip(&ip(VIP)),
        "one service left on the VIP"
    );
    d.apply_batch(vec![last.clone()]).unwrap();
    assert!(!d.services.load().is_vip(&ip(VIP)));
    assert!(d.services().is_empty());
}
