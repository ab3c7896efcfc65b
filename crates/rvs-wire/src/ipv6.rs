//! IPv6 packet view (RFC 8200) and the extension-header walk.

use std::net::Ipv6Addr;

use crate::field::{self as f};
use crate::{WireError, proto};

mod field {
    pub(super) const VER_TC_FLOW: usize = 0;
    pub(super) const LENGTH: usize = 4;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: usize = 8;
    pub(super) const DST_ADDR: usize = 24;
}

/// IPv6 fixed header length.
pub const HEADER_LEN: usize = 40;

/// Most extension headers [`walk_extension_headers`] follows before giving up.
pub const MAX_EXTENSION_HEADERS: usize = 16;

/// A view of an IPv6 packet over a byte buffer.
///
/// `new_checked()` guarantees: a 40-byte header, version 6, 40 + payload length <= buffer
/// length. Jumbograms (payload length 0 with a jumbo option) are not supported: the payload
/// is then empty. Accessors never panic, whatever the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without validation (accessors still never panic).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates the version and the payload length against the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadVersion);
        }
        if self.total_len() > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Version nibble (6).
    pub fn version(&self) -> u8 {
        f::u8_at(self.b(), field::VER_TC_FLOW) >> 4
    }
    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let w = f::u16_at(self.b(), field::VER_TC_FLOW);
        ((w >> 4) & 0xff) as u8
    }
    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        f::u32_at(self.b(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    /// Payload length field (extension headers included).
    pub fn payload_len(&self) -> u16 {
        f::u16_at(self.b(), field::LENGTH)
    }
    /// 40 + payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }
    /// Next header after the fixed header (may be an extension header).
    pub fn next_header(&self) -> u8 {
        f::u8_at(self.b(), field::NXT_HDR)
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        f::u8_at(self.b(), field::HOP_LIMIT)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        f::ipv6_at(self.b(), field::SRC_ADDR)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        f::ipv6_at(self.b(), field::DST_ADDR)
    }
    /// The payload (extension headers included), `40..40 + payload length`.
    pub fn payload(&self) -> &[u8] {
        f::slice(self.b(), HEADER_LEN..self.total_len())
    }
    /// Walks the extension headers of the payload (see [`walk_extension_headers`]).
    pub fn chain(&self) -> Result<Ipv6Chain, WireError> {
        walk_extension_headers(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        f::set_u8(self.bm(), field::HOP_LIMIT, v);
    }
    /// Sets the source address (upper-layer checksums not updated; see [`crate::rewrite`]).
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        f::set_bytes(self.bm(), field::SRC_ADDR, addr.octets());
    }
    /// Sets the destination address (upper-layer checksums not updated).
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        f::set_bytes(self.bm(), field::DST_ADDR, addr.octets());
    }
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let r = HEADER_LEN..self.total_len();
        f::slice_mut(self.bm(), r)
    }
}

/// Result of walking an IPv6 extension-header chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Chain {
    /// The upper-layer protocol (or ESP / no-next-header, where the walk stops; for a fragment,
    /// the protocol the fragment carries).
    pub protocol: u8,
    /// Offset of the upper-layer header, relative to the start of the walked bytes.
    pub offset: usize,
    /// `(offset in bytes, more fragments)` when a fragment header marks a real fragment.
    /// Atomic fragments (offset 0, M clear; RFC 6946) are walked through and not reported.
    pub fragment: Option<(u16, bool)>,
}

