//! In-place rewrite of addresses, ports and TTL with incremental checksum updates (RFC 1624).
//!
//! Every function validates everything it will touch *before* writing, so an `Err` leaves the
//! packet (and the [`PacketInfo`]) unchanged. Offsets come from the [`PacketInfo`] returned by
//! [`crate::parse`] for the same buffer; they are re-checked, so a mismatched `PacketInfo` gives an
//! error, never a panic. A successful rewrite updates the `PacketInfo` too (addresses, ports, TTL),
//! so the packet is parsed once however many steps rewrite it.
//!
//! Checksums kept right:
//! * the IPv4 header checksum;
//! * the TCP / UDP checksum (the pseudo-header covers the addresses). An IPv4 UDP checksum of 0
//!   ("no checksum") stays 0; a UDP checksum that becomes 0 is sent as 0xffff;
//! * the ICMPv6 checksum (its pseudo-header covers the addresses; the ICMPv4 checksum does not);
//! * for the packet quoted in an ICMP error: its IPv4 header checksum, its TCP/UDP checksum
//!   when the checksum field is quoted (an incremental update is right even when the rest of
//!   the segment is cut off), and the outer ICMP/ICMPv6 checksum over everything changed.
//!
//! Not handled (documented limits): SCTP's CRC32c (ports are rewritten, the CRC is not), the
//! IPv6 routing-header final destination in the pseudo-header, AH integrity, and the transport
//! checksum of fragments (only the IP header of a fragment is rewritten: NAT needs reassembly;
//! the director drops fragments to a VIP).

use std::net::{IpAddr, Ipv4Addr};

use crate::checksum::Delta;
use crate::field as f;
use crate::{IpVersion, PacketInfo, Transport, WireError, proto};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

/// Offset of the address of `side` in an IP header of `version`, and its length.
#[inline]
const fn addr_field(version: IpVersion, side: Side) -> (usize, usize) {
    match (version, side) {
        (IpVersion::V4, Side::Src) => (12, 4),
        (IpVersion::V4, Side::Dst) => (16, 4),
        (IpVersion::V6, Side::Src) => (8, 16),
        (IpVersion::V6, Side::Dst) => (24, 16),
    }
}

#[inline]
const fn port_field(side: Side) -> usize {
    match side {
        Side::Src => 0,
        Side::Dst => 2,
    }
}

/// `off + len <= buf_len`, without overflow.
#[inline]
fn fits(off: usize, len: usize, buf_len: usize) -> bool {
    off.checked_add(len).is_some_and(|end| end <= buf_len)
}

/// Writes `addr` at `off` (family already checked) and returns the checksum delta.
#[inline(always)]
fn write_addr(buf: &mut [u8], off: usize, addr: IpAddr) -> Delta {
    match addr {
        IpAddr::V4(a) => {
            let new = u32::from(a);
            let old = f::u32_at(buf, off);
            f::set_bytes(buf, off, a.octets());
            Delta::ZERO.word32(old, new)
        }
        IpAddr::V6(a) => {
            let new = u128::from(a);
            let old = u128::from(f::ipv6_at(buf, off));
            f::set_bytes(buf, off, a.octets());
            Delta::ZERO.word128(old, new)
        }
    }
}

/// Writes a 16-bit word and returns its checksum delta.
#[inline(always)]
fn write_word(buf: &mut [u8], off: usize, new: u16) -> Delta {
    let old = f::u16_at(buf, off);
    f::set_u16(buf, off, new);
    Delta::ZERO.word(old, new)
}

/// Applies `delta` to the checksum at `off`; returns the delta of the checksum word itself.
#[inline(always)]
fn update_csum(buf: &mut [u8], off: usize, delta: Delta, udp: bool) -> Delta {
    let old = f::u16_at(buf, off);
    let mut new = delta.apply(old);
    if udp && new == 0 {
        new = 0xffff;
    }
    f::set_u16(buf, off, new);
    Delta::ZERO.word(old, new)
}

fn family_matches(version: IpVersion, addr: IpAddr) -> bool {
    matches!(
        (version, addr),
        (IpVersion::V4, IpAddr::V4(_)) | (IpVersion::V6, IpAddr::V6(_))
    )
}

