//! Transmit for the two forwarding methods that leave the packet unchanged (IPVS's `ip_vs_dr_xmit` and
//! `ip_vs_tunnel_xmit`).
//!
//! - **Route** (`-g`): the packet, still addressed to the VIP, goes in an Ethernet frame to the real server's MAC
//!   on the network both share, through the queue's link-layer socket ([`Disposition::SendTo`], the next hop
//!   learnt by the resolver of [`crate::nexthop`]). The TUN cannot carry it: written back, it would be routed to the
//!   VIP, into the TUN again. A real server without a resolved neighbour yet is reported to the resolver and the
//!   packet dropped (the daemon asks the kernel to resolve every route destination when it is configured, so this
//!   is rare).
//! - **Tunnel** (`-i`): the packet is encapsulated ([`rvs_wire::encap`]) from the director's source address for
//!   the real server (the route's preferred source, found when the destination is configured) and sent through a
//!   raw socket: the kernel routes it to the RIP wherever it is. A TCP super-packet (offloads) is segmented first
//!   ([`rvs_wire::gso`]): the kernel cannot segment an IPIP/GUE/GRE packet handed to it from user space. (A raw
//!   socket takes no GSO metadata; the vnet header of a packet socket or a TUN write is turned into an skb by
//!   `virtio_net_hdr_to_skb`, which knows only TCPV4, TCPV6, UDP and UDP_L4, not SKB_GSO_IPXIP4/6, GRE or
//!   UDP_TUNNEL; so each segment is encapsulated on its own.) The segment is built straight into the worker's send
//!   batch behind room for the outer headers, which are then written in front of it
//!   ([`encap::encapsulate_in_place`]): one copy of the payload, not two.
//! - **Batched**: tunnelled packets wait in the worker's [`RawBatch`] and leave with one `sendmmsg` per round
//!   ([`MethodTx::flush`], called by the worker after each round of its queue, or when the batch is full), where
//!   they took one `sendto` each (a super-packet ~45).
//! - The TUN decremented the TTL once on the way in: it is given back, so the real server sees the client's packet
//!   exactly as IPVS would hand it over (IPVS takes it at LOCAL_IN, where no TTL was spent).
//! - **Too big**: a packet that does not fit the egress MTU (minus the tunnel's headers) is answered as IPVS does
//!   (`__ip_vs_get_out_rt` / `ensure_mtu_is_adequate`): an IPv4 packet with DF gets ICMP "fragmentation needed", an
//!   IPv6 packet ICMPv6 "packet too big", from the VIP to the client, with the MTU left for it; an IPv4 tunnel
//!   packet without DF is sent and fragmented by the kernel. The errors leave through the raw socket.
//!
//! Per packet: no allocation (the worker's buffers are made once), no lock (the path tables are read through
//! `ArcSwap`), no system call for a tunnelled packet (one per round).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use rvs_core::TunnelConfig;
use rvs_io::raw::{RawBatch, RawTx};
use rvs_io::{Disposition, VnetHdr};
use rvs_wire::encap::{self, Outer};
use rvs_wire::{IpVersion, PacketInfo, Transport};

use crate::dataplane::WorkerStats;
use crate::nexthop::NextHops;

/// How the director reaches a tunnel real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelPath {
    /// The outer source address (the route's preferred source toward the real server).
    pub src: IpAddr,
    /// The egress interface's MTU.
    pub mtu: u32,
}

/// Paths shared by the workers: the link next hops (route) and the tunnel paths, both kept by the control plane.
#[derive(Debug)]
pub struct MethodPaths {
    /// Link-layer next hops (also used by `--tx link` for masq).
    pub hops: Arc<NextHops>,
    tunnels: ArcSwap<HashMap<IpAddr, TunnelPath>>,
}

