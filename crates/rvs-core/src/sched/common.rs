//! Helpers shared by several schedulers: IPVS's overhead and load comparison, hashing, and
//! keeping per-destination state across [`Scheduler::update`](super::Scheduler::update).

use std::net::IpAddr;
use std::sync::Arc;

use crate::dest::Destination;

/// IPVS's `ip_vs_dest_conn_overhead`: active connections weigh 256 times an inactive one.
#[inline]
pub(crate) fn conn_overhead(d: &Destination) -> u64 {
    (u64::from(d.active_conns()) << 8) + u64::from(d.inactive_conns())
}

/// `loh / lw > doh / dw`, by cross-multiplication (`loh * dw > doh * lw`), without overflow.
#[inline]
pub(crate) fn more_loaded(loh: u64, lw: u32, doh: u64, dw: u32) -> bool {
    u128::from(loh) * u128::from(dw) > u128::from(doh) * u128::from(lw)
}

/// Weighted least-connection pick shared by wlc, lblc and lblcr (`__ip_vs_lblc_schedule`):
/// the first available destination starts, later ones replace it only when strictly less
/// loaded relative to their weight (so the first wins ties; weight 0 never wins).
pub(crate) fn weighted_least_conn(dests: &[Arc<Destination>]) -> Option<usize> {
    let mut it = dests.iter().enumerate();
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

/// Shortest-expected-delay comparison shared by sed and nq: overhead is `active + 1`.
#[inline]
pub(crate) fn sed_overhead(d: &Destination) -> u64 {
    u64::from(d.active_conns()) + 1
}

/// The locality schedulers' extra overload rule (lblc, lblcr `is_overloaded`): a destination
/// with more active connections than its weight counts as overloaded when some destination
/// of the service is under half of its weight.
pub(crate) fn locality_overloaded(d: &Destination, dests: &[Arc<Destination>]) -> bool {
    if u64::from(d.active_conns()) > u64::from(d.weight()) {
        dests
            .iter()
            .any(|o| u64::from(o.active_conns()) * 2 < u64::from(o.weight()))
    } else {
        false
    }
}

/// Greatest common divisor.
pub(crate) fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// GCD of the positive weights (0 when there is none).
pub(crate) fn gcd_weights(weights: impl Iterator<Item = u32>) -> u32 {
    weights.filter(|&w| w > 0).fold(0, gcd)
}

/// IPVS's address fold: the IPv4 address, or the XOR of the four 32-bit words of an IPv6
/// address, as a host-order integer.
#[inline]
pub(crate) fn addr_fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

/// The kernel's `hash_32(val, bits)`: multiply by the 32-bit golden ratio, keep the top bits.
#[inline]
pub(crate) fn hash_32(val: u32, bits: u32) -> u32 {
    const GOLDEN_RATIO_32: u32 = 0x61C8_8647;
    if bits == 0 {
        return 0;
    }
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits.min(32))
}

/// A 64-bit keyed mixer (splitmix64 finaliser over `v ^ key`): rvs's stand-in for the kernel's
/// hsiphash with fixed keys. Stable across runs and platforms, well distributed.
#[inline]
pub(crate) fn mix64(v: u64, key: u64) -> u64 {
    let mut z = v ^ key;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether the protocol has ports at the usual place (TCP, UDP, SCTP).
#[inline]
pub(crate) fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 132)
}

/// Where each destination of `old` went in `new` (by identity, not by address): `None` when it
/// was removed.
/// Linear in the list sizes (configuration path only).
pub(crate) fn remap(old: &[Arc<Destination>], new: &[Arc<Destination>]) -> Vec<Option<usize>> {
    // Common case: nothing moved (a weight edit), or destinations were appended.
    if old.len() <= new.len() && old.iter().zip(new).all(|(o, n)| Arc::ptr_eq(o, n)) {
        return (0..old.len()).map(Some).collect();
    }
    let index: hashbrown::HashMap<*const Destination, usize, foldhash::fast::FixedState> = new
        .iter()
        .enumerate()
        .map(|(i, n)| (Arc::as_ptr(n), i))
        .collect();
    old.iter()
        .map(|o| index.get(&Arc::as_ptr(o)).copied())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gcd_of_weights() {
        assert_eq!(gcd_weights([4u32, 0, 6, 8].into_iter()), 2);
        assert_eq!(gcd_weights([0u32, 0].into_iter()), 0);
        assert_eq!(gcd_weights([7u32].into_iter()), 7);
    }

    #[test]
    fn hash_32_matches_kernel_definition() {
        // hash_32(1, 8) = (0x61C88647 >> 24) = 0x61
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 8), 0);
        assert!(hash_32(u32::MAX, 10) < 1024);
    }

    #[test]
    fn fold_v6_is_xor_of_words() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(addr_fold(a), 0x2001_0db8 ^ 1);
    }

    #[test]
    fn remap_by_identity() {
        let d = crate::sched::tests::dests(&[1, 1, 1, 1]);
        let same = remap(&d, &d);
        assert_eq!(same, [Some(0), Some(1), Some(2), Some(3)]);
        let new = vec![d[3].clone(), d[1].clone()];
        assert_eq!(remap(&d, &new), [None, Some(1), None, Some(0)]);
        // same address, different destination object: not the same
        let other = crate::sched::tests::dests(&[1]);
        assert_eq!(remap(&d[..1], &other), [None]);
    }

    #[test]
    fn more_loaded_no_overflow() {
        assert!(more_loaded(u64::MAX, u32::MAX, u64::MAX - 1, u32::MAX));
        assert!(!more_loaded(1, 2, 1, 2));
    }
}
