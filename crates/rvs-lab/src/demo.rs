//! `rvs-lab demo`: the whole LVS-NAT story in well under a minute, then everything removed.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::capture::{Capture, Seen};
use crate::client::{self, Connection, HttpConn};
use crate::error::{LabError, Result};
use crate::lab::{self, Lab, LabConfig, Method};

/// Demo options (`rvs-lab demo --help`).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub real_servers: usize,
    pub scheduler: String,
    pub requests: usize,
    pub prefix: String,
    /// The forwarding method of the demo's real servers (DR and TUN put a router in front).
    pub method: Method,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            real_servers: 2,
            scheduler: "rr".into(),
            requests: 1000,
            prefix: "rvs-demo".into(),
            method: Method::Nat,
        }
    }
}

fn section(title: &str) {
    println!("\n== {title}");
}

/// Runs `rvsadm ARGS`, printing the command first so the user learns the syntax.
fn rvsadm_shown(lab: &Lab, args: &[&str]) -> Result<String> {
    println!("$ rvsadm {}", args.join(" "));
    lab.rvsadm(args)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}

/// The four address pairs of one connection, as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WirePairs {
    /// CIP -> VIP, leaving the client.
    pub client_out: Seen,
    /// CIP -> RIP, arriving at the real server.
    pub at_real_server: Seen,
    /// RIP -> CIP, arriving at the director's private side.
    pub at_director: Seen,
    /// VIP -> CIP, arriving at the client.
    pub client_in: Seen,
}

/// One HTTP connection from the client, recorded by AF_PACKET captures in each namespace that matters.
struct Traced {
    /// What each capture saw, in the order the captures were given, then one per real server.
    seen: Vec<Vec<Seen>>,
    caddr: SocketAddrV4,
    vaddr: SocketAddrV4,
    /// The real server that answered (`rsN`) and its number.
    name: String,
    idx: usize,
}

/// Which way a packet crossed the interface it was captured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crossing {
    Either,
    Leaving,
    Arriving,
}

impl Traced {
    /// Makes one HTTP connection to `vip_port` while `caps` (started by the caller) and a capture on every real
    /// server's interface record it.
    fn connect(lab: &Lab, vip_port: SocketAddr, mut caps: Vec<Capture>) -> Result<Self> {
        for i in 1..=lab.cfg.real_servers {
            caps.push(Capture::start(&lab.rs(i), lab::HOST_IF, 10_000)?);
        }
        let outcome = lab.in_client(move || {
            let mut conn = HttpConn::connect(vip_port, Duration::from_secs(5))?;
            let local = conn.local_addr()?;
            let resp = conn.get(Connection::Close)?;
            Ok((local, resp.who()?.0))
        });
        std::thread::sleep(Duration::from_millis(100));
        let mut seen: Vec<Vec<Seen>> = Vec::new();
        for c in caps {
            seen.push(c.finish()?);
        }
        let (local, name) = outcome?;
        let (SocketAddr::V4(caddr), SocketAddr::V4(vaddr)) = (local, vip_port) else {
            return Err(LabError::Check(format!(
                "the wire trace is IPv4 only (client {local}, VIP {vip_port})"
            )));
        };
        let idx: usize = name
            .strip_prefix("rs")
            .and_then(|n| n.parse().ok())
            .filter(|&i| (1..=lab.cfg.real_servers).contains(&i))
            .ok_or_else(|| LabError::Check(format!("unknown real server {name:?}")))?;
        Ok(Traced {
            seen,
            caddr,
            vaddr,
            name,
            idx,
        })
    }

    /// The TCP packet `src -> dst` in capture `cap`, crossing its interface as `way` says.
    fn find(
        &self,
        cap: usize,
        way: Crossing,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        what: &str,
    ) -> Result<Seen> {
        self.seen[cap]
            .iter()
            .find(|s| {
                s.protocol == 6
                    && s.src == SocketAddr::V4(src)
                    && s.dst == SocketAddr::V4(dst)
                    && match way {
                        Crossing::Either => true,
                        Crossing::Leaving => s.is_outgoing(),
                        Crossing::Arriving => !s.is_outgoing(),
                    }
            })
            .copied()
            .ok_or_else(|| {
                LabError::Check(format!(
                    "no packet {src} -> {dst} ({what}) was seen on the wire"
                ))
            })
    }
}

