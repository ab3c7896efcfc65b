//! A TUN queue driven by io_uring: one multishot read stays armed on the queue and fills buffers from a provided
//! buffer ring, so a round of packets costs one `io_uring_enter` to wait (plus one to send, when there is
//! something to send), where the plain queue ([`TunQueue`](crate::TunQueue)) pays a `poll`, a `read` per packet,
//! an empty `read` and a `write` per packet.
//!
//! Why one multishot read and not many posted reads: every posted read waits on the TUN queue's wait queue, and
//! a packet wakes them all; one succeeds and the others fail with `EAGAIN` and re-arm (measured: a third of the
//! worker's time). A multishot read is one waiter that reads as long as there are packets and buffers.
//!
//! Buffers: `SLOTS` slots of one allocation, registered with the ring (writes use them as fixed buffers) and
//! offered to the kernel through a provided-buffer ring. A slot is either in the buffer ring (the kernel may read
//! into it), or holds a packet being handled, or is being written; it goes back to the buffer ring when the write
//! completes (or at once when the packet is dropped).
//!
//! The ring is created lazily on the worker's own thread, a single-issuer ring with cooperative task work
//! (completions run when the worker enters the kernel, without interrupting it). The file is deliberately not
//! registered: the kernel tears a ring down asynchronously, and a registered file would keep the TUN device alive
//! for a while after rvsd exits or is killed, so a restarted rvsd would find its interface name taken.

use std::alloc::Layout;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::l2::{L2Tx, LinkMsg};
use crate::packet::{Batch, Disposition, MAX_PACKET, PacketIo, VnetHdr};
use crate::vnet::Offload;

/// Buffer slots per queue (a power of two: the size of the provided-buffer ring).
pub const SLOTS: usize = 64;

/// `user_data` of the multishot read.
const READ: u64 = u64::MAX - 1;
/// `user_data` of a cancel request.
const CANCEL: u64 = u64::MAX;
/// The provided-buffer group.
const BGID: u16 = 0;
/// The registered buffer holding every slot.
const BUF_INDEX: u16 = 0;
/// Submit-and-reap passes in one `run_batch` before it returns to the caller.
const MAX_PASSES: usize = 8;
/// Page alignment the kernel requires of a buffer ring.
const PAGE: usize = 4096;

/// The provided-buffer ring: `SLOTS` entries of 16 bytes in page-aligned memory shared with the kernel. The tail
/// is the last 16-bit field of entry 0.
struct BufRing {
    ptr: NonNull<types::BufRingEntry>,
    /// Entries added locally, published by [`publish`](Self::publish).
    tail: u16,
}

impl BufRing {
    fn layout() -> Layout {
        // SLOTS * 16 bytes rounded up to a page; both are nonzero powers of two.
        Layout::from_size_align((SLOTS * size_of::<types::BufRingEntry>()).max(PAGE), PAGE)
            .unwrap_or_else(|_| Layout::new::<[u8; PAGE]>())
    }

    fn new() -> io::Result<Self> {
        // SAFETY: the layout has a nonzero size.
        let raw = unsafe { std::alloc::alloc_zeroed(Self::layout()) };
        let ptr = NonNull::new(raw.cast::<types::BufRingEntry>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Self { ptr, tail: 0 })
    }

