//! IPv4 packet view (RFC 791).

use std::net::Ipv4Addr;

use crate::WireError;
use crate::checksum;
use crate::field::{self as f, Field};

mod field {
    use super::Field;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLG_OFF: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC_ADDR: usize = 12;
    pub(super) const DST_ADDR: usize = 16;
    pub(super) const HEADER: Field = 0..20;
}

/// Minimum IPv4 header length (no options).
pub const MIN_HEADER_LEN: usize = field::HEADER.end;

/// A view of an IPv4 packet over a byte buffer.
///
/// `new_checked()` guarantees: a 20-byte header, version 4, IHL >= 5, IHL*4 <= total length
/// <= buffer length. Accessors never panic, whatever the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without validation (accessors still never panic; they read 0 / empty
    /// past the end).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates version, header length and total length against the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(WireError::BadLength);
        }
        if tl > len {
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

    /// Version nibble (4).
    pub fn version(&self) -> u8 {
        f::u8_at(self.b(), field::VER_IHL) >> 4
    }
    /// Header length in bytes (IHL * 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(f::u8_at(self.b(), field::VER_IHL) & 0x0f) * 4
    }
    /// Differentiated services code point.
    pub fn dscp(&self) -> u8 {
        f::u8_at(self.b(), field::DSCP_ECN) >> 2
    }
    /// Explicit congestion notification bits.
    pub fn ecn(&self) -> u8 {
        f::u8_at(self.b(), field::DSCP_ECN) & 0x03
    }
    /// Total length field (header + payload).
    pub fn total_len(&self) -> u16 {
        f::u16_at(self.b(), field::LENGTH)
    }
    /// Identification field.
    pub fn ident(&self) -> u16 {
        f::u16_at(self.b(), field::IDENT)
    }
    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        f::u16_at(self.b(), field::FLG_OFF) & 0x4000 != 0
    }
    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        f::u16_at(self.b(), field::FLG_OFF) & 0x2000 != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (f::u16_at(self.b(), field::FLG_OFF) & 0x1fff) << 3
    }
    /// Whether this is a fragment (first or not): MF set or offset non-zero.
    pub fn is_fragment(&self) -> bool {
        f::u16_at(self.b(), field::FLG_OFF) & 0x3fff != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        f::u8_at(self.b(), field::TTL)
    }
    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        f::u8_at(self.b(), field::PROTOCOL)
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        f::u16_at(self.b(), field::CHECKSUM)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        f::ipv4_at(self.b(), field::SRC_ADDR)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        f::ipv4_at(self.b(), field::DST_ADDR)
    }
    /// The options bytes (between the fixed header and IHL*4).
    pub fn options(&self) -> &[u8] {
        f::slice(self.b(), MIN_HEADER_LEN..self.header_len())
    }
    /// The header including options.
    pub fn header(&self) -> &[u8] {
        f::slice(self.b(), 0..self.header_len())
    }
    /// The payload, `header_len..total_len` (trailing buffer bytes excluded).
    pub fn payload(&self) -> &[u8] {
        f::slice(self.b(), self.header_len()..usize::from(self.total_len()))
    }
    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::ipv4_header_ok(self.b())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Sets the TTL (checksum not updated; see [`crate::rewrite::adjust_ttl`]).
    pub fn set_ttl(&mut self, ttl: u8) {
        f::set_u8(self.bm(), field::TTL, ttl);
    }
    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, csum: u16) {
        f::set_u16(self.bm(), field::CHECKSUM, csum);
    }
    /// Sets the source address (checksums not updated; see [`crate::rewrite`]).
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        f::set_bytes(self.bm(), field::SRC_ADDR, addr.octets());
    }
    /// Sets the destination address (checksums not updated; see [`crate::rewrite`]).
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        f::set_bytes(self.bm(), field::DST_ADDR, addr.octets());
    }
    /// Recomputes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        let c = checksum::ipv4_header(self.header());
        self.set_checksum(c);
    }
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let r = self.header_len()..usize::from(self.total_len());
        f::slice_mut(self.bm(), r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 198.51.100.7 -> 203.0.113.9, UDP, 4 bytes of payload, with one 4-byte option (NOP x3 + EOL).
    pub(crate) const WITH_OPTS: [u8; 28] = [
        0x46, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 198, 51, 100, 7,
        203, 0, 113, 9, 0x01, 0x01, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn accessors() {
        let mut buf = WITH_OPTS;
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).expect("valid");
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(203, 0, 113, 9));
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn rejects_bad_headers() {
        let mut b = WITH_OPTS;
        b[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::BadHeaderLength)
        );
        b[0] = 0x56; // version 5
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::BadVersion)
        );
        b[0] = 0x4f; // IHL 15 = 60 bytes > total length 28
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::BadLength)
        );
        b = WITH_OPTS;
        b[3] = 29; // total length past the buffer
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(WireError::Truncated)
        );
    }

    #[test]
    fn every_prefix_is_err_or_valid() {
        for n in 0..WITH_OPTS.len() {
            assert!(
                Ipv4Packet::new_checked(&WITH_OPTS[..n]).is_err(),
                "prefix {n}"
            );
            // Unchecked accessors on short buffers never panic.
            let p = Ipv4Packet::new_unchecked(&WITH_OPTS[..n]);
            let _ = (p.payload(), p.options(), p.src_addr(), p.verify_checksum());
        }
        assert!(Ipv4Packet::new_checked(&WITH_OPTS[..]).is_ok());
    }

    #[test]
    fn fragment_fields() {
        let mut b = WITH_OPTS;
        b[6] = 0x20 | 0x01; // MF, offset 0x100 units
        b[7] = 0x00;
        let p = Ipv4Packet::new_checked(&b[..]).expect("valid");
        assert!(p.more_frags());
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 0x100 * 8);
    }
}
