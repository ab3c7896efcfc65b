//! The connection table.
//!
//! Sharded by hash(protocol, caddr, cport), so a connection's inbound key (client -> VIP) and its
//! outbound key (real server -> client) live in the same shard behind one lock. A shard holds:
//! - a slab of connection entries in fixed-size chunks (no doubling waste, stable indices),
//! - one `hashbrown::HashTable<u32>` indexing both keys (`slot << 1 | direction`),
//! - a hashed timing wheel: doubly-linked lists threaded through the entries (`next`/`prev`), one
//!   list per 256 ms tick; entries are re-armed lazily (a packet only refreshes `last_seen`; the
//!   wheel re-files an entry it finds not yet due), so `expire` costs what it expires, never a scan.
//!   An occupancy bitmap (one bit per bucket) lets `expire` jump over empty buckets: a drain far
//!   ahead of a sparse shard reads 64 words instead of walking 4096 list heads (the
//!   `director_process` fuzz target spent ~55 % of its time in that walk; see fuzz/README.md).
//!
//! Addresses are stored at their family's size (the table is generic over [`ConnAddr`]), which
//! keeps an IPv4 entry at 64 bytes.

use std::fmt::Debug;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashbrown::HashTable;
use parking_lot::Mutex;

use crate::dest::Destination;
use crate::template::TemplateHold;

/// An address as stored in a connection entry.
pub(crate) trait ConnAddr: Copy + Eq + Hash + Debug + Send + Sync + 'static {
    fn from_ip(ip: IpAddr) -> Option<Self>;
    fn to_ip(self) -> IpAddr;
    /// The address as a number (for the key hash).
    fn bits(self) -> u128;
}

impl ConnAddr for Ipv4Addr {
    #[inline]
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    #[inline]
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(self)
    }
    #[inline(always)]
    fn bits(self) -> u128 {
        u128::from(u32::from(self))
    }
}

impl ConnAddr for Ipv6Addr {
    #[inline]
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    #[inline]
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(self)
    }
    #[inline(always)]
    fn bits(self) -> u128 {
        u128::from(self)
    }
}

/// Connection flags.
pub(crate) const F_INACTIVE: u8 = 1;
/// Bound to masq forwarding when created.
pub(crate) const F_MASQ: u8 = 2;
/// No packet from the real server seen yet (route/tunnel: IPVS's NOOUTPUT).
pub(crate) const F_NOOUTPUT: u8 = 4;
/// Bound to direct routing when created.
pub(crate) const F_ROUTE: u8 = 8;
/// Bound to tunnelling when created.
pub(crate) const F_TUNNEL: u8 = 16;

/// Sentinel for "no entry" in the wheel lists and the free list.
const NIL: u32 = u32::MAX;

/// log2 of the wheel tick in milliseconds (256 ms).
pub(crate) const TICK_SHIFT: u32 = 8;
/// Buckets per wheel (4096 x 256 ms = 1048 s, beyond the default 900 s ESTABLISHED timeout).
const WHEEL: usize = 4096;
/// Words of the wheel's occupancy bitmap.
const WHEEL_WORDS: usize = WHEEL / 64;
/// Entries per slab chunk.
const CHUNK: usize = 1024;

#[inline]
pub(crate) fn tick_of(ms: u32) -> u32 {
    ms >> TICK_SHIFT
}

#[inline]
fn bucket_of(tick: u32) -> usize {
    tick as usize % WHEEL
}

/// `a` is at or after `b` on the wrapping 32-bit millisecond clock.
#[inline]
pub(crate) fn time_reached(now: u32, deadline: u32) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

/// One tracked connection.
#[derive(Debug)]
pub(crate) struct Conn<A> {
    pub(crate) caddr: A,
    pub(crate) vaddr: A,
    pub(crate) daddr: A,
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    pub(crate) dport: u16,
    pub(crate) proto: u8,
    /// `TcpState as u8` (0 = NONE for UDP).
    pub(crate) state: u8,
    pub(crate) flags: u8,
    /// Fast-path generation this connection was offered in (0: not offered; see fastpath.rs).
    pub(crate) fast_gen: u8,
    /// Packets from the client, saturating at 255 (IPVS's in_pkts: drop_entry spares entries
    /// with more than 8).
    pub(crate) in_pkts: u8,
    /// Last packet, wrapping ms.
    pub(crate) last_seen: u32,
    /// Current timeout in ms.
    pub(crate) timeout: u32,
    /// Tick of the wheel bucket this entry is filed in.
    armed: u32,
    next: u32,
    prev: u32,
    pub(crate) dest: Arc<Destination>,
    /// The persistence template's hold, given back when the connection drops.
    pub(crate) tmpl: Option<TemplateHold>,
}

