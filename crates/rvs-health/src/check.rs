//! The checkers, as async functions on one current-thread tokio runtime (no thread per check). Each returns an
//! [`Outcome`]; every network step is bounded by the checker's `connect_timeout`, MISC_CHECK by `misc_timeout`.
//! Sockets are opened in the caller's network namespace (rvsd's), bound to `bindto`/`bind_port`/`bind_if` and
//! marked with `fwmark` when configured.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use rvs_keepalived::{
    CheckKind, Checker, DnsCheck, HttpCheck, HttpProtocol, MiscCheck, SmtpCheck, UdpCheck,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::state::Outcome;

/// Largest HTTP response read (the digest is over the body; keepalived's genhash reads it all).
pub const MAX_HTTP_RESPONSE: usize = 16 << 20;

/// How TCP_CHECK ends a connection once it is established (the check needs nothing more from it).
///
/// Measured on loopback (crates/rvs-health/README.md, "Scale"): the close is a large share of a check's kernel
/// work (close/FIN 17 % of the checker thread's samples), and every graceful close leaves a TIME_WAIT socket on
/// the director for 60 s (10,000 checks every 5 s: ~120,000 of them; with few real-server addresses they
/// exhaust connect()'s port space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpClose {
    /// Abortive close, keepalived's original behaviour: `SO_LINGER {1, 0}` set before connect (keepalived's
    /// layer4.c `tcp_connect`/`tcp_bind_connect` up to its 1.2 series: "free the tcp port after closing the
    /// socket descriptor"), so close sends one RST: no FIN exchange, no TIME_WAIT socket. The real server's
    /// application may see (and log) a connection reset.
    #[default]
    Reset,
    /// Orderly close (FIN in both directions, TIME_WAIT on the director), as current keepalived does (layer4.c
    /// `socket_bind_connect`, 2017 on: `SO_LINGER {1, 5}`, "allow time for a proper shutdown"). rvs does not
    /// block in close as keepalived's linger does: the kernel finishes the exchange in the background, the same
    /// packets on the wire.
    Graceful,
}

/// A checker ready to run many times: its definition and what every run of it sends (HTTP_GET/SSL_GET's requests),
/// built once per configuration, so a check allocates no request and copies no definition.
#[derive(Debug, Clone)]
pub struct Probe {
    pub checker: Checker,
    /// HTTP_GET/SSL_GET: the request of each url, in order (empty for the other kinds).
    requests: Vec<Box<[u8]>>,
    /// How TCP_CHECK closes (the other checkers close gracefully: they read until the server closes).
    close: TcpClose,
}

impl Probe {
    /// A probe whose TCP_CHECK closes with [`TcpClose::default`] (a reset).
    pub fn new(checker: Checker) -> Self {
        Self::with_close(checker, TcpClose::default())
    }

    /// A probe whose TCP_CHECK closes as `close` says.
    pub fn with_close(checker: Checker, close: TcpClose) -> Self {
        let requests = match &checker.kind {
            CheckKind::Http(h) | CheckKind::Ssl(h) => h
                .urls
                .iter()
                .map(|u| {
                    let host = match &u.virtualhost {
                        Some(v) => v.clone(),
                        None => match checker.connect_ip {
                            IpAddr::V4(a) => format!("{a}:{}", checker.connect_port),
                            IpAddr::V6(a) => format!("[{a}]:{}", checker.connect_port),
                        },
                    };
                    http_request(&u.path, &host, h.protocol)
                        .into_bytes()
                        .into_boxed_slice()
                })
                .collect(),
            _ => Vec::new(),
        };
        Self {
            checker,
            requests,
            close,
        }
    }
}

/// Run one check.
pub async fn run(c: &Checker, tls: &Arc<rustls::ClientConfig>) -> Outcome {
    run_probe(&Probe::new(c.clone()), tls).await
}

