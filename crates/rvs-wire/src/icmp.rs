//! ICMP (RFC 792) and ICMPv6 (RFC 4443) message views.

use std::net::IpAddr;

use crate::field::{self as f};
use crate::{WireError, checksum, proto};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const REST: usize = 4;
}

/// ICMP/ICMPv6 header length (type, code, checksum, 4 bytes "rest of header").
pub const HEADER_LEN: usize = 8;

/// ICMPv4 types whose body quotes the offending packet: destination unreachable (3), source
/// quench (4), redirect (5), time exceeded (11), parameter problem (12).
#[must_use]
pub const fn icmpv4_is_error(icmp_type: u8) -> bool {
    matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
}

/// ICMPv6 error types: destination unreachable (1), packet too big (2), time exceeded (3),
/// parameter problem (4).
#[must_use]
pub const fn icmpv6_is_error(icmp_type: u8) -> bool {
    matches!(icmp_type, 1..=4)
}

macro_rules! icmp_view {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        ///
        /// `new_checked()` guarantees the 8-byte header; the message body is the rest of the
        /// buffer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
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
            /// Validates that the 8-byte header is present.
            pub fn check_len(&self) -> Result<(), WireError> {
                if self.buffer.as_ref().len() < HEADER_LEN {
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
            /// Message type.
            pub fn msg_type(&self) -> u8 {
                f::u8_at(self.b(), field::TYPE)
            }
            /// Message code.
            pub fn msg_code(&self) -> u8 {
                f::u8_at(self.b(), field::CODE)
            }
            /// Checksum field.
            pub fn checksum(&self) -> u16 {
                f::u16_at(self.b(), field::CHECKSUM)
            }
            /// The 4 "rest of header" bytes as a number (echo id/seq, MTU, pointer...).
            pub fn rest_of_header(&self) -> u32 {
                f::u32_at(self.b(), field::REST)
            }
            /// Echo identifier (first half of the rest of header).
            pub fn echo_ident(&self) -> u16 {
                f::u16_at(self.b(), field::REST)
            }
            /// Echo sequence number (second half of the rest of header).
            pub fn echo_seq_no(&self) -> u16 {
                f::u16_at(self.b(), field::REST + 2)
            }
            /// The message body after the 8-byte header (the quoted packet for errors).
            pub fn data(&self) -> &[u8] {
                f::slice(self.b(), HEADER_LEN..self.b().len())
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Sets the checksum field.
            pub fn set_checksum(&mut self, v: u16) {
                f::set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
            }
            /// The message body, mutable (checksum not updated).
            pub fn data_mut(&mut self) -> &mut [u8] {
                let n = self.buffer.as_ref().len();
                f::slice_mut(self.buffer.as_mut(), HEADER_LEN..n)
            }
        }
    };
}

icmp_view!(
    IcmpPacket,
    "A view of an ICMP (IPv4) message; the buffer is the whole message."
);
icmp_view!(
    Icmpv6Packet,
    "A view of an ICMPv6 message; the buffer is the whole message."
);

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Whether this type is an error quoting a packet.
    pub fn is_error(&self) -> bool {
        icmpv4_is_error(self.msg_type())
    }
    /// Whether the checksum verifies over the whole buffer.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.b())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Recomputes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.b());
        self.set_checksum(c);
    }
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Whether this type is an error quoting a packet.
    pub fn is_error(&self) -> bool {
        icmpv6_is_error(self.msg_type())
    }
    /// Whether the checksum verifies over the whole buffer with the pseudo-header.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let Ok(len) = u32::try_from(self.b().len()) else {
            return false;
        };
        let ph = checksum::pseudo_header_sum(src, dst, proto::ICMPV6, len);
        checksum::fold(ph + checksum::sum(self.b())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Recomputes and stores the checksum with the pseudo-header.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let len = u32::try_from(self.b().len()).unwrap_or(u32::MAX);
        let ph = checksum::pseudo_header_sum(src, dst, proto::ICMPV6, len);
        let c = !checksum::fold(ph + checksum::sum(self.b()));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request id 0x1234 seq 1, payload "hi" (checksum filled by the test).
    const ECHO: [u8; 10] = [8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'h', b'i'];

    #[test]
    fn icmpv4_echo() {
        let mut b = ECHO;
        let mut p = IcmpPacket::new_checked(&mut b[..]).expect("valid");
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), 8);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"hi");
        assert!(!p.is_error());
        // RFC 1071 by hand: words 0800 0000 1234 0001 6869 -> sum 829e -> checksum 7d61.
        assert_eq!(p.checksum(), 0x7d61);
        for n in 0..HEADER_LEN {
            assert!(IcmpPacket::new_checked(&ECHO[..n]).is_err());
        }
    }

    #[test]
    fn icmpv6_checksum_includes_pseudo_header() {
        let mut b = ECHO;
        b[0] = 128;
        let (s, d): (IpAddr, IpAddr) = (
            "2001:db8::1".parse().expect("a"),
            "fd00::2".parse().expect("a"),
        );
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).expect("valid");
        p.fill_checksum(s, d);
        assert!(p.verify_checksum(s, d));
        assert!(!p.verify_checksum(s, "fd00::3".parse().expect("a")));
        assert!(Icmpv6Packet::new_unchecked(&[1u8][..]).is_error());
        assert!(!p.is_error());
    }
}
