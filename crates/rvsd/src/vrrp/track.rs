//! What an instance tracks, with keepalived's semantics (keepalived.conf(5), `track_interface`, `vrrp_script`,
//! `track_script`):
//!
//! - Each tracked thing (interface up and running, script exiting 0) has a weight. Weight 0: the thing failing puts
//!   the instance in FAULT. A positive weight is added to the priority while the thing is up; a negative one while
//!   it is down. `reverse` turns both round (and with weight 0, FAULT while the thing is up).
//! - The effective priority is the configured one plus those weights, kept within 1..=254; an address owner (255)
//!   keeps 255.
//! - Interfaces are looked at when rtnetlink says a link or an address changed (not polled).
//! - A script runs every `interval` through `/bin/sh -c`, killed after `timeout` (a failure). It goes OK after
//!   `rise` successes in a row and fails after `fall` failures in a row. It starts failed, one success away from
//!   OK (keepalived's starting count); `init_fail` starts it `rise` successes away.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tracked thing's weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Weight {
    pub weight: i32,
    pub reverse: bool,
}

impl Weight {
    /// (FAULT, priority change) of a tracked thing that is `up` (or not).
    pub fn effect(self, up: bool) -> (bool, i32) {
        let up = up != self.reverse;
        let w = if self.reverse {
            -self.weight
        } else {
            self.weight
        };
        match w {
            0 => (!up, 0),
            w if w > 0 => (false, if up { w } else { 0 }),
            w => (false, if up { 0 } else { w }),
        }
    }
}

/// The priority an instance runs with: `base` moved by `delta`, within 1..=254 (255, the owner, stays).
pub fn effective_priority(base: u8, delta: i32) -> u8 {
    if base == 255 {
        return 255;
    }
    u8::try_from((i32::from(base) + delta).clamp(1, 254)).unwrap_or(1)
}

/// One `vrrp_script`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSpec {
    pub name: String,
    pub command: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// The script's own weight (a `track_script` entry may override it).
    pub weight: Weight,
    pub rise: u32,
    pub fall: u32,
    pub init_fail: bool,
}

/// A tracked script entry of an instance: the script and the weight it counts with there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedScript {
    pub script: ScriptSpec,
    pub weight: Weight,
}

/// A script's results so far and its running child.
#[derive(Debug)]
pub struct ScriptRun {
    pub spec: ScriptSpec,
    ok: bool,
    /// Results in a row against the current state.
    streak: u32,
    child: Option<(Child, Instant)>,
    next: Instant,
}

impl ScriptRun {
    pub fn new(spec: ScriptSpec, now: Instant) -> Self {
        let streak = if spec.init_fail {
            0
        } else {
            spec.rise.max(1) - 1
        };
        Self {
            spec,
            ok: false,
            streak,
            child: None,
            next: now,
        }
    }

    /// Whether the script is OK (up).
    pub fn ok(&self) -> bool {
        self.ok
    }

    /// Records one result; true when the state changed.
    pub fn record(&mut self, success: bool) -> bool {
        if success == self.ok {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        let need = if success {
            self.spec.rise
        } else {
            self.spec.fall
        };
        if self.streak >= need.max(1) {
            self.ok = success;
            self.streak = 0;
            return true;
        }
        false
    }

    /// Starts the script when due, reaps it when done (killing it past its timeout); true when its state changed.
    /// Never waits.
    pub fn poll(&mut self, now: Instant) -> bool {
        if let Some((child, started)) = &mut self.child {
            let result = match child.try_wait() {
                Ok(Some(status)) => Some(status.success()),
                Ok(None) if now.duration_since(*started) >= self.spec.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    tracing::warn!(script = %self.spec.name, "vrrp_script timed out (a failure)");
                    Some(false)
                }
                Ok(None) => None,
                Err(_) => Some(false),
            };
            let Some(success) = result else {
                return false;
            };
            self.child = None;
            let changed = self.record(success);
            if changed {
                tracing::info!(
                    script = %self.spec.name,
                    state = if self.ok { "succeeded" } else { "failed" },
                    "vrrp_script state change"
                );
            }
            return changed;
        }
        if now >= self.next {
            self.next = now + self.spec.interval;
            match Command::new("/bin/sh")
                .args(["-c", &self.spec.command])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => self.child = Some((c, now)),
                Err(e) => {
                    tracing::warn!(script = %self.spec.name, error = %e, "vrrp_script not started (a failure)");
                    return self.record(false);
                }
            }
        }
        false
    }

    /// When [`poll`](Self::poll) has something to do next.
    pub fn next_due(&self, now: Instant) -> Instant {
        if self.child.is_some() {
            // Reap promptly: its result moves the priority.
            now + Duration::from_millis(20)
        } else {
            self.next
        }
    }
}