    /// Offer buffer `bid` (`len` bytes at `addr`) to the kernel (visible after `publish`).
    fn add(&mut self, addr: *mut u8, len: u32, bid: u16) {
        let idx = usize::from(self.tail) & (SLOTS - 1);
        // SAFETY: idx < SLOTS, within the allocation; the kernel only reads entries up to the published tail, and
        // this one is past it until `publish`.
        let e = unsafe { &mut *self.ptr.as_ptr().add(idx) };
        e.set_addr(addr as u64);
        e.set_len(len);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Make the added entries visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field lies inside entry 0 of our allocation, is 2-byte aligned, and is only ever accessed
        // atomically by us (store) and the kernel (load-acquire).
        let tail = unsafe { &*types::BufRingEntry::tail(self.ptr.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the owner unregisters the ring from the kernel first (or
        // leaks it when it cannot).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), Self::layout()) };
    }
}

/// One queue of a TUN device, read and written through io_uring. Built from a [`TunQueue`](crate::TunQueue) with
/// [`TunQueue::into_uring`](crate::TunQueue::into_uring).
pub struct UringTunQueue {
    fd: OwnedFd,
    offload: Offload,
    /// Bytes per slot: the virtio-net header (when used) and the largest packet.
    slot_len: usize,
    /// All slots, one allocation: slot `i` is `mem[i * slot_len..][..slot_len]`. Never moved or freed while the
    /// kernel may still use it (see `Drop`).
    mem: Box<[u8]>,
    ring: Option<IoUring>,
    bufs: Option<BufRing>,
    /// The multishot read is armed (its last completion had `F_MORE`).
    armed: bool,
    /// Writes submitted and not yet completed.
    writes_in_flight: usize,
    /// Entries queued since the last submit.
    queued: usize,
    /// Link-layer transmit for [`Disposition::SendTo`], with one message per slot (alive until its send completes).
    link: Option<(L2Tx, Box<[LinkMsg]>)>,
}

// SAFETY: the raw pointers (the buffer ring) point into memory this value owns; it is used by one thread at a time.
unsafe impl Send for UringTunQueue {}

impl std::fmt::Debug for UringTunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringTunQueue")
            .field("fd", &self.fd)
            .field("offload", &self.offload)
            .field("started", &self.ring.is_some())
            .field("armed", &self.armed)
            .field("writes_in_flight", &self.writes_in_flight)
            .finish()
    }
}

impl AsRawFd for UringTunQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Whether io_uring can be used here: a ring can be created (the kernel has it and `kernel.io_uring_disabled`
/// allows it) and it knows the multishot read (Linux 6.7).
pub fn available() -> bool {
    let Ok(ring) = IoUring::new(2) else {
        return false;
    };
    let mut probe = io_uring::register::Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok()
        && probe.is_supported(opcode::ReadMulti::CODE)
        && probe.is_supported(opcode::WriteFixed::CODE)
}

impl UringTunQueue {
    /// Wrap a TUN queue fd whose packets carry a virtio-net header or not (`offload`).
    pub(crate) fn new(fd: OwnedFd, offload: Offload) -> io::Result<Self> {
        let slot_len = MAX_PACKET + offload.header_len();
        Ok(Self {
            fd,
            offload,
            slot_len,
            mem: vec![0u8; slot_len * SLOTS].into_boxed_slice(),
            ring: None,
            bufs: None,
            armed: false,
            writes_in_flight: 0,
            queued: 0,
            link: None,
        })
    }

    fn slot_ptr(&mut self, slot: usize) -> *mut u8 {
        // In bounds: callers pass slot < SLOTS and mem holds SLOTS slots.
        self.mem[slot * self.slot_len..].as_mut_ptr()
    }

    /// Give slot `bid` back to the kernel (published with the next `publish`).
    fn recycle(&mut self, bid: u16) {
        let len = self.slot_len as u32;
        let addr = self.slot_ptr(usize::from(bid));
        if let Some(b) = self.bufs.as_mut() {
            b.add(addr, len, bid);
        }
    }

    /// Create the ring (on the calling thread, its only submitter), register the slots as a fixed buffer and as
    /// the provided-buffer ring, and arm the read.
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
        // SAFETY: the registered region is `mem`, which lives (unmoved: a boxed slice) until `Drop` has torn the
        // ring down or leaked it.
        unsafe { ring.submitter().register_buffers(&[iov])? };
        let bufs = BufRing::new()?;
        // SAFETY: the buffer ring is SLOTS entries of page-aligned memory owned by `self.bufs`, unregistered in
        // `Drop` before it is freed.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.ptr.as_ptr() as u64,
                SLOTS as u16,
                BGID,
                0,
            )?
        };
        self.ring = Some(ring);
        self.bufs = Some(bufs);
        for bid in 0..SLOTS as u16 {
            self.recycle(bid);
        }
        if let Some(b) = &self.bufs {
            b.publish();
        }
        self.arm()
    }

    /// Queue the multishot read.
    fn arm(&mut self) -> io::Result<()> {
        let read = opcode::ReadMulti::new(types::Fd(self.fd.as_raw_fd()), 0, BGID)
            .build()
            .user_data(READ);
        self.push(&read)?;
        self.armed = true;
        Ok(())
    }

    /// Queue an entry (submitting first when the queue is full).
    fn push(&mut self, e: &squeue::Entry) -> io::Result<()> {
        let Some(ring) = self.ring.as_mut() else {
            return Err(io::Error::other("io_uring not started"));
        };
        loop {
            // SAFETY: entries point into `mem` (registered, alive until the ring is gone) within one slot, and the
            // slot is not touched again until the entry's completion is seen.
            if unsafe { ring.submission().push(e) }.is_ok() {
                self.queued += 1;
                return Ok(());
            }
            ring.submit()?;
            self.queued = 0;
        }
    }

    /// Submit what is queued; with `wait`, also wait for a completion or the timeout.
    fn enter(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let Some(ring) = self.ring.as_mut() else {
            return Ok(());
        };
        let r = match wait {
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                ring.submitter().submit_with_args(1, &args)
            }
            None => ring.submit(),
        };
        self.queued = 0;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Handle every completion ready now; returns whether there were any.
    fn reap<F>(
        &mut self,
        f: &mut F,
        batch: &mut Batch,
        err: &mut Option<io::Error>,
    ) -> io::Result<bool>
    where
        F: FnMut(&mut [u8], &mut VnetHdr) -> Disposition,
    {
        // Copy the completions out first (the ring is borrowed while iterating), then act on them.
        let mut done = [(0u64, 0i32, 0u32); 2 * SLOTS];
        let mut n = 0;
        if let Some(ring) = self.ring.as_mut() {
            for cqe in ring.completion().take(done.len()) {
                done[n] = (cqe.user_data(), cqe.result(), cqe.flags());
                n += 1;
            }
        }
        for &(data, res, flags) in &done[..n] {
            match data {
                READ => {
                    if !cqueue::more(flags) {
                        self.armed = false;
                    }
                    let bid = cqueue::buffer_select(flags);
                    match bid {
                        Some(bid) if res > 0 && usize::from(bid) < SLOTS => {
                            batch.received += 1;
                            self.handle(bid, res as usize, f, batch)?;
                        }
                        Some(bid) if usize::from(bid) < SLOTS => self.recycle(bid),
                        _ => {}
                    }
                    // ENOBUFS: every slot is busy; the read is re-armed below once slots come back.
                    if res < 0
                        && !matches!(
                            -res,
                            libc::ENOBUFS | libc::EAGAIN | libc::EINTR | libc::ECANCELED
                        )
                    {
                        err.get_or_insert(io::Error::from_raw_os_error(-res));
                    }
                }
                CANCEL => {}
                bid => {
                    // A write finished: its slot goes back to the kernel.
                    self.writes_in_flight = self.writes_in_flight.saturating_sub(1);
                    if res < 0 {
                        batch.send_failed += 1;
                    }
                    if (bid as usize) < SLOTS {
                        self.recycle(bid as u16);
                    }
                }
            }
        }
        if n > 0
            && let Some(b) = &self.bufs
        {
            b.publish();
        }
        Ok(n > 0)
    }

    /// Hand the packet in slot `bid` to `f`; queue its write or recycle it.
    fn handle<F>(&mut self, bid: u16, len: usize, f: &mut F, batch: &mut Batch) -> io::Result<()>
    where
        F: FnMut(&mut [u8], &mut VnetHdr) -> Disposition,
    {
        let off = usize::from(bid) * self.slot_len;
        let len = len.min(self.slot_len);
        let buf = &mut self.mem[off..off + len];
        let (d, vnet) = if self.offload == Offload::VnetHdr {
            if buf.len() < VnetHdr::LEN {
                (Disposition::Drop, VnetHdr::default())
            } else {
                let (h, pkt) = buf.split_at_mut(VnetHdr::LEN);
                let mut vnet = VnetHdr::default();
                vnet.as_bytes_mut().copy_from_slice(h);
                let d = f(pkt, &mut vnet);
                h.copy_from_slice(vnet.as_bytes());
                (d, vnet)
            }
        } else {
            let mut vnet = VnetHdr::default();
            (f(buf, &mut vnet), vnet)
        };
        let ptr = self.slot_ptr(usize::from(bid));
        let entry = match d {
            Disposition::Drop => None,
            Disposition::Send => Some(
                opcode::WriteFixed::new(types::Fd(self.fd.as_raw_fd()), ptr, len as u32, BUF_INDEX)
                    .build(),
            ),
            Disposition::SendTo(hop) => match self.link.as_mut() {
                Some((tx, msgs)) => {
                    // The packet follows the offload header in the slot (when there is one).
                    let skip = self.offload.header_len();
                    let pkt_len = len - skip;
                    // SAFETY: skip <= len <= slot_len, so the packet lies within the slot.
                    let pkt = unsafe { ptr.add(skip) };
                    let msg =
                        msgs[usize::from(bid)].prepare(tx.offload(), &hop, &vnet, pkt, pkt_len);
                    Some(
                        opcode::SendMsg::new(types::Fd(tx.as_raw_fd()), msg)
                            .flags(libc::MSG_DONTWAIT as u32)
                            .build(),
                    )
                }
                None => {
                    batch.send_failed += 1;
                    None
                }
            },
        };
        match entry {
            None => self.recycle(bid),
            Some(e) => {
                self.push(&e.user_data(u64::from(bid)))?;
                self.writes_in_flight += 1;
                batch.sent += 1;
            }
        }
        Ok(())
    }
}

