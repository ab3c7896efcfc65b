//! rvs-core: the director itself, I/O-free and time-free.
//!
//! Time, randomness and seeds are arguments; nothing here reads a clock, a socket or a file.
//!
//! - [`Director`]: virtual services (RCU snapshots), the sharded connection table with IPVS's
//!   TCP state machine and timeouts, persistence templates, counters and rate estimates, and
//!   [`Director::process`], the packet path (masq rewrite in place).
//! - [`sched`]: the schedulers.

pub mod config;
mod conn;
pub mod dest;
mod director;
pub mod sched;
pub mod service;
mod stats;
mod table;
pub mod tcp;
mod template;
#[cfg(test)]
mod director_tests;
pub mod time;
pub mod verdict;

pub use config::{ConfigError, ConfigOp, TimeoutUpdate, Timeouts};
pub use dest::Destination;
pub use director::{
    ConnSnapshot, DestSnapshot, Director, DirectorConfig, MemoryUsage, ServiceSnapshot,
};
pub use sched::SchedFlags;
pub use service::{
    DestSpec, ForwardMethod, Persistence, Protocol, ServiceKey, ServiceSpec, TunnelConfig,
    TunnelCsum, TunnelKind,
};
pub use stats::{Rates, Stats};
pub use tcp::TcpState;
pub use time::Timestamp;
pub use verdict::{Direction, DropCounters, DropReason, Verdict};

#[cfg(test)]
mod static_checks {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn director_is_send_sync() {
        assert_send_sync::<crate::Director>();
    }
}
