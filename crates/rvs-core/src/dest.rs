//! Destinations (real servers). Shared between the service table, schedulers and connections
//! through `Arc<Destination>`; everything that changes after creation is atomic, so the data plane
//! reads it without locks and a connection never points at freed state (a deleted destination
//! lives on, unavailable, while connections still hold it).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::service::{DestSpec, ForwardMethod, TunnelConfig, TunnelCsum, TunnelKind, Weight};
use crate::stats::{Rates, Stats, StatsCell};

/// State shared by every version of one virtual service (kept across edits): its counters,
/// whether it was deleted, and its VIP.
#[derive(Debug, Default)]
pub(crate) struct ServiceShared {
    pub(crate) id: u64,
    pub(crate) stats: StatsCell,
    pub(crate) deleted: AtomicBool,
    /// The VIP of an address service (None: a fwmark service). A live address service's
    /// connection proves its VIP is one, without the service snapshot (the packet path).
    pub(crate) vip: Option<IpAddr>,
}

impl ServiceShared {
    pub(crate) fn new(id: u64, vip: Option<IpAddr>) -> Self {
        Self {
            id,
            vip,
            ..Self::default()
        }
    }
}

/// `ForwardMethod` in one word: bits 0-1 method (0 masq, 1 route, 2 tunnel, 3 local or bypass by
/// bit 2; those two never reach a destination, `validate_dest` refuses them), 3-4 tunnel type, 5-6
/// tunnel checksum option, 16-31 GUE port. The three methods a new connection reads stay a 2-bit
/// match (the read is on the packet path of every new connection).
fn pack_method(m: ForwardMethod) -> u32 {
    match m {
        ForwardMethod::Masq => 0,
        ForwardMethod::Route => 1,
        ForwardMethod::Tunnel(t) => {
            let kind = match t.kind {
                TunnelKind::Ipip => 0,
                TunnelKind::Gue => 1,
                TunnelKind::Gre => 2,
            };
            let csum = match t.csum {
                TunnelCsum::NoCsum => 0,
                TunnelCsum::Csum => 1,
                TunnelCsum::RemCsum => 2,
            };
            2 | (kind << 3) | (csum << 5) | (u32::from(t.port) << 16)
        }
        ForwardMethod::Local => 3,
        ForwardMethod::Bypass => 3 | 4,
    }
}

#[inline]
fn unpack_method(v: u32) -> ForwardMethod {
    match v & 3 {
        0 => ForwardMethod::Masq,
        1 => ForwardMethod::Route,
        2 => ForwardMethod::Tunnel(TunnelConfig {
            kind: match (v >> 3) & 3 {
                1 => TunnelKind::Gue,
                2 => TunnelKind::Gre,
                _ => TunnelKind::Ipip,
            },
            csum: match (v >> 5) & 3 {
                1 => TunnelCsum::Csum,
                2 => TunnelCsum::RemCsum,
                _ => TunnelCsum::NoCsum,
            },
            port: (v >> 16) as u16,
        }),
        _ if v & 4 == 0 => ForwardMethod::Local,
        _ => ForwardMethod::Bypass,
    }
}

/// Which of a destination's counters an entry bound to it counts in (IPVS's activeconns, inactconns,
/// persistconns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// A connection in ESTABLISHED (TCP).
    Active,
    /// Any other connection (every UDP one).
    Inactive,
    /// A persistence template.
    Template,
}

impl Bound {
    /// A connection's counter by its state.
    pub(crate) fn conn(active: bool) -> Self {
        if active { Self::Active } else { Self::Inactive }
    }
}

/// A real server of one virtual service.
#[derive(Debug)]
pub struct Destination {
    addr: IpAddr,
    port: u16,
    weight: AtomicU32,
    active: AtomicU32,
    inactive: AtomicU32,
    persistent: AtomicU32,
    overloaded: AtomicBool,
    /// IPVS's IP_VS_DEST_F_AVAILABLE: false once deleted from its service.
    available: AtomicBool,
    u_threshold: AtomicU32,
    l_threshold: AtomicU32,
    /// The forwarding method, packed (see [`pack_method`]) so the packet path reads it without a lock.
    method: AtomicU32,
    /// Generation of the last edit (for snapshots/debugging).
    edits: AtomicU64,
    pub(crate) stats: StatsCell,
    pub(crate) svc: Arc<ServiceShared>,
}

impl Destination {
    /// A masq destination with the given weight and no connections (not attached to a service).
    pub fn new(addr: IpAddr, port: u16, weight: u32) -> Self {
        Self::from_spec(&DestSpec::masq(addr, port, Weight(weight)), Arc::default())
    }

