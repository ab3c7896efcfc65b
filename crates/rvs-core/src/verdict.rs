//! What `Director::process` answers.

use std::net::IpAddr;

use crate::service::TunnelConfig;

/// Direction of a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client -> real server (destination rewritten VIP -> RIP).
    In,
    /// Real server -> client (source rewritten RIP -> VIP).
    Out,
}

/// Why a packet was dropped. Every drop is counted (see [`DropCounters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a valid IP packet (bad header, truncated, bad lengths).
    Malformed,
    /// A fragment addressed to a VIP (the director does not reassemble).
    Fragment,
    /// No destination available (all quiesced, overloaded or none configured).
    NoDestination,
    /// A TCP packet other than SYN to a virtual service with no connection.
    NotSyn,
    /// The connection's forwarding method cannot carry this packet (a real server of the other
    /// address family than its service).
    UnsupportedMethod,
    /// The packet could not be rewritten (e.g. address family mismatch).
    RewriteFailed,
    /// The connection's virtual service was deleted.
    ServiceDeleted,
    /// The connection table could not take another entry (at `max_conns` with no victim to
    /// evict, or drop_entry off).
    TableFull,
    /// A packet of a connection whose real server was removed (expire_nodest_conn = 0).
    DestUnavailable,
    /// A new connection dropped by the drop_packet defence.
    DropPacket,
}

impl DropReason {
    /// All reasons, in counter order.
    pub const ALL: [DropReason; 10] = [
        Self::Malformed,
        Self::Fragment,
        Self::NoDestination,
        Self::NotSyn,
        Self::UnsupportedMethod,
        Self::RewriteFailed,
        Self::ServiceDeleted,
        Self::TableFull,
        Self::DestUnavailable,
        Self::DropPacket,
    ];

    /// Index into counter arrays.
    pub const fn index(self) -> usize {
        match self {
            Self::Malformed => 0,
            Self::Fragment => 1,
            Self::NoDestination => 2,
            Self::NotSyn => 3,
            Self::UnsupportedMethod => 4,
            Self::RewriteFailed => 5,
            Self::ServiceDeleted => 6,
            Self::TableFull => 7,
            Self::DestUnavailable => 8,
            Self::DropPacket => 9,
        }
    }

    /// Short snake-case name (for metrics).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Fragment => "fragment",
            Self::NoDestination => "no_destination",
            Self::NotSyn => "not_syn",
            Self::UnsupportedMethod => "unsupported_method",
            Self::RewriteFailed => "rewrite_failed",
            Self::ServiceDeleted => "service_deleted",
            Self::TableFull => "table_full",
            Self::DestUnavailable => "dest_unavailable",
            Self::DropPacket => "drop_packet",
        }
    }
}

/// The answer to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Masq: rewritten in place; send it on in this direction.
    Forward(Direction),
    /// Direct routing (`-g`): the packet is unchanged (still to the VIP); send it in a frame to the
    /// real server `rip`'s link-layer address on the network both share.
    Route {
        /// The real server.
        rip: IpAddr,
    },
    /// IP tunnelling (`-i`): the packet is unchanged; encapsulate it as `tunnel` says and send it
    /// to the real server `rip`, wherever it is routed.
    Tunnel {
        /// The real server.
        rip: IpAddr,
        /// The destination's encapsulation.
        tunnel: TunnelConfig,
    },
    /// Dropped (and counted).
    Drop(DropReason),
    /// Not ours (not a VIP, not a tracked reply): untouched, hand it to the normal stack.
    Pass,
}

/// Totals of dropped packets per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounters {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounters {
    pub(crate) fn from_array(counts: [u64; DropReason::ALL.len()]) -> Self {
        Self { counts }
    }

    /// Drops for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(reason, count)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.get(*r)))
    }
}
