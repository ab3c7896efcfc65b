//! The check state machine, I/O-free: time is an argument, results are reported in, events and the live
//! configuration come out. Semantics follow keepalived (check_api.c, check_*.c, ipwrapper.c):
//!
//! * A checker is checked every `delay_loop`. A failure while up (or at the first check) is retried after
//!   `delay_before_retry`, `retry` times; the next failure takes the checker down: down after `retry + 1`
//!   consecutive failures. While down it is checked every `delay_loop`; one success brings it up.
//! * The first check runs at a random point of `[0, warmup)`. With `alpha` a checker starts down.
//! * A real server is alive when all its checkers are up (a real server without checkers always is).
//! * A failed real server is removed, or kept at weight 0 with `inhibit_on_failure`.
//! * MISC_CHECK `misc_dynamic`: exit code 2..=255 sets the weight to `code - 2` (as a delta on the configured
//!   weight, summed over dynamic checkers, like keepalived's `cur_weight`).
//! * Quorum (`update_quorum_state`): the virtual server loses quorum when the live weight falls below
//!   `quorum - hysteresis` (or to 0), and gains it back at `quorum + hysteresis`. Without quorum the sorry
//!   server (if any) replaces every alive real server; `sorry_server_inhibit` keeps it at weight 0 while unused.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rvs_api::{DestSpec, ServiceSpec};
use rvs_keepalived::convert::{dest_config, service_config, sorry_config};
use rvs_keepalived::{CheckKind, Config, LoadError, RealServer, VirtualServer};

/// A real server of the configuration: (virtual server index, real server index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RsId {
    pub vs: usize,
    pub rs: usize,
}

/// One checker of one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckId {
    pub rs: RsId,
    pub checker: usize,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service answered as configured; `weight` is set by MISC_CHECK `misc_dynamic` (exit code - 2).
    Success { weight: Option<u32> },
    /// Why it failed ("connection refused", "status 500", "digest mismatch", "timed out after 2s", ...).
    Failure(String),
}

/// State of one checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerState {
    pub up: bool,
    pub has_run: bool,
    /// Failures in the current retry cycle.
    pub retry_it: u32,
    /// When the next check is due; `None` while one is running.
    pub next_at: Option<Duration>,
    /// When the running (or last) check was due: the next one is scheduled from here plus the check's own
    /// duration, so time a check spent waiting for the checker (a permit, a busy thread) does not shift it.
    pub due_at: Duration,
    pub last: Option<Outcome>,
    /// When `up` last changed (monitor time).
    pub changed_at: Duration,
    /// `misc_dynamic` weight, when the last success carried one.
    pub dynamic_weight: Option<u32>,
}

/// State of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsState {
    pub alive: bool,
    pub changed_at: Duration,
    /// The failed checker's last reason while not alive; the last success's checker otherwise.
    pub reason: String,
    pub checkers: Vec<CheckerState>,
}

/// Quorum state of one virtual server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VsState {
    pub quorum_up: bool,
    /// The sorry server is in the pool.
    pub sorry_active: bool,
}

/// What changed, for logs and notify scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A real server went up (`notify_up`) or down (`notify_down`).
    RealServer {
        id: RsId,
        alive: bool,
        reason: String,
    },
    /// A checker changed state (the real server may not have).
    Checker {
        id: CheckId,
        up: bool,
        reason: String,
    },
    /// A virtual server gained (`quorum_up`) or lost (`quorum_down`) quorum.
    Quorum {
        vs: usize,
        up: bool,
        weight: u64,
        threshold: u64,
    },
    /// A live weight changed (misc_dynamic).
    Weight { id: RsId, weight: u32 },
}

/// The reason of a real server whose checks pass (set once, not per check).
const CHECK_SUCCEEDED: &str = "check succeeded";

/// The checks of a configuration.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub config: Config,
    pub vs: Vec<VsState>,
    pub rs: Vec<Vec<RsState>>,
    /// Due times, earliest first (an entry is live while it equals its checker's `next_at`): `due` and
    /// `next_due` cost O(log n) per check instead of a scan of every checker (10,000 real servers: the scans were
    /// a fifth of the checker thread's CPU).
    queue: BinaryHeap<Reverse<(Duration, CheckId)>>,
    /// [`Monitor::live_weight`] of each virtual server.
    live: Vec<u64>,
}

