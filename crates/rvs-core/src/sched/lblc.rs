//! Locality-based least-connection (`ip_vs_lblc.c`): remembers, per destination address of the
//! packet (the virtual address; meant for fwmark services over many addresses, e.g. cache
//! clusters), the destination last chosen for it, and keeps using it while it is available and
//! not "locality-overloaded" (more active connections than its weight while some destination is
//! under half its weight). Otherwise it picks by weighted least-connection and remembers that.
//!
//! Table housekeeping follows the kernel, driven by [`SchedInput::now`] instead of a timer:
//! every 60 s a check runs; every 30th check drops entries unused for the expiration time
//! (default 24 h, the `lblc_expiration` sysctl); the others, when the table holds more than
//! 16384 entries, drop entries unused for 6 minutes (at most 4/3 of the excess, at most half the
//! maximum).
//!
//! rvs also honours the destination's threshold-overload flag for a remembered destination (the
//! kernel checks it only when choosing a new one).

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use super::common::{locality_overloaded, remap, weighted_least_conn};
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Interval between table checks (ms).
pub(crate) const CHECK_EXPIRE_INTERVAL_MS: u64 = 60 * 1000;
/// An entry unused this long may be dropped when the table is over its size (ms).
pub(crate) const ENTRY_TIMEOUT_MS: u64 = 6 * 60 * 1000;
/// Default expiration of unused entries (ms): the `lblc_expiration` / `lblcr_expiration` sysctl.
pub const DEFAULT_EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
/// Every this many checks, a full expiration pass runs.
pub(crate) const COUNT_FOR_FULL_EXPIRATION: u32 = 30;
/// Table size above which stale entries are collected (kernel: 1024 buckets * 16).
pub(crate) const MAX_ENTRIES: usize = 1024 * 16;

pub(crate) type AddrMap<V> = HashMap<IpAddr, V, foldhash::fast::FixedState>;

/// The kernel's periodic table check, shared by lblc and lblcr.
#[derive(Debug)]
pub(crate) struct Housekeeping {
    next_check: Option<u64>,
    counter: u32,
    pub(crate) expiration_ms: u64,
}

impl Housekeeping {
    pub(crate) fn new(expiration_ms: u64) -> Self {
        Self {
            next_check: None,
            counter: 1,
            expiration_ms,
        }
    }

    /// Runs the check when due. `lastuse` reads an entry's last-use time.
    pub(crate) fn tick<V>(&mut self, now: u64, map: &mut AddrMap<V>, lastuse: impl Fn(&V) -> u64) {
        let due = *self
            .next_check
            .get_or_insert(now.saturating_add(CHECK_EXPIRE_INTERVAL_MS));
        if now < due {
            return;
        }
        self.next_check = Some(now.saturating_add(CHECK_EXPIRE_INTERVAL_MS));
        if self.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
            let exp = self.expiration_ms;
            map.retain(|_, v| lastuse(v).saturating_add(exp) > now);
            self.counter = 1;
            return;
        }
        if map.len() <= MAX_ENTRIES {
            self.counter += 1;
            return;
        }
        let mut goal = ((map.len() - MAX_ENTRIES) * 4 / 3).min(MAX_ENTRIES / 2);
        map.retain(|_, v| {
            if goal > 0 && lastuse(v).saturating_add(ENTRY_TIMEOUT_MS) <= now {
                goal -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    dest: usize,
    lastuse: u64,
}

/// Locality-based least-connection scheduler.
#[derive(Debug)]
pub struct Lblc {
    table: AddrMap<Entry>,
    known: Vec<Arc<Destination>>,
    hk: Housekeeping,
}

impl Default for Lblc {
    fn default() -> Self {
        Self::new()
    }
}

impl Lblc {
    /// An lblc scheduler with the kernel's default expiration (24 h).
    pub fn new() -> Self {
        Self::with_expiration(DEFAULT_EXPIRATION_MS)
    }

    /// An lblc scheduler whose unused entries expire after `expiration_ms`.
    pub fn with_expiration(expiration_ms: u64) -> Self {
        Self {
            table: AddrMap::with_capacity_and_hasher(256, foldhash::fast::FixedState::default()),
            known: Vec::new(),
            hk: Housekeeping::new(expiration_ms),
        }
    }

    /// Number of remembered destination addresses.
    pub fn entries(&self) -> usize {
        self.table.len()
    }
}

impl Scheduler for Lblc {
    fn name(&self) -> &'static str {
        "lblc"
    }

    fn update(&mut self, dests: &[Arc<Destination>]) {
        let map = remap(&self.known, dests);
        self.table
            .retain(|_, e| match map.get(e.dest).copied().flatten() {
                Some(n) => {
                    e.dest = n;
                    true
                }
                None => false,
            });
        self.known = dests.to_vec();
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let now = input.now.millis();
        self.hk.tick(now, &mut self.table, |e| e.lastuse);
        if let Some(e) = self.table.get_mut(&input.vaddr) {
            e.lastuse = now;
            if let Some(d) = dests.get(e.dest)
                && d.is_available()
                && !locality_overloaded(d, dests)
            {
                return Some(e.dest);
            }
        }
        let dest = weighted_least_conn(dests)?;
        self.table
            .entry(input.vaddr)
            .and_modify(|e| e.dest = dest)
            .or_insert(Entry { dest, lastuse: now });
        Some(dest)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sched::tests::{dests, input_at};
    use crate::time::Timestamp;

    fn at(ms: u64, vaddr_last: u8) -> SchedInput {
        input_at(
            Timestamp(ms),
            std::net::Ipv4Addr::new(198, 18, 0, vaddr_last).into(),
        )
    }

    #[test]
    fn sticks_to_remembered_destination() {
        let d = dests(&[1, 1, 1]);
        let mut s = Lblc::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0, 1)), Some(0));
        d[0].set_conn_counts(1, 0); // active == weight: not overloaded
        assert_eq!(s.schedule(&d, &at(1, 1)), Some(0));
        // another address goes to the least loaded
        assert_eq!(s.schedule(&d, &at(2, 2)), Some(1));
        assert_eq!(s.entries(), 2);
    }

