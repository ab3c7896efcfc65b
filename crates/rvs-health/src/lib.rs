//! rvs-health: keepalived's health checking for rvs.
//!
//! * [`state`]: the check state machine, I/O-free (time is an argument): retries, recovery, alpha, warmup,
//!   inhibit_on_failure, misc_dynamic weights, quorum/hysteresis and the sorry server; [`state::Monitor::desired`]
//!   is the configuration the checks imply.
//! * [`check`]: the checkers (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, UDP_CHECK, DNS_CHECK, SMTP_CHECK) as
//!   async functions on one tokio current-thread runtime: no thread per check.
//! * [`engine`]: the event loop that runs due checks, feeds results to the monitor, runs notify scripts, and
//!   publishes the live configuration and a status snapshot.

pub mod check;
pub mod engine;
pub mod state;