fn xorshift(s: &mut u64) -> u64 {
    let mut x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    x
}

/// The first check of each new checker: a random point of `[0, warmup)` as keepalived draws it, but drawn
/// stratified: the checkers are shuffled and the k-th of n gets a random point of the k-th n-th of its warmup. Each
/// checker's first check is still uniform over `[0, warmup)`; together they are evenly spaced (10,000 checkers
/// over 5 s: one every 0.5 ms) instead of independent draws, whose clumps (up to ~1.7x the mean rate in some 10 ms)
/// come back every delay_loop.
fn first_checks(fresh: &[(CheckId, Duration)], rng: &mut u64) -> Vec<(CheckId, Duration)> {
    const SCALE: u128 = 1 << 20;
    let n = fresh.len();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (xorshift(rng) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let (id, warmup) = fresh[i];
            let frac = k as u128 * SCALE + u128::from(xorshift(rng)) % SCALE;
            let us = warmup.as_micros() * frac / (n as u128 * SCALE);
            (id, Duration::from_micros(us as u64))
        })
        .collect()
}

/// Two checkers are the same check (state may be carried over a reload) when everything but their location is.
fn same_checker(a: &rvs_keepalived::Checker, b: &rvs_keepalived::Checker) -> bool {
    let mut b = b.clone();
    b.loc = a.loc.clone();
    if let (CheckKind::Http(x) | CheckKind::Ssl(x), CheckKind::Http(y) | CheckKind::Ssl(y)) =
        (&a.kind, &mut b.kind)
    {
        for (u, v) in x.urls.iter().zip(y.urls.iter_mut()) {
            v.loc = u.loc.clone();
        }
    }
    *a == b
}

impl Monitor {
    /// Start monitoring `config` at `now`: first checks spread over each checker's warmup; `seed` drives that
    /// spread.
    pub fn new(config: Config, now: Duration, seed: u64) -> Self {
        Self::with_previous(config, now, seed, None)
    }

