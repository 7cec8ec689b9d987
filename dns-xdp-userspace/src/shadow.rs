//! Shadow validation (issue 8): a sample of the real queries this node answers is asked again of
//! a reference server (`--shadow-reference`), and the two responses are compared with
//! `compare::differences` under `Scope::Answer`. Mismatches are counted per field and logged,
//! one line each (rate-limited); an unreachable or slow reference is counted apart and never
//! called a mismatch. metrics.rs renders the counters.
//!
//! Sources: the XDP program copies a random sample of the answers it sends to SHADOW_RING
//! (dns-xdp-ebpf/src/shadow.rs); the daemon rebuilds each query from the record and renders the
//! answer with its own encoder, the one the map was compiled with, checking it against the record's
//! data length and checksum. The slow path offers its own answers directly (`Shadow::offer`).
//!
//! Never delays or changes a real answer: offering is a random draw and a `try_send` into a
//! bounded queue; what does not fit is dropped and counted. Comparisons run on their own tasks,
//! at most `MAX_IN_FLIGHT` at once.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use dns_xdp_common::dns::CLASS_IN;
use dns_xdp_common::{SHADOW_EDNS_DO, SHADOW_EDNS_PRESENT, Scratch};
use tokio::sync::{Semaphore, mpsc};

use crate::compare::{self, Scope};
use crate::config::ShadowSettings;
use crate::exchange::{self, Proto};
use crate::respond::{Transport, handle_from};
use crate::state::State;

/// Jobs waiting for a comparison; more are dropped (and counted), never waited for.
pub const QUEUE_CAPACITY: usize = 4096;
/// Comparisons in flight at once (each holds one socket to the reference).
pub const MAX_IN_FLIGHT: usize = 64;
/// Mismatch log lines per `LOG_WINDOW`; the rest are counted and summarised on the next line.
const LOG_LINES_PER_WINDOW: u32 = 10;
const LOG_WINDOW: Duration = Duration::from_secs(1);

/// The fields a mismatch is counted under (`dnsxdp_shadow_mismatches_total{field}`).
pub const FIELDS: [&str; 6] = ["rcode", "flags", "question", "answer", "authority", "edns"];

/// Which path sent the answer being compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Xdp,
    Userspace,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Xdp => "xdp",
            Path::Userspace => "userspace",
        }
    }
}

/// One answer to compare: the query as received and the response we sent.
pub struct Job {
    pub query: Vec<u8>,
    pub ours: Vec<u8>,
    pub transport: Transport,
    pub client: SocketAddr,
    pub path: Path,
}

#[derive(Default)]
pub struct Counters {
    /// Compared (both responses in hand), by path: [xdp, userspace].
    pub queries: [AtomicU64; 2],
    /// By `FIELDS` index.
    pub mismatches: [AtomicU64; FIELDS.len()],
    /// Queries with at least one mismatching field.
    pub mismatched_queries: AtomicU64,
    pub timeouts: AtomicU64,
    pub unreachable: AtomicU64,
    /// The reference's reply could not be parsed.
    pub malformed: AtomicU64,
    /// Queue full.
    pub dropped: AtomicU64,
    /// XDP records whose answer the daemon would no longer send (a reload in between): skipped.
    pub stale: AtomicU64,
}

pub struct Shadow {
    pub settings: ShadowSettings,
    pub counters: Counters,
    queue: mpsc::Sender<Job>,
    started: Instant,
    /// Nanoseconds after `started` of the last mismatch; 0 = none yet.
    last_mismatch: AtomicU64,
    log_window: Mutex<LogWindow>,
}

#[derive(Default)]
struct LogWindow {
    start: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

thread_local! {
    /// xorshift64 state for the sampling draw; seeded per thread.
    static DRAW: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let addr = &t as *const u64 as u64;
    (t ^ addr.rotate_left(32)) | 1
}

impl Shadow {
    /// The handle and the queue's receiving end (for `run`).
    pub fn new(settings: ShadowSettings) -> (Shadow, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let shadow = Shadow {
            settings,
            counters: Counters::default(),
            queue: tx,
            started: Instant::now(),
            last_mismatch: AtomicU64::new(0),
            log_window: Mutex::new(LogWindow::default()),
        };
        (shadow, rx)
    }

