//! The option legality tables, cell by cell, against ipvsadm's own text of them.
//!
//! `COMMANDS_V_OPTIONS` and `TUNNEL_TYPES_V_OPTIONS` below are ipvsadm.c (1.31, with the GRE
//! tunnel row) as written there; `OPTNAMES` / `CMDNAMES` / `TUNNAMES` are its name arrays. For
//! every cell the test builds a command line and asks the parser: a '+' column left out must be
//! asked for, an 'x' column given must be refused, a ' ' column given must pass the table, and two
//! '1' columns together must conflict, each with ipvsadm's message. So the parser's table cannot
//! drift from ipvsadm's without a test naming the cell.
#![allow(clippy::unwrap_used)]

use rvs_api::ipvsadm::parse;
use rvs_api::resolve::NoResolver;

/// ipvsadm.c's `commands_v_options` (columns: -n -c svc -s -p -M -r fwd -w -x -y -mc tot dmn -st
/// -rt thr -pc srt sid -ex ops -pe -b grp port ttl size tinf type tprt nocs csum remc).
const COMMANDS_V_OPTIONS: &str = r"
/*ADD*/     {'x', 'x', '+', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*EDIT*/    {'x', 'x', '+', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*DEL*/     {'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*FLUSH*/   {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*LIST*/    {' ', '1', '1', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', '1', '1', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x'},
/*ADDSRV*/  {'x', 'x', '+', 'x', 'x', 'x', '+', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', ' '},
/*DELSRV*/  {'x', 'x', '+', 'x', 'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*EDITSRV*/ {'x', 'x', '+', 'x', 'x', 'x', '+', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', ' '},
/*TIMEOUT*/ {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*STARTD*/  {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x'},
/*STOPD*/   {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*RESTORE*/ {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*SAVE*/    {' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
/*ZERO*/    {'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'},
";

/// ipvsadm.c's `tunnel_types_v_options` (columns: tun-port tun-nocsum tun-csum tun-remcsum).
const TUNNEL_TYPES_V_OPTIONS: &str = r"
/* ipip */ {'x', 'x', 'x', 'x'},
/* gue */  {'+', '1', '1', '1'},
/* gre */  {'x', '1', '1', 'x'},
";

const OPTNAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

const CMDNAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

const TUNNAMES: [&str; 3] = ["ipip", "gue", "gre"];

/// How each command is spelled on the command line, and the positional words it needs (so that
/// `--set` reaches the table check instead of failing on its missing timeouts first).
const COMMANDS: [(&[&str], &[&str]); 14] = [
    (&["-A"], &[]),
    (&["-E"], &[]),
    (&["-D"], &[]),
    (&["-C"], &[]),
    (&["-L"], &[]),
    (&["-a"], &[]),
    (&["-d"], &[]),
    (&["-e"], &[]),
    (&["--set"], &["10", "20", "30"]),
    (&["--start-daemon", "master"], &[]),
    (&["--stop-daemon", "master"], &[]),
    (&["-R"], &[]),
    (&["-S"], &[]),
    (&["-Z"], &[]),
];

/// One valid way to give each column (a value the parser accepts on its own).
const GIVE: [&[&str]; 34] = [
    &["-n"],
    &["-c"],
    &["-t", "198.51.100.1:80"],
    &["-s", "rr"],
    &["-p"],
    &["-M", "255.255.255.0"],
    &["-r", "203.0.113.10"],
    &["-m"],
    &["-w", "2"],
    &["-x", "100"],
    &["-y", "10"],
    &["--mcast-interface", "eth1"],
    &["--timeout"],
    &["--daemon"],
    &["--stats"],
    &["--rate"],
    &["--thresholds"],
    &["--persistent-conn"],
    &["--nosort"],
    &["--syncid", "3"],
    &["--exact"],
    &["-o"],
    &["--pe", "sip"],
    &["-b", "flag-1"],
    &["--mcast-group", "224.0.0.82"],
    &["--mcast-port", "8849"],
    &["--mcast-ttl", "2"],
    &["--sync-maxlen", "1000"],
    &["--tun-info"],
    &["--tun-type", "ipip"],
    &["--tun-port", "6080"],
    &["--tun-nocsum"],
    &["--tun-csum"],
    &["--tun-remcsum"],
];

/// The quoted cells of each `{...}` row of a C table.
fn c_table(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .filter_map(|l| l.split_once('{'))
        .map(|(_, row)| {
            row.split(',')
                .filter_map(|cell| cell.trim().strip_prefix('\''))
                .map(|c| c.as_bytes()[0])
                .collect()
        })
        .collect()
}

fn line(cmd: usize, columns: &[usize]) -> Vec<String> {
    let (spelling, positional) = COMMANDS[cmd];
    // Positional words go first: after `-p` (optional value) they would be taken as its value.
    let mut v: Vec<String> = spelling
        .iter()
        .chain(positional)
        .map(|s| s.to_string())
        .collect();
    for &c in columns {
        v.extend(GIVE[c].iter().map(|s| s.to_string()));
    }
    v
}

/// The parser's message for `args` ("" when it parses).
fn message(args: &[String]) -> String {
    match parse(args, &NoResolver) {
        Ok(_) => String::new(),
        Err(e) => e.message,
    }
}

fn compulsory(row: &[u8]) -> Vec<usize> {
    (0..row.len()).filter(|&j| row[j] == b'+').collect()
}

/// A message produced by the command table for `cmd`.
fn is_table_message(msg: &str, cmd: usize) -> bool {
    let tail = format!("the '{}' command", CMDNAMES[cmd]);
    msg.ends_with(&tail)
        && (msg.starts_with("You need to supply")
            || msg.starts_with("Illegal '")
            || msg.starts_with("The option '"))
}

#[test]
fn the_c_tables_have_ipvsadms_shape() {
    let t = c_table(COMMANDS_V_OPTIONS);
    assert_eq!(t.len(), CMDNAMES.len());
    assert!(t.iter().all(|r| r.len() == OPTNAMES.len()));
    let t = c_table(TUNNEL_TYPES_V_OPTIONS);
    assert_eq!(t.len(), TUNNAMES.len());
    assert!(t.iter().all(|r| r.len() == 4));
}

#[test]
fn every_compulsory_option_is_asked_for() {
    let mut checked = 0;
    for (cmd, row) in c_table(COMMANDS_V_OPTIONS).iter().enumerate() {
        let needed = compulsory(row);
        let full = line(cmd, &needed);
        assert!(
            !is_table_message(&message(&full), cmd),
            "{full:?}: {}",
            message(&full)
        );
        for &missing in &needed {
            let rest: Vec<usize> = needed.iter().copied().filter(|&j| j != missing).collect();
            let args = line(cmd, &rest);
            assert_eq!(
                message(&args),
                format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPTNAMES[missing], CMDNAMES[cmd]
                ),
                "{args:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 9,
        "the service for 6 commands, the real server for 3"
    );
}

#[test]
fn every_illegal_option_is_refused_and_every_optional_one_passes() {
    let (mut illegal, mut optional) = (0, 0);
    for (cmd, row) in c_table(COMMANDS_V_OPTIONS).iter().enumerate() {
        let needed = compulsory(row);
        for (col, &rule) in row.iter().enumerate() {
            if rule == b'+' || rule == b'1' {
                continue;
            }
            let mut cols = needed.clone();
            cols.push(col);
            let args = line(cmd, &cols);
            let msg = message(&args);
            if rule == b'x' {
                assert_eq!(
                    msg,
                    format!(
                        "Illegal '{}' option with the '{}' command",
                        OPTNAMES[col], CMDNAMES[cmd]
                    ),
                    "{args:?}"
                );
                illegal += 1;
            } else {
                assert_eq!(rule, b' ');
                assert!(!is_table_message(&msg, cmd), "{args:?}: {msg}");
                optional += 1;
            }
        }
    }
    // 14 rows x 34 columns = 476 cells: 9 '+', 4 '1' (list), 48 ' ', 415 'x'.
    assert_eq!(optional, 48);
    assert_eq!(illegal, 415);
}

#[test]
fn exclusive_options_conflict_in_column_order() {
    let mut pairs = 0;
    for (cmd, row) in c_table(COMMANDS_V_OPTIONS).iter().enumerate() {
        let ones: Vec<usize> = (0..row.len()).filter(|&j| row[j] == b'1').collect();
        for (i, &a) in ones.iter().enumerate() {
            let alone = line(cmd, &[a]);
            assert!(
                !is_table_message(&message(&alone), cmd),
                "{alone:?}: {}",
                message(&alone)
            );
            for &b in &ones[i + 1..] {
                // Given in either order, the later column is named first.
                for cols in [[a, b], [b, a]] {
                    let args = line(cmd, &cols);
                    assert_eq!(
                        message(&args),
                        format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' command",
                            OPTNAMES[b], OPTNAMES[a], CMDNAMES[cmd]
                        ),
                        "{args:?}"
                    );
                }
                pairs += 1;
            }
        }
    }
    assert_eq!(pairs, 6, "list: -c, service, --timeout, --daemon pairwise");
}

#[test]
fn tunnel_options_follow_the_tunnel_type_table() {
    // tunopts: the columns of tunnel_types_v_options.
    const TUNOPTS: [usize; 4] = [30, 31, 32, 33];
    let base = |tun: &str| -> Vec<String> {
        ["-a", "-t", "198.51.100.1:80", "-r", "203.0.113.10", "-i"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--tun-type".to_string(), tun.to_string()])
            .collect()
    };
    let with = |tun: &str, cols: &[usize]| -> Vec<String> {
        let mut v = base(tun);
        for &c in cols {
            v.extend(GIVE[c].iter().map(|s| s.to_string()));
        }
        v
    };
    let mut cells = 0;
    for (t, row) in c_table(TUNNEL_TYPES_V_OPTIONS).iter().enumerate() {
        let tun = TUNNAMES[t];
        let needed: Vec<usize> = (0..4)
            .filter(|&j| row[j] == b'+')
            .map(|j| TUNOPTS[j])
            .collect();
        assert_eq!(
            message(&with(tun, &needed)),
            "",
            "{tun}: the compulsory ones suffice"
        );
        for &missing in &needed {
            let rest: Vec<usize> = needed.iter().copied().filter(|&c| c != missing).collect();
            assert_eq!(
                message(&with(tun, &rest)),
                format!(
                    "You need to supply the '{}' option for the '{tun}' tunnel type",
                    OPTNAMES[missing]
                )
            );
        }
        for (j, &rule) in row.iter().enumerate() {
            let col = TUNOPTS[j];
            if rule == b'+' {
                continue;
            }
            let mut cols = needed.clone();
            cols.push(col);
            let msg = message(&with(tun, &cols));
            match rule {
                b'x' => assert_eq!(
                    msg,
                    format!(
                        "Illegal '{}' option with the '{tun}' tunnel type",
                        OPTNAMES[col]
                    )
                ),
                _ => assert_eq!(msg, "", "{tun} {}", OPTNAMES[col]),
            }
            cells += 1;
        }
        let ones: Vec<usize> = (0..4)
            .filter(|&j| row[j] == b'1')
            .map(|j| TUNOPTS[j])
            .collect();
        for (i, &a) in ones.iter().enumerate() {
            for &b in &ones[i + 1..] {
                let mut cols = needed.clone();
                cols.extend([b, a]);
                assert_eq!(
                    message(&with(tun, &cols)),
                    format!(
                        "The option '{}' conflicts with the '{}' option in the '{tun}' tunnel type",
                        OPTNAMES[b], OPTNAMES[a]
                    )
                );
            }
        }
    }
    assert_eq!(cells, 11);
}

#[test]
fn tunnel_options_need_the_tunnel_method() {
    // tun-type, tun-port, tun-nocsum, tun-csum, tun-remcsum
    for give in &GIVE[29..34] {
        for method in ["-g", "-m"] {
            let mut args: Vec<String> =
                ["-a", "-t", "198.51.100.1:80", "-r", "203.0.113.10", method]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            args.extend(give.iter().map(|s| s.to_string()));
            assert_eq!(
                message(&args),
                "Tunnel options conflict with forward method",
                "{args:?}"
            );
        }
    }
}
