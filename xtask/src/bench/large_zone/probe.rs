//! What the large-zone benchmark sees of the daemon, black-box: DNS answers over UDP, the control
//! API and /metrics over HTTP, all from a thread inside the client namespace, and the daemon's
//! memory from /proc.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Run `f` on a new thread that has entered network namespace `ns` (setns is per thread; threads
/// it spawns start in the namespace too).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(ns)?;
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Moves the calling thread into network namespace `ns` (for good: call it on a thread of its own).
pub fn enter_netns(ns: &str) -> Result<()> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    // SAFETY: setns on a valid namespace fd; it changes only this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns({path}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// One HTTP/1.1 request with `Connection: close`; `(status, body)`.
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &str) -> Result<(u16, String)> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .with_context(|| format!("connecting to {addr}"))?;
    // An API write may recompile a large zone: give it time, but not forever.
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    conn.set_nodelay(true)?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    conn.read_to_end(&mut out).with_context(|| format!("{method} http://{addr}{path}: reading the response"))?;
    let out = String::from_utf8_lossy(&out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{method} http://{addr}{path}: no status line"))?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// The daemon counters the benchmark reads, by their ARCHITECTURE.md names.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    /// `dnsxdp_xdp_packets_total{action="tx"}`.
    pub xdp_tx: u64,
    /// `dnsxdp_responses_total{path="userspace"}`, every rcode.
    pub daemon_responses: u64,
    /// `dnsxdp_bpf_map_entries`, summed over maps; None when the daemon does not export it.
    pub map_entries: Option<u64>,
}

/// Between two scrapes around one query: XDP sent something and the daemon answered nothing.
pub fn from_xdp(before: Counters, after: Counters) -> bool {
    after.daemon_responses == before.daemon_responses && after.xdp_tx > before.xdp_tx
}

pub fn scrape(metrics: SocketAddr) -> Result<Counters> {
    let (status, body) = http(metrics, "GET", "/metrics", None, "")?;
    if status != 200 {
        bail!("GET /metrics: {status}");
    }
    Ok(parse_metrics(&body))
}

pub fn parse_metrics(body: &str) -> Counters {
    let mut c = Counters::default();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(v) = value.parse::<f64>() else { continue };
        let v = v as u64;
        if series.starts_with("dnsxdp_xdp_packets_total{") && series.contains("action=\"tx\"") {
            c.xdp_tx += v;
        } else if series.starts_with("dnsxdp_responses_total{") && series.contains("path=\"userspace\"") {
            c.daemon_responses += v;
        } else if series.starts_with("dnsxdp_bpf_map_entries") {
            c.map_entries = Some(c.map_entries.unwrap_or(0) + v);
        }
    }
    c
}

/// A plain UDP DNS client (no EDNS unless asked) bound in the client namespace. Its queries'
/// (local port, DNS ID) pairs never repeat: after 65,535 IDs it moves to a new socket.
pub struct Prober {
    sock: UdpSocket,
    bind: Ipv4Addr,
    server: SocketAddr,
    next_id: u16,
}

/// What came back for one of our queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub id: u16,
    pub rcode: u8,
    /// Every A record of the answer section.
    pub a: Vec<Ipv4Addr>,
}

impl Prober {
    /// Must be called on a thread inside the client namespace.
    pub fn new(bind: Ipv4Addr, server: SocketAddr) -> Result<Self> {
        let sock = UdpSocket::bind((bind, 0)).context("binding the probe socket")?;
        Ok(Prober { sock, bind, server, next_id: 0 })
    }

