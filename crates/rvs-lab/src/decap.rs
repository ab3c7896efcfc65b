//! `rvs-lab decap`: a user-space stand-in for the kernel's tunnel modules on a tunnel (LVS-TUN) real server.
//!
//! A normal tunnel real server decapsulates in the kernel: `modprobe ipip` (and `ip6_tunnel`, `fou` for GUE, `ip_gre`
//! for GRE), the VIP on the tunnel device or on `lo`, `rp_filter` relaxed. This machine's kernel has none of those
//! modules (see the shared kernel notes), so the lab's tunnel real servers run this instead: an `AF_PACKET` socket
//! per family takes IPIP (4), IPv6-in-IP (41) and GRE (47) frames in (a classic BPF filter keeps everything else
//! out), a UDP socket on the GUE port takes GUE in; the inner packet is written into a TUN device, where the kernel
//! receives it as if it had arrived there. The real server holds the VIP on `lo` and answers the client directly, as
//! with the modules.
//!
//! Why a packet socket with `PACKET_VNET_HDR` and a TUN with `IFF_VNET_HDR`, not a raw IP socket and a plain TUN
//! (issue 11): GRO merges tunnelled TCP segments (the kernel's `ipip_gro_receive` and friends are built in, whatever
//! module is loaded) on any port with NAPI, in the lab on the switch port of the director's private veth, which
//! native XDP redirect needs. A merged frame is one GSO super-packet whose inner TCP checksum holds only the
//! pseudo-header sum (`CHECKSUM_PARTIAL`). The kernel's ipip module hands such an skb on whole; a raw socket copies
//! out the bytes without the metadata, and the stack then counted every merged frame as a checksum error
//! (`TcpInCsumErrors`): bulk TCP through tunnels ran at under 19 Mbit/s. With the virtio-net header the segment
//! size and the partial checksum cross user space with the bytes, and the inner packet enters the stack as the
//! ipip module would hand it up. The header's `DATA_VALID` flag is not passed on (it may speak of the outer packet
//! only): the stack checks what it was not told is valid.
//!
//! Raw IP sockets for the three protocols stay open with a drop-all filter: without a protocol handler or a raw
//! socket the kernel would answer every tunnel packet with ICMP "protocol unreachable".
//!
//! It does what the modules do for LVS and nothing more: no keys, no sequence numbers, no checksum check of the
//! outer header (the inner packet's own checksums are checked by the stack it is handed to). Runs until killed.

use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rvs_io::VnetHdr;
use rvs_wire::{IpVersion, encap};

use crate::error::{LabError, Result};
use crate::sockopt;

/// Counts of what the decapsulator did.
#[derive(Debug, Default)]
struct Counts {
    decapsulated: AtomicU64,
    ignored: AtomicU64,
}

/// The tunnel protocols taken off in IPv4 and IPv6 outer headers.
const TUNNEL_PROTOCOLS: [u8; 3] = [encap::PROTO_IPIP, encap::PROTO_IPV6, encap::PROTO_GRE];
/// An Ethernet header: packet sockets of type `SOCK_RAW` deliver frames from it.
const ETH_HLEN: usize = 14;
/// Receive buffer of each packet socket: a bulk TCP window of merged frames waits here while the thread writes.
const RCVBUF: libc::c_int = 8 << 20;
/// An int socket option's "on".
const ON: libc::c_int = 1;

