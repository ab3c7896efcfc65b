//! Operations end to end: rvsd's `/metrics` scraped live (promtool, a real Prometheus) and its live view in a real
//! headless Chromium, all inside the lab's director namespace on its loopback.
//!
//! Needs root and the lab's prerequisites, plus promtool/prometheus/chromium (`.ci/run` installs them): FAILS
//! under CI=true without them, skips (saying so) otherwise.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvs_lab::client::Connection;
use rvs_lab::lab::{self, Lab, LabConfig, VIP};
use rvs_lab::testing::adm;
use rvs_lab::{LabError, client, netns, testing};

/// Where rvsd serves metrics inside the director namespace (its own loopback: no clash between labs).
const METRICS: &str = "127.0.0.1:9100";

/// True when `tool` runs; else fails under CI=true, skips (saying why) outside.
fn tool(test: &str, tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = format!("{tool} is not installed (apt-get install it; .ci/run does)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {why} (CI=true: this is a failure, not a skip)");
        }
        eprintln!("SKIPPED {test}: {why}");
    }
    ok
}

/// A lab whose rvsd serves metrics, with a TCP rr service on VIP:80 over two real servers.
fn metrics_lab(test: &str) -> Option<Lab> {
    metrics_lab_with(test, &[])
}

fn metrics_lab_with(test: &str, extra: &[&str]) -> Option<Lab> {
    if !testing::lab_available(test) {
        return None;
    }
    testing::reap_stale_test_labs();
    let cfg = LabConfig {
        real_servers: 2,
        rvsd_args: ["--metrics", METRICS]
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect(),
        ..LabConfig::unique("")
    };
    let lab = Lab::up(cfg).unwrap_or_else(|e| panic!("{test}: building the lab failed: {e}"));
    adm(&lab, &["-A", "-t", &format!("{VIP}:80"), "-s", "rr"]);
    for i in 1..=2 {
        let rs = format!("{}:80", lab::rip(i));
        adm(&lab, &["-a", "-t", &format!("{VIP}:80"), "-r", &rs, "-m"]);
    }
    Some(lab)
}

/// One HTTP/1.0 GET; returns the body of a 200 answer.
fn http_get(addr: SocketAddr, path: &str) -> rvs_lab::Result<String> {
    let err = |what: String| LabError::Check(what);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| err(format!("connecting to {addr}: {e}")))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| err(e.to_string()))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| err(format!("sending to {addr}: {e}")))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .map_err(|e| err(format!("reading from {addr}: {e}")))?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| err(format!("no HTTP answer from {addr}{path}")))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(err(format!("GET {path}: {head}")));
    }
    Ok(body.to_owned())
}

/// GET inside the director namespace (the listeners are on its loopback).
fn get_in_director(lab: &Lab, addr: &str, path: &str) -> String {
    let addr: SocketAddr = addr.parse().unwrap();
    let p = path.to_owned();
    netns::run_in(&lab.director(), move || http_get(addr, &p))
        .unwrap_or_else(|e| panic!("GET {addr}{path}: {e}\nrvsd log:\n{}", lab.rvsd_log_text()))
}

fn scrape(lab: &Lab) -> String {
    get_in_director(lab, METRICS, "/metrics")
}

/// `name{labels} value` lines of a scrape, keyed by `name{labels}`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// `rvsadm -Ln --stats --exact`: (service numbers, per real server "addr:port" -> numbers).
fn rvsadm_stats(lab: &Lab) -> (Vec<u64>, BTreeMap<String, Vec<u64>>) {
    let out = adm(lab, &["-L", "-n", "--stats", "--exact"]);
    let mut svc = Vec::new();
    let mut dests = BTreeMap::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let nums = |f: &[&str]| -> Vec<u64> { f.iter().map(|x| x.parse().unwrap()).collect() };
        if f.first() == Some(&"TCP") && f.len() >= 7 {
            svc = nums(&f[2..7]);
        } else if f.first() == Some(&"->") && f.len() >= 7 && f[1] != "RemoteAddress:Port" {
            dests.insert(f[1].to_owned(), nums(&f[2..7]));
        }
    }
    assert_eq!(svc.len(), 5, "no service line in:\n{out}");
    (svc, dests)
}

fn requests(lab: &Lab, n: usize, conc: usize) {
    let r =
        lab.in_client(move || client::run_requests(lab::vip(80), n, conc, Duration::from_secs(60)));
    if let Err(e) = r {
        panic!(
            "{n} requests through the VIP failed: {e}\nrvsd log:\n{}",
            lab.rvsd_log_text()
        );
    }
}

