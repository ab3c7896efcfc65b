//! The director: its state (service snapshot, connection tables, templates, timeouts, drop counters) and the
//! packet path, I/O-free. Configuration changes and listings are in [`control`].

mod control;
/// Connection sync (export for a master, install for a backup): src/director/sync.rs.
pub(crate) mod sync;

pub use control::{ConnSnapshot, DestSnapshot, MemoryUsage, ServiceSnapshot};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rvs_wire::{IcmpError, PacketInfo, TcpFlags, Transport, proto, rewrite};

use crate::conn::{
    Conn, ConnAddr, ConnTable, F_INACTIVE, F_MASQ, F_NOOUTPUT, F_ROUTE, F_TUNNEL, Shard,
};
use crate::dest::Destination;
use crate::sched::SchedInput;
use crate::service::{ForwardMethod, ServiceKey, TunnelConfig};
use crate::stats::STAT_SLOTS;
use crate::table::{Service, ServiceTable};
use crate::tcp::{TCP_STATES, TcpDir, TcpState, next_state};
use crate::template::{Lookup, TemplateKey, TemplateTable};
use crate::time::Timestamp;
use crate::verdict::{Direction, DropReason, Verdict};

/// Longest accepted protocol timeout (connection deadlines are kept on a wrapping 32-bit ms clock).
const MAX_TIMEOUT_S: u32 = 2_000_000;

/// Director construction parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectorConfig {
    /// Connection-table shards per address family (each with its own lock).
    pub shards: usize,
    /// Seed of the connection-table hashes (a caller-supplied secret makes hash flooding hard).
    pub hash_seed: u64,
}

impl Default for DirectorConfig {
    fn default() -> Self {
        Self {
            shards: 64,
            hash_seed: 0x0123_4567_89ab_cdef,
        }
    }
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct DropSlot([AtomicU64; DropReason::ALL.len()]);

/// The I/O-free IPVS core. `Send + Sync`; every method takes `&self`.
#[derive(Debug)]
pub struct Director {
    services: ArcSwap<ServiceTable>,
    /// Serialises configuration writers (the packet path never takes it).
    config: Mutex<u64>,
    pub(crate) v4: ConnTable<Ipv4Addr>,
    pub(crate) v6: ConnTable<Ipv6Addr>,
    templates: TemplateTable,
    /// TCP timeouts by state, ms.
    tcp_timeouts: [AtomicU32; TCP_STATES],
    udp_timeout: AtomicU32,
    drops: Box<[DropSlot; STAT_SLOTS]>,
    /// The fast path's hook and generation (fastpath.rs; 0: no fast path).
    pub(crate) fast: std::sync::OnceLock<Arc<dyn crate::fastpath::FastPathSink>>,
    pub(crate) fast_gen: std::sync::atomic::AtomicU8,
}

/// What a hit on an inbound connection yields.
struct InHit<A> {
    daddr: A,
    dport: u16,
    xmit: Xmit,
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
    /// `__ip_vs_update_dest`: INACTIVE, and NOOUTPUT unless masq).
    fn conn_flags(method: ForwardMethod) -> u8 {
        F_INACTIVE
            | match method {
                ForwardMethod::Masq => F_MASQ,
                ForwardMethod::Route => F_ROUTE | F_NOOUTPUT,
                ForwardMethod::Tunnel(_) => F_TUNNEL | F_NOOUTPUT,
            }
    }

