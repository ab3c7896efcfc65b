//! rvs-inet: the IP family, defined once for the two leaves that need it and may not know each other.
//!
//! rvs-wire says which family a packet is (`PacketInfo::version`) and rvs-io says which of the kernel's two sets of
//! tables (routes, rules, neighbours) a netlink request is for. Both are "IPv4 or IPv6"; each had its own enum
//! (`rvs_wire::IpVersion`, `rvs_io::netlink::Family`), and rvs-lab a third. rvs-io may not depend on rvs-wire
//! (ARCHITECTURE.md: the I/O crate knows no packet semantics) and rvs-wire may not depend on rvs-io (no I/O, no
//! `unsafe`), so the one type lives here, in a leaf below both with no dependencies at all. rvs-wire re-exports it
//! (`rvs_wire::IpVersion`), so the crates above rvs-wire name it from there.

use std::net::IpAddr;

/// An IP family: IPv4 or IPv6 (a packet's version; a kernel table's `AF_INET` or `AF_INET6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl IpVersion {
    /// Both families, IPv4 first.
    pub const ALL: [IpVersion; 2] = [IpVersion::V4, IpVersion::V6];

    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> IpVersion {
        match addr {
            IpAddr::V4(_) => IpVersion::V4,
            IpAddr::V6(_) => IpVersion::V6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn family_of_an_address() {
        assert_eq!(
            IpVersion::of(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))),
            IpVersion::V4
        );
        assert_eq!(
            IpVersion::of(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpVersion::V6
        );
        // An IPv4-mapped IPv6 address is still an IPv6 address to the kernel's tables.
        let mapped: IpAddr = "::ffff:198.51.100.1".parse().expect("literal");
        assert_eq!(IpVersion::of(mapped), IpVersion::V6);
    }

    #[test]
    fn all_is_v4_then_v6() {
        assert_eq!(IpVersion::ALL, [IpVersion::V4, IpVersion::V6]);
        assert!(
            IpVersion::V4 < IpVersion::V6,
            "ordered sets of families list IPv4 first"
        );
    }
}
