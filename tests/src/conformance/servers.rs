//! The three servers the conformance test compares, each on its own port with its own temporary
//! config, serving the same zone files; each stopped on Drop. By default on 127.0.0.1 of this
//! namespace; a [`Site`] puts one on another address inside a test namespace.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Netns, TempDir, daemon_bin, stop, wait_for, which};

/// How long to wait for an answer. Loopback answers take microseconds; a dropped query costs this.
pub const ANSWER_TIMEOUT: Duration = Duration::from_millis(300);

/// A port free for both UDP and TCP on 127.0.0.1 (the usual bind-and-release race is harmless here).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP port");
        let port = udp.local_addr().expect("local addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Where a server listens, and the namespace it is started in (`None`: the caller's). The client
/// socket is opened in the calling thread's namespace, so the address must be reachable from there.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    pub addr: SocketAddr,
    pub netns: Option<&'a Netns>,
}

impl Site<'_> {
    /// A free port on 127.0.0.1 of this namespace.
    pub fn loopback() -> Site<'static> {
        Site { addr: SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())), netns: None }
    }

    fn ip(&self) -> IpAddr {
        self.addr.ip()
    }

    fn command(&self, program: &Path) -> Command {
        let program = program.to_str().expect("UTF-8 program path");
        self.netns.map_or_else(|| Command::new(program), |ns| ns.command(program))
    }
}

/// A zone to serve: its origin and file.
#[derive(Clone, Debug)]
pub struct ZoneFile {
    pub origin: String,
    pub path: PathBuf,
}

/// One running server and a client for it.
pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: TempDir,
    udp: UdpSocket,
    tcp: Option<TcpStream>,
}

impl Server {
    /// A client for a server started elsewhere (e.g. a `Daemon`), probed until it answers SOA
    /// `probe_zone`; nothing to stop on Drop.
    pub fn remote(name: &'static str, addr: SocketAddr, probe_zone: &str) -> Server {
        Self::connect(name, addr, None, TempDir::new(), probe_zone)
    }

    fn spawn(name: &'static str, mut cmd: Command, dir: TempDir, addr: SocketAddr, probe_zone: &str) -> Server {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("creating server.log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self::connect(name, addr, Some(child), dir, probe_zone)
    }