#[test]
fn metrics_pass_promtool_and_match_rvsadm_stats_exactly() {
    let test = "metrics_promtool";
    if !tool(test, "promtool") {
        return;
    }
    let Some(lab) = metrics_lab(test) else {
        return;
    };
    requests(&lab, 200, 4);
    // Quiesce: the last FIN/ACKs are through once two scrapes in a row agree.
    let mut text = scrape(&lab);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let again = scrape(&lab);
        if samples(&again).get("node_ipvs_incoming_packets_total")
            == samples(&text).get("node_ipvs_incoming_packets_total")
        {
            text = again;
            break;
        }
        text = again;
    }
    let (svc, dests) = rvsadm_stats(&lab);
    let m = samples(&text);

    // The node_exporter families equal ipvsadm's numbers exactly (one service: totals = the service).
    let names = [
        "connections",
        "incoming_packets",
        "outgoing_packets",
        "incoming_bytes",
        "outgoing_bytes",
    ];
    for (i, n) in names.iter().enumerate() {
        let got = m[&format!("node_ipvs_{n}_total")];
        assert_eq!(got, svc[i] as f64, "node_ipvs_{n}_total vs rvsadm");
        let sl = format!(
            "rvs_service_{n}_total{{local_address=\"{VIP}\",local_port=\"80\",proto=\"TCP\",local_mark=\"\"}}"
        );
        assert_eq!(m[&sl], svc[i] as f64, "{sl} vs rvsadm");
    }
    assert_eq!(svc[0], 200, "200 connections made");
    assert_eq!(dests.len(), 2);
    for (rs, nums) in &dests {
        let (addr, port) = rs.rsplit_once(':').unwrap();
        let labels = format!(
            "{{local_address=\"{VIP}\",local_port=\"80\",remote_address=\"{addr}\",remote_port=\"{port}\",proto=\"TCP\",local_mark=\"\"}}"
        );
        for (i, n) in names.iter().enumerate() {
            assert_eq!(
                m[&format!("rvs_backend_{n}_total{labels}")],
                nums[i] as f64,
                "{rs} {n}"
            );
        }
        assert_eq!(m[&format!("node_ipvs_backend_weight{labels}")], 1.0);
        assert!(m.contains_key(&format!("node_ipvs_backend_connections_active{labels}")));
        assert!(m.contains_key(&format!("node_ipvs_backend_connections_inactive{labels}")));
    }
    let received: f64 = m
        .iter()
        .filter(|(k, _)| {
            k.starts_with("rvs_dataplane_packets_total{") && k.contains("outcome=\"received\"")
        })
        .map(|(_, v)| v)
        .sum();
    assert!(
        received >= (svc[1] + svc[2]) as f64,
        "the workers read at least every counted packet ({received})"
    );

    // promtool reads the live scrape as Prometheus would, with its lint rules.
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    lab.down().unwrap();
}

