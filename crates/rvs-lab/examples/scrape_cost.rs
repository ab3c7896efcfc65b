//! What a Prometheus scrape of a big configuration costs, and whether it moves the data plane's rate.
//!
//! `cargo build --release -p rvsd -p rvsadm -p rvs-lab --bins --examples && RVS_BIN_DIR=target/release \
//!  target/release/examples/scrape_cost [SERVICES] [REAL_SERVERS] [ROUNDS] [SECONDS] [INTERVAL_MS]` (as root;
//! default 10000 x 10, 3 rounds of 5 s, scrapes back to back).
//!
//! A lab whose rvsd (`--metrics 127.0.0.1:9100`) starts from a rules file of SERVICES TCP services on the VIP (ports
//! 80, 10001, 10002, ...) with REAL_SERVERS real servers each (port 80 goes to the lab's two HTTP servers). Then:
//! 1. the time of a full `/metrics` scrape from the director's loopback (median of 10) and its size;
//! 2. HTTP requests per second through VIP:80 over 4 keep-alive connections for SECONDS, alternating rounds without scraping
//!    and with a scraper fetching `/metrics` every INTERVAL_MS (0: back to back), reported as the ratio of the medians (same run, same
//!    machine).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rvs_lab::client::Connection;
use rvs_lab::lab::{self, Lab, LabConfig, VIP};
use rvs_lab::{LabError, client, netns};

const METRICS: &str = "127.0.0.1:9100";

fn scrape(addr: SocketAddr) -> rvs_lab::Result<usize> {
    let mut s = TcpStream::connect(addr).map_err(LabError::io("connecting to /metrics"))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .map_err(LabError::io("sending"))?;
    let mut buf = Vec::with_capacity(64 << 20);
    s.read_to_end(&mut buf).map_err(LabError::io("reading"))?;
    if !buf.starts_with(b"HTTP/1.0 200") && !buf.starts_with(b"HTTP/1.1 200") {
        return Err(LabError::Check("scrape did not answer 200".into()));
    }
    Ok(buf.len())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> rvs_lab::Result<()> {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (services, reals, rounds, secs) = (arg(1, 10_000), arg(2, 10), arg(3, 3), arg(4, 5));
    // Milliseconds between scrapes (0: back to back, the worst case; Prometheus's default interval is 15 s).
    let interval = Duration::from_millis(arg(5, 0) as u64);
    let cfg = LabConfig {
        rvsd: false,
        rvsd_args: vec!["--metrics".into(), METRICS.into()],
        ..LabConfig::unique("scrape")
    };
    let mut lab = Lab::up(cfg)?;
    let mut rules = String::with_capacity(services * reals * 64);
    for s in 0..services {
        let port = if s == 0 { 80 } else { 10_000 + s };
        rules += &format!("-A -t {VIP}:{port} -s wlc\n");
        if s == 0 {
            for i in 1..=2 {
                rules += &format!("-a -t {VIP}:80 -r {}:80 -m -w 1\n", lab::rip(i));
            }
            continue;
        }
        for r in 0..reals {
            rules += &format!(
                "-a -t {VIP}:{port} -r 203.0.113.{}:{port} -m -w 1\n",
                11 + r
            );
        }
    }
    lab.start_rvsd()?;
    // Loaded with `rvsadm -R` (one batch), as an operator would restore a saved table.
    let file = std::env::temp_dir().join(format!("rvs-scrape-rules-{}", std::process::id()));
    std::fs::write(&file, rules).map_err(LabError::io("writing the rules"))?;
    let t = Instant::now();
    let rvsadm = lab
        .binaries()
        .map(|b| b.rvsadm.clone())
        .ok_or_else(|| LabError::Invalid("no rvsadm".into()))?;
    let st = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.director()])
        .arg(rvsadm)
        .arg("-R")
        .env("RVS_SOCKET", lab.socket())
        .stdin(std::fs::File::open(&file).map_err(LabError::io("opening the rules"))?)
        .status()
        .map_err(LabError::io("running rvsadm -R"))?;
    let _ = std::fs::remove_file(&file);
    if !st.success() {
        return Err(LabError::Check(format!("rvsadm -R failed: {st}")));
    }
    eprintln!(
        "rvsadm -R of {services} services x {reals} real servers: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let addr: SocketAddr = METRICS
        .parse()
        .map_err(|_| LabError::Invalid("addr".into()))?;

    let (mut times, size) = netns::run_in(&lab.director(), move || {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..10 {
            let t = Instant::now();
            size = scrape(addr)?;
            times.push(t.elapsed().as_secs_f64());
        }
        Ok((times, size))
    })?;
    let scrape_s = median(&mut times);
    println!(
        "scrape of {services} services x {reals} real servers: median {:.3} s over 10 (min {:.3}, max {:.3}), {:.1} MB",
        scrape_s,
        times[0],
        times[times.len() - 1],
        size as f64 / 1e6
    );

    let (mut quiet, mut scraped, mut scrapes) = (Vec::new(), Vec::new(), 0usize);
    for _ in 0..rounds {
        quiet.push(paced(&lab, secs)?);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let scraper = netns::spawn_in(&lab.director(), move || {
            let mut n = 0usize;
            while !s2.load(Ordering::Relaxed) {
                let t = Instant::now();
                scrape(addr)?;
                n += 1;
                while t.elapsed() < interval && !s2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Ok(n)
        })?;
        scraped.push(paced(&lab, secs)?);
        stop.store(true, Ordering::Relaxed);
        scrapes += scraper
            .join()
            .map_err(|_| LabError::Check("scraper panicked".into()))??;
    }
    let (q, s) = (median(&mut quiet), median(&mut scraped));
    println!(
        "HTTP requests/s through the VIP (4 keep-alive connections): {q:.0} without scraping, {s:.0} while scraping every {} ms \
         ({scrapes} scrapes); ratio {:.3} (medians of {rounds} rounds of {secs} s)",
        interval.as_millis(),
        s / q
    );
    lab.down()
}

/// HTTP requests per second through VIP:80 for `secs` seconds over 4 keep-alive connections.
fn paced(lab: &Lab, secs: usize) -> rvs_lab::Result<f64> {
    lab.in_client(move || {
        let end = Instant::now() + Duration::from_secs(secs as u64);
        let t = Instant::now();
        let n = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    sc.spawn(|| {
                        // Keep-alive: new connections would exhaust the client's ports (TIME_WAIT) and
                        // slow later rounds whatever the scraper does.
                        let mut n = 0u64;
                        let mut conn = None;
                        while Instant::now() < end {
                            if conn.is_none() {
                                conn =
                                    client::HttpConn::connect(lab::vip(80), Duration::from_secs(5))
                                        .ok();
                            }
                            match conn.as_mut().map(|c| c.get(Connection::KeepAlive)) {
                                Some(Ok(_)) => n += 1,
                                _ => conn = None,
                            }
                        }
                        n
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).sum::<u64>()
        });
        Ok(n as f64 / t.elapsed().as_secs_f64())
    })
}
