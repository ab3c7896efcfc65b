//! The LVS picture in network namespaces, shaped like a real site: the director has one NIC to a public switch and
//! one to a private switch; clients hang on the public switch, real servers on the private one.
//!
//! ```text
//!  client ns              PREFIX-pubsw                director ns (PREFIX-director, -director2, ...)
//!  +--------------+      +-------------+      +-----------------------------------------+
//!  | eth0         |------| c1          |      | pub0  198.51.100.1/24  2001:db8:0:1::1  |
//!  | 198.51.100.10|      |  br0        |------|       VIP 198.51.100.100, 2001:db8:0:1::100 (rvsd)
//!  | 2001:db8:0:1::10    | d1 (GRO on) |      | priv0 203.0.113.1/24   2001:db8:0:2::1  |
//!  | default via director| [r0 router] |      |       (DIP: the real servers' gateway)  |
//!  +--------------+      +-------------+      +-----------------------------------------+
//!                                                  |
//!                         PREFIX-privsw            |     real-server ns (PREFIX-rs1, ...)
//!                        +-------------+           |    +-------------------------------+
//!                        | d1 (GRO on) |-----------+    | eth0 203.0.113.11/24          |
//!                        |  br0        |----------------|      2001:db8:0:2::11/64      |
//!                        | rs1, rs2 ...|                | default via the DIP (both)    |
//!                        | [r0 router] |                | HTTP :80, UDP echo :53        |
//!                        +-------------+                +-------------------------------+
//! ```
//!
//! With [`LabConfig::router`], a router namespace `PREFIX-router` sits between the client and the public switch
//! (client 198.18.0.10 / 2001:db8:0:3::10 on its own link, the router at .254 / ::254 on both switches), so clients
//! reach the VIP through a router, as in direct routing and ECMP scale-out. IPv6 host parts read like the IPv4 last
//! octet (203.0.113.11 is 2001:db8:0:2::11).
//!
//! With [`LabConfig::method`] `Dr` or `Tun` (which need the router), the real servers are shaped for direct routing
//! or tunnelling: the VIP on `lo` (`nodad` for IPv6), `arp_ignore=1` / `arp_announce=2`, default routes to the router
//! with the VIP as preferred source (so UDP answers leave from the VIP), and for `Tun` an `rvs-lab decap` per real
//! server (the stand-in for the kernel's ipip/fou/gre modules; see [`crate::decap`]).
//!
//! With [`Method::Mixed`] (no router) the real servers are shaped for every method at once and keep the DIP as their
//! gateway, and [`LabConfig::comparisons`] gives the client a source address per comparison path (plain routing,
//! kernel NAT, a proxy) and the director their local addresses: the shape `rvs-lab bench` measures in, so the bench
//! and the end-to-end tests run in one topology.
//!
//! GRO is on for the switch-side peers of every director veth (native XDP_REDIRECT into a veth needs NAPI on its
//! peer) and TX checksum offload is off on every sender (packets carry complete checksums, as a NIC delivers them).
//! Every `ip` command is confined to a lab namespace (`ip -n NS ...`); nothing touches the root namespace's
//! interfaces, routes or rules. Everything is registered with [`crate::cleanup`] and removed on drop.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::bins::Binaries;
use crate::cleanup::{Guard, Proc, StopSignal};
use crate::cmd::{ip, ip_in};
use crate::error::{LabError, Result};
use crate::netns;

/// The client's address (CIP) on the public switch.
pub const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The (first) director's public address.
pub const PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The virtual IP the services live on.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
/// The (first) director's private address, the real servers' gateway.
pub const DIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The router's address on the public switch (with [`LabConfig::router`]).
pub const ROUTER_PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
/// The router's address on the private switch (a gateway for real servers whose replies bypass the director).
pub const ROUTER_PRIVATE_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
/// The router's address on the client's link (with [`LabConfig::router`]).
pub const ROUTER_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The client's address behind the router (with [`LabConfig::router`]).
pub const ROUTED_CIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

/// The IPv6 client address on the public switch.
pub const CIP6: Ipv6Addr = v6(1, 0x10);
/// The (first) director's public IPv6 address.
pub const PUBLIC_IP6: Ipv6Addr = v6(1, 0x1);
/// The IPv6 virtual IP.
pub const VIP6: Ipv6Addr = v6(1, 0x100);
/// The (first) director's private IPv6 address.
pub const DIP6: Ipv6Addr = v6(2, 0x1);
/// The router's IPv6 addresses: public switch, private switch, client link.
pub const ROUTER_PUBLIC_IP6: Ipv6Addr = v6(1, 0x254);
pub const ROUTER_PRIVATE_IP6: Ipv6Addr = v6(2, 0x254);
pub const ROUTER_CLIENT_IP6: Ipv6Addr = v6(3, 0x1);
/// The client's IPv6 address behind the router.
pub const ROUTED_CIP6: Ipv6Addr = v6(3, 0x10);

/// With [`LabConfig::ha`]: the real servers' gateway, a VRRP address on the private side.
pub const HA_GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
/// With [`LabConfig::ha`]: the real servers' IPv6 gateway, a VRRP address on the private side.
pub const HA_GATEWAY6: Ipv6Addr = v6(2, 0x100);
/// With [`LabConfig::ha`]: the VRIDs of the IPv6 instances (VIP6 public side, gateway private side).
pub const HA_VRID_PUBLIC6: u8 = 61;
pub const HA_VRID_PRIVATE6: u8 = 62;
/// With [`LabConfig::ha`]: the VRID of the VIP's instance (public side).
pub const HA_VRID_PUBLIC: u8 = 51;
/// With [`LabConfig::ha`]: the VRID of the gateway's instance (private side).
pub const HA_VRID_PRIVATE: u8 = 52;
/// With [`LabConfig::ha`]: VRRP priority of director `k` (the first one preferred).
pub fn ha_priority(k: usize) -> u8 {
    if k <= 1 { 150 } else { 100 }
}

/// Port of the real servers' HTTP server.
pub const HTTP_PORT: u16 = 80;
/// Port of the real servers' UDP echo server.
pub const UDP_PORT: u16 = 53;
/// The networks the lab uses: public, private, the router's client links, and IPv6 (2001:db8:0:N::/64, N = 1
/// public, 2 private, 3 client link). A root namespace address in any of them stops the lab from starting.
pub const RANGES: [(IpAddr, u8); 4] = [
    (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 0)), 24),
    (IpAddr::V4(Ipv4Addr::new(203, 0, 113, 0)), 24),
    (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), 15),
    (
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
        48,
    ),
];
/// Most real servers a lab can have (RIPs .11 to .210).
pub const MAX_REAL_SERVERS: usize = 200;
/// Most directors a lab can have (public .1 to .8, private .1 to .8).
pub const MAX_DIRECTORS: usize = 8;
/// A director's (and the router's) interfaces to the public and the private switch.
pub const PUBLIC_IF: &str = "pub0";
pub const PRIVATE_IF: &str = "priv0";
/// The router's interface to the client's link.
pub const ROUTER_CLIENT_IF: &str = "cli0";
/// The client's and each real server's interface.
pub const HOST_IF: &str = "eth0";
/// The bridge inside each switch namespace.
pub const BRIDGE: &str = "br0";

/// 2001:db8:0:NET::HOST.
const fn v6(net: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, net, 0, 0, 0, host)
}

/// The IPv6 host part that reads like the decimal IPv4 last octet `n` (11 -> ::11).
fn hex_like(n: usize) -> u16 {
    u16::from_str_radix(&n.to_string(), 16).unwrap_or(0)
}

/// RIP of real server `i` (1-based): 203.0.113.(10 + i).
pub fn rip(i: usize) -> Ipv4Addr {
    let last = u8::try_from(10 + i.min(MAX_REAL_SERVERS)).unwrap_or(u8::MAX);
    Ipv4Addr::new(203, 0, 113, last)
}