    /// Like [`Monitor::new`], keeping the state of real servers (and their checkers) that `previous` checks the
    /// same way (a reload).
    pub fn with_previous(
        config: Config,
        now: Duration,
        seed: u64,
        previous: Option<&Monitor>,
    ) -> Self {
        let mut rng = seed | 1;
        let mut rs_states = Vec::new();
        // Every checker that starts fresh (not carried over a reload) with its warmup.
        let mut fresh: Vec<(CheckId, Duration)> = Vec::new();
        for vs in &config.virtual_servers {
            let prev_vs = previous.and_then(|p| {
                p.config
                    .virtual_servers
                    .iter()
                    .position(|o| o.address == vs.address && o.protocol == vs.protocol)
            });
            let mut v = Vec::new();
            for rs in &vs.real_servers {
                let carried = prev_vs.and_then(|pv| {
                    let p = previous?;
                    let pvs = &p.config.virtual_servers[pv];
                    let pi = pvs
                        .real_servers
                        .iter()
                        .position(|o| o.addr == rs.addr && o.port == rs.port)?;
                    let prs = &pvs.real_servers[pi];
                    let same = prs.checkers.len() == rs.checkers.len()
                        && prs
                            .checkers
                            .iter()
                            .zip(&rs.checkers)
                            .all(|(a, b)| same_checker(a, b));
                    same.then(|| p.rs[pv][pi].clone())
                });
                let (vi, ri) = (rs_states.len(), v.len());
                v.push(carried.unwrap_or_else(|| {
                    let checkers: Vec<CheckerState> = rs
                        .checkers
                        .iter()
                        .enumerate()
                        .map(|(ci, c)| {
                            fresh.push((
                                CheckId {
                                    rs: RsId { vs: vi, rs: ri },
                                    checker: ci,
                                },
                                c.warmup,
                            ));
                            CheckerState {
                                up: !c.alpha,
                                has_run: false,
                                retry_it: 0,
                                // Set below, once every new checker is known (`first_checks`).
                                next_at: None,
                                due_at: now,
                                last: None,
                                changed_at: now,
                                dynamic_weight: None,
                            }
                        })
                        .collect();
                    let alive = checkers.iter().all(|c| c.up);
                    RsState {
                        alive,
                        changed_at: now,
                        reason: if alive {
                            "not checked yet".into()
                        } else {
                            "alpha: waiting for a first success".into()
                        },
                        checkers,
                    }
                }));
            }
            rs_states.push(v);
        }
        for (id, offset) in first_checks(&fresh, &mut rng) {
            rs_states[id.rs.vs][id.rs.rs].checkers[id.checker].next_at = Some(now + offset);
        }
        let mut m = Self {
            vs: Vec::new(),
            rs: rs_states,
            config,
            queue: BinaryHeap::new(),
            live: Vec::new(),
        };
        m.live = (0..m.rs.len())
            .map(|v| {
                (0..m.rs[v].len())
                    .map(|r| m.contribution(RsId { vs: v, rs: r }))
                    .sum()
            })
            .collect();
        for (v, rss) in m.rs.iter().enumerate() {
            for (r, rs) in rss.iter().enumerate() {
                for (c, ck) in rs.checkers.iter().enumerate() {
                    if let Some(t) = ck.next_at {
                        let id = CheckId {
                            rs: RsId { vs: v, rs: r },
                            checker: c,
                        };
                        m.queue.push(Reverse((t, id)));
                    }
                }
            }
        }
        // set_quorum_states(), then update_quorum_state(init) for the sorry server.
        for i in 0..m.config.virtual_servers.len() {
            let vs = &m.config.virtual_servers[i];
            let carried = previous.and_then(|p| {
                let j = p
                    .config
                    .virtual_servers
                    .iter()
                    .position(|o| o.address == vs.address && o.protocol == vs.protocol)?;
                Some(p.vs[j])
            });
            let weight = m.live_weight(i);
            let quorum_up = carried
                .map(|c| c.quorum_up)
                .unwrap_or(weight >= vs.quorum + vs.hysteresis);
            let sorry_active = vs.sorry_server.is_some() && !quorum_up;
            m.vs.push(VsState {
                quorum_up,
                sorry_active,
            });
        }
        m
    }

    /// Live weight of a real server (configured weight plus the misc_dynamic deltas).
    pub fn effective_weight(&self, id: RsId) -> u32 {
        let rs = &self.config.virtual_servers[id.vs].real_servers[id.rs];
        let st = &self.rs[id.vs][id.rs];
        let mut w = i64::from(rs.weight);
        for c in &st.checkers {
            if let Some(d) = c.dynamic_weight {
                w += i64::from(d) - i64::from(rs.weight);
            }
        }
        w.clamp(0, 65535) as u32
    }

    /// keepalived's weigh_live_realservers(): the weights of the alive real servers (kept up to date as checks
    /// report: O(1), where summing 10,000 real servers on every state change was a seventh of the checker's CPU
    /// while servers flapped).
    pub fn live_weight(&self, vs: usize) -> u64 {
        self.live[vs]
    }

    /// What a real server adds to its virtual server's live weight.
    fn contribution(&self, id: RsId) -> u64 {
        if self.rs[id.vs][id.rs].alive {
            u64::from(self.effective_weight(id))
        } else {
            0
        }
    }

    /// Checks due at `now`; they are marked running until [`Monitor::report`].
    pub fn due(&mut self, now: Duration) -> Vec<CheckId> {
        let mut out = Vec::new();
        while let Some(&Reverse((t, id))) = self.queue.peek() {
            if t > now {
                break;
            }
            self.queue.pop();
            let Some(ck) = self
                .rs
                .get_mut(id.rs.vs)
                .and_then(|v| v.get_mut(id.rs.rs))
                .and_then(|r| r.checkers.get_mut(id.checker))
            else {
                continue;
            };
            if ck.next_at == Some(t) {
                ck.next_at = None;
                ck.due_at = t;
                out.push(id);
            }
        }
        out
    }

