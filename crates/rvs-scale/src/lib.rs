//! rvs-scale: a model of LVS scale-out, N directors behind a router's ECMP x M real servers x many flows, under
//! director and real-server churn, driven by rvs-core's own schedulers (no re-implementation of any of them).
//!
//! What is modelled, per event and scheduler:
//! - the router: Linux multipath with the hash-threshold method (`fib_select_multipath`: a flow's 31-bit hash falls
//!   into one next hop's range; the ranges are split evenly among the live next hops, so a next hop joining or
//!   leaving shifts every range boundary and moves flows between *surviving* directors too);
//! - each director: its own scheduler instance over the same real-server list (configured alike), its own
//!   connection table (flow -> real server), emptied when the director dies; connection counts fed back into the
//!   destinations so lc/wlc/sed/nq/... see their own director's load, as in IPVS;
//! - a flow arriving at a director that has no entry for it is scheduled there (`sloppy_tcp`: a mid-stream packet
//!   creates the connection) or dropped (the default); a director with an entry keeps using it (IPVS's table is
//!   authoritative, even when that entry is stale from before an earlier move);
//! - an established flow *breaks* when the real server that receives its packets changes. Flows whose real server
//!   was removed are counted apart (`lost_with_rs`): no scheduler can save them.
//!
//! Reported: the share of flows that changed director, broke (with and without sloppy_tcp), were lost with their
//! real server; the load imbalance (most loaded real server / mean); for the hashing schedulers the share of
//! flows whose fresh mapping changed (disruption, against the minimum the event forces). See SCALING.md.

pub mod maglev_ref;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rvs_core::Destination;
use rvs_core::sched::{SchedFlags, SchedInput, Scheduler, new_scheduler};
use rvs_core::time::Timestamp;

/// A scheduler as the model runs it: an ipvsadm name and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedChoice {
    pub name: &'static str,
    pub flags: SchedFlags,
}

impl SchedChoice {
    /// `name` without flags.
    pub const fn plain(name: &'static str) -> Self {
        SchedChoice {
            name,
            flags: SchedFlags {
                fallback: false,
                port: false,
                flag3: false,
            },
        }
    }
    /// `name` with the port flag (mh-port / sh-port): the client port joins the hash.
    pub const fn with_port(name: &'static str) -> Self {
        SchedChoice {
            name,
            flags: SchedFlags {
                fallback: false,
                port: true,
                flag3: false,
            },
        }
    }
    /// The label in reports: `mh`, `mh-port`, ...
    pub fn label(&self) -> String {
        if self.flags.port {
            format!("{}-port", self.name)
        } else {
            self.name.to_string()
        }
    }
    /// True for the schedulers that are a pure function of the flow and the real-server list (same answer on
    /// every director): mh, sh, dh.
    pub fn is_hashing(&self) -> bool {
        matches!(self.name, "mh" | "sh" | "dh")
    }
}

/// Every stock scheduler, mh and sh also with their port flag.
pub fn all_schedulers() -> Vec<SchedChoice> {
    let mut v = vec![SchedChoice::plain("mh"), SchedChoice::with_port("mh")];
    v.push(SchedChoice::plain("sh"));
    v.push(SchedChoice::with_port("sh"));
    for name in rvs_core::sched::SCHEDULER_NAMES {
        if *name != "mh" && *name != "sh" {
            v.push(SchedChoice::plain(name));
        }
    }
    v
}

/// One change to the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Director `k` (0-based) dies: its route is withdrawn, its connection table is lost.
    DirectorDown(usize),
    /// Director `k` comes (back) with an empty connection table; a new index adds a director.
    DirectorUp(usize),
    /// Real server `r` (0-based id) is removed from the service on every director (a failed health check).
    RealServerDown(usize),
    /// Real server `r` is added (back) at the end of the list on every director.
    RealServerUp(usize),
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::DirectorDown(k) => write!(f, "director {} down", k + 1),
            Event::DirectorUp(k) => write!(f, "director {} up", k + 1),
            Event::RealServerDown(r) => write!(f, "real server {} down", r + 1),
            Event::RealServerUp(r) => write!(f, "real server {} up", r + 1),
        }
    }
}

