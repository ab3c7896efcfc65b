//! C-style number and address parsing as ipvsadm does it (`strtol`, `atoi`, `inet_aton`,
//! `string_to_number`, `parse_service`, `parse_netmask`, fixed-size name buffers), so that what
//! ipvsadm accepts, rvsadm accepts, and what it refuses, rvsadm refuses with the same message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ParseError;
use super::resolve::Resolver;
use crate::types::Protocol;

/// Copies at most `max` bytes of `s` (a C name buffer of `max + 1` bytes), on a char boundary.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// C `strtol(s, &end, 10)` requiring the whole string: optional leading spaces and sign.
fn strtol_full(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// ipvsadm's `string_to_number`.
pub(super) fn string_to_number(s: &str, min: u32, max: u32) -> Option<u32> {
    let n = strtol_full(s)?;
    (i64::from(min) <= n && n <= i64::from(max)).then_some(n as u32)
}

pub(super) fn parse_timeout(s: &str, min: u32, max: u32) -> Result<u32, ParseError> {
    string_to_number(s, min, max)
        .ok_or_else(|| ParseError::fail(format!("invalid timeout value `{s}' specified")))
}

pub(super) fn parse_fwmark(s: &str) -> Result<u32, ParseError> {
    match strtol_full(s) {
        Some(n) if n > 0 && n <= i64::from(u32::MAX) => Ok(n as u32),
        _ => Err(ParseError::fail(format!(
            "invalid fwmark value `{s}' specified"
        ))),
    }
}

/// C `atoi`: leading spaces, sign, digits; stops at the first non-digit; 0 when none.
pub(super) fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in rest.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg { -v } else { v }
}

/// C `inet_aton`: 1-4 parts, each decimal, octal (leading 0) or hex (0x).
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    if s.is_empty() {
        return None;
    }
    let mut vals = [0u32; 4];
    let mut n = 0;
    for p in s.split('.') {
        if n == 4 {
            return None;
        }
        vals[n] = parse_c_uint(p)?;
        n += 1;
    }
    let last = vals[n - 1];
    let mut addr: u32 = 0;
    for (i, v) in vals[..n - 1].iter().enumerate() {
        if *v > 255 {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let last_max: u64 = match n {
        1 => u64::from(u32::MAX),
        2 => 0x00ff_ffff,
        3 => 0xffff,
        _ => 0xff,
    };
    if u64::from(last) > last_max {
        return None;
    }
    addr |= last;
    Some(Ipv4Addr::from(addr))
}

fn parse_c_uint(p: &str) -> Option<u32> {
    if p.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        // "0x" alone is accepted by inet_aton as 0.
        return (radix == 16).then_some(0);
    }
    u32::from_str_radix(digits, radix).ok()
}

/// Result of ipvsadm's `parse_service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

/// ipvsadm's `parse_service`: `host[:port]`, `[v6]:port` or a bare IPv6 address.
pub fn parse_service(buf: &str, proto: Protocol, resolver: &dyn Resolver) -> Option<HostPort> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, portp): (&str, Option<&str>) = if let Some(rest) = buf.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        let port = after.strip_prefix(':')?;
        (host, Some(port))
    } else {
        (buf, None)
    };
    // an IPv6 address has at least two colons: skip the attempt for host:port
    let maybe_v6 = host.bytes().filter(|&b| b == b':').nth(1).is_some();
    let (addr, portp) = if let Some(a6) = maybe_v6.then(|| host.parse::<Ipv6Addr>().ok()).flatten()
    {
        (IpAddr::V6(a6), portp)
    } else {
        let (h, p) = match (portp, host.rfind(':')) {
            (Some(p), _) => (host, Some(p)),
            (None, Some(i)) => (&host[..i], Some(&host[i + 1..])),
            (None, None) => (host, None),
        };
        let a4 = inet_aton(h).or_else(|| resolver.host_to_addr(h))?;
        (IpAddr::V4(a4), p)
    };
    let port = match portp {
        None => None,
        Some(p) => Some(match string_to_number(p, 0, 65535) {
            Some(n) => n as u16,
            None => resolver.service_to_port(p, proto)?,
        }),
    };
    Some(HostPort { addr, port })
}

