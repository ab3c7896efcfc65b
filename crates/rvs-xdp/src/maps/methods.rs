//! Entries for the two methods that leave the IP packet alone: direct routing and tunnelling (the program's side is
//! `bpf/rvs_methods.h`). Both have one entry per connection, client -> VIP: the real server answers the client
//! directly, so no reply ever reaches the director.

use std::net::IpAddr;

use super::{Action, Egress, FamilyMismatch, Flow, FlowKey, addr16};

/// `RVS_ACTF_CSUM`: the GUE/GRE checksum option (the program derives the outer checksum from the inner packet's
/// own, as local checksum offload does: see `bpf/rvs_methods.h`).
pub const ACTF_CSUM: u8 = 0x01;
/// `RVS_ACTF_OUTER_V6`: the outer header is IPv6.
pub const ACTF_OUTER_V6: u8 = 0x02;

/// Whether a GUE or GRE tunnel carries a checksum of its own (ipvsadm's `--tun-csum`; GUE's `--tun-remcsum` too,
/// which for complete inner checksums is the same packet: see `bpf/rvs_methods.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OuterCsum {
    /// `--tun-nocsum`: GUE's UDP checksum 0, GRE without the C bit.
    #[default]
    None,
    /// The UDP checksum over the outer pseudo-header, GUE and the inner packet; GRE's over its header and the
    /// inner packet (an 8-byte GRE header).
    Full,
}

/// The encapsulation of a tunnel entry (IPVS's `--tun-type` and checksum option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    /// IPIP (IPv4 inner) or IPv6-in-IP (IPv6 inner).
    Ip,
    /// GUE over UDP from `sport` (the flow-hashed source port, as the slow path picks it) to `dport`
    /// (`--tun-port`).
    Gue {
        sport: u16,
        dport: u16,
        csum: OuterCsum,
    },
    /// GRE without key or sequence.
    Gre { csum: OuterCsum },
}

impl Encap {
    /// Bytes pushed in front of the inner packet with an IPv4 (`outer_v6` false) or IPv6 outer header.
    pub const fn overhead(self, outer_v6: bool) -> u16 {
        let ip = if outer_v6 { 40 } else { 20 };
        ip + match self {
            Encap::Ip => 0,
            Encap::Gue { .. } => 12,
            Encap::Gre {
                csum: OuterCsum::None,
            } => 4,
            Encap::Gre {
                csum: OuterCsum::Full,
            } => 8,
        }
    }

    const fn csum(self) -> OuterCsum {
        match self {
            Encap::Ip => OuterCsum::None,
            Encap::Gue { csum, .. } | Encap::Gre { csum } => csum,
        }
    }
}

impl Flow {
    /// A direct-routing entry for packets matching `key`: the IP packet leaves unchanged in a frame to the real
    /// server's MAC (`egress.dst_mac`).
    pub fn direct(key: &FlowKey, egress: Egress) -> Self {
        Self {
            new_saddr: key.saddr,
            new_daddr: key.daddr,
            new_sport: key.sport,
            new_dport: key.dport,
            ifindex: egress.ifindex,
            dmac: egress.dst_mac,
            smac: egress.src_mac,
            mtu: egress.mtu,
            ip_csum_delta: 0,
            l4_csum_delta: 0,
            action: Action::DirectRoute as u8,
            action_flags: 0,
            pad1: 0,
            packets: 0,
            bytes: 0,
            last_seen_ns: 0,
        }
    }

    /// A tunnel entry for packets matching `key`: encapsulated by `encap` from `outer_src` (the director) to
    /// `outer_dst` (the real server), leaving through `egress` (whose `mtu` is the interface's: the entry keeps
    /// that minus the overhead, so a packet that would not fit after encapsulation goes up to the slow path).
    /// The outer family may differ from the key's (IPVS allows it for tunnels); both outer addresses must share one.
    pub fn tunnel(
        encap: Encap,
        outer_src: IpAddr,
        outer_dst: IpAddr,
        egress: Egress,
    ) -> Result<Self, FamilyMismatch> {
        let (new_saddr, fs) = addr16(outer_src);
        let (new_daddr, fd) = addr16(outer_dst);
        if fs != fd {
            return Err(FamilyMismatch(
                std::net::SocketAddr::new(outer_src, 0),
                std::net::SocketAddr::new(outer_dst, 0),
            ));
        }
        let outer_v6 = fs == 6;
        let (action, new_sport, new_dport) = match encap {
            Encap::Ip => (Action::TunIp, 0, 0),
            Encap::Gue { sport, dport, .. } => (Action::TunGue, sport.to_be(), dport.to_be()),
            Encap::Gre { .. } => (Action::TunGre, 0, 0),
        };
        let csum = match encap.csum() {
            OuterCsum::None => 0,
            OuterCsum::Full => ACTF_CSUM,
        };
        Ok(Self {
            new_saddr,
            new_daddr,
            new_sport,
            new_dport,
            ifindex: egress.ifindex,
            dmac: egress.dst_mac,
            smac: egress.src_mac,
            mtu: egress.mtu.saturating_sub(encap.overhead(outer_v6)),
            ip_csum_delta: 0,
            l4_csum_delta: 0,
            action: action as u8,
            action_flags: csum | if outer_v6 { ACTF_OUTER_V6 } else { 0 },
            pad1: 0,
            packets: 0,
            bytes: 0,
            last_seen_ns: 0,
        })
    }

