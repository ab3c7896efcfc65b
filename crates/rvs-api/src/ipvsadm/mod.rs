//! ipvsadm's dialect: its command line, its listings, its rules file and its name lookups, as
//! ipvsadm 1.31 has them (same syntax, same messages, same exit codes, same bytes out).
//!
//! One job per file:
//! * [`args`]: the option table and popt's rules (tokens -> option occurrences).
//! * [`legality`]: which options each command allows (`commands_v_options`, `tunnel_types_v_options`).
//! * [`numbers`]: C-style number and address parsing (`strtol`, `inet_aton`, `parse_service`).
//! * [`parse`]: one command line -> [`Action`], as collect (options and values), check (the tables
//!   and ipvsadm's cross-option rules), build (the [`Command`]).
//! * [`usage`]: the `-h` / `-v` texts.
//! * [`error`]: [`ParseError`], ipvsadm's message and exit status.
//! * [`listing`]: the `-L` formats, from API types to text.
//! * [`rules`]: the `-S` / `-R` rules file (parse into commands, format from services).
//! * [`resolve`]: host and service names (`/etc/hosts`, `/etc/services`), offline-safe.
//!
//! It lives in rvs-api, not rvsadm, because rvsd reads rules files (`--rules`, its save file) by
//! the same rules as `rvsadm -R`.

mod args;
mod error;
mod legality;
pub mod listing;
mod numbers;
mod parse;
pub mod resolve;
pub mod rules;
mod usage;

pub use args::{OptionArg, OptionInfo, options};
pub use error::{ParseError, try_help_line};
pub use numbers::{HostPort, inet_aton, parse_service};
pub use parse::{parse, parse_restore_line};
pub use usage::{usage, version};

use crate::types::{Command, ServiceKey};

/// Program name used in messages.
pub const PROGRAM: &str = "rvsadm";
/// ipvsadm's default scheduler (`DEF_SCHED`).
pub const DEF_SCHED: &str = "wlc";
/// Persistence timeout when `-p` has no value (`IPVS_SVC_PERSISTENT_TIMEOUT`, 6*60 in libipvs.h).
pub const DEF_PERSISTENT_TIMEOUT: u32 = 6 * 60;
/// Default weight of a real server.
pub const DEF_WEIGHT: u32 = 1;
/// Longest timeout accepted (`MAX_TIMEOUT`, 31 days).
pub const MAX_TIMEOUT: u32 = 86400 * 31;
/// Default sync-daemon multicast interface (`DEF_MCAST_IFN`).
pub const DEF_MCAST_IFN: &str = "eth0";

/// How a listing is printed (ipvsadm's `FMT_*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Format {
    pub numeric: bool,
    pub rule: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub nosort: bool,
    pub exact: bool,
    pub tun_info: bool,
}

/// What `-L` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListTarget {
    All,
    Service(ServiceKey),
    Connections,
    Timeout,
    Daemon,
}

/// The outcome of parsing one ipvsadm command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `-h`: print [`usage`] to stdout, exit 0.
    Help,
    /// `-v`: print [`version`] to stdout, exit 0.
    Version,
    /// `-L`/`-l` (or no argument).
    List { target: ListTarget, format: Format },
    /// `-S`
    Save { format: Format },
    /// `-R`
    Restore,
    /// A change for the director (`-A -E -D -C -Z -a -e -d --set --start-daemon --stop-daemon`).
    Apply(Command),
}
