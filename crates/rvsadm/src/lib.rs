//! rvsadm: ipvsadm's command line in, ipvsadm's output out, rvsd's control socket in between.
//!
//! `run` is the whole program as a function of its arguments, stdin, a [`Director`] connection
//! and two output streams, so it is tested without a daemon; `main` wires it to the process.

use std::io::{Read, Write};

use rvs_api::client::{Client, ClientError};
use rvs_api::ipvsadm::{self, Action, Format, ListTarget};
use rvs_api::listing;
use rvs_api::resolve::Resolver;
use rvs_api::rules;
use rvs_api::{Command, Reply};

/// Something that answers commands: the real client, or a fake in tests.
pub trait Director {
    fn call(&mut self, cmd: Command) -> Result<Reply, ClientError>;
}

/// Connects on first use to `path` (so `-h`, `-v` and parse errors never need a daemon).
#[derive(Debug)]
pub struct LazyClient {
    path: std::path::PathBuf,
    client: Option<Client>,
}

impl LazyClient {
    pub fn new(path: std::path::PathBuf) -> Self {
        Self { path, client: None }
    }
}

impl Director for LazyClient {
    fn call(&mut self, cmd: Command) -> Result<Reply, ClientError> {
        let client = match &mut self.client {
            Some(c) => c,
            None => self.client.insert(Client::connect(&self.path)?),
        };
        client.call(cmd)
    }
}

/// Exit status for a director (ipvs) error: ipvsadm returns -1.
pub const EXIT_DIRECTOR: i32 = 255;

/// Where output goes.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Io")
    }
}

/// Splits rvsadm's own `--json` flag from ipvsadm's arguments.
pub fn take_json_flag(args: &[String]) -> (bool, Vec<String>) {
    let mut json = false;
    let mut rest = Vec::with_capacity(args.len());
    let mut after_dashdash = false;
    for a in args {
        if !after_dashdash && a == "--json" {
            json = true;
            continue;
        }
        if a == "--" {
            after_dashdash = true;
        }
        rest.push(a.clone());
    }
    (json, rest)
}

/// Runs one rvsadm invocation (`args` without argv[0]); returns the exit status.
pub fn run(
    args: &[String],
    director: &mut dyn Director,
    resolver: &dyn Resolver,
    io: &mut Io<'_>,
) -> i32 {
    let (json, args) = take_json_flag(args);
    let action = match ipvsadm::parse(&args, resolver) {
        Ok(a) => a,
        Err(e) => {
            let _ = io.stderr.write_all(e.stderr_text().as_bytes());
            return e.exit_code;
        }
    };
    if json && !matches!(action, Action::List { .. } | Action::Save { .. }) {
        let _ = writeln!(io.stderr, "--json applies to listings (-L, -S) only");
        return 2;
    }
    match action {
        Action::Help => {
            let _ = io.stdout.write_all(ipvsadm::usage().as_bytes());
            0
        }
        Action::Version => {
            let _ = io.stdout.write_all(ipvsadm::version().as_bytes());
            0
        }
        Action::List { target, format } => list(target, &format, json, director, resolver, io),
        Action::Save { format } => list(ListTarget::All, &format, json, director, resolver, io),
        Action::Restore => restore(director, resolver, io),
        Action::Apply(cmd) => match director.call(cmd) {
            Ok(_) => 0,
            Err(e) => report(&e, io, None),
        },
    }
}

/// Prints a client error; returns the exit status.
fn report(e: &ClientError, io: &mut Io<'_>, lines: Option<&[usize]>) -> i32 {
    match e {
        ClientError::Api(api) => {
            match (api.index, lines) {
                (Some(i), Some(lines)) if i < lines.len() => {
                    let _ = writeln!(io.stderr, "line {}: {}", lines[i], api.message);
                }
                _ => {
                    let _ = writeln!(io.stderr, "{}", api.message);
                }
            }
            EXIT_DIRECTOR
        }
        ClientError::Connect { .. } => {
            let _ = writeln!(io.stderr, "{e}");
            2
        }
        other => {
            let _ = writeln!(io.stderr, "{other}");
            EXIT_DIRECTOR
        }
    }
}

fn unexpected(reply: &Reply, io: &mut Io<'_>) -> i32 {
    let _ = writeln!(io.stderr, "unexpected answer from rvsd: {reply:?}");
    1
}

fn json_out(io: &mut Io<'_>, v: &impl serde::Serialize) -> i32 {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            let _ = writeln!(io.stdout, "{s}");
            0
        }
        Err(e) => {
            let _ = writeln!(io.stderr, "{e}");
            1
        }
    }
}

