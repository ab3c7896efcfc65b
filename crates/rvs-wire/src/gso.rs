//! Software segmentation of a TCP super-packet (what the kernel's `tcp_gso_segment` does), for a
//! path that cannot hand the super-packet to the kernel whole: a tunnel encapsulates each segment.
//!
//! Segment `k` carries payload bytes `k*mss..` of the super-packet with a copy of its headers: the
//! IPv4 total length, identification (+k) and header checksum, or the IPv6 payload length; the TCP
//! sequence number (+k*mss); FIN and PSH only on the last segment, CWR only on the first; and a
//! complete TCP checksum (the super-packet's own checksum may be partial: it is not read).

use crate::field as f;
use crate::{IpVersion, PacketInfo, Transport, WireError, checksum, proto};

/// How many segments of `mss` payload bytes `info`'s TCP super-packet makes (`Err` if it is not
/// TCP or `mss` is 0).
pub fn tcp_segments(buf: &[u8], info: &PacketInfo, mss: usize) -> Result<usize, WireError> {
    let (hl, payload) = layout(buf, info, mss)?;
    let _ = hl;
    Ok(payload.div_ceil(mss).max(1))
}

/// The header length (IP + TCP) and the payload length of a TCP super-packet.
fn layout(buf: &[u8], info: &PacketInfo, mss: usize) -> Result<(usize, usize), WireError> {
    if mss == 0 || !matches!(info.transport, Transport::Tcp { .. }) {
        return Err(WireError::Unsupported);
    }
    let ip_len = info.ip_len.min(buf.len());
    let doff = usize::from(f::u8_at(buf, info.l4_offset.saturating_add(12)) >> 4) * 4;
    let hl = info
        .l4_offset
        .checked_add(doff)
        .ok_or(WireError::Truncated)?;
    if doff < 20 || hl > ip_len {
        return Err(WireError::BadHeaderLength);
    }
    Ok((hl, ip_len - hl))
}

/// Writes segment `k` (see the module docs) into `out` and returns its length.
/// `Err(Truncated)` if `out` is too small, `Err(Unsupported)` if `k` is past the last segment.
pub fn tcp_segment(
    buf: &[u8],
    info: &PacketInfo,
    mss: usize,
    k: usize,
    out: &mut [u8],
) -> Result<usize, WireError> {
    let (hl, payload) = layout(buf, info, mss)?;
    let n = payload.div_ceil(mss).max(1);
    if k >= n {
        return Err(WireError::Unsupported);
    }
    let start = hl + k * mss;
    let chunk = mss.min(payload - k * mss);
    let len = hl + chunk;
    let (Some(hdr), Some(data), Some(dst)) = (
        buf.get(..hl),
        buf.get(start..start + chunk),
        out.get_mut(..len),
    ) else {
        return Err(WireError::Truncated);
    };
    dst[..hl].copy_from_slice(hdr);
    dst[hl..].copy_from_slice(data);
    let l4 = info.l4_offset;
    match info.version {
        IpVersion::V4 => {
            f::set_u16(
                dst,
                2,
                u16::try_from(len).map_err(|_| WireError::BadLength)?,
            );
            let id = f::u16_at(dst, 4).wrapping_add(k as u16);
            f::set_u16(dst, 4, id);
            let c = checksum::ipv4_header(f::slice(dst, 0..l4));
            f::set_u16(dst, 10, c);
        }
        IpVersion::V6 => {
            f::set_u16(
                dst,
                4,
                u16::try_from(len - 40).map_err(|_| WireError::BadLength)?,
            );
        }
    }
    let seq = f::u32_at(dst, l4 + 4).wrapping_add((k * mss) as u32);
    f::set_bytes(dst, l4 + 4, seq.to_be_bytes());
    let mut flags = f::u8_at(dst, l4 + 13);
    if k + 1 < n {
        flags &= !(0x01 | 0x08); // FIN, PSH: last segment only
    }
    if k > 0 {
        flags &= !0x80; // CWR: first segment only
    }
    f::set_u8(dst, l4 + 13, flags);
    f::set_u16(dst, l4 + 16, 0);
    let seg = f::slice(dst, l4..len);
    let ph = checksum::pseudo_header_sum(info.src, info.dst, proto::TCP, (len - l4) as u32);
    let c = !checksum::fold(ph + checksum::sum(seg));
    f::set_u16(dst, l4 + 16, c);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn super_packet(v6: bool, payload: usize) -> Vec<u8> {
        let b = if v6 {
            etherparse::PacketBuilder::ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
        } else {
            etherparse::PacketBuilder::ipv4([198, 51, 100, 10], [198, 51, 100, 100], 64)
        }
        .tcp(40000, 80, 1_000_000, 500)
        .ack(9)
        .psh()
        .fin();
        let data: Vec<u8> = (0..payload).map(|i| (i * 13) as u8).collect();
        let mut v = Vec::new();
        b.write(&mut v, &data).expect("build");
        v
    }

    #[test]
    fn segments_reassemble_and_verify() {
        for v6 in [false, true] {
            let sp = super_packet(v6, 4000);
            let info = parse(&sp).expect("parse");
            assert_eq!(tcp_segments(&sp, &info, 1448), Ok(3));
            let mut joined = Vec::new();
            let mut out = [0u8; 2000];
            for k in 0..3 {
                let n = tcp_segment(&sp, &info, 1448, k, &mut out).expect("segment");
                let seg = &out[..n];
                let si = parse(seg).expect("segment parses");
                assert!(checksum::transport_ok(seg, &si), "v6={v6} k={k}");
                if !v6 {
                    assert!(checksum::ipv4_header_ok(seg));
                }
                let l4 = si.l4_offset;
                let seq = u32::from_be_bytes([seg[l4 + 4], seg[l4 + 5], seg[l4 + 6], seg[l4 + 7]]);
                assert_eq!(seq, 1_000_000 + (k as u32) * 1448);
                let Transport::Tcp { flags, .. } = si.transport else {
                    panic!()
                };
                assert_eq!(
                    flags.fin() && flags.psh(),
                    k == 2,
                    "FIN/PSH on the last only"
                );
                joined.extend_from_slice(&seg[l4 + 20..]);
            }
            assert_eq!(joined, sp[info.l4_offset + 20..]);
            assert_eq!(
                tcp_segment(&sp, &info, 1448, 3, &mut out),
                Err(WireError::Unsupported)
            );
            assert_eq!(
                tcp_segment(&sp, &info, 1448, 0, &mut out[..100]),
                Err(WireError::Truncated)
            );
        }
    }

    #[test]
    fn refuses_non_tcp_and_zero_mss() {
        let sp = super_packet(false, 10);
        let info = parse(&sp).expect("parse");
        assert_eq!(tcp_segments(&sp, &info, 0), Err(WireError::Unsupported));
        let n = tcp_segment(&sp, &info, 1448, 0, &mut [0u8; 100]).expect("one");
        assert_eq!(n, sp.len());
    }
}
