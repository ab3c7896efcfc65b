//! ipvsadm's listing formats, as pure functions from API types to text (byte for byte as
//! ipvsadm 1.31's `list_all`, `print_title`, `print_service_entry`, `print_largenum`, `list_conn`,
//! `list_timeout`, `list_daemon`).

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::resolve::{NoResolver, Resolver};
use crate::ipvsadm::Format;
use crate::types::{
    ConnSnapshot, DaemonConfig, DestSnapshot, DestSpec, ForwardMethod, Info, Protocol, ServiceKey,
    ServiceSnapshot, Timeouts, TunnelCsum, TunnelKind,
};

/// How [`largenum`] prints a counter: ipvsadm's default, or `--exact` (`FMT_EXACT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    /// K/M/G/T abbreviations above 10^8.
    Abbreviated,
    /// Every digit.
    Exact,
}

impl Counts {
    fn of(f: &Format) -> Counts {
        if f.exact {
            Counts::Exact
        } else {
            Counts::Abbreviated
        }
    }
}

/// `print_largenum`: 9 columns, K/M/G/T abbreviations above 10^8, or exact with `--exact`.
pub fn largenum(out: &mut String, i: u64, counts: Counts) {
    if counts == Counts::Exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>w$}");
        return;
    }
    let _ = if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

/// glibc `inet_ntop` text of an address (IPv4-compatible IPv6 addresses keep their dotted tail).
pub fn ntop(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => {
            let s = a.segments();
            if s[..6] == [0; 6] && s[6] != 0 {
                let v4 = std::net::Ipv4Addr::from(u32::from(s[6]) << 16 | u32::from(s[7]));
                format!("::{v4}")
            } else {
                a.to_string()
            }
        }
    }
}

/// `addrport_to_anyname`: "addr:port", "[v6]:port", names unless numeric.
pub fn addrport(
    addr: IpAddr,
    port: u16,
    proto: Protocol,
    numeric: bool,
    r: &dyn Resolver,
) -> String {
    let (open, close) = if addr.is_ipv6() { ("[", "]") } else { ("", "") };
    if numeric {
        format!("{open}{}{close}:{port}", ntop(addr))
    } else {
        let host = r.addr_to_host(addr).unwrap_or_else(|| ntop(addr));
        let serv = r
            .port_to_service(port, proto)
            .unwrap_or_else(|| port.to_string());
        format!("{open}{host}{close}:{serv}")
    }
}

/// The header line of `-L` (not printed for `-S`, `-L -t ...`, `-c`, `--timeout`, `--daemon`).
pub fn header(info: &Info) -> String {
    format!(
        "IP Virtual Server version {} (size={})\n",
        info.version, info.conn_table_size
    )
}