/// The site at the start.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub directors: usize,
    pub real_servers: usize,
    pub flows: usize,
    /// Seed of the flows' client addresses and ports.
    pub seed: u64,
}

/// What one event did, for one scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct EventReport {
    pub event: Event,
    /// Share of flows now handled by another director.
    pub moved_director: f64,
    /// Share of established flows that broke (their real server changed), with sloppy_tcp on.
    pub broken_sloppy: f64,
    /// The same without sloppy_tcp: every flow that reaches a director without an entry is dropped.
    pub broken_strict: f64,
    /// Share of flows whose real server was removed.
    pub lost_with_rs: f64,
    /// Share of flows without a real server after the event (no director, or the scheduler found none).
    pub unserved: f64,
    /// Most loaded real server / mean, over the flows after the event.
    pub imbalance: f64,
    /// Hashing schedulers: share of flows whose fresh mapping (what a director without an entry would pick)
    /// changed, excluding the flows of a removed real server; `None` for the stateful schedulers.
    pub remapped: Option<f64>,
}

/// A whole run of one scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub sched: SchedChoice,
    /// Share of (sampled) flows for which every live director, in the state its own traffic left it in, would
    /// pick the real server the flow has (what a flow moved by ECMP meets).
    pub agreement: f64,
    /// Imbalance at the start.
    pub imbalance: f64,
    pub events: Vec<EventReport>,
}

/// splitmix64: the model's only source of randomness (seeded, reproducible).
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One client flow to the VIP.
#[derive(Debug, Clone, Copy)]
struct Flow {
    caddr: Ipv4Addr,
    cport: u16,
    /// The router's 5-tuple hash (31 bits, as Linux uses for multipath).
    ecmp_hash: u32,
}

const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
const NONE: u16 = u16::MAX;

fn flows(site: &Site) -> Vec<Flow> {
    let mut s = site.seed;
    (0..site.flows)
        .map(|_| {
            let r = splitmix(&mut s);
            // Clients spread over 198.18.0.0/15 with ephemeral ports.
            let caddr = Ipv4Addr::from(0xC612_0000u32 | (r as u32 & 0x1_FFFF));
            let cport = 1024 + ((r >> 32) as u16 % 64512);
            let mut h = r ^ 0x5bd1_e995;
            Flow {
                caddr,
                cport,
                ecmp_hash: (splitmix(&mut h) >> 33) as u32,
            }
        })
        .collect()
}

/// Linux's hash-threshold multipath: live next hops (in route order) split the 31-bit hash space evenly; the
/// flow goes to the first whose upper bound is >= its hash.
fn ecmp(hash: u32, live: &[usize]) -> Option<usize> {
    let n = live.len() as u64;
    if n == 0 {
        return None;
    }
    let space = 1u64 << 31;
    for (i, &d) in live.iter().enumerate() {
        let upper = ((i as u64 + 1) * space).div_ceil(n) - 1;
        if u64::from(hash) <= upper {
            return Some(d);
        }
    }
    live.last().copied()
}

fn rs_addr(r: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xCB00_7100u32 + 11 + r as u32))
}

/// One director: its scheduler, its view of the real servers, its connection table.
#[derive(Debug)]
struct DirectorState {
    sched: Box<dyn Scheduler>,
    /// The service's destinations in configuration order, with their real-server ids.
    dests: Vec<Arc<Destination>>,
    ids: Vec<usize>,
    /// flow index -> real-server id, NONE when the director has no entry.
    table: Vec<u16>,
    /// Active connections per real-server id (fed back into the destinations).
    active: Vec<u32>,
    alive: bool,
}

