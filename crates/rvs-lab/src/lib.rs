//! rvs-lab: the LVS-NAT picture in network namespaces, for the demo, the end-to-end tests and the benchmarks.
//!
//! - [`Lab`] builds the topology (client, director, real servers), starts the real servers' HTTP/UDP servers
//!   (`rvs-lab serve`) and rvsd, and removes all of it on drop, on a panic and on SIGINT.
//! - [`client`] has the HTTP/UDP clients, [`capture`] an AF_PACKET recorder to see addresses on the wire,
//!   [`netns`] runs code inside a namespace from a thread.
//! - [`million`] is `rvs-lab million` (a million connections held through rvsd), with its holders in [`hold`].
//! - [`demo`] is `rvs-lab demo`; [`manage`] is `rvs-lab up/down/exec`; [`testing`] helps the end-to-end tests.

pub mod bench;
pub mod bgp;
pub mod bins;
pub mod capture;
pub mod cleanup;
pub mod client;
pub mod cmd;
pub mod decap;
pub mod demo;
pub mod error;
pub mod hold;
pub mod hostile;
pub mod lab;
pub mod manage;
pub mod million;
pub mod netns;
pub mod servers;
pub mod sockopt;
pub mod testing;

pub use error::{LabError, Result};
pub use lab::{Lab, LabConfig};
