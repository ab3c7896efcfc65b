//! The map layout shared with the XDP program: `#[repr(C)]` mirrors of `bpf/rvs_xdp.h`, with the same size and
//! offset asserts as the C side (a layout change that is not made on both sides fails the build).

use std::net::{IpAddr, SocketAddr};

mod methods;
pub use methods::{ACTF_CSUM, ACTF_OUTER_V6, Encap, OuterCsum};

/// `IPPROTO_TCP` / `IPPROTO_UDP`: the transport protocols the fast path forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum L4 {
    Tcp = 6,
    Udp = 17,
}

/// `struct rvs_flow_key`: what one direction of a connection looks like on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct FlowKey {
    saddr: [u8; 16],
    daddr: [u8; 16],
    /// Network byte order.
    sport: u16,
    /// Network byte order.
    dport: u16,
    proto: u8,
    family: u8,
    pad: [u8; 2],
}

/// `struct rvs_flow`: one direction's rewrite, egress and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Flow {
    new_saddr: [u8; 16],
    new_daddr: [u8; 16],
    new_sport: u16,
    new_dport: u16,
    ifindex: u32,
    dmac: [u8; 6],
    smac: [u8; 6],
    mtu: u16,
    ip_csum_delta: u16,
    l4_csum_delta: u16,
    action: u8,
    action_flags: u8,
    pad1: u32,
    packets: u64,
    bytes: u64,
    last_seen_ns: u64,
}

const _: () = {
    assert!(size_of::<FlowKey>() == 40);
    assert!(std::mem::offset_of!(FlowKey, sport) == 32);
    assert!(std::mem::offset_of!(FlowKey, proto) == 36);
    assert!(size_of::<Flow>() == 88);
    assert!(std::mem::offset_of!(Flow, ifindex) == 36);
    assert!(std::mem::offset_of!(Flow, mtu) == 52);
    assert!(std::mem::offset_of!(Flow, l4_csum_delta) == 56);
    assert!(std::mem::offset_of!(Flow, action) == 58);
    assert!(std::mem::offset_of!(Flow, action_flags) == 59);
    assert!(std::mem::offset_of!(Flow, packets) == 64);
    assert!(std::mem::offset_of!(Flow, last_seen_ns) == 80);
};

// SAFETY: both are #[repr(C)] of integers and byte arrays with every padding byte an explicit field, so any bit
// pattern is valid and there are no uninitialised bytes.
unsafe impl aya::Pod for FlowKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Flow {}

/// `enum rvs_action`: what the program does with a packet of an entry (see /work/team/contract-xdp.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Action {
    /// NAT: addresses and ports rewritten (two entries per connection).
    Masq = 0,
    /// Direct routing: only the Ethernet header (one entry, client -> VIP).
    DirectRoute = 1,
    /// IPIP (IPv4) or IPv6-in-IPv6.
    TunIp = 2,
    TunGue = 3,
    TunGre = 4,
}

impl Action {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Action::Masq,
            1 => Action::DirectRoute,
            2 => Action::TunIp,
            3 => Action::TunGue,
            4 => Action::TunGre,
            _ => return None,
        })
    }
}

/// `enum rvs_stat`: why the program passed a packet up, or that it forwarded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Stat {
    Forwarded = 0,
    PassNotIp = 1,
    PassMalformed = 2,
    PassOptions = 3,
    PassFragment = 4,
    PassProto = 5,
    PassTtl = 6,
    PassTcpFlags = 7,
    PassMiss = 8,
    PassMtu = 9,
    PassUdpNoChecksum6 = 10,
    DropRedirect = 11,
    PassAction = 12,
    PassHeadroom = 13,
}