/// `print_title`.
pub fn title(f: &Format) -> String {
    if f.stats {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if f.rate {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if f.thresholds {
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if f.persistent_conn {
        format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if f.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_owned()
    } else if !f.rule {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_owned()
    } else {
        String::new()
    }
}

fn svc_proto(key: &ServiceKey) -> Protocol {
    key.protocol().unwrap_or(Protocol::Tcp)
}

/// Kernel-style view of an address for ipvsadm's comparators: (af, four host-order words).
fn words(addr: IpAddr) -> (i32, [u32; 4]) {
    match addr {
        IpAddr::V4(a) => (2, [u32::from(a), 0, 0, 0]),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            (10, [w(0), w(4), w(8), w(12)])
        }
    }
}

fn cmp_addr_words(af1: i32, w1: &[u32; 4], w2: &[u32; 4]) -> i32 {
    if af1 == 10 {
        let mut r = 0;
        for i in 0..4 {
            r = w1[i].wrapping_sub(w2[i]) as i32;
            if r != 0 {
                break;
            }
        }
        r
    } else {
        w1[0].wrapping_sub(w2[0]) as i32
    }
}

/// libipvs `ipvs_cmp_services` (with its unsigned-difference arithmetic).
pub fn cmp_services(s1: &ServiceKey, s2: &ServiceKey) -> i32 {
    let parts = |k: &ServiceKey| -> (u32, i32, i32, (i32, [u32; 4]), u16) {
        match *k {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => {
                let (af, w) = words(addr);
                (0, af, i32::from(protocol.number()), (af, w), port)
            }
            ServiceKey::Fwmark { mark, ipv6 } => {
                let af = if ipv6 { 10 } else { 2 };
                (mark.get(), af, 6, (af, [0; 4]), 0)
            }
        }
    };
    let (f1, af1, p1, (_, w1), port1) = parts(s1);
    let (f2, af2, p2, (_, w2), port2) = parts(s2);
    let r = f1.wrapping_sub(f2) as i32;
    if r != 0 {
        return r;
    }
    let r = af1 - af2;
    if r != 0 {
        return r;
    }
    let r = p1 - p2;
    if r != 0 {
        return r;
    }
    let r = cmp_addr_words(af1, &w1, &w2);
    if r != 0 {
        return r;
    }
    i32::from(port1) - i32::from(port2)
}

/// libipvs `ipvs_cmp_dests`.
pub fn cmp_dests(d1: &DestSnapshot, d2: &DestSnapshot) -> i32 {
    let (af1, w1) = words(d1.spec.addr);
    let (_, w2) = words(d2.spec.addr);
    let r = cmp_addr_words(af1, &w1, &w2);
    if r != 0 {
        return r;
    }
    i32::from(d1.spec.port) - i32::from(d2.spec.port)
}

/// glibc's `qsort` (a top-down merge sort) over indices; never panics whatever `cmp` does.
pub fn msort_indices<T>(items: &[T], cmp: impl Fn(&T, &T) -> i32 + Copy) -> Vec<usize> {
    fn rec<T>(
        idx: &mut [usize],
        tmp: &mut Vec<usize>,
        items: &[T],
        cmp: impl Fn(&T, &T) -> i32 + Copy,
    ) {
        let n = idx.len();
        if n <= 1 {
            return;
        }
        let n1 = n / 2;
        rec(&mut idx[..n1], tmp, items, cmp);
        rec(&mut idx[n1..], tmp, items, cmp);
        tmp.clear();
        let (mut i, mut j) = (0, n1);
        while i < n1 && j < n {
            if cmp(&items[idx[i]], &items[idx[j]]) <= 0 {
                tmp.push(idx[i]);
                i += 1;
            } else {
                tmp.push(idx[j]);
                j += 1;
            }
        }
        tmp.extend_from_slice(&idx[i..n1]);
        tmp.extend_from_slice(&idx[j..n]);
        idx.copy_from_slice(tmp);
    }
    let mut idx: Vec<usize> = (0..items.len()).collect();
    let mut tmp = Vec::with_capacity(items.len());
    rec(&mut idx, &mut tmp, items, cmp);
    idx
}

/// Services in ipvsadm's listing order.
pub fn sorted_services(services: &[ServiceSnapshot]) -> Vec<&ServiceSnapshot> {
    msort_indices(services, |a, b| cmp_services(&a.spec.key, &b.spec.key))
        .into_iter()
        .map(|i| &services[i])
        .collect()
}

fn sched_flags_text(svc: &ServiceSnapshot) -> String {
    let f = svc.spec.sched_flags;
    let mut v: Vec<&str> = Vec::new();
    match svc.spec.scheduler.as_str() {
        "sh" => {
            if f.fallback {
                v.push("sh-fallback");
            }
            if f.port {
                v.push("sh-port");
            }
        }
        "mh" => {
            if f.fallback {
                v.push("mh-fallback");
            }
            if f.port {
                v.push("mh-port");
            }
        }
        _ => {
            if f.fallback {
                v.push("flag-1");
            }
            if f.port {
                v.push("flag-2");
            }
            if f.flag3 {
                v.push("flag-3");
            }
        }
    }
    v.join(",")
}

fn mask_plen(mask: IpAddr) -> u32 {
    match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones(),
        IpAddr::V6(m) => u128::from(m).leading_ones(),
    }
}

fn mask_text(key: &ServiceKey, mask: IpAddr) -> Option<String> {
    if key.is_ipv6() {
        let plen = match mask {
            IpAddr::V6(m) => mask_plen(IpAddr::V6(m)),
            IpAddr::V4(_) => 128,
        };
        (plen != 128).then(|| plen.to_string())
    } else {
        let m = match mask {
            IpAddr::V4(m) => m,
            IpAddr::V6(_) => std::net::Ipv4Addr::BROADCAST,
        };
        (m != std::net::Ipv4Addr::BROADCAST).then(|| m.to_string())
    }
}

fn svc_name(svc: &ServiceSnapshot, f: &Format, r: &dyn Resolver) -> String {
    match svc.spec.key {
        ServiceKey::Fwmark { mark, ipv6 } => match (f.rule, ipv6) {
            (true, true) => format!("-f {mark} -6"),
            (true, false) => format!("-f {mark}"),
            (false, true) => format!("FWM  {mark} IPv6"),
            (false, false) => format!("FWM  {mark}"),
        },
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let vname = addrport(addr, port, protocol, f.numeric, r);
            if f.rule {
                format!("{} {vname}", protocol.option())
            } else {
                let mut s = format!("{:<4} {vname}", protocol.name());
                if addr.is_ipv4() {
                    truncate_bytes(&mut s, 33);
                }
                s
            }
        }
    }
}

