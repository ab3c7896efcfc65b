//! VRRP's sockets, one family per instance (RFC 5798: an instance is IPv4 or IPv6, never both):
//!
//! - IPv4: a raw IPPROTO_VRRP socket; received packets carry their IP header (source, destination, TTL read there).
//! - IPv6: a raw IPPROTO_VRRP socket of family AF_INET6; the kernel strips the IPv6 header, so the destination and
//!   hop limit come as control messages (`IPV6_PKTINFO`, `IPV6_HOPLIMIT`) and the source as the peer address.
//!
//! Adverts leave from the instance's primary address (the interface's first IPv4 address, its IPv6 link-local
//! address, or keepalived's `unicast_src_ip`), set per message with `IP_PKTINFO` / `IPV6_PKTINFO` so the address
//! the checksum (v3 pseudo-header) and the receivers' tie-break see is the one on the wire. Not bound to the
//! address: a raw socket bound to an address receives only packets sent to it.
//!
//! Takeover announcements: gratuitous ARP frames (IPv4, through an `AF_PACKET` socket) and unsolicited neighbour
//! advertisements to all nodes with the override flag (IPv6, through a raw ICMPv6 socket with hop limit 255; the
//! kernel fills the ICMPv6 checksum for the source it picks).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, recvmsg, sendmsg,
    setsockopt, sockopt,
};
use rvs_vrrp::wire;
use socket2::{Domain, Protocol, Socket, Type};

/// All-nodes multicast (the destination of unsolicited neighbour advertisements).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// One instance's VRRP socket.
#[derive(Debug)]
pub struct VrrpSocket {
    sock: Socket,
    ifindex: u32,
    primary: IpAddr,
    /// Room for IPV6_PKTINFO + IPV6_HOPLIMIT (reused: nothing is allocated per advert).
    cmsg: Vec<u8>,
}

impl AsRawFd for VrrpSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