impl Stat {
    /// Every reason, in index order.
    pub const ALL: [Stat; 14] = [
        Stat::Forwarded,
        Stat::PassNotIp,
        Stat::PassMalformed,
        Stat::PassOptions,
        Stat::PassFragment,
        Stat::PassProto,
        Stat::PassTtl,
        Stat::PassTcpFlags,
        Stat::PassMiss,
        Stat::PassMtu,
        Stat::PassUdpNoChecksum6,
        Stat::DropRedirect,
        Stat::PassAction,
        Stat::PassHeadroom,
    ];

    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Stat::Forwarded => "forwarded",
            Stat::PassNotIp => "pass_not_ip",
            Stat::PassMalformed => "pass_malformed",
            Stat::PassOptions => "pass_options",
            Stat::PassFragment => "pass_fragment",
            Stat::PassProto => "pass_proto",
            Stat::PassTtl => "pass_ttl",
            Stat::PassTcpFlags => "pass_tcp_flags",
            Stat::PassMiss => "pass_miss",
            Stat::PassMtu => "pass_mtu",
            Stat::PassUdpNoChecksum6 => "pass_udp_no_checksum6",
            Stat::DropRedirect => "drop_redirect",
            Stat::PassAction => "pass_action",
            Stat::PassHeadroom => "pass_headroom",
        }
    }
}

/// Number of `rvs_stats` slots.
pub const STAT_COUNT: usize = Stat::ALL.len();

/// Where a forwarded packet leaves: the egress interface (it must also be a tx port of the fast path) and the
/// Ethernet header towards the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Egress {
    pub ifindex: u32,
    /// The next hop's MAC.
    pub dst_mac: [u8; 6],
    /// The egress interface's MAC.
    pub src_mac: [u8; 6],
    /// The largest IP packet the egress takes (its MTU).
    pub mtu: u16,
}

/// A key and a rewrite whose address families differ (the fast path does not translate between families).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("address families of {0} and {1} differ")]
pub struct FamilyMismatch(pub SocketAddr, pub SocketAddr);

fn addr16(a: IpAddr) -> ([u8; 16], u8) {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 6),
    }
}

fn addr_of(b: &[u8; 16], family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(*b)
    }
}

impl FlowKey {
    /// The key of packets from `src` to `dst`.
    pub fn new(proto: L4, src: SocketAddr, dst: SocketAddr) -> Result<Self, FamilyMismatch> {
        let (saddr, fs) = addr16(src.ip());
        let (daddr, fd) = addr16(dst.ip());
        if fs != fd {
            return Err(FamilyMismatch(src, dst));
        }
        Ok(Self {
            saddr,
            daddr,
            sport: src.port().to_be(),
            dport: dst.port().to_be(),
            proto: proto as u8,
            family: fs,
            pad: [0; 2],
        })
    }

    /// Source address and port.
    pub fn src(&self) -> SocketAddr {
        SocketAddr::new(addr_of(&self.saddr, self.family), u16::from_be(self.sport))
    }

    /// Destination address and port.
    pub fn dst(&self) -> SocketAddr {
        SocketAddr::new(addr_of(&self.daddr, self.family), u16::from_be(self.dport))
    }

    /// The transport protocol (None: a value this crate never writes).
    pub fn proto(&self) -> Option<L4> {
        match self.proto {
            6 => Some(L4::Tcp),
            17 => Some(L4::Udp),
            _ => None,
        }
    }

    fn addr_len(&self) -> usize {
        if self.family == 4 { 4 } else { 16 }
    }
}