    #[test]
    fn leaves_locality_overloaded_destination() {
        let d = dests(&[2, 2, 2]);
        let mut s = Lblc::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0, 1)), Some(0));
        d[0].set_conn_counts(3, 0); // 3 > 2 and dest 1 has 0*2 < 2
        d[1].set_conn_counts(0, 5);
        d[2].set_conn_counts(1, 0);
        assert_eq!(s.schedule(&d, &at(1, 1)), Some(1));
        // remembered now
        d[1].set_conn_counts(2, 0);
        assert_eq!(s.schedule(&d, &at(2, 1)), Some(1));
        // everyone busy: nobody under half weight -> not overloaded, stays
        d[0].set_conn_counts(3, 0);
        d[1].set_conn_counts(3, 0);
        d[2].set_conn_counts(3, 0);
        assert_eq!(s.schedule(&d, &at(3, 1)), Some(1));
    }

    #[test]
    fn skips_unavailable_remembered_destination() {
        let d = dests(&[1, 1]);
        let mut s = Lblc::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0, 1)), Some(0));
        d[0].set_weight(0);
        assert_eq!(s.schedule(&d, &at(1, 1)), Some(1));
        d[0].set_weight(1);
        d[1].set_overloaded(true);
        assert_eq!(s.schedule(&d, &at(2, 1)), Some(0));
        d[0].set_overloaded(true);
        assert_eq!(s.schedule(&d, &at(3, 1)), None);
    }

    #[test]
    fn removed_destination_forgotten_indexes_remapped() {
        let d = dests(&[1, 1, 1]);
        let mut s = Lblc::new();
        s.update(&d);
        d[0].set_conn_counts(5, 0);
        d[1].set_conn_counts(5, 0);
        assert_eq!(s.schedule(&d, &at(0, 1)), Some(2));
        // remove dest 0: dest 2 is now index 1
        let d2 = vec![d[1].clone(), d[2].clone()];
        s.update(&d2);
        assert_eq!(s.schedule(&d2, &at(1, 1)), Some(1));
        // remove it: forgotten
        let d3 = vec![d[1].clone()];
        s.update(&d3);
        assert_eq!(s.entries(), 0);
        assert_eq!(s.schedule(&d3, &at(2, 1)), Some(0));
    }

    #[test]
    fn oversized_table_drops_stale_entries() {
        let d = dests(&[1]);
        let mut s = Lblc::new();
        s.update(&d);
        let over = 300;
        for k in 0..(MAX_ENTRIES + over) as u32 {
            let v6: std::net::IpAddr =
                std::net::Ipv6Addr::from(u128::from(k) | (0x2001_0db8 << 96)).into();
            s.schedule(&d, &input_at(Timestamp(0), v6));
        }
        assert_eq!(s.entries(), MAX_ENTRIES + over);
        // first check at 60 s: nothing is 6 minutes old yet
        s.schedule(&d, &at(CHECK_EXPIRE_INTERVAL_MS, 1));
        assert_eq!(s.entries(), MAX_ENTRIES + over + 1);
        // a check after 6 minutes removes 4/3 of the excess, only stale ones
        s.schedule(&d, &at(ENTRY_TIMEOUT_MS + CHECK_EXPIRE_INTERVAL_MS, 1));
        let excess = over + 1;
        assert_eq!(s.entries(), MAX_ENTRIES + over + 1 - excess * 4 / 3);
        assert!(
            s.table.contains_key(&at(0, 1).vaddr),
            "recently used entry kept"
        );
    }

    #[test]
    fn full_expiration_after_thirty_checks() {
        let d = dests(&[1]);
        let mut s = Lblc::with_expiration(10 * 60 * 1000);
        s.update(&d);
        s.schedule(&d, &at(0, 1));
        s.schedule(&d, &at(0, 2));
        // keep address 2 in use, let 1 go stale; checks every minute
        let mut t = 0;
        for _ in 0..29 {
            t += CHECK_EXPIRE_INTERVAL_MS;
            s.schedule(&d, &at(t, 2));
        }
        assert_eq!(s.entries(), 2, "no full check before the 30th");
        t += CHECK_EXPIRE_INTERVAL_MS;
        s.schedule(&d, &at(t, 2));
        assert_eq!(s.entries(), 1, "stale entry expired");
    }
}
