//! Locality-based least-connection with replication (`ip_vs_lblcr.c`): like lblc, but each
//! destination address maps to a *set* of destinations. The least loaded available member
//! (weighted) serves; when it is missing or locality-overloaded, the weighted least-connection
//! destination of the whole service serves and joins the set. When a set with more than one
//! member has not changed for the expiration time, its most loaded member leaves it.
//!
//! Table housekeeping is lblc's (see [`super::Lblc`]). Newly added members go to the front of
//! the set, as with the kernel's `list_add`.

use std::sync::Arc;

use super::common::{conn_overhead, locality_overloaded, more_loaded, remap, weighted_least_conn};
use super::lblc::{AddrMap, DEFAULT_EXPIRATION_MS, Housekeeping};
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

#[derive(Debug, Clone)]
struct Entry {
    /// Member destinations (indexes), most recently added first.
    set: Vec<usize>,
    /// Last time the set changed.
    lastmod: u64,
    lastuse: u64,
}

/// The weighted least-loaded available member (`ip_vs_dest_set_min`).
fn set_min(set: &[usize], dests: &[Arc<Destination>]) -> Option<usize> {
    let mut it = set.iter().filter_map(|&i| Some((i, dests.get(i)?)));
    let (mut least, mut lw, mut loh) = loop {
        let (i, d) = it.next()?;
        if d.is_available() {
            break (i, d.weight(), conn_overhead(d));
        }
    };
    for (i, d) in it {
        if d.is_overloaded() {
            continue;
        }
        let (doh, dw) = (conn_overhead(d), d.weight());
        if more_loaded(loh, lw, doh, dw) {
            (least, lw, loh) = (i, dw, doh);
        }
    }
    Some(least)
}

/// The weighted most-loaded member with weight > 0 (`ip_vs_dest_set_max`).
fn set_max(set: &[usize], dests: &[Arc<Destination>]) -> Option<usize> {
    let mut it = set.iter().filter_map(|&i| Some((i, dests.get(i)?)));
    let (mut most, mut mw, mut moh) = loop {
        let (i, d) = it.next()?;
        if d.weight() > 0 {
            break (i, d.weight(), conn_overhead(d));
        }
    };
    for (i, d) in it {
        let (doh, dw) = (conn_overhead(d), d.weight());
        // moh / mw < doh / dw
        if dw > 0 && more_loaded(doh, dw, moh, mw) {
            (most, mw, moh) = (i, dw, doh);
        }
    }
    Some(most)
}

/// Locality-based least-connection with replication scheduler.
#[derive(Debug)]
pub struct Lblcr {
    table: AddrMap<Entry>,
    known: Vec<Arc<Destination>>,
    hk: Housekeeping,
}

impl Default for Lblcr {
    fn default() -> Self {
        Self::new()
    }
}

impl Lblcr {
    /// An lblcr scheduler with the kernel's default expiration (24 h).
    pub fn new() -> Self {
        Self::with_expiration(DEFAULT_EXPIRATION_MS)
    }

    /// An lblcr scheduler whose unused entries expire (and whose sets shrink) after
    /// `expiration_ms`.
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

    /// The destination set remembered for `addr` (indexes), most recently added first.
    pub fn set_of(&self, addr: std::net::IpAddr) -> Option<&[usize]> {
        self.table.get(&addr).map(|e| e.set.as_slice())
    }
}

