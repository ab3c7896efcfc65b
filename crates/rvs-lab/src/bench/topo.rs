//! The benchmark's own LVS-NAT picture in network namespaces (removed again when dropped).
//!
//! ```text
//!  client ns                director ns                                   real-server ns (x2)
//!  eth0 198.51.100.10 (rvs)  pub0 198.51.100.1/24                          eth0 203.0.113.11 / .12
//!       198.51.100.11 (direct)    198.51.100.101 (kernel NAT VIP, local)   default via 203.0.113.1
//!       198.51.100.12 (nft)       198.51.100.102 (HAProxy, local)
//!       198.51.100.13 (haproxy)   VIP 198.51.100.100 (rvsd routes it into its TUN)
//!                           priv0 203.0.113.1/24 (DIP) -- switch ns (bridge br0) -- r1, r2
//! ```
//! The director has one NIC to the client and one to a switch with the real servers (the shape native XDP
//! redirect needs: GRO on the switch-side peer of priv0 and on the client's veth). Senders (client, real servers)
//! send complete checksums (`tx off`), as NICs deliver them, on every path.
//! Each path has its own client source address (chosen by per-destination routes with `src`), so the real
//! servers never see one 4-tuple arrive over two paths with different TCP timestamp offsets (PAWS), and no
//! path's leftover conntrack or TIME_WAIT state touches another's.

use super::sys::sh;
use anyhow::{Context, Result};
use std::path::PathBuf;

pub const CLIENT_RVS: &str = "198.51.100.10";
pub const CLIENT_DIRECT: &str = "198.51.100.11";
pub const CLIENT_NFT: &str = "198.51.100.12";
pub const CLIENT_HAPROXY: &str = "198.51.100.13";
pub const DIRECTOR_PUB: &str = "198.51.100.1";
pub const VIP_RVS: &str = "198.51.100.100";
pub const VIP_NFT: &str = "198.51.100.101";
pub const HAPROXY_ADDR: &str = "198.51.100.102";
pub const DIP: &str = "203.0.113.1";
pub const RIPS: [&str; 2] = ["203.0.113.11", "203.0.113.12"];
pub const PUBLIC_IF: &str = "pub0";
pub const PRIVATE_IF: &str = "priv0";

/// The namespaces and a scratch directory for configs and logs.
#[derive(Debug)]
pub struct Lab {
    pub client: String,
    pub director: String,
    /// The private switch (a bridge between priv0 and the real servers).
    pub switch: String,
    pub rs: [String; 2],
    pub dir: PathBuf,
    created: Vec<String>,
    keep_dir: bool,
}

impl Lab {
    /// Builds the topology with namespace names `<prefix>-c`, `-d`, `-s`, `-r1`, `-r2`.
    pub fn up(prefix: &str) -> Result<Lab> {
        let dir = std::env::temp_dir().join(prefix);
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let mut lab = Lab {
            client: format!("{prefix}-c"),
            director: format!("{prefix}-d"),
            switch: format!("{prefix}-s"),
            rs: [format!("{prefix}-r1"), format!("{prefix}-r2")],
            dir,
            created: Vec::new(),
            keep_dir: false,
        };
        lab.build().context("building the bench topology")?;
        Ok(lab)
    }

    /// Keep the scratch directory (logs) after drop.
    pub fn keep_dir(&mut self) {
        self.keep_dir = true;
    }

