//! Drives `rvs_core::Director::process` over N fixed packets, for instruction counting under valgrind
//! (`rvs-lab bench --icount` runs it; see BENCHMARKS.md).
//!
//! `core_icount run|baseline established|new|udp N`
//!
//! Both modes build the same director, the same N packets and copy each into the work buffer the same way;
//! only `run` hands the copy to `Director::process`. So `(Ir(run) - Ir(baseline)) / N` is the cost of
//! `process` alone.
//!
//! - `established`: one TCP connection (handshake done during set-up), then N packets alternating client->VIP
//!   (100-byte PSH|ACK) and real server->client (the reply).
//! - `new`: N SYNs, each from a new client address:port (every one creates a connection).
//! - `udp`: one UDP flow (first datagram during set-up), then N 64-byte datagrams alternating in and out.

use rvs_core::{
    ConfigOp, DestSpec, Direction, Director, DirectorConfig, ForwardMethod, Protocol, ServiceKey,
    ServiceSpec, Timestamp, Verdict, Weight,
};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
const RIPS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(203, 0, 113, 11),
    Ipv4Addr::new(203, 0, 113, 12),
];
const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const TCP_PORT: u16 = 80;
const UDP_PORT: u16 = 5001;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An IPv4 packet with a TCP (`flags: Some`) or UDP (`None`) header and `payload` zero bytes, checksums right.
fn packet(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: Option<u8>,
    payload: usize,
) -> Vec<u8> {
    let l4 = if flags.is_some() { 20 } else { 8 };
    let total = 20 + l4 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = if flags.is_some() { 6 } else { 17 };
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = fold(sum16(&p[..20], 0));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    match flags {
        Some(f) => {
            p[24..28].copy_from_slice(&1000u32.to_be_bytes());
            p[28..32].copy_from_slice(&2000u32.to_be_bytes());
            p[32] = 5 << 4;
            p[33] = f;
            p[34..36].copy_from_slice(&65535u16.to_be_bytes());
        }
        None => p[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes()),
    }
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = p[9];
    pseudo[10..12].copy_from_slice(&((l4 + payload) as u16).to_be_bytes());
    let mut c = fold(sum16(&p[20..], sum16(&pseudo, 0)));
    if flags.is_none() && c == 0 {
        c = 0xffff;
    }
    let off = if flags.is_some() { 36 } else { 26 };
    p[off..off + 2].copy_from_slice(&c.to_be_bytes());
    p
}

fn director() -> Director {
    let d = Director::new(DirectorConfig::default());
    for (protocol, port) in [(Protocol::Tcp, TCP_PORT), (Protocol::Udp, UDP_PORT)] {
        let key = ServiceKey::Addr {
            protocol,
            addr: IpAddr::V4(VIP),
            port,
        };
        d.apply(ConfigOp::AddService(ServiceSpec::new(key, "rr")))
            .expect("add service");
        for rip in RIPS {
            let dest = DestSpec {
                addr: IpAddr::V4(rip),
                port,
                weight: Weight(1),
                method: ForwardMethod::Masq,
                u_threshold: 0,
                l_threshold: 0,
            };
            d.apply(ConfigOp::AddDest(key, dest)).expect("add dest");
        }
    }
    d
}

/// Sends `pkt` through the director during set-up and returns the real server it went to.
fn setup_in(d: &Director, mut pkt: Vec<u8>) -> Ipv4Addr {
    let v = d.process(Timestamp(2), 0, &mut pkt);
    assert_eq!(
        v,
        Verdict::Forward(Direction::In),
        "set-up packet not forwarded"
    );
    Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19])
}

fn setup_out(d: &Director, mut pkt: Vec<u8>) {
    let v = d.process(Timestamp(2), 0, &mut pkt);
    assert_eq!(
        v,
        Verdict::Forward(Direction::Out),
        "set-up reply not forwarded"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: core_icount run|baseline established|new|udp N";
    let (mode, kind, n) = match args.as_slice() {
        [_, m, k, n] => (m.as_str(), k.as_str(), n.parse::<usize>().expect(usage)),
        _ => panic!("{usage}"),
    };
    let run = match mode {
        "run" => true,
        "baseline" => false,
        _ => panic!("{usage}"),
    };
    let d = director();
    // The packets fed in the loop: a small set reused round robin (flows) or one per iteration (new).
    let packets: Vec<Vec<u8>> = match kind {
        "established" => {
            let rip = setup_in(&d, packet(CIP, 40000, VIP, TCP_PORT, Some(SYN), 0));
            setup_out(&d, packet(rip, TCP_PORT, CIP, 40000, Some(SYN | ACK), 0));
            setup_in(&d, packet(CIP, 40000, VIP, TCP_PORT, Some(ACK), 0));
            vec![
                packet(CIP, 40000, VIP, TCP_PORT, Some(PSH | ACK), 100),
                packet(rip, TCP_PORT, CIP, 40000, Some(PSH | ACK), 100),
            ]
        }
        "udp" => {
            let rip = setup_in(&d, packet(CIP, 40000, VIP, UDP_PORT, None, 64));
            vec![
                packet(CIP, 40000, VIP, UDP_PORT, None, 64),
                packet(rip, UDP_PORT, CIP, 40000, None, 64),
            ]
        }
        "new" => (0..n)
            .map(|i| {
                let host = 10 + (i / 60_000) as u8;
                let port = 1024 + (i % 60_000) as u16;
                packet(
                    Ipv4Addr::new(198, 51, 100, host),
                    port,
                    VIP,
                    TCP_PORT,
                    Some(SYN),
                    0,
                )
            })
            .collect(),
        _ => panic!("{usage}"),
    };
    assert!(n <= 60_000 * 200, "N too large");
    let mut work = [0u8; 2048];
    let mut forwarded = 0u64;
    let now = Timestamp(3);
    for i in 0..n {
        let p = &packets[i % packets.len()];
        let len = p.len();
        work[..len].copy_from_slice(p);
        if run {
            if let Verdict::Forward(_) = d.process(now, i as u64, &mut work[..len]) {
                forwarded += 1;
            }
        } else {
            black_box(&mut work[..len]);
            forwarded += 1;
        }
    }
    println!(
        "{mode} {kind}: forwarded {forwarded} of {n}, {} connections",
        d.conn_count()
    );
}
