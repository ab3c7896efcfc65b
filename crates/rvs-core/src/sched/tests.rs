//! Tests across all schedulers, and the helpers the per-scheduler tests use.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::time::Timestamp;

/// A table-test case: destinations as (weight, active, inactive), and the expected pick.
pub(crate) type Case = (&'static [(u32, u32, u32)], Option<usize>);

/// Destinations with the given weights (addresses 203.0.113.1, .2, ...; port 80).
pub(crate) fn dests(weights: &[u32]) -> Vec<Arc<Destination>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let a = Ipv4Addr::from(0xCB00_7101u32.wrapping_add(i as u32));
            Arc::new(Destination::new(a.into(), 80, w))
        })
        .collect()
}

/// Destinations from (weight, active, inactive).
pub(crate) fn dests_with(spec: &[(u32, u32, u32)]) -> Vec<Arc<Destination>> {
    let d = dests(&spec.iter().map(|s| s.0).collect::<Vec<_>>());
    for (x, s) in d.iter().zip(spec) {
        x.set_conn_counts(s.1, s.2);
    }
    d
}

/// A TCP SYN from 198.51.100.1:12345 to 198.18.0.1:80 at time 0.
pub(crate) fn input() -> SchedInput {
    SchedInput {
        now: Timestamp(0),
        protocol: 6,
        caddr: Ipv4Addr::new(198, 51, 100, 1).into(),
        cport: 12345,
        vaddr: Ipv4Addr::new(198, 18, 0, 1).into(),
        vport: 80,
        random: 0,
    }
}

/// As [`input`], from client number `k` (198.51.100.0 + k) and source port `cport`.
pub(crate) fn input_from(k: u32, cport: u16) -> SchedInput {
    SchedInput {
        caddr: Ipv4Addr::from(0xC633_6400u32.wrapping_add(k)).into(),
        cport,
        ..input()
    }
}

/// As [`input`], at `now` towards `vaddr`.
pub(crate) fn input_at(now: Timestamp, vaddr: IpAddr) -> SchedInput {
    SchedInput {
        now,
        vaddr,
        ..input()
    }
}

/// Schedules `count` times with the default input; stops at the first `None`.
pub(crate) fn run(s: &mut dyn Scheduler, d: &[Arc<Destination>], count: usize) -> Vec<usize> {
    (0..count).map_while(|_| s.schedule(d, &input())).collect()
}

/// Every scheduler, with the interesting flag combinations.
fn all_schedulers() -> Vec<Box<dyn Scheduler>> {
    let mut v = Vec::new();
    for name in SCHEDULER_NAMES {
        for (fallback, port) in [(false, false), (true, false), (false, true), (true, true)] {
            if !matches!(*name, "sh" | "mh") && (fallback || port) {
                continue;
            }
            let flags = SchedFlags {
                fallback,
                port,
                flag3: false,
            };
            v.push(new_scheduler(name, flags).expect("known scheduler"));
        }
    }
    v
}

/// A varied input for iteration `k`.
fn varied(k: u32) -> SchedInput {
    SchedInput {
        now: Timestamp(u64::from(k) * 7_000),
        vaddr: Ipv4Addr::new(198, 18, 0, (k % 5) as u8).into(),
        random: u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ..input_from(k * 31, (k % 60000) as u16)
    }
}

#[test]
fn names_and_unknown() {
    for name in SCHEDULER_NAMES {
        let s = new_scheduler(name, SchedFlags::default()).expect("known scheduler");
        assert_eq!(s.name(), *name);
    }
    for bad in ["", "RR", "wlc ", "foo", "lblcrr"] {
        let e = new_scheduler(bad, SchedFlags::default()).unwrap_err();
        assert_eq!(e, SchedError::NotFound);
        assert_eq!(e.to_string(), "Scheduler or persistence engine not found");
    }
}

#[test]
fn empty_list_gives_none_everywhere() {
    for mut s in all_schedulers() {
        s.update(&[]);
        for k in 0..20 {
            assert_eq!(s.schedule(&[], &varied(k)), None, "{}", s.name());
        }
    }
}

#[test]
fn unavailable_never_chosen_everywhere() {
    // weights 0 at 1 and 4, overloaded at 2 and 6
    let d = dests(&[3, 0, 5, 1, 0, 2, 4, 1]);
    d[2].set_overloaded(true);
    d[6].set_overloaded(true);
    for (i, x) in d.iter().enumerate() {
        x.set_conn_counts((i as u32 * 3) % 4, i as u32);
    }
    for mut s in all_schedulers() {
        s.update(&d);
        let mut some = 0;
        for k in 0..2000 {
            if let Some(i) = s.schedule(&d, &varied(k)) {
                assert!(d[i].is_available(), "{} chose unavailable {i}", s.name());
                some += 1;
            }
        }
        assert!(some > 0, "{} never chose", s.name());
    }
}

