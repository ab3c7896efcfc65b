//! sloppy_tcp through the director: mid-stream packets create connections only when it is on, and two directors
//! with mh pick the same real server for a flow that moved from one to the other.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use etherparse::PacketBuilder;

use crate::*;

const VIP: [u8; 4] = [198, 51, 100, 100];
const CIP: [u8; 4] = [198, 51, 100, 10];

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn key() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip(VIP),
        port: 80,
    }
}

fn rip(i: u8) -> IpAddr {
    ip([203, 0, 113, 10 + i])
}

fn tcp(cport: u16, flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(CIP, VIP, 64).tcp(cport, 80, 1000, 4096);
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
    b.write(&mut v, b"data").unwrap();
    v
}

/// A director with one service on VIP:80 over `n` real servers of `method`.
fn director(sched: &str, port_flag: bool, n: u8, method: ForwardMethod, sloppy: bool) -> Director {
    let d = Director::new(DirectorConfig {
        sloppy_tcp: sloppy,
        ..DirectorConfig::default()
    });
    let mut spec = ServiceSpec::new(key(), sched);
    spec.sched_flags.port = port_flag;
    let mut ops = vec![ConfigOp::AddService(spec)];
    for i in 1..=n {
        ops.push(ConfigOp::AddDest(
            key(),
            DestSpec {
                method,
                ..DestSpec::masq(rip(i), 80, Weight(1))
            },
        ));
    }
    d.apply_batch(ops).unwrap();
    d
}

/// The real server a masq packet was sent to (its rewritten destination).
fn sent_to(v: Verdict, p: &[u8]) -> Option<IpAddr> {
    match v {
        Verdict::Forward(Direction::In) => Some(ip([p[16], p[17], p[18], p[19]])),
        Verdict::Route { rip } => Some(rip),
        _ => None,
    }
}

fn conns(d: &Director) -> Vec<ConnSnapshot> {
    d.connections(Timestamp(1))
        .into_iter()
        .filter(|c| !c.template)
        .collect()
}

#[test]
fn without_sloppy_tcp_mid_stream_packets_are_dropped() {
    let d = director("rr", false, 2, ForwardMethod::Masq, false);
    assert!(!d.sloppy_tcp() && !d.sloppy_sctp());
    for flags in ["A", "FA", "", "R", "SR"] {
        let mut p = tcp(4000, flags);
        assert_eq!(
            d.process(Timestamp(1), 1, &mut p),
            Verdict::Drop(DropReason::NotSyn),
            "{flags:?}"
        );
    }
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn with_sloppy_tcp_a_mid_stream_ack_creates_an_established_connection() {
    let d = director("rr", false, 2, ForwardMethod::Masq, true);
    let mut p = tcp(4000, "A");
    let v = d.process(Timestamp(1), 1, &mut p);
    let to = sent_to(v, &p).unwrap_or_else(|| panic!("{v:?}"));
    let c = conns(&d);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].state, "ESTABLISHED");
    let s = d.service(&key()).unwrap();
    let dest = s.dests.iter().find(|x| x.spec.addr == to).unwrap();
    assert_eq!((dest.active_conns, dest.inactive_conns), (1, 0));
    // Later packets of the flow follow the new entry.
    let mut p = tcp(4000, "A");
    assert_eq!(sent_to(d.process(Timestamp(2), 1, &mut p), &p), Some(to));
    // A reset never creates a connection, sloppy or not.
    let mut p = tcp(4001, "R");
    assert_eq!(
        d.process(Timestamp(2), 1, &mut p),
        Verdict::Drop(DropReason::NotSyn)
    );
    // A mid-stream FIN creates one in CLOSE (INPUT fin: NONE -> CLOSE), counted inactive.
    let mut p = tcp(4002, "FA");
    assert!(sent_to(d.process(Timestamp(2), 1, &mut p), &p).is_some());
    assert!(
        conns(&d)
            .iter()
            .any(|c| c.cport == 4002 && c.state == "CLOSE")
    );
    // Switched off at run time: the next unknown mid-stream packet is dropped again.
    d.set_sloppy_tcp(false);
    let mut p = tcp(4003, "A");
    assert_eq!(
        d.process(Timestamp(3), 1, &mut p),
        Verdict::Drop(DropReason::NotSyn)
    );
}

#[test]
fn direct_routing_connection_from_a_mid_stream_ack_is_established_input_only() {
    let d = director("mh", true, 3, ForwardMethod::Route, true);
    let mut p = tcp(5000, "A");
    let v = d.process(Timestamp(1), 1, &mut p);
    assert!(matches!(v, Verdict::Route { .. }), "{v:?}");
    let c = conns(&d);
    assert_eq!(
        c[0].state, "ESTABLISHED",
        "INPUT-ONLY ack: NONE -> ESTABLISHED"
    );
    // The client's FIN then moves it to FIN_WAIT (input-only rows), not CLOSE_WAIT.
    let mut p = tcp(5000, "FA");
    d.process(Timestamp(2), 1, &mut p);
    assert_eq!(conns(&d)[0].state, "FIN_WAIT");
}

#[test]
fn a_flow_moved_between_directors_with_mh_keeps_its_real_server() {
    // Director A saw the SYN; ECMP then moves the flow to director B, which only sees its later packets.
    let a = director("mh", true, 5, ForwardMethod::Route, true);
    let b = director("mh", true, 5, ForwardMethod::Route, true);
    let mut spread = std::collections::BTreeSet::new();
    for cport in 10_000..10_200u16 {
        let mut syn = tcp(cport, "S");
        let first = sent_to(a.process(Timestamp(1), 1, &mut syn), &syn).unwrap();
        let mut ack = tcp(cport, "A");
        let later = sent_to(b.process(Timestamp(2), 1, &mut ack), &ack).unwrap();
        assert_eq!(first, later, "client port {cport}");
        spread.insert(first);
    }
    assert_eq!(
        spread.len(),
        5,
        "mh-port spreads one client's flows: {spread:?}"
    );
    // With rr the second director's choice is its own: some flows change real server.
    let a = director("rr", false, 5, ForwardMethod::Route, true);
    let b = director("rr", false, 5, ForwardMethod::Route, true);
    let mut b_warm = tcp(1, "S");
    b.process(Timestamp(0), 1, &mut b_warm);
    let moved = (20_000..20_050u16)
        .filter(|&cport| {
            let mut syn = tcp(cport, "S");
            let first = sent_to(a.process(Timestamp(1), 1, &mut syn), &syn);
            let mut ack = tcp(cport, "A");
            first != sent_to(b.process(Timestamp(2), 1, &mut ack), &ack)
        })
        .count();
    assert!(moved > 0, "rr directors cannot agree on every flow");
}
