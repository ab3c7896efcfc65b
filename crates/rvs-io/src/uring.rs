//! A TUN queue driven by io_uring: every buffer slot has a read posted in the kernel at all times, and one
//! `io_uring_enter` per round both sends the previous round's packets and waits for the next ones.
//!
//! Per slot the cycle is: read posted -> completed (the packet is in the slot) -> handed to the worker -> either a
//! write of the rewritten packet linked to a new read of the same slot (`IOSQE_IO_LINK`; the write's completion is
//! skipped on success), or straight back to a new read. So a round costs one system call whatever the batch size,
//! where the plain queue ([`TunQueue`](crate::TunQueue)) pays a `poll`, a `read` per packet, an empty `read` and a
//! `write` per packet.
//!
//! The ring is created lazily on the worker's own thread (a single-issuer ring with cooperative task work: completions run when the
//! worker enters the kernel, without interrupting it). The buffers are one allocation,
//! registered with the ring. The file is deliberately not registered: the kernel tears a ring down asynchronously,
//! and a registered file would keep the TUN device alive for a while after rvsd exits (or is killed), so a restarted
//! rvsd would find its interface name taken. Posted reads are cancelled when the process exits.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, squeue, types};

use crate::packet::{Batch, MAX_PACKET, PacketIo, VnetHdr};

/// Buffer slots per queue (reads kept posted).
pub const SLOTS: usize = 64;

/// What a completion belongs to: the low bit says read (0) or write (1), the rest is the slot.
const OP_WRITE: u64 = 1;
/// The registered buffer holding every slot.
const BUF_INDEX: u16 = 0;

/// One queue of a TUN device, read and written through io_uring. Built from a [`TunQueue`](crate::TunQueue) with
/// [`TunQueue::into_uring`](crate::TunQueue::into_uring).
pub struct UringTunQueue {
    fd: OwnedFd,
    vnet: bool,
    /// Bytes per slot: the virtio-net header (when used) and the largest packet.
    slot_len: usize,
    /// All slots, one allocation: slot `i` is `mem[i * slot_len..][..slot_len]`. Never moved or freed while a read
    /// may still write into it (see `Drop`).
    mem: Box<[u8]>,
    ring: Option<IoUring>,
    /// Reads posted and not yet completed.
    in_flight: usize,
}

