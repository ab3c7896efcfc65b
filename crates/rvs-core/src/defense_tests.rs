//! Simulated-clock tests of the limit and the defences through `Director::process`.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use etherparse::PacketBuilder;

use crate::*;

const VIP: [u8; 4] = [198, 51, 100, 250];
const RIP1: [u8; 4] = [203, 0, 113, 1];
const RIP2: [u8; 4] = [203, 0, 113, 2];
const FWD_IN: Verdict = Verdict::Forward(Direction::In);
const FWD_OUT: Verdict = Verdict::Forward(Direction::Out);

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

/// TCP flags: S, A, F, R letters.
fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1, 4096);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(1);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    v
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, b"q").unwrap();
    v
}

fn director(k: ServiceKey, dests: &[[u8; 4]], persist: bool, cfg: DefenseConfig) -> Director {
    let d = Director::new(DirectorConfig {
        shards: 4,
        hash_seed: 11,
        ..DirectorConfig::default()
    });
    d.set_defense(cfg);
    let mut spec = ServiceSpec::new(k, "rr");
    if persist {
        spec.persistence = Some(Persistence {
            timeout_s: 300,
            netmask: IpAddr::V4(Ipv4Addr::BROADCAST),
        });
    }
    let mut ops = vec![ConfigOp::AddService(spec)];
    for a in dests {
        ops.push(ConfigOp::AddDest(k, DestSpec::masq(ip(*a), 80, Weight(1))));
    }
    d.apply_batch(ops).unwrap();
    d
}

/// Process and return (verdict, destination address of the rewritten packet).
fn send(d: &Director, now: u64, random: u64, mut p: Vec<u8>) -> (Verdict, [u8; 4]) {
    let v = d.process(Timestamp(now), random, &mut p);
    (v, [p[16], p[17], p[18], p[19]])
}

fn flood_source(k: u32) -> ([u8; 4], u16) {
    let a = 0xc612_0000u32 | (k >> 8 & 0xffff); // 198.18.0.0/15, one of 2^16 hosts
    (a.to_be_bytes(), 1024 + (k & 0xff) as u16)
}

#[test]
fn udp_flow_to_a_removed_server_moves_at_its_next_packet_with_expire_nodest_conn() {
    let k = key(Protocol::Udp, 53);
    let cfg = DefenseConfig {
        expire_nodest_conn: NoDestConn::Expire,
        ..DefenseConfig::default()
    };
    let d = director(k, &[RIP1, RIP2], false, cfg);
    let client = [198, 51, 100, 7];
    let (v, first) = send(&d, 0, 1, udp(client, 5353, VIP, 53));
    assert_eq!(v, FWD_IN);
    let other = if first == RIP1 { RIP2 } else { RIP1 };
    // The same resolver port keeps the same server while it is there.
    assert_eq!(send(&d, 10, 1, udp(client, 5353, VIP, 53)).1, first);
    d.apply(ConfigOp::DeleteDest(k, ip(first), 80)).unwrap();
    // Next packet: the old entry ends, the packet goes to the live server.
    assert_eq!(send(&d, 30, 1, udp(client, 5353, VIP, 53)), (FWD_IN, other));
    assert_eq!(d.conn_count(), 1);
    assert_eq!(d.drop_counters().total(), 0);
}

#[test]
fn tcp_to_a_removed_server_ends_at_its_next_segment_with_expire_nodest_conn() {
    let k = key(Protocol::Tcp, 80);
    let cfg = DefenseConfig {
        expire_nodest_conn: NoDestConn::Expire,
        ..DefenseConfig::default()
    };
    let d = director(k, &[RIP1], false, cfg);
    let c = [198, 51, 100, 7];
    assert_eq!(send(&d, 0, 1, tcp(c, 4000, VIP, 80, "S")).0, FWD_IN);
    d.apply(ConfigOp::DeleteDest(k, ip(RIP1), 80)).unwrap();
    assert_eq!(
        send(&d, 2, 1, tcp(c, 4000, VIP, 80, "A")).0,
        Verdict::Drop(DropReason::NotSyn)
    );
    assert_eq!(d.conn_count(), 0, "the entry ended at its next segment");
}

