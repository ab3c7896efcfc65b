//! Director benchmarks (criterion): the per-packet path with a large connection table, new
//! connections, expiry, and the table's memory per tracked connection.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use rvs_core::{
    ConfigOp, DestSpec, Director, DirectorConfig, Protocol, ServiceKey, ServiceSpec, Timestamp,
    Verdict, Weight,
};

const VIP: [u8; 4] = [198, 51, 100, 250];
const N_DESTS: u8 = 8;

fn rip(i: u8) -> [u8; 4] {
    [203, 0, 113, 1 + i]
}

fn flow(k: u32) -> ([u8; 4], u16) {
    let host = k / 50_000;
    (
        [10, (host >> 8) as u8, host as u8, 1],
        1024 + (k % 50_000) as u16,
    )
}

fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).unwrap();
    v
}

fn director(sched: &str) -> Director {
    let d = Director::new(DirectorConfig::default());
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::from(VIP)),
        port: 80,
    };
    let mut ops = vec![ConfigOp::AddService(ServiceSpec::new(key, sched))];
    for i in 0..N_DESTS {
        ops.push(ConfigOp::AddDest(
            key,
            DestSpec::masq(IpAddr::V4(Ipv4Addr::from(rip(i))), 8080, Weight(1)),
        ));
    }
    d.apply_batch(ops).unwrap();
    d
}

/// A director holding `n` established connections; returns it with (flow, real server) pairs.
fn loaded(n: u32) -> (Director, Vec<[u8; 4]>) {
    let d = director("rr");
    let mut rs = Vec::with_capacity(n as usize);
    for k in 0..n {
        let (c, p) = flow(k);
        let mut syn = tcp(c, p, VIP, 80, true, b"");
        assert_eq!(
            d.process(Timestamp(1), u64::from(k), &mut syn),
            Verdict::Forward(rvs_core::Direction::In)
        );
        rs.push([syn[16], syn[17], syn[18], syn[19]]);
        let mut ack = tcp(c, p, VIP, 80, false, b"");
        d.process(Timestamp(2), u64::from(k), &mut ack);
    }
    assert_eq!(d.conn_count(), n as usize);
    (d, rs)
}

fn bench_established(c: &mut Criterion) {
    const N: u32 = 1_000_000;
    const SAMPLE: u32 = 65_536;
    let (d, rs) = loaded(N);
    let mem = d.memory();
    eprintln!(
        "memory: {} connections, {} table bytes, {:.1} bytes/connection (IPv4; entry {} B)",
        mem.conns,
        mem.table_bytes,
        mem.table_bytes as f64 / mem.conns as f64,
        64
    );
    // Flows spread over the whole table (stride through the 1M), 64 B of payload.
    let stride = N / SAMPLE;
    let ins: Vec<Vec<u8>> = (0..SAMPLE)
        .map(|i| {
            let (c, p) = flow(i * stride);
            tcp(c, p, VIP, 80, false, &[0u8; 64])
        })
        .collect();
    let outs: Vec<Vec<u8>> = (0..SAMPLE)
        .map(|i| {
            let k = i * stride;
            let (c, p) = flow(k);
            tcp(rs[k as usize], 8080, c, p, false, &[0u8; 64])
        })
        .collect();
    let mut g = c.benchmark_group("director");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(30);
    let mut buf = [0u8; 128];
    let mut i = 0usize;
    let mut now = 10u64;
    g.bench_function("established_in_1M", |b| {
        b.iter(|| {
            let p = &ins[i % SAMPLE as usize];
            i = i.wrapping_add(7919);
            now += 1;
            let pkt = &mut buf[..p.len()];
            pkt.copy_from_slice(p);
            black_box(d.process(Timestamp(now / 1000 + 10), i as u64, pkt))
        })
    });
    g.bench_function("established_out_1M", |b| {
        b.iter(|| {
            let p = &outs[i % SAMPLE as usize];
            i = i.wrapping_add(7919);
            now += 1;
            let pkt = &mut buf[..p.len()];
            pkt.copy_from_slice(p);
            black_box(d.process(Timestamp(now / 1000 + 10), i as u64, pkt))
        })
    });
    // Cache-warm: the same 1M-entry table, but 256 flows in rotation (bursty real traffic).
    g.bench_function("established_in_1M_hot256", |b| {
        b.iter(|| {
            let p = &ins[i % 256];
            i = i.wrapping_add(1);
            now += 1;
            let pkt = &mut buf[..p.len()];
            pkt.copy_from_slice(p);
            black_box(d.process(Timestamp(now / 1000 + 10), i as u64, pkt))
        })
    });
    g.bench_function("established_out_1M_hot256", |b| {
        b.iter(|| {
            let p = &outs[i % 256];
            i = i.wrapping_add(1);
            now += 1;
            let pkt = &mut buf[..p.len()];
            pkt.copy_from_slice(p);
            black_box(d.process(Timestamp(now / 1000 + 10), i as u64, pkt))
        })
    });
    // The copy alone, to subtract.
    g.bench_function("packet_copy_baseline", |b| {
        b.iter(|| {
            let p = &ins[i % SAMPLE as usize];
            i = i.wrapping_add(7919);
            let pkt = &mut buf[..p.len()];
            pkt.copy_from_slice(p);
            black_box(pkt[0])
        })
    });
    g.finish();
}

