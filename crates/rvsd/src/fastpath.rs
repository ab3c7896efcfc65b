//! `--fast-path xdp`: established connections forwarded by rvs-xdp's XDP program on the public and private
//! interfaces; the TUN and the workers stay the slow path for everything else.
//!
//! The core offers a connection when it becomes ESTABLISHED (UDP: at once) through [`Sink`], which only queues it
//! (it is called under a connection-table lock). The `rvsd-fastpath` thread installs both entries of a masq
//! connection (client -> VIP and real server -> client; a route or tunnel connection has only the first: its replies
//! bypass the director, and its entry rewrites the frame or pushes the tunnel's headers) with the next hops the resolver knows ([`crate::nexthop::NextHops`]); a connection whose next hop is
//! not known yet is retried for a few seconds and otherwise stays on the slow path, as does one the full map
//! refuses. Once a second [`FastPathCtl::sync`] credits what the program forwarded to the core (counters,
//! last-seen) *before* the core expires anything, and removes the entries of connections the core no longer has
//! in ESTABLISHED. A configuration change flushes every entry before the control command returns
//! ([`FastPathCtl::flush`]); what is still valid comes back at its next slow-path packet.
//!
//! Never a black hole: `bpf_redirect_map` succeeds even towards an interface that drops redirected frames (a veth
//! whose peer has neither GRO nor an XDP program, a bridge, a driver without `ndo_xdp_xmit`), and the frame is then
//! lost after the program returned. Each egress's XDP features are read at start and once a second
//! ([`rvs_xdp::Features`]); an egress that does not transmit redirected frames is used by no entry (its
//! connections are taken off the fast path and stay on the slow path), said once with the reason, and taken back
//! (a new generation: connections are offered again) when it does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rvs_core::{
    Director, FastConn, FastCredit, FastPathSink, ForwardMethod, TcpState, Timestamp, TunnelConfig,
};
use rvs_wire::encap::{TunnelCsum, TunnelKind};
use rvs_xdp::{
    Egress, Encap, FastPath, Features, Flow, FlowCounters, FlowKey, L4, OuterCsum, Stat, Transmit,
};

use crate::ratelimit::{Admit, RateLimiter};
use crate::xmit::MethodPaths;

/// Offers and withdrawals queued for the fast-path thread (beyond, offers are refused and come again).
const QUEUE: usize = 8192;
/// How long a connection whose next hop is unknown is retried.
const NEXT_HOP_RETRY: Duration = Duration::from_secs(3);

/// What the core told the fast path.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    Offload(FastConn),
    Withdraw(FastConn),
}

/// The core's hook: queues, never blocks.
#[derive(Debug)]
pub struct Sink {
    tx: SyncSender<Event>,
    /// A withdrawal did not fit in the queue: the fast-path thread checks every entry against the core at once
    /// (a closed connection's entry must not outlive it: a new connection on the same 4-tuple would take it).
    lost: Arc<AtomicBool>,
}

impl FastPathSink for Sink {
    fn offload(&self, c: &FastConn) -> bool {
        self.tx.try_send(Event::Offload(*c)).is_ok()
    }
    fn withdraw(&self, c: &FastConn) {
        if self.tx.try_send(Event::Withdraw(*c)).is_err() {
            self.lost.store(true, Ordering::Relaxed);
        }
    }
}

/// The fast-path thread's end of [`channel`].
#[derive(Debug)]
pub struct Events {
    rx: Receiver<Event>,
    lost: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Copy)]
struct Managed {
    kin: FlowKey,
    /// The reply's entry (masq only: direct routing and tunnelling never see a reply).
    kout: Option<FlowKey>,
    /// The egress interfaces of the two entries.
    egress: [u32; 2],
    credited_in: FlowCounters,
    credited_out: FlowCounters,
}

/// Whether the fast path may redirect to an egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortUse {
    /// It transmits redirected frames.
    Redirect,
    /// It would drop them (or could not be checked): its connections stay on the slow path.
    SlowPath,
}

/// An interface the program is attached to, which is also the only kind of egress it redirects to.
#[derive(Debug)]
struct Port {
    ifindex: u32,
    name: String,
    usable: PortUse,
}

#[derive(Debug)]
struct Inner {
    fp: FastPath,
    ports: Vec<Port>,
    /// None: the kernel cannot say (before 6.3); every port is then assumed to transmit, as before.
    features: Option<Features>,
    conns: HashMap<FastConn, Managed>,
    /// Which connection each installed entry (client -> VIP, and a masq reply's) belongs to. One key, one
    /// connection: a connection that reuses a 4-tuple (TIME_WAIT reuse) replaces whatever entry an earlier one left.
    owner: HashMap<FlowKey, FastConn>,
    pending: Vec<(FastConn, Instant)>,
    full_log: RateLimiter,
}

/// The fast path as rvsd drives it.
#[derive(Debug)]
pub struct FastPathCtl {
    inner: Mutex<Inner>,
    /// Next hops (`paths.hops`) and the tunnels' source addresses.
    paths: Arc<MethodPaths>,
}

fn ifindex(name: &str) -> std::io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