    /// The earliest time a check is due.
    pub fn next_due(&mut self) -> Option<Duration> {
        while let Some(&Reverse((t, id))) = self.queue.peek() {
            let live = self
                .rs
                .get(id.rs.vs)
                .and_then(|v| v.get(id.rs.rs))
                .and_then(|r| r.checkers.get(id.checker))
                .is_some_and(|c| c.next_at == Some(t));
            if live {
                return Some(t);
            }
            self.queue.pop();
        }
        None
    }

    /// Schedule every running check (one whose result will not come: a reload dropped it) at `now`.
    pub fn restart_running(&mut self, now: Duration) {
        for (v, rss) in self.rs.iter_mut().enumerate() {
            for (r, rs) in rss.iter_mut().enumerate() {
                for (c, ck) in rs.checkers.iter_mut().enumerate() {
                    if ck.next_at.is_none() {
                        ck.next_at = Some(now);
                        let id = CheckId {
                            rs: RsId { vs: v, rs: r },
                            checker: c,
                        };
                        self.queue.push(Reverse((now, id)));
                    }
                }
            }
        }
    }

    /// The checker definition of `id`.
    pub fn checker(&self, id: CheckId) -> &rvs_keepalived::Checker {
        &self.config.virtual_servers[id.rs.vs].real_servers[id.rs.rs].checkers[id.checker]
    }

    /// A check of `id` finished at `now` with `outcome`; the next one is due delay_loop (or delay_before_retry)
    /// after `now`, as in keepalived.
    pub fn report(&mut self, id: CheckId, now: Duration, outcome: Outcome) -> Vec<Event> {
        self.report_timed(id, now, Duration::MAX, outcome)
    }

    /// A check of `id` that ran for `took` (from its start to its result) finished at `now` with `outcome`. The
    /// next one is due delay_loop (or delay_before_retry) after `min(due + took, now)`, where `due` is when this
    /// one was due: keepalived's interval from the end of a check to the start of the next, but without the time
    /// this check waited to start (for a permit, or a thread busy elsewhere), and never sooner than half an
    /// interval after `now`. A checker that fell behind does not carry the delay into every later round, and
    /// checks that waited together do not stay bunched together.
    pub fn report_timed(
        &mut self,
        id: CheckId,
        now: Duration,
        took: Duration,
        outcome: Outcome,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(ck_def) = self
            .config
            .virtual_servers
            .get(id.rs.vs)
            .and_then(|v| v.real_servers.get(id.rs.rs))
            .and_then(|r| r.checkers.get(id.checker))
        else {
            return events; // a result for a checker a reload removed
        };
        let (delay_loop, dbr, retry) = (ck_def.delay_loop, ck_def.delay_before_retry, ck_def.retry);
        let weight_before = self.effective_weight(id.rs);
        let contribution_before = self.contribution(id.rs);
        let ck = &mut self.rs[id.rs.vs][id.rs.rs].checkers[id.checker];
        let ended = ck.due_at.saturating_add(took).min(now);
        // `ended + interval`, but never sooner than half an interval after the check really ended: a checker far
        // behind (a starved thread) catches up at most twice as fast as configured, not in one burst.
        let after = |interval: Duration| (ended + interval).max(now + interval / 2);
        let first = !ck.has_run;
        ck.has_run = true;
        match &outcome {
            Outcome::Success { weight } => {
                ck.retry_it = 0;
                ck.next_at = Some(after(delay_loop));
                ck.dynamic_weight = *weight;
                if !ck.up {
                    ck.up = true;
                    ck.changed_at = now;
                    events.push(Event::Checker {
                        id,
                        up: true,
                        reason: "check succeeded".into(),
                    });
                }
            }
            Outcome::Failure(why) => {
                if ck.up || first {
                    if ck.retry_it < retry {
                        ck.retry_it += 1;
                        ck.next_at = Some(after(dbr));
                    } else {
                        ck.retry_it = 0;
                        ck.next_at = Some(after(delay_loop));
                        if ck.up {
                            ck.up = false;
                            ck.changed_at = now;
                            events.push(Event::Checker {
                                id,
                                up: false,
                                reason: why.clone(),
                            });
                        }
                    }
                } else {
                    ck.next_at = Some(after(delay_loop));
                }
            }
        }
        ck.last = Some(outcome.clone());
        if let Some(t) = ck.next_at {
            self.queue.push(Reverse((t, id)));
        }
        self.settle(id.rs, now, &outcome, contribution_before, &mut events);
        let weight_after = self.effective_weight(id.rs);
        if weight_after != weight_before && self.rs[id.rs.vs][id.rs.rs].alive {
            events.push(Event::Weight {
                id: id.rs,
                weight: weight_after,
            });
            self.update_quorum(id.rs.vs, &mut events);
        }
        events
    }

