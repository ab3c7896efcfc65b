//! Scheduler benchmarks (criterion): one `schedule()` call per iteration for every scheduler with
//! 10 and 1,000 destinations (mixed weights 1..=4 and connection counts), inputs varying per
//! iteration (client address and port, the random value, one of 64 virtual addresses for the
//! locality schedulers); plus the table rebuild (`update()`) of the schedulers that have tables.
//!
//! Run: `cargo bench -p rvs-core --bench sched`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rvs_core::Destination;
use rvs_core::Timestamp;
use rvs_core::sched::{SCHEDULER_NAMES, SchedFlags, SchedInput, new_scheduler};

fn dests(n: usize) -> Vec<Arc<Destination>> {
    (0..n)
        .map(|i| {
            let x = u32::try_from(i).unwrap_or(u32::MAX);
            let d = Destination::new(IpAddr::V4(Ipv4Addr::from(0xCB00_7101 + x)), 80, 1 + x % 4);
            d.set_conn_counts((x * 7) % 13, (x * 11) % 97);
            Arc::new(d)
        })
        .collect()
}

fn input(k: u64) -> SchedInput {
    let k32 = u32::try_from(k & 0xFFFF_FFFF).unwrap_or(0);
    SchedInput {
        now: Timestamp(k / 16),
        protocol: 6,
        caddr: IpAddr::V4(Ipv4Addr::from(
            0xC633_6400u32.wrapping_add(k32.wrapping_mul(2_654_435_761)),
        )),
        cport: (k32 % 50_000) as u16 + 1024,
        vaddr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, (k32 % 64) as u8)),
        vport: 80,
        random: k.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    }
}

fn variants() -> Vec<(String, &'static str, SchedFlags)> {
    let mut v: Vec<(String, &'static str, SchedFlags)> = SCHEDULER_NAMES
        .iter()
        .map(|n| ((*n).to_owned(), *n, SchedFlags::default()))
        .collect();
    for n in ["sh", "mh"] {
        let flags = SchedFlags {
            fallback: true,
            port: true,
            flag3: false,
        };
        v.push((format!("{n}-fallback-port"), n, flags));
    }
    v
}

fn bench_schedule(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule");
    for n in [10usize, 1000] {
        let d = dests(n);
        for (label, name, flags) in variants() {
            let Ok(mut s) = new_scheduler(name, flags) else {
                continue;
            };
            s.update(&d);
            let mut k = 0u64;
            g.bench_with_input(BenchmarkId::new(label, n), &d, |b, d| {
                b.iter(|| {
                    k = k.wrapping_add(1);
                    black_box(s.schedule(d, &input(black_box(k))))
                });
            });
        }
    }
    g.finish();
}

fn bench_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("update");
    for n in [10usize, 1000] {
        let d = dests(n);
        for name in ["rr", "wrr", "sh", "dh", "mh", "lblcr"] {
            let Ok(mut s) = new_scheduler(name, SchedFlags::default()) else {
                continue;
            };
            g.bench_with_input(BenchmarkId::new(name, n), &d, |b, d| {
                b.iter(|| s.update(black_box(d)));
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = bench_schedule, bench_update
}
criterion_main!(benches);
