//! The published Maglev hashing (Eisenbud et al., NSDI 2016, sec. 3.4, Pseudocode 1), written from the paper as a
//! yardstick: the paper's own experiment (sec. 5.3, Figure 12) at its own sizes (N = 1000 backends, M = 65537 and
//! 655373 entries), which rvs-core's mh cannot run (its table is IPVS's, 4093 entries, a constant), and the same
//! algorithm at rvs's M, to set beside rvs-core's mh measured by [`crate::maglev_resilience`].
//!
//! This is not what rvsd runs (that is rvs-core's `sched/mh.rs`, IPVS's `ip_vs_mh.c`); it exists because Figure
//! 12's values are an image in every stored copy of the paper, so the comparison is against the algorithm, run the
//! way section 5.3 describes: k backends removed at random, the table regenerated, the share of entries that
//! changed, averaged over repetitions.

/// Backend `i`'s preference list: `permutation[i][j] = (offset + j * skip) mod M` (sec. 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    pub offset: u64,
    pub skip: u64,
}

/// Offset and skip of a backend from its name hashed twice (`h1`, `h2`: two rounds of splitmix64 over the name
/// with different seeds; the paper leaves the hash functions open), `M` prime.
pub fn perm_for(name: u64, m: u64) -> Perm {
    let h1 = mix(name ^ 0x9E37_79B9_7F4A_7C15);
    let h2 = mix(name ^ 0xD1B5_4A32_D192_ED03);
    Perm {
        offset: h1 % m,
        skip: h2 % (m - 1) + 1,
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Pseudocode 1: the backends take turns, each filling its most preferred entry still empty, until all `m` are
/// filled. Returns each entry's backend (an index into `perms`). `perms` must not be empty; `m` must be prime.
pub fn populate(perms: &[Perm], m: usize) -> Vec<u32> {
    const EMPTY: u32 = u32::MAX;
    let mut entry = vec![EMPTY; m];
    if perms.is_empty() || m == 0 {
        return entry;
    }
    let m64 = m as u64;
    let mut next = vec![0u64; perms.len()];
    let mut n = 0usize;
    loop {
        for (i, p) in perms.iter().enumerate() {
            let mut c = ((p.offset + next[i] * p.skip) % m64) as usize;
            while entry[c] != EMPTY {
                next[i] += 1;
                c = ((p.offset + next[i] * p.skip) % m64) as usize;
            }
            entry[c] = i as u32;
            next[i] += 1;
            n += 1;
            if n == m {
                return entry;
            }
        }
    }
}

/// One point of Figure 12 with the published algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TablePoint {
    pub backends: usize,
    pub table: usize,
    pub failed: usize,
    /// Mean share of entries whose backend changed (the figure's y), over the repetitions.
    pub changed: f64,
    /// Mean share of entries that belonged to the removed backends (what any scheme must change).
    pub minimum: f64,
    /// Most entries held by one backend / the mean, before the failures.
    pub imbalance: f64,
}

/// Section 5.3's experiment: `n` backends in an `m`-entry table; `reps` times, `k` backends picked at random
/// (seeded) are removed and the table regenerated; the share of changed entries, averaged.
pub fn resilience(n: usize, k: usize, m: usize, reps: usize, seed: u64) -> TablePoint {
    let perms: Vec<Perm> = (0..n as u64).map(|b| perm_for(b, m as u64)).collect();
    let before = populate(&perms, m);
    let mut counts = vec![0usize; n];
    for &b in &before {
        if let Some(c) = counts.get_mut(b as usize) {
            *c += 1;
        }
    }
    let imbalance = counts.iter().copied().max().unwrap_or(0) as f64 * n as f64 / m as f64;
    let mut rnd = seed;
    let (mut changed_sum, mut minimum_sum) = (0.0, 0.0);
    let reps = reps.max(1);
    for _ in 0..reps {
        // A fresh random set of k failed backends (partial Fisher-Yates).
        let mut order: Vec<usize> = (0..n).collect();
        for j in 0..k.min(n) {
            rnd = mix(rnd.wrapping_add(0x9E37_79B9_7F4A_7C15));
            let pick = j + (rnd % (n - j) as u64) as usize;
            order.swap(j, pick);
        }
        let mut gone = vec![false; n];
        for &g in order.iter().take(k) {
            gone[g] = true;
        }
        // Survivors keep their names (so their permutations); the table is regenerated over them.
        let alive: Vec<usize> = (0..n).filter(|&b| !gone[b]).collect();
        let alive_perms: Vec<Perm> = alive.iter().map(|&b| perms[b]).collect();
        let after = populate(&alive_perms, m);
        let mut changed = 0usize;
        let mut minimum = 0usize;
        for (b, a) in before.iter().zip(&after) {
            let b = *b as usize;
            let a = alive.get(*a as usize).copied().unwrap_or(usize::MAX);
            if gone.get(b).copied().unwrap_or(false) {
                minimum += 1;
            }
            if a != b {
                changed += 1;
            }
        }
        changed_sum += changed as f64 / m as f64;
        minimum_sum += minimum as f64 / m as f64;
    }
    TablePoint {
        backends: n,
        table: m,
        failed: k,
        changed: changed_sum / reps as f64,
        minimum: minimum_sum / reps as f64,
        imbalance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's Table 1: M = 7, three backends with (offset, skip) = (3, 4), (0, 2), (3, 1); the table before and
    /// after the second is removed, and "only one other entry (row 7) needs to be changed".
    #[test]
    fn the_papers_table_1() {
        let p = |offset, skip| Perm { offset, skip };
        let all = [p(3, 4), p(0, 2), p(3, 1)];
        // B1..B3 in the paper are 0..2 here.
        assert_eq!(populate(&all, 7), vec![1, 0, 1, 0, 2, 2, 0]);
        let without_b2 = populate(&[all[0], all[2]], 7);
        // Indices into [B1, B3]: B1 B1 B1 B1 B3 B3 B3.
        assert_eq!(without_b2, vec![0, 0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn balanced_within_one_entry_and_close_to_minimal_disruption() {
        // 100 backends in 65537 entries (M > 100 N): every backend holds floor or ceil of M/N.
        let perms: Vec<Perm> = (0..100).map(|b| perm_for(b, 65537)).collect();
        let t = populate(&perms, 65537);
        let mut counts = vec![0usize; 100];
        for &b in &t {
            counts[b as usize] += 1;
        }
        let (lo, hi) = (
            counts.iter().copied().min().unwrap_or(0),
            counts.iter().copied().max().unwrap_or(0),
        );
        assert!(lo >= 655 && hi <= 656, "{lo}..{hi}");
        // 5 of 100 fail: the removed backends' ~5 % must change, and a little more (not minimal), far from all.
        let r = resilience(100, 5, 65537, 5, 1);
        assert!((r.minimum - 0.05).abs() < 0.001, "{r:?}");
        assert!(
            r.changed > r.minimum && r.changed < 2.0 * r.minimum,
            "{r:?}"
        );
        // No failure, no change.
        assert_eq!(resilience(100, 0, 65537, 2, 1).changed, 0.0);
    }
}
