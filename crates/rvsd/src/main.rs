//! rvsd: the rvs director daemon (NAT, direct routing, tunnelling) on a TUN data plane, with an optional XDP fast
//! path for established connections (fastpath.rs).
//!
//! Start-up: check root and the control socket, create the TUN (one queue per worker), clean what a crashed run
//! left, install the base steering, load the rules, take over the connection table a previous rvsd handed over
//! (handover.rs), start the workers, open the control socket. SIGTERM/SIGINT (`systemctl stop`/`restart`): hold the
//! real servers' replies for at most `--restart-hold` seconds (kernel-enforced), stop the workers, remove all
//! steering, the TUN, the fast path and the socket file at once, hand the table to a start within the hold, exit 0.
//! SIGUSR2 (a planned restart): the same with a hold that waits for the next rvsd (and the fast path left pinned);
//! exit 75 ([`EXIT_HANDED_OVER`]), which the systemd unit restarts at once (`RestartForceExitStatus=75`).
//! SIGHUP: reload the rules file (or the --keepalived file).

mod args;
mod control;
mod daemon;
mod dataplane;
mod fastpath;
mod handover;
mod keepalived;
mod limits;
mod mapping;
mod marks;
mod metrics;
mod nexthop;
mod ops;
mod ratelimit;
mod rulesfile;
mod sync;
mod syngate;
mod systemd;
mod vrrp;
mod xmit;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use rvs_core::{Director, DirectorConfig};
use rvs_io::{Steering, SteeringConfig, TunDevice};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};

use crate::args::{Args, FastPathMode, IoMode, LogFormat, SynGateMode, TxMode};
use crate::daemon::Daemon;
use crate::dataplane::{Workers, now};

/// rvsd's exit status after a planned restart (SIGUSR2) handed its connection table over: EX_TEMPFAIL of
/// sysexits.h ("try again later"). The systemd unit lists it in `RestartForceExitStatus=` (start the next rvsd now,
/// whatever `Restart=` says) and `SuccessExitStatus=` (not a failure). A held hand-over must be followed by a start:
/// until then the real servers' replies are dropped.
pub const EXIT_HANDED_OVER: u8 = 75;

/// How rvsd ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// SIGTERM/SIGINT: everything removed; the table handed to a start within `--restart-hold`, behind a hold the
    /// kernel ends by itself.
    Stopped,
    /// SIGUSR2: the replies are held and the table is in the state file for the next rvsd.
    HandedOver,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    match run(args) {
        Ok(Ending::Stopped) => ExitCode::SUCCESS,
        Ok(Ending::HandedOver) => ExitCode::from(EXIT_HANDED_OVER),
        Err(e) => {
            // One clear line: the chain of causes, joined.
            let msg: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("rvsd: {}", msg.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// Removes the socket file when dropped (only once we bound it).
struct SocketFile(PathBuf);
impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes all steering when dropped, unless disarmed (start-up failures leave nothing half-installed).
struct SteeringGuard<'a>(Option<&'a Daemon>);
impl Drop for SteeringGuard<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.0
            && let Err(e) = d.teardown()
        {
            tracing::error!(error = %e, "removing steering failed");
        }
    }
}

