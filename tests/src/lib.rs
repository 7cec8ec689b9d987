//! Test harness for dns-xdp integration tests: network namespaces joined by veth pairs, the daemon under
//! test, real DNS clients (kdig, dig) and a malformed-packet sender.
//!
//! Every guard cleans up on Drop, panics included: namespaces are deleted, processes are stopped.
//! Tests need root and iproute2; without them they print why and pass, unless `CI` is set, where a
//! missing test bed is a failure (`ready()`).
//!
//! `cargo xtask test` sets `DNS_XDP_BIN` (the release binary) and `DNS_XDP_ROOT` (the workspace root); the test
//! bed's XDP helpers (`dns-xdp-testbed`) are the binary built beside it.

pub mod cluster;
pub mod conformance;
pub mod daemon;
pub mod dig;
pub mod fleet;
pub mod malformed;
pub mod metrics;
pub mod net;
pub mod netns;
pub mod raw;
pub mod reference;
pub mod shadow;
pub mod spoof;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use daemon::{Daemon, Serve};
pub use dig::DigOutput;
pub use metrics::Metrics;
pub use net::TestNet;
pub use netns::Netns;

/// External programs the integration tests run.
pub const TOOLS: &[&str] = &["ip", "ethtool", "curl", "kdig", "dig"];

/// Raises this process's soft open-file limit (to the hard one, at most 65,536) so a test can hold
/// `needed` sockets, and panics with the limit when it cannot.
pub fn allow_open_files(needed: usize) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(65_536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    assert!(
        lim.rlim_cur as usize > needed,
        "RLIMIT_NOFILE hard limit {} too low for {needed} open files",
        lim.rlim_max
    );
}

/// A number unique within this process, for names of namespaces, subnets and temp dirs.
pub fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The workspace root: `$DNS_XDP_ROOT`, else the parent of this crate.
pub fn repo_root() -> PathBuf {
    std::env::var_os("DNS_XDP_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf())
}

/// The daemon under test: `$DNS_XDP_BIN`, else `target/release/dns-xdp`.
pub fn daemon_bin() -> PathBuf {
    std::env::var_os("DNS_XDP_BIN").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target/release/dns-xdp"))
}

/// The test bed's XDP helpers (`dns-xdp-testbed xdp-pass`), built beside the daemon under test.
pub fn testbed_bin() -> PathBuf {
    daemon_bin().with_file_name("dns-xdp-testbed")
}

/// The bundled example zone.
pub fn example_zone() -> PathBuf {
    repo_root().join("examples/example.com.zone")
}

/// Whether the test bed can run here. When not: prints why and returns false, so the test returns early;
/// under CI (`CI` set) panics instead, because a skipped suite there would hide breakage.
pub fn ready() -> bool {
    ready_with(&[daemon_bin().as_path(), testbed_bin().as_path()])
}

/// Like [`ready`], for tests that need other programs instead of the daemon (e.g. the knotd self-test).
pub fn ready_with(needed_files: &[&Path]) -> bool {
    match unready_reason(needed_files) {
        None => true,
        Some(reason) if std::env::var_os("CI").is_some() => panic!("test bed unavailable under CI: {reason}"),
        Some(reason) => {
            eprintln!("skipped: {reason}");
            false
        }
    }
}

fn unready_reason(needed_files: &[&Path]) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and XDP need root)".into());
    }
    if let Some(tool) = TOOLS.iter().find(|t| which(t).is_none()) {
        return Some(format!(
            "`{tool}` not found; run `apt-get install -y knot-dnsutils bind9-dnsutils iproute2 ethtool curl`"
        ));
    }
    if let Some(f) = needed_files.iter().find(|f| !f.is_file()) {
        return Some(format!("{} missing; run `cargo xtask build` or `cargo xtask test`", f.display()));
    }
    netns_probe().clone()
}

/// Whether `ip netns add` works here, probed once per test process: tests run in parallel
/// threads of one process, and a probe name shared between them would collide.
fn netns_probe() -> &'static Option<String> {
    static PROBE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PROBE.get_or_init(|| {
        let probe = format!("dxt-probe-{}", std::process::id());
        let added = Command::new("ip").args(["netns", "add", &probe]).output();
        match added {
            Ok(o) if o.status.success() => {
                let _ = Command::new("ip").args(["netns", "del", &probe]).status();
                None
            }
            Ok(o) => Some(format!("`ip netns add` failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => Some(format!("cannot run `ip`: {e}")),
        }
    })
}

/// Find a program on PATH or in the sbin directories root's PATH usually has.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Poll `f` every `step` until it returns `Some` or `deadline` passes.
pub fn wait_for<T>(deadline: Duration, step: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= deadline {
            return None;
        }
        std::thread::sleep(step);
    }
}

/// Run a command, panic with its output unless it exits 0; returns stdout.
pub fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("could not start {c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Send `sig` to a child we spawned.
pub fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: plain syscall on a pid we spawned and have not reaped, so it cannot name another process.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed: {}", std::io::Error::last_os_error());
}

/// SIGTERM, wait up to `deadline`, then SIGKILL; returns the exit status and whether SIGKILL was needed.
pub fn stop(child: &mut Child, deadline: Duration) -> (ExitStatus, bool) {
    if let Ok(Some(status)) = child.try_wait() {
        return (status, false);
    }
    signal(child, libc::SIGTERM);
    if let Some(status) = wait_for(deadline, Duration::from_millis(20), || child.try_wait().ok().flatten()) {
        return (status, false);
    }
    let _ = child.kill();
    (child.wait().expect("wait after SIGKILL"), true)
}

/// A scratch directory removed on Drop, but kept (and its path printed) when the test panicked,
/// so the daemon log can be read afterwards.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("dxt-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
