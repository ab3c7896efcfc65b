//! The Debian package holds what an operator expects: `dpkg-deb -c` and `-I` on the package dist/build-deb.sh made
//! (.ci/run builds it before the tests, with the dev profile).
//!
//! Without a package: FAILS under CI=true, skips (saying how to build one) otherwise.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn package() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("rvs_") && n.ends_with(".deb"))
        })
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let found = debs.pop();
    if found.is_none() {
        let why = format!("no rvs_*.deb in {} (run dist/build-deb.sh)", dir.display());
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true: {why}");
        }
        eprintln!("SKIPPED: {why}");
    }
    found
}

fn dpkg_deb(arg: &str, deb: &Path) -> String {
    let out = Command::new("dpkg-deb").arg(arg).arg(deb).output().unwrap();
    assert!(
        out.status.success(),
        "dpkg-deb {arg}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn package_lists_the_expected_files() {
    let Some(deb) = package() else { return };
    let list = dpkg_deb("-c", &deb);
    // `-rwxr-xr-x root/root 123 2026-12-02 06:00 ./usr/sbin/rvsd`: (mode, path).
    let entries: Vec<(&str, &str)> = list
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.first()?, f.get(5)?.trim_start_matches('.')))
        })
        .collect();
    let mode = |p: &str| {
        entries
            .iter()
            .find(|(_, q)| *q == p)
            .map(|(m, _)| *m)
            .unwrap_or_else(|| panic!("{p} is not in the package:\n{list}"))
    };
    assert_eq!(mode("/usr/sbin/rvsd"), "-rwxr-xr-x");
    assert_eq!(mode("/usr/sbin/rvsadm"), "-rwxr-xr-x");
    assert_eq!(
        mode("/etc/rvs/rules"),
        "-rw-------",
        "the rules file is root's"
    );
    mode("/etc/default/rvsd");
    mode("/usr/lib/systemd/system/rvsd.service");
    for p in [
        "/usr/share/man/man8/rvsd.8.gz",
        "/usr/share/man/man8/rvsadm.8.gz",
        "/usr/share/bash-completion/completions/rvsd",
        "/usr/share/bash-completion/completions/rvsadm",
        "/usr/share/zsh/vendor-completions/_rvsd",
        "/usr/share/zsh/vendor-completions/_rvsadm",
        "/usr/share/fish/vendor_completions.d/rvsd.fish",
        "/usr/share/fish/vendor_completions.d/rvsadm.fish",
        "/usr/share/doc/rvs/README.md",
        "/usr/share/doc/rvs/examples/grafana/rvs-dashboard.json",
        "/usr/share/doc/rvs/examples/prometheus/prometheus.yml",
        "/usr/share/doc/rvs/examples/systemd/fast-path.conf",
    ] {
        assert!(mode(p).starts_with("-rw-r--r--"), "{p}");
    }
    assert!(
        !entries.iter().any(|(_, p)| p.ends_with("/ipvsadm")),
        "the ipvsadm name is only taken when the operator asks"
    );

    let info = dpkg_deb("-I", &deb);
    assert!(info.contains("Package: rvs\n"), "{info}");
    assert!(info.contains("Section: net"), "{info}");
    assert!(
        info.contains("conffiles"),
        "/etc files are conffiles: {info}"
    );
    let out = Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles")
        .output()
        .unwrap();
    let conffiles = String::from_utf8_lossy(&out.stdout);
    for f in ["/etc/rvs/rules", "/etc/default/rvsd"] {
        assert!(
            conffiles.lines().any(|l| l == f),
            "{f} is a conffile (an upgrade keeps the operator's): {conffiles}"
        );
    }
}

/// An upgrade keeps established connections: the package's postinst restarts a running rvsd (`try-restart`: SIGTERM
/// then start, the table handed over behind an nftables hold, hence the dependency), nothing stops rvsd before the
/// unpack, and nothing starts it on a first install.
#[test]
fn package_restarts_a_running_rvsd_after_an_upgrade_and_never_stops_it_before() {
    let Some(deb) = package() else { return };
    let info = dpkg_deb("-I", &deb);
    let depends = info
        .lines()
        .find(|l| l.trim_start().starts_with("Depends:"))
        .unwrap_or_else(|| panic!("no Depends: {info}"));
    assert!(depends.contains("nftables"), "{depends}");
    let script = |name: &str| {
        let out = Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .arg(name)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let postinst = script("postinst").unwrap_or_else(|| panic!("no postinst: {info}"));
    let restart = postinst
        .find("deb-systemd-invoke try-restart rvsd.service")
        .unwrap_or_else(|| panic!("the postinst restarts a running rvsd: {postinst}"));
    assert!(
        postinst[..restart].contains("if [ -n \"$2\" ]"),
        "only on an upgrade ($2: the version upgraded from): {postinst}"
    );
    for never in [
        "deb-systemd-invoke start",
        "deb-systemd-invoke restart",
        "systemctl start",
        "systemctl restart",
    ] {
        assert!(
            !postinst.contains(never),
            "the postinst never runs {never:?}: {postinst}"
        );
    }
    // A stop before the unpack would make the gap the whole unpack: only a removal stops rvsd.
    if let Some(prerm) = script("prerm") {
        for line in prerm.lines().filter(|l| l.contains(" stop ")) {
            assert!(line.contains("rvsd.service"), "{prerm}");
        }
        assert!(
            prerm.contains("\"$1\" = remove") && !prerm.contains("upgrade"),
            "the prerm stops rvsd on removal only: {prerm}"
        );
    }
}
