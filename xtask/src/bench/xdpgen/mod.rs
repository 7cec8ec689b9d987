//! xdpgen: our own DNS load generator for rates dnsperf cannot reach, since the kernel refuses
//! kxdpgun's XDP program (it calls `bpf_xdp_adjust_meta`).
//!
//! Sends through AF_PACKET sockets with the qdisc bypassed (tx.rs), one per thread, from the client end of the veth,
//! every query of a dnsperf-format file in turn (frame.rs), each with its own source port (one of
//! `SRC_PORTS`) and a DNS ID that looks random but repeats on a port only after 65,536 uses. Replies are
//! counted in the kernel by `dns-xdp-testbed xdp-count` (dns-xdp-ebpf/src/testbed/count.rs), which drops them but for a
//! sample (ID & mask == 0); the sample reaches UDP sockets here (sample.rs), and each sampled reply must
//! repeat the ID and question of the query sent from that port with that ID, or the run fails. At a fixed
//! rate, the sample also gives per-reply latency: kernel receive timestamp minus the time its batch was
//! handed to the kernel.

pub mod cli;
mod frame;
mod sample;
mod tx;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

pub use frame::Endpoints;

use super::proc::{self, Guard};
use crate::cmd;

/// First source port; the generator uses `SRC_PORTS` of them, so servers that spread sockets by
/// 4-tuple (SO_REUSEPORT: knotd, NSD) see the load spread too.
const SRC_PORT_BASE: u16 = 50_000;
pub const SRC_PORTS: u16 = 32;
/// After the last query, how long replies still count (a reply takes well under a millisecond here).
const DRAIN: Duration = Duration::from_millis(300);
/// Longest run: send times are kept in 40 bits of ns (18 minutes).
const MAX_DURATION: Duration = Duration::from_secs(600);
/// Replies pass to the checker when `id & mask == 0`: 1 in 64 by default, a few thousand a second at
/// the highest rates, cheap for the client's stack.
pub const DEFAULT_SAMPLE_MASK: u16 = 63;
const COUNTER_DEADLINE: Duration = Duration::from_secs(10);
/// Bits of a send-log entry that hold the send time (ns since the run's start).
const TIME_BITS: u32 = 40;

/// One run of the generator.
#[derive(Clone, Debug)]
pub struct Config {
    /// Network namespace the interface lives in (None: ours).
    pub netns: Option<String>,
    pub iface: String,
    pub ends: Endpoints,
    /// dnsperf-format query file, sent in order and cycled.
    pub queries: PathBuf,
    pub duration: Duration,
    /// Offered queries/s; None: as fast as it can send.
    pub rate: Option<u64>,
    pub sample_mask: u16,
    /// The test bed's binary, for `dns-xdp-testbed xdp-count`.
    pub testbed: PathBuf,
    /// Sending threads, each with its own socket and its own share of the source ports.
    pub threads: u16,
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Queries handed to the kernel.
    pub sent: u64,
    /// DNS replies counted by xdp_count, sampled or not.
    pub replies: u64,
    /// Seconds spent sending.
    pub send_s: f64,
    /// Replies xdp_count passed as the sample, and how many of them reached the checker and matched.
    pub sampled: u64,
    pub checked: u64,
    /// Latency of each checked reply, ms, sorted.
    pub latencies_ms: Vec<f64>,
}

impl Outcome {
    pub fn offered_per_s(&self) -> f64 {
        self.sent as f64 / self.send_s
    }

    pub fn replies_per_s(&self) -> f64 {
        self.replies as f64 / self.send_s
    }

    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.replies)
    }

    /// Nearest-rank latency quantile, ms.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        (!self.latencies_ms.is_empty()).then(|| super::stats::quantile(&self.latencies_ms, q))
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "sent {} ({:.0}/s offered), received {} replies ({:.0}/s), {:.1}% unanswered; {} of {} sampled replies \
             checked against their queries, all match",
            self.sent,
            self.offered_per_s(),
            self.replies,
            self.replies_per_s(),
            self.lost() as f64 / self.sent.max(1) as f64 * 100.0,
            self.checked,
            self.sampled,
        );
        if let (Some(p50), Some(p99), Some(p999)) =
            (self.latency_ms(0.5), self.latency_ms(0.99), self.latency_ms(0.999))
        {
            s.push_str(&format!("; latency p50 {p50:.3} ms, p99 {p99:.3} ms, p99.9 {p999:.3} ms"));
        }
        s
    }
}