/// IPv6 RIP of real server `i` (1-based): 2001:db8:0:2::(10 + i), e.g. rs1 2001:db8:0:2::11.
pub fn rip6(i: usize) -> Ipv6Addr {
    v6(2, hex_like(10 + i.min(MAX_REAL_SERVERS)))
}

/// Public address of director `k` (1-based): 198.51.100.k.
pub fn public_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, k.clamp(1, MAX_DIRECTORS) as u8)
}

/// Private address (DIP) of director `k` (1-based): 203.0.113.k.
pub fn dip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, k.clamp(1, MAX_DIRECTORS) as u8)
}

/// Public IPv6 address of director `k`: 2001:db8:0:1::k.
pub fn public_ip6(k: usize) -> Ipv6Addr {
    v6(1, hex_like(k.clamp(1, MAX_DIRECTORS)))
}

/// Private IPv6 address of director `k`: 2001:db8:0:2::k.
pub fn dip6(k: usize) -> Ipv6Addr {
    v6(2, hex_like(k.clamp(1, MAX_DIRECTORS)))
}

/// VIP:port.
pub fn vip(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(VIP, port))
}

/// [VIP6]:port.
pub fn vip6(port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(VIP6, port, 0, 0))
}

/// UDP port the tunnel real servers take GUE on (`--tun-type gue --tun-port 6080`).
pub const GUE_PORT: u16 = 6080;

/// The LVS forwarding method a lab is shaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// LVS-NAT: real servers route their replies back through the director (their gateway is the DIP).
    #[default]
    Nat,
    /// LVS-DR: real servers share the director's private network, hold the VIP on `lo` without answering ARP/ND
    /// for it (`arp_ignore=1`, `arp_announce=2`) and route replies to the router, never through the director.
    Dr,
    /// LVS-TUN: as DR, and each real server runs `rvs-lab decap` (IPIP, IPv6-in-IP, GRE, GUE on [`GUE_PORT`]), the
    /// lab's stand-in for the kernel's ipip/fou/gre modules this machine lacks.
    Tun,
    /// Every method at once, without a router (the bench measures NAT, DR and TUN in one lab): real servers hold
    /// the VIP on `lo` without answering ARP/ND for it and run `rvs-lab decap`, as for DR and TUN, but keep the DIP
    /// as their gateway, so NAT replies come back through the director and DR/TUN replies (from the VIP) cross the
    /// director's kernel as a plain router, never rvsd. Each real server's method is then chosen per `rvsadm -a`.
    Mixed,
}

impl Method {
    /// `nat`, `dr` or `tun`.
    pub fn parse(s: &str) -> Result<Method> {
        match s {
            "nat" => Ok(Method::Nat),
            "dr" => Ok(Method::Dr),
            "tun" => Ok(Method::Tun),
            _ => Err(LabError::Invalid(format!(
                "method {s:?}: use nat, dr or tun"
            ))),
        }
    }

    /// rvsadm's flag for real servers of this method.
    pub fn rvsadm_flag(self) -> &'static str {
        match self {
            Method::Nat => "-m",
            Method::Dr => "-g",
            Method::Tun => "-i",
            // A mixed lab takes any; NAT is ipvsadm's answer for a real server that must see replies.
            Method::Mixed => "-m",
        }
    }

    /// The real servers hold the VIP on `lo` (DR, TUN, mixed).
    fn vip_on_real_servers(self) -> bool {
        self != Method::Nat
    }

    /// The real servers decapsulate (TUN, mixed).
    fn decapsulates(self) -> bool {
        matches!(self, Method::Tun | Method::Mixed)
    }

    /// Replies leave the real servers for the router, not the director (DR, TUN).
    fn replies_bypass_director(self) -> bool {
        matches!(self, Method::Dr | Method::Tun)
    }
}

/// A path the bench compares rvs with, given its own addresses in the lab (`LabConfig::comparisons`): the client
/// gets a source address per path (chosen by a per-destination route with `src`), so the real servers never see one
/// 4-tuple arrive over two paths with different TCP timestamp offsets (PAWS), and no path's leftover conntrack or
/// TIME_WAIT state touches another's. (rvsd's own path uses [`CIP`] to [`VIP`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Comparison {
    /// Plain routing: the client to real server 1, the director a router (the ceiling).
    Direct,
    /// Kernel NAT (nftables DNAT, set up by the bench) to a VIP that is a local address of the director.
    KernelNat,
    /// A proxy (HAProxy, run by the bench) on its own local address of the director.
    Proxy,
}

impl Comparison {
    /// Every comparison path.
    pub const ALL: [Comparison; 3] = [Comparison::Direct, Comparison::KernelNat, Comparison::Proxy];

    /// The client's source address on this path.
    pub fn client_source(self) -> Ipv4Addr {
        match self {
            Comparison::Direct => Ipv4Addr::new(198, 51, 100, 11),
            Comparison::KernelNat => Ipv4Addr::new(198, 51, 100, 12),
            Comparison::Proxy => Ipv4Addr::new(198, 51, 100, 13),
        }
    }

    /// Where the client sends to on this path.
    pub fn target(self) -> Ipv4Addr {
        match self {
            Comparison::Direct => rip(1),
            Comparison::KernelNat => Ipv4Addr::new(198, 51, 100, 101),
            Comparison::Proxy => Ipv4Addr::new(198, 51, 100, 102),
        }
    }

    /// The director's own address for this path (none for plain routing).
    fn director_address(self) -> Option<Ipv4Addr> {
        match self {
            Comparison::Direct => None,
            Comparison::KernelNat | Comparison::Proxy => Some(self.target()),
        }
    }

    /// What the client routes by this path's source: the private network for plain routing, the target alone else.
    fn client_route(self) -> String {
        match self {
            Comparison::Direct => "203.0.113.0/24".into(),
            Comparison::KernelNat | Comparison::Proxy => format!("{}/32", self.target()),
        }
    }
}

