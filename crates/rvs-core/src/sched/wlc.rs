//! Weighted least-connection (`ip_vs_wlc.c`, the IPVS default): the available destination with
//! the lowest `overhead / weight`, compared as `loh * dw > doh * lw`; the first one wins ties.

use std::sync::Arc;

use super::common::weighted_least_conn;
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Weighted least-connection scheduler.
#[derive(Debug, Default)]
pub struct Wlc;

impl Wlc {
    /// A weighted least-connection scheduler (stateless).
    pub fn new() -> Self {
        Self
    }
}

impl Scheduler for Wlc {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn update(&mut self, _dests: &[Arc<Destination>]) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        weighted_least_conn(dests)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sched::tests::{Case, dests_with, input};

    #[test]
    fn picks() {
        let cases: &[Case] = &[
            (&[(1, 0, 0), (1, 0, 0)], Some(0)),
            // 256/1 vs 256*3/3: tie -> first
            (&[(1, 1, 0), (3, 3, 0)], Some(0)),
            // 256/1 vs 512/3 -> second
            (&[(1, 1, 0), (3, 2, 0)], Some(1)),
            (&[(2, 1, 0), (1, 1, 0)], Some(0)),
            (&[(0, 0, 0), (5, 100, 0)], Some(1)),
            (&[(1, 0, 10), (1, 0, 9)], Some(1)),
            (&[(0, 0, 0), (0, 0, 0)], None),
        ];
        for (ds, want) in cases {
            let d = dests_with(ds);
            let mut s = Wlc::new();
            s.update(&d);
            assert_eq!(s.schedule(&d, &input()), *want, "{ds:?}");
        }
    }

    #[test]
    fn skips_overloaded() {
        let d = dests_with(&[(10, 0, 0), (1, 50, 0)]);
        d[0].set_overloaded(true);
        assert_eq!(Wlc::new().schedule(&d, &input()), Some(1));
    }
}
