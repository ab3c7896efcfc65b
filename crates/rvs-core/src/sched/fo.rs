//! Weighted failover (`ip_vs_fo.c`): the available destination with the highest weight; the
//! first one wins ties. Connection counts are ignored.

use std::sync::Arc;

use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Weighted failover scheduler.
#[derive(Debug, Default)]
pub struct Fo;

impl Fo {
    /// A weighted failover scheduler (stateless).
    pub fn new() -> Self {
        Self
    }
}

impl Scheduler for Fo {
    fn name(&self) -> &'static str {
        "fo"
    }

    fn update(&mut self, _dests: &[Arc<Destination>]) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let w = d.weight();
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
            (&[(1, 0, 0), (3, 100, 0), (2, 0, 0)], Some(1)),
            (&[(3, 0, 0), (3, 0, 0)], Some(0)),
            (&[(0, 0, 0), (1, 0, 0)], Some(1)),
            (&[(0, 0, 0)], None),
        ];
        for (ds, want) in cases {
            let d = dests_with(ds);
            assert_eq!(Fo::new().schedule(&d, &input()), *want, "{ds:?}");
        }
    }

    #[test]
    fn fails_over_when_overloaded() {
        let d = dests_with(&[(1, 0, 0), (3, 0, 0), (2, 0, 0)]);
        let mut s = Fo::new();
        assert_eq!(s.schedule(&d, &input()), Some(1));
        d[1].set_overloaded(true);
        assert_eq!(s.schedule(&d, &input()), Some(2));
        d[2].set_weight(0);
        assert_eq!(s.schedule(&d, &input()), Some(0));
    }
}