#[test]
fn all_unavailable_gives_none_everywhere() {
    let d = dests(&[3, 0, 5]);
    d[0].set_overloaded(true);
    d[2].set_overloaded(true);
    for mut s in all_schedulers() {
        s.update(&d);
        for k in 0..200 {
            assert_eq!(s.schedule(&d, &varied(k)), None, "{}", s.name());
        }
    }
}

#[test]
fn quiesced_after_update_never_chosen_everywhere() {
    let d = dests(&[2, 2, 2, 2]);
    for mut s in all_schedulers() {
        s.update(&d);
        for k in 0..50 {
            s.schedule(&d, &varied(k));
        }
        d[1].set_weight(0);
        s.update(&d);
        for k in 0..500 {
            if let Some(i) = s.schedule(&d, &varied(k)) {
                assert_ne!(i, 1, "{}", s.name());
            }
        }
        d[1].set_weight(2);
    }
}

/// Brute-force weighted least-connection: the first available destination with the smallest
/// overhead / weight, comparing exact fractions.
fn wlc_reference(d: &[Arc<Destination>]) -> Option<usize> {
    let mut best: Option<(usize, u128, u128)> = None;
    for (i, x) in d.iter().enumerate() {
        if x.weight() == 0 || x.is_overloaded() {
            continue;
        }
        let oh = u128::from(x.active_conns()) * 256 + u128::from(x.inactive_conns());
        let w = u128::from(x.weight());
        if best.is_none_or(|(_, boh, bw)| oh * bw < boh * w) {
            best = Some((i, oh, w));
        }
    }
    best.map(|b| b.0)
}

proptest! {
    #[test]
    fn wlc_matches_reference(
        spec in prop::collection::vec((0u32..20, 0u32..50, 0u32..2000, prop::bool::weighted(0.1)), 0..24)
    ) {
        let d = dests_with(&spec.iter().map(|s| (s.0, s.1, s.2)).collect::<Vec<_>>());
        for (x, s) in d.iter().zip(&spec) {
            x.set_overloaded(s.3);
        }
        let mut s = Wlc::new();
        s.update(&d);
        prop_assert_eq!(s.schedule(&d, &input()), wlc_reference(&d));
    }

    #[test]
    fn wlc_matches_reference_large_counters(
        spec in prop::collection::vec((0u32..=u32::MAX, 0u32..=u32::MAX, 0u32..=u32::MAX), 1..8)
    ) {
        let d = dests_with(&spec);
        prop_assert_eq!(Wlc::new().schedule(&d, &input()), wlc_reference(&d));
    }

    #[test]
    fn wrr_gives_each_destination_its_weight_per_cycle(
        weights in prop::collection::vec(0u32..12, 1..9),
        cycles in 1usize..4,
    ) {
        let d = dests(&weights);
        let mut s = Wrr::new();
        s.update(&d);
        let total: u32 = weights.iter().sum();
        let got = run(&mut s, &d, total as usize * cycles);
        prop_assert_eq!(got.len(), total as usize * cycles);
        for (i, &w) in weights.iter().enumerate() {
            let c = got.iter().filter(|&&x| x == i).count();
            prop_assert_eq!(c, w as usize * cycles, "dest {} of {:?}", i, weights);
        }
    }

    #[test]
    fn rr_visits_every_available_destination_once_per_round(
        spec in prop::collection::vec((0u32..3, prop::bool::weighted(0.2)), 1..12),
        warmup in 0usize..20,
    ) {
        let d = dests(&spec.iter().map(|s| s.0).collect::<Vec<_>>());
        for (x, s) in d.iter().zip(&spec) {
            x.set_overloaded(s.1);
        }
        let avail: Vec<usize> = (0..d.len()).filter(|&i| d[i].is_available()).collect();
        let mut s = Rr::new();
        s.update(&d);
        run(&mut s, &d, warmup);
        let mut got = run(&mut s, &d, avail.len());
        got.sort_unstable();
        prop_assert_eq!(got, avail);
    }

    #[test]
    fn twos_never_picks_unavailable(
        spec in prop::collection::vec((0u32..10, 0u32..10, 0u32..10, prop::bool::weighted(0.2)), 0..16),
        random in any::<u64>(),
    ) {
        let d = dests_with(&spec.iter().map(|s| (s.0, s.1, s.2)).collect::<Vec<_>>());
        for (x, s) in d.iter().zip(&spec) {
            x.set_overloaded(s.3);
        }
        let any_available = d.iter().any(|x| x.is_available());
        let inp = SchedInput { random, ..input() };
        match Twos::new().schedule(&d, &inp) {
            Some(i) => prop_assert!(d[i].is_available()),
            None => prop_assert!(!any_available),
        }
    }

    #[test]
    fn load_schedulers_pick_iff_something_available(
        spec in prop::collection::vec((0u32..4, 0u32..6, 0u32..6, prop::bool::weighted(0.2)), 0..10),
    ) {
        let d = dests_with(&spec.iter().map(|s| (s.0, s.1, s.2)).collect::<Vec<_>>());
        for (x, s) in d.iter().zip(&spec) {
            x.set_overloaded(s.3);
        }
        let any_available = d.iter().any(|x| x.is_available());
        for name in ["rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "lblc", "lblcr", "twos"] {
            let mut s = new_scheduler(name, SchedFlags::default()).expect("known");
            s.update(&d);
            let got = s.schedule(&d, &input());
            prop_assert_eq!(got.is_some(), any_available, "{}", name);
            if let Some(i) = got {
                prop_assert!(d[i].is_available(), "{}", name);
            }
        }
    }
}