impl DirectorState {
    fn new(choice: SchedChoice, rs_ids: &[usize], n_rs_total: usize, flows: usize) -> Self {
        let sched = new_scheduler(choice.name, choice.flags)
            .unwrap_or_else(|_| new_scheduler("rr", SchedFlags::default()).expect("rr exists"));
        let mut d = DirectorState {
            sched,
            dests: Vec::new(),
            ids: Vec::new(),
            table: vec![NONE; flows],
            active: vec![0; n_rs_total],
            alive: true,
        };
        for &r in rs_ids {
            d.add_rs(r);
        }
        d
    }

    fn add_rs(&mut self, r: usize) {
        let dest = Arc::new(Destination::new(rs_addr(r), 80, 1));
        dest.set_conn_counts(self.active.get(r).copied().unwrap_or(0), 0);
        self.dests.push(dest);
        self.ids.push(r);
        self.sched.update(&self.dests);
    }

    fn remove_rs(&mut self, r: usize) {
        if let Some(i) = self.ids.iter().position(|&x| x == r) {
            self.dests.remove(i);
            self.ids.remove(i);
            self.sched.update(&self.dests);
        }
    }

    fn input(f: &Flow, now: u64, random: u64) -> SchedInput {
        SchedInput {
            now: Timestamp(now),
            protocol: 6,
            caddr: IpAddr::V4(f.caddr),
            cport: f.cport,
            vaddr: IpAddr::V4(VIP),
            vport: 80,
            random,
        }
    }

    /// Schedules `f` as a new connection here: the real-server id, with the connection counted.
    fn schedule(&mut self, f: &Flow, now: u64, random: u64) -> Option<usize> {
        let i = self
            .sched
            .schedule(&self.dests, &Self::input(f, now, random))?;
        let r = *self.ids.get(i)?;
        self.count(r, 1);
        Some(r)
    }

    fn count(&mut self, r: usize, delta: i32) {
        if let Some(a) = self.active.get_mut(r) {
            *a = a.saturating_add_signed(delta);
            if let Some(i) = self.ids.iter().position(|&x| x == r) {
                self.dests[i].set_conn_counts(*a, 0);
            }
        }
    }

    fn reset(&mut self) {
        self.table.iter_mut().for_each(|e| *e = NONE);
        self.active.iter_mut().for_each(|a| *a = 0);
        for d in &self.dests {
            d.set_conn_counts(0, 0);
        }
    }
}

fn imbalance(truth: &[u16], n_rs: usize) -> f64 {
    let mut per = vec![0u64; n_rs];
    let mut total = 0u64;
    for &r in truth {
        if let Some(c) = per.get_mut(usize::from(r)) {
            *c += 1;
            total += 1;
        }
    }
    let live: Vec<u64> = per.into_iter().filter(|&c| c > 0).collect();
    if live.is_empty() || total == 0 {
        return 0.0;
    }
    let mean = total as f64 / live.len() as f64;
    live.iter().copied().max().unwrap_or(0) as f64 / mean
}

/// Fresh mapping of every flow on a throw-away director with `rs_ids` (hashing schedulers only).
fn fresh_map(choice: SchedChoice, rs_ids: &[usize], n_rs: usize, fl: &[Flow]) -> Vec<u16> {
    let mut d = DirectorState::new(choice, rs_ids, n_rs, 0);
    fl.iter()
        .map(|f| {
            d.sched
                .schedule(&d.dests, &DirectorState::input(f, 0, 0))
                .and_then(|i| d.ids.get(i).copied())
                .map_or(NONE, |r| r as u16)
        })
        .collect()
}

