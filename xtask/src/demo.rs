//! `cargo xtask build-and-load`: run the daemon, on a real interface or in a throwaway demo netns pair.

use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

const SRV_NS: &str = "dnsxdp-demo-srv";
const CLI_NS: &str = "dnsxdp-demo-cli";
const SRV_IF: &str = "veth-srv";
const CLI_IF: &str = "veth-cli";
/// RFC 2544 benchmarking range: never routed, so the demo cannot leak onto a real network.
const SRV_V4: &str = "198.18.0.1";
const CLI_V4: &str = "198.18.0.2";
/// A ULA prefix for the same reason.
const SRV_V6: &str = "fd00:d15:c0de::1";
const CLI_V6: &str = "fd00:d15:c0de::2";
const METRICS: &str = "127.0.0.1:9153";
/// How long the daemon gets to detach XDP and exit after SIGTERM before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// How long the xdp-pass helper may take to attach.
const XDP_PASS_DEADLINE: Duration = Duration::from_secs(10);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Catch SIGINT/SIGTERM so we outlive the daemon and can tear the demo down.
fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

pub fn build_and_load(args: &[String]) -> Result<()> {
    let bin = cmd::repo_root().join("target/release/dns-xdp");
    if !args.is_empty() {
        // A real interface: become the daemon, so signals and the exit status are its own.
        use std::os::unix::process::CommandExt as _;
        let err = Command::new(&bin).arg("serve").args(args).exec();
        return Err(err).with_context(|| format!("could not exec {} serve", bin.display()));
    }
    let demo = Demo::create()?;
    demo.run(&bin.to_string_lossy(), &cmd::testbed_beside(&bin).to_string_lossy())
}

/// The demo namespaces and helpers; Drop tears everything down, on success, error or panic.
struct Demo {
    xdp_pass: Option<Child>,
}

impl Demo {
    fn create() -> Result<Self> {
        catch_stop_signals();
        delete_namespaces(); // left over from an earlier crash
        let demo = Demo { xdp_pass: None };
        ip(&["netns", "add", SRV_NS])?;
        ip(&["netns", "add", CLI_NS])?;
        ip(&["link", "add", SRV_IF, "netns", SRV_NS, "type", "veth", "peer", "name", CLI_IF, "netns", CLI_NS])?;
        for (ns, ifname, v4, v6) in [(SRV_NS, SRV_IF, SRV_V4, SRV_V6), (CLI_NS, CLI_IF, CLI_V4, CLI_V6)] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", ifname])?;
            ip(&["-n", ns, "addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"])?;
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        // veth sends partial checksums with offload on; an XDP_TX reply built from one is dropped.
        cmd::run(
            cmd::command("ip")
                .args(["netns", "exec", CLI_NS, "ethtool", "-K", CLI_IF, "tx", "off"])
                .stdout(std::process::Stdio::null()),
        )
        .context("turning off tx checksum offload on the client veth (is ethtool installed?)")?;
        Ok(demo)
    }

    fn run(mut self, bin: &str, testbed: &str) -> Result<()> {
        // veth delivers native XDP_TX frames only to a peer that runs an XDP program itself.
        let helper = cmd::command("ip")
            .args(["netns", "exec", CLI_NS, testbed, "xdp-pass", "--iface", CLI_IF])
            .spawn()
            .with_context(|| format!("starting `{testbed} xdp-pass` in {CLI_NS}"))?;
        self.xdp_pass = Some(helper);
        self.wait_for_xdp_pass()?;

        print_instructions();
        let mut serve = cmd::command("ip");
        serve
            .args(["netns", "exec", SRV_NS, bin, "serve", "--iface", SRV_IF])
            .args(["--zone", &cmd::repo_root().join("examples/example.com.zone").to_string_lossy()])
            .args(["--metrics", METRICS]);
        let child = serve.spawn().with_context(|| format!("starting `{}`", cmd::render(&serve)))?;
        let status = wait_or_stop(child, STOP_DEADLINE)?;
        if STOP.load(Ordering::SeqCst) || status.success() {
            eprintln!("xtask: daemon exited ({status}); removing the demo namespaces");
            Ok(())
        } else {
            bail!("`{}` exited with {status}", cmd::render(&serve))
        }
    }
}

