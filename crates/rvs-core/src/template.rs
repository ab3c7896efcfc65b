//! Persistence templates (`-p`/`-M`): a masked client address pinned to a destination.
//!
//! Kept apart from the connection table: each template is an `Arc` with atomics, so a connection
//! refers to its template without holding another shard's lock. Templates expire by a per-shard
//! min-heap (lazy: a popped entry is checked against the template's real deadline), and never
//! while they still control connections (IPVS re-arms such templates).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use foldhash::fast::FixedState;
use parking_lot::Mutex;

use crate::dest::{Bound, Destination};

/// What a template is keyed by: (protocol, masked caddr, vaddr, service port (0 for a port-0
/// service: all ports), fwmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TemplateKey {
    pub(crate) proto: u8,
    pub(crate) caddr: IpAddr,
    pub(crate) vaddr: IpAddr,
    pub(crate) vport: u16,
    pub(crate) fwmark: u32,
}

/// One persistence template.
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) key: TemplateKey,
    pub(crate) dest: Arc<Destination>,
    id: u64,
    timeout_ms: u64,
    last_used: AtomicU64,
    /// Connections created under this template that are still alive (one [`TemplateHold`] each).
    n_control: AtomicU32,
}

impl Template {
    pub(crate) fn deadline(&self) -> u64 {
        self.last_used
            .load(Ordering::Relaxed)
            .saturating_add(self.timeout_ms)
    }

    /// The template's timeout.
    pub(crate) fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// When it was last used (caller's clock, ms).
    pub(crate) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Takes a hold for a new connection.
    pub(crate) fn hold(self: &Arc<Self>) -> TemplateHold {
        self.n_control.fetch_add(1, Ordering::Relaxed);
        TemplateHold(self.clone())
    }
}

/// A connection's hold on its persistence template: while any hold lives the template does not
/// expire (IPVS's n_control). Taken only by [`TemplateTable::lookup`] and [`TemplateTable::insert`];
/// given back by dropping it, so a connection that ends, or is never created, cannot leak one.
#[derive(Debug)]
pub(crate) struct TemplateHold(Arc<Template>);

impl TemplateHold {
    /// The template held.
    pub(crate) fn template(&self) -> &Arc<Template> {
        &self.0
    }

    /// The destination the template pins.
    pub(crate) fn dest(&self) -> &Arc<Destination> {
        &self.0.dest
    }
}

impl Drop for TemplateHold {
    fn drop(&mut self) {
        let _ = self
            .0
            .n_control
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
    }
}

#[derive(Debug, Default)]
struct TShard {
    map: HashMap<TemplateKey, Arc<Template>, FixedState>,
    heap: BinaryHeap<Reverse<(u64, u64, TemplateKey)>>,
}

/// All templates.
#[derive(Debug)]
pub(crate) struct TemplateTable {
    shards: Box<[Mutex<TShard>]>,
    hasher: FixedState,
    next_id: AtomicU64,
    /// Live templates (every shard's map), kept under each shard's lock on every insert and removal: the
    /// connection limit counts templates (IPVS counts them in conn_count) without locking every shard.
    count: AtomicUsize,
}

/// ip_vs_check_template: a template is usable while its destination is in its service (and,
/// with expire_quiescent_template, not quiesced).
fn usable(t: &Template, expire_quiescent: bool) -> bool {
    t.dest.is_in_service() && !(expire_quiescent && t.dest.weight() == 0)
}

/// Result of a template lookup.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A live template with an available destination (its timer refreshed, a hold taken).
    Hit(TemplateHold),
    /// None (an unusable one was removed).
    Miss,
}

impl TemplateTable {
    pub(crate) fn new(shards: usize, seed: u64) -> Self {
        Self {
            shards: (0..shards.clamp(1, 1024))
                .map(|_| Mutex::new(TShard::default()))
                .collect(),
            hasher: FixedState::with_seed(seed ^ 0x7e3a_11c5),
            next_id: AtomicU64::new(1),
            count: AtomicUsize::new(0),
        }
    }

