//! The connection holder of `rvs-lab million` (issue 15): many concurrent TCP connections through rvsd, opened
//! slowly, kept idle, then used, from a few processes driven over their stdin/stdout.
//!
//! - [`serve`] (`rvs-lab hold-serve`, in a real-server namespace): one epoll loop, no thread per connection; a
//!   line `use\n` is answered `NAME CIP:CPORT\n` (the client address the real server saw).
//! - [`open`] (`rvs-lab hold-open`, in the client namespace): opens its slice of the connections with non-blocking
//!   connects at a bounded rate and window, each from its own source `address:port` spread over 198.18.0.0/15
//!   ([`endpoint`]; the client namespace has `local 198.18.0.0/15 dev lo`, so every address there is its own). It
//!   then obeys its stdin: `use RATE` sends `use` on every connection and checks that the answer names the
//!   connection's own source address and port (so rvsd's entry still maps it, both ways, after the idle time);
//!   `close RATE` resets every connection (SO_LINGER 0: rvsd's entries go to CLOSE, 10 s).
//!
//! Descriptor limits are raised for these processes only ([`raise_nofile`], up to `fs.nr_open`, 1 048 576 by
//! default): one process holds at most [`MAX_PER_PROCESS`] connections, so a million takes several openers and
//! servers and no system-wide setting changes. Every loop is bounded in time.

use std::collections::HashMap;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// Most connections one holder process takes (below the default `fs.nr_open`, with room for its other fds).
pub const MAX_PER_PROCESS: u64 = 1_000_000;
/// The first source port of every source address.
pub const FIRST_PORT: u16 = 20_000;
/// Source ports per source address at most (20000..=65000).
pub const PORTS_PER_ADDR: u64 = 45_000;
/// The request a holder sends on each connection.
pub const REQUEST: &[u8] = b"use\n";

/// Source address `k` of `count`, spread evenly over 198.18.0.0/15 above 198.18.0.255 (the router's client link
/// of other labs lives in 198.18.0.0/24).
pub fn source_addr(k: u32, count: u32) -> Ipv4Addr {
    let base = u32::from(Ipv4Addr::new(198, 18, 1, 0));
    let span = (1u32 << 17) - 512;
    let stride = (span / count.max(1)).max(1);
    Ipv4Addr::from(base + (k % count.max(1)) * stride)
}

/// Source addresses for `conns` connections: 1024 (a million connections are then ~977 per address, like many
/// busy clients), more when an address would need more than [`PORTS_PER_ADDR`] ports, at most 4096.
pub fn addrs_for(conns: u64) -> u32 {
    let need = conns.div_ceil(PORTS_PER_ADDR).clamp(1024, 4096);
    u32::try_from(need).unwrap_or(4096)
}

/// Source endpoint of connection `g` (0-based, global) when `addrs` source addresses are used: consecutive
/// connections come from different addresses.
pub fn endpoint(g: u64, addrs: u32) -> SocketAddrV4 {
    let a = u64::from(addrs.max(1));
    let k = u32::try_from(g % a).unwrap_or(0);
    let port = u64::from(FIRST_PORT) + (g / a) % PORTS_PER_ADDR;
    SocketAddrV4::new(
        source_addr(k, addrs),
        u16::try_from(port).unwrap_or(FIRST_PORT),
    )
}

