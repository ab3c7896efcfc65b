//! The director: its state (service snapshot, connection tables, templates, timeouts, drop counters) and the
//! packet path, I/O-free. Configuration changes and listings are in [`control`].

mod control;
/// Connection sync (export for a master, install for a backup): src/director/sync.rs.
pub(crate) mod sync;

pub use control::MemoryUsage;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rvs_wire::{IcmpError, PacketInfo, TcpFlags, Transport, proto, rewrite};

use crate::conn::{
    Conn, ConnAddr, ConnTable, F_INACTIVE, F_MASQ, F_NOOUTPUT, F_ROUTE, F_TUNNEL, Shard,
};
use crate::defense::{Defense, HitAction};
use crate::dest::{Bound, Destination};
use crate::sched::SchedInput;
use crate::service::{ForwardMethod, Fwmark, ServiceKey, TunnelConfig};
use crate::stats::STAT_SLOTS;
use crate::table::{Service, ServiceTable};
use crate::tcp::{TCP_STATES, TcpDir, TcpState, next_state_in};
use crate::template::{Lookup, TemplateHold, TemplateKey, TemplateTable};
use crate::time::Timestamp;
use crate::verdict::{Direction, DropReason, Verdict};
use crate::vips::VipFilter;

/// Longest accepted protocol timeout (connection deadlines are kept on a wrapping 32-bit ms clock).
const MAX_TIMEOUT_S: u32 = 2_000_000;

/// Director construction parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectorConfig {
    /// Connection-table shards per address family (each with its own lock).
    pub shards: usize,
    /// Seed of the connection-table hashes (a caller-supplied secret makes hash flooding hard).
    pub hash_seed: u64,
    /// IPVS's `sloppy_tcp`: a TCP packet without SYN (and without RST) may create a connection.
    pub sloppy_tcp: bool,
    /// IPVS's `sloppy_sctp` (stored; SCTP is not forwarded yet).
    pub sloppy_sctp: bool,
}

impl Default for DirectorConfig {
    fn default() -> Self {
        Self {
            shards: 64,
            hash_seed: 0x0123_4567_89ab_cdef,
            sloppy_tcp: false,
            sloppy_sctp: false,
        }
    }
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct DropSlot([AtomicU64; DropReason::ALL.len()]);

/// The I/O-free IPVS core. `Send + Sync`; every method takes `&self`.
#[derive(Debug)]
pub struct Director {
    pub(crate) services: ArcSwap<ServiceTable>,
    /// The id of the newest virtual service (0: none yet; the next one gets this + 1); its lock
    /// serialises configuration writers (the packet path never takes it).
    last_service_id: Mutex<u64>,
    pub(crate) v4: ConnTable<Ipv4Addr>,
    pub(crate) v6: ConnTable<Ipv6Addr>,
    pub(crate) templates: TemplateTable,
    /// TCP timeouts by state, ms.
    tcp_timeouts: [AtomicU32; TCP_STATES],
    udp_timeout: AtomicU32,
    drops: Box<[DropSlot; STAT_SLOTS]>,
    /// The fast path's hook and generation (fastpath.rs; 0: no fast path).
    pub(crate) fast: std::sync::OnceLock<Arc<dyn crate::fastpath::FastPathSink>>,
    pub(crate) fast_gen: std::sync::atomic::AtomicU8,
    /// `sloppy_tcp` and `sloppy_sctp` (sysctls in IPVS: changeable at run time).
    sloppy_tcp: AtomicBool,
    sloppy_sctp: AtomicBool,
    /// The connection limit and IPVS's defences (defense.rs).
    pub(crate) defense: Defense,
    /// Which addresses may be VIPs, read per packet instead of the snapshot (vips.rs).
    pub(crate) vips: VipFilter,
}

/// How a connection's packets reach its real server: bound when the connection is created (IPVS's
/// `ip_vs_bind_xmit`), whatever its destination's method becomes later.
#[derive(Debug, Clone, Copy)]
enum Xmit {
    Masq,
    Route,
    /// The tunnel parameters are the destination's current ones (as IPVS reads `cp->dest`).
    Tunnel(TunnelConfig),
}

impl Xmit {
    fn of<A>(c: &Conn<A>) -> Self {
        if c.flags & F_ROUTE != 0 {
            Self::Route
        } else if c.flags & F_TUNNEL != 0 {
            Self::Tunnel(c.dest.tunnel())
        } else {
            Self::Masq
        }
    }

