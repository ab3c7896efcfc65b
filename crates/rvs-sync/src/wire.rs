//! The IPVS sync wire format (net/netfilter/ipvs/ip_vs_sync.c), version 1 and version 0.
//!
//! A message is one UDP datagram: a header, then `nr_conns` connection entries.
//!
//! Version 1 (`struct ip_vs_sync_mesg`, 8 bytes): `reserved` (0, so version-0 receivers drop
//! it), `syncid`, `size` (the whole message, big-endian), `nr_conns`, `version` (1), `spare` (0).
//! Each entry (`struct ip_vs_sync_v4`, 36 bytes, or `ip_vs_sync_v6`, 72 bytes) starts with
//! `type` (bit 0: IPv6), `protocol`, `ver_size` (version in the top 4 bits, 0; the entry's size
//! including its options in the low 12), `flags` (32 bits), `state`, `cport`, `vport`, `dport`,
//! `fwmark`, `timeout` (seconds), `caddr`, `vaddr`, `daddr`, then options (type, length, data:
//! sequence data, persistence-engine data and name). Entries after the first start on a 4-byte
//! boundary of the message (zero padding, not counted in the entry's size, counted in `size`).
//!
//! Version 0 (`struct ip_vs_sync_mesg_v0`, 4 bytes): `nr_conns`, `syncid`, `size`; entries of 24
//! bytes (`struct ip_vs_sync_conn_v0`, IPv4 only, 16-bit flags, no timeout), followed by 24 bytes
//! of sequence data when the flags say so.
//!
//! [`parse`] validates a whole message before it yields anything: a message that does not parse
//! exactly is rejected whole, and an `Err` says why.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::SyncError;

/// IPVS's default sync multicast group, 224.0.0.81 (`IP_VS_SYNC_GROUP`).
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// IPVS's default sync port (`IP_VS_SYNC_PORT`).
pub const DEFAULT_PORT: u16 = 8848;
/// `SYNC_PROTO_VER`.
pub const PROTO_VERSION: u8 = 1;
/// Version-1 header length.
pub const HEADER_LEN: usize = 8;
/// Version-0 header length.
pub const HEADER_V0_LEN: usize = 4;
/// `sizeof(struct ip_vs_sync_v4)`.
pub const CONN_V4_LEN: usize = 36;
/// `sizeof(struct ip_vs_sync_v6)`.
pub const CONN_V6_LEN: usize = 72;
/// `sizeof(struct ip_vs_sync_conn_v0)` (`SIMPLE_CONN_SIZE`).
pub const CONN_V0_LEN: usize = 24;
/// `sizeof(struct ip_vs_sync_conn_options)`: two `struct ip_vs_seq` of three u32.
pub const SEQ_OPTIONS_LEN: usize = 24;
/// Most entries in one message (`nr_conns` is a byte).
pub const MAX_CONNS: usize = 255;
/// `IP_VS_PEDATA_MAXLEN`.
pub const PE_DATA_MAXLEN: usize = 255;
/// `IP_VS_PENAME_MAXLEN`.
pub const PE_NAME_MAXLEN: usize = 16;

/// Bit 0 of an entry's `type`: IPv6 (`STYPE_F_INET6`).
const STYPE_F_INET6: u8 = 1;
/// `SVER_SHIFT` / `SVER_MASK` of `ver_size`.
const SVER_SHIFT: u16 = 12;
const SVER_MASK: u16 = 0x0fff;

/// Option types (`IPVS_OPT_*`); `OPT_F_PARAM` marks an option a receiver may skip.
pub mod opt {
    /// Sequence adjustment data (`IPVS_OPT_SEQ_DATA`).
    pub const SEQ_DATA: u8 = 1;
    /// Persistence-engine data (`IPVS_OPT_PE_DATA`).
    pub const PE_DATA: u8 = 2;
    /// Persistence-engine name (`IPVS_OPT_PE_NAME`).
    pub const PE_NAME: u8 = 3;
    /// "Not mandatory" bit (`IPVS_OPT_F_PARAM`, 1 << (IPVS_OPT_PARAM - 1)).
    pub const F_PARAM: u8 = 1 << 6;
}