/// Whether a start may take over what a previous rvsd pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// The previous rvsd handed its table over (planned restart): reuse its pinned maps and links.
    Adopt,
    /// First start, after a stop, or after a crash: remove whatever is pinned and start empty.
    Fresh,
}

/// Why the fast path could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("interface {0}: {1}")]
    Interface(String, std::io::Error),
    #[error(transparent)]
    Xdp(#[from] rvs_xdp::Error),
}

impl FastPathCtl {
    /// Load the program and attach it natively to `ifaces`. Nothing stays attached on error. With a pin directory,
    /// `takeover` says whether the previous rvsd's pinned maps and links are taken over (their entries become this
    /// run's connections, checked against the core at the first sync) or removed first.
    pub fn start(
        ifaces: &[&str],
        paths: Arc<MethodPaths>,
        max_entries: u32,
        gate_buckets: u32,
        pin_dir: Option<&std::path::Path>,
        takeover: Takeover,
    ) -> Result<Self, StartError> {
        if let (Some(dir), Takeover::Fresh) = (pin_dir, takeover) {
            let n = FastPath::clear_pins(dir)?;
            if n > 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    removed = n,
                    "removed the fast-path pins a previous rvsd left (no hand-over: it crashed or was stopped)"
                );
            }
        }
        let opts = rvs_xdp::Options {
            max_flow_entries: max_entries,
            pin_dir: pin_dir.map(std::path::Path::to_path_buf),
            gate_buckets,
        };
        let mut fp = match FastPath::load(opts.clone()) {
            Err(e @ rvs_xdp::Error::PinnedIncompatible { .. }) => {
                tracing::warn!(error = %e, "not taking the fast path over: starting it empty");
                if let Some(dir) = pin_dir {
                    FastPath::clear_pins(dir)?;
                }
                FastPath::load(opts)?
            }
            r => r?,
        };
        let mut ports = Vec::new();
        for name in ifaces {
            let i = ifindex(name).map_err(|e| StartError::Interface((*name).to_owned(), e))?;
            if ports.iter().any(|p: &Port| p.ifindex == i) {
                continue; // a one-armed director: public and private are one interface
            }
            fp.attach(i)?; // on error, dropping fp detaches what was attached
            ports.push(Port {
                ifindex: i,
                name: (*name).to_owned(),
                usable: PortUse::Redirect,
            });
        }
        let features = match Features::new() {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot read interfaces' XDP features: egresses are assumed to transmit redirected frames"
                );
                None
            }
        };
        let mut inner = Inner {
            fp,
            ports,
            features,
            conns: HashMap::new(),
            owner: HashMap::new(),
            pending: Vec::new(),
            full_log: RateLimiter::new(1, 60_000),
        };
        probe_ports(&mut inner);
        Ok(Self {
            inner: Mutex::new(inner),
            paths,
        })
    }

    /// Take over what a previous rvsd left in the pinned map (a planned restart: see [`adopt`]). Call once, after
    /// the core's table was taken over and [`Director::set_fast_path`], before any packet is read.
    pub fn adopt(&self, director: &Director) {
        let mut inner = self.lock();
        adopt(&mut inner, director, &self.paths);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The egress towards `ip`: Ok(None) while the resolver does not know it yet, Err(()) when it is not one the
    /// fast path may use (not ours, or it drops redirected frames).
    fn egress_to(&self, ports: &[Port], ip: IpAddr) -> Result<Option<Egress>, ()> {
        let Some(h) = self.paths.hops.lookup(ip) else {
            self.paths.hops.miss(ip);
            return Ok(None);
        };
        if !ports
            .iter()
            .any(|p| p.ifindex == h.ifindex && p.usable == PortUse::Redirect)
        {
            return Err(());
        }
        let mut dst_mac = [0u8; 6];
        let mut src_mac = [0u8; 6];
        dst_mac.copy_from_slice(&h.eth[..6]);
        src_mac.copy_from_slice(&h.eth[6..12]);
        Ok(Some(Egress {
            ifindex: h.ifindex,
            dst_mac,
            src_mac,
            mtu: h.mtu.min(u32::from(u16::MAX)) as u16,
        }))
    }

    /// Install both entries of `c`. Ok(false): not now (next hop unknown), retry later.
    fn install(
        &self,
        director: &Director,
        inner: &mut Inner,
        c: &FastConn,
    ) -> Result<bool, rvs_xdp::Error> {
        if inner.conns.contains_key(c) {
            return Ok(true);
        }
        let proto = match c.protocol {
            6 => L4::Tcp,
            17 => L4::Udp,
            _ => return Ok(true), // never offered by the core; nothing to do
        };
        // The reply's egress: masq only (route and tunnel replies bypass the director).
        let to_client = match c.method {
            ForwardMethod::Masq => Some(self.egress_to(&inner.ports, c.caddr)),
            ForwardMethod::Route | ForwardMethod::Tunnel(_) => None,
            // Never configured (the core refuses them).
            ForwardMethod::Local | ForwardMethod::Bypass => return Ok(true),
        };
        let (Ok(to_rs), Ok(to_client)) =
            (self.egress_to(&inner.ports, c.daddr), to_client.transpose())
        else {
            return Ok(true); // stays on the slow path (a port that comes back starts a new generation)
        };
        let (Some(to_rs), Some(to_client)) = (to_rs, to_client.unwrap_or(to_rs)) else {
            return Ok(false);
        };
        let client = SocketAddr::new(c.caddr, c.cport);
        let vip = SocketAddr::new(c.vaddr, c.vport);
        let rs = SocketAddr::new(c.daddr, c.dport);
        let bad = |e: rvs_xdp::FamilyMismatch| rvs_xdp::Error::TestRun(std::io::Error::other(e));
        let kin = FlowKey::new(proto, client, vip).map_err(bad)?;
        // An entry an earlier connection on this 4-tuple left (its withdrawal lost or late) goes first, credited to
        // it: the new connection's entries must not be removed with the old one's.
        let kreply = match c.method {
            ForwardMethod::Masq => Some(FlowKey::new(proto, rs, client).map_err(bad)?),
            _ => None,
        };
        for k in std::iter::once(kin).chain(kreply) {
            if let Some(old) = inner.owner.get(&k).copied()
                && old != *c
            {
                Self::remove(director, inner, &old);
            }
        }
        let kout = match (c.method, kreply) {
            (ForwardMethod::Masq, Some(kout)) => {
                let fin = Flow::new(&kin, client, rs, to_rs).map_err(bad)?;
                let fout = Flow::new(&kout, vip, client, to_client).map_err(bad)?;
                inner.fp.insert(&kin, &fin)?;
                if let Err(e) = inner.fp.insert(&kout, &fout) {
                    let _ = inner.fp.remove(&kin);
                    return Err(e);
                }
                Some(kout)
            }
            (ForwardMethod::Masq, None) => return Ok(true), // kreply is Some for masq
            (ForwardMethod::Route, _) => {
                inner.fp.insert(&kin, &Flow::direct(&kin, to_rs))?;
                None
            }
            (ForwardMethod::Tunnel(t), _) => {
                let encap = encap_of(&t, c);
                let Some(path) = self.paths.tunnel(c.daddr) else {
                    return Ok(false);
                };
                let flow = Flow::tunnel(encap, path.src, c.daddr, to_rs).map_err(bad)?;
                inner.fp.insert(&kin, &flow)?;
                None
            }
            (ForwardMethod::Local | ForwardMethod::Bypass, _) => return Ok(true),
        };
        inner.owner.insert(kin, *c);
        if let Some(k) = kout {
            inner.owner.insert(k, *c);
        }
        inner.conns.insert(
            *c,
            Managed {
                kin,
                kout,
                egress: [to_rs.ifindex, to_client.ifindex],
                credited_in: FlowCounters::default(),
                credited_out: FlowCounters::default(),
            },
        );
        Ok(true)
    }

    fn offload(&self, director: &Director, inner: &mut Inner, c: FastConn, first: Instant) {
        match self.install(director, inner, &c) {
            Ok(true) => {}
            Ok(false) => {
                if first.elapsed() < NEXT_HOP_RETRY {
                    inner.pending.push((c, first));
                }
            }
            Err(rvs_xdp::Error::Full) => {
                if let Admit::Yes { suppressed } = inner.full_log.admit(crate::dataplane::now().0) {
                    tracing::warn!(
                        suppressed,
                        "fast-path map full: new connections stay on the slow path"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "installing a fast-path connection failed"),
        }
    }

    /// Remove `c`'s entries, crediting what they forwarded since the last sync.
    fn remove(director: &Director, inner: &mut Inner, c: &FastConn) {
        let Some(m) = inner.conns.remove(c) else {
            return;
        };
        for k in std::iter::once(m.kin).chain(m.kout) {
            if inner.owner.get(&k) == Some(c) {
                inner.owner.remove(&k);
            }
        }
        let lin = inner
            .fp
            .remove(&m.kin)
            .ok()
            .flatten()
            .unwrap_or(m.credited_in);
        let lout = match m.kout {
            Some(k) => inner.fp.remove(&k).ok().flatten().unwrap_or(m.credited_out),
            None => m.credited_out,
        };
        let credit = credit_of(&m, lin, lout);
        if credit != FastCredit::default() {
            director.fast_path_credit(c, &credit);
        }
    }

    /// Credit what the program forwarded, and drop the entries of connections that left ESTABLISHED or the table
    /// or whose egress stopped taking redirected frames. Run before every expiry.
    pub fn sync(&self, director: &Director) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let (lost, back) = probe_ports(inner);
        let mut gone: Vec<FastConn> = inner
            .conns
            .iter()
            .filter(|(_, m)| m.egress.iter().any(|e| lost.contains(e)))
            .map(|(c, _)| *c)
            .collect();
        if back {
            // What stayed on the slow path because of the port is offered again at its next packet.
            director.fast_path_reset();
        }
        for (c, m) in inner.conns.iter_mut() {
            let lin = inner.fp.counters(&m.kin).ok().flatten();
            let lout = match m.kout {
                Some(k) => inner.fp.counters(&k).ok().flatten(),
                None => Some(m.credited_out),
            };
            let (Some(lin), Some(lout)) = (lin, lout) else {
                gone.push(*c);
                continue;
            };
            let credit = credit_of(m, lin, lout);
            let state = director.fast_path_credit(c, &credit);
            m.credited_in = lin;
            m.credited_out = lout;
            let keep = match state {
                None => false,
                Some(s) => c.protocol == 17 || s == TcpState::Established,
            };
            if !keep {
                gone.push(*c);
            }
        }
        for c in gone {
            Self::remove(director, inner, &c);
        }
    }

    /// Credit what the program forwarded since the last credit (counters and last-seen), removing nothing (that
    /// stays with [`Self::sync`]): the sync master calls this before each walk, so it decides refreshes on a
    /// last-seen as fresh as the walk, not up to a second old.
    pub fn credit(&self, director: &Director) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        for (c, m) in inner.conns.iter_mut() {
            let lin = inner.fp.counters(&m.kin).ok().flatten();
            let lout = match m.kout {
                Some(k) => inner.fp.counters(&k).ok().flatten(),
                None => Some(m.credited_out),
            };
            if let (Some(lin), Some(lout)) = (lin, lout) {
                director.fast_path_credit(c, &credit_of(m, lin, lout));
                m.credited_in = lin;
                m.credited_out = lout;
            }
        }
    }

    /// Remove every entry (crediting them) and start a new generation in the core: what is still valid is offered
    /// again at its next slow-path packet. Called after every configuration change, before it is acknowledged.
    pub fn flush(&self, director: &Director) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let all: Vec<FastConn> = inner.conns.keys().copied().collect();
        for c in &all {
            Self::remove(director, inner, c);
        }
        inner.pending.clear();
        debug_assert!(inner.owner.is_empty());
        inner.owner.clear();
        director.fast_path_reset();
    }

    /// A planned restart (SIGUSR2): credit what was forwarded (the core's table is handed over after this), start
    /// every entry's counters again from zero (the next rvsd credits from there), and pin the links: the program
    /// keeps forwarding established connections until the next rvsd takes it over. Without a pin directory, or if
    /// pinning fails, it detaches as a stop does.
    pub fn persist(&self, director: &Director) {
        self.sync(director);
        let mut inner = self.lock();
        let inner = &mut *inner;
        let keys: Vec<FlowKey> = inner
            .conns
            .values()
            .flat_map(|m| std::iter::once(m.kin).chain(m.kout))
            .collect();
        for k in keys {
            if let Some(f) = inner.fp.entry(&k) {
                let _ = inner.fp.insert(&k, &f.without_counters());
            }
        }
        match inner.fp.persist() {
            Ok(0) => detach_and_log(
                inner,
                "fast path detached (no --fast-path-pin-dir: nothing outlives rvsd)",
            ),
            Ok(links) => tracing::info!(
                links,
                connections = inner.conns.len(),
                "fast path left attached and pinned for the next rvsd (planned restart)"
            ),
            Err(e) => {
                tracing::error!(error = %e, "pinning the fast path failed: detaching it");
                let _ = inner.fp.unpin_all();
                detach_and_log(inner, "fast path detached");
            }
        }
    }

    /// A stop (at shutdown, before the steering goes): detach from every interface, remove every pin, log what the
    /// program did.
    pub fn detach(&self) {
        let mut inner = self.lock();
        if let Err(e) = inner.fp.unpin_all() {
            tracing::warn!(error = %e, "removing the fast path's pins failed");
        }
        detach_and_log(&mut inner, "fast path detached");
    }

    /// The interfaces the program redirects to, and whether it may now (false: they drop redirected frames).
    pub fn egresses(&self) -> Vec<(String, bool)> {
        self.lock()
            .ports
            .iter()
            .map(|p| (p.name.clone(), p.usable == PortUse::Redirect))
            .collect()
    }

    /// The SYN gate's maps, for crate::syngate (once).
    pub fn take_gate(&self) -> Option<rvs_xdp::Gate> {
        self.lock().fp.take_gate()
    }

    /// Connections on the fast path now.
    pub fn connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// The program's counters by reason (forwarded, and why the rest went up).
    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        let inner = self.lock();
        match inner.fp.stats() {
            Ok(s) => Stat::ALL
                .iter()
                .map(|r| (r.name(), s[*r as usize]))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn handle(&self, director: &Director, ev: Event) {
        let mut inner = self.lock();
        match ev {
            Event::Offload(c) => self.offload(director, &mut inner, c, Instant::now()),
            Event::Withdraw(c) => {
                // Not installed yet (next hop unknown): it must not be installed after its withdrawal.
                inner.pending.retain(|(p, _)| *p != c);
                Self::remove(director, &mut inner, &c);
            }
        }
    }

    fn retry_pending(&self, director: &Director) {
        let mut inner = self.lock();
        let pending = std::mem::take(&mut inner.pending);
        for (c, first) in pending {
            self.offload(director, &mut inner, c, first);
        }
    }
}

