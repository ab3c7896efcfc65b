//! The packet I/O trait shared by all backends.

use std::io;
use std::time::Duration;

/// Largest packet a backend hands over (a TUN without offloads never exceeds its MTU; 64 KiB covers any IP packet).
pub const MAX_PACKET: usize = 65536;

/// One caller-owned packet buffer: allocated once, reused for every packet.
#[derive(Debug)]
pub struct PacketBuf {
    data: Box<[u8]>,
    len: usize,
}

impl PacketBuf {
    /// A buffer holding packets of up to `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            data: vec![0; capacity].into_boxed_slice(),
            len: 0,
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

/// A source and sink of IP packets (no link-layer header), used by one data-plane worker.
///
/// Implementations never allocate per packet and never block in `recv_batch`/`send_batch`; `wait_readable` is the
/// one place a worker sleeps.
pub trait PacketIo: Send {
    /// Receive up to `bufs.len()` packets into `bufs[..n]`; returns `n` (0 when nothing is ready).
    fn recv_batch(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize>;

    /// Send the packets `bufs`; returns how many were accepted. A packet the kernel refuses (e.g. no route) counts
    /// as sent-and-dropped; an `Err` means the device itself failed.
    fn send_batch(&mut self, bufs: &[&PacketBuf]) -> io::Result<usize>;

    /// Send one packet.
    fn send(&mut self, pkt: &[u8]) -> io::Result<()>;

    /// Sleep until a packet can be read or `timeout` passed; returns whether a packet is ready.
    fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool>;
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
