//! rvs-api: the control protocol shared by `rvsd` and `rvsadm`, plus ipvsadm's command line and
//! rules-file (`ipvsadm -S`) formats.
//!
//! * Transport: a Unix stream socket ([`socket_path`]); newline-delimited JSON, one [`Request`] line
//!   answered by one [`Response`] line ([`framing`], [`client::Client`]).
//! * Types: [`types`] (re-exported at the crate root) are the protocol's serde types and also the
//!   stable schema of `rvsadm --json` (documented in this crate's README.md).
//! * [`ipvsadm`]: the other half, ipvsadm's dialect in its own folder: the command line
//!   (argv -> [`Command`]), its listings, the `ipvsadm -S` rules file and name resolution,
//!   shared by rvsadm and by rules-file loading in rvsd. [`listing`], [`rules`] and [`resolve`]
//!   are re-exported here under their old paths.

pub mod client;
pub mod error;
pub mod framing;
pub mod ipvsadm;
pub mod types;

pub use ipvsadm::{listing, resolve, rules};

pub use error::{ApiError, ErrorCode};
pub use types::*;

use std::path::PathBuf;

/// Version of the control protocol carried in every [`Request`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Default control socket path (when `RVS_SOCKET` is not set).
pub const DEFAULT_SOCKET: &str = "/run/rvsd.sock";

/// Environment variable naming the control socket.
pub const SOCKET_ENV: &str = "RVS_SOCKET";

/// The control socket path: `$RVS_SOCKET`, else [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}