    /// The UDP port the replies come back to (it changes when the IDs run out).
    pub fn local_port(&self) -> u16 {
        self.sock.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The next ID, on a new socket (so a new port) once this one's IDs are all used; replies
    /// still in flight to the old socket are lost.
    fn next_id(&mut self) -> Result<u16> {
        if self.next_id == u16::MAX {
            // Bound before the old one closes: a different port.
            self.sock = UdpSocket::bind((self.bind, 0)).context("binding a new probe socket")?;
            self.next_id = 0;
        }
        self.next_id += 1;
        Ok(self.next_id)
    }

    /// Sends an A query for `name`; returns its ID (unique for the socket, see [`Prober::local_port`]).
    pub fn send_a(&mut self, name: &str) -> Result<u16> {
        let id = self.next_id()?;
        self.sock.send_to(&query(id, name, 1), self.server).context("sending a probe")?;
        Ok(id)
    }

    /// Sends an A query for `name` with an EDNS OPT record carrying a client COOKIE option (which
    /// the XDP program always passes to the daemon); returns its ID.
    pub fn send_a_with_cookie(&mut self, name: &str) -> Result<u16> {
        let id = self.next_id()?;
        self.sock.send_to(&query_with_cookie(id, name), self.server).context("sending a probe")?;
        Ok(id)
    }

    /// The next reply, waiting at most `timeout`; None when nothing came.
    pub fn recv(&mut self, timeout: Duration) -> Option<Reply> {
        use std::os::fd::AsRawFd as _;
        // Not SO_RCVTIMEO: the kernel rounds it up to a scheduler tick (4 ms at HZ=250), which
        // stalled the 100 µs poller into bursts a tick apart. ppoll sleeps on a hrtimer.
        self.sock.set_nonblocking(true).ok()?;
        let mut buf = [0u8; 1500];
        let n = match self.sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                let ts = libc::timespec {
                    tv_sec: timeout.as_secs() as libc::time_t,
                    tv_nsec: timeout.subsec_nanos() as libc::c_long,
                };
                // SAFETY: one valid pollfd and a timespec, both outliving the call.
                if unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) } <= 0 {
                    return None;
                }
                self.sock.recv(&mut buf).ok()?
            }
            Err(_) => return None,
        };
        parse_reply(&buf[..n])
    }

    /// One query, waiting up to `timeout` for the reply with its ID.
    pub fn ask_a(&mut self, name: &str, timeout: Duration) -> Result<Option<Reply>> {
        let id = self.send_a(name)?;
        Ok(self.reply_to(id, timeout))
    }

    /// Waits up to `timeout` for the reply with ID `id`, skipping others.
    pub fn reply_to(&mut self, id: u16, timeout: Duration) -> Option<Reply> {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(r) if r.id == id => return Some(r),
                Some(_) => continue, // a late reply to an earlier query
                None => break,
            }
        }
        None
    }
}

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    // RD clear: an authoritative server's client.
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// An A query with an OPT record (payload 1232, version 0, no flags) holding one 8-byte client COOKIE.
fn query_with_cookie(id: u16, name: &str) -> Vec<u8> {
    let mut q = query(id, name, 1);
    q[11] = 1; // ARCOUNT
    // Root name, type 41, class = payload size, TTL = extended RCODE/version/flags, RDLENGTH 12.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12]);
    // Option 10 (COOKIE), 8 bytes: a client cookie.
    q.extend_from_slice(&[0, 10, 0, 8]);
    q.extend_from_slice(&(u64::from(id) | 0xb0b0_0000_0000_0000).to_be_bytes());
    q
}

/// ID, RCODE and the A records of a response; None for anything that is not one.
fn parse_reply(r: &[u8]) -> Option<Reply> {
    if r.len() < 12 || r[2] & 0x80 == 0 {
        return None;
    }
    let id = u16::from_be_bytes([r[0], r[1]]);
    let (qd, an) = (u16::from_be_bytes([r[4], r[5]]), u16::from_be_bytes([r[6], r[7]]));
    let skip_name = |mut pos: usize| -> Option<usize> {
        // At most 128 labels in a 255-byte name; a pointer ends it.
        for _ in 0..128 {
            let len = *r.get(pos)?;
            if len & 0xc0 == 0xc0 {
                return Some(pos + 2);
            }
            pos += 1 + len as usize;
            if len == 0 {
                return Some(pos);
            }
        }
        None
    };
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(pos)? + 4;
    }
    let mut a = Vec::new();
    for _ in 0..an {
        pos = skip_name(pos)?;
        let rtype = u16::from_be_bytes([*r.get(pos)?, *r.get(pos + 1)?]);
        let rdlen = u16::from_be_bytes([*r.get(pos + 8)?, *r.get(pos + 9)?]) as usize;
        let rdata = r.get(pos + 10..pos + 10 + rdlen)?;
        if rtype == 1 && rdlen == 4 {
            a.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        pos += 10 + rdlen;
    }
    Some(Reply { id, rcode: r[3] & 0xf, a })
}

/// Whether `pid` is still running (not gone, not a zombie waiting to be reaped).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| !s.lines().any(|l| l.starts_with("State:") && (l.contains("Z (") || l.contains("X ("))))
        .unwrap_or(false)
}

/// A server's memory, summed over its process and their descendants (NSD forks a transfer
/// daemon and server processes; dns-xdp and knotd are one process): resident set now and at its
/// peak, and the BPF maps it holds.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    pub rss_bytes: u64,
    /// The sum of each process's VmHWM: an upper bound of the peak, as the peaks need not coincide.
    pub rss_peak_bytes: u64,
    /// Sum of `memlock` over the process's BPF map fds (/proc/PID/fdinfo): the kernel's own
    /// account of each map's memory.
    pub bpf_memlock_bytes: u64,
    pub bpf_maps: usize,
    /// Resident pages of BPF maps the daemon has mapped (its hit index): part of VmRSS and of
    /// the maps' memlock alike, so taken out of `rss_bytes` to count them once.
    #[serde(default)]
    pub bpf_mapped_bytes: u64,
    /// Processes summed.
    #[serde(default)]
    pub processes: usize,
    /// Proportional set size (/proc/PID/smaps_rollup), summed, less `bpf_mapped_bytes`: a page that
    /// forked processes share counts once in all, where the RSS sum counts it in each.
    #[serde(default)]
    pub pss_bytes: u64,
}

/// Resident bytes of the process's mappings of BPF maps (/proc/PID/smaps, `anon_inode:bpf-map`).
fn bpf_mapped(smaps: &str) -> u64 {
    let mut total = 0;
    let mut in_map = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_map = line.ends_with("anon_inode:bpf-map");
        } else if in_map && let Some(kib) = kib_field(line, "Rss:") {
            total += kib * 1024;
        }
    }
    total
}

