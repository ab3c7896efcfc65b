//! Rules files in `ipvsadm -S` format: parse into commands (for `-R` and rvsd's `--rules`),
//! format from services (rvsd's save file).

use super::listing;
use super::resolve::{Resolver, SystemResolver};
use crate::ipvsadm::{self, Action};
use crate::types::{Command, ConfigOp, ServiceSnapshot};

/// A rules-file error: the 1-based line and ipvsadm's message for it (`Display`, as `rvsadm -R`
/// prints it), plus the line's text and what is wrong with it in words ([`RulesError::explain`],
/// for a daemon's log, where ipvsadm's bare "Try `rvsadm -h'" hint would say nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RulesError {
    pub line: usize,
    pub message: String,
    /// The exit status ipvsadm gives this error (2 or 255).
    pub exit_code: i32,
    /// The offending line, as written.
    pub text: String,
    /// What is wrong, in words (ipvsadm's message when it has one).
    pub reason: String,
}

impl RulesError {
    /// `line N: "<text>": <reason>`.
    pub fn explain(&self) -> String {
        format!(
            "line {}: \"{}\": {}",
            self.line,
            self.text.trim(),
            self.reason
        )
    }
}

/// The commands a rules line may start with.
const CHANGE_COMMANDS: &str = "-A, -E, -D, -C, -Z, -a, -e, -d or --set";

/// Words for an error ipvsadm reports with its usage hint only.
fn reason_for(words: &[String], e: &ipvsadm::ParseError) -> String {
    let first_line = e.message.lines().find(|l| !l.is_empty());
    if let Some(m) = first_line {
        return m.to_owned();
    }
    let first = words.first().map(String::as_str).unwrap_or("");
    let known = [
        "-A",
        "-E",
        "-D",
        "-C",
        "-Z",
        "-a",
        "-e",
        "-d",
        "--set",
        "-R",
        "-S",
        "-L",
        "-l",
        "--add-service",
        "--edit-service",
        "--delete-service",
        "--clear",
        "--zero",
        "--add-server",
        "--edit-server",
        "--delete-server",
        "--restore",
        "--save",
        "--list",
        "--start-daemon",
        "--stop-daemon",
        "-h",
        "--help",
        "-v",
        "--version",
    ];
    if !known
        .iter()
        .any(|k| first == *k || (first.starts_with(k) && k.len() == 2))
    {
        return format!(
            "`{first}` is not a command: a rules line starts with {CHANGE_COMMANDS} (ipvsadm -S format)"
        );
    }
    format!("not a valid ipvsadm command line (a rules line starts with {CHANGE_COMMANDS})")
}