    /// The connection flags a new connection to a destination with `method` starts with (IPVS's
    /// `__ip_vs_update_dest`: INACTIVE, and NOOUTPUT unless masq). Local and bypass never reach a
    /// destination (the configuration refuses them); they count as masq to keep this total.
    fn conn_flags(method: ForwardMethod) -> u8 {
        F_INACTIVE
            | match method {
                ForwardMethod::Masq | ForwardMethod::Local | ForwardMethod::Bypass => F_MASQ,
                ForwardMethod::Route => F_ROUTE | F_NOOUTPUT,
                ForwardMethod::Tunnel(_) => F_TUNNEL | F_NOOUTPUT,
            }
    }

    fn from_method(method: ForwardMethod) -> Self {
        match method {
            ForwardMethod::Masq | ForwardMethod::Local | ForwardMethod::Bypass => Self::Masq,
            ForwardMethod::Route => Self::Route,
            ForwardMethod::Tunnel(t) => Self::Tunnel(t),
        }
    }
}

impl Default for Director {
    fn default() -> Self {
        Self::new(DirectorConfig::default())
    }
}

#[inline]
fn now32(now: Timestamp) -> u32 {
    now.0 as u32
}

impl Director {
    /// A director with no services.
    pub fn new(cfg: DirectorConfig) -> Self {
        let tcp_timeouts =
            std::array::from_fn(|i| AtomicU32::new(TcpState::ALL[i].default_timeout_s() * 1000));
        Self {
            services: ArcSwap::from_pointee(ServiceTable::default()),
            last_service_id: Mutex::new(0),
            v4: ConnTable::new(cfg.shards, cfg.hash_seed),
            v6: ConnTable::new(cfg.shards, cfg.hash_seed ^ 0x9e37_79b9_7f4a_7c15),
            templates: TemplateTable::new(cfg.shards, cfg.hash_seed),
            tcp_timeouts,
            udp_timeout: AtomicU32::new(300_000),
            drops: Box::default(),
            defense: Defense::new(cfg.shards.clamp(1, 1 << 16)),
            fast: std::sync::OnceLock::new(),
            fast_gen: std::sync::atomic::AtomicU8::new(0),
            sloppy_tcp: AtomicBool::new(cfg.sloppy_tcp),
            sloppy_sctp: AtomicBool::new(cfg.sloppy_sctp),
            vips: VipFilter::new(cfg.hash_seed),
        }
    }

    /// Turns IPVS's `sloppy_tcp` sysctl on or off (applies from the next packet).
    pub fn set_sloppy_tcp(&self, on: bool) {
        self.sloppy_tcp.store(on, Ordering::Relaxed);
    }

    /// Turns IPVS's `sloppy_sctp` sysctl on or off (applies from the next packet).
    pub fn set_sloppy_sctp(&self, on: bool) {
        self.sloppy_sctp.store(on, Ordering::Relaxed);
    }

    /// Whether `sloppy_tcp` is on.
    pub fn sloppy_tcp(&self) -> bool {
        self.sloppy_tcp.load(Ordering::Relaxed)
    }

    /// Whether `sloppy_sctp` is on.
    pub fn sloppy_sctp(&self) -> bool {
        self.sloppy_sctp.load(Ordering::Relaxed)
    }

    // ---------------------------------------------------------------- data plane

    #[inline]
    fn dropped(&self, reason: DropReason, slot: usize) -> Verdict {
        self.drops[slot % STAT_SLOTS].0[reason.index()].fetch_add(1, Ordering::Relaxed);
        Verdict::Drop(reason)
    }

    #[inline]
    fn tcp_timeout(&self, s: TcpState) -> u32 {
        self.tcp_timeouts[s as usize].load(Ordering::Relaxed)
    }

    /// Moves a TCP connection through IPVS's state table, keeping the destination's
    /// active/inactive counters exact; sets the state's timeout.
    #[inline]
    fn tcp_transition<A>(&self, c: &mut Conn<A>, dir: TcpDir, f: TcpFlags) {
        let dir = if c.flags & F_NOOUTPUT != 0 {
            if dir == TcpDir::Output {
                c.flags &= !F_NOOUTPUT;
                dir
            } else {
                TcpDir::InputOnly
            }
        } else {
            dir
        };
        let old = TcpState::from_u8(c.state);
        let table = self.defense.state_table();
        let new = next_state_in(table, old, dir, f.syn(), f.ack(), f.fin(), f.rst());
        if new != old {
            let active = c.is_active();
            if active && new != TcpState::Established {
                c.dest.set_active(false);
                c.flags |= F_INACTIVE;
            } else if !active && new == TcpState::Established {
                c.dest.set_active(true);
                c.flags &= !F_INACTIVE;
            }
            c.state = new as u8;
        }
        c.timeout = self.tcp_timeout(new);
    }