    fn add_ns(&mut self, name: &str) -> Result<()> {
        sh(&["ip", "netns", "add", name])?;
        self.created.push(name.to_string());
        sh(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// GRO on `ifname` in `ns` (the lab's ethtool ioctl: no ethtool binary needed).
    fn set_gro(ns: &str, ifname: &str) -> Result<()> {
        let i = ifname.to_owned();
        crate::netns::run_in(ns, move || crate::netns::set_gro(&i, true))
            .with_context(|| format!("GRO on {ifname} in {ns}"))
    }

    /// TX checksum offload off on `ifname` in `ns`: the sender completes its checksums.
    fn tx_checksum_off(ns: &str, ifname: &str) -> Result<()> {
        let i = ifname.to_owned();
        crate::netns::run_in(ns, move || crate::netns::tx_checksum_off(&i))
            .with_context(|| format!("tx checksum off on {ifname} in {ns}"))
    }

    fn sysctl(ns: &str, kv: &str) -> Result<()> {
        sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", kv])?;
        Ok(())
    }

    fn build(&mut self) -> Result<()> {
        let (c, d) = (self.client.clone(), self.director.clone());
        let rs = self.rs.clone();
        self.add_ns(&c)?;
        self.add_ns(&d)?;
        let sw = self.switch.clone();
        self.add_ns(&sw)?;
        for r in &rs {
            self.add_ns(r)?;
        }

        // Client <-> director.
        sh(&[
            "ip", "-n", &d, "link", "add", PUBLIC_IF, "type", "veth", "peer", "name", "eth0",
            "netns", &c,
        ])?;
        for a in [CLIENT_RVS, CLIENT_DIRECT, CLIENT_NFT, CLIENT_HAPROXY] {
            sh(&[
                "ip",
                "-n",
                &c,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                "eth0",
            ])?;
        }
        sh(&["ip", "-n", &c, "link", "set", "eth0", "up"])?;
        sh(&[
            "ip",
            "-n",
            &d,
            "addr",
            "add",
            &format!("{DIRECTOR_PUB}/24"),
            "dev",
            PUBLIC_IF,
        ])?;
        sh(&[
            "ip",
            "-n",
            &d,
            "addr",
            "add",
            &format!("{VIP_NFT}/32"),
            "dev",
            PUBLIC_IF,
        ])?;
        sh(&[
            "ip",
            "-n",
            &d,
            "addr",
            "add",
            &format!("{HAPROXY_ADDR}/32"),
            "dev",
            PUBLIC_IF,
        ])?;
        sh(&["ip", "-n", &d, "link", "set", PUBLIC_IF, "up"])?;

        // Director's private side: one NIC (priv0, holding the DIP) to a switch (a bridge in its own namespace),
        // the real servers on the switch's other ports. A bridge cannot be an XDP redirect target, a veth can: this
        // is the shape of a real director, and the XDP fast path needs it. GRO on the switch-side peer of priv0
        // gives it NAPI, which native XDP_REDIRECT into priv0 needs.
        let sw = self.switch.clone();
        sh(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        sh(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        sh(&[
            "ip", "-n", &d, "link", "add", PRIVATE_IF, "type", "veth", "peer", "name", "d1",
            "netns", &sw,
        ])?;
        sh(&["ip", "-n", &sw, "link", "set", "d1", "master", "br0"])?;
        sh(&["ip", "-n", &sw, "link", "set", "d1", "up"])?;
        Self::set_gro(&sw, "d1")?;
        sh(&[
            "ip",
            "-n",
            &d,
            "addr",
            "add",
            &format!("{DIP}/24"),
            "dev",
            PRIVATE_IF,
        ])?;
        sh(&["ip", "-n", &d, "link", "set", PRIVATE_IF, "up"])?;
        for (i, r) in rs.iter().enumerate() {
            let port = format!("r{}", i + 1);
            sh(&[
                "ip", "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", r,
            ])?;
            sh(&["ip", "-n", &sw, "link", "set", &port, "master", "br0"])?;
            sh(&["ip", "-n", &sw, "link", "set", &port, "up"])?;
            sh(&[
                "ip",
                "-n",
                r,
                "addr",
                "add",
                &format!("{}/24", RIPS[i]),
                "dev",
                "eth0",
            ])?;
            sh(&["ip", "-n", r, "link", "set", "eth0", "up"])?;
            // Complete checksums, as a NIC delivers them (an XDP program cannot complete a partial one).
            Self::tx_checksum_off(r, "eth0")?;
            sh(&["ip", "-n", r, "route", "add", "default", "via", DIP])?;
            // For the DR and TUN paths: the VIP on lo, never answered on the wire (harmless to the others, which
            // address the real servers by their RIP).
            sh(&[
                "ip",
                "-n",
                r,
                "addr",
                "add",
                &format!("{VIP_RVS}/32"),
                "dev",
                "lo",
            ])?;
            Self::sysctl(r, "net.ipv4.conf.all.arp_ignore=1")?;
            Self::sysctl(r, "net.ipv4.conf.all.arp_announce=2")?;
            Self::sysctl(r, "net.core.somaxconn=8192")?;
            Self::sysctl(r, "net.ipv4.tcp_max_syn_backlog=8192")?;
        }
        // The client's veth is the peer of pub0: GRO on (NAPI for redirects into pub0), complete checksums.
        Self::set_gro(&c, "eth0")?;
        Self::tx_checksum_off(&c, "eth0")?;

        // Client routes: one source address per path.
        sh(&[
            "ip",
            "-n",
            &c,
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            DIRECTOR_PUB,
            "src",
            CLIENT_DIRECT,
        ])?;
        for (dst, src) in [
            (VIP_RVS, CLIENT_RVS),
            (VIP_NFT, CLIENT_NFT),
            (HAPROXY_ADDR, CLIENT_HAPROXY),
        ] {
            sh(&[
                "ip",
                "-n",
                &c,
                "route",
                "add",
                &format!("{dst}/32"),
                "dev",
                "eth0",
                "src",
                src,
            ])?;
        }
        // The VIP is not a local address of the director (rvsd routes it into its TUN and should answer ARP
        // by proxy); a static neighbour entry keeps the client independent of that detail.
        let mac = sh(&["ip", "-n", &d, "-br", "link", "show", PUBLIC_IF])?;
        let mac = mac
            .split_whitespace()
            .nth(2)
            .context("no MAC address on pub0")?
            .to_string();
        sh(&[
            "ip",
            "-n",
            &c,
            "neigh",
            "replace",
            VIP_RVS,
            "lladdr",
            &mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])?;

        Self::sysctl(&d, "net.ipv4.ip_forward=1")?;
        for ns in [&c, &d] {
            Self::sysctl(ns, "net.ipv4.ip_local_port_range=1024 65535")?;
            Self::sysctl(ns, "net.ipv4.tcp_tw_reuse=1")?;
        }
        Self::sysctl(&d, "net.core.somaxconn=8192")?;
        Ok(())
    }

    /// `ip netns exec NS argv...` as an argument vector.
    pub fn in_ns(ns: &str, argv: &[&str]) -> Vec<String> {
        let mut v = vec!["ip".to_string(), "netns".into(), "exec".into(), ns.into()];
        v.extend(argv.iter().map(|s| s.to_string()));
        v
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
