//! `--syn-gate`: rvs's SYN gate, a defence beyond IPVS's (issue 15). The XDP program (rvs-xdp's `bpf/rvs_gate.h`)
//! drops a first SYN to a VIP and passes its retransmission while the gate is on; this module decides when it is
//! on, tells the program which VIPs it covers, and reports it (`rvsadm --json`'s `defense.syn_gate`).
//!
//! Why: a SYN flood from random spoofed sources at the lab's full rate (377 583 SYN/s, 2026-12-03 10:36, release,
//! 8 real clients) crossed the kernel into rvsd's TUN with every flood SYN and its real server's SYN-ACK; the
//! kernel dropped 3.2 M packets at the full TUN queue, real SYNs among them, and 29.6 % of real requests
//! succeeded. With the gate on, the flood stops at the driver (a spoofed source never retransmits) and a real
//! client pays one RTO (1 s on Linux) per new connection. Figures: RELIABILITY.md.
//!
//! `auto` ([`Auto`]): on when the slow path is overloaded by SYNs (the kernel dropped at least [`DROP_PCT`] % of the
//! packets it had for the TUN, and at least [`MIN_DROPS`], in the last interval, while at least [`SYN_PCT`] % of
//! those packets were segments with SYN, FIN or RST that the XDP program passed up); off again after [`CALM_SECS`]
//! seconds in a
//! row in which the gate held few SYNs more than it passed (a real client's held SYN comes back; a spoofed one does
//! not, so "held far more than passed" is the flood itself, whatever its rate, and the gate stays on while it
//! lasts even though the slow path is no longer overloaded). The overload is checked every 100 ms while the gate is
//! off (a client whose first SYN the full TUN queue dropped before the gate came on retransmits into the gate as
//! a "first" SYN and gets in only at its second retransmission, 3 s later: the sooner the gate is on, the fewer
//! such clients), the rest once a second, on its own thread; nothing here is on the packet path.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rvs_core::{Director, Protocol, ServiceKey};
use rvs_xdp::{Gate, GateCounters};

use crate::args::SynGateMode;
use crate::fastpath::FastPathCtl;
use crate::ratelimit::{Admit, RateLimiter};

/// Seconds in a row without a flood before `auto` turns the gate off.
pub const CALM_SECS: u32 = 10;
/// The share of the packets for the TUN that the kernel dropped (its queue full) from which the slow path counts as
/// overloaded. The gate costs every new connection one SYN retransmission; a drop costs only the client it hits
/// one, and that client fails only if its retransmission is dropped too: at 10 % of packets dropped about 1 % of new
/// connections fail (two tries in the 3 s a client waits) and the average one waits 0.1 s; beyond, the gate is the
/// better deal. A saturated but unattacked slow path (a new-connection benchmark) drops a few percent at most.
pub const DROP_PCT: u64 = 10;
/// Fewer drops than this in an interval are not an overload (a burst).
pub const MIN_DROPS: u64 = 100;
/// The share of the TUN's packets that must be SYN/FIN/RST segments (the program's `pass_tcp_flags`) for its drops to
/// switch the gate on: a SYN flood and its real servers' SYN-ACKs are nearly all of them; a UDP blast none, and
/// new connections made as fast as possible about 4 in 10 (SYN, SYN-ACK, two FINs of ~10 packets). The gate does
/// nothing against an overload of other packets but make new connections wait.
pub const SYN_PCT: u64 = 60;
// The table at its limit evicting entries is not a trigger: IPVS's defences (drop_entry's eviction of half-open and
// closed entries) already keep real clients served there (100 % at 30 000 SYN/s, RELIABILITY.md), and a gate switched
// on by evictions made every real client wait a SYN retransmission (1 s) where it need not have (quiet window
// 2026-12-03 12:30: 30 000 SYN/s into a full 20 000-entry table, p50 0.9 ms without the gate, 1.02 s with it); a
// busy director at its limit evicting closed connections would pay the same. The gate is for the slow path itself
// overloaded by SYNs, which only the TUN's drops show.
/// SYNs a second the gate may hold beyond twice what it passed and still count the second as calm (real clients'
/// first SYNs, some of whom give up before retransmitting).
const FEW_HELD: u64 = 100;

