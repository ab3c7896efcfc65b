//! The backup's side: filter and validate received messages (ip_vs_process_message,
//! ip_vs_proc_sync_conn) and hand each entry to the director through [`SyncTarget`], counting
//! every outcome. I/O-free: the caller owns the socket.

use crate::SyncError;
use crate::wire::{self, SyncConn, flags};

const TCP: u8 = 6;
const UDP: u8 = 17;
/// `IP_VS_TCP_S_LAST`.
const TCP_STATES: u16 = 11;
/// `IP_VS_UDP_S_LAST`.
const UDP_STATES: u16 = 1;

/// What the director did with one synced entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// A new connection or template.
    Created,
    /// A known one took the message's state, flags and timeout.
    Updated,
    /// A known connection to another real server was replaced (ip_vs_proc_conn expires it).
    Replaced,
}

/// Why a valid entry changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skipped {
    /// No configured virtual service matches (rvs never creates connections for those).
    #[error("no virtual service for the synced connection")]
    NoService,
    /// The service has no such real server.
    #[error("no such real server in the virtual service")]
    NoDestination,
    /// The closing message of a connection that was already replaced (kernel: ignored).
    #[error("stale update for a replaced connection")]
    Stale,
    /// Protocol or address family this director does not handle.
    #[error("unsupported protocol or family")]
    Unsupported,
    /// Connection table full.
    #[error("connection table full")]
    TableFull,
}

/// The director as the backup sees it.
pub trait SyncTarget {
    /// Installs or updates one entry (flags already masked with [`flags::BACKUP_MASK`], plus
    /// [`flags::SYNC`]; a template's state 0).
    fn install(&mut self, c: &SyncConn<'_>) -> Result<Installed, Skipped>;
}

/// Counters of a backup (all monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveCounters {
    /// Messages accepted (syncid matched, parsed).
    pub messages: u64,
    /// Datagrams that did not parse (dropped whole).
    pub bad_messages: u64,
    /// Datagrams for another syncid.
    pub foreign_syncid: u64,
    /// Version-0 messages accepted.
    pub v0_messages: u64,
    pub created: u64,
    pub updated: u64,
    pub replaced: u64,
    pub no_service: u64,
    pub no_destination: u64,
    pub stale: u64,
    /// Unsupported protocol or family.
    pub unsupported: u64,
    /// State number out of range for the protocol.
    pub bad_state: u64,
    pub table_full: u64,
}

/// A backup sync receiver.
#[derive(Debug)]
pub struct Receiver {
    /// 0 = accept every syncid (as the kernel).
    syncid: u8,
    counters: ReceiveCounters,
}

impl Receiver {
    /// A receiver for `syncid` (0: every syncid).
    pub fn new(syncid: u8) -> Self {
        Self {
            syncid,
            counters: ReceiveCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> ReceiveCounters {
        self.counters
    }

    /// Handles one datagram. A datagram that does not parse, or carries another syncid, changes
    /// nothing (counted); otherwise every entry is validated and offered to `target`.
    pub fn receive(&mut self, buf: &[u8], target: &mut impl SyncTarget) -> Result<(), SyncError> {
        let mut conns = Vec::new();
        let hdr = match wire::parse(buf, &mut conns) {
            Ok(h) => h,
            Err(e) => {
                self.counters.bad_messages += 1;
                return Err(e);
            }
        };
        if self.syncid != 0 && hdr.syncid != self.syncid {
            self.counters.foreign_syncid += 1;
            return Err(SyncError::ForeignSyncid(hdr.syncid));
        }
        self.counters.messages += 1;
        if hdr.version == wire::Version::V0 {
            self.counters.v0_messages += 1;
        }
        for mut c in conns {
            let template = c.flags & flags::TEMPLATE != 0;
            c.flags = (c.flags & flags::BACKUP_MASK) | flags::SYNC;
            if template {
                c.state = 0;
            } else {
                let states = match c.protocol {
                    TCP => TCP_STATES,
                    UDP => UDP_STATES,
                    _ => {
                        self.counters.unsupported += 1;
                        continue;
                    }
                };
                if c.state >= states {
                    self.counters.bad_state += 1;
                    continue;
                }
            }
            let k = &mut self.counters;
            match target.install(&c) {
                Ok(Installed::Created) => k.created += 1,
                Ok(Installed::Updated) => k.updated += 1,
                Ok(Installed::Replaced) => k.replaced += 1,
                Err(Skipped::NoService) => k.no_service += 1,
                Err(Skipped::NoDestination) => k.no_destination += 1,
                Err(Skipped::Stale) => k.stale += 1,
                Err(Skipped::Unsupported) => k.unsupported += 1,
                Err(Skipped::TableFull) => k.table_full += 1,
            }
        }
        Ok(())
    }
}
