//! Replication test bed: several `dns-xdp serve` processes (a primary and its secondaries) on
//! loopback with distinct ports, with helpers for the control API (raw HTTP/1.1) and SOA probes.
//! Far cheaper than a namespace per node, and enough to test the protocols and quorum logic.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TempDir, daemon_bin, stop, wait_for};

/// A free loopback port (TCP; the same number is almost surely free for UDP).
pub fn free_port() -> u16 {
    // The kernel may hand the same ephemeral port out twice in a row once the probe socket is
    // closed (CI saw --listen and --api get one port): never give one port to two callers.
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        if GIVEN.lock().expect("port set").insert(port) {
            return port;
        }
    }
}

/// One `dns-xdp serve` process with XDP off, answering on 127.0.0.1:`dns.port()`.
pub struct Node {
    child: Option<Child>,
    pub dns: SocketAddr,
    pub metrics: SocketAddr,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    _dir: TempDir,
}

impl Node {
    /// Starts `dns-xdp serve --xdp-mode off --listen DNS --metrics M ARGS` and waits for /healthz.
    pub fn start(dns: SocketAddr, args: &[String]) -> Node {
        Node::start_with_env(dns, args, &[])
    }

    /// `start` with these environment variables set for the daemon.
    pub fn start_with_env(dns: SocketAddr, args: &[String], env: &[(&str, &str)]) -> Node {
        let dir = TempDir::new();
        let log = dir.path().join("daemon.log");
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut all: Vec<String> = ["serve", "--xdp-mode", "off", "--listen"].map(String::from).to_vec();
        all.push(dns.to_string());
        all.extend(["--metrics".into(), metrics.to_string()]);
        all.extend(args.iter().cloned());
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut n = Node { child: None, dns, metrics, args: all, env, log, _dir: dir };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(daemon_bin())
            .args(&self.args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", daemon_bin().display()));
        self.child = Some(child);
        let up = wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("dns-xdp {} exited ({status}):\n{}", self.args.join(" "), self.log());
            }
            (http(self.metrics, "GET", "/healthz", None, "").map(|r| r.0) == Some(200)).then_some(())
        });
        assert!(up.is_some(), "dns-xdp {} not healthy:\n{}", self.args.join(" "), self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGKILL: no drain, no flush; what was fsynced is all that survives.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running node");
        self.spawn();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, Duration::from_secs(5));
        }
        if std::thread::panicking() {
            eprintln!(
                "--- log of {} ---\n{}",
                self.dns,
                self.log().lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// One HTTP/1.1 request; `(status, body)`.
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &str) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    conn.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// A JSON number field of a flat object (enough for the API's write answers).
pub fn json_u64(body: &str, field: &str) -> Option<u64> {
    let at = body.find(&format!("\"{field}\":"))? + field.len() + 3;
    body[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn wire_name(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        w.push(label.len() as u8);
        w.extend_from_slice(label.as_bytes());
    }
    w.push(0);
    w
}

/// A query for `name` and `qtype`, framed for TCP (length prefix).
pub fn tcp_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&wire_name(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    framed
}

/// The SOA serial `server` serves for `zone` (plain UDP query), if it answers with one.
pub fn soa_serial(server: SocketAddr, zone: &str) -> Option<u32> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(&wire_name(zone));
    q.extend_from_slice(&[0, 6, 0, 1]);
    sock.send_to(&q, server).ok()?;
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).ok()?;
    let r = &buf[..n];
    if n < 12 || r[3] & 0xf != 0 || u16::from_be_bytes([r[6], r[7]]) == 0 {
        return None;
    }
    // Answer: owner (pointer or name), type, class, ttl, rdlength, rdata ending in 5 u32s.
    let mut pos = 12 + wire_name(zone).len() + 4;
    pos = if r[pos] & 0xc0 == 0xc0 { pos + 2 } else { pos + r[pos..].iter().position(|&b| b == 0)? + 1 };
    let rdlen = u16::from_be_bytes([r[pos + 8], r[pos + 9]]) as usize;
    let end = pos + 10 + rdlen;
    Some(u32::from_be_bytes(r.get(end - 20..end - 16)?.try_into().ok()?))
}

/// `kdig +short` against `server`; the answer lines.
pub fn kdig_short(server: SocketAddr, args: &[&str]) -> Vec<String> {
    let out = Command::new("kdig")
        .args(["-p", &server.port().to_string(), &format!("@{}", server.ip()), "+short", "+timeout=1", "+retry=0"])
        .args(args)
        .output()
        .expect("running kdig");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// p-th percentile (0..=100) of `v`, nearest rank.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}
