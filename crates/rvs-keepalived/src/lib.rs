//! rvs-keepalived: keepalived.conf read as keepalived reads it, once, for everyone.
//!
//! * [`lexer`]: keepalived's lexical rules (comments `#` `!`, quotes, line continuation, `include` with globs
//!   relative to the including file, `$NAME` parameters, `@id` conditional lines), every line tagged `file:line`.
//! * [`tree`]: statements and `{ }` blocks ([`Node`]).
//! * [`model`]: the typed LVS side (global_defs, virtual_server, virtual_server_group, real_server, checkers),
//!   with keepalived's defaults and inheritance already resolved; [`vrrp`]: the typed VRRP side (vrrp_instance,
//!   vrrp_sync_group, vrrp_script) for the VRRP engine.
//! * [`convert`]: the LVS side as rvs-api [`rvs_api::Command`]s (the batch `rvsadm -R` sends).
//!
//! Keywords rvs reads but does not act on, and unknown keywords, are [`Warning`]s with `file:line` (one each);
//! a syntax error or an unusable value is a [`LoadError`] naming `file:line`, and nothing is applied.
//! The keyword table and every deliberate difference from keepalived are in README.md.

pub mod build;
pub mod convert;
pub mod diag;
pub mod glob;
pub mod lexer;
pub mod model;
pub mod tree;
pub mod vrrp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use diag::{Diagnostics, LoadError, Warning};
pub use lexer::{FileSystem, LexOptions, Loc, Source};
pub use model::*;
pub use tree::Node;
pub use vrrp::*;

/// A configuration read without errors, with its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Warning>,
}

/// Read `path` from the file system.
pub fn load(path: &Path, opts: &LexOptions) -> Result<Loaded, LoadError> {
    load_from(&FileSystem, path, opts)
}

/// Read `path` from `src`.
pub fn load_from(src: &dyn Source, path: &Path, opts: &LexOptions) -> Result<Loaded, LoadError> {
    let mut diag = Diagnostics::default();
    let lines = lexer::lex_file(src, path, opts, &mut diag)?;
    let nodes = tree::build(&lines)?;
    let config = build::config(&nodes, &mut diag)?;
    Ok(Loaded {
        config,
        warnings: diag.warnings,
    })
}

/// Parse one text (no includes): for fuzzing and quick tests.
pub fn parse_str(text: &str) -> Result<Loaded, LoadError> {
    let src = MemorySource::new([("keepalived.conf", text)]);
    load_from(
        &src,
        Path::new("keepalived.conf"),
        &LexOptions {
            no_include: true,
            ..LexOptions::default()
        },
    )
}

/// Files held in memory (tests, fuzzing): globs match names in the same directory.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    files: HashMap<PathBuf, String>,
}

impl MemorySource {
    pub fn new<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            files: files
                .into_iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_owned()))
                .collect(),
        }
    }
}

impl Source for MemorySource {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        let dir = pattern.parent().unwrap_or(Path::new(""));
        let pat = pattern
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut v: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| {
                p.parent().unwrap_or(Path::new("")) == dir
                    && p.file_name()
                        .is_some_and(|n| glob::matches(&pat, &n.to_string_lossy()))
            })
            .cloned()
            .collect();
        v.sort();
        v
    }
}