fn list(
    target: ListTarget,
    f: &Format,
    json: bool,
    director: &mut dyn Director,
    r: &dyn Resolver,
    io: &mut Io<'_>,
) -> i32 {
    match target {
        ListTarget::All => {
            let info = if f.rule && !json {
                None
            } else {
                match director.call(Command::GetInfo) {
                    Ok(Reply::Info(i)) => Some(i),
                    Ok(other) => return unexpected(&other, io),
                    Err(e) => return list_error(&e, io),
                }
            };
            let services = match director.call(Command::ListServices) {
                Ok(Reply::Services(s)) => s,
                Ok(other) => return unexpected(&other, io),
                Err(e) => return list_error(&e, io),
            };
            if json {
                let ordered: Vec<&rvs_api::ServiceSnapshot> = if f.nosort {
                    services.iter().collect()
                } else {
                    listing::sorted_services(&services)
                };
                // Health of checked real servers (rvsd --keepalived); absent when nothing is checked.
                let health = match director.call(Command::GetHealth) {
                    Ok(Reply::Health(h)) if !h.is_empty() => Some(h),
                    _ => None,
                };
                let mut v = serde_json::json!({ "info": info, "services": ordered });
                if let Some(h) = health {
                    v["health"] = serde_json::json!(h);
                }
                // The limit, defences and drop counters (rvsd only; absent from other directors).
                if let Ok(Reply::Defense(d)) = director.call(Command::GetDefense) {
                    v["defense"] = serde_json::json!(d);
                }
                return json_out(io, &v);
            }
            let text = match &info {
                Some(i) => listing::list_all(i, &services, f, r),
                None => listing::list_all(
                    &rvs_api::Info {
                        version: String::new(),
                        conn_table_size: 0,
                    },
                    &services,
                    f,
                    r,
                ),
            };
            let _ = io.stdout.write_all(text.as_bytes());
            0
        }
        ListTarget::Service(key) => match director.call(Command::GetService(key)) {
            Ok(Reply::Service(s)) => show(io, json, &s, |s| listing::list_service(s, f, r)),
            Ok(other) => unexpected(&other, io),
            Err(e) => list_error(&e, io),
        },
        ListTarget::Connections => match director.call(Command::ListConnections) {
            Ok(Reply::Connections(c)) => show(io, json, &c, |c| listing::list_conns(c, f, r)),
            Ok(other) => unexpected(&other, io),
            Err(e) => list_error(&e, io),
        },
        ListTarget::Timeout => match director.call(Command::GetTimeouts) {
            Ok(Reply::Timeouts(t)) => show(io, json, &t, listing::list_timeout),
            Ok(other) => unexpected(&other, io),
            Err(e) => list_error(&e, io),
        },
        ListTarget::Daemon => match director.call(Command::ListDaemons) {
            Ok(Reply::Daemons(d)) => {
                if json {
                    // With the VRRP instances and the sync counters, when rvsd has them.
                    return match director.call(Command::GetHa) {
                        Ok(Reply::Ha(ha)) => json_out(
                            io,
                            &serde_json::json!({ "daemons": d, "vrrp": ha.vrrp, "sync": ha.sync }),
                        ),
                        _ => json_out(io, &d),
                    };
                }
                let _ = io.stdout.write_all(listing::list_daemons(&d).as_bytes());
                0
            }
            Ok(other) => unexpected(&other, io),
            Err(e) => list_error(&e, io),
        },
    }
}

/// A listing's answer, as JSON (the value as rvsd sent it) or as ipvsadm's `text` of it; exit status 0.
fn show<T: serde::Serialize>(
    io: &mut Io<'_>,
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> i32 {
    if json {
        return json_out(io, value);
    }
    let _ = io.stdout.write_all(text(value).as_bytes());
    0
}

/// Listing failures: ipvsadm prints the message and exits 1.
fn list_error(e: &ClientError, io: &mut Io<'_>) -> i32 {
    match e {
        ClientError::Connect { .. } => report(e, io, None),
        _ => {
            let _ = writeln!(io.stderr, "{e}");
            1
        }
    }
}

fn restore(director: &mut dyn Director, r: &dyn Resolver, io: &mut Io<'_>) -> i32 {
    let mut text = String::new();
    if let Err(e) = io.stdin.read_to_string(&mut text) {
        let _ = writeln!(io.stderr, "cannot read rules from stdin: {e}");
        return 1;
    }
    let parsed = match rules::parse_lines(&text, r) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(io.stderr, "{e}");
            return e.exit_code;
        }
    };
    if parsed.is_empty() {
        return 0;
    }
    if let Some((line, _)) = parsed
        .iter()
        .find(|(_, c)| matches!(c, Command::StartDaemon(_) | Command::StopDaemon(_)))
    {
        let _ = writeln!(
            io.stderr,
            "line {line}: --start-daemon/--stop-daemon cannot be part of a -R transaction (run them on their own)"
        );
        return EXIT_DIRECTOR;
    }
    let (lines, cmds): (Vec<usize>, Vec<Command>) = parsed.into_iter().unzip();
    match director.call(Command::Batch(cmds)) {
        Ok(_) => 0,
        Err(e) => report(&e, io, Some(&lines)),
    }
}