/// Walks extension headers (hop-by-hop, routing, destination options, fragment, AH, mobility,
/// HIP, shim6) starting with `next_header` over `data` (the bytes after the fixed header).
/// Stops at the first other protocol, including ESP (50) and no-next-header (59), and at a
/// real fragment (never reading past the fragment header). Errors if a header does not fit
/// in `data` or the chain is longer than [`MAX_EXTENSION_HEADERS`].
pub fn walk_extension_headers(mut next_header: u8, data: &[u8]) -> Result<Ipv6Chain, WireError> {
    let mut off = 0usize;
    for _ in 0..MAX_EXTENSION_HEADERS {
        let len = match next_header {
            proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS | 135 | 139 | 140 => {
                (usize::from(f::u8_at(data, off.saturating_add(1))) + 1) * 8
            }
            proto::AH => (usize::from(f::u8_at(data, off.saturating_add(1))) + 2) * 4,
            proto::IPV6_FRAG => 8,
            _ => {
                return Ok(Ipv6Chain {
                    protocol: next_header,
                    offset: off,
                    fragment: None,
                });
            }
        };
        let end = off.checked_add(len).ok_or(WireError::Truncated)?;
        let hdr = data.get(off..end).ok_or(WireError::Truncated)?;
        let nh = f::u8_at(hdr, 0);
        if next_header == proto::IPV6_FRAG {
            let fo = f::u16_at(hdr, 2);
            let (offset, more) = (fo & 0xfff8, fo & 1 != 0);
            if offset != 0 || more {
                return Ok(Ipv6Chain {
                    protocol: nh,
                    offset: end,
                    fragment: Some((offset, more)),
                });
            }
        }
        next_header = nh;
        off = end;
    }
    match next_header {
        proto::HOPOPT
        | proto::IPV6_ROUTE
        | proto::IPV6_OPTS
        | proto::IPV6_FRAG
        | proto::AH
        | 135
        | 139
        | 140 => Err(WireError::TooManyExtensionHeaders),
        _ => Ok(Ipv6Chain {
            protocol: next_header,
            offset: off,
            fragment: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next: u8, payload_len: u16) -> [u8; 40] {
        let mut h = [0u8; 40];
        h[0] = 0x60;
        h[1] = 0x12; // TC 0x01, flow 0x2_3456
        h[2] = 0x34;
        h[3] = 0x56;
        h[4..6].copy_from_slice(&payload_len.to_be_bytes());
        h[6] = next;
        h[7] = 64;
        h[8] = 0x20;
        h[9] = 0x01;
        h[10] = 0x0d;
        h[11] = 0xb8;
        h[23] = 1;
        h[24] = 0xfd;
        h[39] = 2;
        h
    }

    #[test]
    fn accessors() {
        let mut b = [0u8; 48];
        b[..40].copy_from_slice(&header(proto::UDP, 8));
        let p = Ipv6Packet::new_checked(&b[..]).expect("valid");
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x01);
        assert_eq!(p.flow_label(), 0x2_3456);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(
            p.src_addr(),
            "2001:db8::1".parse::<Ipv6Addr>().expect("addr")
        );
        assert_eq!(p.dst_addr(), "fd00::2".parse::<Ipv6Addr>().expect("addr"));
        assert_eq!(p.payload().len(), 8);
        assert_eq!(
            p.chain(),
            Ok(Ipv6Chain {
                protocol: proto::UDP,
                offset: 0,
                fragment: None
            })
        );
    }

    #[test]
    fn rejects() {
        let h = header(proto::UDP, 8);
        assert_eq!(
            Ipv6Packet::new_checked(&h[..]).err(),
            Some(WireError::Truncated)
        );
        let mut b = [0u8; 48];
        b[..40].copy_from_slice(&h);
        b[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).err(),
            Some(WireError::BadVersion)
        );
        for n in 0..48 {
            assert!(Ipv6Packet::new_checked(&b[..n]).is_err());
        }
    }

    #[test]
    fn walks_chain() {
        // HBH(8) -> DST(16) -> ROUTING(8) -> AH(12: len field 1 -> (1+2)*4) -> TCP
        let mut d = vec![0u8; 8 + 16 + 8 + 12];
        d[0] = proto::IPV6_OPTS;
        d[1] = 0;
        d[8] = proto::IPV6_ROUTE;
        d[9] = 1;
        d[24] = proto::AH;
        d[25] = 0;
        d[32] = proto::TCP;
        d[33] = 1;
        let c = walk_extension_headers(proto::HOPOPT, &d).expect("walk");
        assert_eq!(
            c,
            Ipv6Chain {
                protocol: proto::TCP,
                offset: 44,
                fragment: None
            }
        );
        for n in 0..d.len() {
            assert_eq!(
                walk_extension_headers(proto::HOPOPT, &d[..n]),
                Err(WireError::Truncated)
            );
        }
    }

    #[test]
    fn fragments() {
        // Non-first fragment carrying UDP.
        let frag = [proto::UDP, 0, 0x05, 0x01, 0, 0, 0, 1];
        assert_eq!(
            walk_extension_headers(proto::IPV6_FRAG, &frag),
            Ok(Ipv6Chain {
                protocol: proto::UDP,
                offset: 8,
                fragment: Some((0x0500, true))
            })
        );
        // Atomic fragment: walked through.
        let atomic = [proto::UDP, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            walk_extension_headers(proto::IPV6_FRAG, &atomic),
            Ok(Ipv6Chain {
                protocol: proto::UDP,
                offset: 8,
                fragment: None
            })
        );
    }

    #[test]
    fn stops_at_esp_and_nonxt_and_limits_length() {
        assert_eq!(
            walk_extension_headers(proto::ESP, &[1, 2, 3]),
            Ok(Ipv6Chain {
                protocol: proto::ESP,
                offset: 0,
                fragment: None
            })
        );
        let d = [proto::IPV6_NONXT, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_extension_headers(proto::IPV6_OPTS, &d),
            Ok(Ipv6Chain {
                protocol: proto::IPV6_NONXT,
                offset: 8,
                fragment: None
            })
        );
        let long = [proto::IPV6_OPTS, 0, 0, 0, 0, 0, 0, 0].repeat(MAX_EXTENSION_HEADERS + 1);
        assert_eq!(
            walk_extension_headers(proto::IPV6_OPTS, &long),
            Err(WireError::TooManyExtensionHeaders)
        );
    }
}
