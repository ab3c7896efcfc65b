//! Destinations (real servers). Shared between the service table, schedulers and connections
//! through `Arc<Destination>`; everything that changes after creation is atomic, so the data plane
//! reads it without locks and a connection never points at freed state.
//!
//! SKELETON: the fields and accessors below are the contract the schedulers code against. The
//! core's owner extends this type (stats, thresholds, forwarding method), keeping these accessors.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A real server of one virtual service.
#[derive(Debug)]
pub struct Destination {
    addr: IpAddr,
    port: u16,
    weight: AtomicU32,
    active: AtomicU32,
    inactive: AtomicU32,
    persistent: AtomicU32,
    overloaded: AtomicBool,
}

impl Destination {
    /// A destination with the given weight and no connections.
    pub fn new(addr: IpAddr, port: u16, weight: u32) -> Self {
        Self {
            addr,
            port,
            weight: AtomicU32::new(weight),
            active: AtomicU32::new(0),
            inactive: AtomicU32::new(0),
            persistent: AtomicU32::new(0),
            overloaded: AtomicBool::new(false),
        }
    }

    /// Real server address (RIP).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Real server port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Current weight (0 = quiesced).
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Sets the weight (edit of a real server).
    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }

    /// Active connections (TCP ESTABLISHED), as `ipvsadm -L` shows them.
    pub fn active_conns(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Inactive connections (every other state).
    pub fn inactive_conns(&self) -> u32 {
        self.inactive.load(Ordering::Relaxed)
    }

    /// Persistence templates pointing at this destination.
    pub fn persistent_conns(&self) -> u32 {
        self.persistent.load(Ordering::Relaxed)
    }

    /// Above its upper connection threshold (and not yet back under the lower one).
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// IPVS's "available" rule for schedulers: weight > 0 and not overloaded.
    pub fn is_available(&self) -> bool {
        self.weight() > 0 && !self.is_overloaded()
    }

    /// Test helper and counter hook: sets the active/inactive counts directly.
    #[doc(hidden)]
    pub fn set_conn_counts(&self, active: u32, inactive: u32) {
        self.active.store(active, Ordering::Relaxed);
        self.inactive.store(inactive, Ordering::Relaxed);
    }

    /// Marks the destination overloaded or not (threshold logic lives in the connection table).
    pub fn set_overloaded(&self, overloaded: bool) {
        self.overloaded.store(overloaded, Ordering::Relaxed);
    }
}
