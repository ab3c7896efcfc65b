//! Prometheus metrics and the live view (`rvsd --metrics ADDR:PORT`).
//!
//! Everything here is read at scrape time from what the control path already exposes: the director's
//! service snapshot (an `ArcSwap` load plus relaxed atomic reads of the counter slots), its drop counters and
//! connection counts, and the workers' relaxed atomic counters. A scrape never takes a lock the data plane
//! waits on (the per-shard connection locks are not touched: `conn_count` reads shard lengths kept in atomics).
//!
//! Names, labels, types and help strings of node_exporter's ipvs collector (collector/ipvs_linux.go) are kept
//! exactly, so IPVS dashboards and alerts work unchanged; rvs's own metrics are under `rvs_`.
//!
//! # Adding metrics from another module
//!
//! [`Metrics::registry`] is the `rvs_`-prefixed [`Registry`] of prometheus-client. Before the listener starts
//! (see `main.rs`), register either live metrics you update yourself (cheap atomics, e.g. a health checker's
//! failure counter) or a [`Collector`] that reads your state at scrape time (e.g. VRRP state):
//!
//! ```ignore
//! let failures = Family::<Vec<(&'static str, String)>, Counter>::default();
//! metrics.registry().register("health_check_failures", "Failed health checks by real server", failures.clone());
//! // later, in the checker:
//! failures.get_or_create(&vec![("remote_address", rip.to_string())]).inc();
//! ```
//!
//! A data path with its own per-worker counters (the XDP fast path) adds a [`PathSource`] with
//! [`Metrics::add_path`]: its counters then appear in the same `rvs_dataplane_*` families under its `path`
//! label. The live view asks an optional [`HealthView`] for each real server's check state.

mod http;
mod page;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use rvs_core::{Director, DropReason, ServiceKey, ServiceSnapshot, Stats};

use crate::dataplane::WorkerStats;

pub use http::Listener;

/// Counters of one worker of one data path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    pub worker: usize,
    pub received: u64,
    pub forwarded_in: u64,
    pub forwarded_out: u64,
    pub passed: u64,
    pub dropped: u64,
}

/// A data path's per-worker counters, read at scrape time (must not block the path).
pub trait PathSource: Send + Sync + std::fmt::Debug + 'static {
    /// The `path` label ("tun", "link", "xdp", ...).
    fn path(&self) -> &'static str;
    /// Current counters of each worker.
    fn read(&self, out: &mut Vec<WorkerCounters>);
}

/// The real servers' health as the live view shows it.
pub trait HealthView: Send + Sync + std::fmt::Debug + 'static {
    /// Check state ("up", "down", ...) of every checked real server: (service, address, port, state).
    fn states(&self) -> Vec<(ServiceKey, IpAddr, u16, String)>;
}

/// The VRRP instances as the live view shows them.
pub trait VrrpView: Send + Sync + std::fmt::Debug + 'static {
    /// Every running instance's status.
    fn instances(&self) -> Vec<rvs_api::VrrpStatus>;
}

/// The workers of the TUN data plane as a [`PathSource`]: forwarded packets are split by where they left
/// (`path="link"` for `--tx link` sends, `path="tun"` for the rest).
#[derive(Debug)]
pub struct TunWorkers {
    pub stats: Vec<Arc<WorkerStats>>,
}

/// Everything the metrics and the live view read.
#[derive(Debug, Clone)]
pub struct Sources {
    pub director: Arc<Director>,
    pub workers: Arc<TunWorkers>,
    pub paths: Vec<Arc<dyn PathSource>>,
    pub health: Option<Arc<dyn HealthView>>,
    pub vrrp: Option<Arc<dyn VrrpView>>,
}

/// The metrics registry being assembled (before the listener starts).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sources: Sources,
}

// `add_path` and `set_health` are the registration points of the XDP fast path and the health checkers.
#[allow(dead_code)]
impl Metrics {
    /// Metrics over the director and the TUN workers, with node_exporter's ipvs families and rvs's own.
    pub fn new(director: Arc<Director>, workers: Vec<Arc<WorkerStats>>) -> Self {
        let sources = Sources {
            director,
            workers: Arc::new(TunWorkers { stats: workers }),
            paths: Vec::new(),
            health: None,
            vrrp: None,
        };
        Self {
            registry: Registry::default(),
            sources,
        }
    }

