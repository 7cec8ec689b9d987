//! The test bed: a server and a client network namespace joined by one veth pair.
//!
//! Drop deletes both namespaces, which removes the veth pair and every XDP program on it (ours, knotd's,
//! the generators'), even after an error or Ctrl-C.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::proc::{self, Guard};
use crate::cmd;

/// (server, client) namespace names; see `use_namespace_suffix`.
static NAMESPACES: OnceLock<(String, String)> = OnceLock::new();
pub const SRV_IF: &str = "vbench-srv";
pub const CLI_IF: &str = "vbench-cli";
/// RFC 2544 benchmarking range and a ULA prefix: never routed, so load cannot leak onto a real network.
/// A different /24 than the demo and the tests, so the suite may run beside them.
pub const SRV_V4: &str = "198.18.53.1";
pub const CLI_V4: &str = "198.18.53.2";
pub const SRV_V6: &str = "fd00:b:e4c4::1";
pub const CLI_V6: &str = "fd00:b:e4c4::2";
const XDP_PASS_DEADLINE: Duration = Duration::from_secs(10);

/// Give this process's namespaces their own names (before first use; later calls change nothing), so a
/// smoke test or `bench-zone` never deletes the namespaces of a benchmark running beside it.
pub fn use_namespace_suffix(suffix: &str) {
    let _ = NAMESPACES.set((format!("dnsxdp-bench-srv{suffix}"), format!("dnsxdp-bench-cli{suffix}")));
}

fn namespaces() -> &'static (String, String) {
    NAMESPACES.get_or_init(|| ("dnsxdp-bench-srv".into(), "dnsxdp-bench-cli".into()))
}

pub fn srv_ns() -> &'static str {
    &namespaces().0
}

pub fn cli_ns() -> &'static str {
    &namespaces().1
}

pub struct Netbed {
    pub srv_mac: String,
    pub cli_mac: String,
    /// `dns-xdp-testbed xdp-pass` on the client veth: veth delivers native XDP_TX frames only to a peer
    /// that runs an XDP program itself (ARCHITECTURE.md section 5). Stopped while kxdpgun owns the client veth.
    xdp_pass: Option<Guard>,
    testbed: String,
}

impl Netbed {
    /// The bed for the daemon binary `dns_xdp`, whose test-bed helpers sit beside it.
    pub fn create(dns_xdp: &Path) -> Result<Self> {
        let testbed = cmd::testbed_beside(dns_xdp);
        if !testbed.is_file() {
            bail!("{} not found: run `cargo xtask build` (or drop --no-build)", testbed.display());
        }
        delete_namespaces(); // left over from a crash
        let mut bed = Netbed {
            srv_mac: String::new(),
            cli_mac: String::new(),
            xdp_pass: None,
            testbed: testbed.display().to_string(),
        };
        ip(&["netns", "add", srv_ns()])?;
        ip(&["netns", "add", cli_ns()])?;
        ip(&["link", "add", SRV_IF, "netns", srv_ns(), "type", "veth", "peer", "name", CLI_IF, "netns", cli_ns()])?;
        for (ns, ifname, v4, v6) in [(srv_ns(), SRV_IF, SRV_V4, SRV_V6), (cli_ns(), CLI_IF, CLI_V4, CLI_V6)] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", ifname])?;
            ip(&["-n", ns, "addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"])?;
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        // With tx offload on, veth queries carry a partial UDP checksum and an XDP_TX reply built from one
        // is dropped as corrupt (ARCHITECTURE.md section 5). Same for every server, so the bed stays fair.
        cmd::run(proc::in_netns(cli_ns(), "ethtool").args(["-K", CLI_IF, "tx", "off"]).stdout(Stdio::null()))
            .context("turning off tx checksum offload on the client veth (is ethtool installed?)")?;
        bed.srv_mac = mac_of(srv_ns(), SRV_IF)?;
        bed.cli_mac = mac_of(cli_ns(), CLI_IF)?;
        Ok(bed)
    }

    /// Make sure the do-nothing XDP program runs on the client veth (idempotent).
    pub fn ensure_xdp_pass(&mut self) -> Result<()> {
        if let Some(g) = self.xdp_pass.as_mut()
            && g.try_wait()?.is_none()
        {
            return Ok(());
        }
        detach_xdp(cli_ns(), CLI_IF);
        let mut c = proc::in_netns(cli_ns(), &self.testbed);
        c.args(["xdp-pass", "--iface", CLI_IF]).stdout(Stdio::null()).stderr(Stdio::null());
        let mut g = Guard::spawn(c)?;
        let start = Instant::now();
        while !xdp_attached(cli_ns(), CLI_IF) {
            proc::check_stop()?;
            if let Some(status) = g.try_wait()? {
                bail!("`{}` exited early ({status})", g.what());
            }
            if start.elapsed() > XDP_PASS_DEADLINE {
                bail!("no XDP program on {CLI_IF} after {XDP_PASS_DEADLINE:?} of `{}`", g.what());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.xdp_pass = Some(g);
        Ok(())
    }

    /// Free the client veth for a generator that attaches its own program (xdpgen's counter, kxdpgun).
    pub fn release_client_xdp(&mut self) {
        if let Some(mut g) = self.xdp_pass.take() {
            g.stop(Duration::from_secs(5));
        }
        detach_xdp(cli_ns(), CLI_IF);
    }
}

impl Drop for Netbed {
    fn drop(&mut self) {
        self.release_client_xdp();
        detach_xdp(srv_ns(), SRV_IF);
        delete_namespaces();
    }
}

/// Detach whatever XDP program is on `ifname` in `ns`: knotd and kxdpgun leave theirs attached on exit.
pub fn detach_xdp(ns: &str, ifname: &str) {
    for mode in ["xdp", "xdpgeneric"] {
        let _ = Command::new("ip")
            .args(["-n", ns, "link", "set", "dev", ifname, mode, "off"])
            .stderr(Stdio::null())
            .status();
    }
}

/// The id of the XDP program attached to `ifname` in `ns`, if any.
pub fn xdp_prog_id(ns: &str, ifname: &str) -> Option<u64> {
    let out = Command::new("ip").args(["-n", ns, "-j", "link", "show", "dev", ifname]).output().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0)?.get("xdp")?.get("prog")?.get("id")?.as_u64()
}

pub fn xdp_attached(ns: &str, ifname: &str) -> bool {
    xdp_prog_id(ns, ifname).is_some()
}

fn mac_of(ns: &str, ifname: &str) -> Result<String> {
    let out = cmd::output(cmd::command("ip").args(["-n", ns, "-j", "link", "show", "dev", ifname]))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing `ip -j link show`")?;
    v.get(0)
        .and_then(|l| l.get("address"))
        .and_then(|a| a.as_str())
        .map(str::to_owned)
        .with_context(|| format!("no MAC address for {ifname} in {ns}"))
}

fn ip(args: &[&str]) -> Result<()> {
    cmd::run(cmd::command("ip").args(args))
        .context("setting up the benchmark network (needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN)")
}

fn delete_namespaces() {
    for ns in [srv_ns(), cli_ns()] {
        if Path::new("/run/netns").join(ns).exists() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
