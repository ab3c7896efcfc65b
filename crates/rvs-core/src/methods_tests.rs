//! The forwarding methods beside masq: direct routing and tunnelling (verdicts, the method bound per
//! connection, IPVS's input-only TCP states and counters) and fwmark services.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use etherparse::PacketBuilder;

use crate::*;

const VIP: [u8; 4] = [198, 51, 100, 250];
const CIP: [u8; 4] = [198, 51, 100, 10];
const RIP1: [u8; 4] = [203, 0, 113, 1];
const RIP2: [u8; 4] = [203, 0, 113, 2];

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn key(protocol: Protocol, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol,
        addr: ip(VIP),
        port,
    }
}

fn dest(a: [u8; 4], method: ForwardMethod) -> DestSpec {
    DestSpec {
        method,
        ..DestSpec::masq(ip(a), 80, Weight(1))
    }
}

const GUE: TunnelConfig = TunnelConfig {
    kind: TunnelKind::Gue,
    port: 6080,
    csum: TunnelCsum::Csum,
};

/// TCP segment CIP:cport -> VIP:80 with the given flags (S, A, F, R letters).
fn tcp(cport: u16, dport: u16, flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(CIP, VIP, 64).tcp(cport, dport, 1000, 4096);
    for c in flags.chars() {
        b = match c {
            'S' => b.syn(),
            'A' => b.ack(1),
            'F' => b.fin(),
            'R' => b.rst(),
            _ => b,
        };
    }
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    v
}

fn setup(ops: Vec<ConfigOp>) -> Director {
    let d = Director::default();
    d.apply_batch(ops).unwrap();
    d
}

/// Processes `p` and checks the packet was left unchanged (route and tunnel never rewrite).
fn unchanged(d: &Director, now: u64, p: &[u8]) -> Verdict {
    let mut b = p.to_vec();
    let v = d.process(Timestamp(now), 1, &mut b);
    assert_eq!(b, p, "route/tunnel packets are not rewritten");
    v
}

fn conn_state(d: &Director, now: u64, cport: u16) -> (String, u64) {
    let c = d
        .connections(Timestamp(now))
        .into_iter()
        .find(|c| !c.template && c.cport == cport)
        .unwrap();
    (c.state.into_owned(), c.expires_in_ms)
}

fn counts(d: &Director, k: &ServiceKey, a: [u8; 4]) -> (u32, u32) {
    let s = d.service(k).unwrap();
    let x = s.dests.iter().find(|x| x.spec.addr == ip(a)).unwrap();
    (x.active_conns, x.inactive_conns)
}

#[test]
fn mixed_methods_in_one_service_give_route_and_tunnel_verdicts() {
    let k = key(Protocol::Tcp, 80);
    let d = setup(vec![
        ConfigOp::AddService(ServiceSpec::new(k, "rr")),
        ConfigOp::AddDest(k, dest(RIP1, ForwardMethod::Route)),
        ConfigOp::AddDest(k, dest(RIP2, ForwardMethod::Tunnel(GUE))),
        ConfigOp::AddDest(k, DestSpec::masq(ip([203, 0, 113, 3]), 8080, Weight(1))),
    ]);
    let mut seen = Vec::new();
    for cport in 1000..1003 {
        let mut p = tcp(cport, 80, "S");
        seen.push(d.process(Timestamp(0), 1, &mut p));
    }
    assert!(seen.contains(&Verdict::Route { rip: ip(RIP1) }), "{seen:?}");
    assert!(seen.contains(&Verdict::Tunnel {
        rip: ip(RIP2),
        tunnel: GUE
    }));
    assert!(seen.contains(&Verdict::Forward(Direction::In)));
    // Later packets of each connection keep its method, bytes unchanged for route/tunnel.
    for cport in 1000..1003 {
        let v = d.process(Timestamp(5), 1, &mut tcp(cport, 80, "A"));
        assert!(seen.contains(&v), "{v:?}");
    }
}

#[test]
fn input_only_tcp_states_timeouts_and_counters_follow_ipvs() {
    let k = key(Protocol::Tcp, 80);
    let d = setup(vec![
        ConfigOp::AddService(ServiceSpec::new(k, "rr")),
        ConfigOp::AddDest(k, dest(RIP1, ForwardMethod::Route)),
    ]);
    let route = Verdict::Route { rip: ip(RIP1) };
    // SYN: NONE -> SYN_RECV (60 s), inactive.
    assert_eq!(unchanged(&d, 0, &tcp(1, 80, "S")), route);
    assert_eq!(conn_state(&d, 0, 1), ("SYN_RECV".to_owned(), 60_000));
    assert_eq!(counts(&d, &k, RIP1), (0, 1));
    // The client's ACK: SYN_RECV -> ESTABLISHED (900 s), active; no reply ever seen.
    assert_eq!(unchanged(&d, 10, &tcp(1, 80, "A")), route);
    assert_eq!(conn_state(&d, 10, 1), ("ESTABLISHED".to_owned(), 900_000));
    assert_eq!(counts(&d, &k, RIP1), (1, 0));
    // The client's FIN: the INPUT-ONLY row takes ESTABLISHED to FIN_WAIT (the plain INPUT row
    // would say CLOSE_WAIT, waiting for a server FIN the director never sees).
    assert_eq!(unchanged(&d, 20, &tcp(1, 80, "FA")), route);
    assert_eq!(conn_state(&d, 20, 1), ("FIN_WAIT".to_owned(), 120_000));
    assert_eq!(counts(&d, &k, RIP1), (0, 1));
    // Its last ACK: FIN_WAIT stays (it expires after fin_timeout, 120 s).
    assert_eq!(unchanged(&d, 30, &tcp(1, 80, "A")), route);
    assert_eq!(conn_state(&d, 30, 1), ("FIN_WAIT".to_owned(), 120_000));
    assert_eq!(d.expire(Timestamp(30 + 120_000 + 512)), 1);
    assert_eq!(counts(&d, &k, RIP1), (0, 0));
    // RST on SYNACK-less SYN_RECV stays SYN_RECV; an RST on ESTABLISHED closes (10 s).
    unchanged(&d, 200_000, &tcp(2, 80, "S"));
    unchanged(&d, 200_001, &tcp(2, 80, "A"));
    unchanged(&d, 200_002, &tcp(2, 80, "R"));
    assert_eq!(conn_state(&d, 200_002, 2), ("CLOSE".to_owned(), 10_000));
    let s = d.service(&k).unwrap();
    assert_eq!(s.stats.conns, 2);
    assert_eq!(s.stats.inpkts, 7);
    assert_eq!(s.stats.outpkts, 0, "the director never sees a reply");
}