    /// Per-packet connection update (state, timer, counters).
    #[inline(always)]
    fn touch<A: ConnAddr>(&self, sh: &mut Shard<A>, i: u32, now: u32, flow: &Flow<A>, slot: usize) {
        let Some(c) = sh.get_mut(i) else { return };
        let old_timeout = c.timeout;
        let old_state = c.state;
        match flow.tcp {
            Some(f) => self.tcp_transition(c, tcp_dir(flow.dir), f),
            None => c.timeout = self.udp_timeout.load(Ordering::Relaxed),
        }
        c.last_seen = now;
        if flow.dir == Direction::In {
            c.in_pkts = c.in_pkts.saturating_add(1);
        }
        self.fast_path_step(c, old_state);
        if flow.dir == Direction::Out {
            c.flags &= !F_NOOUTPUT;
        }
        count(c, flow.dir, slot, flow.len);
        if c.timeout < old_timeout {
            sh.rearm_if_earlier(i);
        }
    }

    /// THE data-plane entry point: parses one IP packet (no firewall mark), then
    /// [`Self::process_parsed`].
    pub fn process(&self, now: Timestamp, random: u64, pkt: &mut [u8]) -> Verdict {
        self.process_marked(now, random, Fwmark::NONE, pkt)
    }

    /// [`process`](Self::process) for a packet carrying firewall mark `mark` ([`Fwmark::NONE`]: none).
    pub fn process_marked(
        &self,
        now: Timestamp,
        random: u64,
        mark: Fwmark,
        pkt: &mut [u8],
    ) -> Verdict {
        // Borrowed where parse left it: moving the parse result out of the Result cost ~16
        // instructions a packet (core_icount).
        let mut parsed = rvs_wire::parse(pkt);
        match &mut parsed {
            Ok(info) => self.process_parsed(now, random, mark, pkt, info),
            Err(_) => self.malformed(random),
        }
    }

    /// Counts a packet its caller could not parse (`rvs_wire::parse` failed) as
    /// [`DropReason::Malformed`].
    #[inline]
    pub fn malformed(&self, random: u64) -> Verdict {
        self.dropped(DropReason::Malformed, random as usize)
    }

    /// Classifies, tracks and rewrites one IP packet in place. `info` is `rvs_wire::parse(pkt)`,
    /// owned by the caller and kept current by the rewrites: after a Forward it describes the
    /// packet as it leaves (addresses, ports), so the caller never parses it again.
    ///
    /// `mark` is the packet's firewall mark ([`Fwmark::NONE`]: none). As IPVS's `ip_vs_service_find`, a new
    /// connection goes to the fwmark service of that mark (of the packet's family) first, then to
    /// the service of its address and port; a marked packet needs no VIP as destination.
    #[inline]
    pub fn process_parsed(
        &self,
        now: Timestamp,
        random: u64,
        mark: Fwmark,
        pkt: &mut [u8],
        info: &mut PacketInfo,
    ) -> Verdict {
        match (info.src, info.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let path = Path {
                    conns: &self.v4,
                    mark,
                    now,
                    random,
                };
                self.process_af(&path, pkt, info, s, d)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let path = Path {
                    conns: &self.v6,
                    mark,
                    now,
                    random,
                };
                self.process_af(&path, pkt, info, s, d)
            }
            _ => self.malformed(random),
        }
    }

