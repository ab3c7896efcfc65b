//! rvs-sync: IPVS connection synchronisation, wire-compatible with the kernel
//! (net/netfilter/ipvs/ip_vs_sync.c), I/O-free.
//!
//! - [`wire`]: the sync message format, version 1 (built and parsed) and version 0 (parsed):
//!   [`parse`] validates a whole datagram into [`SyncConn`]s or rejects it whole;
//!   [`MessageBuilder`] writes version-1 messages up to `sync_maxlen`.
//! - [`master`]: which connections the master sends and when ([`Exporter`]), and packing them
//!   into messages ([`Packer`]).
//! - [`backup`]: what a backup does with a datagram ([`Receiver`]): syncid filter, validation,
//!   installation through the director ([`SyncTarget`]), counted outcomes.
//!
//! # IPVS semantics kept
//! - Default group 224.0.0.81, port 8848; message and entry layouts byte for byte (fixtures in
//!   `tests/fixtures.rs` written from the kernel's structs); version 1 sent, version 0 read
//!   (dispatch on `reserved == 0 && version == 1 && spare == 0`); options: sequence data (24
//!   bytes, big-endian), persistence-engine data (<= 255) and name (<= 16), each at most once,
//!   unknown options skipped only when marked optional (`IPVS_OPT_F_PARAM`).
//! - Messages pack entries 4-byte aligned up to `sync_maxlen` bytes, at most 255 entries, and go
//!   out when full or 2 s after their first entry.
//! - Backup: syncid 0 accepts all; flags masked with `IP_VS_CONN_F_BACKUP_MASK` plus `SYNC`;
//!   entries with an unknown protocol or a state out of range are skipped (counted), templates
//!   take state 0; a synced connection whose real server differs from a known one replaces it
//!   unless the message marks it inactive (a late closing message: ignored).
//! - Master: the kernel's rules of ip_vs_sync_conn_needed for TCP states, forced sends on state
//!   change, `sync_refresh_period`, `sync_retries`, `sync_persist_mode` ([`master`]).
//!
//! # Differences
//! - A datagram is validated whole before any entry is applied (the kernel applies entries up to
//!   the first bad one); entries must end exactly at `size`, inter-entry padding must be zero,
//!   and an entry's type must be exactly 0 or 1.
//! - A synced connection for which no configured virtual service and real server exist is not
//!   created (the kernel creates it unbound); it is counted as a drop.
//! - The master walks its connection table instead of counting packets per connection:
//!   `sync_threshold` / `sync_period` have no equivalent; `sync_refresh_period` defaults to 10 s.
//! - Version-0 sequence data is read little-endian (the kernel copies the sender's host order).
#![forbid(unsafe_code)]

pub mod backup;
pub mod master;
pub mod wire;

pub use backup::{Installed, ReceiveCounters, Receiver, Skipped, SyncTarget};
pub use master::{ExportPolicy, Exporter, Packer};
pub use wire::{
    DEFAULT_GROUP, DEFAULT_PORT, Header, MessageBuilder, PushError, Seq, SeqOptions, SyncConn,
    Version, flags, parse,
};

/// Why a datagram was rejected (whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Shorter than its header or than an entry it announces.
    #[error("sync message truncated")]
    Truncated,
    /// The header's size disagrees with the datagram's length.
    #[error("sync message size {size} but datagram of {len} bytes")]
    BadSize { size: u16, len: usize },
    /// An entry's size runs past the message.
    #[error("sync entry runs past the message")]
    EntryOverrun,
    /// An entry's size is smaller than its fixed part.
    #[error("sync entry shorter than its fixed part")]
    EntryTooShort,
    /// An entry of an unknown version.
    #[error("sync entry version {0}")]
    EntryVersion(u8),
    /// An entry of an unknown type.
    #[error("sync entry type {0}")]
    EntryType(u8),
    /// A malformed, oversized or repeated option.
    #[error("bad sync entry option")]
    BadOption,
    /// A mandatory option this receiver does not know.
    #[error("unknown mandatory sync option {0}")]
    UnknownOption(u8),
    /// Non-zero padding between entries.
    #[error("non-zero padding between sync entries")]
    BadPadding,
    /// Bytes after the last entry.
    #[error("{0} bytes after the last sync entry")]
    TrailingBytes(usize),
    /// Another syncid than the backup's.
    #[error("sync message for syncid {0}")]
    ForeignSyncid(u8),
}