/// Logs on stderr: colours only on a terminal; no timestamps under journald (it stamps every line itself);
/// `--log-format json` for log shippers (one JSON object a line).
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Json => b.json().flatten_event(true).init(),
        LogFormat::Text if std::env::var_os("JOURNAL_STREAM").is_some() => {
            b.with_ansi(false).without_time().init()
        }
        LogFormat::Text => b.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn run(args: Args) -> anyhow::Result<Ending> {
    if args.config_test
        && let Some(path) = &args.keepalived
    {
        keepalived::config_test(path, &args.keepalived_options())?;
        return Ok(Ending::Stopped);
    }
    let notifier = systemd::Notifier::from_env();
    if args.syn_gate == Some(SynGateMode::Always) && args.fast_path == FastPathMode::Off {
        bail!(
            "--syn-gate always needs the XDP fast path (--fast-path xdp or auto): the gate is part of its program"
        );
    }
    if rvs_io::sys::euid() != 0 {
        bail!("must run as root (it creates a TUN device and changes routes)");
    }
    // Handlers first: a SIGTERM during start-up is then handled (cleanly) once start-up is done.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR2])
        .context("signal handlers")?;
    let socket = args.socket_path(std::env::var_os("RVS_SOCKET"));
    control::check_free(&socket)?;
    let workers = args.worker_count();

    let offload = if args.offload() {
        rvs_io::Offload::VnetHdr
    } else {
        rvs_io::Offload::Off
    };
    let (tun, queues) = TunDevice::create_with(&args.tun, workers, offload)?;
    let mut cfg = SteeringConfig::new(tun.name());
    cfg.public_if = args.public_if.clone();
    cfg.private_if = args.private_if.clone();
    let mut steering = Steering::new(cfg)?;
    if let Some(owner) = steering.live_owner()? {
        bail!(
            "another rvsd is running in this network namespace (its steering goes through {owner}); stop it first"
        );
    }
    let stale = steering
        .remove_stale()
        .context("removing steering left by an earlier run")?;
    if stale > 0 {
        tracing::info!(removed = stale, "removed steering left by an earlier run");
    }
    if let Err(e) = steering.install_base() {
        let _ = steering.remove_all();
        return Err(e).context("installing the reply steering");
    }
    let mut vrrp_specs =
        vrrp::parse_specs(&args.vrrp, &args.vrrp_script).map_err(|e| anyhow::anyhow!(e))?;
    // keepalived.conf's vrrp_instance and lvs_sync_daemon blocks (the same typed model the health side reads).
    // The file is read once: its VRRP side here, its LVS side and checks below (keepalived::start).
    let mut keepalived_sync = None;
    let mut keepalived_conf = None;
    if let Some(path) = &args.keepalived {
        let conf = keepalived::load(path, &args.keepalived_options())
            .with_context(|| format!("reading {}", path.display()))?;
        let (specs, sync) = vrrp::from_keepalived(&conf).map_err(|e| anyhow::anyhow!(e))?;
        vrrp_specs.extend(specs);
        keepalived_sync = sync;
        keepalived_conf = Some(conf);
    }
    if !vrrp_specs.is_empty() {
        // With VRRP, VIPs are answered for only once an instance is master of them.
        steering
            .set_owned(Some(std::collections::BTreeSet::new()))
            .context("VRRP: starting as backup")?;
    }

    let director = Arc::new(Director::new(DirectorConfig {
        hash_seed: dataplane::random_seed(0x7276_7364),
        sloppy_tcp: args.sloppy_tcp,
        sloppy_sctp: args.sloppy_sctp,
        ..DirectorConfig::default()
    }));
    // Next hops serve route destinations always, and masq packets with --tx link.
    let resolver_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (link_hops, misses) = nexthop::NextHops::new();
    nexthop::spawn_resolver(link_hops.clone(), misses, resolver_stop.clone())
        .context("starting the next-hop resolver")?;
    let paths = Arc::new(xmit::MethodPaths::new(link_hops.clone()));
    let defense = args.defense.config(args::mem_total());
    director.set_defense(defense);
    tracing::info!(
        max_conns = defense.max_conns,
        amemthresh = defense.amemthresh,
        drop_entry = defense.drop_entry.sysctl(),
        drop_packet = defense.drop_packet.sysctl(),
        secure_tcp = defense.secure_tcp.sysctl(),
        "connection limit and defences"
    );
    let daemon = Arc::new(Daemon::new(
        director.clone(),
        steering,
        args.rules.clone(),
        !args.no_save,
        paths.clone(),
    ));
    let mut guard = SteeringGuard(Some(&daemon));

    if let (Some(path), None) = (&args.rules, &args.keepalived) {
        load_rules(&daemon, path)
            .with_context(|| format!("loading rules from {}", path.display()))?;
    }
    if let (Some(path), Some(conf)) = (&args.keepalived, keepalived_conf) {
        keepalived::start(&daemon, path, conf, keepalived::health_options(&args))?;
    }
    // The previous rvsd's connections (a planned restart or upgrade), before any packet is read. A state file that
    // cannot be read or a marker that cannot be written costs the hand-over, never the start.
    let state = handover::StateFile::new(args.state_file.clone(), &socket);
    // The fast path's pinned maps and links are taken over exactly when the table is.
    let takeover = match state.start(&director) {
        Ok(start) => {
            state.log_start(&start);
            match start {
                handover::Start::HandedOver { .. } => fastpath::Takeover::Adopt,
                _ => fastpath::Takeover::Fresh,
            }
        }
        Err(e) => {
            tracing::warn!(
                state = %state.path().display(),
                error = %e,
                "cannot take over a handed-over connection table: starting with an empty one"
            );
            fastpath::Takeover::Fresh
        }
    };
    // The previous rvsd's hold (a stop's, handover.rs) ends now that this rvsd steers the replies: what it held is
    // retransmitted into this one. Also an expired hold's empty table goes here.
    match handover::release_hold() {
        Ok(Some(held)) => tracing::info!(
            table = handover::HOLD_TABLE,
            held,
            "removed the previous rvsd's hold on the real servers' replies"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(
            table = handover::HOLD_TABLE,
            error = %e,
            "cannot remove the previous rvsd's hold (it ends by itself within its --restart-hold)"
        ),
    }

    let vrrp = if vrrp_specs.is_empty() {
        None
    } else {
        let v = vrrp::start(&daemon, vrrp_specs, args.public_if.clone())?;
        let _ = daemon.vrrp.set(v.clone());
        Some(v)
    };
    if let Some(cfg) = keepalived_sync {
        // keepalived switches one daemon between master and backup with the instance; rvsd runs both at once (IPVS
        // allows it), so a director that was backup keeps what it learnt and failback loses nothing.
        for state in [rvs_api::DaemonState::Master, rvs_api::DaemonState::Backup] {
            let c = rvs_api::DaemonConfig {
                state,
                ..cfg.clone()
            };
            daemon
                .sync
                .start(&daemon.director, c)
                .map_err(|e| anyhow::anyhow!("lvs_sync_daemon: {e}"))?;
        }
    }

    let io = match args.io {
        IoMode::Uring if !rvs_io::uring::available() => {
            tracing::warn!(
                "io_uring is not available here (kernel.io_uring_disabled?): using --io sync"
            );
            IoMode::Sync
        }
        m => m,
    };
    let fast = start_fast_path(
        &args,
        &daemon,
        Some(paths.clone()),
        takeover,
        &resolver_stop,
    )?;
    let hops = match args.tx_mode() {
        TxMode::Tun => None,
        TxMode::Link => Some(link_hops),
    };
    let workers = match io {
        IoMode::Uring => {
            let queues = queues
                .into_iter()
                .map(|q| q.into_uring())
                .collect::<std::io::Result<Vec<_>>>()
                .context("setting up the io_uring queues")?;
            Workers::start(
                director.clone(),
                daemon.vips.clone(),
                queues,
                hops,
                Some(paths.clone()),
            )
        }
        IoMode::Sync => Workers::start(
            director.clone(),
            daemon.vips.clone(),
            queues,
            hops,
            Some(paths.clone()),
        ),
    }
    .context("starting data-plane workers")?;
    let _timers = start_timers(director.clone(), fast.clone(), notifier.clone())
        .context("starting the timer thread")?;
    let _metrics = match args.metrics {
        Some(addr) => {
            let mut m = metrics::Metrics::new(director.clone(), workers.stats());
            if let Some(f) = &fast {
                let c = metrics::FastPathCollector(f.clone());
                m.registry().register_collector(Box::new(c));
            }
            if let Some(g) = daemon.syn_gate.get() {
                let c = syngate::SynGateCollector(g.clone());
                m.registry().register_collector(Box::new(c));
            }
            let health = Arc::new(metrics::KeepalivedHealth(daemon.clone()));
            m.set_health(health.clone());
            m.registry().register_collector(Box::new(health));
            let vrrp = Arc::new(metrics::VrrpMetrics(daemon.clone()));
            m.set_vrrp(vrrp.clone());
            m.registry().register_collector(Box::new(vrrp));
            let sync = metrics::SyncCollector(daemon.clone());
            m.registry().register_collector(Box::new(sync));
            let (registry, sources) = m.finish();
            let l = metrics::Listener::start(addr, registry, sources)?;
            tracing::info!(addr = %l.addr(), "serving /metrics and the live view");
            Some(l)
        }
        None => None,
    };

    let listener = control::bind(&socket)?;
    let _socket_file = SocketFile(socket.clone());
    {
        let d = daemon.clone();
        std::thread::Builder::new()
            .name("rvsd-accept".into())
            .spawn(move || control::serve(listener, d))
            .context("starting the control thread")?;
    }
    tracing::info!(
        tun = tun.name(),
        workers = args.worker_count(),
        offload = args.offload(),
        io = ?io,
        tx = ?args.tx_mode(),
        socket = %socket.display(),
        services = director.services().len(),
        "rvsd ready"
    );
    let workers_n = args.worker_count();
    let status = |d: &Director| {
        format!(
            "{} virtual services, {workers_n} workers",
            d.services().len()
        )
    };
    notifier.ready(&status(&director));

    let mut ending = Ending::Stopped;
    for sig in signals.forever() {
        match sig {
            SIGHUP => {
                notifier.reloading();
                if let Some(path) = &args.keepalived {
                    match keepalived::reload(&daemon, path, &args.keepalived_options()) {
                        Ok(()) => {
                            tracing::info!(path = %path.display(), "keepalived configuration reloaded")
                        }
                        Err(e) => {
                            tracing::error!(path = %path.display(), error = format!("{e:#}"), "reload failed; configuration unchanged")
                        }
                    }
                } else {
                    match &args.rules {
                        Some(path) => match reload_rules(&daemon) {
                            Ok(()) => tracing::info!(path = %path.display(), "rules reloaded"),
                            Err(e) => {
                                tracing::error!(path = %path.display(), error = format!("{e:#}"), "reload failed; configuration unchanged")
                            }
                        },
                        None => tracing::info!("SIGHUP without --rules: nothing to reload"),
                    }
                }
                notifier.ready(&status(&director));
            }
            SIGUSR2 => {
                ending = Ending::HandedOver;
                break;
            }
            _ => break,
        }
    }
    notifier.notify("STOPPING=1\nSTATUS=stopping");
    tracing::info!("stopping");
    // A stop hands its table over behind a hold the kernel ends by itself; in place before the steering goes.
    let stop_hold = match ending {
        Ending::Stopped => hold_for_next_start(args.restart_hold, &director),
        Ending::HandedOver => None,
    };
    // The fast path first: on a stop its packets go back to the slow path while the steering is still there; on a
    // planned restart it stays attached (pinned) and keeps forwarding established connections for the next rvsd.
    if let Some(f) = &fast {
        match ending {
            Ending::HandedOver => f.persist(&director),
            Ending::Stopped => f.detach(),
        }
    }
    if let Some(v) = &vrrp {
        // The instances resign (priority 0) before the steering goes.
        v.stop();
    }
    daemon.sync.stop_all();
    // Steering first (no new traffic is sent into the TUN), then the workers (their queues close, the TUN goes).
    guard.0 = None;
    if let Some(h) = daemon.health.get() {
        h.shutdown();
    }
    // A planned stop with established connections holds the real servers' packets until the next rvsd (else they
    // would be forwarded unchanged, and the clients would reset the connections being handed over).
    let established: u32 = director
        .services()
        .iter()
        .flat_map(|s| s.dests.iter().map(|d| d.active_conns))
        .sum();
    let hold = ending == Ending::HandedOver && established > 0;
    let removed = if hold {
        tracing::info!(
            established,
            "holding the real servers' packets for the next rvsd (planned restart, SIGUSR2): start it now"
        );
        daemon.teardown_holding()
    } else {
        daemon.teardown()
    };
    let totals = workers.totals();
    workers.stop();
    // SIGUSR2: the table goes to the next rvsd, held until it starts; SIGTERM/SIGINT: to a start within the hold,
    // or (nothing to hand over, --restart-hold 0, no hold possible) nowhere.
    match (ending, stop_hold) {
        (Ending::HandedOver, _) => match state.hand_over(&director, None) {
            Ok((conns, templates)) => tracing::info!(
                conns,
                templates,
                state = %state.path().display(),
                "connection table handed over to the next rvsd (planned restart, SIGUSR2)"
            ),
            Err(e) => {
                tracing::error!(state = %state.path().display(), error = %e, "handing over the connection table failed")
            }
        },
        (Ending::Stopped, Some(bound)) => match state.hand_over(&director, Some(bound)) {
            Ok((conns, templates)) => tracing::info!(
                conns,
                templates,
                hold_secs = bound.as_secs(),
                state = %state.path().display(),
                "stopped: steering removed; connection table handed over to an rvsd started within the hold \
                 (systemctl restart, an upgrade), after which it expires"
            ),
            Err(e) => {
                tracing::error!(state = %state.path().display(), error = %e, "handing over the connection table failed");
                if let Err(e) = handover::release_hold() {
                    tracing::warn!(error = %e, "removing the hold failed (it ends by itself)");
                }
            }
        },
        (Ending::Stopped, None) => {
            state.stopped();
            tracing::info!("stopped: steering removed, no connection table handed over");
        }
    }
    resolver_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(tun);
    let removed = removed.context("removing steering")?;
    tracing::info!(
        removed,
        received = totals.received,
        forwarded_in = totals.forwarded_in,
        forwarded_out = totals.forwarded_out,
        passed = totals.passed,
        dropped = totals.dropped,
        unserved_vip = totals.unserved_vip,
        link_sent = totals.link_sent,
        write_errors = totals.write_errors,
        "stopped"
    );
    let drops = director.drop_counters();
    if drops.total() > 0 {
        let by_reason: Vec<String> = drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{}={n}", r.name()))
            .collect();
        tracing::info!(drops = %by_reason.join(" "), "director drops by reason");
    }
    Ok(ending)
}

/// A stop (SIGTERM/SIGINT) with connections in the table and `--restart-hold` above 0 hands the table over to the
/// next start: the hold on the masquerading real servers' replies (handover.rs) goes in place first, for at most
/// the bound. Returns the bound, or None when nothing is handed over (and then nothing is held).
fn hold_for_next_start(secs: u64, director: &Director) -> Option<Duration> {
    // Persistence templates outlive their connections: a table of templates alone is handed over too.
    if secs == 0 || director.conn_count() + director.template_count() == 0 {
        return None;
    }
    let bound = Duration::from_secs(secs);
    let mut rips: Vec<std::net::IpAddr> = director
        .services()
        .iter()
        .flat_map(|s| s.dests.iter())
        .filter(|d| d.spec.method == rvs_core::ForwardMethod::Masq)
        .map(|d| d.spec.addr)
        .collect();
    rips.sort_unstable();
    rips.dedup();
    // Route and tunnel replies bypass the director, and templates alone carry no packets: nothing to hold.
    if rips.is_empty() || director.conn_count() == 0 {
        return Some(bound);
    }
    match handover::hold(&rips, bound) {
        Ok(()) => {
            tracing::info!(
                real_servers = rips.len(),
                hold_secs = secs,
                table = handover::HOLD_TABLE,
                "holding the real servers' replies for the next rvsd (the kernel ends the hold by itself)"
            );
            Some(bound)
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cannot hold the real servers' replies: stopping without handing the connection table over"
            );
            None
        }
    }
}

