//! Bounds-checked big-endian field access. Out-of-range reads yield 0 and out-of-range writes
//! do nothing, so no accessor can panic even on a view built with `new_unchecked()`; views
//! built with `new_checked()` never hit those cases.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Byte ranges of header fields.
pub(crate) type Field = std::ops::Range<usize>;

#[inline]
pub(crate) fn u8_at(buf: &[u8], off: usize) -> u8 {
    buf.get(off).copied().unwrap_or(0)
}

#[inline]
pub(crate) fn u16_at(buf: &[u8], off: usize) -> u16 {
    buf.get(off..)
        .and_then(<[u8]>::first_chunk::<2>)
        .map_or(0, |b| u16::from_be_bytes(*b))
}

#[inline]
pub(crate) fn u32_at(buf: &[u8], off: usize) -> u32 {
    buf.get(off..)
        .and_then(<[u8]>::first_chunk::<4>)
        .map_or(0, |b| u32::from_be_bytes(*b))
}

#[inline]
pub(crate) fn ipv4_at(buf: &[u8], off: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32_at(buf, off))
}

#[inline]
pub(crate) fn ipv6_at(buf: &[u8], off: usize) -> Ipv6Addr {
    buf.get(off..)
        .and_then(<[u8]>::first_chunk::<16>)
        .map_or(Ipv6Addr::UNSPECIFIED, |b| Ipv6Addr::from(*b))
}

#[inline]
pub(crate) fn set_u8(buf: &mut [u8], off: usize, v: u8) {
    if let Some(b) = buf.get_mut(off) {
        *b = v;
    }
}

#[inline]
pub(crate) fn set_u16(buf: &mut [u8], off: usize, v: u16) {
    if let Some(b) = buf.get_mut(off..).and_then(<[u8]>::first_chunk_mut::<2>) {
        *b = v.to_be_bytes();
    }
}

#[inline]
pub(crate) fn set_bytes<const N: usize>(buf: &mut [u8], off: usize, v: [u8; N]) {
    if let Some(b) = buf.get_mut(off..).and_then(<[u8]>::first_chunk_mut::<N>) {
        *b = v;
    }
}

/// `buf[range]`, or an empty slice when out of range.
#[inline]
pub(crate) fn slice(buf: &[u8], range: Field) -> &[u8] {
    buf.get(range).unwrap_or(&[])
}

/// `&mut buf[range]`, or an empty slice when out of range.
#[inline]
pub(crate) fn slice_mut(buf: &mut [u8], range: Field) -> &mut [u8] {
    buf.get_mut(range).unwrap_or(&mut [])
}