impl<A> Conn<A> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        proto: u8,
        caddr: A,
        cport: u16,
        vaddr: A,
        vport: u16,
        daddr: A,
        dport: u16,
        dest: Arc<Destination>,
        tmpl: Option<TemplateHold>,
        flags: u8,
        now: u32,
        timeout: u32,
    ) -> Self {
        Self {
            caddr,
            vaddr,
            daddr,
            cport,
            vport,
            dport,
            proto,
            state: 0,
            flags,
            fast_gen: 0,
            in_pkts: 0,
            last_seen: now,
            timeout,
            armed: 0,
            next: NIL,
            prev: NIL,
            dest,
            tmpl,
        }
    }

    #[inline]
    pub(crate) fn deadline(&self) -> u32 {
        self.last_seen.wrapping_add(self.timeout)
    }

    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.flags & F_INACTIVE == 0
    }
}

#[derive(Debug)]
enum Slot<A> {
    Free(u32),
    Used(Conn<A>),
}

/// Direction bit of an index entry.
const DIR_IN: u32 = 0;
const DIR_OUT: u32 = 1;

/// One shard: slab + index + wheel.
#[derive(Debug)]
pub(crate) struct Shard<A> {
    index: HashTable<u32>,
    chunks: Vec<Box<[Slot<A>]>>,
    free: u32,
    live: usize,
    wheel: Box<[u32]>,
    /// Bit `b` is set iff wheel bucket `b` holds at least one entry.
    occupied: [u64; WHEEL_WORDS],
    /// Last tick `expire` processed (it processes `cur_tick..=now_tick`).
    cur_tick: Option<u32>,
    hasher: KeyHasher,
    /// Buckets `expire` has walked (tests check that empty buckets are skipped).
    #[cfg(test)]
    walked: usize,
}

/// The seeded hash of connection keys and shards: foldhash's folded multiply over the key packed
/// in words, always inlined. `foldhash::FixedState::hash_one` over the key tuple was a call in
/// some builds (LLVM's choice), which cost a new connection up to ~60 instructions with the
/// index's growth (its two keys, and every entry again at each rehash); this is two multiplies
/// (three for IPv6).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyHasher([u64; 4]);

impl KeyHasher {
    /// Four words from `seed` (splitmix64).
    pub(crate) fn with_seed(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self([next(), next(), next(), next()])
    }

    /// Hash of two addresses and 64 bits of ports, protocol and direction.
    ///
    /// `meta` never shares a multiplier operand with an address word a sender chooses: xored
    /// into an IPv6 address's high word, a client's subnet bits and source port could cancel
    /// (65,536 in-keys of one hash whatever the seed: a flood's probe chains). Two addresses
    /// that fit a word (IPv4: known at compile time) leave the high words free for it; others
    /// pay a third multiply.
    #[inline(always)]
    fn hash(&self, a: u128, b: u128, meta: u64) -> u64 {
        let [s0, s1, s2, s3] = self.0;
        let (a_hi, b_hi) = ((a >> 64) as u64, (b >> 64) as u64);
        if a_hi == 0 && b_hi == 0 {
            let h = fold_mul((a as u64) ^ s0, meta ^ s1);
            fold_mul(h ^ (b as u64) ^ s2, s3)
        } else {
            let h = fold_mul((a as u64) ^ s0, a_hi ^ s1);
            let h = fold_mul(h ^ (b as u64) ^ s2, b_hi ^ s3);
            fold_mul(h ^ meta, s1 ^ s2)
        }
    }
}

