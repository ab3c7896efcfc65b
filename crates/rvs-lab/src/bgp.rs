//! Scale-out labs ([`LabConfig::bgp`](crate::lab::LabConfig::bgp)): the router namespace runs BIRD with Linux ECMP
//! (5-tuple hash) over every director that announces the VIP over BGP; each director runs BIRD beside its rvsd, and
//! `rvs-announce` switches the announcement on only while that rvsd serves the VIP.
//!
//! ```text
//!  client -- router (BIRD, AS 65000, ECMP: VIP/32 and VIP6/128 via every announcing director, BFD 100 ms x 3)
//!               |  eBGP over the public switch, hold 3 s: one IPv4 session (198.51.100.k) for VIP,
//!               |  one IPv6 session (2001:db8:0:1::k) for VIP6
//!     director k (BIRD, AS 65001: static routes VIP/32 and VIP6/128 via "rvs0", each started disabled;
//!                 rvs-announce enables each while rvsd answers and that VIP has a usable real server)
//! ```
//! BIRD withdraws the static routes by itself when rvsd's TUN `rvs0` disappears (rvsd stopped or killed), BFD takes a
//! powered-off director out in about 300 ms, and `error wait time 1, 5` lets a revived director back in seconds.
//!
//! IPv6 rides its own session rather than the IPv4 one (MP-BGP could carry IPv6 routes over IPv4, but then the
//! next hop is an IPv4-mapped address that needs `extended next hop` on both sides): each family fails and
//! returns on its own, and the router's IPv6 routes point at the directors' global addresses (BIRD uses the global
//! next hop of a directly connected eBGP peer; checked with 2.0.12).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_wire::IpVersion;

use crate::cleanup::{Proc, StopSignal};
use crate::cmd::ip_in;
use crate::error::{LabError, Result};
use crate::lab::{
    self, Lab, PRIVATE_IF, PUBLIC_IF, ROUTER_PUBLIC_IP, ROUTER_PUBLIC_IP6, VIP, VIP6, public_ip,
    public_ip6,
};

/// The router's autonomous system.
pub const ROUTER_AS: u32 = 65000;
/// The directors' autonomous system (one for all: equal AS paths, so the router merges them into one multipath).
pub const DIRECTOR_AS: u32 = 65001;
/// The BIRD protocol that announces the VIP in each director.
pub const VIP_PROTOCOL: &str = "rvs_vip4";
/// The BIRD protocol that announces the IPv6 VIP in each director.
pub const VIP6_PROTOCOL: &str = "rvs_vip6";
/// rvsd's TUN device (its default name).
pub const RVSD_TUN: &str = "rvs0";

const BFD: &str = "protocol bfd { interface \"pub0\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }";
const TIMERS: &str =
    "hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5; bfd on;";

/// The router's BIRD configuration: ECMP (`merge paths`) into the kernel over every director's announcement, one
/// kernel protocol and one eBGP session per director for each family.
pub fn router_conf(directors: usize) -> String {
    let mut s = format!(
        "# rvs-lab router: eBGP with every director (IPv4 and IPv6 sessions), their VIP routes merged into one\n\
         # multipath kernel route per family.\n\
         router id {ROUTER_PUBLIC_IP};\n\
         protocol device {{ scan time 1; }}\n\
         {BFD}\n\
         protocol kernel {{ merge paths on limit 16; ipv4 {{ import none; export all; }}; }}\n\
         protocol kernel kernel6 {{ merge paths on limit 16; ipv6 {{ import none; export all; }}; }}\n\
         template bgp director {{\n    local {ROUTER_PUBLIC_IP} as {ROUTER_AS};\n    {TIMERS}\n    \
         ipv4 {{ import all; export none; }};\n}}\n\
         template bgp director6 {{\n    local {ROUTER_PUBLIC_IP6} as {ROUTER_AS};\n    {TIMERS}\n    \
         ipv6 {{ import all; export none; }};\n}}\n"
    );
    for k in 1..=directors {
        s.push_str(&format!(
            "protocol bgp director{k} from director {{ neighbor {} as {DIRECTOR_AS}; }}\n",
            public_ip(k)
        ));
        s.push_str(&format!(
            "protocol bgp director{k}v6 from director6 {{ neighbor {} as {DIRECTOR_AS}; }}\n",
            public_ip6(k)
        ));
    }
    s
}

