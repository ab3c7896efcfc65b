//! Data-plane workers: one thread per TUN queue, all sharing the `Director`.
//!
//! Per packet: parse once, `director.process_parsed(now, random, mark, buf, &mut info)` (which keeps `info` current
//! through its rewrites); Forward -> partial checksum, next hop or TTL + 1 (the TUN path decrements twice, a router
//! once) from that same `info`, and write back; Pass -> write back unchanged (traffic rvsd does not own flows as if rvsd were not there);
//! Drop -> counted by the director per reason. No allocation, no lock of our own, logs rate-limited.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use rvs_core::{Director, Fwmark, Timestamp, Verdict};
use rvs_io::{Disposition, PacketIo, VnetHdr};
use rvs_wire::PacketInfo;

use crate::nexthop::NextHops;
use crate::xmit::{MethodPaths, MethodTx};

use crate::ratelimit::{Admit, RateLimiter};

/// How long a worker sleeps waiting for packets before re-checking the stop flag.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// The daemon's millisecond clock (CLOCK_MONOTONIC_COARSE: a vDSO read, a few ms resolution).
pub fn now() -> Timestamp {
    Timestamp(rvs_io::sys::coarse_monotonic_ms())
}

/// xorshift64*: a cheap per-worker random source for the schedulers (not cryptographic).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// Next value.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A random seed from the OS hasher keys (no extra dependency).
pub fn random_seed(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(salt);
    h.finish()
}

/// The VIPs steered into the TUN. A packet to one of them that the director passes (no virtual service for its
/// port or protocol) must not be written back: the kernel would route it into the TUN again, in a loop until its
/// TTL runs out. It is dropped and counted instead.
#[derive(Debug, Default)]
pub struct VipSet(ArcSwap<Vec<IpAddr>>);

impl VipSet {
    /// Replace the set.
    pub fn set(&self, vips: Vec<IpAddr>) {
        self.0.store(Arc::new(vips));
    }

    /// Whether the parsed packet's destination address is a steered VIP.
    #[inline]
    pub fn is_vip_destination(&self, info: &PacketInfo) -> bool {
        self.0.load().contains(&info.dst)
    }
}

/// Counters of one worker (written by it alone, read by the control plane).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerStats {
    pub received: AtomicU64,
    pub forwarded_in: AtomicU64,
    pub forwarded_out: AtomicU64,
    pub passed: AtomicU64,
    pub dropped: AtomicU64,
    pub unserved_vip: AtomicU64,
    pub write_errors: AtomicU64,
    /// Forwarded packets handed to the link (`--tx link`) rather than the TUN (failures count in `write_errors`).
    pub link_sent: AtomicU64,
    /// Packets of route (`-g`) connections sent to their real server's MAC.
    pub routed: AtomicU64,
    /// Encapsulated packets (segments) sent to tunnel (`-i`) real servers.
    pub tunnelled: AtomicU64,
    /// ICMP "fragmentation needed" / "packet too big" errors sent back to clients.
    pub too_big: AtomicU64,
    /// Route/tunnel packets dropped for want of a next hop or tunnel path.
    pub no_path: AtomicU64,
}

/// Totals over the workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub received: u64,
    pub forwarded_in: u64,
    pub forwarded_out: u64,
    pub passed: u64,
    pub dropped: u64,
    pub unserved_vip: u64,
    pub write_errors: u64,
    pub link_sent: u64,
    pub routed: u64,
    pub tunnelled: u64,
    pub too_big: u64,
    pub no_path: u64,
}

/// Running workers.
#[derive(Debug)]
pub struct Workers {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    stats: Vec<Arc<WorkerStats>>,
}

