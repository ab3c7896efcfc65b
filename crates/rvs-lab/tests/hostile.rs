//! Hostile input, live (issue 15): malformed packets from a raw socket in the client namespace (truncated and lying
//! headers, bad checksums, IP options, fragments, ICMP errors quoting nonsense, scan flag combinations) and garbage,
//! oversized and half-written requests at the control socket. rvsd keeps serving, counts the drops, and its
//! configuration is unchanged. Also a bounded SYN flood from spoofed sources with real clients requesting through it.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rvs_lab::hostile::{self, RawSender};
use rvs_lab::lab::{self, CIP, Lab, VIP};
use rvs_lab::testing::adm;
use rvs_lab::{client, testing};

fn service(lab: &Lab, extra: &[&str]) {
    let mut a = vec!["-A", "-t", "198.51.100.100:80", "-s", "rr"];
    a.extend_from_slice(extra);
    adm(lab, &a);
    for i in 1..=2 {
        adm(
            lab,
            &[
                "-a",
                "-t",
                "198.51.100.100:80",
                "-r",
                &format!("{}:80", lab::rip(i)),
                "-m",
            ],
        );
    }
}

/// The defence block of `rvsadm -L --json`.
fn defense(lab: &Lab) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&adm(lab, &["-L", "-n", "--json"])).unwrap();
    v["defense"].clone()
}

fn drops_total(d: &serde_json::Value) -> u64 {
    d["drops"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum())
}

#[test]
fn malformed_packets_and_garbage_requests_leave_rvsd_serving_its_configuration() {
    let Some(lab) = testing::lab("hostile", 2, testing::Rvsd::Started) else {
        return;
    };
    service(&lab, &[]);
    let config_before = adm(&lab, &["-S", "-n"]);
    let pid = lab.rvsd_pid();
    let drops_before = drops_total(&defense(&lab));

    let packets = hostile::malformed(CIP, VIP);
    let n = packets.len();
    let (sent, refused) = lab
        .in_client(move || {
            let tx = RawSender::new()?;
            let (mut sent, mut refused) = (0u32, 0u32);
            for _ in 0..20 {
                for (_, p) in &packets {
                    match tx.send(p, VIP) {
                        Ok(()) => sent += 1,
                        Err(_) => refused += 1,
                    }
                }
            }
            Ok((sent, refused))
        })
        .unwrap();
    eprintln!("{n} kinds x 20: {sent} sent, {refused} refused by the client's kernel");
    assert!(sent > 0);

    // The control socket: garbage, an oversized line, half-written requests, a deep JSON bomb, invalid UTF-8.
    let sock = lab.socket();
    let answer = |payload: &[u8]| -> Option<String> {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(payload);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line)
    };
    for garbage in [
        &b"\x00\x01\x02garbage\xff\xfe\n"[..],
        b"{\"version\":1,\"command\":{\"add_service\":{\"key\":\n",
        b"{\"version\":1,\"command\":\"clear\"",
        b"{\"version\":99,\"command\":\"clear\"}\n",
        b"{\"version\":1,\"command\":{\"delete_service\":{\"addr\":{\"protocol\":\"tcp\",\"addr\":\"not an ip\",\"port\":80}}}}\n",
        b"\n\n\n",
    ] {
        if let Some(line) = answer(garbage) {
            assert!(line.is_empty() || line.contains("\"err\""), "{line}");
        }
    }
    // A whole, valid request whose newline never came (the client died mid-write) is not executed.
    let cut = answer(b"{\"version\":1,\"command\":\"clear\"}").unwrap_or_default();
    assert!(
        cut.is_empty(),
        "a request without its newline got an answer: {cut}"
    );
    let bomb = [vec![b'['; 100_000], vec![b']'; 100_000], vec![b'\n']].concat();
    let line = answer(&bomb).unwrap_or_default();
    assert!(
        line.contains("\"err\""),
        "a nesting bomb is refused: {line:.200}"
    );
    let oversized = [vec![b'x'; 8 << 20], vec![b'\n']].concat();
    let line = answer(&oversized).unwrap_or_default();
    assert!(
        line.contains("\"err\""),
        "an 8 MiB garbage line is refused: {line:.200}"
    );
    // Many clients connecting and leaving without a word.
    for _ in 0..200 {
        drop(UnixStream::connect(&sock).unwrap());
    }

    // Still serving, same process, same configuration, drops counted.
    let t = lab
        .in_client(|| client::run_requests(lab::vip(80), 50, 4, Duration::from_secs(60)))
        .unwrap_or_else(|e| {
            panic!(
                "requests after the hostile input: {e}\n{}",
                lab.rvsd_log_text()
            )
        });
    assert_eq!(t.total(), 50);
    assert_eq!(lab.rvsd_pid(), pid, "rvsd kept running");
    assert_eq!(
        adm(&lab, &["-S", "-n"]),
        config_before,
        "configuration unchanged"
    );
    let d = defense(&lab);
    let after = drops_total(&d);
    eprintln!("drops by reason after the hostile input: {}", d["drops"]);
    assert!(
        after > drops_before,
        "the hostile packets that reached rvsd were counted: {}",
        d["drops"]
    );
    assert!(
        d["drops"]["not_syn"].as_u64().unwrap_or(0) >= 20,
        "scan segments counted: {}",
        d["drops"]
    );
}