/// Director `k`'s BIRD configuration: the VIP routes (into rvsd's TUN, disabled until rvs-announce enables them)
/// exported to the router, VIP over the IPv4 session, VIP6 over the IPv6 one.
pub fn director_conf(k: usize) -> String {
    let me = public_ip(k);
    let me6 = public_ip6(k);
    format!(
        "# rvs-lab director {k}: announces the VIP while rvs-announce keeps {VIP_PROTOCOL} enabled, the IPv6 VIP\n\
         # while it keeps {VIP6_PROTOCOL} enabled.\n\
         router id {me};\n\
         protocol device {{ scan time 1; }}\n\
         {BFD}\n\
         protocol static {VIP_PROTOCOL} {{ disabled; ipv4; route {VIP}/32 via \"{RVSD_TUN}\"; }}\n\
         protocol static {VIP6_PROTOCOL} {{ disabled; ipv6; route {VIP6}/128 via \"{RVSD_TUN}\"; }}\n\
         protocol bgp uplink {{\n    local {me} as {DIRECTOR_AS};\n    neighbor {ROUTER_PUBLIC_IP} as {ROUTER_AS};\n    \
         {TIMERS}\n    ipv4 {{ import none; export where proto = \"{VIP_PROTOCOL}\"; }};\n}}\n\
         protocol bgp uplink6 {{\n    local {me6} as {DIRECTOR_AS};\n    neighbor {ROUTER_PUBLIC_IP6} as {ROUTER_AS};\n    \
         {TIMERS}\n    ipv6 {{ import none; export where proto = \"{VIP6_PROTOCOL}\"; }};\n}}\n"
    )
}

