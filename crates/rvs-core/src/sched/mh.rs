//! Maglev hashing (`ip_vs_mh.c`, Eisenbud et al., NSDI 2016 §3.4): every destination gets a
//! permutation of the lookup table's slots (`offset`, `skip` from two hashes of its address and
//! port); destinations take turns claiming their next free preferred slot until the table is
//! full. A client address (plus its source port with `mh-port`) hashes to a slot. Adding or
//! removing a destination moves close to the minimum share of flows.
//!
//! Kernel semantics kept: table size 4093 (the prime at the default `CONFIG_IP_VS_MH_TAB_INDEX`
//! 12); weights are divided by their GCD and shifted right so the largest fits in 6 bits, giving
//! each destination `turns` consecutive claims per round; tables use each destination's *last
//! non-zero* weight, so quiescing (weight 0) does not reshuffle anyone: the quiesced
//! destination's slots simply become unavailable (no destination, or with `mh-fallback` a
//! rehash walk over the table for an available one).
//!
//! Deviation: the kernel hashes with hsiphash under fixed keys over `port + fold(addr)`; rvs
//! uses a splitmix64 finaliser under fixed keys over `fold(addr) << 16 | port` (so two
//! destinations like `.1:81` and `.2:80` cannot collide). Slots differ from the kernel's;
//! the algorithm and its properties do not.

use std::net::IpAddr;
use std::sync::Arc;

use super::common::{addr_fold, gcd_weights, has_ports, mix64};
use super::{SchedFlags, SchedInput, Scheduler};
use crate::dest::Destination;

/// Lookup table size (a prime).
pub const TAB_SIZE: usize = 4093;
/// Highest weight bits kept (`CONFIG_IP_VS_MH_TAB_INDEX / 2`).
const TAB_BITS: u32 = 6;
const KEY1: u64 = 0x9E37_79B1_9E37_79B1; // 2654435761 twice, like the kernel's hash1
const KEY2: u64 = 0x9E37_A4EC_9E37_A4EC; // 2654446892 twice, like the kernel's hash2
const NONE: u32 = u32::MAX;

/// Maglev-hashing scheduler.
#[derive(Debug)]
pub struct Mh {
    lookup: Vec<u32>,
    flags: SchedFlags,
    /// Each known destination with its last non-zero weight.
    known: Vec<(Arc<Destination>, u32)>,
}

#[inline]
fn key(addr: IpAddr, port: u16, offset: usize, seed: u64) -> u64 {
    let v = (u64::from(addr_fold(addr)) << 16) | u64::from(port);
    mix64(v ^ ((offset as u64) << 48), seed)
}

impl Mh {
    /// A Maglev scheduler; `flags.fallback` = mh-fallback, `flags.port` = mh-port.
    pub fn new(flags: SchedFlags) -> Self {
        Self {
            lookup: vec![NONE; TAB_SIZE],
            flags,
            known: Vec::new(),
        }
    }

    fn slot_dest(&self, slot: u64, n: usize) -> Option<usize> {
        let i = *self.lookup.get((slot % TAB_SIZE as u64) as usize)?;
        (i != NONE).then_some(i as usize).filter(|&i| i < n)
    }

    /// The table index that the client maps to (for tests and diagnostics).
    fn home(&self, addr: IpAddr, port: u16) -> u64 {
        key(addr, port, 0, KEY1) % TAB_SIZE as u64
    }
}