/// The 128-bit product of `x` and `y`, its halves xored (foldhash's folded multiply).
#[inline(always)]
fn fold_mul(x: u64, y: u64) -> u64 {
    let p = u128::from(x) * u128::from(y);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn key_hash<A: ConnAddr>(h: &KeyHasher, dir: u32, proto: u8, a: A, ap: u16, b: A, bp: u16) -> u64 {
    let meta = u64::from(dir) << 48 | u64::from(proto) << 32 | u64::from(ap) << 16 | u64::from(bp);
    h.hash(a.bits(), b.bits(), meta)
}

#[inline(always)]
fn entry_hash<A: ConnAddr>(h: &KeyHasher, c: &Conn<A>, dir: u32) -> u64 {
    if dir == DIR_IN {
        key_hash(h, DIR_IN, c.proto, c.caddr, c.cport, c.vaddr, c.vport)
    } else {
        key_hash(h, DIR_OUT, c.proto, c.daddr, c.dport, c.caddr, c.cport)
    }
}

fn slot_ref<A>(chunks: &[Box<[Slot<A>]>], i: u32) -> Option<&Conn<A>> {
    let i = i as usize;
    match chunks.get(i / CHUNK).and_then(|c| c.get(i % CHUNK)) {
        Some(Slot::Used(c)) => Some(c),
        _ => None,
    }
}

fn slot_mut<A>(chunks: &mut [Box<[Slot<A>]>], i: u32) -> Option<&mut Conn<A>> {
    let i = i as usize;
    match chunks.get_mut(i / CHUNK).and_then(|c| c.get_mut(i % CHUNK)) {
        Some(Slot::Used(c)) => Some(c),
        _ => None,
    }
}

impl<A: ConnAddr> Shard<A> {
    fn new(hasher: KeyHasher) -> Self {
        Self {
            index: HashTable::new(),
            chunks: Vec::new(),
            free: NIL,
            live: 0,
            wheel: vec![NIL; WHEEL].into_boxed_slice(),
            occupied: [0; WHEEL_WORDS],
            cur_tick: None,
            hasher,
            #[cfg(test)]
            walked: 0,
        }
    }

    /// Live connections in this shard.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn get(&self, i: u32) -> Option<&Conn<A>> {
        slot_ref(&self.chunks, i)
    }

    pub(crate) fn get_mut(&mut self, i: u32) -> Option<&mut Conn<A>> {
        slot_mut(&mut self.chunks, i)
    }

    /// Inbound lookup: the client -> VIP key. Always inlined, as [`Self::find_out`]: out of line
    /// (LLVM's choice in some builds) each cost an established packet ~20 instructions more.
    #[inline(always)]
    pub(crate) fn find_in(
        &self,
        proto: u8,
        caddr: A,
        cport: u16,
        vaddr: A,
        vport: u16,
    ) -> Option<u32> {
        let h = key_hash(&self.hasher, DIR_IN, proto, caddr, cport, vaddr, vport);
        let chunks = &self.chunks;
        self.index
            .find(h, |&v| {
                v & 1 == DIR_IN
                    && slot_ref(chunks, v >> 1).is_some_and(|c| {
                        c.proto == proto
                            && c.cport == cport
                            && c.vport == vport
                            && c.caddr == caddr
                            && c.vaddr == vaddr
                    })
            })
            .map(|v| v >> 1)
    }

    /// Outbound lookup: the real server -> client key.
    #[inline(always)]
    pub(crate) fn find_out(
        &self,
        proto: u8,
        daddr: A,
        dport: u16,
        caddr: A,
        cport: u16,
    ) -> Option<u32> {
        let h = key_hash(&self.hasher, DIR_OUT, proto, daddr, dport, caddr, cport);
        let chunks = &self.chunks;
        self.index
            .find(h, |&v| {
                v & 1 == DIR_OUT
                    && slot_ref(chunks, v >> 1).is_some_and(|c| {
                        c.proto == proto
                            && c.dport == dport
                            && c.cport == cport
                            && c.daddr == daddr
                            && c.caddr == caddr
                    })
            })
            .map(|v| v >> 1)
    }

    fn alloc(&mut self, conn: Conn<A>) -> Result<u32, Conn<A>> {
        if self.free == NIL {
            let base = self.chunks.len() * CHUNK;
            if base + CHUNK >= (NIL >> 1) as usize {
                return Err(conn);
            }
            // Thread the new chunk onto the free list.
            let chunk: Vec<Slot<A>> = (0..CHUNK)
                .map(|k| {
                    Slot::Free(if k + 1 == CHUNK {
                        NIL
                    } else {
                        (base + k + 1) as u32
                    })
                })
                .collect();
            self.chunks.push(chunk.into_boxed_slice());
            self.free = base as u32;
        }
        let i = self.free;
        let Some(slot) = self
            .chunks
            .get_mut(i as usize / CHUNK)
            .and_then(|c| c.get_mut(i as usize % CHUNK))
        else {
            return Err(conn);
        };
        let Slot::Free(next) = *slot else {
            return Err(conn);
        };
        self.free = next;
        *slot = Slot::Used(conn);
        Ok(i)
    }

    /// Inserts a connection (both keys, filed on the wheel). Fails only if the shard is full
    /// (2^31 entries), handing the connection back.
    pub(crate) fn insert(&mut self, conn: Conn<A>) -> Result<u32, Conn<A>> {
        let hin = entry_hash(&self.hasher, &conn, DIR_IN);
        let hout = entry_hash(&self.hasher, &conn, DIR_OUT);
        let deadline = conn.deadline();
        // Reserve first so the only fallible step is the slab.
        self.index.reserve(2, |&v| {
            slot_ref(&self.chunks, v >> 1).map_or(0, |c| entry_hash(&self.hasher, c, v & 1))
        });
        let i = self.alloc(conn)?;
        let Self {
            index,
            chunks,
            hasher,
            ..
        } = self;
        let rehash =
            |&v: &u32| slot_ref(chunks, v >> 1).map_or(0, |c| entry_hash(hasher, c, v & 1));
        index.insert_unique(hin, i << 1 | DIR_IN, rehash);
        index.insert_unique(hout, i << 1 | DIR_OUT, rehash);
        self.live += 1;
        if self.cur_tick.is_none() {
            self.cur_tick = self.get(i).map(|c| tick_of(c.last_seen));
        }
        self.link(i, tick_of(deadline));
        Ok(i)
    }

    /// Removes a connection from the index, the wheel and the slab and hands it back.
    pub(crate) fn remove(&mut self, i: u32) -> Option<Conn<A>> {
        let (hin, hout) = {
            let c = self.get(i)?;
            (
                entry_hash(&self.hasher, c, DIR_IN),
                entry_hash(&self.hasher, c, DIR_OUT),
            )
        };
        self.unlink(i);
        for (h, tag) in [(hin, i << 1 | DIR_IN), (hout, i << 1 | DIR_OUT)] {
            if let Ok(e) = self.index.find_entry(h, |&v| v == tag) {
                e.remove();
            }
        }
        let slot = self
            .chunks
            .get_mut(i as usize / CHUNK)
            .and_then(|c| c.get_mut(i as usize % CHUNK))?;
        let old = std::mem::replace(slot, Slot::Free(self.free));
        self.free = i;
        self.live -= 1;
        match old {
            Slot::Used(c) => Some(c),
            Slot::Free(_) => None,
        }
    }

    fn link(&mut self, i: u32, tick: u32) {
        // Never file behind the wheel's position: such an entry is due at the next expire.
        let tick = match self.cur_tick {
            Some(cur) if (tick.wrapping_sub(cur) as i32) < 0 => cur,
            _ => tick,
        };
        let b = bucket_of(tick);
        let head = self.wheel[b];
        if let Some(c) = self.get_mut(i) {
            c.armed = tick;
            c.prev = NIL;
            c.next = head;
        }
        if head != NIL
            && let Some(h) = self.get_mut(head)
        {
            h.prev = i;
        }
        self.wheel[b] = i;
        self.occupied[b / 64] |= 1 << (b % 64);
    }

    /// Distance `d <= max` from bucket `from` (wrapping) to the first occupied bucket, if any.
    fn next_occupied(&self, from: usize, max: usize) -> Option<usize> {
        let mut d = 0;
        while d <= max {
            let b = (from + d) % WHEEL;
            let bit = b % 64;
            let word = self.occupied[b / 64] >> bit;
            if word != 0 {
                let found = d + word.trailing_zeros() as usize;
                return (found <= max).then_some(found);
            }
            d += 64 - bit;
        }
        None
    }

    fn unlink(&mut self, i: u32) {
        let Some(c) = self.get(i) else { return };
        let (prev, next, b) = (c.prev, c.next, bucket_of(c.armed));
        if prev == NIL {
            if self.wheel[b] == i {
                self.wheel[b] = next;
                if next == NIL {
                    self.occupied[b / 64] &= !(1 << (b % 64));
                }
            }
        } else if let Some(p) = self.get_mut(prev) {
            p.next = next;
        }
        if next != NIL
            && let Some(n) = self.get_mut(next)
        {
            n.prev = prev;
        }
        if let Some(c) = self.get_mut(i) {
            c.prev = NIL;
            c.next = NIL;
        }
    }

    /// After a timeout change: re-files the entry now if its deadline moved earlier than its
    /// bucket (a later deadline is handled lazily when the bucket comes due).
    #[inline]
    pub(crate) fn rearm_if_earlier(&mut self, i: u32) {
        let Some(c) = self.get(i) else { return };
        let t = tick_of(c.deadline());
        if (c.armed.wrapping_sub(t) as i32) > 0 {
            self.unlink(i);
            self.link(i, t);
        }
    }

    /// Expires entries due at `now` (wrapping ms), handing each to `on_expire`. Stops after
    /// `budget` expiries so the caller can release the shard lock between rounds; returns
    /// `(expired, finished)`. An unfinished call resumes where it stopped. Entries found not yet
    /// due (refreshed since they were filed) are re-filed in place or moved to their bucket.
    pub(crate) fn expire(
        &mut self,
        now: u32,
        budget: usize,
        mut on_expire: impl FnMut(Conn<A>),
    ) -> (usize, bool) {
        let now_tick = tick_of(now);
        let start = self.cur_tick.unwrap_or(now_tick);
        let span = now_tick.wrapping_sub(start);
        if (span as i32) < 0 {
            // The caller's clock went backwards (e.g. a worker's older reading): nothing is due
            // that was not due before; keep the wheel where it is.
            return (0, true);
        }
        let steps = (span as usize).min(WHEEL - 1);
        let mut expired = 0;
        let mut k = 0;
        // Visit only occupied buckets. A bucket filled during the walk (an entry re-filed ahead)
        // is seen because the bitmap is read again after each bucket.
        while let Some(d) = self.next_occupied(bucket_of(start.wrapping_add(k as u32)), steps - k) {
            k += d;
            let tick = start.wrapping_add(k as u32);
            let b = bucket_of(tick);
            #[cfg(test)]
            {
                self.walked += 1;
            }
            let mut i = self.wheel[b];
            while i != NIL {
                if expired >= budget {
                    self.cur_tick = Some(tick);
                    return (expired, false);
                }
                let Some(c) = self.get_mut(i) else { break };
                let next = c.next;
                let deadline = c.deadline();
                let due_tick = tick_of(deadline);
                if time_reached(now, deadline) {
                    if let Some(c) = self.remove(i) {
                        on_expire(c);
                        expired += 1;
                    }
                } else if bucket_of(due_tick) != b {
                    self.unlink(i);
                    self.link(i, due_tick);
                } else {
                    // Same bucket, later round (or later in this tick): stays where it is.
                    c.armed = due_tick;
                }
                i = next;
            }
            k += 1;
            if k > steps {
                break;
            }
        }
        self.cur_tick = Some(now_tick);
        (expired, true)
    }

    /// Slots this shard has room for without growing (used and free).
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    /// Visits up to `entries` live entries from slot `start` on (wrapping), calling `f` on each
    /// until it returns `false`; free slots are skipped, the slab is crossed at most once (the
    /// defences' random samples: live entries sit together at the low end of a slab that once
    /// grew bigger, so counting slots would often sample nothing).
    pub(crate) fn sample(
        &self,
        start: usize,
        entries: usize,
        mut f: impl FnMut(u32, &Conn<A>) -> bool,
    ) {
        let cap = self.capacity();
        let mut seen = 0;
        for k in 0..cap {
            if seen >= entries {
                return;
            }
            let i = ((start + k) % cap) as u32;
            if let Some(c) = self.get(i) {
                seen += 1;
                if !f(i, c) {
                    return;
                }
            }
        }
    }

    /// Removes every entry matching `pred`, handing each to `on_remove` (control plane only).
    pub(crate) fn remove_where(
        &mut self,
        mut pred: impl FnMut(&Conn<A>) -> bool,
        mut on_remove: impl FnMut(Conn<A>),
    ) -> usize {
        let total = self.chunks.len() * CHUNK;
        let mut n = 0;
        for i in 0..total as u32 {
            if self.get(i).is_some_and(&mut pred)
                && let Some(c) = self.remove(i)
            {
                on_remove(c);
                n += 1;
            }
        }
        n
    }

    /// Visits every live entry (control plane only).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Conn<A>)) {
        for chunk in &self.chunks {
            for s in chunk.iter() {
                if let Slot::Used(c) = s {
                    f(c);
                }
            }
        }
    }

    /// Heap bytes held by this shard (slab + index + wheel).
    pub(crate) fn heap_bytes(&self) -> usize {
        let slab = self.chunks.len() * CHUNK * std::mem::size_of::<Slot<A>>();
        let index = self.index.allocation_size();
        slab + index + WHEEL * 4
    }
}