/// Splits a rules line into words: whitespace separated, `"..."`/`'...'` quoting, `#` starting a
/// word begins a comment. A leading program word (`ipvsadm`, `/sbin/ipvsadm`, `rvsadm`) is dropped.
pub fn split_line(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    if !line.contains(['"', '\'']) {
        // fast path: no quoting
        for w in line.split_ascii_whitespace() {
            if w.starts_with('#') {
                break;
            }
            words.push(w.to_owned());
        }
        drop_program_word(&mut words);
        return words;
    }
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for ch in line.chars() {
        match quote {
            Some(q) => {
                if ch == q {
                    quote = None;
                } else {
                    cur.push(ch);
                }
            }
            None => {
                if ch.is_whitespace() {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                } else if ch == '#' && !in_word {
                    break;
                } else if ch == '"' || ch == '\'' {
                    quote = Some(ch);
                    in_word = true;
                } else {
                    cur.push(ch);
                    in_word = true;
                }
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    drop_program_word(&mut words);
    words
}

fn drop_program_word(words: &mut Vec<String>) {
    if let Some(first) = words.first() {
        let base = first.rsplit('/').next().unwrap_or(first);
        if !first.starts_with('-') && (base == "ipvsadm" || base == "rvsadm") {
            words.remove(0);
        }
    }
}

/// Parses a rules file with the system resolver (names in the file resolve as with ipvsadm -R).
pub fn parse(text: &str) -> Result<Vec<Command>, RulesError> {
    parse_with(text, &SystemResolver::new())
}

/// Parses a rules file: one ipvsadm command per line; blank lines and comments skipped.
/// Returns the commands with their 1-based line numbers.
pub fn parse_lines(
    text: &str,
    resolver: &dyn Resolver,
) -> Result<Vec<(usize, Command)>, RulesError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let words = split_line(line);
        if words.is_empty() {
            continue;
        }
        match ipvsadm::parse_restore_line(&words, resolver) {
            Ok(Action::Apply(cmd)) => out.push((lineno, cmd)),
            Ok(_) => {
                let message = "only configuration commands (-A -E -D -C -Z -a -e -d --set) belong in a rules file".to_owned();
                return Err(RulesError {
                    line: lineno,
                    reason: message.clone(),
                    message,
                    exit_code: 2,
                    text: line.to_owned(),
                });
            }
            Err(e) => {
                let text = e.stderr_text();
                let message = text
                    .lines()
                    .find(|l| !l.is_empty())
                    .unwrap_or("invalid command")
                    .to_owned();
                return Err(RulesError {
                    line: lineno,
                    message,
                    exit_code: e.exit_code,
                    text: line.to_owned(),
                    reason: reason_for(&words, &e),
                });
            }
        }
    }
    Ok(out)
}

/// Parses a rules file into commands.
pub fn parse_with(text: &str, resolver: &dyn Resolver) -> Result<Vec<Command>, RulesError> {
    Ok(parse_lines(text, resolver)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

/// Formats services as `ipvsadm -S -n` text (plus `-x`/`-y` thresholds, which ipvsadm -S omits
/// but ipvsadm -R accepts), in ipvsadm's order. `parse(format(s))` re-creates `s`'s configuration.
pub fn format(services: &[ServiceSnapshot]) -> String {
    listing::save_rules(services)
}

/// One configuration change as the rules lines that replay it, appended to `out` (rvsd appends these to its rules
/// file, which stays an `ipvsadm -R` script: later lines edit what earlier ones made). `-A`/`-E` and `-a`/`-e` are
/// written as [`format`] writes services and real servers; `-D`, `-d` and `-C` name what they remove. `-Z` and
/// `--set` are not part of a rules file and write nothing.
pub fn change_lines(op: &ConfigOp, out: &mut String) {
    use crate::types::{DestSpec, ServiceKey, ServiceSpec, Weight};
    let service = |key: ServiceKey, dests: &[DestSpec]| {
        ServiceSnapshot::configured(ServiceSpec::new(key, "wlc"), dests)
    };
    // The first (`-A`) or second (`-a`) line `format` writes, with its option replaced by `op`.
    let line = |s: ServiceSnapshot, nth: usize, op: &str, out: &mut String| {
        let text = format(std::slice::from_ref(&s));
        if let Some(l) = text.lines().nth(nth) {
            out.push_str(op);
            out.push_str(&l[2..]);
            out.push('\n');
        }
    };
    let configured = |spec: &ServiceSpec| ServiceSnapshot::configured(spec.clone(), &[]);
    match op {
        ConfigOp::AddService(c) => line(configured(c), 0, "-A", out),
        ConfigOp::EditService(c) => line(configured(c), 0, "-E", out),
        ConfigOp::AddDest(k, d) => line(service(*k, &[*d]), 1, "-a", out),
        ConfigOp::EditDest(k, d) => line(service(*k, &[*d]), 1, "-e", out),
        ConfigOp::DeleteService(k) => {
            // "-A <name> -s wlc": the name is what precedes the scheduler.
            let mut l = String::new();
            line(service(*k, &[]), 0, "-D", &mut l);
            if let Some(end) = l.find(" -s ") {
                out.push_str(&l[..end]);
                out.push('\n');
            }
        }
        ConfigOp::DeleteDest(k, addr, port) => {
            // "-a <name> -r <server> <method> -w ...": up to the server.
            let d = DestSpec::masq(*addr, *port, Weight(0));
            let mut l = String::new();
            line(service(*k, &[d]), 1, "-d", &mut l);
            let words: Vec<&str> = l.split_whitespace().collect();
            if let Some(r) = words.iter().position(|w| *w == "-r")
                && r + 1 < words.len()
            {
                out.push_str(&words[..r + 2].join(" "));
                out.push('\n');
            }
        }
        ConfigOp::Clear => out.push_str("-C\n"),
        ConfigOp::Zero(_) | ConfigOp::SetTimeouts(_) => {}
    }
}

#[cfg(test)]
mod change_tests {
    use super::super::resolve::NoResolver;
    use super::*;

    /// Every change line parses back into the command it was written from.
    #[test]
    fn change_lines_parse_back_to_their_commands() {
        let text = "\
-A -t 198.51.100.1:80 -s wlc -p 300 -M 255.255.255.0
-E -u [2001:db8::1]:53 -s mh -b flag-1,flag-2
-a -t 198.51.100.1:80 -r 203.0.113.10:8080 -m -w 3 -x 100 -y 50
-e -f 7 -r 203.0.113.11:0 -i -w 1 --tun-type gue --tun-port 6080
-d -t 198.51.100.1:80 -r 203.0.113.10:8080
-D -u [2001:db8::1]:53
-D -f 7
-C
";
        let cmds = parse_with(text, &NoResolver).expect("valid rules");
        assert_eq!(cmds.len(), 8);
        let ops: Vec<ConfigOp> = cmds
            .iter()
            .map(|c| c.config_op().expect("a change"))
            .collect();
        for (c, op) in cmds.iter().zip(&ops) {
            let mut out = String::new();
            change_lines(op, &mut out);
            let back = parse_with(&out, &NoResolver).unwrap_or_else(|e| panic!("{out}: {e}"));
            assert_eq!(back, vec![c.clone()], "{out}");
        }
        let mut all = String::new();
        for op in &ops {
            change_lines(op, &mut all);
        }
        assert_eq!(parse_with(&all, &NoResolver).expect("batch"), cmds);
        let mut none = String::new();
        change_lines(&ConfigOp::Zero(None), &mut none);
        change_lines(
            &ConfigOp::SetTimeouts(crate::types::Timeouts::UNCHANGED),
            &mut none,
        );
        assert_eq!(none, "");
    }
}

#[cfg(test)]
mod tests {
    use super::super::resolve::NoResolver;
    use super::*;

    fn err(text: &str) -> RulesError {
        parse_lines(text, &NoResolver).expect_err("a bad rules file")
    }

    #[test]
    fn a_bad_line_is_named_quoted_and_explained() {
        let e = err("-A -t 198.51.100.1:80 -s rr\n\n-Q -t 198.51.100.1:80\n");
        assert_eq!(e.line, 3);
        assert_eq!(e.text, "-Q -t 198.51.100.1:80");
        let x = e.explain();
        assert!(x.starts_with("line 3: \"-Q -t 198.51.100.1:80\": "), "{x}");
        assert!(x.contains("`-Q` is not a command"), "{x}");
        assert!(!x.contains("Try `"), "{x}");
        // rvsadm -R keeps ipvsadm's text.
        assert!(e.to_string().starts_with("line 3: Try `rvsadm -h'"), "{e}");

        let e = err("this is not a rule\n");
        assert!(
            e.explain().contains("`this` is not a command"),
            "{}",
            e.explain()
        );

        // ipvsadm's own message when it has one.
        let e = err("-A -t 198.51.100.1:99999 -s rr\n");
        assert_eq!(e.reason, e.message);
        assert!(
            e.explain().contains("\"-A -t 198.51.100.1:99999 -s rr\""),
            "{}",
            e.explain()
        );
        assert!(!e.reason.is_empty());

        let e = err("-L -n\n");
        assert!(
            e.explain().contains("only configuration commands"),
            "{}",
            e.explain()
        );
    }
}
