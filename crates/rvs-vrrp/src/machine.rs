//! The VRRP state machine (RFC 5798 section 6.4; RFC 3768 section 6.4 for version 2), I/O-free:
//! time is an argument, and every call returns what the caller must do ([`Action`]s).
//!
//! States Init, Backup, Master, plus keepalived's Fault (a tracked interface is down). Timers:
//! the advertisement timer (Master) and the master-down timer (Backup), both as deadlines on the
//! caller's millisecond clock ([`Instance::next_deadline`]). Elections follow the RFC: a higher
//! priority wins, equal priorities are broken by the higher primary address; priority 255 is the
//! address owner and becomes master at once; priority 0 in an advertisement means "the master is
//! leaving" (Master answers at once, Backup takes over after the skew time). Preemption: a backup
//! with a higher priority takes over from a lower-priority master unless `preempt` is off, and
//! not before `preempt_delay` after start-up (keepalived's `preempt_delay`).

use std::net::IpAddr;

use crate::wire::{Advert, Auth, Version};

/// An instance's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Init,
    Backup,
    Master,
    /// A tracked interface is down: neither master nor candidate (keepalived's FAULT).
    Fault,
}

impl State {
    /// keepalived's name (notify scripts and logs).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Init => "INIT",
            Self::Backup => "BACKUP",
            Self::Master => "MASTER",
            Self::Fault => "FAULT",
        }
    }
}

/// One VRRP instance's configuration (keepalived's `vrrp_instance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub name: String,
    pub vrid: u8,
    /// 1..=255 (255: the address owner).
    pub priority: u8,
    /// Advertisement interval, centiseconds (keepalived's `advert_int` x 100).
    pub interval_cs: u16,
    pub version: Version,
    pub preempt: bool,
    pub preempt_delay_ms: u64,
    pub auth: Auth,
    /// The virtual addresses.
    pub addrs: Vec<IpAddr>,
    /// This router's own address on the interface (source of its adverts; breaks ties).
    pub primary: IpAddr,
}

/// What the caller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority (0 when giving up mastership).
    Send { priority: u8 },
    /// Announce the virtual addresses (gratuitous ARP / unsolicited neighbour advertisements) and
    /// start answering for them.
    TakeOver,
    /// Stop answering for the virtual addresses.
    Release,
    /// The state changed (log it, run the notify script).
    Transition { from: State, to: State },
}

/// Why a received advertisement was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("TTL/hop limit is not 255")]
    Ttl,
    #[error("another VRID")]
    OtherVrid,
    #[error("VRRP version differs from the instance's")]
    Version,
    #[error("authentication mismatch")]
    Auth,
    #[error("advertisement interval differs (version 2)")]
    Interval,
    #[error("our own advertisement")]
    Own,
    #[error("lower priority master while preempting")]
    Preempting,
    #[error("lower priority advertisement while master")]
    Lower,
    #[error("instance not running (init or fault)")]
    NotRunning,
}

/// Receive counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    pub ignored: u64,
    /// An advert listing other addresses than ours (logged by keepalived, processed anyway).
    pub address_mismatch: u64,
    pub became_master: u64,
    pub priority_zero_received: u64,
}

/// One VRRP instance.
#[derive(Debug, Clone)]
pub struct Instance {
    cfg: Config,
    state: State,
    /// Master_Adver_Interval (cs): learnt from the master's adverts (v3).
    master_interval_cs: u16,
    adver_at: Option<u64>,
    down_at: Option<u64>,
    started_at: u64,
    counters: Counters,
}

fn cs_to_ms(cs: u64) -> u64 {
    cs * 10
}

