//! The master's send rules (ip_vs_sync_conn_needed), packing, and the backup's receive path.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use rvs_sync::{
    ExportPolicy, Exporter, Installed, MessageBuilder, Packer, Receiver, Skipped, SyncConn,
    SyncError, SyncTarget, flags, parse,
};

const EST: u16 = 1;
const SYN_RECV: u16 = 3;
const FIN_WAIT: u16 = 4;

fn conn(cport: u16, state: u16) -> SyncConn<'static> {
    SyncConn {
        protocol: 6,
        flags: 0,
        state,
        caddr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        cport,
        vaddr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 250)),
        vport: 80,
        daddr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
        dport: 80,
        fwmark: 0,
        timeout_s: 900,
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

#[test]
fn tcp_sent_in_synced_states_on_change_and_on_refresh() {
    let mut x = Exporter::new(ExportPolicy::default());
    let c = conn(1, SYN_RECV);
    x.begin_walk();
    assert!(!x.offer(&c, 60_000, 0, false), "SYN_RECV is not synced");
    x.end_walk();
    assert!(x.is_empty());
    let c = conn(1, EST);
    x.begin_walk();
    assert!(x.offer(&c, 900_000, 0, false), "first ESTABLISHED is sent");
    x.end_walk();
    x.begin_walk();
    assert!(
        !x.offer(&c, 905_000, 5_000, false),
        "deadline moved 5 s < 10 s"
    );
    x.end_walk();
    x.begin_walk();
    assert!(
        x.offer(&c, 911_000, 11_000, false),
        "deadline moved 11 s: refresh"
    );
    x.end_walk();
    x.begin_walk();
    assert!(!x.offer(&c, 912_000, 12_000, false));
    let f = conn(1, FIN_WAIT);
    assert!(
        x.offer(&f, 132_000, 12_001, false),
        "state change is forced"
    );
    x.end_walk();
    // Not offered in a walk: forgotten (expired), a reappearance is sent again.
    x.begin_walk();
    x.end_walk();
    assert!(x.is_empty());
}

#[test]
fn udp_and_templates_are_refreshed_never_forced() {
    let mut x = Exporter::new(ExportPolicy::default());
    let mut u = conn(2, 0);
    u.protocol = 17;
    u.timeout_s = 300;
    let mut t = conn(0, 0);
    t.flags = flags::TEMPLATE;
    t.timeout_s = 360;
    x.begin_walk();
    assert!(x.offer(&u, 300_000, 0, false));
    assert!(x.offer(&t, 360_000, 0, false));
    assert!(!x.offer(&u, 305_000, 5_000, false));
    assert!(!x.offer(&t, 365_000, 5_000, false));
    assert!(x.offer(&u, 310_000, 10_000, false));
    x.end_walk();
    assert_eq!(x.len(), 2);
}

#[test]
fn persist_mode_and_retries() {
    let mut x = Exporter::new(ExportPolicy {
        persist_mode: true,
        retries: 2,
        refresh_period_ms: 16_000,
    });
    let c = conn(3, EST);
    x.begin_walk();
    assert!(
        !x.offer(&c, 900_000, 0, true),
        "under a template: the template is sent"
    );
    assert!(x.offer(&c, 900_000, 0, false));
    // Small move: retries allowed every refresh/8 = 2 s after the last send, twice.
    assert!(!x.offer(&c, 901_000, 1_000, false));
    assert!(x.offer(&c, 902_000, 2_000, false));
    assert!(x.offer(&c, 902_500, 4_100, false));
    assert!(!x.offer(&c, 903_000, 8_000, false), "retries exhausted");
}

#[test]
fn packer_closes_full_messages_and_flushes_after_2s() {
    let mut p = Packer::new(9, 8 + 36 * 3);
    let mut sent: Vec<Vec<u8>> = Vec::new();
    for k in 0..7 {
        assert!(p.add(&conn(k, EST), 100, |m| sent.push(m.to_vec())));
    }
    assert_eq!(sent.len(), 2);
    assert_eq!(p.pending(), 1);
    p.flush_due(2099, |m| sent.push(m.to_vec()));
    assert_eq!(sent.len(), 2);
    p.flush_due(2100, |m| sent.push(m.to_vec()));
    assert_eq!(sent.len(), 3);
    let mut total = 0;
    for m in &sent {
        let mut out = Vec::new();
        let h = parse(m, &mut out).unwrap();
        assert_eq!(h.syncid, 9);
        assert!(m.len() <= 8 + 36 * 3);
        total += out.len();
    }
    assert_eq!(total, 7);
}

