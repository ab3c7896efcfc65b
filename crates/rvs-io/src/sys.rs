//! Small system helpers: sysctls, interface indexes, a coarse monotonic clock, Unix socket peer credentials.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;

/// Write a sysctl under /proc/sys (e.g. `net/ipv4/ip_forward`).
pub fn write_sysctl(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/{path}"), value)
}

/// Read a sysctl under /proc/sys, trimmed.
pub fn read_sysctl(path: &str) -> io::Result<String> {
    Ok(std::fs::read_to_string(format!("/proc/sys/{path}"))?
        .trim()
        .to_owned())
}

/// The index of interface `name`, if it exists.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// The name of interface `index`, if it exists.
pub fn ifname(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Milliseconds of CLOCK_MONOTONIC_COARSE (a few ms resolution, a vDSO read: cheap enough per batch).
pub fn coarse_monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into; CLOCK_MONOTONIC_COARSE exists on every Linux since 2.6.32.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1000) + (ts.tv_nsec as u64) / 1_000_000
}

/// The effective uid of the process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid of the peer of a connected Unix stream socket (SO_PEERCRED).
pub fn peer_uid(sock: &impl AsRawFd) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred/len point to a ucred-sized buffer and its length, as SO_PEERCRED requires.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// One `struct ethtool_value` command (`ETHTOOL_G*` / `ETHTOOL_S*`) on `ifname` in the calling thread's namespace;
/// returns the value the kernel left (the setting, for a get).
fn ethtool_value(ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    let mut value = EthtoolValue { cmd, data };
    let mut ifr = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: (&raw mut value).cast(),
        _pad: [0; 16],
    };
    for (dst, src) in ifr.name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCETHTOOL with an ifreq laid out as the kernel expects, whose data points at a live ethtool_value
    // that the kernel reads and writes during the call only.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &raw mut ifr) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data)
}

/// Turn TX checksum offload of `ifname` on or off (like `ethtool -K IF tx on|off`; TSO follows it). Used by
/// tests to make the kernel finish checksums in software, so a wrong partial checksum shows.
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    ethtool_value(ifname, ETHTOOL_STXCSUM, u32::from(on)).map(|_| ())
}

/// Whether TX checksum offload is on for `ifname`.
pub fn tx_checksum(ifname: &str) -> io::Result<bool> {
    ethtool_value(ifname, ETHTOOL_GTXCSUM, 0).map(|v| v != 0)
}

/// Turn GRO of `ifname` on or off (like `ethtool -K IF gro on|off`). On a veth, GRO gives the device NAPI, which
/// XDP_REDIRECT into its peer needs.
pub fn set_gro(ifname: &str, on: bool) -> io::Result<()> {
    ethtool_value(ifname, ETHTOOL_SGRO, u32::from(on)).map(|_| ())
}

/// Whether GRO is on for `ifname`.
pub fn gro(ifname: &str) -> io::Result<bool> {
    ethtool_value(ifname, ETHTOOL_GGRO, 0).map(|v| v != 0)
}

/// Turn TCP segmentation offload of `ifname` on or off (like `ethtool -K IF tso on|off`).
pub fn set_tso(ifname: &str, on: bool) -> io::Result<()> {
    ethtool_value(ifname, ETHTOOL_STSO, u32::from(on)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_index_round_trip() {
        let idx = ifindex("lo").expect("lo exists in every namespace");
        assert_eq!(ifname(idx).as_deref(), Some("lo"));
        assert!(ifindex("no-such-if-xyz").is_none());
    }

    #[test]
    fn coarse_clock_is_monotonic() {
        let a = coarse_monotonic_ms();
        let b = coarse_monotonic_ms();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn peer_uid_of_socketpair_is_ours() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        assert_eq!(peer_uid(&a).expect("SO_PEERCRED"), euid());
    }
}
