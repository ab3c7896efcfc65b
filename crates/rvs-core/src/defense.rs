//! Bounded state and IPVS's defences against connection-table exhaustion.
//!
//! IPVS (net/netfilter/ipvs/ip_vs_ctl.c `update_defense_level`, ip_vs_conn.c
//! `ip_vs_random_dropentry`, ip_vs_proto_tcp.c `tcp_states_dos`, Documentation/networking/
//! ipvs-sysctl.rst) has three defences, each a sysctl with the same four values:
//!
//! | value | meaning |
//! |-------|---------|
//! | 0 | off |
//! | 1 | automatic, currently inactive: switches itself to 2 under memory pressure |
//! | 2 | automatic, currently active: switches itself back to 1 when the pressure is gone |
//! | 3 | always on |
//!
//! - `drop_entry`: every second, scan a random 1/32 of the table and drop half-open TCP entries
//!   (SYN_RECV, SYNACK), and ESTABLISHED/UDP entries idle for at least 60 s with few incoming
//!   packets (1..=8, entries with n packets dropped one in n times).
//! - `drop_packet`: drop one in `rate` new connections, `rate = amemthresh / (amemthresh -
//!   available)` in automatic mode (so every new connection when nothing is left), `am_droprate`
//!   when always on. Counted down as the kernel does (include/net/ip_vs.h `ip_vs_todrop`:
//!   `if (--drop_counter > 0) return 0; drop_counter = drop_rate; return 1;`, the counter re-armed
//!   to the rate at each evaluation under pressure): exactly one in `rate`, not a random draw.
//! - `secure_tcp`: use `tcp_states_dos`, the state table that lets a connection become
//!   ESTABLISHED only once the real server answered ([`crate::tcp::StateTable::Secure`]).
//!
//! **Memory pressure, mapped.** IPVS compares the host's free memory (pages) with `amemthresh`.
//! rvs has a hard connection limit (`max_conns`) instead: "available memory" is the number of
//! entries still free under that limit, and `amemthresh` counts entries. Pressure is
//! `max_conns - conns < amemthresh`; the defence levels are re-evaluated by
//! [`crate::Director::update_defense`] (call it every second, like IPVS's defense_work).
//!
//! **The limit.** `max_conns` counts persistence templates too: IPVS keeps templates in its
//! connection table and counts them in `conn_count` (ip_vs_conn.c `ip_vs_conn_new` increments it
//! for every entry, templates included; the `conn_max` sysctl proposed for ip_vs_conn_new refuses
//! any entry, template or not, at `conn_count >= conn_max`). Connections are limited per shard
//! (`ceil((max_conns - templates) / shards)`, checked under the shard lock the packet already
//! holds: no global counter on the packet path; the share left by the templates is re-read when a
//! template is created and every second); a new template is refused when templates plus the
//! connections at the last evaluation reach `max_conns` (the new connection is then dropped as
//! [`crate::DropReason::TableFull`]). A template goes with the last connection it controls when
//! drop_entry or an eviction removes that connection (ip_vs_random_dropentry deletes
//! `cp->control` with `cp`), so a SYN flood at a persistent service does not leave its templates
//! filling the table for the persistence timeout. A new connection
//! that finds its shard full evicts one victim from a sample of its shard when `drop_entry` is
//! not off (half-open or closed TCP entries first, then the longest idle entry idle for 60 s or
//! more), else it is dropped as [`crate::DropReason::TableFull`]. IPVS has no such limit (it grows
//! until kernel memory runs out); this eviction is rvs's.
//!
//! The dead-destination and port-reuse sysctls live here too: `expire_nodest_conn`,
//! `expire_quiescent_template`, `conn_reuse_mode` (see [`DefenseConfig`]).

use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

use parking_lot::Mutex;

use crate::conn::{Conn, ConnAddr, ConnTable, F_NOOUTPUT, Shard};
use crate::director::{Director, release};
use crate::tcp::{StateTable, TcpState};
use crate::template::{Template, TemplateTable};
use crate::time::Timestamp;

/// One of IPVS's defence sysctls (`drop_entry`, `drop_packet`, `secure_tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum DefenseLevel {
    /// 0: never.
    #[default]
    Off = 0,
    /// 1: automatic, inactive now (no memory pressure).
    Auto = 1,
    /// 2: automatic, active now (memory pressure).
    AutoActive = 2,
    /// 3: always.
    Always = 3,
}