impl Instance {
    /// An instance in Init.
    pub fn new(cfg: Config) -> Self {
        let master_interval_cs = cfg.interval_cs;
        Self {
            cfg,
            state: State::Init,
            master_interval_cs,
            adver_at: None,
            down_at: None,
            started_at: 0,
            counters: Counters::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Skew_Time in ms: ((256 - priority) x Master_Adver_Interval) / 256 (v3); (256 - priority)
    /// / 256 s (v2).
    pub fn skew_ms(&self) -> u64 {
        let p = 256 - u64::from(self.cfg.priority);
        match self.cfg.version {
            Version::V3 => cs_to_ms(p * u64::from(self.master_interval_cs) / 256),
            Version::V2 => p * 1000 / 256,
        }
    }

    /// Master_Down_Interval in ms: 3 x Master_Adver_Interval + Skew_Time.
    pub fn master_down_ms(&self) -> u64 {
        3 * cs_to_ms(u64::from(self.master_interval_cs)) + self.skew_ms()
    }

    /// The next time [`on_timer`](Self::on_timer) has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.adver_at, self.down_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn transition(&mut self, to: State, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        match to {
            State::Master => {
                self.counters.became_master += 1;
                out.push(Action::TakeOver);
            }
            _ if from == State::Master => out.push(Action::Release),
            _ => {}
        }
        out.push(Action::Transition { from, to });
    }

    fn become_master(&mut self, now: u64, out: &mut Vec<Action>) {
        out.push(Action::Send {
            priority: self.cfg.priority,
        });
        self.adver_at = Some(now + cs_to_ms(u64::from(self.cfg.interval_cs)));
        self.down_at = None;
        self.transition(State::Master, out);
    }

    fn become_backup(&mut self, now: u64, out: &mut Vec<Action>) {
        self.adver_at = None;
        self.down_at = Some(now + self.master_down_ms());
        self.transition(State::Backup, out);
    }

    /// Start-up (RFC 5798 6.4.1): the owner becomes master, everyone else backup.
    pub fn startup(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state != State::Init {
            return out;
        }
        self.started_at = now;
        self.master_interval_cs = self.cfg.interval_cs;
        if self.cfg.priority == 255 {
            self.become_master(now, &mut out);
        } else {
            self.become_backup(now, &mut out);
        }
        out
    }