/// Expiry, the defences every second (IPVS's defense_work) and rate estimation. With the fast path, expiry runs once a second right after the fast path's counters
/// and last-seen times were credited to the core (a connection busy on the fast path is never expired). Also
/// systemd's watchdog: a `WATCHDOG=1` each half period while this loop keeps turning (a wedged expiry loop gets
/// rvsd restarted).
fn start_timers(
    director: Arc<Director>,
    fast: Option<Arc<fastpath::FastPathCtl>>,
    notifier: systemd::Notifier,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rvsd-timers".into())
        .spawn(move || {
            let mut last_est = now();
            let mut ticks = 0u32;
            let watchdog = notifier.watchdog_interval();
            let mut last_ping = std::time::Instant::now();
            let mut last_defense = now();
            let mut seed = dataplane::random_seed(0x6465_6665);
            loop {
                std::thread::sleep(Duration::from_millis(100));
                ticks = ticks.wrapping_add(1);
                match &fast {
                    Some(f) if ticks.is_multiple_of(10) => {
                        f.sync(&director);
                        director.expire(now());
                    }
                    Some(_) => {}
                    None => {
                        director.expire(now());
                    }
                }
                let t = now();
                if t.0.saturating_sub(last_defense.0) >= 1000 {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let dropped = director.update_defense(t, seed);
                    if dropped > 0 {
                        tracing::debug!(dropped, "drop_entry removed connections");
                    }
                    last_defense = t;
                }
                if t.0.saturating_sub(last_est.0) >= 2000 {
                    director.estimate_rates(t);
                    last_est = t;
                }
                if let Some(every) = watchdog
                    && last_ping.elapsed() >= every
                {
                    notifier.notify("WATCHDOG=1");
                    last_ping = std::time::Instant::now();
                }
            }
        })
}