impl std::fmt::Debug for UringTunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringTunQueue")
            .field("fd", &self.fd)
            .field("vnet", &self.vnet)
            .field("ring", &self.ring.is_some())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl AsRawFd for UringTunQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Whether io_uring can be used here (a ring can be created: the kernel has it and `kernel.io_uring_disabled`
/// allows it).
pub fn available() -> bool {
    IoUring::new(2).is_ok()
}

impl UringTunQueue {
    /// Wrap a TUN queue fd (switched to blocking mode: io_uring then waits for packets instead of failing with
    /// `EAGAIN`). `vnet`: packets carry a virtio-net header.
    pub(crate) fn new(fd: OwnedFd, vnet: bool) -> io::Result<Self> {
        set_blocking(&fd)?;
        let slot_len = MAX_PACKET + if vnet { VnetHdr::LEN } else { 0 };
        Ok(Self {
            fd,
            vnet,
            slot_len,
            mem: vec![0u8; slot_len * SLOTS].into_boxed_slice(),
            ring: None,
            in_flight: 0,
        })
    }

    fn slot_ptr(&mut self, slot: usize) -> *mut u8 {
        // In bounds: slot < SLOTS and mem holds SLOTS slots.
        self.mem[slot * self.slot_len..].as_mut_ptr()
    }

    /// Create the ring (on the calling thread, which becomes its only submitter), register the file and the
    /// buffers, and post a read in every slot.
    fn start(&mut self) -> io::Result<()> {
        let entries = (2 * SLOTS) as u32;
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .build(entries)
            .or_else(|_| IoUring::new(entries))?;
        let iov = libc::iovec {
            iov_base: self.mem.as_mut_ptr().cast(),
            iov_len: self.mem.len(),
        };
        // SAFETY: the registered region is `mem`, which lives (unmoved: a boxed slice) as long as the ring: `Drop`
        // tears the ring down before `mem` is freed.
        unsafe { ring.submitter().register_buffers(&[iov])? };
        self.ring = Some(ring);
        for slot in 0..SLOTS {
            let e = self.read_entry(slot);
            self.push(&[e])?;
            self.in_flight += 1;
        }
        Ok(())
    }

    fn read_entry(&mut self, slot: usize) -> squeue::Entry {
        let len = self.slot_len as u32;
        opcode::ReadFixed::new(types::Fd(self.fd.as_raw_fd()), self.slot_ptr(slot), len, BUF_INDEX)
            .build()
            .user_data((slot as u64) << 1)
    }

    /// Queue entries (submitting first when the queue is full: at most two entries per slot are ever queued, and
    /// the ring holds that many, so one submit always makes room).
    fn push(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        let Some(ring) = self.ring.as_mut() else {
            return Err(io::Error::other("io_uring not started"));
        };
        loop {
            // SAFETY: every entry points into `mem` (registered, alive until the ring is gone) with a length within
            // its slot; the slot is not touched by us again until the entry's completion is seen.
            if unsafe { ring.submission().push_multiple(entries) }.is_ok() {
                return Ok(());
            }
            ring.submit()?;
        }
    }
}

fn set_blocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an fd we own; no pointers.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl PacketIo for UringTunQueue {
    fn run_batch<F>(&mut self, timeout: Duration, mut f: F) -> io::Result<Batch>
    where
        F: FnMut(&mut [u8], &mut VnetHdr) -> bool,
    {
        if self.ring.is_none() {
            self.start()?;
        }
        let mut batch = Batch::default();
        let mut first_err: Option<io::Error> = None;
        // Send what the last round queued, and wait for at least one completion (or the timeout).
        {
            let Some(ring) = self.ring.as_mut() else {
                return Ok(batch);
            };
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&ts);
            match ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => {}
                Err(e) => return Err(e),
            }
        }
        // Take the completions out first (the ring is borrowed while iterating), then act on them.
        let mut done = [(0u64, 0i32); 2 * SLOTS];
        let mut n = 0;
        if let Some(ring) = self.ring.as_mut() {
            for cqe in ring.completion().take(done.len()) {
                done[n] = (cqe.user_data(), cqe.result());
                n += 1;
            }
        }
        for &(data, res) in &done[..n] {
            let slot = (data >> 1) as usize;
            if slot >= SLOTS {
                continue;
            }
            if data & OP_WRITE != 0 {
                // Only failed writes complete (success is skipped); the linked read comes back cancelled.
                batch.send_failed += 1;
                continue;
            }
            self.in_flight -= 1;
            let read = self.read_entry(slot);
            if res <= 0 {
                // Cancelled after a failed write, interrupted, or a read error: post the slot again.
                if res < 0
                    && !matches!(-res, libc::ECANCELED | libc::EAGAIN | libc::EINTR)
                    && first_err.is_none()
                {
                    first_err = Some(io::Error::from_raw_os_error(-res));
                }
                self.push(&[read])?;
                self.in_flight += 1;
                continue;
            }
            batch.received += 1;
            let len = res as usize;
            let off = slot * self.slot_len;
            let buf = &mut self.mem[off..off + len.min(self.slot_len)];
            let send = if self.vnet {
                if buf.len() < VnetHdr::LEN {
                    false
                } else {
                    let (h, pkt) = buf.split_at_mut(VnetHdr::LEN);
                    let mut vnet = VnetHdr([0; VnetHdr::LEN]);
                    vnet.0.copy_from_slice(h);
                    let send = f(pkt, &mut vnet);
                    h.copy_from_slice(&vnet.0);
                    send
                }
            } else {
                let mut vnet = VnetHdr::default();
                f(buf, &mut vnet)
            };
            if send {
                let ptr = self.slot_ptr(slot);
                let write = opcode::WriteFixed::new(types::Fd(self.fd.as_raw_fd()), ptr, len as u32, BUF_INDEX)
                    .build()
                    .user_data(((slot as u64) << 1) | OP_WRITE)
                    .flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS);
                self.push(&[write, read])?;
                batch.sent += 1;
            } else {
                self.push(&[read])?;
            }
            self.in_flight += 1;
        }
        match first_err {
            Some(e) if batch.received == 0 => Err(e),
            _ => Ok(batch),
        }
    }
}

impl Drop for UringTunQueue {
    fn drop(&mut self) {
        let Some(mut ring) = self.ring.take() else {
            return;
        };
        // Reads still posted would write into `mem` after it is freed: cancel them all and wait until each has
        // completed. If that does not finish in time, leak the buffers rather than risk it.
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(u64::MAX);
        // SAFETY: a cancel request carries no buffer.
        let _ = unsafe { ring.submission().push(&cancel) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.in_flight > 0 && Instant::now() < deadline {
            let ts = types::Timespec::from(Duration::from_millis(50));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = ring.submitter().submit_with_args(1, &args);
            for cqe in ring.completion() {
                let data = cqe.user_data();
                if data != u64::MAX && data & OP_WRITE == 0 {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
            }
        }
        if self.in_flight > 0 {
            std::mem::forget(std::mem::take(&mut self.mem));
        } else {
            let _ = ring.submitter().unregister_buffers();
        }
        drop(ring);
    }
}
