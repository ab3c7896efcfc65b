//! `rvsd --keepalived FILE`: the LVS side of keepalived.conf applied through the same atomic, diffed batch as the
//! rules file, changed by the health checks (rvs-health) as keepalived changes IPVS; SIGHUP re-reads the file;
//! `--config-test` validates a file and exits (like `keepalived -t`).

use std::path::Path;
use std::sync::{Arc, Weak};

use anyhow::bail;
use rvs_api::Command;
use rvs_core::ConfigOp;
use rvs_health::engine::{Desired, Health};
use rvs_keepalived::{Config, LexOptions, Loaded};

use crate::daemon::{self, Daemon};
use crate::ops;

/// Read the file; every warning is logged once with its file:line.
pub fn load(path: &Path, opts: &LexOptions) -> anyhow::Result<Config> {
    let loaded = rvs_keepalived::load(path, opts)?;
    for w in warnings(&loaded) {
        tracing::warn!("{w}");
    }
    Ok(loaded.config)
}

/// The loader's warnings, plus one per VRRP setting rvsd reads but does not apply (vrrp_instance, vrrp_sync_group,
/// vrrp_script and lvs_sync_daemon are run by rvsd's VRRP engine and sync daemons, see vrrp.rs).
pub fn warnings(l: &Loaded) -> Vec<String> {
    let mut v: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    let vrrp = &l.config.vrrp;
    for i in vrrp.instances.iter().filter(|i| i.dont_track_primary) {
        v.push(format!(
            "{}: vrrp_instance {}: dont_track_primary is not supported by rvsd: its interface going down still puts it in FAULT",
            i.loc, i.name
        ));
    }
    for s in vrrp.scripts.iter().filter(|s| s.user.is_some()) {
        v.push(format!(
            "{}: vrrp_script {}: user is not applied: rvsd runs the script as its own user",
            s.loc, s.name
        ));
    }
    v
}

/// Director operations for a desired configuration (plus `lvs_timeouts` when given).
fn ops_of(desired: &Desired, timeouts: Option<&Command>) -> Result<Vec<ConfigOp>, String> {
    let mut cmds = Vec::new();
    for (svc, dests) in &desired.services {
        cmds.push(Command::AddService(svc.clone()));
        for d in dests {
            cmds.push(Command::AddDest {
                service: svc.key,
                dest: *d,
            });
        }
    }
    cmds.extend(timeouts.cloned());
    let mut ops = Vec::new();
    let mut origin = Vec::new();
    ops::commands_to_ops(&cmds, &mut ops, &mut origin, None).map_err(|e| e.message)?;
    Ok(ops)
}

fn timeouts(cfg: &Config) -> Option<Command> {
    cfg.global
        .lvs_timeouts
        .as_ref()
        .map(rvs_keepalived::convert::timeouts_command)
}

/// `rvsd --config-test`: parse, convert, check every operation as rvsd would apply it, report, exit.
pub fn config_test(path: &Path, opts: &LexOptions) -> anyhow::Result<()> {
    let loaded = rvs_keepalived::load(path, opts)?;
    let ws = warnings(&loaded);
    for w in &ws {
        eprintln!("warning: {w}");
    }
    let cfg = &loaded.config;
    let Command::Batch(cmds) = cfg.static_batch()? else {
        bail!("internal: the configuration is not a batch");
    };
    let mut ops = Vec::new();
    let mut origin = Vec::new();
    ops::commands_to_ops(&cmds, &mut ops, &mut origin, None)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let (set, _) = daemon::desired_config(&ops).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The VRRP side as rvsd would run it (vrrp_instance, lvs_sync_daemon).
    crate::vrrp::from_keepalived(cfg).map_err(|e| anyhow::anyhow!(e))?;
    let checkers: usize = cfg
        .virtual_servers
        .iter()
        .flat_map(|v| &v.real_servers)
        .map(|r| r.checkers.len())
        .sum();
    let rs: usize = set.iter().map(|(_, d)| d.len()).sum();
    println!(
        "{}: configuration OK: {} virtual services, {} real servers, {} checkers, {} warnings",
        path.display(),
        set.len(),
        rs,
        checkers,
        ws.len()
    );
    Ok(())
}

/// The health checker's options from rvsd's command line (--health-priority, --health-tcp-close).
pub fn health_options(args: &crate::args::Args) -> rvs_health::engine::Options {
    use crate::args::{HealthPriority, HealthTcpClose};
    rvs_health::engine::Options {
        priority: match args.health_priority {
            HealthPriority::Idle => rvs_health::engine::Priority::Idle,
            HealthPriority::Normal => rvs_health::engine::Priority::Normal,
        },
        tcp_close: match args.health_tcp_close {
            HealthTcpClose::Reset => rvs_health::check::TcpClose::Reset,
            HealthTcpClose::Graceful => rvs_health::check::TcpClose::Graceful,
        },
    }
}

/// Apply the file's configuration and start its checks.
/// Applies `cfg` (read once at start by [`load`], with its VRRP side) and starts its health checks.
pub fn start(
    daemon: &Arc<Daemon>,
    path: &Path,
    cfg: Config,
    options: rvs_health::engine::Options,
) -> anyhow::Result<()> {
    let mut first_timeouts = timeouts(&cfg);
    let weak: Weak<Daemon> = Arc::downgrade(daemon);
    let apply = Box::new(move |d: &Desired| -> Result<(), String> {
        let Some(daemon) = weak.upgrade() else {
            return Err("rvsd is stopping".into());
        };
        let ops = ops_of(d, first_timeouts.take().as_ref())?;
        daemon.replace(ops).map_err(|e| e.to_string())
    });
    let (vs, rs) = (
        cfg.virtual_servers.len(),
        cfg.virtual_servers
            .iter()
            .map(|v| v.real_servers.len())
            .sum::<usize>(),
    );
    let health = Health::start_with(cfg, apply, options)
        .map_err(|e| anyhow::anyhow!("applying {}: {e}", path.display()))?;
    if daemon.health.set(health).is_err() {
        bail!("health checks already running");
    }
    tracing::info!(path = %path.display(), virtual_servers = vs, real_servers = rs, "keepalived configuration applied; checks running");
    Ok(())
}

/// SIGHUP: re-read the file and apply the difference (real servers that stay keep their connections and their
/// check state). On any error the running configuration stays.
pub fn reload(daemon: &Daemon, path: &Path, opts: &LexOptions) -> anyhow::Result<()> {
    let cfg = load(path, opts)?;
    let Some(h) = daemon.health.get() else {
        bail!("health checks are not running");
    };
    // lvs_timeouts first (a no-op when unchanged), then the checked configuration.
    if let Some(t) = timeouts(&cfg) {
        let mut ops = Vec::new();
        let mut origin = Vec::new();
        ops::commands_to_ops(std::slice::from_ref(&t), &mut ops, &mut origin, None)
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        daemon.apply(ops)?;
    }
    h.reload(cfg).map_err(|e| anyhow::anyhow!("{e}"))
}