impl MethodPaths {
    /// No tunnel paths yet.
    pub fn new(hops: Arc<NextHops>) -> Self {
        Self {
            hops,
            tunnels: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// Replace the tunnel paths.
    pub fn set_tunnels(&self, t: HashMap<IpAddr, TunnelPath>) {
        self.tunnels.store(Arc::new(t));
    }

    /// The path to tunnel real server `rip`.
    pub fn tunnel(&self, rip: IpAddr) -> Option<TunnelPath> {
        self.tunnels.load().get(&rip).copied()
    }
}

/// Bytes of tunnelled packets a worker holds until it flushes: several super-packets' segments, and always room for
/// the largest packet it encapsulates (64 KiB plus headers).
const BATCH_BYTES: usize = 256 << 10;
/// Packets a worker holds until it flushes (a round of the queue is at most 64 packets a pass).
const BATCH_PACKETS: usize = 256;
/// The ICMP errors' buffer (an IPv6 "packet too big" quotes at most 1232 bytes behind its 48 bytes of headers).
const ICMP_BUF: usize = 2048;

/// One worker's transmit state for route and tunnel: its raw socket and buffers, made once.
#[derive(Debug)]
pub struct MethodTx {
    paths: Option<Arc<MethodPaths>>,
    raw: Option<RawTx>,
    /// Tunnelled packets waiting for [`flush`](Self::flush).
    batch: RawBatch,
    /// The director's own ICMP errors (sent at once: rare).
    icmp: Box<[u8]>,
    ident: u16,
}

impl MethodTx {
    /// Transmit over `paths`; without a raw socket (no CAP_NET_RAW) tunnel packets and ICMP errors are dropped.
    pub fn new(paths: Option<Arc<MethodPaths>>) -> Self {
        let raw = match paths {
            Some(_) => RawTx::new()
                .inspect_err(|e| tracing::warn!(error = %e, "no raw socket: tunnel destinations cannot be served"))
                .ok(),
            None => None,
        };
        let batch = match raw {
            Some(_) => RawBatch::new(BATCH_BYTES, BATCH_PACKETS),
            None => RawBatch::new(0, 0),
        };
        Self {
            paths,
            raw,
            batch,
            icmp: vec![0; ICMP_BUF].into_boxed_slice(),
            ident: 1,
        }
    }

    /// Nothing configured (tests): every route/tunnel packet is dropped and counted.
    #[cfg(test)]
    pub fn disabled() -> Self {
        Self {
            paths: None,
            raw: None,
            batch: RawBatch::new(0, 0),
            icmp: Box::default(),
            ident: 1,
        }
    }

    /// A packet of a route connection (see the module docs).
    pub fn route(
        &mut self,
        pkt: &mut [u8],
        info: &mut PacketInfo,
        vnet: &VnetHdr,
        rip: IpAddr,
        st: &WorkerStats,
    ) -> Disposition {
        let hop = self.paths.as_ref().and_then(|p| {
            let h = p.hops.lookup(rip);
            if h.is_none() {
                p.hops.miss(rip);
            }
            h
        });
        match hop {
            Some(hop) if hop.fits(pkt, vnet) => {
                restore_ttl(pkt, info);
                st.routed.fetch_add(1, Ordering::Relaxed);
                Disposition::SendTo(hop)
            }
            Some(hop) => {
                self.too_big(pkt, info, hop.mtu, st);
                st.dropped.fetch_add(1, Ordering::Relaxed);
                Disposition::Drop
            }
            None => unreachable_path(st),
        }
    }

    /// A packet of a tunnel connection (see the module docs).
    pub fn tunnel(
        &mut self,
        pkt: &mut [u8],
        info: &mut PacketInfo,
        vnet: &VnetHdr,
        rip: IpAddr,
        tun: &TunnelConfig,
        st: &WorkerStats,
    ) -> Disposition {
        let Some(path) = self.paths.as_ref().and_then(|p| p.tunnel(rip)) else {
            return unreachable_path(st);
        };
        restore_ttl(pkt, info);
        let info = &*info;
        let overhead = tun.overhead(rip.is_ipv6());
        let room = (path.mtu as usize).saturating_sub(overhead);
        let outer = Outer {
            src: path.src,
            dst: rip,
            ident: 0,
            flow_hash: flow_hash(info),
        };
        if vnet.is_gso() && matches!(info.transport, Transport::Tcp { .. }) {
            let mss = usize::from(vnet.gso_size());
            let n = rvs_wire::gso::tcp_segments(pkt, info, mss).unwrap_or(0);
            // A segment is at most the IP and TCP headers (60 bytes each at most) and mss bytes of payload.
            let seg_max = pkt.len().min(info.l4_offset + 60 + mss);
            for k in 0..n {
                self.ident = self.ident.wrapping_add(1);
                let o = Outer {
                    ident: self.ident,
                    ..outer
                };
                let Some(tail) = self.slot(overhead + seg_max, st) else {
                    st.write_errors.fetch_add(1, Ordering::Relaxed);
                    break;
                };
                let Ok(len) = rvs_wire::gso::tcp_segment(pkt, info, mss, k, &mut tail[overhead..])
                else {
                    st.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                };
                if len > room && must_not_fragment(pkt, info) {
                    self.too_big(pkt, info, room as u32, st);
                    break;
                }
                match encap::encapsulate_in_place(&mut tail[..overhead + len], tun, &o) {
                    Ok(total) => {
                        self.batch.push(total);
                    }
                    Err(_) => {
                        st.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            return Disposition::Drop;
        }
        if pkt.len() > room && must_not_fragment(pkt, info) {
            self.too_big(pkt, info, room as u32, st);
            st.dropped.fetch_add(1, Ordering::Relaxed);
            return Disposition::Drop;
        }
        self.ident = self.ident.wrapping_add(1);
        let o = Outer {
            ident: self.ident,
            ..outer
        };
        match self.slot(overhead + pkt.len(), st) {
            Some(tail) => match encap::encapsulate(pkt, tun, &o, tail) {
                Ok(total) => {
                    self.batch.push(total);
                }
                Err(_) => {
                    st.write_errors.fetch_add(1, Ordering::Relaxed);
                }
            },
            None => {
                st.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        Disposition::Drop
    }

    /// Room for a packet of up to `len` bytes at the end of the batch, flushing it first when it is full. `None`
    /// without a raw socket (or for a packet larger than the batch, which cannot happen: see `BATCH_BYTES`).
    fn slot(&mut self, len: usize, st: &WorkerStats) -> Option<&mut [u8]> {
        self.raw.as_ref()?;
        if !self.batch.has_room(len) {
            self.flush(st);
            if !self.batch.has_room(len) {
                return None;
            }
        }
        Some(self.batch.tail())
    }

    /// Send the tunnelled packets waiting in the batch (one `sendmmsg` per family): the worker calls this after
    /// every round of its queue, so a packet waits at most for the rest of its round.
    pub fn flush(&mut self, st: &WorkerStats) {
        if self.batch.is_empty() {
            return;
        }
        let Some(raw) = &self.raw else {
            self.batch.clear();
            return;
        };
        let (sent, refused) = raw.send_batch(&mut self.batch);
        if sent > 0 {
            st.tunnelled.fetch_add(sent as u64, Ordering::Relaxed);
        }
        if refused > 0 {
            st.write_errors.fetch_add(refused as u64, Ordering::Relaxed);
        }
    }

    /// Answer `pkt` with "fragmentation needed" / "packet too big" from the VIP it was sent to.
    #[cold]
    fn too_big(&mut self, pkt: &[u8], info: &PacketInfo, mtu: u32, st: &WorkerStats) {
        let Some(raw) = &self.raw else { return };
        if let Ok(n) = encap::too_big(pkt, info.dst, mtu, &mut self.icmp)
            && raw.send(&self.icmp[..n]).is_ok()
        {
            st.too_big.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn unreachable_path(st: &WorkerStats) -> Disposition {
    st.no_path.fetch_add(1, Ordering::Relaxed);
    Disposition::Drop
}

/// IPv6 is never fragmented on the way; IPv4 only without DF.
fn must_not_fragment(pkt: &[u8], info: &PacketInfo) -> bool {
    match info.version {
        IpVersion::V6 => true,
        IpVersion::V4 => pkt.get(6).is_some_and(|b| b & 0x40 != 0),
    }
}

/// Give back the TTL / hop limit the TUN's forwarding took (none at 255: there is nothing to give back).
fn restore_ttl(pkt: &mut [u8], info: &mut PacketInfo) {
    let _ = rvs_wire::rewrite::adjust_ttl(pkt, info, 1);
}

/// A hash of the flow (GUE source port): one flow, one port.
fn flow_hash(info: &PacketInfo) -> u32 {
    let ports = match info.transport {
        Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport } => (sport, dport),
        _ => (0, 0),
    };
    flow_hash_of(info.src, info.dst, info.protocol, ports)
}

/// The flow hash of packets `src:ports.0 -> dst:ports.1` of `protocol`: what the slow path hashes per packet, and
/// what the fast path's GUE entries are given once, so both paths send a flow from the same GUE source port.
pub fn flow_hash_of(src: IpAddr, dst: IpAddr, protocol: u8, ports: (u16, u16)) -> u32 {
    let h =
        foldhash::fast::FixedState::with_seed(0x6775_6520).hash_one((src, dst, protocol, ports));
    (h >> 32) as u32 ^ h as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_given_back_with_a_valid_checksum() {
        let b =
            etherparse::PacketBuilder::ipv4([198, 51, 100, 10], [198, 51, 100, 100], 62).udp(1, 2);
        let mut p = Vec::new();
        b.write(&mut p, b"x").expect("build");
        let mut info = rvs_wire::parse(&p).expect("parse");
        restore_ttl(&mut p, &mut info);
        assert_eq!(p[8], 63);
        assert_eq!(info.ttl, 63);
        assert!(rvs_wire::checksum::ipv4_header_ok(&p));
        p[8] = 255;
        let mut info = rvs_wire::parse(&p).expect("parse");
        let before = p.clone();
        restore_ttl(&mut p, &mut info);
        assert_eq!(p, before);
    }

    #[test]
    fn without_paths_route_and_tunnel_are_counted_drops() {
        let st = WorkerStats::default();
        let mut mx = MethodTx::disabled();
        let b =
            etherparse::PacketBuilder::ipv4([198, 51, 100, 10], [198, 51, 100, 100], 62).udp(1, 2);
        let mut p = Vec::new();
        b.write(&mut p, b"x").expect("build");
        let mut info = rvs_wire::parse(&p).expect("parse");
        let rip: IpAddr = [203, 0, 113, 11].into();
        assert_eq!(
            mx.route(&mut p, &mut info, &VnetHdr::default(), rip, &st),
            Disposition::Drop
        );
        assert_eq!(
            mx.tunnel(
                &mut p,
                &mut info,
                &VnetHdr::default(),
                rip,
                &TunnelConfig::default(),
                &st
            ),
            Disposition::Drop
        );
        assert_eq!(st.no_path.load(Ordering::Relaxed), 2);
    }
}
