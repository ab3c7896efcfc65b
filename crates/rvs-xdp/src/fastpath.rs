//! Loading, attaching and driving the XDP program.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use aya::maps::xdp::{DevMapHash, XdpMapError};
use aya::maps::{HashMap, MapData, MapError, MapInfo, PerCpuArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::{XdpLink, XdpLinkId};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

use crate::gate::{self, Gate};
use crate::maps::{Flow, FlowCounters, FlowKey, STAT_COUNT, Stat};
use crate::testrun::{self, TestRun};

const FLOWS: &str = "rvs_flows";
const TX_PORTS: &str = "rvs_tx_ports";
const STATS: &str = "rvs_stats";
const MAIN: &str = "rvs_xdp";
const EMPTY: &str = "rvs_xdp_empty";

/// Errors of the fast path. None of them touches what is already loaded or attached.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("XDP program {name}: {source}")]
    Program {
        name: &'static str,
        source: ProgramError,
    },
    #[error("attaching XDP natively to interface {ifindex}: {source}")]
    Attach { ifindex: u32, source: ProgramError },
    #[error("map {name} is missing from the object")]
    MissingMap { name: &'static str },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        source: MapError,
    },
    #[error("adding interface {ifindex} as an egress: {source}")]
    TxPort { ifindex: u32, source: XdpMapError },
    #[error("the flow map is full")]
    Full,
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(std::io::Error),
    #[error("pinned {what} at {path}: {source}")]
    Pin {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the pinned flow map at {path} does not fit this build (key {key} B, value {value} B, {entries} entries)"
    )]
    PinnedIncompatible {
        path: PathBuf,
        key: u32,
        value: u32,
        entries: u32,
    },
}

fn pin_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Pin { what, path, source }
}

fn map_err(name: &'static str) -> impl FnOnce(MapError) -> Error {
    move |source| Error::Map { name, source }
}

/// Load options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Entries of the flow map (two per connection). Preallocated by the kernel: about 200 bytes each.
    pub max_flow_entries: u32,
    /// A directory on a bpffs where the maps are pinned (reused when already there: a take-over) and where
    /// [`FastPath::persist`] pins the links. None: nothing is pinned, everything dies with the process.
    pub pin_dir: Option<PathBuf>,
    /// Buckets of the SYN gate's memory (4 slots of 4 bytes each; rounded up to a power of two; default 2^20,
    /// 16 MiB). Preallocated by the kernel. See [`Gate`].
    pub gate_buckets: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_flow_entries: 65_536,
            pin_dir: None,
            gate_buckets: gate::DEFAULT_BUCKETS,
        }
    }
}

/// The names pinned in a pin directory: the three maps, and one link per interface (`link_<ifindex>`).
const PINNED_MAPS: [&str; 3] = [FLOWS, TX_PORTS, STATS];
const LINK_PREFIX: &str = "link_";

fn link_pin(dir: &Path, ifindex: u32) -> PathBuf {
    dir.join(format!("{LINK_PREFIX}{ifindex}"))
}

/// Which of the object's programs (the empty one is the comparison for instruction and time figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    FastPath,
    Empty,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::FastPath => MAIN,
            Program::Empty => EMPTY,
        }
    }
}

/// What the kernel says about a loaded program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramStats {
    /// Instructions after the verifier's rewrites (the static size of what runs).
    pub xlated_insns: u32,
    /// Instructions the verifier walked (over every path).
    pub verified_insns: u32,
}

/// A program attached to an interface (detached by [`FastPath::detach`] or when the `FastPath` is dropped).
#[derive(Debug)]
pub struct Attachment {
    pub ifindex: u32,
    link: XdpLinkId,
}