    /// Whether this entry forwards as `expected` does: the same action and options, and the same rewrite or outer
    /// addresses and ports, whatever the egress, next hop and counters. How a restarted rvsd checks an entry a
    /// previous run left against the one it would install for the core's connection now.
    pub fn forwards_as(&self, expected: &Flow) -> bool {
        (
            self.action,
            self.action_flags,
            self.new_saddr,
            self.new_daddr,
            self.new_sport,
            self.new_dport,
        ) == (
            expected.action,
            expected.action_flags,
            expected.new_saddr,
            expected.new_daddr,
            expected.new_sport,
            expected.new_dport,
        )
    }

    /// The largest incoming IP packet this entry forwards (for a tunnel: the egress MTU minus the overhead).
    pub fn mtu(&self) -> u16 {
        self.mtu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FlowKey {
        FlowKey::new(
            super::super::L4::Tcp,
            "198.51.100.10:40000".parse().expect("addr"),
            "198.51.100.100:80".parse().expect("addr"),
        )
        .expect("key")
    }

    const E: Egress = Egress {
        ifindex: 3,
        dst_mac: [2, 0, 0, 0, 0, 0x11],
        src_mac: [2, 0, 0, 0, 0, 2],
        mtu: 1500,
    };

    #[test]
    fn a_tunnel_entry_keeps_room_for_its_headers() {
        let ip = |a: &str| a.parse::<IpAddr>().expect("addr");
        let ipip = Flow::tunnel(Encap::Ip, ip("203.0.113.1"), ip("203.0.113.11"), E).expect("ipip");
        assert_eq!(
            (ipip.mtu(), ipip.action, ipip.action_flags),
            (1480, Action::TunIp as u8, 0)
        );
        let gue = Encap::Gue {
            sport: 40001,
            dport: 5555,
            csum: OuterCsum::None,
        };
        let g6 = Flow::tunnel(gue, ip("2001:db8::1"), ip("2001:db8::11"), E).expect("gue6");
        assert_eq!((g6.mtu(), g6.action_flags), (1500 - 52, ACTF_OUTER_V6));
        assert_eq!(u16::from_be(g6.new_dport), 5555);
        let gue = Encap::Gue {
            sport: 40001,
            dport: 5555,
            csum: OuterCsum::Full,
        };
        let g4 = Flow::tunnel(gue, ip("203.0.113.1"), ip("203.0.113.11"), E).expect("gue4");
        assert_eq!((g4.mtu(), g4.action_flags), (1500 - 32, ACTF_CSUM));
        let gre = Encap::Gre {
            csum: OuterCsum::None,
        };
        let gre = Flow::tunnel(gre, ip("203.0.113.1"), ip("203.0.113.11"), E).expect("gre");
        assert_eq!((gre.mtu(), gre.action_flags), (1476, 0));
        let gre = Encap::Gre {
            csum: OuterCsum::Full,
        };
        let gre = Flow::tunnel(gre, ip("2001:db8::1"), ip("2001:db8::11"), E).expect("gre csum");
        assert_eq!(
            (gre.mtu(), gre.action_flags),
            (1500 - 48, ACTF_CSUM | ACTF_OUTER_V6)
        );
        assert!(Flow::tunnel(Encap::Ip, ip("203.0.113.1"), ip("2001:db8::11"), E).is_err());
    }

    #[test]
    fn an_entry_forwards_as_another_whatever_its_egress_and_counters() {
        let ip = |a: &str| a.parse::<IpAddr>().expect("addr");
        let gue = |csum| Encap::Gue {
            sport: 40001,
            dport: 5555,
            csum,
        };
        let t = |e, rip| Flow::tunnel(e, ip("203.0.113.1"), ip(rip), E).expect("tunnel");
        let other = Egress {
            ifindex: 9,
            dst_mac: [2, 0, 0, 0, 0, 0x99],
            ..E
        };
        let mut moved = Flow::tunnel(
            gue(OuterCsum::None),
            ip("203.0.113.1"),
            ip("203.0.113.11"),
            other,
        )
        .expect("tunnel");
        moved.packets = 7;
        assert!(moved.forwards_as(&t(gue(OuterCsum::None), "203.0.113.11")));
        assert!(!moved.forwards_as(&t(gue(OuterCsum::Full), "203.0.113.11")));
        assert!(!moved.forwards_as(&t(gue(OuterCsum::None), "203.0.113.12")));
        assert!(!moved.forwards_as(&t(Encap::Ip, "203.0.113.11")));
        let k = key();
        assert!(Flow::direct(&k, other).forwards_as(&Flow::direct(&k, E)));
        assert!(!Flow::direct(&k, E).forwards_as(&t(Encap::Ip, "203.0.113.11")));
    }

    #[test]
    fn a_direct_entry_rewrites_nothing_but_the_frame() {
        let k = key();
        let f = Flow::direct(&k, E);
        assert_eq!((f.new_saddr, f.new_daddr), (k.saddr, k.daddr));
        assert_eq!((f.new_sport, f.new_dport), (k.sport, k.dport));
        assert_eq!(
            (f.action, f.mtu(), f.dmac),
            (Action::DirectRoute as u8, 1500, E.dst_mac)
        );
    }
}