impl DefenseLevel {
    /// From the sysctl value (0..=3).
    pub const fn from_sysctl(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Off),
            1 => Some(Self::Auto),
            2 => Some(Self::AutoActive),
            3 => Some(Self::Always),
            _ => None,
        }
    }

    /// The sysctl value.
    pub const fn sysctl(self) -> u8 {
        self as u8
    }

    /// Whether the defence acts now.
    pub const fn is_active(self) -> bool {
        matches!(self, Self::AutoActive | Self::Always)
    }

    /// The next level after a pressure evaluation (update_defense_level: 1 <-> 2 follow the
    /// pressure; 0 and 3 stay).
    pub const fn next(self, pressure: bool) -> Self {
        match (self, pressure) {
            (Self::Auto | Self::AutoActive, true) => Self::AutoActive,
            (Self::Auto | Self::AutoActive, false) => Self::Auto,
            (other, _) => other,
        }
    }
}

/// What happens to a connection whose real server was removed (`expire_nodest_conn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NoDestConn {
    /// 0 (IPVS's default): the entry stays until it times out; its packets are dropped
    /// ([`crate::DropReason::DestUnavailable`]).
    #[default]
    Drop,
    /// 1: the entry ends at its next packet, which is then scheduled as a new connection (a UDP
    /// flow moves to a live server; a TCP segment other than SYN is dropped as `NotSyn`). Also a
    /// SYN reusing the port of a connection to a quiesced (weight 0) server is rescheduled.
    Expire,
}

/// What happens to a persistence template whose real server is quiesced
/// (`expire_quiescent_template`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QuiescentTemplate {
    /// 0 (IPVS's default): the client keeps going to the quiesced server.
    #[default]
    Keep,
    /// 1: the template expires at its next use; the client's next connection is scheduled anew.
    Expire,
}

/// The defences' configuration (IPVS's sysctls of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DefenseConfig {
    /// Connection-table limit (entries: connections of both families plus persistence templates,
    /// as IPVS's conn_count). `usize::MAX`: none.
    pub max_conns: usize,
    /// Pressure threshold in free entries under `max_conns` (IPVS: free memory pages).
    pub amemthresh: usize,
    /// `drop_packet` = 3: drop one in this many new connections.
    pub am_droprate: u32,
    pub drop_entry: DefenseLevel,
    pub drop_packet: DefenseLevel,
    pub secure_tcp: DefenseLevel,
    pub expire_nodest_conn: NoDestConn,
    pub expire_quiescent_template: QuiescentTemplate,
    /// Bit 0: a SYN on a TIME_WAIT/CLOSE connection (not under a template) starts a new one;
    /// bit 1: also on FIN_WAIT with no output seen (route/tunnel). 0: reuse the old connection.
    pub conn_reuse_mode: u8,
}

impl Default for DefenseConfig {
    /// IPVS's defaults, with no limit.
    fn default() -> Self {
        Self {
            max_conns: usize::MAX,
            amemthresh: 1024,
            am_droprate: 10,
            drop_entry: DefenseLevel::Off,
            drop_packet: DefenseLevel::Off,
            secure_tcp: DefenseLevel::Off,
            expire_nodest_conn: NoDestConn::Drop,
            expire_quiescent_template: QuiescentTemplate::Keep,
            conn_reuse_mode: 1,
        }
    }
}

impl DefenseConfig {
    /// IPVS's defaults with a limit of `max_conns` and pressure when less than 1/8 is free.
    pub fn with_limit(max_conns: usize) -> Self {
        Self {
            max_conns,
            amemthresh: (max_conns / 8).max(1),
            ..Self::default()
        }
    }
}

/// The defences as they stand (`rvsadm --json`, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefenseSnapshot {
    /// The configuration, with the automatic levels as they are now (1 or 2).
    pub config: DefenseConfig,
    /// Connections at the last [`crate::Director::update_defense`].
    pub conns: usize,
    /// Persistence templates at the last evaluation (counted in `max_conns` with the connections).
    pub templates: usize,
    /// Memory pressure at the last evaluation.
    pub pressure: bool,
    /// `drop_packet`'s current rate (0: not dropping; n: one in n new connections).
    pub drop_rate: u32,
    /// Entries removed by `drop_entry`'s periodic scan.
    pub entries_dropped: u64,
    /// Entries evicted to make room for a new connection at the limit.
    pub entries_evicted: u64,
}

