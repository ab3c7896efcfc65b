//! Whether an interface can take redirected frames: the kernel's per-device XDP features, read over generic
//! netlink (the "netdev" family, `NETDEV_CMD_DEV_GET`, kernel 6.3+).
//!
//! Why: `bpf_redirect_map` returns XDP_REDIRECT even when the egress cannot transmit XDP frames, and the frame is
//! then dropped after the program returned, where neither the program nor its counters see it (a veth whose peer
//! has neither GRO nor an XDP program, a bridge, a driver without `ndo_xdp_xmit`). The device advertises what it
//! can do in `xdp_features`: `NETDEV_XDP_ACT_NDO_XMIT` is the bit that says "redirected frames are transmitted".
//! veth recomputes it when the peer's GRO or XDP program changes (measured 2026-12-02, kernel 6.18: 0x23 without,
//! 0x67 with GRO on the peer; a bridge: 0), so reading it once a second follows the lab and real changes alike.

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

/// `NETDEV_XDP_ACT_NDO_XMIT` (include/uapi/linux/netdev.h).
const NDO_XMIT: u64 = 1 << 2;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;

/// Why the features could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    #[error("generic netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("the kernel has no \"netdev\" generic netlink family (before 6.3): {0}")]
    NoFamily(std::io::Error),
    #[error("interface {ifindex}: {source}")]
    Kernel {
        ifindex: u32,
        source: std::io::Error,
    },
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
}

/// What an interface can do as the egress of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// `ndo_xdp_xmit` is usable: redirected frames leave.
    Frames,
    /// The device would drop redirected frames (the raw `xdp_features` bits, for the log).
    Refused { xdp_features: u64 },
}

/// A generic netlink socket bound to the "netdev" family, in the caller's network namespace.
#[derive(Debug)]
pub struct Features {
    sock: Socket,
    family: u16,
    seq: u32,
}

fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + ((4 - len % 4) % 4), 0);
}

/// The attributes of a generic netlink message (after its netlink and genl headers), as (type, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
        let kind = u16::from_ne_bytes([*b.get(2)?, *b.get(3)?]) & 0x3fff;
        let data = b.get(4..len)?;
        b = b.get((len + 3) & !3..).unwrap_or(&[]);
        Some((kind, data))
    })
}

impl Features {
    /// Open the socket and resolve the "netdev" family.
    pub fn new() -> Result<Self, FeaturesError> {
        let mut sock = Socket::new(NETLINK_GENERIC).map_err(FeaturesError::Socket)?;
        sock.bind_auto().map_err(FeaturesError::Socket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(FeaturesError::Socket)?;
        let mut f = Self {
            sock,
            family: GENL_ID_CTRL,
            seq: 0,
        };
        let mut a = Vec::new();
        attr(&mut a, CTRL_ATTR_FAMILY_NAME, b"netdev\0");
        let answer = f.request(CTRL_CMD_GETFAMILY, &a).map_err(|e| match e {
            FeaturesError::Kernel { source, .. } => FeaturesError::NoFamily(source),
            e => e,
        })?;
        let id = attrs(&answer)
            .find(|(k, _)| *k == CTRL_ATTR_FAMILY_ID)
            .and_then(|(_, d)| Some(u16::from_ne_bytes([*d.first()?, *d.get(1)?])))
            .ok_or(FeaturesError::Malformed("no family id"))?;
        f.family = id;
        Ok(f)
    }

    /// Send one request of `cmd` to the bound family; the answer's attributes.
    fn request(&mut self, cmd: u8, attributes: &[u8]) -> Result<Vec<u8>, FeaturesError> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDRLEN + GENL_HDRLEN + attributes.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&self.family.to_ne_bytes());
        msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&[cmd, 1, 0, 0]);
        msg.extend_from_slice(attributes);
        self.sock.send(&msg, 0).map_err(FeaturesError::Socket)?;
        loop {
            let (buf, _) = self.sock.recv_from_full().map_err(FeaturesError::Socket)?;
            let mut off = 0;
            while let Some(h) = buf.get(off..off + NLMSG_HDRLEN) {
                let mlen = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let kind = u16::from_ne_bytes([h[4], h[5]]);
                let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
                let body = buf
                    .get(off + NLMSG_HDRLEN..off + mlen.max(NLMSG_HDRLEN))
                    .ok_or(FeaturesError::Malformed("message length"))?;
                if mlen < NLMSG_HDRLEN {
                    return Err(FeaturesError::Malformed("message length"));
                }
                off += (mlen + 3) & !3;
                if seq != self.seq {
                    continue;
                }
                if kind == NLMSG_ERROR {
                    let code = body
                        .get(..4)
                        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                        .ok_or(FeaturesError::Malformed("error message"))?;
                    return Err(FeaturesError::Kernel {
                        ifindex: 0,
                        source: std::io::Error::from_raw_os_error(-code),
                    });
                }
                return body
                    .get(GENL_HDRLEN..)
                    .map(<[u8]>::to_vec)
                    .ok_or(FeaturesError::Malformed("genl header"));
            }
        }
    }

    /// The device's `xdp_features` bits.
    pub fn xdp_features(&mut self, ifindex: u32) -> Result<u64, FeaturesError> {
        let mut a = Vec::new();
        attr(&mut a, NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes());
        let answer = self.request(NETDEV_CMD_DEV_GET, &a).map_err(|e| match e {
            FeaturesError::Kernel { source, .. } => FeaturesError::Kernel { ifindex, source },
            e => e,
        })?;
        attrs(&answer)
            .find(|(k, _)| *k == NETDEV_A_DEV_XDP_FEATURES)
            .and_then(|(_, d)| Some(u64::from_ne_bytes(d.get(..8)?.try_into().ok()?)))
            .ok_or(FeaturesError::Malformed("no xdp-features attribute"))
    }

    /// Whether `ifindex` transmits redirected frames now.
    pub fn transmit(&mut self, ifindex: u32) -> Result<Transmit, FeaturesError> {
        let bits = self.xdp_features(ifindex)?;
        Ok(if bits & NDO_XMIT != 0 {
            Transmit::Frames
        } else {
            Transmit::Refused { xdp_features: bits }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_truncation_stops_cleanly() {
        let mut a = Vec::new();
        attr(&mut a, 1, &7u32.to_ne_bytes());
        attr(&mut a, 2, b"netdev\0");
        let got: Vec<(u16, Vec<u8>)> = attrs(&a).map(|(k, d)| (k, d.to_vec())).collect();
        assert_eq!(
            got,
            vec![(1, 7u32.to_ne_bytes().to_vec()), (2, b"netdev\0".to_vec())]
        );
        for cut in 0..a.len() {
            let n = attrs(&a[..cut]).count();
            assert!(n <= 2, "a truncated buffer yields at most what it holds");
        }
        // A length shorter than the header, or pointing past the end, ends the walk.
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
        assert_eq!(attrs(&[200, 0, 1, 0, 1]).count(), 0);
    }

    /// The loopback device transmits no redirected frames (xdp_features 0): needs no privilege.
    #[test]
    fn loopback_refuses_redirected_frames() {
        let mut f = match Features::new() {
            Ok(f) => f,
            Err(FeaturesError::NoFamily(e)) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("SKIPPED: kernel without the netdev family ({e})");
                return;
            }
            Err(e) => panic!("netdev genl: {e}"),
        };
        assert!(matches!(f.transmit(1), Ok(Transmit::Refused { .. })));
        assert!(matches!(
            f.transmit(u32::MAX),
            Err(FeaturesError::Kernel { ifindex, .. }) if ifindex == u32::MAX
        ));
    }
}