/// A received VRRP packet: where from, where to, its TTL / hop limit, and the VRRP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub payload: &'a [u8],
}

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl VrrpSocket {
    /// Opens the socket on `ifn` (index `ifindex`) for adverts from `primary` (its family is the instance's).
    pub fn open(ifn: &str, ifindex: u32, primary: IpAddr) -> io::Result<Self> {
        let proto = Some(Protocol::from(i32::from(wire::IPPROTO_VRRP)));
        let sock = match primary {
            IpAddr::V4(p) => {
                let s = Socket::new(Domain::IPV4, Type::RAW, proto)?;
                s.bind_device(Some(ifn.as_bytes()))?;
                s.set_multicast_ttl_v4(u32::from(wire::TTL))?;
                s.set_ttl_v4(u32::from(wire::TTL))?;
                s.set_multicast_loop_v4(false)?;
                s.set_multicast_if_v4(&p)?;
                s.join_multicast_v4(&wire::GROUP_V4, &p)?;
                s
            }
            IpAddr::V6(_) => {
                let s = Socket::new(Domain::IPV6, Type::RAW, proto)?;
                s.bind_device(Some(ifn.as_bytes()))?;
                s.set_multicast_hops_v6(u32::from(wire::TTL))?;
                s.set_unicast_hops_v6(u32::from(wire::TTL))?;
                s.set_multicast_loop_v6(false)?;
                s.set_multicast_if_v6(ifindex)?;
                s.join_multicast_v6(&wire::GROUP_V6, ifindex)?;
                setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(nix_io)?;
                setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).map_err(nix_io)?;
                s
            }
        };
        // Non-blocking: one thread polls every instance's socket.
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock,
            ifindex,
            primary,
            cmsg: nix::cmsg_space!(libc::in6_pktinfo, libc::c_int),
        })
    }

    /// Sends one built advert to `dst` from the primary address.
    pub fn send(&self, msg: &[u8], dst: IpAddr) -> io::Result<()> {
        let iov = [IoSlice::new(msg)];
        let fd = self.sock.as_raw_fd();
        let r = match (self.primary, dst) {
            (IpAddr::V4(src), IpAddr::V4(d)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: i32::try_from(self.ifindex).unwrap_or(0),
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(src).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let to = SockaddrIn::from(std::net::SocketAddrV4::new(d, 0));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )
            }
            (IpAddr::V6(src), IpAddr::V6(d)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: src.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                let to = SockaddrIn6::from(std::net::SocketAddrV6::new(d, 0, 0, self.ifindex));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )
            }
            _ => return Err(io::Error::other("advert to another address family")),
        };
        r.map(|_| ()).map_err(nix_io)
    }

    /// One waiting packet; `Ok(None)` when there is none, or it is not a whole VRRP packet.
    pub fn recv<'a>(&mut self, buf: &'a mut [u8]) -> io::Result<Option<Received<'a>>> {
        let fd = self.sock.as_raw_fd();
        if self.primary.is_ipv4() {
            let n = match nix::unistd::read(&self.sock, buf) {
                Ok(n) => n,
                Err(nix::Error::EAGAIN | nix::Error::EINTR) => return Ok(None),
                Err(e) => return Err(nix_io(e)),
            };
            return Ok(ipv4_payload(buf.get(..n).unwrap_or(&[])).map(
                |(src, dst, ttl, payload)| Received {
                    src,
                    dst,
                    ttl,
                    payload,
                },
            ));
        }
        let (n, src, dst, ttl) = {
            let mut iov = [IoSliceMut::new(buf)];
            let m =
                match recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut self.cmsg), MsgFlags::empty())
                {
                    Ok(m) => m,
                    Err(nix::Error::EAGAIN | nix::Error::EINTR) => return Ok(None),
                    Err(e) => return Err(nix_io(e)),
                };
            let src = m.address.map(|a| IpAddr::V6(a.ip()));
            let (mut dst, mut ttl) = (None, None);
            if let Ok(cmsgs) = m.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::Ipv6PacketInfo(i) => {
                            dst = Some(IpAddr::V6(Ipv6Addr::from(i.ipi6_addr.s6_addr)));
                        }
                        ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).ok(),
                        _ => {}
                    }
                }
            }
            (m.bytes, src, dst, ttl)
        };
        let (Some(src), Some(dst), Some(ttl)) = (src, dst, ttl) else {
            return Ok(None);
        };
        Ok(Some(Received {
            src,
            dst,
            ttl,
            payload: buf.get(..n).unwrap_or(&[]),
        }))
    }
}

/// (src, dst, TTL, payload) of an IPv4 VRRP packet from a raw socket (IP header included).
pub fn ipv4_payload(p: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    let b0 = *p.first()?;
    if b0 >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(b0 & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
    if ihl < 20 || total < ihl || p.len() < total || p.get(9) != Some(&wire::IPPROTO_VRRP) {
        return None;
    }
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    Some((src, dst, p[8], &p[ihl..total]))
}

/// Link and address changes, as rtnetlink multicasts them (groups link, IPv4 and IPv6 addresses): the engine looks
/// at its tracked interfaces and held addresses when one arrives, instead of polling for them.
#[derive(Debug)]
pub struct LinkWatch {
    fd: std::os::fd::OwnedFd,
    buf: Vec<u8>,
}

impl LinkWatch {
    pub fn open() -> io::Result<Self> {
        use nix::sys::socket::{
            AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, socket,
        };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(nix_io)?;
        let groups =
            (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups)).map_err(nix_io)?;
        Ok(Self {
            fd,
            buf: vec![0; 16 << 10],
        })
    }

    /// Reads what is queued (bounded); true when anything was, or notifications were lost (ENOBUFS: look anyway).
    pub fn drain(&mut self) -> bool {
        let mut any = false;
        for _ in 0..256 {
            match nix::unistd::read(&self.fd, &mut self.buf) {
                Ok(0) => break,
                Ok(_) => any = true,
                Err(nix::Error::ENOBUFS) => any = true,
                Err(nix::Error::EINTR) => {}
                Err(_) => break,
            }
        }
        any
    }
}

impl AsRawFd for LinkWatch {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// The first IPv4 address of `ifn`.
pub fn ifaddr_v4(ifn: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        (a.interface_name == ifn)
            .then(|| a.address.and_then(|s| s.as_sockaddr_in().map(|s| s.ip())))
            .flatten()
    })
}

