//! Advertisement fixtures with checksums computed independently (Python, RFC 1071), as
//! keepalived sends them: v2 (its default), v2 with simple authentication, v3 over IPv4 (with
//! the pseudo-header) and over IPv6.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use rvs_vrrp::wire::{self, build, gratuitous_arp, unsolicited_na};
use rvs_vrrp::{Advert, Auth, Version, VrrpError};

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const SRC: &str = "198.51.100.1";
const GROUP: &str = "224.0.0.18";

/// v2, VRID 51, priority 100, one address 198.51.100.100, no authentication, advert_int 1.
const V2: [u8; 20] = [
    0x21, 51, 100, 1, 0, 1, 0x50, 0x32, 198, 51, 100, 100, 0, 0, 0, 0, 0, 0, 0, 0,
];
/// v3 over IPv4, same instance, interval 100 cs; checksum with the pseudo-header
/// 198.51.100.1 -> 224.0.0.18.
const V3: [u8; 12] = [0x31, 51, 100, 1, 0, 100, 0x35, 0x0b, 198, 51, 100, 100];
/// v2, VRID 7, priority 150, two addresses, simple authentication "secret", advert_int 3.
const V2_AUTH: [u8; 24] = [
    0x21, 7, 150, 2, 1, 3, 0xa4, 0xa9, 198, 51, 100, 100, 203, 0, 113, 100, b's', b'e', b'c', b'r',
    b'e', b't', 0, 0,
];

#[test]
fn v2_keepalived_default() {
    let a = Advert::parse(&V2, v4(SRC), v4(GROUP)).unwrap();
    assert_eq!(
        (a.version, a.vrid, a.priority, a.interval_cs, a.auth),
        (Version::V2, 51, 100, 100, Auth::None)
    );
    assert_eq!(a.addrs().collect::<Vec<_>>(), vec![v4("198.51.100.100")]);
    let mut out = Vec::new();
    build(
        &mut out,
        Version::V2,
        51,
        100,
        100,
        Auth::None,
        &[v4("198.51.100.100")],
        v4(SRC),
        v4(GROUP),
    )
    .unwrap();
    assert_eq!(out, V2);
}

#[test]
fn v2_simple_authentication() {
    let a = Advert::parse(&V2_AUTH, v4(SRC), v4(GROUP)).unwrap();
    let mut pw = [0u8; 8];
    pw[..6].copy_from_slice(b"secret");
    assert_eq!(a.auth, Auth::Simple(pw));
    assert_eq!(a.interval_cs, 300);
    assert_eq!(a.count(), 2);
    let mut out = Vec::new();
    let addrs = [v4("198.51.100.100"), v4("203.0.113.100")];
    build(
        &mut out,
        Version::V2,
        7,
        150,
        300,
        Auth::Simple(pw),
        &addrs,
        v4(SRC),
        v4(GROUP),
    )
    .unwrap();
    assert_eq!(out, V2_AUTH);
}

#[test]
fn v3_ipv4_pseudo_header_checksum() {
    let a = Advert::parse(&V3, v4(SRC), v4(GROUP)).unwrap();
    assert_eq!((a.version, a.interval_cs), (Version::V3, 100));
    let mut out = Vec::new();
    build(
        &mut out,
        Version::V3,
        51,
        100,
        100,
        Auth::None,
        &[v4("198.51.100.100")],
        v4(SRC),
        v4(GROUP),
    )
    .unwrap();
    assert_eq!(out, V3);
    // The same bytes from another source fail: the pseudo-header is covered.
    assert_eq!(
        Advert::parse(&V3, v4("198.51.100.2"), v4(GROUP)),
        Err(VrrpError::Checksum)
    );
}

#[test]
fn v3_ipv6() {
    let mut m = vec![0x31, 51, 200, 1, 0, 100, 0xd9, 0x8d];
    let vip6: std::net::Ipv6Addr = "2001:db8:0:1::100".parse().unwrap();
    m.extend_from_slice(&vip6.octets());
    let (src, dst) = (v4("fe80::1"), IpAddr::V6(wire::GROUP_V6));
    let a = Advert::parse(&m, src, dst).unwrap();
    assert_eq!((a.priority, a.count()), (200, 1));
    assert_eq!(a.addrs().next(), Some(IpAddr::V6(vip6)));
    let mut out = Vec::new();
    build(
        &mut out,
        Version::V3,
        51,
        200,
        100,
        Auth::None,
        &[IpAddr::V6(vip6)],
        src,
        dst,
    )
    .unwrap();
    assert_eq!(out, m);
    // v2 over IPv6 does not exist.
    assert!(
        build(
            &mut out,
            Version::V2,
            51,
            200,
            100,
            Auth::None,
            &[IpAddr::V6(vip6)],
            src,
            dst
        )
        .is_err()
    );
}

#[test]
fn truncations_lies_and_corruption() {
    for m in [&V2[..], &V3[..], &V2_AUTH[..]] {
        for n in 0..m.len() {
            assert!(
                Advert::parse(&m[..n], v4(SRC), v4(GROUP)).is_err(),
                "prefix {n}"
            );
        }
        // Every single-bit flip is caught (checksum, version, type or length).
        for i in 0..m.len() * 8 {
            let mut b = m.to_vec();
            b[i / 8] ^= 1 << (i % 8);
            assert!(Advert::parse(&b, v4(SRC), v4(GROUP)).is_err(), "bit {i}");
        }
    }
    let mut long = V3.to_vec();
    long.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        Advert::parse(&long, v4(SRC), v4(GROUP)),
        Err(VrrpError::BadLength)
    );
    assert_eq!(
        Advert::parse(&V3, v4(SRC), v4("ff02::12")),
        Err(VrrpError::Family)
    );
}

#[test]
fn takeover_frames() {
    let mac = [0x02, 0, 0, 0, 0, 1];
    let f = gratuitous_arp(mac, Ipv4Addr::new(198, 51, 100, 100));
    assert_eq!(&f[0..6], &[0xff; 6]);
    assert_eq!(&f[12..14], &[0x08, 0x06]);
    assert_eq!(&f[20..22], &[0, 1], "request");
    assert_eq!(&f[28..32], &f[38..42], "sender = target address");
    let na = unsolicited_na(
        mac,
        "2001:db8:0:1::100".parse().unwrap(),
        "fe80::1".parse().unwrap(),
    );
    assert_eq!(na[0], 136);
    assert_eq!(na[4], 0x20, "override");
    let ph =
        rvs_wire::checksum::pseudo_header_sum(v4("fe80::1"), v4("ff02::1"), 58, na.len() as u32);
    assert_eq!(
        rvs_wire::checksum::fold(ph + rvs_wire::checksum::sum(&na)),
        0xffff
    );
}
