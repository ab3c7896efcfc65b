//! rvs fast path: established LVS-NAT connections forwarded by an XDP program at the driver, before any skb
//! exists; everything else goes up unmodified to the slow path (the kernel, rvsd's TUN and the Rust core).
//!
//! The program is C (`bpf/rvs_xdp.c`, compiled by build.rs with `clang -O2 -g -target bpf`, embedded here) and is
//! loaded with aya 0.14 (the last release that builds on rustc 1.95). The Rust core stays the authority: the map
//! `rvs_flows` is a cache of its decisions, two entries per connection (client -> VIP and RIP -> client), each with
//! its rewrite, egress, next hop and counters ([`maps`]). User space inserts and deletes entries; the program only
//! forwards and counts.
//!
//! What the program passes up ([`Stat`]): misses, TCP SYN/FIN/RST, ICMP and every protocol but TCP and UDP,
//! fragments, IPv4 options and IPv6 extension headers, TTL / hop limit <= 1, packets larger than the egress MTU,
//! malformed headers. Checksums are updated incrementally (RFC 1624) and are only right for complete checksums, as a
//! NIC delivers them (see crates/rvs-xdp/README.md on CHECKSUM_PARTIAL senders).
//!
//! The SYN gate ([`Gate`]): while user space has it on, a first SYN to a gated VIP is dropped at the driver and its
//! retransmission passed up, so a SYN flood from spoofed sources never reaches the slow path.
//!
//! Without a pin directory nothing is pinned: the maps and the program live as long as the [`FastPath`] (its file
//! descriptors), and the attachments are bpf_links, so a process that dies, even by SIGKILL, leaves nothing behind.
//! With one ([`Options::pin_dir`]) the maps are pinned and a planned restart pins the links too
//! ([`FastPath::persist`]), so the next process takes the fast path over without a gap.

mod fastpath;
pub mod features;
pub mod gate;
pub mod maps;
pub mod testrun;

pub use fastpath::{Attachment, Error, FastPath, Options, Program, ProgramStats};
pub use features::{Features, FeaturesError, Transmit};
pub use gate::{Gate, GateCounters, Window};
pub use maps::{
    Action, Egress, Encap, FamilyMismatch, Flow, FlowCounters, FlowKey, L4, OuterCsum, STAT_COUNT,
    Stat,
};

/// The compiled program (ELF with BTF maps), built by build.rs from bpf/rvs_xdp.c.
pub static PROGRAM_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_xdp.o"));

/// The director-capacity bench's sender and sink (bpf/rvs_bench.c; examples/capacity.rs). rvsd never loads it.
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_bench.o"));