/// Start the XDP fast path as `--fast-path` asks: None when off, or (auto) when XDP cannot be used here.
fn start_fast_path(
    args: &Args,
    daemon: &Daemon,
    paths: Option<Arc<xmit::MethodPaths>>,
    takeover: fastpath::Takeover,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Option<Arc<fastpath::FastPathCtl>>> {
    if args.fast_path == FastPathMode::Off {
        // A previous run's pins (a planned restart into a run without the fast path) would forward on their own.
        if let Some(dir) = &args.fast_path_pin_dir {
            rvs_xdp::FastPath::clear_pins(dir)
                .with_context(|| format!("removing the fast path's pins in {}", dir.display()))?;
        }
        return Ok(None);
    }
    let demanded = args.fast_path == FastPathMode::Xdp;
    let started = match (args.public_if.as_deref(), args.private_if.as_deref(), paths) {
        (Some(p), Some(q), Some(h)) => fastpath::FastPathCtl::start(
            &[p, q],
            h,
            args.fast_path_entries,
            args.syn_gate_buckets,
            args.fast_path_pin_dir.as_deref(),
            takeover,
        )
        .map_err(anyhow::Error::from),
        _ => Err(anyhow::anyhow!("it needs --public-if and --private-if")),
    };
    let ctl = match started {
        Ok(c) => Arc::new(c),
        Err(e) if demanded => {
            return Err(e.context("--fast-path xdp: the XDP fast path cannot run here"));
        }
        Err(e) if args.syn_gate == Some(SynGateMode::Always) => {
            return Err(e.context(
                "--syn-gate always: the XDP fast path, which holds the SYNs, cannot run here",
            ));
        }
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "XDP fast path unavailable: running on the TUN alone"
            );
            return Ok(None);
        }
    };
    let (sink, events) = fastpath::channel();
    fastpath::spawn(ctl.clone(), daemon.director.clone(), events, stop.clone())
        .context("starting the fast-path thread")?;
    daemon.director.set_fast_path(sink);
    // What a previous rvsd handed over (its pinned map), checked against the core's table, before any packet.
    ctl.adopt(&daemon.director);
    let _ = daemon.fast.set(ctl.clone());
    // The sync master's walks read last-seen times credited just before, not up to a second old.
    let credit = ctl.clone();
    daemon
        .sync
        .set_credit(Arc::new(move |d: &rvs_core::Director| credit.credit(d)));
    tracing::info!(
        public = args.public_if.as_deref().unwrap_or(""),
        private = args.private_if.as_deref().unwrap_or(""),
        entries = args.fast_path_entries,
        "XDP fast path attached (native)"
    );
    start_syn_gate(args, daemon, ctl.clone(), stop)?;
    Ok(Some(ctl))
}

