//! The state machine against RFC 5798's rules, with a fake clock.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use rvs_vrrp::wire::build;
use rvs_vrrp::{Action, Advert, Auth, Config, Ignored, Instance, State, Version};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg(priority: u8, primary: &str) -> Config {
    Config {
        name: "VI_1".into(),
        vrid: 51,
        priority,
        interval_cs: 100,
        version: Version::V3,
        preempt: true,
        preempt_delay_ms: 0,
        auth: Auth::None,
        addrs: vec![ip("198.51.100.100")],
        primary: ip(primary),
    }
}

/// An advert from `src` with `priority`, fed to `i` at `now`.
fn feed(i: &mut Instance, now: u64, src: &str, priority: u8) -> Result<Vec<Action>, Ignored> {
    let mut m = Vec::new();
    let c = i.config().clone();
    build(
        &mut m,
        c.version,
        c.vrid,
        priority,
        c.interval_cs,
        c.auth,
        &c.addrs,
        ip(src),
        ip("224.0.0.18"),
    )
    .unwrap();
    let a = Advert::parse(&m, ip(src), ip("224.0.0.18")).unwrap();
    i.on_advert(now, ip(src), 255, &a)
}

#[test]
fn timers_follow_the_rfc() {
    let b = Instance::new(cfg(100, "198.51.100.2"));
    // Skew = (256 - 100) * 100 cs / 256 = 60 cs (integer) = 600 ms; down = 3 s + 0.6 s.
    assert_eq!(b.skew_ms(), 600);
    assert_eq!(b.master_down_ms(), 3600);
    let mut v2 = cfg(100, "198.51.100.2");
    v2.version = Version::V2;
    assert_eq!(Instance::new(v2).skew_ms(), 609, "v2: (256 - 100) / 256 s");
}

#[test]
fn backup_takes_over_after_master_down_and_master_advertises() {
    let mut b = Instance::new(cfg(100, "198.51.100.2"));
    let a = b.startup(0);
    assert_eq!(
        a,
        vec![Action::Transition {
            from: State::Init,
            to: State::Backup
        }]
    );
    assert_eq!(b.next_deadline(), Some(3600));
    // The master's adverts keep it backup.
    feed(&mut b, 1000, "198.51.100.1", 150).unwrap();
    assert!(b.on_timer(3600).is_empty());
    assert_eq!(b.next_deadline(), Some(4600));
    // Silence: master down at 4600.
    let a = b.on_timer(4600);
    assert_eq!(
        a,
        vec![
            Action::Send { priority: 100 },
            Action::TakeOver,
            Action::Transition {
                from: State::Backup,
                to: State::Master
            }
        ]
    );
    assert_eq!(b.on_timer(5599), vec![]);
    assert_eq!(b.on_timer(5600), vec![Action::Send { priority: 100 }]);
    assert_eq!(b.counters().became_master, 1);
}

#[test]
fn owner_priority_255_is_master_at_once() {
    let mut o = Instance::new(cfg(255, "198.51.100.1"));
    let a = o.startup(0);
    assert_eq!(a[0], Action::Send { priority: 255 });
    assert_eq!(o.state(), State::Master);
}

#[test]
fn higher_priority_preempts_and_priority_zero_shortens() {
    let mut m = Instance::new(cfg(100, "198.51.100.2"));
    m.startup(0);
    m.on_timer(3600);
    assert_eq!(m.state(), State::Master);
    // Lower priority: ignored; higher: back to backup, releasing the addresses.
    assert_eq!(feed(&mut m, 4000, "198.51.100.1", 50), Err(Ignored::Lower));
    let a = feed(&mut m, 4100, "198.51.100.1", 150).unwrap();
    assert_eq!(
        a,
        vec![
            Action::Release,
            Action::Transition {
                from: State::Master,
                to: State::Backup
            }
        ]
    );
    // The master resigns (priority 0): take over after the skew time only.
    feed(&mut m, 5000, "198.51.100.1", 0).unwrap();
    assert_eq!(m.next_deadline(), Some(5600));
    assert_eq!(m.on_timer(5600)[0], Action::Send { priority: 100 });
    // Master receiving priority 0: answers at once.
    assert_eq!(
        feed(&mut m, 5700, "198.51.100.3", 0).unwrap(),
        vec![Action::Send { priority: 100 }]
    );
}