fn truncate_bytes(s: &mut String, n: usize) {
    if s.len() > n {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn fwd_switch(m: &ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Masq => "-m",
        ForwardMethod::Tunnel(_) => "-i",
        ForwardMethod::Local | ForwardMethod::Route | ForwardMethod::Bypass => "-g",
    }
}

fn tun_flag(c: TunnelCsum) -> &'static str {
    match c {
        TunnelCsum::NoCsum => "-c",
        TunnelCsum::Csum => "+c",
        TunnelCsum::RemCsum => "r+c",
    }
}

fn tun_flag_opt(c: TunnelCsum) -> &'static str {
    match c {
        TunnelCsum::NoCsum => "--tun-nocsum",
        TunnelCsum::Csum => "--tun-csum",
        TunnelCsum::RemCsum => "--tun-remcsum",
    }
}

fn tun_info(m: &ForwardMethod) -> Option<String> {
    match m {
        ForwardMethod::Tunnel(t) => Some(match t.kind {
            TunnelKind::Ipip => "ipip".to_owned(),
            TunnelKind::Gue => format!("gue:{}:{}", t.port, tun_flag(t.csum)),
            TunnelKind::Gre => format!("gre:{}", tun_flag(t.csum)),
        }),
        _ => None,
    }
}

/// `print_service_entry`: the service line and its destinations.
pub fn service_entry(out: &mut String, svc: &ServiceSnapshot, f: &Format, r: &dyn Resolver) {
    service_entry_ext(out, svc, f, r, Thresholds::AsIpvsadm);
}

/// Whether `-a` rule lines carry the real server's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thresholds {
    /// As `ipvsadm -S`: left out.
    AsIpvsadm,
    /// `-x`/`-y` appended when set (an rvs extension for rvsd's own rules file, which ipvsadm -R
    /// also reads).
    Saved,
}

