//! The virtio-net header (`struct virtio_net_hdr`, include/uapi/linux/virtio_net.h) a TUN with
//! `IFF_VNET_HDR` puts before each packet: a view with named fields over its 10 little-endian bytes.
//!
//! Checksum offload (`NEEDS_CSUM`: the L4 checksum field holds only the pseudo-header sum, to be
//! completed over `csum_start..`) and segmentation offload (`gso_type`/`gso_size`: one read is a TCP
//! super-packet of up to 64 KB). Its own module so that both the packet I/O (packet.rs) and the link
//! layer (l2.rs) use it without using each other.
//!
//! | bytes | field |
//! |---|---|
//! | 0 | flags |
//! | 1 | gso_type |
//! | 2-3 | hdr_len |
//! | 4-5 | gso_size |
//! | 6-7 | csum_start |
//! | 8-9 | csum_offset |

/// Whether the packets of a TUN queue or a link-layer socket carry a [`VnetHdr`] in front of them (`IFF_VNET_HDR`,
/// `PACKET_VNET_HDR`), so that checksum and segmentation offloads travel with each packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offload {
    /// Plain IP packets, no header.
    Off,
    /// A virtio-net header before each packet.
    VnetHdr,
}

impl Offload {
    /// The bytes in front of each packet: [`VnetHdr::LEN`] or none.
    pub const fn header_len(self) -> usize {
        match self {
            Offload::Off => 0,
            Offload::VnetHdr => VnetHdr::LEN,
        }
    }
}

/// One packet's virtio-net header (all zero: no offload).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr([u8; VnetHdr::LEN]);

impl VnetHdr {
    /// Size of `struct virtio_net_hdr`.
    pub const LEN: usize = 10;
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// `VIRTIO_NET_HDR_F_DATA_VALID`.
    pub const F_DATA_VALID: u8 = 2;
    /// `VIRTIO_NET_HDR_GSO_NONE`.
    pub const GSO_NONE: u8 = 0;
    /// `VIRTIO_NET_HDR_GSO_TCPV4`.
    pub const GSO_TCPV4: u8 = 1;

    const FLAGS: usize = 0;
    const GSO_TYPE: usize = 1;
    const HDR_LEN: usize = 2;
    const GSO_SIZE: usize = 4;
    const CSUM_START: usize = 6;
    const CSUM_OFFSET: usize = 8;

    /// The header as read from (or to be written to) the device.
    pub const fn from_bytes(b: [u8; Self::LEN]) -> Self {
        Self(b)
    }

    /// The bytes, for a write to the device.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// The bytes, for a read from the device into the header.
    pub fn as_bytes_mut(&mut self) -> &mut [u8; Self::LEN] {
        &mut self.0
    }

    fn u16_at(&self, i: usize) -> u16 {
        u16::from_le_bytes([self.0[i], self.0[i + 1]])
    }

    fn set_u16_at(&mut self, i: usize, v: u16) {
        let [a, b] = v.to_le_bytes();
        self.0[i] = a;
        self.0[i + 1] = b;
    }

    /// Flags (`F_*`).
    pub fn flags(&self) -> u8 {
        self.0[Self::FLAGS]
    }
    /// Replace the flags.
    pub fn set_flags(&mut self, f: u8) {
        self.0[Self::FLAGS] = f;
    }
    /// Segmentation type (`GSO_NONE`, TCPv4 = 1, UDP = 3, TCPv6 = 4, ...).
    pub fn gso_type(&self) -> u8 {
        self.0[Self::GSO_TYPE]
    }
    /// Replace the segmentation type.
    pub fn set_gso_type(&mut self, t: u8) {
        self.0[Self::GSO_TYPE] = t;
    }
    /// Length of the headers before the payload of a super-packet (0: not given).
    pub fn hdr_len(&self) -> u16 {
        self.u16_at(Self::HDR_LEN)
    }
    /// Replace the header length.
    pub fn set_hdr_len(&mut self, v: u16) {
        self.set_u16_at(Self::HDR_LEN, v);
    }
    /// Segment size of a super-packet.
    pub fn gso_size(&self) -> u16 {
        self.u16_at(Self::GSO_SIZE)
    }
    /// Replace the segment size.
    pub fn set_gso_size(&mut self, v: u16) {
        self.set_u16_at(Self::GSO_SIZE, v);
    }
    /// Where checksumming starts (the L4 header).
    pub fn csum_start(&self) -> u16 {
        self.u16_at(Self::CSUM_START)
    }
    /// Replace where checksumming starts.
    pub fn set_csum_start(&mut self, v: u16) {
        self.set_u16_at(Self::CSUM_START, v);
    }
    /// Offset of the checksum field from `csum_start`.
    pub fn csum_offset(&self) -> u16 {
        self.u16_at(Self::CSUM_OFFSET)
    }
    /// Replace the checksum field's offset.
    pub fn set_csum_offset(&mut self, v: u16) {
        self.set_u16_at(Self::CSUM_OFFSET, v);
    }
    /// The L4 checksum is partial (pseudo-header sum only).
    pub fn needs_csum(&self) -> bool {
        self.flags() & Self::F_NEEDS_CSUM != 0
    }
    /// A segmentation-offload super-packet.
    pub fn is_gso(&self) -> bool {
        self.gso_type() != Self::GSO_NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_fields_are_the_little_endian_bytes_of_virtio_net_hdr() {
        let mut v = VnetHdr::default();
        v.set_flags(VnetHdr::F_NEEDS_CSUM);
        v.set_gso_type(VnetHdr::GSO_TCPV4);
        v.set_hdr_len(0x0102);
        v.set_gso_size(1448);
        v.set_csum_start(0x0304);
        v.set_csum_offset(16);
        assert_eq!(
            v.as_bytes(),
            &[1, 1, 0x02, 0x01, 0xa8, 0x05, 0x04, 0x03, 16, 0]
        );
        let r = VnetHdr::from_bytes(*v.as_bytes());
        assert_eq!(
            (r.flags(), r.gso_type(), r.hdr_len(), r.gso_size()),
            (1, 1, 0x0102, 1448)
        );
        assert_eq!((r.csum_start(), r.csum_offset()), (0x0304, 16));
        assert!(r.needs_csum() && r.is_gso());
        assert!(!VnetHdr::default().is_gso());
    }
}