/// All shards of one address family.
#[derive(Debug)]
pub(crate) struct ConnTable<A> {
    shards: Box<[Mutex<Shard<A>>]>,
    shard_hasher: KeyHasher,
}

impl<A: ConnAddr> ConnTable<A> {
    pub(crate) fn new(shards: usize, seed: u64) -> Self {
        let n = shards.clamp(1, 1 << 16);
        Self {
            shards: (0..n)
                .map(|k| Mutex::new(Shard::new(KeyHasher::with_seed(seed ^ (k as u64) << 17))))
                .collect(),
            shard_hasher: KeyHasher::with_seed(seed.rotate_left(29) ^ 0x5bd1_e995),
        }
    }

    /// The shard of a connection: hash(protocol, caddr, cport).
    #[inline]
    pub(crate) fn shard_index(&self, proto: u8, caddr: A, cport: u16) -> usize {
        let h = self
            .shard_hasher
            .hash(caddr.bits(), 0, u64::from(proto) << 16 | u64::from(cport));
        ((h >> 32) as usize * self.shards.len()) >> 32
    }

    #[inline]
    pub(crate) fn shard(&self, i: usize) -> &Mutex<Shard<A>> {
        // `shard_index` is always < len; fall back to shard 0 rather than panic.
        self.shards.get(i).unwrap_or(&self.shards[0])
    }

