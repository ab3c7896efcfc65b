//! The VIP filter: a lock-free over-approximation of the service snapshot's VIP set, read by the
//! packet path before (and mostly instead of) the snapshot.
//!
//! Why: an established packet needs nothing from the service snapshot but its direction, and the
//! snapshot's `arc_swap` load plus the exact VIP-set lookup cost ~100 instructions a packet, an
//! eighth of the whole; with this filter an established TCP packet costs 660 instructions instead
//! of 742, a UDP one 616 instead of 701 (`core_icount`, BENCHMARKS.md). A count of configured
//! VIPs per hash bucket answers most packets instead: a zero count proves an address is no VIP (a
//! real server's reply, or not ours), and a packet to a possible VIP looks up its client -> VIP
//! connection first, whose live address service proves the VIP (director.rs). Only new
//! connections, marked packets, fragments, ICMP errors and filter collisions read the snapshot.
//!
//! The counts stay a superset of the published snapshot's VIPs: the control side counts a VIP
//! before it publishes the snapshot that has it and uncounts it after it published the one without
//! it (`Director::apply_batch`). 4096 buckets (16 KiB); the multiplier is mixed from the
//! director's hash seed (random in rvsd), so which client addresses share a VIP's bucket is not
//! known from outside; a shared bucket costs that address's packets one connection lookup more
//! and the snapshot read they all paid before.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

/// log2 of the bucket count.
const BITS: u32 = 12;

/// Counts of configured VIPs per hash bucket.
#[derive(Debug)]
pub(crate) struct VipFilter {
    counts: Box<[AtomicU32]>,
    /// Odd multiplier of the bucket hash (from the director's seed).
    mul: u64,
}

impl VipFilter {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            counts: (0..1usize << BITS).map(|_| AtomicU32::new(0)).collect(),
            // splitmix64's finaliser over the seed (with this table's own constant): the
            // multiplier tells nothing of the connection tables' hash words.
            mul: {
                let z = seed ^ 0x7669_7073_6669_6c74;
                let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) | 1
            },
        }
    }

    #[inline(always)]
    fn bucket(&self, addr: IpAddr) -> usize {
        let x = match addr {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64).rotate_left(29)
            }
        };
        (x.wrapping_mul(self.mul) >> (64 - BITS)) as usize
    }

    /// False: `addr` is a VIP of no service in the published snapshot. True: it may be one.
    #[inline(always)]
    pub(crate) fn may_contain(&self, addr: IpAddr) -> bool {
        // The bucket is < 2^BITS = len: the fallback is never taken.
        self.counts
            .get(self.bucket(addr))
            .is_none_or(|c| c.load(Ordering::Acquire) != 0)
    }

    /// Counts a VIP new to the table (before the snapshot that has it is published).
    pub(crate) fn add(&self, addr: IpAddr) {
        if let Some(c) = self.counts.get(self.bucket(addr)) {
            c.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Uncounts a VIP gone from the table (after the snapshot without it is published).
    pub(crate) fn remove(&self, addr: IpAddr) {
        if let Some(c) = self.counts.get(self.bucket(addr)) {
            // Never below zero: every remove follows its add (a failed update cannot go negative).
            let _ = c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn counts_vips_and_forgets_removed_ones() {
        let f = VipFilter::new(7);
        let a = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 100));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100));
        assert!(!f.may_contain(a) && !f.may_contain(b));
        f.add(a);
        f.add(b);
        assert!(f.may_contain(a) && f.may_contain(b));
        // Most other addresses are ruled out (2 buckets of 4096 taken).
        let ruled_out = (0..=255u8)
            .filter(|k| !f.may_contain(IpAddr::V4(Ipv4Addr::new(198, 51, 100, *k))))
            .count();
        assert!(ruled_out >= 250, "{ruled_out}");
        f.remove(a);
        assert!(!f.may_contain(a) || f.bucket(a) == f.bucket(b));
        assert!(f.may_contain(b));
        f.remove(b);
        f.remove(b);
        assert!(!f.may_contain(b), "a count never wraps below zero");
        f.add(b);
        assert!(f.may_contain(b));
    }
}
