//! rvs-core: the director itself, I/O-free and time-free.
//!
//! Time, randomness and seeds are arguments; nothing here reads a clock, a socket or a file.

pub mod dest;
pub mod sched;
pub mod time;

pub use dest::Destination;
pub use time::Timestamp;