/// Run one check of a prepared [`Probe`]. TCP_CHECK's future stays small (the others are boxed): it is moved
/// into a task on every check.
pub async fn run_probe(p: &Probe, tls: &Arc<rustls::ClientConfig>) -> Outcome {
    let c = &p.checker;
    let r = match &c.kind {
        CheckKind::Tcp => tcp(c, p.close).await.map(|_| None),
        CheckKind::Http(h) => Box::pin(http(c, h, &p.requests, None)).await.map(|_| None),
        CheckKind::Ssl(h) => Box::pin(http(c, h, &p.requests, Some(tls)))
            .await
            .map(|_| None),
        CheckKind::Misc(m) => Box::pin(misc(m)).await,
        CheckKind::Udp(u) => Box::pin(udp(c, u)).await.map(|_| None),
        CheckKind::Dns(d) => Box::pin(dns(c, d)).await.map(|_| None),
        CheckKind::Smtp(s) => Box::pin(smtp(c, s)).await.map(|_| None),
    };
    match r {
        Ok(weight) => Outcome::Success { weight },
        Err(why) => Outcome::Failure(why),
    }
}

type R<T> = Result<T, String>;

fn target(c: &Checker) -> SocketAddr {
    SocketAddr::new(c.connect_ip, c.connect_port)
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// A socket set up as the checker asks (bind address/port/interface, fwmark), non-blocking.
fn socket(c: &Checker, ty: socket2::Type) -> R<socket2::Socket> {
    let dom = if c.connect_ip.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    // Non-blocking (and close-on-exec) from socket(2) itself: no fcntl round trips per check.
    let s =
        socket2::Socket::new(dom, ty.nonblocking(), None).map_err(|e| format!("socket: {e}"))?;
    if let Some(m) = c.fwmark {
        s.set_mark(m).map_err(|e| format!("fwmark {m}: {e}"))?;
    }
    if let Some(i) = &c.bind_if {
        s.bind_device(Some(i.as_bytes()))
            .map_err(|e| format!("bind_if {i}: {e}"))?;
    }
    if c.bindto.is_some() || c.bind_port.is_some() {
        let ip = c.bindto.unwrap_or(if c.connect_ip.is_ipv4() {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u8; 16])
        });
        let a = SocketAddr::new(ip, c.bind_port.unwrap_or(0));
        s.set_reuse_address(true)
            .map_err(|e| format!("bind {a}: {e}"))?;
        s.bind(&a.into()).map_err(|e| format!("bind {a}: {e}"))?;
    }
    Ok(s)
}

async fn connect(c: &Checker) -> R<TcpStream> {
    connect_socket(c, socket(c, socket2::Type::STREAM)?).await
}

