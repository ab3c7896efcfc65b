//! Golden tests: every listing of the fixture configuration, byte for byte as ipvsadm 1.31
//! prints it (column widths, trailing spaces, sort order, K/M/G/T abbreviations, --exact).
//! `UPDATE_GOLDEN=1 cargo test -p rvsadm --test golden` rewrites the files (review the diff!).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::*;

const CASES: &[(&str, &str)] = &[
    ("list", "-L -n"),
    ("list_lower_l_bundled", "-ln"),
    ("stats", "-L -n --stats"),
    ("rate", "-L -n --rate"),
    ("thresholds", "-L -n --thresholds"),
    ("persistent_conn", "-L -n --persistent-conn"),
    ("tun_info", "-L -n --tun-info"),
    ("exact_stats", "-L -n --exact --stats"),
    ("exact_rate", "-L -n --rate --exact"),
    ("nosort", "-L -n --nosort"),
    ("save", "-S -n"),
    ("conns", "-L -n -c"),
    ("conns_persistent", "-Lnc --persistent-conn"),
    ("timeout", "-L --timeout"),
    ("one_service", "-L -n -t 198.51.100.2:443"),
    ("one_fwmark_service_stats", "-L -n -f 1 -6 --stats"),
    ("one_v6_service", "-l -n -t [2001:db8::100]:80"),
    ("daemon", "-L --daemon"),
];

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"))
}