/// Create TUN `tun` (up, rp_filter off, offload headers), then decapsulate into it forever.
pub fn run(tun: &str, gue_port: Option<u16>) -> Result<()> {
    let (dev, mut queues) = rvs_io::TunDevice::create_with(tun, 1, rvs_io::Offload::VnetHdr)
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
    // Kept open for as long as we run: they only stop the kernel's "protocol unreachable".
    let mut silencers = Vec::new();
    for family in IpVersion::ALL {
        for proto in TUNNEL_PROTOCOLS {
            // IPv6 may be off in this namespace: IPv4 alone still works.
            if let Ok(fd) = raw_silencer(family, proto) {
                silencers.push(fd);
            }
        }
    }
    let counts = Arc::new(Counts::default());
    let mut threads = Vec::new();
    for family in IpVersion::ALL {
        let rx = match open_tunnel_rx(family) {
            Ok(rx) => rx,
            Err(e) if family == IpVersion::V6 => {
                eprintln!("rvs-lab decap: no IPv6 tunnel socket ({e}); IPv4 only");
                continue;
            }
            Err(e) => return Err(e),
        };
        let (q, c) = (q.clone(), counts.clone());
        threads.push(std::thread::spawn(move || frame_loop(&rx, &q, &c)));
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
        "rvs-lab decap: {tun} up, decapsulating IPIP/IPv6-in-IP/GRE{} (GRO super-packets passed whole)",
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
    drop(silencers);
    Ok(())
}

/// The ethertype of a family's outer header.
fn ethertype(family: IpVersion) -> u16 {
    match family {
        IpVersion::V4 => libc::ETH_P_IP as u16,
        IpVersion::V6 => libc::ETH_P_IPV6 as u16,
    }
}

/// Offset of the protocol (IPv4) or next-header (IPv6) byte in the IP header.
fn protocol_offset(family: IpVersion) -> u32 {
    match family {
        IpVersion::V4 => 9,
        IpVersion::V6 => 6,
    }
}

fn af(family: IpVersion) -> libc::c_int {
    match family {
        IpVersion::V4 => libc::AF_INET,
        IpVersion::V6 => libc::AF_INET6,
    }
}

// Classic BPF (include/uapi/linux/filter.h, bpf_common.h): BPF_LD | BPF_W | BPF_ABS, BPF_LD | BPF_B | BPF_ABS,
// BPF_JMP | BPF_JEQ | BPF_K, BPF_RET | BPF_K.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_LD_B_ABS: u16 = 0x30;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE` and `+ SKF_AD_HATYPE`: the ancillary loads of the frame's type and the device's.
const AD_PKTTYPE: u32 = (-0x1000i32 + 4) as u32;
const AD_HATYPE: u32 = (-0x1000i32 + 28) as u32;
const ARPHRD_ETHER: u32 = 1;
const PACKET_HOST: u32 = 0;

const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter of a packet socket bound to one family's ethertype: frames to this host on an Ethernet device whose
/// IP protocol (next header) is one of [`TUNNEL_PROTOCOLS`], whole; everything else dropped in the kernel.
fn tunnel_filter(family: IpVersion) -> [libc::sock_filter; 10] {
    let [p0, p1, p2] = TUNNEL_PROTOCOLS.map(u32::from);
    [
        stmt(BPF_LD_W_ABS, AD_HATYPE),
        jump(BPF_JEQ_K, ARPHRD_ETHER, 0, 7), // -> drop
        stmt(BPF_LD_W_ABS, AD_PKTTYPE),
        jump(BPF_JEQ_K, PACKET_HOST, 0, 5), // -> drop
        stmt(BPF_LD_B_ABS, ETH_HLEN as u32 + protocol_offset(family)),
        jump(BPF_JEQ_K, p0, 2, 0), // -> accept
        jump(BPF_JEQ_K, p1, 1, 0), // -> accept
        jump(BPF_JEQ_K, p2, 0, 1), // -> accept, else drop
        stmt(BPF_RET_K, 0x0004_0000),
        stmt(BPF_RET_K, 0),
    ]
}

fn attach_filter(fd: &OwnedFd, prog: &mut [libc::sock_filter]) -> std::io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: SO_ATTACH_FILTER reads a sock_fprog of the size passed, whose `filter` points at `len` instructions in
    // `prog`, alive for the call (the kernel copies them).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> std::io::Result<OwnedFd> {
    // SAFETY: socket(2) has no pointer arguments.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A raw IP socket for `proto` that never queues anything (its filter drops all): its existence tells the kernel
/// the protocol is handled.
fn raw_silencer(family: IpVersion, proto: u8) -> std::io::Result<OwnedFd> {
    let fd = socket(af(family), libc::SOCK_RAW, libc::c_int::from(proto))?;
    attach_filter(&fd, &mut [stmt(BPF_RET_K, 0)])?;
    Ok(fd)
}

/// The packet socket taking one family's tunnel frames in, with virtio-net headers.
fn open_tunnel_rx(family: IpVersion) -> Result<OwnedFd> {
    let what = |s: &str| format!("{s} ({family:?} tunnel frames)");
    let proto = ethertype(family).to_be();
    let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(proto))
        .map_err(LabError::io(what("opening an AF_PACKET socket")))?;
    attach_filter(&fd, &mut tunnel_filter(family))
        .map_err(LabError::io(what("attaching the tunnel filter")))?;
    sockopt::set(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &ON)
        .map_err(LabError::io(what("PACKET_VNET_HDR")))?;
    // Best effort: the default buffer still works, with drops under bulk load.
    let _ = sockopt::set(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF);
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value, the fields that matter are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = proto;
    sll.sll_ifindex = 0; // every interface; the filter keeps Ethernet ones
    // SAFETY: bind reads a sockaddr_ll of the size passed, from a live local.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(LabError::Io {
            context: what("binding the AF_PACKET socket"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(fd)
}

/// GUE with `--tun-nocsum` over IPv6 carries UDP checksum 0 (RFC 6935), which the kernel drops unless the socket
/// accepts it, as `fou` does when told to (`UDP_NO_CHECK6_RX`).
fn accept_zero_checksum_v6(sock: &UdpSocket) {
    const UDP_NO_CHECK6_RX: libc::c_int = 102;
    let _ = sockopt::set(sock, libc::SOL_UDP, UDP_NO_CHECK6_RX, &ON);
}

/// The header the inner packet enters the TUN with: the frame's segmentation and partial checksum, moved by
/// `outer` bytes (the Ethernet and outer headers taken off). `None` when the checksum start lies in the outer
/// headers (not a packet this can hand on).
fn inner_vnet(frame: &VnetHdr, outer: usize) -> Option<VnetHdr> {
    let outer = u16::try_from(outer).ok()?;
    let mut v = VnetHdr::default();
    if frame.needs_csum() {
        v.set_flags(VnetHdr::F_NEEDS_CSUM);
        v.set_csum_start(frame.csum_start().checked_sub(outer)?);
        v.set_csum_offset(frame.csum_offset());
    }
    if frame.is_gso() {
        v.set_gso_type(frame.gso_type());
        v.set_gso_size(frame.gso_size());
        v.set_hdr_len(frame.hdr_len().saturating_sub(outer));
    }
    Some(v)
}

/// Where the inner packet of a tunnel frame (Ethernet header first) lies, and its header for the TUN.
fn decap_frame(vnet: &VnetHdr, frame: &[u8]) -> Option<(std::ops::Range<usize>, VnetHdr)> {
    let ip = frame.get(ETH_HLEN..)?;
    let d = encap::decapsulate(ip, None).ok()??;
    let inner = ETH_HLEN + d.inner_offset..ETH_HLEN + d.inner_end;
    frame.get(inner.clone())?;
    Some((inner.clone(), inner_vnet(vnet, inner.start)?))
}

fn frame_loop(rx: &OwnedFd, q: &rvs_io::TunQueue, c: &Counts) {
    let mut buf = vec![0u8; VnetHdr::LEN + ETH_HLEN + 65_536];
    loop {
        // SAFETY: buf is a valid writable region of buf.len() bytes for the call.
        let n = unsafe { libc::recv(rx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::Interrupted => continue,
                _ => return,
            }
        }
        let n = n as usize;
        let Some((hdr, frame)) = buf[..n].split_first_chunk::<{ VnetHdr::LEN }>() else {
            c.ignored.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let vnet = VnetHdr::from_bytes(*hdr);
        match decap_frame(&vnet, frame) {
            Some((inner, v)) if q.send_with(&v, &frame[inner.clone()]).is_ok() => {
                c.decapsulated.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                c.ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_frame_keeps_its_segmentation_and_partial_checksum_moved_to_the_inner_packet() {
        // What a packet socket reports for a GRO'd IPIP frame: TCPv4 GSO, segment 1448, checksum from the inner
        // TCP header at 14 (Ethernet) + 20 (outer IPv4) + 20 (inner IPv4) = 54, field at +16.
        let mut f = VnetHdr::default();
        f.set_flags(VnetHdr::F_NEEDS_CSUM);
        f.set_gso_type(VnetHdr::GSO_TCPV4);
        f.set_gso_size(1448);
        f.set_hdr_len(86);
        f.set_csum_start(54);
        f.set_csum_offset(16);
        let v = inner_vnet(&f, 34).expect("inner header");
        assert_eq!(v.flags(), VnetHdr::F_NEEDS_CSUM);
        assert_eq!(v.csum_start(), 20, "from the inner IP header");
        assert_eq!(v.csum_offset(), 16);
        assert_eq!((v.gso_type(), v.gso_size()), (VnetHdr::GSO_TCPV4, 1448));
        assert_eq!(v.hdr_len(), 52);
        // DATA_VALID speaks of what the outer packet's receiver checked: not passed on.
        let mut valid = VnetHdr::default();
        valid.set_flags(VnetHdr::F_DATA_VALID);
        assert_eq!(inner_vnet(&valid, 34), Some(VnetHdr::default()));
        // A checksum start inside the outer headers is refused, not wrapped.
        f.set_csum_start(20);
        assert_eq!(inner_vnet(&f, 34), None);
    }

    #[test]
    fn the_filter_jumps_land_on_accept_and_drop() {
        for family in IpVersion::ALL {
            let p = tunnel_filter(family);
            let (accept, drop) = (p.len() - 2, p.len() - 1);
            assert_eq!((p[accept].code, p[accept].k), (BPF_RET_K, 0x0004_0000));
            assert_eq!((p[drop].code, p[drop].k), (BPF_RET_K, 0));
            for (i, ins) in p.iter().enumerate() {
                if ins.code == BPF_JEQ_K {
                    let t = i + 1 + usize::from(ins.jt);
                    let f = i + 1 + usize::from(ins.jf);
                    assert!(t == accept || t == i + 1, "{family:?} insn {i} true -> {t}");
                    assert!(f == drop || f == i + 1, "{family:?} insn {i} false -> {f}");
                }
            }
            assert_eq!(p[4].k, 14 + protocol_offset(family));
        }
    }

    #[test]
    fn an_ipip_frame_gives_its_inner_packet() {
        // Ethernet + outer IPv4 (proto 4, 198.51.100.1 -> 203.0.113.11) + inner IPv4 UDP, 28 bytes.
        let mut inner = vec![
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 10, 198, 51, 100, 100,
        ];
        inner.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let outer_len = 20 + inner.len();
        frame.extend_from_slice(&[
            0x45,
            0,
            0,
            outer_len as u8,
            0,
            0,
            0x40,
            0,
            64,
            4,
            0,
            0,
            198,
            51,
            100,
            1,
            203,
            0,
            113,
            11,
        ]);
        frame.extend_from_slice(&inner);
        frame.extend_from_slice(&[0; 6]); // Ethernet padding past the IP length
        let (range, v) = decap_frame(&VnetHdr::default(), &frame).expect("a tunnel frame");
        assert_eq!(&frame[range], &inner[..]);
        assert_eq!(v, VnetHdr::default());
        // Not a tunnel: ignored.
        frame[14 + 9] = 17;
        assert!(decap_frame(&VnetHdr::default(), &frame).is_none());
    }
}
