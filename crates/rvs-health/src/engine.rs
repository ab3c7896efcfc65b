//! The event loop: one thread with a current-thread tokio runtime runs every due check as a task (bounded by
//! [`MAX_IN_FLIGHT`] at once), feeds results to the [`Monitor`], runs notify scripts, and hands the live
//! configuration to the caller's `apply` whenever it changed (coalesced: once per burst of results).
//!
//! The thread runs under `SCHED_IDLE` by default ([`Options::priority`], rvsd's `--health-priority`;
//! [`set_thread_priority`]): checks use only CPU that nothing else wants, so they never take a core from rvsd's
//! workers. Measured in the lab (crates/rvs-health/README.md): the checker thread
//! took 10-49 % of a core for 10,000 real servers every 5 s, mostly kernel TCP work done in its own context
//! (connect, SYN through veths, FIN), all of which now yields to the packet path. The price: on a machine whose
//! cores are saturated, checks run late (detection slows down); an answer that has arrived still counts, because
//! tokio's timeout polls the check before its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvs_api::{DestSpec, ServiceSpec};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::check::{Probe, TcpClose};
use crate::state::{CheckId, Event, Monitor, Outcome, RsId};

/// Most checks running at once (sockets and child processes are bounded by this, not by the number of real
/// servers).
pub const MAX_IN_FLIGHT: usize = 2048;

/// The configuration the checks imply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub services: Vec<(ServiceSpec, Vec<DestSpec>)>,
}

/// Applies a [`Desired`] configuration (rvsd: one atomic, diffed batch). An error is logged and retried on
/// the next change.
pub type ApplyFn = Box<dyn FnMut(&Desired) -> Result<(), String> + Send>;

pub use rvs_api::{CheckerHealth, RealServerHealth, ServiceHealth};

enum Cmd {
    Reload(
        Box<rvs_keepalived::Config>,
        oneshot::Sender<Result<(), String>>,
    ),
    Status(oneshot::Sender<Vec<ServiceHealth>>),
    Stop,
}

/// A check that starts this much after it was due counts as late ([`Health::checks_late`]).
pub const LATE: Duration = Duration::from_secs(1);

/// Counters of the checks run, shared with the [`Health`] handle (read by rvsd's metrics).
#[derive(Debug, Default)]
struct Counters {
    /// Checks completed.
    done: AtomicU64,
    /// Checks that started [`LATE`] or more after they were due.
    late: AtomicU64,
    /// Sum over the checks started of how long after their due time they started, in microseconds.
    start_delay_us: AtomicU64,
}

