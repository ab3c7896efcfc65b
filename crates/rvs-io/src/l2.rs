//! Link-layer transmit: send a rewritten IP packet straight out of an interface, with an Ethernet header for the
//! next hop, through an `AF_PACKET` socket (`PACKET_VNET_HDR` when packets carry offload headers, so TCP
//! super-packets go out whole and are segmented by the device or the kernel on egress). Not `PACKET_QDISC_BYPASS`:
//! its direct transmit drops any packet that needs software segmentation or checksumming on the way out
//! (`__dev_direct_xmit`), which a super-packet to a device without TSO does.
//!
//! Compared with writing the packet back into the TUN, this skips `tun_get_user`'s flow hashing and the second trip
//! through IP receive, routing and forwarding. It also skips the director's netfilter hooks for that packet, as
//! a bridge or an XDP program would. The next hop (interface, MACs) comes from the caller, who learns it from the
//! kernel's route and neighbour tables (see [`crate::netlink::Netlink::resolved_neighbours`]).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::vnet::{Offload, VnetHdr};

/// `PACKET_VNET_HDR` (linux/if_packet.h; not in the libc crate).
const PACKET_VNET_HDR: libc::c_int = 15;
/// Ethernet header length.
pub const ETH_HLEN: usize = 14;

/// The EtherType of the packets a next hop carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum EtherType {
    Ipv4 = 0x0800,
    Ipv6 = 0x86dd,
}

impl EtherType {
    /// The EtherType of packets to `ip`'s family.
    pub fn of(ip: std::net::IpAddr) -> Self {
        if ip.is_ipv6() { Self::Ipv6 } else { Self::Ipv4 }
    }
}

/// Where a packet goes on the link: the interface and the Ethernet header (destination MAC, source MAC, EtherType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Egress interface index.
    pub ifindex: u32,
    /// The Ethernet header to put before the packet.
    pub eth: [u8; ETH_HLEN],
    /// The egress interface's MTU: a larger packet (not a segmentation-offload super-packet) cannot go this way.
    pub mtu: u32,
}

impl NextHop {
    /// A next hop on `ifindex` (MTU `mtu`) from `src` to `dst` for packets of `ethertype`.
    pub fn new(ifindex: u32, mtu: u32, dst: [u8; 6], src: [u8; 6], ethertype: EtherType) -> Self {
        let mut eth = [0u8; ETH_HLEN];
        eth[..6].copy_from_slice(&dst);
        eth[6..12].copy_from_slice(&src);
        eth[12..].copy_from_slice(&(ethertype as u16).to_be_bytes());
        Self { ifindex, eth, mtu }
    }

    /// Whether `pkt` (with offload header `vnet`) fits this link.
    pub fn fits(&self, pkt: &[u8], vnet: &VnetHdr) -> bool {
        vnet.is_gso() || pkt.len() <= self.mtu as usize
    }

    fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.eth[12], self.eth[13]])
    }
}

/// The offload header of a packet sent with an Ethernet header in front: the header length and checksum start
/// count from the frame's start, not the IP header's.
pub fn vnet_for_frame(v: &VnetHdr) -> VnetHdr {
    let mut out = *v;
    if v.hdr_len() != 0 {
        out.set_hdr_len(v.hdr_len().saturating_add(ETH_HLEN as u16));
    }
    if v.needs_csum() {
        out.set_csum_start(v.csum_start().saturating_add(ETH_HLEN as u16));
    }
    out
}

/// One link-layer send as a `sendmsg` message: the header, the iovecs and the address it points to live together,
/// so a message can be handed to the kernel and completed later (io_uring). It refers to itself and to the packet:
/// after [`prepare`](Self::prepare) it must not move, and the packet must stay valid and unchanged, until the send
/// has completed.
#[repr(C)]
pub struct LinkMsg {
    msg: libc::msghdr,
    iov: [libc::iovec; 3],
    addr: libc::sockaddr_ll,
    vnet: VnetHdr,
    eth: [u8; ETH_HLEN],
}

impl std::fmt::Debug for LinkMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkMsg").field("eth", &self.eth).finish()
    }
}

impl Default for LinkMsg {
    fn default() -> Self {
        // SAFETY: every field is plain data (integers, raw pointers, byte arrays) for which all-zero is valid.
        unsafe { std::mem::zeroed() }
    }
}

