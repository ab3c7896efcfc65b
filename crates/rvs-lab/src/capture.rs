//! Seeing addresses on the wire without tcpdump: an AF_PACKET socket opened by a thread inside a namespace, bound to
//! one interface, recording the IPv4 and IPv6 TCP/UDP headers of what passes (both directions), inside a tunnel too.
//! The headers are read through rvs-wire's views and its tunnel offsets (`encap::tunnel_inner_offset`), as rvsd and
//! the decapsulator read them; only the Ethernet header (type, one VLAN tag) is read here.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_wire::{Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket, proto};

use crate::error::{LabError, Result};

/// Bytes kept of each frame: the headers (Ethernet, an outer IPv6 header, GRE with its options, an inner IPv6
/// header, TCP: 138 at most) and nothing of the payload.
const SNAP: usize = 256;

/// One packet seen on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// IP protocol (6 TCP, 17 UDP).
    pub protocol: u8,
    /// IPv4 or IPv6 (IPv6 extension headers are not walked: such packets are not recorded).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// Sent by this namespace or received.
    pub direction: Direction,
    /// The outer addresses when the packet was seen inside a tunnel (LVS-TUN: IPIP, IPv6-in-IP, GRE; GUE is
    /// recorded as the UDP packet it is); the fields above are the inner packet's.
    pub tunnel: Option<(IpAddr, IpAddr)>,
}

/// Which way a captured packet crossed its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the capturing namespace (`PACKET_OUTGOING`).
    Outgoing,
    /// Received (any other packet type).
    Incoming,
}

impl Seen {
    /// True when this namespace sent the packet.
    pub fn is_outgoing(&self) -> bool {
        self.direction == Direction::Outgoing
    }

    /// True for a TCP SYN without ACK.
    pub fn is_syn(&self) -> bool {
        self.protocol == 6 && self.tcp_flags & 0x12 == 0x02
    }
}

/// Parses an Ethernet frame carrying IPv4 or IPv6 TCP/UDP, directly or inside one tunnel (IPIP, IPv6-in-IP or GRE,
/// in an IPv4 or IPv6 outer header).
pub fn parse_frame(frame: &[u8], direction: Direction) -> Option<Seen> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    off += 2;
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*frame.get(off + 2)?, *frame.get(off + 3)?]);
        off += 4;
    }
    if ethertype != 0x0800 && ethertype != 0x86dd {
        return None;
    }
    parse_ip(frame.get(off..)?, direction)
}

/// An IP packet's TCP/UDP header, also inside one level of tunnel (IPIP, IPv6-in-IP, GUE, GRE: then `tunnel` holds the
/// outer addresses).
fn parse_ip(ip: &[u8], direction: Direction) -> Option<Seen> {
    let (src, dst, protocol, l4) = ip_header(ip)?;
    let Some((_, inner)) = rvs_wire::encap::tunnel_inner_offset(protocol, l4) else {
        return transport(src, dst, protocol, l4, direction);
    };
    let (isrc, idst, iprotocol, il4) = ip_header(l4.get(inner..)?)?;
    Some(Seen {
        tunnel: Some((src, dst)),
        ..transport(isrc, idst, iprotocol, il4, direction)?
    })
}

/// Header sizes a snapped header must hold whole before its fields are read (rvs-wire's views read 0 past the end of
/// the buffer rather than fail, which suits a capture's snap, so the lengths are checked here).
mod min_len {
    pub const IPV4: usize = 20;
    pub const IPV6: usize = 40;
    pub const TCP: usize = 20;
    pub const UDP: usize = 8;
}

/// An IPv4 or IPv6 header (not a non-first fragment), read through rvs-wire's views: source, destination, protocol
/// and what follows the header. The views are not `new_checked`: a capture snaps frames at [`SNAP`] bytes, so the
/// length fields may point past what was read; only the header itself must be there.
fn ip_header(ip: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    match ip.first()? >> 4 {
        4 if ip.len() >= min_len::IPV4 => {
            let v4 = Ipv4Packet::new_unchecked(ip);
            if v4.frag_offset() != 0 || v4.header_len() < min_len::IPV4 {
                return None;
            }
            let (src, dst) = (v4.src_addr().into(), v4.dst_addr().into());
            Some((src, dst, v4.protocol(), ip.get(v4.header_len()..)?))
        }
        6 if ip.len() >= min_len::IPV6 => {
            let v6 = Ipv6Packet::new_unchecked(ip);
            let (src, dst) = (v6.src_addr().into(), v6.dst_addr().into());
            Some((src, dst, v6.next_header(), ip.get(min_len::IPV6..)?))
        }
        _ => None,
    }
}