/// The BIRD daemon (bird2).
pub fn bird_binary() -> Result<PathBuf> {
    for p in ["/usr/sbin/bird", "/usr/local/sbin/bird", "/usr/bin/bird"] {
        if std::path::Path::new(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    Err(LabError::Invalid(
        "BIRD is not installed (apt-get install bird2): scale-out labs run it as their routing daemon".into(),
    ))
}

/// Parses the next hops of `ip route show X/32` or `ip -6 route show X/128` (one `via` or several `nexthop via`),
/// sorted.
pub fn parse_next_hops<A: std::str::FromStr + Ord>(text: &str) -> Vec<A> {
    let mut v: Vec<A> = Vec::new();
    let mut it = text.split_whitespace();
    while let Some(tok) = it.next() {
        if tok == "via"
            && let Some(a) = it.next().and_then(|a| a.parse().ok())
        {
            v.push(a);
        }
    }
    v.sort();
    v.dedup();
    v
}

fn bird_name(k: usize) -> String {
    format!("bird{k}")
}

fn announce_name(k: usize) -> String {
    format!("announce{k}")
}

impl Lab {
    /// BIRD's control socket in the router (`node` = "router") or in director k (`node` = "d<k>").
    pub fn bird_socket(&self, node: &str) -> PathBuf {
        self.state_dir.join(format!("bird-{node}.ctl"))
    }

    fn spawn_bird(&mut self, ns: &str, node: &str, name: String, conf: &str) -> Result<()> {
        let bird = bird_binary()?;
        let conf_path = self.state_dir.join(format!("bird-{node}.conf"));
        std::fs::write(&conf_path, conf)
            .map_err(LabError::io(format!("writing {}", conf_path.display())))?;
        let log = self.state_dir.join(format!("bird-{node}.log"));
        let logf = std::fs::File::create(&log)
            .map_err(LabError::io(format!("creating {}", log.display())))?;
        let sock = self.bird_socket(node);
        let _ = std::fs::remove_file(&sock);
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&bird)
            .arg("-f")
            .arg("-c")
            .arg(&conf_path)
            .arg("-s")
            .arg(&sock)
            .arg("-P")
            .arg(self.state_dir.join(format!("bird-{node}.pid")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .map_err(LabError::io(format!("starting BIRD in {ns}")))?;
        self.guard_add(Proc {
            name: name.clone(),
            child,
            stop: StopSignal::Term,
        });
        // Up when its control socket answers.
        let start = Instant::now();
        while !sock.exists() || std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if let Some(status) = self.proc_exited(&name) {
                return Err(LabError::Process {
                    what: format!(
                        "BIRD in {ns} exited at start ({status}): {}",
                        std::fs::read_to_string(&log).unwrap_or_default().trim()
                    ),
                });
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(LabError::Timeout {
                    what: format!("BIRD's control socket in {ns}"),
                    ms: 10_000,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the router's BIRD and, in every director, BIRD and (where rvsd runs) rvs-announce.
    pub(crate) fn start_bgp(&mut self) -> Result<()> {
        let router = self.router();
        let conf = router_conf(self.cfg.directors);
        self.spawn_bird(&router, "router", "bird router".into(), &conf)?;
        for k in 1..=self.cfg.directors {
            self.start_director_bgp(k)?;
        }
        Ok(())
    }

    /// Starts BIRD in director `k`, and rvs-announce if its rvsd runs.
    pub fn start_director_bgp(&mut self, k: usize) -> Result<()> {
        let ns = self.director_n(k);
        self.spawn_bird(&ns, &format!("d{k}"), bird_name(k), &director_conf(k))?;
        if self.rvsd_running_in(k) {
            self.start_announce(k)?;
        }
        Ok(())
    }

    /// Starts rvs-announce for director `k` (its rvsd socket, its BIRD, the VIP and the IPv6 VIP).
    pub fn start_announce(&mut self, k: usize) -> Result<()> {
        let exe = crate::bins::find_tool("rvs-announce")?;
        let log = self.state_dir.join(format!("announce{k}.log"));
        let logf = std::fs::File::create(&log)
            .map_err(LabError::io(format!("creating {}", log.display())))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.director_n(k)])
            .arg(exe)
            .arg("--rvsd-socket")
            .arg(self.socket_in(k))
            .arg("--bird-socket")
            .arg(self.bird_socket(&format!("d{k}")))
            .args(["--announce", &format!("{VIP}={VIP_PROTOCOL}")])
            .args(["--announce", &format!("{VIP6}={VIP6_PROTOCOL}")])
            .args(["--interval-ms", "200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .map_err(LabError::io("starting rvs-announce"))?;
        self.guard_add(Proc {
            name: announce_name(k),
            child,
            stop: StopSignal::Term,
        });
        Ok(())
    }

    /// The router's current next hops for the VIP (the directors it balances over).
    pub fn vip_next_hops(&self) -> Result<Vec<Ipv4Addr>> {
        let text = ip_in(
            &self.router(),
            &["-4", "route", "show", &format!("{VIP}/32")],
        )?;
        Ok(parse_next_hops(&text))
    }

    /// The router's current next hops for the IPv6 VIP.
    pub fn vip6_next_hops(&self) -> Result<Vec<Ipv6Addr>> {
        let text = ip_in(
            &self.router(),
            &["-6", "route", "show", &format!("{VIP6}/128")],
        )?;
        Ok(parse_next_hops(&text))
    }

    /// Waits until the router balances the VIP over exactly the public addresses of `directors` (1-based).
    pub fn wait_vip_next_hops(&self, directors: &[usize], limit: Duration) -> Result<()> {
        self.wait_next_hops(IpVersion::V4, directors, limit)
    }

    /// Waits until the router balances the IPv6 VIP over exactly the public IPv6 addresses of `directors`.
    pub fn wait_vip6_next_hops(&self, directors: &[usize], limit: Duration) -> Result<()> {
        self.wait_next_hops(IpVersion::V6, directors, limit)
    }

    fn wait_next_hops(
        &self,
        family: IpVersion,
        directors: &[usize],
        limit: Duration,
    ) -> Result<()> {
        let of = |k: usize| -> IpAddr {
            match family {
                IpVersion::V4 => public_ip(k).into(),
                IpVersion::V6 => public_ip6(k).into(),
            }
        };
        let mut want: Vec<IpAddr> = directors.iter().map(|&k| of(k)).collect();
        want.sort();
        let start = Instant::now();
        loop {
            let have: Vec<IpAddr> = match family {
                IpVersion::V4 => self
                    .vip_next_hops()?
                    .into_iter()
                    .map(IpAddr::from)
                    .collect(),
                IpVersion::V6 => self
                    .vip6_next_hops()?
                    .into_iter()
                    .map(IpAddr::from)
                    .collect(),
            };
            if have == want {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(LabError::Check(format!(
                    "the router's {} next hops are {have:?}, expected {want:?} within {limit:?}",
                    match family {
                        IpVersion::V4 => "VIP",
                        IpVersion::V6 => "IPv6 VIP",
                    }
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Powers director `k` off: its links go first (no goodbye on the wire), then rvsd, BIRD and rvs-announce are
    /// killed. Its namespace stays, empty, for [`Lab::revive_director`].
    pub fn fail_director(&mut self, k: usize) -> Result<()> {
        let ns = self.director_n(k);
        for ifname in [PUBLIC_IF, PRIVATE_IF] {
            ip_in(&ns, &["link", "del", ifname])?;
        }
        for name in [announce_name(k), bird_name(k), lab::rvsd_name(k)] {
            self.kill_named(&name);
        }
        Ok(())
    }

    /// Brings a failed director back: its links to both switches, then rvsd (its saved rules come back), BIRD and
    /// rvs-announce.
    pub fn revive_director(&mut self, k: usize) -> Result<()> {
        self.plug_director(k)?;
        self.start_rvsd_in(k)?;
        self.start_director_bgp(k)
    }

    /// The log of director `k`'s rvs-announce (for failure messages).
    pub fn announce_log(&self, k: usize) -> String {
        std::fs::read_to_string(self.state_dir.join(format!("announce{k}.log"))).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_and_next_hops() {
        let r = router_conf(3);
        assert!(r.contains("merge paths on"));
        for k in 1..=3 {
            assert!(
                r.contains(&format!(
                    "protocol bgp director{k} from director {{ neighbor 198.51.100.{k} as 65001; }}"
                )),
                "{r}"
            );
        }
        let d = director_conf(2);
        assert!(d.contains("router id 198.51.100.2;"));
        assert!(
            d.contains(
                "protocol static rvs_vip4 { disabled; ipv4; route 198.51.100.100/32 via \"rvs0\"; }"
            ),
            "{d}"
        );
        assert!(d.contains("neighbor 198.51.100.254 as 65000;"));
        let multi = "198.51.100.100 proto bird metric 32 \n\tnexthop via 198.51.100.2 dev pub0 weight 1 \n\tnexthop via 198.51.100.1 dev pub0 weight 1 \n";
        assert_eq!(
            parse_next_hops::<Ipv4Addr>(multi),
            vec![
                Ipv4Addr::new(198, 51, 100, 1),
                Ipv4Addr::new(198, 51, 100, 2)
            ]
        );
        assert_eq!(
            parse_next_hops::<Ipv4Addr>(
                "198.51.100.100 via 198.51.100.3 dev pub0 proto bird metric 32 \n"
            ),
            vec![Ipv4Addr::new(198, 51, 100, 3)]
        );
        assert!(parse_next_hops::<Ipv4Addr>("").is_empty());
        // IPv6: one session per director beside the IPv4 one, a kernel protocol of its own, VIP6 announced by its
        // own static protocol over the IPv6 session.
        assert!(r.contains(
            "protocol kernel kernel6 { merge paths on limit 16; ipv6 { import none; export all; }; }"
        ));
        assert!(r.contains("local 2001:db8:0:1::254 as 65000;"), "{r}");
        assert!(
            r.contains(
                "protocol bgp director3v6 from director6 { neighbor 2001:db8:0:1::3 as 65001; }"
            ),
            "{r}"
        );
        assert!(
            d.contains(
                "protocol static rvs_vip6 { disabled; ipv6; route 2001:db8:0:1::100/128 via \"rvs0\"; }"
            ),
            "{d}"
        );
        assert!(d.contains("local 2001:db8:0:1::2 as 65001;"), "{d}");
        assert!(d.contains("neighbor 2001:db8:0:1::254 as 65000;"), "{d}");
        assert!(
            d.contains("ipv6 { import none; export where proto = \"rvs_vip6\"; };"),
            "{d}"
        );
        // Each family's session exports only its own VIP.
        assert!(
            d.contains("ipv4 { import none; export where proto = \"rvs_vip4\"; };"),
            "{d}"
        );
        let multi6 = "2001:db8:0:1::100 proto bird metric 32 pref medium\n\tnexthop via 2001:db8:0:1::3 dev pub0 weight 1 \n\tnexthop via 2001:db8:0:1::1 dev pub0 weight 1 \n";
        assert_eq!(
            parse_next_hops::<Ipv6Addr>(multi6),
            vec![public_ip6(1), public_ip6(3)]
        );
        assert!(
            parse_next_hops::<Ipv6Addr>(multi).is_empty(),
            "IPv4 next hops are not IPv6 ones"
        );
    }
}