/// Like [`service_entry`], with the rule lines' thresholds as `thresholds` says.
fn service_entry_ext(
    out: &mut String,
    svc: &ServiceSnapshot,
    f: &Format,
    r: &dyn Resolver,
    thresholds: Thresholds,
) {
    let name = svc_name(svc, f, r);
    service_line(out, svc, &name, f);
    let proto = svc_proto(&svc.spec.key);
    let order: Vec<&DestSnapshot> = if f.nosort {
        svc.dests.iter().collect()
    } else {
        msort_indices(&svc.dests, cmp_dests)
            .into_iter()
            .map(|i| &svc.dests[i])
            .collect()
    };
    for d in order {
        let dc = &d.spec;
        let mut dname = addrport(dc.addr, dc.port, proto, f.numeric, r);
        if !f.rule && dc.addr.is_ipv4() {
            truncate_bytes(&mut dname, 28);
        }
        if f.rule {
            dest_rule(out, &name, &dname, dc, thresholds);
        } else {
            dest_line(out, d, &dname, f);
        }
    }
}

/// Five counters as `print_largenum` columns.
fn largenums(out: &mut String, values: [u64; 5], counts: Counts) {
    for v in values {
        largenum(out, v, counts);
    }
}

/// The service's own line (`-A` rule, or the `-L` line in the format's view).
fn service_line(out: &mut String, svc: &ServiceSnapshot, name: &str, f: &Format) {
    let c = &svc.spec;
    let flags = !c.sched_flags.is_empty();
    if f.rule {
        let _ = write!(out, "-A {name} -s {}", c.scheduler);
        if let Some(p) = &c.persistence {
            let _ = write!(out, " -p {}", p.timeout_s);
            if let Some(m) = mask_text(&c.key, p.netmask) {
                let _ = write!(out, " -M {m}");
            }
        }
        if let Some(pe) = &c.pe {
            let _ = write!(out, " --pe {pe}");
        }
        if c.one_packet {
            out.push_str(" -o");
        }
        if flags {
            let _ = write!(out, " -b {}", sched_flags_text(svc));
        }
    } else if f.stats {
        let st = &svc.stats;
        let _ = write!(out, "{name:<33}");
        let values = [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes];
        largenums(out, values, Counts::of(f));
    } else if f.rate {
        let rt = &svc.rates;
        let _ = write!(out, "{name:<33}");
        largenums(
            out,
            [rt.cps, rt.inpps, rt.outpps, rt.inbps, rt.outbps],
            Counts::of(f),
        );
    } else {
        let _ = write!(out, "{name} {}", c.scheduler);
        if flags {
            let _ = write!(out, " ({})", sched_flags_text(svc));
        }
        if let Some(p) = &c.persistence {
            let _ = write!(out, " persistent {}", p.timeout_s);
            if let Some(m) = mask_text(&c.key, p.netmask) {
                let _ = write!(out, " mask {m}");
            }
            if let Some(pe) = &c.pe {
                let _ = write!(out, " pe {pe}");
            }
        }
        if c.one_packet {
            out.push_str(" ops");
        }
    }
    out.push('\n');
}

/// A real server's `-a` rule line (`print_tunnel_rule` for tunnels).
fn dest_rule(out: &mut String, name: &str, dname: &str, dc: &DestSpec, thresholds: Thresholds) {
    let sw = fwd_switch(&dc.method);
    let _ = write!(out, "-a {name} -r {dname} {sw} -w {}", dc.weight);
    if let ForwardMethod::Tunnel(t) = dc.method {
        let _ = match t.kind {
            TunnelKind::Gre => write!(out, " --tun-type gre {}", tun_flag_opt(t.csum)),
            TunnelKind::Gue => write!(
                out,
                " --tun-type gue --tun-port {} {}",
                t.port,
                tun_flag_opt(t.csum)
            ),
            TunnelKind::Ipip => write!(out, " --tun-type ipip"),
        };
    }
    if thresholds == Thresholds::Saved {
        if dc.u_threshold != 0 {
            let _ = write!(out, " -x {}", dc.u_threshold);
        }
        if dc.l_threshold != 0 {
            let _ = write!(out, " -y {}", dc.l_threshold);
        }
    }
    out.push('\n');
}

