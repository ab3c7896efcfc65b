//! Shortest expected delay (`ip_vs_sed.c`): the available destination with the lowest
//! `(active + 1) / weight` (inactive connections do not count); the first one wins ties.

use std::sync::Arc;

use super::common::{more_loaded, sed_overhead};
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Shortest-expected-delay scheduler.
#[derive(Debug, Default)]
pub struct Sed;

impl Sed {
    /// A shortest-expected-delay scheduler (stateless).
    pub fn new() -> Self {
        Self
    }
}

/// The sed pick, shared with nq once it found no idle destination.
pub(crate) fn sed_pick(dests: &[Arc<Destination>]) -> Option<usize> {
    let mut least: Option<(usize, u32, u64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.is_available() {
            continue;
        }
        let (dw, doh) = (d.weight(), sed_overhead(d));
        match least {
            Some((_, lw, loh)) if !more_loaded(loh, lw, doh, dw) => {}
            _ => least = Some((i, dw, doh)),
        }
    }
    least.map(|(i, _, _)| i)
}

impl Scheduler for Sed {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn update(&mut self, _dests: &[Arc<Destination>]) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        sed_pick(dests)
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
            // (0+1)/1 vs (0+1)/3 -> the heavier one even when both idle
            (&[(1, 0, 0), (3, 0, 0)], Some(1)),
            // 1/1 vs 3/3 tie -> first
            (&[(1, 0, 0), (3, 2, 0)], Some(0)),
            // 2/1 vs 3/3 -> second
            (&[(1, 1, 0), (3, 2, 0)], Some(1)),
            // inactive connections ignored
            (&[(1, 0, 1000), (1, 1, 0)], Some(0)),
            (&[(0, 0, 0), (1, 7, 0)], Some(1)),
            (&[], None),
        ];
        for (ds, want) in cases {
            let d = dests_with(ds);
            assert_eq!(Sed::new().schedule(&d, &input()), *want, "{ds:?}");
        }
    }

    #[test]
    fn skips_overloaded() {
        let d = dests_with(&[(1, 0, 0), (9, 0, 0)]);
        d[1].set_overloaded(true);
        assert_eq!(Sed::new().schedule(&d, &input()), Some(0));
    }
}
