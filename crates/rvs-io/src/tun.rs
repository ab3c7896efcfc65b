//! A multi-queue TUN device: `IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE`, one nonblocking fd per queue.
//!
//! The device is not persistent: it disappears when the last queue is closed, so a crashed rvsd never leaves it
//! behind.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::l2::L2Tx;
use crate::packet::{Batch, Disposition, MAX_PACKET, PacketBuf, PacketIo, VnetHdr};
use crate::uring::UringTunQueue;
use crate::vnet::Offload;

/// Errors creating a TUN device.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error(
        "/dev/net/tun is missing: load the tun module (modprobe tun) or give the namespace the device"
    )]
    NoDevice,
    #[error(
        "permission denied opening /dev/net/tun or creating {0}: rvsd must run as root (CAP_NET_ADMIN)"
    )]
    NotPermitted(String),
    #[error("interface name {0:?} is invalid (1 to 15 bytes, no '/', ':' or whitespace)")]
    BadName(String),
    #[error(
        "interface {0} already exists (another rvsd running, or a name clash): choose another with --tun"
    )]
    Exists(String),
    #[error("at least one queue is needed")]
    NoQueues,
    #[error("creating TUN queue on {name}: {source}")]
    Io { name: String, source: io::Error },
}

const IFNAMSIZ: usize = 16;

/// How long [`TunDevice::create_with`] waits for an interface of the same name to go away.
const EXISTS_GRACE: Duration = Duration::from_secs(1);

/// `struct ifreq` as TUNSETIFF reads it: the name and the flags (the rest of the 40-byte union is padding).
#[repr(C)]
struct IfReqFlags {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Validate an interface name the way the kernel does (dev_valid_name).
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

/// A TUN device and its queues.
#[derive(Debug)]
pub struct TunDevice {
    name: String,
}

impl TunDevice {
    /// Create the device `name` with `queues` queues. Refuses if an interface of that name already exists (it would
    /// otherwise attach to another process's TUN).
    pub fn create(name: &str, queues: usize) -> Result<(TunDevice, Vec<TunQueue>), TunError> {
        Self::create_with(name, queues, Offload::Off)
    }