/// The IPv6 link-local address of `ifn` (fe80::/10), the source RFC 5798 asks for.
pub fn ifaddr_v6_link_local(ifn: &str) -> Option<Ipv6Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        (a.interface_name == ifn)
            .then(|| a.address.and_then(|s| s.as_sockaddr_in6().map(|s| s.ip())))
            .flatten()
            .filter(Ipv6Addr::is_unicast_link_local)
    })
}

/// Announces `addrs` on `ifn` as now ours: a gratuitous ARP for each IPv4 address, an unsolicited neighbour
/// advertisement (override) for each IPv6 one. Failures are logged: the next announcement repeats them.
pub fn announce(ifn: &str, addrs: &[IpAddr]) {
    let Some(index) = rvs_io::sys::ifindex(ifn) else {
        return;
    };
    let mac = rvs_io::netlink::Netlink::new()
        .ok()
        .and_then(|mut n| n.link_address(index).ok().flatten())
        .map(|(m, _)| m);
    let Some(mac) = mac else {
        tracing::warn!(interface = ifn, "VRRP: no link address to announce from");
        return;
    };
    if addrs.iter().any(IpAddr::is_ipv4) {
        match rvs_io::l2::L2Tx::new(rvs_io::Offload::Off) {
            Ok(tx) => {
                for a in addrs {
                    let IpAddr::V4(ip) = a else { continue };
                    let frame = wire::gratuitous_arp(mac, *ip);
                    let mut hop = rvs_io::l2::NextHop::new(
                        index,
                        1500,
                        [0xff; 6],
                        mac,
                        rvs_io::l2::EtherType::Ipv4,
                    );
                    hop.eth.copy_from_slice(&frame[..rvs_io::l2::ETH_HLEN]);
                    if let Err(e) = tx.send(
                        &hop,
                        &rvs_io::VnetHdr::default(),
                        &frame[rvs_io::l2::ETH_HLEN..],
                    ) {
                        tracing::warn!(address = %ip, error = %e, "gratuitous ARP not sent");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "gratuitous ARP: no packet socket"),
        }
    }
    if addrs.iter().any(IpAddr::is_ipv6)
        && let Err(e) = unsolicited_nas(ifn, index, mac, addrs)
    {
        tracing::warn!(interface = ifn, error = %e, "unsolicited neighbour advertisements not sent");
    }
}

fn unsolicited_nas(ifn: &str, index: u32, mac: [u8; 6], addrs: &[IpAddr]) -> io::Result<()> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    s.bind_device(Some(ifn.as_bytes()))?;
    s.set_multicast_hops_v6(255)?;
    s.set_multicast_if_v6(index)?;
    s.set_multicast_loop_v6(false)?;
    let ll = ifaddr_v6_link_local(ifn).unwrap_or(Ipv6Addr::UNSPECIFIED);
    let to: socket2::SockAddr = SocketAddr::from((ALL_NODES, 0)).into();
    for a in addrs {
        let IpAddr::V6(ip) = a else { continue };
        // The checksum is computed for the link-local source; the kernel recomputes it for the one it picks.
        let na = wire::unsolicited_na(mac, *ip, ll);
        if let Err(e) = s.send_to(&na, &to) {
            tracing::warn!(address = %ip, error = %e, "unsolicited neighbour advertisement not sent");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_packet_payload() {
        let mut p = vec![
            0x45, 0, 0, 32, 0, 0, 0, 0, 255, 112, 0, 0, 198, 51, 100, 1, 224, 0, 0, 18,
        ];
        p.extend_from_slice(&[0x21, 51, 100, 1, 0, 1, 0, 0, 1, 2, 3, 4]);
        let (s, d, ttl, pl) = ipv4_payload(&p).unwrap_or_else(|| panic!("parses"));
        assert_eq!(
            (s.to_string(), d.to_string(), ttl, pl.len()),
            ("198.51.100.1".into(), "224.0.0.18".into(), 255, 12)
        );
        p[9] = 6;
        assert!(ipv4_payload(&p).is_none());
        assert!(ipv4_payload(&p[..10]).is_none());
    }
}
