//! Packet I/O backends and kernel plumbing for rvs: where rvsd's `unsafe` and `libc` live (rvs-xdp and rvs-lab
//! have their own, see ARCHITECTURE.md).
//!
//! - [`packet`]: the [`PacketIo`] trait (a round of receive, rewrite in place, send, over backend-owned buffers) that data-plane workers use,
//!   whatever the backend (TUN today, AF_XDP later beside it).
//! - [`tun`]: a multi-queue TUN device (`IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE`), one nonblocking fd per queue,
//!   read and written with a system call per packet.
//! - [`uring`]: the same queue driven by io_uring: reads kept posted, one `io_uring_enter` per round.
//! - [`l2`]: link-layer transmit (`AF_PACKET`): a rewritten packet sent straight to its next hop, beside the TUN.
//! - [`raw`]: routed transmit of whole IP packets through raw sockets (`IPPROTO_RAW`), one at a time or batched
//!   (`RawBatch`: one `sendmmsg` per family): tunnelled packets and the
//!   ICMP errors the director answers itself; the kernel routes, resolves the neighbour and fragments.
//! - [`netlink`]: a small synchronous rtnetlink client (links, routes, rules, proxy neighbours).
//! - [`steering`]: recipe R of the TUN steering notes: VIP /32 routes into the TUN, proxy neighbours on the public
//!   interface, a reply table and `iif <private> lookup <table>` rules; everything tagged so it can be found and
//!   removed after a crash.
//! - [`sys`]: sysctls, interface indexes, a coarse monotonic clock, peer credentials of a Unix socket, the ethtool
//!   ioctls for TX checksum offload and GRO.

pub mod l2;
pub mod netlink;
pub mod packet;
pub mod raw;
pub mod steering;
pub mod sys;
pub mod tun;
pub mod uring;
pub mod vnet;

pub use packet::{Batch, Disposition, PacketBuf, PacketIo, VnetHdr};
pub use steering::{Steering, SteeringConfig, SteeringError};
pub use tun::{TunDevice, TunError, TunQueue};
pub use uring::UringTunQueue;
pub use vnet::Offload;
