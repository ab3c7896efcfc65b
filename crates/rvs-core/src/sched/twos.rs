//! Power of two choices (`ip_vs_twos.c`): pick two available destinations at random, each with
//! probability proportional to its weight, and keep the one with the lower
//! `overhead / weight` (the first pick on ties).
//!
//! The randomness is the caller's [`SchedInput::random`]: its low 32 bits choose the first
//! destination, its high 32 bits the second.
//!
//! Deviation: the kernel draws from `[0, total_weight]` inclusive, which gives the first
//! available destination one extra unit of weight; rvs draws from `[0, total_weight)`, so the
//! choice is exactly weight-proportional.

use std::sync::Arc;

use super::common::{conn_overhead, more_loaded};
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Power-of-two-choices scheduler.
#[derive(Debug, Default)]
pub struct Twos;

impl Twos {
    /// A power-of-two-choices scheduler (stateless).
    pub fn new() -> Self {
        Self
    }
}

impl Scheduler for Twos {
    fn name(&self) -> &'static str {
        "twos"
    }

    fn update(&mut self, _dests: &[Arc<Destination>]) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize> {
        let total: u64 = dests
            .iter()
            .filter(|d| d.is_available())
            .map(|d| u64::from(d.weight()))
            .sum();
        if total == 0 {
            return None;
        }
        let r1 = (input.random & 0xFFFF_FFFF) % total;
        let r2 = (input.random >> 32) % total;
        let mut c1: Option<(usize, u32, u64)> = None;
        let mut c2: Option<(usize, u32, u64)> = None;
        let mut cum = 0u64;
        for (i, d) in dests.iter().enumerate() {
            // A destination may change between the two passes (atomics): re-check it here.
            if !d.is_available() {
                continue;
            }
            let w = d.weight();
            cum += u64::from(w);
            if c1.is_none() && r1 < cum {
                c1 = Some((i, w, conn_overhead(d)));
            }
            if c2.is_none() && r2 < cum {
                c2 = Some((i, w, conn_overhead(d)));
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        match (c1, c2) {
            (Some((i1, w1, oh1)), Some((i2, w2, oh2))) => Some(if more_loaded(oh1, w1, oh2, w2) {
                i2
            } else {
                i1
            }),
            (Some((i, ..)), None) | (None, Some((i, ..))) => Some(i),
            // Weights dropped between the passes: fall back to any available destination.
            (None, None) => dests.iter().position(|d| d.is_available()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sched::tests::{dests, dests_with, input};

    fn pick(d: &[Arc<Destination>], r1: u32, r2: u32) -> Option<usize> {
        let mut inp = input();
        inp.random = (u64::from(r2) << 32) | u64::from(r1);
        Twos::new().schedule(d, &inp)
    }

    #[test]
    fn picks_by_weight_then_load() {
        // weights 1,2,3 -> r in [0,6): 0 -> A, 1..3 -> B, 3..6 -> C
        let d = dests_with(&[(1, 5, 0), (2, 5, 0), (3, 0, 0)]);
        assert_eq!(pick(&d, 0, 0), Some(0));
        assert_eq!(pick(&d, 0, 1), Some(1)); // B less loaded per weight
        assert_eq!(pick(&d, 2, 5), Some(2));
        assert_eq!(pick(&d, 6, 0), Some(0)); // 6 % 6 = 0
        // tie: first pick
        let d = dests_with(&[(1, 1, 0), (1, 1, 0)]);
        assert_eq!(pick(&d, 1, 0), Some(1));
        assert_eq!(pick(&d, 0, 1), Some(0));
    }

    #[test]
    fn weight_proportional() {
        let d = dests(&[1, 3]);
        let mut c = [0u32; 2];
        for r in 0..4000u32 {
            // both choices the same: no load comparison involved
            c[pick(&d, r, r).unwrap()] += 1;
        }
        assert_eq!(c, [1000, 3000]);
    }

    #[test]
    fn none_when_nothing_available() {
        let d = dests(&[0, 0]);
        assert_eq!(pick(&d, 1, 2), None);
        assert_eq!(pick(&[], 1, 2), None);
    }
}
