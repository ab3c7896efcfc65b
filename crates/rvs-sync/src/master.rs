//! The master's side: which connections to send, and when (ip_vs_sync_conn_needed), and packing
//! them into messages of `sync_maxlen` bytes.
//!
//! The kernel decides per packet, from a counter in each connection. rvs's master walks the
//! connection table instead (see the crate README): each walk offers every connection and
//! template to an [`Exporter`], which applies the kernel's rules with the connection's deadline
//! standing in for the kernel's `sync_endtime`:
//! - TCP connections are sent only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and TIME_WAIT; a
//!   change of state forces a send (a change into a state other than ESTABLISHED at once);
//!   UDP connections and templates have one state and are never forced.
//! - `sync_persist_mode`: connections under a persistence template are not sent (the template
//!   is).
//! - `sync_refresh_period`: a connection is sent again once its deadline moved by at least
//!   min(refresh period, max(timeout / 2, 10 s)); below that, up to `sync_retries` resends, each
//!   at least refresh period / 8 after the previous send.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::wire::{MessageBuilder, SyncConn, flags};

/// IPVS TCP state numbers the master sends in (`IP_VS_TCP_S_*`).
mod tcp_state {
    pub(super) const ESTABLISHED: u16 = 1;
    pub(super) const FIN_WAIT: u16 = 4;
    pub(super) const TIME_WAIT: u16 = 5;
    pub(super) const CLOSE: u16 = 6;
    pub(super) const CLOSE_WAIT: u16 = 7;
}

const TCP: u8 = 6;

/// The sysctls that shape what the master sends (net.ipv4.vs.sync_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportPolicy {
    /// `sync_refresh_period` in ms (the kernel's default is 0, meaning "every `sync_period`
    /// packets"; a table walk has no packet counts, so rvs's default is 10 s: see the README).
    pub refresh_period_ms: u64,
    /// `sync_retries` (0..=3).
    pub retries: u8,
    /// `sync_persist_mode`.
    pub persist_mode: bool,
}

impl Default for ExportPolicy {
    fn default() -> Self {
        Self {
            refresh_period_ms: 10_000,
            retries: 0,
            persist_mode: false,
        }
    }
}

/// What identifies a connection or template across walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    protocol: u8,
    template: bool,
    caddr: IpAddr,
    cport: u16,
    vaddr: IpAddr,
    vport: u16,
    fwmark: u32,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    /// State last sent (`old_state`).
    state: u16,
    /// Deadline when last sent (`sync_endtime`).
    sent_end: u64,
    retries: u8,
    /// Walk that last saw this entry.
    seen: u32,
}

/// The master's memory of what it sent (I/O-free: time is an argument).
#[derive(Debug, Default)]
pub struct Exporter {
    policy: ExportPolicy,
    marks: HashMap<Key, Mark>,
    walk: u32,
}