    fn connect(name: &'static str, addr: SocketAddr, child: Option<Child>, dir: TempDir, probe_zone: &str) -> Server {
        let any: IpAddr =
            if addr.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
        let udp = UdpSocket::bind((any, 0)).expect("client socket");
        udp.set_read_timeout(Some(ANSWER_TIMEOUT)).expect("timeout");
        let mut s = Server { name, addr, child, dir, udp, tcp: None };
        let probe = crate::conformance::corpus::query_bytes(0x4242, probe_zone, 6, 1, None);
        let up = wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            if let Some(status) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("{name} exited during startup ({status}):\n{}", s.log());
            }
            s.udp(&probe).filter(|r| r.len() > 3 && r[3] & 0xf == 0).map(|_| ())
        });
        assert!(up.is_some(), "{name} did not answer SOA {probe_zone} within 20 s:\n{}", s.log());
        s
    }

    /// dns-xdp in daemon-only mode.
    pub fn dns_xdp(zones: &[ZoneFile], extra: &[&str]) -> Server {
        Self::dns_xdp_at(zones, extra, Site::loopback())
    }

    pub fn dns_xdp_at(zones: &[ZoneFile], extra: &[&str], site: Site) -> Server {
        let dir = TempDir::new();
        let mut cmd = site.command(&daemon_bin());
        cmd.arg("serve").args(["--listen", &site.addr.to_string()]);
        cmd.args(["--metrics", &format!("127.0.0.1:{}", free_port()), "--xdp-mode", "off"]);
        for z in zones {
            cmd.arg("--zone").arg(&z.path);
        }
        cmd.args(extra);
        Self::spawn("dns-xdp", cmd, dir, site.addr, &zones[0].origin)
    }

    pub fn knotd(zones: &[ZoneFile]) -> Server {
        Self::knotd_at(zones, Site::loopback())
    }

    pub fn knotd_at(zones: &[ZoneFile], site: Site) -> Server {
        let dir = TempDir::new();
        let (ip, port) = (site.ip(), site.addr.port());
        let d = dir.path().display();
        // identity/version empty: CH queries are refused, as dns-xdp does by default.
        let mut conf = format!(
            "server:\n  rundir: \"{d}\"\n  listen: {ip}@{port}\n  identity: \"\"\n  version: \"\"\n  nsid: \"\"\n\
             database:\n  storage: \"{d}\"\nlog:\n  - target: stderr\n    any: warning\nzone:\n"
        );
        for z in zones {
            conf.push_str(&format!(
                "  - domain: {}\n    file: \"{}\"\n    zonefile-sync: -1\n    journal-content: none\n",
                z.origin,
                z.path.display()
            ));
        }
        let path = dir.path().join("knot.conf");
        std::fs::write(&path, conf).expect("writing knot.conf");
        let mut cmd = site.command(&which("knotd").expect("knotd"));
        cmd.arg("-c").arg(&path);
        Self::spawn("knotd", cmd, dir, site.addr, &zones[0].origin)
    }

    pub fn nsd(zones: &[ZoneFile]) -> Server {
        Self::nsd_at(zones, Site::loopback())
    }

    pub fn nsd_at(zones: &[ZoneFile], site: Site) -> Server {
        let dir = TempDir::new();
        let (ip, port) = (site.ip(), site.addr.port());
        let d = dir.path().display();
        // Debian's NSD rate-limits (rrl); refuse-any off and minimal responses as shipped.
        let mut conf = format!(
            "server:\n  ip-address: {ip}\n  port: {port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n\
             zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n\
             database: \"\"\n  hide-version: yes\n  hide-identity: yes\n  rrl-ratelimit: 0\n  verbosity: 1\n  logfile: \"{d}/server.log\"\n\
             remote-control:\n  control-enable: no\n"
        );
        for z in zones {
            conf.push_str(&format!("zone:\n  name: \"{}\"\n  zonefile: \"{}\"\n", z.origin, z.path.display()));
        }
        let path = dir.path().join("nsd.conf");
        std::fs::write(&path, conf).expect("writing nsd.conf");
        let mut cmd = site.command(&which("nsd").expect("nsd"));
        cmd.arg("-d").arg("-c").arg(&path);
        Self::spawn("nsd", cmd, dir, site.addr, &zones[0].origin)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn is_alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends one UDP query; `None` when no answer came within `ANSWER_TIMEOUT`.
    pub fn udp(&mut self, query: &[u8]) -> Option<Vec<u8>> {
        self.udp.send_to(query, self.addr).expect("udp send");
        let mut buf = vec![0u8; 65535];
        loop {
            let (len, from) = self.udp.recv_from(&mut buf).ok()?;
            // Skip a late answer to an earlier query that timed out.
            if from == self.addr && len >= 2 && buf[..2] == query[..2] {
                return Some(buf[..len].to_vec());
            }
        }
    }

    /// Sends one query over TCP, reusing the connection across queries (RFC 7766 section 6.2.1);
    /// `None` when the server closed the connection or did not answer.
    pub fn tcp(&mut self, query: &[u8]) -> Option<Vec<u8>> {
        for _attempt in 0..2 {
            if self.tcp.is_none() {
                let conn = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).ok()?;
                conn.set_read_timeout(Some(ANSWER_TIMEOUT)).ok()?;
                conn.set_nodelay(true).ok()?;
                self.tcp = Some(conn);
            }
            let conn = self.tcp.as_mut().expect("connected");
            let mut framed = (query.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(query);
            let mut len = [0u8; 2];
            if conn.write_all(&framed).is_err() || conn.read_exact(&mut len).is_err() {
                // A closed idle connection: retry once on a fresh one.
                self.tcp = None;
                continue;
            }
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            if conn.read_exact(&mut msg).is_err() {
                self.tcp = None;
                return None;
            }
            return Some(msg);
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c, Duration::from_secs(5));
        }
    }
}

/// Finds the zone files of a directory: `ORIGIN.zone`, origin taken from the file name.
pub fn zone_files(dir: &Path) -> Vec<ZoneFile> {
    let mut zones: Vec<ZoneFile> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            let origin = path.file_name()?.to_str()?.strip_suffix(".zone")?.to_owned() + ".";
            Some(ZoneFile { origin, path })
        })
        .collect();
    zones.sort_by(|a, b| a.origin.cmp(&b.origin));
    zones
}