    /// One packet of one address family: its direction (to a VIP or a marked service: in; else
    /// perhaps a reply: out), its flow, and the path for that direction.
    ///
    /// An established packet decides its direction without the service snapshot (vips.rs): to
    /// an address the VIP filter rules out it is out; to a possible VIP, its client -> VIP
    /// connection, found and of a live address service, proves the VIP. Anything else (a new
    /// connection, a marked packet, a filter collision) reads the snapshot in [`Self::classified`]
    /// and is classified exactly as by the snapshot alone.
    ///
    /// Not inlined: one copy per family keeps each small enough for LLVM to inline the
    /// connection lookup into it (inlined both into `process_parsed`, the lookups became calls,
    /// ~30 instructions a packet more).
    #[inline(never)]
    fn process_af<A: ConnAddr>(
        &self,
        path: &Path<'_, A>,
        pkt: &mut [u8],
        info: &mut PacketInfo,
        src: A,
        dst: A,
    ) -> Verdict {
        let (sport, dport, tcp) = match info.transport {
            Transport::Tcp {
                sport,
                dport,
                flags,
            } => (sport, dport, Some(flags)),
            Transport::Udp { sport, dport } => (sport, dport, None),
            Transport::Fragment { .. } => return self.fragment(path, info),
            Transport::Icmp { error: Some(e), .. } => {
                // An error's side is where it is addressed: a VIP (the client side) or not.
                let side = if self.services.load().is_vip(&info.dst) {
                    Direction::In
                } else {
                    Direction::Out
                };
                return self.icmp_error(path, pkt, info, side, &e);
            }
            Transport::Icmp { .. } | Transport::Other => return Verdict::Pass,
        };
        let mut flow = Flow {
            dir: Direction::Out,
            proto: info.protocol,
            src,
            sport,
            dst,
            dport,
            tcp,
            len: info.ip_len as u64,
        };
        let unmarked = path.mark == Fwmark::NONE;
        if unmarked && !self.vips.may_contain(info.dst) {
            // To no VIP: a real server's reply, or not ours.
            return self.outbound(path, pkt, info, &flow);
        }
        flow.dir = Direction::In;
        let si = flow.shard(path.conns);
        let looked_up = if unmarked {
            match self.existing(path, &flow, si, Known::MaybeVip) {
                Existing::Hit(to) => return self.forward_in(pkt, info, to, si),
                Existing::Deleted => return self.dropped(DropReason::ServiceDeleted, si),
                Existing::DestUnavailable => {
                    return self.dropped(DropReason::DestUnavailable, si);
                }
                Existing::Missing => InLookup::Missing,
                Existing::Unproven => InLookup::Unproven,
            }
        } else {
            InLookup::NotYet
        };
        self.classified(path, pkt, info, &flow, si, looked_up)
    }

    /// The packets the snapshot classifies (see [`Self::process_af`]): `flow` taken as inbound
    /// (its shard `si`), `looked_up` what its client -> VIP lookup found so far. To a VIP or a
    /// marked service: its connection (unless known missing), else a new one; else out.
    #[inline(never)]
    fn classified<A: ConnAddr>(
        &self,
        path: &Path<'_, A>,
        pkt: &mut [u8],
        info: &mut PacketInfo,
        flow: &Flow<A>,
        si: usize,
        looked_up: InLookup,
    ) -> Verdict {
        let svcs = self.services.load();
        let marked = if path.mark == Fwmark::NONE {
            None
        } else {
            svcs.by_mark.get(&(path.mark, info.dst.is_ipv6()))
        };
        // A service of the destination address proves it a VIP; without one the VIP set decides.
        let svc = marked.or_else(|| svcs.lookup(flow.proto, info.dst, flow.dport));
        if svc.is_none() && !svcs.is_vip(&info.dst) {
            let out = Flow {
                dir: Direction::Out,
                ..*flow
            };
            return self.outbound(path, pkt, info, &out);
        }
        if looked_up != InLookup::Missing {
            match self.existing(path, flow, si, Known::Classified) {
                Existing::Hit(to) => return self.forward_in(pkt, info, to, si),
                Existing::Deleted => return self.dropped(DropReason::ServiceDeleted, si),
                Existing::DestUnavailable => {
                    return self.dropped(DropReason::DestUnavailable, si);
                }
                Existing::Missing | Existing::Unproven => {}
            }
        }
        let Some(svc) = svc else {
            return Verdict::Pass;
        };
        self.new_connection(path, pkt, info, flow, si, svc)
    }

    /// A fragment: to a VIP or a marked service dropped (counted; NAT needs reassembly), else
    /// not ours.
    #[cold]
    fn fragment<A>(&self, path: &Path<'_, A>, info: &PacketInfo) -> Verdict {
        let svcs = self.services.load();
        let marked = path.mark != Fwmark::NONE
            && svcs.by_mark.contains_key(&(path.mark, info.dst.is_ipv6()));
        if marked || svcs.is_vip(&info.dst) {
            self.dropped(DropReason::Fragment, path.random as usize)
        } else {
            Verdict::Pass
        }
    }

    /// Anything else: a real server's reply on a tracked connection, else not ours.
    #[inline(always)]
    fn outbound<A: ConnAddr>(
        &self,
        path: &Path<'_, A>,
        pkt: &mut [u8],
        info: &mut PacketInfo,
        flow: &Flow<A>,
    ) -> Verdict {
        let si = flow.shard(path.conns);
        match self.existing(path, flow, si, Known::Classified) {
            Existing::Hit(to) => self.forward_out(pkt, info, to, si),
            Existing::Deleted => self.dropped(DropReason::ServiceDeleted, si),
            Existing::DestUnavailable => self.dropped(DropReason::DestUnavailable, si),
            Existing::Missing | Existing::Unproven => Verdict::Pass,
        }
    }