/// Runs `events` in order over `site` with scheduler `choice`.
pub fn run(site: &Site, choice: SchedChoice, events: &[Event]) -> Run {
    let fl = flows(site);
    // Real-server ids: the site's plus any that events add.
    let n_rs = events
        .iter()
        .filter_map(|e| match e {
            Event::RealServerUp(r) => Some(r + 1),
            _ => None,
        })
        .chain([site.real_servers])
        .max()
        .unwrap_or(site.real_servers);
    let n_dirs = events
        .iter()
        .filter_map(|e| match e {
            Event::DirectorUp(k) => Some(k + 1),
            _ => None,
        })
        .chain([site.directors])
        .max()
        .unwrap_or(site.directors);
    let mut rs_ids: Vec<usize> = (0..site.real_servers).collect();
    let mut dirs: Vec<DirectorState> = (0..n_dirs)
        .map(|k| {
            let mut d = DirectorState::new(choice, &rs_ids, n_rs, fl.len());
            d.alive = k < site.directors;
            d
        })
        .collect();
    let mut rnd = site.seed ^ 0xA5A5_A5A5;
    let mut now = 0u64;

    // Start: every flow goes through its ECMP director and is scheduled there.
    let live = |dirs: &[DirectorState]| -> Vec<usize> {
        (0..dirs.len()).filter(|&k| dirs[k].alive).collect()
    };
    let mut via: Vec<Option<usize>> = vec![None; fl.len()];
    let mut truth: Vec<u16> = vec![NONE; fl.len()];
    let l = live(&dirs);
    for (i, f) in fl.iter().enumerate() {
        now += 1;
        if let Some(k) = ecmp(f.ecmp_hash, &l) {
            let r = splitmix(&mut rnd);
            if let Some(rs) = dirs[k].schedule(f, now, r) {
                dirs[k].table[i] = rs as u16;
                truth[i] = rs as u16;
            }
            via[i] = Some(k);
        }
    }
    let start_imbalance = imbalance(&truth, n_rs);

    // Agreement: a sample of flows asked of every live director in the state its own traffic left it in (the
    // pick is counted and then uncounted, as if the connection came and went): does each pick the real server the
    // flow actually has?
    let agreement = {
        let l = live(&dirs);
        let step = (fl.len() / 20_000).max(1);
        let (mut same, mut asked) = (0usize, 0usize);
        for (i, f) in fl.iter().enumerate().step_by(step) {
            let r = splitmix(&mut rnd);
            let mut all = truth[i] != NONE;
            for &k in &l {
                let p = dirs[k].schedule(f, now, r);
                if let Some(x) = p {
                    dirs[k].count(x, -1);
                }
                all &= p == Some(usize::from(truth[i]));
            }
            asked += 1;
            same += usize::from(all);
        }
        same as f64 / asked.max(1) as f64
    };

    let mut reports = Vec::new();
    let mut order: Vec<usize> = (0..fl.len()).collect();
    for &ev in events {
        let before_map = choice
            .is_hashing()
            .then(|| fresh_map(choice, &rs_ids, n_rs, &fl));
        let mut removed = None;
        match ev {
            Event::DirectorDown(k) => {
                if let Some(d) = dirs.get_mut(k) {
                    d.alive = false;
                    d.reset();
                }
            }
            Event::DirectorUp(k) => {
                if let Some(d) = dirs.get_mut(k) {
                    d.alive = true;
                    d.reset();
                }
            }
            Event::RealServerDown(r) => {
                rs_ids.retain(|&x| x != r);
                for d in &mut dirs {
                    d.remove_rs(r);
                }
                removed = Some(r);
            }
            Event::RealServerUp(r) => {
                if !rs_ids.contains(&r) {
                    rs_ids.push(r);
                    for d in &mut dirs {
                        d.add_rs(r);
                    }
                }
            }
        }
        let remapped = before_map.map(|before| {
            let after = fresh_map(choice, &rs_ids, n_rs, &fl);
            let changed = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| Some(usize::from(**b)) != removed && b != a)
                .count();
            changed as f64 / fl.len().max(1) as f64
        });

        let l = live(&dirs);
        let (mut moved, mut broken, mut strict, mut lost) = (0usize, 0usize, 0usize, 0usize);
        // The flows' next packets arrive in no particular order (a fixed order would line up with the stateful
        // schedulers' own sequences).
        for j in (1..order.len()).rev() {
            let k = (splitmix(&mut rnd) % (j as u64 + 1)) as usize;
            order.swap(j, k);
        }
        for &i in &order {
            let f = &fl[i];
            now += 1;
            let had = truth[i];
            let k = ecmp(f.ecmp_hash, &l);
            let moved_here = k != via[i];
            if moved_here {
                moved += 1;
            }
            let Some(k) = k else {
                truth[i] = NONE;
                continue;
            };
            let lost_here = removed.is_some_and(|r| usize::from(had) == r);
            if lost_here {
                lost += 1;
            }
            let entry = dirs[k].table[i];
            let now_rs = if entry != NONE && rs_ids.contains(&usize::from(entry)) {
                entry
            } else {
                if entry != NONE {
                    // Its real server is gone: the flow is lost, and the entry with it.
                    dirs[k].count(usize::from(entry), -1);
                }
                let r = splitmix(&mut rnd);
                let picked = dirs[k].schedule(f, now, r).map_or(NONE, |x| x as u16);
                dirs[k].table[i] = picked;
                picked
            };
            if had != NONE && !lost_here {
                if now_rs != had {
                    broken += 1;
                    strict += 1;
                } else if entry == NONE {
                    // Same real server, but only because sloppy_tcp let this director pick it: without it the
                    // mid-stream packet is dropped.
                    strict += 1;
                }
            }
            // A stale entry on the director the flow left stays there (as in IPVS, until it expires).
            truth[i] = now_rs;
            via[i] = Some(k);
        }
        let n = fl.len().max(1) as f64;
        reports.push(EventReport {
            event: ev,
            moved_director: moved as f64 / n,
            broken_sloppy: broken as f64 / n,
            broken_strict: strict as f64 / n,
            unserved: truth.iter().filter(|&&r| r == NONE).count() as f64 / n,
            lost_with_rs: lost as f64 / n,
            imbalance: imbalance(&truth, n_rs),
            remapped,
        });
    }
    Run {
        sched: choice,
        agreement,
        imbalance: start_imbalance,
        events: reports,
    }
}

