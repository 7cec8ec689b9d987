//! Child processes that cannot outlive the suite, and the Ctrl-C flag every wait loop checks.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Turn SIGINT/SIGTERM into a flag while the guard lives, so the suite unwinds through its guards instead
/// of dying with namespaces, servers and XDP programs left behind. Drop restores the previous handlers
/// (the smoke test runs the suite inside the test process).
pub fn catch_stop_signals() -> SignalGuard {
    STOP.store(false, Ordering::SeqCst);
    let previous = [libc::SIGINT, libc::SIGTERM].map(|sig| {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let old = unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
        (sig, old)
    });
    SignalGuard { previous }
}

pub struct SignalGuard {
    previous: [(libc::c_int, libc::sighandler_t); 2],
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, old) in self.previous {
            if old != libc::SIG_ERR {
                // SAFETY: reinstalls the handler that was in place before catch_stop_signals.
                unsafe {
                    libc::signal(sig, old);
                }
            }
        }
    }
}

/// Whether the user asked us to stop.
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Fail fast once the user pressed Ctrl-C.
pub fn check_stop() -> Result<()> {
    if stopping() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleep in short slices so Ctrl-C is seen at once.
pub fn sleep(d: Duration) {
    let end = Instant::now() + d;
    while !stopping() {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// A running child: SIGTERM then SIGKILL on drop, so no server or load generator survives us.
pub struct Guard {
    child: Option<Child>,
    what: String,
}

impl Guard {
    pub fn spawn(mut c: Command) -> Result<Self> {
        let what = cmd::render(&c);
        let child = c.spawn().with_context(|| format!("could not start `{what}`"))?;
        Ok(Guard { child: Some(child), what })
    }

    /// `Some(status)` once the child has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => bail!("`{}` already reaped", self.what),
        }
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    /// The child's pid (`ip netns exec` execs the program, so it is the program's own).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The child's stderr pipe, when it was spawned with `Stdio::piped()`.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.as_mut()?.stderr.take()
    }

    /// The child's stdin pipe, when it was spawned with `Stdio::piped()`.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.as_mut()?.stdin.take()
    }

    /// The child's stdout pipe, when it was spawned with `Stdio::piped()`.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut()?.stdout.take()
    }

    /// SIGTERM, wait up to `deadline`, then SIGKILL; returns the exit status.
    pub fn stop(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: plain syscall on a pid we spawned and have not reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("bench: `{}` ignored SIGTERM for {deadline:?}; killing it", self.what);
        let _ = child.kill();
        child.wait().ok()
    }

    /// Wait for exit with a hard deadline (then kill), collecting stdout and stderr.
    pub fn finish(mut self, deadline: Duration) -> Result<(ExitStatus, String, String)> {
        let mut child = self.child.take().expect("guard holds its child until finished");
        // Drain pipes on threads so a chatty child (dnsperf -v) never blocks on a full pipe.
        let out = child.stdout.take().map(drain);
        let err = child.stderr.take().map(drain);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if stopping() || start.elapsed() > deadline {
                self.child = Some(child);
                self.stop(Duration::from_secs(2));
                if stopping() {
                    bail!("interrupted while running `{}`", self.what);
                }
                bail!("`{}` ran past its {deadline:?} deadline and was killed", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let join = |h: Option<std::thread::JoinHandle<String>>| h.map(|h| h.join().unwrap_or_default());
        Ok((status, join(out).unwrap_or_default(), join(err).unwrap_or_default()))
    }
}

fn drain<R: std::io::Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Send `sig` to `pid` (a process we spawned: dns-xdp gets SIGHUP to reload its zone files).
pub fn signal(pid: u32, sig: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: plain syscall; no memory is passed.
    if unsafe { libc::kill(pid, sig) } != 0 {
        bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Run to completion within `deadline`, capturing output.
pub fn run_captured(mut c: Command, deadline: Duration) -> Result<(ExitStatus, String, String)> {
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    Guard::spawn(c)?.finish(deadline)
}

/// `ip netns exec NS PROGRAM`, with our PATH.
pub fn in_netns(ns: &str, program: &str) -> Command {
    let mut c = cmd::command("ip");
    c.args(["netns", "exec", ns, program]);
    c
}