    /// The tracked connection `flow` belongs to, updated by this packet. A connection of a deleted service is
    /// removed; so is a TIME_WAIT one a client SYN reuses (conn_reuse_mode=1), which then counts as missing.
    /// With [`Known::MaybeVip`] a connection that does not prove the packet's destination a VIP
    /// (its service deleted, or a fwmark service) is left as it is: [`Existing::Unproven`].
    #[inline(always)]
    fn existing<A: ConnAddr>(
        &self,
        path: &Path<'_, A>,
        flow: &Flow<A>,
        si: usize,
        known: Known,
    ) -> Existing<A> {
        let mut sh = path.conns.shard(si).lock();
        let Some(i) = flow.find(&sh) else {
            return Existing::Missing;
        };
        let (deleted, action) = match sh.get(i) {
            Some(c) => {
                let deleted = c.dest.svc.deleted.load(Ordering::Relaxed);
                // An address service's connections have its VIP as vaddr (new_connection, sync
                // install and handover import all find the service by vaddr), and a client ->
                // VIP key match means vaddr == the packet's destination: a live one proves it.
                // (Comparing the addresses here cost new connections ~28 instructions: LLVM
                // then stopped inlining the service lookup.)
                debug_assert!(c.dest.svc.vip.is_none_or(|v| v == c.vaddr.to_ip()));
                if known == Known::MaybeVip && (deleted || c.dest.svc.vip.is_none()) {
                    return Existing::Unproven;
                }
                (
                    deleted,
                    // expire_nodest_conn, conn_reuse_mode (defense.rs).
                    if flow.dir == Direction::In {
                        self.defense.on_hit(c, flow.opens())
                    } else {
                        HitAction::Use
                    },
                )
            }
            None => (false, HitAction::Use),
        };
        if action == HitAction::DropDestUnavailable && !deleted {
            return Existing::DestUnavailable;
        }
        if deleted || action == HitAction::Reschedule {
            if let Some(c) = sh.remove(i) {
                release(c);
            }
            return if deleted {
                Existing::Deleted
            } else {
                Existing::Missing
            };
        }
        self.touch(&mut sh, i, now32(path.now), flow, si);
        sh.get(i).map_or(Existing::Missing, |c| {
            Existing::Hit(Target::of(c, flow.dir))
        })
    }

    /// A new connection to a virtual service: scheduled (through its persistence template),
    /// tracked (unless one-packet scheduling), forwarded.
    fn new_connection<A: ConnAddr>(
        &self,
        path: &Path<'_, A>,
        pkt: &mut [u8],
        info: &mut PacketInfo,
        flow: &Flow<A>,
        si: usize,
        svc: &Service,
    ) -> Verdict {
        if let Some(f) = flow.tcp
            && !crate::sloppy::tcp_may_schedule(
                f.syn(),
                f.rst(),
                self.sloppy_tcp.load(Ordering::Relaxed),
            )
        {
            return self.dropped(DropReason::NotSyn, si);
        }
        if self.defense.drop_new() {
            return self.dropped(DropReason::DropPacket, si);
        }
        let input = SchedInput {
            now: path.now,
            protocol: flow.proto,
            caddr: flow.src.to_ip(),
            cport: flow.sport,
            vaddr: info.dst,
            vport: flow.dport,
            random: path.random,
        };
        // From here on `hold` (the template's hold, if persistent) goes with the connection, or is given back
        // when this function returns without one.
        let picked = match self.pick(svc, &input, false) {
            // No room for a new template: make some as for a connection (drop_entry evicts a
            // half-open or long-idle entry of this flow's shard, with its own template), then
            // create it.
            Err(DropReason::TableFull) if self.evict_one(path, si) => self.pick(svc, &input, true),
            other => other,
        };
        let (dest, hold) = match picked {
            Ok(picked) => picked,
            Err(reason) => return self.dropped(reason, si),
        };
        let Some(daddr) = A::from_ip(dest.addr()) else {
            return self.dropped(DropReason::UnsupportedMethod, si);
        };
        // Read once: the new connection's xmit and its flags come from the same method.
        let method = dest.method();
        let to = Target {
            addr: daddr,
            port: if dest.port() == 0 {
                flow.dport
            } else {
                dest.port()
            },
            xmit: Xmit::from_method(method),
        };
        if svc.spec.one_packet && flow.tcp.is_none() {
            // One-packet scheduling: forwarded, counted, never tracked.
            dest.stats.add_conn(si);
            svc.shared.stats.add_conn(si);
            dest.stats.add_in(si, flow.len);
            svc.shared.stats.add_in(si, flow.len);
            return self.forward_in(pkt, info, to, si);
        }
        let mut sh = path.conns.shard(si).lock();
        if svc.shared.deleted.load(Ordering::SeqCst) {
            return self.dropped(DropReason::ServiceDeleted, si);
        }
        // The template of an evicted connection, removed once the shard lock is released.
        let mut evicted_control = None;
        let i = match flow.find(&sh) {
            // Another worker created it meanwhile: use theirs.
            Some(i) => i,
            None => {
                let timeout = if flow.tcp.is_some() {
                    self.tcp_timeout(TcpState::None)
                } else {
                    self.udp_timeout.load(Ordering::Relaxed)
                };
                let cflags = Xmit::conn_flags(method);
                if self.defense.full(&sh) {
                    // At the limit: evict a victim (drop_entry) or refuse.
                    let Some(v) = self.defense.make_room(&sh, now32(path.now), path.random) else {
                        return self.dropped(DropReason::TableFull, si);
                    };
                    if let Some(c) = sh.remove(v) {
                        evicted_control = crate::defense::release_with_control(c);
                    }
                }
                let conn = Conn::new(
                    flow.proto,
                    flow.src,
                    flow.sport,
                    flow.dst,
                    flow.dport,
                    to.addr,
                    to.port,
                    dest.clone(),
                    hold,
                    cflags,
                    now32(path.now),
                    timeout,
                );
                let Ok(i) = sh.insert(conn) else {
                    return self.dropped(DropReason::TableFull, si);
                };
                dest.bind(Bound::Inactive);
                dest.stats.add_conn(si);
                svc.shared.stats.add_conn(si);
                i
            }
        };
        self.touch(&mut sh, i, now32(path.now), flow, si);
        let to = sh.get(i).map(|c| Target::of(c, Direction::In));
        drop(sh);
        if let Some(t) = evicted_control {
            self.templates.remove_unheld(&t);
        }
        let Some(to) = to else {
            return self.dropped(DropReason::TableFull, si);
        };
        self.forward_in(pkt, info, to, si)
    }