/// One point of Maglev's resilience experiment (Eisenbud et al., NSDI 2016, §5.3, "Resilience of Maglev hashing
/// to backend changes": the share of lookup-table entries that change when a share of the backends fails at
/// once). rvs-core's lookup table is private and fixed at IPVS's 4093 entries, so the entries are sampled by flows:
/// a flow's backend is its entry's backend, and with many flows over every entry the shares agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resilience {
    pub backends: usize,
    pub failed: usize,
    /// Share of flows whose backend changed (the paper's "changed entries"; includes the failed backends' own).
    pub changed: f64,
    /// Share of flows that were on a failed backend: what any scheme has to move.
    pub minimum: f64,
    /// Share of flows on surviving backends that moved anyway: the disruption beyond the minimum.
    pub survivors_moved: f64,
    /// Most loaded backend / mean before the failures (the paper's load-balancing figure, max/avg).
    pub imbalance: f64,
}

/// Runs one point of the resilience experiment: `backends` real servers with `choice` (mh or mh-port), `failed`
/// of them (picked at random, seeded) removed at once, `flows` flows mapped before and after.
pub fn maglev_resilience(
    choice: SchedChoice,
    backends: usize,
    failed: usize,
    flows_n: usize,
    seed: u64,
) -> Resilience {
    let site = Site {
        directors: 1,
        real_servers: backends,
        flows: flows_n,
        seed,
    };
    let fl = flows(&site);
    let all: Vec<usize> = (0..backends).collect();
    let before = fresh_map(choice, &all, backends, &fl);
    let mut order = all.clone();
    let mut rnd = seed ^ 0x3C3C_3C3C;
    for j in (1..order.len()).rev() {
        let k = (splitmix(&mut rnd) % (j as u64 + 1)) as usize;
        order.swap(j, k);
    }
    let mut gone = vec![false; backends];
    for &r in order.iter().take(failed) {
        gone[r] = true;
    }
    // Survivors keep their configuration order (as when failed real servers are deleted from the service).
    let survivors: Vec<usize> = all.iter().copied().filter(|&r| !gone[r]).collect();
    let after = fresh_map(choice, &survivors, backends, &fl);
    let was_gone = |b: u16| gone.get(usize::from(b)).copied().unwrap_or(false);
    let n = fl.len().max(1) as f64;
    let changed = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    let minimum = before.iter().filter(|&&b| was_gone(b)).count();
    let survivors_moved = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| !was_gone(**b) && b != a)
        .count();
    Resilience {
        backends,
        failed,
        changed: changed as f64 / n,
        minimum: minimum as f64 / n,
        survivors_moved: survivors_moved as f64 / n,
        imbalance: imbalance(&before, backends),
    }
}