impl Workers {
    /// Start one worker per queue.
    pub fn start<Q: PacketIo + 'static>(
        director: Arc<Director>,
        vips: Arc<VipSet>,
        queues: Vec<Q>,
        hops: Option<Arc<NextHops>>,
        paths: Option<Arc<MethodPaths>>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        let mut stats = Vec::new();
        for (i, q) in queues.into_iter().enumerate() {
            let st = Arc::new(WorkerStats::default());
            stats.push(st.clone());
            let (d, s, v) = (director.clone(), stop.clone(), vips.clone());
            let seed = random_seed(i as u64);
            let mut q = q;
            // Route destinations always leave through the link socket; masq packets only with --tx link.
            if hops.is_some() || paths.is_some() {
                q.enable_link_tx()?;
            }
            let link = hops.clone();
            let paths = paths.clone();
            let h = std::thread::Builder::new()
                .name(format!("rvsd-worker-{i}"))
                .spawn(move || {
                    let mut mx = MethodTx::new(paths);
                    run_worker(
                        i,
                        Fwmark::NONE,
                        q,
                        &d,
                        &v,
                        link.as_deref(),
                        &mut mx,
                        &s,
                        &st,
                        seed,
                    )
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(Self {
            stop,
            handles,
            stats,
        })
    }

    /// Each worker's counters (read with relaxed loads by the metrics).
    pub fn stats(&self) -> Vec<Arc<WorkerStats>> {
        self.stats.clone()
    }

    /// Sum of all workers' counters.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.stats {
            t.received += s.received.load(Ordering::Relaxed);
            t.forwarded_in += s.forwarded_in.load(Ordering::Relaxed);
            t.forwarded_out += s.forwarded_out.load(Ordering::Relaxed);
            t.passed += s.passed.load(Ordering::Relaxed);
            t.dropped += s.dropped.load(Ordering::Relaxed);
            t.unserved_vip += s.unserved_vip.load(Ordering::Relaxed);
            t.write_errors += s.write_errors.load(Ordering::Relaxed);
            t.link_sent += s.link_sent.load(Ordering::Relaxed);
            t.routed += s.routed.load(Ordering::Relaxed);
            t.tunnelled += s.tunnelled.load(Ordering::Relaxed);
            t.too_big += s.too_big.load(Ordering::Relaxed);
            t.no_path += s.no_path.load(Ordering::Relaxed);
        }
        t
    }

