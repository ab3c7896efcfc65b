//! Tunnel encapsulation for LVS-TUN (IPIP / IPv6-in-IPv6, GUE, GRE) and the ICMP "fragmentation
//! needed" / ICMPv6 "packet too big" a director answers when an encapsulated packet no longer fits.
//!
//! Follows net/netfilter/ipvs/ip_vs_xmit.c (`ip_vs_tunnel_xmit`, `ip_vs_tunnel_xmit_v6`,
//! `ip_vs_prepare_tunneled_skb`, `ipvs_gue_encap`, `ipvs_gre_encap`, `__ip_vs_get_out_rt`):
//!
//! * Outer IPv4: no options, DF copied from an IPv4 inner packet (sysctl `pmtu_disc=1`, the default;
//!   an IPv6 inner packet gives DF clear), TTL = the inner TTL / hop limit, TOS = the inner DSCP with
//!   `INET_ECN_encapsulate`'s ECN (CE becomes ECT(0)), identification from the caller.
//! * Outer IPv6: flow label 0, traffic class as above, hop limit = the inner one.
//! * Next protocol: 4 (IPv4 inner) or 41 (IPv6 inner) for IPIP; 17 for GUE, 47 for GRE.
//! * GUE (`--tun-type gue --tun-port N`): UDP from a flow-hashed source port
//!   ([`flow_src_port`], as `udp_flow_src_port`) to N, then a 4-byte GUE header (version 0, no
//!   options, proto/ctype = 4 or 41). UDP checksum 0 with `--tun-nocsum` (also over IPv6, as
//!   `udp6_set_csum(nocheck)` does), computed with `--tun-csum`. `--tun-remcsum` only differs from
//!   `--tun-csum` for packets whose inner checksum is still partial (`CHECKSUM_PARTIAL`); packets
//!   reaching here always carry complete checksums, so it encapsulates exactly as `--tun-csum`.
//! * GRE (`--tun-type gre`): a 4-byte header (no key, no sequence) with protocol 0x0800 / 0x86dd,
//!   or 8 bytes with the checksum present (`--tun-csum`; IPVS ignores `--tun-remcsum` for GRE).
//!
//! Nothing here allocates; an `Err` writes nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::field as f;
use crate::{WireError, proto};

/// GRE's IP protocol number.
pub const PROTO_GRE: u8 = 47;
/// IPv4-in-IP (IPIP) protocol number.
pub const PROTO_IPIP: u8 = 4;
/// IPv6-in-IP protocol number.
pub const PROTO_IPV6: u8 = 41;

/// Tunnel encapsulation type (`--tun-type`; JSON `"ipip"`, `"gue"`, `"gre"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum TunnelKind {
    /// IP-in-IP (default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation.
    Gue,
    /// GRE.
    Gre,
}

/// Tunnel checksum option (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`; JSON `"nocsum"`, `"csum"`,
/// `"remcsum"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum TunnelCsum {
    /// No checksum (default).
    #[default]
    NoCsum,
    /// Checksum.
    Csum,
    /// Remote checksum offload.
    RemCsum,
}

/// Tunnel parameters of a tunnel destination (JSON: `{"type": "gue", "port": 6080, "csum": "nocsum"}`,
/// every field optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TunnelConfig {
    #[cfg_attr(feature = "serde", serde(rename = "type", default))]
    pub kind: TunnelKind,
    /// UDP port for GUE (0 otherwise).
    #[cfg_attr(feature = "serde", serde(default))]
    pub port: u16,
    #[cfg_attr(feature = "serde", serde(default))]
    pub csum: TunnelCsum,
}

impl TunnelKind {
    /// ipvsadm's name (`--tun-type` value, listing column).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ipip => "ipip",
            Self::Gue => "gue",
            Self::Gre => "gre",
        }
    }
}

impl TunnelConfig {
    /// Bytes this tunnel puts before the inner packet when the outer header is IPv6 (`outer_v6`)
    /// or IPv4 (as `__ip_vs_get_out_rt` subtracts them from the route's MTU).
    #[must_use]
    pub const fn overhead(&self, outer_v6: bool) -> usize {
        let ip = if outer_v6 { 40 } else { 20 };
        ip + match self.kind {
            TunnelKind::Ipip => 0,
            TunnelKind::Gue => UDP_LEN + GUE_LEN,
            TunnelKind::Gre => match self.csum {
                TunnelCsum::Csum => 8,
                TunnelCsum::NoCsum | TunnelCsum::RemCsum => 4,
            },
        }
    }
}

