//! rvs-core: the director itself, I/O-free and time-free.
//!
//! Time, randomness and seeds are arguments; nothing here reads a clock, a socket or a file.
//!
//! - [`Director`]: virtual services (RCU snapshots), the sharded connection table with IPVS's
//!   TCP state machine and timeouts, persistence templates, counters and rate estimates, and
//!   [`Director::process`], the packet path (masq rewrite in place).
//! - [`sched`]: the schedulers.
//!
//! # IPVS semantics kept
//! - Connections are keyed both ways (in: caddr:cport -> vaddr:vport; out: daddr:dport ->
//!   caddr:cport) in a table sharded by hash(protocol, caddr, cport), one lock per shard.
//! - TCP follows ip_vs_proto_tcp.c's state table ([`tcp`]); a connection counts as *active* in
//!   ESTABLISHED only, *inactive* otherwise (UDP is always inactive); new TCP connections are
//!   scheduled only on SYN (without RST); a SYN on a TIME_WAIT connection starts a new one
//!   (conn_reuse_mode=1). Every packet re-reads its state's timeout (`--set` applies at the next
//!   packet) and pushes the deadline to now + timeout.
//! - Destinations: weight 0 = quiesced (keeps its connections); the upper threshold marks a
//!   destination overloaded until it drops under the lower one (3/4 of the upper one if 0). A
//!   deleted destination's connections stay and keep forwarding until they expire
//!   (expire_nodest_conn=0); a deleted service's connections and templates are removed.
//! - Persistence templates (caddr masked by `-M`, vport 0 for port-0 services) live for the
//!   service's timeout after their last new connection and never expire while they still
//!   control connections; a template whose destination was deleted is replaced. Templates
//!   count in the destination's persistent counter only.
//! - Counters per service and destination, rate estimates as ip_vs_est.c (2 s samples,
//!   `avg += (rate - avg) >> 2`, rates x2^10, byte rates x2^5).
//! - Masq rewrites in place (VIP->RIP in, RIP->VIP out); ICMP errors about a tracked connection
//!   are translated, quoted header included. Route/tunnel destinations are stored (their
//!   connections tracked) but their packets are dropped as [`DropReason::UnsupportedMethod`].
//! - Differences: fwmark services are stored but never matched (no mark reaches
//!   [`Director::process`]); SCTP services are stored only; a re-added destination is a fresh
//!   object (IPVS would revive it from its trash).

pub mod config;
mod conn;
pub mod dest;
mod director;
#[cfg(test)]
mod director_tests;
pub mod sched;
pub mod service;
mod stats;
mod table;
pub mod tcp;
mod template;
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