/// A process killed (by its PID) and its directory removed when dropped.
struct Owned {
    child: Child,
    dir: PathBuf,
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-ops-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Percent-encoding of a PromQL query for a URL.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sample timestamps of a range-vector query at `time`.
fn prom_samples(lab: &Lab, prom: &str, query: &str, time: f64) -> Vec<f64> {
    let path = format!("/api/v1/query?query={}&time={time:.3}", urlencode(query));
    let addr: SocketAddr = prom.parse().unwrap();
    let body = netns::run_in(&lab.director(), move || http_get(addr, &path)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"][0]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s[0].as_f64())
        .collect()
}

/// The single value of an instant query at `time`, if there is one.
fn prom_query(lab: &Lab, prom: &str, query: &str, time: f64) -> Option<f64> {
    let path = format!("/api/v1/query?query={}&time={time:.3}", urlencode(query));
    let addr: SocketAddr = prom.parse().unwrap();
    let body = netns::run_in(&lab.director(), move || http_get(addr, &path)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_rate_matches_the_load_generator() {
    let test = "metrics_prometheus";
    if !tool(test, "prometheus") {
        return;
    }
    let Some(lab) = metrics_lab(test) else {
        return;
    };
    let dir = temp_dir("prom");
    let prom = "127.0.0.1:9090";
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: rvsd\n    static_configs:\n      - targets: ['{METRICS}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.director(), "prometheus"])
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prom}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let prom_proc = Owned {
        child,
        dir: dir.clone(),
    };
    let prom_log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    // Wait until Prometheus has scraped rvsd at least twice.
    let start = Instant::now();
    while prom_query(
        &lab,
        prom,
        "count_over_time(up{job=\"rvsd\"}[1m])",
        unix_now(),
    )
    .is_none_or(|n| n < 2.0)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Prometheus never scraped rvsd; its log:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // A paced load: one new connection every 25 ms (40/s) for 24 s; the client notes when each started.
    let (period, total) = (Duration::from_millis(25), 960usize);
    let starts = lab
        .in_client(move || {
            let mut starts = Vec::with_capacity(total);
            let t0 = Instant::now();
            for i in 0..total {
                let due = t0 + period * i as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                starts.push(unix_now());
                client::get(lab::vip(80), Duration::from_secs(5))?;
            }
            Ok(starts)
        })
        .unwrap_or_else(|e| panic!("load failed: {e}\nrvsd log:\n{}", lab.rvsd_log_text()));
    // The window: 16 s inside the load, away from its start and end.
    let (first, last) = (starts[0], starts[total - 1]);
    let t = last - 3.0;
    let window = 16.0;
    assert!(
        t - window > first + 2.0,
        "the load took {:.1} s",
        last - first
    );
    // Let Prometheus take the samples after `t`.
    std::thread::sleep(Duration::from_secs(2));
    let q = format!("rate(node_ipvs_connections_total[{window:.0}s])");
    let rate = prom_query(&lab, prom, &q, t)
        .unwrap_or_else(|| panic!("no answer to {q}; Prometheus log:\n{}", prom_log()));
    // What the generator sent between the window's first and last samples (rate() is their slope, extrapolated to
    // the window's edges), so scrape timing on a loaded machine does not count as an error.
    let raw = format!("node_ipvs_connections_total[{window:.0}s]");
    let stamps = prom_samples(&lab, prom, &raw, t);
    assert!(stamps.len() >= 8, "{} samples in {window} s", stamps.len());
    let (t0, t1) = (stamps[0], stamps[stamps.len() - 1]);
    let sent = starts.iter().filter(|&&s| s > t0 && s <= t1).count() as f64 / (t1 - t0);
    let err = (rate - sent).abs() / sent;
    eprintln!(
        "{q} at the window's end = {rate:.2}/s; the load generator sent {sent:.2}/s ({:.2} %)",
        err * 100.0
    );
    assert!(
        err < 0.05,
        "Prometheus says {rate:.2}/s, the load generator sent {sent:.2}/s"
    );
    drop(prom_proc);
    lab.down().unwrap();
}

fn chromium_dump(lab: &Lab, url: &str, profile: &Path, budget_ms: u32) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.director(), "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !dom.is_empty(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// `data-v` values of the elements with class `cls` in a dumped DOM.
fn values(dom: &str, cls: &str) -> Vec<f64> {
    let needle = format!("class=\"{cls}\" data-v=\"");
    dom.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &dom[i + needle.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

#[test]
fn live_view_in_headless_chromium_shows_services_and_moving_numbers() {
    let test = "live_view";
    if !tool(test, "chromium") {
        return;
    }
    let Some(lab) = metrics_lab(test) else {
        return;
    };
    let profile = temp_dir("chromium");
    let url = format!("http://{METRICS}/");
    // Idle: the page shows the service and both real servers, nothing moving.
    let dom = chromium_dump(&lab, &url, &profile, 3000);
    assert!(
        dom.contains(&format!("data-name=\"TCP {VIP}:80\"")),
        "{dom}"
    );
    for i in 1..=2 {
        assert!(
            dom.contains(&format!("data-addr=\"{}:80\"", lab::rip(i))),
            "{dom}"
        );
    }
    assert!(
        dom.contains("<td class=\"conns\">0</td>"),
        "no connections yet: {dom}"
    );
    assert!(
        values(&dom, "cps").iter().all(|v| *v == 0.0),
        "idle rates: {dom}"
    );

    // Under load (bounded: at most 20 s or 20,000 requests), the rates and counters move.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let load = netns::spawn_in(&lab.client(), move || {
        let t0 = Instant::now();
        let mut n = 0u32;
        while !s2.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(20) && n < 20_000 {
            let _ = client::get(lab::vip(80), Duration::from_secs(2));
            n += 1;
        }
        Ok(n)
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let dom = chromium_dump(&lab, &url, &profile, 4000);
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().unwrap().unwrap();
    let cps = values(&dom, "kpi cps");
    assert!(
        cps.iter().any(|v| *v > 0.0),
        "conn/s moved under load ({sent} requests sent): {cps:?}\n{dom}"
    );
    assert!(
        values(&dom, "pps").iter().any(|v| *v > 0.0),
        "pkt/s moved: {dom}"
    );
    assert!(
        values(&dom, "bps").iter().any(|v| *v > 0.0),
        "B/s moved: {dom}"
    );
    assert!(
        !dom.contains("<td class=\"conns\">0</td>"),
        "both real servers took connections: {dom}"
    );
    assert!(
        dom.contains("<canvas id=\"c0\""),
        "the chart is drawn: {dom}"
    );
    let _ = std::fs::remove_dir_all(&profile);
    lab.down().unwrap();
}

#[test]
fn fast_path_counters_are_scraped() {
    let Some(lab) = metrics_lab_with("metrics_fastpath", &["--fast-path", "xdp"]) else {
        return;
    };
    // One keep-alive connection: established, it moves to the XDP fast path, whose packets the metrics count.
    let answered = lab
        .in_client(|| {
            let mut c = client::HttpConn::connect(lab::vip(80), Duration::from_secs(5))?;
            c.get(Connection::KeepAlive)?; // handshake and first request on the slow path; then the core offers the connection
            std::thread::sleep(Duration::from_millis(500));
            let mut n = 0;
            for _ in 0..200 {
                c.get(Connection::KeepAlive)?;
                n += 1;
            }
            Ok(n)
        })
        .unwrap_or_else(|e| {
            panic!(
                "keep-alive requests: {e}\nrvsd log:\n{}",
                lab.rvsd_log_text()
            )
        });
    assert_eq!(answered, 200);
    let m = samples(&scrape(&lab));
    let fwd = m
        .get("rvs_fastpath_packets_total{reason=\"forwarded\"}")
        .copied()
        .unwrap_or_else(|| panic!("no fast-path counters in the scrape: {m:?}"));
    assert!(fwd > 0.0, "the fast path forwarded packets ({fwd})");
    assert!(m.contains_key("rvs_fastpath_connections"));
    // The SYN gate (auto by default with the fast path) is scraped too: off, nothing held without a flood.
    assert_eq!(m.get("rvs_syn_gate_on").copied(), Some(0.0), "{m:?}");
    for verdict in ["held", "passed"] {
        let k = format!("rvs_syn_gate_syns_total{{verdict=\"{verdict}\"}}");
        assert_eq!(m.get(&k).copied(), Some(0.0), "{k} in {m:?}");
    }
    lab.down().unwrap();
}

#[test]
fn health_checks_in_metrics_and_the_live_view() {
    let test = "metrics_health";
    if !testing::lab_available(test) {
        return;
    }
    testing::reap_stale_test_labs();
    let dir = temp_dir("health");
    let conf = dir.join("keepalived.conf");
    // rs1 answers on :80 (the lab's server); 203.0.113.99 does not exist, so its TCP_CHECK fails.
    let rs = |addr: &str| {
        format!(
            "    real_server {addr} 80 {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n"
        )
    };
    let head = format!(
        "virtual_server {VIP} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n"
    );
    let body = rs(&lab::rip(1).to_string()) + &rs("203.0.113.99");
    std::fs::write(&conf, format!("{head}{body}}}\n")).unwrap();
    let cfg = LabConfig {
        real_servers: 2,
        rvsd_args: vec![
            "--metrics".into(),
            METRICS.into(),
            "--keepalived".into(),
            conf.display().to_string(),
        ],
        ..LabConfig::unique("")
    };
    let lab = Lab::up(cfg).unwrap_or_else(|e| panic!("{test}: building the lab failed: {e}"));
    let up = |rs: &str| {
        format!(
            "rvs_health_real_server_up{{local_address=\"{VIP}\",local_port=\"80\",remote_address=\"{rs}\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"}}"
        )
    };
    let (rs1, dead) = (lab::rip(1).to_string(), "203.0.113.99");
    let t0 = Instant::now();
    let m = loop {
        let m = samples(&scrape(&lab));
        if m.get(&up(&rs1)) == Some(&1.0) && m.get(&up(dead)) == Some(&0.0) {
            break m;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "health never settled: {m:?}\nrvsd log:\n{}",
            lab.rvsd_log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(m["rvs_health_checks_total"] >= 2.0);
    let status: serde_json::Value =
        serde_json::from_str(&get_in_director(&lab, METRICS, "/status.json")).unwrap();
    let dests = &status["services"][0]["dests"];
    assert_eq!(dests[0]["addr"], format!("{rs1}:80"), "{status}");
    assert_eq!(dests[0]["health"], "up", "{status}");
    let _ = std::fs::remove_dir_all(&dir);
    lab.down().unwrap();
}
