//! Overflow connection (`ip_vs_ovf.c`): the available destination with the highest weight whose
//! active connections do not exceed its weight (`active <= weight`); the first one wins ties.
//! Only active connections count, so it suits TCP better than UDP.

use std::sync::Arc;

use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Overflow scheduler.
#[derive(Debug, Default)]
pub struct Ovf;

impl Ovf {
    /// An overflow scheduler (stateless).
    pub fn new() -> Self {
        Self
    }
}

impl Scheduler for Ovf {
    fn name(&self) -> &'static str {
        "ovf"
    }

    fn update(&mut self, _dests: &[Arc<Destination>]) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, d) in dests.iter().enumerate() {
            let w = d.weight();
            if !d.is_available() || d.active_conns() > w {
                continue;
            }
            if best.is_none_or(|(_, hw)| w > hw) {
                best = Some((i, w));
            }
        }
        best.map(|(i, _)| i)
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
            (&[(1, 0, 0), (3, 0, 0), (2, 0, 0)], Some(1)),
            // active == weight still accepted (kernel skips only active > weight)
            (&[(1, 0, 0), (3, 3, 0), (2, 0, 0)], Some(1)),
            // overflow to the next highest weight
            (&[(1, 0, 0), (3, 4, 0), (2, 0, 0)], Some(2)),
            (&[(1, 0, 0), (3, 4, 0), (2, 3, 0)], Some(0)),
            (&[(1, 2, 0), (3, 4, 0), (2, 3, 0)], None),
            // inactive connections ignored
            (&[(2, 0, 999), (1, 0, 0)], Some(0)),
        ];
        for (ds, want) in cases {
            let d = dests_with(ds);
            assert_eq!(Ovf::new().schedule(&d, &input()), *want, "{ds:?}");
        }
    }

    #[test]
    fn skips_overloaded() {
        let d = dests_with(&[(5, 0, 0), (1, 0, 0)]);
        d[0].set_overloaded(true);
        assert_eq!(Ovf::new().schedule(&d, &input()), Some(1));
    }
}
