//! The servers under test, one at a time in the server namespace, each with its own config and a
//! bounded readiness check; stopping one also detaches whatever XDP program it left on the veth.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::load::{Load, Tool};
use super::netbed::{self, SRV_IF, SRV_V4, SRV_V6, cli_ns, srv_ns};
use super::proc::{self, Guard};
use super::zone;
use crate::cmd;

/// Metrics and health of dns-xdp, on the server namespace's own loopback.
pub const METRICS: &str = "127.0.0.1:9153";
const READY_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// knotd's control socket, in the run's directory (knotc -s).
const KNOT_SOCKET: &str = "knot.sock";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    /// dns-xdp with its XDP program attached in native mode.
    DnsXdp,
    /// dns-xdp with `--xdp-mode off`: the daemon's sockets answer everything.
    DnsXdpOff,
    /// knotd with UDP sockets.
    #[value(name = "knotd")]
    #[serde(rename = "knotd")]
    Knot,
    /// knotd in AF_XDP mode (`xdp: listen: <veth>@53`).
    #[value(name = "knotd-xdp")]
    #[serde(rename = "knotd-xdp")]
    KnotXdp,
    /// NSD with response rate limiting off.
    Nsd,
    /// Not a server: `dns-xdp-testbed bounce`, an XDP program that sends every query straight back (XDP_TX,
    /// QR set, no lookup). What the bed carries with no server work; xdpgen and kxdpgun loads only.
    XdpTxCeiling,
}

impl Server {
    pub const ALL: [Server; 6] =
        [Server::DnsXdp, Server::DnsXdpOff, Server::Knot, Server::KnotXdp, Server::Nsd, Server::XdpTxCeiling];

    pub fn name(self) -> &'static str {
        match self {
            Server::DnsXdp => "dns-xdp",
            Server::DnsXdpOff => "dns-xdp-off",
            Server::Knot => "knotd",
            Server::KnotXdp => "knotd-xdp",
            Server::Nsd => "nsd",
            Server::XdpTxCeiling => "xdp-tx-ceiling",
        }
    }

    /// Whether `load` means anything for this server: the ceiling echoes queries without answers, which
    /// only the generators that count replies in the kernel (xdpgen, kxdpgun) measure.
    pub fn runs(self, load: &Load) -> bool {
        self != Server::XdpTxCeiling || matches!(load.tool, Tool::Xdpgen | Tool::XdpgenAt(_) | Tool::Kxdpgun)
    }

    pub fn is_dns_xdp(self) -> bool {
        matches!(self, Server::DnsXdp | Server::DnsXdpOff)
    }
}

pub struct Running {
    pub server: Server,
    guard: Guard,
}

impl Running {
    /// Stop the server and detach any XDP program it left on the server veth.
    pub fn stop(mut self) {
        self.guard.stop(STOP_DEADLINE);
        netbed::detach_xdp(srv_ns(), SRV_IF);
    }

    pub fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.guard.try_wait()? {
            bail!("`{}` exited during the run ({status})", self.guard.what());
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.guard.stop(STOP_DEADLINE);
        netbed::detach_xdp(srv_ns(), SRV_IF);
    }
}

/// Start `server` serving `zone_file`, with its config and log under `dir`, and wait until it answers.
pub fn start(server: Server, dns_xdp: &Path, zone_file: &Path, dir: &Path) -> Result<Running> {
    std::fs::create_dir_all(dir)?;
    netbed::detach_xdp(srv_ns(), SRV_IF);
    let log = std::fs::File::create(dir.join("server.log"))?;
    let mut c = command(server, dns_xdp, zone::ORIGIN, zone_file, dir)?;
    c.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    let mut running = Running { server, guard: Guard::spawn(c)? };
    wait_ready(&mut running, dir).with_context(|| format!("{} did not become ready", server.name()))?;
    Ok(running)
}