/// Seconds of flood (RVS_FLOOD_SECS, default 5: the CI's bounded version).
fn flood_secs() -> u64 {
    std::env::var("RVS_FLOOD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Real clients making requests at once during a flood (`RVS_FLOOD_CLIENTS`, default 1, what CI runs). With one,
/// a starved run (each request waiting seconds on SYN retransmissions) gives a handful of samples and its success
/// ratio says little; several give the ratio enough requests to mean something at the lab's full rate.
fn flood_clients() -> usize {
    std::env::var("RVS_FLOOD_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Requests on new connections for `secs` from `clients` clients, each one request at a time: (ok, failed,
/// latencies in µs).
fn measure(lab: &Lab, secs: u64, clients: usize) -> (usize, usize, Vec<u64>) {
    lab.in_client(move || {
        // Threads started here inherit the client namespace of this one.
        let per_client: Vec<(usize, usize, Vec<u64>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..clients)
                .map(|_| {
                    s.spawn(move || {
                        let start = Instant::now();
                        let (mut ok, mut failed, mut lat) = (0, 0, Vec::new());
                        while start.elapsed() < Duration::from_secs(secs) {
                            let t = Instant::now();
                            match client::get(lab::vip(80), Duration::from_secs(3)) {
                                Ok(_) => {
                                    ok += 1;
                                    lat.push(t.elapsed().as_micros() as u64);
                                }
                                Err(_) => failed += 1,
                            }
                        }
                        (ok, failed, lat)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a client thread panicked"))
                .collect()
        });
        let (mut ok, mut failed, mut lat) = (0, 0, Vec::new());
        for (o, f, l) in per_client {
            ok += o;
            failed += f;
            lat.extend(l);
        }
        lat.sort_unstable();
        Ok((ok, failed, lat))
    })
    .unwrap()
}

/// rvsd's resident set (VmRSS) in KiB.
fn rss_kib(lab: &Lab) -> u64 {
    let Some(pid) = lab.rvsd_pid() else { return 0 };
    // `ip netns exec` runs rvsd as its child (exec): the pid is rvsd's own.
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The kernel's counters of namespace `ns` (/proc/net/netstat and /proc/net/snmp read from inside it), by
/// "Group:Name" (e.g. "TcpExt:ListenOverflows"), for the ones asked.
fn kernel_counters(ns: &str, names: &[&str]) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for file in ["/proc/net/netstat", "/proc/net/snmp"] {
        let text = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "cat", file])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [head, vals] = pair else { continue };
            let mut h = head.split_whitespace();
            let mut v = vals.split_whitespace();
            let (Some(group), Some(_)) = (h.next(), v.next()) else {
                continue;
            };
            for (k, val) in h.zip(v) {
                let key = format!("{group}{k}");
                if names.contains(&key.as_str()) {
                    out.insert(key, val.parse().unwrap_or(0));
                }
            }
        }
    }
    out
}

/// What the flood costs where: the real servers' listen queues and SYN cookies, the director's routing of the
/// flood's SYN-ACKs and its TUN queue, rvsd's CPU. Printed before and after, for RELIABILITY.md.
struct FloodProbe {
    rs: Vec<std::collections::BTreeMap<String, u64>>,
    director: std::collections::BTreeMap<String, u64>,
    cpu_ticks: u64,
    /// Packets the kernel could not queue into rvsd's TUN (its queue full: rvsd behind).
    tun_tx_dropped: u64,
    /// The machine's per-CPU input backlog drops (/proc/net/softnet_stat, all namespaces: veth pairs deliver
    /// through it), summed over CPUs.
    backlog_drops: u64,
}

fn backlog_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|v| u64::from_str_radix(v, 16).ok())
        .sum()
}

const RS_COUNTERS: &[&str] = &[
    "TcpExt:ListenOverflows",
    "TcpExt:ListenDrops",
    "TcpExt:SyncookiesSent",
    "TcpExt:TCPReqQFullDoCookies",
    "TcpExt:TCPReqQFullDrop",
    "Tcp:PassiveOpens",
    "Tcp:RetransSegs",
];
const DIRECTOR_COUNTERS: &[&str] = &[
    "Ip:OutNoRoutes",
    "Ip:ForwDatagrams",
    "Ip:InDiscards",
    "Ip:OutDiscards",
    "Icmp:OutDestUnreachs",
];

fn rvsd_cpu_ticks(lab: &Lab) -> u64 {
    let Some(pid) = lab.rvsd_pid() else { return 0 };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

impl FloodProbe {
    fn take(lab: &Lab) -> Self {
        Self {
            rs: (1..=2)
                .map(|i| kernel_counters(&lab.rs(i), RS_COUNTERS))
                .collect(),
            director: kernel_counters(&lab.director(), DIRECTOR_COUNTERS),
            cpu_ticks: rvsd_cpu_ticks(lab),
            tun_tx_dropped: lab.tun_tx_dropped(),
            backlog_drops: backlog_drops(),
        }
    }

    fn report(&self, after: &Self, secs: f64) -> String {
        let delta = |a: &std::collections::BTreeMap<String, u64>,
                     b: &std::collections::BTreeMap<String, u64>| {
            b.iter()
                .map(|(k, v)| format!("{k}+{}", v.saturating_sub(*a.get(k).unwrap_or(&0))))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut out = format!(
            "rvsd CPU {:.0} % of one core; TUN queue drops +{}; the machine's input backlog drops +{}; director: {}",
            after.cpu_ticks.saturating_sub(self.cpu_ticks) as f64 / secs.max(0.1),
            after.tun_tx_dropped.saturating_sub(self.tun_tx_dropped),
            after.backlog_drops.saturating_sub(self.backlog_drops),
            delta(&self.director, &after.director)
        );
        for (i, (a, b)) in self.rs.iter().zip(&after.rs).enumerate() {
            out.push_str(&format!("; rs{}: {}", i + 1, delta(a, b)));
        }
        out
    }
}

fn pct(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * p) as usize]
}

#[test]
fn real_clients_get_through_a_syn_flood_from_spoofed_sources() {
    flood("synflood", &[], |_, _| {});
}

/// The SYN gate's mode for [`real_clients_get_through_a_syn_flood_with_the_syn_gate`] (`RVS_FLOOD_SYN_GATE`:
/// off, auto or always; default always, what CI runs: its bounded flood, 2000 SYN/s, does not overload the slow
/// path, so `auto` rightly stays off there; `auto` is measured at the lab's full rate, RELIABILITY.md).
fn flood_syn_gate() -> String {
    std::env::var("RVS_FLOOD_SYN_GATE").unwrap_or_else(|_| "always".to_owned())
}

/// The same flood with `--fast-path xdp` and the SYN gate (`always` by default; with `auto` at the full rate it must
/// turn itself on when the TUN drops the flood's SYNs): it holds the flood at the driver and lets the real clients'
/// retransmitted SYNs in.
#[test]
fn real_clients_get_through_a_syn_flood_with_the_syn_gate() {
    let mode = flood_syn_gate();
    let args = ["--fast-path", "xdp", "--syn-gate", mode.as_str()];
    flood("syngate", &args, |lab, d| {
        let g = &d["syn_gate"];
        assert_eq!(g["mode"].as_str(), Some(mode.as_str()), "{g}");
        if mode == "off" {
            assert_eq!(g["held"].as_u64(), Some(0), "{g}");
            return;
        }
        assert!(
            g["held"].as_u64().unwrap_or(0) > 0,
            "the gate held flood SYNs: {g}"
        );
        if mode == "auto" {
            assert!(
                g["switched_on"].as_u64().unwrap_or(0) >= 1,
                "auto turned the gate on under the flood: {g}"
            );
        }
        // Still on (auto waits 10 calm seconds): a real client gets in at its SYN's retransmission, counted.
        assert_eq!(g["on"].as_bool(), Some(true), "{g}");
        let passed0 = g["passed"].as_u64().unwrap_or(0);
        let n = lab
            .in_client(|| {
                let mut n = 0u64;
                for _ in 0..3 {
                    client::get(lab::vip(80), Duration::from_secs(5))?;
                    n += 1;
                }
                Ok(n)
            })
            .unwrap_or_else(|e| {
                panic!(
                    "requests through the gate after the flood: {e}\n{}",
                    lab.rvsd_log_text()
                )
            });
        let g = defense(lab)["syn_gate"].clone();
        eprintln!("3 requests through the gate after the flood: {g}");
        assert_eq!(n, 3);
        assert!(
            g["passed"].as_u64().unwrap_or(0) >= passed0 + 3,
            "each request's SYN was held once and its retransmission passed: {passed0} before, {g}"
        );
    });
}

/// A flood from spoofed sources with real clients requesting before and during it; rvsd started with `extra`.
/// `after` checks the lab and the defence block after the flood.
fn flood(name: &str, extra: &[&str], after: impl FnOnce(&Lab, &serde_json::Value)) {
    let secs = flood_secs();
    // A small table, so the flood fills it within the run: the defences must keep it bounded and serve real clients.
    let max: u64 = std::env::var("RVS_FLOOD_MAX_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    // SYNs a second (RVS_FLOOD_PPS, 0: as fast as the socket takes them). CI's bounded version sends 2000 a second
    // into a 5000-entry table: full within 3 s, so the defences act, without saturating a debug build's data plane
    // on a shared 2-core machine (that measures the TUN, not the table: see RELIABILITY.md for the unlimited run).
    let pps: u64 = std::env::var("RVS_FLOOD_PPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let Some(mut lab) = testing::lab(name, 2, testing::Rvsd::NotStarted) else {
        return;
    };
    lab.cfg
        .rvsd_args
        .extend(["--max-conns".to_string(), max.to_string()]);
    lab.cfg
        .rvsd_args
        .extend(extra.iter().map(|a| (*a).to_owned()));
    lab.start_rvsd().unwrap();
    service(&lab, &[]);
    let rss0 = rss_kib(&lab);
    let clients = flood_clients();
    let (ok0, failed0, lat0) = measure(&lab, secs, clients);
    let gate0 = defense(&lab)["syn_gate"].clone();
    let flood = {
        let ns = lab.client();
        std::thread::spawn(move || {
            rvs_lab::netns::run_in(&ns, move || {
                hostile::syn_flood(VIP, 80, Duration::from_secs(secs), (pps > 0).then_some(pps))
            })
        })
    };
    let probe0 = FloodProbe::take(&lab);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let (ok1, failed1, lat1) = measure(&lab, secs.saturating_sub(1).max(1), clients);
    let probe1 = FloodProbe::take(&lab);
    let probe_secs = t0.elapsed().as_secs_f64();
    let f = flood.join().unwrap().unwrap();
    eprintln!("during the flood: {}", probe0.report(&probe1, probe_secs));
    let d = defense(&lab);
    let rss1 = rss_kib(&lab);
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for l in adm(&lab, &["-L", "-n", "-c"]).lines().skip(2) {
        if let Some(st) = l.split_whitespace().nth(2) {
            *states.entry(st.to_owned()).or_default() += 1;
        }
    }
    eprintln!("connection states after the flood: {states:?}");
    let entries = d["conns"].as_u64().unwrap_or(0).max(1);
    eprintln!(
        "rvsd RSS {rss0} KiB before, {rss1} KiB with {entries} entries: {:.0} bytes per entry",
        (rss1.saturating_sub(rss0) * 1024) as f64 / entries as f64
    );
    let rate0 = ok0 as f64 / (ok0 + failed0).max(1) as f64;
    let rate1 = ok1 as f64 / (ok1 + failed1).max(1) as f64;
    eprintln!(
        "flood: {} SYNs in {:.1} s ({:.0}/s); {clients} real client(s); without: {ok0} ok {failed0} failed, p50 {} µs p99 {} µs; during: {ok1} ok \
         {failed1} failed ({:.1} %), p50 {} µs p99 {} µs; table {} of {max}, evicted {}, dropped {}, drops {}",
        f.sent,
        f.secs,
        f.sent as f64 / f.secs,
        pct(&lat0, 0.5),
        pct(&lat0, 0.99),
        rate1 * 100.0,
        pct(&lat1, 0.5),
        pct(&lat1, 0.99),
        d["conns"],
        d["entries_evicted"],
        d["entries_dropped"],
        d["drops"],
    );
    eprintln!(
        "rvsd {}: SYN gate before the flood {gate0}, after {}",
        extra.join(" "),
        d["syn_gate"]
    );
    assert!(rate0 > 0.99, "{ok0} ok {failed0} failed without the flood");
    assert!(
        rate1 >= 0.95,
        "{:.1} % of real requests succeeded during the flood",
        rate1 * 100.0
    );
    let conns = d["conns"].as_u64().unwrap_or(u64::MAX);
    assert!(
        conns <= max + max / 50,
        "the table stayed under its limit: {conns}"
    );
    after(&lab, &d);
}

/// `--syn-gate always` needs the fast path's program: without `--fast-path`, rvsd refuses to start and says why
/// (before it creates anything: no lab needed).
#[test]
fn syn_gate_always_without_the_fast_path_is_refused() {
    let bins = rvs_lab::bins::find().unwrap();
    let out = std::process::Command::new(&bins.rvsd)
        .args([
            "--socket",
            "/nonexistent/rvsd-test.sock",
            "--syn-gate",
            "always",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rvsd started: {err}");
    assert!(
        err.contains("--syn-gate always needs the XDP fast path"),
        "{err}"
    );
}