/// What happened in one interval (counter deltas): a second, or 100 ms for the overload check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// Packets the kernel queued into the TUN (rvsd read them).
    pub tun_sent: u64,
    /// Packets the kernel could not queue into the TUN (rvsd behind).
    pub tun_dropped: u64,
    /// TCP segments with SYN, FIN or RST the XDP program passed up (on both interfaces).
    pub flags_up: u64,
    /// Entries evicted to make room at the table's limit (logged when the gate switches; not a trigger).
    pub evicted: u64,
    /// First SYNs the gate held.
    pub held: u64,
    /// Retransmissions it passed.
    pub passed: u64,
}

impl Sample {
    fn overloaded(&self) -> bool {
        let offered = self.tun_sent.saturating_add(self.tun_dropped);
        self.tun_dropped >= MIN_DROPS
            && self.tun_dropped.saturating_mul(100) >= offered.saturating_mul(DROP_PCT)
            && self.flags_up.saturating_mul(100) >= offered.saturating_mul(SYN_PCT)
    }
    /// Held far more than passed: SYNs that never come back.
    fn flooded(&self) -> bool {
        self.held > self.passed.saturating_mul(2).saturating_add(FEW_HELD)
    }
}

/// `auto`'s state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Auto {
    on: bool,
    calm: u32,
}

/// Why `auto` turned the gate on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

impl Auto {
    /// A sample of any length while off (the gate's counters do not matter): on if the slow path is overloaded.
    pub fn check_overload(&mut self, s: &Sample) -> Option<Switch> {
        if !self.on && s.overloaded() {
            self.on = true;
            self.calm = 0;
            return Some(Switch::On);
        }
        None
    }

    /// One second's sample: the switch to make, if any.
    pub fn step(&mut self, s: &Sample) -> Option<Switch> {
        if !self.on {
            return self.check_overload(s);
        }
        if s.flooded() {
            self.calm = 0;
            return None;
        }
        self.calm += 1;
        if self.calm >= CALM_SECS {
            self.on = false;
            self.calm = 0;
            return Some(Switch::Off);
        }
        None
    }

    #[cfg(test)]
    fn is_on(&self) -> bool {
        self.on
    }
}

/// The slow path's load counters (running totals).
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    tun: Tun,
    flags_up: u64,
    evicted: u64,
}

impl Load {
    /// What changed since `before`, as a sample without the gate's counters.
    fn since(&self, before: &Load) -> Sample {
        Sample {
            tun_sent: self.tun.sent.saturating_sub(before.tun.sent),
            tun_dropped: self.tun.dropped.saturating_sub(before.tun.dropped),
            flags_up: self.flags_up.saturating_sub(before.flags_up),
            evicted: self.evicted.saturating_sub(before.evicted),
            ..Sample::default()
        }
    }
}

/// Running totals the samples are the deltas of.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    load: Load,
    gate: GateCounters,
}

#[derive(Debug)]
struct State {
    gate: Gate,
    auto: Auto,
    /// At the last once-a-second tick.
    last: Totals,
    /// At the last overload check (every 100 ms).
    last_check: Load,
    switched_on: u64,
    vips: usize,
    log: RateLimiter,
}

/// The SYN gate as rvsd drives it.
#[derive(Debug)]
pub struct SynGateCtl {
    mode: SynGateMode,
    tun: String,
    /// The fast path, for its program's `pass_tcp_flags` counter.
    fast: Arc<FastPathCtl>,
    state: Mutex<State>,
}

