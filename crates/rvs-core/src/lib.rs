//! rvs-core: the director itself, I/O-free and time-free.
//!
//! Time, randomness and seeds are arguments; nothing here reads a clock, a socket or a file.
//!
//! - [`Director`]: virtual services (RCU snapshots), the sharded connection table with IPVS's
//!   TCP state machine and timeouts, persistence templates, counters and rate estimates, and
//!   [`Director::process_parsed`], the packet path (masq rewrite in place; the caller owns the
//!   packet's parse, which the rewrites keep current). Configuration and listings:
//!   `director/control.rs`.
//! - [`sched`]: the schedulers.
//! - [`FastPathSink`] / [`Director::fast_path_credit`]: the hook of a fast path outside the core
//!   (rvs-xdp): connections offered when ESTABLISHED (UDP at once) and withdrawn when they leave
//!   it; what the fast path forwarded credited back (counters, last-seen) before expiry.
//!
//! # IPVS semantics kept
//! - Connections are keyed both ways (in: caddr:cport -> vaddr:vport; out: daddr:dport ->
//!   caddr:cport) in a table sharded by hash(protocol, caddr, cport), one lock per shard.
//! - TCP follows ip_vs_proto_tcp.c's state table ([`tcp`]); a connection counts as *active* in
//!   ESTABLISHED only, *inactive* otherwise (UDP is always inactive); new TCP connections are
//!   scheduled only on SYN (without RST); a SYN on a TIME_WAIT or CLOSE connection not under a
//!   template starts a new one (conn_reuse_mode=1, is_new_conn_expected). Every packet re-reads its state's timeout (`--set` applies at the next
//!   packet) and pushes the deadline to now + timeout.
//! - Destinations: weight 0 = quiesced (keeps its connections); the upper threshold marks a
//!   destination overloaded until it drops under the lower one (3/4 of the upper one if 0). A
//!   deleted destination's connections stay until they expire and their client packets are
//!   dropped (expire_nodest_conn=0, [`DropReason::DestUnavailable`]); with expire_nodest_conn=1
//!   they end at their next packet, which is scheduled anew. A deleted service's connections and
//!   templates are removed.
//! - The defences against table exhaustion (drop_entry, drop_packet, secure_tcp with IPVS's 0-3
//!   values), expire_quiescent_template and conn_reuse_mode: see [`defense`], which also says how
//!   "memory pressure" maps onto rvs's connection limit.
//! - Persistence templates (caddr masked by `-M`, vport 0 for port-0 services) live for the
//!   service's timeout after their last new connection and never expire while they still
//!   control connections; a template whose destination was deleted is replaced. Templates
//!   count in the destination's persistent counter only.
//! - Counters per service and destination, rate estimates as ip_vs_est.c (2 s samples,
//!   `avg += (rate - avg) >> 2`, rates x2^10, byte rates x2^5).
//! - Forwarding methods, bound to each connection when it is created (`ip_vs_bind_xmit`; an edit
//!   of the destination's method applies to new connections only): masq rewrites in place
//!   (VIP->RIP in, RIP->VIP out, [`Verdict::Forward`]); direct routing and tunnelling leave the
//!   packet unchanged and answer [`Verdict::Route`] / [`Verdict::Tunnel`] with the real server (and
//!   the destination's current tunnel parameters, read per packet as IPVS reads `cp->dest`): the
//!   data plane sends it on the link to the RIP's MAC, or encapsulates it
//!   ([`rvs_wire::encap`]). Services may mix methods.
//! - Route and tunnel connections start with NOOUTPUT: until a packet from the real server is
//!   seen (it normally never is), TCP uses the INPUT-ONLY rows of the state table, so a client's
//!   FIN moves ESTABLISHED to FIN_WAIT (not CLOSE_WAIT) and timeouts, `-L -c` states and
//!   ActiveConn/InActConn are IPVS's with one-way traffic; OutPkts/OutBytes stay 0.
//! - ICMP errors about a tracked connection: masq translates the outer and the quoted header;
//!   route/tunnel carry the error to the real server unchanged (`ip_vs_icmp_xmit`). A reply that
//!   does cross the director and matches a connection is masqueraded whatever its method
//!   (`handle_response`).
//! - `sloppy_tcp` / `sloppy_sctp` ([`DirectorConfig`], [`Director::set_sloppy_tcp`], [`sloppy`]): off by default; on,
//!   a TCP packet without RST creates a connection even without SYN (`tcp_conn_schedule`), and an input ACK moves a
//!   connection in NONE to ESTABLISHED (the kernel's table since 3.12), so a director taking over a flow from
//!   another (ECMP rehash) keeps it going with a consistent scheduler.
//! - fwmark services ([`Director::process_marked`]): a marked packet looks up the fwmark service
//!   of its mark and family first, then the address service (`ip_vs_service_find`); persistence
//!   templates of a fwmark service are keyed by the mark in place of the VIP and port 0, so the
//!   ports a mark groups (e.g. 80 and 443) stick to one real server.
//! - Connection sync ([`Director::sync_export`], [`Director::sync_install`], for rvs-sync): a
//!   backup installs synced connections and templates as ip_vs_proc_conn does (state, timeout,
//!   active/inactive with the real server's counters; a connection synced to another real server
//!   replaces the known one unless it is a closing message) but only for a configured service
//!   and real server (IPVS would create an unbound connection).
//!
//! # Differences
//! - A fwmark service's template keeps the packet's protocol (IPVS uses IPPROTO_IP there, so TCP
//!   and UDP under one mark share a template; here they do not).
//! - A real server of the other address family than its service (IPVS allows it for tunnels) is
//!   stored, but its packets are dropped as [`DropReason::UnsupportedMethod`].
//! - `sloppy_sctp` is stored and its rule is [`sloppy::sctp_may_schedule`], but SCTP is not forwarded yet.
//! - SCTP services are stored only; a re-added destination is a fresh object (IPVS would revive it
//!   from its trash).
//! - Defences ([`defense`]): a hard limit on connections plus persistence templates (IPVS grows
//!   until kernel memory runs out), with eviction of the longest idle half-open/closed (else
//!   long-idle) entry of a sample when a new connection or template finds no room and drop_entry
//!   is not 0; the evicted connection's template goes with it when no other connection holds it;
//!   "memory pressure" is the table's fill against that limit. drop_packet counts down as
//!   ip_vs_todrop does (one shared counter, only touched while it is active).
//! - A connection table can be handed to another process ([`handover`]); IPVS cannot do this.

