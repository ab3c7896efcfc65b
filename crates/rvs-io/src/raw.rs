//! Routed transmit of complete IP packets through raw sockets (`IPPROTO_RAW`: the header is the caller's): the
//! kernel routes each packet by its destination, resolves the neighbour and fragments an IPv4 packet without DF
//! that is larger than the route's MTU. Used for tunnelled packets (the outer header is addressed to the real
//! server) and for the ICMP errors the director answers itself.
//!
//! [`RawBatch`] + [`RawTx::send_batch`]: a worker's tunnelled packets of one round leave with one `sendmmsg` (per
//! family) instead of a `sendto` each: a TCP super-packet segmented in software is ~45 packets, and the system call
//! was most of their cost (see rvsd's `xmit.rs` for the measurement).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One raw socket per family.
#[derive(Debug)]
pub struct RawTx {
    v4: OwnedFd,
    v6: Option<OwnedFd>,
}

/// Send buffer asked of each raw socket (best effort: needs CAP_NET_ADMIN): a batch of segments of a few super-packets
/// in flight at once must not find the default (~200 KB) full and be refused with `EAGAIN`.
const SNDBUF: libc::c_int = 8 << 20;

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
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let v: libc::c_int = SNDBUF;
    // SAFETY: setsockopt reads one c_int of the size passed, from a live local. Failure is harmless (the default
    // buffer stays), so its result is not checked.
    let _ = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Ok(fd)
}

/// The destination address of `pkt`, a complete IPv4 or IPv6 packet (`None`: neither).
fn destination(pkt: &[u8]) -> Option<IpAddr> {
    match pkt.first().map(|b| b >> 4) {
        Some(4) if pkt.len() >= 20 => Some(IpAddr::from([pkt[16], pkt[17], pkt[18], pkt[19]])),
        Some(6) if pkt.len() >= 40 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&pkt[24..40]);
            Some(IpAddr::from(a))
        }
        _ => None,
    }
}