/// A real server's `-L` line in the format's view.
fn dest_line(out: &mut String, d: &DestSnapshot, dname: &str, f: &Format) {
    let dc = &d.spec;
    if f.stats {
        let st = &d.stats;
        let _ = write!(out, "  -> {dname:<28}");
        let values = [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes];
        largenums(out, values, Counts::of(f));
        out.push('\n');
    } else if f.rate {
        // ipvsadm prints the three packet/connection rates plain and only the byte rates large.
        let _ = write!(
            out,
            "  -> {dname:<28} {:>8} {:>8} {:>8}",
            d.rates.cps, d.rates.inpps, d.rates.outpps
        );
        largenum(out, d.rates.inbps, Counts::of(f));
        largenum(out, d.rates.outbps, Counts::of(f));
        out.push('\n');
    } else if f.thresholds {
        let _ = writeln!(
            out,
            "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
            dc.u_threshold, dc.l_threshold, d.active_conns, d.inactive_conns
        );
    } else if f.persistent_conn {
        let _ = writeln!(
            out,
            "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
            dc.weight, d.persistent_conns, d.active_conns, d.inactive_conns
        );
    } else if f.tun_info {
        let ti = tun_info(&dc.method).unwrap_or_else(|| "n/a".to_owned());
        let _ = writeln!(
            out,
            "  -> {dname:<28} {:<7} {ti:<13} {:<6} {:<10} {:<10}",
            dc.method.name(),
            dc.weight,
            d.active_conns,
            d.inactive_conns
        );
    } else {
        let _ = writeln!(
            out,
            "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
            dc.method.name(),
            dc.weight,
            d.active_conns,
            d.inactive_conns
        );
    }
}

/// `ipvsadm -L [options]` / `ipvsadm -S` (with `f.rule`): header (not for -S), title, services.
pub fn list_all(info: &Info, services: &[ServiceSnapshot], f: &Format, r: &dyn Resolver) -> String {
    let mut out = String::new();
    if !f.rule {
        out.push_str(&header(info));
    }
    out.push_str(&title(f));
    let order: Vec<&ServiceSnapshot> = if f.nosort {
        services.iter().collect()
    } else {
        sorted_services(services)
    };
    for s in order {
        service_entry(&mut out, s, f, r);
    }
    out
}

/// `ipvsadm -L -t|-u|-f ...`: title and one service (no header line).
pub fn list_service(svc: &ServiceSnapshot, f: &Format, r: &dyn Resolver) -> String {
    let mut out = title(f);
    service_entry(&mut out, svc, f, r);
    out
}

/// `ipvsadm -S -n` text, used as rvsd's rules file: identical to ipvsadm's save output except
/// that real-server thresholds, which ipvsadm -S drops, are kept as `-x`/`-y` (ipvsadm -R reads
/// them back). Numeric, so it resolves no names.
pub fn save_rules(services: &[ServiceSnapshot]) -> String {
    let f = Format {
        rule: true,
        numeric: true,
        ..Format::default()
    };
    let mut out = String::new();
    for s in sorted_services(services) {
        service_entry_ext(&mut out, s, &f, &NoResolver, Thresholds::Saved);
    }
    out
}

/// `ipvsadm -L -c`: connection entries in the order given.
pub fn list_conns(conns: &[ConnSnapshot], f: &Format, r: &dyn Resolver) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if f.persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let secs = c.expires_in_ms / 1000;
        let expire = format!("{:02}:{:02}", secs / 60, secs % 60);
        let cname = addrport(c.caddr, c.cport, c.protocol, f.numeric, r);
        let vname = addrport(c.vaddr, c.vport, c.protocol, f.numeric, r);
        let dname = addrport(c.daddr, c.dport, c.protocol, f.numeric, r);
        let _ = writeln!(
            out,
            "{:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname}",
            c.protocol.name(),
            c.state
        );
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn list_timeout(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp_s, t.tcp_fin_s, t.udp_s
    )
}