/// Sets this process's RLIMIT_NOFILE (soft and hard) to `n` descriptors: lowering is always allowed, raising the
/// hard limit needs CAP_SYS_RESOURCE (this development machine's container lacks it: 20 000 at most there).
pub fn raise_nofile(n: u64) -> Result<()> {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads the struct we pass for the duration of the call; no other memory is involved.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(LabError::io(format!(
            "setting RLIMIT_NOFILE to {n} (above the current hard limit needs CAP_SYS_RESOURCE, and fs.nr_open caps it: \
             spread the connections over more --real-servers/--openers)"
        ))(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A minimal epoll instance (level-triggered); the token of an fd is a caller's `u64`.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> std::io::Result<Epoll> {
        // SAFETY: epoll_create1 has no memory preconditions; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` lives across the call; the kernel only reads it.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> std::io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    pub fn del(&self, fd: RawFd) -> std::io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to `timeout_ms` for events into `evs` (its capacity); returns how many arrived.
    pub fn wait(&self, evs: &mut [libc::epoll_event], timeout_ms: i32) -> std::io::Result<usize> {
        let max = libc::c_int::try_from(evs.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the kernel writes at most `max` events into `evs`, which is that long.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), evs.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

fn event_buf() -> Vec<libc::epoll_event> {
    vec![libc::epoll_event { events: 0, u64: 0 }; 1024]
}

const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLERR_HUP: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

fn line(out: &mut impl Write, text: &str) -> Result<()> {
    writeln!(out, "{text}").map_err(LabError::io("writing to the controller"))?;
    out.flush()
        .map_err(LabError::io("writing to the controller"))
}

/// `rvs-lab hold-serve`: accepts and serves up to `max_conns` connections on `listen` in one epoll loop, prints
/// `ready`, runs until killed.
pub fn serve(name: &str, listen: SocketAddr, max_conns: u64) -> Result<()> {
    raise_nofile(max_conns + 64)?;
    let listener = TcpListener::bind(listen).map_err(LabError::io(format!("binding {listen}")))?;
    listener
        .set_nonblocking(true)
        .map_err(LabError::io("non-blocking listener"))?;
    // A deeper accept queue than std's (capped by the namespace's net.core.somaxconn, 4096 by default): a loaded
    // machine may not run this loop for a while.
    // SAFETY: listen() on a descriptor the listener owns; no memory is involved.
    unsafe { libc::listen(listener.as_raw_fd(), 65_535) };
    let ep = Epoll::new().map_err(LabError::io("epoll"))?;
    const LISTENER: u64 = u64::MAX;
    ep.add(listener.as_raw_fd(), EPOLLIN, LISTENER)
        .map_err(LabError::io("epoll add"))?;
    // Connections by descriptor number (dense), and the rare request split across reads.
    let mut conns: Vec<Option<TcpStream>> = Vec::new();
    let mut partial: HashMap<RawFd, Vec<u8>> = HashMap::new();
    let mut evs = event_buf();
    line(&mut std::io::stdout().lock(), "ready")?;
    let mut buf = [0u8; 256];
    loop {
        let n = ep
            .wait(&mut evs, 1000)
            .map_err(LabError::io("epoll wait"))?;
        for ev in &evs[..n] {
            let token = ev.u64;
            if token == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let fd = s.as_raw_fd();
                            let Ok(i) = usize::try_from(fd) else { continue };
                            if s.set_nonblocking(true).is_err()
                                || ep.add(fd, EPOLLIN, token_of(fd)).is_err()
                            {
                                continue;
                            }
                            if conns.len() <= i {
                                conns.resize_with(i + 1, || None);
                            }
                            conns[i] = Some(s);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        // EMFILE and the like: the connection waits in the accept queue; try again later.
                        Err(_) => break,
                    }
                }
                continue;
            }
            let Ok(i) = usize::try_from(token) else {
                continue;
            };
            let Some(Some(s)) = conns.get_mut(i) else {
                continue;
            };
            let fd = s.as_raw_fd();
            let keep = match s.read(&mut buf) {
                Ok(0) => false,
                Ok(k) => {
                    let pending = partial.entry(fd).or_default();
                    pending.extend_from_slice(&buf[..k]);
                    let mut ok = true;
                    while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                        let req: Vec<u8> = pending.drain(..=nl).collect();
                        if req != REQUEST {
                            ok = false;
                            break;
                        }
                        let peer = s
                            .peer_addr()
                            .map(crate::servers::canonical)
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        ok = s.write_all(format!("{name} {peer}\n").as_bytes()).is_ok();
                    }
                    if pending.is_empty() {
                        partial.remove(&fd);
                    } else if pending.len() > 64 {
                        ok = false;
                    }
                    ok
                }
                Err(e) => e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted,
            };
            if !keep {
                let _ = ep.del(fd);
                partial.remove(&fd);
                conns[i] = None;
            }
        }
    }
}

fn token_of(fd: RawFd) -> u64 {
    u64::try_from(fd).unwrap_or(u64::MAX - 1)
}