/// `dst` as a socket address for `sendto`/`sendmmsg`, and its length.
fn sockaddr(dst: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match dst {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and at least as aligned as sockaddr_in (its purpose).
            let sa = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
            (ss, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        IpAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and at least as aligned as sockaddr_in6 (its purpose).
            let sa = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = a.octets();
            (ss, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

impl RawTx {
    /// Open the sockets (needs CAP_NET_RAW). IPv6 is optional: without it, IPv6 sends fail.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            v4: raw_socket(libc::AF_INET)?,
            v6: raw_socket(libc::AF_INET6).ok(),
        })
    }

    fn fd_for(&self, dst: IpAddr) -> Option<&OwnedFd> {
        match dst {
            IpAddr::V4(_) => Some(&self.v4),
            IpAddr::V6(_) => self.v6.as_ref(),
        }
    }

    /// Send `pkt`, a complete IPv4 or IPv6 packet, to its destination address. An error is the kernel refusing
    /// this packet (no route, too big with DF, no buffer space).
    pub fn send(&self, pkt: &[u8]) -> io::Result<()> {
        let dst = destination(pkt).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let fd = self
            .fd_for(dst)
            .ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
        let (sa, sa_len) = sockaddr(dst);
        // SAFETY: pkt and sa are valid for the call; the length arguments match them.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                libc::MSG_DONTWAIT,
                (&sa as *const libc::sockaddr_storage).cast(),
                sa_len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Send every packet of `batch` and empty it: one `sendmmsg` per run of packets of one family (more only
    /// when the kernel refuses one, which is skipped and counted). Returns (sent, refused).
    pub fn send_batch(&self, batch: &mut RawBatch) -> (usize, usize) {
        let (mut sent, mut refused) = (0, 0);
        let n = batch.count;
        let mut i = 0;
        while i < n {
            // The run [i, j) of packets with the same socket; a packet that is not IP is refused alone.
            let first = destination(batch.packet(i));
            let v6 = first.map(|d| d.is_ipv6());
            let mut j = i;
            while j < n {
                let d = destination(batch.packet(j));
                if d.is_none() || d.map(|d| d.is_ipv6()) != v6 {
                    break;
                }
                if let Some(d) = d {
                    batch.prepare(j, d);
                }
                j += 1;
            }
            let fd = first.and_then(|d| self.fd_for(d));
            let (Some(fd), true) = (fd, j > i) else {
                // Not an IP packet, or IPv6 without an IPv6 socket: refused.
                let skip = (j - i).max(1);
                refused += skip;
                i += skip;
                continue;
            };
            let mut p = i;
            while p < j {
                // SAFETY: hdrs[p..j] were prepared above: each points at its own iovec and address in `batch`, and
                // the iovec at its packet in `batch.buf`; none of them moves or changes during the call, which only
                // reads them (and writes msg_len).
                let rc = unsafe {
                    libc::sendmmsg(
                        fd.as_raw_fd(),
                        batch.hdrs[p..j].as_mut_ptr(),
                        (j - p) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc > 0 {
                    sent += rc as usize;
                    p += rc as usize;
                } else if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                {
                    continue;
                } else {
                    // The kernel refused the packet at p (no route, too big with DF, no buffer space): skip it.
                    refused += 1;
                    p += 1;
                }
            }
            i = j;
        }
        batch.clear();
        (sent, refused)
    }
}

/// Packets waiting to be sent with [`RawTx::send_batch`]: written back to back into one buffer made once, with the
/// `sendmmsg` headers, iovecs and addresses beside them, so a worker hands a round's packets to the kernel with one
/// system call instead of one `sendto` each. No allocation after [`new`](Self::new).
pub struct RawBatch {
    buf: Box<[u8]>,
    /// Bytes of `buf` in use.
    used: usize,
    /// (offset, length) of each packet in `buf`.
    spans: Box<[(usize, usize)]>,
    count: usize,
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    addrs: Box<[libc::sockaddr_storage]>,
}

// SAFETY: the raw pointers in `hdrs` and `iovs` point only into this value's own boxed slices (set in `prepare`,
// used in `send_batch` on the same thread that owns the value at that time).
unsafe impl Send for RawBatch {}

impl std::fmt::Debug for RawBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBatch")
            .field("capacity", &self.buf.len())
            .field("used", &self.used)
            .field("count", &self.count)
            .finish()
    }
}

impl RawBatch {
    /// A batch of up to `packets` packets and `bytes` bytes in all.
    pub fn new(bytes: usize, packets: usize) -> Self {
        // SAFETY: mmsghdr, iovec and sockaddr_storage are plain data (integers and raw pointers) for which all-zero
        // is valid.
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let zero_iov: libc::iovec = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        Self {
            buf: vec![0; bytes].into_boxed_slice(),
            used: 0,
            spans: vec![(0, 0); packets].into_boxed_slice(),
            count: 0,
            hdrs: vec![zero_hdr; packets].into_boxed_slice(),
            iovs: vec![zero_iov; packets].into_boxed_slice(),
            addrs: vec![zero_addr; packets].into_boxed_slice(),
        }
    }

    /// Where the next packet is written: the free end of the buffer (empty when no packet fits any more).
    pub fn tail(&mut self) -> &mut [u8] {
        if self.count == self.spans.len() {
            return &mut [];
        }
        &mut self.buf[self.used..]
    }

    /// Whether a packet of `len` bytes can be added.
    pub fn has_room(&self, len: usize) -> bool {
        self.count < self.spans.len() && self.buf.len() - self.used >= len
    }

    /// Add the `len` bytes just written at the start of [`tail`](Self::tail) as the next packet. `false` (nothing
    /// added) when they do not fit.
    pub fn push(&mut self, len: usize) -> bool {
        if !self.has_room(len) || len == 0 {
            return false;
        }
        self.spans[self.count] = (self.used, len);
        self.count += 1;
        self.used += len;
        true
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no packet waits.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Drop every waiting packet.
    pub fn clear(&mut self) {
        self.count = 0;
        self.used = 0;
    }

    /// Packet `i` (< `len()`).
    fn packet(&self, i: usize) -> &[u8] {
        let (off, len) = self.spans[i];
        &self.buf[off..off + len]
    }

    /// Point `sendmmsg` header `i` at packet `i` and its destination `dst`.
    fn prepare(&mut self, i: usize, dst: IpAddr) {
        let (off, len) = self.spans[i];
        let (sa, sa_len) = sockaddr(dst);
        self.addrs[i] = sa;
        self.iovs[i] = libc::iovec {
            iov_base: self.buf[off..].as_mut_ptr().cast(),
            iov_len: len,
        };
        let h = &mut self.hdrs[i];
        h.msg_len = 0;
        h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = sa_len;
        h.msg_hdr.msg_iov = &mut self.iovs[i];
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = std::ptr::null_mut();
        h.msg_hdr.msg_controllen = 0;
        h.msg_hdr.msg_flags = 0;
    }
}
