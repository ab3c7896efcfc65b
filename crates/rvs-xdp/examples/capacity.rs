//! Director capacity: how many packets per second the director itself forwards on each path when the sender and the
//! receiver cost next to nothing, as Katran and DPVS are measured (`rvs-lab bench` instead shares 2 cores between
//! the client, the director and the servers, so its UDP figures are bounded by the user-space blaster and sinks).
//!
//! ```text
//! sudo target/release/examples/capacity [ROUNDS] [PACKETS] [PAYLOAD] [FLOWS]
//! # defaults: 5 rounds, 1000000 datagrams, 64-byte payload, FLOWS "1,16" (comma-separated, each 1..=64)
//! ```
//!
//! Three namespaces of its own (`rvscap-<pid>-{c,d,r}`; removed at the end, also on failure): the director `d` with
//! pub0 (peer in `c`) and priv0 (peer r0 in `r`, the real server 203.0.113.11). The sender is BPF_PROG_TEST_RUN in
//! live-frame mode (BPF_F_TEST_XDP_LIVE_FRAMES, what xdp-trafficgen uses): the kernel runs a program on copies of one
//! UDP datagram 198.51.100.10:40000 -> 5001 as if each had arrived on pub0, and carries out its verdict; with N
//! flows, the datagrams come round robin from source ports 40000..40000+N (N connections for kernel NAT's conntrack
//! and N entry pairs' worth of lookups for the fast path: the "many flows" shape of `rvs-lab bench`'s UDP). The
//! injected program (`rvs_bench_inject`, bpf/rvs_bench.c) first restores the datagram's headers (the kernel recycles
//! pages without restoring what the paths rewrote), then passes it to the stack or tail-calls rvs's program. The
//! receiver is an XDP program on r0 that counts and drops (`rvs_bench_sink`). Paths, interleaved within each round:
//! - `direct`: an XDP_PASS program injects datagrams addressed to the real server into the director's stack, which
//!   routes them (plain routing, no conntrack: the ceiling of the kernel's path);
//! - `nft`: the same to the VIP with an nftables DNAT rule (conntrack and NAT: kernel NAT);
//! - `xdp`: rvs's fast-path program with the connection's entry installed, as rvsd installs it: the datagram is
//!   rewritten and redirected to priv0 without entering the stack (one tail call more than the other paths).
//!
//! Figures: datagrams the sink counted per second of the injecting call (the director's work runs inside it: the
//! stack for `direct`/`nft`, the program and the redirect for `xdp`), and the share of injected datagrams that
//! arrived. One CPU injects; the sink runs in r0's NAPI. Needs root.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{Array, PerCpuArray, ProgramArray};
use aya::programs::{Xdp, XdpMode};
use rvs_xdp::{Egress, FastPath, Flow, FlowKey, L4, Options, Program, Stat};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const CIP: [u8; 4] = [198, 51, 100, 10];
const VIP: [u8; 4] = [198, 51, 100, 100];
const RIP: [u8; 4] = [203, 0, 113, 11];
const PORT: u16 = 5001;
/// The first flow's source port; flow i comes from SPORT + i.
const SPORT: u16 = 40000;
/// Templates the injector holds (RVS_BENCH_FLOWS in bpf/rvs_bench.c).
const MAX_FLOWS: u16 = 64;

fn ip(args: &[&str]) -> Res<String> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The namespaces of this run; removed when dropped.
struct Lab {
    c: String,
    d: String,
    r: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("RVSCAP_KEEP").is_some() {
            eprintln!("kept {} {} {}", self.c, self.d, self.r);
            return;
        }
        for ns in [&self.c, &self.d, &self.r] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// (ifindex, MAC) of `dev` in `ns`, from `ip -o link`.
fn link(ns: &str, dev: &str) -> Res<(u32, [u8; 6])> {
    let out = ip(&["-n", ns, "-o", "link", "show", "dev", dev])?;
    let index = out
        .split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .ok_or("no ifindex")?;
    let mac = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or("no MAC")?;
    let mut m = [0u8; 6];
    for (i, b) in mac.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(b, 16)?;
    }
    Ok((index, m))
}

/// Move this (single) thread into namespace `ns`.
fn enter(ns: &str) -> Res<()> {
    let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: f is an open namespace file for the duration of the call; setns has no memory preconditions.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

fn datagram(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    dst: [u8; 4],
    sport: u16,
    payload: usize,
) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2(eth_src, eth_dst)
        .ipv4(CIP, dst, 64)
        .udp(sport, PORT)
        .write(&mut out, &vec![0x5a; payload])?;
    Ok(out)
}

fn sa(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((a, port))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Direct,
    Nft,
    Xdp,
}

