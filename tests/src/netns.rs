//! A network namespace that exists as long as its guard.

use std::os::fd::AsRawFd as _;
use std::process::Command;

use crate::run_ok;

/// A named network namespace (`ip netns add`), deleted on Drop together with any process left in it.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create `name`; a stale namespace of that name (from a crashed run with a reused pid) is replaced.
    pub fn new(name: &str) -> Self {
        assert!(name.len() <= 32, "netns name {name} too long");
        if std::path::Path::new("/run/netns").join(name).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        run_ok(Command::new("ip").args(["netns", "add", name]));
        let ns = Netns { name: name.to_owned() };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <name> <program>`: ip execs the program directly, so the child's pid is the
    /// program's own (signals reach it).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// `ip -n <name> ARGS`, panicking on failure; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Whether `ip link show <ifname>` lists an attached XDP program. Matches tokens, not substrings:
    /// `link-netns <name>` must not count.
    pub fn has_xdp_program(&self, ifname: &str) -> bool {
        let out = self.ip(&["link", "show", ifname]);
        out.split_whitespace()
            .any(|t| matches!(t, "xdp" | "xdpgeneric" | "xdpdrv" | "xdpoffload") || t.starts_with("prog/xdp"))
    }

    /// Run `f` on a new thread that has entered this namespace (setns is per thread), and return its
    /// result. Sockets opened by `f` live in the namespace.
    pub fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace fd; it changes only this thread's network namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes still inside would keep the namespace (and its XDP programs) alive after `del`.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<libc::pid_t>() {
                    // SAFETY: plain syscall; the pid was just listed as living in our own namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