pub mod config;
mod conn;
pub mod defense;
#[cfg(test)]
mod defense_tests;
pub mod dest;
mod director;
#[cfg(test)]
mod director_tests;
mod fastpath;
pub mod handover;
#[cfg(test)]
mod methods_tests;
pub mod sched;
pub mod service;
mod shards;
pub mod sloppy;
#[cfg(test)]
mod sloppy_tests;
mod snapshot;
mod stats;
mod table;
pub mod tcp;
mod template;
pub mod time;
pub mod verdict;
mod vips;

pub use config::{ConfigError, ConfigOp, ServiceConfig, TimeoutUpdate, Timeouts};
pub use defense::{DefenseConfig, DefenseLevel, DefenseSnapshot, NoDestConn, QuiescentTemplate};
pub use dest::Destination;
pub use director::sync::SyncExport;
pub use director::{Director, DirectorConfig, MemoryUsage};
pub use fastpath::{FastConn, FastCredit, FastPathSink};
pub use service::{
    DestKey, DestSpec, ForwardMethod, Fwmark, Persistence, Protocol, SchedFlags, ServiceKey,
    ServiceSpec, TunnelConfig, TunnelCsum, TunnelKind, Weight,
};
pub use snapshot::{ConnSnapshot, DestSnapshot, ServiceSnapshot};
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
