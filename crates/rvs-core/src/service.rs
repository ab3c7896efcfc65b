//! Virtual-service and destination configuration types (what `ipvsadm -A/-E/-a/-e` carry): the one
//! configuration vocabulary of rvs. With the `serde` feature their serde form is rvs-api's JSON schema
//! (crates/rvs-api/README.md; the names there are these fields' names, or a `rename` below says so).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_wire::IpVersion;

/// Transport protocol of a virtual service (JSON `"tcp"`, `"udp"`, `"sctp"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Protocol {
    /// `-t`
    Tcp,
    /// `-u`
    Udp,
    /// `--sctp-service` (stored; not forwarded yet)
    Sctp,
}

impl Protocol {
    /// IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }

    /// Name as ipvsadm prints it ("TCP", "UDP", "SCTP").
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }

    /// Lower-case name used by /etc/services ("tcp", "udp", "sctp").
    pub const fn services_name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }

    /// The ipvsadm option selecting this protocol (`-t`, `-u`, `--sctp-service`).
    pub const fn option(self) -> &'static str {
        match self {
            Self::Tcp => "-t",
            Self::Udp => "-u",
            Self::Sctp => "--sctp-service",
        }
    }

    /// From an IP protocol number.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Self::Tcp),
            17 => Some(Self::Udp),
            132 => Some(Self::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A firewall mark (`-f`, the packet's `skb->mark`): what a fwmark service matches. JSON: the bare
/// number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Fwmark(pub u32);

impl Fwmark {
    /// No mark (`skb->mark` 0): the packet matches address services only. Never a service's mark.
    pub const NONE: Self = Self(0);

    /// The mark as the kernel holds it.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Fwmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A real server's weight (`-w`, 0..=65535; 0 = quiesced: no new connections, existing ones stay).
/// JSON: the bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Weight(pub u32);

impl Weight {
    /// The largest weight ipvsadm accepts.
    pub const MAX: Self = Self(65535);

    /// The weight as a number (what the schedulers compute with).
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Weight 0: the real server takes no new connections.
    pub const fn is_quiesced(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// How a virtual service is identified.
///
/// JSON: `{"addr": {"protocol": "tcp", "addr": "198.51.100.1", "port": 80}}` or
/// `{"fwmark": {"mark": 1, "ipv6": false}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ServiceKey {
    /// protocol + VIP + port (port 0 = all ports).
    Addr {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    /// Firewall mark (`-f`), per address family.
    Fwmark { mark: Fwmark, ipv6: bool },
}

impl ServiceKey {
    /// True for an IPv6 service.
    pub fn is_ipv6(&self) -> bool {
        match self {
            Self::Addr { addr, .. } => addr.is_ipv6(),
            Self::Fwmark { ipv6, .. } => *ipv6,
        }
    }

    /// The service's address family.
    pub fn ip_version(&self) -> IpVersion {
        if self.is_ipv6() {
            IpVersion::V6
        } else {
            IpVersion::V4
        }
    }

    /// Protocol of an address service (None for fwmark services).
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            Self::Addr { protocol, .. } => Some(*protocol),
            Self::Fwmark { .. } => None,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr {
                protocol,
                addr: IpAddr::V4(a),
                port,
            } => write!(f, "{protocol} {a}:{port}"),
            Self::Addr {
                protocol,
                addr: IpAddr::V6(a),
                port,
            } => write!(f, "{protocol} [{a}]:{port}"),
            Self::Fwmark { mark, ipv6 } => {
                write!(f, "FWM {mark}{}", if *ipv6 { " IPv6" } else { "" })
            }
        }
    }
}

/// Tunnel parameters: defined once, beside the encapsulation that uses them.
pub use rvs_wire::encap::{TunnelConfig, TunnelCsum, TunnelKind};

/// Forwarding method of a destination (bound to a connection when it is created).
///
/// JSON: `"masq"`, `"local"`, `"route"`, `"bypass"`, or `{"tunnel": {"type": "ipip", "port": 0, "csum": "nocsum"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ForwardMethod {
    /// NAT (`-m`).
    Masq,
    /// Local node: the kernel picks it when the real server is one of its own addresses. Listed
    /// only: the director refuses it ([`crate::ConfigError::MethodNotSupported`]).
    Local,
    /// Direct routing (`-g`, ipvsadm's default).
    #[default]
    Route,
    /// IP tunnelling (`-i`).
    Tunnel(TunnelConfig),
    /// Bypass (kernel internal). Listed only, refused like [`Self::Local`].
    Bypass,
}

impl ForwardMethod {
    /// ipvsadm's column name ("Masq", "Local", "Tunnel", "Route", "Bypass").
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Masq => "Masq",
            Self::Local => "Local",
            Self::Route => "Route",
            Self::Tunnel(_) => "Tunnel",
            Self::Bypass => "Bypass",
        }
    }

    /// The methods the director forwards (masq, route, tunnel); local and bypass are the kernel's own.
    pub const fn is_supported(&self) -> bool {
        matches!(self, Self::Masq | Self::Route | Self::Tunnel(_))
    }
}

