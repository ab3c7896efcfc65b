//! UDP datagram view (RFC 768).

use std::net::IpAddr;

use crate::field::{self as f};
use crate::{WireError, checksum, proto};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const LENGTH: usize = 4;
    pub(super) const CHECKSUM: usize = 6;
}

/// UDP header length.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub(crate) const CHECKSUM: usize = field::CHECKSUM;

/// A view of a UDP datagram.
///
/// `new_checked()` guarantees: 8 bytes, 8 <= length field <= buffer length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
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
    /// Validates the length field against the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN {
            return Err(WireError::BadLength);
        }
        if l > len {
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
    /// Source port.
    pub fn src_port(&self) -> u16 {
        f::u16_at(self.b(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        f::u16_at(self.b(), field::DST_PORT)
    }
    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        f::u16_at(self.b(), field::LENGTH)
    }
    /// Whether the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    /// Checksum field (0 = none, IPv4 only).
    pub fn checksum(&self) -> u16 {
        f::u16_at(self.b(), field::CHECKSUM)
    }
    /// Payload, `8..length`.
    pub fn payload(&self) -> &[u8] {
        f::slice(self.b(), HEADER_LEN..usize::from(self.len()))
    }
    /// Whether the checksum verifies over `0..length` with the pseudo-header (a zero checksum
    /// verifies for IPv4 only).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        let l = self.len();
        let ph = checksum::pseudo_header_sum(src, dst, proto::UDP, u32::from(l));
        checksum::fold(ph + checksum::sum(f::slice(self.b(), 0..usize::from(l)))) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Sets the source port (checksum not updated; see [`crate::rewrite`]).
    pub fn set_src_port(&mut self, v: u16) {
        f::set_u16(self.bm(), field::SRC_PORT, v);
    }
    /// Sets the destination port (checksum not updated).
    pub fn set_dst_port(&mut self, v: u16) {
        f::set_u16(self.bm(), field::DST_PORT, v);
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        f::set_u16(self.bm(), field::CHECKSUM, v);
    }
    /// Recomputes and stores the checksum (a computed 0 is sent as 0xffff).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let l = self.len();
        let ph = checksum::pseudo_header_sum(src, dst, proto::UDP, u32::from(l));
        let c = !checksum::fold(ph + checksum::sum(f::slice(self.b(), 0..usize::from(l))));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DGRAM: [u8; 12] = [
        0x30, 0x39, 0x00, 0x35, 0x00, 0x0c, 0, 0, b'a', b'b', b'c', b'd',
    ];

    #[test]
    fn accessors_and_checksum() {
        let mut b = DGRAM;
        let mut p = UdpPacket::new_checked(&mut b[..]).expect("valid");
        assert_eq!(p.src_port(), 12345);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert_eq!(p.payload(), b"abcd");
        let (s, d): (IpAddr, IpAddr) = ([198, 51, 100, 7].into(), [203, 0, 113, 9].into());
        assert!(p.verify_checksum(s, d), "zero checksum = none on IPv4");
        assert!(!p.verify_checksum("::1".parse().expect("a"), "::2".parse().expect("a")));
        p.fill_checksum(s, d);
        assert_ne!(p.checksum(), 0);
        assert!(p.verify_checksum(s, d));
    }

    #[test]
    fn prefixes_and_bad_length() {
        for n in 0..DGRAM.len() {
            assert!(UdpPacket::new_checked(&DGRAM[..n]).is_err(), "prefix {n}");
        }
        let mut b = DGRAM;
        b[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&b[..]).err(),
            Some(WireError::BadLength)
        );
        // Length shorter than the buffer: payload follows the length field.
        b[5] = 10;
        let p = UdpPacket::new_checked(&b[..]).expect("valid");
        assert_eq!(p.payload(), b"ab");
    }
}