/// `ipvsadm -L --daemon`.
pub fn list_daemons(daemons: &[DaemonConfig]) -> String {
    let mut out = String::new();
    for d in daemons {
        let _ = write!(
            out,
            "{} sync daemon (mcast={}, syncid={}",
            d.state.name(),
            d.mcast_ifn,
            d.syncid
        );
        if d.sync_maxlen != 0 {
            let _ = write!(out, ", maxlen={}", d.sync_maxlen);
        }
        if let Some(g) = d.mcast_group {
            let _ = write!(out, ", group={}", ntop(g));
        }
        if d.mcast_port != 0 {
            let _ = write!(out, ", port={}", d.mcast_port);
        }
        if d.mcast_ttl != 0 {
            let _ = write!(out, ", ttl={}", d.mcast_ttl);
        }
        out.push_str(")\n");
    }
    out
}

/// Orders two keys like ipvsadm's listing does (for callers that want a `sort_by`).
pub fn key_order(a: &ServiceKey, b: &ServiceKey) -> Ordering {
    cmp_services(a, b).cmp(&0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::Fwmark;

    fn ln(i: u64, counts: Counts) -> String {
        let mut s = String::new();
        largenum(&mut s, i, counts);
        s
    }

    #[test]
    fn largenum_boundaries() {
        let cases: &[(u64, &str)] = &[
            (0, "        0"),
            (99_999_999, " 99999999"),
            (100_000_000, "  100000K"),
            (999_999_999, "  999999K"),
            (1_000_000_000, "    1000M"),
            (99_999_999_999, "   99999M"),
            (100_000_000_000, "     100G"),
            (99_999_999_999_999, "   99999G"),
            (100_000_000_000_000, "     100T"),
            (u64::MAX, "18446744T"),
        ];
        for (i, want) in cases {
            assert_eq!(ln(*i, Counts::Abbreviated), *want, "{i}");
        }
        assert_eq!(ln(5, Counts::Exact), "        5");
        assert_eq!(ln(12_345_678, Counts::Exact), " 12345678");
        assert_eq!(ln(123_456_789, Counts::Exact), " 123456789");
        assert_eq!(ln(u64::MAX, Counts::Exact), " 18446744073709551615");
    }

    #[test]
    fn ntop_like_glibc() {
        assert_eq!(ntop("::1.2.3.4".parse().unwrap()), "::1.2.3.4");
        assert_eq!(ntop("::ffff:1.2.3.4".parse().unwrap()), "::ffff:1.2.3.4");
        assert_eq!(ntop("2001:db8::1".parse().unwrap()), "2001:db8::1");
        assert_eq!(ntop("::1".parse().unwrap()), "::1");
    }

    #[test]
    fn service_order_keeps_libipvs_unsigned_difference() {
        let k = |a: &str, port| ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: a.parse().unwrap(),
            port,
        };
        // (int)(0x0a000001 - 0xc8000001) > 0: libipvs lists 200.0.0.1 before 10.0.0.1
        assert!(cmp_services(&k("10.0.0.1", 80), &k("200.0.0.1", 80)) > 0);
        assert!(cmp_services(&k("10.0.0.1", 80), &k("10.0.0.2", 80)) < 0);
        assert!(cmp_services(&k("10.0.0.1", 80), &k("10.0.0.1", 443)) < 0);
        let fw = ServiceKey::Fwmark {
            mark: Fwmark(1),
            ipv6: false,
        };
        assert!(cmp_services(&k("255.0.0.1", 80), &fw) < 0, "fwmark 0 first");
    }

    #[test]
    fn msort_is_stable_merge_and_total_on_garbage() {
        let v = [3, 1, 2, 1, 0];
        let idx = msort_indices(&v, |a, b| a - b);
        assert_eq!(
            idx.iter().map(|&i| v[i]).collect::<Vec<_>>(),
            [0, 1, 1, 2, 3]
        );
        assert_eq!(idx[1..3], [1, 3], "equal keys keep their order");
        // an inconsistent comparator must not panic
        let idx = msort_indices(&v, |_, _| 1);
        assert_eq!(idx.len(), 5);
    }
}