/// The number of `field` (`VmRSS:`, `Pss:`...) on a /proc line in kB; None on any other line.
fn kib_field(line: &str, field: &str) -> Option<u64> {
    line.strip_prefix(field)?.split_whitespace().next()?.parse().ok()
}

/// `pid` and its descendants, from the parent ids in /proc/*/stat.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // The parent is the second field after the command name, which may hold spaces and ')'.
        let ppid = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|st| st.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((p, ppid));
        }
    }
    let mut tree = vec![pid];
    let mut k = 0;
    while let Some(&p) = tree.get(k) {
        tree.extend(parent_of.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        k += 1;
    }
    tree
}

pub fn memory(pid: u32) -> Memory {
    let mut m = Memory::default();
    for p in process_tree(pid) {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let kib = |text: &str, field: &str| text.lines().find_map(|l| kib_field(l, field)).unwrap_or(0);
        let rollup = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).unwrap_or_default();
        let mapped = bpf_mapped(&std::fs::read_to_string(format!("/proc/{p}/smaps")).unwrap_or_default());
        m.rss_bytes += (kib(&status, "VmRSS:") * 1024).saturating_sub(mapped);
        m.rss_peak_bytes += kib(&status, "VmHWM:") * 1024;
        m.pss_bytes += (kib(&rollup, "Pss:") * 1024).saturating_sub(mapped);
        m.bpf_mapped_bytes += mapped;
        m.processes += 1;
        for fd in std::fs::read_dir(format!("/proc/{p}/fd")).into_iter().flatten().flatten() {
            let is_map = std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-map");
            if !is_map {
                continue;
            }
            let info = std::fs::read_to_string(format!("/proc/{p}/fdinfo/{}", fd.file_name().to_string_lossy()))
                .unwrap_or_default();
            m.bpf_memlock_bytes += info
                .lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            m.bpf_maps += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_the_resident_pages_of_mapped_bpf_maps() {
        let smaps = "55d0a0000000-55d0a0100000 r-xp 00000000 08:01 123 /usr/bin/dns-xdp\nRss:                 512 kB\n\
                     7f0000000000-7f0004000000 rw-s 00000000 00:0e 77 anon_inode:bpf-map\nSize: 65536 kB\nRss:               65536 kB\n\
                     7f0005000000-7f0005001000 rw-p 00000000 00:00 0 \nRss:                   4 kB\n";
        assert_eq!(bpf_mapped(smaps), 65536 * 1024);
    }

    #[test]
    fn reads_a_records_from_a_response() {
        let mut r = query(7, "h1.big.test.", 1);
        r[2] |= 0x84; // QR, AA
        r[7] = 2; // ANCOUNT
        for last in [5u8, 6] {
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 0, 0, last]);
        }
        let reply = parse_reply(&r).unwrap();
        assert_eq!(reply, Reply { id: 7, rcode: 0, a: vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 6)] });
        assert!(parse_reply(&query(7, "h1.big.test.", 1)).is_none(), "a query is no reply");
    }

    #[test]
    fn a_cookie_query_ends_with_one_opt_record_holding_a_client_cookie() {
        let plain = query(9, "h1.big.test.", 1);
        let q = query_with_cookie(9, "h1.big.test.");
        assert_eq!(&q[..10], &plain[..10]);
        assert_eq!(&q[10..12], &[0, 1], "ARCOUNT 1");
        let opt = &q[plain.len()..];
        assert_eq!(opt.len(), 11 + 12);
        assert_eq!(&opt[..3], &[0, 0, 41], "root name, type OPT");
        assert_eq!(usize::from(u16::from_be_bytes([opt[9], opt[10]])), opt.len() - 11, "RDLENGTH");
        assert_eq!(&opt[11..15], &[0, 10, 0, 8], "COOKIE, 8 bytes");
    }

    #[test]
    fn sums_the_counters_it_reads() {
        let body = "dnsxdp_xdp_packets_total{action=\"tx\"} 10\n\
                    dnsxdp_xdp_packets_total{action=\"pass\"} 3\n\
                    dnsxdp_responses_total{path=\"userspace\",rcode=\"NOERROR\"} 2\n\
                    dnsxdp_responses_total{path=\"xdp\",rcode=\"NOERROR\"} 10\n\
                    dnsxdp_bpf_map_entries{map=\"answers\"} 40000\n";
        let c = parse_metrics(body);
        assert_eq!(c, Counters { xdp_tx: 10, daemon_responses: 2, map_entries: Some(40_000) });
        assert_eq!(parse_metrics("").map_entries, None);
    }

    #[test]
    fn reads_this_process_memory() {
        let m = memory(std::process::id());
        assert!(m.rss_bytes > 0 && m.rss_peak_bytes >= m.rss_bytes);
        assert!(m.processes >= 1 && m.pss_bytes > 0, "{m:?}");
        assert!(alive(std::process::id()));
    }

    #[test]
    fn sums_a_process_and_its_children() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let tree = process_tree(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.contains(&child.id()), "{tree:?}");
        assert_eq!(tree[0], std::process::id());
    }
}