impl LinkMsg {
    /// Point the message at the `len` bytes at `pkt` (an IP packet) for `hop`, with the offload header `vnet` when
    /// the socket's `offload` is [`Offload::VnetHdr`]. Returns the message for `sendmsg`; see the type's rules on moving and on `pkt`.
    pub fn prepare(
        &mut self,
        offload: Offload,
        hop: &NextHop,
        vnet: &VnetHdr,
        pkt: *const u8,
        len: usize,
    ) -> *const libc::msghdr {
        self.vnet = vnet_for_frame(vnet);
        self.eth = hop.eth;
        self.addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        self.addr.sll_protocol = hop.ethertype().to_be();
        self.addr.sll_ifindex = hop.ifindex as libc::c_int;
        self.addr.sll_halen = 6;
        self.addr.sll_addr[..6].copy_from_slice(&hop.eth[..6]);
        self.iov = [
            libc::iovec {
                iov_base: self.vnet.as_bytes_mut().as_mut_ptr().cast(),
                iov_len: VnetHdr::LEN,
            },
            libc::iovec {
                iov_base: self.eth.as_mut_ptr().cast(),
                iov_len: ETH_HLEN,
            },
            libc::iovec {
                iov_base: pkt as *mut libc::c_void,
                iov_len: len,
            },
        ];
        let skip = usize::from(offload == Offload::Off);
        self.msg.msg_name = (&mut self.addr as *mut libc::sockaddr_ll).cast();
        self.msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        self.msg.msg_iov = self.iov[skip..].as_mut_ptr();
        self.msg.msg_iovlen = (3 - skip) as _;
        &self.msg
    }
}

/// A link-layer transmit socket (sends only: bound to no protocol, it receives nothing).
#[derive(Debug)]
pub struct L2Tx {
    fd: OwnedFd,
    offload: Offload,
}

impl AsRawFd for L2Tx {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl L2Tx {
    /// Open the socket for packets with a [`VnetHdr`] in front ([`Offload::VnetHdr`]) or without.
    pub fn new(offload: Offload) -> io::Result<Self> {
        // SAFETY: socket() has no pointer arguments; protocol 0 means the socket receives nothing.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by socket() and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if offload == Offload::VnetHdr {
            set_int(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
        }
        // Room for a batch of super-packets in flight (best effort: needs CAP_NET_ADMIN).
        let _ = set_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8 << 20);
        Ok(Self { fd, offload })
    }

    /// Whether packets carry an offload header.
    pub fn offload(&self) -> Offload {
        self.offload
    }

    /// Send `pkt` (an IP packet) to `hop` now, with its offload header when the socket uses them. An error is the
    /// kernel refusing this packet (too big for the link, interface down, no buffer).
    pub fn send(&self, hop: &NextHop, vnet: &VnetHdr, pkt: &[u8]) -> io::Result<()> {
        let mut m = LinkMsg::default();
        let msg = m.prepare(self.offload, hop, vnet, pkt.as_ptr(), pkt.len());
        loop {
            // SAFETY: msg points into `m` (alive and not moved during the call) and at `pkt`; sendmsg only reads.
            let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), msg, libc::MSG_DONTWAIT) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

fn set_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a c_int that lives across the call, and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_header_for_v4_and_v6() {
        let h = NextHop::new(
            3,
            1500,
            [1, 2, 3, 4, 5, 6],
            [7, 8, 9, 10, 11, 12],
            EtherType::Ipv4,
        );
        assert!(h.fits(&[0u8; 1500], &VnetHdr::default()));
        assert!(!h.fits(&[0u8; 1501], &VnetHdr::default()));
        let mut gso = VnetHdr::default();
        gso.set_gso_type(VnetHdr::GSO_TCPV4);
        assert!(
            h.fits(&[0u8; 9000], &gso),
            "super-packets are segmented on egress"
        );
        assert_eq!(h.eth, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00]);
        assert_eq!(h.ethertype(), 0x0800);
        let h6 = NextHop::new(3, 1500, [1; 6], [2; 6], EtherType::Ipv6);
        assert_eq!(&h6.eth[12..], &[0x86, 0xdd]);
    }

    #[test]
    fn offload_offsets_move_by_the_ethernet_header() {
        let mut v = VnetHdr::default();
        v.set_flags(VnetHdr::F_NEEDS_CSUM);
        v.set_gso_type(VnetHdr::GSO_TCPV4);
        v.set_hdr_len(52);
        v.set_gso_size(1448);
        v.set_csum_start(20); // the TCP header
        v.set_csum_offset(16);
        let f = vnet_for_frame(&v);
        assert_eq!(f.hdr_len(), 66);
        assert_eq!(f.csum_start(), 34);
        assert_eq!(f.csum_offset(), 16, "relative to csum_start: unchanged");
        assert_eq!(f.gso_size(), 1448);
        // Without NEEDS_CSUM and without a header length, nothing moves.
        let plain = VnetHdr::default();
        assert_eq!(vnet_for_frame(&plain), plain);
    }
}
