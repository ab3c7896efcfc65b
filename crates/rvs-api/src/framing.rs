//! Newline-delimited JSON framing: one message per line.

use std::io::{self, BufRead, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Longest accepted line (a `-R` batch of 100,000 destinations is ~20 MB).
pub const MAX_LINE: usize = 256 * 1024 * 1024;

/// A framing error.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("message longer than {MAX_LINE} bytes")]
    TooLong,
}

/// Writes `msg` as one JSON line and flushes.
pub fn write_message<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), FramingError> {
    let mut buf = serde_json::to_vec(msg)?;
    buf.push(b'\n');
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one raw line (without its newline) into `buf`; `Ok(false)` on a clean EOF before any byte.
pub fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, FramingError> {
    buf.clear();
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            if buf.is_empty() {
                return Ok(false);
            }
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated message").into());
        }
        if let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            if buf.len() + pos > MAX_LINE {
                return Err(FramingError::TooLong);
            }
            buf.extend_from_slice(&chunk[..pos]);
            r.consume(pos + 1);
            return Ok(true);
        }
        let n = chunk.len();
        if buf.len() + n > MAX_LINE {
            return Err(FramingError::TooLong);
        }
        buf.extend_from_slice(chunk);
        r.consume(n);
    }
}

/// Reads and decodes one message; `Ok(None)` on a clean EOF.
pub fn read_message<R: BufRead, T: DeserializeOwned>(r: &mut R) -> Result<Option<T>, FramingError> {
    let mut buf = Vec::new();
    if !read_line(r, &mut buf)? {
        return Ok(None);
    }
    Ok(Some(serde_json::from_slice(&buf)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Command, Reply, Request, Response, Timeouts};

    #[test]
    fn round_trip_two_messages() {
        let mut out = Vec::new();
        write_message(&mut out, &Request::new(Command::GetTimeouts)).unwrap();
        write_message(
            &mut out,
            &Response::Ok(Reply::Timeouts(Timeouts {
                tcp_s: 900,
                tcp_fin_s: 120,
                udp_s: 300,
            })),
        )
        .unwrap();
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
        let mut r = io::Cursor::new(out);
        let req: Request = read_message(&mut r).unwrap().unwrap();
        assert_eq!(req.command, Command::GetTimeouts);
        assert_eq!(req.version, crate::PROTOCOL_VERSION);
        let resp: Response = read_message(&mut r).unwrap().unwrap();
        assert!(matches!(resp, Response::Ok(Reply::Timeouts(t)) if t.tcp_s == 900));
        assert!(read_message::<_, Request>(&mut r).unwrap().is_none());
    }

    #[test]
    fn truncated_and_garbage_are_errors() {
        let mut r = io::Cursor::new(b"{\"version\":1".to_vec());
        assert!(read_message::<_, Request>(&mut r).is_err());
        let mut r = io::Cursor::new(b"not json\n".to_vec());
        assert!(matches!(
            read_message::<_, Request>(&mut r),
            Err(FramingError::Json(_))
        ));
    }
}
