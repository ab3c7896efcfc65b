//! Every error message and exit status, as ipvsadm 1.31 gives them (program name rvsadm).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rvs_api::{ApiError, Command, ErrorCode};

const HINT: &str = "Try `rvsadm -h' or 'rvsadm --help' for more information.\n";

/// (arguments, stderr, exit status) for parse errors; no director is reached.
const PARSE_ERRORS: &[(&str, &str, i32)] = &[
    // tryhelp_exit(-1): the first option must be a command
    ("-n -L", HINT, 255),
    ("-t 10.0.0.1:80", HINT, 255),
    ("--bogus", HINT, 255),
    ("-Q", HINT, 255),
    // popt errors after the command: "<option>: <popt error>", return -1
    ("-A -t", "-t: missing argument\n", 255),
    ("-L --bogus", "--bogus: unknown option\n", 255),
    ("-L -Q", "-Q: unknown option\n", 255),
    // fail(2, ...)
    ("-A -t 10.0.0.1:80 -D", "invalid option `-D'\n", 2),
    (
        "-A -t 10.0.0.1:80 -t 10.0.0.2:80",
        "multiple 'service-address' options specified\n",
        2,
    ),
    (
        "-A -t 10.0.0.1",
        "Zero port specified for non-persistent service\n",
        2,
    ),
    (
        "-A -t 10.0.0.1:80 -o",
        "One-Packet Scheduling is only for UDP virtual services\n",
        2,
    ),
    (
        "-A -t 8080",
        "illegal virtual server address[:port] specified\n",
        2,
    ),
    (
        "-A -t 10.0.0.1:notaport",
        "illegal virtual server address[:port] specified\n",
        2,
    ),
    (
        "-A -t [2001:db8::1]80",
        "illegal virtual server address[:port] specified\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 80",
        "illegal real server address[:port] specified\n",
        2,
    ),
    ("-A -f 0", "invalid fwmark value `0' specified\n", 2),
    ("-A -f x1", "invalid fwmark value `x1' specified\n", 2),
    (
        "-A -t 10.0.0.1:80 -p 0",
        "invalid timeout value `0' specified\n",
        2,
    ),
    (
        "-A -t 10.0.0.1:80 -p 2678401",
        "invalid timeout value `2678401' specified\n",
        2,
    ),
    (
        "-A -t 10.0.0.1:80 -p 60 -M 1.2.3.4.5",
        "illegal virtual server persistent mask specified\n",
        2,
    ),
    (
        "-A -t [2001:db8::1]:80 -p 60 -M 129",
        "illegal ipv6 netmask specified\n",
        2,
    ),
    ("-A -t 10.0.0.1:80 -6", "-6 used before -f\n\n", 2),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536",
        "illegal weight specified\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1",
        "illegal weight specified\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -x 2147483648",
        "illegal u_threshold specified\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -y abc",
        "illegal l_threshold specified\n",
        2,
    ),
    (
        "-A -t 10.0.0.1:80 -b flag-9",
        "invalid scheduler flag `flag-9'\n",
        2,
    ),
    (
        "-A -t 10.0.0.1:80 -s rr -b sh-port",
        "incompatible scheduler flag `sh-port'\n",
        2,
    ),
    (
        "-A -t 10.0.0.1:80 -b mh-fallback",
        "incompatible scheduler flag `mh-fallback'\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type vxlan",
        "illegal tunnel type specified\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 0",
        "illegal tunnel port specified\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue",
        "You need to supply the 'tun-port' option for the 'gue' tunnel type\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-port 5000",
        "Illegal 'tun-port' option with the 'ipip' tunnel type\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-remcsum",
        "Illegal 'tun-remcsum' option with the 'gre' tunnel type\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-csum --tun-remcsum",
        "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -m --tun-type gre",
        "Tunnel options conflict with forward method\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r [2001:db8::2] -m",
        "illegal real server address[:port] specified\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 2001:db8::2 -m",
        "Different address family is allowed only for tunneling servers\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80",
        "You need to supply the 'real-server' option for the 'add-server' command\n",
        2,
    ),
    (
        "-A -s rr",
        "You need to supply the 'service-address' option for the 'add-service' command\n",
        2,
    ),
    (
        "-D -t 10.0.0.1:80 -s rr",
        "Illegal 'scheduler' option with the 'delete-service' command\n",
        2,
    ),
    (
        "-C -n",
        "Illegal 'numeric' option with the 'flush' command\n",
        2,
    ),
    (
        "-A -t 10.0.0.1:80 -r 10.0.0.2",
        "Illegal 'real-server' option with the 'add-service' command\n",
        2,
    ),
    (
        "-a -t 10.0.0.1:80 -r 10.0.0.2 -s rr",
        "Illegal 'scheduler' option with the 'add-server' command\n",
        2,
    ),
    (
        "-d -t 10.0.0.1:80 -r 10.0.0.2 -w 5",
        "Illegal 'weight' option with the 'delete-server' command\n",
        2,
    ),
    (
        "-L -c --timeout",
        "The option 'timeout' conflicts with the 'connection' option in the 'list' command\n",
        2,
    ),
    (
        "-L -t 10.0.0.1:80 -c",
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n",
        2,
    ),
    (
        "-L -c --stats",
        "options conflicts in the list command\n",
        2,
    ),
    (
        "-L --timeout --persistent-conn",
        "options conflicts in the list command\n",
        2,
    ),
    ("-L --sched-flags x", "invalid scheduler flag `x'\n", 2),
    (
        "-L --sched-flags flag-1",
        "Illegal 'sched-flags' option with the 'list' command\n",
        2,
    ),
    (
        "-S --stats",
        "Illegal 'stats' option with the 'save' command\n",
        2,
    ),
    (
        "-Z -n",
        "Illegal 'numeric' option with the 'zero' command\n",
        2,
    ),
    ("--set 1 2", "--set option requires 3 timeout values\n", 2),
    ("--set 1 2 x", "invalid timeout value `x' specified\n", 2),
    ("--set 1 2 3 4", "unexpected argument 4\n", 2),
    ("-L extra", "unexpected argument extra\n", 2),
    (
        "--start-daemon slave",
        "illegal start-daemon parameter specified\n",
        2,
    ),
    ("--stop-daemon slave", "illegal start_daemon specified\n", 2),
    (
        "--start-daemon master --syncid 256",
        "illegal syncid specified\n",
        2,
    ),
    (
        "--start-daemon master --mcast-group 10.0.0.1",
        "invalid IPv4 mcast-group `10.0.0.1'\n",
        2,
    ),
    (
        "--start-daemon master --mcast-group ff02::x",
        "invalid IPv6 mcast-group `ff02::x'\n",
        2,
    ),
    (
        "--start-daemon master --mcast-port 0",
        "illegal mcast-port specified\n",
        2,
    ),
    (
        "--start-daemon master --mcast-ttl 256",
        "illegal mcast-ttl specified\n",
        2,
    ),
    (
        "--start-daemon master --sync-maxlen 65508",
        "illegal sync-maxlen specified\n",
        2,
    ),
    (
        "--stop-daemon master --mcast-port 8848",
        "Illegal 'mcast-port' option with the 'stop-daemon' command\n",
        2,
    ),
    // rvsadm's own extension flag
    (
        "-A -t 10.0.0.1:80 --json",
        "--json applies to listings (-L, -S) only\n",
        2,
    ),
];

