//! `rvs-lab up`, `down` and `exec`: a lab to play with by hand; and `down` for the labs of processes that died (the
//! tests' and the bench's, [`reap_stale_labs`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::lab::{self, Lab, LabConfig};

/// Where `up` keeps a lab's state (socket, rules, logs, state.json).
pub fn state_root() -> PathBuf {
    PathBuf::from("/run/rvs-lab")
}

/// The state directory for a new lab `prefix` under `root`, or [`LabError::StillUp`] when a lab of that prefix left
/// its `state.json` there (it is up, or was not taken down).
fn free_state_dir(root: &Path, prefix: &str) -> Result<PathBuf> {
    let state_dir = root.join(prefix);
    if state_dir.join("state.json").exists() {
        return Err(LabError::StillUp {
            prefix: prefix.into(),
            what: format!("{}", state_dir.display()),
        });
    }
    Ok(state_dir)
}

/// `rvs-lab up` (LVS-NAT).
pub fn up(prefix: &str, real_servers: usize, scheduler: &str) -> Result<()> {
    up_with(prefix, real_servers, scheduler, lab::Method::Nat, false)
}

/// `rvs-lab up --method M`: DR and TUN labs put a router in front (clients at 198.18.0.10) and shape the real
/// servers for the method (see [`lab::Method`]).
pub fn up_with(
    prefix: &str,
    real_servers: usize,
    scheduler: &str,
    method: lab::Method,
    ha: bool,
) -> Result<()> {
    let state_dir = free_state_dir(&state_root(), prefix)?;
    let cfg = LabConfig {
        prefix: prefix.into(),
        real_servers,
        servers: true,
        rvsd: true,
        state_dir: Some(state_dir),
        router: method != lab::Method::Nat,
        method,
        ha,
        directors: if ha { 2 } else { 1 },
        rvsd_directors: if ha { 2 } else { 1 },
        ..LabConfig::default()
    };
    let lab = Lab::up(cfg)?;
    if ha {
        println!(
            "HA: {d1} (VRRP priority 150) and {d2} (100) share the VIP {vip} (VRID {v1}) and the real servers' gateway \
             {gw} (VRID {v2}), and for IPv6 {vip6} (VRID {v61}) and {gw6} (VRID {v62}, VRRP version 3); connection \
             sync both ways on {priv_if}. Configure the same services on both.",
            d1 = lab.director_n(1),
            d2 = lab.director_n(2),
            vip = lab::VIP,
            v1 = lab::HA_VRID_PUBLIC,
            gw = lab::HA_GATEWAY,
            v2 = lab::HA_VRID_PRIVATE,
            vip6 = lab::VIP6,
            v61 = lab::HA_VRID_PUBLIC6,
            gw6 = lab::HA_GATEWAY6,
            v62 = lab::HA_VRID_PRIVATE6,
            priv_if = lab::PRIVATE_IF,
        );
    }
    let flag = method.rvsadm_flag();
    let (client, director) = (lab.client(), lab.director());
    let (pubsw, privsw) = (lab.pubsw(), lab.privsw());
    let vip = lab::VIP;
    let (me, p) = hint_words(prefix);
    let mut rs_lines = String::new();
    for i in 1..=real_servers {
        rs_lines.push_str(&format!(
            "  {me} exec {director} rvsadm -a -t {vip}:80 -r {}:80 {flag} -w 1\n",
            lab::rip(i)
        ));
    }
    let rs_names: Vec<String> = (1..=real_servers).map(|i| lab.rs(i)).collect();
    let socket = lab.socket();
    let log = lab.rvsd_log();
    let _state = lab.detach()?;
    println!(
        "The lab is up:
  client    {client}: {cip}, {cip6}
  director  {director}: public {pubip}, {pubip6} (VIP {vip}, {vip6}), private {dip}, {dip6} (DIP); rvsd running, no services
  switches  {pubsw} (client, director's pub0), {privsw} (director's priv0, real servers): a bridge each
  real servers {rs}: {rips} and 2001:db8:0:2::11, ... (HTTP :80 answers with its name and the client address it saw;
               UDP echo :53)
  rvsd socket {socket}, log {log}

Try:
  {me} exec {director} rvsadm -A -t {vip}:80 -s {scheduler}
{rs_lines}  {me} exec {client} curl -s http://{vip}/
  {me} exec {director} rvsadm -L -n --stats

Remove it with:
  {me} down{p}",
        cip = lab::CIP,
        cip6 = lab::CIP6,
        pubip = lab::PUBLIC_IP,
        pubip6 = lab::PUBLIC_IP6,
        vip6 = lab::VIP6,
        dip = lab::DIP,
        dip6 = lab::DIP6,
        rs = rs_names.join(", "),
        rips = (1..=real_servers).map(|i| lab::rip(i).to_string()).collect::<Vec<_>>().join(", "),
        socket = socket.display(),
        log = log.display(),
    );
    Ok(())
}

