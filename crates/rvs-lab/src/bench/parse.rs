//! Parsers for the tools' outputs: wrk, iperf3 -J, /proc/stat, /proc/PID/stat, callgrind's summary.

/// What one wrk run reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_s: f64,
    pub requests_per_s: f64,
    /// Latency percentiles in seconds (present with `--latency`).
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
    /// connect + read + write + timeout socket errors.
    pub socket_errors: u64,
    pub non_2xx: u64,
}

/// Parses a duration like "312.45us", "1.23ms", "2.00s", "1.5m".
fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(v * scale)
}

/// Parses wrk's text report. `None` if the summary lines are missing (wrk failed).
pub fn parse_wrk(out: &str) -> Option<WrkResult> {
    let mut requests = None;
    let mut duration_s = None;
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut socket_errors = 0;
    let mut non_2xx = 0;
    let mut in_dist = false;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist {
            if let Some((pct, val)) = t.split_once(char::is_whitespace) {
                match pct {
                    "50%" => p50 = parse_duration(val),
                    "99%" => p99 = parse_duration(val),
                    "75%" | "90%" => {}
                    _ => in_dist = false,
                }
            } else {
                in_dist = false;
            }
        }
        if let Some(rest) = t.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse::<f64>().ok();
        } else if let Some(rest) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket_errors = rest
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1))
                .filter_map(|n| n.parse::<u64>().ok())
                .sum();
        } else if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse().unwrap_or(0);
        } else if t.contains(" requests in ") {
            // "250000 requests in 5.00s, 30.00MB read"
            let mut it = t.split_whitespace();
            requests = it.next().and_then(|n| n.parse::<u64>().ok());
            duration_s = it
                .nth(2)
                .and_then(|d| parse_duration(d.trim_end_matches(',')));
        }
    }
    Some(WrkResult {
        requests: requests?,
        duration_s: duration_s?,
        requests_per_s: rps?,
        p50_s: p50,
        p99_s: p99,
        socket_errors,
        non_2xx,
    })
}

/// Receiver-side throughput in bits/s and the sender's TCP retransmissions from `iperf3 -c ... -J`.
pub fn parse_iperf3_json(out: &str) -> Result<(f64, Option<u64>), String> {
    let v: serde_json::Value =
        serde_json::from_str(out).map_err(|e| format!("iperf3 JSON: {e}"))?;
    if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
        return Err(format!("iperf3: {err}"));
    }
    let bps = v
        .pointer("/end/sum_received/bits_per_second")
        .and_then(|b| b.as_f64())
        .ok_or_else(|| "iperf3 JSON: no end.sum_received.bits_per_second".to_string())?;
    let retransmits = v
        .pointer("/end/sum_sent/retransmits")
        .and_then(|r| r.as_u64());
    Ok((bps, retransmits))
}

/// The machine-wide CPU times from the first line of /proc/stat, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub busy: u64,
    pub softirq: u64,
    pub total: u64,
}

impl CpuTimes {
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            busy: self.busy.saturating_sub(earlier.busy),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            total: self.total.saturating_sub(earlier.total),
        }
    }
}

/// Parses the aggregate "cpu " line of /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice.
pub fn parse_proc_stat(s: &str) -> Option<CpuTimes> {
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if f.len() < 7 {
        return None;
    }
    // guest and guest_nice are already counted in user and nice.
    let total: u64 = f.iter().take(8).sum();
    let idle = f[3] + f[4];
    Some(CpuTimes {
        busy: total - idle,
        softirq: f[6],
        total,
    })
}

/// utime + stime (clock ticks, all threads) from /proc/PID/stat.
pub fn parse_pid_stat(s: &str) -> Option<u64> {
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state(3) ppid(4) ... utime is field 14, stime 15 (1-based over the whole line).
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Total instructions from valgrind's callgrind summary line "==123== Collected : 456789".
pub fn parse_callgrind_collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        let rest = l.split_once("Collected :")?.1;
        rest.trim().replace(',', "").parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const WRK: &str = "Running 5s test @ http://198.51.100.100/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   312.45us  100.12us   5.00ms   90.00%
    Req/Sec    50.12k     2.00k   55.00k    80.00%
  Latency Distribution
     50%  300.00us
     75%  350.00us
     90%  400.00us
     99%    1.20ms
  250123 requests in 5.00s, 30.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  50024.60
Transfer/sec:      6.00MB
";

    #[test]
    fn wrk_full_report() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.requests, 250_123);
        assert!((r.duration_s - 5.0).abs() < 1e-9);
        assert!((r.requests_per_s - 50_024.6).abs() < 1e-6);
        assert!((r.p50_s.unwrap() - 300e-6).abs() < 1e-12);
        assert!((r.p99_s.unwrap() - 1.2e-3).abs() < 1e-12);
        assert_eq!(r.socket_errors, 5);
        assert_eq!(r.non_2xx, 5);
    }

    #[test]
    fn wrk_without_latency_or_errors() {
        let out = "Running 5s test @ http://x/\n  10 requests in 1.00m, 1KB read\nRequests/sec:      0.17\n";
        let r = parse_wrk(out).unwrap();
        assert_eq!(r.requests, 10);
        assert!((r.duration_s - 60.0).abs() < 1e-9);
        assert_eq!(
            (r.p50_s, r.p99_s, r.socket_errors, r.non_2xx),
            (None, None, 0, 0)
        );
    }

    #[test]
    fn wrk_failure_is_none() {
        assert!(parse_wrk("unable to connect to 198.51.100.100:80 Connection refused\n").is_none());
    }

    #[test]
    fn iperf3() {
        let ok = r#"{"start":{},"end":{"sum_received":{"bits_per_second":9.5e9},"sum_sent":{"bits_per_second":9.6e9,"retransmits":12}}}"#;
        assert_eq!(parse_iperf3_json(ok).unwrap(), (9.5e9, Some(12)));
        let err =
            r#"{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}"#;
        assert!(
            parse_iperf3_json(err)
                .unwrap_err()
                .contains("Connection refused")
        );
        assert!(parse_iperf3_json("garbage").is_err());
    }

    #[test]
    fn proc_stat() {
        let s = "cpu  100 5 50 1000 10 1 20 0 7 0\ncpu0 50 2 25 500 5 0 10 0 0 0\n";
        let c = parse_proc_stat(s).unwrap();
        assert_eq!(c.total, 100 + 5 + 50 + 1000 + 10 + 1 + 20);
        assert_eq!(c.busy, 100 + 5 + 50 + 1 + 20);
        assert_eq!(c.softirq, 20);
        let later = CpuTimes {
            busy: c.busy + 30,
            softirq: c.softirq + 5,
            total: c.total + 200,
        };
        assert_eq!(
            later.since(&c),
            CpuTimes {
                busy: 30,
                softirq: 5,
                total: 200
            }
        );
        assert!(parse_proc_stat("intr 1 2 3\n").is_none());
    }

    #[test]
    fn pid_stat_with_spaces_in_name() {
        let s = "4242 (rvs d) S 1 4242 4242 0 -1 4194560 100 0 0 0 77 23 0 0 20 0 3 0 12345 0 0";
        assert_eq!(parse_pid_stat(s), Some(100));
        assert_eq!(parse_pid_stat("garbage"), None);
    }

    #[test]
    fn callgrind_summary() {
        let e = "==77== Events    : Ir\n==77== Collected : 1234567\n==77==\n==77== I   refs:      1,234,567\n";
        assert_eq!(parse_callgrind_collected(e), Some(1_234_567));
        assert_eq!(parse_callgrind_collected("nothing"), None);
    }
}