/// Take the entries a previous rvsd left in a pinned map as this run's connections, each checked against the
/// core's connection ([`Director::fast_path_adopt`], which marks it as offered): a masq entry client -> VIP
/// rewritten to client -> RIP whose reply entry (RIP -> client, rewritten to VIP -> client) is there too; a direct
/// routing or tunnel entry (one per connection, client -> VIP) that forwards as the entry this run would install
/// for the core's connection (same method, real server, encapsulation and options). Anything else is removed.
/// Their counters start from zero (the previous rvsd credited and cleared them).
fn adopt(inner: &mut Inner, director: &Director, paths: &MethodPaths) {
    let entries = inner.fp.entries();
    if entries.is_empty() {
        return;
    }
    let by_key: HashMap<FlowKey, Flow> = entries.iter().copied().collect();
    let mut kept = std::collections::HashSet::new();
    let mut refused = false;
    for (kin, fin) in &entries {
        let Some(proto) = kin.proto() else {
            continue;
        };
        let Some(adopted) = adoptable(&by_key, proto, kin, fin) else {
            continue; // a masq reply entry (kept with its connection), or not an entry of ours
        };
        let Some(c) = director.fast_path_adopt(proto as u8, kin.src(), kin.dst()) else {
            continue;
        };
        let egress = match (adopted, c.method) {
            (Adoptable::Masq { kout, fout }, ForwardMethod::Masq)
                if SocketAddr::new(c.daddr, c.dport) == fin.rewrite(kin).1 =>
            {
                Some((Some(kout), [fin.ifindex(), fout.ifindex()]))
            }
            (Adoptable::Route, ForwardMethod::Route) => Some((None, [fin.ifindex(); 2])),
            (Adoptable::Tunnel, ForwardMethod::Tunnel(t)) => paths
                .tunnel(c.daddr)
                .and_then(|p| Flow::tunnel(encap_of(&t, &c), p.src, c.daddr, NO_EGRESS).ok())
                .filter(|want| fin.forwards_as(want))
                .map(|_| (None, [fin.ifindex(); 2])),
            _ => None,
        };
        let Some((kout, egress)) = egress else {
            // The core marked it as offered: a new generation offers it again, to be installed as it is now.
            refused = true;
            continue;
        };
        inner.conns.insert(
            c,
            Managed {
                kin: *kin,
                kout,
                egress,
                credited_in: FlowCounters::default(),
                credited_out: FlowCounters::default(),
            },
        );
        inner.owner.insert(*kin, c);
        if let Some(k) = kout {
            inner.owner.insert(k, c);
        }
        kept.insert(*kin);
        kept.extend(kout);
    }
    let mut stale = 0;
    for (k, _) in &entries {
        if !kept.contains(k) && inner.fp.remove(k).is_ok() {
            stale += 1;
        }
    }
    if refused {
        director.fast_path_reset();
    }
    tracing::info!(
        connections = inner.conns.len(),
        stale,
        "fast path taken over from the previous rvsd"
    );
}

