//! Byte-for-byte fixtures written from the kernel's structs (ip_vs_sync.c: ip_vs_sync_mesg,
//! ip_vs_sync_v4, ip_vs_sync_v6, ip_vs_sync_conn_options, ip_vs_sync_mesg_v0,
//! ip_vs_sync_conn_v0), truncation and lying-length tests.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_sync::wire::{CONN_V4_LEN, CONN_V6_LEN, HEADER_LEN};
use rvs_sync::{MessageBuilder, Seq, SeqOptions, SyncConn, SyncError, Version, flags, parse};

/// Parses into a fresh vector: `Ok(entries)` or the error (the vector then empty).
fn pe(m: &[u8]) -> Result<usize, SyncError> {
    let mut out = Vec::new();
    let r = parse(m, &mut out).map(|_| out.len());
    if r.is_err() {
        assert!(out.is_empty());
    }
    r
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Version 1, syncid 7, one IPv4 TCP connection in ESTABLISHED (state 1), masq, 900 s.
const V1_TCP4: [u8; 44] = [
    // ip_vs_sync_mesg: reserved, syncid, size (44), nr_conns, version, spare
    0x00, 0x07, 0x00, 0x2c, 0x01, 0x01, 0x00, 0x00,
    // ip_vs_sync_v4: type 0, protocol 6, ver_size (version 0, size 36)
    0x00, 0x06, 0x00, 0x24, // flags (IP_VS_CONN_F_MASQ, active)
    0x00, 0x00, 0x00, 0x00, // state 1, cport 40000
    0x00, 0x01, 0x9c, 0x40, // vport 80, dport 8080
    0x00, 0x50, 0x1f, 0x90, // fwmark 0
    0x00, 0x00, 0x00, 0x00, // timeout 900 s
    0x00, 0x00, 0x03, 0x84,
    // caddr 198.51.100.7, vaddr 198.51.100.250, daddr 203.0.113.10
    198, 51, 100, 7, 198, 51, 100, 250, 203, 0, 113, 10,
];

fn tcp4() -> SyncConn<'static> {
    SyncConn {
        protocol: 6,
        flags: flags::MASQ,
        state: 1,
        caddr: v4(198, 51, 100, 7),
        cport: 40000,
        vaddr: v4(198, 51, 100, 250),
        vport: 80,
        daddr: v4(203, 0, 113, 10),
        dport: 8080,
        fwmark: 0,
        timeout_s: 900,
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

/// Version 1, syncid 0: an IPv4 UDP connection with sequence data (size 62), 2 bytes of
/// padding, then an IPv6 persistence template (size 72). 8 + 62 + 2 + 72 = 144 bytes.
fn v1_udp4_seq_then_tpl6() -> Vec<u8> {
    let mut m = vec![0x00, 0x00, 0x00, 144, 0x02, 0x01, 0x00, 0x00];
    // ip_vs_sync_v4: type 0, UDP, size 62 (36 + 2 + 24)
    m.extend_from_slice(&[0x00, 17, 0x00, 62]);
    // flags: INACTIVE | IN_SEQ | OUT_SEQ (0x0700)
    m.extend_from_slice(&[0x00, 0x00, 0x07, 0x00]);
    // state 0, cport 5353, vport 53, dport 53
    m.extend_from_slice(&[0x00, 0x00, 0x14, 0xe9, 0x00, 0x35, 0x00, 0x35]);
    // fwmark 9, timeout 300
    m.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0x01, 0x2c]);
    m.extend_from_slice(&[198, 51, 100, 8, 198, 51, 100, 251, 203, 0, 113, 11]);
    // option IPVS_OPT_SEQ_DATA, 24 bytes: in_seq {1, 2, 3}, out_seq {4, 5, 0xdeadbeef}
    m.extend_from_slice(&[1, 24]);
    for v in [1u32, 2, 3, 4, 5, 0xdead_beef] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    // padding to 32 bits
    m.extend_from_slice(&[0, 0]);
    // ip_vs_sync_v6: type STYPE_F_INET6, TCP, size 72
    m.extend_from_slice(&[0x01, 6, 0x00, 72]);
    // flags TEMPLATE (0x1000)
    m.extend_from_slice(&[0x00, 0x00, 0x10, 0x00]);
    // state 0, cport 0, vport 443, dport 443
    m.extend_from_slice(&[0, 0, 0, 0, 0x01, 0xbb, 0x01, 0xbb]);
    // fwmark 0, timeout 360
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x01, 0x68]);
    for a in ["2001:db8::7", "2001:db8::1", "2001:db8:1::10"] {
        m.extend_from_slice(&a.parse::<Ipv6Addr>().unwrap().octets());
    }
    assert_eq!(m.len(), 144);
    m
}

