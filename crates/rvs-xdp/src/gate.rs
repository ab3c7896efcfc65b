//! The SYN gate's maps (`bpf/rvs_gate.h`): SYN retransmission authentication at the driver. While it is on, a first
//! SYN to a gated VIP is dropped and remembered, and its retransmission (same addresses, ports and sequence number,
//! between [`Window::min`] and [`Window::max`] later) is passed up; a flood from spoofed sources never retransmits.
//! User space decides when it is on (rvsd/src/syngate.rs) and which VIPs it covers; the program holds and counts.
//!
//! The maps are not pinned: a program loaded by the next rvsd starts with an empty memory (its first SYNs are held
//! once more).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray};

use crate::fastpath::Error;

pub(crate) const CFG: &str = "rvs_gate_cfg";
pub(crate) const SLOTS: &str = "rvs_gate_slots";
pub(crate) const VIPS: &str = "rvs_gate_vips";
pub(crate) const STATS: &str = "rvs_gate_stats";

/// The default number of buckets (4 slots of 4 bytes each: 16 MiB).
pub const DEFAULT_BUCKETS: u32 = 1 << 20;
/// `RVS_GATE_VIPS_MAX`: gated (address, port) pairs; beyond, a VIP is not gated.
pub const MAX_VIPS: usize = 4096;
/// `RVS_GATE_TICK_SHIFT`: the program's clock ticks, 2^24 ns.
const TICK_SHIFT: u32 = 24;

/// `struct rvs_gate_cfg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
struct GateCfg {
    on: u32,
    mask: u32,
    seed: [u32; 2],
    min_age: u16,
    max_age: u16,
    pad: u32,
}

/// `struct rvs_gate_vip`: a TCP service's address and port (0: every port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
struct GateVip {
    addr: [u8; 16],
    /// Network byte order.
    port: u16,
    family: u8,
    pad: u8,
}

const _: () = {
    assert!(size_of::<GateCfg>() == 24);
    assert!(std::mem::offset_of!(GateCfg, min_age) == 16);
    assert!(size_of::<GateVip>() == 20);
    assert!(std::mem::offset_of!(GateVip, family) == 18);
};

// SAFETY: #[repr(C)] of integers and byte arrays with every padding byte an explicit field: any bit pattern is
// valid and no byte is uninitialised.
unsafe impl aya::Pod for GateCfg {}
// SAFETY: as above.
unsafe impl aya::Pod for GateVip {}

impl GateVip {
    fn new(addr: IpAddr, port: u16) -> Self {
        let (a, family) = match addr {
            IpAddr::V4(v) => {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&v.octets());
                (a, 4)
            }
            IpAddr::V6(v) => (v.octets(), 6),
        };
        Self {
            addr: a,
            port: port.to_be(),
            family,
            pad: 0,
        }
    }
}

/// When a SYN that matches a held one counts as its retransmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Sooner, it is a duplicate (held again; the first one's time is kept).
    pub min: Duration,
    /// Later, it is a new first SYN (held, remembered anew).
    pub max: Duration,
}

impl Default for Window {
    /// 150 ms to 10 s: Linux retransmits a SYN after 1 s, then 3 s, 7 s (others after 3 s); a network's duplicate
    /// comes within milliseconds.
    fn default() -> Self {
        Self {
            min: Duration::from_millis(150),
            max: Duration::from_secs(10),
        }
    }
}

/// Ticks of the program's clock, rounded to the nearest, within its 16 bits.
fn ticks(d: Duration) -> u16 {
    let t = (d.as_nanos() + (1u128 << (TICK_SHIFT - 1))) >> TICK_SHIFT;
    u16::try_from(t).unwrap_or(u16::MAX).min(u16::MAX / 2)
}

/// The gate's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GateCounters {
    /// First SYNs dropped.
    pub held: u64,
    /// Retransmissions passed up.
    pub passed: u64,
}

/// The gate's maps, taken out of a loaded [`crate::FastPath`] ([`crate::FastPath::take_gate`]).
pub struct Gate {
    cfg_map: Array<MapData, GateCfg>,
    vips: HashMap<MapData, GateVip, u32>,
    stats: PerCpuArray<MapData, u64>,
    cfg: GateCfg,
    gated: HashSet<GateVip>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("on", &(self.cfg.on != 0))
            .field("buckets", &self.buckets())
            .field("vips", &self.gated.len())
            .finish_non_exhaustive()
    }
}

