//! VRRP advertisements: version 3 (RFC 5798 section 5, IPv4 and IPv6) and version 2 (RFC 3768
//! section 5, IPv4), as a validated view and a builder.
//!
//! ```text
//! v3:  | ver 3 | type 1 |     VRID      |   Priority    | Count IPvX    |
//!      | rsvd  |  Max Adver Int (centiseconds, 12 bits)  |   Checksum    |
//!      | IPvX addresses ...                                              |
//! v2:  | ver 2 | type 1 |     VRID      |   Priority    | Count IP      |
//!      |   Auth Type   | Adver Int (s) |           Checksum            |
//!      | IPv4 addresses ... | Authentication Data (8 bytes)              |
//! ```
//!
//! The v3 checksum covers the message and the IPv4/IPv6 pseudo-header (protocol 112); the v2
//! checksum the message only. [`Advert::parse`] validates everything once; an `Err` says why.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_wire::checksum;

use crate::VrrpError;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The IPv4 multicast group (224.0.0.18).
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group (ff02::12).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The TTL / hop limit every advertisement carries and a receiver requires.
pub const TTL: u8 = 255;
/// Fixed header length.
pub const HEADER_LEN: usize = 8;
/// Version 2 authentication data length.
pub const AUTH_LEN: usize = 8;
/// Most addresses in one advertisement (the count is a byte).
pub const MAX_ADDRS: usize = 255;

/// VRRP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768 (IPv4 only, interval in seconds, authentication field).
    V2,
    /// RFC 5798 (IPv4 and IPv6, interval in centiseconds, pseudo-header checksum).
    V3,
}

impl Version {
    const fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

/// Version 2 authentication (RFC 3768 5.3.6; keepalived's `authentication` block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Auth {
    /// Type 0.
    #[default]
    None,
    /// Type 1: an 8-byte password, zero padded.
    Simple([u8; AUTH_LEN]),
}

/// One parsed advertisement (addresses borrowed from the packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert<'a> {
    pub version: Version,
    pub vrid: u8,
    /// 0 = the master stops; 255 = the address owner.
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2's seconds x 100).
    pub interval_cs: u16,
    /// Version 2 authentication.
    pub auth: Auth,
    /// The address bytes: `count` IPv4 (4 bytes each) or IPv6 (16) addresses.
    addrs: &'a [u8],
    v6: bool,
}

impl<'a> Advert<'a> {
    /// Parses and validates a VRRP message (the IP payload) sent from `src` to `dst`: version,
    /// type, length for the count, checksum (v3 with the pseudo-header).
    pub fn parse(msg: &'a [u8], src: IpAddr, dst: IpAddr) -> Result<Self, VrrpError> {
        let b0 = *msg.first().ok_or(VrrpError::Truncated)?;
        if msg.len() < HEADER_LEN {
            return Err(VrrpError::Truncated);
        }
        if b0 & 0x0f != 1 {
            return Err(VrrpError::BadType(b0 & 0x0f));
        }
        let version = match b0 >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(VrrpError::BadVersion(v)),
        };
        let v6 = src.is_ipv6();
        if v6 != dst.is_ipv6() {
            return Err(VrrpError::Family);
        }
        if v6 && version == Version::V2 {
            return Err(VrrpError::Family);
        }
        let count = usize::from(msg[3]);
        let alen = count * if v6 { 16 } else { 4 };
        let need = HEADER_LEN
            + alen
            + match version {
                Version::V2 => AUTH_LEN,
                Version::V3 => 0,
            };
        // RFC 5798 7.1: the length must fit the count; trailing bytes are a lie too.
        if msg.len() < need {
            return Err(VrrpError::Truncated);
        }
        if msg.len() != need {
            return Err(VrrpError::BadLength);
        }
        let ok = match version {
            Version::V2 => checksum::checksum(msg) == 0,
            Version::V3 => {
                let ph = checksum::pseudo_header_sum(src, dst, IPPROTO_VRRP, msg.len() as u32);
                checksum::fold(ph + checksum::sum(msg)) == 0xffff
            }
        };
        if !ok {
            return Err(VrrpError::Checksum);
        }
        let (interval_cs, auth) = match version {
            Version::V3 => (u16::from_be_bytes([msg[4], msg[5]]) & 0x0fff, Auth::None),
            Version::V2 => {
                let auth = match msg[4] {
                    0 => Auth::None,
                    1 => {
                        let mut p = [0u8; AUTH_LEN];
                        p.copy_from_slice(&msg[HEADER_LEN + alen..need]);
                        Auth::Simple(p)
                    }
                    t => return Err(VrrpError::BadAuthType(t)),
                };
                (u16::from(msg[5]) * 100, auth)
            }
        };
        Ok(Self {
            version,
            vrid: msg[1],
            priority: msg[2],
            interval_cs,
            auth,
            addrs: &msg[HEADER_LEN..HEADER_LEN + alen],
            v6,
        })
    }

    /// The virtual addresses listed.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let v6 = self.v6;
        let step = if v6 { 16 } else { 4 };
        self.addrs.chunks_exact(step).map(move |c| {
            if v6 {
                let mut a = [0u8; 16];
                a.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(a))
            } else {
                IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            }
        })
    }

    /// How many addresses.
    pub fn count(&self) -> usize {
        self.addrs.len() / if self.v6 { 16 } else { 4 }
    }
}