#[test]
fn persistent_client_leaves_a_quiesced_server_with_expire_quiescent_template() {
    let k = key(Protocol::Tcp, 80);
    for (mode, moves) in [
        (QuiescentTemplate::Keep, false),
        (QuiescentTemplate::Expire, true),
    ] {
        let cfg = DefenseConfig {
            expire_quiescent_template: mode,
            ..DefenseConfig::default()
        };
        let d = director(k, &[RIP1, RIP2], true, cfg);
        let c = [198, 51, 100, 7];
        let (_, first) = send(&d, 0, 1, tcp(c, 4000, VIP, 80, "S"));
        d.apply(ConfigOp::EditDest(
            k,
            DestSpec::masq(ip(first), 80, Weight(0)),
        ))
        .unwrap();
        let (v, next) = send(&d, 2, 1, tcp(c, 4001, VIP, 80, "S"));
        assert_eq!(v, FWD_IN);
        assert_eq!(next != first, moves, "{mode:?}");
        // The established connection itself stays on its server either way.
        assert_eq!(send(&d, 3, 1, tcp(c, 4000, VIP, 80, "A")).1, first);
    }
}

#[test]
fn conn_reuse_mode_decides_whether_a_syn_on_time_wait_is_rescheduled() {
    let k = key(Protocol::Tcp, 80);
    for (mode, resched) in [(0u8, false), (1, true)] {
        let cfg = DefenseConfig {
            conn_reuse_mode: mode,
            ..DefenseConfig::default()
        };
        let d = director(k, &[RIP1, RIP2], false, cfg);
        let c = [198, 51, 100, 7];
        let (_, first) = send(&d, 0, 1, tcp(c, 4000, VIP, 80, "S"));
        assert_eq!(send(&d, 1, 1, tcp(first, 80, c, 4000, "SA")).0, FWD_OUT);
        send(&d, 2, 1, tcp(c, 4000, VIP, 80, "A"));
        send(&d, 3, 1, tcp(c, 4000, VIP, 80, "FA"));
        send(&d, 4, 1, tcp(first, 80, c, 4000, "FA"));
        let st = d.connections(Timestamp(5));
        assert_eq!(st[0].state, "TIME_WAIT");
        let (v, again) = send(&d, 6, 1, tcp(c, 4000, VIP, 80, "S"));
        assert_eq!(v, FWD_IN);
        // rr: a rescheduled SYN goes to the other server.
        assert_eq!(again != first, resched, "conn_reuse_mode={mode}");
    }
}

#[test]
fn syn_reusing_a_port_to_a_quiesced_server_is_rescheduled_with_expire_nodest_conn() {
    let k = key(Protocol::Tcp, 80);
    let cfg = DefenseConfig {
        expire_nodest_conn: NoDestConn::Expire,
        ..DefenseConfig::default()
    };
    let d = director(k, &[RIP1, RIP2], false, cfg);
    let c = [198, 51, 100, 7];
    let (_, first) = send(&d, 0, 1, tcp(c, 4000, VIP, 80, "S"));
    d.apply(ConfigOp::EditDest(
        k,
        DestSpec::masq(ip(first), 80, Weight(0)),
    ))
    .unwrap();
    // A non-SYN keeps the connection (quiesced servers keep theirs)...
    assert_eq!(send(&d, 2, 1, tcp(c, 4000, VIP, 80, "A")).1, first);
    // ...a new SYN on the same port goes elsewhere.
    let (v, again) = send(&d, 3, 1, tcp(c, 4000, VIP, 80, "S"));
    assert_eq!(v, FWD_IN);
    assert_ne!(again, first);
}

