//! A command-line error as ipvsadm reports it: its message, its exit status (2 for `fail()`, 255
//! for popt errors and `tryhelp_exit`) and whether the "Try ... --help" hint follows.

use super::PROGRAM;

/// A command-line error: print `message` (and the "Try ..." hint when `try_help`) to stderr and
/// exit with `exit_code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// ipvsadm's text (may be empty when only the hint is printed).
    pub message: String,
    /// 2 for ipvsadm's `fail(2, ...)`, 255 for its `-1` returns (popt errors, `tryhelp_exit`).
    pub exit_code: i32,
    /// Print "Try `rvsadm -h' or 'rvsadm --help' for more information." after the message.
    pub try_help: bool,
}

impl ParseError {
    pub(super) fn fail(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            exit_code: 2,
            try_help: false,
        }
    }
    pub(super) fn try_help() -> Self {
        Self {
            message: String::new(),
            exit_code: 255,
            try_help: true,
        }
    }
    pub(super) fn popt(opt: &str, what: &str) -> Self {
        Self {
            message: format!("{opt}: {what}"),
            exit_code: 255,
            try_help: false,
        }
    }

    /// Everything to print on stderr (each line newline-terminated).
    pub fn stderr_text(&self) -> String {
        let mut s = String::new();
        if !self.message.is_empty() || !self.try_help {
            s.push_str(&self.message);
            s.push('\n');
        }
        if self.try_help {
            s.push_str(&try_help_line());
        }
        s
    }
}

/// ipvsadm's hint line.
pub fn try_help_line() -> String {
    format!("Try `{PROGRAM} -h' or '{PROGRAM} --help' for more information.\n")
}