/// Builds one advertisement into `out` (cleared first) for the given source and destination
/// (needed by the v3 checksum). All `addrs` must be of `src`'s family; v2 is IPv4 only and its
/// interval is rounded down to whole seconds (at least 1).
#[allow(clippy::too_many_arguments)]
pub fn build(
    out: &mut Vec<u8>,
    version: Version,
    vrid: u8,
    priority: u8,
    interval_cs: u16,
    auth: Auth,
    addrs: &[IpAddr],
    src: IpAddr,
    dst: IpAddr,
) -> Result<(), VrrpError> {
    out.clear();
    let v6 = src.is_ipv6();
    if v6 != dst.is_ipv6() || addrs.iter().any(|a| a.is_ipv6() != v6) {
        return Err(VrrpError::Family);
    }
    if v6 && version == Version::V2 {
        return Err(VrrpError::Family);
    }
    if addrs.len() > MAX_ADDRS {
        return Err(VrrpError::BadLength);
    }
    out.push(version.number() << 4 | 1);
    out.push(vrid);
    out.push(priority);
    out.push(addrs.len() as u8);
    match version {
        Version::V3 => out.extend_from_slice(&(interval_cs & 0x0fff).to_be_bytes()),
        Version::V2 => {
            out.push(match auth {
                Auth::None => 0,
                Auth::Simple(_) => 1,
            });
            out.push(u8::try_from(interval_cs / 100).unwrap_or(u8::MAX).max(1));
        }
    }
    out.extend_from_slice(&[0, 0]);
    for a in addrs {
        match a {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    let c = match version {
        Version::V2 => {
            out.extend_from_slice(&match auth {
                Auth::None => [0; AUTH_LEN],
                Auth::Simple(p) => p,
            });
            checksum::checksum(out)
        }
        Version::V3 => {
            let ph = checksum::pseudo_header_sum(src, dst, IPPROTO_VRRP, out.len() as u32);
            !checksum::fold(ph + checksum::sum(out))
        }
    };
    out[6..8].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// A gratuitous ARP request for `ip` from `mac` (RFC 5227 announcement: sender = target = ip),
/// as a whole Ethernet frame to the broadcast address, as keepalived sends on takeover.
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // htype 1, ptype IPv4, hlen 6, plen 4, op 1 (request).
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    f[32..38].copy_from_slice(&[0; 6]);
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement for `ip` from `mac` and link-local `src` to all nodes
/// (ff02::1), override flag set, with the target link-layer address option (RFC 4861 7.2.6): the
/// ICMPv6 message, to be sent with hop limit 255.
pub fn unsolicited_na(mac: [u8; 6], ip: Ipv6Addr, src: Ipv6Addr) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = 136; // Neighbor Advertisement
    m[4] = 0x20; // Override
    m[8..24].copy_from_slice(&ip.octets());
    m[24] = 2; // Target Link-Layer Address
    m[25] = 1; // 8 bytes
    m[26..32].copy_from_slice(&mac);
    let dst = IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1));
    let ph = checksum::pseudo_header_sum(IpAddr::V6(src), dst, 58, m.len() as u32);
    let c = !checksum::fold(ph + checksum::sum(&m));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}
