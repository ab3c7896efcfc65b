//! Traffic counters and rate estimation (IPVS's `ip_vs_stats` and `ip_vs_est.c`).
//!
//! Counters are split into cache-line-padded slots; the packet path adds to the slot of its
//! connection-table shard (whose lock it holds), so workers on different flows rarely share a
//! cache line. Readers sum the slots.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::time::Timestamp;

/// Number of counter slots per stats object.
pub(crate) const STAT_SLOTS: usize = 8;

/// Cumulative counters (`ipvsadm -L --stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Estimated rates per second (`ipvsadm -L --rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    conns: AtomicU64,
    inpkts: AtomicU64,
    outpkts: AtomicU64,
    inbytes: AtomicU64,
    outbytes: AtomicU64,
}

/// Smoothed estimator state (fixed point as in ip_vs_est.c: rates scaled by 2^10, byte rates by 2^5).
#[derive(Debug, Default, Clone, Copy)]
struct Estimator {
    last: Stats,
    last_time: Option<Timestamp>,
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

/// Counters + estimator of one service or destination.
#[derive(Debug)]
pub(crate) struct StatsCell {
    slots: [Slot; STAT_SLOTS],
    /// Totals subtracted by `zero` (counters themselves are never decremented on the hot path).
    base: Mutex<Stats>,
    est: Mutex<Estimator>,
}

impl Default for StatsCell {
    fn default() -> Self {
        Self {
            slots: Default::default(),
            base: Mutex::new(Stats::default()),
            est: Mutex::new(Estimator::default()),
        }
    }
}

impl StatsCell {
    #[inline]
    pub(crate) fn add_conn(&self, slot: usize) {
        self.slots[slot % STAT_SLOTS]
            .conns
            .fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn add_in(&self, slot: usize, bytes: u64) {
        let s = &self.slots[slot % STAT_SLOTS];
        s.inpkts.fetch_add(1, Ordering::Relaxed);
        s.inbytes.fetch_add(bytes, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn add_out(&self, slot: usize, bytes: u64) {
        let s = &self.slots[slot % STAT_SLOTS];
        s.outpkts.fetch_add(1, Ordering::Relaxed);
        s.outbytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `packets` inbound packets of `bytes` in all (what a fast path forwarded, credited at once).
    #[inline]
    pub(crate) fn add_in_n(&self, slot: usize, packets: u64, bytes: u64) {
        let s = &self.slots[slot % STAT_SLOTS];
        s.inpkts.fetch_add(packets, Ordering::Relaxed);
        s.inbytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `packets` outbound packets of `bytes` in all.
    #[inline]
    pub(crate) fn add_out_n(&self, slot: usize, packets: u64, bytes: u64) {
        let s = &self.slots[slot % STAT_SLOTS];
        s.outpkts.fetch_add(packets, Ordering::Relaxed);
        s.outbytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn raw(&self) -> Stats {
        let mut t = Stats::default();
        for s in &self.slots {
            t.conns = t.conns.wrapping_add(s.conns.load(Ordering::Relaxed));
            t.inpkts = t.inpkts.wrapping_add(s.inpkts.load(Ordering::Relaxed));
            t.outpkts = t.outpkts.wrapping_add(s.outpkts.load(Ordering::Relaxed));
            t.inbytes = t.inbytes.wrapping_add(s.inbytes.load(Ordering::Relaxed));
            t.outbytes = t.outbytes.wrapping_add(s.outbytes.load(Ordering::Relaxed));
        }
        t
    }

    /// Counters since creation or the last `zero`.
    pub(crate) fn stats(&self) -> Stats {
        let raw = self.raw();
        let b = *self.base.lock();
        Stats {
            conns: raw.conns.wrapping_sub(b.conns),
            inpkts: raw.inpkts.wrapping_sub(b.inpkts),
            outpkts: raw.outpkts.wrapping_sub(b.outpkts),
            inbytes: raw.inbytes.wrapping_sub(b.inbytes),
            outbytes: raw.outbytes.wrapping_sub(b.outbytes),
        }
    }

    /// Current rate estimates (rounded as ip_vs_read_estimator does).
    pub(crate) fn rates(&self) -> Rates {
        let e = *self.est.lock();
        let r10 = |v: i64| (v.max(0) as u64 + 0x1FF) >> 10;
        let r5 = |v: i64| (v.max(0) as u64 + 0xF) >> 5;
        Rates {
            cps: r10(e.cps),
            inpps: r10(e.inpps),
            outpps: r10(e.outpps),
            inbps: r5(e.inbps),
            outbps: r5(e.outbps),
        }
    }

    /// Zeroes counters and estimates (`ipvsadm -Z`).
    pub(crate) fn zero(&self) {
        let raw = self.raw();
        *self.base.lock() = raw;
        let mut e = self.est.lock();
        *e = Estimator {
            last: self.stats(),
            last_time: e.last_time,
            ..Estimator::default()
        };
    }

    /// One estimator tick. IPVS samples every 2 s and computes
    /// `avg += (delta << 9 - avg) >> 2` (x2^10 per second) and `avg += (delta << 4 - avg) >> 2`
    /// for bytes (x2^5 per second); here the delta is scaled by the real elapsed time, which gives
    /// the same numbers when called every 2 s.
    pub(crate) fn estimate(&self, now: Timestamp) {
        let cur = self.stats();
        let mut e = self.est.lock();
        let Some(prev) = e.last_time else {
            e.last = cur;
            e.last_time = Some(now);
            return;
        };
        let elapsed = now.since(prev);
        if elapsed == 0 {
            return;
        }
        // delta per second scaled by 2^shift = delta * 2^shift * 1000 / elapsed_ms
        let scaled = |d: u64, shift: u32| -> i64 {
            let v = (u128::from(d) << shift) * 1000 / u128::from(elapsed);
            i64::try_from(v).unwrap_or(i64::MAX)
        };
        let smooth = |avg: &mut i64, rate: i64| {
            *avg = avg.saturating_add(rate.saturating_sub(*avg) >> 2);
        };
        let last = e.last;
        let cps = scaled(cur.conns.wrapping_sub(last.conns), 10);
        let inpps = scaled(cur.inpkts.wrapping_sub(last.inpkts), 10);
        let outpps = scaled(cur.outpkts.wrapping_sub(last.outpkts), 10);
        let inbps = scaled(cur.inbytes.wrapping_sub(last.inbytes), 5);
        let outbps = scaled(cur.outbytes.wrapping_sub(last.outbytes), 5);
        smooth(&mut e.cps, cps);
        smooth(&mut e.inpps, inpps);
        smooth(&mut e.outpps, outpps);
        smooth(&mut e.inbps, inbps);
        smooth(&mut e.outbps, outbps);
        e.last = cur;
        e.last_time = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_slots_and_zero() {
        let c = StatsCell::default();
        for i in 0..20 {
            c.add_in(i, 100);
            c.add_out(i + 3, 40);
        }
        c.add_conn(5);
        let s = c.stats();
        assert_eq!(s.inpkts, 20);
        assert_eq!(s.inbytes, 2000);
        assert_eq!(s.outpkts, 20);
        assert_eq!(s.outbytes, 800);
        assert_eq!(s.conns, 1);
        c.zero();
        assert_eq!(c.stats(), Stats::default());
        c.add_in(1, 7);
        assert_eq!(c.stats().inbytes, 7);
    }

    #[test]
    fn estimator_converges_like_ipvs() {
        let c = StatsCell::default();
        let mut now = Timestamp(0);
        c.estimate(now);
        // 1000 packets of 100 bytes and 10 conns per second, sampled every 2 s.
        for _ in 0..80 {
            for i in 0..2000 {
                c.add_in(i, 100);
            }
            for i in 0..20 {
                c.add_conn(i);
            }
            now = now.add_millis(2000);
            c.estimate(now);
        }
        let r = c.rates();
        assert_eq!(r.inpps, 1000);
        assert_eq!(r.inbps, 100_000);
        assert_eq!(r.cps, 10);
        assert_eq!(r.outpps, 0);
        // First sample after a step: a quarter of the way (IPVS's >> 2 smoothing).
        let d = StatsCell::default();
        d.estimate(Timestamp(0));
        for i in 0..2000 {
            d.add_in(i, 1);
        }
        d.estimate(Timestamp(2000));
        assert_eq!(d.rates().inpps, 250);
    }
}