/// Run the generator once: attach the counter, send for `duration`, drain, check the sample.
pub fn run(cfg: &Config) -> Result<Outcome> {
    if cfg.duration > MAX_DURATION || cfg.duration.is_zero() {
        bail!("duration {:?}: give 1 s to {MAX_DURATION:?}", cfg.duration);
    }
    let templates = Arc::new(frame::read_queries(&cfg.queries, &cfg.ends)?);
    let log = Arc::new(SendLog::new());
    let stop_rx = Arc::new(AtomicBool::new(false));
    let mut counter = Counter::start(cfg)?;

    // The checker's sockets exist before the first query leaves.
    let (ready_tx, ready_rx) = mpsc::channel();
    let checker = {
        let (cfg, templates, log, stop) = (cfg.clone(), templates.clone(), log.clone(), stop_rx.clone());
        std::thread::Builder::new().name("xdpgen-check".into()).spawn(move || -> Result<Check> {
            enter_netns(cfg.netns.as_deref())?;
            let socks = sample::open(cfg.ends.src, SRC_PORT_BASE..SRC_PORT_BASE + SRC_PORTS)
                .context("binding the sample sockets to the generator's source ports")?;
            let _ = ready_tx.send(());
            let mut check = Check::default();
            sample::receive(&socks, &stop, |i, msg, at| check.reply(i, msg, at, &templates, &log))?;
            Ok(check)
        })?
    };
    if ready_rx.recv_timeout(COUNTER_DEADLINE).is_err() {
        stop_rx.store(true, Ordering::Relaxed);
        return Err(checker
            .join()
            .map_err(|_| anyhow::anyhow!("checker panicked"))?
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("the checker did not start within {COUNTER_DEADLINE:?}")));
    }

    let before = counter.read()?;
    let threads = cfg.threads.clamp(1, SRC_PORTS);
    let senders = (0..threads)
        .map(|k| {
            let (cfg, templates, log) = (cfg.clone(), templates.clone(), log.clone());
            std::thread::Builder::new()
                .name(format!("xdpgen-send{k}"))
                .spawn(move || send(&cfg, &templates, &log, k, threads))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let sent = senders.into_iter().try_fold((0u64, 0f64), |(n, secs), h| -> Result<(u64, f64)> {
        let (k, s) = h.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
        Ok((n + k, secs.max(s)))
    });
    proc::sleep(DRAIN);
    let after = counter.read();
    stop_rx.store(true, Ordering::Relaxed);
    let check = checker.join().map_err(|_| anyhow::anyhow!("checker panicked"))?;
    counter.stop();
    let (sent, send_s) = sent?;
    let after = after?;
    let mut check = check?;
    if let Some(first) = check.mismatches.first() {
        bail!(
            "{} of {} sampled replies do not match a query sent (first: {first})",
            check.mismatches.len(),
            check.mismatches.len() as u64 + check.matched
        );
    }
    let replies = after[0] - before[0];
    let sampled = after[1] - before[1];
    if replies > 0 && check.matched == 0 {
        bail!("{replies} replies counted but none of the {sampled} sampled ones reached the checker");
    }
    check.latencies_ms.sort_by(f64::total_cmp);
    Ok(Outcome { sent, replies, send_s, sampled, checked: check.matched, latencies_ms: check.latencies_ms })
}

/// Which query left from which port with which ID, and when: `(template + 1) << TIME_BITS | ns since t0`
/// at index `port << 16 | id`. The sender writes an entry before the frame leaves; the checker reads it.
struct SendLog {
    t0: u64,
    slots: Vec<AtomicU64>,
}

impl SendLog {
    fn new() -> Self {
        let n = usize::from(SRC_PORTS) << 16;
        SendLog { t0: sample::realtime_ns(), slots: (0..n).map(|_| AtomicU64::new(0)).collect() }
    }

    fn record(&self, port: u16, id: u16, template: usize, at: u64) {
        let rel = at.saturating_sub(self.t0) & ((1 << TIME_BITS) - 1);
        self.slots[usize::from(port) << 16 | usize::from(id)]
            .store(((template as u64 + 1) << TIME_BITS) | rel, Ordering::Relaxed);
    }

    /// (template, send time as realtime ns) of the last query sent from `port` with `id`.
    fn lookup(&self, port: u16, id: u16) -> Option<(usize, u64)> {
        let e = self.slots[usize::from(port) << 16 | usize::from(id)].load(Ordering::Relaxed);
        (e != 0).then(|| ((e >> TIME_BITS) as usize - 1, self.t0 + (e & ((1 << TIME_BITS) - 1))))
    }
}

/// The DNS ID for the `n`th query from one port: a bijection on u16 (odd multiplier, then a key of this
/// run), so IDs look random and repeat on a port only after 65,536 queries.
fn scramble(n: u16, key: u16) -> u16 {
    n.wrapping_mul(0x9e37 | 1) ^ key
}

/// Sending thread `k` of `threads`, which owns the source ports `p` with `p % threads == k`: returns
/// (frames handed to the kernel, seconds spent).
fn send(cfg: &Config, templates: &[frame::Template], log: &SendLog, k: u16, threads: u16) -> Result<(u64, f64)> {
    enter_netns(cfg.netns.as_deref())?;
    let ifindex = ifindex(&cfg.iface)?;
    let mut tx = tx::Tx::open(ifindex).with_context(|| format!("opening an AF_PACKET socket on {}", cfg.iface))?;
    // Sleeps of tens of microseconds between batches at a fixed rate: ask the kernel not to stretch them.
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    let key = (sample::realtime_ns() >> 7) as u16;
    let mut per_port = [0u16; SRC_PORTS as usize];
    let own_ports = u64::from(SRC_PORTS / threads);
    let rate = cfg.rate.map(|r| r / u64::from(threads));
    let (mut n, mut sent) = (0u64, 0u64);
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= cfg.duration || proc::stopping() {
            break;
        }
        let due = match rate {
            Some(r) => ((r as f64 * elapsed.as_secs_f64()) as u64).saturating_sub(sent).min(tx::BATCH as u64),
            None => tx::BATCH as u64,
        };
        if due == 0 {
            std::thread::sleep(Duration::from_micros(20));
            continue;
        }
        let at = sample::realtime_ns();
        let mut pushed = 0;
        while pushed < due {
            // Threads start at different places in the file.
            let t =
                ((n + u64::from(k) * templates.len() as u64 / u64::from(threads)) % templates.len() as u64) as usize;
            // Each pass over the file moves every query to the next port.
            let port = k + threads * ((n + n / templates.len() as u64) % own_ports) as u16;
            let id = scramble(per_port[usize::from(port)], key);
            // The entry goes in before the frame can leave, so no reply can beat it.
            log.record(port, id, t, at);
            if !tx.push(|buf| templates[t].stamp(buf, SRC_PORT_BASE + port, id)) {
                break;
            }
            per_port[usize::from(port)] = per_port[usize::from(port)].wrapping_add(1);
            n += 1;
            pushed += 1;
        }
        sent += tx.flush().context("sending")? as u64;
    }
    Ok((sent, start.elapsed().as_secs_f64()))
}