/// The command that runs `server` in the server namespace serving zone `origin` from `zone_file`,
/// its config, control socket and state under `dir` (which must exist). bench-zone runs knotd and
/// NSD through this too, on its own large zone.
pub fn command(server: Server, dns_xdp: &Path, origin: &str, zone_file: &Path, dir: &Path) -> Result<Command> {
    Ok(match server {
        Server::DnsXdp | Server::DnsXdpOff => {
            let mode = if server == Server::DnsXdp { "native" } else { "off" };
            let mut c = proc::in_netns(srv_ns(), &dns_xdp.to_string_lossy());
            c.args(["serve", "--iface", SRV_IF, "--zone"])
                .arg(zone_file)
                .args(["--listen", &format!("{SRV_V4}:53"), "--listen", &format!("[{SRV_V6}]:53")])
                .args(["--metrics", METRICS, "--xdp-mode", mode])
                .env("RUST_LOG", "warn");
            c
        }
        Server::Knot | Server::KnotXdp => {
            let conf = dir.join("knot.conf");
            std::fs::write(&conf, knot_conf(server == Server::KnotXdp, origin, zone_file, dir))?;
            let mut c = proc::in_netns(srv_ns(), "knotd");
            c.arg("-c").arg(&conf);
            c
        }
        Server::XdpTxCeiling => {
            let mut c = proc::in_netns(srv_ns(), &crate::cmd::testbed_beside(dns_xdp).to_string_lossy());
            c.args(["bounce", "--iface", SRV_IF, "--xdp-mode", "native"]);
            c
        }
        Server::Nsd => {
            let conf = dir.join("nsd.conf");
            std::fs::write(&conf, nsd_conf(origin, zone_file, dir))?;
            let mut c = proc::in_netns(srv_ns(), "nsd");
            c.arg("-d").arg("-c").arg(&conf);
            c
        }
    })
}

/// The command that makes knotd or NSD, started by [`command`] with the same `dir`, read the zone
/// file of `origin` again, through the control socket there. (dns-xdp reloads on SIGHUP.)
pub fn reload_command(server: Server, origin: &str, dir: &Path) -> Result<Command> {
    Ok(match server {
        Server::Knot | Server::KnotXdp => {
            // Not -b: the command returns once knotd took the order, as a user would run it; the
            // bench times the reload by the answers.
            let mut c = cmd::command("knotc");
            c.arg("-s").arg(dir.join(KNOT_SOCKET)).args(["zone-reload", origin]);
            c
        }
        Server::Nsd => {
            let mut c = cmd::command("nsd-control");
            c.arg("-c").arg(dir.join("nsd.conf")).args(["reload", origin]);
            c
        }
        s => bail!("{} has no reload command (dns-xdp reloads its zone files on SIGHUP)", s.name()),
    })
}

