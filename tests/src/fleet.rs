//! A fleet test bed: one namespace per `dns-xdp serve` (XDP native on its own veth), all joined
//! through a Linux bridge that lives in a namespace of its own, plus a client namespace on the same
//! bridge. Nothing is added to the root namespace.
//!
//! veth delivers a native-mode XDP_TX frame only to a peer that runs XDP itself (ARCHITECTURE.md
//! section 5), so every bridge-side end gets `dns-xdp-testbed xdp-pass`. Addresses: 198.19.255.0/24 of the
//! benchmarking range (RFC 2544); the bridge is isolated, so parallel test beds may reuse it.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::http;
use crate::{Metrics, Netns, TempDir, daemon_bin, run_ok, stop, testbed_bin, unique, wait_for};

/// The interface name inside each member's namespace.
pub const IFACE: &str = "eth0";
/// Metrics/health address inside each member's namespace.
pub const METRICS: &str = "127.0.0.1:9153";
/// Loading and verifying the XDP program: 17 daemons verify at once on 2 shared cores.
pub const HEALTHY_DEADLINE: Duration = Duration::from_secs(60);
/// How long `dns-xdp-testbed xdp-pass` may take to attach.
const XDP_PASS_DEADLINE: Duration = Duration::from_secs(20);
/// SIGTERM must end a process within this, else SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// Members in one bed: the /24 holds .1 (primary) to .200 (nodes) and .254 (client).
pub const MAX_MEMBERS: usize = 200;

/// The address of member `i` (0 is the primary, nodes from 1).
pub fn member_v4(i: usize) -> Ipv4Addr {
    assert!(i < MAX_MEMBERS, "member {i} beyond the /24 plan");
    Ipv4Addr::new(198, 19, 255, 1 + i as u8)
}

pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 254);

/// One `dns-xdp serve` in its own namespace; not started until [`Member::spawn`].
pub struct Member {
    child: Option<Child>,
    pub ns: Netns,
    pub v4: Ipv4Addr,
    args: Vec<String>,
    log: PathBuf,
    dir: TempDir,
}

impl Member {
    pub fn dns(&self) -> SocketAddr {
        SocketAddr::new(self.v4.into(), 53)
    }

    /// A scratch directory of this member's that survives restarts (journals, zone files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `dns-xdp serve --iface eth0 --xdp-mode native --metrics ... ARGS` without waiting.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "spawn of a running member");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = self
            .ns
            .command(daemon_bin().to_str().expect("UTF-8 binary path"))
            .args(&self.args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", daemon_bin().display()));
        self.child = Some(child);
    }

    /// Whether `GET /healthz` answers 200; panics with the log if the daemon has exited.
    pub fn healthy(&mut self) -> bool {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            panic!("dns-xdp {} in {} exited ({status}):\n{}", self.args.join(" "), self.ns.name(), self.log_tail(60));
        }
        let metrics: SocketAddr = METRICS.parse().expect("literal");
        self.ns.run_inside(|| http(metrics, "GET", "/healthz", None, "").map(|r| r.0)) == Some(200)
    }

    /// SIGKILL: no drain, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("member not running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        format!("{}\n(full log: {})", all[all.len().saturating_sub(lines)..].join("\n"), self.log.display())
    }

    /// Scrape `/metrics` inside the member's namespace.
    pub fn metrics(&self) -> Metrics {
        let metrics: SocketAddr = METRICS.parse().expect("literal");
        let (status, body) = self
            .ns
            .run_inside(|| http(metrics, "GET", "/metrics", None, ""))
            .unwrap_or_else(|| panic!("GET /metrics of {} failed:\n{}", self.ns.name(), self.log_tail(30)));
        assert_eq!(status, 200, "GET /metrics of {}", self.ns.name());
        Metrics::parse(&body)
    }

    /// Resident memory (VmRSS) and the memlock of the BPF maps the process holds, in bytes.
    pub fn memory(&self) -> (u64, u64) {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let mut memlock = 0;
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
            let is_map = std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-map");
            if !is_map {
                continue;
            }
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()))
                .unwrap_or_default();
            memlock += info
                .lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        (rss_kb * 1024, memlock)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, STOP_DEADLINE);
        }
        if std::thread::panicking() {
            eprintln!("--- log of {} ({}) ---\n{}", self.ns.name(), self.v4, self.log_tail(25));
        }
    }
}

