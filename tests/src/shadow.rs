//! Shadow validation test bed (issue 8): a knotd reference on the server namespace's loopback,
//! query files in dnsperf format, dnsperf runs from the client namespace, and `dns-xdp diff`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::net::Family;
use crate::{TempDir, TestNet, daemon_bin, stop, wait_for};

/// knotd serving one zone on 127.0.0.1@`port` inside the server namespace, where the daemon
/// under test reaches it as its shadow reference; stopped on Drop.
pub struct LoopbackKnotd<'net> {
    net: &'net TestNet,
    child: Option<Child>,
    dir: TempDir,
    pub addr: SocketAddr,
}

impl<'net> LoopbackKnotd<'net> {
    pub fn start(net: &'net TestNet, origin: &str, zone_file: &Path, port: u16) -> Self {
        // No identity, version or NSID: the daemon under test sends none either.
        let server = format!("listen: 127.0.0.1@{port}\n  identity: \"\"\n  version: \"\"\n  nsid: \"\"");
        let (child, dir) = crate::reference::spawn_knotd(net, origin, zone_file, &server);
        let mut k = LoopbackKnotd { net, child: Some(child), dir, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let up = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            if let Some(status) = k.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("knotd exited during startup ({status}):\n{}", k.log());
            }
            let out = k
                .net
                .srv
                .command("kdig")
                .args(["@127.0.0.1", "-p", &port.to_string(), "+timeout=1", "+retry=0", "SOA", origin])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout).contains("status: NOERROR").then_some(())
        });
        assert!(up.is_some(), "knotd did not answer on 127.0.0.1@{port} within 10 s:\n{}", k.log());
        k
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }
}

impl Drop for LoopbackKnotd<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, Duration::from_secs(5));
        }
    }
}

/// A dnsperf query file: every name with every type, `repeat` times over.
pub fn query_file(dir: &Path, names: &[&str], types: &[&str], repeat: usize) -> PathBuf {
    let mut text = String::new();
    for _ in 0..repeat {
        for name in names {
            for ty in types {
                text.push_str(&format!("{name} {ty}\n"));
            }
        }
    }
    let path = dir.join(format!("queries-{}.txt", crate::unique()));
    std::fs::write(&path, text).expect("writing the query file");
    path
}

/// Runs dnsperf once through `file` from the client namespace, at most `qps` queries per second
/// and `limit` long; returns the number of queries completed.
pub fn dnsperf(net: &TestNet, family: Family, file: &Path, qps: u32, limit: Duration, extra: &[&str]) -> u64 {
    let out = net
        .cli
        .command("dnsperf")
        .args(["-s", &net.srv_addr(family).to_string(), "-d", file.to_str().expect("UTF-8 path"), "-n", "1"])
        .args(["-Q", &qps.to_string(), "-l", &limit.as_secs().max(1).to_string(), "-t", "2"])
        .args(extra)
        .output()
        .expect("running dnsperf");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dnsperf failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Queries completed:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `Queries completed` in dnsperf output:\n{text}"))
}

/// What `dns-xdp diff` printed and how it exited.
pub struct DiffRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl DiffRun {
    /// The `MISMATCH proto name type (line N): fields` lines, as (`proto name type`, fields).
    pub fn mismatches(&self) -> Vec<(String, String)> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("MISMATCH "))
            .map(|l| {
                let (head, fields) = l.rsplit_once(": ").expect("`: fields` in a MISMATCH line");
                let what = head.split(" (line").next().unwrap_or(head).to_owned();
                (what, fields.to_owned())
            })
            .collect()
    }

    pub fn summary(&self) -> &str {
        self.stdout.lines().find(|l| l.starts_with("summary:")).unwrap_or("")
    }
}

/// `dns-xdp diff --a A --b B --queries FILE ARGS`, in this namespace.
pub fn run_diff(a: SocketAddr, b: SocketAddr, queries: &Path, args: &[&str]) -> DiffRun {
    let out = Command::new(daemon_bin())
        .args([
            "diff",
            "--a",
            &a.to_string(),
            "--b",
            &b.to_string(),
            "--queries",
            queries.to_str().expect("UTF-8 path"),
        ])
        .args(args)
        .output()
        .expect("running dns-xdp diff");
    DiffRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