    /// Like [`create`](Self::create); with [`Offload::VnetHdr`], the queues use `IFF_VNET_HDR` and the device takes checksum
    /// and TCP segmentation offload (`TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`): TCP super-packets of up to 64 KB
    /// cross the TUN in one read/write, with partial checksums (see [`VnetHdr`]).
    pub fn create_with(
        name: &str,
        queues: usize,
        offload: Offload,
    ) -> Result<(TunDevice, Vec<TunQueue>), TunError> {
        if !valid_ifname(name) {
            return Err(TunError::BadName(name.to_owned()));
        }
        if queues == 0 {
            return Err(TunError::NoQueues);
        }
        // A TUN goes away when its last queue is closed; after a crash of an io_uring-driven rvsd the kernel closes
        // the queues asynchronously, shortly after the process is gone. So a name still in use is given a moment.
        let deadline = std::time::Instant::now() + EXISTS_GRACE;
        while crate::sys::ifindex(name).is_some() {
            if std::time::Instant::now() >= deadline {
                return Err(TunError::Exists(name.to_owned()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = Vec::with_capacity(queues);
        for _ in 0..queues {
            out.push(open_queue(name, offload)?);
        }
        Ok((
            TunDevice {
                name: name.to_owned(),
            },
            out,
        ))
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn open_queue(name: &str, offload: Offload) -> Result<TunQueue, TunError> {
    let path = CString::new("/dev/net/tun").map_err(|_| TunError::NoDevice)?;
    // SAFETY: path is a valid NUL-terminated string; open has no other preconditions.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => TunError::NoDevice,
            Some(libc::EPERM) | Some(libc::EACCES) => TunError::NotPermitted(name.to_owned()),
            _ => TunError::Io {
                name: name.to_owned(),
                source: e,
            },
        });
    }
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReqFlags {
        name: [0; IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    let vnet = match offload {
        Offload::Off => 0,
        Offload::VnetHdr => libc::IFF_VNET_HDR,
    };
    req.flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE | vnet) as libc::c_short;
    // SAFETY: TUNSETIFF reads a struct ifreq (40 bytes, IfReqFlags has that layout) and writes the name back into it;
    // req lives across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReqFlags) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => TunError::NotPermitted(name.to_owned()),
            Some(libc::EBUSY) | Some(libc::EEXIST) | Some(libc::EINVAL) => {
                TunError::Exists(name.to_owned())
            }
            _ => TunError::Io {
                name: name.to_owned(),
                source: e,
            },
        });
    }
    if offload == Offload::VnetHdr {
        let features = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of TUN_F_* bits).
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(features),
            )
        };
        if rc < 0 {
            return Err(TunError::Io {
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(TunQueue {
        fd,
        offload,
        bufs: Vec::new(),
        link: None,
    })
}

/// One queue of a TUN device: a nonblocking fd. Reading yields one IP packet, writing injects one.
#[derive(Debug)]
pub struct TunQueue {
    fd: OwnedFd,
    /// Whether each packet is preceded by a [`VnetHdr`].
    offload: Offload,
    /// Buffers for one batch (allocated on the first batch, reused after).
    bufs: Vec<PacketBuf>,
    /// Link-layer transmit for [`Disposition::SendTo`].
    link: Option<L2Tx>,
}

/// Packets read per batch by the plain (system call per packet) queue.
pub const BATCH: usize = 64;

impl AsRawFd for TunQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl TunQueue {
    fn read_one(&self, b: &mut PacketBuf) -> io::Result<Option<usize>> {
        loop {
            let mut hdr = [0u8; VnetHdr::LEN];
            let buf = b.storage_mut();
            let n = if self.offload == Offload::VnetHdr {
                let iov = [
                    libc::iovec {
                        iov_base: hdr.as_mut_ptr().cast(),
                        iov_len: hdr.len(),
                    },
                    libc::iovec {
                        iov_base: buf.as_mut_ptr().cast(),
                        iov_len: buf.len(),
                    },
                ];
                // SAFETY: both iovecs point to valid writable regions of the stated lengths for the call.
                unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) }
            } else {
                // SAFETY: buf is a valid writable region of buf.len() bytes for the duration of the call.
                unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
            };
            if n >= 0 {
                let n = n as usize;
                if self.offload == Offload::VnetHdr {
                    b.vnet = VnetHdr::from_bytes(hdr);
                    return Ok(Some(n.saturating_sub(VnetHdr::LEN)));
                }
                return Ok(Some(n));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        }
    }

    fn write_one(&self, b: &PacketBuf) -> io::Result<()> {
        self.write_parts(&b.vnet, b.packet())
    }

    /// One write: `vnet` (on a queue with offload headers; ignored otherwise), then `pkt`.
    fn write_parts(&self, vnet: &VnetHdr, pkt: &[u8]) -> io::Result<()> {
        loop {
            let n = if self.offload == Offload::VnetHdr {
                let iov = [
                    libc::iovec {
                        iov_base: vnet.as_bytes().as_ptr() as *mut libc::c_void,
                        iov_len: VnetHdr::LEN,
                    },
                    libc::iovec {
                        iov_base: pkt.as_ptr() as *mut libc::c_void,
                        iov_len: pkt.len(),
                    },
                ];
                // SAFETY: both iovecs point to valid readable regions of the stated lengths; writev only reads.
                unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) }
            } else {
                // SAFETY: pkt is a valid readable region of pkt.len() bytes for the duration of the call.
                unsafe { libc::write(self.fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) }
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The kernel refused this one packet (bad header, no buffer): a drop, not a device failure.
                Some(libc::EINVAL) | Some(libc::EAGAIN) | Some(libc::ENOBUFS)
                | Some(libc::ENOMEM) => {
                    return Err(io::Error::new(io::ErrorKind::WouldBlock, e));
                }
                _ => return Err(e),
            }
        }
    }
}