fn map_err(name: &'static str) -> impl FnOnce(MapError) -> Error {
    move |source| Error::Map { name, source }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: b is 4 writable bytes; getrandom writes at most that many.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        // No entropy (cannot happen after boot): a clock-derived seed still differs per load.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.subsec_nanos() ^ d.as_secs() as u32)
    }
}

impl Gate {
    /// Take the maps out of the object and write the configuration: off, random seeds, the default window.
    pub(crate) fn new(cfg_map: Map, vips: Map, stats: Map, buckets: u32) -> Result<Self, Error> {
        let mut g = Self {
            cfg_map: Array::try_from(cfg_map).map_err(map_err(CFG))?,
            vips: HashMap::try_from(vips).map_err(map_err(VIPS))?,
            stats: PerCpuArray::try_from(stats).map_err(map_err(STATS))?,
            cfg: GateCfg {
                mask: buckets - 1,
                seed: [random_u32(), random_u32()],
                ..GateCfg::default()
            },
            gated: HashSet::new(),
        };
        g.set_window(Window::default())?;
        Ok(g)
    }

    fn write(&mut self) -> Result<(), Error> {
        self.cfg_map.set(0, self.cfg, 0).map_err(map_err(CFG))
    }

    /// Buckets of 4 slots (a power of two).
    pub fn buckets(&self) -> u32 {
        self.cfg.mask + 1
    }

    /// Whether the program holds first SYNs now.
    pub fn is_on(&self) -> bool {
        self.cfg.on != 0
    }

    /// Turn the gate on or off (the next SYN sees it).
    pub fn set_on(&mut self, on: bool) -> Result<(), Error> {
        self.cfg.on = u32::from(on);
        self.write()
    }

    /// When a matching SYN is a retransmission (in the program's 16.8 ms ticks, up to 9 minutes).
    pub fn set_window(&mut self, w: Window) -> Result<(), Error> {
        self.cfg.min_age = ticks(w.min);
        self.cfg.max_age = ticks(w.max).max(self.cfg.min_age);
        self.write()
    }

    /// Gate exactly these TCP (address, port) pairs (port 0: every port of the address). Returns how many are
    /// gated: at most [`MAX_VIPS`]; the rest are not (their SYNs pass).
    pub fn set_vips(&mut self, want: &[(IpAddr, u16)]) -> Result<usize, Error> {
        let want: HashSet<GateVip> = want
            .iter()
            .map(|(a, p)| GateVip::new(*a, *p))
            .take(MAX_VIPS)
            .collect();
        let gone: Vec<GateVip> = self.gated.difference(&want).copied().collect();
        for v in gone {
            match self.vips.remove(&v) {
                Ok(()) | Err(MapError::KeyNotFound | MapError::ElementNotFound) => {}
                Err(e) => return Err(map_err(VIPS)(e)),
            }
            self.gated.remove(&v);
        }
        let new: Vec<GateVip> = want.difference(&self.gated).copied().collect();
        for v in new {
            self.vips.insert(v, 1, 0).map_err(map_err(VIPS))?;
            self.gated.insert(v);
        }
        Ok(self.gated.len())
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<GateCounters, Error> {
        let sum = |i: u32| -> Result<u64, Error> {
            Ok(self.stats.get(&i, 0).map_err(map_err(STATS))?.iter().sum())
        };
        Ok(GateCounters {
            held: sum(0)?,
            passed: sum(1)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_default_window_in_ticks() {
        let w = Window::default();
        // 150 ms = 8.9 ticks of 16.78 ms; 10 s = 596.0 ticks.
        assert_eq!(ticks(w.min), 9);
        assert_eq!(ticks(w.max), 596);
        assert_eq!(ticks(Duration::from_secs(3600)), u16::MAX / 2);
    }

    #[test]
    fn a_vip_key_is_the_c_layout() {
        let v = GateVip::new("198.51.100.100".parse().unwrap(), 80);
        assert_eq!(&v.addr[..4], &[198, 51, 100, 100]);
        assert!(v.addr[4..].iter().all(|b| *b == 0));
        assert_eq!(v.port, 80u16.to_be());
        assert_eq!(v.family, 4);
        assert_eq!(GateVip::new("2001:db8::1".parse().unwrap(), 0).family, 6);
    }
}
