//! A UDP blaster and counter, run as hidden `rvs-lab bench` helpers inside the namespaces.
//!
//! Why batched: with one `send` per datagram the sender was the bottleneck on 2 vCPUs (2026-12-02 21:37 UTC, quiet
//! machine: every path, plain routing included, delivered 91-100k datagrams/s), so the workload measured the client,
//! not the director. The sender now hands the kernel [`BATCH`] datagrams per `sendmmsg` (one system call, one
//! socket lookup per batch) and the sink takes up to [`BATCH`] per `recvmmsg`; what each path delivers then depends
//! on the director. Both are bounded in time; the sender also in packet count.

use crate::error::{LabError, Result};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Datagrams per `sendmmsg` / `recvmmsg`.
pub const BATCH: usize = 32;

/// Sends `size`-byte datagrams to `target` from `flows` sockets (each its own source port, so a balancer sees
/// `flows` connections) round robin, a batch of [`BATCH`] per socket and system call, for `seconds` or
/// `max_packets`, whichever comes first. Prints `sent N errors E seconds S`.
pub fn send(
    target: SocketAddr,
    seconds: f64,
    flows: usize,
    size: usize,
    max_packets: u64,
) -> Result<()> {
    let bind: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socks: Vec<UdpSocket> = (0..flows.max(1))
        .map(|_| -> std::io::Result<UdpSocket> {
            let s = UdpSocket::bind(bind)?;
            s.connect(target)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<std::io::Result<_>>()
        .map_err(LabError::io("UDP sender sockets"))?;
    let payload = vec![0x5au8; size];
    // Every message points at the same payload; the sockets are connected, so no address per message.
    let mut iov = [libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    }];
    // SAFETY: mmsghdr is plain data; all-zero is a valid value (no name, no control data).
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for m in msgs.iter_mut() {
        m.msg_hdr.msg_iov = iov.as_mut_ptr();
        m.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let (mut sent, mut errors) = (0u64, 0u64);
    'outer: loop {
        for _ in 0..64 {
            for s in &socks {
                let n = (max_packets - sent).min(BATCH as u64) as u32;
                // SAFETY: msgs holds n valid headers whose iovec points at `payload`, alive for the call.
                let r = unsafe { libc::sendmmsg(s.as_raw_fd(), msgs.as_mut_ptr(), n, 0) };
                if r < 0 {
                    errors += 1;
                } else {
                    sent += r as u64;
                    if (r as u32) < n {
                        errors += 1; // the socket's buffer was full (EAGAIN for the rest)
                    }
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
    let s = UdpSocket::bind(("0.0.0.0", port))
        .map_err(LabError::io(format!("bind UDP port {port}")))?;
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(LabError::io("UDP sink read timeout"))?;
    set_rcvbuf(&s, 8 << 20);
    println!("ready");
    std::io::stdout()
        .flush()
        .map_err(LabError::io("UDP sink: writing `ready`"))?;
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let idle = Duration::from_millis(idle_ms);
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid value.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let mut received = 0u64;
    let mut last = None::<Instant>;
    while start.elapsed() < limit {
        // SAFETY: msgs holds BATCH headers, each pointing at its own 2048-byte buffer in `bufs`, alive for the call;
        // the socket's read timeout (SO_RCVTIMEO) bounds the wait.
        let r = unsafe {
            libc::recvmmsg(
                s.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if r > 0 {
            received += r as u64;
            last = Some(Instant::now());
            continue;
        }
        let e = std::io::Error::last_os_error();
        if matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
        ) {
            if let Some(l) = last
                && l.elapsed() >= idle
            {
                break;
            }
        } else {
            return Err(LabError::io("UDP sink recvmmsg")(e));
        }
    }
    println!("received {received}");
    Ok(())
}

/// A large receive buffer, so a burst is queued rather than dropped while the sink is off the CPU (best effort:
/// the drops that remain are counted in the namespace's `RcvbufErrors`).
fn set_rcvbuf(s: &UdpSocket, bytes: libc::c_int) {
    let _ = crate::sockopt::set(s, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &bytes);
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
