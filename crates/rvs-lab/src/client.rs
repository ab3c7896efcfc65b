//! The lab's HTTP/1.1 and UDP clients. They open ordinary sockets, so call them inside the client namespace
//! (see [`crate::netns::run_in`] or [`crate::Lab::in_client`]). Every loop is bounded in count and time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// What a request's `Connection:` header asks of the server after its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// `keep-alive`: the connection stays open for the next request.
    KeepAlive,
    /// `close`: this is the connection's last request.
    Close,
}

/// One HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub real_server: Option<String>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

impl Response {
    /// For `GET /`: the real server's name and the client address it saw.
    pub fn who(&self) -> Result<(String, SocketAddr)> {
        let text = String::from_utf8_lossy(&self.body);
        let mut it = text.split_whitespace();
        match (it.next(), it.next().and_then(|a| a.parse().ok())) {
            (Some(name), Some(addr)) => Ok((name.to_string(), addr)),
            _ => Err(LabError::Check(format!("unexpected answer body {text:?}"))),
        }
    }
}

fn read_response<R: BufRead>(r: &mut R) -> Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)
        .map_err(LabError::io("reading the status line"))?
        == 0
    {
        return Err(LabError::Check(
            "connection closed before any answer".into(),
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LabError::Check(format!("malformed status line {line:?}")))?;
    let mut len = None;
    let mut real_server = None;
    let mut keep_alive = line.starts_with("HTTP/1.1");
    crate::servers::read_header_fields(r, "answer's head", |k, v| {
        if k.eq_ignore_ascii_case("content-length") {
            len = v.parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("x-real-server") {
            real_server = Some(v.to_string());
        } else if k.eq_ignore_ascii_case("connection") {
            keep_alive = !v.eq_ignore_ascii_case("close");
        }
        Ok(())
    })?;
    let len = len.ok_or_else(|| LabError::Check("answer without Content-Length".into()))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .map_err(LabError::io("reading the answer body"))?;
    Ok(Response {
        status,
        real_server,
        body,
        keep_alive,
    })
}

/// A (possibly keep-alive) HTTP connection.
#[derive(Debug)]
pub struct HttpConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl HttpConn {
    /// Connects with `timeout` for connect, reads and writes.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<HttpConn> {
        let s = TcpStream::connect_timeout(&addr, timeout)
            .map_err(LabError::io(format!("connecting to {addr}")))?;
        s.set_read_timeout(Some(timeout))
            .map_err(LabError::io("read timeout"))?;
        s.set_write_timeout(Some(timeout))
            .map_err(LabError::io("write timeout"))?;
        let _ = s.set_nodelay(true);
        let writer = s.try_clone().map_err(LabError::io("cloning a socket"))?;
        Ok(HttpConn {
            reader: BufReader::new(s),
            writer,
        })
    }

    /// The local (client) address of this connection.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.writer
            .local_addr()
            .map_err(LabError::io("local address"))
    }

    /// Sends one request and reads its answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        then: Connection,
    ) -> Result<Response> {
        let conn = match then {
            Connection::Close => "close",
            Connection::KeepAlive => "keep-alive",
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: rvs-lab\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n",
            body.len()
        );
        self.writer
            .write_all(head.as_bytes())
            .map_err(LabError::io("sending a request"))?;
        self.writer
            .write_all(body)
            .map_err(LabError::io("sending a request body"))?;
        self.writer
            .flush()
            .map_err(LabError::io("flushing a request"))?;
        read_response(&mut self.reader)
    }

    /// `GET /` on this connection.
    pub fn get(&mut self, then: Connection) -> Result<Response> {
        self.request("GET", "/", &[], then)
    }

    /// Abort the connection: SO_LINGER with a zero timeout, then close, so the kernel sends a RST instead of a FIN.
    pub fn reset(self) -> Result<()> {
        crate::sockopt::linger_zero(&self.writer).map_err(LabError::io("SO_LINGER"))?;
        drop(self); // both handles share the socket: it closes (with a RST) when the last goes
        Ok(())
    }
}