/// One's-complement sum of big-endian 16-bit words.
fn sum_words(bytes: &[u8], complement: bool) -> u32 {
    bytes
        .chunks(2)
        .map(|c| {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            u32::from(if complement { !w } else { w })
        })
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The delta stored for the program: in memory as the big-endian word (the program adds raw fields to it).
fn stored(delta: u16) -> u16 {
    u16::from_ne_bytes(delta.to_be_bytes())
}

/// The TTL decrement's part of the IPv4 header checksum delta: the word (TTL << 8 | protocol) loses 0x0100, so
/// ~m + m' = 0xffff - 0x0100 whatever the TTL.
const TTL_DECREMENT_DELTA: u32 = 0xfeff;

impl Flow {
    /// The entry for packets matching `key`: they leave as `new_src` -> `new_dst` through `egress`.
    pub fn new(
        key: &FlowKey,
        new_src: SocketAddr,
        new_dst: SocketAddr,
        egress: Egress,
    ) -> Result<Self, FamilyMismatch> {
        let (new_saddr, fs) = addr16(new_src.ip());
        let (new_daddr, fd) = addr16(new_dst.ip());
        if fs != fd || fs != key.family {
            return Err(FamilyMismatch(new_src, new_dst));
        }
        let n = key.addr_len();
        let addr_delta = sum_words(&key.saddr[..n], true)
            + sum_words(&key.daddr[..n], true)
            + sum_words(&new_saddr[..n], false)
            + sum_words(&new_daddr[..n], false);
        let (new_sport, new_dport) = (new_src.port().to_be(), new_dst.port().to_be());
        let port_delta = sum_words(&key.sport.to_ne_bytes(), true)
            + sum_words(&key.dport.to_ne_bytes(), true)
            + sum_words(&new_sport.to_ne_bytes(), false)
            + sum_words(&new_dport.to_ne_bytes(), false);
        let ip_csum_delta = if key.family == 4 {
            stored(fold(addr_delta + TTL_DECREMENT_DELTA))
        } else {
            0
        };
        Ok(Self {
            new_saddr,
            new_daddr,
            new_sport,
            new_dport,
            ifindex: egress.ifindex,
            dmac: egress.dst_mac,
            smac: egress.src_mac,
            mtu: egress.mtu,
            ip_csum_delta,
            l4_csum_delta: stored(fold(addr_delta + port_delta)),
            action: Action::Masq as u8,
            action_flags: 0,
            pad1: 0,
            packets: 0,
            bytes: 0,
            last_seen_ns: 0,
        })
    }

    /// The same entry with its counters and last-seen at zero.
    pub fn without_counters(mut self) -> Self {
        self.packets = 0;
        self.bytes = 0;
        self.last_seen_ns = 0;
        self
    }

    /// The counters the program keeps in this entry.
    pub fn counters(&self) -> FlowCounters {
        FlowCounters {
            packets: self.packets,
            bytes: self.bytes,
            last_seen_ns: self.last_seen_ns,
        }
    }

    /// Where packets of `key` (this entry's key) leave to: (new source, new destination).
    pub fn rewrite(&self, key: &FlowKey) -> (SocketAddr, SocketAddr) {
        (
            SocketAddr::new(
                addr_of(&self.new_saddr, key.family),
                u16::from_be(self.new_sport),
            ),
            SocketAddr::new(
                addr_of(&self.new_daddr, key.family),
                u16::from_be(self.new_dport),
            ),
        )
    }

    /// The egress interface.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The same entry with another action and option bits (the fields' meaning per action: contract-xdp.md).
    pub fn with_action(self, action: Action, flags: u8) -> Self {
        self.with_action_byte(action as u8, flags)
    }

    /// As [`Flow::with_action`] with the raw byte: what another version of rvsd sharing a pinned map may have
    /// written. The program passes packets of an action it does not implement up (`Stat::PassAction`).
    pub fn with_action_byte(mut self, action: u8, flags: u8) -> Self {
        self.action = action;
        self.action_flags = flags;
        self
    }

    /// The entry's action (None: a value this crate does not know; the program passes such packets up).
    pub fn action(&self) -> Option<Action> {
        Action::from_u8(self.action)
    }
}

/// One direction's counters, as the program left them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounters {
    pub packets: u64,
    /// IP (L3) bytes.
    pub bytes: u64,
    /// CLOCK_MONOTONIC_COARSE nanoseconds of the last forwarded packet (0: none yet).
    pub last_seen_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_its_addresses() {
        let s: SocketAddr = "198.51.100.10:40000".parse().expect("addr");
        let d: SocketAddr = "198.51.100.100:80".parse().expect("addr");
        let k = FlowKey::new(L4::Tcp, s, d).expect("key");
        assert_eq!((k.src(), k.dst()), (s, d));
        let s6: SocketAddr = "[2001:db8::10]:40000".parse().expect("addr");
        assert!(FlowKey::new(L4::Udp, s6, d).is_err());
    }

    #[test]
    fn identity_rewrite_has_a_neutral_l4_delta() {
        let s: SocketAddr = "198.51.100.10:40000".parse().expect("addr");
        let d: SocketAddr = "198.51.100.100:80".parse().expect("addr");
        let k = FlowKey::new(L4::Tcp, s, d).expect("key");
        let e = Egress {
            ifindex: 1,
            dst_mac: [0; 6],
            src_mac: [0; 6],
            mtu: 1500,
        };
        let f = Flow::new(&k, s, d, e).expect("flow");
        // ~w + w = 0xffff (negative zero): adding it changes no checksum.
        assert_eq!(f.l4_csum_delta, 0xffff);
    }
}