    /// Follows one shard's map size from `before` to `after` in the global count.
    fn counted(&self, before: usize, after: usize) {
        if after > before {
            self.count.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.count.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// Live templates (one relaxed load).
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Removes `t` if it is still the template under its key and no connection holds it any more: the
    /// template of a connection dropped by drop_entry or evicted at the limit goes with it, as
    /// ip_vs_random_dropentry deletes `cp->control` with `cp` (ip_vs_conn.c). True if removed.
    pub(crate) fn remove_unheld(&self, t: &Arc<Template>) -> bool {
        let mut sh = self.shard(&t.key).lock();
        let current = sh.map.get(&t.key).is_some_and(|c| Arc::ptr_eq(c, t));
        if !current || t.n_control.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let before = sh.map.len();
        sh.map.remove(&t.key);
        self.counted(before, sh.map.len());
        t.dest.unbind(Bound::Template);
        true
    }

    fn shard(&self, key: &TemplateKey) -> &Mutex<TShard> {
        let h = self.hasher.hash_one(key);
        let i = ((h >> 32) as usize * self.shards.len()) >> 32;
        self.shards.get(i).unwrap_or(&self.shards[0])
    }

    /// Finds a usable template, refreshing it and taking a reference for a new connection
    /// (ip_vs_check_template: a template whose destination left its service is expired).
    /// With `expire_quiescent`, a template whose destination is quiesced (weight 0) is expired
    /// too (expire_quiescent_template).
    pub(crate) fn lookup(&self, key: &TemplateKey, now: u64, expire_quiescent: bool) -> Lookup {
        let mut sh = self.shard(key).lock();
        let Some(t) = sh.map.get(key) else {
            return Lookup::Miss;
        };
        if usable(t, expire_quiescent) {
            t.last_used.store(now, Ordering::Relaxed);
            return Lookup::Hit(t.hold());
        }
        let before = sh.map.len();
        if let Some(t) = sh.map.remove(key) {
            t.dest.unbind(Bound::Template);
        }
        self.counted(before, sh.map.len());
        Lookup::Miss
    }

    /// Inserts a new template for `dest` (or returns the one another worker just created), with
    /// a reference taken for a new connection.
    pub(crate) fn insert(
        &self,
        key: TemplateKey,
        dest: Arc<Destination>,
        timeout_ms: u64,
        now: u64,
        expire_quiescent: bool,
    ) -> TemplateHold {
        let mut sh = self.shard(&key).lock();
        if let Some(t) = sh.map.get(&key)
            && usable(t, expire_quiescent)
        {
            t.last_used.store(now, Ordering::Relaxed);
            return t.hold();
        }
        let before = sh.map.len();
        if let Some(old) = sh.map.remove(&key) {
            old.dest.unbind(Bound::Template);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        dest.bind(Bound::Template);
        let t = Arc::new(Template {
            key,
            dest,
            id,
            timeout_ms,
            last_used: AtomicU64::new(now),
            n_control: AtomicU32::new(0),
        });
        sh.heap.push(Reverse((t.deadline(), id, key)));
        sh.map.insert(key, t.clone());
        self.counted(before, sh.map.len());
        t.hold()
    }

    /// Installs or refreshes a template learnt from a sync master (no connection reference is
    /// taken: synced connections are not linked to templates, as in IPVS). True if new.
    pub(crate) fn install_synced(
        &self,
        key: TemplateKey,
        dest: &Arc<Destination>,
        timeout_ms: u64,
        now: u64,
    ) -> bool {
        let mut sh = self.shard(&key).lock();
        if let Some(t) = sh.map.get(&key)
            && Arc::ptr_eq(&t.dest, dest)
            && t.timeout_ms == timeout_ms
        {
            t.last_used.store(now, Ordering::Relaxed);
            return false;
        }
        let before = sh.map.len();
        let fresh = match sh.map.remove(&key) {
            Some(old) => {
                old.dest.unbind(Bound::Template);
                false
            }
            None => true,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        dest.bind(Bound::Template);
        let t = Arc::new(Template {
            key,
            dest: dest.clone(),
            id,
            timeout_ms,
            last_used: AtomicU64::new(now),
            n_control: AtomicU32::new(0),
        });
        sh.heap.push(Reverse((t.deadline(), id, key)));
        sh.map.insert(key, t);
        self.counted(before, sh.map.len());
        fresh
    }

    /// The template's timeout in ms.
    pub(crate) fn timeout_of(t: &Template) -> u64 {
        t.timeout_ms
    }

    /// A template handed over by a previous process (no connection holds it yet; each restored
    /// connection under it takes a hold). Replaces a template under the same key.
    pub(crate) fn restore(
        &self,
        key: TemplateKey,
        dest: Arc<Destination>,
        timeout_ms: u64,
        last_used: u64,
    ) -> Arc<Template> {
        let mut sh = self.shard(&key).lock();
        let before = sh.map.len();
        if let Some(old) = sh.map.remove(&key) {
            old.dest.unbind(Bound::Template);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        dest.bind(Bound::Template);
        let t = Arc::new(Template {
            key,
            dest,
            id,
            timeout_ms,
            last_used: AtomicU64::new(last_used),
            n_control: AtomicU32::new(0),
        });
        sh.heap.push(Reverse((t.deadline(), id, key)));
        sh.map.insert(key, t.clone());
        self.counted(before, sh.map.len());
        t
    }

    /// Expires due templates; returns how many.
    pub(crate) fn expire(&self, now: u64) -> usize {
        let mut n = 0;
        for shard in self.shards.iter() {
            let mut sh = shard.lock();
            let before = sh.map.len();
            while let Some(Reverse((due, id, key))) = sh.heap.peek().copied() {
                if due > now {
                    break;
                }
                sh.heap.pop();
                let Some(t) = sh.map.get(&key).cloned() else {
                    continue;
                };
                if t.id != id {
                    continue; // a newer template under the same key has its own entry
                }
                if t.n_control.load(Ordering::Relaxed) > 0 {
                    // IPVS re-arms a template that still controls connections.
                    t.last_used.store(now, Ordering::Relaxed);
                    sh.heap.push(Reverse((t.deadline(), id, key)));
                } else if t.deadline() > now {
                    sh.heap.push(Reverse((t.deadline(), id, key)));
                } else {
                    sh.map.remove(&key);
                    t.dest.unbind(Bound::Template);
                    n += 1;
                }
            }
            self.counted(before, sh.map.len());
        }
        n
    }

    /// Removes every template whose destination belongs to service `svc_id`.
    pub(crate) fn purge_service(&self, svc_id: u64) -> usize {
        let mut n = 0;
        for shard in self.shards.iter() {
            let mut sh = shard.lock();
            let before = sh.map.len();
            sh.map.retain(|_, t| {
                if t.dest.svc.id == svc_id {
                    t.dest.unbind(Bound::Template);
                    n += 1;
                    false
                } else {
                    true
                }
            });
            self.counted(before, sh.map.len());
        }
        n
    }

    /// Visits every template (control plane).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Template)) {
        for shard in self.shards.iter() {
            let sh = shard.lock();
            for t in sh.map.values() {
                f(t);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }
}
