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
