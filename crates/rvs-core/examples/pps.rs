//! Packet-rate probe: CPU time per `Director::process` call, read from the thread's own CPU
//! clock (/proc/thread-self/stat), so a busy machine inflates it far less than wall time.
//!
//! `cargo run --release -p rvs-core --example pps [connections] [packets]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use etherparse::PacketBuilder;
use rvs_core::{
    ConfigOp, DestSpec, Director, DirectorConfig, Protocol, ServiceKey, ServiceSpec, Timestamp,
    Weight,
};

const VIP: [u8; 4] = [198, 51, 100, 250];

fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs");
    // Fields after the command (which is in parentheses): utime is field 14, stime 15.
    let rest = &s[s.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn flow(k: u32) -> ([u8; 4], u16) {
    let host = k / 50_000;
    (
        [10, (host >> 8) as u8, host as u8, 1],
        1024 + (k % 50_000) as u16,
    )
}

fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 64]).unwrap();
    v
}

fn run(label: &str, d: &Director, pkts: &[Vec<u8>], n: usize) {
    let mut buf = [0u8; 256];
    let (c0, w0) = (cpu_seconds(), Instant::now());
    for k in 0..n {
        let p = &pkts[(k.wrapping_mul(7919)) % pkts.len()];
        let b = &mut buf[..p.len()];
        b.copy_from_slice(p);
        black_box(d.process(Timestamp(10), k as u64, b));
    }
    let (cpu, wall) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());
    println!(
        "{label}: {:.0} ns/packet CPU ({:.2} Mpps/core), {:.0} ns/packet wall",
        cpu * 1e9 / n as f64,
        n as f64 / cpu / 1e6,
        wall * 1e9 / n as f64
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let conns: u32 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let packets: usize = args.next().map_or(10_000_000, |a| a.parse().unwrap());
    let d = Director::new(DirectorConfig::default());
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::from(VIP)),
        port: 80,
    };
    let mut ops = vec![ConfigOp::AddService(ServiceSpec::new(key, "wlc"))];
    for i in 0..8u8 {
        ops.push(ConfigOp::AddDest(
            key,
            DestSpec::masq(
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1 + i)),
                8080,
                Weight(1),
            ),
        ));
    }
    d.apply_batch(ops).unwrap();
    let mut rs = Vec::new();
    let (c0, w0) = (cpu_seconds(), Instant::now());
    for k in 0..conns {
        let (c, p) = flow(k);
        let mut s = tcp(c, p, VIP, 80, true);
        d.process(Timestamp(1), u64::from(k), &mut s);
        rs.push([s[16], s[17], s[18], s[19]]);
    }
    println!(
        "new connections (SYN, wlc, insert): {:.0} ns/conn CPU, {:.0} ns wall",
        (cpu_seconds() - c0) * 1e9 / f64::from(conns),
        w0.elapsed().as_secs_f64() * 1e9 / f64::from(conns)
    );
    let m = d.memory();
    println!(
        "table: {} connections, {:.1} bytes/connection",
        m.conns,
        m.table_bytes as f64 / m.conns as f64
    );
    let sample = 65_536.min(conns);
    let stride = conns / sample;
    let ins: Vec<Vec<u8>> = (0..sample)
        .map(|i| {
            let (c, p) = flow(i * stride);
            tcp(c, p, VIP, 80, false)
        })
        .collect();
    let outs: Vec<Vec<u8>> = (0..sample)
        .map(|i| {
            let (c, p) = flow(i * stride);
            tcp(rs[(i * stride) as usize], 8080, c, p, false)
        })
        .collect();
    run(
        "established in, flows spread over the table",
        &d,
        &ins,
        packets,
    );
    run(
        "established out, flows spread over the table",
        &d,
        &outs,
        packets,
    );
    run("established in, 256 hot flows", &d, &ins[..256], packets);
    run("established out, 256 hot flows", &d, &outs[..256], packets);
    let (c0, w0) = (cpu_seconds(), Instant::now());
    let n = d.expire(Timestamp(61_001));
    println!(
        "expire {n} SYN_RECV connections: {:.0} ns/conn CPU, {:.0} ns wall",
        (cpu_seconds() - c0) * 1e9 / n.max(1) as f64,
        w0.elapsed().as_secs_f64() * 1e9 / n.max(1) as f64
    );
}
