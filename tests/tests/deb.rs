//! The Debian package as an operator meets it: `dpkg -i` puts the binary, man pages, completions,
//! configuration and unit in place and creates the service user; the installed binary checks the
//! example zone and serves with the packaged configuration; `dpkg -r` keeps the configuration and
//! `dpkg -P` removes it and the state. Installs on this machine (CI's is a throwaway VM, as root);
//! the package is purged at the end whatever happens. The package is the one `cargo xtask test`
//! built (`$DNS_XDP_DEB`), else the newest in target/debian.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use dns_xdp_tests::cluster::{free_port, http};
use dns_xdp_tests::{ready_with, repo_root, stop, wait_for, which};

const PACKAGE: &str = "dns-xdp";

fn deb_path() -> PathBuf {
    if let Some(p) = std::env::var_os("DNS_XDP_DEB") {
        return p.into();
    }
    let dir = repo_root().join("target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "deb")).collect()
        })
        .unwrap_or_default();
    debs.sort_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    debs.pop().unwrap_or_else(|| dir.join("dns-xdp_VERSION_ARCH.deb (run `cargo xtask deb`)"))
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    let out = run("dpkg-query", &["-W", "-f=${Status}", PACKAGE]);
    String::from_utf8_lossy(&out.stdout).contains("installed")
        && !String::from_utf8_lossy(&out.stdout).contains("not-installed")
}

/// Purges the package when the test ends, passed or not.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", PACKAGE]);
    }
}

#[test]
fn installs_runs_and_removes_cleanly() {
    let deb = deb_path();
    if !ready_with(&[deb.as_path()]) {
        return;
    }
    assert!(!installed(), "{PACKAGE} is already installed on this machine: the test would remove it; not touching it");
    let _purge = Purge;
    ok("dpkg", &["-i", deb.to_str().unwrap()]);

    for file in [
        "/usr/sbin/dns-xdp",
        "/usr/share/man/man8/dns-xdp.8.gz",
        "/usr/share/man/man8/dns-xdp-serve.8.gz",
        "/usr/share/man/man8/dns-xdp-check.8.gz",
        "/usr/share/man/man8/dns-xdp-ctl.8.gz",
        "/usr/share/bash-completion/completions/dns-xdp",
        "/usr/share/zsh/vendor-completions/_dns-xdp",
        "/usr/share/fish/vendor_completions.d/dns-xdp.fish",
        "/etc/dns-xdp/dns-xdp.toml",
        "/etc/dns-xdp/example.com.zone",
        "/lib/systemd/system/dns-xdp.service",
    ] {
        assert!(Path::new(file).is_file(), "{file} not installed");
    }
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", PACKAGE]);
    assert!(conffiles.contains("/etc/dns-xdp/dns-xdp.toml"), "not a conffile: {conffiles}");
    let user = ok("getent", &["passwd", "dns-xdp"]);
    assert!(user.contains("/var/lib/dns-xdp"), "the service user: {user}");
    assert!(Path::new("/var/lib/dns-xdp").is_dir(), "the state directory");

    match which("systemd-analyze") {
        Some(analyze) => {
            // --man=no: the pages' presence is checked above; `man` itself may not be installed.
            let out = run(analyze.to_str().unwrap(), &["verify", "--man=no", "/lib/systemd/system/dns-xdp.service"]);
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "systemd-analyze verify: {}\n{text}", out.status);
            assert!(!text.contains("dns-xdp.service:"), "systemd-analyze complains about the unit:\n{text}");
        }
        None => eprintln!("systemd-analyze not installed: the unit is not verified"),
    }

    let check = ok("/usr/sbin/dns-xdp", &["check", "/etc/dns-xdp/example.com.zone"]);
    assert!(check.contains("zone example.com. serial"), "{check}");
    let man = ok("gzip", &["-dc", "/usr/share/man/man8/dns-xdp-ctl.8.gz"]);
    assert!(man.contains(".TH dns-xdp-ctl 8") && man.contains("zone"), "the ctl page:\n{man}");

    // The packaged configuration serves (on test addresses, so nothing else on this machine is hit).
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut daemon = Command::new("/usr/sbin/dns-xdp")
        .args(["serve", "--config", "/etc/dns-xdp/dns-xdp.toml", "--xdp-mode", "off"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--metrics", &metrics])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the installed dns-xdp");
    let healthy = wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
        (http(metrics.parse().unwrap(), "GET", "/healthz", None, "").map(|r| r.0) == Some(200)).then_some(())
    });
    let (status, _) = stop(&mut daemon, Duration::from_secs(10));
    assert!(healthy.is_some(), "the packaged configuration does not serve (exit {status})");

    ok("dpkg", &["-r", PACKAGE]);
    assert!(!Path::new("/usr/sbin/dns-xdp").exists(), "remove leaves the binary");
    assert!(Path::new("/etc/dns-xdp/dns-xdp.toml").exists(), "remove keeps the configuration");
    ok("dpkg", &["-P", PACKAGE]);
    assert!(!Path::new("/etc/dns-xdp/dns-xdp.toml").exists(), "purge removes the configuration");
    assert!(!Path::new("/var/lib/dns-xdp").exists(), "purge removes the state");
    assert!(!installed(), "still known to dpkg after purge");
}
