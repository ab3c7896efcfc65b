//! Rules files in `ipvsadm -S` format: parse into commands (for `-R` and rvsd's `--rules`),
//! format from services (rvsd's save file).

use crate::ipvsadm::{self, Action};
use crate::listing;
use crate::resolve::{NoResolver, Resolver, SystemResolver};
use crate::types::{Command, ServiceInfo};

/// A rules-file error: the 1-based line and ipvsadm's message for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RulesError {
    pub line: usize,
    pub message: String,
    /// The exit status ipvsadm gives this error (2 or 255).
    pub exit_code: i32,
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
                return Err(RulesError {
                    line: lineno,
                    message: "only configuration commands (-A -E -D -C -Z -a -e -d --set) belong in a rules file".to_owned(),
                    exit_code: 2,
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
pub fn format(services: &[ServiceInfo]) -> String {
    listing::save_rules(services, &NoResolver, true)
}
