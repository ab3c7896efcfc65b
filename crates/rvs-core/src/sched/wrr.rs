//! Weighted round-robin (`ip_vs_wrr.c`). The current weight `cw` starts at the maximum weight and
//! steps down by the GCD of the weights; each pass hands a connection to every destination whose
//! weight is at least `cw`. The maximum is lowered by `gcd - 1` so the last pass runs with
//! `cw = 1`. Weights 4, 3, 2 give A A B A B C A B C.
//!
//! Weights are read live at scheduling time (as in the kernel); the GCD and the maximum are
//! recomputed by [`Scheduler::update`], which also restarts the pass at the list head.

use std::sync::Arc;

use super::common::gcd_weights;
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Weighted round-robin scheduler.
#[derive(Debug, Default)]
pub struct Wrr {
    /// Index of the destination chosen last (`None`: the list head).
    cursor: Option<usize>,
    /// Current weight.
    cw: i64,
    /// Maximum weight minus (gcd - 1).
    mw: i64,
    /// Decreasing interval: the GCD of the positive weights (1 when none).
    di: i64,
}

impl Wrr {
    /// A weighted round-robin scheduler; call [`Scheduler::update`] before scheduling.
    pub fn new() -> Self {
        Self {
            di: 1,
            ..Self::default()
        }
    }
}

impl Scheduler for Wrr {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn update(&mut self, dests: &[Arc<Destination>]) {
        self.cursor = None;
        self.di = i64::from(gcd_weights(dests.iter().map(|d| d.weight())).max(1));
        let max = dests
            .iter()
            .map(|d| i64::from(d.weight()))
            .max()
            .unwrap_or(0);
        self.mw = max - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        if self.mw <= 0 || dests.is_empty() {
            return None;
        }
        let n = dests.len();
        // The destination the search started after; `None` = the head.
        let last = self.cursor.filter(|&c| c < n);
        let mut pos = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let start = pos.map_or(0, |p| p + 1);
            for (i, d) in dests.iter().enumerate().skip(start) {
                if !d.is_overloaded() && i64::from(d.weight()) >= self.cw {
                    self.cursor = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cursor = Some(i);
                    return None;
                }
            }
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Stop once every destination was checked with cw = 1.
                if last_pass || last.is_none() {
                    self.cursor = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first traversal checked weight >= 1 only after `last`: now check the
                // destinations up to and including it.
                stop = last;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sched::tests::{dests, input, run};

    fn seq(weights: &[u32], count: usize) -> Vec<usize> {
        let d = dests(weights);
        let mut s = Wrr::new();
        s.update(&d);
        run(&mut s, &d, count)
    }

    #[test]
    fn kernel_sequences() {
        // (weights, expected indexes) — hand-traced through ip_vs_wrr_schedule.
        let cases: &[(&[u32], &[usize])] = &[
            (
                &[4, 3, 2],
                &[0, 0, 1, 0, 1, 2, 0, 1, 2, 0, 0, 1, 0, 1, 2, 0, 1, 2],
            ),
            (&[1, 1, 1], &[0, 1, 2, 0, 1, 2]),
            (&[2, 1], &[0, 0, 1, 0, 0, 1]),
            // gcd 2: 4,2 behaves like 2,1
            (&[4, 2], &[0, 0, 1, 0, 0, 1]),
            // a quiesced destination never appears, others keep their ratio
            (&[3, 0, 1], &[0, 0, 0, 2, 0, 0, 0, 2]),
            (&[0, 2, 0], &[1, 1, 1]),
            // 6,4,2 (gcd 2): like 3,2,1
            (&[6, 4, 2], &[0, 0, 1, 0, 1, 2, 0, 0, 1, 0, 1, 2]),
        ];
        for (w, want) in cases {
            assert_eq!(seq(w, want.len()), *want, "weights {w:?}");
        }
    }

    #[test]
    fn update_mid_cycle_keeps_current_weight_and_restarts_at_head() {
        let d = dests(&[4, 3, 2]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 3), [0, 0, 1]); // now cw = 3
        d[2].set_weight(4);
        s.update(&d); // di 1, mw 4: cw stays 3, pass restarts at the head
        assert_eq!(run(&mut s, &d, 11), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 2]);
    }

    #[test]
    fn update_with_gcd_rounds_current_weight() {
        // cw = (cw / di) * di + 1 when the GCD grows above 1
        let d = dests(&[5, 3, 1]);
        let mut s = Wrr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 3), [0, 0, 0]); // cw 5, 4, 3
        d[0].set_weight(6);
        d[1].set_weight(4);
        d[2].set_weight(2);
        s.update(&d); // di 2, mw 5, cw 3 -> 3
        assert_eq!(s.cw, 3);
        assert_eq!(run(&mut s, &d, 6), [0, 1, 0, 1, 2, 0]);
    }

    #[test]
    fn proportions_over_a_cycle() {
        let w = [5u32, 1, 3, 7, 0, 2];
        let total: u32 = w.iter().sum();
        let got = seq(&w, total as usize * 10);
        for (i, &wi) in w.iter().enumerate() {
            let c = got.iter().filter(|&&x| x == i).count() as u32;
            assert_eq!(c, wi * 10, "dest {i}");
        }
    }

    #[test]
    fn all_zero_or_overloaded() {
        assert_eq!(seq(&[0, 0], 1), Vec::<usize>::new());
        let d = dests(&[2, 1]);
        let mut s = Wrr::new();
        s.update(&d);
        d[0].set_overloaded(true);
        assert_eq!(run(&mut s, &d, 3), [1, 1, 1]);
        d[1].set_overloaded(true);
        assert_eq!(s.schedule(&d, &input()), None);
        d[0].set_overloaded(false);
        assert_eq!(run(&mut s, &d, 2), [0, 0]);
    }

    #[test]
    fn empty_list() {
        let mut s = Wrr::new();
        s.update(&[]);
        assert_eq!(s.schedule(&[], &input()), None);
    }
}