/// One `GET /` on a new connection (`Connection: close`).
pub fn get(addr: SocketAddr, timeout: Duration) -> Result<Response> {
    HttpConn::connect(addr, timeout)?.get(Connection::Close)
}

/// `POST /echo` of `body` on a new connection; returns the answer body.
pub fn echo(addr: SocketAddr, body: &[u8], timeout: Duration) -> Result<Response> {
    HttpConn::connect(addr, timeout)?.request("POST", "/echo", body, Connection::Close)
}

/// What a batch of requests saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answers per real server name.
    pub per_server: BTreeMap<String, usize>,
    /// Client addresses (IP only) the real servers reported.
    pub client_ips: BTreeMap<String, usize>,
    /// Real server names in the order the requests were sent (only with concurrency 1).
    pub order: Vec<String>,
}

impl Tally {
    /// Total answers.
    pub fn total(&self) -> usize {
        self.per_server.values().sum()
    }
}

/// Sends `count` `GET /` requests to `addr`, each on its own connection, `concurrency` at a time; fails on the first
/// error or when `deadline` passes.
pub fn run_requests(
    addr: SocketAddr,
    count: usize,
    concurrency: usize,
    deadline: Duration,
) -> Result<Tally> {
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let first_error: Arc<Mutex<Option<LabError>>> = Arc::new(Mutex::new(None));
    let workers = concurrency.clamp(1, 64);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (next, tally, first_error) = (next.clone(), tally.clone(), first_error.clone());
            s.spawn(move || {
                loop {
                    if next.fetch_add(1, Ordering::AcqRel) >= count {
                        return;
                    }
                    let failed = first_error.lock().map(|e| e.is_some()).unwrap_or(true);
                    if failed {
                        return;
                    }
                    let remaining = deadline.saturating_sub(start.elapsed());
                    let outcome = if remaining.is_zero() {
                        Err(LabError::Timeout {
                            what: format!("{count} requests to {addr}"),
                            ms: deadline.as_millis(),
                        })
                    } else {
                        get(addr, remaining.min(Duration::from_secs(5))).and_then(|r| r.who())
                    };
                    match outcome {
                        Ok((name, caddr)) => {
                            if let Ok(mut t) = tally.lock() {
                                *t.per_server.entry(name.clone()).or_default() += 1;
                                *t.client_ips.entry(caddr.ip().to_string()).or_default() += 1;
                                if workers == 1 {
                                    t.order.push(name);
                                }
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    let t = tally
        .lock()
        .map(|t| t.clone())
        .map_err(|_| LabError::Check("tally lock poisoned".into()))?;
    Ok(t)
}

/// Sends one UDP datagram to `addr` and waits for the answer: returns (real server name, client address it saw,
/// echoed payload).
pub fn udp_query(
    addr: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<(String, SocketAddr, Vec<u8>)> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(LabError::io("binding a UDP socket"))?;
    udp_query_on(&sock, addr, payload, timeout)
}

/// Like [`udp_query`] on a given socket (to reuse one client port).
pub fn udp_query_on(
    sock: &UdpSocket,
    addr: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<(String, SocketAddr, Vec<u8>)> {
    sock.set_read_timeout(Some(timeout))
        .map_err(LabError::io("UDP read timeout"))?;
    sock.send_to(payload, addr)
        .map_err(LabError::io(format!("sending UDP to {addr}")))?;
    let mut buf = vec![0u8; 65536];
    let (n, from) = sock.recv_from(&mut buf).map_err(LabError::io(format!(
        "waiting for the UDP answer from {addr}"
    )))?;
    if from != addr {
        return Err(LabError::Check(format!(
            "UDP answer came from {from}, expected {addr}"
        )));
    }
    let buf = &buf[..n];
    let nl = buf
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| LabError::Check("UDP answer without a header line".into()))?;
    let head = String::from_utf8_lossy(&buf[..nl]);
    let mut it = head.split_whitespace();
    match (it.next(), it.next().and_then(|a| a.parse().ok())) {
        (Some(name), Some(seen)) => Ok((name.to_string(), seen, buf[nl + 1..].to_vec())),
        _ => Err(LabError::Check(format!("unexpected UDP answer {head:?}"))),
    }
}