/// The TCP services' (address, port) pairs: what the program gates (fwmark services have no address to match).
fn gated_vips(director: &Director) -> Vec<(IpAddr, u16)> {
    let mut v: Vec<(IpAddr, u16)> = director
        .services()
        .iter()
        .filter_map(|s| match s.spec.key {
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr,
                port,
            } => Some((addr, port)),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A TUN's transmit counters: what the kernel queued to its reader (rvsd) and what it dropped, its queue full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tun {
    pub sent: u64,
    pub dropped: u64,
}

impl Tun {
    /// Interface `name`'s transmit packets and drops in this process's network namespace (/proc/self/net/dev, the
    /// counters /sys/class/net/NAME/statistics/tx_{packets,dropped} show).
    pub fn read(name: &str) -> Option<Self> {
        let text = std::fs::read_to_string("/proc/self/net/dev").ok()?;
        Self::parse(&text, name)
    }

    fn parse(dev: &str, name: &str) -> Option<Self> {
        dev.lines().find_map(|l| {
            let (n, rest) = l.split_once(':')?;
            if n.trim() != name {
                return None;
            }
            // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop ...
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(Self {
                sent: f.get(9)?.parse().ok()?,
                dropped: f.get(11)?.parse().ok()?,
            })
        })
    }
}

/// The load counters now (what cannot be read keeps its value in `before`).
fn read_load(fast: &FastPathCtl, director: &Director, tun: &str, before: &Load) -> Load {
    let flags = rvs_xdp::Stat::PassTcpFlags.name();
    Load {
        tun: Tun::read(tun).unwrap_or(before.tun),
        flags_up: fast
            .stats()
            .iter()
            .find(|(n, _)| *n == flags)
            .map_or(before.flags_up, |(_, v)| *v),
        evicted: director.defense().entries_evicted,
    }
}

impl SynGateCtl {
    /// Take the gate (taken from `fast`) over in `mode` (`always`: on now) for the TUN `tun`, and gate the
    /// director's TCP services.
    pub fn new(
        mode: SynGateMode,
        mut gate: Gate,
        fast: Arc<FastPathCtl>,
        director: &Director,
        tun: &str,
    ) -> Result<Self, rvs_xdp::Error> {
        gate.set_on(mode == SynGateMode::Always)?;
        let vips = gate.set_vips(&gated_vips(director))?;
        let load = read_load(&fast, director, tun, &Load::default());
        let last = Totals {
            load,
            gate: gate.counters().unwrap_or_default(),
        };
        Ok(Self {
            mode,
            tun: tun.to_owned(),
            fast,
            state: Mutex::new(State {
                gate,
                auto: Auto::default(),
                last_check: load,
                last,
                switched_on: 0,
                vips,
                log: RateLimiter::new(6, 60_000),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every 100 ms (auto, while off): turn the gate on as soon as the slow path is overloaded.
    pub fn check(&self, director: &Director) {
        if self.mode != SynGateMode::Auto {
            return;
        }
        let mut st = self.lock();
        let st = &mut *st;
        if st.auto.on {
            return;
        }
        let now = read_load(&self.fast, director, &self.tun, &st.last_check);
        let sample = now.since(&st.last_check);
        st.last_check = now;
        if let Some(switch) = st.auto.check_overload(&sample) {
            self.switch(st, switch, &sample);
        }
    }

    /// Once a second: the VIPs (services change), the counters, and `auto`'s decision.
    pub fn tick(&self, director: &Director) {
        let mut st = self.lock();
        let st = &mut *st;
        match st.gate.set_vips(&gated_vips(director)) {
            Ok(n) => st.vips = n,
            Err(e) => {
                if let Admit::Yes { suppressed } = st.log.admit(crate::dataplane::now().0) {
                    tracing::warn!(error = %e, suppressed, "SYN gate: updating the gated VIPs failed");
                }
            }
        }
        let now = Totals {
            load: read_load(&self.fast, director, &self.tun, &st.last.load),
            gate: st.gate.counters().unwrap_or(st.last.gate),
        };
        let sample = Sample {
            held: now.gate.held.saturating_sub(st.last.gate.held),
            passed: now.gate.passed.saturating_sub(st.last.gate.passed),
            ..now.load.since(&st.last.load)
        };
        st.last = now;
        st.last_check = now.load;
        if self.mode != SynGateMode::Auto {
            return;
        }
        if let Some(switch) = st.auto.step(&sample) {
            self.switch(st, switch, &sample);
        }
    }

    fn switch(&self, st: &mut State, switch: Switch, sample: &Sample) {
        let on = switch == Switch::On;
        if let Err(e) = st.gate.set_on(on) {
            // The program keeps its previous state; auto tries again when the signal comes back.
            st.auto = Auto::default();
            if let Admit::Yes { suppressed } = st.log.admit(crate::dataplane::now().0) {
                tracing::error!(error = %e, suppressed, "SYN gate: switching it failed");
            }
            return;
        }
        if on {
            st.switched_on += 1;
        }
        if let Admit::Yes { suppressed } = st.log.admit(crate::dataplane::now().0) {
            if on {
                tracing::warn!(
                    tun_sent = sample.tun_sent,
                    tun_dropped = sample.tun_dropped,
                    syn_fin_rst = sample.flags_up,
                    evicted = sample.evicted,
                    suppressed,
                    "SYN gate on: the slow path is overloaded; first SYNs to VIPs are dropped at the driver until \
                     their retransmission"
                );
            } else {
                tracing::warn!(
                    calm_secs = CALM_SECS,
                    held_total = st.last.gate.held,
                    passed_total = st.last.gate.passed,
                    suppressed,
                    "SYN gate off: no flood any more"
                );
            }
        }
    }

    /// `rvsadm --json`'s `defense.syn_gate`.
    pub fn info(&self) -> rvs_api::SynGateInfo {
        let st = self.lock();
        let c = st.gate.counters().unwrap_or(st.last.gate);
        rvs_api::SynGateInfo {
            mode: self.mode.name().to_owned(),
            on: st.gate.is_on(),
            held: c.held,
            passed: c.passed,
            switched_on: st.switched_on,
            vips: st.vips as u64,
        }
    }
}

/// `rvs_syn_gate_syns_total{verdict="held"|"passed"}` and `rvs_syn_gate_on` in the metrics, read at scrape time.
/// Registered with `metrics.registry().register_collector(Box::new(SynGateCollector(ctl)))`.
#[derive(Debug)]
pub struct SynGateCollector(pub Arc<SynGateCtl>);

impl prometheus_client::collector::Collector for SynGateCollector {
    fn encode(
        &self,
        mut enc: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric as _;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let i = self.0.info();
        let mut m = enc.encode_descriptor(
            "syn_gate_syns",
            "SYNs the SYN gate handled: held (a first SYN dropped at the driver) or passed (its retransmission).",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(i.held).encode(m.encode_family(&[("verdict", "held")])?)?;
        ConstCounter::new(i.passed).encode(m.encode_family(&[("verdict", "passed")])?)?;
        let m = enc.encode_descriptor(
            "syn_gate_on",
            "1 while the SYN gate holds first SYNs.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::from(i.on)).encode(m)
    }
}

/// The gate's thread: [`SynGateCtl::check`] every 100 ms, [`SynGateCtl::tick`] once a second, until `stop`.
pub fn spawn(
    ctl: Arc<SynGateCtl>,
    director: Arc<Director>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rvsd-syngate".into())
        .spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                n = n.wrapping_add(1);
                if n.is_multiple_of(10) {
                    ctl.tick(&director);
                } else {
                    ctl.check(&director);
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second with `tun_dropped` of 10 000 packets for the TUN dropped, all of them SYNs and SYN-ACKs.
    fn sample(tun_dropped: u64, evicted: u64, held: u64, passed: u64) -> Sample {
        Sample {
            tun_sent: 10_000u64.saturating_sub(tun_dropped),
            tun_dropped,
            flags_up: 10_000,
            evicted,
            held,
            passed,
        }
    }

    #[test]
    fn auto_turns_on_at_overload_and_stays_on_while_the_flood_goes_on() {
        let mut a = Auto::default();
        // Real traffic only, nothing dropped: off.
        assert_eq!(a.step(&sample(0, 0, 0, 0)), None);
        assert!(!a.is_on());
        // The kernel dropped packets into the TUN: on.
        assert_eq!(a.step(&sample(5_000, 0, 0, 0)), Some(Switch::On));
        assert!(a.is_on());
        // The flood now stops at the driver: no overload, but far more held than passed, for a minute.
        for _ in 0..60 {
            assert_eq!(a.step(&sample(0, 0, 300_000, 40)), None);
        }
        assert!(a.is_on());
        // The flood ends: CALM_SECS calm seconds (real clients' SYNs held and passed about equally) turn it off.
        for _ in 1..CALM_SECS {
            assert_eq!(a.step(&sample(0, 0, 50, 45)), None);
        }
        assert_eq!(a.step(&sample(0, 0, 50, 45)), Some(Switch::Off));
        assert!(!a.is_on());
    }

    #[test]
    fn auto_does_not_oscillate_with_a_flood_that_pauses() {
        let mut a = Auto::default();
        assert_eq!(a.step(&sample(50, 0, 0, 0)), None, "a few drops");
        assert_eq!(
            a.step(&sample(5_000, 0, 0, 0)),
            Some(Switch::On),
            "the TUN dropping SYNs"
        );
        // Calm for less than CALM_SECS, then the flood again: the count starts over.
        for _ in 1..CALM_SECS {
            assert_eq!(a.step(&sample(0, 0, 0, 0)), None);
        }
        assert_eq!(a.step(&sample(0, 0, 2_000, 0)), None);
        for _ in 1..CALM_SECS {
            assert_eq!(a.step(&sample(0, 0, 0, 0)), None);
        }
        assert!(a.is_on());
        assert_eq!(a.step(&sample(0, 0, 0, 0)), Some(Switch::Off));
        // Off, a flood too small to overload anything does not turn it on.
        assert_eq!(a.step(&sample(0, 0, 0, 0)), None);
        assert!(!a.is_on());
    }

    #[test]
    fn overloaded_is_a_tenth_of_the_tun_packets_dropped_mostly_syns_not_evictions() {
        let tun = |sent, dropped| Sample {
            tun_sent: sent,
            tun_dropped: dropped,
            flags_up: sent + dropped,
            ..Sample::default()
        };
        assert!(!tun(100_000, 0).overloaded());
        // A saturated slow path without a flood: a few percent dropped.
        assert!(!tun(100_000, 5_000).overloaded());
        assert!(!tun(9_001, 999).overloaded());
        assert!(tun(9_000, 1_000).overloaded());
        // The lab's full-rate flood without the gate: 3.16 M of some 4 M packets in 10 s.
        assert!(tun(90_000, 316_000).overloaded());
        // A burst too small to count, whatever its share.
        assert!(!tun(0, MIN_DROPS - 1).overloaded());
        assert!(tun(0, MIN_DROPS).overloaded());
        // The same drops with too few SYN/FIN/RST among the packets: a UDP blast, new connections at full speed.
        let mixed = |flags_up| Sample {
            tun_sent: 50_000,
            tun_dropped: 50_000,
            flags_up,
            ..Sample::default()
        };
        assert!(!mixed(0).overloaded(), "UDP");
        assert!(!mixed(40_000).overloaded(), "new connections");
        assert!(!mixed(59_999).overloaded());
        assert!(mixed(60_000).overloaded());
        assert!(mixed(100_000).overloaded(), "a SYN flood and its SYN-ACKs");
        let evicted = |evicted| Sample {
            evicted,
            ..Sample::default()
        };
        // A full table evicting, however fast, without the TUN dropping: the defences' job, not the gate's.
        assert!(!evicted(100).overloaded());
        assert!(!evicted(300_000).overloaded());
    }

    /// The lead's case: a legitimate surge that overloads the TUN (drops), whose connections complete, keeps the gate
    /// off; a flood (drops, and half-open connections that never complete) turns it on. "Complete" is seen in the
    /// packets the TUN gets: a completed connection brings its ACKs, data and FINs (~10 packets, 4 of them SYN, SYN-ACK
    /// or FIN), a spoofed SYN only itself and its real server's SYN-ACK (both SYN).
    #[test]
    fn a_legitimate_overload_keeps_the_gate_off_a_flood_turns_it_on() {
        let mut a = Auto::default();
        // 5000 new connections a second completing (50 000 packets, 20 000 of them SYN/SYN-ACK/FIN), a third dropped.
        let surge = Sample {
            tun_sent: 33_000,
            tun_dropped: 17_000,
            flags_up: 20_000,
            ..Sample::default()
        };
        for _ in 0..60 {
            assert_eq!(a.check_overload(&surge), None);
            assert_eq!(a.step(&surge), None);
        }
        assert!(!a.is_on());
        // The same drops, the packets now spoofed SYNs and their SYN-ACKs (and the surge's share of them).
        let flood = Sample {
            flags_up: 45_000,
            ..surge
        };
        assert_eq!(a.check_overload(&flood), Some(Switch::On));
    }

    #[test]
    fn the_overload_check_only_turns_on() {
        let mut a = Auto::default();
        assert_eq!(a.check_overload(&sample(0, 0, 0, 0)), None);
        assert_eq!(a.check_overload(&sample(99, 0, 0, 0)), None, "a burst");
        assert_eq!(a.check_overload(&sample(500, 0, 0, 0)), None, "5 %");
        assert_eq!(a.check_overload(&sample(1_000, 0, 0, 0)), Some(Switch::On));
        assert_eq!(
            a.check_overload(&sample(5_000, 0, 0, 0)),
            None,
            "already on"
        );
        // Only the once-a-second step turns it off, after CALM_SECS calm seconds.
        for _ in 0..100 {
            assert_eq!(a.check_overload(&sample(0, 0, 0, 0)), None);
        }
        assert!(a.is_on());
    }

    #[test]
    fn a_few_held_beyond_twice_the_passed_is_still_calm() {
        assert!(!sample(0, 0, 100, 0).flooded());
        assert!(sample(0, 0, 101, 0).flooded());
        assert!(!sample(0, 0, 2_100, 1_000).flooded());
        assert!(sample(0, 0, 2_101, 1_000).flooded());
    }

    #[test]
    fn the_options() {
        use clap::Parser;
        let parse = |a: &[&str]| {
            crate::args::Args::try_parse_from(std::iter::once("rvsd").chain(a.iter().copied()))
        };
        let a = parse(&[]).expect("defaults");
        assert_eq!((a.syn_gate, a.syn_gate_buckets), (None, 1 << 20));
        let a = parse(&["--syn-gate", "always", "--syn-gate-buckets", "5"]).expect("always");
        assert_eq!(
            (a.syn_gate, a.syn_gate_buckets),
            (Some(SynGateMode::Always), 5)
        );
        assert!(parse(&["--syn-gate", "on"]).is_err());
        assert!(parse(&["--syn-gate-buckets", "0"]).is_err());
        assert!(
            parse(&["--syn-gate-buckets", "16777217"]).is_err(),
            "256 MiB at most"
        );
    }

    #[test]
    fn the_tun_counters_are_the_transmit_packets_and_drop_columns() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                   lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
                   rvs0: 123456    789    1    2    3     4          5         6   654321    987    7 3156801    8     9      10         11\n";
        assert_eq!(
            Tun::parse(dev, "rvs0"),
            Some(Tun {
                sent: 987,
                dropped: 3_156_801
            })
        );
        assert_eq!(
            Tun::parse(dev, "lo"),
            Some(Tun {
                sent: 10,
                dropped: 0
            })
        );
        assert_eq!(Tun::parse(dev, "rvs1"), None);
        assert_eq!(Tun::parse(dev, "rvs"), None);
    }
}