#[test]
fn equal_priority_higher_address_wins() {
    let mut m = Instance::new(cfg(100, "198.51.100.2"));
    m.startup(0);
    m.on_timer(3600);
    assert_eq!(feed(&mut m, 4000, "198.51.100.1", 100), Err(Ignored::Lower));
    feed(&mut m, 4000, "198.51.100.3", 100).unwrap();
    assert_eq!(m.state(), State::Backup);
}

#[test]
fn preempt_off_and_preempt_delay() {
    // nopreempt: a higher-priority backup accepts a lower master forever.
    let mut c = cfg(200, "198.51.100.2");
    c.preempt = false;
    let mut b = Instance::new(c);
    b.startup(0);
    for t in (1000..20_000).step_by(1000) {
        feed(&mut b, t, "198.51.100.1", 100).unwrap();
        assert!(b.on_timer(t).is_empty());
    }
    assert_eq!(b.state(), State::Backup);
    // preempt_delay 5 s: lower adverts accepted until 5 s after start-up, then ignored.
    let mut c = cfg(200, "198.51.100.2");
    c.preempt_delay_ms = 5000;
    let mut b = Instance::new(c);
    b.startup(0);
    feed(&mut b, 4000, "198.51.100.1", 100).unwrap();
    assert_eq!(
        feed(&mut b, 5000, "198.51.100.1", 100),
        Err(Ignored::Preempting)
    );
    // Deadline from the advert at 4000 (down interval with priority 200: 3 s + 218 ms).
    let a = b.on_timer(4000 + b.master_down_ms());
    assert_eq!(b.state(), State::Master, "{a:?}");
}

#[test]
fn receive_checks() {
    let mut b = Instance::new(cfg(100, "198.51.100.2"));
    b.startup(0);
    let mut m = Vec::new();
    build(
        &mut m,
        Version::V3,
        51,
        150,
        100,
        Auth::None,
        &[ip("198.51.100.100")],
        ip("198.51.100.1"),
        ip("224.0.0.18"),
    )
    .unwrap();
    let a = Advert::parse(&m, ip("198.51.100.1"), ip("224.0.0.18")).unwrap();
    assert_eq!(
        b.on_advert(10, ip("198.51.100.1"), 64, &a),
        Err(Ignored::Ttl)
    );
    assert_eq!(
        b.on_advert(10, ip("198.51.100.2"), 255, &a),
        Err(Ignored::Own)
    );
    build(
        &mut m,
        Version::V3,
        52,
        150,
        100,
        Auth::None,
        &[ip("198.51.100.100")],
        ip("198.51.100.1"),
        ip("224.0.0.18"),
    )
    .unwrap();
    let other = Advert::parse(&m, ip("198.51.100.1"), ip("224.0.0.18")).unwrap();
    assert_eq!(
        b.on_advert(10, ip("198.51.100.1"), 255, &other),
        Err(Ignored::OtherVrid)
    );
    build(
        &mut m,
        Version::V2,
        51,
        150,
        100,
        Auth::None,
        &[ip("198.51.100.100")],
        ip("198.51.100.1"),
        ip("224.0.0.18"),
    )
    .unwrap();
    let v2 = Advert::parse(&m, ip("198.51.100.1"), ip("224.0.0.18")).unwrap();
    assert_eq!(
        b.on_advert(10, ip("198.51.100.1"), 255, &v2),
        Err(Ignored::Version)
    );
    // Version 2: authentication and interval must match.
    let mut c = cfg(100, "198.51.100.2");
    c.version = Version::V2;
    c.auth = Auth::Simple(*b"pass\0\0\0\0");
    let mut b2 = Instance::new(c);
    b2.startup(0);
    assert_eq!(
        b2.on_advert(10, ip("198.51.100.1"), 255, &v2),
        Err(Ignored::Auth)
    );
    build(
        &mut m,
        Version::V2,
        51,
        150,
        300,
        Auth::Simple(*b"pass\0\0\0\0"),
        &[ip("198.51.100.100")],
        ip("198.51.100.1"),
        ip("224.0.0.18"),
    )
    .unwrap();
    let slow = Advert::parse(&m, ip("198.51.100.1"), ip("224.0.0.18")).unwrap();
    assert_eq!(
        b2.on_advert(10, ip("198.51.100.1"), 255, &slow),
        Err(Ignored::Interval)
    );
    assert_eq!(b2.counters().ignored, 2);
}