impl Exporter {
    /// An exporter with `policy`.
    pub fn new(policy: ExportPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Starts a walk (entries not offered before [`end_walk`](Self::end_walk) are forgotten).
    pub fn begin_walk(&mut self) {
        self.walk = self.walk.wrapping_add(1);
    }

    /// Forgets connections that were not offered in this walk (they expired or were removed).
    pub fn end_walk(&mut self) {
        let w = self.walk;
        self.marks.retain(|_, m| m.seen == w);
    }

    /// Entries remembered.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    /// Nothing remembered?
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// Offers one connection or template (its `timeout_s` set, `deadline_ms` = last use +
    /// timeout on the caller's clock). True if it must be sent now.
    pub fn offer(
        &mut self,
        c: &SyncConn<'_>,
        deadline_ms: u64,
        now_ms: u64,
        in_persistence: bool,
    ) -> bool {
        let template = c.flags & flags::TEMPLATE != 0;
        let key = Key {
            protocol: c.protocol,
            template,
            caddr: c.caddr,
            cport: c.cport,
            vaddr: c.vaddr,
            vport: c.vport,
            fwmark: c.fwmark,
        };
        let walk = self.walk;
        let prev = self.marks.get_mut(&key).map(|m| {
            m.seen = walk;
            *m
        });
        let decision = self.decide(c, template, prev, deadline_ms, now_ms, in_persistence);
        match decision {
            // Nothing remembered: a connection not yet sent has no old state.
            Decision::Skip => false,
            Decision::Send { retries } => {
                self.marks.insert(
                    key,
                    Mark {
                        state: c.state,
                        sent_end: deadline_ms,
                        retries,
                        seen: walk,
                    },
                );
                true
            }
        }
    }

    fn decide(
        &self,
        c: &SyncConn<'_>,
        template: bool,
        prev: Option<Mark>,
        deadline_ms: u64,
        now_ms: u64,
        in_persistence: bool,
    ) -> Decision {
        let force = if template {
            false
        } else if self.policy.persist_mode && in_persistence {
            return Decision::Skip;
        } else if c.protocol == TCP {
            let sendable = matches!(
                c.state,
                tcp_state::ESTABLISHED
                    | tcp_state::FIN_WAIT
                    | tcp_state::CLOSE
                    | tcp_state::CLOSE_WAIT
                    | tcp_state::TIME_WAIT
            );
            if !sendable {
                return Decision::Skip;
            }
            let changed = prev.is_none_or(|m| m.state != c.state);
            if changed && c.state != tcp_state::ESTABLISHED {
                return Decision::Send { retries: 0 };
            }
            changed
        } else {
            false
        };
        let Some(m) = prev else {
            return Decision::Send { retries: 0 };
        };
        let timeout_ms = u64::from(c.timeout_s) * 1000;
        let refresh = self.policy.refresh_period_ms;
        if refresh > 0 {
            let diff = deadline_ms.abs_diff(m.sent_end);
            let min_diff = (timeout_ms / 2).max(10_000);
            if diff < refresh.min(min_diff) {
                if force {
                    return Decision::Send { retries: 0 };
                }
                if m.retries >= self.policy.retries {
                    return Decision::Skip;
                }
                // Not before refresh/8 after the last send (sent at sent_end - timeout).
                let last_send = m.sent_end.saturating_sub(timeout_ms);
                if now_ms < last_send + refresh / 8 {
                    return Decision::Skip;
                }
                return Decision::Send {
                    retries: m.retries + 1,
                };
            }
            return Decision::Send { retries: 0 };
        }
        if force {
            Decision::Send { retries: 0 }
        } else {
            Decision::Skip
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Decision {
    Skip,
    Send { retries: u8 },
}

/// The master's sync buffer: fills messages of `maxlen` bytes and hands each one out when it is
/// full, or when its first entry waited `flush_ms` (the kernel's IPVS_SYNC_FLUSH_TIME, 2 s).
#[derive(Debug)]
pub struct Packer {
    msg: MessageBuilder,
    first_use: Option<u64>,
    flush_ms: u64,
}

/// The kernel's IPVS_SYNC_FLUSH_TIME.
pub const FLUSH_MS: u64 = 2000;

impl Packer {
    /// A packer for `syncid` and `sync_maxlen`.
    pub fn new(syncid: u8, maxlen: usize) -> Self {
        Self {
            msg: MessageBuilder::new(syncid, maxlen),
            first_use: None,
            flush_ms: FLUSH_MS,
        }
    }

    /// Adds one entry; `send` gets every message this closes. An entry that cannot be encoded
    /// at all is dropped (returns false).
    pub fn add(&mut self, c: &SyncConn<'_>, now_ms: u64, mut send: impl FnMut(&[u8])) -> bool {
        if !self.msg.fits(c) {
            send(&self.msg.take());
            self.first_use = None;
        }
        if self.msg.push(c).is_err() {
            return false;
        }
        self.first_use.get_or_insert(now_ms);
        true
    }

    /// Sends the pending message if it waited long enough (the kernel's 2 s `SYNC_FLUSH_TIME` by default).
    pub fn flush_due(&mut self, now_ms: u64, send: impl FnMut(&[u8])) {
        if self
            .first_use
            .is_some_and(|t| now_ms.saturating_sub(t) >= self.flush_ms)
        {
            self.flush_now(send);
        }
    }

    /// Sends the pending message now, if there is one.
    pub fn flush_now(&mut self, mut send: impl FnMut(&[u8])) {
        if self.first_use.take().is_some() {
            send(&self.msg.take());
        }
    }

    /// Entries waiting.
    pub fn pending(&self) -> usize {
        self.msg.nr_conns()
    }
}