/// The checker's tally.
#[derive(Default)]
struct Check {
    matched: u64,
    /// Descriptions of replies that match no query (the first few).
    mismatches: Vec<String>,
    latencies_ms: Vec<f64>,
}

impl Check {
    fn reply(&mut self, sock: usize, msg: &[u8], at: u64, templates: &[frame::Template], log: &SendLog) {
        let port = sock as u16;
        let Some(id) = msg.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return self.mismatch(format!("a {}-byte message on port {}", msg.len(), SRC_PORT_BASE + port));
        };
        let Some((t, sent_at)) = log.lookup(port, id) else {
            return self.mismatch(format!("ID {id:#06x} on port {} was never sent", SRC_PORT_BASE + port));
        };
        let q = templates[t].question();
        let qr = msg.get(2).is_some_and(|f| f & 0x80 != 0);
        if !qr || msg.get(12..12 + q.len()) != Some(q) {
            return self.mismatch(format!(
                "ID {id:#06x} on port {}: reply {:02x?} does not repeat question {q:02x?}",
                SRC_PORT_BASE + port,
                msg.get(..(12 + q.len()).min(msg.len())).unwrap_or_default()
            ));
        }
        self.matched += 1;
        self.latencies_ms.push(at.saturating_sub(sent_at) as f64 / 1e6);
    }

    fn mismatch(&mut self, what: String) {
        if self.mismatches.len() < 1000 {
            self.mismatches.push(what);
        }
    }
}