/// The bridge namespace, the client namespace and the members, each on a port of the bridge.
pub struct Fleet {
    /// Index 0 is the primary.
    pub members: Vec<Member>,
    helpers: Vec<Child>,
    pub client: Netns,
    bridge: Netns,
}

impl Fleet {
    /// Creates the namespaces, veth pairs, bridge and xdp-pass helpers for `count` members (none
    /// started; set their arguments with [`Fleet::set_args`]).
    pub fn new(count: usize) -> Fleet {
        assert!(count <= MAX_MEMBERS);
        let tag = format!("dxf-{}-{}", std::process::id(), unique());
        let bridge = Netns::new(&format!("{tag}-br"));
        bridge.ip(&["link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"]);
        bridge.ip(&["link", "set", "br0", "up"]);
        let client = Netns::new(&format!("{tag}-cl"));
        let mut fleet = Fleet { members: Vec::new(), helpers: Vec::new(), client, bridge };
        let client_name = fleet.client.name().to_owned();
        fleet.port("p-cl", &client_name, CLIENT_V4);
        // Queries leave the client with full checksums: XDP_TX replies built from partial ones
        // would be dropped as corrupt (veth offload; real NICs deliver full checksums).
        run_ok(fleet.client.command("ethtool").args(["-K", IFACE, "tx", "off"]));
        for i in 0..count {
            let ns = Netns::new(&format!("{tag}-{i}"));
            let v4 = member_v4(i);
            let port = format!("p{i}");
            fleet.port(&port, ns.name(), v4);
            let dir = TempDir::new();
            let log = dir.path().join("daemon.log");
            fleet.members.push(Member { child: None, ns, v4, args: Vec::new(), log, dir });
            fleet.helpers.push(
                fleet
                    .bridge
                    .command(testbed_bin().to_str().expect("UTF-8 binary path"))
                    .args(["xdp-pass", "--iface", &port])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("starting xdp-pass on {port}: {e}")),
            );
        }
        for i in 0..count {
            let port = format!("p{i}");
            let attached = wait_for(XDP_PASS_DEADLINE, Duration::from_millis(50), || {
                fleet.bridge.has_xdp_program(&port).then_some(())
            });
            assert!(attached.is_some(), "xdp-pass attached nothing to {port} within {XDP_PASS_DEADLINE:?}");
        }
        fleet
    }

    /// A veth pair: `port` on the bridge, `eth0` with `v4/24` in namespace `ns`.
    fn port(&self, port: &str, ns: &str, v4: Ipv4Addr) {
        run_ok(std::process::Command::new("ip").args([
            "link",
            "add",
            port,
            "netns",
            self.bridge.name(),
            "type",
            "veth",
            "peer",
            "name",
            IFACE,
            "netns",
            ns,
        ]));
        self.bridge.ip(&["link", "set", port, "master", "br0", "up"]);
        run_ok(std::process::Command::new("ip").args(["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", IFACE]));
        run_ok(std::process::Command::new("ip").args(["-n", ns, "link", "set", IFACE, "up"]));
    }

    /// `serve --iface eth0 --xdp-mode native --metrics 127.0.0.1:9153` followed by `extra`.
    pub fn set_args(&mut self, i: usize, extra: &[String]) {
        let mut args: Vec<String> =
            ["serve", "--iface", IFACE, "--xdp-mode", "native", "--metrics", METRICS].map(String::from).to_vec();
        args.extend(extra.iter().cloned());
        self.members[i].args = args;
    }

    /// Spawns `which` members at once (they verify the XDP program concurrently) and waits until
    /// every one is healthy; returns how long that took.
    pub fn start(&mut self, which: &[usize]) -> Duration {
        let t = Instant::now();
        for &i in which {
            self.members[i].spawn();
        }
        let mut pending: Vec<usize> = which.to_vec();
        let done = wait_for(HEALTHY_DEADLINE, Duration::from_millis(100), || {
            pending.retain(|&i| !self.members[i].healthy());
            pending.is_empty().then_some(())
        });
        if done.is_none() {
            let logs: Vec<String> =
                pending.iter().map(|&i| format!("member {i}:\n{}", self.members[i].log_tail(20))).collect();
            panic!("members {pending:?} not healthy within {HEALTHY_DEADLINE:?}:\n{}", logs.join("\n"));
        }
        t.elapsed()
    }

    /// Runs `f` on a thread inside the client namespace (threads it spawns stay there too).
    pub fn in_client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.client.run_inside(f)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Daemons first (they detach their XDP programs), then the helpers; the Netns fields then
        // delete the namespaces, which removes the veth pairs and the bridge.
        self.members.clear();
        for h in &mut self.helpers {
            stop(h, STOP_DEADLINE);
        }
    }
}