/// Handle on the running checks.
#[derive(Debug)]
pub struct Health {
    tx: mpsc::UnboundedSender<Cmd>,
    counters: Arc<Counters>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Clock {
    start: Instant,
    start_unix: SystemTime,
}

impl Clock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn unix_ms(&self, t: Duration) -> u64 {
        (self.start_unix + t)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

fn seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    t ^ u64::from(std::process::id()).rotate_left(32)
}

fn outcome_text(o: &Option<Outcome>) -> (String, String) {
    match o {
        None => ("none".into(), String::new()),
        Some(Outcome::Success { weight: Some(w) }) => ("success".into(), format!("weight {w}")),
        Some(Outcome::Success { weight: None }) => ("success".into(), String::new()),
        Some(Outcome::Failure(r)) => ("failure".into(), r.clone()),
    }
}

/// The status of every virtual server and real server.
pub fn status(m: &Monitor, unix_ms: impl Fn(Duration) -> u64) -> Vec<ServiceHealth> {
    let keys = m.config.services().unwrap_or_default();
    m.config
        .virtual_servers
        .iter()
        .enumerate()
        .map(|(v, vs)| ServiceHealth {
            keys: keys
                .iter()
                .filter(|(_, i)| *i == v)
                .map(|(k, _)| *k)
                .collect(),
            quorum_up: m.vs[v].quorum_up,
            live_weight: m.live_weight(v),
            sorry_server_active: m.vs[v].sorry_active,
            real_servers: vs
                .real_servers
                .iter()
                .enumerate()
                .map(|(r, rs)| {
                    let st = &m.rs[v][r];
                    let id = RsId { vs: v, rs: r };
                    let last = st
                        .checkers
                        .iter()
                        .filter(|c| c.last.is_some())
                        .max_by_key(|c| c.next_at)
                        .and_then(|c| c.last.clone());
                    RealServerHealth {
                        addr: rs.addr,
                        port: rs.port,
                        state: match (st.alive, m.vs[v].sorry_active) {
                            (true, false) => "up",
                            (true, true) => "sorry",
                            (false, _) => "down",
                        }
                        .into(),
                        weight: m.pool_weight(id),
                        last_result: outcome_text(&last).0,
                        reason: st.reason.clone(),
                        changed_unix_ms: unix_ms(st.changed_at),
                        checkers: rs
                            .checkers
                            .iter()
                            .zip(&st.checkers)
                            .map(|(def, c)| {
                                let (last_result, reason) = outcome_text(&c.last);
                                CheckerHealth {
                                    kind: def.kind.name().into(),
                                    target: std::net::SocketAddr::new(
                                        def.connect_ip,
                                        def.connect_port,
                                    )
                                    .to_string(),
                                    up: c.up,
                                    last_result,
                                    reason,
                                    changed_unix_ms: unix_ms(c.changed_at),
                                    retries: c.retry_it,
                                }
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect()
}

/// The checker thread's CPU priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// `SCHED_IDLE`: run only when a core has nothing else to run (the default: the data plane first).
    #[default]
    Idle,
    /// The normal time-sharing policy (`SCHED_OTHER`, nice 0): checks compete with the workers as equals.
    Normal,
}

/// How the checks run (rvsd: `--health-priority`, `--health-tcp-close`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// The checker thread's CPU priority (default [`Priority::Idle`]).
    pub priority: Priority,
    /// How TCP_CHECK closes (default [`TcpClose::Reset`], keepalived's original abortive close).
    pub tcp_close: TcpClose,
}

/// Put the calling thread (and the tokio runtime's helper threads and scripts it starts later, which inherit
/// the policy) under `policy`. Linux applies `sched_setscheduler(0, ..)` to the calling thread only.
pub fn set_thread_priority(priority: Priority) -> std::io::Result<()> {
    let policy = match priority {
        Priority::Idle => libc::SCHED_IDLE,
        Priority::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialised sched_param that outlives the call; pid 0 is the calling thread;
    // the call has no other memory effects.
    let r = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Health {
    /// Start checking `config`. `apply` has already been given the configuration before the first check (the
    /// caller applies `Monitor::desired()` of the monitor it wants, or lets the engine do it with
    /// `apply_first`).
    pub fn start(config: rvs_keepalived::Config, apply: ApplyFn) -> Result<Self, String> {
        Self::start_with(config, apply, Options::default())
    }

    /// [`Health::start`] with [`Options`].
    pub fn start_with(
        config: rvs_keepalived::Config,
        mut apply: ApplyFn,
        options: Options,
    ) -> Result<Self, String> {
        let clock = Clock {
            start: Instant::now(),
            start_unix: SystemTime::now(),
        };
        let monitor = Monitor::new(config, clock.now(), seed());
        let first = Desired {
            services: monitor.desired().map_err(|e| e.to_string())?,
        };
        apply(&first)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let counter = counters.clone();
        let thread = std::thread::Builder::new()
            .name("rvsd-health".into())
            .spawn(move || {
                // Set either way: a thread inherits its creator's policy, which need not be the one asked for.
                if let Err(e) = set_thread_priority(options.priority) {
                    tracing::warn!(error = %e, priority = ?options.priority, "health checks: cannot set the checker thread's priority; checking at the inherited one");
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "health checks: cannot start the event loop");
                        return;
                    }
                };
                rt.block_on(run(monitor, clock, apply, rx, first, counter, options.tcp_close));
            })
            .map_err(|e| format!("starting the health-check thread: {e}"))?;
        Ok(Self {
            tx,
            counters,
            thread: Some(thread),
        })
    }

    /// Replace the configuration (SIGHUP): real servers checked the same way keep their state; applied through
    /// `apply`; on error the previous configuration stays.
    pub fn reload(&self, config: rvs_keepalived::Config) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Reload(Box::new(config), tx))
            .map_err(|_| "health checks stopped".to_string())?;
        rx.blocking_recv()
            .map_err(|_| "health checks stopped".to_string())?
    }

    /// The health of every real server now.
    pub fn status(&self) -> Vec<ServiceHealth> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Status(tx)).is_err() {
            return Vec::new();
        }
        rx.blocking_recv().unwrap_or_default()
    }

    /// Checks completed since the start.
    pub fn checks_done(&self) -> u64 {
        self.counters.done.load(Ordering::Relaxed)
    }

    /// Checks that started [`LATE`] or more after they were due (the checker falls behind: a busy machine, or
    /// more checks due than [`MAX_IN_FLIGHT`] can run).
    pub fn checks_late(&self) -> u64 {
        self.counters.late.load(Ordering::Relaxed)
    }

    /// How long after their due time the checks started so far, summed (divide a difference by the difference
    /// of [`Health::checks_done`] for the mean).
    pub fn start_delay_total(&self) -> Duration {
        Duration::from_micros(self.counters.start_delay_us.load(Ordering::Relaxed))
    }

    /// Ask the checks to stop (running scripts are killed); returns at once.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Stop);
    }

    /// Stop all checks (running scripts are killed) and wait for the thread.
    pub fn stop(mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
    }
}

fn rs_name(m: &Monitor, id: RsId) -> String {
    let vs = &m.config.virtual_servers[id.vs];
    let rs = &vs.real_servers[id.rs];
    format!(
        "{} of {}",
        std::net::SocketAddr::new(rs.addr, rs.port),
        vs_name(m, id.vs)
    )
}

fn vs_name(m: &Monitor, v: usize) -> String {
    let vs = &m.config.virtual_servers[v];
    match &vs.address {
        rvs_keepalived::VsAddress::Addr { addr, port } => {
            format!(
                "{:?} {}",
                vs.protocol,
                std::net::SocketAddr::new(*addr, *port)
            )
        }
        rvs_keepalived::VsAddress::Fwmark(f) => format!("FWM {f}"),
        rvs_keepalived::VsAddress::Group(g) => format!("group {g}"),
    }
}

/// Run a notify script in the background (reaped, killed after 60 s).
fn notify(script: &rvs_keepalived::Script, what: &str) {
    let cmd = script.command.clone();
    let what = what.to_owned();
    tokio::spawn(async move {
        let child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match child {
            Ok(mut c) => {
                if tokio::time::timeout(Duration::from_secs(60), c.wait())
                    .await
                    .is_err()
                {
                    tracing::warn!(script = %cmd, event = %what, "notify script still running after 60 s: killed");
                    let _ = c.start_kill();
                }
            }
            Err(e) => {
                tracing::warn!(script = %cmd, event = %what, error = %e, "cannot run the notify script")
            }
        }
    });
}

fn handle_events(m: &Monitor, events: &[Event]) -> bool {
    let mut changed = false;
    for e in events {
        match e {
            Event::Checker { id, up, reason } => {
                let c = m.checker(*id);
                tracing::info!(
                    real_server = %rs_name(m, id.rs),
                    checker = c.kind.name(),
                    up,
                    reason = %reason,
                    "checker state changed"
                );
            }
            Event::RealServer { id, alive, reason } => {
                changed = true;
                let rs = &m.config.virtual_servers[id.vs].real_servers[id.rs];
                let action = match (alive, rs.inhibit_on_failure) {
                    (true, false) => "added",
                    (true, true) => "enabled (weight restored)",
                    (false, false) => "removed",
                    (false, true) => "disabled (weight 0)",
                };
                if *alive {
                    tracing::info!(real_server = %rs_name(m, *id), action, reason = %reason, "real server up");
                } else {
                    tracing::warn!(real_server = %rs_name(m, *id), action, reason = %reason, "real server down");
                }
                let script = if *alive {
                    &rs.notify_up
                } else {
                    &rs.notify_down
                };
                if let Some(s) = script {
                    notify(s, if *alive { "notify_up" } else { "notify_down" });
                }
            }
            Event::Quorum {
                vs,
                up,
                weight,
                threshold,
            } => {
                changed = true;
                let def = &m.config.virtual_servers[*vs];
                tracing::warn!(
                    virtual_server = %vs_name(m, *vs),
                    quorum = up,
                    live_weight = weight,
                    threshold,
                    sorry_server = def.sorry_server.is_some(),
                    "{}",
                    if *up { "quorum gained" } else { "quorum lost" }
                );
                let script = if *up {
                    &def.quorum_up
                } else {
                    &def.quorum_down
                };
                if let Some(s) = script {
                    notify(s, if *up { "quorum_up" } else { "quorum_down" });
                }
            }
            Event::Weight { id, weight } => {
                changed = true;
                tracing::info!(real_server = %rs_name(m, *id), weight, "weight set by misc_dynamic");
            }
        }
    }
    changed
}

/// The prepared [`Probe`] of every checker of a configuration, indexed like [`Monitor::rs`]: a check takes a
/// reference count, not a copy of its definition.
struct Probes(Vec<Vec<Vec<Arc<Probe>>>>);

impl Probes {
    fn new(m: &Monitor, close: TcpClose) -> Self {
        Self(
            m.config
                .virtual_servers
                .iter()
                .map(|vs| {
                    vs.real_servers
                        .iter()
                        .map(|rs| {
                            rs.checkers
                                .iter()
                                .map(|c| Arc::new(Probe::with_close(c.clone(), close)))
                                .collect()
                        })
                        .collect()
                })
                .collect(),
        )
    }

