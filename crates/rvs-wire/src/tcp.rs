//! TCP segment view (RFC 9293).

use std::net::IpAddr;

use crate::field::{self as f};
use crate::{TcpFlags, WireError, checksum, proto};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ_NUM: usize = 4;
    pub(super) const ACK_NUM: usize = 8;
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WIN_SIZE: usize = 14;
    pub(super) const CHECKSUM: usize = 16;
    pub(super) const URGENT: usize = 18;
}

/// Minimum TCP header length.
pub const MIN_HEADER_LEN: usize = 20;
/// Offset of the checksum field.
pub(crate) const CHECKSUM: usize = field::CHECKSUM;

/// A view of a TCP segment (the buffer is the segment: header, options, payload).
///
/// `new_checked()` guarantees: 20 bytes, data offset >= 5, header length <= buffer length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
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
    /// Validates the header length against the buffer.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        if hl > len {
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
    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        f::u32_at(self.b(), field::SEQ_NUM)
    }
    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        f::u32_at(self.b(), field::ACK_NUM)
    }
    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(f::u8_at(self.b(), field::DATA_OFF) >> 4) * 4
    }
    /// Control flags.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits(f::u8_at(self.b(), field::FLAGS))
    }
    /// Window size.
    pub fn window_len(&self) -> u16 {
        f::u16_at(self.b(), field::WIN_SIZE)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        f::u16_at(self.b(), field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        f::u16_at(self.b(), field::URGENT)
    }
    /// Options bytes.
    pub fn options(&self) -> &[u8] {
        f::slice(self.b(), MIN_HEADER_LEN..self.header_len())
    }
    /// Payload bytes.
    pub fn payload(&self) -> &[u8] {
        f::slice(self.b(), self.header_len()..self.b().len())
    }
    /// Whether the checksum verifies over the whole buffer with the given pseudo-header addresses.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let Ok(len) = u32::try_from(self.b().len()) else {
            return false;
        };
        let ph = checksum::pseudo_header_sum(src, dst, proto::TCP, len);
        checksum::fold(ph + checksum::sum(self.b())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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
    /// Recomputes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let len = u32::try_from(self.b().len()).unwrap_or(u32::MAX);
        let ph = checksum::pseudo_header_sum(src, dst, proto::TCP, len);
        let c = !checksum::fold(ph + checksum::sum(self.b()));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SYN 40000 -> 80, seq 1, window 64240, one 4-byte MSS option (1460).
    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, 0x02,
        0x04, 0x05, 0xb4,
    ];

    #[test]
    fn accessors_and_checksum() {
        let mut b = SYN;
        let mut p = TcpPacket::new_checked(&mut b[..]).expect("valid");
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.header_len(), 24);
        assert!(p.flags().syn() && !p.flags().ack());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert!(p.payload().is_empty());
        let (s, d): (IpAddr, IpAddr) = ([198, 51, 100, 7].into(), [203, 0, 113, 9].into());
        p.fill_checksum(s, d);
        assert!(p.verify_checksum(s, d));
        assert!(!p.verify_checksum(d, [1, 1, 1, 1].into()));
    }

    #[test]
    fn prefixes() {
        for n in 0..SYN.len() {
            assert!(TcpPacket::new_checked(&SYN[..n]).is_err(), "prefix {n}");
        }
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).err(),
            Some(WireError::BadHeaderLength)
        );
    }
}