/// The loaded program and its maps. Dropping it detaches and unloads everything, except what
/// [`FastPath::persist`] pinned (and the maps pinned in [`Options::pin_dir`]).
pub struct FastPath {
    ebpf: Ebpf,
    flows: HashMap<MapData, FlowKey, Flow>,
    tx_ports: DevMapHash<MapData>,
    stats: PerCpuArray<MapData, u64>,
    attached: Vec<Attachment>,
    pin_dir: Option<PathBuf>,
    /// Links pinned by [`FastPath::persist`] (kept so their pins are not dropped twice).
    persisted: Vec<PinnedLink>,
    /// The SYN gate's maps until [`FastPath::take_gate`].
    gate: Option<Gate>,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

impl FastPath {
    /// Remove every pin in `dir` that a fast path leaves there (links first: that detaches their programs; then the
    /// maps). For a start that must not take anything over: after a crash, or a stop that left pins. Returns how
    /// many were removed; a missing directory is none.
    pub fn clear_pins(dir: &Path) -> Result<usize, Error> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(pin_err("directory", dir)(e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(LINK_PREFIX) || PINNED_MAPS.contains(&n.as_str()))
            .collect();
        names.sort_by_key(|n| !n.starts_with(LINK_PREFIX)); // links first
        for n in &names {
            let p = dir.join(n);
            std::fs::remove_file(&p).map_err(pin_err("object", &p))?;
        }
        Ok(names.len())
    }