impl Scheduler for Mh {
    fn name(&self) -> &'static str {
        "mh"
    }

    fn update(&mut self, dests: &[Arc<Destination>]) {
        // Last non-zero weight: a destination edited down to 0 keeps its previous weight; one
        // added with weight 0 has 0 (no slots).
        let last: Vec<u32> = dests
            .iter()
            .map(|d| match d.weight() {
                0 => self
                    .known
                    .iter()
                    .find(|(k, _)| Arc::ptr_eq(k, d))
                    .map_or(0, |(_, lw)| *lw),
                w => w,
            })
            .collect();
        self.known = dests.iter().cloned().zip(last.iter().copied()).collect();
        self.lookup.fill(NONE);

        let g = gcd_weights(last.iter().copied());
        if g == 0 {
            return;
        }
        let mw = last.iter().map(|w| w / g).max().unwrap_or(0);
        let rshift = (32 - mw.leading_zeros()).saturating_sub(TAB_BITS);
        // (next preferred slot, skip, turns) per destination
        let mut setup: Vec<(usize, usize, u32)> = dests
            .iter()
            .zip(&last)
            .map(|(d, &lw)| {
                let offset = (key(d.addr(), d.port(), 0, KEY1) % TAB_SIZE as u64) as usize;
                let skip = (key(d.addr(), d.port(), 0, KEY2) % (TAB_SIZE as u64 - 1)) as usize + 1;
                let turns = match (lw / g) >> rshift {
                    0 => u32::from(lw != 0),
                    t => t,
                };
                (offset, skip, turns)
            })
            .collect();
        if setup.iter().all(|s| s.2 == 0) {
            return;
        }
        let mut taken = vec![false; TAB_SIZE];
        let mut filled = 0usize;
        'fill: loop {
            for (i, (perm, skip, turns)) in setup.iter_mut().enumerate() {
                for _ in 0..*turns {
                    while taken[*perm] {
                        *perm += *skip;
                        if *perm >= TAB_SIZE {
                            *perm -= TAB_SIZE;
                        }
                    }
                    taken[*perm] = true;
                    self.lookup[*perm] = u32::try_from(i).unwrap_or(NONE);
                    filled += 1;
                    if filled == TAB_SIZE {
                        break 'fill;
                    }
                }
            }
        }
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let port = if self.flags.port && has_ports(input.protocol) {
            input.cport
        } else {
            0
        };
        let n = dests.len();
        let ihash = self.home(input.caddr, port);
        let first = self.slot_dest(ihash, n)?;
        if dests[first].is_available() {
            return Some(first);
        }
        if !self.flags.fallback {
            return None;
        }
        for offset in 0..TAB_SIZE {
            let roffset = (offset + ihash as usize) % TAB_SIZE;
            let i = self.slot_dest(key(input.caddr, port, roffset, KEY1), n)?;
            if dests[i].is_available() {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sched::tests::{dests, input_from};

    fn mh(fallback: bool, port: bool) -> Mh {
        Mh::new(SchedFlags {
            fallback,
            port,
            flag3: false,
        })
    }

    fn slots(s: &Mh, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in &s.lookup {
            c[i as usize] += 1;
        }
        c
    }

    #[test]
    fn table_is_full_and_follows_weights() {
        let d = dests(&[1, 1, 1, 1]);
        let mut s = mh(false, false);
        s.update(&d);
        let c = slots(&s, 4);
        assert_eq!(c.iter().sum::<usize>(), TAB_SIZE);
        for x in &c {
            assert!((1000..=1047).contains(x), "{c:?}");
        }
        let d = dests(&[3, 1]);
        s.update(&d);
        let c = slots(&s, 2);
        assert!((3060..=3080).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn weights_reduced_by_gcd_and_shift() {
        // 200:100 (gcd 100) is the same table shape as 2:1; 1000:1 is shifted into 6 bits.
        let d = dests(&[200, 100]);
        let mut s = mh(false, false);
        s.update(&d);
        let c = slots(&s, 2);
        assert!((2720..=2740).contains(&c[0]), "{c:?}");
        let d = dests(&[1000, 1]);
        s.update(&d);
        let c = slots(&s, 2);
        assert!(c[1] >= 1, "{c:?}");
        assert!(c[0] > 60 * c[1], "{c:?}");
    }

    #[test]
    fn same_client_same_dest() {
        let d = dests(&[1, 2, 3]);
        let mut s = mh(false, false);
        s.update(&d);
        for k in 0..1000 {
            let a = s.schedule(&d, &input_from(k, 1000));
            assert!(a.is_some());
            assert_eq!(s.schedule(&d, &input_from(k, 3000)), a);
        }
    }

    #[test]
    fn mh_port_uses_port() {
        let d = dests(&[1, 1, 1]);
        let mut s = mh(false, true);
        s.update(&d);
        let mut seen = [false; 3];
        for p in 0..300 {
            seen[s.schedule(&d, &input_from(9, p)).unwrap()] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn quiescing_keeps_table_and_fallback_moves_only_its_flows() {
        let d = dests(&[1, 1, 1, 1]);
        let mut plain = mh(false, false);
        let mut fb = mh(true, false);
        plain.update(&d);
        fb.update(&d);
        let before: Vec<_> = (0..2000)
            .map(|k| plain.schedule(&d, &input_from(k, 0)))
            .collect();
        d[2].set_weight(0);
        plain.update(&d);
        fb.update(&d);
        for (k, b) in before.iter().enumerate() {
            let inp = input_from(k as u32, 0);
            let b = b.unwrap();
            if b == 2 {
                assert_eq!(plain.schedule(&d, &inp), None);
                let f = fb.schedule(&d, &inp).unwrap();
                assert_ne!(f, 2);
            } else {
                assert_eq!(plain.schedule(&d, &inp), Some(b));
                assert_eq!(fb.schedule(&d, &inp), Some(b));
            }
        }
        // back to weight 1: same table as before
        d[2].set_weight(1);
        plain.update(&d);
        let after: Vec<_> = (0..2000)
            .map(|k| plain.schedule(&d, &input_from(k, 0)))
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn added_with_weight_zero_gets_no_slot() {
        let d = dests(&[1, 0]);
        let mut s = mh(false, false);
        s.update(&d);
        assert_eq!(slots(&s, 2), [TAB_SIZE, 0]);
        s.update(&[]);
        assert_eq!(s.schedule(&[], &input_from(1, 1)), None);
    }
}