/// What to do with a packet that hit an existing inbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HitAction {
    /// Forward on this connection.
    Use,
    /// Remove the connection and schedule the packet as a new one.
    Reschedule,
    /// Drop the packet, keep the connection (expire_nodest_conn = 0).
    DropDestUnavailable,
}

/// The defences' live state, shared by every worker (read-mostly atomics).
#[derive(Debug)]
pub(crate) struct Defense {
    secure: AtomicBool,
    drop_rate: AtomicU32,
    /// ip_vs_todrop's drop_counter: counts down to the next dropped new connection.
    drop_counter: AtomicI32,
    shard_limit: AtomicUsize,
    nodest_expire: AtomicBool,
    quiescent_expire: AtomicBool,
    reuse_mode: AtomicU8,
    drop_entry: AtomicU8,
    drop_packet: AtomicU8,
    secure_tcp: AtomicU8,
    max_conns: AtomicUsize,
    amemthresh: AtomicUsize,
    am_droprate: AtomicU32,
    conns: AtomicUsize,
    templates: AtomicUsize,
    pressure: AtomicBool,
    dropped: AtomicU64,
    evicted: AtomicU64,
    /// ip_vs_conn.c todrop_counter (timer thread only).
    todrop_counter: Mutex<[u8; 9]>,
    shards: usize,
}

/// Idle time after which drop_entry may take an ESTABLISHED or UDP entry (todrop_entry).
const IDLE_MS: u32 = 60_000;
/// Slots sampled when a new connection finds its shard full.
const EVICT_SAMPLE: usize = 64;

impl Defense {
    pub(crate) fn new(shards: usize) -> Self {
        let d = Self {
            secure: AtomicBool::new(false),
            drop_rate: AtomicU32::new(0),
            drop_counter: AtomicI32::new(0),
            shard_limit: AtomicUsize::new(usize::MAX),
            nodest_expire: AtomicBool::new(false),
            quiescent_expire: AtomicBool::new(false),
            reuse_mode: AtomicU8::new(1),
            drop_entry: AtomicU8::new(0),
            drop_packet: AtomicU8::new(0),
            secure_tcp: AtomicU8::new(0),
            max_conns: AtomicUsize::new(usize::MAX),
            amemthresh: AtomicUsize::new(1024),
            am_droprate: AtomicU32::new(10),
            conns: AtomicUsize::new(0),
            templates: AtomicUsize::new(0),
            pressure: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            todrop_counter: Mutex::new([0; 9]),
            shards: shards.max(1),
        };
        d.configure(&DefenseConfig::default());
        d
    }

    pub(crate) fn configure(&self, c: &DefenseConfig) {
        let r = Ordering::Relaxed;
        self.max_conns.store(c.max_conns, r);
        self.set_templates(self.templates.load(r));
        self.amemthresh.store(c.amemthresh, r);
        self.am_droprate.store(c.am_droprate.max(1), r);
        self.drop_entry.store(c.drop_entry.sysctl(), r);
        self.drop_packet.store(c.drop_packet.sysctl(), r);
        self.secure_tcp.store(c.secure_tcp.sysctl(), r);
        self.nodest_expire
            .store(c.expire_nodest_conn == NoDestConn::Expire, r);
        self.quiescent_expire
            .store(c.expire_quiescent_template == QuiescentTemplate::Expire, r);
        self.reuse_mode.store(c.conn_reuse_mode, r);
        // Apply the levels at once with the last known fill.
        self.update(self.conns.load(r), self.templates.load(r));
    }

    /// The templates' share of `max_conns` changed: the connections' per-shard limit becomes
    /// `ceil((max_conns - templates) / shards)` (at least 1). Stores only on a change (the limit is
    /// read by every new connection).
    pub(crate) fn set_templates(&self, templates: usize) {
        let r = Ordering::Relaxed;
        let max = self.max_conns.load(r);
        let per_shard = if max == usize::MAX {
            usize::MAX
        } else {
            max.saturating_sub(templates).div_ceil(self.shards).max(1)
        };
        if self.shard_limit.load(r) != per_shard {
            self.shard_limit.store(per_shard, r);
        }
    }

    /// Whether a new persistence template fits: `templates` (live) plus the connections at the last
    /// evaluation stay under `max_conns` (ip_vs_conn_new refuses a template like any entry).
    #[inline]
    pub(crate) fn template_room(&self, templates: usize) -> bool {
        let r = Ordering::Relaxed;
        let max = self.max_conns.load(r);
        max == usize::MAX || templates.saturating_add(self.conns.load(r)) < max
    }