pub(super) fn parse_netmask(buf: &str, resolver: &dyn Resolver) -> Option<u32> {
    inet_aton(buf)
        .or_else(|| resolver.host_to_addr(buf))
        .map(u32::from)
}

/// Each case is what glibc's function of the same name gives (`strtol` with an end-pointer check,
/// `atoi`, `inet_aton`), so the C behaviour ipvsadm inherits is pinned here, not just "parses".
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::resolve::{NoResolver, TableResolver};

    #[test]
    fn string_to_number_is_strtol_over_the_whole_word() {
        for (s, want) in [
            ("0", Some(0)),
            ("65535", Some(65535)),
            (" 12", Some(12)),              // strtol skips leading white space
            ("+7", Some(7)),                // and takes a sign
            ("-0", Some(0)),                // -0 is 0, in range
            ("12 ", None),                  // trailing text: *end != '\0'
            ("", None),                     // no digits
            ("0x10", None),                 // base 10 only
            ("65536", None),                // out of range
            ("-1", None),                   // below min
            ("99999999999999999999", None), // overflow
        ] {
            assert_eq!(string_to_number(s, 0, 65535), want, "{s:?}");
        }
    }

    #[test]
    fn atoi_stops_at_the_first_non_digit() {
        for (s, want) in [
            ("24", 24),
            ("24abc", 24),
            ("abc", 0),
            (" -3", -3),
            ("", 0),
            ("+", 0),
        ] {
            assert_eq!(atoi(s), want, "{s:?}");
        }
    }

    #[test]
    fn inet_aton_takes_every_c_form() {
        for (s, want) in [
            ("10.0.0.1", Some("10.0.0.1")),
            ("10.1", Some("10.0.0.1")),          // a.b: b fills 24 bits
            ("10.1.2", Some("10.1.0.2")),        // a.b.c: c fills 16 bits
            ("167772161", Some("10.0.0.1")),     // one 32-bit number
            ("0x0a.0.0.012", Some("10.0.0.10")), // hex and octal parts
            ("0x", Some("0.0.0.0")),             // glibc: "0x" alone is 0
            ("4294967295", Some("255.255.255.255")),
            ("1.2.3.256", None),
            ("256.1.1.1", None),
            ("10.16777216", None), // b over 24 bits
            ("1.2.3.4.5", None),
            ("1..2", None),
            ("08", None), // 8 is not an octal digit
            ("", None),
            ("host", None),
        ] {
            assert_eq!(inet_aton(s), want.map(|w| w.parse().unwrap()), "{s:?}");
        }
    }

    #[test]
    fn parse_service_reads_ipvsadms_address_forms() {
        let r = TableResolver::parse("203.0.113.7 web\n", "http 80/tcp\n");
        let hp = |s: &str| parse_service(s, Protocol::Tcp, &r);
        let at = |a: &str, port: Option<u16>| {
            Some(HostPort {
                addr: a.parse().unwrap(),
                port,
            })
        };
        assert_eq!(hp("10.0.0.1:80"), at("10.0.0.1", Some(80)));
        assert_eq!(hp("10.0.0.1"), at("10.0.0.1", None));
        assert_eq!(hp("[2001:db8::1]:80"), at("2001:db8::1", Some(80)));
        assert_eq!(hp("2001:db8::1"), at("2001:db8::1", None));
        assert_eq!(hp("web:http"), at("203.0.113.7", Some(80)));
        assert_eq!(hp("10.0.0.1:0"), at("10.0.0.1", Some(0)));
        assert_eq!(
            hp("80"),
            None,
            "all digits is refused, not taken as an address"
        );
        assert_eq!(hp("[2001:db8::1]"), None, "brackets need a port");
        assert_eq!(hp("[2001:db8::1]80"), None);
        assert_eq!(hp("10.0.0.1:65536"), None);
        assert_eq!(hp("10.0.0.1:nosuch"), None);
        assert_eq!(parse_service("web:80", Protocol::Tcp, &NoResolver), None);
    }

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate("roundrobin-long-name", 15), "roundrobin-long");
        assert_eq!(truncate("rr", 15), "rr");
        assert_eq!(truncate("ééé", 3), "é", "never splits a UTF-8 character");
    }
}