impl Demo {
    /// Bounded wait until the helper's program shows on the client veth; fail if the helper died.
    fn wait_for_xdp_pass(&mut self) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < XDP_PASS_DEADLINE {
            if let Some(status) = self.xdp_pass.as_mut().and_then(|h| h.try_wait().ok().flatten()) {
                bail!("`dns-xdp-testbed xdp-pass --iface {CLI_IF}` in {CLI_NS} exited early ({status})");
            }
            let out = cmd::output(cmd::command("ip").args(["-n", CLI_NS, "link", "show", CLI_IF]))?;
            if has_xdp_program(&String::from_utf8_lossy(&out.stdout)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("no XDP program on {CLI_IF} in {CLI_NS} after {XDP_PASS_DEADLINE:?} of `dns-xdp-testbed xdp-pass`")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut helper) = self.xdp_pass.take() {
            let _ = stop(&mut helper, Duration::from_secs(3));
        }
        // Deleting a namespace removes its veth end, the peer, and their XDP programs.
        delete_namespaces();
    }
}

/// Whether `ip link show` output lists an attached XDP program (`xdp`, `xdpgeneric`, `prog/xdp` ...).
/// Token match, not substring: `link-netns dnsxdp-demo-srv` contains "xdp" too.
fn has_xdp_program(ip_link_show: &str) -> bool {
    ip_link_show
        .split_whitespace()
        .any(|t| matches!(t, "xdp" | "xdpgeneric" | "xdpdrv" | "xdpoffload") || t.starts_with("prog/xdp"))
}

fn ip(args: &[&str]) -> Result<()> {
    cmd::run(cmd::command("ip").args(args))
        .context("setting up the demo network (needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN)")
}

fn delete_namespaces() {
    for ns in [SRV_NS, CLI_NS] {
        let exists = std::path::Path::new("/run/netns").join(ns).exists();
        if exists {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Wait for the daemon; on our SIGINT/SIGTERM, forward SIGTERM (a terminal's Ctrl-C also reaches it).
fn wait_or_stop(mut child: Child, deadline: Duration) -> Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for the daemon")? {
            return Ok(status);
        }
        if STOP.load(Ordering::SeqCst) {
            return stop(&mut child, deadline);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, wait up to `deadline`, then SIGKILL.
fn stop(child: &mut Child, deadline: Duration) -> Result<ExitStatus> {
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    // SAFETY: plain syscall on a pid we spawned and have not yet reaped.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let start = Instant::now();
    while start.elapsed() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("xtask: pid {pid} ignored SIGTERM for {deadline:?}; killing it");
    let _ = child.kill();
    Ok(child.wait()?)
}

fn print_instructions() {
    let cli = format!("ip netns exec {CLI_NS}");
    eprintln!(
        "\
xtask: demo network ready: {SRV_NS} ({SRV_IF} {SRV_V4} {SRV_V6}) <-> {CLI_NS} ({CLI_IF} {CLI_V4} {CLI_V6})
Try, from another shell:
  answered in XDP (A/AAAA hits over UDP):
    {cli} kdig @{SRV_V4} www.example.com A
    {cli} kdig @{SRV_V6} www.example.com AAAA
  answered by the daemon (other types, misses, TCP):
    {cli} kdig @{SRV_V4} example.com MX
    {cli} kdig @{SRV_V4} nope.example.com A
    {cli} kdig @{SRV_V4} +tcp www.example.com A
  0x20 case preserved (kdig lowercases names, dig does not):
    {cli} dig +nocookie @{SRV_V4} WwW.ExAmPlE.CoM A
  counters:
    ip netns exec {SRV_NS} curl -s {METRICS}/metrics | grep dnsxdp_xdp
Stop with Ctrl-C: the daemon detaches XDP and the namespaces are deleted.
"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_xdp_programs_but_not_namespace_names() {
        let without = "2: veth-cli@if2: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN\n    \
                       link/ether 02:15:e0:68:86:b1 brd ff:ff:ff:ff:ff:ff link-netns dnsxdp-demo-srv";
        assert!(!has_xdp_program(without));
        let native = "2: veth-cli@if2: <BROADCAST,MULTICAST,UP> mtu 1500 xdp qdisc noqueue\n    \
                      prog/xdp id 42 tag 3b185187f1855c4c jited";
        assert!(has_xdp_program(native));
        assert!(has_xdp_program("3: eth0: <UP> mtu 1500 xdpgeneric qdisc noqueue"));
    }
}
