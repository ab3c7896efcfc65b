//! A small UDP blaster and counter, run as hidden `rvs-lab bench` helpers inside the namespaces.
//!
//! Both are bounded in time; the sender also in packet count.

use anyhow::{Context, Result};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Sends `size`-byte datagrams to `target` from `flows` sockets (each its own source port, so a balancer sees
/// `flows` connections) round robin, for `seconds` or `max_packets`, whichever comes first.
/// Prints `sent N errors E seconds S`.
pub fn send(
    target: SocketAddr,
    seconds: f64,
    flows: usize,
    size: usize,
    max_packets: u64,
) -> Result<()> {
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let socks: Vec<UdpSocket> = (0..flows.max(1))
        .map(|_| -> Result<UdpSocket> {
            let s = UdpSocket::bind(bind)?;
            s.connect(target)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<Result<_>>()
        .context("UDP sender sockets")?;
    let payload = vec![0x5au8; size];
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let (mut sent, mut errors) = (0u64, 0u64);
    'outer: loop {
        for _ in 0..256 {
            for s in &socks {
                match s.send(&payload) {
                    Ok(_) => sent += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        errors += 1;
                    }
                    Err(_) => errors += 1,
                }
                if sent >= max_packets {
                    break 'outer;
                }
            }
        }
        if start.elapsed() >= limit {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("sent {sent} errors {errors} seconds {secs:.3}");
    Ok(())
}

/// Counts datagrams arriving on `port` until `seconds` have passed or, once traffic started, `idle_ms` pass
/// without a packet. Prints `ready` once bound, then `received N`.
pub fn sink(port: u16, seconds: f64, idle_ms: u64) -> Result<()> {
    let s = UdpSocket::bind(("0.0.0.0", port)).with_context(|| format!("bind UDP port {port}"))?;
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    println!("ready");
    std::io::stdout().flush()?;
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let idle = Duration::from_millis(idle_ms);
    let mut buf = [0u8; 2048];
    let mut received = 0u64;
    let mut last = None::<Instant>;
    while start.elapsed() < limit {
        match s.recv(&mut buf) {
            Ok(_) => {
                received += 1;
                last = Some(Instant::now());
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Some(l) = last
                    && l.elapsed() >= idle
                {
                    break;
                }
            }
            Err(e) => return Err(e).context("UDP sink recv"),
        }
    }
    println!("received {received}");
    Ok(())
}

/// Parses the sender's `sent N errors E seconds S` line: (sent, seconds).
pub fn parse_sent(out: &str) -> Option<(u64, f64)> {
    let line = out.lines().find(|l| l.starts_with("sent "))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Some((f.get(1)?.parse().ok()?, f.get(5)?.parse().ok()?))
}

/// Parses the sink's `received N` line.
pub fn parse_received(out: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix("received ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_lines() {
        assert_eq!(
            parse_sent("sent 1000 errors 3 seconds 5.001\n"),
            Some((1000, 5.001))
        );
        assert_eq!(parse_sent("nothing"), None);
        assert_eq!(parse_received("ready\nreceived 42\n"), Some(42));
        assert_eq!(parse_received("ready\n"), None);
    }

    #[test]
    fn loopback_send_and_count() {
        // Bounded: 2000 packets or 2 s on loopback.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let h = std::thread::spawn(move || {
            let s = UdpSocket::bind(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = [0u8; 256];
            let mut n = 0;
            while let Ok(len) = s.recv(&mut buf) {
                assert_eq!(len, 64);
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_millis(100));
        send(
            format!("127.0.0.1:{port}").parse().unwrap(),
            2.0,
            4,
            64,
            2000,
        )
        .unwrap();
        let n = h.join().unwrap();
        assert!(n > 0 && n <= 2000, "received {n}");
    }
}