/// `dns-xdp-testbed xdp-count` on the interface: counters read on request over its stdin and stdout.
struct Counter {
    guard: Guard,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Counter {
    fn start(cfg: &Config) -> Result<Self> {
        let testbed = cfg.testbed.to_string_lossy();
        let mut c = match &cfg.netns {
            Some(ns) => proc::in_netns(ns, &testbed),
            None => cmd::command(&testbed),
        };
        c.args(["xdp-count", "--iface", &cfg.iface, "--sample-mask", &cfg.sample_mask.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = Guard::spawn(c)?;
        let stdin = guard.take_stdin();
        let stdout = guard.take_stdout().context("xdp-count's stdout")?;
        let stderr = guard.take_stderr().context("xdp-count's stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let mut counter = Counter { guard, stdin, lines };
        match counter.lines.recv_timeout(COUNTER_DEADLINE) {
            Ok(l) if l == "ready" => Ok(counter),
            other => {
                counter.stop();
                let stderr = err.join().unwrap_or_default();
                bail!(
                    "`dns-xdp-testbed xdp-count` did not attach to {} ({}): {}",
                    cfg.iface,
                    match other {
                        Ok(l) => format!("said `{l}`"),
                        Err(_) => "no answer".into(),
                    },
                    stderr.trim()
                )
            }
        }
    }

    /// [replies, sampled, other], summed over CPUs.
    fn read(&mut self) -> Result<[u64; 3]> {
        let stdin = self.stdin.as_mut().context("xdp-count already stopped")?;
        writeln!(stdin).and_then(|()| stdin.flush()).context("asking xdp-count for its counters")?;
        let line = self.lines.recv_timeout(COUNTER_DEADLINE).context("xdp-count did not answer")?;
        let v: Vec<u64> = line.split_whitespace().skip(1).step_by(2).filter_map(|w| w.parse().ok()).collect();
        match v[..] {
            [replies, sampled, other] => Ok([replies, sampled, other]),
            _ => bail!("xdp-count said `{line}`"),
        }
    }

    /// End of input makes it detach and exit; SIGTERM after a grace period otherwise.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if !matches!(self.guard.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.guard.stop(Duration::from_secs(5));
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Move the calling thread into network namespace `ns` (`ip netns` name); `None` stays.
fn enter_netns(ns: Option<&str>) -> Result<()> {
    let Some(ns) = ns else { return Ok(()) };
    let path = std::path::Path::new("/run/netns").join(ns);
    let f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: setns on a namespace file we hold open; it changes only the calling thread's namespace.
    if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("entering network namespace {ns}"));
    }
    Ok(())
}

/// Turns on the boolean socket option `opt` at `level` of `fd`.
fn enable(fd: std::os::fd::RawFd, level: libc::c_int, opt: libc::c_int) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` lives across the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("no interface {name}"));
    }
    Ok(i)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC address `{s}`"))?;
    parts.try_into().map_err(|_| anyhow::anyhow!("bad MAC address `{s}`: six bytes expected"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_repeat_on_a_port_only_after_every_value() {
        let mut seen = vec![false; 65536];
        for n in 0..=u16::MAX {
            let id = scramble(n, 0x5a5a);
            assert!(!seen[usize::from(id)], "ID {id:#x} twice");
            seen[usize::from(id)] = true;
        }
        // The default sample is one in 64 over a port's IDs.
        let sampled = (0..=u16::MAX).filter(|&n| scramble(n, 0x1234) & DEFAULT_SAMPLE_MASK == 0).count();
        assert_eq!(sampled, 1024);
    }

    #[test]
    fn send_log_finds_what_was_sent() {
        let log = SendLog::new();
        log.record(31, 0xbeef, 19_999, log.t0 + 1_234_567);
        assert_eq!(log.lookup(31, 0xbeef), Some((19_999, log.t0 + 1_234_567)));
        assert_eq!(log.lookup(30, 0xbeef), None);
    }

    #[test]
    fn checker_accepts_only_the_query_sent_with_that_port_and_id() {
        let ends = Endpoints {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 1],
            src: "198.18.53.2".parse().unwrap(),
            dst: "198.18.53.1".parse().unwrap(),
            dst_port: 53,
        };
        let t = vec![
            frame::build(&ends, &frame::wire_name("a.test.").unwrap(), 1),
            frame::build(&ends, &frame::wire_name("b.test.").unwrap(), 28),
        ];
        let log = SendLog::new();
        log.record(3, 0x1111, 0, log.t0 + 1_000);
        // ID, flags (QR AA), QDCOUNT 1, the rest zero, then the question.
        let reply = |q: &[u8], id: u16, flags: u8| {
            let mut m = id.to_be_bytes().to_vec();
            m.extend([flags, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
            m.extend_from_slice(q);
            m
        };
        let mut c = Check::default();
        c.reply(3, &reply(t[0].question(), 0x1111, 0x84), log.t0 + 51_000, &t, &log);
        assert_eq!((c.matched, c.mismatches.len()), (1, 0));
        assert!((c.latencies_ms[0] - 0.05).abs() < 1e-9, "{:?}", c.latencies_ms);
        // Another question, another port, no QR bit, a runt: each one is a mismatch.
        c.reply(3, &reply(t[1].question(), 0x1111, 0x84), log.t0, &t, &log);
        c.reply(4, &reply(t[0].question(), 0x1111, 0x84), log.t0, &t, &log);
        c.reply(3, &reply(t[0].question(), 0x1111, 0x04), log.t0, &t, &log);
        c.reply(3, &[0x11], log.t0, &t, &log);
        assert_eq!((c.matched, c.mismatches.len()), (1, 4), "{:?}", c.mismatches);
        assert!(c.mismatches[1].contains("was never sent"), "{:?}", c.mismatches);
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:0a:ff:00:01").unwrap(), [2, 0, 10, 255, 0, 1]);
        assert!(parse_mac("02:00:0a").is_err());
    }
}