/// The SYN gate on the fast path's program (`--syn-gate`, default auto).
fn start_syn_gate(
    args: &Args,
    daemon: &Daemon,
    fast: Arc<fastpath::FastPathCtl>,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let mode = args.syn_gate.unwrap_or(SynGateMode::Auto);
    let gate = fast
        .take_gate()
        .context("the SYN gate's maps were already taken")?;
    let buckets = gate.buckets();
    let ctl = Arc::new(
        syngate::SynGateCtl::new(mode, gate, fast, &daemon.director, &args.tun)
            .context("starting the SYN gate")?,
    );
    if mode != SynGateMode::Off {
        syngate::spawn(ctl.clone(), daemon.director.clone(), stop.clone())
            .context("starting the SYN gate's thread")?;
    }
    let _ = daemon.syn_gate.set(ctl);
    tracing::info!(mode = mode.name(), buckets, "SYN gate");
    Ok(())
}

/// A rules file's operations, with each one's line number and the file's text (errors quote the line).
struct RulesOps {
    text: String,
    ops: Vec<rvs_core::ConfigOp>,
    lines: Vec<usize>,
}

fn read_rules(daemon: &Daemon) -> anyhow::Result<Option<RulesOps>> {
    let Some(file) = &daemon.rules_file else {
        return Ok(None);
    };
    let Some(text) = file.read()? else {
        return Ok(None);
    };
    let (ops, lines) = ops::rules_to_ops(&text)?;
    Ok(Some(RulesOps { text, ops, lines }))
}

