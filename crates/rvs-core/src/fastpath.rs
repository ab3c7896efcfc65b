//! The hook for a fast path outside the core (rvs-xdp's XDP program): the core stays the authority and tells the
//! fast path which connections it may forward; the fast path credits back what it forwarded.
//!
//! - A connection is *offered* ([`FastPathSink::offload`]) at a packet of the slow path that finds it ESTABLISHED
//!   with at least [`TCP_OFFER_IN_PKTS`] packets seen from the client (TCP), or at any packet (UDP), once per
//!   fast-path generation, with its forwarding method (masq, route, or tunnel with its destination's current
//!   parameters), while its destination was not
//!   deleted (a deleted real server's connections keep forwarding, expire_nodest_conn=0, on the slow path).
//! - It is *withdrawn* ([`FastPathSink::withdraw`]) at the slow-path packet that moves it out of ESTABLISHED (the
//!   fast path passes SYN/FIN/RST up, so the core sees every such packet).
//! - [`Director::fast_path_reset`] starts a new generation: every connection is offered again at its next slow-path
//!   packet (after a configuration change the fast path drops everything, and what is still valid comes back).
//! - [`Director::fast_path_credit`] adds what the fast path forwarded to the counters and moves the connection's
//!   last-seen time, so expiry, `--stats`, `--rate` and `-L -c` see it. It returns the connection's state (None: the
//!   core no longer has it), which is how the fast path learns that a connection expired or was removed.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use rvs_wire::proto;

use crate::conn::{Conn, ConnAddr, ConnTable, F_ROUTE, F_TUNNEL};
use crate::director::Director;
use crate::service::ForwardMethod;
use crate::tcp::TcpState;
use crate::time::Timestamp;

/// A TCP connection is offered at its `TCP_OFFER_IN_PKTS`-th packet from the client (counted from the SYN) if it is
/// ESTABLISHED then. A request-response connection (SYN, ACK, request, then the server's FIN: HTTP with
/// `Connection: close`) never reaches it and stays on the slow path whole: offering it would cost two map inserts
/// and two deletes (four system calls in rvsd's fast-path thread) for the two or three packets that would take the
/// fast path. Measured with `rvs-lab bench --workloads newconn` (BENCHMARKS.md): 20-25 % of such a connection's
/// packets took the fast path, and rvsd spent 114 µs per connection against 98 µs without it.
pub const TCP_OFFER_IN_PKTS: u8 = 4;

/// A connection as the fast path needs it: the client side, the virtual service, the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FastConn {
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub protocol: u8,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// The method bound to the connection when it was created (tunnel: the destination's parameters now, as
    /// IPVS reads them per packet). Masq connections get two entries, route and tunnel ones one (client -> VIP).
    pub method: ForwardMethod,
}

/// Where the core's offers go. Called with a connection-table shard locked: it must not block or call back
/// into the director.
pub trait FastPathSink: Send + Sync + std::fmt::Debug {
    /// The connection may be forwarded by the fast path. False: not taken (it will be offered again at the next
    /// slow-path packet).
    fn offload(&self, c: &FastConn) -> bool;
    /// The connection left ESTABLISHED: its packets must come back to the slow path.
    fn withdraw(&self, c: &FastConn);
}

/// What the fast path forwarded for one connection since its last credit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastCredit {
    /// Client -> real server.
    pub in_packets: u64,
    pub in_bytes: u64,
    /// Real server -> client.
    pub out_packets: u64,
    pub out_bytes: u64,
    /// The last packet the fast path forwarded (the daemon's millisecond clock), if any.
    pub last_seen: Option<Timestamp>,
}

