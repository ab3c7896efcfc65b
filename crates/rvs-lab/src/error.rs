//! The lab's error type: every failure names its cause, so the demo and the tests fail loudly and clearly.

use std::path::PathBuf;

/// Anything that can go wrong while building, running or removing a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// An external command (`ip`, `rvsadm`, `cargo`) could not run or exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// An I/O error with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The lab needs root (network namespaces, veths, TUN).
    #[error("the lab needs root (network namespaces, veth pairs, TUN); run it as root")]
    NotRoot,
    /// A lab with the same prefix still exists.
    #[error(
        "a lab with prefix `{prefix}` is still up ({what} exists); remove it with `rvs-lab down --prefix {prefix}`"
    )]
    StillUp { prefix: String, what: String },
    /// The root namespace already uses an address in one of the lab's ranges.
    #[error(
        "the root network namespace has address {addr}, which overlaps the lab's range {range}; refusing to start"
    )]
    Overlap { addr: String, range: String },
    /// A binary (rvsd, rvsadm, rvs-lab) could not be found or built.
    #[error("cannot find `{name}` (looked in {searched:?}) and building it failed: {reason}")]
    BinaryMissing {
        name: String,
        searched: Vec<PathBuf>,
        reason: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {ms} ms: {what}")]
    Timeout { what: String, ms: u128 },
    /// A process of the lab (rvsd, a server) died or misbehaved.
    #[error("{what}")]
    Process { what: String },
    /// A check on traffic failed (wrong answer, wrong peer, ...).
    #[error("{0}")]
    Check(String),
    /// Bad options.
    #[error("invalid option: {0}")]
    Invalid(String),
    /// Another error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        context: String,
        source: Box<LabError>,
    },
}

impl LabError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
        let context = context.into();
        move |source| LabError::Io { context, source }
    }
}

/// Result alias for the lab.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// What was being done when an error happened, added on the way up (`lab.start_rvsd().context("starting rvsd")?`).
pub trait Context<T> {
    /// Wraps the error with `what`.
    fn context(self, what: impl Into<String>) -> Result<T>;
    /// Wraps the error with the text `what` makes (made only on failure).
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| LabError::Context {
            context: what.into(),
            source: Box::new(e),
        })
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| LabError::Context {
            context: what().into(),
            source: Box::new(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_reads_outside_in_and_keeps_the_cause() {
        let failed: Result<()> = Err(LabError::Command {
            command: "nft -f x".into(),
            status: "exit status: 1".into(),
            stderr: "syntax error".into(),
        });
        let e = failed
            .context("loading the ruleset")
            .with_context(|| format!("bringing up path {}", "nft"))
            .expect_err("an error stays an error");
        assert_eq!(
            e.to_string(),
            "bringing up path nft: loading the ruleset: `nft -f x` failed (exit status: 1): syntax error"
        );
        // The cause is still there to match on, under the contexts.
        let LabError::Context { source, .. } = &e else {
            panic!("{e:?}")
        };
        let LabError::Context { source, .. } = source.as_ref() else {
            panic!("{source:?}")
        };
        assert!(matches!(source.as_ref(), LabError::Command { .. }));
        assert_eq!(Ok::<u8, LabError>(7).context("never shown").ok(), Some(7));
    }
}