/// The TCP or UDP header after an IP header, as seen (no tunnel), read through rvs-wire's views.
fn transport(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    l4: &[u8],
    direction: Direction,
) -> Option<Seen> {
    let (sport, dport, tcp_flags) = match protocol {
        proto::TCP if l4.len() >= min_len::TCP => {
            let tcp = TcpPacket::new_unchecked(l4);
            (tcp.src_port(), tcp.dst_port(), tcp.flags().bits())
        }
        proto::UDP if l4.len() >= min_len::UDP => {
            let udp = UdpPacket::new_unchecked(l4);
            (udp.src_port(), udp.dst_port(), 0)
        }
        _ => return None,
    };
    Some(Seen {
        protocol,
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        tcp_flags,
        direction,
        tunnel: None,
    })
}

fn open(ifname: &str) -> Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the returned fd is owned right below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(LabError::Io {
            context: "opening an AF_PACKET socket".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let ifindex = rvs_io::sys::ifindex(ifname).ok_or_else(|| LabError::Io {
        context: format!("no interface {ifname}"),
        source: std::io::Error::from_raw_os_error(libc::ENODEV),
    })?;
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = i32::try_from(ifindex).map_err(|_| LabError::Invalid("ifindex".into()))?;
    // SAFETY: bind with a properly initialised sockaddr_ll and its exact size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(LabError::Io {
            context: format!("binding AF_PACKET to {ifname}"),
            source: std::io::Error::last_os_error(),
        });
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    crate::sockopt::set(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
        .map_err(LabError::io("SO_RCVTIMEO"))?;
    Ok(fd)
}

fn record(fd: &OwnedFd, stop: &AtomicBool, max: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut buf = [0u8; SNAP];
    while !stop.load(Ordering::Acquire) && seen.len() < max {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: recvfrom into a live buffer of the given length and a sockaddr_ll with its size.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&raw mut from).cast(),
                &raw mut len,
            )
        };
        let Ok(n) = usize::try_from(n) else { continue }; // timeout (EAGAIN) or EINTR: check stop, go on
        let direction = if from.sll_pkttype == libc::PACKET_OUTGOING {
            Direction::Outgoing
        } else {
            Direction::Incoming
        };
        if let Some(s) = parse_frame(&buf[..n.min(buf.len())], direction) {
            seen.push(s);
        }
    }
    seen
}

/// A running capture on one interface of one namespace.
#[derive(Debug)]
pub struct Capture {
    pub label: String,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Vec<Seen>>>,
}