#[test]
fn fault_and_shutdown() {
    let mut m = Instance::new(cfg(100, "198.51.100.2"));
    m.startup(0);
    m.on_timer(3600);
    let a = m.set_fault(4000, true);
    assert_eq!(
        a,
        vec![
            Action::Send { priority: 0 },
            Action::Release,
            Action::Transition {
                from: State::Master,
                to: State::Fault
            }
        ]
    );
    assert_eq!(m.next_deadline(), None);
    assert_eq!(
        feed(&mut m, 4100, "198.51.100.1", 50),
        Err(Ignored::NotRunning)
    );
    let a = m.set_fault(5000, false);
    assert_eq!(
        a,
        vec![Action::Transition {
            from: State::Fault,
            to: State::Backup
        }]
    );
    m.on_timer(5000 + 3600);
    assert_eq!(m.shutdown()[0], Action::Send { priority: 0 });
    assert_eq!(m.state(), State::Init);
}

#[test]
fn sync_group_moves_and_priority_changes() {
    // A backup forced to master takes over at once; a master forced to backup resigns with priority 0.
    let mut b = Instance::new(cfg(100, "198.51.100.2"));
    b.startup(0);
    let a = b.sync_master(500);
    assert_eq!(
        a,
        vec![
            Action::Send { priority: 100 },
            Action::TakeOver,
            Action::Transition {
                from: State::Backup,
                to: State::Master
            }
        ]
    );
    assert!(b.sync_master(600).is_empty(), "already master");
    let a = b.sync_backup(700);
    assert_eq!(
        a,
        vec![
            Action::Send { priority: 0 },
            Action::Release,
            Action::Transition {
                from: State::Master,
                to: State::Backup
            }
        ]
    );
    assert_eq!(b.next_deadline(), Some(700 + 3600));
    assert!(b.sync_backup(800).is_empty(), "already backup");
    // Init and Fault are not moved by the group.
    let mut f = Instance::new(cfg(100, "198.51.100.2"));
    assert!(f.sync_master(0).is_empty());
    f.startup(0);
    f.set_fault(0, true);
    assert!(f.sync_master(0).is_empty());
    assert_eq!(f.state(), State::Fault);

    // Effective priority: a master whose priority dropped advertises the new one; a backup whose priority rose
    // above the master's ignores its adverts and takes over at master down.
    let mut m = Instance::new(cfg(150, "198.51.100.1"));
    m.startup(0);
    m.sync_master(0);
    m.set_priority(90);
    assert_eq!(m.on_timer(1000), vec![Action::Send { priority: 90 }]);
    let mut r = Instance::new(cfg(100, "198.51.100.2"));
    r.startup(0);
    feed(&mut r, 100, "198.51.100.1", 150).unwrap();
    r.set_priority(200);
    assert_eq!(
        feed(&mut r, 1100, "198.51.100.1", 150),
        Err(Ignored::Preempting)
    );
    // The timer set by the last advert accepted (at 100, with priority 100's interval) still runs.
    assert!(r.on_timer(3699).is_empty());
    assert!(r.on_timer(3700).contains(&Action::TakeOver));
    // Skew with priority 200: (56 * 100 / 256) cs = 21 cs.
    assert_eq!(r.master_down_ms(), 3210);
    r.set_priority(0);
    assert_eq!(
        r.config().priority,
        1,
        "never 0 (that is the resign advert)"
    );
}