/// Replace the configuration with a rules file's; errors found in the file name its line, quote it and say what
/// is wrong.
fn apply_rules(daemon: &Daemon, rules: RulesOps) -> anyhow::Result<()> {
    let RulesOps { text, ops, lines } = rules;
    match daemon.replace(ops) {
        Ok(()) => Ok(()),
        Err(daemon::ApplyError::Rules(i, e)) => {
            let line = lines.get(i).copied().unwrap_or(0);
            let quoted = text
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or("")
                .trim();
            bail!("line {line}: \"{quoted}\": {e}")
        }
        Err(e) => Err(e.into()),
    }
}

fn load_rules(daemon: &Daemon, path: &Path) -> anyhow::Result<()> {
    let Some(rules) = read_rules(daemon)? else {
        tracing::info!(path = %path.display(), "no rules file yet: starting with no services");
        return Ok(());
    };
    let n = rules.ops.len();
    if let Some(f) = &daemon.rules_file {
        f.loaded();
    }
    apply_rules(daemon, rules)?;
    tracing::info!(path = %path.display(), ops = n, "rules loaded");
    Ok(())
}

fn reload_rules(daemon: &Daemon) -> anyhow::Result<()> {
    let Some(rules) = read_rules(daemon)? else {
        // The file is gone: an empty configuration, as before.
        let r = daemon.replace(Vec::new());
        if let Some(f) = &daemon.rules_file {
            f.loaded();
        }
        return r.map_err(Into::into);
    };
    // Remembered before applying: the save that follows a successful replace must not move the file aside.
    if let Some(f) = &daemon.rules_file {
        f.loaded();
    }
    let r = apply_rules(daemon, rules);
    if r.is_err()
        && let Some(f) = &daemon.rules_file
    {
        // Refused: rvsd does not run the file's text; the next save moves the operator's edit aside.
        f.refused();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::{ConfigOp, DestSpec, Persistence, Protocol, ServiceKey, ServiceSpec, Timestamp};

    #[test]
    fn a_stop_hands_persistence_templates_over_even_when_their_connections_are_gone() {
        let d = Director::default();
        let k = ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: "198.51.100.1".parse().expect("ip"),
            port: 53,
        };
        let mut spec = ServiceSpec::new(k, "rr");
        spec.persistence = Some(Persistence {
            timeout_s: 3600,
            netmask: "255.255.255.255".parse().expect("mask"),
        });
        d.apply_batch(vec![
            ConfigOp::AddService(spec),
            ConfigOp::AddDest(
                k,
                DestSpec::masq("203.0.113.1".parse().expect("ip"), 53, rvs_core::Weight(1)),
            ),
        ])
        .expect("config");
        // Nothing in the table: nothing handed over, nothing held.
        assert_eq!(hold_for_next_start(10, &d), None);
        let mut p = vec![
            0x45, 0, 0, 29, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 7, 198, 51, 100, 1, 0x30,
            0x39, 0, 53, 0, 9, 0, 0, b'q',
        ];
        assert!(matches!(
            d.process(Timestamp(1000), 0, &mut p),
            rvs_core::Verdict::Forward(_)
        ));
        // The UDP connection expires (300 s), its template (3600 s) stays: still handed over, without a hold.
        d.expire(Timestamp(1000 + 400_000));
        assert_eq!((d.conn_count(), d.template_count()), (0, 1));
        assert_eq!(hold_for_next_start(10, &d), Some(Duration::from_secs(10)));
        assert_eq!(hold_for_next_start(0, &d), None, "--restart-hold 0");
    }
}
