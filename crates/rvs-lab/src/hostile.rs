//! Hostile traffic for the reliability tests and runs: malformed packets of every kind the issue lists, and a SYN
//! flood from random spoofed sources, sent from a raw socket (IP_HDRINCL) in the namespace of the calling thread
//! (the lab's client namespace: see `Lab::in_client`). Sources are drawn from 198.18.0.0/15 (benchmark range); the
//! director never answers them anywhere but back into the lab.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rvs_wire::{IcmpPacket, Ipv4Packet, TcpPacket};

use crate::error::{LabError, Result};

/// A raw IPv4 socket that sends whole packets (header included).
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
}

impl RawSender {
    /// Needs CAP_NET_RAW (the lab runs as root).
    pub fn new() -> Result<RawSender> {
        // SAFETY: socket() has no memory preconditions; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        if fd < 0 {
            return Err(LabError::io("raw socket")(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(RawSender { fd })
    }

    /// Sends one packet to the IPv4 destination written in its header (bytes 16..20; `to` when shorter). Errors
    /// (the kernel refuses some malformed headers) are returned, not fatal.
    pub fn send(&self, pkt: &[u8], to: Ipv4Addr) -> std::io::Result<()> {
        let dst = SocketAddrV4::new(to, 0);
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(*dst.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: pkt and sa are valid for the lengths given for the duration of the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                std::ptr::from_ref(&sa).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

/// An IPv4 TCP segment with correct checksums.
pub fn tcp4(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut seg = Vec::with_capacity(20 + payload.len());
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&[
        0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    seg.extend_from_slice(payload);
    TcpPacket::new_unchecked(&mut seg[..]).fill_checksum(src.into(), dst.into());
    ip4(src, dst, 6, &[], &seg)
}

/// An IPv4 packet around `payload` with `options` (a multiple of 4 bytes), header checksum filled.
pub fn ip4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let hl = 20 + options.len();
    let total = u16::try_from(hl + payload.len())
        .unwrap_or(u16::MAX)
        .to_be_bytes();
    let mut p = vec![
        0x40 | (hl / 4) as u8,
        0,
        total[0],
        total[1],
        0x12,
        0x34,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    p.extend_from_slice(payload);
    Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
    p
}

fn refill_ip_checksum(p: &mut [u8]) {
    if p.len() >= 20 {
        p[10] = 0;
        p[11] = 0;
        let hl = (usize::from(p[0] & 0xf) * 4).clamp(20, p.len());
        let sum = rvs_wire::checksum::checksum(&p[..hl]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

/// Malformed and hostile packets from `client` to `vip:80`, by name: truncated and lying headers, bad checksums,
/// IP options, fragments, ICMP errors quoting nonsense, scan flag combinations.
pub fn malformed(client: Ipv4Addr, vip: Ipv4Addr) -> Vec<(&'static str, Vec<u8>)> {
    let good = tcp4(client, 40_000, vip, 80, SYN, b"");
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    out.push(("truncated to 10 bytes", good[..10].to_vec()));
    out.push(("IP header only", {
        let mut p = good[..20].to_vec();
        refill_ip_checksum(&mut p);
        p
    }));
    out.push(("TCP header cut at 8 bytes", {
        let mut p = good[..28].to_vec();
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        refill_ip_checksum(&mut p);
        p
    }));
    out.push(("total length beyond the packet", {
        let mut p = good.clone();
        p[2..4].copy_from_slice(&1500u16.to_be_bytes());
        refill_ip_checksum(&mut p);
        p
    }));
    out.push(("total length shorter than the header", {
        let mut p = good.clone();
        p[2..4].copy_from_slice(&12u16.to_be_bytes());
        refill_ip_checksum(&mut p);
        p
    }));
    out.push(("IHL 3 (below the minimum)", {
        let mut p = good.clone();
        p[0] = 0x43;
        p
    }));
    out.push(("IHL 15 beyond the data", {
        let mut p = good.clone();
        p[0] = 0x4f;
        refill_ip_checksum(&mut p);
        p
    }));
    out.push(("TCP data offset 15 beyond the segment", {
        let mut p = good.clone();
        p[32] = 0xf0;
        p
    }));
    out.push(("TCP data offset 2 (below the minimum)", {
        let mut p = good.clone();
        p[32] = 0x20;
        p
    }));
    out.push(("bad IPv4 header checksum", {
        let mut p = good.clone();
        p[10] ^= 0x55;
        p
    }));
    out.push(("bad TCP checksum", {
        let mut p = good.clone();
        p[36] ^= 0x55;
        p
    }));
    out.push((
        "IP options (NOP, NOP, record route)",
        tcp_with_options(client, vip),
    ));
    out.push(("first fragment (MF)", {
        let mut p = tcp4(client, 40_001, vip, 80, SYN, &[0u8; 64]);
        p[6] = 0x20;
        refill_ip_checksum(&mut p);
        p
    }));
    out.push(("middle fragment (offset 8, MF)", {
        let mut p = tcp4(client, 40_002, vip, 80, ACK, &[0u8; 64]);
        p[6] = 0x20;
        p[7] = 1;
        refill_ip_checksum(&mut p);
        p
    }));
    out.push(("ICMP error quoting nonsense", {
        let mut m = vec![3, 3, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&[0x45, 0, 0, 40, 0xde, 0xad, 0xbe, 0xef]);
        m.extend_from_slice(&[0xaa; 20]);
        IcmpPacket::new_unchecked(&mut m[..]).fill_checksum();
        ip4(client, vip, 1, &[], &m)
    }));
    out.push(("ICMP error quoting a truncated header", {
        let mut m = vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        m.extend_from_slice(&good[..12]);
        IcmpPacket::new_unchecked(&mut m[..]).fill_checksum();
        ip4(client, vip, 1, &[], &m)
    }));
    out.push((
        "ICMP error quoting a connection from the VIP to a stranger",
        {
            let inner = tcp4(vip, 80, Ipv4Addr::new(198, 18, 0, 1), 5555, ACK, b"");
            let mut m = vec![3, 3, 0, 0, 0, 0, 0, 0];
            m.extend_from_slice(&inner[..28]);
            IcmpPacket::new_unchecked(&mut m[..]).fill_checksum();
            ip4(client, vip, 1, &[], &m)
        },
    ));
    for (name, flags) in [
        ("NULL scan (no flags)", 0u8),
        ("FIN scan", FIN),
        ("XMAS scan (FIN PSH URG)", FIN | PSH | URG),
        ("SYN+FIN", SYN | FIN),
        ("SYN+RST", SYN | RST),
        ("all flags", 0xff),
        ("ACK scan", ACK),
    ] {
        out.push((
            name,
            tcp4(client, 41_000 + u16::from(flags), vip, 80, flags, b""),
        ));
    }
    out.push(("UDP with a lying length", {
        let mut u = vec![0x9c, 0x40, 0, 53, 0x10, 0, 0, 0];
        u.extend_from_slice(b"query");
        ip4(client, vip, 17, &[], &u)
    }));
    out.push(("version 6 in an IPv4 packet", {
        let mut p = good.clone();
        p[0] = 0x65;
        p
    }));
    out.push((
        "unknown protocol 253",
        ip4(client, vip, 253, &[], &[1, 2, 3, 4]),
    ));
    out
}

fn tcp_with_options(client: Ipv4Addr, vip: Ipv4Addr) -> Vec<u8> {
    let mut seg = vec![
        0x9c, 0x41, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, SYN, 0xff, 0xff, 0, 0, 0, 0,
    ];
    TcpPacket::new_unchecked(&mut seg[..]).fill_checksum(client.into(), vip.into());
    // NOP, NOP, record route (len 7, pointer 4, one empty slot), end of options.
    ip4(client, vip, 6, &[1, 1, 7, 7, 4, 0, 0, 0, 0, 0, 0, 0], &seg)
}

/// What a flood sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloodReport {
    pub sent: u64,
    pub refused: u64,
    pub secs: f64,
}

/// SYNs to `vip:port` from random sources in 198.18.0.0/15 and random ports, as fast as the socket takes them
/// (or at most `max_pps` a second), for `duration`. Call from a thread inside the sending namespace.
pub fn syn_flood(
    vip: Ipv4Addr,
    port: u16,
    duration: Duration,
    max_pps: Option<u64>,
) -> Result<FloodReport> {
    let tx = RawSender::new()?;
    let start = Instant::now();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    let mut r = FloodReport::default();
    let mut pkt = tcp4(Ipv4Addr::new(198, 18, 0, 1), 1024, vip, port, SYN, b"");
    while start.elapsed() < duration {
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let src = Ipv4Addr::from(0xc612_0000u32 | (x as u32 & 0x1_ffff));
            let sport = 1024 | (x >> 32) as u16;
            pkt[12..16].copy_from_slice(&src.octets());
            pkt[20..22].copy_from_slice(&sport.to_be_bytes());
            pkt[24..28].copy_from_slice(&((x >> 16) as u32).to_be_bytes());
            refill_ip_checksum(&mut pkt);
            {
                let seg = &mut pkt[20..];
                seg[16] = 0;
                seg[17] = 0;
                TcpPacket::new_unchecked(seg).fill_checksum(src.into(), vip.into());
            }
            match tx.send(&pkt, vip) {
                Ok(()) => r.sent += 1,
                Err(_) => r.refused += 1,
            }
        }
        if let Some(max) = max_pps {
            let due = Duration::from_secs_f64(r.sent as f64 / max as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    r.secs = start.elapsed().as_secs_f64();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_verify_and_the_malformed_ones_do_not_all_parse() {
        let c = Ipv4Addr::new(198, 51, 100, 10);
        let v = Ipv4Addr::new(198, 51, 100, 100);
        let p = tcp4(c, 1, v, 80, SYN, b"x");
        let info = rvs_wire::parse(&p).expect("parses");
        assert!(rvs_wire::checksum::ipv4_header_ok(&p));
        assert!(rvs_wire::checksum::transport_ok(&p, &info));
        let bad = malformed(c, v);
        assert!(bad.len() >= 20);
        let unparsable = bad
            .iter()
            .filter(|(_, p)| rvs_wire::parse(p).is_err())
            .count();
        assert!(unparsable >= 5, "{unparsable}");
    }
}