/// Rewrites the source address (and port, if `Some`) in place.
///
/// `port` must be `None` unless the packet is TCP or UDP (else [`WireError::Unsupported`]).
/// Fragments and other protocols may have their address rewritten (IPv4 header checksum kept).
pub fn set_src(
    buf: &mut [u8],
    info: &mut PacketInfo,
    addr: IpAddr,
    port: Option<u16>,
) -> Result<(), WireError> {
    outer(buf, info, Side::Src, addr, port)
}

/// Rewrites the destination address (and port, if `Some`) in place. See [`set_src`].
pub fn set_dst(
    buf: &mut [u8],
    info: &mut PacketInfo,
    addr: IpAddr,
    port: Option<u16>,
) -> Result<(), WireError> {
    outer(buf, info, Side::Dst, addr, port)
}

/// The outer rewrite: IPv4 (the common case) by [`outer_v4`], anything else by [`outer_any`].
#[inline(always)]
fn outer(
    buf: &mut [u8],
    info: &mut PacketInfo,
    side: Side,
    addr: IpAddr,
    port: Option<u16>,
) -> Result<(), WireError> {
    match (info.version, addr) {
        (IpVersion::V4, IpAddr::V4(a)) => outer_v4(buf, info, side, a, port),
        _ => outer_any(buf, info, side, addr, port),
    }
}

/// [`outer`] for an IPv4 packet and address, with the same checks, errors and results as
/// [`outer_any`] (the property tests compare both with etherparse) but fixed offsets: the header
/// is one 20-byte array and the transport bytes touched (ports, then the checksum: TCP 16, UDP 6)
/// one array of their own, each bounds-checked once before anything is written. `outer_any`
/// spent about 170 instructions on an IPv4 TCP rewrite, most of them re-deciding offsets and
/// checks per field (core_icount, BENCHMARKS.md).
#[inline(always)]
fn outer_v4(
    buf: &mut [u8],
    info: &mut PacketInfo,
    side: Side,
    addr: Ipv4Addr,
    port: Option<u16>,
) -> Result<(), WireError> {
    let buf = buf.get_mut(..info.ip_len).ok_or(WireError::Truncated)?;
    let l4 = info.l4_offset;
    match info.transport {
        Transport::Tcp { .. } => {
            let (h, t) = v4_parts::<{ crate::tcp::CHECKSUM + 2 }>(buf, l4)?;
            let d = v4_header(h, side, addr);
            v4_transport(t, side, d, port, false);
        }
        Transport::Udp { .. } => {
            let (h, t) = v4_parts::<{ crate::udp::CHECKSUM + 2 }>(buf, l4)?;
            let d = v4_header(h, side, addr);
            v4_transport(t, side, d, port, true);
        }
        Transport::Icmp { .. } | Transport::Fragment { .. } | Transport::Other => {
            if port.is_some() {
                return Err(WireError::Unsupported);
            }
            let h = buf.first_chunk_mut::<20>().ok_or(WireError::Truncated)?;
            v4_header(h, side, addr);
        }
    }
    match side {
        Side::Src => info.src = IpAddr::V4(addr),
        Side::Dst => info.dst = IpAddr::V4(addr),
    }
    if let (Some(p), Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport }) =
        (port, &mut info.transport)
    {
        match side {
            Side::Src => *sport = p,
            Side::Dst => *dport = p,
        }
    }
    Ok(())
}

/// The IPv4 header and the first `N` transport bytes at `l4`, or `Truncated` (nothing written)
/// when either is out of the buffer or they overlap (an `l4` inside the header is not this
/// packet's parse).
#[inline(always)]
fn v4_parts<const N: usize>(
    buf: &mut [u8],
    l4: usize,
) -> Result<(&mut [u8; 20], &mut [u8; N]), WireError> {
    let rest = l4.checked_sub(20).ok_or(WireError::Truncated)?;
    let (h, tail) = buf
        .split_first_chunk_mut::<20>()
        .ok_or(WireError::Truncated)?;
    let t = tail
        .get_mut(rest..)
        .and_then(<[u8]>::first_chunk_mut::<N>)
        .ok_or(WireError::Truncated)?;
    Ok((h, t))
}

/// Writes the address of `side` into an IPv4 header, updates its checksum, and returns the
/// address's delta (for the transport checksum's pseudo-header). The field helpers on a
/// 20-byte array with offsets known here compile to plain loads and stores.
#[inline(always)]
fn v4_header(h: &mut [u8; 20], side: Side, addr: Ipv4Addr) -> Delta {
    let (off, _) = addr_field(IpVersion::V4, side);
    let d = Delta::ZERO.word32(f::u32_at(h, off), u32::from(addr));
    f::set_bytes(h, off, addr.octets());
    let csum = d.apply(f::u16_at(h, 10));
    f::set_u16(h, 10, csum);
    d
}