impl PacketIo for UringTunQueue {
    fn run_batch<F>(&mut self, timeout: Duration, mut f: F) -> io::Result<Batch>
    where
        F: FnMut(&mut [u8], &mut VnetHdr) -> Disposition,
    {
        if self.ring.is_none() {
            self.start()?;
        }
        let mut batch = Batch::default();
        let mut err = None;
        // Wait for packets (or write completions), then handle them; send what they produced and handle what that
        // completed in turn, until nothing is left to send (at most a few passes, so the caller regains control).
        // Each pass is one io_uring_enter.
        self.enter(Some(timeout))?;
        let mut passes = 0;
        while self.reap(&mut f, &mut batch, &mut err)? {
            passes += 1;
            if !self.armed {
                self.arm()?;
            }
            if self.queued == 0 || passes == MAX_PASSES {
                break;
            }
            self.enter(None)?;
        }
        if !self.armed {
            self.arm()?;
        }
        match err {
            Some(e) if batch.received == 0 => Err(e),
            _ => Ok(batch),
        }
    }

    fn enable_link_tx(&mut self) -> io::Result<()> {
        let msgs = (0..SLOTS).map(|_| LinkMsg::default()).collect();
        self.link = Some((L2Tx::new(self.offload)?, msgs));
        Ok(())
    }
}