fn fast_conn<A: ConnAddr>(c: &Conn<A>) -> FastConn {
    FastConn {
        protocol: c.proto,
        caddr: c.caddr.to_ip(),
        cport: c.cport,
        vaddr: c.vaddr.to_ip(),
        vport: c.vport,
        daddr: c.daddr.to_ip(),
        dport: c.dport,
        // As the packet path's Xmit::of reads the flags.
        method: if c.flags & F_ROUTE != 0 {
            ForwardMethod::Route
        } else if c.flags & F_TUNNEL != 0 {
            ForwardMethod::Tunnel(c.dest.tunnel())
        } else {
            ForwardMethod::Masq
        },
    }
}

impl Director {
    /// Send offers and withdrawals to `sink` from now on (once; later calls are ignored).
    pub fn set_fast_path(&self, sink: std::sync::Arc<dyn FastPathSink>) {
        if self.fast.set(sink).is_ok() {
            self.fast_gen.store(1, Ordering::Release);
        }
    }

    /// Start a new generation: every connection is offered again at its next slow-path packet.
    pub fn fast_path_reset(&self) {
        let g = self.fast_gen.load(Ordering::Acquire);
        if g != 0 {
            let next = g.wrapping_add(1);
            self.fast_gen
                .store(if next == 0 { 1 } else { next }, Ordering::Release);
        }
    }

    /// Per slow-path packet, after the connection's state moved (`old_state`): offer or withdraw.
    #[inline]
    pub(crate) fn fast_path_step<A: ConnAddr>(&self, c: &mut Conn<A>, old_state: u8) {
        let Some(sink) = self.fast.get() else { return };
        let g = self.fast_gen.load(Ordering::Relaxed);
        let established = c.proto == proto::UDP
            || (c.state == TcpState::Established as u8 && c.in_pkts >= TCP_OFFER_IN_PKTS);
        if established {
            if c.fast_gen != g && !c.dest.is_deleted() && sink.offload(&fast_conn(c)) {
                c.fast_gen = g;
            }
        } else if c.fast_gen != 0 && old_state == TcpState::Established as u8 {
            sink.withdraw(&fast_conn(c));
            c.fast_gen = 0;
        }
    }

    /// A restarted fast path taking over an entry a previous run left (a planned restart): the connection
    /// `protocol client -> vip` as the core would offer it now, marked as offered in this generation (so its
    /// leaving ESTABLISHED is withdrawn as for any offered connection), or None when the core has no such
    /// connection or would not offer it (TCP not ESTABLISHED, destination deleted): the entry must go.
    /// Call after [`Director::set_fast_path`].
    pub fn fast_path_adopt(
        &self,
        protocol: u8,
        client: std::net::SocketAddr,
        vip: std::net::SocketAddr,
    ) -> Option<FastConn> {
        let g = self.fast_gen.load(Ordering::Acquire);
        match (client.ip(), vip.ip()) {
            (IpAddr::V4(ca), IpAddr::V4(va)) => {
                adopt_in(&self.v4, g, protocol, (ca, client.port()), (va, vip.port()))
            }
            (IpAddr::V6(ca), IpAddr::V6(va)) => {
                adopt_in(&self.v6, g, protocol, (ca, client.port()), (va, vip.port()))
            }
            _ => None,
        }
    }

    /// Credit what the fast path forwarded for `c` (see the module docs). Returns the connection's state, or None
    /// when the core no longer has it (also when the 4-tuple now belongs to a connection to another real server).
    pub fn fast_path_credit(&self, c: &FastConn, credit: &FastCredit) -> Option<TcpState> {
        match (c.caddr, c.vaddr) {
            (IpAddr::V4(ca), IpAddr::V4(va)) => credit_in(&self.v4, c, ca, va, credit),
            (IpAddr::V6(ca), IpAddr::V6(va)) => credit_in(&self.v6, c, ca, va, credit),
            _ => None,
        }
    }
}

