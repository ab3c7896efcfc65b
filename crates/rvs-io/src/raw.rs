//! Routed transmit of complete IP packets through raw sockets (`IPPROTO_RAW`: the header is the caller's): the
//! kernel routes each packet by its destination, resolves the neighbour and fragments an IPv4 packet without DF
//! that is larger than the route's MTU. Used for tunnelled packets (the outer header is addressed to the real
//! server) and for the ICMP errors the director answers itself.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One raw socket per family.
#[derive(Debug)]
pub struct RawTx {
    v4: OwnedFd,
    v6: Option<OwnedFd>,
}

fn raw_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() has no pointer arguments.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl RawTx {
    /// Open the sockets (needs CAP_NET_RAW). IPv6 is optional: without it, IPv6 sends fail.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            v4: raw_socket(libc::AF_INET)?,
            v6: raw_socket(libc::AF_INET6).ok(),
        })
    }

    /// Send `pkt`, a complete IPv4 or IPv6 packet, to its destination address. An error is the kernel refusing
    /// this packet (no route, too big with DF, no buffer space).
    pub fn send(&self, pkt: &[u8]) -> io::Result<()> {
        let dst = match pkt.first().map(|b| b >> 4) {
            Some(4) if pkt.len() >= 20 => IpAddr::from([pkt[16], pkt[17], pkt[18], pkt[19]]),
            Some(6) if pkt.len() >= 40 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&pkt[24..40]);
                IpAddr::from(a)
            }
            _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
        };
        let rc = match dst {
            IpAddr::V4(a) => {
                // SAFETY: all-zero is a valid sockaddr_in.
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                // SAFETY: pkt and sa are valid for the call; the length arguments match them.
                unsafe {
                    libc::sendto(
                        self.v4.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        libc::MSG_DONTWAIT,
                        (&sa as *const libc::sockaddr_in).cast(),
                        size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
            }
            IpAddr::V6(a) => {
                let Some(fd) = &self.v6 else {
                    return Err(io::Error::from(io::ErrorKind::Unsupported));
                };
                // SAFETY: all-zero is a valid sockaddr_in6.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = a.octets();
                // SAFETY: pkt and sa are valid for the call; the length arguments match them.
                unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        pkt.as_ptr().cast(),
                        pkt.len(),
                        libc::MSG_DONTWAIT,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            }
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A raw socket receiving one IP protocol (for a user-space decapsulator: IPIP, IPv6-in-IP, GRE). An IPv4 socket
/// receives whole packets (IP header first); an IPv6 socket receives the payload only. Its existence also stops
/// the kernel from answering the protocol with "protocol unreachable".
#[derive(Debug)]
pub struct RawRx {
    fd: OwnedFd,
}

impl RawRx {
    /// Open a socket for `protocol` in IPv4 (`v6` false) or IPv6, with a receive timeout of `timeout`.
    pub fn open(v6: bool, protocol: u8, timeout: std::time::Duration) -> io::Result<Self> {
        let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: socket() has no pointer arguments.
        let fd = unsafe {
            libc::socket(
                family,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::c_int::from(protocol),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by socket() and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        // SAFETY: setsockopt reads a timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    /// Receive one packet into `buf`: its length, or `Ok(None)` when the timeout passed.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: buf is a valid writable region of buf.len() bytes for the call.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(None)
            }
            _ => Err(e),
        }
    }
}