impl Drop for ScriptRun {
    fn drop(&mut self) {
        if let Some((c, _)) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The interfaces that are up and running, and every interface's addresses, now (one getifaddrs for all instances).
#[derive(Debug, Default)]
pub struct Links {
    pub up: BTreeSet<String>,
    pub addrs: BTreeSet<(String, std::net::IpAddr)>,
}

impl Links {
    pub fn now() -> Self {
        use nix::net::if_::InterfaceFlags;
        let mut l = Links::default();
        let Ok(it) = nix::ifaddrs::getifaddrs() else {
            return l;
        };
        for a in it {
            let ip = a.address.and_then(|s| {
                s.as_sockaddr_in()
                    .map(|s| std::net::IpAddr::V4(s.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|s| std::net::IpAddr::V6(s.ip())))
            });
            if let Some(ip) = ip {
                l.addrs.insert((a.interface_name.clone(), ip));
            }
            if a.flags.contains(InterfaceFlags::IFF_UP)
                && a.flags.contains(InterfaceFlags::IFF_RUNNING)
            {
                l.up.insert(a.interface_name);
            }
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(weight: i32, reverse: bool) -> Weight {
        Weight { weight, reverse }
    }

    #[test]
    fn weights_follow_keepalived() {
        assert_eq!(w(0, false).effect(true), (false, 0));
        assert_eq!(
            w(0, false).effect(false),
            (true, 0),
            "weight 0: down = FAULT"
        );
        assert_eq!(w(0, true).effect(true), (true, 0), "reverse: up = FAULT");
        assert_eq!(
            w(20, false).effect(true),
            (false, 20),
            "positive: added while up"
        );
        assert_eq!(w(20, false).effect(false), (false, 0));
        assert_eq!(w(-30, false).effect(true), (false, 0));
        assert_eq!(
            w(-30, false).effect(false),
            (false, -30),
            "negative: added while down"
        );
        assert_eq!(
            w(20, true).effect(true),
            (false, -20),
            "reverse: taken while up"
        );
        assert_eq!(w(20, true).effect(false), (false, 0));
        assert_eq!(effective_priority(100, -30), 70);
        assert_eq!(effective_priority(100, -200), 1);
        assert_eq!(effective_priority(250, 20), 254);
        assert_eq!(effective_priority(255, -50), 255);
    }

    fn spec(rise: u32, fall: u32, init_fail: bool) -> ScriptSpec {
        ScriptSpec {
            name: "chk".into(),
            command: "true".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            weight: Weight::default(),
            rise,
            fall,
            init_fail,
        }
    }

    #[test]
    fn rise_and_fall() {
        let now = Instant::now();
        let mut s = ScriptRun::new(spec(3, 2, false), now);
        assert!(!s.ok());
        assert!(s.record(true), "one success from the start");
        assert!(s.ok());
        assert!(!s.record(false));
        assert!(!s.record(true), "a success resets the failures");
        assert!(!s.record(false));
        assert!(s.record(false), "fall 2");
        assert!(!s.ok());
        assert!(!s.record(true) && !s.record(true));
        assert!(s.record(true), "rise 3");
        let mut f = ScriptRun::new(spec(2, 1, true), now);
        assert!(!f.record(true));
        assert!(f.record(true), "init_fail: rise successes");
    }

    #[test]
    fn runs_and_times_out() {
        let t0 = Instant::now();
        let mut ok = ScriptRun::new(spec(1, 1, false), t0);
        let mut bad = ScriptRun::new(
            ScriptSpec {
                command: "exit 3".into(),
                ..spec(1, 1, true)
            },
            t0,
        );
        let mut slow = ScriptRun::new(
            ScriptSpec {
                command: "sleep 5".into(),
                timeout: Duration::from_millis(100),
                ..spec(1, 1, true)
            },
            t0,
        );
        slow.ok = true;
        let mut changed = (false, false, false);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) && !(changed.0 && changed.2) {
            let now = Instant::now();
            changed.0 |= ok.poll(now);
            changed.1 |= bad.poll(now);
            changed.2 |= slow.poll(now);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(ok.ok() && changed.0, "exit 0 is a success");
        assert!(!bad.ok() && !changed.1, "exit 3 is a failure");
        assert!(!slow.ok() && changed.2, "killed at its timeout: a failure");
        assert!(start.elapsed() < Duration::from_secs(4));
    }
}
