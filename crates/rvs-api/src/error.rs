//! Errors carried in a [`crate::Response`]: a stable code plus ipvsadm/libipvs's exact text.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Stable machine-readable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Add of an existing service (EEXIST on add-service).
    ServiceExists,
    /// Edit/delete/zero/list of a missing service (ESRCH on service ops).
    NoSuchService,
    /// Destination operation on a missing service (ESRCH on destination ops).
    ServiceNotDefined,
    /// Edit/delete of a missing destination (ENOENT).
    NoSuchDestination,
    /// Add of an existing destination (EEXIST).
    DestinationExists,
    /// Unknown scheduler or persistence engine (ENOENT on service ops).
    SchedulerNotFound,
    /// Sync daemon already running (EEXIST).
    DaemonRunning,
    /// No sync daemon running (ESRCH).
    NoDaemon,
    /// EPERM.
    PermissionDenied,
    /// EINVAL: bad parameters.
    InvalidArgument,
    /// Something ipvsadm accepts but this director cannot do (route/tunnel forwarding, sync daemon...).
    NotSupported,
    /// The request's protocol version is not understood.
    VersionMismatch,
    /// The request line is not valid JSON / not a known command.
    BadRequest,
    /// Anything else on the daemon's side (message says what).
    Internal,
}

impl ErrorCode {
    /// libipvs's `ipvs_strerror` text for this code, where it has one.
    pub const fn ipvs_message(self) -> &'static str {
        match self {
            Self::ServiceExists => "Service already exists",
            Self::NoSuchService => "No such service",
            Self::ServiceNotDefined => "Service not defined",
            Self::NoSuchDestination => "No such destination",
            Self::DestinationExists => "Destination already exists",
            Self::SchedulerNotFound => "Scheduler or persistence engine not found",
            Self::DaemonRunning => "Daemon has already run",
            Self::NoDaemon => "No daemon is running",
            Self::PermissionDenied => "Permission denied (you must be root)",
            Self::InvalidArgument => {
                "Invalid operation.  Possibly wrong module version, address not unicast, ..."
            }
            Self::NotSupported => "Operation not supported",
            Self::VersionMismatch => "Module is wrong version",
            Self::BadRequest => "Bad request",
            Self::Internal => "Internal error",
        }
    }
}

/// An error answer: `{"code": "no_such_service", "message": "No such service", "detail": null, "index": null}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub struct ApiError {
    pub code: ErrorCode,
    /// What ipvsadm would print (libipvs's text for director errors).
    pub message: String,
    /// Optional extra detail (not printed by rvsadm unless useful, e.g. which argument was invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a failed `batch`: index of the failing command (nothing was applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    /// An error with the code's standard libipvs message.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: code.ipvs_message().to_owned(),
            detail: None,
            index: None,
        }
    }

    /// An error with a custom message (e.g. `NotSupported`, `Internal`).
    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            index: None,
        }
    }

    /// Adds a detail.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the batch index.
    #[must_use]
    pub fn at_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// Refusal of something the director does not do (yet).
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::with_message(ErrorCode::NotSupported, message)
    }
}