    fn level(a: &AtomicU8) -> DefenseLevel {
        DefenseLevel::from_sysctl(a.load(Ordering::Relaxed)).unwrap_or_default()
    }

    pub(crate) fn config(&self) -> DefenseConfig {
        let r = Ordering::Relaxed;
        DefenseConfig {
            max_conns: self.max_conns.load(r),
            amemthresh: self.amemthresh.load(r),
            am_droprate: self.am_droprate.load(r),
            drop_entry: Self::level(&self.drop_entry),
            drop_packet: Self::level(&self.drop_packet),
            secure_tcp: Self::level(&self.secure_tcp),
            expire_nodest_conn: if self.nodest_expire.load(r) {
                NoDestConn::Expire
            } else {
                NoDestConn::Drop
            },
            expire_quiescent_template: if self.quiescent_expire.load(r) {
                QuiescentTemplate::Expire
            } else {
                QuiescentTemplate::Keep
            },
            conn_reuse_mode: self.reuse_mode.load(r),
        }
    }

    pub(crate) fn snapshot(&self) -> DefenseSnapshot {
        let r = Ordering::Relaxed;
        DefenseSnapshot {
            config: self.config(),
            conns: self.conns.load(r),
            templates: self.templates.load(r),
            pressure: self.pressure.load(r),
            drop_rate: self.drop_rate.load(r),
            entries_dropped: self.dropped.load(r),
            entries_evicted: self.evicted.load(r),
        }
    }

    /// update_defense_level with the table's fill (connections plus templates) as "memory":
    /// returns whether drop_entry's periodic scan should run now.
    pub(crate) fn update(&self, conns: usize, templates: usize) -> bool {
        let r = Ordering::Relaxed;
        let max = self.max_conns.load(r);
        let thresh = self.amemthresh.load(r);
        let avail = max.saturating_sub(conns.saturating_add(templates));
        let pressure = max != usize::MAX && avail < thresh;
        self.conns.store(conns, r);
        self.templates.store(templates, r);
        self.set_templates(templates);
        self.pressure.store(pressure, r);

        let de = Self::level(&self.drop_entry).next(pressure);
        self.drop_entry.store(de.sysctl(), r);

        let dp = Self::level(&self.drop_packet).next(pressure);
        self.drop_packet.store(dp.sysctl(), r);
        // update_defense_level's drop_packet switch: under pressure (1 and 2) both drop_rate and
        // drop_counter become amemthresh / (amemthresh - availmem) (1: every new connection when
        // full); 3 sets drop_rate = am_droprate and leaves the counter counting down.
        let rate = match dp {
            DefenseLevel::Off | DefenseLevel::Auto => 0,
            DefenseLevel::AutoActive => {
                let rate =
                    u32::try_from(thresh / thresh.saturating_sub(avail).max(1)).unwrap_or(u32::MAX);
                self.drop_counter
                    .store(i32::try_from(rate).unwrap_or(i32::MAX), r);
                rate
            }
            DefenseLevel::Always => self.am_droprate.load(r),
        };
        self.drop_rate.store(rate, r);

        let st = Self::level(&self.secure_tcp).next(pressure);
        self.secure_tcp.store(st.sysctl(), r);
        self.secure.store(st.is_active(), r);
        de.is_active()
    }

    /// The TCP state table in use (secure_tcp).
    #[inline]
    pub(crate) fn state_table(&self) -> StateTable {
        if self.secure.load(Ordering::Relaxed) {
            StateTable::Secure
        } else {
            StateTable::Normal
        }
    }

    /// drop_packet: whether to drop this new connection. ip_vs_todrop (include/net/ip_vs.h):
    /// `if (!drop_rate) return 0; if (--drop_counter > 0) return 0; drop_counter = drop_rate;
    /// return 1;`. The counter is one shared atomic, touched only while drop_packet is active
    /// (drop_rate > 0: under attack or always on); the kernel's is a plain int, racy by design.
    /// Workers racing between the decrement and the re-arm can drop a few more than one in
    /// `rate` (at most one per worker per re-arm), never fewer.
    #[inline]
    pub(crate) fn drop_new(&self) -> bool {
        let r = Ordering::Relaxed;
        let rate = self.drop_rate.load(r);
        if rate == 0 {
            return false;
        }
        if self.drop_counter.fetch_sub(1, r).saturating_sub(1) > 0 {
            return false;
        }
        self.drop_counter
            .store(i32::try_from(rate).unwrap_or(i32::MAX), r);
        true
    }

