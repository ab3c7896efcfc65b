//! The real servers' tiny HTTP/1.1 server and UDP echo server (`rvs-lab serve`, run inside a real-server
//! namespace with `ip netns exec`).
//!
//! HTTP: `GET /` (any path but `/echo`) answers `NAME CIP:CPORT\n`, i.e. the real server's name and the client
//! address it saw; `POST /echo` answers with the request body unchanged. Keep-alive is the HTTP/1.1 default;
//! `Connection: close` (or HTTP/1.0 without keep-alive) closes after the answer. Every answer carries
//! `X-Real-Server: NAME`.
//!
//! UDP: every datagram is answered with `NAME CIP:CPORT\n` followed by the datagram's own bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{LabError, Result};

/// Largest request body accepted (the 1 MiB both-ways test needs 1 MiB).
pub const MAX_BODY: usize = 16 << 20;
/// Most connections served at once (threads); more wait in the accept queue.
const MAX_CONNS: usize = 512;

/// One parsed HTTP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub version: String,
    pub content_length: usize,
    pub keep_alive: bool,
}

/// Reads the header lines of an HTTP head (a request's, or an answer's for [`crate::client`]) up to the blank line,
/// handing each `name: value` (value trimmed) to `field`; `what` names the head in the error when the connection
/// closes inside it.
pub fn read_header_fields<R: BufRead>(
    r: &mut R,
    what: &str,
    mut field: impl FnMut(&str, &str) -> Result<()>,
) -> Result<()> {
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)
            .map_err(LabError::io("reading a header"))?
            == 0
        {
            return Err(LabError::Check(format!(
                "connection closed inside the {what}"
            )));
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Ok(());
        }
        if let Some((k, v)) = h.split_once(':') {
            field(k, v.trim())?;
        }
    }
}

/// Reads one request head; `Ok(None)` on a clean EOF before any byte.
pub fn read_request_head<R: BufRead>(r: &mut R) -> Result<Option<RequestHead>> {
    let mut line = String::new();
    if r.read_line(&mut line)
        .map_err(LabError::io("reading a request line"))?
        == 0
    {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(LabError::Check(format!("malformed request line {line:?}")));
    };
    let mut head = RequestHead {
        method: method.to_string(),
        path: path.to_string(),
        version: version.to_string(),
        content_length: 0,
        keep_alive: version == "HTTP/1.1",
    };
    read_header_fields(r, "request head", |k, v| {
        if k.eq_ignore_ascii_case("content-length") {
            head.content_length = v
                .parse()
                .map_err(|_| LabError::Check(format!("bad Content-Length {v:?}")))?;
        } else if k.eq_ignore_ascii_case("connection") {
            if v.eq_ignore_ascii_case("close") {
                head.keep_alive = false;
            } else if v.eq_ignore_ascii_case("keep-alive") {
                head.keep_alive = true;
            }
        }
        Ok(())
    })?;
    if head.content_length > MAX_BODY {
        return Err(LabError::Check(format!(
            "request body too large: {}",
            head.content_length
        )));
    }
    Ok(Some(head))
}

/// A peer address as the client knows itself: an IPv4 client of a dual-stack (`[::]`) socket shows as IPv4, not as
/// `::ffff:a.b.c.d`.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn serve_conn(name: &str, stream: TcpStream) -> Result<()> {
    let peer = canonical(stream.peer_addr().map_err(LabError::io("peer address"))?);
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(LabError::io("read timeout"))?;
    let _ = stream.set_nodelay(true);
    let mut writer = stream
        .try_clone()
        .map_err(LabError::io("cloning a socket"))?;
    let mut reader = BufReader::new(stream);
    while let Some(head) = read_request_head(&mut reader)? {
        let mut body = vec![0u8; head.content_length];
        reader
            .read_exact(&mut body)
            .map_err(LabError::io("reading a request body"))?;
        let answer = if head.method == "POST" && head.path == "/echo" {
            body
        } else {
            format!("{name} {peer}\n").into_bytes()
        };
        let conn = if head.keep_alive {
            "keep-alive"
        } else {
            "close"
        };
        let header = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Real-Server: {name}\r\nConnection: {conn}\r\n\r\n",
            answer.len()
        );
        writer
            .write_all(header.as_bytes())
            .map_err(LabError::io("writing a response"))?;
        writer
            .write_all(&answer)
            .map_err(LabError::io("writing a response body"))?;
        writer
            .flush()
            .map_err(LabError::io("flushing a response"))?;
        if !head.keep_alive {
            break;
        }
    }
    Ok(())
}

/// Serves HTTP on `listener` forever, one thread per connection (at most [`MAX_CONNS`] at once).
pub fn http_loop(name: Arc<str>, listener: TcpListener) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        while active.load(Ordering::Acquire) >= MAX_CONNS {
            std::thread::sleep(Duration::from_millis(1));
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (name, active) = (name.clone(), active.clone());
        let spawned = std::thread::Builder::new().spawn(move || {
            let _ = serve_conn(&name, stream);
            active.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            // The stream was dropped with the closure: the client sees a reset and reports it.
            eprintln!("rvs-lab serve: cannot spawn a connection thread");
        }
    }
}

/// Answers UDP datagrams forever.
pub fn udp_loop(name: Arc<str>, sock: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let mut answer = format!("{name} {}\n", canonical(peer)).into_bytes();
        answer.extend_from_slice(&buf[..n]);
        let _ = sock.send_to(&answer, peer);
    }
}

/// `rvs-lab serve`: binds both, prints `ready` on stdout (the lab waits for that line), then serves forever.
pub fn serve(name: &str, http: SocketAddr, udp: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(http).map_err(LabError::io(format!("binding HTTP {http}")))?;
    let sock = UdpSocket::bind(udp).map_err(LabError::io(format!("binding UDP {udp}")))?;
    let name: Arc<str> = Arc::from(name);
    let n2 = name.clone();
    std::thread::Builder::new()
        .name("udp".into())
        .spawn(move || udp_loop(n2, sock))
        .map_err(LabError::io("spawning the UDP thread"))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").map_err(LabError::io("writing ready"))?;
        out.flush().map_err(LabError::io("flushing ready"))?;
    }
    http_loop(name, listener);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<RequestHead>> {
        read_request_head(&mut std::io::Cursor::new(text.as_bytes().to_vec()))
    }

    #[test]
    fn request_heads() {
        let h = head("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("ok")
            .expect("head");
        assert_eq!(
            (
                h.method.as_str(),
                h.path.as_str(),
                h.keep_alive,
                h.content_length
            ),
            ("GET", "/", true, 0)
        );
        let h = head("POST /echo HTTP/1.1\r\nconnection: Close\r\nContent-Length: 5\r\n\r\nhello")
            .expect("ok");
        let h = h.expect("head");
        assert_eq!((h.keep_alive, h.content_length), (false, 5));
        let h = head("GET / HTTP/1.0\r\n\r\n").expect("ok").expect("head");
        assert!(!h.keep_alive, "HTTP/1.0 closes by default");
        let h = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .expect("ok")
            .expect("head");
        assert!(h.keep_alive);
        assert!(head("").expect("eof").is_none());
        assert!(head("GARBAGE\r\n\r\n").is_err());
        assert!(head("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(head("GET / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n").is_err());
        assert!(
            head("GET / HTTP/1.1\r\nHost: x\r\n").is_err(),
            "EOF inside the head"
        );
    }
}