    /// Recompute a real server's aliveness from its checkers and its share of the live weight (it was
    /// `contribution_before`), then the quorum.
    fn settle(
        &mut self,
        id: RsId,
        now: Duration,
        outcome: &Outcome,
        contribution_before: u64,
        events: &mut Vec<Event>,
    ) {
        let st = &mut self.rs[id.vs][id.rs];
        let alive = st.checkers.iter().all(|c| c.up);
        if let Outcome::Failure(why) = outcome
            && !alive
        {
            st.reason = why.clone();
        }
        let changed = alive != st.alive;
        if changed {
            st.alive = alive;
            st.changed_at = now;
            if alive {
                st.reason = "all checkers up".into();
            }
        } else if alive && st.reason != CHECK_SUCCEEDED {
            st.reason = CHECK_SUCCEEDED.into();
        }
        let reason = changed.then(|| st.reason.clone());
        // The sum includes this server's old share, so the subtraction cannot underflow.
        self.live[id.vs] = self.live[id.vs] - contribution_before + self.contribution(id);
        if let Some(reason) = reason {
            events.push(Event::RealServer { id, alive, reason });
            self.update_quorum(id.vs, events);
        }
    }

    /// ipwrapper.c update_quorum_state().
    fn update_quorum(&mut self, vs: usize, events: &mut Vec<Event>) {
        let def = &self.config.virtual_servers[vs];
        let weight = self.live_weight(vs);
        let st = &mut self.vs[vs];
        if !st.quorum_up && weight >= def.quorum + def.hysteresis {
            st.quorum_up = true;
            st.sorry_active = false;
            events.push(Event::Quorum {
                vs,
                up: true,
                weight,
                threshold: def.quorum + def.hysteresis,
            });
        } else if st.quorum_up
            && (weight == 0 || weight < def.quorum.saturating_sub(def.hysteresis))
        {
            st.quorum_up = false;
            st.sorry_active = def.sorry_server.is_some();
            events.push(Event::Quorum {
                vs,
                up: false,
                weight,
                threshold: def.quorum.saturating_sub(def.hysteresis),
            });
        }
    }

    /// The live weight of a real server in the pool, or `None` when it is out of the pool.
    pub fn pool_weight(&self, id: RsId) -> Option<u32> {
        let rs = &self.config.virtual_servers[id.vs].real_servers[id.rs];
        let st = &self.rs[id.vs][id.rs];
        let in_pool = st.alive && !self.vs[id.vs].sorry_active;
        match (in_pool, rs.inhibit_on_failure) {
            (true, _) => Some(self.effective_weight(id)),
            (false, true) => Some(0),
            (false, false) => None,
        }
    }

    /// The configuration the checks imply: every service with its real servers as they should be in the pool
    /// now (failed ones removed or at weight 0, the sorry server in or out).
    pub fn desired(&self) -> Result<Vec<(ServiceSpec, Vec<DestSpec>)>, LoadError> {
        let mut out = Vec::new();
        for (key, v) in self.config.services()? {
            let vs: &VirtualServer = &self.config.virtual_servers[v];
            let svc = service_config(vs, key);
            let mut dests = Vec::new();
            for (r, rs) in vs.real_servers.iter().enumerate() {
                let rs: &RealServer = rs;
                if let Some(w) = self.pool_weight(RsId { vs: v, rs: r }) {
                    dests.push(dest_config(rs, w));
                }
            }
            if let Some(s) = &vs.sorry_server
                && !dests.iter().any(|d| d.addr == s.addr && d.port == s.port)
            {
                if self.vs[v].sorry_active {
                    dests.push(sorry_config(s, 1));
                } else if s.inhibit {
                    dests.push(sorry_config(s, 0));
                }
            }
            out.push((svc, dests));
        }
        Ok(out)
    }
}