    pub(crate) fn expire_quiescent_templates(&self) -> bool {
        self.quiescent_expire.load(Ordering::Relaxed)
    }

    /// ip_vs_in_hook's checks on a hit: the real server's availability (expire_nodest_conn) and
    /// port reuse by a new connection (conn_reuse_mode, is_new_conn_expected).
    #[inline]
    pub(crate) fn on_hit<A>(&self, c: &Conn<A>, syn: bool) -> HitAction {
        let r = Ordering::Relaxed;
        if !c.dest.is_in_service() {
            return if self.nodest_expire.load(r) {
                HitAction::Reschedule
            } else {
                HitAction::DropDestUnavailable
            };
        }
        let mode = self.reuse_mode.load(r);
        if !syn || mode == 0 || c.proto != rvs_wire::proto::TCP {
            return HitAction::Use;
        }
        if self.nodest_expire.load(r) && c.dest.weight() == 0 {
            return HitAction::Reschedule;
        }
        let state = TcpState::from_u8(c.state);
        let expected = c.tmpl.is_none()
            && (matches!(state, TcpState::TimeWait | TcpState::Close)
                || (mode & 2 != 0 && state == TcpState::FinWait && c.flags & F_NOOUTPUT != 0));
        if expected {
            HitAction::Reschedule
        } else {
            HitAction::Use
        }
    }

    /// The shard is full: finds a victim to evict for a new connection, if drop_entry allows
    /// it. `None`: no room (the caller drops the packet as TableFull).
    pub(crate) fn make_room<A: ConnAddr>(
        &self,
        sh: &Shard<A>,
        now: u32,
        random: u64,
    ) -> Option<u32> {
        if sh.len() < self.shard_limit.load(Ordering::Relaxed) {
            return None;
        }
        self.victim(sh, now, random)
    }

    /// drop_entry's eviction without the shard-full check: a victim from a sample of `sh`, if
    /// drop_entry is not off. The **longest idle** half-open or closed TCP entry of the sample,
    /// else the longest idle entry idle for 60 s or more. Why the longest idle and not the first
    /// found: a real client's connection is half-open too, for one round trip (its SYN went to the
    /// real server, the SYN-ACK is on its way back); evicting it then lets the SYN-ACK through
    /// un-NATed, the client answers it with a reset and retries a second later. Measured in the
    /// lab (RELIABILITY.md): at 2000 spoofed SYN/s into a full 5000-entry table, real requests' SYN-
    /// ACKs reached the client from the real server's address. A flood's entries are older than a
    /// handshake in progress (the table turns over in seconds, a handshake takes milliseconds),
    /// so the oldest candidate of 64 is a flood's entry unless the whole sample is younger.
    /// Also used to make room for a new persistence template when the table is full.
    pub(crate) fn victim<A: ConnAddr>(&self, sh: &Shard<A>, now: u32, random: u64) -> Option<u32> {
        if Self::level(&self.drop_entry) == DefenseLevel::Off || sh.len() == 0 {
            return None;
        }
        let cap = sh.capacity().max(1);
        let mut half_open = None::<(u32, u32)>;
        let mut idle_long = None::<(u32, u32)>;
        sh.sample((random >> 11) as usize % cap, EVICT_SAMPLE, |i, c| {
            // Idle time, 0 for a last_seen in the future (a clock read by another worker).
            let idle = u32::try_from(now.wrapping_sub(c.last_seen) as i32).unwrap_or(0);
            let best = if half_open_or_closed(c) {
                &mut half_open
            } else if idle >= IDLE_MS {
                &mut idle_long
            } else {
                return true;
            };
            if best.is_none_or(|(_, o)| idle > o) {
                *best = Some((i, idle));
            }
            true
        });
        let v = half_open.or(idle_long).map(|(i, _)| i);
        if v.is_some() {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        v
    }

    /// Whether the shard is at its limit.
    #[inline]
    pub(crate) fn full<A: ConnAddr>(&self, sh: &Shard<A>) -> bool {
        sh.len() >= self.shard_limit.load(Ordering::Relaxed)
    }

    /// ip_vs_random_dropentry on one shard: visits a random 1/32 of its slots and returns the
    /// entries to drop.
    pub(crate) fn dropentry_victims<A: ConnAddr>(
        &self,
        sh: &Shard<A>,
        now: u32,
        random: u64,
    ) -> Vec<u32> {
        let cap = sh.capacity();
        if cap == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut counters = self.todrop_counter.lock();
        sh.sample(random as usize % cap, sh.len().div_ceil(32), |i, c| {
            let drop = if c.proto == rvs_wire::proto::TCP {
                match TcpState::from_u8(c.state) {
                    TcpState::SynRecv | TcpState::SynAck => true,
                    TcpState::Established => todrop_entry(&mut counters, c, now),
                    _ => false,
                }
            } else {
                todrop_entry(&mut counters, c, now)
            };
            if drop {
                out.push(i);
            }
            true
        });
        self.dropped.fetch_add(out.len() as u64, Ordering::Relaxed);
        out
    }
}

impl Director {
    /// Sets the connection limit and the defences (IPVS's sysctls); takes effect at once.
    pub fn set_defense(&self, cfg: DefenseConfig) {
        self.defense.configure(&cfg);
    }

