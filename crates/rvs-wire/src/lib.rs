//! rvs-wire: typed, zero-copy views over IP packets, a one-shot validating [`parse`], and in-place
//! rewrite of addresses, ports and TTL with incremental checksum updates (RFC 1624).
//!
//! The input is a raw IP packet (no Ethernet header), exactly what a TUN device opened with
//! `IFF_NO_PI` yields. Nothing here does I/O, allocates or uses `unsafe`, and nothing panics
//! whatever the bytes: every view validates its lengths once in `new_checked()`, and every
//! accessor reads through bounds-checked helpers.
//!
//! * Views, smoltcp style: [`Ipv4Packet`], [`Ipv6Packet`], [`TcpPacket`], [`UdpPacket`],
//!   [`IcmpPacket`], [`Icmpv6Packet`] (`Packet<T: AsRef<[u8]>>`, setters where `T: AsMut<[u8]>`).
//! * [`parse`] summarises a packet as a small `Copy` [`PacketInfo`] (addresses, final protocol
//!   after IPv6 extension headers, ports/flags, fragment, the packet quoted in an ICMP error).
//! * [`rewrite`] changes source/destination address and port (also of the packet quoted inside
//!   an ICMP/ICMPv6 error) and the TTL, keeping every checksum right and the [`PacketInfo`]
//!   current, so a packet is parsed once whatever rewrites it.
//! * [`checksum`] holds the Internet checksum helpers.
//! * [`encap`] builds LVS-TUN encapsulations (IPIP, IPv6-in-IPv6, GUE, GRE, with ipvsadm's
//!   checksum options) and the ICMP "fragmentation needed" / ICMPv6 "packet too big" replies.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use rvs_wire::{Transport, checksum, parse, rewrite};
//!
//! // 198.51.100.7:40000 -> VIP 203.0.113.1:80, TCP SYN (checksums filled in below).
//! let mut pkt = [
//!     0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 51, 100, 7, 203, 0, 113, 1,
//!     0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
//! ];
//! rvs_wire::Ipv4Packet::new_checked(&mut pkt[..])?.fill_checksum();
//! let mut info = parse(&pkt)?;
//! rvs_wire::TcpPacket::new_checked(&mut pkt[20..])?.fill_checksum(info.src, info.dst);
//! assert!(matches!(info.transport, Transport::Tcp { dport: 80, flags, .. } if flags.syn()));
//!
//! // Masq inbound: VIP:80 -> RIP:8080, checksums updated incrementally, `info` kept current.
//! let rip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
//! rewrite::set_dst(&mut pkt, &mut info, rip, Some(8080))?;
//! let after = parse(&pkt)?;
//! assert_eq!(after.dst, rip);
//! assert_eq!(after, info);
//! assert!(checksum::ipv4_header_ok(&pkt) && checksum::transport_ok(&pkt, &after));
//! # Ok::<(), rvs_wire::WireError>(())
//! ```
#![forbid(unsafe_code)]

pub mod checksum;
pub mod encap;
mod field;
pub mod gso;
mod icmp;
mod ipv4;
mod ipv6;
mod parse;
pub mod rewrite;
mod tcp;
mod udp;

use std::fmt;
use std::net::IpAddr;

pub use icmp::{IcmpPacket, Icmpv6Packet, icmpv4_is_error, icmpv6_is_error};
pub use ipv4::Ipv4Packet;
pub use ipv6::{Ipv6Chain, Ipv6Packet, MAX_EXTENSION_HEADERS, walk_extension_headers};
pub use parse::parse;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub mod proto {
    /// IPv6 hop-by-hop options extension header.
    pub const HOPOPT: u8 = 0;
    /// Internet Control Message Protocol (IPv4).
    pub const ICMP: u8 = 1;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
    /// IPv6 routing extension header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 fragment extension header.
    pub const IPV6_FRAG: u8 = 44;
    /// Encapsulating Security Payload (the extension-header walk stops here).
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header" (the extension-header walk stops here).
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 destination options extension header.
    pub const IPV6_OPTS: u8 = 60;
    /// Stream Control Transmission Protocol.
    pub const SCTP: u8 = 132;
}

