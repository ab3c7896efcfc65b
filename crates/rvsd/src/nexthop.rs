//! Next hops for `--tx link`: the interface and Ethernet header a rewritten packet goes out with, learnt from the
//! kernel's route and neighbour tables by a resolver thread, read by the workers without locks.
//!
//! A worker looks the packet's destination up; on a miss it sends the packet through the TUN as before (the kernel
//! then routes it and, if needed, resolves the neighbour with ARP or ND) and tells the resolver, which adds the
//! destination at its next pass once the kernel knows the neighbour. Every pass (at least once a second) rebuilds
//! the whole table from a fresh neighbour dump, so a changed MAC is picked up within a second of the kernel learning
//! it, and a destination whose neighbour entry the kernel dropped goes back to the TUN path (where the kernel
//! resolves it again).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rvs_io::l2::{EtherType, NextHop};
use rvs_io::netlink::Netlink;

type Table = HashMap<IpAddr, NextHop, foldhash::fast::RandomState>;

/// Rebuild the table at least this often.
const REFRESH: Duration = Duration::from_secs(1);
/// And at most this often (misses arrive per packet).
const MIN_PASS_INTERVAL: Duration = Duration::from_millis(100);
/// How soon the table is rebuilt after probing an unresolved destination.
const PROBE_RECHECK: Duration = Duration::from_millis(20);
/// How long a destination that cannot be resolved is retried after its last miss.
const RETRY_FOR: Duration = Duration::from_secs(10);
/// How long a route lookup is reused.
const ROUTE_TTL: Duration = Duration::from_secs(10);
/// Destinations kept at most (beyond, packets take the TUN path).
pub const MAX_ENTRIES: usize = 65_536;
/// Misses queued for the resolver (beyond, they are dropped: the packet still goes through the TUN).
const MISS_QUEUE: usize = 4096;

/// The table the workers read.
#[derive(Debug)]
pub struct NextHops {
    table: ArcSwap<Table>,
    misses: SyncSender<IpAddr>,
}

impl NextHops {
    /// An empty table and the receiving end of its miss queue (for [`spawn_resolver`]).
    pub fn new() -> (Arc<Self>, Receiver<IpAddr>) {
        let (tx, rx) = sync_channel(MISS_QUEUE);
        (
            Arc::new(Self {
                table: ArcSwap::from_pointee(Table::default()),
                misses: tx,
            }),
            rx,
        )
    }

    /// The next hop for `dst`, if known.
    #[inline]
    pub fn lookup(&self, dst: IpAddr) -> Option<NextHop> {
        self.table.load().get(&dst).copied()
    }

    /// Report a destination with no next hop (never blocks, never allocates; dropped when the queue is full).
    #[inline]
    pub fn miss(&self, dst: IpAddr) {
        let _ = self.misses.try_send(dst);
    }

    fn store(&self, t: Table) {
        self.table.store(Arc::new(t));
    }

    /// Set one destination's next hop, as the resolver would (the fast path's tests).
    #[cfg(test)]
    pub(crate) fn set_for_test(&self, dst: IpAddr, hop: NextHop) {
        let mut t = (**self.table.load()).clone();
        t.insert(dst, hop);
        self.store(t);
    }
}

