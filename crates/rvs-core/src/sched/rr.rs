//! Round-robin (`ip_vs_rr.c`): the next available destination after the one chosen last,
//! wrapping around the list once.

use std::sync::Arc;

use super::common::remap;
use super::{SchedInput, Scheduler};
use crate::dest::Destination;

/// Round-robin scheduler.
#[derive(Debug, Default)]
pub struct Rr {
    /// Index of the destination chosen last (`None`: the list head, i.e. start at the first).
    cursor: Option<usize>,
    /// The list as of the last update, to carry the cursor across changes.
    known: Vec<Arc<Destination>>,
}

impl Rr {
    /// A round-robin scheduler starting at the first destination.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Scheduler for Rr {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn update(&mut self, dests: &[Arc<Destination>]) {
        // Like ip_vs_rr_del_dest: if the destination under the cursor went away, the cursor
        // moves back to the nearest earlier one still present (or the head), so scheduling
        // continues with the destination that followed it.
        if let Some(c) = self.cursor {
            let map = remap(&self.known, dests);
            self.cursor = map
                .get(..=c.min(map.len().saturating_sub(1)))
                .and_then(|m| m.iter().rev().find_map(|x| *x));
        }
        self.known = dests.to_vec();
    }

    fn schedule(&mut self, dests: &[Arc<Destination>], _input: &SchedInput) -> Option<usize> {
        let n = dests.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.map_or(0, |c| c.wrapping_add(1));
        for k in 0..n {
            let i = (start % n + k) % n;
            if dests[i].is_available() {
                self.cursor = Some(i);
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sched::tests::{dests, input, run};

    #[test]
    fn cycles_in_order() {
        let d = dests(&[1, 1, 1]);
        let mut s = Rr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 7), [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn ignores_weights_but_skips_quiesced_and_overloaded() {
        let d = dests(&[5, 0, 1, 3]);
        d[3].set_overloaded(true);
        let mut s = Rr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 5), [0, 2, 0, 2, 0]);
        d[0].set_weight(0);
        assert_eq!(run(&mut s, &d, 3), [2, 2, 2]);
        d[2].set_overloaded(true);
        assert_eq!(s.schedule(&d, &input()), None);
    }

    #[test]
    fn continues_after_removed_destination() {
        let d = dests(&[1, 1, 1, 1]);
        let mut s = Rr::new();
        s.update(&d);
        assert_eq!(run(&mut s, &d, 2), [0, 1]);
        // remove index 1 (the last chosen): the next pick is the one after it (old 2, new 1)
        let d2 = vec![d[0].clone(), d[2].clone(), d[3].clone()];
        s.update(&d2);
        assert_eq!(run(&mut s, &d2, 3), [1, 2, 0]);
        // add one at the end: the cursor stays
        let mut d3 = d2.clone();
        d3.extend(dests(&[1]));
        s.update(&d3);
        assert_eq!(run(&mut s, &d3, 4), [1, 2, 3, 0]);
    }

    #[test]
    fn empty_list() {
        let mut s = Rr::new();
        s.update(&[]);
        assert_eq!(s.schedule(&[], &input()), None);
    }
}
