//! Destination hashing (`ip_vs_dh.c`): a 256-bucket table maps the packet's destination address
//! (the virtual address: useful with fwmark services over many addresses, e.g. cache clusters)
//! to a destination. Buckets are dealt out round-robin over the list (weights are ignored, as in
//! the kernel); an unavailable destination in the chosen bucket means no destination.
//!
//! Deviation: the bucket is `hash_32(fold(daddr), 8)` (the top bits of a golden-ratio multiply);
//! the kernel keeps the *low* 8 bits of `daddr * 2654435761`, which depend on the last octet only.

use std::sync::Arc;

use super::common::{addr_fold, hash_32};
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const NONE: u32 = u32::MAX;

/// Destination-hashing scheduler.
#[derive(Debug)]
pub struct Dh {
    buckets: Box<[u32; TAB_SIZE]>,
}

impl Default for Dh {
    fn default() -> Self {
        Self::new()
    }
}

impl Dh {
    /// A destination-hashing scheduler with an empty table.
    pub fn new() -> Self {
        Self {
            buckets: Box::new([NONE; TAB_SIZE]),
        }
    }

    /// The bucket a destination address hashes to.
    fn bucket(input: &SchedInput) -> usize {
        hash_32(addr_fold(input.vaddr), TAB_BITS) as usize
    }
}

impl Scheduler for Dh {
    fn name(&self) -> &'static str {
        "dh"
    }

    fn update(&mut self, dests: &[Arc<Destination>]) {
        let n = dests.len();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = if n == 0 {
                NONE
            } else {
                u32::try_from(i % n).unwrap_or(NONE)
            };
        }
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let i = *self.buckets.get(Self::bucket(input))? as usize;
        dests.get(i).filter(|d| d.is_available()).map(|_| i)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sched::tests::{dests, input_from};

    #[test]
    fn same_daddr_same_dest_and_spread() {
        let d = dests(&[1, 1, 1, 1]);
        let mut s = Dh::new();
        s.update(&d);
        let mut hits = [0usize; 4];
        for k in 0..1024u32 {
            let mut inp = input_from(k, 1000);
            inp.vaddr = std::net::Ipv4Addr::from(0xC612_0000 + k).into();
            let a = s.schedule(&d, &inp).unwrap();
            // independent of the client
            let mut inp2 = inp;
            inp2.caddr = std::net::Ipv4Addr::new(198, 51, 100, 7).into();
            inp2.cport = 5;
            assert_eq!(s.schedule(&d, &inp2), Some(a));
            hits[a] += 1;
        }
        for h in hits {
            assert!((200..=312).contains(&h), "{hits:?}");
        }
    }

    #[test]
    fn unavailable_bucket_gives_none() {
        let d = dests(&[1, 1]);
        let mut s = Dh::new();
        s.update(&d);
        let inp = input_from(1, 1);
        let a = s.schedule(&d, &inp).unwrap();
        d[a].set_weight(0);
        assert_eq!(s.schedule(&d, &inp), None);
        d[a].set_weight(1);
        d[a].set_overloaded(true);
        assert_eq!(s.schedule(&d, &inp), None);
        s.update(&[]);
        assert_eq!(s.schedule(&[], &inp), None);
    }
}