#[test]
fn packer_flush_now_sends_what_waits_at_once_and_nothing_when_empty() {
    let mut p = Packer::new(9, 8 + 36 * 3);
    let mut sent: Vec<Vec<u8>> = Vec::new();
    p.flush_now(|m| sent.push(m.to_vec()));
    assert!(sent.is_empty(), "nothing pending, nothing sent");
    assert!(p.add(&conn(1, EST), 100, |m| sent.push(m.to_vec())));
    p.flush_now(|m| sent.push(m.to_vec()));
    assert_eq!((sent.len(), p.pending()), (1, 0));
    let mut out = Vec::new();
    parse(&sent[0], &mut out).unwrap();
    assert_eq!(out.len(), 1);
    p.flush_now(|m| sent.push(m.to_vec()));
    assert_eq!(sent.len(), 1, "flushed once");
}

/// A director stand-in: one service 198.51.100.250:80 with real server 203.0.113.10:80.
#[derive(Default)]
struct Fake {
    conns: HashMap<(u16, bool), (IpAddr, u16, u16, u32)>,
}

impl SyncTarget for Fake {
    fn install(&mut self, c: &SyncConn<'_>) -> Result<Installed, Skipped> {
        if c.vport != 80 {
            return Err(Skipped::NoService);
        }
        if c.daddr != IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)) {
            return Err(Skipped::NoDestination);
        }
        let v = (c.daddr, c.dport, c.state, c.flags);
        match self.conns.insert((c.cport, c.is_template()), v) {
            None => Ok(Installed::Created),
            Some(_) => Ok(Installed::Updated),
        }
    }
}

fn message(syncid: u8, conns: &[SyncConn<'_>]) -> Vec<u8> {
    let mut b = MessageBuilder::new(syncid, 1472);
    for c in conns {
        b.push(c).unwrap();
    }
    b.take()
}

#[test]
fn backup_filters_validates_and_counts() {
    let mut r = Receiver::new(4);
    let mut d = Fake::default();
    let mut foreign_svc = conn(5, EST);
    foreign_svc.vport = 443;
    let mut foreign_rs = conn(6, EST);
    foreign_rs.daddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 99));
    let mut bad_state = conn(7, 11);
    bad_state.flags = flags::INACTIVE;
    let mut sctp = conn(8, 1);
    sctp.protocol = 132;
    let mut tpl = conn(0, 5);
    tpl.flags = flags::TEMPLATE | flags::ONE_PACKET | flags::HASHED;
    let m = message(
        4,
        &[conn(1, EST), foreign_svc, foreign_rs, bad_state, sctp, tpl],
    );
    r.receive(&m, &mut d).unwrap();
    let k = r.counters();
    assert_eq!(
        (k.messages, k.created, k.no_service, k.no_destination),
        (1, 2, 1, 1)
    );
    assert_eq!((k.bad_state, k.unsupported), (1, 1));
    // Templates take state 0; flags masked (BACKUP_MASK) plus SYNC.
    assert_eq!(
        d.conns[&(0, true)].3,
        flags::TEMPLATE | flags::SYNC,
        "ONE_PACKET and HASHED are not taken"
    );
    assert_eq!(d.conns[&(0, true)].2, 0);
    // Again: updates.
    r.receive(&m, &mut d).unwrap();
    assert_eq!(r.counters().updated, 2);
    // Another syncid, garbage: nothing changes.
    let before = d.conns.clone();
    assert_eq!(
        r.receive(&message(5, &[conn(9, EST)]), &mut d),
        Err(SyncError::ForeignSyncid(5))
    );
    let mut bad = message(4, &[conn(10, EST)]);
    bad.push(0);
    assert!(r.receive(&bad, &mut d).is_err());
    assert_eq!(d.conns, before);
    let k = r.counters();
    assert_eq!((k.foreign_syncid, k.bad_messages, k.messages), (1, 1, 2));
    // syncid 0 accepts every syncid.
    let mut any = Receiver::new(0);
    any.receive(&message(200, &[conn(11, EST)]), &mut d)
        .unwrap();
    assert_eq!(any.counters().created, 1);
}
