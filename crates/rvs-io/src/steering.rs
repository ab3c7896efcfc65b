//! Steering of VIP traffic and real-server replies into the TUN (recipe R of the TUN steering notes):
//!
//! ```text
//! sysctl net.ipv4.ip_forward=1; net.ipv6.conf.<tun>.disable_ipv6=1; ip link set <tun> txqueuelen 5000 up
//! ip route add <VIP>/32 dev <tun> proto <P>                 (one per VIP)
//! ip neigh add proxy <VIP> dev <public-if> proto <P>       (one per VIP)
//! ip route add default dev <tun> table <T> proto <P>        (reply table)
//! ip rule add pref <R> iif <private-if> lookup <T> proto <P> (one per private interface)
//! ```
//!
//! IPv6 VIPs and real servers get the same objects in the IPv6 tables; the first one turns IPv6 on for the TUN
//! (addr_gen_mode=1 and accept_ra=0 first, so it gets no address and sends no router solicitation), turns on
//! net.ipv6.conf.all.forwarding and proxy_ndp on the public interface (these sysctls are not reverted on exit).
//!
//! Everything carries the route protocol tag `P` (and the rule the table `T`), so [`Steering::remove_all`] finds it
//! again, also what a crashed run left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use netlink_packet_route::route::RouteType;

use crate::netlink::{self, Change, Netlink, NetlinkError};
use rvs_inet::IpVersion;

/// Route protocol number tagging everything rvsd installs (`ip route show proto 114`; /etc/iproute2/rt_protos
/// leaves it unassigned).
pub const RVS_RTPROT: u8 = 114;
/// Default reply routing table.
pub const DEFAULT_TABLE: u32 = 7114;
/// Default priority of the reply rules (before `main` at 32766).
pub const DEFAULT_RULE_PRIORITY: u32 = 7114;
/// Metric of the reply table's blackhole default route (behind the TUN's default route).
pub const BLACKHOLE_METRIC: u32 = 0xffff_0000;
/// TUN transmit queue length (the default 500 drops under load).
pub const TUN_TXQUEUELEN: u32 = 5000;

/// Errors setting up or changing the steering.
#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
    #[error("virtual address {0} is a local address of this host: remove it, or pick another VIP")]
    LocalAddress(IpAddr),
    #[error(
        "virtual address {vip} is already routed by something else ({detail}): remove that route first"
    )]
    RoutedElsewhere { vip: IpAddr, detail: String },
    #[error("no route to {0}: cannot tell which interface {1}")]
    NoRoute(IpAddr, &'static str),
    #[error("IPv6 address {0}: IPv6 is disabled in this kernel or network namespace")]
    Ipv6Disabled(IpAddr),
    #[error("{context}: {source}")]
    Sysctl {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "real server {rip}: direct routing (-g) needs it on a directly connected network, but {how}: use -i (tunnel) or -m (masquerading)"
    )]
    NotDirectlyConnected { rip: IpAddr, how: String },
    #[error("{context}: {source}")]
    Device {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// How the director reaches an address (for route and tunnel destinations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    /// Egress interface.
    pub oif: u32,
    /// The router in between, if the address is not on a directly connected network.
    pub gateway: Option<IpAddr>,
    /// The egress interface's MTU.
    pub mtu: u32,
}

/// Where and how to steer.
#[derive(Debug, Clone)]
pub struct SteeringConfig {
    /// TUN device name (already created).
    pub tun_name: String,
    /// Public interface (clients side); `None` = the interface of the route to each VIP.
    pub public_if: Option<String>,
    /// Private interface (real servers side); `None` = the interface of the route to each real server.
    pub private_if: Option<String>,
    /// Reply routing table.
    pub table: u32,
    /// Priority of the reply rules.
    pub rule_priority: u32,
    /// Route protocol tag.
    pub proto: u8,
}

impl SteeringConfig {
    /// Defaults for a TUN named `tun_name`.
    pub fn new(tun_name: &str) -> Self {
        Self {
            tun_name: tun_name.to_owned(),
            public_if: None,
            private_if: None,
            table: DEFAULT_TABLE,
            rule_priority: DEFAULT_RULE_PRIORITY,
            proto: RVS_RTPROT,
        }
    }
}

