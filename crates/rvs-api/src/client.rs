//! Synchronous client (used by rvsadm and tests).

use std::io::{BufReader, BufWriter};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::error::ApiError;
use crate::framing::{self, FramingError};
use crate::types::{Command, Reply, Request, Response};

/// A client error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon's socket could not be reached.
    #[error("Can't connect to rvsd at {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The connection failed mid-call or the answer was malformed.
    #[error("rvsd control connection: {0}")]
    Framing(#[from] FramingError),
    /// The daemon closed the connection without answering.
    #[error("rvsd closed the connection without answering")]
    NoAnswer,
    /// The daemon refused the command.
    #[error("{0}")]
    Api(ApiError),
}

/// A connection to rvsd's control socket.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: BufWriter<UnixStream>,
}

impl Client {
    /// Connects to `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        let write_half = stream.try_clone().map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer: BufWriter::new(write_half),
        })
    }

    /// Connects to [`crate::socket_path`] (`$RVS_SOCKET` or `/run/rvsd.sock`).
    pub fn connect_default() -> Result<Self, ClientError> {
        Self::connect(crate::socket_path())
    }

    /// Sends one command and waits for its answer.
    pub fn call(&mut self, command: Command) -> Result<Reply, ClientError> {
        if let Err(e) = framing::write_message(&mut self.writer, &Request::new(command)) {
            // The daemon may have refused the request (e.g. too long) and closed: show its answer.
            if let Ok(Some(Response::Err(api))) =
                framing::read_message::<_, Response>(&mut self.reader)
            {
                return Err(ClientError::Api(api));
            }
            return Err(e.into());
        }
        match framing::read_message::<_, Response>(&mut self.reader)? {
            None => Err(ClientError::NoAnswer),
            Some(Response::Ok(reply)) => Ok(reply),
            Some(Response::Err(e)) => Err(ClientError::Api(e)),
        }
    }
}