#[test]
fn every_listing_matches_golden() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for (name, args) in CASES {
        let mut fake = Fake::with_fixture();
        if *name == "one_fwmark_service_stats" {
            // an IPv6 fwmark 1 service must be looked up with ipv6 = true
            fake.services[1].spec.key = rvs_api::ServiceKey::Fwmark {
                mark: rvs_api::Fwmark(1),
                ipv6: true,
            };
        }
        let (code, out, err) = run_with(&mut fake, args, "");
        assert_eq!(code, 0, "{args}: {err}");
        assert!(err.is_empty(), "{args}: stderr {err}");
        let path = golden_path(name);
        if update {
            std::fs::write(&path, &out).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != out {
            failures.push(format!("{name} ({args}):\n--- want\n{want}--- got\n{out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Hand-written lines (independent of the golden files) for the points most easy to get wrong.
#[test]
fn key_lines_by_hand() {
    let mut fake = Fake::with_fixture();
    let (_, out, _) = run_with(&mut fake, "-L -n", "");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "IP Virtual Server version 1.2.1 (size=4096)");
    assert_eq!(lines[1], "Prot LocalAddress:Port Scheduler Flags");
    assert_eq!(
        lines[2],
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
    );
    // sorted: TCP v4 services by address, then UDP v4, then TCP v6, then fwmarks
    assert_eq!(lines[3], "TCP  198.51.100.1:80 rr");
    assert_eq!(
        lines[4],
        "  -> 203.0.113.10:8080            Masq    3      7          0         "
    );
    assert!(out.contains("\nUDP  198.51.100.1:53 wlc ops\n"));
    assert!(out.contains("\nFWM  1 mh (mh-port) persistent 300\n"));
    assert!(out.contains("\nFWM  2 IPv6 wrr (flag-1,flag-3)\n"));
    assert!(out.contains(
        "\nTCP  198.51.100.2:443 sh (sh-fallback,sh-port) persistent 360 mask 255.255.255.0\n"
    ));
    assert!(out.contains("\nTCP  [2001:db8::100]:80 lc persistent 600 mask 64 pe sip\n"));

    let (_, out, _) = run_with(&mut fake, "-L -n --stats", "");
    // 123456789 -> 123456K, 99999999 stays, 1e9 -> 1000M, 1.23e14 -> 123T, 98765432109 -> 98765M
    assert!(out.contains(
        "\nTCP  198.51.100.1:80               123456K 99999999    1000M     123T   98765M\n"
    ));
    let (_, out, _) = run_with(&mut fake, "-L -n --stats --exact", "");
    assert!(out.contains(
        "\nTCP  198.51.100.1:80              123456789 99999999 1000000000 123456789012345 98765432109\n"
    ));
}

/// Names instead of numbers without -n (hosts and services from tables, as /etc files give them).
#[test]
fn names_without_numeric() {
    let resolver = rvs_api::resolve::TableResolver::parse(
        "203.0.113.10 rs1.example\n198.51.100.1 vip.example\n",
        "http 80/tcp www\ndomain 53/udp\n",
    );
    let mut fake = Fake::with_fixture();
    let args: Vec<String> = ["-L"].iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut stdin: &[u8] = b"";
    let code = rvsadm::run(
        &args,
        &mut fake,
        &resolver,
        &mut rvsadm::Io {
            stdin: &mut stdin,
            stdout: &mut out,
            stderr: &mut err,
        },
    );
    assert_eq!(code, 0);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("\nTCP  vip.example:http rr\n"), "{out}");
    assert!(
        out.contains("\n  -> rs1.example:8080             Masq    3      7          0         \n")
    );
    assert!(out.contains("\nUDP  vip.example:domain wlc ops\n"));
    // and parsing resolves names the same way
    let act = rvs_api::ipvsadm::parse(
        &["-A", "-t", "vip.example:www"].map(String::from),
        &resolver,
    )
    .unwrap();
    assert_eq!(
        act,
        rvs_api::ipvsadm::Action::Apply(rvs_api::Command::AddService(rvs_api::ServiceSpec {
            key: tcp("198.51.100.1", 80),
            scheduler: "wlc".into(),
            sched_flags: Default::default(),
            persistence: None,
            one_packet: false,
            pe: None,
        }))
    );
}

#[test]
fn truncation_of_long_names() {
    let resolver = rvs_api::resolve::TableResolver::parse(
        "198.51.100.1 a-very-long-virtual-host-name.example.org\n203.0.113.10 a-very-long-real-server-name.example.org\n",
        "",
    );
    let services = vec![service(
        tcp("198.51.100.1", 80),
        "rr",
        vec![dest("203.0.113.10", 80, 1, rvs_api::ForwardMethod::Masq)],
    )];
    let text = rvs_api::listing::list_all(
        &rvs_api::Info {
            version: "1.2.1".into(),
            conn_table_size: 4096,
        },
        &services,
        &Default::default(),
        &resolver,
    );
    // svc_name cut at 33 bytes, dname at 28 (IPv4 only), as ipvsadm does
    assert!(
        text.contains("\nTCP  a-very-long-virtual-host-nam rr\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  -> a-very-long-real-server-name Masq    1 "),
        "{text}"
    );
}

/// The faithful `-S` output (the golden file) reads back with `-R`: the same services and real
/// servers, except what ipvsadm's save format itself cannot carry (thresholds; Local prints as -g).
#[test]
fn faithful_save_reads_back() {
    let text = std::fs::read_to_string(golden_path("save")).unwrap();
    let cmds = rvs_api::rules::parse_with(&text, &rvs_api::resolve::NoResolver).unwrap();
    let fixture = fixture();
    let n_dests: usize = fixture.iter().map(|s| s.dests.len()).sum();
    assert_eq!(cmds.len(), fixture.len() + n_dests);
    for s in &fixture {
        let add = cmds
            .iter()
            .find_map(|c| match c {
                rvs_api::Command::AddService(c) if c.key == s.spec.key => Some(c),
                _ => None,
            })
            .unwrap();
        assert_eq!(add, &s.spec);
        for d in &s.dests {
            let got = cmds
                .iter()
                .find_map(|c| match c {
                    rvs_api::Command::AddDest { service, dest }
                        if *service == s.spec.key && dest.addr == d.spec.addr =>
                    {
                        Some(*dest)
                    }
                    _ => None,
                })
                .unwrap();
            let mut want = d.spec;
            want.u_threshold = 0;
            want.l_threshold = 0;
            if want.method == rvs_api::ForwardMethod::Local {
                want.method = rvs_api::ForwardMethod::Route;
            }
            assert_eq!(got, want);
        }
    }
}

/// No sync daemon running: rvsd answers an empty list; like ipvsadm, `-L --daemon` prints nothing and succeeds,
/// and `--json` prints the empty list.
#[test]
fn no_sync_daemon_lists_nothing() {
    let mut fake = Fake {
        daemons: Vec::new(),
        ..Fake::with_fixture()
    };
    assert_eq!(
        run_with(&mut fake, "-L --daemon", ""),
        (0, String::new(), String::new())
    );
    let (code, out, err) = run_with(&mut fake, "--json -L --daemon", "");
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!([])
    );
}