    /// Whether `dir` holds pinned links (a fast path left attached by a planned restart).
    pub fn has_pinned_links(dir: &Path) -> bool {
        std::fs::read_dir(dir).is_ok_and(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with(LINK_PREFIX))
        })
    }

    /// Load the program and create its maps (needs CAP_BPF / root). Nothing is attached yet. With a pin
    /// directory the maps already pinned there are reused, entries and all (a take-over), and missing ones are
    /// created and pinned.
    pub fn load(opts: Options) -> Result<Self, Error> {
        let entries = opts.max_flow_entries.max(2);
        let buckets = opts.gate_buckets.clamp(1, 1 << 30).next_power_of_two();
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(FLOWS, entries);
        loader.map_max_entries(gate::SLOTS, buckets);
        let pins: Vec<(&'static str, PathBuf)> = match &opts.pin_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(pin_err("directory", dir))?;
                let flows = dir.join(FLOWS);
                if flows.exists() {
                    let info = MapInfo::from_pin(&flows).map_err(map_err(FLOWS))?;
                    let (key, value, n) = (info.key_size(), info.value_size(), info.max_entries());
                    if key as usize != size_of::<FlowKey>()
                        || value as usize != size_of::<Flow>()
                        || n != entries
                    {
                        return Err(Error::PinnedIncompatible {
                            path: flows,
                            key,
                            value,
                            entries: n,
                        });
                    }
                }
                PINNED_MAPS.iter().map(|m| (*m, dir.join(m))).collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(crate::PROGRAM_OBJECT)?;
        for name in [MAIN, EMPTY] {
            let p: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(Error::Program {
                    name,
                    source: ProgramError::NotLoaded,
                })?
                .try_into()
                .map_err(|source| Error::Program { name, source })?;
            p.load().map_err(|source| Error::Program { name, source })?;
        }
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(Error::MissingMap { name })
        };
        let flows = HashMap::try_from(take(&mut ebpf, FLOWS)?).map_err(map_err(FLOWS))?;
        let tx_ports =
            DevMapHash::try_from(take(&mut ebpf, TX_PORTS)?).map_err(map_err(TX_PORTS))?;
        let stats = PerCpuArray::try_from(take(&mut ebpf, STATS)?).map_err(map_err(STATS))?;
        let gate = Gate::new(
            take(&mut ebpf, gate::CFG)?,
            take(&mut ebpf, gate::VIPS)?,
            take(&mut ebpf, gate::STATS)?,
            buckets,
        )?;
        Ok(Self {
            ebpf,
            flows,
            tx_ports,
            stats,
            attached: Vec::new(),
            pin_dir: opts.pin_dir,
            persisted: Vec::new(),
            gate: Some(gate),
        })
    }

    /// The SYN gate's maps, for whoever drives the gate (once: None afterwards). The program keeps using them;
    /// the gate stays as the [`Gate`] left it when the `Gate` is dropped.
    pub fn take_gate(&mut self) -> Option<Gate> {
        self.gate.take()
    }

    fn program(&mut self, which: Program) -> Result<&mut Xdp, Error> {
        let name = which.name();
        self.ebpf
            .program_mut(name)
            .ok_or(Error::Program {
                name,
                source: ProgramError::NotLoaded,
            })?
            .try_into()
            .map_err(|source| Error::Program { name, source })
    }

    /// Attach the fast path natively (driver mode, through a bpf_link) to `ifindex` and make it an egress too.
    /// Fails where the driver has no native XDP; nothing is then attached to it.
    /// A link pinned for `ifindex` in the pin directory (a planned restart's) is taken over instead: its program
    /// is replaced by this one atomically (BPF_LINK_UPDATE: no packet sees the interface without a program) and
    /// its pin removed (the link lives as long as this process again).
    pub fn attach(&mut self, ifindex: u32) -> Result<(), Error> {
        self.add_egress(ifindex)?;
        let pinned = self
            .pin_dir
            .as_deref()
            .map(|d| link_pin(d, ifindex))
            .filter(|p| p.exists());
        let link = match pinned {
            Some(path) => {
                let adopted = PinnedLink::from_pin(&path)
                    .map_err(|e| pin_err("link", &path)(std::io::Error::other(e)))?;
                let fd_link = adopted.unpin().map_err(pin_err("link", &path))?;
                let xdp_link = XdpLink::try_from(fd_link)
                    .map_err(|e| pin_err("link", &path)(std::io::Error::other(e)))?;
                self.program(Program::FastPath)?
                    .attach_to_link(xdp_link)
                    .map_err(|source| Error::Attach { ifindex, source })?
            }
            None => self
                .program(Program::FastPath)?
                .attach_to_if_index(ifindex, XdpMode::Driver)
                .map_err(|source| Error::Attach { ifindex, source })?,
        };
        self.attached.push(Attachment { ifindex, link });
        Ok(())
    }

    /// A planned restart: pin every link in the pin directory, so the program stays attached and keeps forwarding
    /// the flows in its (pinned) map after this process exits, until the next one takes it over. Returns the
    /// number of links pinned (0 without a pin directory: nothing can outlive the process).
    pub fn persist(&mut self) -> Result<usize, Error> {
        let Some(dir) = self.pin_dir.clone() else {
            return Ok(0);
        };
        let links: Vec<Attachment> = std::mem::take(&mut self.attached);
        let mut n = 0;
        for a in links {
            let path = link_pin(&dir, a.ifindex);
            let owned = self
                .program(Program::FastPath)?
                .take_link(a.link)
                .map_err(|source| Error::Program { name: MAIN, source })?;
            let fd_link = FdLink::try_from(owned)
                .map_err(|e| pin_err("link", &path)(std::io::Error::other(e)))?;
            let pinned = fd_link
                .pin(&path)
                .map_err(|e| pin_err("link", &path)(std::io::Error::other(e)))?;
            self.persisted.push(pinned);
            n += 1;
        }
        Ok(n)
    }

    /// A stop for good: detach from every interface and remove every pin (maps and links) from the pin directory.
    pub fn unpin_all(&mut self) -> Result<usize, Error> {
        self.detach_all();
        self.persisted.clear();
        match &self.pin_dir {
            Some(dir) => Self::clear_pins(dir),
            None => Ok(0),
        }
    }

    /// Detach from every interface (the maps stay).
    pub fn detach_all(&mut self) {
        let links: Vec<Attachment> = std::mem::take(&mut self.attached);
        if let Ok(p) = self.program(Program::FastPath) {
            for a in links {
                if let Err(e) = p.detach(a.link) {
                    tracing::warn!(ifindex = a.ifindex, error = %e, "detaching XDP failed");
                }
            }
        }
    }

    /// The interfaces the program is attached to.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attached
    }

    /// Allow `ifindex` as an egress of redirected packets.
    pub fn add_egress(&mut self, ifindex: u32) -> Result<(), Error> {
        self.tx_ports
            .insert(ifindex, ifindex, None, 0)
            .map_err(|source| Error::TxPort { ifindex, source })
    }

    /// Insert or replace the entry for `key` (its counters start again from `flow`'s).
    pub fn insert(&mut self, key: &FlowKey, flow: &Flow) -> Result<(), Error> {
        self.flows.insert(key, flow, 0).map_err(|e| match &e {
            MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::E2BIG) => {
                Error::Full
            }
            _ => Error::Map {
                name: FLOWS,
                source: e,
            },
        })
    }

    /// Remove the entry for `key`, returning its last counters (None: there was none).
    pub fn remove(&mut self, key: &FlowKey) -> Result<Option<FlowCounters>, Error> {
        let last = self.counters(key)?;
        match self.flows.remove(key) {
            Ok(()) => Ok(last),
            Err(MapError::KeyNotFound | MapError::ElementNotFound) => Ok(None),
            Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(None)
            }
            Err(e) => Err(Error::Map {
                name: FLOWS,
                source: e,
            }),
        }
    }

    /// `key`'s entry as it is now (None: none, or it cannot be read).
    pub fn entry(&self, key: &FlowKey) -> Option<Flow> {
        self.flows.get(key, 0).ok()
    }

    /// The counters of `key`'s entry (None: no entry).
    pub fn counters(&self, key: &FlowKey) -> Result<Option<FlowCounters>, Error> {
        match self.flows.get(key, 0) {
            Ok(f) => Ok(Some(f.counters())),
            Err(MapError::KeyNotFound | MapError::ElementNotFound) => Ok(None),
            Err(e) => Err(Error::Map {
                name: FLOWS,
                source: e,
            }),
        }
    }

    /// Every entry (for tests and diagnostics; O(entries) system calls).
    pub fn entries(&self) -> Vec<(FlowKey, Flow)> {
        self.flows.iter().filter_map(Result::ok).collect()
    }

    /// The program's counters, summed over CPUs, indexed by [`Stat`].
    pub fn stats(&self) -> Result<[u64; STAT_COUNT], Error> {
        let mut out = [0u64; STAT_COUNT];
        for s in Stat::ALL {
            let v = self.stats.get(&(s as u32), 0).map_err(map_err(STATS))?;
            out[s as usize] = v.iter().sum();
        }
        Ok(out)
    }

    /// Run `which` on `packet` through BPF_PROG_TEST_RUN, `repeat` times (each repetition sees what the previous
    /// one left). Forwarded packets are not sent anywhere.
    pub fn test_run(
        &mut self,
        which: Program,
        packet: &[u8],
        repeat: u32,
    ) -> Result<TestRun, Error> {
        let name = which.name();
        let p = self.program(which)?;
        let fd = p.fd().map_err(|source| Error::Program { name, source })?;
        testrun::run(fd.as_fd().as_raw_fd(), packet, repeat.max(1)).map_err(Error::TestRun)
    }

    /// The file descriptor of `which` (for a bench's program array: examples/capacity.rs tail-calls the fast path).
    pub fn program_fd(&mut self, which: Program) -> Result<&aya::programs::ProgramFd, Error> {
        let name = which.name();
        self.program(which)?
            .fd()
            .map_err(|source| Error::Program { name, source })
    }

    /// The kernel's instruction counts for `which`.
    pub fn program_stats(&mut self, which: Program) -> Result<ProgramStats, Error> {
        let name = which.name();
        let info = self
            .program(which)?
            .info()
            .map_err(|source| Error::Program { name, source })?;
        Ok(ProgramStats {
            xlated_insns: info.size_translated().unwrap_or(0) / 8,
            verified_insns: info.verified_instruction_count().unwrap_or(0),
        })
    }
}
