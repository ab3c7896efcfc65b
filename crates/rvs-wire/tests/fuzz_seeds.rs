//! The fuzz seed corpus (fuzz/seeds/wire_parse) must be valid packets with correct checksums,
//! so the fuzzer's checksum oracle starts from real packets; and rewriting each of them keeps
//! every checksum right.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use rvs_wire::checksum::{ipv4_header_ok, transport_ok};
use rvs_wire::{IpVersion, Transport, parse, rewrite};

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/wire_parse");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(v.len() >= 10, "seed corpus went missing");
    v
}

#[test]
fn seeds_are_valid_and_survive_rewrites() {
    for (name, bytes) in seeds() {
        let mut info = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            info.version == IpVersion::V6 || ipv4_header_ok(&bytes),
            "{name}: IPv4 header checksum"
        );
        assert!(transport_ok(&bytes, &info), "{name}: transport checksum");
        let (new, port) = match info.version {
            IpVersion::V4 => (IpAddr::V4(Ipv4Addr::new(203, 0, 113, 200)), 8080),
            IpVersion::V6 => (
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 9)),
                8080,
            ),
        };
        let with_port = matches!(
            info.transport,
            Transport::Tcp { .. } | Transport::Udp { .. }
        );
        let mut b = bytes.clone();
        rewrite::set_dst(&mut b, &mut info, new, with_port.then_some(port)).unwrap();
        rewrite::set_src(&mut b, &mut info, new, with_port.then_some(port + 1)).unwrap();
        rewrite::adjust_ttl(&mut b, &mut info, -1).unwrap();
        if let Transport::Icmp { error: Some(e), .. } = info.transport {
            rewrite::set_inner_src(&mut b, &mut info, new, e.ports.map(|_| 1)).unwrap();
            rewrite::set_inner_dst(&mut b, &mut info, new, e.ports.map(|_| 2)).unwrap();
            if info.version == IpVersion::V4 {
                assert!(
                    ipv4_header_ok(&b[e.inner_offset..]),
                    "{name}: quoted IPv4 header checksum"
                );
            }
        }
        let again = parse(&b).unwrap();
        assert_eq!((again.src, again.dst), (new, new), "{name}");
        assert!(
            info.version == IpVersion::V6 || ipv4_header_ok(&b),
            "{name}: IPv4 header after"
        );
        assert!(transport_ok(&b, &again), "{name}: transport checksum after");
        assert_ne!(b, bytes, "{name}: unchanged?");
    }
}
