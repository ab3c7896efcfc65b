//! Running external commands (`ip`, `rvsadm`, `cargo`) with errors that say what failed and why.

use std::ffi::OsStr;
use std::process::{Command, Output};

use crate::error::{LabError, Result};

/// Renders a command line for messages.
pub fn render<S: AsRef<OsStr>>(program: &str, args: &[S]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

/// Runs a command to completion and returns its output; a non-zero exit is an error carrying stderr.
pub fn run_output(mut cmd: Command, shown: &str) -> Result<Output> {
    let out = cmd
        .output()
        .map_err(LabError::io(format!("running `{shown}`")))?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: shown.to_string(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Runs `ip ARGS...`.
pub fn ip<S: AsRef<OsStr>>(args: &[S]) -> Result<String> {
    let mut c = Command::new("ip");
    c.args(args);
    let out = run_output(c, &render("ip", args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip -n NS ARGS...` (a command confined to namespace `ns`).
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}
