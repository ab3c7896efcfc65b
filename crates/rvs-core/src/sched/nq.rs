//! Never queue (`ip_vs_nq.c`): the first idle (no active connection) available destination;
//! when none is idle, shortest expected delay.

use std::sync::Arc;

use super::common::{more_loaded, sed_overhead};
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Never-queue scheduler.
#[derive(Debug, Default)]
pub struct Nq;

impl Nq {
    /// A never-queue scheduler (stateless).
    pub fn new() -> Self {
        Self
    }
}

impl Scheduler for Nq {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn update(&mut self, _dests: &[Arc<Destination>]) {}

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        // One pass, like the kernel: an idle destination returns at once, otherwise keep the
        // sed minimum seen so far.
        let mut least: Option<(usize, u32, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            if d.active_conns() == 0 {
                return Some(i);
            }
            let (dw, doh) = (d.weight(), sed_overhead(d));
            match least {
                Some((_, lw, loh)) if !more_loaded(loh, lw, doh, dw) => {}
                _ => least = Some((i, dw, doh)),
            }
        }
        least.map(|(i, _, _)| i)
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
            // idle wins even against a much heavier busy one
            (&[(100, 1, 0), (1, 0, 0)], Some(1)),
            // first idle
            (&[(1, 2, 0), (1, 0, 5), (9, 0, 0)], Some(1)),
            // nobody idle: sed
            (&[(1, 1, 0), (3, 2, 0)], Some(1)),
            (&[(1, 1, 0), (3, 5, 0)], Some(0)),
            // quiesced idle one does not count
            (&[(0, 0, 0), (1, 3, 0)], Some(1)),
            (&[(0, 0, 0)], None),
        ];
        for (ds, want) in cases {
            let d = dests_with(ds);
            assert_eq!(Nq::new().schedule(&d, &input()), *want, "{ds:?}");
        }
    }

    #[test]
    fn skips_overloaded_idle() {
        let d = dests_with(&[(1, 0, 0), (1, 4, 0)]);
        d[0].set_overloaded(true);
        assert_eq!(Nq::new().schedule(&d, &input()), Some(1));
    }
}