impl Scheduler for Lblcr {
    fn name(&self) -> &'static str {
        "lblcr"
    }

    fn update(&mut self, dests: &[Arc<Destination>]) {
        let map = remap(&self.known, dests);
        self.table.retain(|_, e| {
            let before = e.set.len();
            e.set.retain_mut(|i| match map.get(*i).copied().flatten() {
                Some(n) => {
                    *i = n;
                    true
                }
                None => false,
            });
            !e.set.is_empty() || before == 0
        });
        self.known = dests.to_vec();
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let now = input.now.millis();
        let expiration = self.hk.expiration_ms;
        self.hk.tick(now, &mut self.table, |e| e.lastuse);
        if let Some(e) = self.table.get_mut(&input.vaddr) {
            e.lastuse = now;
            let dest = set_min(&e.set, dests);
            if e.set.len() > 1
                && now > e.lastmod.saturating_add(expiration)
                && let Some(m) = set_max(&e.set, dests)
            {
                e.set.retain(|&i| i != m);
                e.lastmod = now;
            }
            if let Some(i) = dest
                && let Some(d) = dests.get(i)
                && !locality_overloaded(d, dests)
            {
                return Some(i);
            }
            let dest = weighted_least_conn(dests)?;
            if !e.set.contains(&dest) {
                e.set.insert(0, dest);
                e.lastmod = now;
            }
            return Some(dest);
        }
        let dest = weighted_least_conn(dests)?;
        self.table.insert(
            input.vaddr,
            Entry {
                set: vec![dest],
                lastmod: now,
                lastuse: now,
            },
        );
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

    fn addr(last: u8) -> std::net::IpAddr {
        std::net::Ipv4Addr::new(198, 18, 0, last).into()
    }

    #[test]
    fn set_grows_when_member_overloaded_and_serves_least_loaded() {
        let d = dests(&[2, 2, 2]);
        let mut s = Lblcr::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &at(0, 1)), Some(0));
        d[0].set_conn_counts(3, 0); // locality-overloaded (dest 1 idle)
        assert_eq!(s.schedule(&d, &at(1, 1)), Some(1));
        assert_eq!(s.set_of(addr(1)), Some(&[1usize, 0][..]));
        // least loaded member serves: dest 1 now busier than dest 0 relative to weight
        d[0].set_conn_counts(1, 0);
        d[1].set_conn_counts(2, 0);
        d[2].set_conn_counts(2, 0);
        assert_eq!(s.schedule(&d, &at(2, 1)), Some(0));
        // quiesced members skipped within the set
        d[0].set_weight(0);
        assert_eq!(s.schedule(&d, &at(3, 1)), Some(1));
    }

    #[test]
    fn set_shrinks_after_expiration() {
        let d = dests(&[1, 1, 1]);
        let mut s = Lblcr::with_expiration(1000);
        s.update(&d);
        s.schedule(&d, &at(0, 1));
        d[0].set_conn_counts(2, 0);
        assert_eq!(s.schedule(&d, &at(10, 1)), Some(1));
        assert_eq!(s.set_of(addr(1)).map(<[usize]>::len), Some(2));
        // within the expiration: unchanged
        d[0].set_conn_counts(1, 0);
        d[1].set_conn_counts(0, 0);
        s.schedule(&d, &at(500, 1));
        assert_eq!(s.set_of(addr(1)).map(<[usize]>::len), Some(2));
        // after: the most loaded member (dest 0) leaves
        assert_eq!(s.schedule(&d, &at(2000, 1)), Some(1));
        assert_eq!(s.set_of(addr(1)), Some(&[1usize][..]));
    }

    #[test]
    fn removed_destination_leaves_sets() {
        let d = dests(&[1, 1]);
        let mut s = Lblcr::new();
        s.update(&d);
        s.schedule(&d, &at(0, 1));
        d[0].set_conn_counts(2, 0);
        s.schedule(&d, &at(1, 1));
        assert_eq!(s.set_of(addr(1)), Some(&[1usize, 0][..]));
        let d2 = vec![d[1].clone()];
        s.update(&d2);
        assert_eq!(s.set_of(addr(1)), Some(&[0usize][..]));
        s.update(&[]);
        assert_eq!(s.entries(), 0);
        assert_eq!(s.schedule(&[], &at(2, 1)), None);
    }

    #[test]
    fn none_when_all_unavailable() {
        let d = dests(&[1, 1]);
        let mut s = Lblcr::new();
        s.update(&d);
        s.schedule(&d, &at(0, 1));
        d[0].set_overloaded(true);
        d[1].set_weight(0);
        assert_eq!(s.schedule(&d, &at(1, 1)), None);
    }
}