#[test]
fn syn_flood_at_the_limit_evicts_half_open_entries_and_real_clients_get_through() {
    let k = key(Protocol::Tcp, 80);
    // 250 entries a shard: a sparse slab (the sample must find live entries among free slots).
    let limit = 1000;
    let real = [198, 51, 100, 7];
    for (drop_entry, served) in [(DefenseLevel::Auto, true), (DefenseLevel::Off, false)] {
        let d = director(
            k,
            &[RIP1, RIP2],
            false,
            DefenseConfig {
                drop_entry,
                ..DefenseConfig::with_limit(limit)
            },
        );
        // A real client establishes before the flood.
        let (_, rs) = send(&d, 0, 1, tcp(real, 1000, VIP, 80, "S"));
        send(&d, 1, 1, tcp(rs, 80, real, 1000, "SA"));
        send(&d, 2, 1, tcp(real, 1000, VIP, 80, "A"));
        // 5x the limit of spoofed SYNs, one second of fake time per 1000.
        let mut now = 10;
        for k in 0..5 * limit as u32 {
            let (src, port) = flood_source(k);
            send(
                &d,
                now,
                u64::from(k).wrapping_mul(0x9e37_79b9),
                tcp(src, port, VIP, 80, "S"),
            );
            if k % 1000 == 0 {
                now += 1000;
                d.update_defense(Timestamp(now), u64::from(k));
                d.expire(Timestamp(now));
            }
            assert!(d.conn_count() <= limit + 4, "{}", d.conn_count());
        }
        let snap = d.defense();
        // Real clients during the flood: new connections and the established one.
        let mut ok = 0;
        for p in 0..100u16 {
            let (v, _) = send(
                &d,
                now,
                u64::from(p) * 7919,
                tcp(real, 2000 + p, VIP, 80, "S"),
            );
            ok += usize::from(v == FWD_IN);
        }
        let (v, dst) = send(&d, now, 3, tcp(real, 1000, VIP, 80, "A"));
        assert_eq!(
            (v, dst),
            (FWD_IN, rs),
            "the established connection survives"
        );
        if served {
            assert_eq!(ok, 100, "every real SYN found room");
            assert!(snap.entries_evicted > 0);
            assert_eq!(snap.config.drop_entry, DefenseLevel::AutoActive);
            assert!(snap.pressure);
            assert_eq!(d.drop_counters().get(DropReason::TableFull), 0);
        } else {
            assert!(ok < 10, "{ok}");
            assert!(d.drop_counters().get(DropReason::TableFull) > 0);
            assert_eq!(snap.entries_evicted, 0);
        }
    }
}

#[test]
fn random_dropentry_clears_half_open_entries_and_spares_live_ones() {
    let k = key(Protocol::Tcp, 80);
    let d = director(
        k,
        &[RIP1],
        false,
        DefenseConfig {
            drop_entry: DefenseLevel::Auto,
            ..DefenseConfig::with_limit(2000)
        },
    );
    // 100 established, busy connections.
    for p in 0..100u16 {
        let c = [198, 51, 100, 7];
        send(&d, 0, 1, tcp(c, 1000 + p, VIP, 80, "S"));
        send(&d, 0, 1, tcp(RIP1, 80, c, 1000 + p, "SA"));
        for _ in 0..10 {
            send(&d, 0, 1, tcp(c, 1000 + p, VIP, 80, "A"));
        }
    }
    // 1800 half-open from a flood: 1900 of 2000, under the 250 free threshold.
    for k in 0..1800 {
        let (src, port) = flood_source(k);
        send(&d, 0, 1, tcp(src, port, VIP, 80, "S"));
    }
    assert_eq!(d.conn_count(), 1900);
    let mut dropped = 0;
    for s in 0..40u64 {
        dropped += d.update_defense(Timestamp(1000 + s * 1000), s * 0x1234_5678_9abc);
    }
    // Drops until the pressure is gone (at least 250 of 2000 free), then stops.
    assert!(dropped >= 150, "{dropped}");
    assert!(d.conn_count() <= 1750, "{}", d.conn_count());
    assert!(d.conn_count() > 1600, "{}", d.conn_count());
    assert_eq!(d.defense().entries_dropped, dropped as u64);
    let est = d
        .connections(Timestamp(41_000))
        .iter()
        .filter(|c| c.state == "ESTABLISHED")
        .count();
    assert_eq!(est, 100, "busy established entries are never dropped");
    // Pressure gone: drop_entry goes back to 1 and stops.
    assert_eq!(d.defense().config.drop_entry, DefenseLevel::Auto);
    assert_eq!(d.update_defense(Timestamp(60_000), 5), 0);
}