/// An egress for entries built only to be compared ([`Flow::forwards_as`] ignores it).
const NO_EGRESS: Egress = Egress {
    ifindex: 0,
    dst_mac: [0; 6],
    src_mac: [0; 6],
    mtu: 0,
};

/// What an entry of a previous run may be the client -> VIP entry of.
#[derive(Debug, Clone, Copy)]
enum Adoptable {
    /// A masq connection whose reply entry `kout` (`fout`) is there and rewrites back to VIP -> client.
    Masq {
        kout: FlowKey,
        fout: Flow,
    },
    Route,
    Tunnel,
}

fn adoptable(
    by_key: &HashMap<FlowKey, Flow>,
    proto: L4,
    kin: &FlowKey,
    fin: &Flow,
) -> Option<Adoptable> {
    match fin.action()? {
        rvs_xdp::Action::Masq => {
            let (client, vip) = (kin.src(), kin.dst());
            let (new_src, rs) = fin.rewrite(kin);
            if new_src != client || rs == vip {
                return None;
            }
            let kout = FlowKey::new(proto, rs, client).ok()?;
            let fout = *by_key.get(&kout)?;
            (fout.rewrite(&kout) == (vip, client)).then_some(Adoptable::Masq { kout, fout })
        }
        rvs_xdp::Action::DirectRoute => Some(Adoptable::Route),
        rvs_xdp::Action::TunIp | rvs_xdp::Action::TunGue | rvs_xdp::Action::TunGre => {
            Some(Adoptable::Tunnel)
        }
    }
}