const NFT: &str = "table ip rvscap {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr 198.51.100.100 udp dport 5001 dnat to 203.0.113.11:5001
  }
}
";

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let packets: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let payload: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let flow_counts: Vec<u16> = args
        .next()
        .unwrap_or_else(|| "1,16".to_owned())
        .split(',')
        .map(|f| f.trim().parse().unwrap_or(0))
        .collect();
    if !(1..=50).contains(&rounds)
        || !(1_000..=50_000_000).contains(&packets)
        || payload > 1400
        || flow_counts.iter().any(|f| !(1..=MAX_FLOWS).contains(f))
    {
        return Err(
            "ROUNDS 1..=50, PACKETS 1000..=50000000, PAYLOAD <= 1400, FLOWS a list of 1..=64"
                .into(),
        );
    }
    let p = format!("rvscap-{}-", std::process::id());
    let lab = Lab {
        c: format!("{p}c"),
        d: format!("{p}d"),
        r: format!("{p}r"),
    };
    for ns in [&lab.c, &lab.d, &lab.r] {
        ip(&["netns", "add", ns])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    let (c, d, r) = (lab.c.as_str(), lab.d.as_str(), lab.r.as_str());
    ip(&[
        "-n", d, "link", "add", "pub0", "type", "veth", "peer", "name", "c0", "netns", c,
    ])?;
    ip(&[
        "-n", d, "link", "add", "priv0", "type", "veth", "peer", "name", "r0", "netns", r,
    ])?;
    ip(&["-n", d, "addr", "add", "198.51.100.1/24", "dev", "pub0"])?;
    ip(&["-n", d, "addr", "add", "203.0.113.1/24", "dev", "priv0"])?;
    ip(&["-n", c, "addr", "add", "198.51.100.10/24", "dev", "c0"])?;
    ip(&["-n", r, "addr", "add", "203.0.113.11/24", "dev", "r0"])?;
    for (ns, dev) in [(d, "pub0"), (d, "priv0"), (c, "c0"), (r, "r0")] {
        ip(&["-n", ns, "link", "set", dev, "up"])?;
    }
    for s in [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.pub0.rp_filter=0",
    ] {
        let ok = Command::new("ip")
            .args(["netns", "exec", d, "sysctl", "-qw", s])
            .status()?;
        if !ok.success() {
            return Err(format!("sysctl {s}").into());
        }
    }
    let (pub0, pub0_mac) = link(d, "pub0")?;
    let (priv0, priv0_mac) = link(d, "priv0")?;
    let (_, c0_mac) = link(c, "c0")?;
    let (r0, r0_mac) = link(r, "r0")?;
    let hex = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    ip(&[
        "-n",
        d,
        "neigh",
        "replace",
        "203.0.113.11",
        "lladdr",
        &hex(r0_mac),
        "dev",
        "priv0",
        "nud",
        "permanent",
    ])?;

    // The bench's sender and receiver (one loaded object: the sink's counter is its own).
    let mut bench = aya::Ebpf::load(rvs_xdp::BENCH_OBJECT)?;
    for name in ["rvs_bench_inject", "rvs_bench_sink"] {
        let p: &mut Xdp = bench.program_mut(name).ok_or(name)?.try_into()?;
        p.load()?;
    }
    enter(r)?;
    let sink: &mut Xdp = bench
        .program_mut("rvs_bench_sink")
        .ok_or("sink")?
        .try_into()?;
    sink.attach_to_if_index(r0, XdpMode::Driver)?;
    let inject: &mut Xdp = bench
        .program_mut("rvs_bench_inject")
        .ok_or("inject")?
        .try_into()?;
    let inject_fd = inject.fd()?.as_fd().as_raw_fd();
    let mut tpl: Array<_, [u8; 64]> =
        Array::try_from(bench.take_map("rvs_bench_tpl").ok_or("tpl")?)?;
    let mut nflows: Array<_, u32> =
        Array::try_from(bench.take_map("rvs_bench_flows").ok_or("flows")?)?;
    let mut next = ProgramArray::try_from(bench.take_map("rvs_bench_next").ok_or("next")?)?;
    let count: PerCpuArray<_, u64> =
        PerCpuArray::try_from(bench.take_map("rvs_bench_count").ok_or("count")?)?;
    let arrived = || -> Res<u64> { Ok(count.get(&0, 0)?.iter().sum()) };
    // The director's fast path, with the connection's entry as rvsd installs it.
    let mut fp = FastPath::load(Options::default())?;
    enter(d)?;
    fp.add_egress(priv0)?;
    let to_rs = Egress {
        ifindex: priv0,
        dst_mac: r0_mac,
        src_mac: priv0_mac,
        mtu: 1500,
    };
    let most = flow_counts.iter().copied().max().unwrap_or(1);
    let mut keys = Vec::new();
    for i in 0..most {
        let client = sa(CIP, SPORT + i);
        let k = FlowKey::new(L4::Udp, client, sa(VIP, PORT))?;
        fp.insert(&k, &Flow::new(&k, client, sa(RIP, PORT), to_rs)?)?;
        keys.push(k);
    }
    // Packets each entry forwarded so far (to show that every flow of a run took its share).
    let per_entry = |fp: &FastPath| -> Res<Vec<u64>> {
        keys.iter()
            .map(|k| Ok(fp.counters(k)?.map_or(0, |c| c.packets)))
            .collect()
    };
    // The datagrams of every flow, to the VIP and to the real server (only the first 64 bytes differ per flow).
    let to_vip: Vec<Vec<u8>> = (0..most)
        .map(|i| datagram(pub0_mac, c0_mac, VIP, SPORT + i, payload))
        .collect::<Res<_>>()?;
    let to_rip: Vec<Vec<u8>> = (0..most)
        .map(|i| datagram(pub0_mac, c0_mac, RIP, SPORT + i, payload))
        .collect::<Res<_>>()?;
    let paths = [Path::Direct, Path::Nft, Path::Xdp];
    let mut rates: Vec<(Path, u16, f64, f64)> = Vec::new();
    println!(
        "director capacity: {rounds} rounds x {packets} datagrams of {payload} bytes per path and flow count \
         ({flow_counts:?} flows), interleaved"
    );
    for round in 1..=rounds {
        for (flows, path) in flow_counts
            .iter()
            .flat_map(|f| paths.iter().map(move |p| (*f, *p)))
        {
            if path == Path::Nft {
                let mut child = Command::new("ip")
                    .args(["netns", "exec", d, "nft", "-f", "-"])
                    .stdin(std::process::Stdio::piped())
                    .spawn()?;
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .ok_or("nft stdin")?
                    .write_all(NFT.as_bytes())?;
                if !child.wait()?.success() {
                    return Err("nft".into());
                }
            }
            let pkts = if path == Path::Direct {
                &to_rip
            } else {
                &to_vip
            };
            for (i, pkt) in pkts.iter().take(usize::from(flows)).enumerate() {
                let mut hdr = [0u8; 64];
                hdr.copy_from_slice(&pkt[..64]);
                tpl.set(i as u32, hdr, 0)?;
            }
            nflows.set(0, u32::from(flows), 0)?;
            let pkt = &pkts[0];
            if path == Path::Xdp {
                next.set(0, fp.program_fd(Program::FastPath)?, 0)?;
            } else {
                let _ = next.clear_index(&0);
            }
            let fwd_before = fp.stats()?[Stat::Forwarded as usize];
            let entries_before = per_entry(&fp)?;
            let before = arrived()?;
            let took = rvs_xdp::testrun::run_live(inject_fd, pkt, packets, pub0)?;
            std::thread::sleep(Duration::from_millis(300)); // the sink drains r0's ring
            let got = arrived()? - before;
            let rate = got as f64 / took.as_secs_f64();
            let arrived = got as f64 / f64::from(packets);
            let extra = if path == Path::Xdp {
                let fwd = fp.stats()?[Stat::Forwarded as usize] - fwd_before;
                let shares: Vec<u64> = per_entry(&fp)?
                    .iter()
                    .zip(&entries_before)
                    .take(usize::from(flows))
                    .map(|(a, b)| a - b)
                    .collect();
                let (lo, hi) = (
                    shares.iter().min().copied().unwrap_or(0),
                    shares.iter().max().copied().unwrap_or(0),
                );
                format!(", program forwarded {fwd}, {lo}..{hi} per flow's entry")
            } else {
                String::new()
            };
            println!(
                "round {round} {path:?} {flows} flow(s): {:.3} Mpps ({got} of {packets} arrived, {:.1} %, {:.0} ms{extra})",
                rate / 1e6,
                100.0 * arrived,
                took.as_secs_f64() * 1e3
            );
            rates.push((path, flows, rate, arrived));
            if path == Path::Nft {
                let _ = Command::new("ip")
                    .args(["netns", "exec", d, "nft", "delete", "table", "ip", "rvscap"])
                    .status();
            }
        }
    }
    let median = |p: Path, f: u16| {
        let mut v: Vec<f64> = rates
            .iter()
            .filter(|r| r.0 == p && r.1 == f)
            .map(|r| r.2)
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Paired: each round's ratio to kernel NAT in the same round, then the median of those.
    let paired = |p: Path, f: u16| {
        let of = |q: Path| {
            rates
                .iter()
                .filter(move |r| r.0 == q && r.1 == f)
                .map(|r| r.2)
        };
        let mut v: Vec<f64> = of(p).zip(of(Path::Nft)).map(|(a, b)| a / b).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\nmedian datagrams/s delivered (ratio to kernel NAT's median; median of the per-round ratios):"
    );
    for f in &flow_counts {
        let nft = median(Path::Nft, *f);
        for p in paths {
            let m = median(p, *f);
            println!(
                "  {f} flow(s) {p:?}: {:.3} Mpps ({:.2}x; paired {:.2}x)",
                m / 1e6,
                m / nft,
                paired(p, *f)
            );
        }
    }
    drop(fp);
    drop(bench);
    drop(lab);
    Ok(())
}