/// Rewrites the port of `side` (if any) in the first `N` bytes of a TCP or UDP header, whose
/// last two are the checksum, and updates that checksum by `d` and the port's own delta. An IPv4
/// UDP checksum of 0 stays 0; one that becomes 0 is sent as 0xffff.
#[inline(always)]
fn v4_transport<const N: usize>(
    t: &mut [u8; N],
    side: Side,
    mut d: Delta,
    port: Option<u16>,
    udp: bool,
) {
    if let Some(p) = port {
        d = d.add(write_word(t, port_field(side), p));
    }
    let c = N - 2;
    let old = f::u16_at(t, c);
    if udp && old == 0 {
        return;
    }
    let mut new = d.apply(old);
    if udp && new == 0 {
        new = 0xffff;
    }
    f::set_u16(t, c, new);
}

/// [`outer`] for any family (IPv6, or a family mismatch).
#[inline(never)]
fn outer_any(
    buf: &mut [u8],
    info: &mut PacketInfo,
    side: Side,
    addr: IpAddr,
    port: Option<u16>,
) -> Result<(), WireError> {
    if !family_matches(info.version, addr) {
        return Err(WireError::AddressFamilyMismatch);
    }
    let buf = buf.get_mut(..info.ip_len).ok_or(WireError::Truncated)?;
    let l4 = info.l4_offset;
    // (checksum offset in the L4 header, port rewritable, UDP semantics)
    let (csum, ports_ok, udp) = match info.transport {
        Transport::Tcp { .. } => (Some(crate::tcp::CHECKSUM), true, false),
        Transport::Udp { .. } => (Some(crate::udp::CHECKSUM), true, true),
        Transport::Icmp { .. } if info.version == IpVersion::V6 => (Some(2), false, false),
        Transport::Icmp { .. } | Transport::Fragment { .. } | Transport::Other => {
            (None, false, false)
        }
    };
    if port.is_some() && !ports_ok {
        return Err(WireError::Unsupported);
    }
    let csum = csum.map(|c| l4.saturating_add(c));
    let (addr_off, addr_len) = addr_field(info.version, side);
    let port_off = l4.saturating_add(port_field(side));
    let n = buf.len();
    let ok = fits(addr_off, addr_len, n)
        && fits(10, 2, n)
        && csum.is_none_or(|c| fits(c, 2, n))
        && (port.is_none() || fits(port_off, 2, n));
    if !ok {
        return Err(WireError::Truncated);
    }

    let addr_delta = write_addr(buf, addr_off, addr);
    if info.version == IpVersion::V4 {
        update_csum(buf, 10, addr_delta, false);
    }
    let mut l4_delta = addr_delta;
    if let Some(p) = port {
        l4_delta = l4_delta.add(write_word(buf, port_off, p));
    }
    if let Some(c) = csum {
        // IPv4 UDP without checksum stays without.
        if !(udp && info.version == IpVersion::V4 && f::u16_at(buf, c) == 0) {
            update_csum(buf, c, l4_delta, udp);
        }
    }
    match side {
        Side::Src => info.src = addr,
        Side::Dst => info.dst = addr,
    }
    if let (Some(p), Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport }) =
        (port, &mut info.transport)
    {
        match side {
            Side::Src => *sport = p,
            Side::Dst => *dport = p,
        }
    }
    Ok(())
}

/// Rewrites the source address (and port) of the packet quoted in an ICMP/ICMPv6 error.
///
/// Errors with [`WireError::Unsupported`] unless `info.transport` is an ICMP error, or when a
/// port is given but the quoted packet has none.
pub fn set_inner_src(
    buf: &mut [u8],
    info: &mut PacketInfo,
    addr: IpAddr,
    port: Option<u16>,
) -> Result<(), WireError> {
    inner(buf, info, Side::Src, addr, port)
}

/// Rewrites the destination address (and port) of the packet quoted in an ICMP/ICMPv6 error.
/// See [`set_inner_src`].
pub fn set_inner_dst(
    buf: &mut [u8],
    info: &mut PacketInfo,
    addr: IpAddr,
    port: Option<u16>,
) -> Result<(), WireError> {
    inner(buf, info, Side::Dst, addr, port)
}

