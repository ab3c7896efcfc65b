//! Schedulers: one small module each, all behind [`Scheduler`], created by name with
//! [`new_scheduler`]. Mirrors net/netfilter/ipvs/ip_vs_*.c: expensive tables (Maglev, source hash)
//! are rebuilt in [`Scheduler::update`] when destinations change, so scheduling is a lookup.
//!
//! SKELETON: the trait and the constructor signature are the contract between the schedulers and
//! the rest of the core.

use std::net::IpAddr;
use std::sync::Arc;

use crate::dest::Destination;
use crate::time::Timestamp;

/// What a scheduler may look at when it picks a destination for a new connection.
#[derive(Debug, Clone, Copy)]
pub struct SchedInput {
    /// Caller's clock (lblc/lblcr expire their tables with it).
    pub now: Timestamp,
    /// Transport protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub protocol: u8,
    /// Client address and port (source of the first packet).
    pub caddr: IpAddr,
    pub cport: u16,
    /// Virtual address and port (destination of the first packet).
    pub vaddr: IpAddr,
    pub vport: u16,
    /// A random value supplied by the caller (twos); schedulers never seed their own.
    pub random: u64,
}

/// Scheduler flags (`-b` / `--sched-flags`), IPVS's IP_VS_SVC_F_SCHED1..3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedFlags {
    /// sh-fallback / mh-fallback (flag-1).
    pub fallback: bool,
    /// sh-port / mh-port (flag-2).
    pub port: bool,
    /// flag-3 (unused by the stock schedulers, kept for round trips).
    pub flag3: bool,
}

/// Error creating a scheduler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    /// IPVS's message for an unknown scheduler name.
    #[error("Scheduler or persistence engine not found")]
    NotFound,
}

/// One scheduling algorithm's state for one virtual service.
pub trait Scheduler: Send + std::fmt::Debug {
    /// The name ipvsadm uses (`rr`, `wlc`, `mh`, ...).
    fn name(&self) -> &'static str;

    /// The destination list changed (added, removed, weight or threshold edited): rebuild tables.
    /// `dests` is the service's full list in configuration order.
    fn update(&mut self, dests: &[Arc<Destination>]);

    /// Picks a destination for a new connection: an index into `dests` (the same list last given
    /// to `update`), or `None` when no destination is available.
    fn schedule(&mut self, dests: &[Arc<Destination>], input: &SchedInput) -> Option<usize>;
}

/// Creates a scheduler by its ipvsadm name.
pub fn new_scheduler(name: &str, flags: SchedFlags) -> Result<Box<dyn Scheduler>, SchedError> {
    let _ = (name, flags);
    Err(SchedError::NotFound)
}