/// How to build a lab. The defaults give one client, one director (running rvsd) and two real servers.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Namespace names are `PREFIX-client`, `PREFIX-director`, `PREFIX-pubsw`, `PREFIX-privsw`, `PREFIX-rs1`, ...
    pub prefix: String,
    pub real_servers: usize,
    /// Start `rvs-lab serve` in each real-server namespace.
    pub servers: bool,
    /// Start rvsd (in the first [`LabConfig::rvsd_directors`] directors).
    pub rvsd: bool,
    /// Where the rvsd socket, rules file and logs live; a fresh temp dir when `None`.
    pub state_dir: Option<PathBuf>,
    /// Extra arguments for rvsd.
    pub rvsd_args: Vec<String>,
    /// Number of directors, 1..=[`MAX_DIRECTORS`]: namespaces `PREFIX-director`, `PREFIX-director2`, ..., each
    /// with one veth to each switch; director k has public 198.51.100.k / 2001:db8:0:1::k and private 203.0.113.k /
    /// 2001:db8:0:2::k.
    pub directors: usize,
    /// How many directors (the first ones) get an rvsd when `rvsd` is set; default 1 (more answer ARP for the
    /// same VIP: use it with a router that picks one, e.g. ECMP).
    pub rvsd_directors: usize,
    /// A router namespace `PREFIX-router` between the client and the public switch: client -> router -> public
    /// switch. The client then has [`ROUTED_CIP`] / [`ROUTED_CIP6`]; the router has a leg on the private switch too
    /// (a gateway for real servers whose replies bypass the directors) and forwards with an L4 multipath hash.
    pub router: bool,
    /// Scale-out: the router runs BIRD with ECMP (5-tuple hash) over every director announcing the VIP over BGP;
    /// each director runs BIRD and, beside its rvsd, `rvs-announce` (announce only while rvsd serves the VIP). Needs
    /// `router`; give every director an rvsd (`rvsd_directors = directors`). See [`crate::bgp`].
    pub bgp: bool,
    /// The forwarding method the real servers are set up for (DR and TUN need [`LabConfig::router`]: the replies
    /// go to it, not to a director).
    pub method: Method,
    /// High availability (`rvs-lab up --ha`): two directors running VRRP (rvsd `--vrrp`) for the VIP on the public
    /// side (VRID [`HA_VRID_PUBLIC`]) and for the real servers' gateway [`HA_GATEWAY`] on the private side (VRID
    /// [`HA_VRID_PRIVATE`]), the same for IPv6 ([`VIP6`], [`HA_GATEWAY6`]; VRIDs [`HA_VRID_PUBLIC6`],
    /// [`HA_VRID_PRIVATE6`], VRRP version 3), director 1 preferred (priority 150 against 100), and IPVS connection
    /// sync both ways on the private network. The VIP and the gateway of a family are one sync group (`G_LVS`,
    /// `G_LVS6`): the NAT pair moves as one. Needs `directors >= 2` and `rvsd_directors >= 2`.
    pub ha: bool,
    /// Extra `--vrrp` keys for both HA instances, e.g. `version=3,advert-int=0.3` (default: keepalived's v2, 1 s,
    /// with a 12 s preempt delay so a restarted preferred director learns the connections by sync before it takes
    /// over).
    pub ha_vrrp: String,
    /// With [`LabConfig::ha`]: VRRP adverts unicast to the other directors instead of multicast (keepalived's
    /// `unicast_src_ip` / `unicast_peer`): every instance gets `unicast-src=` its own address on the instance's
    /// interface (of the instance's family) and `unicast-peer=` the other HA directors' addresses there.
    pub ha_unicast: bool,
    /// Paths beside rvsd's for the bench (plain routing, kernel NAT, a proxy): each gets its own client source
    /// address and route, and the director its local address (see [`Comparison`]). Needs no router.
    pub comparisons: Vec<Comparison>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            prefix: "rvs".into(),
            real_servers: 2,
            servers: true,
            rvsd: true,
            state_dir: None,
            rvsd_args: vec![],
            directors: 1,
            rvsd_directors: 1,
            router: false,
            bgp: false,
            method: Method::Nat,
            ha: false,
            ha_vrrp: String::new(),
            ha_unicast: false,
            comparisons: Vec::new(),
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl LabConfig {
    /// A configuration with a prefix unique to this process and call (for tests running in parallel).
    pub fn unique(tag: &str) -> LabConfig {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        LabConfig {
            prefix: format!("rvst{}-{n}{tag}", std::process::id()),
            ..LabConfig::default()
        }
    }

    /// The namespace of director `k` (1-based): `PREFIX-director`, `PREFIX-director2`, ...
    pub fn director_ns(&self, k: usize) -> String {
        if k <= 1 {
            format!("{}-director", self.prefix)
        } else {
            format!("{}-director{k}", self.prefix)
        }
    }

    /// Every namespace of this lab, switches first.
    pub fn namespaces(&self) -> Vec<String> {
        let p = &self.prefix;
        let mut v = vec![format!("{p}-pubsw"), format!("{p}-privsw")];
        if self.router {
            v.push(format!("{p}-router"));
        }
        v.push(format!("{p}-client"));
        v.extend((1..=self.directors).map(|k| self.director_ns(k)));
        v.extend((1..=self.real_servers).map(|i| format!("{p}-rs{i}")));
        v
    }

    /// Checks the numbers and the prefix.
    pub fn validate(&self) -> Result<()> {
        if self.real_servers == 0 || self.real_servers > MAX_REAL_SERVERS {
            return Err(LabError::Invalid(format!(
                "real servers must be 1..={MAX_REAL_SERVERS}"
            )));
        }
        if self.directors == 0 || self.directors > MAX_DIRECTORS {
            return Err(LabError::Invalid(format!(
                "directors must be 1..={MAX_DIRECTORS}"
            )));
        }
        if self.rvsd && (self.rvsd_directors == 0 || self.rvsd_directors > self.directors) {
            return Err(LabError::Invalid(format!(
                "rvsd can run in 1..={} directors",
                self.directors
            )));
        }
        if self.bgp && !self.router {
            return Err(LabError::Invalid(
                "ECMP over BGP needs the router namespace (router: true)".into(),
            ));
        }
        if self.method.replies_bypass_director() && !self.router {
            return Err(LabError::Invalid(
                "direct routing and tunnelling need the router (real servers answer clients through it)".into(),
            ));
        }
        if !self.comparisons.is_empty() && (self.router || self.directors != 1) {
            return Err(LabError::Invalid(
                "comparison paths need the client on the public switch of one director (no router)"
                    .into(),
            ));
        }
        if self.ha && (self.directors < 2 || (self.rvsd && self.rvsd_directors < 2)) {
            return Err(LabError::Invalid(
                "--ha needs two directors running rvsd".into(),
            ));
        }
        if self.prefix.is_empty()
            || !self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(LabError::Invalid(format!(
                "prefix {:?}: use letters, digits, - and _",
                self.prefix
            )));
        }
        Ok(())
    }
}

/// Namespace names of a default-shaped lab (one director, no router) with `prefix`.
pub fn ns_names(prefix: &str, real_servers: usize) -> Vec<String> {
    LabConfig {
        prefix: prefix.into(),
        real_servers,
        ..LabConfig::default()
    }
    .namespaces()
}

/// True when `suffix` (the part after `PREFIX-`) names one of a lab's namespaces (for `rvs-lab down`).
pub fn is_lab_ns_suffix(suffix: &str) -> bool {
    let numbered = |name: &str, min: u32| {
        suffix.strip_prefix(name).is_some_and(|n| {
            n.is_empty() && min == 0
                || (!n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && n.parse::<u32>().is_ok_and(|x| x >= min))
        })
    };
    matches!(suffix, "client" | "pubsw" | "privsw" | "router")
        || numbered("director", 0)
        || numbered("rs", 1)
}

/// Parses the `a.b.c.d/len` and `x:y::z/len` tokens after `inet` / `inet6` in `ip -o addr` output.
pub fn parse_addrs(text: &str) -> Vec<(IpAddr, u8)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        while let Some(tok) = it.next() {
            if (tok == "inet" || tok == "inet6")
                && let Some((a, l)) = it.next().and_then(|s| s.split_once('/'))
                && let (Ok(a), Ok(l)) = (a.parse(), l.parse())
            {
                out.push((a, l));
            }
        }
    }
    out
}

/// The first and last address of a network, as 128-bit numbers within its family.
fn range_of(a: IpAddr, len: u8) -> (u128, u128) {
    let (bits, v) = match a {
        IpAddr::V4(a) => (32u32, u128::from(u32::from(a))),
        IpAddr::V6(a) => (128u32, u128::from(a)),
    };
    let len = u32::from(len).min(bits);
    let host_bits = bits - len;
    let host_mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (v & !host_mask, v | host_mask)
}

/// True when the two networks share any address (never across families).
pub fn overlaps(a: (IpAddr, u8), b: (IpAddr, u8)) -> bool {
    if a.0.is_ipv4() != b.0.is_ipv4() {
        return false;
    }
    let (a0, a1) = range_of(a.0, a.1);
    let (b0, b1) = range_of(b.0, b.1);
    a0 <= b1 && b0 <= a1
}

/// Checks that we are root, that `ip` works, and that no address of the current (root) namespace overlaps the lab's
/// ranges (read-only `ip -o addr`).
pub fn preflight() -> Result<()> {
    if rvs_io::sys::euid() != 0 {
        return Err(LabError::NotRoot);
    }
    let text = ip(&["-o", "addr", "show"])?;
    for (a, l) in parse_addrs(&text) {
        for r in RANGES {
            if overlaps((a, l), r) {
                return Err(LabError::Overlap {
                    addr: format!("{a}/{l}"),
                    range: format!("{}/{}", r.0, r.1),
                });
            }
        }
    }
    Ok(())
}

/// A running lab. Dropping it removes everything it created.
#[derive(Debug)]
pub struct Lab {
    pub cfg: LabConfig,
    pub state_dir: PathBuf,
    guard: Guard,
    bins: Option<Binaries>,
    lab_exe: PathBuf,
}