/// Read every port's XDP features; say once when one stops or starts taking redirected frames. Returns the ports
/// that stopped (their connections must leave the fast path) and whether one started again.
fn probe_ports(inner: &mut Inner) -> (Vec<u32>, bool) {
    let mut lost = Vec::new();
    let mut back = false;
    let Some(features) = inner.features.as_mut() else {
        return (lost, back);
    };
    for p in &mut inner.ports {
        let now = match features.transmit(p.ifindex) {
            Ok(Transmit::Frames) => PortUse::Redirect,
            Ok(Transmit::Refused { xdp_features }) => {
                if p.usable == PortUse::Redirect {
                    tracing::warn!(
                        interface = %p.name,
                        xdp_features = %format!("{xdp_features:#x}"),
                        "interface does not transmit redirected XDP frames (no NDO_XMIT: e.g. a veth whose peer has \
                         neither GRO nor an XDP program, a bridge, a driver without ndo_xdp_xmit): connections \
                         through it stay on the slow path"
                    );
                }
                PortUse::SlowPath
            }
            Err(e) => {
                if p.usable == PortUse::Redirect {
                    tracing::warn!(
                        interface = %p.name,
                        error = %e,
                        "cannot read the interface's XDP features: connections through it stay on the slow path"
                    );
                }
                PortUse::SlowPath
            }
        };
        match (p.usable, now) {
            (PortUse::Redirect, PortUse::SlowPath) => lost.push(p.ifindex),
            (PortUse::SlowPath, PortUse::Redirect) => {
                tracing::info!(
                    interface = %p.name,
                    "interface transmits redirected XDP frames again: its connections return to the fast path"
                );
                back = true;
            }
            _ => {}
        }
        p.usable = now;
    }
    (lost, back)
}

