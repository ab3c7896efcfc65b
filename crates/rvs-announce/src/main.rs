//! `rvs-announce`: keeps a routing daemon's VIP announcements in step with rvsd's health (see the crate docs).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use rvs_announce::bird::{Bird, Change};
use rvs_announce::{Announcement, list_services, serving};

#[derive(Parser, Debug)]
#[command(
    name = "rvs-announce",
    version,
    about = "Announce a VIP through BIRD only while rvsd serves it (enable/disable a BIRD protocol per VIP)"
)]
struct Cli {
    /// rvsd's control socket.
    #[arg(long, default_value = "/run/rvsd.sock")]
    rvsd_socket: PathBuf,
    /// BIRD's control socket (`bird -s`).
    #[arg(long, default_value = "/run/bird/bird.ctl")]
    bird_socket: PathBuf,
    /// VIP=PROTOCOL: the BIRD protocol (e.g. a `protocol static` holding the VIP's route) that announces VIP.
    #[arg(long = "announce", required = true)]
    announce: Vec<Announcement>,
    /// How often rvsd is asked, in milliseconds.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
    /// How long rvsd and BIRD may take to answer, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let interval = Duration::from_millis(cli.interval_ms.max(50));
    let timeout = Duration::from_millis(cli.timeout_ms.max(50));
    // What BIRD was last told per protocol; None = unknown (tell it again).
    let mut told: BTreeMap<String, Option<bool>> = cli
        .announce
        .iter()
        .map(|a| (a.protocol.clone(), None))
        .collect();
    let mut bird: Option<Bird> = None;
    let mut last_resync = Instant::now();
    tracing::info!(
        rvsd = %cli.rvsd_socket.display(),
        bird = %cli.bird_socket.display(),
        vips = ?cli.announce,
        "watching"
    );
    let mut last_rvsd_error = String::new();
    while !stop.load(Ordering::Relaxed) {
        let services = match list_services(&cli.rvsd_socket, timeout) {
            Ok(s) => {
                last_rvsd_error.clear();
                Some(s)
            }
            Err(e) => {
                let text = e.to_string();
                if text != last_rvsd_error {
                    tracing::warn!("rvsd is not serving: {text}");
                    last_rvsd_error = text;
                }
                None
            }
        };
        // Tell BIRD everything again now and then (it may have restarted and re-read its configuration).
        if last_resync.elapsed() > Duration::from_secs(10) {
            told.values_mut().for_each(|v| *v = None);
            last_resync = Instant::now();
        }
        for a in &cli.announce {
            let want = services.as_deref().is_some_and(|s| serving(s, a.vip));
            if told.get(&a.protocol) == Some(&Some(want)) {
                continue;
            }
            if bird.is_none() {
                match Bird::connect(&cli.bird_socket, timeout) {
                    Ok(b) => bird = Some(b),
                    Err(e) => {
                        tracing::warn!("{e}");
                        break;
                    }
                }
            }
            let Some(b) = bird.as_mut() else { break };
            match b.set_enabled(&a.protocol, want) {
                Ok(change) => {
                    if change == Change::Changed {
                        tracing::info!(
                            vip = %a.vip,
                            protocol = %a.protocol,
                            "{}",
                            if want { "announced" } else { "withdrawn" }
                        );
                    }
                    told.insert(a.protocol.clone(), Some(want));
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    bird = None;
                    told.insert(a.protocol.clone(), None);
                }
            }
        }
        let until = Instant::now() + interval;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Stopping: withdraw everything (a director being shut down must not keep attracting traffic).
    let mut withdrawn = 0;
    if let Ok(mut b) = Bird::connect(&cli.bird_socket, timeout) {
        for a in &cli.announce {
            match b.set_enabled(&a.protocol, false) {
                Ok(_) => withdrawn += 1,
                Err(e) => tracing::warn!("withdrawing {}: {e}", a.vip),
            }
        }
    }
    tracing::info!("stopped; {withdrawn} of {} withdrawn", cli.announce.len());
    Ok(())
}