/// Why a packet could not be parsed or rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer ends before a header or a length field says it should.
    #[error("packet truncated")]
    Truncated,
    /// The IP version nibble is neither 4 nor 6 (or not the one expected).
    #[error("bad IP version")]
    BadVersion,
    /// A header length field (IPv4 IHL, TCP data offset) is below its minimum.
    #[error("bad header length")]
    BadHeaderLength,
    /// A total/payload length field contradicts the header (e.g. IPv4 total length < IHL,
    /// UDP length < 8).
    #[error("bad length field")]
    BadLength,
    /// More IPv6 extension headers than this crate walks.
    #[error("too many IPv6 extension headers")]
    TooManyExtensionHeaders,
    /// The ICMP error quotes a packet of the other IP family.
    #[error("address family mismatch")]
    AddressFamilyMismatch,
    /// The TTL/hop limit would drop to zero.
    #[error("TTL exceeded")]
    TtlExceeded,
    /// The operation does not apply to this packet (e.g. a port rewrite on a fragment, an
    /// inner rewrite on something that is not an ICMP error).
    #[error("unsupported packet for this operation")]
    Unsupported,
}

/// IP version of a packet: the one family type, shared with rvs-io's netlink requests (see rvs-inet).
pub use rvs_inet::IpVersion;

/// Summary of one validated IP packet, as returned by [`parse`].
///
/// Offsets index the buffer that was parsed. The rewrite functions re-check every offset they
/// use, so a `PacketInfo` that does not match the buffer yields an error, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketInfo {
    /// IP version.
    pub version: IpVersion,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Final upper-layer protocol, after IPv6 extension headers (for a fragment: the protocol
    /// the fragment carries; for ESP / no-next-header: 50 / 59).
    pub protocol: u8,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// Start of the transport header (after IPv4 options / IPv6 extension headers) in the buffer.
    pub l4_offset: usize,
    /// IP total length as validated (`<= buf.len()`; trailing bytes are ignored).
    pub ip_len: usize,
    /// The transport header summary.
    pub transport: Transport,
}

/// Transport-layer summary of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP segment.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Control flags.
        flags: TcpFlags,
    },
    /// UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP (in an IPv4 packet) or ICMPv6 (in an IPv6 packet) message.
    Icmp {
        /// Message type.
        icmp_type: u8,
        /// Message code.
        code: u8,
        /// The quoted packet, for error messages (destination unreachable, time exceeded,
        /// parameter problem, packet too big).
        error: Option<IcmpError>,
    },
    /// Any fragment, first or not (IPv4 MF set or offset non-zero; IPv6 fragment header that
    /// is not an atomic fragment). Never read as a transport header.
    Fragment {
        /// Fragment offset in bytes (the header's 8-octet units times 8).
        offset: u16,
        /// More fragments follow.
        more: bool,
    },
    /// Any other protocol (including ICMP carried in the wrong IP family, ESP, no-next-header).
    Other,
}

/// The packet quoted inside an ICMP/ICMPv6 error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpError {
    /// Start of the quoted IP header in the buffer.
    pub inner_offset: usize,
    /// Start of the quoted transport header in the buffer (may be at or past the end of the
    /// quote when only the IP header was quoted).
    pub inner_l4_offset: usize,
    /// Source address of the quoted packet.
    pub src: IpAddr,
    /// Destination address of the quoted packet.
    pub dst: IpAddr,
    /// Upper-layer protocol of the quoted packet (after its IPv6 extension headers).
    pub protocol: u8,
    /// `(sport, dport)` of the quoted packet when it is TCP, UDP or SCTP, is not a non-first
    /// fragment, and its first four transport bytes are quoted.
    pub ports: Option<(u16, u16)>,
}

/// TCP control flags (the low byte of the TCP flags field: FIN SYN RST PSH ACK URG ECE CWR).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: Self = Self(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Self = Self(0x02);
    /// Reset the connection.
    pub const RST: Self = Self(0x04);
    /// Push function.
    pub const PSH: Self = Self(0x08);
    /// Acknowledgment field significant.
    pub const ACK: Self = Self(0x10);
    /// Urgent pointer field significant.
    pub const URG: Self = Self(0x20);
    /// ECN echo.
    pub const ECE: Self = Self(0x40);
    /// Congestion window reduced.
    pub const CWR: Self = Self(0x80);

    /// Flags from the raw flags byte.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits)
    }
    /// The raw flags byte.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether every flag in `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    /// SYN set.
    #[must_use]
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    /// ACK set.
    #[must_use]
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    /// FIN set.
    #[must_use]
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    /// RST set.
    #[must_use]
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    /// PSH set.
    #[must_use]
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
    /// URG set.
    #[must_use]
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        write!(f, "TcpFlags(")?;
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    write!(f, "|")?;
                }
                write!(f, "{name}")?;
                first = false;
            }
        }
        write!(f, ")")
    }
}