    /// Whether to shadow this query: one in `sample`, drawn at random.
    pub fn pick(&self) -> bool {
        let n = u64::from(self.settings.sample.max(1));
        if n == 1 {
            return true;
        }
        DRAW.with(|s| {
            let mut x = s.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.set(x);
            x % n == 0
        })
    }

    /// Queues a job without waiting; a full queue drops it (counted).
    pub fn offer(&self, job: Job) {
        if self.queue.try_send(job).is_err() {
            self.counters.dropped.fetch_add(1, Relaxed);
        }
    }

    /// The slow path's hook: picks, copies and queues. Cheap when not picked.
    pub fn sample_answer(&self, query: &[u8], ours: &[u8], transport: Transport, client: SocketAddr) {
        if self.pick() {
            self.offer(Job { query: query.to_vec(), ours: ours.to_vec(), transport, client, path: Path::Userspace });
        }
    }

    pub fn seconds_since_mismatch(&self) -> f64 {
        let now = self.started.elapsed();
        let last = Duration::from_nanos(self.last_mismatch.load(Relaxed));
        (now - last.min(now)).as_secs_f64()
    }

    /// Compares one job's answer with the reference's.
    async fn compare(&self, job: Job) {
        let c = &self.counters;
        let Ok(ours) = compare::parse(&job.ours) else {
            log::debug!("shadow: our own reply to {} does not parse", compare::describe_query(&job.query));
            return;
        };
        let proto = match job.transport {
            Transport::Udp => Proto::Udp,
            // Encrypted transports have TCP's semantics (no size limit): the reference is asked over TCP.
            Transport::Tcp | Transport::Tls | Transport::Https | Transport::Quic => Proto::Tcp,
        };
        // The reference's truncated UDP reply is asked again over TCP when ours is complete: the
        // content is what we compare, each server's truncation threshold is its own.
        let asked = if ours.tc {
            exchange::ask(self.settings.reference, &job.query, proto, self.settings.timeout).await
        } else {
            exchange::ask_full(self.settings.reference, &job.query, proto, self.settings.timeout).await.map(|(r, _)| r)
        };
        let reply = match asked {
            Ok(r) => r,
            Err(err) => {
                match err {
                    exchange::AskError::Timeout(_) => c.timeouts.fetch_add(1, Relaxed),
                    exchange::AskError::Unreachable(_) => c.unreachable.fetch_add(1, Relaxed),
                };
                log::debug!("shadow: reference {}: {err}", self.settings.reference);
                return;
            }
        };
        let theirs = match compare::parse(&reply) {
            Ok(t) => t,
            Err(err) => {
                c.malformed.fetch_add(1, Relaxed);
                log::debug!("shadow: reference reply to {} does not parse: {err}", compare::describe_query(&job.query));
                return;
            }
        };
        c.queries[job.path as usize].fetch_add(1, Relaxed);
        let diffs = compare::differences(&ours, &theirs, Scope::Answer);
        if diffs.is_empty() {
            return;
        }
        c.mismatched_queries.fetch_add(1, Relaxed);
        for field in &diffs {
            if let Some(i) = FIELDS.iter().position(|f| f == field) {
                c.mismatches[i].fetch_add(1, Relaxed);
            }
        }
        self.last_mismatch.store(self.started.elapsed().as_nanos().max(1) as u64, Relaxed);
        if let Some(suppressed) = self.may_log() {
            let more =
                if suppressed > 0 { format!(" ({suppressed} earlier mismatches not logged)") } else { String::new() };
            log::warn!(
                "shadow mismatch: fields={} path={} proto={} client={} query=\"{}\" ours=\"{}\" reference=\"{}\"{more}",
                diffs.join(","),
                job.path.name(),
                proto.name(),
                job.client,
                compare::describe_query(&job.query),
                ours.one_line(),
                theirs.one_line(),
            );
        }
    }