    /// Client -> real server, by the connection's method. Masq: VIP:vport becomes RIP:dport (for an
    /// ICMP error from the client side, the outer destination and the quoted source, the reply it
    /// is about). Route and tunnel: the packet goes to the real server unchanged, ICMP errors
    /// included (ip_vs_icmp_xmit: "no need to translate address/port back").
    #[inline(always)]
    fn forward_in<A: ConnAddr>(
        &self,
        pkt: &mut [u8],
        info: &mut PacketInfo,
        to: Target<A>,
        si: usize,
    ) -> Verdict {
        let (addr, port) = (to.addr.to_ip(), Some(to.port));
        match to.xmit {
            Xmit::Masq => {}
            Xmit::Route => return Verdict::Route { rip: addr },
            Xmit::Tunnel(tunnel) => return Verdict::Tunnel { rip: addr, tunnel },
        }
        let r = if is_icmp_error(info) {
            rewrite::set_dst(pkt, info, addr, None)
                .and_then(|()| rewrite::set_inner_src(pkt, info, addr, port))
        } else {
            rewrite::set_dst(pkt, info, addr, port)
        };
        self.rewritten(r, Direction::In, si)
    }

    /// Real server -> client: RIP:dport becomes VIP:vport. For an ICMP error from the real-server
    /// side the outer source and the quoted destination (the packet it is about) are translated.
    /// Any method: a reply that does come back through the director is masqueraded, as IPVS's
    /// handle_response does for every connection its out-lookup finds (a route or tunnel real
    /// server answers from the VIP, so its replies never match here).
    #[inline(always)]
    fn forward_out<A: ConnAddr>(
        &self,
        pkt: &mut [u8],
        info: &mut PacketInfo,
        to: Target<A>,
        si: usize,
    ) -> Verdict {
        let (addr, port) = (to.addr.to_ip(), Some(to.port));
        let r = if is_icmp_error(info) {
            rewrite::set_src(pkt, info, addr, None)
                .and_then(|()| rewrite::set_inner_dst(pkt, info, addr, port))
        } else {
            rewrite::set_src(pkt, info, addr, port)
        };
        self.rewritten(r, Direction::Out, si)
    }

    #[inline(always)]
    fn rewritten(&self, r: Result<(), rvs_wire::WireError>, dir: Direction, si: usize) -> Verdict {
        match r {
            Ok(()) => Verdict::Forward(dir),
            Err(_) => self.dropped(DropReason::RewriteFailed, si),
        }
    }