/// The standard churn sequence: a director dies and comes back, a real server fails and comes back, then one
/// director and one real server are added (scale out).
pub fn standard_events(site: &Site) -> Vec<Event> {
    vec![
        Event::DirectorDown(site.directors.saturating_sub(1)),
        Event::DirectorUp(site.directors.saturating_sub(1)),
        Event::RealServerDown(0),
        Event::RealServerUp(0),
        Event::DirectorUp(site.directors),
        Event::RealServerUp(site.real_servers),
    ]
}

/// A plain-text table of runs (one block per event).
pub fn report(site: &Site, runs: &[Run]) -> String {
    let mut out = format!(
        "{} directors x {} real servers x {} flows; router: Linux hash-threshold ECMP (5-tuple)\n\n",
        site.directors, site.real_servers, site.flows
    );
    out.push_str(&format!(
        "{:<9} {:>9} {:>9}\n",
        "sched", "agree", "imbalance"
    ));
    for r in runs {
        out.push_str(&format!(
            "{:<9} {:>8.2}% {:>9.3}\n",
            r.sched.label(),
            r.agreement * 100.0,
            r.imbalance
        ));
    }
    let Some(first) = runs.first() else {
        return out;
    };
    for (e, ev) in first.events.iter().enumerate() {
        out.push_str(&format!(
            "\n== {}: {:.2}% of flows changed director\n{:<9} {:>12} {:>12} {:>10} {:>9} {:>9} {:>9}\n",
            ev.event,
            ev.moved_director * 100.0,
            "sched",
            "broken",
            "broken(no",
            "lost with",
            "unserved",
            "imbalance",
            "remapped"
        ));
        out.push_str(&format!(
            "{:<9} {:>12} {:>12} {:>10} {:>9} {:>9} {:>9}\n",
            "", "(sloppy)", "sloppy)", "its RS", "", "", "(hash)"
        ));
        for r in runs {
            let Some(x) = r.events.get(e) else { continue };
            out.push_str(&format!(
                "{:<9} {:>11.3}% {:>11.3}% {:>9.3}% {:>8.3}% {:>9.3} {:>9}\n",
                r.sched.label(),
                x.broken_sloppy * 100.0,
                x.broken_strict * 100.0,
                x.lost_with_rs * 100.0,
                x.unserved * 100.0,
                x.imbalance,
                x.remapped
                    .map_or("-".to_string(), |v| format!("{:.3}%", v * 100.0))
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: Site = Site {
        directors: 3,
        real_servers: 10,
        flows: 60_000,
        seed: 7,
    };

    fn ev(run: &Run, e: Event) -> &EventReport {
        run.events
            .iter()
            .find(|x| x.event == e)
            .unwrap_or_else(|| panic!("no {e} in {run:?}"))
    }

    #[test]
    fn maglev_resilience_moves_the_failed_backends_flows_and_few_others() {
        let mh = SchedChoice::with_port("mh");
        // 40 backends in IPVS's 4093-entry table (M > 100 N, the paper's rule), 4 of them (10 %) fail at once.
        let r = maglev_resilience(mh, 40, 4, 200_000, 3);
        assert!(
            (r.minimum - 0.10).abs() < 0.02,
            "the failed backends held about 10 % of the flows: {r:?}"
        );
        assert!(
            r.changed >= r.minimum && (r.changed - r.minimum - r.survivors_moved).abs() < 1e-9,
            "changed = the failed backends' own flows + survivors' moved flows: {r:?}"
        );
        assert!(
            r.survivors_moved > 0.0 && r.survivors_moved < 0.05,
            "Maglev hashing is not minimal but close: {r:?}"
        );
        assert!(r.imbalance < 1.1, "balanced before the failures: {r:?}");
        // sh, for contrast, deals its buckets out again: most flows move.
        let sh = maglev_resilience(SchedChoice::with_port("sh"), 40, 4, 200_000, 3);
        assert!(sh.survivors_moved > 0.5, "sh: {sh:?}");
        // A table far too small for its backends (M < 5 N) balances and resists worse.
        let crowded = maglev_resilience(mh, 1000, 100, 200_000, 3);
        assert!(
            crowded.imbalance > r.imbalance && crowded.survivors_moved > r.survivors_moved,
            "1000 backends in 4093 entries vs 40: {crowded:?} vs {r:?}"
        );
    }

    /// rvs-core's mh is the published Maglev hashing: at the same table size (IPVS's 4093) and backend count, the
    /// share of flows it moves when backends fail matches the paper's algorithm (crate::maglev_ref) run the
    /// paper's way, while sh (a different algorithm) is nowhere near.
    #[test]
    fn mh_disrupts_like_the_published_maglev_hashing_at_the_same_table_size() {
        let mh = maglev_resilience(SchedChoice::with_port("mh"), 40, 4, 200_000, 3);
        let paper = maglev_ref::resilience(40, 4, 4093, 20, 3);
        let beyond = paper.changed - paper.minimum;
        eprintln!(
            "40 backends, 4 fail, M = 4093: rvs mh moves {:.2} % of the survivors' flows, the published algorithm {:.2} %",
            mh.survivors_moved * 100.0,
            beyond * 100.0
        );
        assert!(
            (mh.survivors_moved - beyond).abs() < 0.005,
            "rvs mh moves {:.2} % of the survivors' flows, the published algorithm {:.2} %: {mh:?} {paper:?}",
            mh.survivors_moved * 100.0,
            beyond * 100.0
        );
        let sh = maglev_resilience(SchedChoice::with_port("sh"), 40, 4, 200_000, 3);
        assert!(sh.survivors_moved > 10.0 * beyond, "{sh:?} vs {paper:?}");
    }

    #[test]
    fn hash_threshold_ecmp_moves_flows_between_survivors() {
        let fl = flows(&SITE);
        let before: Vec<_> = fl.iter().map(|f| ecmp(f.ecmp_hash, &[0, 1, 2])).collect();
        let after: Vec<_> = fl.iter().map(|f| ecmp(f.ecmp_hash, &[0, 1])).collect();
        let share = |k| before.iter().filter(|&&d| d == Some(k)).count() as f64 / fl.len() as f64;
        for k in 0..3 {
            assert!(
                (share(k) - 1.0 / 3.0).abs() < 0.02,
                "next hop {k}: {}",
                share(k)
            );
        }
        let moved =
            before.iter().zip(&after).filter(|(b, a)| b != a).count() as f64 / fl.len() as f64;
        // 1/3 leaves with the dead next hop, and 1/6 moves between the survivors (range boundaries shift).
        assert!((moved - 0.5).abs() < 0.02, "{moved}");
        assert_eq!(ecmp(5, &[]), None);
        assert_eq!(ecmp(u32::MAX >> 1, &[4]), Some(4));
    }

    #[test]
    fn mh_maps_identically_on_every_director_and_survives_director_churn_with_sloppy_tcp() {
        let events = [
            Event::DirectorDown(2),
            Event::DirectorUp(2),
            Event::DirectorUp(3),
        ];
        for c in [SchedChoice::plain("mh"), SchedChoice::with_port("mh")] {
            let run = run(&SITE, c, &events);
            assert_eq!(run.agreement, 1.0, "{}", c.label());
            assert!(
                run.imbalance < 1.1,
                "{}: imbalance {}",
                c.label(),
                run.imbalance
            );
            for e in events {
                let x = ev(&run, e);
                assert!(x.moved_director > 0.3, "{e}: {x:?}");
                assert_eq!(x.broken_sloppy, 0.0, "{} {e}: {x:?}", c.label());
                assert!(
                    x.broken_strict > 0.25,
                    "{e}: without sloppy_tcp moved flows break: {x:?}"
                );
                assert_eq!(x.unserved, 0.0);
            }
        }
    }

    #[test]
    fn schedulers_with_per_director_state_break_moved_flows() {
        for name in ["rr", "wlc"] {
            let run = run(&SITE, SchedChoice::plain(name), &[Event::DirectorDown(2)]);
            assert!(run.agreement < 0.5, "{name}: {}", run.agreement);
            let x = ev(&run, Event::DirectorDown(2));
            // A moved flow keeps its real server only by chance (about 1 in 10).
            assert!(
                x.broken_sloppy > 0.35 && x.broken_sloppy <= x.moved_director,
                "{name}: {x:?}"
            );
        }
    }

    #[test]
    fn removing_a_real_server_moves_only_close_to_its_own_flows_with_mh() {
        let events = [Event::RealServerDown(0), Event::RealServerUp(0)];
        let mh = run(&SITE, SchedChoice::plain("mh"), &events);
        let down = ev(&mh, Event::RealServerDown(0));
        assert!((down.lost_with_rs - 0.1).abs() < 0.02, "{down:?}");
        // Maglev: not minimal, but close: about 1% of the other flows change.
        let remapped = down.remapped.expect("mh is a hashing scheduler");
        assert!(remapped < 0.03, "mh moved {remapped} of the other flows");
        assert_eq!(
            down.broken_sloppy, 0.0,
            "established flows keep their entries"
        );
        let up = ev(&mh, Event::RealServerUp(0));
        let remapped = up.remapped.expect("hashing");
        // At least the new server's share (1/10) must move to it; little more.
        assert!(remapped > 0.08 && remapped < 0.13, "{up:?}");
        // IPVS's sh deals its 256 buckets out again: most flows change.
        let sh = run(&SITE, SchedChoice::plain("sh"), &events);
        let sh_down = ev(&sh, Event::RealServerDown(0));
        assert!(sh_down.remapped.expect("hashing") > 0.5, "{sh_down:?}");
        assert_eq!(sh.agreement, 1.0);
    }

    #[test]
    fn report_names_every_scheduler_and_event() {
        let site = Site {
            flows: 2000,
            ..SITE
        };
        let events = standard_events(&site);
        let runs: Vec<Run> = all_schedulers()
            .into_iter()
            .map(|c| run(&site, c, &events))
            .collect();
        assert_eq!(runs.len(), rvs_core::sched::SCHEDULER_NAMES.len() + 2);
        let text = report(&site, &runs);
        for r in &runs {
            assert!(text.contains(&r.sched.label()), "{}", r.sched.label());
        }
        for e in &events {
            assert!(text.contains(&e.to_string()), "{e}");
        }
    }
}