impl TunQueue {
    /// Inject one IP packet (as if it arrived on the device) on a queue without offload headers.
    pub fn send(&self, pkt: &[u8]) -> io::Result<()> {
        self.write_parts(&VnetHdr::default(), pkt)
    }

    /// Inject one IP packet with its offload header, on a queue created with offload
    /// ([`TunDevice::create_with`]): a TCP super-packet (`gso_type`) or a partial checksum (`NEEDS_CSUM`) enters
    /// whole, as a NIC's GRO would hand it up (the lab's user-space decapsulator passes merged tunnel frames on
    /// this way). On a queue without offload headers `vnet` is not written.
    pub fn send_with(&self, vnet: &VnetHdr, pkt: &[u8]) -> io::Result<()> {
        self.write_parts(vnet, pkt)
    }

    /// This queue driven by io_uring instead of a system call per packet (see [`UringTunQueue`]).
    pub fn into_uring(self) -> io::Result<UringTunQueue> {
        let mut q = UringTunQueue::new(self.fd, self.offload)?;
        if self.link.is_some() {
            q.enable_link_tx()?;
        }
        Ok(q)
    }

    fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: pfd is one valid pollfd; nfds = 1 matches.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
    }
}

impl PacketIo for TunQueue {
    fn run_batch<F>(&mut self, timeout: Duration, mut f: F) -> io::Result<Batch>
    where
        F: FnMut(&mut [u8], &mut VnetHdr) -> Disposition,
    {
        if self.bufs.is_empty() {
            self.bufs = (0..BATCH).map(|_| PacketBuf::new(MAX_PACKET)).collect();
        }
        let mut bufs = std::mem::take(&mut self.bufs);
        let r = self.batch_with(&mut bufs, timeout, &mut f);
        self.bufs = bufs;
        r
    }

    fn enable_link_tx(&mut self) -> io::Result<()> {
        self.link = Some(L2Tx::new(self.offload)?);
        Ok(())
    }
}

impl TunQueue {
    fn batch_with<F>(
        &self,
        bufs: &mut [PacketBuf],
        timeout: Duration,
        f: &mut F,
    ) -> io::Result<Batch>
    where
        F: FnMut(&mut [u8], &mut VnetHdr) -> Disposition,
    {
        let mut batch = Batch::default();
        let mut n = 0;
        for b in bufs.iter_mut() {
            match self.read_one(b)? {
                Some(len) => {
                    b.set_len(len);
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 {
            self.wait_readable(timeout)?;
            return Ok(batch);
        }
        batch.received = n;
        for b in &mut bufs[..n] {
            let mut vnet = b.vnet;
            let d = f(b.packet_mut(), &mut vnet);
            b.vnet = vnet;
            match d {
                Disposition::Drop => {}
                Disposition::Send => match self.write_one(b) {
                    Ok(()) => batch.sent += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => batch.send_failed += 1,
                    Err(e) => return Err(e),
                },
                Disposition::SendTo(hop) => match &self.link {
                    Some(tx) if tx.send(&hop, &b.vnet, b.packet()).is_ok() => batch.sent += 1,
                    _ => batch.send_failed += 1,
                },
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_validation() {
        assert!(valid_ifname("rvs0"));
        assert!(valid_ifname("abcdefghijklmno"));
        assert!(!valid_ifname("abcdefghijklmnop"));
        assert!(!valid_ifname(""));
        assert!(!valid_ifname("a/b"));
        assert!(!valid_ifname("a b"));
        assert!(!valid_ifname(".."));
    }

    #[test]
    fn ifreq_layout_is_40_bytes() {
        assert_eq!(std::mem::size_of::<IfReqFlags>(), 40);
    }
}