#[test]
fn secure_tcp_establishes_only_after_the_server_answers() {
    let k = key(Protocol::Tcp, 80);
    let d = director(
        k,
        &[RIP1],
        false,
        DefenseConfig {
            secure_tcp: DefenseLevel::Always,
            ..DefenseConfig::default()
        },
    );
    let c = [198, 51, 100, 7];
    send(&d, 0, 1, tcp(c, 1000, VIP, 80, "S"));
    // A spoofed ACK for a half-open entry does not make it active.
    send(&d, 1, 1, tcp(c, 1000, VIP, 80, "A"));
    assert_eq!(d.connections(Timestamp(1))[0].state, "SYN_RECV");
    send(&d, 2, 1, tcp(RIP1, 80, c, 1000, "SA"));
    assert_eq!(d.connections(Timestamp(2))[0].state, "SYNACK");
    send(&d, 3, 1, tcp(c, 1000, VIP, 80, "A"));
    assert_eq!(d.connections(Timestamp(3))[0].state, "SYNACK");
    assert_eq!(d.service(&k).unwrap().dests[0].active_conns, 0);
    send(&d, 4, 1, tcp(RIP1, 80, c, 1000, "A"));
    assert_eq!(d.connections(Timestamp(4))[0].state, "ESTABLISHED");
    assert_eq!(d.service(&k).unwrap().dests[0].active_conns, 1);
}

#[test]
fn drop_packet_always_drops_one_in_am_droprate_new_connections_only() {
    let k = key(Protocol::Udp, 53);
    let d = director(
        k,
        &[RIP1],
        false,
        DefenseConfig {
            drop_packet: DefenseLevel::Always,
            am_droprate: 4,
            ..DefenseConfig::default()
        },
    );
    let mut fwd = Vec::new();
    for p in 0..4000u64 {
        let port = 1024 + p as u16;
        let (v, _) = send(
            &d,
            0,
            p.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            udp([198, 51, 100, 7], port, VIP, 53),
        );
        if v == FWD_IN {
            fwd.push(port);
        }
    }
    let dropped = d.drop_counters().get(DropReason::DropPacket) as usize;
    assert_eq!(fwd.len() + dropped, 4000);
    // ip_vs_todrop's countdown, not a draw: exactly one in four, the 1st, 5th, 9th, ...
    assert_eq!(dropped, 1000);
    assert_eq!(&fwd[..6], &[1025, 1026, 1027, 1029, 1030, 1031]);
    // Packets of existing connections are never dropped by it.
    for p in 0..200u64 {
        let (v, _) = send(&d, 1, p, udp([198, 51, 100, 7], fwd[0], VIP, 53));
        assert_eq!(v, FWD_IN);
    }
}

#[test]
fn persistence_templates_count_in_max_conns() {
    let k = key(Protocol::Tcp, 80);
    let limit = 200;
    let d = director(k, &[RIP1, RIP2], true, DefenseConfig::with_limit(limit));
    // Each new client costs two entries: its template and its connection.
    let mut ok = 0;
    for c in 0..400u32 {
        let src = (0xc612_0000u32 | c).to_be_bytes();
        let now = u64::from(c) * 10;
        let (v, _) = send(&d, now, u64::from(c) * 7919, tcp(src, 1000, VIP, 80, "S"));
        ok += usize::from(v == FWD_IN);
        if c % 10 == 9 {
            // rvsd evaluates every second; between two evaluations at most 10 new templates here.
            d.update_defense(Timestamp(now), u64::from(c));
        }
        let entries = d.conn_count() + d.template_count();
        assert!(entries <= limit + 10, "{entries} entries at client {c}");
    }
    let snap = d.defense();
    assert!(
        (80..=105).contains(&ok),
        "about half the limit in clients: {ok}"
    );
    assert!(d.template_count() >= 90, "{}", d.template_count());
    assert!(d.drop_counters().get(DropReason::TableFull) > 0);
    assert_eq!(snap.templates, d.template_count());
}