/// `rvs-lab up --directors N` (N > 1): the router runs BIRD with ECMP over N directors, each running rvsd
/// (`--sloppy-tcp`), BIRD and rvs-announce (see [`crate::bgp`] and SCALING.md). Needs `--method dr` or `tun`.
pub fn up_ecmp(
    prefix: &str,
    real_servers: usize,
    method: lab::Method,
    directors: usize,
) -> Result<()> {
    if method == lab::Method::Nat {
        return Err(LabError::Invalid(
            "several directors need --method dr or tun: with NAT a reply must come back through the director \
             that saw the request, which ECMP cannot promise (SCALING.md)"
                .into(),
        ));
    }
    let state_dir = free_state_dir(&state_root(), prefix)?;
    let cfg = LabConfig {
        prefix: prefix.into(),
        real_servers,
        state_dir: Some(state_dir),
        router: true,
        bgp: true,
        directors,
        rvsd_directors: directors,
        rvsd_args: vec!["--sloppy-tcp".into()],
        method,
        ..LabConfig::default()
    };
    let lab = Lab::up(cfg)?;
    let (me, p) = hint_words(prefix);
    let (vip, flag) = (lab::VIP, method.rvsadm_flag());
    let mut conf = String::new();
    for i in 1..=real_servers {
        conf.push_str(&format!(
            " rvsadm -a -t {vip}:80 -r {}:80 {flag};",
            lab::rip(i)
        ));
    }
    let dirs: Vec<String> = (1..=directors).map(|k| lab.director_n(k)).collect();
    let (client, router) = (lab.client(), lab.router());
    let _state = lab.detach()?;
    println!(
        "The scale-out lab is up:
  client   {client}: {cip} -> router {router} (BIRD, ECMP with a 5-tuple hash) -> {n} directors
  directors {dirs}: 198.51.100.1..{n} each running rvsd --sloppy-tcp, BIRD (AS 65001) and rvs-announce
  real servers on the private switch ({method:?}: the VIP on lo, replies through the router)

Configure every director alike (mh with mh-port: each maps a flow to the same real server), e.g.:
  for d in {dirs}; do
    {me} exec $d sh -c 'rvsadm -A -t {vip}:80 -s mh -b mh-port;{conf}'
  done
  {me} exec {router} ip route show {vip}        # one next hop per director announcing the VIP
  {me} exec {client} curl -s http://{vip}/

Remove it with:
  {me} down{p}",
        cip = lab::ROUTED_CIP,
        n = directors,
        dirs = dirs.join(" "),
    );
    Ok(())
}

/// The words of the printed hints: this program as invoked (e.g. target/release/rvs-lab, so a hint can be pasted as
/// it is), and ` --prefix P` unless the prefix is the default.
fn hint_words(prefix: &str) -> (String, String) {
    let me = std::env::args().next().unwrap_or_else(|| "rvs-lab".into());
    let p = if prefix == "rvs" {
        String::new()
    } else {
        format!(" --prefix {prefix}")
    };
    (me, p)
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// True while `pid` runs (a zombie waiting for its new parent to reap it counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn stop_pid(pid: u32, what: &str) {
    let cl = cmdline(pid);
    if !(cl.contains("rvsd")
        || cl.contains("rvs-lab")
        || cl.contains("rvs-announce")
        || cl.contains("bird"))
    {
        return; // gone, or the pid was reused by something else: not ours
    }
    let sig = if what.starts_with("rvsd") {
        libc::SIGTERM
    } else {
        libc::SIGKILL
    };
    crate::cleanup::signal(pid, sig);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        crate::cleanup::signal(pid, libc::SIGKILL);
    }
}

/// `rvs-lab down`: stops the lab's processes (rvsd with SIGTERM so it removes its steering), removes its
/// namespaces and state.
pub fn down(prefix: &str) -> Result<()> {
    let state_dir = state_root().join(prefix);
    let state = state_dir.join("state.json");
    let mut namespaces: Vec<String> = Vec::new();
    let mut found = false;
    if let Ok(text) = std::fs::read_to_string(&state) {
        found = true;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| LabError::Invalid(format!("{}: {e}", state.display())))?;
        let procs = v["procs"].as_array().cloned().unwrap_or_default();
        // rvsd first (it was started last), then the servers.
        for p in procs.iter().rev() {
            if let Some(pid) = p["pid"].as_u64().and_then(|x| u32::try_from(x).ok()) {
                stop_pid(pid, p["name"].as_str().unwrap_or(""));
            }
        }
        namespaces.extend(
            v["namespaces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(String::from)),
        );
    }
    // Also any namespace of this prefix left behind (e.g. by a killed `up`).
    let listed = crate::cmd::ip(&["netns", "list"])?;
    for line in listed.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let rest = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .unwrap_or("");
        if lab::is_lab_ns_suffix(rest) && !namespaces.iter().any(|n| n == name) {
            namespaces.push(name.to_string());
        }
    }
    for ns in &namespaces {
        if crate::netns::exists(ns) {
            found = true;
            // Processes still inside (started by this lab): stop them by pid before removing the namespace.
            if let Ok(pids) = crate::cmd::ip(&["netns", "pids", ns]) {
                for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                    stop_pid(
                        pid,
                        if cmdline(pid).contains("rvsd") {
                            "rvsd"
                        } else {
                            "server"
                        },
                    );
                }
            }
            crate::cmd::ip(&["netns", "del", ns])?;
            println!("removed namespace {ns}");
        }
    }
    if state_dir.exists() {
        std::fs::remove_dir_all(&state_dir)
            .map_err(LabError::io(format!("removing {}", state_dir.display())))?;
    }
    if found {
        println!("the lab `{prefix}` is down");
    } else {
        println!("no lab `{prefix}` is up");
    }
    Ok(())
}