    /// The `rvs_`-prefixed registry other modules add their metrics to.
    pub fn registry(&mut self) -> &mut Registry {
        self.registry.sub_registry_with_prefix("rvs")
    }

    /// Another data path's per-worker counters (shown in `rvs_dataplane_*` under its `path` label).
    pub fn add_path(&mut self, p: Arc<dyn PathSource>) {
        self.sources.paths.push(p);
    }

    /// Where the live view reads each real server's health.
    pub fn set_health(&mut self, h: Arc<dyn HealthView>) {
        self.sources.health = Some(h);
    }

    /// Where the live view reads the VRRP instances.
    pub fn set_vrrp(&mut self, v: Arc<dyn VrrpView>) {
        self.sources.vrrp = Some(v);
    }

    /// Freeze: the registry with the built-in collectors, and the sources the live view reads.
    pub fn finish(mut self) -> (Registry, Sources) {
        self.registry
            .register_collector(Box::new(IpvsCollector(self.sources.clone())));
        let own = RvsCollector(self.sources.clone());
        self.registry().register_collector(Box::new(own));
        (self.registry, self.sources)
    }
}

/// Render a registry in the Prometheus text format (version 0.0.4).
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(64 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

// ------------------------------------------------------------------------------------------ labels

/// node_exporter's backend labels, in its order: local_address, local_port, remote_address, remote_port, proto,
/// local_mark. Values as procfs gives them: an fwmark service has an empty local_address, local_port "0",
/// proto "FWM" and local_mark the mark as 8 upper-case hex digits (/proc/net/ip_vs's `%08X`).
fn service_labels(key: &ServiceKey) -> [(&'static str, String); 4] {
    match *key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => [
            ("local_address", addr.to_string()),
            ("local_port", port.to_string()),
            ("proto", protocol.name().to_owned()),
            ("local_mark", String::new()),
        ],
        ServiceKey::Fwmark { mark, .. } => [
            ("local_address", String::new()),
            ("local_port", "0".to_owned()),
            ("proto", "FWM".to_owned()),
            ("local_mark", format!("{:08X}", mark.get())),
        ],
    }
}

fn backend_labels(key: &ServiceKey, addr: IpAddr, port: u16) -> [(&'static str, String); 6] {
    let [la, lp, proto, mark] = service_labels(key);
    [
        la,
        lp,
        ("remote_address", addr.to_string()),
        ("remote_port", port.to_string()),
        proto,
        mark,
    ]
}

/// The label values of every service and real server of one snapshot, rendered once per scrape (a family per
/// counter would otherwise format every address again).
#[derive(Debug)]
struct Rendered {
    /// Per service: local_address, local_port, proto, local_mark; per real server: remote_address, remote_port.
    services: Vec<(ServiceLabels, Vec<(String, String)>)>,
}

type ServiceLabels = [(&'static str, String); 4];

impl Rendered {
    fn new(services: &[ServiceSnapshot]) -> Self {
        Self {
            services: services
                .iter()
                .map(|s| {
                    let dests = s
                        .dests
                        .iter()
                        .map(|d| (d.spec.addr.to_string(), d.spec.port.to_string()))
                        .collect();
                    (service_labels(&s.spec.key), dests)
                })
                .collect(),
        }
    }

    fn service(&self, i: usize) -> [(&'static str, &str); 4] {
        let l = &self.services[i].0;
        [
            (l[0].0, l[0].1.as_str()),
            (l[1].0, l[1].1.as_str()),
            (l[2].0, l[2].1.as_str()),
            (l[3].0, l[3].1.as_str()),
        ]
    }

    fn backend(&self, i: usize, j: usize) -> [(&'static str, &str); 6] {
        let (l, dests) = &self.services[i];
        let (ra, rp) = &dests[j];
        [
            (l[0].0, l[0].1.as_str()),
            (l[1].0, l[1].1.as_str()),
            ("remote_address", ra.as_str()),
            ("remote_port", rp.as_str()),
            (l[2].0, l[2].1.as_str()),
            (l[3].0, l[3].1.as_str()),
        ]
    }
}

// ------------------------------------------------------------------------------------------ collectors

/// node_exporter's ipvs collector over the director's snapshot.
#[derive(Debug)]
struct IpvsCollector(Sources);

/// Sum of the services' counters: what /proc/net/ip_vs_stats reports (see the README for the difference after a
/// service is deleted).
fn totals(services: &[ServiceSnapshot]) -> Stats {
    services.iter().fold(Stats::default(), |mut t, s| {
        t.conns = t.conns.wrapping_add(s.stats.conns);
        t.inpkts = t.inpkts.wrapping_add(s.stats.inpkts);
        t.outpkts = t.outpkts.wrapping_add(s.stats.outpkts);
        t.inbytes = t.inbytes.wrapping_add(s.stats.inbytes);
        t.outbytes = t.outbytes.wrapping_add(s.stats.outbytes);
        t
    })
}

/// The five IPVS counters with their node_exporter names (without `_total`, which the encoder appends) and
/// help strings.
/// (name, help, read) of one counter family.
type Family<T> = (&'static str, &'static str, fn(&T) -> u64);

const STAT_FAMILIES: [Family<Stats>; 5] = [
    (
        "connections",
        "The total number of connections made.",
        |s| s.conns,
    ),
    (
        "incoming_packets",
        "The total number of incoming packets.",
        |s| s.inpkts,
    ),
    (
        "outgoing_packets",
        "The total number of outgoing packets.",
        |s| s.outpkts,
    ),
    (
        "incoming_bytes",
        "The total amount of incoming data.",
        |s| s.inbytes,
    ),
    (
        "outgoing_bytes",
        "The total amount of outgoing data.",
        |s| s.outbytes,
    ),
];

type Enc<'a> = DescriptorEncoder<'a>;

fn counter(enc: &mut Enc<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

impl Collector for IpvsCollector {
    fn encode(&self, mut enc: Enc<'_>) -> std::fmt::Result {
        let services = self.0.director.services();
        let t = totals(&services);
        for (name, help, get) in STAT_FAMILIES {
            counter(&mut enc, &format!("node_ipvs_{name}"), help, get(&t))?;
        }
        type DestGet = fn(&rvs_core::DestSnapshot) -> i64;
        let backend: [(&str, &str, DestGet); 3] = [
            (
                "node_ipvs_backend_connections_active",
                "The current active connections by local and remote address.",
                |d| i64::from(d.active_conns),
            ),
            (
                "node_ipvs_backend_connections_inactive",
                "The current inactive connections by local and remote address.",
                |d| i64::from(d.inactive_conns),
            ),
            (
                "node_ipvs_backend_weight",
                "The current backend weight by local and remote address.",
                |d| i64::from(d.spec.weight.get()),
            ),
        ];
        let r = Rendered::new(&services);
        for (name, help, get) in backend {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (i, s) in services.iter().enumerate() {
                for (j, d) in s.dests.iter().enumerate() {
                    ConstGauge::new(get(d)).encode(m.encode_family(&r.backend(i, j))?)?;
                }
            }
        }
        Ok(())
    }
}

/// rvs's own metrics (registered under the `rvs` prefix).
#[derive(Debug)]
struct RvsCollector(Sources);

impl Collector for RvsCollector {
    fn encode(&self, mut enc: Enc<'_>) -> std::fmt::Result {
        let d = &self.0.director;
        let services = d.services();
        let r = Rendered::new(&services);
        let mut name = String::new();
        for (stat, help, get) in STAT_FAMILIES {
            name.clear();
            let _ = write!(name, "service_{stat}");
            let mut m = enc.encode_descriptor(
                &name,
                &format!("{} By virtual service.", help.trim_end_matches('.')),
                None,
                MetricType::Counter,
            )?;
            for (i, s) in services.iter().enumerate() {
                ConstCounter::new(get(&s.stats)).encode(m.encode_family(&r.service(i))?)?;
            }
            name.clear();
            let _ = write!(name, "backend_{stat}");
            let mut m = enc.encode_descriptor(
                &name,
                &format!("{} By real server.", help.trim_end_matches('.')),
                None,
                MetricType::Counter,
            )?;
            for (i, s) in services.iter().enumerate() {
                for (j, dst) in s.dests.iter().enumerate() {
                    ConstCounter::new(get(&dst.stats))
                        .encode(m.encode_family(&r.backend(i, j))?)?;
                }
            }
        }
        let mut m = enc.encode_descriptor(
            "service_info",
            "Virtual service configuration (value 1): scheduler and persistence timeout.",
            None,
            MetricType::Gauge,
        )?;
        for (i, s) in services.iter().enumerate() {
            let [a, b, c, e] = r.service(i);
            let persist = s.spec.persistence.map_or(0, |p| p.timeout_s).to_string();
            let l = [
                a,
                b,
                c,
                e,
                ("scheduler", s.spec.scheduler.as_str()),
                ("persistence_timeout", persist.as_str()),
            ];
            ConstGauge::new(1i64).encode(m.encode_family(&l)?)?;
        }
        type DestGet = fn(&rvs_core::DestSnapshot) -> i64;
        let gauges: [(&str, &str, DestGet); 2] = [
            (
                "backend_connections_persistent",
                "Persistence templates pointing at the real server.",
                |x| i64::from(x.persistent_conns),
            ),
            (
                "backend_overloaded",
                "1 while the real server is over its upper connection threshold.",
                |x| i64::from(x.overloaded),
            ),
        ];
        for (name, help, get) in gauges {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (i, s) in services.iter().enumerate() {
                for (j, dst) in s.dests.iter().enumerate() {
                    ConstGauge::new(get(dst)).encode(m.encode_family(&r.backend(i, j))?)?;
                }
            }
        }

        let drops = d.drop_counters();
        let mut m = enc.encode_descriptor(
            "dropped_packets",
            "Packets the director dropped, by reason.",
            None,
            MetricType::Counter,
        )?;
        for r in DropReason::ALL {
            ConstCounter::new(drops.get(r)).encode(m.encode_family(&[("reason", r.name())])?)?;
        }
        // Connection-table size from the real servers' own atomic counters (every connection is bound to one):
        // `Director::conn_count` would take every shard lock the workers use.
        let (conns, templates) =
            services
                .iter()
                .flat_map(|s| &s.dests)
                .fold((0u64, 0u64), |(c, t), x| {
                    (
                        c + u64::from(x.active_conns) + u64::from(x.inactive_conns),
                        t + u64::from(x.persistent_conns),
                    )
                });
        drop(services);
        let gauges = [
            (
                "connections",
                "Connections in the connection table (active + inactive of every real server).",
                conns,
            ),
            (
                "connection_templates",
                "Persistence templates in the connection table.",
                templates,
            ),
        ];
        for (name, help, v) in gauges {
            let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m)?;
        }
        encode_defense(&mut enc, &d.defense())?;
        self.encode_dataplane(&mut enc)
    }
}

/// The connection-table limit and IPVS's defences, from the director's defence snapshot (relaxed atomic loads
/// only; the defence timer updates them once a second).
fn encode_defense(enc: &mut Enc<'_>, def: &rvs_core::DefenseSnapshot) -> std::fmt::Result {
    let m = enc.encode_descriptor(
        "connection_table_limit",
        "Connection-table limit (--max-conns; no sample when unlimited).",
        None,
        MetricType::Gauge,
    )?;
    if def.config.max_conns != usize::MAX {
        ConstGauge::new(i64::try_from(def.config.max_conns).unwrap_or(i64::MAX)).encode(m)?;
    }
    let mut m = enc.encode_descriptor(
        "defense_level",
        "IPVS defence sysctl as it stands: 0 off, 1 automatic and inactive, 2 automatic and active, 3 always.",
        None,
        MetricType::Gauge,
    )?;
    for (name, level) in [
        ("drop_entry", def.config.drop_entry),
        ("drop_packet", def.config.drop_packet),
        ("secure_tcp", def.config.secure_tcp),
    ] {
        ConstGauge::new(i64::from(level.sysctl()))
            .encode(m.encode_family(&[("defense", name)])?)?;
    }
    let gauges = [
        (
            "defense_memory_pressure",
            "1 while fewer than amemthresh entries are free under the connection-table limit.",
            i64::from(def.pressure),
        ),
        (
            "defense_drop_rate",
            "drop_packet's current rate: one in this many new connections dropped (0: not dropping).",
            i64::from(def.drop_rate),
        ),
    ];
    for (name, help, v) in gauges {
        let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        ConstGauge::new(v).encode(m)?;
    }
    counter(
        enc,
        "defense_dropped_entries",
        "Connection entries removed by drop_entry's periodic scan.",
        def.entries_dropped,
    )?;
    counter(
        enc,
        "defense_evicted_entries",
        "Connection entries evicted to make room for a new connection at the limit.",
        def.entries_evicted,
    )
}

impl PathSource for TunWorkers {
    fn path(&self) -> &'static str {
        "tun"
    }
    fn read(&self, out: &mut Vec<WorkerCounters>) {
        for (i, s) in self.stats.iter().enumerate() {
            out.push(WorkerCounters {
                worker: i,
                received: s.received.load(Ordering::Relaxed),
                forwarded_in: s.forwarded_in.load(Ordering::Relaxed),
                forwarded_out: s.forwarded_out.load(Ordering::Relaxed),
                passed: s.passed.load(Ordering::Relaxed),
                dropped: s.dropped.load(Ordering::Relaxed),
            });
        }
    }
}

impl RvsCollector {
    fn encode_dataplane(&self, enc: &mut Enc<'_>) -> std::fmt::Result {
        let mut rows: Vec<(&'static str, WorkerCounters)> = Vec::new();
        let mut buf = Vec::new();
        let tun = self.0.workers.clone() as Arc<dyn PathSource>;
        for p in std::iter::once(&tun).chain(&self.0.paths) {
            buf.clear();
            p.read(&mut buf);
            rows.extend(buf.iter().map(|c| (p.path(), *c)));
        }
        let worker = |c: &WorkerCounters| c.worker.to_string();
        let mut m = enc.encode_descriptor(
            "dataplane_packets",
            "Packets the data-plane workers handled, by path, worker and outcome (received = read; forwarded_in/forwarded_out = rewritten and sent on; passed = not for a virtual service, handed back to the stack; dropped = refused by the director or unserved).",
            None,
            MetricType::Counter,
        )?;
        for (path, c) in &rows {
            for (outcome, v) in [
                ("received", c.received),
                ("forwarded_in", c.forwarded_in),
                ("forwarded_out", c.forwarded_out),
                ("passed", c.passed),
                ("dropped", c.dropped),
            ] {
                let l = [
                    ("path", *path),
                    ("worker", &worker(c)),
                    ("outcome", outcome),
                ];
                ConstCounter::new(v).encode(m.encode_family(&l)?)?;
            }
        }
        let tun_extra: [Family<WorkerStats>; 3] = [
            (
                "dataplane_link_sent_packets",
                "Forwarded packets the TUN workers sent straight to the next hop's MAC (--tx link).",
                |s| s.link_sent.load(Ordering::Relaxed),
            ),
            (
                "dataplane_unserved_vip_packets",
                "Packets to a VIP with no matching virtual service (dropped).",
                |s| s.unserved_vip.load(Ordering::Relaxed),
            ),
            (
                "dataplane_write_errors",
                "Packets the TUN workers failed to send.",
                |s| s.write_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, get) in tun_extra {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (i, s) in self.0.workers.stats.iter().enumerate() {
                let l = [("worker", i.to_string())];
                ConstCounter::new(get(s)).encode(m.encode_family(&l)?)?;
            }
        }
        let m = enc.encode_descriptor(
            "dataplane_workers",
            "Data-plane worker threads of the TUN path.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.0.workers.stats.len() as i64).encode(m)
    }
}

/// The XDP fast path's program counters by reason (`forwarded` on the fast path, `pass_*` handed up to the TUN
/// path, `drop_*`) and its connection count, read at scrape time from the fast path's control state (its BPF
/// per-CPU stats map; the kernel's program never waits on it). Registered with
/// `metrics.registry().register_collector(Box::new(FastPathCollector(ctl)))`.
#[derive(Debug)]
pub struct FastPathCollector(pub Arc<crate::fastpath::FastPathCtl>);

impl Collector for FastPathCollector {
    fn encode(&self, mut enc: Enc<'_>) -> std::fmt::Result {
        let mut m = enc.encode_descriptor(
            "fastpath_packets",
            "Packets the XDP fast path handled, by reason (forwarded, or pass_* handed up to the TUN path).",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in self.0.stats() {
            ConstCounter::new(n).encode(m.encode_family(&[("reason", reason)])?)?;
        }
        let mut m = enc.encode_descriptor(
            "fastpath_egress_redirect",
            "1 while the interface transmits redirected XDP frames; 0: it would drop them, its connections stay on the slow path.",
            None,
            MetricType::Gauge,
        )?;
        for (name, ok) in self.0.egresses() {
            ConstGauge::new(i64::from(ok))
                .encode(m.encode_family(&[("interface", name.as_str())])?)?;
        }
        let m = enc.encode_descriptor(
            "fastpath_connections",
            "Connections installed on the XDP fast path.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(self.0.connections()).unwrap_or(i64::MAX)).encode(m)
    }
}

/// keepalived-style health checks (`rvsd --keepalived`, rvs-health) in the metrics and the live view, read at
/// scrape time from the checkers' event loop (one request over its channel; the data plane is not involved).
#[derive(Debug)]
pub struct KeepalivedHealth(pub Arc<crate::daemon::Daemon>);

/// The checker's counters at a scrape.
#[derive(Debug, Clone, Copy, Default)]
struct HealthCounts {
    done: u64,
    /// Started [`rvs_health::engine::LATE`] or more after due.
    late: u64,
    /// Sum of how long after their due time the checks started.
    start_delay: std::time::Duration,
}

impl KeepalivedHealth {
    fn status(&self) -> Option<(Vec<rvs_api::ServiceHealth>, HealthCounts)> {
        let h = self.0.health.get()?;
        let counts = HealthCounts {
            done: h.checks_done(),
            late: h.checks_late(),
            start_delay: h.start_delay_total(),
        };
        Some((h.status(), counts))
    }
}

impl HealthView for KeepalivedHealth {
    fn states(&self) -> Vec<(ServiceKey, IpAddr, u16, String)> {
        let Some((status, _)) = self.status() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for vs in &status {
            for k in &vs.keys {
                let key = *k;
                for rs in &vs.real_servers {
                    out.push((key, rs.addr, rs.port, rs.state.clone()));
                }
            }
        }
        out
    }
}

impl Collector for KeepalivedHealth {
    fn encode(&self, enc: Enc<'_>) -> std::fmt::Result {
        match self.status() {
            Some((status, checks)) => encode_health(enc, &status, checks),
            None => Ok(()),
        }
    }
}

/// The health families from a status snapshot (separate from the daemon so it can be tested).
fn encode_health(
    mut enc: Enc<'_>,
    status: &[rvs_api::ServiceHealth],
    counts: HealthCounts,
) -> std::fmt::Result {
    counter(
        &mut enc,
        "health_checks",
        "Health checks completed since rvsd started.",
        counts.done,
    )?;
    counter(
        &mut enc,
        "health_checks_late",
        "Health checks that started 1 s or more after they were due (the checker is falling behind).",
        counts.late,
    )?;
    let m = enc.encode_descriptor(
        "health_check_start_delay_seconds",
        "How long after their due time the health checks started, summed (divide by rvs_health_checks_total's increase for the mean).",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(counts.start_delay.as_secs_f64()).encode(m)?;
    // (service key, real server, checker index or None) for every row, in order.
    let rows = || {
        status.iter().flat_map(|vs| {
            vs.keys.iter().flat_map(move |k| {
                let key = *k;
                vs.real_servers.iter().map(move |rs| (key, rs))
            })
        })
    };
    type RsGet = fn(&rvs_api::RealServerHealth) -> f64;
    let rs_families: [(&str, &str, RsGet); 3] = [
        (
            "health_real_server_up",
            "1 while the real server passes its checks and is in the pool (keepalived's state up), else 0.",
            |r| f64::from(u8::from(r.state == "up")),
        ),
        (
            "health_real_server_weight",
            "The real server's weight in the pool as the health checks set it (absent when removed).",
            |r| r.weight.map_or(f64::NAN, f64::from),
        ),
        (
            "health_real_server_last_change_timestamp_seconds",
            "When the real server's health state last changed (Unix time).",
            |r| r.changed_unix_ms as f64 / 1000.0,
        ),
    ];
    for (name, help, get) in rs_families {
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (key, rs) in rows() {
            let v = get(rs);
            if v.is_nan() {
                continue;
            }
            let l = backend_labels(&key, rs.addr, rs.port);
            ConstGauge::new(v).encode(m.encode_family(&l)?)?;
        }
    }
    type CkGet = fn(&rvs_api::CheckerHealth) -> f64;
    let ck_families: [(&str, &str, CkGet); 2] = [
        (
            "health_checker_up",
            "1 while the checker succeeds, by real server, checker kind and target.",
            |c| f64::from(u8::from(c.up)),
        ),
        (
            "health_checker_failures",
            "Failed attempts of the checker in its current retry cycle.",
            |c| f64::from(c.retries),
        ),
    ];
    for (name, help, get) in ck_families {
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (key, rs) in rows() {
            for c in &rs.checkers {
                let [a, b, r, p, proto, mark] = backend_labels(&key, rs.addr, rs.port);
                let l = [
                    a,
                    b,
                    r,
                    p,
                    proto,
                    mark,
                    ("checker", c.kind.clone()),
                    ("target", c.target.clone()),
                ];
                ConstGauge::new(get(c)).encode(m.encode_family(&l)?)?;
            }
        }
    }
    Ok(())
}

/// The connection sync daemons (`--start-daemon`): which run and their counters, read at scrape time.
#[derive(Debug)]
pub struct SyncCollector(pub Arc<crate::daemon::Daemon>);

impl Collector for SyncCollector {
    fn encode(&self, enc: Enc<'_>) -> std::fmt::Result {
        encode_sync(enc, &self.0.sync.stats())
    }
}

fn encode_sync(
    mut enc: Enc<'_>,
    daemons: &[(rvs_api::DaemonState, crate::sync::SyncStats)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(
        "sync_daemon_running",
        "1 while the connection sync daemon of this state (master/backup) runs.",
        None,
        MetricType::Gauge,
    )?;
    for st in [rvs_api::DaemonState::Master, rvs_api::DaemonState::Backup] {
        let on = daemons.iter().any(|(s, _)| *s == st);
        ConstGauge::new(i64::from(on)).encode(m.encode_family(&[("state", st.name())])?)?;
    }
    type Get = fn(&crate::sync::SyncStats) -> u64;
    let master: [(&str, &str, Get); 3] = [
        (
            "sync_sent_messages",
            "Sync messages the master sent.",
            |s| s.sent_messages,
        ),
        (
            "sync_sent_connections",
            "Connection entries the master sent.",
            |s| s.sent_conns,
        ),
        (
            "sync_send_errors",
            "Sync messages the master failed to send.",
            |s| s.send_errors,
        ),
    ];
    let backup: [(&str, &str, Get); 4] = [
        (
            "sync_received_messages",
            "Sync messages the backup accepted (its syncid, parsed).",
            |s| s.received.messages,
        ),
        (
            "sync_bad_messages",
            "Sync datagrams the backup dropped because they did not parse.",
            |s| s.received.bad_messages,
        ),
        (
            "sync_foreign_syncid_messages",
            "Sync datagrams for another syncid.",
            |s| s.received.foreign_syncid,
        ),
        (
            "sync_v0_messages",
            "Version-0 sync messages the backup accepted.",
            |s| s.received.v0_messages,
        ),
    ];
    for (state, fams) in [
        (rvs_api::DaemonState::Master, &master[..]),
        (rvs_api::DaemonState::Backup, &backup[..]),
    ] {
        let Some((_, st)) = daemons.iter().find(|(s, _)| *s == state) else {
            continue;
        };
        for (name, help, get) in fams {
            counter(&mut enc, name, help, get(st))?;
        }
    }
    if let Some((_, st)) = daemons
        .iter()
        .find(|(s, _)| *s == rvs_api::DaemonState::Backup)
    {
        let r = &st.received;
        let mut m = enc.encode_descriptor(
            "sync_received_connections",
            "Connection entries the backup received, by what became of them.",
            None,
            MetricType::Counter,
        )?;
        for (result, v) in [
            ("created", r.created),
            ("updated", r.updated),
            ("replaced", r.replaced),
            ("no_service", r.no_service),
            ("no_destination", r.no_destination),
            ("stale", r.stale),
            ("unsupported", r.unsupported),
            ("bad_state", r.bad_state),
            ("table_full", r.table_full),
        ] {
            ConstCounter::new(v).encode(m.encode_family(&[("result", result)])?)?;
        }
    }
    Ok(())
}

/// The VRRP instances (`--vrrp`, keepalived.conf `vrrp_instance`) in the metrics and the live view, read at scrape
/// time from the instances' status (a mutex the VRRP threads hold for a field update; the data plane never takes it).
#[derive(Debug)]
pub struct VrrpMetrics(pub Arc<crate::daemon::Daemon>);

impl VrrpView for VrrpMetrics {
    fn instances(&self) -> Vec<rvs_api::VrrpStatus> {
        self.0.vrrp.get().map(|v| v.status()).unwrap_or_default()
    }
}

impl Collector for VrrpMetrics {
    fn encode(&self, enc: Enc<'_>) -> std::fmt::Result {
        let inst = self.instances();
        if inst.is_empty() {
            return Ok(());
        }
        encode_vrrp(enc, &inst)
    }
}

/// keepalived's VRRP states, in the order `rvs_vrrp_state` lists them.
const VRRP_STATES: [&str; 4] = ["INIT", "BACKUP", "MASTER", "FAULT"];

/// `rvs_vrrp_state` (one sample per state, 1 for the current one, as node_exporter does for systemd units),
/// `rvs_vrrp_priority` and `rvs_vrrp_transitions_total`, by instance, vrid and interface.
fn encode_vrrp(mut enc: Enc<'_>, inst: &[rvs_api::VrrpStatus]) -> std::fmt::Result {
    let labels = |v: &rvs_api::VrrpStatus| {
        [
            ("instance", v.name.clone()),
            ("vrid", v.vrid.to_string()),
            ("interface", v.interface.clone()),
        ]
    };
    let mut m = enc.encode_descriptor(
        "vrrp_state",
        "1 for the VRRP instance's current state (INIT, BACKUP, MASTER, FAULT), 0 for the others.",
        None,
        MetricType::Gauge,
    )?;
    for v in inst {
        for st in VRRP_STATES {
            let [a, b, c] = labels(v);
            let l = [a, b, c, ("state", st.to_owned())];
            ConstGauge::new(i64::from(v.state == st)).encode(m.encode_family(&l)?)?;
        }
    }
    let mut m = enc.encode_descriptor(
        "vrrp_priority",
        "The VRRP instance's current priority (0-255).",
        None,
        MetricType::Gauge,
    )?;
    for v in inst {
        ConstGauge::new(i64::from(v.priority)).encode(m.encode_family(&labels(v))?)?;
    }
    let mut m = enc.encode_descriptor(
        "vrrp_transitions",
        "State changes of the VRRP instance since rvsd started.",
        None,
        MetricType::Counter,
    )?;
    for v in inst {
        ConstCounter::new(v.transitions).encode(m.encode_family(&labels(v))?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