    pub(crate) fn shards(&self) -> &[Mutex<Shard<A>>] {
        &self.shards
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().heap_bytes())
            .sum::<usize>()
            + self.shards.len() * std::mem::size_of::<Mutex<Shard<A>>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Arc<Destination> {
        Arc::new(Destination::new(
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
            80,
            1,
        ))
    }

    fn conn(c: u8, cport: u16, now: u32, timeout: u32) -> Conn<Ipv4Addr> {
        Conn::new(
            6,
            Ipv4Addr::new(198, 51, 100, c),
            cport,
            Ipv4Addr::new(198, 51, 100, 250),
            80,
            Ipv4Addr::new(203, 0, 113, 1),
            8080,
            d(),
            None,
            F_INACTIVE,
            now,
            timeout,
        )
    }

    #[test]
    fn entry_sizes() {
        eprintln!(
            "slot sizes: IPv4 {} B, IPv6 {} B",
            std::mem::size_of::<Slot<Ipv4Addr>>(),
            std::mem::size_of::<Slot<Ipv6Addr>>()
        );
        assert!(
            std::mem::size_of::<Slot<Ipv4Addr>>() <= 64,
            "{}",
            std::mem::size_of::<Slot<Ipv4Addr>>()
        );
        assert!(
            std::mem::size_of::<Slot<Ipv6Addr>>() <= 96,
            "{}",
            std::mem::size_of::<Slot<Ipv6Addr>>()
        );
    }

