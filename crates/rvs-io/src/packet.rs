//! The packet I/O trait shared by all backends.

use std::io;
use std::time::Duration;

use crate::l2::NextHop;

/// Largest packet a backend hands over (a TUN without offloads never exceeds its MTU; 64 KiB covers any IP packet).
pub const MAX_PACKET: usize = 65536;

pub use crate::vnet::VnetHdr;

/// One caller-owned packet buffer: allocated once, reused for every packet.
#[derive(Debug)]
pub struct PacketBuf {
    data: Box<[u8]>,
    len: usize,
    /// The offload header read with the packet (all zero without offloads); written back with it.
    pub vnet: VnetHdr,
}

impl PacketBuf {
    /// A buffer holding packets of up to `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            data: vec![0; capacity].into_boxed_slice(),
            len: 0,
            vnet: VnetHdr::default(),
        }
    }

    /// The packet bytes.
    pub fn packet(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The packet bytes, mutable (rewrite in place).
    pub fn packet_mut(&mut self) -> &mut [u8] {
        &mut self.data[..self.len]
    }

    /// Length of the packet held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no packet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole buffer, for a backend to fill.
    pub fn storage_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Set the packet length after filling [`storage_mut`](Self::storage_mut) (clamped to the capacity).
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.data.len());
    }
}

/// What one round of [`PacketIo::run_batch`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Packets received and handed to the caller.
    pub received: usize,
    /// Packets the caller asked to send and that were handed to the kernel.
    pub sent: usize,
    /// Sends the kernel refused (no route, bad header, no memory): drops, not device failures. With a
    /// completion-based backend a refusal may be reported a round later than its packet.
    pub send_failed: usize,
}

/// What becomes of a packet the worker has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Dropped (the worker counted it).
    Drop,
    /// Sent back out of the device it came from (the TUN: the kernel routes it on).
    Send,
    /// Sent on the link to this next hop, through the queue's link-layer socket (see
    /// [`PacketIo::enable_link_tx`]); dropped and counted as a failed send when the queue has none.
    SendTo(NextHop),
}

/// A source and sink of IP packets (no link-layer header), used by one data-plane worker.
///
/// The backend owns the buffers (allocated once); the worker sees each packet in place, rewrites it, and says
/// where it goes. Implementations never allocate per packet; `run_batch` is the one place a worker sleeps.
pub trait PacketIo: Send {
    /// Wait up to `timeout` for packets, then hand each one received to `f` (the packet bytes, rewritable in place
    /// without changing their length, and its offload header, all zero without offloads) and do what it returns.
    /// An `Err` means the device itself failed.
    fn run_batch<F>(&mut self, timeout: Duration, f: F) -> io::Result<Batch>
    where
        F: FnMut(&mut [u8], &mut VnetHdr) -> Disposition;

    /// Open the queue's link-layer socket for [`Disposition::SendTo`] (with the queue's own offload setting).
    fn enable_link_tx(&mut self) -> io::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_len_is_clamped() {
        let mut b = PacketBuf::new(16);
        b.storage_mut()[..3].copy_from_slice(&[1, 2, 3]);
        b.set_len(3);
        assert_eq!(b.packet(), &[1, 2, 3]);
        b.set_len(100);
        assert_eq!(b.len(), 16);
    }
}