#[test]
fn method_is_bound_when_the_connection_is_created() {
    let k = key(Protocol::Udp, 53);
    let d = setup(vec![
        ConfigOp::AddService(ServiceSpec::new(k, "rr")),
        ConfigOp::AddDest(
            k,
            dest(RIP1, ForwardMethod::Tunnel(TunnelConfig::default())),
        ),
    ]);
    let udp = |sport| {
        let b = PacketBuilder::ipv4(CIP, VIP, 64).udp(sport, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"q").unwrap();
        v
    };
    let tun = Verdict::Tunnel {
        rip: ip(RIP1),
        tunnel: TunnelConfig::default(),
    };
    assert_eq!(unchanged(&d, 0, &udp(1)), tun);
    assert_eq!(conn_state(&d, 0, 1), ("UDP".to_owned(), 300_000));
    // Edit the destination to route (ipvsadm -e ... -g): the old connection keeps tunnelling,
    // new ones are routed.
    d.apply(ConfigOp::EditDest(k, dest(RIP1, ForwardMethod::Route)))
        .unwrap();
    assert_eq!(unchanged(&d, 2, &udp(1)), tun);
    assert_eq!(unchanged(&d, 2, &udp(2)), Verdict::Route { rip: ip(RIP1) });
}

#[test]
fn icmp_errors_for_route_connections_go_to_the_real_server_unchanged() {
    let k = key(Protocol::Tcp, 80);
    let d = setup(vec![
        ConfigOp::AddService(ServiceSpec::new(k, "rr")),
        ConfigOp::AddDest(k, dest(RIP1, ForwardMethod::Route)),
    ]);
    unchanged(&d, 0, &tcp(4000, 80, "S"));
    // A router near the client says the VIP's reply (VIP:80 -> CIP:4000) did not fit.
    let quoted = {
        let b = PacketBuilder::ipv4(VIP, CIP, 64)
            .tcp(80, 4000, 1, 100)
            .ack(1);
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 8]).unwrap();
        v
    };
    let mut icmp = Vec::new();
    PacketBuilder::ipv4([198, 51, 100, 1], VIP, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut icmp, &quoted)
        .unwrap();
    assert_eq!(unchanged(&d, 1, &icmp), Verdict::Route { rip: ip(RIP1) });
}

#[test]
fn fwmark_service_groups_ports_with_persistence() {
    let fwm = ServiceKey::Fwmark {
        mark: Fwmark(7),
        ipv6: false,
    };
    let mut spec = ServiceSpec::new(fwm, "rr");
    spec.persistence = Some(Persistence {
        timeout_s: 300,
        netmask: IpAddr::V4(Ipv4Addr::BROADCAST),
    });
    let d = setup(vec![
        ConfigOp::AddService(spec),
        ConfigOp::AddDest(fwm, dest(RIP1, ForwardMethod::Route)),
        ConfigOp::AddDest(fwm, dest(RIP2, ForwardMethod::Route)),
    ]);
    // Unmarked: not ours (no address service for the VIP).
    let mut p = tcp(1, 80, "S");
    assert_eq!(d.process(Timestamp(0), 1, &mut p), Verdict::Pass);
    // Marked 7: ports 80 and 443 (and any other the mark covers) go to one real server.
    let mut first = None;
    for (cport, vport) in [(1, 80), (2, 443), (3, 80), (4, 443)] {
        let mut p = tcp(cport, vport, "S");
        let v = d.process_marked(Timestamp(1), cport.into(), Fwmark(7), &mut p);
        assert!(matches!(v, Verdict::Route { .. }), "{v:?}");
        assert_eq!(*first.get_or_insert(v), v, "persistence across ports");
    }
    // Another mark: not this service.
    let mut p = tcp(9, 80, "S");
    assert_eq!(
        d.process_marked(Timestamp(1), 1, Fwmark(8), &mut p),
        Verdict::Pass
    );
    let s = d.service(&fwm).unwrap();
    assert_eq!(s.stats.conns, 4);
    let tmpl: Vec<_> = d
        .connections(Timestamp(1))
        .into_iter()
        .filter(|c| c.template)
        .collect();
    assert_eq!(tmpl.len(), 1);
    assert_eq!(
        tmpl[0].vaddr,
        ip([0, 0, 0, 7]),
        "IPVS keys the template by the mark"
    );
}