impl Drop for UringTunQueue {
    fn drop(&mut self) {
        let Some(mut ring) = self.ring.take() else {
            return;
        };
        // The kernel may still read into the slots (the armed read) or from them (writes): cancel the read and
        // wait until nothing is in flight. If that does not finish in time, leak the memory rather than risk it.
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(CANCEL);
        // SAFETY: a cancel request carries no buffer.
        let _ = unsafe { ring.submission().push(&cancel) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while (self.armed || self.writes_in_flight > 0) && Instant::now() < deadline {
            let ts = types::Timespec::from(Duration::from_millis(50));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = ring.submitter().submit_with_args(1, &args);
            for cqe in ring.completion() {
                match cqe.user_data() {
                    READ if !cqueue::more(cqe.flags()) => self.armed = false,
                    READ | CANCEL => {}
                    _ => self.writes_in_flight = self.writes_in_flight.saturating_sub(1),
                }
            }
        }
        if self.armed || self.writes_in_flight > 0 {
            std::mem::forget(std::mem::take(&mut self.mem));
            std::mem::forget(self.bufs.take());
            std::mem::forget(self.link.take());
        } else {
            let _ = ring.submitter().unregister_buf_ring(BGID);
            let _ = ring.submitter().unregister_buffers();
        }
        drop(ring);
    }
}