    /// Picks a destination for a new connection: through the persistence template when the
    /// service is persistent (ip_vs_sched_persist), else from the scheduler. The hold on the
    /// template, if any, is the new connection's to keep.
    /// The destination for a new connection, through the service's persistence template (found,
    /// or created when the table has room for it or `room_made`).
    fn pick(
        &self,
        svc: &Service,
        input: &SchedInput,
        room_made: bool,
    ) -> Result<(Arc<Destination>, Option<TemplateHold>), DropReason> {
        let Some(mask) = svc.mask else {
            let d = svc
                .sched
                .lock()
                .schedule(input)
                .ok_or(DropReason::NoDestination)?;
            return Ok((d, None));
        };
        let caddr = match input.caddr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask as u32)),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)),
        };
        // A fwmark service's template stands for the mark, whatever the address and port: IPVS
        // keys it with the mark in place of the VIP (`{ .ip = htonl(fwmark) }`) and port 0, so
        // ports 80 and 443 grouped under one mark reach the same real server.
        let (vaddr, vport, fwmark) = match svc.spec.key {
            ServiceKey::Addr { port, .. } => (input.vaddr, port, 0),
            ServiceKey::Fwmark { mark, ipv6: false } => {
                (IpAddr::V4(Ipv4Addr::from(mark.get())), 0, mark.get())
            }
            ServiceKey::Fwmark { mark, ipv6: true } => (
                IpAddr::V6(Ipv6Addr::from(u128::from(mark.get()) << 96)),
                0,
                mark.get(),
            ),
        };
        let key = TemplateKey {
            proto: input.protocol,
            caddr,
            vaddr,
            vport,
            fwmark,
        };
        let quiescent = self.defense.expire_quiescent_templates();
        if let Lookup::Hit(t) = self.templates.lookup(&key, input.now.0, quiescent) {
            return Ok((t.dest().clone(), Some(t)));
        }
        // A new template is an entry of the table like a connection (IPVS's conn_count).
        if !room_made && !self.defense.template_room(self.templates.count()) {
            return Err(DropReason::TableFull);
        }
        let d = svc
            .sched
            .lock()
            .schedule(input)
            .ok_or(DropReason::NoDestination)?;
        let t = self
            .templates
            .insert(key, d, svc.persist_ms, input.now.0, quiescent);
        self.defense.set_templates(self.templates.count());
        Ok((t.dest().clone(), Some(t)))
    }

    /// drop_entry's eviction of one entry from shard `si` (and of its template when no other
    /// connection holds it), to make room for a new template. True if one went.
    fn evict_one<A: ConnAddr>(&self, path: &Path<'_, A>, si: usize) -> bool {
        let control = {
            let mut sh = path.conns.shard(si).lock();
            let Some(v) = self.defense.victim(&sh, now32(path.now), path.random) else {
                return false;
            };
            let Some(c) = sh.remove(v) else {
                return false;
            };
            crate::defense::release_with_control(c)
        };
        if let Some(t) = control {
            self.templates.remove_unheld(&t);
        }
        true
    }

    /// An ICMP error about a tracked connection goes where that connection's packets go. The packet
    /// it quotes went the other way, so the quote reversed is the flow: from the client side
    /// (to a VIP) a reply VIP -> client reversed is inbound; from the real-server side a packet
    /// client -> RIP reversed is outbound. Counted, never a state change.
    fn icmp_error<A: ConnAddr>(
        &self,
        path: &Path<'_, A>,
        pkt: &mut [u8],
        info: &mut PacketInfo,
        dir: Direction,
        e: &IcmpError,
    ) -> Verdict {
        if e.protocol != proto::TCP && e.protocol != proto::UDP {
            return Verdict::Pass;
        }
        let Some((qsport, qdport)) = e.ports else {
            return Verdict::Pass;
        };
        let (Some(qsrc), Some(qdst)) = (A::from_ip(e.src), A::from_ip(e.dst)) else {
            return Verdict::Pass;
        };
        let flow = Flow {
            dir,
            proto: e.protocol,
            src: qdst,
            sport: qdport,
            dst: qsrc,
            dport: qsport,
            tcp: None,
            len: info.ip_len as u64,
        };
        let si = flow.shard(path.conns);
        let to = {
            let sh = path.conns.shard(si).lock();
            let Some(c) = flow.find(&sh).and_then(|i| sh.get(i)) else {
                return Verdict::Pass;
            };
            count(c, dir, si, flow.len);
            Target::of(c, dir)
        };
        match (dir, to.xmit) {
            (Direction::In, _) => self.forward_in(pkt, info, to, si),
            (Direction::Out, Xmit::Masq) => self.forward_out(pkt, info, to, si),
            // Route/tunnel: the real server answers the client itself; not ours to translate.
            (Direction::Out, Xmit::Route | Xmit::Tunnel(_)) => Verdict::Pass,
        }
    }
}