/// The established path with every defence on (secure_tcp and drop_entry always, a limit with
/// pressure) beside the same table with them off, in the same run: the defences must cost the
/// established path nothing measurable (they act on new connections and in the timer).
fn bench_defended(c: &mut Criterion) {
    const N: u32 = 65_536;
    let mut g = c.benchmark_group("defences");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    for defended in [false, true] {
        let (d, _) = loaded(N);
        if defended {
            d.set_defense(rvs_core::DefenseConfig {
                drop_entry: rvs_core::DefenseLevel::Always,
                drop_packet: rvs_core::DefenseLevel::Auto,
                secure_tcp: rvs_core::DefenseLevel::Always,
                expire_nodest_conn: rvs_core::NoDestConn::Expire,
                ..rvs_core::DefenseConfig::with_limit(N as usize + 1024)
            });
            d.update_defense(Timestamp(3), 1);
            assert!(d.defense().pressure);
        }
        let ins: Vec<Vec<u8>> = (0..256)
            .map(|i| {
                let (c, p) = flow(i * (N / 256));
                tcp(c, p, VIP, 80, false, &[0u8; 64])
            })
            .collect();
        let mut buf = [0u8; 128];
        let mut i = 0usize;
        let name = if defended {
            "established_in_hot256_defences_on"
        } else {
            "established_in_hot256_defences_off"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let p = &ins[i % 256];
                i = i.wrapping_add(1);
                let pkt = &mut buf[..p.len()];
                pkt.copy_from_slice(p);
                black_box(d.process(Timestamp(10), i as u64, pkt))
            })
        });
    }
    g.finish();
}

fn bench_new_and_expire(c: &mut Criterion) {
    let mut g = c.benchmark_group("director");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(20);
    for sched in ["rr", "wlc", "mh"] {
        g.bench_function(format!("new_connection_syn_{sched}"), |b| {
            b.iter_custom(|iters| {
                let d = director(sched);
                let pkts: Vec<Vec<u8>> = (0..iters as u32)
                    .map(|k| {
                        let (c, p) = flow(k);
                        tcp(c, p, VIP, 80, true, b"")
                    })
                    .collect();
                let mut buf = [0u8; 64];
                let t = Instant::now();
                for (k, p) in pkts.iter().enumerate() {
                    let pkt = &mut buf[..p.len()];
                    pkt.copy_from_slice(p);
                    black_box(d.process(Timestamp(1), k as u64, pkt));
                }
                let e = t.elapsed();
                drop(d);
                e
            })
        });
    }
    g.bench_function("expire_per_connection", |b| {
        b.iter_custom(|iters| {
            let d = director("rr");
            let mut buf = [0u8; 64];
            for k in 0..iters as u32 {
                let (c, p) = flow(k);
                let s = tcp(c, p, VIP, 80, true, b"");
                let pkt = &mut buf[..s.len()];
                pkt.copy_from_slice(&s);
                d.process(Timestamp(1), u64::from(k), pkt);
            }
            d.expire(Timestamp(1));
            let t = Instant::now();
            let n = d.expire(Timestamp(61_001));
            let e = t.elapsed();
            assert_eq!(n as u64, iters);
            e
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_established,
    bench_defended,
    bench_new_and_expire
);
criterion_main!(benches);