/// A UDP client inside the client namespace for plain queries to the members.
pub struct Prober {
    sock: UdpSocket,
    next_id: u16,
}

/// What a member answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub from: SocketAddr,
    pub rcode: u8,
    /// The last answer record's RDATA (the A address or the SOA), if any.
    pub rdata: Option<Vec<u8>>,
}

impl Prober {
    /// Must be called inside the client namespace.
    pub fn new() -> Prober {
        let sock = UdpSocket::bind((CLIENT_V4, 0)).expect("binding the client socket");
        sock.set_nonblocking(true).expect("nonblocking");
        Prober { sock, next_id: 1 }
    }

    /// Sends one query without waiting for the answer.
    pub fn send(&mut self, to: SocketAddr, qname: &str, qtype: u16) {
        self.next_id = self.next_id.wrapping_add(1);
        let mut q = self.next_id.to_be_bytes().to_vec();
        q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in qname.trim_end_matches('.').split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        let _ = self.sock.send_to(&q, to);
    }

    /// Every reply already received.
    pub fn drain(&mut self) -> Vec<Reply> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            if n >= 12 {
                out.push(Reply { from, rcode: buf[3] & 0xf, rdata: last_rdata(&buf[..n]) });
            }
        }
        out
    }

    /// One query, waiting up to `timeout` for its answer.
    pub fn ask(&mut self, to: SocketAddr, qname: &str, qtype: u16, timeout: Duration) -> Option<Reply> {
        self.drain();
        self.send(to, qname, qtype);
        wait_for(timeout, Duration::from_millis(2), || self.drain().into_iter().find(|r| r.from == to))
    }

    /// The SOA serial `to` serves for `zone`.
    pub fn serial(&mut self, to: SocketAddr, zone: &str) -> Option<u32> {
        let r = self.ask(to, zone, 6, Duration::from_millis(300))?;
        let rd = r.rdata?;
        Some(u32::from_be_bytes(rd.get(rd.len().checked_sub(20)?..rd.len() - 16)?.try_into().ok()?))
    }
}

impl Default for Prober {
    fn default() -> Self {
        Self::new()
    }
}

/// The RDATA of the last answer record of a response (answers only; none when ANCOUNT is 0).
fn last_rdata(r: &[u8]) -> Option<Vec<u8>> {
    let ancount = u16::from_be_bytes([r[6], r[7]]);
    if ancount == 0 {
        return None;
    }
    let skip_name = |mut pos: usize| -> Option<usize> {
        loop {
            let len = *r.get(pos)?;
            if len & 0xc0 == 0xc0 {
                return Some(pos + 2);
            }
            pos += 1 + len as usize;
            if len == 0 {
                return Some(pos);
            }
        }
    };
    let mut pos = skip_name(12)? + 4;
    let mut last = None;
    for _ in 0..ancount {
        pos = skip_name(pos)?;
        let rdlen = u16::from_be_bytes([*r.get(pos + 8)?, *r.get(pos + 9)?]) as usize;
        last = Some(r.get(pos + 10..pos + 10 + rdlen)?.to_vec());
        pos += 10 + rdlen;
    }
    last
}