fn udp4_seq() -> SyncConn<'static> {
    SyncConn {
        protocol: 17,
        flags: flags::INACTIVE | flags::SEQ_MASK,
        state: 0,
        caddr: v4(198, 51, 100, 8),
        cport: 5353,
        vaddr: v4(198, 51, 100, 251),
        vport: 53,
        daddr: v4(203, 0, 113, 11),
        dport: 53,
        fwmark: 9,
        timeout_s: 300,
        seq: Some(SeqOptions {
            in_seq: Seq {
                init_seq: 1,
                delta: 2,
                previous_delta: 3,
            },
            out_seq: Seq {
                init_seq: 4,
                delta: 5,
                previous_delta: 0xdead_beef,
            },
        }),
        pe_data: None,
        pe_name: None,
    }
}

fn tpl6() -> SyncConn<'static> {
    SyncConn {
        protocol: 6,
        flags: flags::TEMPLATE,
        state: 0,
        caddr: "2001:db8::7".parse().unwrap(),
        cport: 0,
        vaddr: "2001:db8::1".parse().unwrap(),
        vport: 443,
        daddr: "2001:db8:1::10".parse().unwrap(),
        dport: 443,
        fwmark: 0,
        timeout_s: 360,
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

/// Version 0, syncid 3: a TCP connection in SYN_RECV (inactive), then one in ESTABLISHED with
/// sequence data (host order, x86). 4 + 24 + 48 = 76 bytes.
fn v0_two() -> Vec<u8> {
    let mut m = vec![2, 3, 0, 76];
    // ip_vs_sync_conn_v0: reserved, protocol, cport, vport, dport
    m.extend_from_slice(&[0, 6, 0x9c, 0x41, 0x00, 0x50, 0x00, 0x50]);
    m.extend_from_slice(&[198, 51, 100, 9, 198, 51, 100, 250, 203, 0, 113, 12]);
    // flags 0x0100 (INACTIVE), state 3 (SYN_RECV)
    m.extend_from_slice(&[0x01, 0x00, 0x00, 0x03]);
    m.extend_from_slice(&[0, 6, 0x9c, 0x42, 0x00, 0x50, 0x00, 0x50]);
    m.extend_from_slice(&[198, 51, 100, 9, 198, 51, 100, 250, 203, 0, 113, 12]);
    // flags 0x0600 (seq), state 1
    m.extend_from_slice(&[0x06, 0x00, 0x00, 0x01]);
    for v in [10u32, 20, 30, 40, 50, 60] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(m.len(), 76);
    m
}

#[test]
fn v1_ipv4_tcp_parses_and_builds_byte_for_byte() {
    let mut out = Vec::new();
    let h = parse(&V1_TCP4, &mut out).unwrap();
    assert_eq!(h.version, Version::V1);
    assert_eq!((h.syncid, h.size, h.nr_conns), (7, 44, 1));
    assert_eq!(out, vec![tcp4()]);
    let mut b = MessageBuilder::new(7, 1472);
    b.push(&tcp4()).unwrap();
    assert_eq!(b.as_bytes(), &V1_TCP4[..]);
}

#[test]
fn v1_options_padding_ipv6_template() {
    let m = v1_udp4_seq_then_tpl6();
    let mut out = Vec::new();
    let h = parse(&m, &mut out).unwrap();
    assert_eq!((h.version, h.syncid, h.nr_conns), (Version::V1, 0, 2));
    assert_eq!(out, vec![udp4_seq(), tpl6()]);
    assert!(out[1].is_template() && out[1].is_ipv6());
    let mut b = MessageBuilder::new(0, 1472);
    b.push(&udp4_seq()).unwrap();
    b.push(&tpl6()).unwrap();
    assert_eq!(b.as_bytes(), &m[..]);
}

#[test]
fn v1_persistence_engine_options() {
    let mut c = tcp4();
    c.pe_name = Some(b"sip");
    c.pe_data = Some(b"call");
    let mut b = MessageBuilder::new(1, 1472);
    b.push(&c).unwrap();
    let m = b.as_bytes().to_vec();
    assert_eq!(m.len(), HEADER_LEN + CONN_V4_LEN + 2 + 4 + 2 + 3);
    // PE data (type 2) before PE name (type 3), as ip_vs_sync_conn writes them.
    assert_eq!(
        &m[44..],
        &[2, 4, b'c', b'a', b'l', b'l', 3, 3, b's', b'i', b'p']
    );
    let mut out = Vec::new();
    parse(&m, &mut out).unwrap();
    assert_eq!(out, vec![c]);
}

#[test]
fn v0_reads() {
    let m = v0_two();
    let mut out = Vec::new();
    let h = parse(&m, &mut out).unwrap();
    assert_eq!((h.version, h.syncid, h.nr_conns), (Version::V0, 3, 2));
    assert_eq!(out[0].flags, flags::INACTIVE);
    assert_eq!(
        (out[0].state, out[0].cport, out[0].timeout_s),
        (3, 40001, 0)
    );
    assert_eq!(out[0].daddr, v4(203, 0, 113, 12));
    assert_eq!(out[1].state, 1);
    let s = out[1].seq.unwrap();
    assert_eq!((s.in_seq.init_seq, s.out_seq.previous_delta), (10, 60));
}

#[test]
fn every_truncation_is_rejected_whole() {
    for m in [V1_TCP4.to_vec(), v1_udp4_seq_then_tpl6(), v0_two()] {
        for n in 0..m.len() {
            let mut t = m[..n].to_vec();
            // Also with the size field made to agree with the truncated length.
            assert!(pe(&t).is_err(), "prefix {n}");
            if n >= 4 {
                t[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                if n == 4 && t[0] == 0 {
                    // Four bytes with a first byte 0 are an empty version-0 message.
                    assert_eq!(pe(&t), Ok(0));
                } else {
                    assert!(pe(&t).is_err(), "prefix {n} with size {n}");
                }
            }
        }
    }
}

#[test]
fn lying_lengths() {
    // Header size larger / smaller than the datagram.
    let mut m = V1_TCP4;
    m[3] = 45;
    assert_eq!(pe(&m), Err(SyncError::BadSize { size: 45, len: 44 }));
    // Entry size larger than the message.
    let mut m = V1_TCP4;
    m[11] = 40;
    assert_eq!(pe(&m), Err(SyncError::EntryOverrun));
    // Entry size smaller than its fixed part.
    let mut m = V1_TCP4;
    m[11] = 32;
    assert_eq!(pe(&m), Err(SyncError::EntryTooShort));
    // nr_conns says 2, only one entry there.
    let mut m = V1_TCP4;
    m[4] = 2;
    assert_eq!(pe(&m), Err(SyncError::Truncated));
    // nr_conns says 0: the entry is trailing garbage.
    let mut m = V1_TCP4;
    m[4] = 0;
    assert_eq!(pe(&m), Err(SyncError::TrailingBytes(36)));
    // Entry version 1 (top 4 bits of ver_size).
    let mut m = V1_TCP4;
    m[10] = 0x10;
    assert_eq!(pe(&m), Err(SyncError::EntryVersion(1)));
    // Unknown entry type.
    let mut m = V1_TCP4;
    m[8] = 2;
    assert_eq!(pe(&m), Err(SyncError::EntryType(2)));
    // IPv6 type on an IPv4-sized entry.
    let mut m = V1_TCP4;
    m[8] = 1;
    assert_eq!(pe(&m), Err(SyncError::EntryTooShort));
    // Non-zero padding between entries.
    let mut m = v1_udp4_seq_then_tpl6();
    m[71] = 1;
    assert_eq!(pe(&m), Err(SyncError::BadPadding));
    // A lie in the second entry rejects the first one too.
    let mut m = v1_udp4_seq_then_tpl6();
    m[75] = 200;
    assert!(pe(&m).is_err());
    // Version-0 with the seq flag but no seq data.
    let mut m = v0_two();
    m[24] = 0x06;
    assert!(pe(&m).is_err());
}

fn with_option(opt: &[u8]) -> Vec<u8> {
    let mut m = V1_TCP4.to_vec();
    m.extend_from_slice(opt);
    let n = m.len();
    m[3] = n as u8;
    m[11] = (CONN_V4_LEN + opt.len()) as u8;
    m
}

#[test]
fn options_are_checked() {
    // Unknown optional parameter (F_PARAM set): skipped.
    let m = with_option(&[0x40 | 9, 2, 0xaa, 0xbb]);
    let mut out = Vec::new();
    parse(&m, &mut out).unwrap();
    assert_eq!(out, vec![tcp4()]);
    // Unknown mandatory parameter: rejected.
    assert_eq!(
        pe(&with_option(&[9, 2, 0xaa, 0xbb])),
        Err(SyncError::UnknownOption(9))
    );
    // Zero length, length past the entry, a lone type byte.
    for o in [&[2u8, 0][..], &[2, 5, 1, 2], &[2]] {
        assert_eq!(pe(&with_option(o)), Err(SyncError::BadOption));
    }
    // Sequence data of the wrong size, twice, PE name too long.
    let mut seq = vec![1u8, 24];
    seq.extend_from_slice(&[0; 24]);
    pe(&with_option(&seq)).unwrap();
    let mut twice = seq.clone();
    twice.extend_from_slice(&seq);
    assert_eq!(pe(&with_option(&twice)), Err(SyncError::BadOption));
    assert_eq!(
        pe(&with_option(&[1, 4, 0, 0, 0, 0])),
        Err(SyncError::BadOption)
    );
    let mut name = vec![3u8, 17];
    name.extend_from_slice(&[b'x'; 17]);
    assert_eq!(pe(&with_option(&name)), Err(SyncError::BadOption));
}

#[test]
fn builder_respects_maxlen_and_255_entries() {
    // Room for the header and two IPv4 entries (8 + 36 + 36).
    let mut b = MessageBuilder::new(5, 80);
    let c = tcp4();
    b.push(&c).unwrap();
    b.push(&c).unwrap();
    assert!(!b.fits(&c));
    assert!(b.push(&c).is_err());
    let m = b.take();
    assert_eq!(m.len(), 80);
    assert!(b.is_empty());
    // An IPv6 entry larger than maxlen still goes out alone.
    let mut b = MessageBuilder::new(5, 40);
    b.push(&tpl6()).unwrap();
    assert_eq!(b.as_bytes().len(), HEADER_LEN + CONN_V6_LEN);
    let mut b = MessageBuilder::new(5, 65_507);
    for _ in 0..255 {
        b.push(&c).unwrap();
    }
    assert!(b.push(&c).is_err());
    let m = b.take();
    let mut out = Vec::new();
    assert_eq!(parse(&m, &mut out).unwrap().nr_conns, 255);
    // Mixed families cannot be encoded.
    let mut bad = c;
    bad.daddr = "2001:db8::1".parse().unwrap();
    assert!(MessageBuilder::new(0, 1472).push(&bad).is_err());
}

#[test]
fn fuzz_seeds_stay_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/sync_parse");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(pe(&bytes).is_ok(), name.starts_with("ok_"), "{name}");
        n += 1;
    }
    assert!(n >= 5);
}
