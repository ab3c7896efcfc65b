//! Schedulers: one small module each, all behind [`Scheduler`], created by name with
//! [`new_scheduler`]. Mirrors net/netfilter/ipvs/ip_vs_*.c: expensive tables (Maglev, source hash)
//! are rebuilt in [`Scheduler::update`] when destinations change, so scheduling is a lookup.
//!
//! Shared rules (as in IPVS):
//! - a destination is *available* when its weight is > 0 and it is not overloaded (upper
//!   connection threshold); every scheduler skips unavailable destinations;
//! - the connection overhead of a destination is `active * 256 + inactive`
//!   (`ip_vs_dest_conn_overhead`);
//! - load comparisons `loh / lw > doh / dw` are done by cross-multiplication, without division.
//!
//! `schedule()` never allocates on its common path and never panics; an empty or fully
//! unavailable list gives `None`. The two locality schedulers (lblc, lblcr) allocate only when
//! they learn a new destination address (a new cache entry).
//!
//! Where rvs deviates from the kernel the module documentation of the scheduler says so. In short:
//! - dh: bucket = `hash_32(fold(daddr), 8)` instead of the low 8 bits of `daddr * 2654435761`;
//! - mh: a splitmix64-style keyed mixer instead of hsiphash (same table size 4093, same
//!   permutation/population, GCD and shift of weights, last-weight handling, fallback walk);
//! - twos: weight-proportional draws from `[0, total)` (the kernel's `[0, total]` favours the
//!   first destination by one unit); the two draws come from the caller's random value;
//! - lblc: a remembered destination is also left when its threshold-overload flag is set;
//! - lblc/lblcr: the kernel's 60 s garbage-collection timer runs inside `schedule()` when
//!   [`SchedInput::now`] passes the next check time;
//! - sh, wrr, rr, lc, wlc, sed, nq, fo, ovf, lblcr: kernel semantics (sh even its hash).

use std::net::IpAddr;
use std::sync::Arc;

use crate::dest::Destination;
use crate::time::Timestamp;

mod common;
mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

#[cfg(test)]
mod tests;

pub use dh::Dh;
pub use fo::Fo;
pub use lblc::Lblc;
pub use lblcr::Lblcr;
pub use lc::Lc;
pub use mh::Mh;
pub use nq::Nq;
pub use ovf::Ovf;
pub use rr::Rr;
pub use sed::Sed;
pub use sh::Sh;
pub use twos::Twos;
pub use wlc::Wlc;
pub use wrr::Wrr;

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

pub use crate::service::SchedFlags;

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

/// Every scheduler name [`new_scheduler`] knows (the stock IPVS schedulers).
pub const SCHEDULER_NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// Creates a scheduler by its ipvsadm name. The flags matter to sh and mh only.
pub fn new_scheduler(name: &str, flags: SchedFlags) -> Result<Box<dyn Scheduler>, SchedError> {
    let s: Box<dyn Scheduler> = match name {
        "rr" => Box::new(Rr::new()),
        "wrr" => Box::new(Wrr::new()),
        "lc" => Box::new(Lc::new()),
        "wlc" => Box::new(Wlc::new()),
        "lblc" => Box::new(Lblc::new()),
        "lblcr" => Box::new(Lblcr::new()),
        "dh" => Box::new(Dh::new()),
        "sh" => Box::new(Sh::new(flags)),
        "sed" => Box::new(Sed::new()),
        "nq" => Box::new(Nq::new()),
        "fo" => Box::new(Fo::new()),
        "ovf" => Box::new(Ovf::new()),
        "mh" => Box::new(Mh::new(flags)),
        "twos" => Box::new(Twos::new()),
        _ => return Err(SchedError::NotFound),
    };
    Ok(s)
}
