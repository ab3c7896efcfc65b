//! `rvs-lab decap`: a user-space stand-in for the kernel's tunnel modules on a tunnel (LVS-TUN) real server.
//!
//! A normal tunnel real server decapsulates in the kernel: `modprobe ipip` (and `ip6_tunnel`, `fou` for GUE, `ip_gre`
//! for GRE), the VIP on the tunnel device or on `lo`, `rp_filter` relaxed. This machine's kernel has none of those
//! modules (see the shared kernel notes), so the lab's tunnel real servers run this instead: raw sockets for
//! IPIP (4), IPv6-in-IP (41) and GRE (47) in both families and a UDP socket on the GUE port take the tunnel packets
//! in; the inner packet is written into a TUN device, where the kernel receives it as if it had arrived there. The
//! real server holds the VIP on `lo` and answers the client directly, as with the modules.
//!
//! It does what the modules do for LVS and nothing more: no keys, no sequence numbers, no checksum check of the
//! outer header (the inner packet's own checksums are checked by the stack it is handed to). Runs until killed.

use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rvs_io::raw::RawRx;
use rvs_wire::encap;

use crate::error::{LabError, Result};

/// Counts of what the decapsulator did (printed on exit by signal).
#[derive(Debug, Default)]
struct Counts {
    decapsulated: AtomicU64,
    ignored: AtomicU64,
}

/// Create TUN `tun` (up, rp_filter off), then decapsulate into it forever.
pub fn run(tun: &str, gue_port: Option<u16>) -> Result<()> {
    let (dev, mut queues) = rvs_io::TunDevice::create(tun, 1)
        .map_err(|e| LabError::Check(format!("creating TUN {tun}: {e}")))?;
    let q = Arc::new(
        queues
            .pop()
            .ok_or_else(|| LabError::Check("no TUN queue".into()))?,
    );
    let idx = rvs_io::sys::ifindex(dev.name())
        .ok_or_else(|| LabError::Check(format!("TUN {tun} vanished")))?;
    rvs_io::netlink::Netlink::new()
        .and_then(|mut nl| nl.link_up(idx, None))
        .map_err(|e| LabError::Check(format!("bringing {tun} up: {e}")))?;
    // Inner packets come from clients that are routed elsewhere: reverse-path filtering would drop them.
    for path in [
        format!("net/ipv4/conf/{tun}/rp_filter"),
        "net/ipv4/conf/all/rp_filter".into(),
    ] {
        rvs_io::sys::write_sysctl(&path, "0").map_err(LabError::io(format!("sysctl {path}")))?;
    }
    let counts = Arc::new(Counts::default());
    let mut threads = Vec::new();
    for v6 in [false, true] {
        for proto in [encap::PROTO_IPIP, encap::PROTO_IPV6, encap::PROTO_GRE] {
            let Ok(rx) = RawRx::open(v6, proto, Duration::from_millis(500)) else {
                // IPv6 may be off in this namespace: IPv4 alone still works.
                continue;
            };
            let (q, c) = (q.clone(), counts.clone());
            threads.push(std::thread::spawn(move || raw_loop(&rx, v6, proto, &q, &c)));
        }
    }
    if let Some(port) = gue_port {
        let sock = UdpSocket::bind((IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))
            .or_else(|_| UdpSocket::bind(("0.0.0.0", port)))
            .map_err(LabError::io(format!("binding the GUE port {port}")))?;
        accept_zero_checksum_v6(&sock);
        let (q, c) = (q.clone(), counts.clone());
        threads.push(std::thread::spawn(move || gue_loop(&sock, &q, &c)));
    }
    eprintln!(
        "rvs-lab decap: {tun} up, decapsulating IPIP/IPv6-in-IP/GRE{}",
        match gue_port {
            Some(p) => format!(" and GUE on UDP port {p}"),
            None => String::new(),
        }
    );
    // The lab waits for this line.
    println!("ready");
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// GUE with `--tun-nocsum` over IPv6 carries UDP checksum 0 (RFC 6935), which the kernel drops unless the socket
/// accepts it, as `fou` does when told to (`UDP_NO_CHECK6_RX`).
fn accept_zero_checksum_v6(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    const UDP_NO_CHECK6_RX: libc::c_int = 102;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads one c_int of the size passed, from a live local.
    let _ = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            UDP_NO_CHECK6_RX,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

fn deliver(q: &rvs_io::TunQueue, inner: &[u8], c: &Counts) {
    match encap::ip_packet_len(inner) {
        Ok(n) if n <= inner.len() && q.send(&inner[..n]).is_ok() => {
            c.decapsulated.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            c.ignored.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn raw_loop(rx: &RawRx, v6: bool, proto: u8, q: &rvs_io::TunQueue, c: &Counts) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = match rx.recv(&mut buf) {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(_) => return,
        };
        let pkt = &buf[..n];
        // An IPv4 raw socket hands over the outer header too; an IPv6 one only the payload.
        let inner = if v6 {
            encap::tunnel_inner_offset(proto, pkt).and_then(|(_, off)| pkt.get(off..))
        } else {
            match encap::decapsulate(pkt, None) {
                Ok(Some(d)) => pkt.get(d.inner_offset..d.inner_end),
                _ => None,
            }
        };
        match inner {
            Some(inner) => deliver(q, inner, c),
            None => {
                c.ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn gue_loop(sock: &UdpSocket, q: &rvs_io::TunQueue, c: &Counts) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = sock.recv(&mut buf) {
        let pkt = &buf[..n];
        match encap::gue_inner_offset(pkt).and_then(|off| pkt.get(off..)) {
            Some(inner) => deliver(q, inner, c),
            None => {
                c.ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
