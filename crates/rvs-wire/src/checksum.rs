//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624, equation 3:
//! `HC' = ~(~HC + ~m + m')`).
//!
//! Incremental updates are built from a *delta*: the one's-complement sum of `~old + new` over
//! every 16-bit word that changed ([`Delta`]). One delta can be applied to several checksums that
//! cover the same words (the IPv4 header checksum and the TCP/UDP pseudo-header both cover the
//! addresses).

use std::net::IpAddr;

use crate::{IpVersion, PacketInfo, Transport, proto};

/// Folds a wide one's-complement accumulator to 16 bits (end-around carry).
#[inline]
#[must_use]
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves sum <= 0xffff.
    u16::try_from(sum).unwrap_or(0xffff)
}

/// Unfolded one's-complement sum of `data` as big-endian 16-bit words (an odd trailing byte is
/// padded with zero). Never overflows for any slice length a packet can have.
#[must_use]
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        if let &[a, b] = w {
            acc += u64::from(u16::from_be_bytes([a, b]));
        }
    }
    if let &[last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([last, 0]));
    }
    acc
}

/// The Internet checksum of `data` (one's complement of the folded sum).
#[must_use]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Unfolded sum of the TCP/UDP/ICMPv6 pseudo-header. Mixed families sum both addresses as given.
#[must_use]
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, protocol: u8, len: u32) -> u64 {
    addr_sum(src)
        + addr_sum(dst)
        + u64::from(protocol)
        + u64::from(len >> 16)
        + u64::from(len & 0xffff)
}

fn addr_sum(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(a) => sum(&a.octets()),
        IpAddr::V6(a) => sum(&a.octets()),
    }
}

/// RFC 1624 update of `csum` for one 16-bit word changing from `old` to `new`.
#[inline]
#[must_use]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    Delta::ZERO.word(old, new).apply(csum)
}

/// RFC 1624 update of `csum` for a 32-bit field (e.g. an IPv4 address) changing.
#[inline]
#[must_use]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    Delta::ZERO.word32(old, new).apply(csum)
}

/// RFC 1624 update of `csum` for a 128-bit field (an IPv6 address) changing.
#[inline]
#[must_use]
pub fn update128(csum: u16, old: u128, new: u128) -> u16 {
    Delta::ZERO.word128(old, new).apply(csum)
}

/// Accumulated change of some 16-bit words, to apply to one or more checksums (RFC 1624).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta(u64);

impl Delta {
    /// No change.
    pub const ZERO: Self = Self(0);

    /// Adds one word changing from `old` to `new`.
    #[inline]
    #[must_use]
    pub const fn word(self, old: u16, new: u16) -> Self {
        Self(self.0 + (!old) as u64 + new as u64)
    }

    /// Adds a 32-bit field changing (two words).
    #[inline]
    #[must_use]
    pub const fn word32(self, old: u32, new: u32) -> Self {
        self.word((old >> 16) as u16, (new >> 16) as u16)
            .word(old as u16, new as u16)
    }

    /// Adds a 128-bit field changing (eight words).
    #[inline]
    #[must_use]
    pub const fn word128(self, old: u128, new: u128) -> Self {
        self.word32((old >> 96) as u32, (new >> 96) as u32)
            .word32((old >> 64) as u32, (new >> 64) as u32)
            .word32((old >> 32) as u32, (new >> 32) as u32)
            .word32(old as u32, new as u32)
    }

    /// Combines two deltas.
    #[inline]
    #[must_use]
    pub const fn add(self, other: Self) -> Self {
        Self(self.0 + other.0)
    }

    /// The checksum `csum` updated by this delta: `~(~csum + delta)`.
    #[inline]
    #[must_use]
    pub fn apply(self, csum: u16) -> u16 {
        !fold(u64::from(!csum) + self.0)
    }
}

/// Computes the IPv4 header checksum of `header` (the checksum field, bytes 10..12, is
/// treated as zero). `header` is the full header including options.
#[must_use]
pub fn ipv4_header(header: &[u8]) -> u16 {
    let stored = crate::field::u16_at(header, 10);
    !fold(sum(header) + u64::from(!stored))
}

