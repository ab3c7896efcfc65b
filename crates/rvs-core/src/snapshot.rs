//! What the control plane lists: virtual services with their real servers and counters, and connections
//! (`ipvsadm -L`, `-L -c`). One set of types from the director to the operator: with the `serde` feature they are
//! rvs-api's listing schema (`ServiceInfo`, `DestInfo`, `ConnInfo` in crates/rvs-api/README.md), so nothing copies
//! them field by field on the way out. Where the JSON name differs from the field's, a `rename` below says so.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::service::{DestSpec, Protocol, ServiceSpec};
use crate::stats::{Rates, Stats};

/// A real server as listed: its configuration, its connection counts and its counters.
///
/// JSON: `{"config": <DestSpec>, "active_conns", "inactive_conns", "persistent_conns", "stats", "rates"}`, and
/// `"overloaded": true` only while the upper threshold holds it (an absent field reads as false).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DestSnapshot {
    #[cfg_attr(feature = "serde", serde(rename = "config"))]
    pub spec: DestSpec,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    /// Over its upper connection threshold (`-x`): the schedulers pass it by.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_false"))]
    pub overloaded: bool,
    #[cfg_attr(feature = "serde", serde(default))]
    pub stats: Stats,
    #[cfg_attr(feature = "serde", serde(default))]
    pub rates: Rates,
}

#[cfg(feature = "serde")]
fn is_false(b: &bool) -> bool {
    !*b
}

impl DestSnapshot {
    /// A real server as configured, with no connections and zero counters (a rules file's view).
    pub fn configured(spec: DestSpec) -> Self {
        Self {
            spec,
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            overloaded: false,
            stats: Stats::default(),
            rates: Rates::default(),
        }
    }
}

/// A virtual service as listed, with its real servers in configuration order.
///
/// JSON: `{"config": <ServiceSpec>, "stats", "rates", "dests": [<DestSnapshot>, ...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceSnapshot {
    #[cfg_attr(feature = "serde", serde(rename = "config"))]
    pub spec: ServiceSpec,
    #[cfg_attr(feature = "serde", serde(default))]
    pub stats: Stats,
    #[cfg_attr(feature = "serde", serde(default))]
    pub rates: Rates,
    #[cfg_attr(feature = "serde", serde(default))]
    pub dests: Vec<DestSnapshot>,
}

impl ServiceSnapshot {
    /// A service as configured, with zero counters (a rules file's view).
    pub fn configured(spec: ServiceSpec, dests: &[DestSpec]) -> Self {
        Self {
            spec,
            stats: Stats::default(),
            rates: Rates::default(),
            dests: dests
                .iter()
                .copied()
                .map(DestSnapshot::configured)
                .collect(),
        }
    }
}

/// A connection or persistence template as listed (`ipvsadm -L -c`).
///
/// JSON: `{"protocol", "caddr", "cport", "vaddr", "vport", "daddr", "dport", "state", "expires_ms", "template"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConnSnapshot {
    pub protocol: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// IPVS's state name, as ipvsadm prints it: the TCP states ([`crate::TcpState::name`]), "UDP" for UDP,
    /// "NONE" for TCP templates. Borrowed from the director's static names; owned when read from JSON (a newer
    /// rvsd's state name still reads).
    pub state: Cow<'static, str>,
    /// Milliseconds until expiry.
    #[cfg_attr(feature = "serde", serde(rename = "expires_ms"))]
    pub expires_in_ms: u64,
    /// A persistence template rather than a connection.
    #[cfg_attr(feature = "serde", serde(default))]
    pub template: bool,
}