/// Scheduler flags (`-b flag-1,flag-2,flag-3`), IPVS's IP_VS_SVC_F_SCHED1..3 (JSON `flag1`, `flag2`,
/// `flag3`, each optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SchedFlags {
    /// flag-1: sh-fallback / mh-fallback.
    #[cfg_attr(feature = "serde", serde(rename = "flag1", default))]
    pub fallback: bool,
    /// flag-2: sh-port / mh-port.
    #[cfg_attr(feature = "serde", serde(rename = "flag2", default))]
    pub port: bool,
    /// flag-3 (unused by the stock schedulers, kept for round trips).
    #[cfg_attr(feature = "serde", serde(default))]
    pub flag3: bool,
}

impl SchedFlags {
    /// True when no flag is set.
    pub fn is_empty(&self) -> bool {
        !(self.fallback || self.port || self.flag3)
    }
}

/// Persistence (`-p timeout`, `-M netmask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Persistence {
    /// Template timeout in seconds (> 0).
    pub timeout_s: u32,
    /// Client address mask: an IPv4 netmask for IPv4 services, an IPv6 mask for IPv6 ones
    /// (ipvsadm shows IPv6 masks as a prefix length).
    pub netmask: IpAddr,
}

impl Persistence {
    /// The default (host) mask for a family: 255.255.255.255 or ffff:...:ffff (/128).
    pub fn host_mask(version: IpVersion) -> IpAddr {
        match version {
            IpVersion::V4 => IpAddr::V4(Ipv4Addr::BROADCAST),
            IpVersion::V6 => IpAddr::V6(Ipv6Addr::from(u128::MAX)),
        }
    }
}

/// A virtual service's configuration (`-A`/`-E`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceSpec {
    pub key: ServiceKey,
    /// Scheduler name (`rr`, `wlc`, `mh`, ...; [`crate::sched::SCHEDULER_NAMES`]).
    pub scheduler: String,
    #[cfg_attr(feature = "serde", serde(default))]
    pub sched_flags: SchedFlags,
    /// `-p` / `-M`; `null` when not persistent.
    #[cfg_attr(feature = "serde", serde(default))]
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`, UDP only).
    #[cfg_attr(feature = "serde", serde(default))]
    pub one_packet: bool,
    /// Persistence engine (`--pe`, e.g. "sip"); stored only.
    #[cfg_attr(feature = "serde", serde(default))]
    pub pe: Option<String>,
}

impl ServiceSpec {
    /// A plain service with the given key and scheduler, no persistence.
    pub fn new(key: ServiceKey, scheduler: &str) -> Self {
        Self {
            key,
            scheduler: scheduler.to_owned(),
            sched_flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            pe: None,
        }
    }
}

/// A destination's (real server's) configuration (`-a`/`-e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DestSpec {
    pub addr: IpAddr,
    /// 0 = same port as the packet's destination port (port-0 and fwmark services).
    pub port: u16,
    pub weight: Weight,
    pub method: ForwardMethod,
    /// Upper connection threshold `-x` (0 = none).
    #[cfg_attr(feature = "serde", serde(default))]
    pub u_threshold: u32,
    /// Lower connection threshold `-y` (0 = 3/4 of the upper one).
    #[cfg_attr(feature = "serde", serde(default))]
    pub l_threshold: u32,
}

/// What identifies a real server within its virtual service: its address and port (IPVS's `ip_vs_lookup_dest`).
/// Every other field of a [`DestSpec`] is configuration that `-e` edits; a virtual service is identified by its
/// [`ServiceKey`] in the same way. The one statement of both rules: the table, the diff of two configurations
/// ([`crate::config::diff`]) and rvsd use these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl DestSpec {
    /// The real server's identity within its service.
    pub const fn key(&self) -> DestKey {
        DestKey {
            addr: self.addr,
            port: self.port,
        }
    }

    /// A masq destination with the given weight and no thresholds.
    pub fn masq(addr: IpAddr, port: u16, weight: Weight) -> Self {
        Self {
            addr,
            port,
            weight,
            method: ForwardMethod::Masq,
            u_threshold: 0,
            l_threshold: 0,
        }
    }
}
