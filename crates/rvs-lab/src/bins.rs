//! Finding the binaries the lab drives: `rvsd`, `rvsadm` and `rvs-lab` itself (for `rvs-lab serve`).
//!
//! Order: `$RVS_BIN_DIR`; the directory of the running executable (`target/<profile>/`, or its parent when running
//! from `target/<profile>/deps/` as a test); if `rvsd`/`rvsadm` are still missing, they are built with cargo
//! (same profile) from the workspace this crate lives in. Under `cargo run` (not a test) they are always rebuilt
//! with cargo first, which is a quick no-op when they are fresh, so a demo never runs a stale daemon.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{LabError, Result};

/// Paths of the binaries a lab runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub rvsd: PathBuf,
    pub rvsadm: PathBuf,
    pub rvs_lab: PathBuf,
}

impl Binaries {
    /// The directory holding rvsd/rvsadm (prepended to PATH by `rvs-lab exec`).
    pub fn dir(&self) -> &Path {
        self.rvsadm.parent().unwrap_or(Path::new("/"))
    }
}

fn exe_dir() -> Option<(PathBuf, bool)> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        Some((dir.parent()?.to_path_buf(), true))
    } else {
        Some((dir, false))
    }
}

fn candidates() -> (Vec<PathBuf>, bool) {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("RVS_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    let mut from_test = false;
    if let Some((d, t)) = exe_dir() {
        dirs.push(d);
        from_test = t;
    }
    (dirs, from_test)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The cargo profile a binary directory was built with (`target/release` or anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    Dev,
    Release,
}

impl Profile {
    /// The profile of the last candidate directory (the running executable's, when there is one).
    fn of(dirs: &[PathBuf]) -> Profile {
        match dirs.last() {
            Some(d) if d.file_name().is_some_and(|n| n == "release") => Profile::Release,
            _ => Profile::Dev,
        }
    }
}

/// `cargo build -p P...` (with `--release` for that profile) in the workspace this crate lives in.
fn cargo_build(packages: &[&str], profile: Profile) -> std::result::Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(workspace_root()).arg("build");
    for p in packages {
        c.args(["-p", p]);
    }
    if profile == Profile::Release {
        c.arg("--release");
    }
    eprintln!(
        "rvs-lab: building {} with cargo{} ...",
        packages.join(" and "),
        if profile == Profile::Release {
            " (release)"
        } else {
            ""
        }
    );
    match c.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "cargo build -p {} exited with {s}",
            packages.join(" -p ")
        )),
        Err(e) => Err(format!("cannot run cargo: {e}")),
    }
}

fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

static FOUND: Mutex<Option<Binaries>> = Mutex::new(None);

/// Finds (or builds) rvsd, rvsadm and rvs-lab.
pub fn find() -> Result<Binaries> {
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = found.as_ref() {
        return Ok(b.clone());
    }
    let (dirs, from_test) = candidates();
    let under_cargo_run = std::env::var_os("CARGO").is_some() && !from_test;
    let mut build_error = String::from("not attempted");
    let missing = find_in(&dirs, "rvsd").is_none() || find_in(&dirs, "rvsadm").is_none();
    if (missing || under_cargo_run) && std::env::var_os("RVS_BIN_DIR").is_none() {
        build_error = match cargo_build(&["rvsd", "rvsadm"], Profile::of(&dirs)) {
            Ok(()) => "built, but still not found".into(),
            Err(e) => e,
        };
    }
    let get = |name: &str| {
        find_in(&dirs, name).ok_or_else(|| LabError::BinaryMissing {
            name: name.into(),
            searched: dirs.clone(),
            reason: build_error.clone(),
        })
    };
    let rvs_lab = match std::env::current_exe() {
        Ok(p) if p.file_name().is_some_and(|n| n == "rvs-lab") => p,
        _ => get("rvs-lab")?,
    };
    let b = Binaries {
        rvsd: get("rvsd")?,
        rvsadm: get("rvsadm")?,
        rvs_lab,
    };
    *found = Some(b.clone());
    Ok(b)
}

/// Finds another workspace binary (e.g. `rvs-announce` for scale-out labs) beside rvsd, building its package with
/// cargo when it is missing (and not under `$RVS_BIN_DIR`).
pub fn find_tool(name: &str) -> Result<PathBuf> {
    let (dirs, _) = candidates();
    if let Some(p) = find_in(&dirs, name) {
        return Ok(p);
    }
    let mut reason = "not attempted ($RVS_BIN_DIR is set)".to_string();
    if std::env::var_os("RVS_BIN_DIR").is_none() {
        reason = match cargo_build(&[name], Profile::of(&dirs)) {
            Ok(()) => "built, but still not found".into(),
            Err(e) => e,
        };
        if let Some(p) = find_in(&dirs, name) {
            return Ok(p);
        }
    }
    Err(LabError::BinaryMissing {
        name: name.into(),
        searched: dirs,
        reason,
    })
}

/// Finds only the rvs-lab binary (for labs without rvsd).
pub fn find_lab() -> Result<PathBuf> {
    if let Ok(p) = std::env::current_exe()
        && p.file_name().is_some_and(|n| n == "rvs-lab")
    {
        return Ok(p);
    }
    let (dirs, _) = candidates();
    find_in(&dirs, "rvs-lab").ok_or_else(|| LabError::BinaryMissing {
        name: "rvs-lab".into(),
        searched: dirs,
        reason: "build it with `cargo build -p rvs-lab`".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_is_the_last_candidate_directorys() {
        let p = |dirs: &[&str]| Profile::of(&dirs.iter().map(PathBuf::from).collect::<Vec<_>>());
        assert_eq!(p(&["/w/target/release"]), Profile::Release);
        assert_eq!(p(&["/w/target/debug"]), Profile::Dev);
        assert_eq!(p(&["/w/target/release", "/w/target/debug"]), Profile::Dev);
        assert_eq!(p(&["/opt/bin", "/w/target/release"]), Profile::Release);
        assert_eq!(
            p(&[]),
            Profile::Dev,
            "no candidates: cargo's default profile"
        );
        assert_eq!(
            p(&["/w/target/release-lto"]),
            Profile::Dev,
            "only `release` itself"
        );
    }
}