/// Connection flags (`IP_VS_CONN_F_*`, include/uapi/linux/ip_vs.h).
pub mod flags {
    /// Forwarding method mask.
    pub const FWD_MASK: u32 = 0x0007;
    /// Masquerading (NAT).
    pub const MASQ: u32 = 0x0000;
    /// Local node.
    pub const LOCALNODE: u32 = 0x0001;
    /// IP tunnelling.
    pub const TUNNEL: u32 = 0x0002;
    /// Direct routing.
    pub const DROUTE: u32 = 0x0003;
    /// Cache bypass.
    pub const BYPASS: u32 = 0x0004;
    /// Created by sync.
    pub const SYNC: u32 = 0x0020;
    /// Hashed (never sent).
    pub const HASHED: u32 = 0x0040;
    /// No output packets seen.
    pub const NOOUTPUT: u32 = 0x0080;
    /// Not established.
    pub const INACTIVE: u32 = 0x0100;
    /// Output sequence adjustment.
    pub const OUT_SEQ: u32 = 0x0200;
    /// Input sequence adjustment.
    pub const IN_SEQ: u32 = 0x0400;
    /// Both sequence bits.
    pub const SEQ_MASK: u32 = 0x0600;
    /// Client port not known yet.
    pub const NO_CPORT: u32 = 0x0800;
    /// Persistence template, not a connection.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling.
    pub const ONE_PACKET: u32 = 0x2000;
    /// Bits a backup takes from a message (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
    /// Bits a backup updates on a known connection (`IP_VS_CONN_F_BACKUP_UPD_MASK`).
    pub const BACKUP_UPD_MASK: u32 = INACTIVE | SEQ_MASK;
}

/// `struct ip_vs_seq`: TCP sequence adjustment of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seq {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

/// `struct ip_vs_sync_conn_options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqOptions {
    pub in_seq: Seq,
    pub out_seq: Seq,
}

/// Which layout a message used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The original IPv4-only format.
    V0,
    /// Version 1 (IPv6, timeouts, fwmarks, persistence-engine data).
    V1,
}