/// Whether `buf` starts with an IPv4 header (IHL honoured) whose checksum verifies.
/// False if the buffer is too short for the header its IHL announces.
#[must_use]
pub fn ipv4_header_ok(buf: &[u8]) -> bool {
    let ihl = usize::from(crate::field::u8_at(buf, 0) & 0x0f) * 4;
    match buf.get(..ihl) {
        Some(h) if ihl >= 20 => fold(sum(h)) == 0xffff,
        _ => false,
    }
}

/// Whether the transport checksum of a parsed packet verifies (TCP, UDP, ICMP, ICMPv6 with the
/// pseudo-header where the protocol has one). An IPv4 UDP checksum of 0 ("none") verifies.
/// Fragments and other protocols are reported as `true` (nothing to verify here). The whole
/// transport segment must be in `buf[info.l4_offset..info.ip_len]`; costs a full pass over it.
#[must_use]
pub fn transport_ok(buf: &[u8], info: &PacketInfo) -> bool {
    let Some(l4) = buf.get(info.l4_offset..info.ip_len) else {
        return false;
    };
    let Ok(len) = u32::try_from(l4.len()) else {
        return false;
    };
    let pseudo = pseudo_header_sum(info.src, info.dst, info.protocol, len);
    match (info.transport, info.version) {
        (Transport::Tcp { .. }, _) => fold(pseudo + sum(l4)) == 0xffff,
        (Transport::Udp { .. }, v) => {
            let stored = crate::field::u16_at(l4, 6);
            (v == IpVersion::V4 && stored == 0) || (stored != 0 && fold(pseudo + sum(l4)) == 0xffff)
        }
        (Transport::Icmp { .. }, IpVersion::V4) => fold(sum(l4)) == 0xffff,
        (Transport::Icmp { .. }, IpVersion::V6) => {
            info.protocol == proto::ICMPV6 && fold(pseudo + sum(l4)) == 0xffff
        }
        (Transport::Fragment { .. } | Transport::Other, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    // Known header from Wikipedia's "IPv4 header checksum" example: checksum b861.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn ipv4_header_checksum_known_value() {
        assert_eq!(ipv4_header(&HDR), 0xb861);
        assert!(ipv4_header_ok(&HDR));
        let mut bad = HDR;
        bad[11] ^= 1;
        assert!(!ipv4_header_ok(&bad));
        assert!(!ipv4_header_ok(&HDR[..19]));
        assert!(!ipv4_header_ok(&[]));
    }

    #[test]
    fn incremental_matches_recompute() {
        let mut h = HDR;
        let old = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        let new = 0xcb00_7107_u32;
        h[12..16].copy_from_slice(&new.to_be_bytes());
        let upd = update32(0xb861, old, new);
        h[10..12].copy_from_slice(&upd.to_be_bytes());
        assert!(ipv4_header_ok(&h));
        assert_eq!(upd, ipv4_header(&h));

        let t = update16(0xb861, 0x4011, 0x3f11);
        h = HDR;
        h[8] = 0x3f;
        h[10..12].copy_from_slice(&t.to_be_bytes());
        assert!(ipv4_header_ok(&h));
    }

    #[test]
    fn update128_matches_recompute() {
        let a: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
        let b: u128 = 0xfd00_0000_0000_0000_0000_0000_dead_beef;
        let mut data = [0u8; 18];
        data[..16].copy_from_slice(&a.to_be_bytes());
        data[16..].copy_from_slice(&[0x12, 0x34]);
        let c0 = checksum(&data);
        data[..16].copy_from_slice(&b.to_be_bytes());
        let c1 = checksum(&data);
        let inc = update128(c0, a, b);
        // One's complement has two zeros; compare by verification.
        assert_eq!(fold(sum(&data) + u64::from(inc)), 0xffff);
        assert_eq!(fold(sum(&data) + u64::from(c1)), 0xffff);
    }
}