/// Detach the program from every interface and log what it did.
fn detach_and_log(inner: &mut Inner, what: &'static str) {
    inner.fp.detach_all();
    let stats = inner.fp.stats().unwrap_or([0; rvs_xdp::STAT_COUNT]);
    let forwarded = stats[Stat::Forwarded as usize];
    let passed: u64 = stats.iter().sum::<u64>() - forwarded;
    let reasons: Vec<String> = Stat::ALL
        .iter()
        .filter(|r| **r != Stat::Forwarded && stats[**r as usize] > 0)
        .map(|r| format!("{}={}", r.name(), stats[*r as usize]))
        .collect();
    tracing::info!(
        connections = inner.conns.len(),
        forwarded,
        passed,
        reasons = %reasons.join(" "),
        "{what}"
    );
}

/// The program's encapsulation for a tunnel connection, checksum options included (the program derives the outer
/// sum from the inner packet's own, as local checksum offload does). IPIP has no checksum option (IPVS ignores it),
/// nor has GRE a remote checksum (IPVS ignores it too); GUE's `--tun-remcsum` is `--tun-csum` for the complete
/// checksums the program sees (IPVS adds the remote-checksum option only to CHECKSUM_PARTIAL packets).
fn encap_of(t: &TunnelConfig, c: &FastConn) -> Encap {
    let csum = match t.csum {
        TunnelCsum::NoCsum => OuterCsum::None,
        TunnelCsum::Csum | TunnelCsum::RemCsum => OuterCsum::Full,
    };
    match t.kind {
        TunnelKind::Ipip => Encap::Ip,
        TunnelKind::Gre => Encap::Gre {
            csum: match t.csum {
                TunnelCsum::RemCsum => OuterCsum::None,
                _ => csum,
            },
        },
        TunnelKind::Gue => {
            let hash = crate::xmit::flow_hash_of(c.caddr, c.vaddr, c.protocol, (c.cport, c.vport));
            Encap::Gue {
                sport: rvs_wire::encap::flow_src_port(hash),
                dport: t.port,
                csum,
            }
        }
    }
}

fn credit_of(m: &Managed, lin: FlowCounters, lout: FlowCounters) -> FastCredit {
    let last = lin.last_seen_ns.max(lout.last_seen_ns);
    let fresh = lin.packets > m.credited_in.packets || lout.packets > m.credited_out.packets;
    FastCredit {
        in_packets: lin.packets.saturating_sub(m.credited_in.packets),
        in_bytes: lin.bytes.saturating_sub(m.credited_in.bytes),
        out_packets: lout.packets.saturating_sub(m.credited_out.packets),
        out_bytes: lout.bytes.saturating_sub(m.credited_out.bytes),
        last_seen: (fresh && last > 0).then_some(Timestamp(last / 1_000_000)),
    }
}

/// The core's sink and the receiving end for [`spawn`].
pub fn channel() -> (Arc<Sink>, Events) {
    channel_of(QUEUE)
}

/// [`channel`] with room for `capacity` events.
fn channel_of(capacity: usize) -> (Arc<Sink>, Events) {
    let (tx, rx) = sync_channel(capacity);
    let lost = Arc::new(AtomicBool::new(false));
    (
        Arc::new(Sink {
            tx,
            lost: lost.clone(),
        }),
        Events { rx, lost },
    )
}

/// The fast-path thread: installs offered connections, removes withdrawn ones, retries unknown next hops.
pub fn spawn(
    ctl: Arc<FastPathCtl>,
    director: Arc<Director>,
    events: Events,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rvsd-fastpath".into())
        .spawn(move || {
            let mut last_retry = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if serve(&ctl, &director, &events, Duration::from_millis(100)).is_err() {
                    return;
                }
                if last_retry.elapsed() >= Duration::from_millis(100) {
                    ctl.retry_pending(&director);
                    last_retry = Instant::now();
                }
            }
        })
}