    fn from_method(method: ForwardMethod) -> Self {
        match method {
            ForwardMethod::Masq => Self::Masq,
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
            config: Mutex::new(0),
            v4: ConnTable::new(cfg.shards, cfg.hash_seed),
            v6: ConnTable::new(cfg.shards, cfg.hash_seed ^ 0x9e37_79b9_7f4a_7c15),
            templates: TemplateTable::new(cfg.shards, cfg.hash_seed),
            tcp_timeouts,
            udp_timeout: AtomicU32::new(300_000),
            drops: Box::default(),
            fast: std::sync::OnceLock::new(),
            fast_gen: std::sync::atomic::AtomicU8::new(0),
        }
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
        let new = next_state(old, dir, f.syn(), f.ack(), f.fin(), f.rst());
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
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn touch<A: ConnAddr>(
        &self,
        sh: &mut Shard<A>,
        i: u32,
        now: u32,
        dir: TcpDir,
        flags: Option<TcpFlags>,
        len: u64,
        slot: usize,
    ) {
        let Some(c) = sh.get_mut(i) else { return };
        let old_timeout = c.timeout;
        let old_state = c.state;
        match flags {
            Some(f) => self.tcp_transition(c, dir, f),
            None => c.timeout = self.udp_timeout.load(Ordering::Relaxed),
        }
        c.last_seen = now;
        self.fast_path_step(c, old_state);
        if dir == TcpDir::Output {
            c.flags &= !F_NOOUTPUT;
            c.dest.stats.add_out(slot, len);
            c.dest.svc.stats.add_out(slot, len);
        } else {
            c.dest.stats.add_in(slot, len);
            c.dest.svc.stats.add_in(slot, len);
        }
        if c.timeout < old_timeout {
            sh.rearm_if_earlier(i);
        }
    }

    /// THE data-plane entry point: classify, track and rewrite one IP packet in place.
    pub fn process(&self, now: Timestamp, random: u64, pkt: &mut [u8]) -> Verdict {
        self.process_marked(now, random, 0, pkt)
    }

    /// [`process`](Self::process) for a packet carrying firewall mark `mark` (0: none). As IPVS's
    /// `ip_vs_service_find`, a new connection goes to the fwmark service of that mark (of the
    /// packet's family) first, then to the service of its address and port; a marked packet needs
    /// no VIP as destination.
    pub fn process_marked(
        &self,
        now: Timestamp,
        random: u64,
        mark: u32,
        pkt: &mut [u8],
    ) -> Verdict {
        let Ok(info) = rvs_wire::parse(pkt) else {
            return self.dropped(DropReason::Malformed, random as usize);
        };
        let table = self.services.load();
        match (info.src, info.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.process_af(&self.v4, &table, now, random, mark, pkt, &info, s, d)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                self.process_af(&self.v6, &table, now, random, mark, pkt, &info, s, d)
            }
            _ => self.dropped(DropReason::Malformed, random as usize),
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn process_af<A: ConnAddr>(
        &self,
        tbl: &ConnTable<A>,
        svcs: &ServiceTable,
        now: Timestamp,
        random: u64,
        mark: u32,
        pkt: &mut [u8],
        info: &PacketInfo,
        src: A,
        dst: A,
    ) -> Verdict {
        let marked = if mark == 0 {
            None
        } else {
            svcs.by_mark.get(&(mark, info.dst.is_ipv6()))
        };
        let (sport, dport, flags) = match info.transport {
            Transport::Tcp {
                sport,
                dport,
                flags,
            } => (sport, dport, Some(flags)),
            Transport::Udp { sport, dport } => (sport, dport, None),
            Transport::Fragment { .. } => {
                return if marked.is_some() || svcs.vips.contains(&info.dst) {
                    self.dropped(DropReason::Fragment, random as usize)
                } else {
                    Verdict::Pass
                };
            }
            Transport::Icmp { error: Some(e), .. } => {
                return self.icmp_error(tbl, svcs, now, pkt, info, &e);
            }
            Transport::Icmp { .. } | Transport::Other => return Verdict::Pass,
        };
        let proto = info.protocol;
        let len = info.ip_len as u64;
        let n = now32(now);
        if marked.is_some() || svcs.vips.contains(&info.dst) {
            let at = (now, random, n);
            self.inbound(
                tbl, svcs, marked, at, pkt, info, proto, src, sport, dst, dport, flags, len,
            )
        } else {
            // Reply from a real server? (out: RS -> client; the client is the destination.)
            let si = tbl.shard_index(proto, dst, dport);
            let hit = {
                let mut sh = tbl.shard(si).lock();
                match sh.find_out(proto, src, sport, dst, dport) {
                    None => None,
                    Some(i) => {
                        if sh
                            .get(i)
                            .is_some_and(|c| c.dest.svc.deleted.load(Ordering::Relaxed))
                        {
                            if let Some(c) = sh.remove(i) {
                                release(c);
                            }
                            drop(sh);
                            return self.dropped(DropReason::ServiceDeleted, si);
                        }
                        self.touch(&mut sh, i, n, TcpDir::Output, flags, len, si);
                        sh.get(i).map(|c| (c.vaddr, c.vport))
                    }
                }
            };
            // Any method: a reply that does come back through the director is masqueraded, as
            // IPVS's handle_response does for every connection its out-lookup finds (a route or
            // tunnel real server answers from the VIP, so its replies never match here).
            match hit {
                None => Verdict::Pass,
                Some((vaddr, vport)) => {
                    match rewrite::set_src(pkt, &mut { *info }, vaddr.to_ip(), Some(vport)) {
                        Ok(()) => Verdict::Forward(Direction::Out),
                        Err(_) => self.dropped(DropReason::RewriteFailed, si),
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn inbound<A: ConnAddr>(
        &self,
        tbl: &ConnTable<A>,
        svcs: &ServiceTable,
        marked: Option<&Arc<Service>>,
        (now, random, n): (Timestamp, u64, u32),
        pkt: &mut [u8],
        info: &PacketInfo,
        proto: u8,
        caddr: A,
        cport: u16,
        vaddr: A,
        vport: u16,
        flags: Option<TcpFlags>,
        len: u64,
    ) -> Verdict {
        let si = tbl.shard_index(proto, caddr, cport);
        let is_syn = flags.is_some_and(|f| f.syn() && !f.rst());
        // 1. An existing connection?
        let hit = {
            let mut sh = tbl.shard(si).lock();
            match sh.find_in(proto, caddr, cport, vaddr, vport) {
                None => None,
                Some(i) => {
                    let (deleted, reuse) = match sh.get(i) {
                        Some(c) => (
                            c.dest.svc.deleted.load(Ordering::Relaxed),
                            // conn_reuse_mode=1: a SYN on a TIME_WAIT connection starts anew.
                            is_syn && c.state == TcpState::TimeWait as u8,
                        ),
                        None => (false, false),
                    };
                    if deleted || reuse {
                        if let Some(c) = sh.remove(i) {
                            release(c);
                        }
                        if deleted {
                            drop(sh);
                            return self.dropped(DropReason::ServiceDeleted, si);
                        }
                        None
                    } else {
                        self.touch(&mut sh, i, n, TcpDir::Input, flags, len, si);
                        sh.get(i).map(|c| InHit {
                            daddr: c.daddr,
                            dport: c.dport,
                            xmit: Xmit::of(c),
                        })
                    }
                }
            }
        };
        if let Some(h) = hit {
            return self.forward_in(pkt, info, h, si);
        }
        // 2. A new connection to a virtual service.
        let Some(svc) = marked.or_else(|| svcs.lookup(proto, info.dst, vport)) else {
            return Verdict::Pass;
        };
        if flags.is_some() && !is_syn {
            return self.dropped(DropReason::NotSyn, si);
        }
        let input = SchedInput {
            now,
            protocol: proto,
            caddr: caddr.to_ip(),
            cport,
            vaddr: info.dst,
            vport,
            random,
        };
        let Some((dest, tmpl)) = self.pick(svc, &input) else {
            return self.dropped(DropReason::NoDestination, si);
        };
        let Some(daddr) = A::from_ip(dest.addr()) else {
            if let Some(t) = tmpl {
                t.release();
            }
            return self.dropped(DropReason::UnsupportedMethod, si);
        };
        let dport = if dest.port() == 0 { vport } else { dest.port() };
        let method = dest.method();
        if svc.spec.one_packet && flags.is_none() {
            // One-packet scheduling: forwarded, counted, never tracked.
            if let Some(t) = tmpl {
                t.release();
            }
            dest.stats.add_conn(si);
            svc.shared.stats.add_conn(si);
            dest.stats.add_in(si, len);
            svc.shared.stats.add_in(si, len);
            let xmit = Xmit::from_method(method);
            return self.forward_in(pkt, info, InHit { daddr, dport, xmit }, si);
        }
        let hit = {
            let mut sh = tbl.shard(si).lock();
            if svc.shared.deleted.load(Ordering::SeqCst) {
                drop(sh);
                if let Some(t) = tmpl {
                    t.release();
                }
                return self.dropped(DropReason::ServiceDeleted, si);
            }
            let i = match sh.find_in(proto, caddr, cport, vaddr, vport) {
                Some(i) => {
                    // Another worker created it meanwhile: use theirs.
                    if let Some(t) = tmpl {
                        t.release();
                    }
                    i
                }
                None => {
                    let timeout = if flags.is_some() {
                        self.tcp_timeout(TcpState::None)
                    } else {
                        self.udp_timeout.load(Ordering::Relaxed)
                    };
                    let cflags = Xmit::conn_flags(method);
                    let conn = Conn::new(
                        proto,
                        caddr,
                        cport,
                        vaddr,
                        vport,
                        daddr,
                        dport,
                        dest.clone(),
                        tmpl,
                        cflags,
                        n,
                        timeout,
                    );
                    match sh.insert(conn) {
                        Ok(i) => {
                            dest.bind(false, false);
                            dest.stats.add_conn(si);
                            svc.shared.stats.add_conn(si);
                            i
                        }
                        Err(c) => {
                            if let Some(t) = c.tmpl {
                                t.release();
                            }
                            drop(sh);
                            return self.dropped(DropReason::TableFull, si);
                        }
                    }
                }
            };
            self.touch(&mut sh, i, n, TcpDir::Input, flags, len, si);
            sh.get(i).map(|c| InHit {
                daddr: c.daddr,
                dport: c.dport,
                xmit: Xmit::of(c),
            })
        };
        match hit {
            Some(h) => self.forward_in(pkt, info, h, si),
            None => self.dropped(DropReason::TableFull, si),
        }
    }

    #[inline]
    fn forward_in<A: ConnAddr>(
        &self,
        pkt: &mut [u8],
        info: &PacketInfo,
        h: InHit<A>,
        si: usize,
    ) -> Verdict {
        match h.xmit {
            Xmit::Masq => {
                match rewrite::set_dst(pkt, &mut { *info }, h.daddr.to_ip(), Some(h.dport)) {
                    Ok(()) => Verdict::Forward(Direction::In),
                    Err(_) => self.dropped(DropReason::RewriteFailed, si),
                }
            }
            Xmit::Route => Verdict::Route {
                rip: h.daddr.to_ip(),
            },
            Xmit::Tunnel(tunnel) => Verdict::Tunnel {
                rip: h.daddr.to_ip(),
                tunnel,
            },
        }
    }

    /// Picks a destination for a new connection: through the persistence template when the
    /// service is persistent (ip_vs_sched_persist), else from the scheduler.
    fn pick(
        &self,
        svc: &Service,
        input: &SchedInput,
    ) -> Option<(Arc<Destination>, Option<Arc<crate::template::Template>>)> {
        let Some(mask) = svc.mask else {
            let d = svc.sched.lock().schedule(input)?;
            return Some((d, None));
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
            ServiceKey::Fwmark { mark, ipv6: false } => (IpAddr::V4(Ipv4Addr::from(mark)), 0, mark),
            ServiceKey::Fwmark { mark, ipv6: true } => {
                (IpAddr::V6(Ipv6Addr::from(u128::from(mark) << 96)), 0, mark)
            }
        };
        let key = TemplateKey {
            proto: input.protocol,
            caddr,
            vaddr,
            vport,
            fwmark,
        };
        if let Lookup::Hit(t) = self.templates.lookup(&key, input.now.0) {
            return Some((t.dest.clone(), Some(t)));
        }
        let d = svc.sched.lock().schedule(input)?;
        let t = self.templates.insert(key, d, svc.persist_ms, input.now.0);
        Some((t.dest.clone(), Some(t)))
    }

    /// ICMP errors about tracked connections: translate the outer and the quoted header.
    fn icmp_error<A: ConnAddr>(
        &self,
        tbl: &ConnTable<A>,
        svcs: &ServiceTable,
        _now: Timestamp,
        pkt: &mut [u8],
        info: &PacketInfo,
        e: &IcmpError,
    ) -> Verdict {
        if e.protocol != proto::TCP && e.protocol != proto::UDP {
            return Verdict::Pass;
        }
        let Some((isport, idport)) = e.ports else {
            return Verdict::Pass;
        };
        let (Some(isrc), Some(idst)) = (A::from_ip(e.src), A::from_ip(e.dst)) else {
            return Verdict::Pass;
        };
        let len = info.ip_len as u64;
        if svcs.vips.contains(&info.dst) {
            // From the client side about a packet we sent VIP -> client.
            let si = tbl.shard_index(e.protocol, idst, idport);
            let hit = {
                let sh = tbl.shard(si).lock();
                sh.find_in(e.protocol, idst, idport, isrc, isport)
                    .and_then(|i| sh.get(i))
                    .map(|c| {
                        c.dest.stats.add_in(si, len);
                        c.dest.svc.stats.add_in(si, len);
                        (c.daddr.to_ip(), c.dport, Xmit::of(c))
                    })
            };
            // Route and tunnel connections carry the ICMP error to the real server unchanged
            // (ip_vs_icmp_xmit: "no need to translate address/port back").
            match hit {
                None => Verdict::Pass,
                Some((rip, _, Xmit::Route)) => Verdict::Route { rip },
                Some((rip, _, Xmit::Tunnel(tunnel))) => Verdict::Tunnel { rip, tunnel },
                Some((daddr, dport, Xmit::Masq)) => {
                    let r = rewrite::set_dst(pkt, &mut { *info }, daddr, None).and_then(|()| {
                        rewrite::set_inner_src(pkt, &mut { *info }, daddr, Some(dport))
                    });
                    match r {
                        Ok(()) => Verdict::Forward(Direction::In),
                        Err(_) => self.dropped(DropReason::RewriteFailed, si),
                    }
                }
            }
        } else {
            // From the real-server side about a packet client -> RS.
            let si = tbl.shard_index(e.protocol, isrc, isport);
            let hit = {
                let sh = tbl.shard(si).lock();
                sh.find_out(e.protocol, idst, idport, isrc, isport)
                    .and_then(|i| sh.get(i))
                    .map(|c| {
                        c.dest.stats.add_out(si, len);
                        c.dest.svc.stats.add_out(si, len);
                        (c.vaddr.to_ip(), c.vport, c.flags & F_MASQ != 0)
                    })
            };
            match hit {
                // Route/tunnel: the real server answers the client itself; not ours to translate.
                None | Some((_, _, false)) => Verdict::Pass,
                Some((vaddr, vport, true)) => {
                    let r = rewrite::set_src(pkt, &mut { *info }, vaddr, None).and_then(|()| {
                        rewrite::set_inner_dst(pkt, &mut { *info }, vaddr, Some(vport))
                    });
                    match r {
                        Ok(()) => Verdict::Forward(Direction::Out),
                        Err(_) => self.dropped(DropReason::RewriteFailed, si),
                    }
                }
            }
        }
    }
}

/// A connection left the table (expired, reset for reuse, or purged): counters and template.
fn release<A>(c: Conn<A>) {
    c.dest.unbind(false, c.is_active());
    if let Some(t) = &c.tmpl {
        t.release();
    }
}