const UDP_LEN: usize = 8;
const GUE_LEN: usize = 4;

/// The longest outer header [`encapsulate`] writes (IPv6 + UDP + GUE).
pub const MAX_OVERHEAD: usize = 40 + UDP_LEN + GUE_LEN;

/// Lowest and highest source port [`flow_src_port`] picks (Linux's default `ip_local_port_range`).
pub const FLOW_PORT_RANGE: (u16, u16) = (32768, 60999);

/// The GUE source port for a flow hash, spread over [`FLOW_PORT_RANGE`] as `udp_flow_src_port`
/// does (`((hash * (max - min)) >> 32) + min`), so one flow always uses one port and receivers can
/// spread flows by it.
#[must_use]
pub fn flow_src_port(hash: u32) -> u16 {
    let (min, max) = FLOW_PORT_RANGE;
    let span = u64::from(max - min);
    let off = (u64::from(hash) * span) >> 32;
    min + u16::try_from(off).unwrap_or(0)
}

/// The outer addresses and per-packet values of one encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    /// The director's source address for the tunnel (the route's preferred source to `dst`).
    pub src: IpAddr,
    /// The real server (RIP).
    pub dst: IpAddr,
    /// IPv4 identification of the outer header (ignored for IPv6).
    pub ident: u16,
    /// Hash of the inner flow (GUE source port, see [`flow_src_port`]).
    pub flow_hash: u32,
}

/// What the inner packet contributes to the outer header.
#[derive(Debug, Clone, Copy)]
struct Inner {
    protocol: u8,
    ethertype: u16,
    dsfield: u8,
    ttl: u8,
    df: bool,
    len: usize,
}

fn inner_fields(inner: &[u8]) -> Result<Inner, WireError> {
    match inner.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = crate::Ipv4Packet::new_checked(inner)?;
            Ok(Inner {
                protocol: PROTO_IPIP,
                ethertype: 0x0800,
                dsfield: f::u8_at(inner, 1),
                ttl: ip.ttl(),
                df: ip.dont_frag(),
                len: usize::from(ip.total_len()),
            })
        }
        Some(6) => {
            let ip = crate::Ipv6Packet::new_checked(inner)?;
            Ok(Inner {
                protocol: PROTO_IPV6,
                ethertype: 0x86dd,
                dsfield: ip.traffic_class(),
                ttl: ip.hop_limit(),
                df: false,
                len: ip.total_len(),
            })
        }
        None => Err(WireError::Truncated),
        Some(_) => Err(WireError::BadVersion),
    }
}

/// `INET_ECN_encapsulate(outer = inner, inner)`: the DSCP is kept; ECN is copied unless it is CE,
/// which becomes ECT(0).
const fn ecn_encapsulate(dsfield: u8) -> u8 {
    if dsfield & 3 == 3 {
        (dsfield & !3) | 2
    } else {
        dsfield
    }
}

/// Writes `tun`'s headers for `inner` (a complete IPv4 or IPv6 packet; bytes past its IP length
/// are ignored) followed by a copy of `inner` into `out`, and returns the encapsulated length.
///
/// Errors (nothing written): `inner` is not a valid IP packet; `outer.src` and `outer.dst` are of
/// different families ([`WireError::AddressFamilyMismatch`]); the result would exceed 65535 bytes
/// (IPv4 total length / IPv6 payload length: [`WireError::BadLength`]) or `out`
/// ([`WireError::Truncated`]).
pub fn encapsulate(
    inner: &[u8],
    tun: &TunnelConfig,
    outer: &Outer,
    out: &mut [u8],
) -> Result<usize, WireError> {
    let hlen = header_len(tun, outer)?;
    let i = inner_fields(inner)?;
    let total = total_len(hlen, &i, outer.dst.is_ipv6())?;
    let inner = inner.get(..i.len).ok_or(WireError::Truncated)?;
    let out = out.get_mut(..total).ok_or(WireError::Truncated)?;
    // Everything is checked: write.
    out[hlen..].copy_from_slice(inner);
    write_headers(out, hlen, &i, tun, outer);
    Ok(total)
}