/// One pass of the fast-path thread: wait up to `wait` for events, handle every queued one, then, if a withdrawal
/// was lost to a full queue, check every entry against the core at once. Err: the core's sink is gone.
fn serve(
    ctl: &FastPathCtl,
    director: &Director,
    events: &Events,
    wait: Duration,
) -> Result<(), RecvTimeoutError> {
    match events.rx.recv_timeout(wait) {
        Ok(ev) => {
            ctl.handle(director, ev);
            while let Ok(ev) = events.rx.try_recv() {
                ctl.handle(director, ev);
            }
        }
        Err(RecvTimeoutError::Timeout) => {}
        Err(e @ RecvTimeoutError::Disconnected) => return Err(e),
    }
    if events.lost.swap(false, Ordering::Relaxed) {
        // A withdrawal was lost to a full queue: remove what left ESTABLISHED now, not at the next once-a-second
        // sync (a reused 4-tuple would meanwhile take the stale entry).
        ctl.sync(director);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managed(credited_in: FlowCounters, credited_out: FlowCounters) -> Managed {
        let c: SocketAddr = "198.51.100.10:40000".parse().expect("addr");
        let v: SocketAddr = "198.51.100.100:80".parse().expect("addr");
        let k = FlowKey::new(L4::Tcp, c, v).expect("key");
        Managed {
            kin: k,
            kout: Some(k),
            egress: [1, 1],
            credited_in,
            credited_out,
        }
    }

    fn counters(packets: u64, bytes: u64, last_seen_ns: u64) -> FlowCounters {
        FlowCounters {
            packets,
            bytes,
            last_seen_ns,
        }
    }

    #[test]
    fn credit_is_the_delta_since_the_last_sync() {
        let m = managed(counters(10, 1000, 5_000_000), counters(4, 4000, 6_000_000));
        let c = credit_of(
            &m,
            counters(15, 1600, 9_000_000),
            counters(4, 4000, 6_000_000),
        );
        assert_eq!(
            c,
            FastCredit {
                in_packets: 5,
                in_bytes: 600,
                out_packets: 0,
                out_bytes: 0,
                last_seen: Some(Timestamp(9)),
            }
        );
    }

    #[test]
    fn nothing_new_moves_no_clock() {
        let m = managed(counters(10, 1000, 5_000_000), counters(4, 4000, 6_000_000));
        let c = credit_of(&m, m.credited_in, m.credited_out);
        assert_eq!(
            c,
            FastCredit::default(),
            "an idle connection keeps its core last-seen"
        );
    }

    // The owner map, against the kernel's map: the real program's maps are loaded (root and BPF needed; nothing is
    // attached, no interface or namespace is touched) and driven through the fast-path thread's own entry points
    // (handle, serve, retry_pending), with a port and next hops set by hand.

    const PORT: u32 = 7;
    const CLIENT: &str = "198.51.100.10:40000";
    const VIP: &str = "198.51.100.100:80";
    const RS1: &str = "203.0.113.11:80";
    const RS2: &str = "203.0.113.12:80";

    /// The program's maps, or None outside CI without root/BPF (said); under CI=true a missing BPF fails.
    fn maps_or_skip() -> Option<FastPath> {
        let loaded = FastPath::load(rvs_xdp::Options {
            max_flow_entries: 64,
            pin_dir: None,
            gate_buckets: 1024,
        });
        match loaded {
            Ok(fp) => Some(fp),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true: loading the fast path's maps needs root and BPF: {e}")
            }
            Err(e) => {
                eprintln!("SKIP: loading the fast path's maps needs root and BPF: {e}");
                None
            }
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn hop() -> rvs_io::l2::NextHop {
        rvs_io::l2::NextHop::new(
            PORT,
            1500,
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            rvs_io::l2::EtherType::Ipv4,
        )
    }

    /// A controller over `fp` with one usable port and the next hops of `known` addresses.
    fn ctl(fp: FastPath, known: &[&str]) -> FastPathCtl {
        let (hops, _misses) = crate::nexthop::NextHops::new();
        for a in known {
            hops.set_for_test(addr(a).ip(), hop());
        }
        FastPathCtl {
            inner: Mutex::new(Inner {
                fp,
                ports: vec![Port {
                    ifindex: PORT,
                    name: "test0".into(),
                    usable: PortUse::Redirect,
                }],
                features: None,
                conns: HashMap::new(),
                owner: HashMap::new(),
                pending: Vec::new(),
                full_log: RateLimiter::new(1, 60_000),
            }),
            paths: Arc::new(MethodPaths::new(hops)),
        }
    }

    /// A masq TCP connection from `client` through the VIP to `rs`.
    fn conn(client: &str, rs: &str) -> FastConn {
        let (c, v, d) = (addr(client), addr(VIP), addr(rs));
        FastConn {
            protocol: 6,
            caddr: c.ip(),
            cport: c.port(),
            vaddr: v.ip(),
            vport: v.port(),
            daddr: d.ip(),
            dport: d.port(),
            method: ForwardMethod::Masq,
        }
    }

    fn key(src: &str, dst: &str) -> FlowKey {
        FlowKey::new(L4::Tcp, addr(src), addr(dst)).expect("key")
    }

    /// Where the kernel's entry for `src -> dst` sends the packet (None: no entry).
    fn sends_to(ctl: &FastPathCtl, src: &str, dst: &str) -> Option<SocketAddr> {
        let k = key(src, dst);
        ctl.lock().fp.entry(&k).map(|f| f.rewrite(&k).1)
    }

    fn director() -> Director {
        Director::new(rvs_core::DirectorConfig::default())
    }

    #[test]
    fn a_reused_four_tuple_replaces_the_earlier_connections_entries() {
        let Some(fp) = maps_or_skip() else { return };
        let ctl = ctl(fp, &[CLIENT, RS1, RS2]);
        let d = director();
        let (old, new) = (conn(CLIENT, RS1), conn(CLIENT, RS2));
        ctl.handle(&d, Event::Offload(old));
        assert_eq!(sends_to(&ctl, CLIENT, VIP), Some(addr(RS1)));
        assert_eq!(sends_to(&ctl, RS1, CLIENT), Some(addr(CLIENT)));
        // The client reuses its port (TIME_WAIT reuse) and the scheduler picks the other server, before the old
        // connection's withdrawal arrived.
        ctl.handle(&d, Event::Offload(new));
        assert_eq!(sends_to(&ctl, CLIENT, VIP), Some(addr(RS2)));
        assert_eq!(
            sends_to(&ctl, RS1, CLIENT),
            None,
            "the earlier connection's reply entry went with it"
        );
        assert_eq!(sends_to(&ctl, RS2, CLIENT), Some(addr(CLIENT)));
        assert_eq!(ctl.connections(), 1);
        // The old connection's late withdrawal must not take the new one's entries.
        ctl.handle(&d, Event::Withdraw(old));
        assert_eq!(sends_to(&ctl, CLIENT, VIP), Some(addr(RS2)));
        assert_eq!(sends_to(&ctl, RS2, CLIENT), Some(addr(CLIENT)));
        assert_eq!(ctl.connections(), 1);
        ctl.handle(&d, Event::Withdraw(new));
        assert_eq!(sends_to(&ctl, CLIENT, VIP), None);
        assert_eq!(sends_to(&ctl, RS2, CLIENT), None);
        assert!(ctl.lock().owner.is_empty());
    }

    #[test]
    fn a_withdrawal_lost_to_a_full_queue_checks_every_entry_at_once() {
        let Some(fp) = maps_or_skip() else { return };
        let ctl = ctl(fp, &[CLIENT, "198.51.100.11:40001", RS1]);
        let d = director();
        let (sink, events) = channel_of(1);
        let closed = conn(CLIENT, RS1);
        ctl.handle(&d, Event::Offload(closed));
        assert_eq!(sends_to(&ctl, CLIENT, VIP), Some(addr(RS1)));
        // The queue is full (an offer waits in it): the withdrawal cannot be queued.
        assert!(sink.offload(&conn("198.51.100.11:40001", RS1)));
        sink.withdraw(&closed);
        assert!(events.lost.load(Ordering::Relaxed));
        // The thread's next pass handles what was queued, then checks every entry against the core, which has
        // neither connection: both go, the closed one's included, without waiting for the once-a-second sync.
        serve(&ctl, &d, &events, Duration::ZERO).expect("sink alive");
        assert_eq!(sends_to(&ctl, CLIENT, VIP), None);
        assert_eq!(sends_to(&ctl, RS1, CLIENT), None);
        assert_eq!(ctl.connections(), 0);
        assert!(!events.lost.load(Ordering::Relaxed));
    }

    #[test]
    fn a_withdrawal_cancels_a_pending_install() {
        let Some(fp) = maps_or_skip() else { return };
        // RS1's next hop is not known yet: both connections wait.
        let ctl = ctl(fp, &[CLIENT, "198.51.100.11:40001"]);
        let d = director();
        let (withdrawn, kept) = (conn(CLIENT, RS1), conn("198.51.100.11:40001", RS1));
        ctl.handle(&d, Event::Offload(withdrawn));
        ctl.handle(&d, Event::Offload(kept));
        assert_eq!(ctl.connections(), 0);
        assert_eq!(ctl.lock().pending.len(), 2);
        ctl.handle(&d, Event::Withdraw(withdrawn));
        // The next hop becomes known: only the connection still established is installed.
        ctl.paths.hops.set_for_test(addr(RS1).ip(), hop());
        ctl.retry_pending(&d);
        assert_eq!(sends_to(&ctl, CLIENT, VIP), None);
        assert_eq!(sends_to(&ctl, RS1, CLIENT), None);
        assert_eq!(sends_to(&ctl, "198.51.100.11:40001", VIP), Some(addr(RS1)));
        assert_eq!(ctl.connections(), 1);
        assert!(ctl.lock().pending.is_empty());
    }

    #[test]
    fn a_replaced_entry_never_credits_negative_amounts() {
        let m = managed(counters(10, 1000, 5_000_000), counters(0, 0, 0));
        let c = credit_of(&m, counters(2, 100, 7_000_000), counters(0, 0, 0));
        assert_eq!((c.in_packets, c.in_bytes), (0, 0));
    }
}