    pub(crate) fn from_spec(spec: &DestSpec, svc: Arc<ServiceShared>) -> Self {
        Self {
            addr: spec.addr,
            port: spec.port,
            weight: AtomicU32::new(spec.weight.get()),
            active: AtomicU32::new(0),
            inactive: AtomicU32::new(0),
            persistent: AtomicU32::new(0),
            overloaded: AtomicBool::new(false),
            available: AtomicBool::new(true),
            u_threshold: AtomicU32::new(spec.u_threshold),
            l_threshold: AtomicU32::new(spec.l_threshold),
            method: AtomicU32::new(pack_method(spec.method)),
            edits: AtomicU64::new(0),
            stats: StatsCell::default(),
            svc,
        }
    }

    /// Real server address (RIP).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Real server port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Current weight (0 = quiesced).
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Sets the weight (edit of a real server).
    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }

    /// Active connections (TCP ESTABLISHED), as `ipvsadm -L` shows them.
    pub fn active_conns(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Inactive connections (every other state).
    pub fn inactive_conns(&self) -> u32 {
        self.inactive.load(Ordering::Relaxed)
    }

    /// Persistence templates pointing at this destination.
    pub fn persistent_conns(&self) -> u32 {
        self.persistent.load(Ordering::Relaxed)
    }

    /// Above its upper connection threshold (and not yet back under the lower one).
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// IPVS's "available" rule for schedulers: weight > 0 and not overloaded.
    pub fn is_available(&self) -> bool {
        self.weight() > 0 && !self.is_overloaded()
    }

    /// Test helper and counter hook: sets the active/inactive counts directly.
    #[doc(hidden)]
    pub fn set_conn_counts(&self, active: u32, inactive: u32) {
        self.active.store(active, Ordering::Relaxed);
        self.inactive.store(inactive, Ordering::Relaxed);
    }

    /// Marks the destination overloaded or not (threshold logic lives in the connection table).
    pub fn set_overloaded(&self, overloaded: bool) {
        self.overloaded.store(overloaded, Ordering::Relaxed);
    }

    /// Upper connection threshold (0 = none).
    pub fn u_threshold(&self) -> u32 {
        self.u_threshold.load(Ordering::Relaxed)
    }

    /// Lower connection threshold (0 = 3/4 of the upper one).
    pub fn l_threshold(&self) -> u32 {
        self.l_threshold.load(Ordering::Relaxed)
    }

    /// Forwarding method (read once per new connection: inlined there).
    #[inline]
    pub fn method(&self) -> ForwardMethod {
        unpack_method(self.method.load(Ordering::Relaxed))
    }

    /// Still part of its service (false after deletion; its connections may live on).
    pub fn is_in_service(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Counters (`ipvsadm -L --stats`).
    pub fn stats(&self) -> Stats {
        self.stats.stats()
    }

    /// Rate estimates (`ipvsadm -L --rate`).
    pub fn rates(&self) -> Rates {
        self.stats.rates()
    }

    /// The configuration as it stands now.
    pub fn spec(&self) -> DestSpec {
        DestSpec {
            addr: self.addr,
            port: self.port,
            weight: Weight(self.weight()),
            method: self.method(),
            u_threshold: self.u_threshold(),
            l_threshold: self.l_threshold(),
        }
    }

    /// The tunnel parameters a tunnel connection uses now (IPVS reads `cp->dest->tun_type` and
    /// `tun_flags` per packet; a destination edited to another method keeps IPIP for the tunnel
    /// connections it still has).
    pub(crate) fn tunnel(&self) -> TunnelConfig {
        match self.method() {
            ForwardMethod::Tunnel(t) => t,
            _ => TunnelConfig::default(),
        }
    }

    /// Whether it was deleted from its service (IPVS's IP_VS_DEST_F_AVAILABLE cleared).
    pub(crate) fn is_deleted(&self) -> bool {
        !self.available.load(Ordering::Relaxed)
    }

    pub(crate) fn set_unavailable(&self) {
        self.available.store(false, Ordering::Relaxed);
    }

    /// Applies an edit (`ipvsadm -e`), as __ip_vs_update_dest does.
    pub(crate) fn update(&self, spec: &DestSpec) {
        self.weight.store(spec.weight.get(), Ordering::Relaxed);
        let old_u = self.u_threshold.swap(spec.u_threshold, Ordering::Relaxed);
        self.l_threshold.store(spec.l_threshold, Ordering::Relaxed);
        if spec.u_threshold == 0 || spec.u_threshold > old_u {
            self.overloaded.store(false, Ordering::Relaxed);
        }
        self.method
            .store(pack_method(spec.method), Ordering::Relaxed);
        self.edits.fetch_add(1, Ordering::Relaxed);
    }

    fn total_conns(&self) -> u32 {
        self.active_conns().saturating_add(self.inactive_conns())
    }

    /// The counter of `entry` (active, inactive, persistent).
    fn counter(&self, entry: Bound) -> &AtomicU32 {
        match entry {
            Bound::Active => &self.active,
            Bound::Inactive => &self.inactive,
            Bound::Template => &self.persistent,
        }
    }

    /// A connection (or template) now points here (ip_vs_bind_dest).
    pub(crate) fn bind(&self, entry: Bound) {
        self.counter(entry).fetch_add(1, Ordering::Relaxed);
        let u = self.u_threshold();
        if u != 0 && self.total_conns() >= u {
            self.overloaded.store(true, Ordering::Relaxed);
        }
    }

    /// A connection (or template) left (ip_vs_unbind_dest).
    pub(crate) fn unbind(&self, entry: Bound) {
        let _ = self
            .counter(entry)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
        self.check_underload();
    }

    fn check_underload(&self) {
        let l = self.l_threshold();
        let u = self.u_threshold();
        let total = u64::from(self.total_conns());
        let clear = if l != 0 {
            total < u64::from(l)
        } else if u != 0 {
            total * 4 < u64::from(u) * 3
        } else {
            true
        };
        if clear {
            self.overloaded.store(false, Ordering::Relaxed);
        }
    }

    /// A connection moved between active and inactive (TCP state change).
    pub(crate) fn set_active(&self, now_active: bool) {
        if now_active {
            self.active.fetch_add(1, Ordering::Relaxed);
            let _ = self
                .inactive
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(1))
                });
        } else {
            self.inactive.fetch_add(1, Ordering::Relaxed);
            let _ = self
                .active
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(1))
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn dest(u: u32, l: u32) -> Destination {
        let mut s = DestSpec::masq(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 80, Weight(1));
        s.u_threshold = u;
        s.l_threshold = l;
        Destination::from_spec(&s, Arc::default())
    }

    #[test]
    fn method_packs_and_unpacks() {
        let mut ms = vec![
            ForwardMethod::Masq,
            ForwardMethod::Route,
            ForwardMethod::Local,
            ForwardMethod::Bypass,
        ];
        for kind in [TunnelKind::Ipip, TunnelKind::Gue, TunnelKind::Gre] {
            for csum in [TunnelCsum::NoCsum, TunnelCsum::Csum, TunnelCsum::RemCsum] {
                for port in [0, 6080, u16::MAX] {
                    ms.push(ForwardMethod::Tunnel(TunnelConfig { kind, port, csum }));
                }
            }
        }
        for m in ms {
            assert_eq!(unpack_method(pack_method(m)), m);
        }
    }

    #[test]
    fn thresholds_with_lower() {
        let d = dest(4, 2);
        for _ in 0..3 {
            d.bind(Bound::Inactive);
        }
        assert!(!d.is_overloaded());
        d.bind(Bound::Inactive);
        assert!(d.is_overloaded());
        assert!(!d.is_available());
        d.unbind(Bound::Inactive); // 3
        assert!(d.is_overloaded());
        d.unbind(Bound::Inactive); // 2, not < 2
        assert!(d.is_overloaded());
        d.unbind(Bound::Inactive); // 1 < 2
        assert!(!d.is_overloaded());
    }

    #[test]
    fn thresholds_default_lower_is_three_quarters() {
        let d = dest(8, 0);
        for _ in 0..8 {
            d.bind(Bound::Active);
        }
        assert!(d.is_overloaded());
        d.unbind(Bound::Active); // 7*4=28 < 24? no
        d.unbind(Bound::Active); // 6*4=24 < 24? no
        assert!(d.is_overloaded());
        d.unbind(Bound::Active); // 5*4=20 < 24
        assert!(!d.is_overloaded());
        assert_eq!(d.active_conns(), 5);
    }

    #[test]
    fn templates_count_persistent_only() {
        let d = dest(1, 0);
        d.bind(Bound::Template);
        assert_eq!(d.persistent_conns(), 1);
        assert!(!d.is_overloaded());
        d.unbind(Bound::Template);
        assert_eq!(d.persistent_conns(), 0);
    }

    #[test]
    fn edit_raising_upper_threshold_clears_overload() {
        let d = dest(1, 0);
        d.bind(Bound::Inactive);
        assert!(d.is_overloaded());
        let mut s = d.spec();
        s.u_threshold = 10;
        d.update(&s);
        assert!(!d.is_overloaded());
    }
}