    /// Stop and join every worker (they notice within `IDLE_WAIT`); their queues close with them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// Complete a partial L4 checksum in software (what the kernel's skb_checksum_help does): the field holds the
/// pseudo-header sum; the checksum over `csum_start..` with it in place, complemented, is the full checksum.
fn complete_checksum(pkt: &mut [u8], vnet: &VnetHdr) -> bool {
    let start = usize::from(vnet.csum_start());
    let field = start + usize::from(vnet.csum_offset());
    if field + 2 > pkt.len() {
        return false;
    }
    let mut c = !rvs_wire::checksum::fold(rvs_wire::checksum::sum(&pkt[start..]));
    if c == 0 && vnet.csum_offset() == 6 {
        c = 0xffff; // UDP: a computed 0 is sent as all ones
    }
    pkt[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// After a rewrite of a segmentation-offload super-packet, put back the partial checksum the kernel expects: the
/// folded pseudo-header sum of the new addresses (ports and payload are summed by whoever segments it).
fn restore_partial_checksum(pkt: &mut [u8], info: &PacketInfo, vnet: &VnetHdr) {
    let field = info.l4_offset + usize::from(vnet.csum_offset());
    if field + 2 > info.ip_len.min(pkt.len()) {
        return;
    }
    let l4_len = (info.ip_len - info.l4_offset) as u32;
    let s = rvs_wire::checksum::pseudo_header_sum(info.src, info.dst, info.protocol, l4_len);
    pkt[field..field + 2].copy_from_slice(&rvs_wire::checksum::fold(s).to_be_bytes());
}

/// The per-packet step, separated from the I/O so it can be tested: process, then send on the link (`link`) or
/// fix the TTL for the TUN on Forward. `vnet` is the offload header read with the packet (all zero without
/// offloads) and is written back with it.
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn handle_packet(
    director: &Director,
    vips: &VipSet,
    hops: Option<&NextHops>,
    mx: &mut MethodTx,
    mark: Fwmark,
    now: Timestamp,
    random: u64,
    pkt: &mut [u8],
    vnet: &mut VnetHdr,
    st: &WorkerStats,
) -> Disposition {
    // A partial checksum on a plain packet: complete it, so the director's incremental updates stay correct.
    if vnet.needs_csum() && !vnet.is_gso() {
        if !complete_checksum(pkt, vnet) {
            st.dropped.fetch_add(1, Ordering::Relaxed);
            return Disposition::Drop;
        }
        vnet.set_flags(vnet.flags() & !VnetHdr::F_NEEDS_CSUM);
    }
    let Ok(mut info) = rvs_wire::parse(pkt) else {
        director.malformed(random);
        st.dropped.fetch_add(1, Ordering::Relaxed);
        return Disposition::Drop;
    };
    match director.process_parsed(now, random, mark, pkt, &mut info) {
        Verdict::Forward(dir) => {
            match dir {
                rvs_core::Direction::In => st.forwarded_in.fetch_add(1, Ordering::Relaxed),
                rvs_core::Direction::Out => st.forwarded_out.fetch_add(1, Ordering::Relaxed),
            };
            // `info` describes the rewritten packet: no second parse.
            if vnet.needs_csum() {
                restore_partial_checksum(pkt, &info, vnet);
            }
            // Checksums were rewritten: let the receiver verify them again.
            vnet.set_flags(vnet.flags() & VnetHdr::F_NEEDS_CSUM);
            // On the link the packet has crossed one forwarding step (into the TUN): one hop, as it should.
            // A failed link send is a drop (counted as a write error), like a full device queue. A packet too big for
            // the egress link goes through the TUN, where the kernel fragments it or answers "fragmentation needed".
            if let Some(h) = hops {
                match h.lookup(info.dst) {
                    Some(hop) if hop.fits(pkt, vnet) => {
                        st.link_sent.fetch_add(1, Ordering::Relaxed);
                        return Disposition::SendTo(hop);
                    }
                    Some(_) => {}
                    None => h.miss(info.dst),
                }
            }
            // Through the TUN the kernel decrements the TTL on the way in and again on the way out; add one back so
            // the director counts as one hop. A packet whose TTL cannot be adjusted goes out unchanged.
            let _ = rvs_wire::rewrite::adjust_ttl(pkt, &mut info, 1);
            Disposition::Send
        }
        Verdict::Pass if vips.is_vip_destination(&info) => {
            st.unserved_vip.fetch_add(1, Ordering::Relaxed);
            Disposition::Drop
        }
        Verdict::Pass => {
            st.passed.fetch_add(1, Ordering::Relaxed);
            Disposition::Send
        }
        Verdict::Route { rip } => mx.route(pkt, &mut info, vnet, rip, st),
        Verdict::Tunnel { rip, tunnel } => mx.tunnel(pkt, &mut info, vnet, rip, &tunnel, st),
        Verdict::Drop(_) => {
            st.dropped.fetch_add(1, Ordering::Relaxed);
            Disposition::Drop
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_worker<Q: PacketIo>(
    id: usize,
    mark: Fwmark,
    mut q: Q,
    director: &Director,
    vips: &VipSet,
    hops: Option<&NextHops>,
    mx: &mut MethodTx,
    stop: &AtomicBool,
    st: &WorkerStats,
    seed: u64,
) {
    let mut rng = XorShift::new(seed);
    let mut log_limit = RateLimiter::new(5, 10_000);
    tracing::debug!(worker = id, "data-plane worker started");
    while !stop.load(Ordering::Relaxed) {
        // The clock is read once a round (a coarse clock: a few ms resolution anyway).
        let mut t = None;
        let r = q.run_batch(IDLE_WAIT, |pkt, vnet| {
            let now = *t.get_or_insert_with(now);
            handle_packet(
                director,
                vips,
                hops,
                mx,
                mark,
                now,
                rng.next_u64(),
                pkt,
                vnet,
                st,
            )
        });
        // The round's tunnelled packets leave together (one sendmmsg), before the worker waits again.
        mx.flush(st);
        match r {
            Ok(b) => {
                if b.received > 0 {
                    st.received.fetch_add(b.received as u64, Ordering::Relaxed);
                }
                if b.send_failed > 0 {
                    st.write_errors
                        .fetch_add(b.send_failed as u64, Ordering::Relaxed);
                    if let Admit::Yes { suppressed } = log_limit.admit(now().0) {
                        tracing::warn!(
                            worker = id,
                            failed = b.send_failed,
                            suppressed,
                            "sends refused (TUN write or link)"
                        );
                    }
                }
            }
            Err(e) => {
                if let Admit::Yes { suppressed } = log_limit.admit(now().0) {
                    tracing::warn!(worker = id, error = %e, suppressed, "TUN I/O failed");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    mx.flush(st);
    tracing::debug!(worker = id, "data-plane worker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_nonzero_and_varies() {
        let mut r = XorShift::new(0);
        let a = r.next_u64();
        let b = r.next_u64();
        assert_ne!(a, 0);
        assert_ne!(a, b);
        let mut r2 = XorShift::new(0);
        assert_eq!(r2.next_u64(), a, "deterministic for a seed");
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now();
        let b = now();
        assert!(b.0 >= a.0);
    }
}

#[cfg(test)]
mod packet_tests {
    use super::*;
    use rvs_core::{ConfigOp, DestSpec, Protocol, ServiceKey, ServiceSpec, Weight};

    const VIP: [u8; 4] = [198, 51, 100, 100];
    const CIP: [u8; 4] = [198, 51, 100, 10];
    const RIP: [u8; 4] = [203, 0, 113, 11];

    fn syn(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, ttl: u8) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv4(src, dst, ttl)
            .tcp(sport, dport, 1000, 64240)
            .syn();
        let mut out = Vec::with_capacity(b.size(0));
        b.write(&mut out, &[]).expect("build packet");
        out
    }

    fn director() -> (Director, VipSet) {
        let d = Director::default();
        let key = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: VIP.into(),
            port: 80,
        };
        d.apply_batch(vec![
            ConfigOp::AddService(ServiceSpec::new(key, "rr")),
            ConfigOp::AddDest(key, DestSpec::masq(RIP.into(), 8080, Weight(1))),
        ])
        .expect("config");
        let v = VipSet::default();
        v.set(vec![VIP.into()]);
        (d, v)
    }

    /// One packet through `handle_packet` without offloads or link transmit.
    fn handle(d: &Director, v: &VipSet, p: &mut [u8], st: &WorkerStats) -> Disposition {
        let mut mx = MethodTx::disabled();
        let vnet = &mut VnetHdr::default();
        handle_packet(
            d,
            v,
            None,
            &mut mx,
            Fwmark::NONE,
            Timestamp(10),
            7,
            p,
            vnet,
            st,
        )
    }

    #[test]
    fn forward_rewrites_and_gives_back_one_ttl() {
        let (d, v) = director();
        let st = WorkerStats::default();
        let mut p = syn(CIP, VIP, 40000, 80, 62);
        assert_eq!(handle(&d, &v, &mut p, &st), Disposition::Send);
        let h = etherparse::Ipv4HeaderSlice::from_slice(&p).expect("ipv4");
        assert_eq!(h.destination(), RIP);
        assert_eq!(h.ttl(), 63, "TTL + 1");
        assert!(
            rvs_wire::checksum::ipv4_header_ok(&p),
            "header checksum still valid"
        );
        assert_eq!(st.forwarded_in.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn foreign_packet_passes_unchanged() {
        let (d, v) = director();
        let st = WorkerStats::default();
        let orig = syn([203, 0, 113, 12], [198, 51, 100, 20], 5000, 9999, 60);
        let mut p = orig.clone();
        assert_eq!(handle(&d, &v, &mut p, &st), Disposition::Send);
        assert_eq!(p, orig);
        assert_eq!(st.passed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn vip_port_without_service_is_dropped_not_looped() {
        let (d, v) = director();
        let st = WorkerStats::default();
        let mut p = syn(CIP, VIP, 40000, 81, 62);
        assert_eq!(handle(&d, &v, &mut p, &st), Disposition::Drop);
        assert_eq!(st.unserved_vip.load(Ordering::Relaxed), 1);
        assert_eq!(st.passed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn garbage_never_panics() {
        let (d, v) = director();
        let st = WorkerStats::default();
        for len in 0..64 {
            let mut p: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(37) ^ 0x45)
                .collect();
            let _ = handle(&d, &v, &mut p, &st);
        }
    }
}

#[cfg(test)]
mod offload_tests {
    use super::*;

    fn tcp_packet() -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv4([198, 51, 100, 10], [198, 51, 100, 100], 64)
            .tcp(40000, 80, 1, 64240)
            .ack(5);
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        b.write(&mut out, &payload).expect("build");
        out
    }

    fn hdr(csum_start: u16, csum_offset: u16) -> VnetHdr {
        let mut h = VnetHdr::default();
        h.set_flags(VnetHdr::F_NEEDS_CSUM);
        h.set_csum_start(csum_start);
        h.set_csum_offset(csum_offset);
        h
    }

    #[test]
    fn partial_checksum_completes_to_the_real_one() {
        let full = tcp_packet();
        let info = rvs_wire::parse(&full).expect("parse");
        let mut partial = full.clone();
        restore_partial_checksum(&mut partial, &info, &hdr(20, 16));
        assert_ne!(
            partial, full,
            "the field now holds the pseudo-header sum only"
        );
        assert!(complete_checksum(&mut partial, &hdr(20, 16)));
        assert_eq!(partial, full, "completing it gives the full checksum back");
        assert!(rvs_wire::checksum::transport_ok(&partial, &info));
    }

    #[test]
    fn bad_offsets_are_refused_not_panicking() {
        let mut p = tcp_packet();
        assert!(!complete_checksum(&mut p, &hdr(2000, 16)));
        assert!(!complete_checksum(&mut p, &hdr(u16::MAX, u16::MAX)));
    }
}
