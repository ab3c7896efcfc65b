//! `rvs-scale`: prints the scale-out model's report (see the crate documentation and SCALING.md).

use anyhow::{Result, bail};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "rvs-scale",
    about = "N directors behind ECMP x M real servers x flows under churn, with rvs-core's schedulers"
)]
struct Cli {
    /// Directors behind the router.
    #[arg(short = 'd', long, default_value_t = 4)]
    directors: usize,
    /// Real servers in the service.
    #[arg(short = 'r', long, default_value_t = 20)]
    real_servers: usize,
    /// Concurrent flows.
    #[arg(short = 'f', long, default_value_t = 1_000_000)]
    flows: usize,
    /// Schedulers to compare (default: all, mh and sh also with their port flag); e.g. -s mh -s mh-port -s rr.
    #[arg(short = 's', long = "sched")]
    scheds: Vec<String>,
    /// Seed of the flows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.directors == 0 || cli.real_servers == 0 || cli.flows == 0 {
        bail!("directors, real servers and flows must be at least 1");
    }
    if cli.real_servers >= usize::from(u16::MAX) - 1 {
        bail!("at most {} real servers", u16::MAX - 2);
    }
    let all = rvs_scale::all_schedulers();
    let scheds = if cli.scheds.is_empty() {
        all
    } else {
        let mut v = Vec::new();
        for s in &cli.scheds {
            match all.iter().find(|c| c.label() == *s) {
                Some(c) => v.push(*c),
                None => bail!(
                    "unknown scheduler {s:?}; known: {}",
                    all.iter().map(|c| c.label()).collect::<Vec<_>>().join(" ")
                ),
            }
        }
        v
    };
    let site = rvs_scale::Site {
        directors: cli.directors,
        real_servers: cli.real_servers,
        flows: cli.flows,
        seed: cli.seed,
    };
    let events = rvs_scale::standard_events(&site);
    let runs: Vec<_> = scheds
        .iter()
        .map(|c| rvs_scale::run(&site, *c, &events))
        .collect();
    print!("{}", rvs_scale::report(&site, &runs));
    Ok(())
}
