//! BIRD's control socket (what `birdc` speaks): one command per line; every answer line starts with a 4-digit code,
//! followed by `-` when more lines of the answer follow and by a space on the last line (lines starting with a
//! space continue the previous code). Codes 0xxx are completions (`0000` OK, `0008`/`0009` already disabled /
//! disabled, `0010`/`0011` already enabled / enabled), 1xxx/2xxx table output, 8xxx run-time and 9xxx parse
//! errors (BIRD's doc/reply_codes).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A BIRD control-socket failure.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    #[error("cannot reach BIRD at {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("BIRD control connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("BIRD closed the control connection")]
    Closed,
    #[error("BIRD answered something that is not its control protocol: {0:?}")]
    Garbled(String),
    /// BIRD refused the command (8xxx/9xxx) with this message.
    #[error("BIRD refused `{command}`: {code:04} {message}")]
    Refused {
        command: String,
        code: u16,
        message: String,
    },
}

/// One complete answer: the last line's code and every line's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub lines: Vec<(u16, String)>,
}

/// Parses one answer line: `Some((code, final, text))`, or `None` for a continuation line (leading space).
pub fn parse_line(line: &str) -> Result<Option<(u16, bool, String)>, BirdError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.starts_with(' ') {
        return Ok(None);
    }
    let (code, rest) = line
        .split_at_checked(4)
        .ok_or_else(|| BirdError::Garbled(line.into()))?;
    let code: u16 = code
        .parse()
        .ok()
        .filter(|_| code.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| BirdError::Garbled(line.into()))?;
    let mut chars = rest.chars();
    let fin = match chars.next() {
        Some(' ') | None => true,
        Some('-') => false,
        Some(_) => return Err(BirdError::Garbled(line.into())),
    };
    Ok(Some((code, fin, chars.as_str().to_string())))
}

/// A connection to BIRD's control socket.
#[derive(Debug)]
pub struct Bird {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// What `enable`/`disable` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Changed,
    AlreadySo,
}

impl Bird {
    /// Connects and reads BIRD's greeting (`0001 BIRD x.y ready.`); every read and write is bounded by `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Bird, BirdError> {
        let stream = UnixStream::connect(path).map_err(|source| BirdError::Connect {
            path: path.to_owned(),
            source,
        })?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut b = Bird {
            reader: BufReader::new(stream),
            writer,
        };
        let hello = b.read_answer()?;
        if hello.code != 1 {
            return Err(BirdError::Garbled(format!("greeting {hello:?}")));
        }
        Ok(b)
    }

    fn read_answer(&mut self) -> Result<Answer, BirdError> {
        let mut lines = Vec::new();
        let mut last = 0u16;
        // A bound on the answer's length: `show` commands can be long, ours are a few lines.
        for _ in 0..100_000 {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(BirdError::Closed);
            }
            match parse_line(&line)? {
                None => lines.push((last, line.trim().to_string())),
                Some((code, fin, text)) => {
                    last = code;
                    lines.push((code, text));
                    if fin {
                        return Ok(Answer { code, lines });
                    }
                }
            }
        }
        Err(BirdError::Garbled("answer too long".into()))
    }

    /// Sends one command line and reads its answer; codes 8000 and up are errors.
    pub fn command(&mut self, command: &str) -> Result<Answer, BirdError> {
        if command.contains(['\n', '\r']) {
            return Err(BirdError::Garbled(format!(
                "command with a newline: {command:?}"
            )));
        }
        self.writer.write_all(format!("{command}\n").as_bytes())?;
        let a = self.read_answer()?;
        if a.code >= 8000 {
            let message = a.lines.last().map(|l| l.1.clone()).unwrap_or_default();
            return Err(BirdError::Refused {
                command: command.into(),
                code: a.code,
                message,
            });
        }
        // The first line's code tells what happened (the last is a bare 0000).
        Ok(a)
    }

    /// `enable PROTO` (`want`) or `disable PROTO`.
    pub fn set_enabled(&mut self, protocol: &str, want: bool) -> Result<Change, BirdError> {
        let verb = if want { "enable" } else { "disable" };
        let a = self.command(&format!("{verb} {protocol}"))?;
        let first = a.lines.first().map_or(a.code, |l| l.0);
        Ok(match first {
            8 | 10 => Change::AlreadySo,
            _ => Change::Changed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_lines() {
        assert_eq!(
            parse_line("0009-vip4: disabled\n").ok().flatten(),
            Some((9, false, "vip4: disabled".into()))
        );
        assert_eq!(
            parse_line("0000 \n").ok().flatten(),
            Some((0, true, String::new()))
        );
        assert_eq!(
            parse_line("0000\n").ok().flatten(),
            Some((0, true, String::new()))
        );
        assert_eq!(
            parse_line("9001 syntax error, unexpected CF_SYM_UNDEFINED\n")
                .ok()
                .flatten(),
            Some((
                9001,
                true,
                "syntax error, unexpected CF_SYM_UNDEFINED".into()
            ))
        );
        assert!(matches!(parse_line(" more text\n"), Ok(None)));
        for bad in ["", "12", "abcd hello", "00x1 z", "0001*x", "+001 x"] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
    }
}