#[test]
fn a_syn_flood_at_a_persistent_service_leaves_room_for_real_clients() {
    let k = key(Protocol::Tcp, 80);
    let limit = 1000;
    let d = director(
        k,
        &[RIP1, RIP2],
        true,
        DefenseConfig {
            drop_entry: DefenseLevel::Auto,
            ..DefenseConfig::with_limit(limit)
        },
    );
    // 5x the limit of spoofed SYNs, each from its own address (its own template).
    let mut now = 10;
    for k in 0..5 * limit as u32 {
        let src = (0xc612_0000u32 | k).to_be_bytes();
        send(
            &d,
            now,
            u64::from(k).wrapping_mul(0x9e37_79b9),
            tcp(src, 1024, VIP, 80, "S"),
        );
        if k % 100 == 99 {
            now += 100;
            d.update_defense(Timestamp(now), u64::from(k));
            d.expire(Timestamp(now));
        }
        let entries = d.conn_count() + d.template_count();
        assert!(entries <= limit + 100 + 4, "{entries} entries");
    }
    // The flood's templates went with their evicted connections: real clients find room.
    let mut ok = 0;
    for p in 0..50u16 {
        let c = [198, 51, 100, 10 + p as u8];
        let (v, _) = send(&d, now, u64::from(p) * 7919, tcp(c, 2000, VIP, 80, "S"));
        ok += usize::from(v == FWD_IN);
    }
    assert_eq!(ok, 50, "every real client found room");
    assert!(d.defense().entries_evicted > 0);
}

#[test]
fn a_real_handshake_in_progress_is_not_evicted_by_the_flood() {
    // The lab's finding: a real client's entry is half-open for one round trip; a flood evicting it
    // then lets the real server's SYN-ACK through un-NATed (the client resets it, retries 1 s later).
    let k = key(Protocol::Tcp, 80);
    let limit = 1000;
    let d = director(
        k,
        &[RIP1, RIP2],
        false,
        DefenseConfig {
            drop_entry: DefenseLevel::Auto,
            ..DefenseConfig::with_limit(limit)
        },
    );
    // The table fills with the flood's half-open entries, one SYN a millisecond.
    let mut now = 0u64;
    let mut k_flood = 0u32;
    let mut flood = |d: &Director, now: u64, n: u32| {
        for _ in 0..n {
            let (src, port) = flood_source(k_flood);
            send(
                d,
                now,
                u64::from(k_flood).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                tcp(src, port, VIP, 80, "S"),
            );
            k_flood += 1;
        }
    };
    for _ in 0..2 * limit {
        now += 1;
        flood(&d, now, 1);
    }
    // 50 real clients, each answered 50 ms after its SYN while the flood goes on (250 SYNs meanwhile).
    let mut natted = 0;
    for p in 0..50u16 {
        let c = [198, 51, 100, 7];
        let (v, rs) = send(&d, now, u64::from(p) * 7919, tcp(c, 3000 + p, VIP, 80, "S"));
        assert_eq!(v, FWD_IN);
        for _ in 0..50 {
            now += 1;
            flood(&d, now, 5);
        }
        let (v, _) = send(&d, now, 1, tcp(rs, 80, c, 3000 + p, "SA"));
        natted += usize::from(v == FWD_OUT);
    }
    assert_eq!(natted, 50, "every real SYN-ACK found its connection");
    assert!(d.conn_count() <= limit + 4);
}