/// Finds the state of the lab owning namespace `ns`: (socket, bin dir).
fn lab_of(ns: &str) -> Option<(PathBuf, Option<PathBuf>)> {
    for entry in std::fs::read_dir(state_root()).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("state.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if v["namespaces"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n.as_str() == Some(ns)))
        {
            // A director's own rvsd, else the first director's.
            let socket = v["sockets"][ns]
                .as_str()
                .or_else(|| v["socket"].as_str())
                .unwrap_or_default();
            return Some((
                PathBuf::from(socket),
                v["bin_dir"].as_str().map(PathBuf::from),
            ));
        }
    }
    None
}

/// `rvs-lab exec NS CMD...`: runs the command in the namespace with PATH finding rvsd/rvsadm and RVS_SOCKET set;
/// returns its exit code.
pub fn exec(ns: &str, command: &[String]) -> Result<i32> {
    if !crate::netns::exists(ns) {
        return Err(LabError::Invalid(format!(
            "no namespace {ns}; is the lab up? (`rvs-lab up`)"
        )));
    }
    let (socket, bin_dir) = lab_of(ns).unwrap_or((PathBuf::from("/run/rvsd.sock"), None));
    let bin_dir = bin_dir.or_else(|| crate::bins::find().ok().map(|b| b.dir().to_path_buf()));
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(d) = bin_dir {
        let mut p = d.into_os_string();
        p.push(":");
        p.push(&path);
        path = p;
    }
    let (prog, args) = command
        .split_first()
        .ok_or_else(|| LabError::Invalid("exec needs a command".into()))?;
    let status = Command::new("ip")
        .args(["netns", "exec", ns, prog])
        .args(args)
        .env("PATH", path)
        .env("RVS_SOCKET", socket)
        .status()
        .map_err(LabError::io("running ip netns exec"))?;
    Ok(status.code().unwrap_or(1))
}

/// Removes labs whose prefix is `STEM<PID>...` (namespaces `STEM<PID>-...`, state directories
/// `rvs-lab-STEM<PID>...`) when process PID no longer runs, with their processes: the tests use `rvst`, the bench
/// `rvsb`.
pub fn reap_stale_labs(stem: &str) {
    let Ok(list) = crate::cmd::ip(&["netns", "list"]) else {
        return;
    };
    let dead = |rest: &str| {
        let pid = rest.split(['-', '_']).next().unwrap_or("");
        pid.parse::<u32>()
            .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    let mut prefixes = std::collections::BTreeSet::new();
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(stem) else {
            continue;
        };
        if rest.contains('-')
            && dead(rest)
            && let Some((prefix, _)) = name.rsplit_once('-')
        {
            prefixes.insert(prefix.to_string());
        }
    }
    for prefix in prefixes {
        eprintln!("removing the stale lab {prefix} (the process that built it is gone)");
        let _ = down(&prefix);
    }
    // Their state directories (rvsd socket, rules, logs) too.
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let dir_stem = format!("rvs-lab-{stem}");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.strip_prefix(&dir_stem).is_some_and(dead) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_dir_is_free_until_a_lab_leaves_its_state_there() {
        let root = std::env::temp_dir().join(format!("rvs-lab-manage-test-{}", std::process::id()));
        let dir = free_state_dir(&root, "p1").expect("nothing there yet");
        assert_eq!(dir, root.join("p1"));
        std::fs::create_dir_all(&dir).expect("create the state dir");
        assert!(
            free_state_dir(&root, "p1").is_ok(),
            "an empty directory is no lab"
        );
        std::fs::write(dir.join("state.json"), "{}").expect("write state.json");
        let still = free_state_dir(&root, "p1");
        let other = free_state_dir(&root, "p2");
        std::fs::remove_dir_all(&root).expect("clean up");
        match still {
            Err(LabError::StillUp { prefix, what }) => {
                assert_eq!(prefix, "p1");
                assert_eq!(what, dir.display().to_string());
            }
            other => panic!("expected StillUp, got {other:?}"),
        }
        assert_eq!(other.expect("another prefix is free"), root.join("p2"));
    }
}
