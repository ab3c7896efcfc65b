//! Warnings (reported once each, with `file:line`) and load errors (nothing is applied).

use std::fmt;
use std::path::PathBuf;

use crate::lexer::Loc;

/// A keyword rvs reads but does not act on, an unknown keyword, or a value keepalived would also have
/// corrected: reported once, never silently ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub loc: Loc,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}

/// Why a configuration was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{loc}: include {}: {source}", path.display())]
    Include {
        loc: Loc,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Braces, quotes, includes.
    #[error("{loc}: syntax error: {message}")]
    Syntax { loc: Loc, message: String },
    /// A value that cannot be used (a bad address, a number out of range, a duplicate service, ...).
    #[error("{loc}: {message}")]
    Invalid { loc: Loc, message: String },
}

impl LoadError {
    /// Where the error is, when it is in a file.
    pub fn loc(&self) -> Option<&Loc> {
        match self {
            Self::Read { .. } => None,
            Self::Include { loc, .. } | Self::Syntax { loc, .. } | Self::Invalid { loc, .. } => {
                Some(loc)
            }
        }
    }
}

/// Collected warnings.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    pub warnings: Vec<Warning>,
}

impl Diagnostics {
    pub fn warn(&mut self, loc: &Loc, message: impl Into<String>) {
        self.warnings.push(Warning {
            loc: loc.clone(),
            message: message.into(),
        });
    }
}