/// What `Steering::remove_tagged` does with a hand-over hold ([`Steering::hold_replies`]): the reply table's
/// rules and blackhole routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Leave them in place.
    Keep,
    /// Remove them with the rest.
    Remove,
}

/// The steering rvsd has installed, and the netlink connection to change it.
#[derive(Debug)]
pub struct Steering {
    nl: Netlink,
    cfg: SteeringConfig,
    tun_index: Option<u32>,
    /// VIP -> public interface index its proxy neighbour is on.
    vips: BTreeMap<IpAddr, u32>,
    /// Interfaces with a reply rule, per family.
    reply_ifs: BTreeSet<(IpVersion, String)>,
    /// IPv6 turned on for the TUN, with the reply table's IPv6 default route.
    ipv6: bool,
    /// VIPs this director may answer for (proxy neighbour): `None` = all (no VRRP); with VRRP, the addresses of
    /// the instances it is master of. A VIP outside the set keeps its route into the TUN (synced connections are
    /// ready) but gets no proxy neighbour, so nobody sends it traffic.
    owned: Option<BTreeSet<IpAddr>>,
}

impl Steering {
    /// Check the named interfaces exist and open netlink. Installs nothing yet.
    pub fn new(cfg: SteeringConfig) -> Result<Self, SteeringError> {
        for name in [&cfg.public_if, &cfg.private_if].into_iter().flatten() {
            if crate::sys::ifindex(name).is_none() {
                return Err(SteeringError::NoSuchInterface(name.clone()));
            }
        }
        Ok(Self {
            nl: Netlink::new()?,
            cfg,
            tun_index: None,
            vips: BTreeMap::new(),
            reply_ifs: BTreeSet::new(),
            ipv6: false,
            owned: None,
        })
    }

    fn announced(&self, vip: &IpAddr) -> bool {
        self.owned.as_ref().is_none_or(|o| o.contains(vip))
    }