/// Fraction of `flows` clients whose destination (by identity) differs between two tables.
fn moved(
    s: &mut dyn Scheduler,
    before: &[Arc<Destination>],
    after: &[Arc<Destination>],
    flows: u32,
) -> (usize, Vec<Option<usize>>) {
    s.update(before);
    let b: Vec<_> = (0..flows)
        .map(|k| s.schedule(before, &input_from(k, 0)))
        .collect();
    s.update(after);
    let a: Vec<_> = (0..flows)
        .map(|k| s.schedule(after, &input_from(k, 0)))
        .collect();
    let changed = b
        .iter()
        .zip(&a)
        .filter(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => !Arc::ptr_eq(&before[*x], &after[*y]),
            _ => true,
        })
        .count();
    (changed, b)
}

#[test]
fn mh_remove_moves_close_to_minimum() {
    const FLOWS: u32 = 10_000;
    let d = dests(&[1; 10]);
    for removed in [0usize, 4, 9] {
        let mut after = d.clone();
        after.remove(removed);
        let mut s = Mh::new(SchedFlags::default());
        let (changed, before) = moved(&mut s, &d, &after, FLOWS);
        let minimum = before.iter().filter(|b| **b == Some(removed)).count();
        assert!(
            minimum > 800 && minimum < 1200,
            "share of one of ten: {minimum}"
        );
        assert!(changed >= minimum);
        assert!(changed < 2 * minimum, "moved {changed}, minimum {minimum}");
    }
}

#[test]
fn mh_add_moves_close_to_minimum() {
    const FLOWS: u32 = 10_000;
    let all = dests(&[1; 11]);
    let before = all[..10].to_vec();
    let mut s = Mh::new(SchedFlags::default());
    let (changed, _) = moved(&mut s, &before, &all, FLOWS);
    let minimum = (0..FLOWS)
        .filter(|&k| s.schedule(&all, &input_from(k, 0)) == Some(10))
        .count();
    assert!(
        minimum > 700 && minimum < 1150,
        "share of one of eleven: {minimum}"
    );
    assert!(changed >= minimum);
    assert!(changed < 2 * minimum, "moved {changed}, minimum {minimum}");
}

#[test]
fn more_destinations_than_table_slots() {
    // 5000 destinations: mh's table (4093) and sh/dh's (256) cannot hold them all; building
    // must still terminate and every pick be a valid, available destination.
    let d = dests(&[1; 5000]);
    for name in ["mh", "sh", "dh"] {
        let mut s = new_scheduler(name, SchedFlags::default()).expect("known");
        s.update(&d);
        for k in 0..1000 {
            let i = s.schedule(&d, &varied(k)).expect("available");
            assert!(i < d.len());
        }
    }
}

#[test]
fn hashing_spreads_by_weight() {
    // sh and mh: 10k clients over weights 1,2,3,4 land roughly in proportion.
    let w = [1u32, 2, 3, 4];
    for name in ["sh", "mh"] {
        let d = dests(&w);
        let mut s = new_scheduler(name, SchedFlags::default()).expect("known");
        s.update(&d);
        let mut c = [0f64; 4];
        for k in 0..10_000 {
            c[s.schedule(&d, &input_from(k, 0)).expect("available")] += 1.0;
        }
        for (i, &wi) in w.iter().enumerate() {
            let want = 10_000.0 * f64::from(wi) / 10.0;
            assert!((c[i] - want).abs() < want * 0.2, "{name}: {c:?}");
        }
    }
}