    /// The defences as they stand.
    pub fn defense(&self) -> DefenseSnapshot {
        self.defense.snapshot()
    }

    /// IPVS's defense_work: re-evaluates the defence levels from the table's fill and, when
    /// drop_entry is active, drops entries from a random 1/32 of the table. Call every second.
    /// Returns the entries dropped.
    pub fn update_defense(&self, now: Timestamp, random: u64) -> usize {
        let n = now.0 as u32;
        if !self
            .defense
            .update(self.conn_count(), self.templates.count())
        {
            return 0;
        }
        let mut seed = random;
        random_dropentry(&self.defense, &self.v4, &self.templates, n, &mut seed)
            + random_dropentry(&self.defense, &self.v6, &self.templates, n, &mut seed)
    }
}

fn random_dropentry<A: ConnAddr>(
    d: &Defense,
    tbl: &ConnTable<A>,
    templates: &TemplateTable,
    now: u32,
    seed: &mut u64,
) -> usize {
    let mut total = 0;
    let mut controls = Vec::new();
    for shard in tbl.shards() {
        // splitmix64: one random start per shard.
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let mut sh = shard.lock();
        for i in d.dropentry_victims(&sh, now, z ^ (z >> 31)) {
            if let Some(c) = sh.remove(i) {
                controls.extend(release_with_control(c));
                total += 1;
            }
        }
        drop(sh);
        // The templates after the shard lock (never a template lock under a connection lock).
        for t in controls.drain(..) {
            templates.remove_unheld(&t);
        }
    }
    total
}

/// Releases a connection dropped by a defence and returns its controlling template (its hold
/// given back), for [`TemplateTable::remove_unheld`] once the shard lock is released.
pub(crate) fn release_with_control<A>(mut c: Conn<A>) -> Option<Arc<Template>> {
    let t = c.tmpl.take().map(|h| h.template().clone());
    release(c);
    t
}

/// A TCP entry that is no use to anyone yet or any more: half-open (SYN_RECV, SYNACK: a flood's
/// entries), or closing down (TIME_WAIT, CLOSE).
fn half_open_or_closed<A>(c: &Conn<A>) -> bool {
    c.proto == rvs_wire::proto::TCP
        && matches!(
            TcpState::from_u8(c.state),
            TcpState::SynRecv | TcpState::SynAck | TcpState::TimeWait | TcpState::Close
        )
}

/// ip_vs_conn.c todrop_entry: entries seen in the last 60 s are kept; of the older ones, those
/// with n (1..=8) incoming packets are dropped one in n times; busier ones are kept.
fn todrop_entry<A>(counters: &mut [u8; 9], c: &Conn<A>, now: u32) -> bool {
    let idle = now.wrapping_sub(c.last_seen);
    if (idle as i32) < IDLE_MS as i32 {
        return false;
    }
    let i = usize::from(c.in_pkts);
    let Some(counter) = counters.get_mut(i) else {
        return false;
    };
    if i == 0 {
        return false;
    }
    *counter = counter.saturating_sub(1);
    if *counter > 0 {
        return false;
    }
    *counter = i as u8;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_pressure_as_update_defense_level() {
        use DefenseLevel::*;
        assert_eq!(Off.next(true), Off);
        assert_eq!(Auto.next(true), AutoActive);
        assert_eq!(AutoActive.next(true), AutoActive);
        assert_eq!(AutoActive.next(false), Auto);
        assert_eq!(Always.next(false), Always);
        assert!(!Auto.is_active() && AutoActive.is_active() && Always.is_active());
        assert_eq!(DefenseLevel::from_sysctl(4), None);
    }

    #[test]
    fn drop_rate_is_amemthresh_over_the_shortfall() {
        let d = Defense::new(1);
        d.configure(&DefenseConfig {
            drop_packet: DefenseLevel::Auto,
            ..DefenseConfig::with_limit(1000)
        });
        // amemthresh = 125: no pressure with 875 or fewer entries.
        d.update(875, 0);
        assert_eq!(d.snapshot().config.drop_packet, DefenseLevel::Auto);
        assert_eq!(d.drop_rate.load(Ordering::Relaxed), 0);
        assert!(!d.drop_new());
        // 900 entries (templates count): 100 free, 125 / (125 - 100) = 5.
        d.update(850, 50);
        assert_eq!(d.snapshot().config.drop_packet, DefenseLevel::AutoActive);
        assert_eq!(d.drop_rate.load(Ordering::Relaxed), 5);
        // ip_vs_todrop's countdown from the re-armed counter: 4 pass, the 5th is dropped, and so on.
        let pattern: Vec<bool> = (0..10).map(|_| d.drop_new()).collect();
        assert_eq!(
            pattern,
            [
                false, false, false, false, true, false, false, false, false, true
            ]
        );
        let dropped = (0..10_000u64).filter(|_| d.drop_new()).count();
        assert_eq!(dropped, 2000, "exactly one in five");
        // Full: every new connection.
        d.update(1000, 0);
        assert_eq!(d.drop_rate.load(Ordering::Relaxed), 1);
        assert!((0..100).all(|_| d.drop_new()));
        // Pressure gone: back to 1, nothing dropped.
        d.update(10, 0);
        assert_eq!(d.snapshot().config.drop_packet, DefenseLevel::Auto);
        assert!(!d.drop_new());
        // Always: am_droprate.
        d.configure(&DefenseConfig {
            drop_packet: DefenseLevel::Always,
            am_droprate: 7,
            ..DefenseConfig::with_limit(1000)
        });
        assert_eq!(d.drop_rate.load(Ordering::Relaxed), 7);
        let dropped = (0..700).filter(|_| d.drop_new()).count();
        assert_eq!(dropped, 100, "exactly one in am_droprate");
    }

    #[test]
    fn templates_take_their_share_of_the_limit() {
        let d = Defense::new(4);
        d.configure(&DefenseConfig::with_limit(1000));
        assert_eq!(d.shard_limit.load(Ordering::Relaxed), 250);
        // 200 templates: 800 left for connections, 200 a shard.
        d.set_templates(200);
        assert_eq!(d.shard_limit.load(Ordering::Relaxed), 200);
        d.update(700, 250);
        assert_eq!(d.shard_limit.load(Ordering::Relaxed), 188);
        assert!(d.template_room(299));
        assert!(
            !d.template_room(300),
            "700 connections + 300 templates = the limit"
        );
        assert_eq!(d.snapshot().templates, 250);
        // Templates alone never take every connection's room.
        d.set_templates(5000);
        assert_eq!(d.shard_limit.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn secure_tcp_switches_the_table() {
        let d = Defense::new(4);
        d.configure(&DefenseConfig {
            secure_tcp: DefenseLevel::Auto,
            ..DefenseConfig::with_limit(800)
        });
        assert_eq!(d.state_table(), StateTable::Normal);
        d.update(750, 0);
        assert_eq!(d.state_table(), StateTable::Secure);
        assert_eq!(d.snapshot().config.secure_tcp, DefenseLevel::AutoActive);
        d.update(0, 0);
        assert_eq!(d.state_table(), StateTable::Normal);
        d.configure(&DefenseConfig {
            secure_tcp: DefenseLevel::Always,
            ..DefenseConfig::default()
        });
        assert_eq!(d.state_table(), StateTable::Secure);
    }

    #[test]
    fn no_limit_means_no_pressure() {
        let d = Defense::new(64);
        d.configure(&DefenseConfig {
            drop_entry: DefenseLevel::Auto,
            ..DefenseConfig::default()
        });
        assert!(!d.update(usize::MAX / 2, usize::MAX / 2));
        assert!(!d.snapshot().pressure);
    }
}