/// [`encapsulate`] for an inner packet already in place: `buf[tun.overhead(..)..]` holds it (written there by the
/// caller, e.g. a segment built straight into a send buffer), and only the headers in front of it are written. Saves
/// the copy of the packet. Same errors as [`encapsulate`], nothing written on error.
pub fn encapsulate_in_place(
    buf: &mut [u8],
    tun: &TunnelConfig,
    outer: &Outer,
) -> Result<usize, WireError> {
    let hlen = header_len(tun, outer)?;
    let i = inner_fields(buf.get(hlen..).ok_or(WireError::Truncated)?)?;
    let total = total_len(hlen, &i, outer.dst.is_ipv6())?;
    let out = buf.get_mut(..total).ok_or(WireError::Truncated)?;
    write_headers(out, hlen, &i, tun, outer);
    Ok(total)
}

/// The length of `tun`'s headers between `outer`'s addresses (`Err` when their families differ).
fn header_len(tun: &TunnelConfig, outer: &Outer) -> Result<usize, WireError> {
    match (outer.src, outer.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Ok(tun.overhead(false)),
        (IpAddr::V6(_), IpAddr::V6(_)) => Ok(tun.overhead(true)),
        _ => Err(WireError::AddressFamilyMismatch),
    }
}

/// The encapsulated length, checked against the outer length field (IPv4 total length, or IPv6 payload length,
/// which leaves out its 40-byte header): at most 65535.
fn total_len(hlen: usize, i: &Inner, outer_v6: bool) -> Result<usize, WireError> {
    let total = hlen.checked_add(i.len).ok_or(WireError::BadLength)?;
    let field = if outer_v6 { total - 40 } else { total };
    u16::try_from(field).map_err(|_| WireError::BadLength)?;
    Ok(total)
}

/// Writes the headers (`out[..hlen]`) in front of the inner packet `out[hlen..]` (`i` its fields); `out` is exactly
/// the encapsulated packet and its addresses' families agree (checked by the callers).
fn write_headers(out: &mut [u8], hlen: usize, i: &Inner, tun: &TunnelConfig, outer: &Outer) {
    let total = out.len();
    let outer_v6 = outer.dst.is_ipv6();
    let ip_len = if outer_v6 { 40 } else { 20 };
    let len_field = if outer_v6 { total - ip_len } else { total };
    let body_len = total - ip_len;
    // total_len() bounded these (the body is shorter than the length field's span).
    let len_field = u16::try_from(len_field).unwrap_or(u16::MAX);
    let body_len16 = u16::try_from(body_len).unwrap_or(u16::MAX);
    out[..hlen].fill(0);
    let next = match tun.kind {
        TunnelKind::Ipip => i.protocol,
        TunnelKind::Gue => proto::UDP,
        TunnelKind::Gre => PROTO_GRE,
    };
    let tos = ecn_encapsulate(i.dsfield);
    match (outer.src, outer.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let h = V4Hdr {
                total: len_field,
                tos,
                ttl: i.ttl,
                df: i.df,
                next,
                ident: outer.ident,
            };
            write_ipv4(out, s, d, h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => write_ipv6(out, s, d, len_field, tos, i.ttl, next),
        _ => {}
    }
    let body = &mut out[ip_len..];
    match tun.kind {
        TunnelKind::Ipip => {}
        TunnelKind::Gue => {
            f::set_u16(body, 0, flow_src_port(outer.flow_hash));
            f::set_u16(body, 2, tun.port);
            f::set_u16(body, 4, body_len16);
            // GUE: version 0, C 0, hlen 0 (no options), proto/ctype, flags 0.
            f::set_u8(body, UDP_LEN + 1, i.protocol);
            if tun.csum != TunnelCsum::NoCsum {
                let ph = checksum::pseudo_header_sum(
                    outer.src,
                    outer.dst,
                    proto::UDP,
                    u32::from(body_len16),
                );
                let mut c = !checksum::fold(ph + checksum::sum(body));
                if c == 0 {
                    c = 0xffff;
                }
                f::set_u16(body, 6, c);
            }
        }
        TunnelKind::Gre => {
            f::set_u16(body, 2, i.ethertype);
            if tun.csum == TunnelCsum::Csum {
                f::set_u16(body, 0, 0x8000);
                let c = checksum::checksum(body);
                f::set_u16(body, 4, c);
            }
        }
    }
}

/// The fields of an outer IPv4 header that vary.
#[derive(Debug, Clone, Copy)]
struct V4Hdr {
    total: u16,
    tos: u8,
    ttl: u8,
    df: bool,
    next: u8,
    ident: u16,
}

fn write_ipv4(out: &mut [u8], s: Ipv4Addr, d: Ipv4Addr, h: V4Hdr) {
    f::set_u8(out, 0, 0x45);
    f::set_u8(out, 1, h.tos);
    f::set_u16(out, 2, h.total);
    f::set_u16(out, 4, h.ident);
    f::set_u16(out, 6, if h.df { 0x4000 } else { 0 });
    f::set_u8(out, 8, h.ttl);
    f::set_u8(out, 9, h.next);
    f::set_bytes(out, 12, s.octets());
    f::set_bytes(out, 16, d.octets());
    let c = checksum::ipv4_header(f::slice(out, 0..20));
    f::set_u16(out, 10, c);
}

fn write_ipv6(out: &mut [u8], s: Ipv6Addr, d: Ipv6Addr, payload: u16, tc: u8, hops: u8, next: u8) {
    // Version 6, traffic class, flow label 0.
    f::set_u16(out, 0, 0x6000 | (u16::from(tc) << 4));
    f::set_u16(out, 4, payload);
    f::set_u8(out, 6, next);
    f::set_u8(out, 7, hops);
    f::set_bytes(out, 8, s.octets());
    f::set_bytes(out, 24, d.octets());
}

/// How a tunnelled packet looks from outside: the decapsulation a real server does, for the lab's
/// user-space decapsulator and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated {
    /// The tunnel type recognised.
    pub kind: TunnelKind,
    /// Outer source (the director).
    pub outer_src: IpAddr,
    /// Start of the inner IP packet in the buffer.
    pub inner_offset: usize,
    /// End of the inner IP packet (its own length field, not the outer one).
    pub inner_end: usize,
}