    /// Which VIPs get a proxy neighbour (answered for): `None` = every steered VIP; `Some(set)` = only those (VRRP
    /// master of them). Adds and removes the proxy neighbours of steered VIPs to match.
    pub fn set_owned(&mut self, owned: Option<BTreeSet<IpAddr>>) -> Result<(), SteeringError> {
        let p = self.cfg.proto;
        let before: Vec<(IpAddr, u32, bool)> = self
            .vips
            .iter()
            .map(|(v, i)| (*v, *i, self.announced(v)))
            .collect();
        self.owned = owned;
        for (vip, idx, was) in before {
            let now = self.announced(&vip);
            if now != was {
                let change = if now { Change::Add } else { Change::Delete };
                self.nl
                    .neighbour_change(change, netlink::proxy_neighbour(vip, idx, p))?;
            }
        }
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &SteeringConfig {
        &self.cfg
    }

    /// The device of a live steering carrying our tag, if any. Routes through a TUN vanish with it, so a tagged
    /// route still present means another process (another rvsd in this namespace) owns it: do not clean it. Only
    /// unicast routes count: the reply table's blackhole stays by design when rvsd dies, and an IPv6 blackhole
    /// carries `dev lo` as its output device.
    pub fn live_owner(&mut self) -> Result<Option<String>, SteeringError> {
        for family in IpVersion::ALL {
            for r in self.nl.routes(family)? {
                if netlink::route_proto(&r) != self.cfg.proto || r.header.kind != RouteType::Unicast
                {
                    continue;
                }
                let oif = r.attributes.iter().find_map(|a| match a {
                    netlink_packet_route::route::RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                });
                if let Some(i) = oif {
                    return Ok(Some(
                        crate::sys::ifname(i).unwrap_or_else(|| format!("ifindex {i}")),
                    ));
                }
            }
        }
        Ok(None)
    }

    /// Remove everything carrying our tag (routes with our protocol in any table, rules with our protocol or table,
    /// proxy neighbours with our protocol) plus what this instance knows it installed. Returns how many objects
    /// were removed.
    pub fn remove_all(&mut self) -> Result<usize, SteeringError> {
        self.remove_tagged(Hold::Remove)
    }

    /// For a restart that hands connections over: the real servers' packets are held (dropped, so retransmitted
    /// later) until the next rvsd steers them again, instead of being forwarded unchanged to clients that would
    /// answer them with a reset. Adds a blackhole default route behind the reply table's route into the TUN, then
    /// removes everything else carrying our tag except the reply rules and those blackholes. The next rvsd removes
    /// the hold ([`Steering::remove_stale`] keeps it until its own steering is in place; [`Steering::remove_all`]
    /// drops it). Returns how many objects were removed.
    pub fn hold_replies(&mut self) -> Result<usize, SteeringError> {
        let families: &[IpVersion] = if self.ipv6 {
            &IpVersion::ALL
        } else {
            &[IpVersion::V4]
        };
        for &family in families {
            match self.nl.route_change(
                Change::Add,
                netlink::blackhole_default(
                    family,
                    self.cfg.table,
                    self.cfg.proto,
                    BLACKHOLE_METRIC,
                ),
            ) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.remove_tagged(Hold::Keep)
    }

    /// At start: remove what an earlier run left, but keep a hold it left ([`Steering::hold_replies`]) until this
    /// run's reply rules are in place.
    pub fn remove_stale(&mut self) -> Result<usize, SteeringError> {
        self.remove_tagged(Hold::Keep)
    }

    fn remove_tagged(&mut self, hold_rules: Hold) -> Result<usize, SteeringError> {
        let mut removed = 0;
        let p = self.cfg.proto;
        for family in IpVersion::ALL {
            for r in self.nl.rules(family)? {
                let (table, _, _, proto) = netlink::rule_fields(&r);
                let hold = hold_rules == Hold::Keep && table == self.cfg.table;
                if (proto == Some(p) || table == self.cfg.table) && !hold {
                    self.nl.rule_change(Change::Delete, r)?;
                    removed += 1;
                }
            }
            for r in self.nl.routes(family)? {
                let hold = hold_rules == Hold::Keep && r.header.kind == RouteType::BlackHole;
                if netlink::route_proto(&r) == p && !hold {
                    match self.nl.route_change(Change::Delete, r) {
                        Ok(()) => removed += 1,
                        Err(e) if e.errno() == Some(libc::ESRCH) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            for n in self.nl.proxy_neighbours(family)? {
                let (addr, proto) = netlink::neighbour_fields(&n);
                let ours = proto == Some(p)
                    || addr.is_some_and(|a| self.vips.get(&a) == Some(&n.header.ifindex));
                if ours {
                    self.nl.neighbour_change(Change::Delete, n)?;
                    removed += 1;
                }
            }
        }
        self.vips.clear();
        self.reply_ifs.clear();
        self.ipv6 = false;
        Ok(removed)
    }

    /// Bring up the TUN (txqueuelen 5000, IPv6 off until an IPv6 VIP needs it), turn on IPv4 forwarding, install the reply table's default
    /// route into the TUN.
    pub fn install_base(&mut self) -> Result<(), SteeringError> {
        let name = self.cfg.tun_name.clone();
        let idx = crate::sys::ifindex(&name)
            .ok_or_else(|| SteeringError::NoSuchInterface(name.clone()))?;
        self.tun_index = Some(idx);
        let v6path = format!("net/ipv6/conf/{name}/disable_ipv6");
        match crate::sys::write_sysctl(&v6path, "1") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // IPv6 disabled in this kernel/namespace
            Err(e) => {
                return Err(SteeringError::Sysctl {
                    context: v6path,
                    source: e,
                });
            }
        }
        self.nl.link_up(idx, Some(TUN_TXQUEUELEN))?;
        crate::sys::write_sysctl("net/ipv4/ip_forward", "1").map_err(|e| {
            SteeringError::Sysctl {
                context: "net.ipv4.ip_forward=1".into(),
                source: e,
            }
        })?;
        let r = netlink::device_route(None, IpVersion::V4, idx, self.cfg.table, self.cfg.proto);
        self.nl.route_change(Change::Add, r)?;
        // If this process dies without cleaning up, replies are dropped rather than leaked un-NATed.
        let b = netlink::blackhole_default(
            IpVersion::V4,
            self.cfg.table,
            self.cfg.proto,
            BLACKHOLE_METRIC,
        );
        match self.nl.route_change(Change::Add, b) {
            Ok(()) => {}
            // Kept by a hand-over hold of the previous rvsd (remove_stale).
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Turn IPv6 on for the TUN (no addresses, no router advertisements), IPv6 forwarding on, and the reply
    /// table's IPv6 default route into the TUN. Done when the first IPv6 VIP or real server appears.
    fn enable_ipv6(&mut self, why: IpAddr) -> Result<(), SteeringError> {
        if self.ipv6 {
            return Ok(());
        }
        let tun = self.tun_index()?;
        let name = self.cfg.tun_name.clone();
        let set = |path: String, value: &str| {
            crate::sys::write_sysctl(&path, value).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    SteeringError::Ipv6Disabled(why)
                } else {
                    SteeringError::Sysctl {
                        context: format!("{path}={value}"),
                        source: e,
                    }
                }
            })
        };
        set(format!("net/ipv6/conf/{name}/addr_gen_mode"), "1")?;
        set(format!("net/ipv6/conf/{name}/accept_ra"), "0")?;
        set(format!("net/ipv6/conf/{name}/disable_ipv6"), "0")?;
        set("net/ipv6/conf/all/forwarding".into(), "1")?;
        let r = netlink::device_route(None, IpVersion::V6, tun, self.cfg.table, self.cfg.proto);
        match self.nl.route_change(Change::Add, r) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let b = netlink::blackhole_default(
            IpVersion::V6,
            self.cfg.table,
            self.cfg.proto,
            BLACKHOLE_METRIC,
        );
        match self.nl.route_change(Change::Add, b) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.ipv6 = true;
        Ok(())
    }

    fn tun_index(&self) -> Result<u32, SteeringError> {
        self.tun_index
            .ok_or_else(|| SteeringError::NoSuchInterface(self.cfg.tun_name.clone()))
    }

    /// Check that `vip` can be steered by us and find its public interface. Changes nothing.
    pub fn check_vip(&mut self, vip: IpAddr) -> Result<u32, SteeringError> {
        if let Some(&idx) = self.vips.get(&vip) {
            return Ok(idx);
        }
        let full = if vip.is_ipv6() { 128 } else { 32 };
        for r in self.nl.routes(IpVersion::of(vip))? {
            if r.header.destination_prefix_length == full
                && netlink::route_destination(&r) == Some(vip)
            {
                if r.header.kind == RouteType::Local {
                    return Err(SteeringError::LocalAddress(vip));
                }
                if netlink::route_proto(&r) != self.cfg.proto {
                    let dev = r
                        .attributes
                        .iter()
                        .find_map(|a| match a {
                            netlink_packet_route::route::RouteAttribute::Oif(i) => {
                                crate::sys::ifname(*i)
                            }
                            _ => None,
                        })
                        .unwrap_or_else(|| "?".into());
                    return Err(SteeringError::RoutedElsewhere {
                        vip,
                        detail: format!(
                            "route {vip}/{full} dev {dev} table {} proto {}",
                            netlink::route_table(&r),
                            netlink::route_proto(&r)
                        ),
                    });
                }
            }
        }
        let look = match self.nl.route_get(vip) {
            Ok(l) => Some(l),
            // No route at all (e.g. no IPv6 on the public side yet): only --public-if can say where.
            Err(e)
                if matches!(
                    e.errno(),
                    Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH)
                ) =>
            {
                None
            }
            Err(e) => return Err(e.into()),
        };
        if look.is_some_and(|l| l.kind == RouteType::Local) {
            return Err(SteeringError::LocalAddress(vip));
        }
        if let Some(name) = &self.cfg.public_if {
            return crate::sys::ifindex(name)
                .ok_or_else(|| SteeringError::NoSuchInterface(name.clone()));
        }
        match look.and_then(|l| l.oif) {
            Some(i) if Some(i) != self.tun_index => Ok(i),
            _ => Err(SteeringError::NoRoute(vip, "is public (give --public-if)")),
        }
    }

    /// The private interface replies from real server `rip` arrive on (`None` for a local address).
    pub fn private_if_for(&mut self, rip: IpAddr) -> Result<Option<String>, SteeringError> {
        if let Some(name) = &self.cfg.private_if {
            return Ok(Some(name.clone()));
        }
        let look = match self.nl.route_get(rip) {
            Ok(l) => l,
            Err(e)
                if matches!(
                    e.errno(),
                    Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH)
                ) =>
            {
                return Err(SteeringError::NoRoute(
                    rip,
                    "is private (give --private-if)",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if look.kind == RouteType::Local {
            return Ok(None);
        }
        match look.oif {
            Some(i) if Some(i) != self.tun_index => Ok(crate::sys::ifname(i)),
            _ => Err(SteeringError::NoRoute(
                rip,
                "is private (give --private-if)",
            )),
        }
    }

    /// Steer packets carrying firewall mark `mark` into the device `ifindex`, for both families: a rule
    /// `fwmark MARK lookup TABLE` (priority just before the reply rules) and `default dev IFINDEX table TABLE`. The
    /// mark is set by the user's nftables/iptables rules in mangle prerouting, as for IPVS. IPv6 is best effort
    /// (skipped when the namespace has it off).
    pub fn add_mark(&mut self, mark: u32, ifindex: u32, table: u32) -> Result<(), SteeringError> {
        let (p, prio) = (self.cfg.proto, self.cfg.rule_priority.saturating_sub(1));
        for family in IpVersion::ALL {
            let route = self.nl.route_change(
                Change::Add,
                netlink::device_route(None, family, ifindex, table, p),
            );
            match route {
                Ok(()) => {}
                Err(_) if family == IpVersion::V6 => continue,
                Err(e) => return Err(e.into()),
            }
            self.nl.rule_change(
                Change::Add,
                netlink::fwmark_rule(family, prio, mark, table, p),
            )?;
        }
        Ok(())
    }

    /// Undo [`add_mark`](Self::add_mark) (the routes go with the device too).
    pub fn remove_mark(&mut self, mark: u32, table: u32) -> Result<(), SteeringError> {
        let (p, prio) = (self.cfg.proto, self.cfg.rule_priority.saturating_sub(1));
        for family in IpVersion::ALL {
            let _ = self.nl.rule_change(
                Change::Delete,
                netlink::fwmark_rule(family, prio, mark, table, p),
            );
        }
        Ok(())
    }

    /// How `dst` is reached: a unicast route's interface, gateway and MTU (like `ip route get`).
    pub fn path(&mut self, dst: IpAddr) -> Result<Path, SteeringError> {
        let no_route = |e: &NetlinkError| {
            matches!(
                e.errno(),
                Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH)
            )
        };
        let look = match self.nl.route_get(dst) {
            Ok(l) => l,
            Err(e) if no_route(&e) => return Err(SteeringError::NoRoute(dst, "leads there")),
            Err(e) => return Err(e.into()),
        };
        let oif = match look.unicast_oif() {
            Some(i) if Some(i) != self.tun_index => i,
            _ => return Err(SteeringError::NoRoute(dst, "leads there")),
        };
        let mtu = self.nl.link_address(oif)?.map_or(1500, |(_, mtu)| mtu);
        Ok(Path {
            oif,
            gateway: look.gateway,
            mtu,
        })
    }

    /// Check that direct-routing real server `rip` is on a directly connected network (no gateway), as IPVS's
    /// `IP_VS_RT_MODE_KNOWN_NH` requires. Changes nothing.
    pub fn check_direct(&mut self, rip: IpAddr) -> Result<Path, SteeringError> {
        let p = self.path(rip).map_err(|e| match e {
            SteeringError::NoRoute(..) => SteeringError::NotDirectlyConnected {
                rip,
                how: "there is no route to it".into(),
            },
            e => e,
        })?;
        match p.gateway {
            Some(gw) => Err(SteeringError::NotDirectlyConnected {
                rip,
                how: format!("it is reached through the router {gw}"),
            }),
            None => Ok(p),
        }
    }

    /// Make the installed steering match `vips` (virtual addresses) and `rips` (real servers): adds what is
    /// missing first, then removes what is no longer needed. On error, call again with the previous sets to undo.
    pub fn reconcile(
        &mut self,
        vips: &BTreeSet<IpAddr>,
        rips: &BTreeSet<IpAddr>,
    ) -> Result<(), SteeringError> {
        let tun = self.tun_index()?;
        let p = self.cfg.proto;
        // Reply rules: one per private interface in use.
        let mut want_ifs = BTreeSet::new();
        for &rip in rips {
            if let Some(name) = self.private_if_for(rip)? {
                want_ifs.insert((IpVersion::of(rip), name));
            }
        }
        for &vip in vips {
            if self.vips.contains_key(&vip) {
                continue;
            }
            let pub_idx = self.check_vip(vip)?;
            if vip.is_ipv6() {
                self.enable_ipv6(vip)?;
                // Neighbour solicitations for the VIP are answered from the proxy table only with proxy_ndp.
                if let Some(pub_name) = crate::sys::ifname(pub_idx) {
                    crate::sys::write_sysctl(&format!("net/ipv6/conf/{pub_name}/proxy_ndp"), "1")
                        .map_err(|e| SteeringError::Sysctl {
                        context: format!("net.ipv6.conf.{pub_name}.proxy_ndp=1"),
                        source: e,
                    })?;
                }
            }
            self.nl.route_change(
                Change::Add,
                netlink::device_route(Some(vip), IpVersion::of(vip), tun, 254, p),
            )?;
            if let Err(e) = if self.announced(&vip) {
                self.nl
                    .neighbour_change(Change::Add, netlink::proxy_neighbour(vip, pub_idx, p))
            } else {
                Ok(())
            } {
                let _ = self.nl.route_change(
                    Change::Delete,
                    netlink::device_route(Some(vip), IpVersion::of(vip), tun, 254, p),
                );
                return Err(e.into());
            }
            self.vips.insert(vip, pub_idx);
        }
        for (family, name) in &want_ifs {
            if !self.reply_ifs.contains(&(*family, name.clone())) {
                if *family == IpVersion::V6
                    && let Some(rip) = rips.iter().find(|r| r.is_ipv6())
                {
                    self.enable_ipv6(*rip)?;
                }
                let r = netlink::iif_rule(*family, self.cfg.rule_priority, name, self.cfg.table, p);
                match self.nl.rule_change(Change::Add, r) {
                    Ok(()) => {}
                    // Kept by a hand-over hold of the previous rvsd.
                    Err(e) if e.errno() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                self.reply_ifs.insert((*family, name.clone()));
            }
        }
        let stale: Vec<(IpAddr, u32)> = self
            .vips
            .iter()
            .filter(|(v, _)| !vips.contains(v))
            .map(|(v, i)| (*v, *i))
            .collect();
        for (vip, pub_idx) in stale {
            if self.announced(&vip) {
                self.nl
                    .neighbour_change(Change::Delete, netlink::proxy_neighbour(vip, pub_idx, p))?;
            }
            self.nl.route_change(
                Change::Delete,
                netlink::device_route(Some(vip), IpVersion::of(vip), tun, 254, p),
            )?;
            self.vips.remove(&vip);
        }
        let stale_ifs: Vec<(IpVersion, String)> =
            self.reply_ifs.difference(&want_ifs).cloned().collect();
        for (family, name) in stale_ifs {
            let r = netlink::iif_rule(family, self.cfg.rule_priority, &name, self.cfg.table, p);
            self.nl.rule_change(Change::Delete, r)?;
            self.reply_ifs.remove(&(family, name));
        }
        Ok(())
    }

    /// The VIPs currently answered for (steered and owned), with their public interface index.
    pub fn announced_vips(&self) -> Vec<(IpAddr, u32)> {
        self.vips
            .iter()
            .filter(|(v, _)| self.announced(v))
            .map(|(v, i)| (*v, *i))
            .collect()
    }

    /// The VIPs currently steered.
    pub fn vips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.vips.keys().copied()
    }

    /// The interfaces with a reply rule, with their family.
    pub fn reply_interfaces(&self) -> impl Iterator<Item = (IpVersion, &str)> + '_ {
        self.reply_ifs.iter().map(|(f, n)| (*f, n.as_str()))
    }
}
