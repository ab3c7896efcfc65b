//! What one configuration change costs against a loaded rvsd: `RVS_SOCKET=... cargo bench -p rvsadm --bench change`
//! (benches/change_rvsd.sh starts rvsd in a private namespace, restores 10,000 services x 10 real servers and runs
//! this). Over ONE control connection it sends `RVSADM_BENCH_CHANGES` (default 2,000) single changes, alternating
//! "add real server 203.0.113.200 to service k" and "delete it again" over different services, each waiting for its
//! answer, and prints the median and 99th-percentile round trip and the changes per second (time in the changes
//! only). Before each change it times one `GetInfo` on the same connection (a request that reads nothing of the
//! table: the socket and the control thread's wake-up alone) and prints those round trips too, with the ratio of the
//! medians, so a figure taken on a busy machine comes with its own yardstick from the same run.
//!
//! Without `RVS_SOCKET` (e.g. under `cargo bench --workspace` or `cargo test`) it says so and does nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use rvs_api::client::Client;
use rvs_api::{Command, DestSpec, ForwardMethod, Protocol, ServiceKey, Weight};

fn key(i: u32) -> ServiceKey {
    // The same services as benches/restore.rs writes: 250 VIPs x 40 ports.
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i % 250 + 1) as u8)),
        port: (1000 + i / 250) as u16,
    }
}

fn main() {
    let Some(sock) = std::env::var_os("RVS_SOCKET") else {
        eprintln!(
            "change bench: RVS_SOCKET not set (run benches/change_rvsd.sh); nothing measured"
        );
        return;
    };
    let n: u32 = std::env::var("RVSADM_BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
        .clamp(2, 1_000_000);
    let services: u32 = std::env::var("RVSADM_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
        .max(1);
    let mut c = Client::connect(&sock).expect("connect to rvsd");
    let rip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 200));
    let dest = DestSpec {
        addr: rip,
        port: 8080,
        weight: Weight(1),
        method: ForwardMethod::Masq,
        u_threshold: 0,
        l_threshold: 0,
    };
    let mut rtt = Vec::with_capacity(n as usize);
    let mut noop = Vec::with_capacity(n as usize);
    let mut in_changes = 0.0;
    for k in 0..n {
        // pairs: add to service s, then delete from it; the next pair uses another service
        let s = key((k / 2 * 7919) % services);
        let cmd = if k % 2 == 0 {
            Command::AddDest { service: s, dest }
        } else {
            Command::DeleteDest {
                service: s,
                addr: rip,
                port: 8080,
            }
        };
        let t = Instant::now();
        c.call(Command::GetInfo).expect("info answered");
        noop.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        c.call(cmd).expect("change applied");
        let took = t.elapsed().as_secs_f64();
        in_changes += took;
        rtt.push(took * 1e3);
    }
    let (change, info) = (Spread::of(rtt), Spread::of(noop));
    println!(
        "{n} changes over one control connection ({services} services loaded): {:.0} changes/s, \
         round trip median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        f64::from(n) / in_changes,
        change.median,
        change.p99,
        change.max
    );
    println!(
        "{n} GetInfo on the same connection, one before each change: round trip median {:.3} ms, p99 {:.3} ms, \
         max {:.3} ms; change / GetInfo median {:.2}",
        info.median,
        info.p99,
        info.max,
        change.median / info.median
    );
}

/// Median, 99th percentile and maximum of round trips in ms.
struct Spread {
    median: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    fn of(mut ms: Vec<f64>) -> Spread {
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p) as usize];
        Spread {
            median: pct(0.5),
            p99: pct(0.99),
            max: ms[ms.len() - 1],
        }
    }
}
