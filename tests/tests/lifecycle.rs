//! Reload, bad input, shutdown: the daemon keeps serving through all of it and leaves nothing behind.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use dns_xdp_tests::malformed::send_burst;
use dns_xdp_tests::net::{Family, SRV_IF};
use dns_xdp_tests::{Daemon, Serve, TempDir, TestNet, daemon_bin, example_zone, ready, wait_for};

/// Reloads are asynchronous; answers must change within this.
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

fn www_a(net: &TestNet, family: Family) -> Vec<String> {
    net.kdig(family, &["+short", "www.example.com", "A"]).short_lines()
}

fn serial(d: &Daemon) -> Option<f64> {
    d.metrics().sum("dnsxdp_zone_serial", &[("zone", "example.com.")])
}

#[test]
fn sighup_reloads_and_a_broken_zone_keeps_the_old_one() {
    reload("native");
}

/// Reload must work for the daemon's own answers too, not only for the BPF maps.
#[test]
fn sighup_reloads_with_xdp_off() {
    reload("off");
}

fn reload(mode: &str) {
    if !ready() {
        return;
    }
    let dir = TempDir::new();
    let zone = dir.path().join("example.com.zone");
    let original = std::fs::read_to_string(example_zone()).expect("reading the example zone");
    std::fs::write(&zone, &original).unwrap();
    let net = TestNet::new();
    let daemon = Daemon::start(&net, Serve::zone(&zone).xdp_mode(mode));
    assert_eq!(www_a(&net, Family::V4), ["192.0.2.80", "192.0.2.81"]);
    assert_eq!(serial(&daemon), Some(2026112101.0), "serial metric before reload");

    // A good change: new address, bumped serial.
    let changed = original.replacen("192.0.2.80", "192.0.2.180", 1).replacen("2026112101", "2026112102", 1);
    assert_ne!(changed, original);
    std::fs::write(&zone, &changed).unwrap();
    daemon.signal(libc::SIGHUP);
    let want = ["192.0.2.180", "192.0.2.81"];
    let reloaded = wait_for(RELOAD_DEADLINE, Duration::from_millis(200), || {
        Family::BOTH.iter().all(|f| www_a(&net, *f) == want).then_some(())
    });
    assert!(reloaded.is_some(), "no new answer {RELOAD_DEADLINE:?} after SIGHUP; log:\n{}", daemon.log_excerpt());
    assert_eq!(serial(&daemon), Some(2026112102.0), "serial metric after reload");

    // A broken change: the error names file and line, and the previous version keeps being served.
    let broken = changed.replacen("192.0.2.180", "192.0.2.999", 1).replacen("2026112102", "2026112103", 1);
    let line = broken.lines().position(|l| l.contains("192.0.2.999")).expect("edited line") + 1;
    std::fs::write(&zone, &broken).unwrap();
    daemon.signal(libc::SIGHUP);
    let needle = format!("example.com.zone:{line}:");
    let logged = wait_for(RELOAD_DEADLINE, Duration::from_millis(200), || daemon.log().contains(&needle).then_some(()));
    assert!(
        logged.is_some(),
        "no `{needle}` in the log {RELOAD_DEADLINE:?} after SIGHUP; log:\n{}",
        daemon.log_excerpt()
    );
    for family in Family::BOTH {
        assert_eq!(www_a(&net, family), want, "answers changed after a failed reload ({family:?})");
    }
    assert_eq!(serial(&daemon), Some(2026112102.0), "a failed reload changed the served serial");

    // Changed data under the same serial: served, but the operator is warned that secondaries
    // and caches will not see it.
    let unbumped = changed.replacen("192.0.2.81", "192.0.2.82", 1);
    std::fs::write(&zone, &unbumped).unwrap();
    daemon.signal(libc::SIGHUP);
    let warned = wait_for(RELOAD_DEADLINE, Duration::from_millis(200), || {
        daemon.log().contains("changed but its serial 2026112102 did not").then_some(())
    });
    assert!(warned.is_some(), "no unchanged-serial warning after SIGHUP; log:\n{}", daemon.log_excerpt());
    let unchanged = daemon.metrics().sum("dnsxdp_zone_serial_unchanged_total", &[]);
    assert_eq!(unchanged, Some(1.0), "unchanged-serial reloads counted");
}

#[test]
fn malformed_burst_does_not_hurt() {
    if !ready() {
        return;
    }
    let net = TestNet::new();
    let mut daemon = Daemon::start(&net, Serve::example());
    let mut sent = 0;
    for (family, count, seed) in [(Family::V4, 3000, 1), (Family::V6, 1500, 2)] {
        let to = SocketAddr::new(net.srv_addr(family), 53);
        sent += send_burst(&net.cli, to, count, Duration::from_secs(10), seed);
    }
    assert!(sent >= 4000, "only {sent} malformed packets sent");
    assert!(daemon.is_alive(), "the daemon died under malformed input; log:\n{}", daemon.log_excerpt());
    assert_eq!(daemon.http_status("/healthz"), Some(200));
    for family in Family::BOTH {
        let a = net.kdig(family, &["www.example.com", "A"]);
        a.expect_response();
        assert_eq!(a.answers("A"), ["192.0.2.80", "192.0.2.81"], "{a}");
        let mx = net.kdig(family, &["+short", "example.com", "MX"]);
        assert_eq!(mx.short_lines(), ["10 mail.example.com."], "{mx}");
    }
}

fn sigterm_detaches(mode: &str) {
    if !ready() {
        return;
    }
    let net = TestNet::new();
    let mut daemon = Daemon::start(&net, Serve::example().xdp_mode(mode));
    assert!(net.srv.has_xdp_program(SRV_IF), "no XDP program on {SRV_IF} while serving in {mode} mode");
    let status = daemon.terminate(Duration::from_secs(5));
    let log = daemon.log_excerpt();
    let status = status.unwrap_or_else(|| panic!("still running 5 s after SIGTERM; log:\n{log}"));
    assert!(status.success(), "exit status {status} after SIGTERM; log:\n{log}");
    assert!(!net.srv.has_xdp_program(SRV_IF), "XDP program left on {SRV_IF} after exit ({mode} mode)");
}

#[test]
fn sigterm_exits_cleanly_and_detaches_native() {
    sigterm_detaches("native");
}

#[test]
fn sigterm_exits_cleanly_and_detaches_skb() {
    sigterm_detaches("skb");
}

/// `dns-xdp check`: exit 0 on a good zone; on a bad one, `file:line: message` and exit 1. No root needed.
#[test]
fn check_names_file_and_line() {
    let bin = daemon_bin();
    if !bin.is_file() {
        assert!(std::env::var_os("CI").is_none(), "{} missing under CI", bin.display());
        eprintln!("skipped: {} missing", bin.display());
        return;
    }
    let good = Command::new(&bin).arg("check").arg(example_zone()).output().unwrap();
    assert!(good.status.success(), "check rejected the example zone: {}", String::from_utf8_lossy(&good.stdout));

    let dir = TempDir::new();
    let bad = dir.path().join("bad.zone");
    let text = std::fs::read_to_string(example_zone()).unwrap().replacen("192.0.2.25", "192.0.2.256", 1);
    let line = text.lines().position(|l| l.contains("192.0.2.256")).unwrap() + 1;
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(&bin).arg("check").arg(&bad).output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "check of a bad zone: {all}");
    assert!(all.contains(&format!("bad.zone:{line}:")), "no `bad.zone:{line}:` in: {all}");
}