/// Start the resolver thread; it stops within a second of `stop` being set.
pub fn spawn_resolver(
    hops: Arc<NextHops>,
    misses: Receiver<IpAddr>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut nl = Netlink::new().map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("rvsd-nexthops".into())
        .spawn(move || {
            let mut r = Resolver::default();
            // Misses received since the last pass (a pass waits at most MIN_PASS_INTERVAL for them).
            let mut pending = false;
            while !stop.load(Ordering::Relaxed) {
                // Soon again while a probed destination waits for its neighbour, or new misses wait for a pass
                // (route destinations have no other path: every packet to them is dropped until then).
                let wait = if r.probing {
                    PROBE_RECHECK
                } else if pending {
                    MIN_PASS_INTERVAL.saturating_sub(r.last_pass.elapsed())
                } else {
                    REFRESH
                };
                match misses.recv_timeout(wait) {
                    Ok(dst) => {
                        r.wanted(dst);
                        while let Ok(dst) = misses.try_recv() {
                            r.wanted(dst);
                        }
                        pending = true;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if r.last_pass.elapsed() >= MIN_PASS_INTERVAL || r.probing {
                    pending = false;
                    match r.pass(&mut nl) {
                        Ok(t) => hops.store(t),
                        Err(e) => tracing::warn!(error = %e, "next-hop refresh failed; keeping the last table"),
                    }
                }
            }
        })?;
    Ok(())
}

/// Make the kernel resolve `dst`'s link-layer address (or its gateway's): one empty UDP datagram to its discard
/// port (9). Route destinations need this: their packets bypass the kernel, which would otherwise never ask.
pub fn probe(dst: IpAddr) {
    let any: IpAddr = if dst.is_ipv6() {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    if let Ok(s) = std::net::UdpSocket::bind((any, 0)) {
        let _ = s.send_to(&[], (dst, 9));
    }
}

/// The resolver's own state (thread-local, allocates freely).
#[derive(Debug)]
struct Resolver {
    /// Destinations to resolve, with their last miss.
    wanted: HashMap<IpAddr, Instant>,
    /// Route lookups: destination -> (interface, next-hop address), with when they were made.
    routes: HashMap<IpAddr, (Option<(u32, IpAddr)>, Instant)>,
    last_pass: Instant,
    /// The last pass probed a destination that has a route but no neighbour yet.
    probing: bool,
}

impl Default for Resolver {
    fn default() -> Self {
        Self {
            wanted: HashMap::new(),
            routes: HashMap::new(),
            last_pass: Instant::now() - REFRESH,
            probing: false,
        }
    }
}

impl Resolver {
    fn wanted(&mut self, dst: IpAddr) {
        if self.wanted.len() < MAX_ENTRIES || self.wanted.contains_key(&dst) {
            self.wanted.insert(dst, Instant::now());
        }
    }

    /// Build a fresh table for every wanted destination the kernel can reach on the link now.
    fn pass(&mut self, nl: &mut Netlink) -> Result<Table, rvs_io::netlink::NetlinkError> {
        let now = Instant::now();
        self.last_pass = now;
        self.probing = false;
        let mut neigh: HashMap<(u32, IpAddr), [u8; 6]> = HashMap::new();
        for family in rvs_wire::IpVersion::ALL {
            for (ifindex, addr, mac) in nl.resolved_neighbours(family)? {
                neigh.insert((ifindex, addr), mac);
            }
        }
        let mut links: HashMap<u32, Option<([u8; 6], u32)>> = HashMap::new();
        let mut table = Table::default();
        let mut drop = Vec::new();
        for (&dst, &last_miss) in &self.wanted {
            let route = match self.routes.get(&dst) {
                Some((r, at)) if now.duration_since(*at) < ROUTE_TTL => *r,
                _ => {
                    let r = nl
                        .route_get(dst)
                        .ok()
                        .and_then(|l| Some((l.unicast_oif()?, l.gateway.unwrap_or(dst))));
                    self.routes.insert(dst, (r, now));
                    r
                }
            };
            let hop = route.and_then(|(oif, via)| {
                let mac = *neigh.get(&(oif, via))?;
                let (src, mtu) = *links
                    .entry(oif)
                    .or_insert_with(|| nl.link_address(oif).ok().flatten())
                    .as_ref()?;
                Some(NextHop::new(oif, mtu, mac, src, EtherType::of(dst)))
            });
            if hop.is_none() && route.is_some() {
                // The kernel resolves a neighbour only when it sends to it: give it a reason.
                if now.duration_since(last_miss) < RETRY_FOR {
                    probe(dst);
                    self.probing = true;
                }
            }
            match hop {
                Some(h) => {
                    table.insert(dst, h);
                }
                None if now.duration_since(last_miss) > RETRY_FOR => drop.push(dst),
                None => {}
            }
        }
        for d in drop {
            self.wanted.remove(&d);
            self.routes.remove(&d);
        }
        Ok(table)
    }
}