    /// Timers due at `now`.
    pub fn on_timer(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Backup if self.down_at.is_some_and(|t| now >= t) => {
                self.become_master(now, &mut out);
            }
            State::Master if self.adver_at.is_some_and(|t| now >= t) => {
                out.push(Action::Send {
                    priority: self.cfg.priority,
                });
                self.adver_at = Some(now + cs_to_ms(u64::from(self.cfg.interval_cs)));
            }
            _ => {}
        }
        out
    }

    /// A received advertisement (already parsed and checksummed), from `src` with IP TTL `ttl`.
    pub fn on_advert(
        &mut self,
        now: u64,
        src: IpAddr,
        ttl: u8,
        adv: &Advert<'_>,
    ) -> Result<Vec<Action>, Ignored> {
        let r = self
            .check(src, ttl, adv)
            .and_then(|()| self.elect(now, src, adv));
        match r {
            Ok(_) => self.counters.received += 1,
            Err(_) => self.counters.ignored += 1,
        }
        r
    }

    fn check(&mut self, src: IpAddr, ttl: u8, adv: &Advert<'_>) -> Result<(), Ignored> {
        if ttl != crate::wire::TTL {
            return Err(Ignored::Ttl);
        }
        if adv.vrid != self.cfg.vrid {
            return Err(Ignored::OtherVrid);
        }
        if adv.version != self.cfg.version {
            return Err(Ignored::Version);
        }
        if src == self.cfg.primary {
            return Err(Ignored::Own);
        }
        if adv.version == Version::V2 {
            if adv.auth != self.cfg.auth {
                return Err(Ignored::Auth);
            }
            if adv.interval_cs / 100 != self.cfg.interval_cs / 100 {
                return Err(Ignored::Interval);
            }
        }
        let theirs =
            adv.count() == self.cfg.addrs.len() && adv.addrs().all(|a| self.cfg.addrs.contains(&a));
        if !theirs {
            self.counters.address_mismatch += 1;
        }
        Ok(())
    }

    fn elect(&mut self, now: u64, src: IpAddr, adv: &Advert<'_>) -> Result<Vec<Action>, Ignored> {
        let mut out = Vec::new();
        let ours = self.cfg.priority;
        if adv.priority == 0 {
            self.counters.priority_zero_received += 1;
        }
        match self.state {
            State::Init | State::Fault => Err(Ignored::NotRunning),
            State::Backup => {
                if adv.priority == 0 {
                    self.down_at = Some(now + self.skew_ms());
                    return Ok(out);
                }
                let delaying = now < self.started_at.saturating_add(self.cfg.preempt_delay_ms);
                if !self.cfg.preempt || adv.priority >= ours || delaying {
                    if adv.version == Version::V3 {
                        self.master_interval_cs = adv.interval_cs;
                    }
                    self.down_at = Some(now + self.master_down_ms());
                    Ok(out)
                } else {
                    Err(Ignored::Preempting)
                }
            }
            State::Master => {
                if adv.priority == 0 {
                    out.push(Action::Send { priority: ours });
                    self.adver_at = Some(now + cs_to_ms(u64::from(self.cfg.interval_cs)));
                    return Ok(out);
                }
                let higher = adv.priority > ours
                    || (adv.priority == ours && addr_key(src) > addr_key(self.cfg.primary));
                if higher {
                    if adv.version == Version::V3 {
                        self.master_interval_cs = adv.interval_cs;
                    }
                    self.become_backup(now, &mut out);
                    Ok(out)
                } else {
                    Err(Ignored::Lower)
                }
            }
        }
    }

    /// Shut down (RFC 5798 6.4.3 "Shutdown"): a master sends priority 0 and releases.
    pub fn shutdown(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Action::Send { priority: 0 });
        }
        self.adver_at = None;
        self.down_at = None;
        self.transition(State::Init, &mut out);
        out
    }

    /// Changes the priority the instance advertises and elects with (keepalived's effective priority: the
    /// configured one moved by the weights of tracked interfaces and scripts). Nothing happens at once: a master
    /// advertises the new value from its next advert, a backup uses it against the next advert it receives (a
    /// backup now above the master ignores its adverts and takes over when the master-down timer expires, as a
    /// preempting backup does).
    pub fn set_priority(&mut self, priority: u8) {
        self.cfg.priority = priority.max(1);
    }

    /// Sync group (keepalived's `vrrp_sync_group`): another member of the group became master, so this one does
    /// too, at once if it is a backup (not from Init or Fault, and a master stays as it is).
    pub fn sync_master(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Backup {
            self.become_master(now, &mut out);
        }
        out
    }

    /// Sync group: another member left master for backup, so a master here does too. It resigns with priority 0
    /// (RFC 5798 6.4.3's shutdown advert), so the peer's instance takes over after its skew time rather than its
    /// master-down interval.
    pub fn sync_backup(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Action::Send { priority: 0 });
            self.become_backup(now, &mut out);
        }
        out
    }

    /// A tracked interface went down (`up == false`) or came back.
    pub fn set_fault(&mut self, now: u64, fault: bool) -> Vec<Action> {
        let mut out = Vec::new();
        match (fault, self.state) {
            (true, State::Fault) | (false, State::Init | State::Backup | State::Master) => {}
            (true, s) => {
                if s == State::Master {
                    out.push(Action::Send { priority: 0 });
                }
                self.adver_at = None;
                self.down_at = None;
                self.transition(State::Fault, &mut out);
            }
            (false, State::Fault) => {
                self.state = State::Init;
                let from = State::Fault;
                let mut rest = self.startup(now);
                // Report Fault -> Backup/Master, not through Init.
                for a in &mut rest {
                    if let Action::Transition { from: f, .. } = a {
                        *f = from;
                    }
                }
                out.extend(rest);
            }
        }
        out
    }
}

/// Address order for tie-breaks (numeric, IPv4 before IPv6 never compared in one instance).
fn addr_key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}
