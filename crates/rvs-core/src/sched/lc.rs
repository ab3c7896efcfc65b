//! Least-connection (`ip_vs_lc.c`): the available destination with the lowest overhead
//! (`active * 256 + inactive`); the first one wins ties. Weights only matter as 0 / non-0.

use std::sync::Arc;

use super::common::conn_overhead;
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Least-connection scheduler.
#[derive(Debug, Default)]
pub struct Lc;

impl Lc {
    /// A least-connection scheduler (stateless).
    pub fn new() -> Self {
        Self
    }
}

impl Scheduler for Lc {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn update(&mut self, _dests: &[Arc<Destination>]) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let doh = conn_overhead(d);
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sched::tests::{Case, dests_with, input};

    #[test]
    fn picks() {
        // (weight, active, inactive) -> expected index
        let cases: &[Case] = &[
            (&[(1, 0, 0), (1, 0, 0)], Some(0)),
            (&[(1, 1, 0), (1, 0, 0)], Some(1)),
            (&[(1, 0, 255), (1, 1, 0)], Some(0)),
            (&[(1, 0, 256), (1, 1, 0)], Some(0)),
            (&[(1, 0, 257), (1, 1, 0)], Some(1)),
            (&[(100, 5, 0), (1, 4, 0)], Some(1)), // weights ignored
            (&[(0, 0, 0), (1, 9, 9)], Some(1)),
            (&[(0, 0, 0)], None),
            (&[], None),
        ];
        for (ds, want) in cases {
            let d = dests_with(ds);
            let mut s = Lc::new();
            s.update(&d);
            assert_eq!(s.schedule(&d, &input()), *want, "{ds:?}");
        }
    }

    #[test]
    fn skips_overloaded() {
        let d = dests_with(&[(1, 0, 0), (1, 5, 0)]);
        d[0].set_overloaded(true);
        assert_eq!(Lc::new().schedule(&d, &input()), Some(1));
    }
}
