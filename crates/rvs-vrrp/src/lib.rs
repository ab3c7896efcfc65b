//! rvs-vrrp: the Virtual Router Redundancy Protocol for rvs directors, I/O-free.
//!
//! - [`wire`]: advertisements, version 3 (RFC 5798, IPv4 and IPv6, pseudo-header checksum) and
//!   version 2 (RFC 3768, IPv4, keepalived's default) as a validating parser and a builder;
//!   gratuitous ARP and unsolicited neighbour advertisement frames for takeover.
//! - [`machine`]: the state machine (Init, Backup, Master, Fault) with priorities (255 owner,
//!   0 resign), preemption and preempt delay, advertisement interval, skew time and master-down
//!   interval, as deadlines on the caller's clock; it returns [`Action`]s (send, take over,
//!   release, transition) the caller carries out.
//!
//! # Kept from the RFCs and keepalived
//! - Receivers require TTL 255, the instance's VRID and version, a valid checksum and a length
//!   that matches the address count; version 2 also the authentication and the interval.
//! - Equal priorities: the higher primary address wins (RFC 5798 6.4.3).
//! - keepalived's FAULT state for tracked interfaces, and its notify-script state names.
//!
//! # Differences
//! - An advertisement that lists other addresses than ours is processed (and counted), as
//!   keepalived does by default; the RFC leaves this to the implementation.
//! - Version 2 authentication type 2 (IP AH) is rejected (deprecated by RFC 3768).
#![forbid(unsafe_code)]

pub mod machine;
pub mod wire;

pub use machine::{Action, Config, Counters, Ignored, Instance, State};
pub use wire::{Advert, Auth, Version};

/// Why an advertisement was rejected by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VrrpError {
    #[error("VRRP message truncated")]
    Truncated,
    #[error("VRRP length does not match the address count")]
    BadLength,
    #[error("VRRP version {0}")]
    BadVersion(u8),
    #[error("VRRP type {0}")]
    BadType(u8),
    #[error("VRRP checksum")]
    Checksum,
    #[error("VRRP authentication type {0}")]
    BadAuthType(u8),
    #[error("address family mismatch")]
    Family,
}