/// Where the inner packet starts in the payload of an outer IP header of protocol `protocol` (4 or 41: at once;
/// 47: after a version-0 GRE header without routing, with optional checksum, key and sequence). `None`: not a
/// tunnel this understands. (GUE, carried in UDP, is [`gue_inner_offset`].)
#[must_use]
pub fn tunnel_inner_offset(protocol: u8, payload: &[u8]) -> Option<(TunnelKind, usize)> {
    match protocol {
        PROTO_IPIP | PROTO_IPV6 => Some((TunnelKind::Ipip, 0)),
        PROTO_GRE => {
            let flags = f::u16_at(payload, 0);
            if flags & 0x4007 != 0 || payload.len() < 4 {
                return None;
            }
            let extra = [0x8000u16, 0x2000, 0x1000]
                .iter()
                .filter(|bit| flags & **bit != 0)
                .count();
            Some((TunnelKind::Gre, 4 + 4 * extra))
        }
        _ => None,
    }
}

/// Where the inner packet starts in a UDP payload that is a GUE packet (version 0, data message; options
/// skipped by their length).
#[must_use]
pub fn gue_inner_offset(udp_payload: &[u8]) -> Option<usize> {
    let b0 = *udp_payload.first()?;
    if udp_payload.len() < GUE_LEN || b0 >> 6 != 0 || b0 & 0x20 != 0 {
        return None;
    }
    Some(GUE_LEN + usize::from(b0 & 0x1f) * 4)
}

/// The length of the IP packet at the start of `buf`, by its own length field.
pub fn ip_packet_len(buf: &[u8]) -> Result<usize, WireError> {
    match buf.first().map(|b| b >> 4) {
        Some(4) => Ok(usize::from(
            crate::Ipv4Packet::new_checked(buf)?.total_len(),
        )),
        Some(6) => Ok(crate::Ipv6Packet::new_checked(buf)?.total_len()),
        None => Err(WireError::Truncated),
        Some(_) => Err(WireError::BadVersion),
    }
}

/// Finds the inner packet of an IPIP, IPv6-in-IP, GRE or GUE (to `gue_port`) packet, outer header included (what
/// a real server's ipip/ip6_tunnel/gre/fou modules take off). Checksums are not verified (the inner packet's own
/// are, by the stack it is handed to). `Ok(None)`: not a tunnel packet this understands.
pub fn decapsulate(buf: &[u8], gue_port: Option<u16>) -> Result<Option<Decapsulated>, WireError> {
    let info = crate::parse(buf)?;
    let payload = buf
        .get(info.l4_offset..info.ip_len)
        .ok_or(WireError::Truncated)?;
    let found = match (info.protocol, info.transport) {
        (proto::UDP, crate::Transport::Udp { dport, .. }) if Some(dport) == gue_port => {
            gue_inner_offset(f::slice(payload, UDP_LEN..payload.len()))
                .map(|o| (TunnelKind::Gue, UDP_LEN + o))
        }
        (proto::UDP, _) => None,
        (p, _) => tunnel_inner_offset(p, payload),
    };
    let Some((kind, off)) = found else {
        return Ok(None);
    };
    let inner = payload.get(off..).ok_or(WireError::Truncated)?;
    let inner_len = ip_packet_len(inner)?;
    let inner_offset = info.l4_offset + off;
    Ok(Some(Decapsulated {
        kind,
        outer_src: info.src,
        inner_offset,
        inner_end: inner_offset + inner_len,
    }))
}