/// One synced connection or persistence template, as carried by either version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConn<'a> {
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` ([`flags`]); version 0 carries the low 16 bits only.
    pub flags: u32,
    /// Protocol state number (TCP: IPVS's `IP_VS_TCP_S_*`; templates 0).
    pub state: u16,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds; 0 = unknown (version 0): the receiver uses its state's timeout.
    pub timeout_s: u32,
    pub seq: Option<SeqOptions>,
    pub pe_data: Option<&'a [u8]>,
    pub pe_name: Option<&'a [u8]>,
}

impl SyncConn<'_> {
    /// A persistence template?
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    /// IPv6 entry?
    pub fn is_ipv6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    /// Bytes this entry takes in a version-1 message (options included, padding not).
    pub fn v1_len(&self) -> usize {
        let mut n = if self.is_ipv6() {
            CONN_V6_LEN
        } else {
            CONN_V4_LEN
        };
        if self.seq.is_some() {
            n += 2 + SEQ_OPTIONS_LEN;
        }
        if let Some(d) = self.pe_data {
            n += 2 + d.len();
        }
        if let Some(d) = self.pe_name {
            n += 2 + d.len();
        }
        n
    }
}

/// A parsed message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    pub syncid: u8,
    /// `size` (equals the datagram's length in any message [`parse`] accepted).
    pub size: u16,
    pub nr_conns: u8,
}

// ------------------------------------------------------------------ field access (never panics)

fn u8_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}
fn u16_at(b: &[u8], off: usize) -> u16 {
    b.get(off..)
        .and_then(<[u8]>::first_chunk::<2>)
        .map_or(0, |x| u16::from_be_bytes(*x))
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..)
        .and_then(<[u8]>::first_chunk::<4>)
        .map_or(0, |x| u32::from_be_bytes(*x))
}
fn u32_le_at(b: &[u8], off: usize) -> u32 {
    b.get(off..)
        .and_then(<[u8]>::first_chunk::<4>)
        .map_or(0, |x| u32::from_le_bytes(*x))
}
fn v6_at(b: &[u8], off: usize) -> Ipv6Addr {
    b.get(off..)
        .and_then(<[u8]>::first_chunk::<16>)
        .map_or(Ipv6Addr::UNSPECIFIED, |x| Ipv6Addr::from(*x))
}
fn v4_at(b: &[u8], off: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32_at(b, off))
}

/// Field offsets of the version-1 header and entries.
mod field {
    pub(super) const RESERVED: usize = 0;
    pub(super) const SYNCID: usize = 1;
    pub(super) const SIZE: usize = 2;
    pub(super) const NR_CONNS: usize = 4;
    pub(super) const VERSION: usize = 5;
    pub(super) const SPARE: usize = 6;

    pub(super) const C_TYPE: usize = 0;
    pub(super) const C_PROTOCOL: usize = 1;
    pub(super) const C_VER_SIZE: usize = 2;
    pub(super) const C_FLAGS: usize = 4;
    pub(super) const C_STATE: usize = 8;
    pub(super) const C_CPORT: usize = 10;
    pub(super) const C_VPORT: usize = 12;
    pub(super) const C_DPORT: usize = 14;
    pub(super) const C_FWMARK: usize = 16;
    pub(super) const C_TIMEOUT: usize = 20;
    pub(super) const C_ADDRS: usize = 24;

    // Version 0 entry.
    pub(super) const V0_PROTOCOL: usize = 1;
    pub(super) const V0_CPORT: usize = 2;
    pub(super) const V0_VPORT: usize = 4;
    pub(super) const V0_DPORT: usize = 6;
    pub(super) const V0_CADDR: usize = 8;
    pub(super) const V0_VADDR: usize = 12;
    pub(super) const V0_DADDR: usize = 16;
    pub(super) const V0_FLAGS: usize = 20;
    pub(super) const V0_STATE: usize = 22;
}

fn seq_at(b: &[u8], off: usize, be: bool) -> Seq {
    let r = |o| {
        if be {
            u32_at(b, off + o)
        } else {
            u32_le_at(b, off + o)
        }
    };
    Seq {
        init_seq: r(0),
        delta: r(4),
        previous_delta: r(8),
    }
}

fn seq_options_at(b: &[u8], off: usize, be: bool) -> SeqOptions {
    SeqOptions {
        in_seq: seq_at(b, off, be),
        out_seq: seq_at(b, off + 12, be),
    }
}

// ------------------------------------------------------------------ parsing

/// Parses a whole sync message into `out` (cleared first). Either every entry is valid and
/// `out` holds them all, or an `Err` says what was wrong and `out` is left empty.
///
/// Version dispatch follows ip_vs_process_message: `reserved == 0 && version == 1 && spare == 0`
/// is version 1, anything else version 0. Beyond the kernel's checks, the entries must end
/// exactly at `size`, padding must be zero, and an entry's `type` must be 0 or 1.
pub fn parse<'a>(buf: &'a [u8], out: &mut Vec<SyncConn<'a>>) -> Result<Header, SyncError> {
    out.clear();
    let r = parse_inner(buf, out);
    if r.is_err() {
        out.clear();
    }
    r
}

fn parse_inner<'a>(buf: &'a [u8], out: &mut Vec<SyncConn<'a>>) -> Result<Header, SyncError> {
    if buf.len() < HEADER_V0_LEN {
        return Err(SyncError::Truncated);
    }
    let size = u16_at(buf, field::SIZE);
    if usize::from(size) != buf.len() {
        return Err(SyncError::BadSize {
            size,
            len: buf.len(),
        });
    }
    let syncid = u8_at(buf, field::SYNCID);
    let is_v1 = buf.len() >= HEADER_LEN
        && u8_at(buf, field::RESERVED) == 0
        && u8_at(buf, field::VERSION) == PROTO_VERSION
        && u16_at(buf, field::SPARE) == 0;
    if is_v1 {
        let nr = u8_at(buf, field::NR_CONNS);
        parse_v1_entries(buf, nr, out)?;
        Ok(Header {
            version: Version::V1,
            syncid,
            size,
            nr_conns: nr,
        })
    } else {
        let nr = u8_at(buf, 0);
        parse_v0_entries(buf, nr, out)?;
        Ok(Header {
            version: Version::V0,
            syncid,
            size,
            nr_conns: nr,
        })
    }
}

fn parse_v1_entries<'a>(
    buf: &'a [u8],
    nr: u8,
    out: &mut Vec<SyncConn<'a>>,
) -> Result<(), SyncError> {
    let mut off = HEADER_LEN;
    for i in 0..usize::from(nr) {
        if i > 0 {
            // Entries after the first start 4-byte aligned; the padding is zero.
            let pad = (4 - off % 4) % 4;
            let p = buf.get(off..off + pad).ok_or(SyncError::Truncated)?;
            if p.iter().any(|&b| b != 0) {
                return Err(SyncError::BadPadding);
            }
            off += pad;
        }
        let entry = buf.get(off..).ok_or(SyncError::Truncated)?;
        if entry.len() < CONN_V4_LEN {
            return Err(SyncError::Truncated);
        }
        let ver_size = u16_at(entry, field::C_VER_SIZE);
        if ver_size >> SVER_SHIFT != 0 {
            return Err(SyncError::EntryVersion((ver_size >> SVER_SHIFT) as u8));
        }
        let size = usize::from(ver_size & SVER_MASK);
        let entry = entry.get(..size).ok_or(SyncError::EntryOverrun)?;
        out.push(parse_v1_entry(entry)?);
        off += size;
    }
    if off != buf.len() {
        return Err(SyncError::TrailingBytes(buf.len() - off));
    }
    Ok(())
}

/// One version-1 entry, `e` exactly its `size` bytes.
fn parse_v1_entry(e: &[u8]) -> Result<SyncConn<'_>, SyncError> {
    let ty = u8_at(e, field::C_TYPE);
    let v6 = match ty {
        0 => false,
        STYPE_F_INET6 => true,
        t => return Err(SyncError::EntryType(t)),
    };
    let fixed = if v6 { CONN_V6_LEN } else { CONN_V4_LEN };
    if e.len() < fixed {
        return Err(SyncError::EntryTooShort);
    }
    let (caddr, vaddr, daddr) = if v6 {
        (
            IpAddr::V6(v6_at(e, field::C_ADDRS)),
            IpAddr::V6(v6_at(e, field::C_ADDRS + 16)),
            IpAddr::V6(v6_at(e, field::C_ADDRS + 32)),
        )
    } else {
        (
            IpAddr::V4(v4_at(e, field::C_ADDRS)),
            IpAddr::V4(v4_at(e, field::C_ADDRS + 4)),
            IpAddr::V4(v4_at(e, field::C_ADDRS + 8)),
        )
    };
    let mut c = SyncConn {
        protocol: u8_at(e, field::C_PROTOCOL),
        flags: u32_at(e, field::C_FLAGS),
        state: u16_at(e, field::C_STATE),
        caddr,
        cport: u16_at(e, field::C_CPORT),
        vaddr,
        vport: u16_at(e, field::C_VPORT),
        daddr,
        dport: u16_at(e, field::C_DPORT),
        fwmark: u32_at(e, field::C_FWMARK),
        timeout_s: u32_at(e, field::C_TIMEOUT),
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    // Options (ip_vs_proc_sync_conn): type, length (> 0), data; each known one at most once.
    let mut p = fixed;
    while p < e.len() {
        let (Some(&ty), Some(&len)) = (e.get(p), e.get(p + 1)) else {
            return Err(SyncError::BadOption);
        };
        let len = usize::from(len);
        let data = e.get(p + 2..p + 2 + len).ok_or(SyncError::BadOption)?;
        if len == 0 {
            return Err(SyncError::BadOption);
        }
        match ty & !opt::F_PARAM {
            opt::SEQ_DATA => {
                if len != SEQ_OPTIONS_LEN || c.seq.is_some() {
                    return Err(SyncError::BadOption);
                }
                c.seq = Some(seq_options_at(data, 0, true));
            }
            opt::PE_DATA => {
                if len > PE_DATA_MAXLEN || c.pe_data.is_some() {
                    return Err(SyncError::BadOption);
                }
                c.pe_data = Some(data);
            }
            opt::PE_NAME => {
                if len > PE_NAME_MAXLEN || c.pe_name.is_some() {
                    return Err(SyncError::BadOption);
                }
                c.pe_name = Some(data);
            }
            other if ty & opt::F_PARAM == 0 => return Err(SyncError::UnknownOption(other)),
            _ => {}
        }
        p += 2 + len;
    }
    Ok(c)
}

fn parse_v0_entries<'a>(
    buf: &'a [u8],
    nr: u8,
    out: &mut Vec<SyncConn<'a>>,
) -> Result<(), SyncError> {
    let mut off = HEADER_V0_LEN;
    for _ in 0..nr {
        let e = buf
            .get(off..off + CONN_V0_LEN)
            .ok_or(SyncError::Truncated)?;
        let fl = u32::from(u16_at(e, field::V0_FLAGS));
        off += CONN_V0_LEN;
        let seq = if fl & flags::SEQ_MASK != 0 {
            let o = buf
                .get(off..off + SEQ_OPTIONS_LEN)
                .ok_or(SyncError::Truncated)?;
            off += SEQ_OPTIONS_LEN;
            // Version 0 copies `struct ip_vs_seq` in the sender's byte order: read as x86's.
            Some(seq_options_at(o, 0, false))
        } else {
            None
        };
        out.push(SyncConn {
            protocol: u8_at(e, field::V0_PROTOCOL),
            flags: fl,
            state: u16_at(e, field::V0_STATE),
            caddr: IpAddr::V4(v4_at(e, field::V0_CADDR)),
            cport: u16_at(e, field::V0_CPORT),
            vaddr: IpAddr::V4(v4_at(e, field::V0_VADDR)),
            vport: u16_at(e, field::V0_VPORT),
            daddr: IpAddr::V4(v4_at(e, field::V0_DADDR)),
            dport: u16_at(e, field::V0_DPORT),
            fwmark: 0,
            timeout_s: 0,
            seq,
            pe_data: None,
            pe_name: None,
        });
    }
    if off != buf.len() {
        return Err(SyncError::TrailingBytes(buf.len() - off));
    }
    Ok(())
}

// ------------------------------------------------------------------ building

/// Why [`MessageBuilder::push`] refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The message is full: take it and push again.
    #[error("sync message full")]
    Full,
    /// Mixed address families, or an option empty or too long.
    #[error("entry cannot be encoded")]
    Unencodable,
}

/// Builds version-1 messages of at most `maxlen` bytes (`sync_maxlen`), the way the kernel's
/// master fills its sync buffers: entries padded to 4 bytes, a message closed when the next
/// entry would not fit or it holds 255 entries. An entry larger than `maxlen` alone still goes
/// out, in a message of its own (the kernel sizes such a buffer to fit).
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    maxlen: usize,
}

impl MessageBuilder {
    /// An empty message for `syncid`.
    pub fn new(syncid: u8, maxlen: usize) -> Self {
        let mut buf = Vec::with_capacity(maxlen.max(HEADER_LEN + CONN_V6_LEN));
        buf.extend_from_slice(&[0, syncid, 0, HEADER_LEN as u8, 0, PROTO_VERSION, 0, 0]);
        Self {
            buf,
            maxlen: maxlen.max(HEADER_LEN),
        }
    }

    /// Entries so far.
    pub fn nr_conns(&self) -> usize {
        usize::from(u8_at(&self.buf, field::NR_CONNS))
    }

    /// No entry yet?
    pub fn is_empty(&self) -> bool {
        self.nr_conns() == 0
    }

    /// The message so far (a valid message at any point).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Whether `c` fits in this message.
    pub fn fits(&self, c: &SyncConn<'_>) -> bool {
        if self.nr_conns() >= MAX_CONNS {
            return false;
        }
        if self.is_empty() {
            return true;
        }
        let pad = (4 - self.buf.len() % 4) % 4;
        self.buf.len() + pad + c.v1_len() <= self.maxlen
    }

    /// Appends `c`, or says why not: it does not fit ([`fits`](Self::fits)), or cannot be
    /// encoded (an option empty or too long, or mixed address families).
    pub fn push(&mut self, c: &SyncConn<'_>) -> Result<(), PushError> {
        let ok_family =
            c.caddr.is_ipv6() == c.vaddr.is_ipv6() && c.caddr.is_ipv6() == c.daddr.is_ipv6();
        let ok_opts = c
            .pe_data
            .is_none_or(|d| !d.is_empty() && d.len() <= PE_DATA_MAXLEN)
            && c.pe_name
                .is_none_or(|d| !d.is_empty() && d.len() <= PE_NAME_MAXLEN);
        if !ok_family || !ok_opts || c.v1_len() > usize::from(SVER_MASK) {
            return Err(PushError::Unencodable);
        }
        if !self.fits(c) {
            return Err(PushError::Full);
        }
        let pad = (4 - self.buf.len() % 4) % 4;
        if !self.is_empty() {
            self.buf.extend(std::iter::repeat_n(0, pad));
        }
        let len = c.v1_len();
        let b = &mut self.buf;
        b.push(if c.is_ipv6() { STYPE_F_INET6 } else { 0 });
        b.push(c.protocol);
        b.extend_from_slice(&((len as u16) & SVER_MASK).to_be_bytes());
        b.extend_from_slice(&(c.flags & !flags::HASHED).to_be_bytes());
        b.extend_from_slice(&c.state.to_be_bytes());
        b.extend_from_slice(&c.cport.to_be_bytes());
        b.extend_from_slice(&c.vport.to_be_bytes());
        b.extend_from_slice(&c.dport.to_be_bytes());
        b.extend_from_slice(&c.fwmark.to_be_bytes());
        b.extend_from_slice(&c.timeout_s.to_be_bytes());
        for a in [c.caddr, c.vaddr, c.daddr] {
            match a {
                IpAddr::V4(a) => b.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
            }
        }
        if let Some(s) = c.seq {
            b.push(opt::SEQ_DATA);
            b.push(SEQ_OPTIONS_LEN as u8);
            for q in [s.in_seq, s.out_seq] {
                for v in [q.init_seq, q.delta, q.previous_delta] {
                    b.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        for (ty, d) in [(opt::PE_DATA, c.pe_data), (opt::PE_NAME, c.pe_name)] {
            if let Some(d) = d {
                b.push(ty);
                b.push(d.len() as u8);
                b.extend_from_slice(d);
            }
        }
        let n = u8_at(b, field::NR_CONNS).wrapping_add(1);
        b[field::NR_CONNS] = n;
        let size = (b.len() as u16).to_be_bytes();
        b[field::SIZE..field::SIZE + 2].copy_from_slice(&size);
        Ok(())
    }

    /// Takes the message out and starts an empty one.
    pub fn take(&mut self) -> Vec<u8> {
        let syncid = u8_at(&self.buf, field::SYNCID);
        std::mem::replace(self, Self::new(syncid, self.maxlen)).buf
    }
}