    fn get(&self, id: CheckId) -> Arc<Probe> {
        self.0[id.rs.vs][id.rs.rs][id.checker].clone()
    }
}

async fn run(
    mut monitor: Monitor,
    clock: Clock,
    mut apply: ApplyFn,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    first: Desired,
    counters: Arc<Counters>,
    tcp_close: TcpClose,
) {
    let tls = crate::check::tls_config();
    let mut probes = Probes::new(&monitor, tcp_close);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let (res_tx, mut res_rx) = mpsc::unbounded_channel::<(u64, CheckId, Duration, Outcome)>();
    // Results of checks started before a reload belong to the old configuration: tagged with a generation.
    // Checks still waiting for a permit when a reload comes are not run at all (`current`): on a loaded machine
    // thousands can be queued, and running them after the reload only costs CPU.
    let mut generation = 0u64;
    let current = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut applied = first;
    let mut pending_apply = false;
    loop {
        let now = clock.now();
        for id in monitor.due(now) {
            let probe = probes.get(id);
            let due = clock.start + monitor.rs[id.rs.vs][id.rs.rs].checkers[id.checker].due_at;
            let (tls, permits, tx) = (tls.clone(), permits.clone(), res_tx.clone());
            let (g, current, counters) = (generation, current.clone(), counters.clone());
            tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                if current.load(Ordering::Relaxed) != g {
                    return;
                }
                let start = Instant::now();
                let waited = start.saturating_duration_since(due);
                counters
                    .start_delay_us
                    .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
                if waited >= LATE {
                    counters.late.fetch_add(1, Ordering::Relaxed);
                }
                let outcome = crate::check::run_probe(&probe, &tls).await;
                let _ = tx.send((g, id, start.elapsed(), outcome));
            });
        }
        let sleep_for = monitor
            .next_due()
            .map(|t| t.saturating_sub(clock.now()))
            .unwrap_or(Duration::from_secs(3600))
            .min(if pending_apply {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(3600)
            });
        tokio::select! {
            r = res_rx.recv() => {
                let Some(first_result) = r else { return };
                let mut changed = false;
                let mut next = Some(first_result);
                // Drain every result already there: one apply per burst.
                while let Some((g, id, took, outcome)) = next {
                    counters.done.fetch_add(1, Ordering::Relaxed);
                    if g == generation {
                        let events = monitor.report_timed(id, clock.now(), took, outcome);
                        changed |= handle_events(&monitor, &events);
                    }
                    next = res_rx.try_recv().ok();
                }
                pending_apply |= changed;
            }
            cmd = rx.recv() => match cmd {
                None | Some(Cmd::Stop) => return,
                Some(Cmd::Status(reply)) => {
                    let _ = reply.send(status(&monitor, |t| clock.unix_ms(t)));
                }
                Some(Cmd::Reload(config, reply)) => {
                    let next = Monitor::with_previous(*config, clock.now(), seed(), Some(&monitor));
                    let result = match next.desired() {
                        Err(e) => Err(e.to_string()),
                        Ok(services) => {
                            let d = Desired { services };
                            apply(&d).map(|()| d)
                        }
                    };
                    match result {
                        Ok(d) => {
                            applied = d;
                            monitor = next;
                            probes = Probes::new(&monitor, tcp_close);
                            generation += 1;
                            current.store(generation, std::sync::atomic::Ordering::Relaxed);
                            // Checks running for the old configuration are dropped: re-run what the new one
                            // kept running.
                            monitor.restart_running(clock.now());
                            let _ = reply.send(Ok(()));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            },
            _ = tokio::time::sleep(sleep_for) => {}
        }
        if pending_apply {
            match monitor.desired() {
                Ok(services) => {
                    let d = Desired { services };
                    if d == applied {
                        pending_apply = false;
                    } else {
                        match apply(&d) {
                            Ok(()) => {
                                applied = d;
                                pending_apply = false;
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "applying the health-check result failed; retrying")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "health checks: configuration error");
                    pending_apply = false;
                }
            }
        }
    }
}
