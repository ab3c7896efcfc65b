//! Source hashing (`ip_vs_sh.c`): a 256-bucket table maps the client address (and, with
//! `sh-port`, its source port) to a destination. Buckets are dealt out in list order, each
//! destination taking `weight` consecutive buckets (a quiesced one still takes one, so quiescing
//! does not reshuffle the others); so keep weights small: with large weights the first few
//! destinations fill the whole table, exactly as in the kernel.
//!
//! An unavailable destination in the chosen bucket means no destination, unless `sh-fallback`
//! is set: then the buckets are probed in the kernel's order `(2 * h + offset) mod 256` for the
//! first available one.
//!
//! The bucket is the kernel's `hash_32(port + fold(caddr), 8)`; the port is 0 unless `sh-port`
//! is set and the protocol has ports.

use std::sync::Arc;

use super::common::{addr_fold, has_ports, hash_32};
use super::{SchedFlags, SchedInput, Scheduler};
use crate::dest::Destination;

const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: usize = TAB_SIZE - 1;
const NONE: u32 = u32::MAX;

/// Source-hashing scheduler.
#[derive(Debug)]
pub struct Sh {
    buckets: Box<[u32; TAB_SIZE]>,
    flags: SchedFlags,
}

impl Sh {
    /// A source-hashing scheduler; `flags.fallback` = sh-fallback, `flags.port` = sh-port.
    pub fn new(flags: SchedFlags) -> Self {
        Self {
            buckets: Box::new([NONE; TAB_SIZE]),
            flags,
        }
    }

    fn hash(&self, input: &SchedInput) -> usize {
        let port = if self.flags.port && has_ports(input.protocol) {
            u32::from(input.cport)
        } else {
            0
        };
        hash_32(port.wrapping_add(addr_fold(input.caddr)), TAB_BITS) as usize
    }

    fn at(&self, dests: &[Arc<Destination>], bucket: usize) -> Option<usize> {
        let i = *self.buckets.get(bucket & TAB_MASK)?;
        (i != NONE)
            .then_some(i as usize)
            .filter(|&i| i < dests.len())
    }
}

impl Scheduler for Sh {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn update(&mut self, dests: &[Arc<Destination>]) {
        let n = dests.len();
        let mut p = 0usize;
        let mut count = 0u32;
        for b in self.buckets.iter_mut() {
            let Some(d) = dests.get(p) else {
                *b = NONE;
                continue;
            };
            *b = u32::try_from(p).unwrap_or(NONE);
            count += 1;
            if count >= d.weight() {
                p = (p + 1) % n;
                count = 0;
            }
        }
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let h = self.hash(input);
        let first = self.at(dests, h)?;
        if dests[first].is_available() {
            return Some(first);
        }
        if !self.flags.fallback {
            return None;
        }
        (0..TAB_SIZE)
            .filter_map(|off| self.at(dests, off + 2 * h))
            .find(|&i| dests[i].is_available())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sched::tests::{dests, input_from};

    fn sh(fallback: bool, port: bool) -> Sh {
        Sh::new(SchedFlags {
            fallback,
            port,
            flag3: false,
        })
    }

    #[test]
    fn buckets_follow_weights() {
        let d = dests(&[1, 3, 0, 2]);
        let mut s = sh(false, false);
        s.update(&d);
        let want: Vec<u32> = [0u32, 1, 1, 1, 2, 3, 3]
            .iter()
            .copied()
            .cycle()
            .take(TAB_SIZE)
            .collect();
        assert_eq!(s.buckets.as_slice(), want.as_slice());
    }

    #[test]
    fn same_client_same_dest_port_ignored_by_default() {
        let d = dests(&[1, 1, 1]);
        let mut s = sh(false, false);
        s.update(&d);
        for k in 0..500 {
            let a = s.schedule(&d, &input_from(k, 1000));
            assert!(a.is_some());
            assert_eq!(s.schedule(&d, &input_from(k, 2000)), a);
        }
    }

    #[test]
    fn sh_port_spreads_one_client() {
        let d = dests(&[1, 1, 1, 1]);
        let mut s = sh(false, true);
        s.update(&d);
        let mut seen = [false; 4];
        for p in 1000..1200 {
            let inp = input_from(7, p);
            let a = s.schedule(&d, &inp).unwrap();
            assert_eq!(s.schedule(&d, &inp), Some(a));
            seen[a] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn fallback_only_with_flag() {
        let d = dests(&[1, 1, 1]);
        let mut plain = sh(false, false);
        let mut fb = sh(true, false);
        plain.update(&d);
        fb.update(&d);
        d[1].set_weight(0);
        d[2].set_overloaded(true);
        let mut moved = 0;
        for k in 0..300 {
            let inp = input_from(k, 1);
            let home = plain.at(&d, plain.hash(&inp)).unwrap();
            if home == 0 {
                assert_eq!(plain.schedule(&d, &inp), Some(0));
                assert_eq!(fb.schedule(&d, &inp), Some(0));
            } else {
                assert_eq!(plain.schedule(&d, &inp), None);
                assert_eq!(fb.schedule(&d, &inp), Some(0));
                moved += 1;
            }
        }
        assert!(moved > 0);
        d[0].set_weight(0);
        assert_eq!(fb.schedule(&d, &input_from(1, 1)), None);
    }

    #[test]
    fn empty() {
        let mut s = sh(true, true);
        s.update(&[]);
        assert_eq!(s.schedule(&[], &input_from(1, 1)), None);
    }
}
