//! Seeing addresses on the wire without tcpdump: an AF_PACKET socket opened by a thread inside a namespace, bound to
//! one interface, recording the IPv4 TCP/UDP headers of what passes (both directions).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{LabError, Result};

/// One packet seen on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// IP protocol (6 TCP, 17 UDP).
    pub protocol: u8,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// Sent by this namespace (PACKET_OUTGOING) rather than received.
    pub outgoing: bool,
    /// The outer addresses when the packet was seen inside an IPIP tunnel (LVS-TUN); the fields above are the inner
    /// packet's.
    pub tunnel: Option<(Ipv4Addr, Ipv4Addr)>,
}

impl Seen {
    /// True for a TCP SYN without ACK.
    pub fn is_syn(&self) -> bool {
        self.protocol == 6 && self.tcp_flags & 0x12 == 0x02
    }
}

/// Parses an Ethernet frame carrying IPv4 TCP/UDP, directly or inside IPIP.
pub fn parse_frame(frame: &[u8], outgoing: bool) -> Option<Seen> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    off += 2;
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*frame.get(off + 2)?, *frame.get(off + 3)?]);
        off += 4;
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = frame.get(off..)?;
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    if ip[9] == 4 && u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0 {
        let outer = (
            Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        );
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let inner = parse_ip(ip.get(ihl..)?, outgoing)?;
        return Some(Seen {
            tunnel: Some(outer),
            ..inner
        });
    }
    parse_ip(ip, outgoing)
}

fn parse_ip(ip: &[u8], outgoing: bool) -> Option<Seen> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    let protocol = ip[9];
    if frag != 0 || (protocol != 6 && protocol != 17) {
        return None;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let l4 = ip.get(ihl..)?;
    let sport = u16::from_be_bytes([*l4.first()?, *l4.get(1)?]);
    let dport = u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]);
    let tcp_flags = if protocol == 6 { *l4.get(13)? } else { 0 };
    Some(Seen {
        protocol,
        src: SocketAddrV4::new(src, sport),
        dst: SocketAddrV4::new(dst, dport),
        tcp_flags,
        outgoing,
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
    let cname = std::ffi::CString::new(ifname)
        .map_err(|_| LabError::Invalid(format!("interface {ifname:?}")))?;
    // SAFETY: if_nametoindex reads a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(LabError::Io {
            context: format!("no interface {ifname}"),
            source: std::io::Error::last_os_error(),
        });
    }
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
    // SAFETY: setsockopt with a timeval and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(LabError::Io {
            context: "SO_RCVTIMEO".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(fd)
}

fn record(fd: &OwnedFd, stop: &AtomicBool, max: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
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
        let outgoing = from.sll_pkttype == libc::PACKET_OUTGOING;
        if let Some(s) = parse_frame(&buf[..n.min(buf.len())], outgoing) {
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
        let s = parse_frame(&f, true).expect("a TCP frame");
        assert_eq!(s.src, "198.51.100.10:40000".parse().expect("addr"));
        assert_eq!(s.dst, "198.51.100.100:80".parse().expect("addr"));
        assert!(s.is_syn() && s.outgoing);
        // Truncated and non-IP frames are ignored, never a panic.
        for n in 0..f.len() - 6 {
            let _ = parse_frame(&f[..n], false);
        }
        f[12] = 0x86;
        assert!(parse_frame(&f, false).is_none());
    }
}