    /// `Some(suppressed since the last line)` when a line may be logged now.
    fn may_log(&self) -> Option<u64> {
        let mut w = self.log_window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if w.start.is_none_or(|s| now.duration_since(s) >= LOG_WINDOW) {
            w.start = Some(now);
            w.lines = 0;
        }
        if w.lines >= LOG_LINES_PER_WINDOW {
            w.suppressed += 1;
            return None;
        }
        w.lines += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

/// Runs the comparisons: takes jobs off the queue, at most `MAX_IN_FLIGHT` at once.
pub async fn run(shadow: Arc<Shadow>, mut jobs: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(job) = jobs.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let shadow = shadow.clone();
        tokio::spawn(async move {
            shadow.compare(job).await;
            drop(permit);
        });
    }
}

/// Drains the XDP program's samples into the queue.
pub async fn run_xdp(shadow: Arc<Shadow>, state: Arc<State>, mut ring: crate::loader::ShadowRing) {
    loop {
        let drained = ring
            .drain(|record| match from_record(&record, &state) {
                Some(job) => shadow.offer(job),
                None => {
                    shadow.counters.stale.fetch_add(1, Relaxed);
                }
            })
            .await;
        if let Err(err) = drained {
            log::error!("shadow: reading SHADOW_RING failed: {err}; XDP answers are no longer shadowed");
            return;
        }
    }
}

/// The query an XDP sample stands for, and the answer XDP sent: rendered again by the encoder
/// the map was compiled with, and checked against the record (`None` when it differs now).
pub fn from_record(record: &Scratch, state: &State) -> Option<Job> {
    let s = &record.shadow;
    let qname = record.raw.get(..usize::from(s.qname_len))?;
    let edns = s.edns_flags & SHADOW_EDNS_PRESENT != 0;
    let mut query = Vec::with_capacity(12 + qname.len() + 4 + 11);
    // ID 0x5d5d ("shadow"): XDP answers copy the query's ID, which the record does not carry.
    query.extend_from_slice(&[0x5d, 0x5d]);
    query.extend_from_slice(&s.query_flags.to_be_bytes());
    query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    query.extend_from_slice(qname);
    query.extend_from_slice(&record.key.qtype.to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    if edns {
        let do_bit: u8 = if s.edns_flags & SHADOW_EDNS_DO != 0 { 0x80 } else { 0 };
        query.extend_from_slice(&[0, 0, 41]);
        query.extend_from_slice(&s.edns_payload.to_be_bytes());
        query.extend_from_slice(&[0, 0, do_bit, 0, 0, 0]);
    }
    let zones = state.zones.load();
    let reply =
        handle_from(&zones, &query, Transport::Udp, state.edns_payload, &state.chaos, None, Some(&state.demand))?;
    // What XDP appends after the question is the map value's data: the same bytes, or a reload
    // came in between.
    let start = 12 + qname.len() + 4;
    let end = reply.bytes.len().checked_sub(if edns { 11 } else { 0 })?;
    let data = reply.bytes.get(start..end)?;
    if data.len() != usize::from(record.body.data_len) || crate::compile::csum(data) != record.body.data_csum {
        return None;
    }
    let client_ip: IpAddr = if s.family == 6 {
        IpAddr::from(s.client_addr)
    } else {
        IpAddr::from([s.client_addr[0], s.client_addr[1], s.client_addr[2], s.client_addr[3]])
    };
    Some(Job {
        query,
        ours: reply.bytes,
        transport: Transport::Udp,
        client: SocketAddr::new(client_ip, s.client_port),
        path: Path::Xdp,
    })
}

/// Starts the comparison task (on the current runtime) and returns the handle the slow path
/// offers its answers to. The XDP side is started by whoever owns the program (`run_xdp`).
pub fn start(settings: ShadowSettings) -> Arc<Shadow> {
    log::info!(
        "shadow validation: one query in {} compared with {} (mismatches are logged and counted as dnsxdp_shadow_*)",
        settings.sample,
        settings.reference
    );
    let (shadow, jobs) = Shadow::new(settings);
    let shadow = Arc::new(shadow);
    tokio::spawn(run(shadow.clone(), jobs));
    shadow
}