/// What every step of one packet's path reads: its family's connection table, its firewall
/// mark, the clock and the packet's random draw.
struct Path<'a, A> {
    conns: &'a ConnTable<A>,
    /// The packet's firewall mark ([`Fwmark::NONE`]: none).
    mark: Fwmark,
    now: Timestamp,
    random: u64,
}

/// Whether a packet's direction is known when its connection is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// Classified: by the service snapshot, or to an address the VIP filter rules out.
    Classified,
    /// Taken as client -> VIP because the VIP filter allows it: only a connection of a live
    /// address service (whose VIP the destination is) proves it.
    MaybeVip,
}

/// What a client -> VIP lookup found before the snapshot was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InLookup {
    /// Not looked up (a marked packet: the snapshot first).
    NotYet,
    /// No connection.
    Missing,
    /// A connection that proves nothing (left as it was).
    Unproven,
}

/// One packet's connection key in its direction, read once from its parse. In (client -> VIP):
/// `src` is the client; out (real server -> client): `dst` is.
#[derive(Debug, Clone, Copy)]
struct Flow<A> {
    dir: Direction,
    proto: u8,
    src: A,
    sport: u16,
    dst: A,
    dport: u16,
    /// TCP flags (`None`: UDP, or an ICMP error about a connection).
    tcp: Option<TcpFlags>,
    /// IP length, for the byte counters.
    len: u64,
}

impl<A: ConnAddr> Flow<A> {
    /// The connection-table shard (hashed by the client's side, whichever way the packet goes).
    #[inline(always)]
    fn shard(&self, tbl: &ConnTable<A>) -> usize {
        match self.dir {
            Direction::In => tbl.shard_index(self.proto, self.src, self.sport),
            Direction::Out => tbl.shard_index(self.proto, self.dst, self.dport),
        }
    }

    #[inline(always)]
    fn find(&self, sh: &Shard<A>) -> Option<u32> {
        match self.dir {
            Direction::In => sh.find_in(self.proto, self.src, self.sport, self.dst, self.dport),
            Direction::Out => sh.find_out(self.proto, self.src, self.sport, self.dst, self.dport),
        }
    }

    /// A TCP SYN without RST: may open a connection.
    #[inline]
    fn opens(&self) -> bool {
        self.tcp.is_some_and(|f| f.syn() && !f.rst())
    }
}

/// Where a tracked connection sends a packet: in, the real server (daddr:dport) by the
/// connection's method; out, the virtual service (vaddr:vport).
#[derive(Debug, Clone, Copy)]
struct Target<A> {
    addr: A,
    port: u16,
    xmit: Xmit,
}

impl<A: Copy> Target<A> {
    #[inline]
    fn of(c: &Conn<A>, dir: Direction) -> Self {
        let (addr, port) = match dir {
            Direction::In => (c.daddr, c.dport),
            Direction::Out => (c.vaddr, c.vport),
        };
        Self {
            addr,
            port,
            xmit: Xmit::of(c),
        }
    }
}

/// What the connection table knows of a flow.
enum Existing<A> {
    /// Tracked (and updated by this packet): send it to the target.
    Hit(Target<A>),
    /// Its virtual service was deleted (the connection is gone now).
    Deleted,
    /// Its real server was removed (expire_nodest_conn = 0: the connection stays, the packet is dropped).
    DestUnavailable,
    /// Not tracked.
    Missing,
    /// Tracked, but not proof of the packet's direction ([`Known::MaybeVip`]); left unchanged.
    Unproven,
}

#[inline]
fn tcp_dir(dir: Direction) -> TcpDir {
    match dir {
        Direction::In => TcpDir::Input,
        Direction::Out => TcpDir::Output,
    }
}

#[inline]
fn is_icmp_error(info: &PacketInfo) -> bool {
    matches!(info.transport, Transport::Icmp { error: Some(_), .. })
}

/// Counts a packet of connection `c` in the destination's and the service's stats.
#[inline]
fn count<A>(c: &Conn<A>, dir: Direction, slot: usize, len: u64) {
    match dir {
        Direction::In => {
            c.dest.stats.add_in(slot, len);
            c.dest.svc.stats.add_in(slot, len);
        }
        Direction::Out => {
            c.dest.stats.add_out(slot, len);
            c.dest.svc.stats.add_out(slot, len);
        }
    }
}

/// A connection left the table (expired, reset for reuse, or purged): its destination's counters.
/// Its template hold, if any, is given back as it drops.
pub(crate) fn release<A>(c: Conn<A>) {
    c.dest.unbind(Bound::conn(c.is_active()));
}