impl Capture {
    /// Starts capturing on `ifname` inside `ns`; returns once the socket is bound. Records at most `max` packets.
    pub fn start(ns: &str, ifname: &str, max: usize) -> Result<Capture> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Result<()>>();
        let (stop2, ifname2) = (stop.clone(), ifname.to_string());
        let handle = crate::netns::spawn_in(ns, move || {
            let fd = match open(&ifname2) {
                Ok(fd) => {
                    let _ = tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let msg = e.to_string();
                    let _ = tx.send(Err(e));
                    return Err(LabError::Process { what: msg });
                }
            };
            Ok(record(&fd, &stop2, max))
        })?;
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Capture {
                label: format!("{ns}/{ifname}"),
                stop,
                handle,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LabError::Timeout {
                what: format!("starting a capture on {ns}/{ifname}"),
                ms: 5000,
            }),
        }
    }

    /// Stops and returns what was seen.
    pub fn finish(self) -> Result<Vec<Seen>> {
        self.stop.store(true, Ordering::Release);
        self.handle.join().map_err(|_| LabError::Process {
            what: format!("capture thread {} panicked", self.label),
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn parses_a_tcp_syn_frame() {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&[198, 51, 100, 10]);
        f[14 + 16..14 + 20].copy_from_slice(&[198, 51, 100, 100]);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[34 + 13] = 0x02;
        let s = parse_frame(&f, Direction::Outgoing).expect("a TCP frame");
        assert_eq!(s.src, "198.51.100.10:40000".parse().expect("addr"));
        assert_eq!(s.dst, "198.51.100.100:80".parse().expect("addr"));
        assert!(s.is_syn() && s.is_outgoing());
        // Truncated and non-IP frames are ignored, never a panic.
        for n in 0..f.len() - 6 {
            let _ = parse_frame(&f[..n], Direction::Incoming);
        }
        f[12] = 0x86;
        assert!(parse_frame(&f, Direction::Incoming).is_none());
    }

    /// A TCP segment in IPv6, as is and inside IPv6-in-IPv6, IPv6-in-IPv4 and GRE (with a checksum) over IPv6.
    #[test]
    fn parses_ipv6_and_its_tunnels() {
        let (c, v) = ("2001:db8:0:3::10", "2001:db8:0:1::100");
        let mut inner = vec![0u8; 40 + 20];
        inner[0] = 0x60;
        inner[6] = 6;
        inner[8..24].copy_from_slice(&c.parse::<Ipv6Addr>().expect("addr").octets());
        inner[24..40].copy_from_slice(&v.parse::<Ipv6Addr>().expect("addr").octets());
        inner[40..42].copy_from_slice(&40000u16.to_be_bytes());
        inner[42..44].copy_from_slice(&80u16.to_be_bytes());
        inner[40 + 13] = 0x10;
        let frame = |ethertype: [u8; 2], ip: &[u8]| [&[0u8; 12][..], &ethertype, ip].concat();
        let plain =
            parse_frame(&frame([0x86, 0xdd], &inner), Direction::Incoming).expect("IPv6 TCP");
        assert_eq!(plain.src, format!("[{c}]:40000").parse().expect("addr"));
        assert_eq!(plain.dst, format!("[{v}]:80").parse().expect("addr"));
        assert_eq!((plain.tcp_flags, plain.tunnel), (0x10, None));

        let (o6s, o6d): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8:0:2::1".parse().expect("a"),
            "2001:db8:0:2::11".parse().expect("a"),
        );
        let outer6 = |next: u8, body: &[u8]| {
            let mut h = vec![0u8; 40];
            h[0] = 0x60;
            h[6] = next;
            h[8..24].copy_from_slice(&o6s.octets());
            h[24..40].copy_from_slice(&o6d.octets());
            [h, body.to_vec()].concat()
        };
        let six_in_six = parse_frame(
            &frame([0x86, 0xdd], &outer6(41, &inner)),
            Direction::Outgoing,
        )
        .expect("6in6");
        assert_eq!(six_in_six.tunnel, Some((o6s.into(), o6d.into())));
        assert_eq!((six_in_six.src, six_in_six.dst), (plain.src, plain.dst));
        let gre = [&[0x80u8, 0, 0x86, 0xdd, 0, 0, 0, 0][..], &inner].concat();
        let in_gre =
            parse_frame(&frame([0x86, 0xdd], &outer6(47, &gre)), Direction::Outgoing).expect("GRE");
        assert_eq!((in_gre.src, in_gre.tunnel.is_some()), (plain.src, true));

        let mut o4 = vec![0u8; 20];
        o4[0] = 0x45;
        o4[9] = 41;
        o4[12..16].copy_from_slice(&[203, 0, 113, 1]);
        o4[16..20].copy_from_slice(&[203, 0, 113, 11]);
        let six_in_four = parse_frame(
            &frame([8, 0], &[o4, inner.clone()].concat()),
            Direction::Outgoing,
        )
        .expect("6in4");
        assert_eq!(six_in_four.dst, plain.dst);
        assert_eq!(
            six_in_four.tunnel,
            Some((
                Ipv4Addr::new(203, 0, 113, 1).into(),
                Ipv4Addr::new(203, 0, 113, 11).into()
            ))
        );

        // Truncations never panic; a tunnel inside a tunnel is not unwrapped twice.
        let f = frame([0x86, 0xdd], &outer6(41, &outer6(41, &inner)));
        for n in 0..f.len() {
            let _ = parse_frame(&f[..n], Direction::Incoming);
        }
        assert!(parse_frame(&f, Direction::Incoming).is_none());
    }
}