fn adopt_in<A: ConnAddr>(
    tbl: &ConnTable<A>,
    generation: u8,
    protocol: u8,
    (caddr, cport): (A, u16),
    (vaddr, vport): (A, u16),
) -> Option<FastConn> {
    if generation == 0 {
        return None; // no fast path set: nothing may be marked as offered
    }
    let si = tbl.shard_index(protocol, caddr, cport);
    let mut sh = tbl.shard(si).lock();
    let i = sh.find_in(protocol, caddr, cport, vaddr, vport)?;
    let c = sh.get_mut(i)?;
    let offerable = c.proto == proto::UDP || c.state == TcpState::Established as u8;
    if !offerable || c.dest.is_deleted() {
        return None;
    }
    c.fast_gen = generation;
    Some(fast_conn(c))
}

fn credit_in<A: ConnAddr>(
    tbl: &ConnTable<A>,
    fc: &FastConn,
    caddr: A,
    vaddr: A,
    credit: &FastCredit,
) -> Option<TcpState> {
    let si = tbl.shard_index(fc.protocol, caddr, fc.cport);
    let mut sh = tbl.shard(si).lock();
    let i = sh.find_in(fc.protocol, caddr, fc.cport, vaddr, fc.vport)?;
    let c = sh.get_mut(i)?;
    if c.daddr.to_ip() != fc.daddr || c.dport != fc.dport {
        // Another connection on the same 4-tuple (the client reused it): the offered one is gone, and what its
        // entries forwarded is not this one's.
        return None;
    }
    if credit.in_packets > 0 {
        c.dest
            .stats
            .add_in_n(si, credit.in_packets, credit.in_bytes);
        c.dest
            .svc
            .stats
            .add_in_n(si, credit.in_packets, credit.in_bytes);
    }
    if credit.out_packets > 0 {
        c.dest
            .stats
            .add_out_n(si, credit.out_packets, credit.out_bytes);
        c.dest
            .svc
            .stats
            .add_out_n(si, credit.out_packets, credit.out_bytes);
    }
    if let Some(t) = credit.last_seen {
        let t = t.0 as u32;
        if crate::conn::time_reached(t, c.last_seen) {
            // A later last-seen only pushes the deadline out: the wheel re-files the entry lazily.
            c.last_seen = t;
        }
    }
    Some(TcpState::from_u8(c.state))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::Weight;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{ConfigOp, DestSpec, Direction, Protocol, ServiceKey, ServiceSpec, Verdict};

    const VIP: [u8; 4] = [198, 51, 100, 250];
    const CIP: [u8; 4] = [198, 51, 100, 10];
    const RIP: [u8; 4] = [203, 0, 113, 1];

    #[derive(Debug, Default)]
    struct Recorder {
        events: Mutex<Vec<(&'static str, FastConn)>>,
        refuse: std::sync::atomic::AtomicBool,
    }
    impl FastPathSink for Recorder {
        fn offload(&self, c: &FastConn) -> bool {
            if self.refuse.load(Ordering::Relaxed) {
                return false;
            }
            self.events.lock().unwrap().push(("offload", *c));
            true
        }
        fn withdraw(&self, c: &FastConn) {
            self.events.lock().unwrap().push(("withdraw", *c));
        }
    }
    impl Recorder {
        fn take(&self) -> Vec<&'static str> {
            self.events.lock().unwrap().drain(..).map(|e| e.0).collect()
        }
    }

    /// A director with one rr service VIP:`port` and one real server RIP:`rport` forwarded by `method`.
    fn director(protocol: Protocol, port: u16, method: ForwardMethod, rport: u16) -> Director {
        let d = Director::default();
        let key = ServiceKey::Addr {
            protocol,
            addr: VIP.into(),
            port,
        };
        d.apply_batch(vec![
            ConfigOp::AddService(ServiceSpec::new(key, "rr")),
            ConfigOp::AddDest(
                key,
                DestSpec {
                    method,
                    ..DestSpec::masq(RIP.into(), rport, Weight(1))
                },
            ),
        ])
        .unwrap();
        d
    }

    fn setup(protocol: Protocol, port: u16) -> (Director, Arc<Recorder>) {
        let d = director(protocol, port, ForwardMethod::Masq, 8080);
        let r = Arc::new(Recorder::default());
        d.set_fast_path(r.clone());
        (d, r)
    }

    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: &str) -> Vec<u8> {
        let mut b = etherparse::PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1, 4096);
        for f in flags.chars() {
            b = match f {
                'S' => b.syn(),
                'A' => b.ack(1),
                'F' => b.fin(),
                'R' => b.rst(),
                _ => b,
            };
        }
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        v
    }

    fn send(d: &Director, now: u64, mut p: Vec<u8>) -> Verdict {
        d.process(Timestamp(now), 1, &mut p)
    }

    #[test]
    fn tcp_is_offered_once_established_and_withdrawn_at_fin() {
        let (d, r) = setup(Protocol::Tcp, 80);
        assert!(matches!(
            send(&d, 10, tcp(CIP, 40000, VIP, 80, "S")),
            Verdict::Forward(_)
        ));
        send(&d, 11, tcp(RIP, 8080, CIP, 40000, "SA"));
        assert!(r.take().is_empty(), "not before ESTABLISHED");
        send(&d, 12, tcp(CIP, 40000, VIP, 80, "A"));
        send(&d, 12, tcp(CIP, 40000, VIP, 80, "A")); // the request
        send(&d, 12, tcp(RIP, 8080, CIP, 40000, "A")); // the answer: the server's packets do not count
        assert!(
            r.take().is_empty(),
            "not before the client's {TCP_OFFER_IN_PKTS}th packet"
        );
        send(&d, 12, tcp(CIP, 40000, VIP, 80, "A"));
        let ev = r.events.lock().unwrap().clone();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            ev[0].1,
            FastConn {
                protocol: 6,
                caddr: CIP.into(),
                cport: 40000,
                vaddr: VIP.into(),
                vport: 80,
                daddr: RIP.into(),
                dport: 8080,
                method: ForwardMethod::Masq,
            }
        );
        r.take();
        send(&d, 13, tcp(RIP, 8080, CIP, 40000, "A"));
        assert!(r.take().is_empty(), "offered once per generation");
        d.fast_path_reset();
        send(&d, 14, tcp(RIP, 8080, CIP, 40000, "A"));
        assert_eq!(r.take(), ["offload"], "offered again after a reset");
        send(&d, 15, tcp(CIP, 40000, VIP, 80, "FA"));
        assert_eq!(r.take(), ["withdraw"]);
        send(&d, 16, tcp(RIP, 8080, CIP, 40000, "FA"));
        assert!(r.take().is_empty());
    }

    /// HTTP with `Connection: close`: SYN, ACK, the request, then the server's answer and FIN. Never offered: the
    /// map updates would cost more than the few packets they would move.
    #[test]
    fn a_request_response_connection_is_never_offered() {
        let (d, r) = setup(Protocol::Tcp, 80);
        send(&d, 10, tcp(CIP, 40001, VIP, 80, "S"));
        send(&d, 11, tcp(RIP, 8080, CIP, 40001, "SA"));
        send(&d, 12, tcp(CIP, 40001, VIP, 80, "A"));
        send(&d, 12, tcp(CIP, 40001, VIP, 80, "A"));
        send(&d, 13, tcp(RIP, 8080, CIP, 40001, "A"));
        send(&d, 13, tcp(RIP, 8080, CIP, 40001, "FA"));
        send(&d, 14, tcp(CIP, 40001, VIP, 80, "A"));
        send(&d, 14, tcp(CIP, 40001, VIP, 80, "FA"));
        send(&d, 15, tcp(RIP, 8080, CIP, 40001, "A"));
        assert!(r.take().is_empty());
    }

    /// Direct routing and tunnelling see only the client's half: the input-only table makes the connection
    /// ESTABLISHED at the client's ACK, and it is offered at the client's [`TCP_OFFER_IN_PKTS`]th packet as for
    /// masq, with its method (a tunnel with its destination's parameters). FIN withdraws it as for masq.
    #[test]
    fn route_and_tunnel_are_offered_with_their_method_once_established() {
        use crate::service::{TunnelConfig, TunnelCsum, TunnelKind};
        let gue = TunnelConfig {
            kind: TunnelKind::Gue,
            port: 6080,
            csum: TunnelCsum::NoCsum,
        };
        for method in [ForwardMethod::Route, ForwardMethod::Tunnel(gue)] {
            let d = director(Protocol::Tcp, 80, method, 80);
            let r = Arc::new(Recorder::default());
            d.set_fast_path(r.clone());
            send(&d, 10, tcp(CIP, 40000, VIP, 80, "S"));
            assert!(r.take().is_empty(), "{method:?}: not at SYN");
            for k in 2..TCP_OFFER_IN_PKTS {
                send(&d, 10 + u64::from(k), tcp(CIP, 40000, VIP, 80, "A"));
                assert!(
                    r.take().is_empty(),
                    "{method:?}: not at the client's packet {k}"
                );
            }
            send(&d, 20, tcp(CIP, 40000, VIP, 80, "A"));
            let ev = r.events.lock().unwrap().clone();
            assert_eq!(ev.len(), 1, "{method:?}: offered once established");
            assert_eq!((ev[0].1.method, ev[0].1.daddr), (method, IpAddr::from(RIP)));
            r.take();
            send(&d, 21, tcp(CIP, 40000, VIP, 80, "FA"));
            assert_eq!(r.take(), ["withdraw"], "{method:?}");
        }
    }

    /// A restarted fast path adopting a previous run's entry gets the core's connection exactly (method and real
    /// server included), marked as offered: no second offer, and its FIN withdraws it. What the core has not, or
    /// would not offer, is refused.
    #[test]
    fn an_adopted_connection_is_the_cores_and_is_withdrawn_at_fin() {
        use crate::service::{TunnelConfig, TunnelCsum, TunnelKind};
        let gre = TunnelConfig {
            kind: TunnelKind::Gre,
            port: 0,
            csum: TunnelCsum::Csum,
        };
        for method in [ForwardMethod::Route, ForwardMethod::Tunnel(gre)] {
            let d = director(Protocol::Tcp, 80, method, 80);
            let client = std::net::SocketAddr::from((CIP, 40000));
            let vip = std::net::SocketAddr::from((VIP, 80));
            assert_eq!(
                d.fast_path_adopt(6, client, vip),
                None,
                "{method:?}: no fast path set"
            );
            let r = Arc::new(Recorder::default());
            d.set_fast_path(r.clone());
            // The connection as a hand-over leaves it: ESTABLISHED, never offered in this run.
            r.refuse.store(true, Ordering::Relaxed);
            send(&d, 10, tcp(CIP, 40000, VIP, 80, "S"));
            for k in 0..TCP_OFFER_IN_PKTS {
                send(&d, 11 + u64::from(k), tcp(CIP, 40000, VIP, 80, "A"));
            }
            r.refuse.store(false, Ordering::Relaxed);
            assert_eq!(
                d.fast_path_adopt(6, std::net::SocketAddr::from((CIP, 40001)), vip),
                None,
                "{method:?}: not the core's"
            );
            assert_eq!(
                d.fast_path_adopt(6, client, vip),
                Some(FastConn {
                    protocol: 6,
                    caddr: CIP.into(),
                    cport: 40000,
                    vaddr: VIP.into(),
                    vport: 80,
                    daddr: RIP.into(),
                    dport: 80,
                    method,
                })
            );
            send(&d, 20, tcp(CIP, 40000, VIP, 80, "A"));
            assert!(
                r.take().is_empty(),
                "{method:?}: adopted, not offered again"
            );
            send(&d, 21, tcp(CIP, 40000, VIP, 80, "FA"));
            assert_eq!(r.take(), ["withdraw"], "{method:?}");
            assert_eq!(
                d.fast_path_adopt(6, client, vip),
                None,
                "{method:?}: no longer ESTABLISHED"
            );
        }
    }

    #[test]
    fn refused_offers_come_again_and_udp_is_offered_at_once() {
        let (d, r) = setup(Protocol::Udp, 53);
        r.refuse.store(true, Ordering::Relaxed);
        let udp = |now| {
            let b = etherparse::PacketBuilder::ipv4(CIP, VIP, 64).udp(5000, 53);
            let mut v = Vec::new();
            b.write(&mut v, b"q").unwrap();
            send(&d, now, v)
        };
        assert_eq!(udp(1), Verdict::Forward(Direction::In));
        r.refuse.store(false, Ordering::Relaxed);
        udp(2);
        assert_eq!(r.take(), ["offload"]);
        udp(3);
        assert!(r.take().is_empty());
    }

    /// A TCP connection through its handshake and the packets it takes to be offered (at time 12 ms): the director
    /// and the connection it offered.
    fn offered_tcp() -> (Director, FastConn) {
        let (d, r) = setup(Protocol::Tcp, 80);
        send(&d, 10, tcp(CIP, 40000, VIP, 80, "S"));
        send(&d, 11, tcp(RIP, 8080, CIP, 40000, "SA"));
        for _ in 1..TCP_OFFER_IN_PKTS {
            send(&d, 12, tcp(CIP, 40000, VIP, 80, "A"));
        }
        let fc = r.events.lock().unwrap()[0].1;
        (d, fc)
    }

    #[test]
    fn credit_moves_counters_and_last_seen_so_expiry_waits() {
        let (d, fc) = offered_tcp();
        let before = d.services()[0].stats;
        let credit = FastCredit {
            in_packets: 5,
            in_bytes: 500,
            out_packets: 3,
            out_bytes: 3000,
            last_seen: Some(Timestamp(800_000)),
        };
        assert_eq!(
            d.fast_path_credit(&fc, &credit),
            Some(TcpState::Established)
        );
        let after = d.services()[0].stats;
        assert_eq!(after.inpkts - before.inpkts, 5);
        assert_eq!(after.outbytes - before.outbytes, 3000);
        assert_eq!(after.conns, before.conns, "no new connection");
        // ESTABLISHED lasts 900 s from the last packet the fast path saw, not from the core's last one.
        assert_eq!(d.expire(Timestamp(12 + 900_000)), 0);
        assert_eq!(
            d.connections(Timestamp(12 + 900_000))[0].expires_in_ms,
            800_000 - 12
        );
        assert_eq!(d.expire(Timestamp(800_000 + 900_000)), 1);
        assert_eq!(d.fast_path_credit(&fc, &credit), None, "gone");
    }

    /// A client that reuses a 4-tuple (TIME_WAIT reuse) makes a new connection, maybe to another real server. An
    /// entry the fast path still holds for the old one must not be credited to it nor kept because the 4-tuple is
    /// ESTABLISHED again: the core answers None (gone), so the fast path removes it instead of forwarding the new
    /// connection's packets to the old real server.
    #[test]
    fn credit_for_a_connection_whose_4_tuple_now_goes_elsewhere_is_refused() {
        let (d, fc) = offered_tcp();
        let credit = FastCredit {
            in_packets: 5,
            in_bytes: 500,
            out_packets: 0,
            out_bytes: 0,
            last_seen: Some(Timestamp(13)),
        };
        let before = d.services()[0].stats;
        for old in [
            FastConn {
                daddr: std::net::IpAddr::from([203, 0, 113, 2]),
                ..fc
            },
            FastConn { dport: 8081, ..fc },
        ] {
            assert_eq!(d.fast_path_credit(&old, &credit), None, "{old:?}");
        }
        assert_eq!(
            d.services()[0].stats.inpkts,
            before.inpkts,
            "nothing credited"
        );
        assert_eq!(
            d.fast_path_credit(&fc, &credit),
            Some(TcpState::Established),
            "the connection itself still is"
        );
    }
}