/// Ready = answers an A query from the client namespace (and, for dns-xdp, /healthz says 200).
fn wait_ready(r: &mut Running, dir: &Path) -> Result<()> {
    let start = Instant::now();
    let probe = zone::name(0);
    loop {
        proc::check_stop()?;
        if let Some(status) = r.guard.try_wait()? {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            bail!(
                "`{}` exited ({status}); log tail:\n{}",
                r.guard.what(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let ready = match r.server {
            // Echoes come back over both families with checksums the client's kernel accepts.
            Server::XdpTxCeiling => {
                netbed::xdp_attached(srv_ns(), SRV_IF) && echoes(&probe, SRV_V4) && echoes(&probe, SRV_V6)
            }
            s => (!s.is_dns_xdp() || http_get(&format!("http://{METRICS}/healthz")).is_ok()) && answers(&probe),
        };
        if ready {
            return Ok(());
        }
        if start.elapsed() > READY_DEADLINE {
            bail!("no answer for {probe} A from {SRV_V4} within {READY_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn answers(name: &str) -> bool {
    let mut c = proc::in_netns(cli_ns(), "kdig");
    c.args([&format!("@{SRV_V4}"), name, "A", "+timeout=1", "+retry=0", "+short"]);
    match proc::run_captured(c, Duration::from_secs(5)) {
        Ok((status, out, _)) => status.success() && out.trim().starts_with("198.19."),
        Err(_) => false,
    }
}

/// Whether a query to `addr` comes back as a reply (QR set, NOERROR, no answer): the bounce at work.
fn echoes(name: &str, addr: &str) -> bool {
    let mut c = proc::in_netns(cli_ns(), "kdig");
    c.args([&format!("@{addr}"), name, "A", "+timeout=1", "+retry=0", "+noedns"]);
    match proc::run_captured(c, Duration::from_secs(5)) {
        Ok((status, out, _)) => status.success() && out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
        Err(_) => false,
    }
}

/// GET inside the server namespace (the metrics address is its loopback); the body on 2xx.
pub fn http_get(url: &str) -> Result<String> {
    let mut c = proc::in_netns(srv_ns(), "curl");
    c.args(["-sf", "--max-time", "2", url]);
    let (status, out, _) = proc::run_captured(c, Duration::from_secs(5))?;
    if !status.success() {
        bail!("GET {url}: {status}");
    }
    Ok(out)
}

fn knot_conf(xdp: bool, origin: &str, zone_file: &Path, dir: &Path) -> String {
    let socket = dir.join(KNOT_SOCKET);
    let dir = dir.display();
    // Knot's defaults otherwise: one UDP worker per core, as a user would run it.
    let xdp_section = if xdp { format!("xdp:\n  listen: {SRV_IF}@53\n") } else { String::new() };
    format!(
        "server:\n  listen: [{SRV_V4}@53, {SRV_V6}@53]\n  rundir: {dir}\n\
         {xdp_section}\
         control:\n  listen: {socket}\n\
         log:\n  - target: stderr\n    any: warning\n\
         database:\n  storage: {dir}\n\
         zone:\n  - domain: {origin}\n    file: {zone}\n    zonefile-sync: -1\n    journal-content: none\n",
        socket = socket.display(),
        zone = zone_file.display(),
    )
}

fn nsd_conf(origin: &str, zone_file: &Path, dir: &Path) -> String {
    let d = dir.display();
    // server-count 2: one per core, like knotd's default (NSD's own default is 1).
    // rrl-ratelimit 0: Debian's NSD rate-limits NXDOMAIN floods by default, which would make the
    // NXDOMAIN mix measure the limiter; switched off for every NSD run and noted in the report.
    // Control over a unix socket: nsd-control needs no keys for one (nsd.conf(5), control-interface).
    format!(
        "server:\n  ip-address: {SRV_V4}\n  ip-address: {SRV_V6}\n  port: 53\n  server-count: 2\n  reuseport: yes\n\
         \x20 username: \"\"\n  chroot: \"\"\n  zonesdir: {d}\n  pidfile: {d}/nsd.pid\n  database: \"\"\n\
         \x20 xfrdfile: {d}/xfrd.state\n  zonelistfile: {d}/zone.list\n  verbosity: 0\n\
         \x20 rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n\
         remote-control:\n  control-enable: yes\n  control-interface: {d}/nsd.sock\n\
         zone:\n  name: {origin}\n  zonefile: {zone}\n",
        zone = zone_file.display(),
    )
}

/// Versions of the tools the figures depend on, for results.json.
pub fn versions(dns_xdp: &Path) -> Vec<(String, String)> {
    let first_line = |prog: &str, args: &[&str]| -> String {
        std::process::Command::new(prog)
            .args(args)
            .output()
            .map(|o| {
                let s = if o.stdout.is_empty() { o.stderr } else { o.stdout };
                String::from_utf8_lossy(&s).lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned()
            })
            .unwrap_or_else(|e| format!("unavailable: {e}"))
    };
    let git = |args: &[&str]| -> String {
        std::process::Command::new("git")
            .args(args)
            .current_dir(crate::cmd::repo_root())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let dirty = if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() { "" } else { " (dirty tree)" };
    vec![
        (
            "dns-xdp".into(),
            format!(
                "{} built {} UTC, tree at {}{dirty}",
                dns_xdp.display(),
                std::fs::metadata(dns_xdp)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| super::results::stamp_of(d.as_secs()))
                    .unwrap_or_else(|| "?".into()),
                git(&["rev-parse", "--short", "HEAD"])
            ),
        ),
        ("knotd".into(), first_line("knotd", &["-V"])),
        ("nsd".into(), first_line("nsd", &["-v"])),
        ("dnsperf".into(), version_line("dnsperf", &["-h"])),
        ("kxdpgun".into(), first_line("kxdpgun", &["-V"])),
        ("kernel".into(), first_line("uname", &["-r"])),
    ]
}

/// The line of `prog args` output that names the version (dnsperf prints it after its usage).
fn version_line(prog: &str, args: &[&str]) -> String {
    std::process::Command::new(prog)
        .args(args)
        .output()
        .map(|o| {
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            text.lines().find(|l| l.starts_with("Version")).unwrap_or("").trim().to_owned()
        })
        .unwrap_or_else(|e| format!("unavailable: {e}"))
}

pub fn run_dir(base: &Path, rep: usize, server: Server) -> PathBuf {
    base.join(format!("rep{rep}-{}", server.name()))
}
