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
    /// Instead of the churn model: Maglev's resilience experiment (NSDI 2016, section 5.3): the share of flows
    /// that change backend when 1-20 % of the backends fail at once, mh-port with IPVS's 4093-entry table, for
    /// 1000 backends (the paper's count), 62 and 6 (the paper's two table-size/backend ratios, 65 and 655).
    #[arg(long)]
    maglev: bool,
    /// With --maglev, also the published algorithm (the paper's Pseudocode 1, crate::maglev_ref) at the paper's
    /// sizes (N = 1000, M = 65537 and 655373) and at rvs's M = 4093, each point averaged over this many random
    /// failure sets (the paper: 200).
    #[arg(long)]
    paper_reps: Option<usize>,
}

/// rvs-core's mh table size (`sched/mh.rs` TAB_SIZE, private there: the prime at IPVS's default
/// CONFIG_IP_VS_MH_TAB_INDEX); only printed here, the experiment runs the scheduler itself.
const MH_TABLE: usize = 4093;

fn maglev(flows: usize, seed: u64) {
    println!(
        "Maglev resilience (Eisenbud et al., NSDI 2016, sec. 5.3), rvs-core mh-port, table M = {}, {flows} flows",
        MH_TABLE
    );
    println!(
        "{:>8} {:>6} {:>8} {:>8} {:>10} {:>12} {:>14}",
        "backends", "M/N", "failed", "failed%", "changed%", "minimum%", "survivors'%"
    );
    for &n in &[1000usize, 62, 6] {
        let r0 = rvs_scale::maglev_resilience(
            rvs_scale::SchedChoice::with_port("mh"),
            n,
            0,
            flows,
            seed,
        );
        println!(
            "{n:>8} {:>6.1}  imbalance (max/mean) before failures: {:.3}",
            MH_TABLE as f64 / n as f64,
            r0.imbalance
        );
        let mut seen = std::collections::BTreeSet::new();
        for pct in FAILED_PCT {
            let k = ((n as f64 * pct / 100.0).round() as usize).max(1);
            if !seen.insert(k) || k >= n {
                continue;
            }
            let r = rvs_scale::maglev_resilience(
                rvs_scale::SchedChoice::with_port("mh"),
                n,
                k,
                flows,
                seed,
            );
            println!(
                "{:>8} {:>6} {:>8} {:>7.1}% {:>9.2}% {:>11.2}% {:>13.2}%",
                "",
                "",
                k,
                100.0 * k as f64 / n as f64,
                r.changed * 100.0,
                r.minimum * 100.0,
                r.survivors_moved * 100.0
            );
        }
    }
}

/// The failure shares the tables print (per cent of the backends).
const FAILED_PCT: [f64; 5] = [1.0, 2.0, 5.0, 10.0, 20.0];

/// The published algorithm (crate::maglev_ref) run as section 5.3 describes, at the paper's sizes and at rvs's.
fn paper_maglev(reps: usize, seed: u64) {
    println!();
    println!(
        "The published Maglev hashing (Pseudocode 1), the paper's experiment: k random backends removed, table \
         regenerated, share of entries changed, mean of {reps} failure sets"
    );
    println!(
        "{:>8} {:>7} {:>6} {:>8} {:>10} {:>12} {:>14}",
        "backends", "M", "M/N", "failed%", "changed%", "minimum%", "beyond min.%"
    );
    for (n, m) in [
        (1000usize, 65537usize),
        (1000, 655373),
        (1000, MH_TABLE),
        (62, MH_TABLE),
        (6, MH_TABLE),
    ] {
        let r0 = rvs_scale::maglev_ref::resilience(n, 0, m, 1, seed);
        println!(
            "{n:>8} {m:>7} {:>6.1}  imbalance (max/mean) before failures: {:.3}",
            m as f64 / n as f64,
            r0.imbalance
        );
        let mut seen = std::collections::BTreeSet::new();
        for pct in FAILED_PCT {
            let k = ((n as f64 * pct / 100.0).round() as usize).max(1);
            if !seen.insert(k) || k >= n {
                continue;
            }
            let r = rvs_scale::maglev_ref::resilience(n, k, m, reps, seed);
            println!(
                "{:>8} {:>7} {:>6} {:>7.1}% {:>9.2}% {:>11.2}% {:>13.2}%",
                "",
                "",
                "",
                100.0 * k as f64 / n as f64,
                r.changed * 100.0,
                r.minimum * 100.0,
                (r.changed - r.minimum) * 100.0
            );
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.maglev {
        maglev(cli.flows, cli.seed);
        if let Some(reps) = cli.paper_reps {
            paper_maglev(reps, cli.seed);
        }
        return Ok(());
    }
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