fn inner(
    buf: &mut [u8],
    info: &mut PacketInfo,
    side: Side,
    addr: IpAddr,
    port: Option<u16>,
) -> Result<(), WireError> {
    let Transport::Icmp { error: Some(e), .. } = info.transport else {
        return Err(WireError::Unsupported);
    };
    if !family_matches(info.version, addr) {
        return Err(WireError::AddressFamilyMismatch);
    }
    if port.is_some() && e.ports.is_none() {
        return Err(WireError::Unsupported);
    }
    let buf = buf.get_mut(..info.ip_len).ok_or(WireError::Truncated)?;
    let n = buf.len();
    let outer_csum = info.l4_offset.saturating_add(2);
    let (a_off, a_len) = addr_field(info.version, side);
    let inner_addr = e.inner_offset.saturating_add(a_off);
    let inner_ip_csum = e.inner_offset.saturating_add(10);
    let port_off = e.inner_l4_offset.saturating_add(port_field(side));
    // The quoted L4 checksum is updated when the quoted packet has ports (so it is TCP/UDP and
    // not a non-first fragment) and its checksum field is quoted.
    let l4_csum = match (e.ports, e.protocol) {
        (Some(_), proto::TCP) => Some((
            e.inner_l4_offset.saturating_add(crate::tcp::CHECKSUM),
            false,
        )),
        (Some(_), proto::UDP) => {
            Some((e.inner_l4_offset.saturating_add(crate::udp::CHECKSUM), true))
        }
        _ => None,
    }
    .filter(|&(c, _)| fits(c, 2, n));
    let ok = fits(outer_csum, 2, n)
        && fits(inner_addr, a_len, n)
        && (info.version == IpVersion::V6 || fits(inner_ip_csum, 2, n))
        && (port.is_none() || fits(port_off, 2, n));
    if !ok {
        return Err(WireError::Truncated);
    }

    let addr_delta = write_addr(buf, inner_addr, addr);
    let mut icmp_delta = addr_delta;
    if info.version == IpVersion::V4 {
        icmp_delta = icmp_delta.add(update_csum(buf, inner_ip_csum, addr_delta, false));
    }
    let mut l4_delta = addr_delta;
    if let Some(p) = port {
        let d = write_word(buf, port_off, p);
        l4_delta = l4_delta.add(d);
        icmp_delta = icmp_delta.add(d);
    }
    if let Some((c, udp)) = l4_csum
        && !(udp && info.version == IpVersion::V4 && f::u16_at(buf, c) == 0)
    {
        icmp_delta = icmp_delta.add(update_csum(buf, c, l4_delta, udp));
    }
    update_csum(buf, outer_csum, icmp_delta, false);
    if let Transport::Icmp { error: Some(e), .. } = &mut info.transport {
        match side {
            Side::Src => e.src = addr,
            Side::Dst => e.dst = addr,
        }
        if let (Some(p), Some((sport, dport))) = (port, &mut e.ports) {
            match side {
                Side::Src => *sport = p,
                Side::Dst => *dport = p,
            }
        }
    }
    Ok(())
}

/// Adds `delta` to the TTL (IPv4, header checksum updated) or hop limit (IPv6).
///
/// Errors with [`WireError::TtlExceeded`] (packet unchanged) if the result would be 0 or less;
/// a result above 255 is clamped to 255.
pub fn adjust_ttl(buf: &mut [u8], info: &mut PacketInfo, delta: i8) -> Result<(), WireError> {
    let off = match info.version {
        IpVersion::V4 => 8,
        IpVersion::V6 => 7,
    };
    let n = buf.len();
    if !fits(0, 20, n)
        || !fits(0, info.ip_len, n)
        || (info.version == IpVersion::V6 && !fits(0, 40, n))
    {
        return Err(WireError::Truncated);
    }
    let old = f::u8_at(buf, off);
    let new = i16::from(old) + i16::from(delta);
    if new <= 0 {
        return Err(WireError::TtlExceeded);
    }
    let new = u8::try_from(new).unwrap_or(u8::MAX);
    if info.version == IpVersion::V4 {
        let proto_byte = f::u8_at(buf, 9);
        let d = Delta::ZERO.word(
            u16::from_be_bytes([old, proto_byte]),
            u16::from_be_bytes([new, proto_byte]),
        );
        update_csum(buf, 10, d, false);
    }
    f::set_u8(buf, off, new);
    info.ttl = new;
    Ok(())
}

#[cfg(test)]
mod tests;