#[test]
fn parse_error_table() {
    let mut bad = Vec::new();
    for (args, want_err, want_code) in PARSE_ERRORS {
        let mut fake = Fake::with_fixture();
        let (code, out, err) = run_with(&mut fake, args, "");
        if code != *want_code || err != *want_err || !out.is_empty() {
            bad.push(format!(
                "{args}: got ({code}, {err:?}) want ({want_code}, {want_err:?})"
            ));
        }
        assert!(fake.calls.is_empty(), "{args}: reached the director");
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

/// Director errors: ipvs's message (libipvs wording), exit status 255.
#[test]
fn director_error_table() {
    let cases: &[(&str, ApiError, &str)] = &[
        (
            "-A -t 10.0.0.1:80",
            ApiError::new(ErrorCode::ServiceExists),
            "Service already exists\n",
        ),
        (
            "-A -t 10.0.0.1:80 -s nope",
            ApiError::new(ErrorCode::SchedulerNotFound),
            "Scheduler or persistence engine not found\n",
        ),
        (
            "-E -t 10.0.0.1:80",
            ApiError::new(ErrorCode::NoSuchService),
            "No such service\n",
        ),
        (
            "-D -t 10.0.0.1:80",
            ApiError::missing_service(&Command::Clear),
            "No such service\n",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -m",
            ApiError::new(ErrorCode::ServiceNotDefined),
            "Service not defined\n",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -m",
            ApiError::new(ErrorCode::DestinationExists),
            "Destination already exists\n",
        ),
        (
            "-e -t 10.0.0.1:80 -r 10.0.0.2 -m",
            ApiError::new(ErrorCode::NoSuchDestination),
            "No such destination\n",
        ),
        (
            "-d -t 10.0.0.1:80 -r 10.0.0.2",
            ApiError::new(ErrorCode::NoSuchDestination),
            "No such destination\n",
        ),
        (
            // rvsd's own wording, not the code's default text (rvsd/src/sync.rs: ENODEV's message)
            "--start-daemon master --mcast-interface nosuch0",
            ApiError::with_message(ErrorCode::InvalidArgument, "No such device"),
            "No such device\n",
        ),
        (
            "-C",
            ApiError::new(ErrorCode::PermissionDenied),
            "Permission denied (you must be root)\n",
        ),
        (
            "-Z -t 10.0.0.1:80",
            ApiError::new(ErrorCode::NoSuchService),
            "No such service\n",
        ),
        (
            "--set 10 10 10",
            ApiError::new(ErrorCode::InvalidArgument),
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
        ),
    ];
    for (args, e, want) in cases {
        let mut fake = Fake::with_fixture();
        fake.fail_with = Some(e.clone());
        let (code, out, err) = run_with(&mut fake, args, "");
        assert_eq!(
            (code, err.as_str(), out.as_str()),
            (255, *want, ""),
            "{args}"
        );
        assert_eq!(fake.calls.len(), 1, "{args}");
    }
    // -L of a missing service: message, exit 1 (ipvsadm's list_service)
    let mut fake = Fake::with_fixture();
    let (code, _, err) = run_with(&mut fake, "-L -n -t 10.9.9.9:80", "");
    assert_eq!((code, err.as_str()), (1, "No such service\n"));
}

#[test]
fn missing_service_wording_follows_libipvs() {
    let key = tcp("10.0.0.1", 80);
    assert_eq!(
        ApiError::missing_service(&Command::DeleteService(key)).message,
        "No such service"
    );
    assert_eq!(
        ApiError::missing_service(&Command::DeleteDest {
            service: key,
            addr: ip("10.0.0.2"),
            port: 80
        })
        .message,
        "Service not defined"
    );
}

#[test]
fn sync_daemon_commands_reach_rvsd_and_its_errors_print_as_ipvsadm() {
    for (args, err_code, text) in [
        (
            "--start-daemon master --mcast-interface eth1 --syncid 7",
            ErrorCode::DaemonRunning,
            "Daemon has already run\n",
        ),
        (
            "--stop-daemon backup",
            ErrorCode::NoDaemon,
            "No daemon is running\n",
        ),
    ] {
        let mut fake = Fake::with_fixture();
        let (code, _, err) = run_with(&mut fake, args, "");
        assert_eq!((code, err.as_str()), (0, ""), "{args}");
        assert!(matches!(
            fake.calls.last(),
            Some(Command::StartDaemon(_) | Command::StopDaemon(_))
        ));
        let mut fake = Fake::with_fixture();
        fake.fail_with = Some(ApiError::new(err_code));
        let (code, _, err) = run_with(&mut fake, args, "");
        assert_eq!((code, err.as_str()), (255, text), "{args}");
    }
}

#[test]
fn help_and_version_go_to_stdout() {
    let mut fake = Fake::with_fixture();
    let (code, out, err) = run_with(&mut fake, "-h", "");
    assert_eq!(code, 0);
    assert!(err.is_empty());
    assert!(out.contains("\nUsage:\n  rvsadm -A|E virtual-service [-s scheduler]"));
    assert!(
        out.contains("  --sched-flags  -b flags             scheduler flags (comma-separated)\n")
    );
    let (code, out, _) = run_with(&mut fake, "--version", "");
    assert_eq!(code, 0);
    assert!(out.starts_with("rvsadm v"));
    assert!(fake.calls.is_empty());
}

#[test]
fn restore_bad_line_applies_nothing_and_names_the_line() {
    let file = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 70000\n";
    let mut fake = Fake::with_fixture();
    let (code, _, err) = run_with(&mut fake, "-R", file);
    assert_eq!(
        (code, err.as_str()),
        (2, "line 2: illegal weight specified\n")
    );
    assert!(fake.calls.is_empty(), "nothing may be applied");
}

#[test]
fn restore_director_error_names_the_line() {
    let file = "# header\n\n-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m\n";
    let mut fake = Fake::with_fixture();
    fake.fail_with = Some(ApiError::new(ErrorCode::DestinationExists).at_index(2));
    let (code, _, err) = run_with(&mut fake, "-R", file);
    assert_eq!(
        (code, err.as_str()),
        (255, "line 5: Destination already exists\n")
    );
    assert_eq!(fake.calls.len(), 1);
    assert!(matches!(&fake.calls[0], Command::Batch(v) if v.len() == 3));
}

#[test]
fn restore_accepts_real_ipvsadm_save_output() {
    // as written by `ipvsadm -S` / ipvsadm-save, with program words and comments
    let file = "\
# Generated by ipvsadm-save
ipvsadm -A -t 198.51.100.1:80 -s wlc -p 360 -M 255.255.255.0
/sbin/ipvsadm -a -t 198.51.100.1:80 -r 203.0.113.10:80 -m -w 1
-a -t 198.51.100.1:80 -r 203.0.113.11:80 -m -w 2   # trailing comment
-A -f 7 -6 -s sh -b sh-fallback
-a -f 7 -6 -r [2001:db8::7]:0 -m -w 1
";
    let mut fake = Fake::with_fixture();
    let (code, out, err) = run_with(&mut fake, "-R", file);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    let Command::Batch(cmds) = &fake.calls[0] else {
        panic!("expected one batch, got {:?}", fake.calls)
    };
    assert_eq!(cmds.len(), 5);
    assert!(matches!(&cmds[0], Command::AddService(s)
        if s.persistence.map(|p| (p.timeout_s, p.netmask)) == Some((360, ip("255.255.255.0")))));
    assert!(matches!(&cmds[3], Command::AddService(s)
        if s.key == rvs_api::ServiceKey::Fwmark { mark: rvs_api::Fwmark(7), ipv6: true } && s.sched_flags.fallback));
}

#[test]
fn restore_inside_restore_is_refused() {
    let mut fake = Fake::with_fixture();
    let (code, _, err) = run_with(&mut fake, "-R", "-R\n");
    assert_eq!(code, 255);
    assert!(err.starts_with("line 1: Try `rvsadm -h'"), "{err}");
    assert!(fake.calls.is_empty());
}
