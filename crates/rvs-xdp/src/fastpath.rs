//! Loading, attaching and driving the XDP program.

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::xdp::{DevMapHash, XdpMapError};
use aya::maps::{HashMap, MapData, MapError, PerCpuArray};
use aya::programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId};
use aya::{Ebpf, EbpfLoader};

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
}

fn map_err(name: &'static str) -> impl FnOnce(MapError) -> Error {
    move |source| Error::Map { name, source }
}

/// Load options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Entries of the flow map (two per connection). Preallocated by the kernel: about 200 bytes each.
    pub max_flow_entries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_flow_entries: 65_536,
        }
    }
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

/// The loaded program and its maps. Dropping it detaches and unloads everything (nothing is pinned).
pub struct FastPath {
    ebpf: Ebpf,
    flows: HashMap<MapData, FlowKey, Flow>,
    tx_ports: DevMapHash<MapData>,
    stats: PerCpuArray<MapData, u64>,
    attached: Vec<Attachment>,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

impl FastPath {
    /// Load the program and create its maps (needs CAP_BPF / root). Nothing is attached yet.
    pub fn load(opts: Options) -> Result<Self, Error> {
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(FLOWS, opts.max_flow_entries.max(2))
            .load(crate::PROGRAM_OBJECT)?;
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
        Ok(Self {
            ebpf,
            flows,
            tx_ports,
            stats,
            attached: Vec::new(),
        })
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
    pub fn attach(&mut self, ifindex: u32) -> Result<(), Error> {
        self.add_egress(ifindex)?;
        let link = self
            .program(Program::FastPath)?
            .attach_to_if_index(ifindex, XdpMode::Driver)
            .map_err(|source| Error::Attach { ifindex, source })?;
        self.attached.push(Attachment { ifindex, link });
        Ok(())
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
