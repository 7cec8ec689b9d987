//! The daemon under test: `dns-xdp serve` inside a test bed's server namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

use crate::net::SRV_IF;
use crate::{Metrics, TempDir, TestNet, daemon_bin, example_zone, wait_for};

/// The metrics/health address inside the server namespace (each test has its own loopback).
pub const METRICS_ADDR: &str = "127.0.0.1:9153";
/// Loading the XDP program and compiling the zone into maps must fit in this.
const HEALTHY_DEADLINE: Duration = Duration::from_secs(30);
/// SIGTERM must end the daemon within this, else Drop uses SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// What to pass to `dns-xdp serve`.
#[derive(Debug, Clone)]
pub struct Serve {
    pub zones: Vec<PathBuf>,
    /// `--xdp-mode`; `None` leaves the daemon's default (auto).
    pub xdp_mode: Option<String>,
    /// Attach to the server veth (`--iface veth-srv`).
    pub iface: bool,
    pub extra: Vec<String>,
}

impl Serve {
    /// The example zone, XDP on the server veth in native mode.
    pub fn example() -> Self {
        Self::zone(example_zone())
    }

    pub fn zone(path: impl Into<PathBuf>) -> Self {
        Serve { zones: vec![path.into()], xdp_mode: Some("native".into()), iface: true, extra: Vec::new() }
    }

    pub fn xdp_mode(mut self, mode: &str) -> Self {
        self.xdp_mode = Some(mode.to_owned());
        self
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec!["serve".to_owned()];
        if self.iface {
            a.extend(["--iface".into(), SRV_IF.into()]);
        }
        for z in &self.zones {
            a.extend(["--zone".into(), z.to_string_lossy().into_owned()]);
        }
        if let Some(m) = &self.xdp_mode {
            a.extend(["--xdp-mode".into(), m.clone()]);
        }
        a.extend(["--metrics".into(), METRICS_ADDR.into()]);
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// A running daemon, healthy when constructed; stopped on Drop (SIGTERM, then SIGKILL after a deadline).
/// Its stderr (the log) goes to a file in a temp dir that survives a failing test.
pub struct Daemon<'net> {
    net: &'net TestNet,
    child: Option<Child>,
    log: PathBuf,
    _dir: TempDir,
}

impl<'net> Daemon<'net> {
    /// Start and wait for `GET /healthz` == 200; panics with the log if it exits or stays unhealthy.
    pub fn start(net: &'net TestNet, serve: Serve) -> Self {
        let dir = TempDir::new();
        let log = dir.path().join("daemon.log");
        let stderr = std::fs::File::create(&log).expect("creating the daemon log");
        let stdout = std::fs::File::create(dir.path().join("daemon.stdout")).expect("creating stdout file");
        let args = serve.args();
        let child = net
            .srv
            .command(daemon_bin().to_str().expect("UTF-8 binary path"))
            .args(&args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", daemon_bin().display()));
        let mut d = Daemon { net, child: Some(child), log, _dir: dir };
        let healthy = wait_for(HEALTHY_DEADLINE, Duration::from_millis(100), || {
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("dns-xdp {} exited during startup ({status}); log:\n{}", args.join(" "), d.log_excerpt());
            }
            (d.http_status("/healthz") == Some(200)).then_some(())
        });
        if healthy.is_none() {
            panic!("dns-xdp {} not healthy within {HEALTHY_DEADLINE:?}; log:\n{}", args.join(" "), d.log_excerpt());
        }
        d
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log for a failure message: whole when short, else its head and tail (a verifier log can run
    /// to megabytes), with the path of the full file.
    pub fn log_excerpt(&self) -> String {
        excerpt(&self.log(), &self.log)
    }

    fn child(&self) -> &Child {
        self.child.as_ref().expect("daemon already stopped")
    }

    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    pub fn is_alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn signal(&self, sig: libc::c_int) {
        crate::signal(self.child(), sig);
    }

    /// HTTP status of `GET path` on the metrics address, via curl inside the server namespace.
    pub fn http_status(&self, path: &str) -> Option<u16> {
        let out = self
            .net
            .srv
            .command("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2"])
            .arg(format!("http://{METRICS_ADDR}{path}"))
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|c| *c != 0)
    }

    /// Scrape `/metrics`; panics (with the log) if it fails.
    pub fn metrics(&self) -> Metrics {
        let out = self
            .net
            .srv
            .command("curl")
            .args(["-sf", "--max-time", "5"])
            .arg(format!("http://{METRICS_ADDR}/metrics"))
            .output()
            .expect("running curl");
        assert!(out.status.success(), "GET /metrics failed ({}); log:\n{}", out.status, self.log_excerpt());
        Metrics::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// SIGTERM and wait up to `deadline`; returns the status, or `None` if it had to be killed.
    pub fn terminate(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("daemon already stopped");
        let (status, killed) = crate::stop(&mut child, deadline);
        (!killed).then_some(status)
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let (_, killed) = crate::stop(&mut child, STOP_DEADLINE);
            if killed {
                eprintln!("dns-xdp ignored SIGTERM for {STOP_DEADLINE:?} and was killed");
            }
        }
        if std::thread::panicking() {
            eprintln!("--- daemon log ---\n{}", self.log_excerpt());
        }
    }
}

/// Lines kept from each end of a long log.
const EXCERPT_HEAD: usize = 20;
const EXCERPT_TAIL: usize = 60;

fn excerpt(log: &str, path: &Path) -> String {
    let lines: Vec<&str> = log.lines().collect();
    if lines.len() <= EXCERPT_HEAD + EXCERPT_TAIL {
        return format!("{log}(full log: {})", path.display());
    }
    format!(
        "{}\n[... {} lines ...]\n{}\n(full log: {})",
        lines[..EXCERPT_HEAD].join("\n"),
        lines.len() - EXCERPT_HEAD - EXCERPT_TAIL,
        lines[lines.len() - EXCERPT_TAIL..].join("\n"),
        path.display()
    )
}
