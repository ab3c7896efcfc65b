//! The one-shot validating parse into a [`PacketInfo`].

use std::net::IpAddr;

use crate::field as f;
use crate::icmp::{self, icmpv4_is_error, icmpv6_is_error};
use crate::ipv4::{self, Ipv4Packet};
use crate::ipv6::{self, Ipv6Packet, walk_extension_headers};
use crate::tcp::TcpPacket;
use crate::udp::UdpPacket;
use crate::{IcmpError, IpVersion, PacketInfo, Transport, WireError, proto};

/// Parses and validates an IP packet (no link-layer header).
///
/// Checks: IP version; IPv4 IHL >= 5 and IHL*4 <= total length <= buffer; IPv6 40 + payload
/// length <= buffer and the extension-header chain fits; the TCP header (data offset) or UDP
/// header (length field) fits in the IP payload; ICMP has its 8-byte header, and an ICMP error
/// quotes at least a complete IP header of the same family. Does *not* verify checksums (see
/// [`crate::checksum`]). Any fragment is reported as [`Transport::Fragment`] and its payload is
/// never read as a transport header.
pub fn parse(buf: &[u8]) -> Result<PacketInfo, WireError> {
    match buf.first().map(|b| b >> 4) {
        None => Err(WireError::Truncated),
        Some(4) => parse_v4(buf),
        Some(6) => parse_v6(buf),
        Some(_) => Err(WireError::BadVersion),
    }
}

#[inline]
fn parse_v4(buf: &[u8]) -> Result<PacketInfo, WireError> {
    let ip = Ipv4Packet::new_checked(buf)?;
    let l4_offset = ip.header_len();
    let ip_len = usize::from(ip.total_len());
    let protocol = ip.protocol();
    let transport = if ip.is_fragment() {
        Transport::Fragment {
            offset: ip.frag_offset(),
            more: ip.more_frags(),
        }
    } else {
        transport(IpVersion::V4, protocol, ip.payload(), l4_offset)?
    };
    Ok(PacketInfo {
        version: IpVersion::V4,
        src: IpAddr::V4(ip.src_addr()),
        dst: IpAddr::V4(ip.dst_addr()),
        protocol,
        ttl: ip.ttl(),
        l4_offset,
        ip_len,
        transport,
    })
}

#[inline]
fn parse_v6(buf: &[u8]) -> Result<PacketInfo, WireError> {
    let ip = Ipv6Packet::new_checked(buf)?;
    let payload = ip.payload();
    let chain = walk_extension_headers(ip.next_header(), payload)?;
    let l4_offset = ipv6::HEADER_LEN + chain.offset;
    let transport = match chain.fragment {
        Some((offset, more)) => Transport::Fragment { offset, more },
        None => transport(
            IpVersion::V6,
            chain.protocol,
            f::slice(payload, chain.offset..payload.len()),
            l4_offset,
        )?,
    };
    Ok(PacketInfo {
        version: IpVersion::V6,
        src: IpAddr::V6(ip.src_addr()),
        dst: IpAddr::V6(ip.dst_addr()),
        protocol: chain.protocol,
        ttl: ip.hop_limit(),
        l4_offset,
        ip_len: ip.total_len(),
        transport,
    })
}

/// Summarises the transport header in `l4` (which starts at `l4_offset` in the packet).
/// Inlined so the summary is built in place (returning it through the stack costs
/// store-forwarding stalls on the per-packet path).
#[inline(always)]
fn transport(
    version: IpVersion,
    protocol: u8,
    l4: &[u8],
    l4_offset: usize,
) -> Result<Transport, WireError> {
    match (protocol, version) {
        (proto::TCP, _) => {
            let t = TcpPacket::new_checked(l4)?;
            Ok(Transport::Tcp {
                sport: t.src_port(),
                dport: t.dst_port(),
                flags: t.flags(),
            })
        }
        (proto::UDP, _) => {
            let u = UdpPacket::new_checked(l4)?;
            Ok(Transport::Udp {
                sport: u.src_port(),
                dport: u.dst_port(),
            })
        }
        (proto::ICMP, IpVersion::V4) | (proto::ICMPV6, IpVersion::V6) => {
            let m = icmp::IcmpPacket::new_checked(l4)?;
            let (icmp_type, code) = (m.msg_type(), m.msg_code());
            let is_error = match version {
                IpVersion::V4 => icmpv4_is_error(icmp_type),
                IpVersion::V6 => icmpv6_is_error(icmp_type),
            };
            let error = if is_error {
                let inner_offset = l4_offset
                    .checked_add(icmp::HEADER_LEN)
                    .ok_or(WireError::Truncated)?;
                Some(quoted(version, m.data(), inner_offset)?)
            } else {
                None
            };
            Ok(Transport::Icmp {
                icmp_type,
                code,
                error,
            })
        }
        _ => Ok(Transport::Other),
    }
}

/// Parses the packet quoted in an ICMP error: a complete IP header (IPv6: with its extension
/// headers) of the same family is required; the rest may be cut short.
#[cold]
#[inline(never)]
fn quoted(version: IpVersion, data: &[u8], inner_offset: usize) -> Result<IcmpError, WireError> {
    let first = data.first().ok_or(WireError::Truncated)? >> 4;
    let (src, dst, protocol, hdr_len, non_first_fragment) = match (version, first) {
        (IpVersion::V4, 4) => {
            let ip = Ipv4Packet::new_unchecked(data);
            if data.len() < ipv4::MIN_HEADER_LEN {
                return Err(WireError::Truncated);
            }
            let hl = ip.header_len();
            if hl < ipv4::MIN_HEADER_LEN {
                return Err(WireError::BadHeaderLength);
            }
            if hl > data.len() {
                return Err(WireError::Truncated);
            }
            let src = IpAddr::V4(ip.src_addr());
            (
                src,
                IpAddr::V4(ip.dst_addr()),
                ip.protocol(),
                hl,
                ip.frag_offset() != 0,
            )
        }
        (IpVersion::V6, 6) => {
            let ip = Ipv6Packet::new_unchecked(data);
            if data.len() < ipv6::HEADER_LEN {
                return Err(WireError::Truncated);
            }
            let rest = f::slice(data, ipv6::HEADER_LEN..data.len());
            let chain = walk_extension_headers(ip.next_header(), rest)?;
            let non_first = matches!(chain.fragment, Some((off, _)) if off != 0);
            let hl = ipv6::HEADER_LEN + chain.offset;
            let src = IpAddr::V6(ip.src_addr());
            (
                src,
                IpAddr::V6(ip.dst_addr()),
                chain.protocol,
                hl,
                non_first,
            )
        }
        (_, 4 | 6) => return Err(WireError::AddressFamilyMismatch),
        _ => return Err(WireError::BadVersion),
    };
    let has_ports =
        matches!(protocol, proto::TCP | proto::UDP | proto::SCTP) && !non_first_fragment;
    let ports = if has_ports && data.len() >= hdr_len.saturating_add(4) {
        Some((f::u16_at(data, hdr_len), f::u16_at(data, hdr_len + 2)))
    } else {
        None
    };
    Ok(IcmpError {
        inner_offset,
        inner_l4_offset: inner_offset.saturating_add(hdr_len),
        src,
        dst,
        protocol,
        ports,
    })
}

#[cfg(test)]
pub(crate) mod tests;
