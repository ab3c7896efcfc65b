//! The metrics listener: a small read-only HTTP server (tiny_http) on one thread.
//!
//! `GET /metrics`: the Prometheus text format. `GET /`: the live view (one self-contained page). `GET
//! /status.json`: what the live view polls each second. Anything else: 404; methods other than GET/HEAD: 405.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tiny_http::{Header, Method, Request, Response, Server};

use super::{Sources, page};

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("starting the metrics thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running listener; it stops when dropped.
pub struct Listener {
    server: Arc<Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Listener {
    /// Bind `addr` and serve on a thread of its own.
    pub fn start(
        addr: SocketAddr,
        registry: Registry,
        sources: Sources,
    ) -> Result<Self, MetricsError> {
        let server = Server::http(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let s = server.clone();
        let thread = std::thread::Builder::new()
            .name("rvsd-metrics".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    respond(req, &registry, &sources);
                }
            })?;
        Ok(Self {
            server,
            thread: Some(thread),
            addr,
        })
    }

    /// The bound address (the port the kernel picked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Add a header (names and values are ASCII constants of this file, so the parse cannot fail).
fn with_header<R: std::io::Read>(r: Response<R>, name: &str, value: &str) -> Response<R> {
    match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(h) => r.with_header(h),
        Err(()) => r,
    }
}

fn respond(req: Request, registry: &Registry, sources: &Sources) {
    if !matches!(req.method(), Method::Get | Method::Head) {
        let r = Response::from_string("method not allowed (this listener is read-only)\n")
            .with_status_code(405);
        let r = with_header(r, "Allow", "GET, HEAD");
        let _ = req.respond(r);
        return;
    }
    let path = req.url().split('?').next().unwrap_or("");
    let (status, ctype, body) = match path {
        "/metrics" => match super::render(registry) {
            Ok(text) => (200, super::CONTENT_TYPE, text.into_bytes()),
            Err(_) => (
                500,
                "text/plain; charset=utf-8",
                b"encoding the metrics failed\n".to_vec(),
            ),
        },
        "/" | "/index.html" => (
            200,
            "text/html; charset=utf-8",
            page::HTML.as_bytes().to_vec(),
        ),
        "/status.json" => (
            200,
            "application/json",
            page::status_json(sources).into_bytes(),
        ),
        _ => (
            404,
            "text/plain; charset=utf-8",
            b"not found: try /metrics or /\n".to_vec(),
        ),
    };
    let r = Response::from_data(body).with_status_code(status);
    let r = with_header(
        with_header(r, "Content-Type", ctype),
        "Cache-Control",
        "no-store",
    );
    if let Err(e) = req.respond(r) {
        tracing::debug!(error = %e, "metrics client went away");
    }
}