impl Lab {
    /// Builds the topology, starts the servers and rvsd as configured.
    pub fn up(cfg: LabConfig) -> Result<Lab> {
        cfg.validate()?;
        preflight()?;
        if let Some(ns) = cfg.namespaces().iter().find(|n| netns::exists(n)) {
            return Err(LabError::StillUp {
                prefix: cfg.prefix.clone(),
                what: format!("namespace {ns}"),
            });
        }
        let bins = if cfg.rvsd {
            Some(crate::bins::find()?)
        } else {
            None
        };
        let lab_exe = match &bins {
            Some(b) => b.rvs_lab.clone(),
            None => crate::bins::find_lab()?,
        };
        let guard = Guard::new();
        let state_dir = match &cfg.state_dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!("rvs-lab-{}", cfg.prefix)),
        };
        if state_dir.exists() {
            std::fs::remove_dir_all(&state_dir)
                .map_err(LabError::io(format!("clearing {}", state_dir.display())))?;
        }
        std::fs::create_dir_all(&state_dir)
            .map_err(LabError::io(format!("creating {}", state_dir.display())))?;
        guard.add_dir(state_dir.clone());
        let mut lab = Lab {
            cfg,
            state_dir,
            guard,
            bins,
            lab_exe,
        };
        lab.build_topology()?;
        if lab.cfg.method.decapsulates() {
            lab.start_decapsulators()?;
        }
        if lab.cfg.ha {
            // The real servers' gateways are the VRRP addresses, wherever they live.
            for i in 1..=lab.cfg.real_servers {
                let (gw4, gw6) = (HA_GATEWAY.to_string(), HA_GATEWAY6.to_string());
                ip_in(&lab.rs(i), &["route", "replace", "default", "via", &gw4])?;
                ip_in(
                    &lab.rs(i),
                    &["-6", "route", "replace", "default", "via", &gw6],
                )?;
            }
        }
        if lab.cfg.servers {
            lab.start_servers()?;
        }
        if lab.cfg.rvsd {
            for k in 1..=lab.cfg.rvsd_directors {
                lab.start_rvsd_in(k)?;
                if lab.cfg.ha {
                    // Sync both ways: every director is master and backup on the private network.
                    for state in ["master", "backup"] {
                        lab.rvsadm_in(
                            k,
                            &["--start-daemon", state, "--mcast-interface", PRIVATE_IF],
                        )?;
                    }
                }
            }
        }
        if lab.cfg.bgp {
            lab.start_bgp()?;
        }
        Ok(lab)
    }

    /// The client namespace.
    pub fn client(&self) -> String {
        format!("{}-client", self.cfg.prefix)
    }
    /// The (first) director namespace.
    pub fn director(&self) -> String {
        self.cfg.director_ns(1)
    }
    /// The kernel's drops into rvsd's TUN queue in the (first) director: `tx_dropped` of `rvs0` (0 when it cannot be
    /// read, e.g. rvsd is not running).
    pub fn tun_tx_dropped(&self) -> u64 {
        crate::cmd::cat_in(
            &self.director(),
            "/sys/class/net/rvs0/statistics/tx_dropped",
        )
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
    }
    /// Director `k`'s namespace (1-based).
    pub fn director_n(&self, k: usize) -> String {
        self.cfg.director_ns(k)
    }
    /// The public switch namespace (bridge [`BRIDGE`]; ports `c1` client, `dK` director K, `r0` router).
    pub fn pubsw(&self) -> String {
        format!("{}-pubsw", self.cfg.prefix)
    }
    /// The private switch namespace (bridge [`BRIDGE`]; ports `dK` director K, `rsI` real server I, `r0` router).
    pub fn privsw(&self) -> String {
        format!("{}-privsw", self.cfg.prefix)
    }
    /// The router namespace (present with [`LabConfig::router`]).
    pub fn router(&self) -> String {
        format!("{}-router", self.cfg.prefix)
    }
    /// Real server `i`'s namespace (1-based).
    pub fn rs(&self, i: usize) -> String {
        format!("{}-rs{i}", self.cfg.prefix)
    }
    /// All namespaces.
    pub fn namespaces(&self) -> Vec<String> {
        self.cfg.namespaces()
    }
    /// The client's IPv4 address in this lab ([`CIP`], or [`ROUTED_CIP`] behind the router).
    pub fn cip(&self) -> Ipv4Addr {
        if self.cfg.router { ROUTED_CIP } else { CIP }
    }
    /// The client's IPv6 address in this lab.
    pub fn cip6(&self) -> Ipv6Addr {
        if self.cfg.router { ROUTED_CIP6 } else { CIP6 }
    }
    /// rvsd's control socket (first director).
    pub fn socket(&self) -> PathBuf {
        self.socket_in(1)
    }
    /// rvsd's rules file (first director).
    pub fn rules(&self) -> PathBuf {
        self.rules_in(1)
    }
    /// rvsd's log (first director).
    pub fn rvsd_log(&self) -> PathBuf {
        self.rvsd_log_in(1)
    }
    /// The control socket of director `k`'s rvsd: `rvsd.sock`, `rvsd2.sock`, ...
    pub fn socket_in(&self, k: usize) -> PathBuf {
        self.state_dir.join(format!("{}.sock", rvsd_name(k)))
    }
    /// Director `k`'s rvsd rules file: `rules`, `rules2`, ...
    pub fn rules_in(&self, k: usize) -> PathBuf {
        if k <= 1 {
            self.state_dir.join("rules")
        } else {
            self.state_dir.join(format!("rules{k}"))
        }
    }
    /// Director `k`'s rvsd log: `rvsd.log`, `rvsd2.log`, ...
    pub fn rvsd_log_in(&self, k: usize) -> PathBuf {
        self.state_dir.join(format!("{}.log", rvsd_name(k)))
    }
    /// The binaries (when rvsd is part of this lab).
    pub fn binaries(&self) -> Option<&Binaries> {
        self.bins.as_ref()
    }

    /// A veth from switch namespace `sw` (port `port`, enslaved to its bridge) to `ifname` in namespace `ns`; both
    /// ends up.
    fn plug(&self, sw: &str, port: &str, ns: &str, ifname: &str) -> Result<()> {
        ip_in(
            sw,
            &[
                "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns,
            ],
        )?;
        ip_in(sw, &["link", "set", port, "master", BRIDGE, "up"])?;
        ip_in(ns, &["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// Adds an IPv4 /24 and an IPv6 /64 (no duplicate address detection) to `ifname` in `ns`.
    fn addrs(ns: &str, ifname: &str, a4: Ipv4Addr, a6: Ipv6Addr) -> Result<()> {
        ip_in(ns, &["addr", "add", &format!("{a4}/24"), "dev", ifname])?;
        ip_in(
            ns,
            &["addr", "add", &format!("{a6}/64"), "dev", ifname, "nodad"],
        )?;
        Ok(())
    }

    /// Default routes of both families in `ns`.
    fn default_routes(ns: &str, gw4: Ipv4Addr, gw6: Ipv6Addr) -> Result<()> {
        ip_in(ns, &["route", "add", "default", "via", &gw4.to_string()])?;
        ip_in(
            ns,
            &["-6", "route", "add", "default", "via", &gw6.to_string()],
        )?;
        Ok(())
    }

    /// Director `k`'s veths to both switches, its addresses, GRO on the switch-side peers (so XDP can redirect into
    /// the director's veths) and, behind a router, its default routes.
    pub(crate) fn plug_director(&self, k: usize) -> Result<()> {
        let (pubsw, privsw, d) = (self.pubsw(), self.privsw(), self.director_n(k));
        let port = format!("d{k}");
        self.plug(&pubsw, &port, &d, PUBLIC_IF)?;
        self.plug(&privsw, &port, &d, PRIVATE_IF)?;
        Self::addrs(&d, PUBLIC_IF, public_ip(k), public_ip6(k))?;
        Self::addrs(&d, PRIVATE_IF, dip(k), dip6(k))?;
        for sw in [&pubsw, &privsw] {
            let p = port.clone();
            netns::run_in(sw, move || netns::set_gro(&p, true))?;
        }
        if self.cfg.router {
            Self::default_routes(&d, ROUTER_PUBLIC_IP, ROUTER_PUBLIC_IP6)?;
        }
        Ok(())
    }

    /// Registers a process with the cleanup guard.
    pub(crate) fn guard_add(&self, p: Proc) {
        self.guard.add_proc(p);
    }

    /// If the registered process `name` has exited: forgets it and returns its status.
    pub(crate) fn proc_exited(&self, name: &str) -> Option<String> {
        let mut res = crate::cleanup::lock(&self.guard.resources);
        let p = res.procs.iter_mut().find(|p| p.name == name)?;
        let status = p.child.try_wait().ok().flatten()?;
        res.procs.retain(|p| p.name != name);
        Some(status.to_string())
    }

    /// SIGKILLs and reaps the registered process `name` (a crash); false if there was none.
    pub(crate) fn kill_named(&self, name: &str) -> bool {
        let p = {
            let mut res = crate::cleanup::lock(&self.guard.resources);
            let Some(i) = res.procs.iter().position(|p| p.name == name) else {
                return false;
            };
            res.procs.remove(i)
        };
        let mut p = p;
        let _ = p.child.kill();
        let _ = p.child.wait();
        true
    }

    fn build_topology(&mut self) -> Result<()> {
        let cfg = self.cfg.clone();
        let (client, pubsw, privsw, router) =
            (self.client(), self.pubsw(), self.privsw(), self.router());
        for ns in self.namespaces() {
            ip(&["netns", "add", ns.as_str()])?;
            self.guard.add_namespace(&ns);
            ip_in(&ns, &["link", "set", "lo", "up"])?;
        }
        // Switches are layer 2 only: no IPv6 on their ports, no multicast snooping (VRRP and NDP flood), and no
        // netfilter on bridged frames (with br_netfilter loaded on the host, every frame a bridge forwarded went
        // through the IP hooks, about 5 % of a bench's samples; a real switch does no such thing). The bridge
        // sysctls are per namespace and exist only while br_netfilter is loaded.
        for sw in [&pubsw, &privsw] {
            netns::run_in(sw, || {
                netns::write_sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
                netns::write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
                for call in ["iptables", "ip6tables", "arptables"] {
                    let name = format!("net.bridge.bridge-nf-call-{call}");
                    if std::path::Path::new("/proc/sys")
                        .join(name.replace('.', "/"))
                        .exists()
                    {
                        netns::write_sysctl(&name, "0")?;
                    }
                }
                Ok(())
            })?;
            ip_in(
                sw,
                &[
                    "link",
                    "add",
                    BRIDGE,
                    "type",
                    "bridge",
                    "mcast_snooping",
                    "0",
                ],
            )?;
            ip_in(sw, &["link", "set", BRIDGE, "up"])?;
        }
        // Hosts: dual stack, addresses usable at once.
        let mut hosts: Vec<String> = vec![client.clone()];
        if cfg.router {
            hosts.push(router.clone());
        }
        hosts.extend((1..=cfg.directors).map(|k| self.director_n(k)));
        hosts.extend((1..=cfg.real_servers).map(|i| self.rs(i)));
        for ns in &hosts {
            let forwards = *ns == router || (1..=cfg.directors).any(|k| *ns == self.director_n(k));
            let is_router = *ns == router;
            netns::run_in(ns, move || {
                netns::write_sysctl("net.ipv6.conf.all.disable_ipv6", "0")?;
                netns::write_sysctl("net.ipv6.conf.default.disable_ipv6", "0")?;
                netns::write_sysctl("net.ipv6.conf.all.accept_dad", "0")?;
                netns::write_sysctl("net.ipv6.conf.default.accept_dad", "0")?;
                if forwards {
                    netns::write_sysctl("net.ipv4.ip_forward", "1")?;
                    netns::write_sysctl("net.ipv6.conf.all.forwarding", "1")?;
                }
                if is_router {
                    // Direct-routing replies come from the VIP on the private leg while the VIP's route points at
                    // the public side: no reverse-path filter on a router in the middle of asymmetric paths.
                    netns::write_sysctl("net.ipv4.conf.all.rp_filter", "0")?;
                    netns::write_sysctl("net.ipv4.conf.default.rp_filter", "0")?;
                    // ECMP spreads flows by their 5-tuple, not only by addresses.
                    netns::write_sysctl("net.ipv4.fib_multipath_hash_policy", "1")?;
                    netns::write_sysctl("net.ipv6.fib_multipath_hash_policy", "1")?;
                }
                Ok(())
            })?;
        }

        // Directors: one veth to each switch.
        for k in 1..=cfg.directors {
            self.plug_director(k)?;
        }

        // The client: on the public switch, or behind the router.
        if cfg.router {
            ip_in(
                &router,
                &[
                    "link",
                    "add",
                    ROUTER_CLIENT_IF,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    HOST_IF,
                    "netns",
                    &client,
                ],
            )?;
            ip_in(&router, &["link", "set", ROUTER_CLIENT_IF, "up"])?;
            ip_in(&client, &["link", "set", HOST_IF, "up"])?;
            Self::addrs(
                &router,
                ROUTER_CLIENT_IF,
                ROUTER_CLIENT_IP,
                ROUTER_CLIENT_IP6,
            )?;
            self.plug(&pubsw, "r0", &router, PUBLIC_IF)?;
            self.plug(&privsw, "r0", &router, PRIVATE_IF)?;
            Self::addrs(&router, PUBLIC_IF, ROUTER_PUBLIC_IP, ROUTER_PUBLIC_IP6)?;
            Self::addrs(&router, PRIVATE_IF, ROUTER_PRIVATE_IP, ROUTER_PRIVATE_IP6)?;
            Self::addrs(&client, HOST_IF, ROUTED_CIP, ROUTED_CIP6)?;
            Self::default_routes(&client, ROUTER_CLIENT_IP, ROUTER_CLIENT_IP6)?;
        } else {
            self.plug(&pubsw, "c1", &client, HOST_IF)?;
            Self::addrs(&client, HOST_IF, CIP, CIP6)?;
            Self::default_routes(&client, PUBLIC_IP, PUBLIC_IP6)?;
        }

        // Real servers: on the private switch, the (first) director's DIP as gateway.
        for i in 1..=cfg.real_servers {
            let rs = self.rs(i);
            self.plug(&privsw, &format!("rs{i}"), &rs, HOST_IF)?;
            Self::addrs(&rs, HOST_IF, rip(i), rip6(i))?;
            if !cfg.method.replies_bypass_director() {
                Self::default_routes(&rs, DIP, DIP6)?;
            }
            if cfg.method.vip_on_real_servers() {
                Self::silent_vip(&rs)?;
            }
            if cfg.method.replies_bypass_director() {
                // DR/TUN: replies leave from the VIP straight to the router. The default routes prefer the VIP as
                // source, so a UDP server bound to the wildcard address answers from the VIP too (a production DNS
                // server would bind the VIP itself).
                let (gw4, gw6) = (
                    ROUTER_PRIVATE_IP.to_string(),
                    ROUTER_PRIVATE_IP6.to_string(),
                );
                let (src4, src6) = (VIP.to_string(), VIP6.to_string());
                ip_in(&rs, &["route", "add", "default", "via", &gw4, "src", &src4])?;
                ip_in(
                    &rs,
                    &["-6", "route", "add", "default", "via", &gw6, "src", &src6],
                )?;
            }
        }
        self.plug_comparisons()?;

        // Every sender hands the wire complete checksums (the client, the real servers, the router).
        let mut senders: Vec<(String, &'static str)> = vec![(client, HOST_IF)];
        senders.extend((1..=cfg.real_servers).map(|i| (self.rs(i), HOST_IF)));
        if cfg.router {
            for ifname in [ROUTER_CLIENT_IF, PUBLIC_IF, PRIVATE_IF] {
                senders.push((router.clone(), ifname));
            }
        }
        for (ns, ifname) in senders {
            netns::run_in(&ns, move || netns::tx_checksum_off(ifname))?;
        }
        Ok(())
    }

    /// The VIP on `lo` of real server namespace `rs`, silent on the wire (`arp_ignore=1`, `arp_announce=2`), as
    /// DR and TUN real servers hold it.
    fn silent_vip(rs: &str) -> Result<()> {
        ip_in(rs, &["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
        ip_in(
            rs,
            &["addr", "add", &format!("{VIP6}/128"), "dev", "lo", "nodad"],
        )?;
        netns::run_in(rs, || {
            for (k, v) in [
                ("net.ipv4.conf.all.arp_ignore", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"),
                ("net.ipv4.conf.eth0.arp_ignore", "1"),
                ("net.ipv4.conf.eth0.arp_announce", "2"),
            ] {
                netns::write_sysctl(k, v)?;
            }
            Ok(())
        })
    }

    /// [`LabConfig::comparisons`]: the client's source address and route per path, the director's local address.
    fn plug_comparisons(&self) -> Result<()> {
        let (client, d) = (self.client(), self.director());
        for c in &self.cfg.comparisons {
            let src = c.client_source().to_string();
            ip_in(
                &client,
                &["addr", "add", &format!("{src}/24"), "dev", HOST_IF],
            )?;
            let gw = PUBLIC_IP.to_string();
            let route = c.client_route();
            match c {
                Comparison::Direct => {
                    ip_in(&client, &["route", "add", &route, "via", &gw, "src", &src])?
                }
                Comparison::KernelNat | Comparison::Proxy => ip_in(
                    &client,
                    &["route", "add", &route, "dev", HOST_IF, "src", &src],
                )?,
            };
            if let Some(a) = c.director_address() {
                ip_in(&d, &["addr", "add", &format!("{a}/32"), "dev", PUBLIC_IF])?;
            }
        }
        Ok(())
    }

    /// `rvs-lab decap` in every real server (tunnel labs).
    fn start_decapsulators(&mut self) -> Result<()> {
        for i in 1..=self.cfg.real_servers {
            let ns = self.rs(i);
            let gue_port = GUE_PORT.to_string();
            self.spawn_ready(
                &ns,
                &["decap", "--gue-port", &gue_port],
                &format!("decap-rs{i}"),
                &format!("decap rs{i}"),
                "the decapsulator",
            )?;
        }
        Ok(())
    }

    /// Starts `rvs-lab ARGS` in namespace `ns` (stderr to `LOG.log` in the state dir, killed with the lab) and
    /// waits for it to print `ready`; `what` names it in the error.
    fn spawn_ready(
        &mut self,
        ns: &str,
        args: &[&str],
        log: &str,
        proc_name: &str,
        what: &str,
    ) -> Result<()> {
        let log = self.state_dir.join(format!("{log}.log"));
        let logf = std::fs::File::create(&log)
            .map_err(LabError::io(format!("creating {}", log.display())))?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns])
            .arg(&self.lab_exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logf)
            .process_group(0);
        let mut child = c
            .spawn()
            .map_err(LabError::io(format!("starting {what} in {ns}")))?;
        let stdout = child.stdout.take();
        self.guard.add_proc(Proc {
            name: proc_name.to_owned(),
            child,
            stop: StopSignal::Kill,
        });
        let mut line = String::new();
        if let Some(out) = stdout {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() != "ready" {
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(LabError::Process {
                what: format!("{what} in {ns} did not start: {}", err.trim()),
            });
        }
        Ok(())
    }

    fn start_servers(&mut self) -> Result<()> {
        for i in 1..=self.cfg.real_servers {
            let ns = self.rs(i);
            let name = format!("rs{i}");
            let (http, udp) = (format!("[::]:{HTTP_PORT}"), format!("[::]:{UDP_PORT}"));
            self.spawn_ready(
                &ns,
                &["serve", "--name", &name, "--http", &http, "--udp", &udp],
                &name,
                &format!("server {name}"),
                "the server",
            )?;
        }
        Ok(())
    }

    fn bins(&self) -> Result<&Binaries> {
        self.bins
            .as_ref()
            .ok_or_else(|| LabError::Invalid("this lab was built without rvsd".into()))
    }

    /// True while an rvsd of this lab is running in the first director.
    pub fn rvsd_running(&self) -> bool {
        self.rvsd_running_in(1)
    }

    /// True while director `k`'s rvsd is running.
    pub fn rvsd_running_in(&self, k: usize) -> bool {
        let name = rvsd_name(k);
        crate::cleanup::lock(&self.guard.resources)
            .procs
            .iter()
            .any(|p| p.name == name)
    }

    /// The pid of the first director's rvsd.
    pub fn rvsd_pid(&self) -> Option<u32> {
        let name = rvsd_name(1);
        crate::cleanup::lock(&self.guard.resources)
            .procs
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.child.id())
    }

    /// Starts rvsd in the first director namespace and waits until its control socket answers.
    pub fn start_rvsd(&mut self) -> Result<()> {
        self.start_rvsd_in(1)
    }

    /// Starts rvsd in director `k`'s namespace (with [`LabConfig::rvsd_args`]) and waits until its control socket
    /// answers.
    pub fn start_rvsd_in(&mut self, k: usize) -> Result<()> {
        if k == 0 || k > self.cfg.directors {
            return Err(LabError::Invalid(format!(
                "no director {k} (this lab has {})",
                self.cfg.directors
            )));
        }
        if self.bins.is_none() {
            self.bins = Some(crate::bins::find()?);
        }
        let bins = self.bins()?.clone();
        let (name, socket, log) = (rvsd_name(k), self.socket_in(k), self.rvsd_log_in(k));
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(LabError::io(format!("opening {}", log.display())))?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.director_n(k)])
            .arg(&bins.rvsd)
            .arg("--socket")
            .arg(&socket)
            .arg("--rules")
            .arg(self.rules_in(k))
            .args(["--public-if", PUBLIC_IF, "--private-if", PRIVATE_IF])
            .args(&self.cfg.rvsd_args)
            .args(self.ha_args(k))
            .env("RVS_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .process_group(0);
        let child = c
            .spawn()
            .map_err(LabError::io(format!("starting {name}")))?;
        self.guard.add_proc(Proc {
            name: name.clone(),
            child,
            stop: StopSignal::Term,
        });
        let start = Instant::now();
        let limit = Duration::from_secs(20);
        loop {
            {
                let mut res = crate::cleanup::lock(&self.guard.resources);
                if let Some(p) = res.procs.iter_mut().find(|p| p.name == name)
                    && let Ok(Some(status)) = p.child.try_wait()
                {
                    res.procs.retain(|p| p.name != name);
                    drop(res);
                    return Err(LabError::Process {
                        what: format!(
                            "{name} exited at start ({status}); its log says:\n{}",
                            self.log_tail(&log)
                        ),
                    });
                }
            }
            if socket.exists()
                && self
                    .rvsadm_output_in(k, &["-L", "-n"])
                    .is_ok_and(|o| o.status.success())
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(LabError::Timeout {
                    what: format!(
                        "{name}'s control socket to answer; its log says:\n{}",
                        self.log_tail(&log)
                    ),
                    ms: limit.as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn take_rvsd(&mut self, k: usize) -> Result<Proc> {
        let name = rvsd_name(k);
        let mut res = crate::cleanup::lock(&self.guard.resources);
        let idx = res
            .procs
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| LabError::Invalid(format!("{name} is not running")))?;
        Ok(res.procs.remove(idx))
    }

    /// Stops the first director's rvsd with SIGTERM and waits for it; returns its exit status text.
    pub fn stop_rvsd(&mut self) -> Result<String> {
        self.stop_rvsd_in(1)
    }

    /// Stops director `k`'s rvsd with SIGTERM and waits for it; returns its exit status text.
    pub fn stop_rvsd_in(&mut self, k: usize) -> Result<String> {
        let mut p = self.take_rvsd(k)?;
        Ok(crate::cleanup::stop_proc(&mut p, Duration::from_secs(10)))
    }

    /// A planned restart's first half: SIGUSR2 to the first director's rvsd (hold the replies, hand the connection
    /// table over, exit 75), waits for it; returns its exit status text. Start the next rvsd right after.
    pub fn hand_over_rvsd(&mut self) -> Result<String> {
        self.hand_over_rvsd_in(1)
    }

    /// [`Lab::hand_over_rvsd`] for director `k`.
    pub fn hand_over_rvsd_in(&mut self, k: usize) -> Result<String> {
        let mut p = self.take_rvsd(k)?;
        crate::cleanup::signal(p.child.id(), libc::SIGUSR2);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = p
                .child
                .try_wait()
                .map_err(LabError::io("waiting for rvsd"))?
            {
                return Ok(status.to_string());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(crate::cleanup::stop_proc(&mut p, Duration::from_secs(5)))
    }

    /// Keeps the state directory (logs, rules) when the lab is removed.
    pub fn keep_state_dir(&self) {
        crate::cleanup::lock(&self.guard.resources)
            .dirs
            .retain(|d| *d != self.state_dir);
    }

    /// Runs these binaries from the next start on (the bench runs private copies, safe from rebuilds).
    pub fn set_binaries(&mut self, bins: Binaries) {
        self.bins = Some(bins);
    }

    /// Runs this rvsd binary from the next start on (an upgrade between two builds).
    pub fn use_rvsd(&mut self, rvsd: PathBuf) -> Result<()> {
        if self.bins.is_none() {
            self.bins = Some(crate::bins::find()?);
        }
        if let Some(b) = self.bins.as_mut() {
            b.rvsd = rvsd;
        }
        Ok(())
    }

    /// Kills the first director's rvsd with SIGKILL (a crash: it cannot remove its steering) and reaps it.
    pub fn crash_rvsd(&mut self) -> Result<()> {
        self.crash_rvsd_in(1)
    }

    /// Kills director `k`'s rvsd with SIGKILL and reaps it.
    pub fn crash_rvsd_in(&mut self, k: usize) -> Result<()> {
        let mut p = self.take_rvsd(k)?;
        p.child.kill().map_err(LabError::io("killing rvsd"))?;
        p.child.wait().map_err(LabError::io("reaping rvsd"))?;
        Ok(())
    }

    fn log_tail(&self, log: &Path) -> String {
        crate::cmd::log_tail(log, 30, "\n")
    }

    /// The first director's rvsd log so far (for failure messages).
    pub fn rvsd_log_text(&self) -> String {
        self.log_tail(&self.rvsd_log())
    }

    /// Director `k`'s rvsd log so far.
    pub fn rvsd_log_text_in(&self, k: usize) -> String {
        self.log_tail(&self.rvsd_log_in(k))
    }

    /// rvsd's `--vrrp` arguments for director `k` with [`LabConfig::ha`].
    fn ha_args(&self, k: usize) -> Vec<String> {
        if !self.cfg.ha {
            return Vec::new();
        }
        let p = ha_priority(k);
        let extra = if self.cfg.ha_vrrp.is_empty() {
            "advert-int=1,preempt-delay=12".to_owned()
        } else {
            self.cfg.ha_vrrp.clone()
        };
        // Each instance: (name, interface, VRID, address, sync group, public side, IPv6); a director's own address
        // on the instance's interface is addr_of(director, public side, IPv6).
        let addr_of = |j: usize, public: bool, v6: bool| -> IpAddr {
            match (public, v6) {
                (true, false) => IpAddr::V4(public_ip(j)),
                (false, false) => IpAddr::V4(dip(j)),
                (true, true) => IpAddr::V6(public_ip6(j)),
                (false, true) => IpAddr::V6(dip6(j)),
            }
        };
        let instances = [
            (
                "VI_PUBLIC",
                PUBLIC_IF,
                HA_VRID_PUBLIC,
                IpAddr::V4(VIP),
                "G_LVS",
                true,
                false,
            ),
            (
                "VI_GATEWAY",
                PRIVATE_IF,
                HA_VRID_PRIVATE,
                IpAddr::V4(HA_GATEWAY),
                "G_LVS",
                false,
                false,
            ),
            // IPv6 (version 3 whatever the extra keys say): VIP6 and the real servers' IPv6 gateway.
            (
                "VI_PUBLIC6",
                PUBLIC_IF,
                HA_VRID_PUBLIC6,
                IpAddr::V6(VIP6),
                "G_LVS6",
                true,
                true,
            ),
            (
                "VI_GATEWAY6",
                PRIVATE_IF,
                HA_VRID_PRIVATE6,
                IpAddr::V6(HA_GATEWAY6),
                "G_LVS6",
                false,
                true,
            ),
        ];
        let mut args = Vec::new();
        for (name, ifname, vrid, address, group, public, v6) in instances {
            let mut spec = format!(
                "name={name},interface={ifname},vrid={vrid},priority={p},address={address},sync-group={group},{extra}"
            );
            if self.cfg.ha_unicast {
                spec.push_str(&format!(",unicast-src={}", addr_of(k, public, v6)));
                for j in (1..=self.cfg.rvsd_directors).filter(|&j| j != k) {
                    spec.push_str(&format!(",unicast-peer={}", addr_of(j, public, v6)));
                }
            }
            args.push("--vrrp".to_owned());
            args.push(spec);
        }
        args
    }

    /// Runs `rvsadm ARGS` against the first director's rvsd and returns its raw output (any exit status).
    pub fn rvsadm_output(&self, args: &[&str]) -> Result<Output> {
        self.rvsadm_output_in(1, args)
    }

    /// Runs `rvsadm ARGS` against director `k`'s rvsd and returns its raw output (any exit status).
    pub fn rvsadm_output_in(&self, k: usize, args: &[&str]) -> Result<Output> {
        let bins = self.bins()?;
        let mut c = Command::new(&bins.rvsadm);
        c.args(args).env("RVS_SOCKET", self.socket_in(k));
        let shown = crate::cmd::render("rvsadm", args);
        crate::cmd::run_command(c, &shown, RVSADM_BOUND).map(crate::cmd::Captured::into_output)
    }

    /// Runs `rvsadm ARGS` against the first director; a failure is an error with rvsadm's message. Returns stdout.
    pub fn rvsadm(&self, args: &[&str]) -> Result<String> {
        self.rvsadm_in(1, args)
    }

    /// Runs `rvsadm ARGS` against director `k`; a failure is an error with rvsadm's message. Returns stdout.
    pub fn rvsadm_in(&self, k: usize, args: &[&str]) -> Result<String> {
        let out = self.rvsadm_output_in(k, args)?;
        if !out.status.success() {
            return Err(LabError::Command {
                command: crate::cmd::render("rvsadm", args),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `f` in the client namespace.
    pub fn in_client<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        netns::run_in(&self.client(), f)
    }

    /// Runs `ip -n NS ARGS` in one of the lab's namespaces (read-only inspection in tests).
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        ip_in(ns, args)
    }

    /// Loads an nftables ruleset into namespace `ns` (`nft -f FILE`, the file `name` in the state directory, removed
    /// with the lab). A rejected ruleset is an error with nft's message.
    pub fn nft(&self, ns: &str, name: &str, ruleset: &str) -> Result<()> {
        let file = self.state_dir.join(name);
        std::fs::write(&file, ruleset)
            .map_err(LabError::io(format!("writing {}", file.display())))?;
        let file = file.display().to_string();
        crate::cmd::run_checked(&crate::cmd::in_ns(ns, &["nft", "-f", &file]))?;
        Ok(())
    }

    /// Removes the lab now, reporting problems.
    pub fn down(self) -> Result<()> {
        let problems = self.guard.teardown();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Process {
                what: problems.join("; "),
            })
        }
    }

    /// Leaves the lab running after this process exits (`rvs-lab up`); writes a state file for `rvs-lab down`.
    pub fn detach(self) -> Result<PathBuf> {
        let state = self.state_dir.join("state.json");
        let bins = self.bins.clone();
        let namespaces = self.namespaces();
        let prefix = self.cfg.prefix.clone();
        let socket = self.socket();
        // Each director's rvsd socket, for `rvs-lab exec PREFIX-directorK`.
        let sockets: serde_json::Map<String, serde_json::Value> = (1..=self.cfg.directors)
            .map(|k| (self.director_n(k), serde_json::json!(self.socket_in(k))))
            .collect();
        let res = self.guard.detach();
        let procs: Vec<serde_json::Value> = res
            .procs
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "pid": p.child.id()}))
            .collect();
        let json = serde_json::json!({
            "prefix": prefix,
            "namespaces": namespaces,
            "procs": procs,
            "socket": socket,
            "sockets": sockets,
            "bin_dir": bins.as_ref().map(|b| b.dir().to_path_buf()),
        });
        std::fs::write(
            &state,
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
        .map_err(LabError::io(format!("writing {}", state.display())))?;
        Ok(state)
    }
}

/// The bound of one rvsadm run (a listing of a large table included; rvsd answers a change in milliseconds).
const RVSADM_BOUND: Duration = Duration::from_secs(120);

/// The name of director `k`'s rvsd process (and of its socket and log files): `rvsd`, `rvsd2`, ...
pub fn rvsd_name(k: usize) -> String {
    if k <= 1 {
        "rvsd".into()
    } else {
        format!("rvsd{k}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn overlap_and_parsing() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 198.51.100.7/16 brd x scope global eth0\n\
                    2: eth0    inet6 2001:db8:0:5::7/64 scope global\n2: eth0    inet6 fd00::2/64 scope global\n";
        let addrs = parse_addrs(text);
        assert_eq!(
            addrs,
            vec![
                (v4(127, 0, 0, 1), 8),
                (v4(198, 51, 100, 7), 16),
                ("2001:db8:0:5::7".parse().unwrap_or(VIP.into()), 64),
                ("fd00::2".parse().unwrap_or(VIP.into()), 64),
            ]
        );
        assert!(!overlaps(addrs[0], RANGES[0]));
        assert!(overlaps(addrs[1], RANGES[0]));
        assert!(
            overlaps(addrs[2], RANGES[3]),
            "2001:db8:0:5::/64 is inside 2001:db8::/48"
        );
        assert!(!overlaps(addrs[3], RANGES[3]));
        assert!(
            RANGES
                .iter()
                .all(|r| !overlaps(addrs[3], *r) && !overlaps(addrs[0], *r))
        );
        assert!(overlaps((v4(203, 0, 113, 200), 32), RANGES[1]));
        assert!(!overlaps((v4(203, 0, 114, 1), 24), RANGES[1]));
        assert!(overlaps((v4(10, 0, 0, 1), 0), RANGES[1]));
        assert!(overlaps((v4(198, 19, 7, 1), 24), RANGES[2]));
        assert!(!overlaps((v4(198, 20, 0, 1), 24), RANGES[2]));
        // The uplink (192.0.2.0/24) is none of the lab's.
        assert!(RANGES.iter().all(|r| !overlaps((v4(192, 0, 2, 2), 24), *r)));
        // Families never overlap, not even ::/0 with an IPv4 range.
        assert!(!overlaps(
            ("::".parse().unwrap_or(VIP.into()), 0),
            RANGES[0]
        ));
        assert!(overlaps(("::".parse().unwrap_or(VIP.into()), 0), RANGES[3]));
    }

    #[test]
    fn names_and_addresses() {
        assert_eq!(
            ns_names("rvs", 2),
            vec![
                "rvs-pubsw",
                "rvs-privsw",
                "rvs-client",
                "rvs-director",
                "rvs-rs1",
                "rvs-rs2"
            ]
        );
        let big = LabConfig {
            directors: 3,
            router: true,
            real_servers: 1,
            ..LabConfig::default()
        };
        assert_eq!(
            big.namespaces(),
            vec![
                "rvs-pubsw",
                "rvs-privsw",
                "rvs-router",
                "rvs-client",
                "rvs-director",
                "rvs-director2",
                "rvs-director3",
                "rvs-rs1"
            ]
        );
        for n in big.namespaces() {
            assert!(is_lab_ns_suffix(n.trim_start_matches("rvs-")), "{n}");
        }
        for not in ["rs", "rs0", "directorx", "client2", "sw", "rs1a"] {
            assert!(!is_lab_ns_suffix(not), "{not}");
        }
        assert_eq!(rip(1), Ipv4Addr::new(203, 0, 113, 11));
        assert_eq!(rip(2), Ipv4Addr::new(203, 0, 113, 12));
        assert_eq!(rip6(1).to_string(), "2001:db8:0:2::11");
        assert_eq!(rip6(200).to_string(), "2001:db8:0:2::210");
        assert_eq!(VIP6.to_string(), "2001:db8:0:1::100");
        assert_eq!(CIP6.to_string(), "2001:db8:0:1::10");
        assert_eq!((public_ip(1), dip(1)), (PUBLIC_IP, DIP));
        assert_eq!((public_ip6(1), dip6(1)), (PUBLIC_IP6, DIP6));
        assert_eq!(public_ip(3), Ipv4Addr::new(198, 51, 100, 3));
        assert_eq!(dip6(3).to_string(), "2001:db8:0:2::3");
        assert_eq!(ROUTER_PUBLIC_IP6.to_string(), "2001:db8:0:1::254");
        assert_eq!(vip6(80).to_string(), "[2001:db8:0:1::100]:80");
        // Every address the lab hands out lies in one of its ranges.
        let all: Vec<IpAddr> = vec![
            CIP.into(),
            VIP.into(),
            DIP.into(),
            PUBLIC_IP.into(),
            ROUTER_PUBLIC_IP.into(),
            ROUTER_PRIVATE_IP.into(),
            ROUTER_CLIENT_IP.into(),
            ROUTED_CIP.into(),
            rip(200).into(),
            CIP6.into(),
            VIP6.into(),
            DIP6.into(),
            PUBLIC_IP6.into(),
            ROUTER_CLIENT_IP6.into(),
            ROUTED_CIP6.into(),
            rip6(200).into(),
            public_ip(MAX_DIRECTORS).into(),
        ];
        for a in all {
            assert!(RANGES.iter().any(|r| overlaps((a, 128), *r)), "{a}");
        }
        assert_eq!(rvsd_name(1), "rvsd");
        assert_eq!(rvsd_name(2), "rvsd2");
        let a = LabConfig::unique("x");
        let b = LabConfig::unique("x");
        assert_ne!(a.prefix, b.prefix);
        assert!(
            LabConfig {
                directors: 0,
                ..LabConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            LabConfig {
                directors: 2,
                rvsd_directors: 3,
                ..LabConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            LabConfig {
                directors: 2,
                rvsd_directors: 2,
                ..LabConfig::default()
            }
            .validate()
            .is_ok()
        );
        // The bench's shape: every method, no router; comparison paths need the client on the public switch.
        let bench = LabConfig {
            method: Method::Mixed,
            comparisons: Comparison::ALL.to_vec(),
            ..LabConfig::default()
        };
        assert!(bench.validate().is_ok());
        assert!(
            LabConfig {
                router: true,
                ..bench.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            LabConfig {
                method: Method::Dr,
                ..LabConfig::default()
            }
            .validate()
            .is_err(),
            "DR needs the router"
        );
        // Comparison addresses: distinct client sources, none of them the rvs client's, all in the lab's ranges.
        let mut seen = vec![CIP];
        for c in Comparison::ALL {
            assert!(!seen.contains(&c.client_source()), "{c:?}");
            seen.push(c.client_source());
            for a in [c.client_source(), c.target()] {
                assert!(RANGES.iter().any(|r| overlaps((a.into(), 32), *r)), "{a}");
            }
        }
        assert_eq!(Comparison::Direct.target(), rip(1));
    }
}