/// Makes one HTTP connection from the client to `vip_port` while recording the client's, the director's private
/// and every real server's interface; returns the four address pairs of that connection and the real server's name.
pub fn trace_one_connection(lab: &Lab, vip_port: SocketAddr) -> Result<(WirePairs, String)> {
    let caps = vec![
        Capture::start(&lab.client(), lab::HOST_IF, 10_000)?,
        Capture::start(&lab.director(), lab::PRIVATE_IF, 10_000)?,
    ];
    let t = Traced::connect(lab, vip_port, caps)?;
    let (c, v) = (t.caddr, t.vaddr);
    let r = SocketAddrV4::new(lab::rip(t.idx), v.port());
    let any = Crossing::Either;
    let pairs = WirePairs {
        client_out: t.find(0, any, c, v, "CIP -> VIP at the client")?,
        at_real_server: t.find(1 + t.idx, any, c, r, "CIP -> RIP at the real server")?,
        at_director: t.find(1, any, r, c, "RIP -> CIP at the director")?,
        client_in: t.find(0, any, v, c, "VIP -> CIP at the client")?,
    };
    Ok((pairs, t.name))
}

/// One hop of a traced connection: where it was seen, the packet, what it shows.
pub type Hop = (String, Seen, &'static str);

/// The four hops of a NAT connection, to print.
fn nat_hops(p: WirePairs, name: &str) -> Vec<Hop> {
    vec![
        ("client, leaving".into(), p.client_out, "CIP -> VIP"),
        (
            format!("{name}, arriving"),
            p.at_real_server,
            "CIP -> RIP: the real server sees the client",
        ),
        (
            format!("director, from {name}"),
            p.at_director,
            "RIP -> CIP: the reply comes back via the DIP",
        ),
        (
            "client, arriving".into(),
            p.client_in,
            "VIP -> CIP: the client only ever sees the VIP",
        ),
    ]
}

/// One DR/TUN connection on the wire: the client's request, the frame (or tunnel packet) the director sends, what
/// the real server receives and answers, the reply passing the router, and how many reply packets the director saw
/// (none).
pub fn trace_direct(lab: &Lab, vip_port: SocketAddr) -> Result<(Vec<Hop>, usize)> {
    let caps = vec![
        Capture::start(&lab.client(), lab::HOST_IF, 10_000)?,
        Capture::start(&lab.director(), lab::PUBLIC_IF, 10_000)?,
        Capture::start(&lab.director(), lab::PRIVATE_IF, 10_000)?,
        Capture::start(&lab.router(), lab::PRIVATE_IF, 10_000)?,
    ];
    let t = Traced::connect(lab, vip_port, caps)?;
    let (c, v, name) = (t.caddr, t.vaddr, &t.name);
    let (out, inn) = (Crossing::Leaving, Crossing::Arriving);
    let rs = 3 + t.idx;
    let rows = vec![
        (
            "client, leaving".to_string(),
            t.find(0, out, c, v, "at the client")?,
            "CIP -> VIP",
        ),
        (
            "director priv0, leaving".to_string(),
            t.find(2, out, c, v, "leaving the director")?,
            "unchanged, to the real server's MAC (DR) or inside IPIP (TUN)",
        ),
        (
            format!("{name}, arriving"),
            t.find(rs, inn, c, v, "at the real server")?,
            "the real server sees the client",
        ),
        (
            format!("{name}, answering"),
            t.find(rs, out, v, c, "the reply")?,
            "from the VIP it holds on lo",
        ),
        (
            "router, from rs".to_string(),
            t.find(3, inn, v, c, "at the router")?,
            "straight to the router",
        ),
        (
            "client, arriving".to_string(),
            t.find(0, inn, v, c, "at the client")?,
            "the client only sees the VIP",
        ),
    ];
    let at_director = t.seen[1]
        .iter()
        .chain(&t.seen[2])
        .filter(|s| !s.is_outgoing() && s.src == SocketAddr::V4(v) && s.dst == SocketAddr::V4(c))
        .count();
    Ok((rows, at_director))
}

/// Prints traced hops as a table (`width`: the first column's).
fn print_hops(rows: &[Hop], width: usize) {
    println!(
        "   {:<width$} {:<21}    {:<21}",
        "seen at", "source", "destination"
    );
    for (at, s, what) in rows {
        let tun = s
            .tunnel
            .map(|(a, b)| format!(" [in tunnel {a} -> {b}]"))
            .unwrap_or_default();
        println!(
            "   {at:<width$} {:<21} -> {:<21} {what}{tun}",
            s.src.to_string(),
            s.dst.to_string()
        );
    }
}

/// The lab as a picture, with its namespace names.
pub fn picture(lab: &Lab) -> String {
    let n = lab.cfg.real_servers;
    if lab.cfg.method != Method::Nat {
        let how = if lab.cfg.method == Method::Dr {
            "frame to the real server's MAC, packet unchanged (DR)"
        } else {
            "packet inside IPIP/GUE/GRE to the RIP (TUN)"
        };
        let mut out = format!(
            "
      client {cip}  [netns {client}]
         |  CIP -> VIP:80                              VIP:80 -> CIP  ^
         v                                                            |
      router {rpub} / {rpriv}  [netns {router}] <-------------+
         |                                                            |
   +------------------------------------------------------+           |
   | director  VIP {vip} steered into rvsd  |  [netns {director}]
   |           private {dip}: {how}
   +------------------------------------------------------+           |
         |  CIP -> VIP:80                                             |
         v                                                            |
",
            cip = lab.cip(),
            client = lab.client(),
            rpub = lab::ROUTER_PUBLIC_IP,
            rpriv = lab::ROUTER_PRIVATE_IP,
            router = lab.router(),
            vip = lab::VIP,
            director = lab.director(),
            dip = lab::DIP,
        );
        for i in 1..=n {
            out.push_str(&format!(
                "      rs{i} {:<15} VIP on lo (arp_ignore=1, arp_announce=2), gateway the router --+   [netns {}]\n",
                lab::rip(i).to_string(),
                lab.rs(i)
            ));
        }
        return out;
    }
    let mut out = format!(
        "
      client {cip}                                  [netns {client}]
         |  CIP -> VIP:80            VIP:80 -> CIP
         v                                ^
   +------------------------------------------------------+
   | director  public {pubip}, VIP {vip}    |  [netns {director}]
   |           rvsd: TUN data plane, rvsadm configures it |
   |           private {dip} (DIP)                  |
   +------------------------------------------------------+
         |  CIP -> RIP:80            RIP:80 -> CIP
         v                                ^
",
        cip = lab::CIP,
        client = lab.client(),
        pubip = lab::PUBLIC_IP,
        vip = lab::VIP,
        director = lab.director(),
        dip = lab::DIP,
    );
    for i in 1..=n {
        out.push_str(&format!(
            "      rs{i} {:<15} gateway {}, HTTP :80, UDP echo :53   [netns {}]\n",
            lab::rip(i).to_string(),
            lab::DIP,
            lab.rs(i)
        ));
    }
    out
}

/// `rvs-lab demo`.
pub fn run(opts: &DemoOptions) -> Result<()> {
    // Found (or built) first, so the timing below is the demo's own.
    crate::bins::find()?;
    let t0 = Instant::now();
    let n = opts.real_servers;
    section(&format!(
        "Building the lab: a client, a director and {n} real servers, each in its own network namespace"
    ));
    let cfg = LabConfig {
        prefix: opts.prefix.clone(),
        real_servers: n,
        servers: true,
        rvsd: true,
        state_dir: None,
        router: opts.method != Method::Nat,
        method: opts.method,
        ..LabConfig::default()
    };
    let lab = Lab::up(cfg)?;
    let flag = opts.method.rvsadm_flag();
    print!("{}", picture(&lab));
    println!(
        "   rvsd is running in {} (socket {})",
        lab.director(),
        lab.socket().display()
    );

    section("Configuring the virtual services with rvsadm (ipvsadm's syntax)");
    for (proto, port) in [("-t", 80), ("-u", 53)] {
        let vip = format!("{}:{port}", lab::VIP);
        rvsadm_shown(&lab, &["-A", proto, &vip, "-s", &opts.scheduler])?;
        for i in 1..=n {
            let rip = format!("{}:{port}", lab::rip(i));
            rvsadm_shown(&lab, &["-a", proto, &vip, "-r", &rip, flag, "-w", "1"])?;
        }
    }
    let vip53 = format!("{}:53", lab::VIP);

    section(&format!(
        "Sending {} HTTP requests from the client {} to http://{}/ (one connection each)",
        opts.requests,
        lab.cip(),
        lab::VIP
    ));
    let requests = opts.requests;
    let t = Instant::now();
    let tally = lab
        .in_client(move || client::run_requests(lab::vip(80), requests, 8, Duration::from_secs(40)))
        .map_err(|e| LabError::Check(format!("{e}\nrvsd's log:\n{}", lab.rvsd_log_text())))?;
    let secs = t.elapsed().as_secs_f64();
    for i in 1..=n {
        let name = format!("rs{i}");
        let c = tally.per_server.get(&name).copied().unwrap_or(0);
        println!("   rs{i} ({}): {c:5} answers", lab::rip(i));
    }
    println!("   {} answers in {secs:.2} s", tally.total());
    let ips: Vec<&String> = tally.client_ips.keys().collect();
    println!(
        "   client address seen by the real servers: {}",
        ips.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if tally.total() != requests {
        return Err(LabError::Check(format!(
            "{} answers for {requests} requests",
            tally.total()
        )));
    }
    if ips != [&lab.cip().to_string()] {
        return Err(LabError::Check(format!(
            "the real servers saw {ips:?}, not the client's own address {}",
            lab.cip()
        )));
    }
    if opts.scheduler == "rr" {
        let counts: Vec<usize> = (1..=n)
            .map(|i| {
                tally
                    .per_server
                    .get(&format!("rs{i}"))
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        let (min, max) = (
            counts.iter().min().copied().unwrap_or(0),
            counts.iter().max().copied().unwrap_or(0),
        );
        if max - min > 1 {
            return Err(LabError::Check(format!(
                "rr with equal weights should split evenly, got {counts:?}"
            )));
        }
        println!("   rr split them evenly, as it should");
    }

    section(&format!("UDP: {n} datagrams to {vip53}"));
    let answers = lab.in_client(move || {
        let mut v = Vec::new();
        for k in 0..n {
            let (name, seen, payload) = client::udp_query(
                lab::vip(53),
                format!("hello {k}").as_bytes(),
                Duration::from_secs(3),
            )?;
            v.push(format!(
                "{name} (saw {seen}, echoed {:?})",
                String::from_utf8_lossy(&payload)
            ));
        }
        Ok(v)
    })?;
    for a in answers {
        println!("   answered by {a}");
    }

    section("rvsadm -Ln");
    print!("{}", indent(&lab.rvsadm(&["-L", "-n"])?));
    section("rvsadm -Ln --stats");
    print!("{}", indent(&lab.rvsadm(&["-L", "-n", "--stats"])?));

    section("One more connection, as seen on the wire (AF_PACKET captures in each namespace)");
    if opts.method == Method::Nat {
        let (p, name) = trace_one_connection(&lab, lab::vip(80))?;
        print_hops(&nat_hops(p, &name), 20);
    } else {
        let (rows, at_director) = trace_direct(&lab, lab::vip(80))?;
        print_hops(&rows, 24);
        println!(
            "   reply packets (VIP -> CIP) seen at the director: {at_director}: the reply never crosses it"
        );
        if at_director != 0 {
            return Err(LabError::Check("a reply crossed the director".into()));
        }
    }

    section("Removing the lab");
    lab.down()?;
    println!(
        "   all namespaces, processes and files removed; the demo took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
