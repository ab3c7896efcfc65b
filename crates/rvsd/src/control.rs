//! The control socket: a Unix stream socket, mode 0600, peers checked with SO_PEERCRED (uid 0 only), serving
//! rvs-api's newline-delimited JSON protocol (one request line -> one response line).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::daemon::Daemon;

/// Errors claiming the control socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(
        "control socket {0} is in use by a running rvsd (stop it first, or pick another --socket)"
    )]
    InUse(PathBuf),
    #[error("control socket {0}: {1} exists and is not a socket")]
    NotSocket(PathBuf, &'static str),
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Make sure no live rvsd serves `path`; remove a stale socket file a crashed run left. Changes nothing if one is
/// live.
pub fn check_free(path: &Path) -> Result<(), SocketError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(SocketError::Io {
                path: path.to_owned(),
                source: e,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotSocket(path.to_owned(), "a file"));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(SocketError::InUse(path.to_owned())),
        Err(_) => std::fs::remove_file(path).map_err(|e| SocketError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Bind the socket with mode 0600.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    let io = |e| SocketError::Io {
        path: path.to_owned(),
        source: e,
    };
    let l = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(l)
}

/// Serve connections forever (one thread per client; clients are few and short-lived).
pub fn serve(listener: UnixListener, daemon: Arc<Daemon>) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept on the control socket failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        match rvs_io::sys::peer_uid(&stream) {
            Ok(0) => {}
            Ok(uid) => {
                tracing::warn!(uid, "control connection from a non-root user refused");
                refuse(stream, rvs_api::ErrorCode::PermissionDenied);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "SO_PEERCRED failed; connection refused");
                continue;
            }
        }
        let d = daemon.clone();
        let spawned = std::thread::Builder::new()
            .name("rvsd-control".into())
            .spawn(move || {
                if let Err(e) = client(stream, &d) {
                    tracing::debug!(error = %e, "control connection ended");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a control thread");
        }
    }
}

/// Answer one error line and close (the peer may not even have sent its request yet).
fn refuse(mut stream: UnixStream, code: rvs_api::ErrorCode) {
    let resp = rvs_api::Response::Err(rvs_api::ApiError::new(code));
    if let Ok(mut line) = serde_json::to_string(&resp) {
        line.push('\n');
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = stream.write_all(line.as_bytes());
    }
}

/// Longest request line accepted: the protocol's limit (a `-R` batch of 10,000 services with 10 real
/// servers each is ~21 MB of JSON).
const MAX_LINE: u64 = rvs_api::framing::MAX_LINE as u64;

fn client(stream: UnixStream, daemon: &Daemon) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE).read_line(&mut line)?;
        if n == 0 {
            return Ok(());
        }
        if n as u64 >= MAX_LINE && !line.ends_with('\n') {
            refuse(writer, rvs_api::ErrorCode::BadRequest);
            return Ok(());
        }
        if !line.ends_with('\n') {
            // The peer closed in the middle of a request: a half-written request is never executed (its end,
            // "}" and all, may simply not have arrived).
            tracing::debug!(bytes = n, "control request cut short by the peer: ignored");
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut reply = crate::mapping::handle_line(daemon, line.trim_end());
        reply.push('\n');
        writer.write_all(reply.as_bytes())?;
        writer.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_one_protocol_line_with_ipvsadm_text() {
        let (a, b) = UnixStream::pair().expect("socketpair");
        refuse(a, rvs_api::ErrorCode::PermissionDenied);
        let mut line = String::new();
        BufReader::new(b).read_line(&mut line).expect("read");
        match serde_json::from_str::<rvs_api::Response>(&line).expect("a response") {
            rvs_api::Response::Err(e) => {
                assert_eq!(e.message, "Permission denied (you must be root)")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn stale_socket_is_removed_live_one_refused() {
        let dir = std::env::temp_dir().join(format!("rvsd-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("s.sock");
        {
            let _l = bind(&p).expect("bind");
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            assert!(matches!(check_free(&p), Err(SocketError::InUse(_))));
        }
        // Listener dropped: the file stays but nobody answers -> stale, removed.
        assert!(p.exists());
        check_free(&p).expect("stale socket removed");
        assert!(!p.exists());
        std::fs::write(&p, b"x").expect("file");
        assert!(matches!(check_free(&p), Err(SocketError::NotSocket(..))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
