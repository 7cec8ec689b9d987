//! The daemon under a `Type=notify` unit, without systemd: the test binds the NOTIFY_SOCKET
//! datagram socket systemd would, and checks what the daemon tells it at start, on SIGHUP, with
//! the watchdog on, and at shutdown; and its log lines as the journal reads them. No namespace:
//! XDP off, loopback.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dns_xdp_tests::cluster::{free_port, http};
use dns_xdp_tests::{TempDir, daemon_bin, example_zone, ready, signal, stop};

/// Reads datagrams until one has a line equal to `line` (or starting with it, for `KEY=`); all
/// messages read on the way are returned, the last being the match.
fn until(sock: &UnixDatagram, line: &str, deadline: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < deadline {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let hit = msg.lines().any(|l| l == line || (line.ends_with('=') && l.starts_with(line)));
        seen.push(msg);
        if hit {
            return seen;
        }
    }
    panic!("no {line:?} within {deadline:?}; got {seen:?}");
}

/// The daemon, stopped when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        stop(&mut self.0, Duration::from_secs(5));
    }
}

#[test]
fn ready_reloading_watchdog_and_stopping_reach_the_notify_socket() {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("binding the notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let mut daemon = Running(
        Command::new(daemon_bin())
            .args(["serve", "--xdp-mode", "off", "--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--metrics", &metrics, "--zone", example_zone().to_str().unwrap()])
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting dns-xdp"),
    );
    let daemon_log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();

    let start = until(&sock, "READY=1", Duration::from_secs(20));
    let ready_msg = start.last().unwrap();
    assert!(ready_msg.contains("STATUS=1 zone(s): example.com. 2026112101; XDP off"), "{ready_msg}");
    // READY comes only once the daemon is healthy.
    assert_eq!(http(metrics.parse().unwrap(), "GET", "/healthz", None, "").map(|r| r.0), Some(200));

    // The watchdog is pinged at half of WATCHDOG_USEC.
    let t = Instant::now();
    until(&sock, "WATCHDOG=1", Duration::from_secs(2));
    until(&sock, "WATCHDOG=1", Duration::from_secs(2));
    assert!(t.elapsed() < Duration::from_secs(1), "two pings took {:?}", t.elapsed());

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC (systemd >= 253), then READY=1 again.
    signal(&daemon.0, libc::SIGHUP);
    let reload = until(&sock, "RELOADING=1", Duration::from_secs(5));
    let msg = reload.last().unwrap();
    assert!(msg.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{msg}");
    until(&sock, "READY=1", Duration::from_secs(10));

    let (status, _) = stop(&mut daemon.0, Duration::from_secs(10));
    assert!(status.success(), "exit {status}:\n{}", daemon_log());
    until(&sock, "STOPPING=1", Duration::from_secs(1));
}

/// With JOURNAL_STREAM set (stderr is the journal's), each line starts with its syslog priority;
/// `--log-format json` makes the rest one JSON object.
#[test]
fn journal_lines_carry_syslog_priorities_and_json() {
    if !ready() {
        return;
    }
    let out = Command::new(daemon_bin())
        .args(["serve", "--xdp-mode", "off", "--log-format", "json", "--zone", "/nonexistent/dns-xdp-test.zone"])
        .env("JOURNAL_STREAM", "8:12345")
        .env_remove("RUST_LOG")
        .output()
        .expect("running dns-xdp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "a zone that does not load: {stderr}");
    let line = stderr.lines().find(|l| l.contains("dns-xdp-test.zone")).unwrap_or_else(|| panic!("{stderr}"));
    let json = line.strip_prefix("<3>").unwrap_or_else(|| panic!("an error without priority 3: {line}"));
    assert!(json.starts_with('{') && json.ends_with('}'), "{line}");
    assert!(json.contains("\"level\":\"error\""), "{line}");
    assert!(!json.contains("\"ts\""), "the journal stamps lines itself: {line}");
}