async fn connect_socket(c: &Checker, s: socket2::Socket) -> R<TcpStream> {
    let sock = tokio::net::TcpSocket::from_std_stream(s.into());
    match timeout(c.connect_timeout, sock.connect(target(c))).await {
        Ok(Ok(st)) => Ok(st),
        Ok(Err(e)) => Err(format!("connect to {}: {}", target(c), io_reason(&e))),
        Err(_) => Err(format!(
            "connect to {}: timed out after {}",
            target(c),
            secs(c.connect_timeout)
        )),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

/// TCP_CHECK: the connection is accepted within connect_timeout; then closed as `close` says (nothing is sent).
async fn tcp(c: &Checker, close: TcpClose) -> R<()> {
    let s = socket(c, socket2::Type::STREAM)?;
    if close == TcpClose::Reset {
        // Set before connect, as keepalived did: one setsockopt, and close() then sends a RST.
        s.set_linger(Some(Duration::ZERO))
            .map_err(|e| format!("SO_LINGER: {e}"))?;
    }
    drop(connect_socket(c, s).await?);
    Ok(())
}

/// MD5 of `body` as genhash prints it.
pub fn md5_hex(body: &[u8]) -> String {
    Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The request keepalived's HTTP checker sends.
pub fn http_request(path: &str, host: &str, proto: HttpProtocol) -> String {
    let (ver, close) = match proto {
        HttpProtocol::V10 => ("1.0", ""),
        HttpProtocol::V10C => ("1.0", "Connection: close\r\n"),
        HttpProtocol::V11 => ("1.1", "Connection: close\r\n"),
    };
    format!("GET {path} HTTP/{ver}\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n{close}\r\n")
}

/// Status code and body of a raw HTTP response.
pub fn parse_response(raw: &[u8]) -> R<(u16, &[u8])> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .ok_or("HTTP response without a complete header")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "HTTP header is not text")?;
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let ver = parts.next().unwrap_or("");
    if !ver.starts_with("HTTP/") {
        return Err(format!(
            "not an HTTP response: '{}'",
            status_line.chars().take(40).collect::<String>()
        ));
    }
    let code: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad HTTP status line '{status_line}'"))?;
    Ok((code, &raw[end..]))
}

async fn read_all<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> R<Vec<u8>> {
    // Read straight into the buffer (an 8 KB chunk on the future's stack made every check's task 8 KB larger,
    // copied at each spawn).
    let mut buf = Vec::with_capacity(4096);
    loop {
        if buf.len() == buf.capacity() {
            // Double, but never past one byte more than the limit (len <= MAX here: checked after each read).
            buf.reserve_exact(buf.len().min(MAX_HTTP_RESPONSE + 1 - buf.len()));
        }
        let n = match timeout(limit, s.read_buf(&mut buf)).await {
            Ok(Ok(n)) => n,
            // A TLS peer closing without close_notify: what was read is the response.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Ok(Err(e)) => return Err(format!("reading the response: {}", io_reason(&e))),
            Err(_) => return Err(format!("no response within {}", secs(limit))),
        };
        if n == 0 {
            return Ok(buf);
        }
        if buf.len() > MAX_HTTP_RESPONSE {
            return Err("response larger than 16 MB".into());
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    req: &[u8],
    limit: Duration,
) -> R<Vec<u8>> {
    match timeout(limit, s.write_all(req)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("sending the request: {}", io_reason(&e))),
        Err(_) => {
            return Err(format!(
                "sending the request: timed out after {}",
                secs(limit)
            ));
        }
    }
    read_all(s, limit).await
}

/// HTTP_GET / SSL_GET: every url answers with an accepted status and, when set, the digest.
async fn http(
    c: &Checker,
    h: &HttpCheck,
    requests: &[Box<[u8]>],
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> R<()> {
    for (u, req) in h.urls.iter().zip(requests) {
        let tcp = connect(c).await?;
        let raw = match tls {
            None => {
                let mut tcp = tcp;
                exchange(&mut tcp, req, c.connect_timeout).await?
            }
            Some(cfg) => {
                let sni = if h.enable_sni {
                    h.sni_name.clone().or_else(|| u.virtualhost.clone())
                } else {
                    None
                };
                let name = match sni {
                    Some(n) => rustls::pki_types::ServerName::try_from(n.clone())
                        .map_err(|_| format!("'{n}' is not a valid SNI name"))?,
                    None => rustls::pki_types::ServerName::IpAddress(c.connect_ip.into()),
                };
                let conn = tokio_rustls::TlsConnector::from(cfg.clone());
                let mut s = match timeout(c.connect_timeout, conn.connect(name, tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return Err(format!("TLS handshake: {e}")),
                    Err(_) => {
                        return Err(format!(
                            "TLS handshake: timed out after {}",
                            secs(c.connect_timeout)
                        ));
                    }
                };
                exchange(&mut s, req, c.connect_timeout).await?
            }
        };
        let (code, body) = parse_response(&raw)?;
        if !u.accepts(code) {
            return Err(format!("{}: HTTP status {code}", u.path));
        }
        if let Some(want) = u.digest {
            let got = Md5::digest(body);
            if got.as_slice() != want {
                return Err(format!(
                    "{}: digest {} differs from the configured one",
                    u.path,
                    md5_hex(body)
                ));
            }
        }
    }
    Ok(())
}

/// MISC_CHECK: `/bin/sh -c misc_path`, killed after misc_timeout. 0 = up; 1 = down; with misc_dynamic 2..=255
/// = up with weight code - 2; anything else = down.
async fn misc(m: &MiscCheck) -> R<Option<u32>> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&m.script.command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run '{}': {e}", m.script.command))?;
    let status = match timeout(m.timeout, child.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("waiting for the script: {e}")),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(format!("script timed out after {}", secs(m.timeout)));
        }
    };
    match status.code() {
        Some(0) => Ok(None),
        Some(c @ 2..=255) if m.dynamic => Ok(Some(c as u32 - 2)),
        Some(c) => Err(format!("script exited with status {c}")),
        None => Err("script killed by a signal".into()),
    }
}

async fn udp_socket(c: &Checker) -> R<UdpSocket> {
    let s = socket(c, socket2::Type::DGRAM)?;
    let u = UdpSocket::from_std(s.into()).map_err(|e| format!("socket: {e}"))?;
    u.connect(target(c))
        .await
        .map_err(|e| format!("connect to {}: {e}", target(c)))?;
    Ok(u)
}

/// UDP_CHECK: send the payload; an ICMP error fails; without `require_reply`, silence within connect_timeout is
/// success; with it, a reply of the right length (and prefix) is needed.
async fn udp(c: &Checker, u: &UdpCheck) -> R<()> {
    let sock = udp_socket(c).await?;
    let payload = u.payload.clone().unwrap_or_else(|| b"rvs\n".to_vec());
    sock.send(&payload)
        .await
        .map_err(|e| format!("send to {}: {}", target(c), io_reason(&e)))?;
    let mut buf = vec![0u8; 65536];
    match timeout(c.connect_timeout, sock.recv(&mut buf)).await {
        Err(_) if u.require_reply.is_none() => Ok(()),
        Err(_) => Err(format!("no reply within {}", secs(c.connect_timeout))),
        Ok(Err(e)) => Err(format!("{} (ICMP error)", io_reason(&e))),
        Ok(Ok(n)) => {
            let Some(pat) = &u.require_reply else {
                return Ok(());
            };
            if n < u.min_reply_length || n > u.max_reply_length {
                return Err(format!(
                    "reply of {n} bytes outside {}..={}",
                    u.min_reply_length, u.max_reply_length
                ));
            }
            let matches = pat.iter().zip(&buf[..n]).all(|(&(h, l), &b)| {
                h.is_none_or(|h| h == b >> 4) && l.is_none_or(|l| l == b & 0xf)
            });
            if matches {
                Ok(())
            } else {
                Err("reply does not match require_reply".into())
            }
        }
    }
}

/// A DNS query for `name`/`qtype` (RD set, class IN).
pub fn dns_query(id: u16, name: &str, qtype: u16) -> R<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        if label.len() > 63 {
            return Err(format!("DNS label '{label}' longer than 63 bytes"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Ok(q)
}

/// Check a DNS answer to query `id`: a response without error (check_dns.c: same id, QR set, RCODE 0).
pub fn dns_answer_ok(id: u16, r: &[u8]) -> R<()> {
    if r.len() < 12 {
        return Err("DNS reply shorter than a header".into());
    }
    if u16::from_be_bytes([r[0], r[1]]) != id {
        return Err("DNS reply to another query".into());
    }
    if r[2] & 0x80 == 0 {
        return Err("DNS reply is not a response".into());
    }
    let rcode = r[3] & 0x0f;
    if rcode != 0 {
        return Err(format!("DNS rcode {rcode}"));
    }
    Ok(())
}

/// DNS_CHECK: the query is answered without error within connect_timeout.
async fn dns(c: &Checker, d: &DnsCheck) -> R<()> {
    let sock = udp_socket(c).await?;
    let id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        & 0xffff) as u16;
    let q = dns_query(id, &d.name, d.qtype.code())?;
    sock.send(&q)
        .await
        .map_err(|e| format!("send to {}: {}", target(c), io_reason(&e)))?;
    let mut buf = vec![0u8; 4096];
    match timeout(c.connect_timeout, sock.recv(&mut buf)).await {
        Err(_) => Err(format!("no DNS reply within {}", secs(c.connect_timeout))),
        Ok(Err(e)) => Err(format!("{} (ICMP error)", io_reason(&e))),
        Ok(Ok(n)) => dns_answer_ok(id, &buf[..n]),
    }
}

async fn smtp_reply<S: AsyncRead + Unpin>(
    r: &mut BufReader<S>,
    limit: Duration,
    want: &str,
) -> R<()> {
    let mut line = String::new();
    loop {
        line.clear();
        match timeout(limit, r.read_line_limited(&mut line)).await {
            Ok(Ok(0)) => return Err("SMTP server closed the connection".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("SMTP: {}", io_reason(&e))),
            Err(_) => return Err(format!("SMTP: no reply within {}", secs(limit))),
        }
        if !line.starts_with(want) {
            return Err(format!("SMTP: expected {want}, got '{}'", line.trim_end()));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

trait ReadLineLimited {
    async fn read_line_limited(&mut self, s: &mut String) -> std::io::Result<usize>;
}

impl<S: AsyncRead + Unpin> ReadLineLimited for BufReader<S> {
    async fn read_line_limited(&mut self, s: &mut String) -> std::io::Result<usize> {
        use tokio::io::AsyncBufReadExt;
        let mut v = Vec::new();
        let n = (&mut *self).take(4096).read_until(b'\n', &mut v).await?;
        s.push_str(&String::from_utf8_lossy(&v));
        Ok(n)
    }
}

/// SMTP_CHECK: greeting 220, `HELO helo_name` answered 250, QUIT.
async fn smtp(c: &Checker, s: &SmtpCheck) -> R<()> {
    let st = connect(c).await?;
    let (rd, mut wr) = st.into_split();
    let mut rd = BufReader::new(rd);
    smtp_reply(&mut rd, c.connect_timeout, "220").await?;
    let helo = format!("HELO {}\r\n", s.helo_name);
    timeout(c.connect_timeout, wr.write_all(helo.as_bytes()))
        .await
        .map_err(|_| "SMTP: sending HELO timed out".to_string())?
        .map_err(|e| format!("SMTP: {}", io_reason(&e)))?;
    smtp_reply(&mut rd, c.connect_timeout, "250").await?;
    let _ = timeout(c.connect_timeout, wr.write_all(b"QUIT\r\n")).await;
    Ok(())
}

/// The TLS client configuration of SSL_GET: like keepalived, the server's certificate is not verified (checks
/// reach real servers by address, usually with certificates for the service name).
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder_with_protocol_versions(rustls::DEFAULT_VERSIONS)
        });
    let cfg = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    Arc::new(cfg)
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genhash_digest_is_md5_of_the_body() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let raw = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n";
        let (code, body) = parse_response(raw).expect("parses");
        assert_eq!((code, body), (200, &b"hello\n"[..]));
        assert_eq!(md5_hex(body), "b1946ac92492d2347c6235b4d2611184");
        assert!(parse_response(b"SSH-2.0-x\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.0 200").is_err());
    }

    #[test]
    fn request_as_keepalived_sends_it() {
        assert_eq!(
            http_request("/h", "www.example.invalid", HttpProtocol::V11),
            "GET /h HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nHost: www.example.invalid\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn dns_wire() {
        let q = dns_query(0x1234, "example.invalid.", 6).expect("query");
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..20], b"\x07example");
        assert_eq!(&q[q.len() - 4..], &[0, 6, 0, 1]);
        assert_eq!(dns_query(1, ".", 6).expect("root").len(), 12 + 1 + 4);
        let mut r = q.clone();
        r[2] |= 0x80;
        assert_eq!(dns_answer_ok(0x1234, &r), Ok(()));
        r[3] |= 3;
        assert_eq!(dns_answer_ok(0x1234, &r), Err("DNS rcode 3".into()));
        assert!(dns_answer_ok(0x9999, &r).is_err());
    }
}
