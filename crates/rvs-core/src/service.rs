//! Virtual-service and destination configuration types (what `ipvsadm -A/-E/-a/-e` carry).

use std::fmt;
use std::net::IpAddr;

pub use crate::sched::SchedFlags;

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    /// Name as ipvsadm prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
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

/// How a virtual service is identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// protocol + VIP + port (port 0 = all ports).
    Addr {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    /// Firewall mark (`-f`), per address family.
    Fwmark { mark: u32, ipv6: bool },
}

impl ServiceKey {
    /// True for an IPv6 service.
    pub fn is_ipv6(&self) -> bool {
        match self {
            Self::Addr { addr, .. } => addr.is_ipv6(),
            Self::Fwmark { ipv6, .. } => *ipv6,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ForwardMethod {
    /// NAT (`-m`): the only method the user-space data plane forwards today.
    #[default]
    Masq,
    /// Direct routing (`-g`): stored only.
    Route,
    /// IP tunnelling (`-i`): stored only.
    Tunnel(TunnelConfig),
}

impl ForwardMethod {
    /// ipvsadm's column name ("Masq", "Route", "Tunnel").
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Masq => "Masq",
            Self::Route => "Route",
            Self::Tunnel(_) => "Tunnel",
        }
    }
}

/// Persistence (`-p timeout`, `-M netmask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Persistence {
    /// Template timeout in seconds (> 0).
    pub timeout_s: u32,
    /// Client address mask (IPv4 netmask, or an IPv6 mask for IPv6 services).
    pub netmask: IpAddr,
}

/// A virtual service's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    /// Scheduler name (`rr`, `wlc`, ...).
    pub scheduler: String,
    pub flags: SchedFlags,
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`, UDP only).
    pub one_packet: bool,
    /// Persistence engine (`--pe`, e.g. "sip"); stored only.
    pub pe: Option<String>,
}

impl ServiceSpec {
    /// A plain service with the given key and scheduler, no persistence.
    pub fn new(key: ServiceKey, scheduler: &str) -> Self {
        Self {
            key,
            scheduler: scheduler.to_owned(),
            flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            pe: None,
        }
    }
}

/// A destination's (real server's) configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DestSpec {
    pub addr: IpAddr,
    /// 0 = same port as the packet's destination port (port-0 services).
    pub port: u16,
    /// 0..=65535; 0 = quiesced.
    pub weight: u32,
    pub method: ForwardMethod,
    /// Upper connection threshold (0 = none).
    pub u_threshold: u32,
    /// Lower connection threshold (0 = 3/4 of the upper one).
    pub l_threshold: u32,
}

impl DestSpec {
    /// A masq destination with the given weight and no thresholds.
    pub fn masq(addr: IpAddr, port: u16, weight: u32) -> Self {
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