/// Bytes of the offending packet an ICMPv4 error quotes at most (`icmp_send` keeps the error within
/// 576 bytes: 576 - 20 - 8).
pub const ICMP_QUOTE_V4: usize = 548;
/// Bytes an ICMPv6 error quotes at most (the error fits the IPv6 minimum MTU: 1280 - 40 - 8).
pub const ICMP_QUOTE_V6: usize = 1232;

/// Writes into `out` the error a director sends back when `offending` (an IPv4 packet with DF, or
/// any IPv6 packet) does not fit the path: ICMP "fragmentation needed" (type 3 code 4, next-hop
/// MTU `mtu`) or ICMPv6 "packet too big" (type 2, MTU `mtu`), from `src` (the VIP the packet was
/// sent to: IPVS's VIP is a local address, so `icmp_send` answers from it) to the packet's source,
/// TTL / hop limit 64, quoting as much of the packet as [`ICMP_QUOTE_V4`] / [`ICMP_QUOTE_V6`] allow.
/// Returns the error's length.
///
/// As the kernel, never answers an ICMP error, a non-first fragment, or a packet from an
/// unspecified, multicast or broadcast source ([`WireError::Unsupported`]); `src` must be of the
/// packet's family ([`WireError::AddressFamilyMismatch`]). Nothing is written on error.
pub fn too_big(
    offending: &[u8],
    src: IpAddr,
    mtu: u32,
    out: &mut [u8],
) -> Result<usize, WireError> {
    let info = crate::parse(offending)?;
    match info.transport {
        crate::Transport::Icmp { error: Some(_), .. } => return Err(WireError::Unsupported),
        crate::Transport::Fragment { offset, .. } if offset != 0 => {
            return Err(WireError::Unsupported);
        }
        _ => {}
    }
    let bad_src = match info.src {
        IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    };
    if bad_src {
        return Err(WireError::Unsupported);
    }
    let quote = offending.get(..info.ip_len).ok_or(WireError::Truncated)?;
    match (info.src, src) {
        (IpAddr::V4(dst), IpAddr::V4(s)) => {
            let q = &quote[..quote.len().min(ICMP_QUOTE_V4)];
            let total = 28 + q.len();
            let out = out.get_mut(..total).ok_or(WireError::Truncated)?;
            out.fill(0);
            let h = V4Hdr {
                total: u16::try_from(total).unwrap_or(u16::MAX),
                tos: 0,
                ttl: 64,
                df: false,
                next: proto::ICMP,
                ident: 0,
            };
            write_ipv4(out, s, dst, h);
            let icmp = &mut out[20..];
            f::set_u8(icmp, 0, 3);
            f::set_u8(icmp, 1, 4);
            f::set_u16(icmp, 6, u16::try_from(mtu).unwrap_or(u16::MAX));
            icmp[8..].copy_from_slice(q);
            let c = checksum::checksum(icmp);
            f::set_u16(icmp, 2, c);
            Ok(total)
        }
        (IpAddr::V6(dst), IpAddr::V6(s)) => {
            let q = &quote[..quote.len().min(ICMP_QUOTE_V6)];
            let total = 48 + q.len();
            let out = out.get_mut(..total).ok_or(WireError::Truncated)?;
            out.fill(0);
            write_ipv6(
                out,
                s,
                dst,
                u16::try_from(8 + q.len()).unwrap_or(u16::MAX),
                0,
                64,
                proto::ICMPV6,
            );
            let icmp = &mut out[40..];
            f::set_u8(icmp, 0, 2);
            f::set_bytes(icmp, 4, mtu.to_be_bytes());
            icmp[8..].copy_from_slice(q);
            let mut m = crate::Icmpv6Packet::new_unchecked(icmp);
            m.fill_checksum(IpAddr::V6(s), IpAddr::V6(dst));
            Ok(total)
        }
        _ => Err(WireError::AddressFamilyMismatch),
    }
}

#[cfg(test)]
mod tests;