/// What [`open`] is told: its slice of the connections and how fast to open them (also the hidden `hold-open`
/// command's arguments, `--target`, `--first`, ...).
#[derive(Debug, Clone, clap::Args)]
pub struct OpenSpec {
    #[arg(long)]
    pub target: SocketAddrV4,
    /// Global index of the first connection of this process, and how many it opens.
    #[arg(long)]
    pub first: u64,
    #[arg(long)]
    pub count: u64,
    /// Source addresses over all processes ([`endpoint`]).
    #[arg(long)]
    pub addrs: u32,
    /// New connections a second, and most in progress at once.
    #[arg(long)]
    pub rate: u64,
    #[arg(long)]
    pub window: usize,
    /// Bound of each phase.
    #[arg(long)]
    pub phase_secs: u64,
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// A non-blocking socket bound to `src`, connecting to `dst` (in progress when this returns).
fn start_connect(src: SocketAddrV4, dst: SocketAddrV4) -> std::io::Result<TcpStream> {
    // SAFETY: socket() has no memory preconditions; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns; the stream closes it.
    let s = unsafe { TcpStream::from_raw_fd(fd) };
    let (sa, da) = (sockaddr(src), sockaddr(dst));
    // SAFETY: `sa` lives across the call and SOCKADDR_LEN is its size.
    if unsafe { libc::bind(fd, std::ptr::from_ref(&sa).cast(), SOCKADDR_LEN) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `da` lives across the call and SOCKADDR_LEN is its size.
    if unsafe { libc::connect(fd, std::ptr::from_ref(&da).cast(), SOCKADDR_LEN) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(s)
}

/// Closes `s` with a reset (SO_LINGER on, 0 s), as a client that gives up.
fn reset(s: TcpStream) {
    // A failure only means a FIN instead.
    let _ = crate::sockopt::linger_zero(&s);
    drop(s);
}

/// Paces a phase: how many items may have started by now at `rate`/s.
struct Pace {
    start: Instant,
    rate: u64,
}

impl Pace {
    fn new(rate: u64) -> Pace {
        Pace {
            start: Instant::now(),
            rate: rate.max(1),
        }
    }
    fn allowed(&self) -> u64 {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        ms.saturating_mul(self.rate) / 1000 + 1
    }
}

/// `rvs-lab hold-open`: see the module docs. Prints `progress OPENED FAILED` every second while opening,
/// `opened OPENED FAILED FIRST_ERROR`, then answers each command on stdin (`use RATE`: `used OK BAD UNANSWERED
/// NAME=COUNT...`; `close RATE`: `closed N`) until stdin closes.
pub fn open(spec: &OpenSpec) -> Result<()> {
    raise_nofile(spec.count + 64)?;
    let n = usize::try_from(spec.count)
        .map_err(|_| LabError::Invalid("too many connections".into()))?;
    let ep = Epoll::new().map_err(LabError::io("epoll"))?;
    let mut conns: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut out = std::io::stdout().lock();
    let mut evs = event_buf();
    let bound = Duration::from_secs(spec.phase_secs);

    // Opening.
    let pace = Pace::new(spec.rate);
    let (mut next, mut inflight, mut opened, mut failed) = (0usize, 0usize, 0u64, 0u64);
    let mut first_error = String::from("-");
    let mut last_report = Instant::now();
    while (opened + failed) < spec.count && pace.start.elapsed() < bound {
        while next < n && inflight < spec.window && (next as u64) < pace.allowed() {
            let src = endpoint(spec.first + next as u64, spec.addrs);
            match start_connect(src, spec.target).and_then(|s| {
                ep.add(s.as_raw_fd(), EPOLLOUT, next as u64)?;
                Ok(s)
            }) {
                Ok(s) => {
                    conns[next] = Some(s);
                    inflight += 1;
                }
                Err(e) => {
                    failed += 1;
                    if first_error == "-" {
                        first_error = format!("{src}:{e}").replace(' ', "_");
                    }
                }
            }
            next += 1;
        }
        let k = ep.wait(&mut evs, 10).map_err(LabError::io("epoll wait"))?;
        for ev in &evs[..k] {
            let Ok(i) = usize::try_from(ev.u64) else {
                continue;
            };
            let Some(slot) = conns.get_mut(i) else {
                continue;
            };
            let Some(s) = slot.take() else { continue };
            inflight = inflight.saturating_sub(1);
            let _ = ep.del(s.as_raw_fd());
            match s.take_error() {
                Ok(None) if ev.events & EPOLLERR_HUP == 0 => {
                    opened += 1;
                    *slot = Some(s);
                }
                r => {
                    failed += 1;
                    if first_error == "-" {
                        first_error = format!("{:?}", r).replace(' ', "_");
                    }
                }
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            line(&mut out, &format!("progress {opened} {failed}"))?;
            last_report = Instant::now();
        }
    }
    // Whatever is still connecting at the bound counts as failed (only those are still registered with epoll).
    for slot in conns.iter_mut() {
        if let Some(s) = slot
            && inflight > 0
            && ep.del(s.as_raw_fd()).is_ok()
        {
            *slot = None;
            inflight -= 1;
            failed += 1;
        }
    }
    failed += spec.count - (opened + failed).min(spec.count);
    line(&mut out, &format!("opened {opened} {failed} {first_error}"))?;

    let stdin = std::io::stdin();
    for cmd in stdin.lock().lines() {
        let cmd = cmd.map_err(LabError::io("reading a command"))?;
        let mut words = cmd.split_whitespace();
        let verb = words.next().unwrap_or("");
        let rate = words.next().and_then(|r| r.parse().ok()).unwrap_or(1000);
        match verb {
            "use" => {
                let r = use_all(&ep, &mut conns, spec, rate, bound, &mut evs)?;
                line(&mut out, &r)?;
            }
            "close" => {
                let pace = Pace::new(rate);
                let mut closed = 0u64;
                for slot in conns.iter_mut() {
                    if let Some(s) = slot.take() {
                        while closed >= pace.allowed() && pace.start.elapsed() < bound {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        reset(s);
                        closed += 1;
                    }
                }
                line(&mut out, &format!("closed {closed}"))?;
            }
            _ => line(&mut out, &format!("error unknown command {cmd:?}"))?,
        }
    }
    Ok(())
}

/// Sends [`REQUEST`] on every open connection (at most `window` outstanding, `rate` a second) and checks each
/// answer names the connection's own source endpoint. Returns the `used ...` line.
fn use_all(
    ep: &Epoll,
    conns: &mut [Option<TcpStream>],
    spec: &OpenSpec,
    rate: u64,
    bound: Duration,
    evs: &mut [libc::epoll_event],
) -> Result<String> {
    let pace = Pace::new(rate);
    let (mut next, mut outstanding, mut sent) = (0usize, 0usize, 0u64);
    let (mut ok, mut bad) = (0u64, 0u64);
    let mut by_server: HashMap<String, u64> = HashMap::new();
    let mut answers: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut buf = [0u8; 256];
    let total = conns.iter().filter(|c| c.is_some()).count() as u64;
    while ok + bad < total && pace.start.elapsed() < bound {
        while next < conns.len() && outstanding < spec.window && sent < pace.allowed() {
            let i = next;
            next += 1;
            let Some(s) = conns[i].as_mut() else { continue };
            sent += 1;
            if s.write_all(REQUEST).is_err() || ep.add(s.as_raw_fd(), EPOLLIN, i as u64).is_err() {
                bad += 1;
                continue;
            }
            outstanding += 1;
        }
        let k = ep.wait(evs, 10).map_err(LabError::io("epoll wait"))?;
        for ev in &evs[..k] {
            let Ok(i) = usize::try_from(ev.u64) else {
                continue;
            };
            let Some(Some(s)) = conns.get_mut(i) else {
                continue;
            };
            let got = match s.read(&mut buf) {
                Ok(0) => None,
                Ok(m) => Some(&buf[..m]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(_) => None,
            };
            let answer = answers.entry(i).or_default();
            let done = match got {
                Some(b) => {
                    answer.extend_from_slice(b);
                    answer.ends_with(b"\n") || answer.len() > 128
                }
                None => true,
            };
            if !done {
                continue;
            }
            let answer = answers.remove(&i).unwrap_or_default();
            let _ = ep.del(s.as_raw_fd());
            outstanding = outstanding.saturating_sub(1);
            let me = endpoint(spec.first + i as u64, spec.addrs).to_string();
            let text = String::from_utf8_lossy(&answer);
            match text.trim_end().split_once(' ') {
                Some((name, seen)) if seen == me => {
                    ok += 1;
                    *by_server.entry(name.to_string()).or_default() += 1;
                }
                _ => bad += 1,
            }
        }
    }
    let unanswered = total.saturating_sub(ok + bad);
    let mut servers: Vec<_> = by_server.into_iter().collect();
    servers.sort();
    let servers: Vec<String> = servers.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!(
        "used {ok} {bad} {unanswered} {}",
        servers.join(" ")
    ))
}

/// Reads one line from a holder's stdout (`BufRead`), trimmed; `None` at EOF.
pub fn read_line(r: &mut impl BufRead) -> Option<String> {
    let mut s = String::new();
    match r.read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s.trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_unique_and_spread_over_the_benchmark_range() {
        let n = 200_000u64;
        let addrs = addrs_for(n);
        assert_eq!(addrs, 1024);
        let mut seen = std::collections::HashSet::new();
        for g in 0..n {
            let e = endpoint(g, addrs);
            let o = e.ip().octets();
            assert!(
                o[0] == 198 && (o[1] == 18 || o[1] == 19),
                "{e} outside 198.18.0.0/15"
            );
            assert!(!(o[1] == 18 && o[2] == 0), "{e} in 198.18.0.0/24");
            assert!(e.port() >= FIRST_PORT);
            assert!(seen.insert(e), "{e} used twice");
        }
        assert_eq!(addrs_for(1_000_000), 1024);
        assert_eq!(addrs_for(100_000_000), 2223);
        // The last address sits near the top of the /15.
        let last = source_addr(1023, 1024).octets();
        assert_eq!((last[0], last[1]), (198, 19));
    }
}