    /// IPv6 clients that vary their subnet bits against their source port (a flood's choice:
    /// both are the sender's) still spread over distinct hashes, in both of a connection's keys.
    #[test]
    fn ipv6_keys_do_not_cancel_ports_against_address_bits() {
        let h = KeyHasher::with_seed(11);
        let vip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
        let rip = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11);
        let mut ins = std::collections::HashSet::new();
        let mut outs = std::collections::HashSet::new();
        for k in 0..4096u16 {
            // The port moves with address bits 32..47 (the high word's bits 16..31: the in-key's
            // client port place in `meta`) or 48..63 (bits 0..15: the out-key's).
            for client in [
                Ipv6Addr::new(0x2001, 0xdb8, k, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0x2001, 0xdb8, 0, k, 0, 0, 0, 2),
            ] {
                ins.insert(key_hash(&h, DIR_IN, 6, client, k, vip, 80));
                outs.insert(key_hash(&h, DIR_OUT, 6, rip, 80, client, k));
            }
        }
        assert_eq!(ins.len(), 8192);
        assert_eq!(outs.len(), 8192);
    }

    #[test]
    fn insert_find_both_ways_and_remove() {
        let mut s: Shard<Ipv4Addr> = Shard::new(KeyHasher::with_seed(1));
        let mut ids = Vec::new();
        for k in 0..3000u32 {
            let c = conn((k % 200) as u8, 1000 + (k / 200) as u16, 0, 1000);
            ids.push(s.insert(c).expect("room"));
        }
        assert_eq!(s.len(), 3000);
        let v = Ipv4Addr::new(198, 51, 100, 250);
        let r = Ipv4Addr::new(203, 0, 113, 1);
        for k in 0..3000u32 {
            let ca = Ipv4Addr::new(198, 51, 100, (k % 200) as u8);
            let cp = 1000 + (k / 200) as u16;
            assert_eq!(s.find_in(6, ca, cp, v, 80), Some(ids[k as usize]));
            assert_eq!(s.find_out(6, r, 8080, ca, cp), Some(ids[k as usize]));
            assert_eq!(s.find_in(17, ca, cp, v, 80), None);
            assert_eq!(s.find_out(6, r, 8081, ca, cp), None);
        }
        let ca = Ipv4Addr::new(198, 51, 100, 7);
        let i = s.find_in(6, ca, 1000, v, 80).expect("present");
        assert!(s.remove(i).is_some());
        assert_eq!(s.find_in(6, ca, 1000, v, 80), None);
        assert_eq!(s.find_out(6, r, 8080, ca, 1000), None);
        assert_eq!(s.len(), 2999);
        // Slot reuse.
        let j = s.insert(conn(7, 1000, 0, 1000)).expect("room");
        assert_eq!(i, j);
    }

    #[test]
    fn wheel_expires_at_the_exact_ms_and_rearms_lazily() {
        let mut s: Shard<Ipv4Addr> = Shard::new(KeyHasher::with_seed(2));
        s.expire(0, usize::MAX, |_| {});
        let a = s.insert(conn(1, 1, 0, 1000)).expect("room");
        let b = s.insert(conn(2, 1, 0, 5000)).expect("room");
        assert_eq!(s.expire(999, usize::MAX, |_| {}).0, 0);
        let mut seen = Vec::new();
        assert_eq!(s.expire(1000, usize::MAX, |c| seen.push(c.caddr)).0, 1);
        assert_eq!(seen, vec![Ipv4Addr::new(198, 51, 100, 1)]);
        assert!(s.get(a).is_none());
        // Refresh b lazily at 4000: now due at 9000.
        s.get_mut(b).expect("b").last_seen = 4000;
        assert_eq!(s.expire(8999, usize::MAX, |_| {}).0, 0);
        assert_eq!(s.expire(9000, usize::MAX, |_| {}).0, 1);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn wheel_handles_long_timeouts_and_clock_jumps() {
        let mut s: Shard<Ipv4Addr> = Shard::new(KeyHasher::with_seed(3));
        s.expire(10, usize::MAX, |_| {});
        // Longer than one wheel revolution (1048 s).
        s.insert(conn(1, 1, 10, 3_600_000)).expect("room");
        s.insert(conn(2, 1, 10, 20_000)).expect("room");
        let mut t = 10;
        let mut n = 0;
        while t + 1000 < 3_600_010 {
            t += 1000;
            n += s.expire(t, usize::MAX, |_| {}).0;
            if t < 20_010 {
                assert_eq!(n, 0);
            }
        }
        assert_eq!(n, 1);
        assert_eq!(s.expire(3_600_009, usize::MAX, |_| {}).0, 0);
        assert_eq!(s.expire(3_600_010, usize::MAX, |_| {}).0, 1);
        // Jump far ahead in one call.
        s.insert(conn(3, 1, 3_600_010, 50)).expect("room");
        assert_eq!(s.expire(3_600_010 + 86_400_000, usize::MAX, |_| {}).0, 1);
    }

    #[test]
    fn budgeted_expiry_resumes() {
        let mut s: Shard<Ipv4Addr> = Shard::new(KeyHasher::with_seed(6));
        s.expire(0, usize::MAX, |_| {});
        for k in 0..250u16 {
            s.insert(conn((k % 250) as u8, k, 0, 1000 + u32::from(k % 3)))
                .expect("room");
        }
        // Nothing due: a budget-limited pass finishes at once.
        assert_eq!(s.expire(999, 100, |_| {}), (0, true));
        assert_eq!(s.len(), 250);
        let mut total = 0;
        let mut calls = 0;
        loop {
            let (n, done) = s.expire(5000, 64, |_| {});
            total += n;
            calls += 1;
            if done {
                break;
            }
        }
        assert_eq!(total, 250);
        assert_eq!(calls, 4);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn backwards_clock_is_harmless() {
        let mut s: Shard<Ipv4Addr> = Shard::new(KeyHasher::with_seed(5));
        s.expire(100_000, usize::MAX, |_| {});
        s.insert(conn(1, 1, 100_000, 1000)).expect("room");
        assert_eq!(s.expire(50_000, usize::MAX, |_| {}).0, 0);
        assert_eq!(s.expire(100_999, usize::MAX, |_| {}).0, 0);
        assert_eq!(s.expire(101_000, usize::MAX, |_| {}).0, 1);
    }

    /// The occupancy bitmap says exactly which buckets hold entries.
    fn assert_bitmap_matches(s: &Shard<Ipv4Addr>) {
        for b in 0..WHEEL {
            let bit = s.occupied[b / 64] >> (b % 64) & 1 == 1;
            assert_eq!(bit, s.wheel[b] != NIL, "bucket {b}");
        }
    }

    #[test]
    fn expire_skips_empty_buckets() {
        let mut s: Shard<Ipv4Addr> = Shard::new(KeyHasher::with_seed(7));
        s.expire(0, usize::MAX, |_| {});
        // An empty shard drained an hour ahead (the fuzz target's last step) walks no bucket.
        assert_eq!(s.expire(3_600_000, usize::MAX, |_| {}), (0, true));
        assert_eq!(s.walked, 0);
        // Two entries: a drain far ahead walks their buckets, not the 4096 of the wheel.
        s.insert(conn(1, 1, 3_600_000, 1000)).expect("room");
        s.insert(conn(2, 1, 3_600_000, 60_000)).expect("room");
        assert_bitmap_matches(&s);
        assert_eq!(s.expire(7_200_000, usize::MAX, |_| {}), (2, true));
        assert_eq!(s.walked, 2);
        assert_bitmap_matches(&s);
        assert_eq!(s.occupied, [0; WHEEL_WORDS]);
        // A refreshed entry re-filed ahead inside the walk is found again and expires on time.
        let a = s.insert(conn(3, 1, 7_200_000, 1000)).expect("room");
        s.get_mut(a).expect("a").last_seen = 7_200_500;
        assert_eq!(s.expire(7_201_499, usize::MAX, |_| {}).0, 0);
        assert_bitmap_matches(&s);
        assert_eq!(s.expire(7_201_500, usize::MAX, |_| {}).0, 1);
        assert_bitmap_matches(&s);
    }

    /// Random inserts, refreshes, timeout cuts, removals and expiries (with small budgets and
    /// clock steps across word and wheel boundaries) against a model of exact deadlines: every
    /// entry expires at the first `expire` at or after its deadline, never before, and the
    /// bitmap always matches the wheel.
    #[test]
    fn bitmap_expiry_matches_model() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut s: Shard<Ipv4Addr> = Shard::new(KeyHasher::with_seed(8));
        let mut now = 5u32;
        s.expire(now, usize::MAX, |_| {});
        // id -> (slot, caddr, cport, deadline)
        let mut live: Vec<(u32, u8, u16, u32)> = Vec::new();
        let mut port = 0u16;
        for _ in 0..20_000 {
            match next(10) {
                0..=3 => {
                    port = port.wrapping_add(1);
                    let c = (port % 251) as u8;
                    let t = [50, 1000, 60_000, 900_000, 2_000_000][next(5) as usize] as u32
                        + next(300) as u32;
                    let i = s.insert(conn(c, port, now, t)).expect("room");
                    live.push((i, c, port, now + t));
                }
                4 if !live.is_empty() => {
                    let k = next(live.len() as u64) as usize;
                    let e = &mut live[k];
                    let c = s.get_mut(e.0).expect("live");
                    c.last_seen = now;
                    e.3 = now + c.timeout;
                }
                5 if !live.is_empty() => {
                    let k = next(live.len() as u64) as usize;
                    let e = &mut live[k];
                    let c = s.get_mut(e.0).expect("live");
                    c.timeout = c.timeout.min(500);
                    e.3 = c.last_seen + c.timeout;
                    s.rearm_if_earlier(e.0);
                }
                6 if !live.is_empty() => {
                    let k = next(live.len() as u64) as usize;
                    let e = live.swap_remove(k);
                    assert!(s.remove(e.0).is_some());
                }
                _ => {
                    now += [1, 255, 256, 16_384, 300_000, 1_100_000][next(6) as usize] as u32;
                    let mut gone = Vec::new();
                    loop {
                        let budget = 1 + next(8) as usize;
                        let (_, done) = s.expire(now, budget, |c| gone.push((c.caddr, c.cport)));
                        if done {
                            break;
                        }
                    }
                    let mut due: Vec<_> = live
                        .iter()
                        .filter(|e| e.3 <= now)
                        .map(|e| (Ipv4Addr::new(198, 51, 100, e.1), e.2))
                        .collect();
                    live.retain(|e| e.3 > now);
                    gone.sort();
                    due.sort();
                    assert_eq!(gone, due, "at {now}");
                }
            }
            assert_eq!(s.len(), live.len());
            if next(50) == 0 {
                assert_bitmap_matches(&s);
            }
        }
        assert_bitmap_matches(&s);
    }

    #[test]
    fn earlier_deadline_rearms_now() {
        let mut s: Shard<Ipv4Addr> = Shard::new(KeyHasher::with_seed(4));
        s.expire(0, usize::MAX, |_| {});
        let a = s.insert(conn(1, 1, 0, 900_000)).expect("room");
        s.get_mut(a).expect("a").timeout = 10_000;
        s.rearm_if_earlier(a);
        assert_eq!(s.expire(9_999, usize::MAX, |_| {}).0, 0);
        assert_eq!(s.expire(10_000, usize::MAX, |_| {}).0, 1);
    }
}
