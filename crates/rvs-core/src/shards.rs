//! A hash map cut into [`SHARDS`] independently shared parts, so a copy-on-write version of it costs
//! what a change touches, not the whole map.
//!
//! Why: every configuration batch works on a copy of the service table and publishes it (RCU, see
//! table.rs). With one `HashMap` per index, copying and later dropping the old version cost the
//! whole table: with 10,000 services x 10 real servers loaded, `HashMap::clone` and the old table's
//! drop were ~60 % of rvsd's CPU per `rvsadm -a` (perf, 2026-12-03, BENCHMARKS.md "a change costs
//! what it changes"). Here a copy is [`SHARDS`] reference counts, and a change copies only the one
//! shard it writes (`Arc::make_mut`): 1/64 of the entries.
//!
//! A lookup picks its shard by [`ShardKey::shard`] (a few instructions over the key's words, not a
//! second hash), then hashes as before inside the shard. Keys come from the operator's
//! configuration, not from packets, so the spread only has to be fair for real configurations (many
//! ports on a VIP, or one port on many VIPs: both spread).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use foldhash::fast::FixedState;

/// Parts per map (a power of two).
pub(crate) const SHARDS: usize = 64;

/// Which shard a key lives in (below [`SHARDS`]).
pub(crate) trait ShardKey {
    fn shard(&self) -> usize;
}

/// Folds an address into a few bits: the low words vary most between VIPs of one network.
#[inline(always)]
fn addr_bits(addr: &IpAddr) -> usize {
    match addr {
        IpAddr::V4(a) => {
            let v = u32::from(*a);
            (v ^ (v >> 8)) as usize
        }
        IpAddr::V6(a) => {
            let v = u128::from(*a);
            ((v as u32) ^ ((v >> 8) as u32) ^ ((v >> 64) as u32)) as usize
        }
    }
}

impl ShardKey for IpAddr {
    #[inline(always)]
    fn shard(&self) -> usize {
        addr_bits(self) % SHARDS
    }
}

impl ShardKey for (u8, IpAddr, u16) {
    #[inline(always)]
    fn shard(&self) -> usize {
        (addr_bits(&self.1) ^ usize::from(self.2) ^ usize::from(self.0)) % SHARDS
    }
}

impl ShardKey for (crate::service::Fwmark, bool) {
    #[inline(always)]
    fn shard(&self) -> usize {
        (self.0.0 as usize ^ usize::from(self.1)) % SHARDS
    }
}

/// A map whose clone shares every shard; writes copy the shard they touch.
#[derive(Debug, Clone)]
pub(crate) struct ShardedMap<K, V> {
    shards: [Arc<HashMap<K, V, FixedState>>; SHARDS],
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Arc::new(HashMap::default())),
        }
    }
}

/// The shard index of `k`: masked, so indexing the fixed-size array cannot fail.
#[inline(always)]
fn index<K: ShardKey>(k: &K) -> usize {
    k.shard() & (SHARDS - 1)
}

impl<K: ShardKey + Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    #[inline]
    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        self.shards[index(k)].get(k)
    }

    #[inline]
    pub(crate) fn contains_key(&self, k: &K) -> bool {
        self.shards[index(k)].contains_key(k)
    }

    /// Inserts, copying the key's shard if another version shares it. Returns the previous value.
    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        Arc::make_mut(&mut self.shards[index(&k)]).insert(k, v)
    }

    /// Removes, copying the key's shard only if the key is there.
    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let part = &mut self.shards[index(k)];
        if !part.contains_key(k) {
            return None;
        }
        Arc::make_mut(part).remove(k)
    }

    /// The value of `k` to change in place, copying its shard only if the key is there.
    pub(crate) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let part = &mut self.shards[index(k)];
        if !part.contains_key(k) {
            return None;
        }
        Arc::make_mut(part).get_mut(k)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(vip: [u8; 4], port: u16) -> (u8, IpAddr, u16) {
        (6, IpAddr::from(vip), port)
    }

    #[test]
    fn a_copy_shares_every_shard_until_one_is_written() {
        let mut a = ShardedMap::default();
        for p in 0..1000u16 {
            a.insert(key([198, 51, 100, 100], p), p);
        }
        let mut b = a.clone();
        let shared = |a: &ShardedMap<_, u16>, b: &ShardedMap<_, u16>| {
            a.shards
                .iter()
                .zip(&b.shards)
                .filter(|(x, y)| Arc::ptr_eq(x, y))
                .count()
        };
        assert_eq!(shared(&a, &b), SHARDS);
        assert_eq!(b.insert(key([198, 51, 100, 100], 5000), 1), None);
        assert_eq!(
            shared(&a, &b),
            SHARDS - 1,
            "only the written shard is copied"
        );
        assert_eq!(b.remove(&key([198, 51, 100, 101], 1)), None);
        assert_eq!(
            shared(&a, &b),
            SHARDS - 1,
            "removing nothing copies nothing"
        );
        assert_eq!(b.remove(&key([198, 51, 100, 100], 7)), Some(7));
        assert!(
            a.contains_key(&key([198, 51, 100, 100], 7)),
            "the old version keeps it"
        );
        assert_eq!((a.len(), b.len()), (1000, 1000));
        assert_eq!(b.get(&key([198, 51, 100, 100], 5000)), Some(&1));
        assert_eq!(a.get(&key([198, 51, 100, 100], 5000)), None);
    }

    #[test]
    fn real_configurations_spread_over_the_shards() {
        // Many ports on one VIP, and one port on many VIPs: each fills every shard.
        let mut ports = [0usize; SHARDS];
        let mut vips = [0usize; SHARDS];
        for i in 0..6400u16 {
            ports[index(&key([198, 51, 100, 100], i))] += 1;
            vips[index(&key([198, 18, (i >> 8) as u8, i as u8], 80))] += 1;
        }
        for spread in [ports, vips] {
            let (lo, hi) = (spread.iter().min().copied(), spread.iter().max().copied());
            assert!(lo >= Some(50) && hi <= Some(150), "{spread:?}");
        }
    }
}
