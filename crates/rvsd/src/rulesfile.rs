//! The rules file rvsd writes after every change, guarded so that nothing the operator wrote is lost.
//!
//! rvsd remembers the file as it last read or wrote it (size, modification time, inode). Before writing, it looks
//! again: if someone changed the file since (an edit whose reload failed, or was never asked for), that file is
//! moved aside to `<file>.edited-<unix seconds>` and the log says where; then rvsd writes as before.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What identifies a version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ino: m.ino(),
    })
}

/// A rules file and its version rvsd last read or wrote.
#[derive(Debug)]
pub struct RulesFile {
    path: PathBuf,
    known: Mutex<Option<Stamp>>,
}

impl RulesFile {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            known: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Option<Stamp>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file's text, `None` if it does not exist. Not remembered until [`RulesFile::loaded`].
    pub fn read(&self) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file as it is now is what the running configuration came from.
    pub fn loaded(&self) {
        *self.known() = stamp(&self.path);
    }

    /// The running configuration did not come from the file as it is now (a refused reload).
    pub fn refused(&self) {
        let mut k = self.known();
        if *k == stamp(&self.path) {
            *k = None;
        }
    }

    /// rvsd just wrote the file.
    pub fn written(&self) {
        *self.known() = stamp(&self.path);
    }

    /// The file exists and is not the version rvsd last read or wrote.
    pub fn changed_on_disk(&self) -> bool {
        match stamp(&self.path) {
            None => false,
            cur => cur != *self.known(),
        }
    }

    /// Moves an edit rvsd has not applied aside; returns where.
    pub fn move_aside_if_changed(&self) -> std::io::Result<Option<PathBuf>> {
        if !self.changed_on_disk() {
            return Ok(None);
        }
        let aside = self.aside_path();
        std::fs::rename(&self.path, &aside)?;
        *self.known() = None;
        Ok(Some(aside))
    }

    fn aside_path(&self) -> PathBuf {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rules".into());
        let mut k = 0;
        loop {
            let suffix = if k == 0 {
                String::new()
            } else {
                format!(".{k}")
            };
            let p = self
                .path
                .with_file_name(format!("{name}.edited-{secs}{suffix}"));
            if !p.exists() {
                return p;
            }
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::write_atomic;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn tmp(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("rvsd-rulesfile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tmp dir");
        Dir(d)
    }

    /// What the daemon does before and after writing.
    fn save(f: &RulesFile, text: &str) -> Option<PathBuf> {
        let kept = f.move_aside_if_changed().expect("aside");
        write_atomic(f.path(), text.as_bytes()).expect("write");
        f.written();
        kept
    }

    #[test]
    fn an_edit_whose_reload_failed_is_kept_when_the_next_change_saves() {
        // The story: rvsd runs from a rules file; the operator edits it, the reload fails (rvsd keeps the
        // running configuration), then an rvsadm change writes the running configuration over the file.
        let d = tmp("story");
        let path = d.0.join("rules");
        std::fs::write(&path, "-A -t 198.51.100.1:80 -s rr\n").expect("write");
        let f = RulesFile::new(path.clone());
        f.read().expect("read");
        f.loaded();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let edit =
            "-A -t 198.51.100.1:80 -s rr\n-a -t 198.51.100.1:80 -r 203.0.113.1:80 -m -w 1 -x\n";
        std::fs::write(&path, edit).expect("operator's edit");
        // The reload reads it and fails.
        assert_eq!(f.read().expect("read").as_deref(), Some(edit));
        f.refused();
        assert!(f.changed_on_disk());
        let v2 = "-A -t 198.51.100.1:80 -s wlc\n";
        let kept = save(&f, v2).expect("the edit was moved aside");
        assert_eq!(std::fs::read_to_string(&kept).expect("kept"), edit);
        assert!(
            kept.file_name()
                .expect("name")
                .to_string_lossy()
                .starts_with("rules.edited-")
        );
        assert_eq!(std::fs::read_to_string(&path).expect("saved"), v2);
        // The next save has nothing to keep.
        assert_eq!(save(&f, "x\n"), None);
        // A second unapplied edit in the same second gets its own name.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "# mine\n").expect("edit");
        let k2 = save(&f, v2).expect("kept");
        assert_ne!(k2, kept);
        assert_eq!(std::fs::read_to_string(&k2).expect("kept"), "# mine\n");
    }

    #[test]
    fn own_writes_and_missing_files_keep_nothing() {
        let d = tmp("own");
        let path = d.0.join("rules");
        let f = RulesFile::new(path.clone());
        f.loaded();
        assert_eq!(save(&f, "a\n"), None);
        assert_eq!(save(&f, "b\n"), None);
        // rvsd's own appends, recorded.
        {
            use std::io::Write;
            let mut h = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open");
            h.write_all(b"-D -t 198.51.100.1:80\n").expect("append");
        }
        f.written();
        assert!(!f.changed_on_disk());
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(save(&f, "c\n"), None);
        assert_eq!(std::fs::read_dir(&d.0).expect("ls").count(), 1);
    }
}
