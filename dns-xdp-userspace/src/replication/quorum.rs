//! Confirming a write: poll each node's SOA over plain DNS until enough of them serve the new
//! serial. A node answers SOA from its slow path, whose snapshot is swapped only after the XDP
//! maps were updated (publish.rs), so a node reporting the serial serves it on both paths.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use super::message::{self, Builder};
use super::tsig::Key;
use crate::name::Name;
use crate::zone::{Record, rtype, serial_newer, soa_serial};

/// Between SOA probes of one node: short, since propagation is a few milliseconds on a LAN.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How long one probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);
/// A node that still lags gets another NOTIFY this often (the first may have been lost).
const RENOTIFY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub confirmed: usize,
    pub required: usize,
    pub nodes: usize,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn reached(&self) -> bool {
        self.confirmed >= self.required
    }
}

/// The serial `node` serves for `zone`, if it answers.
pub async fn probe(sock: &UdpSocket, node: SocketAddr, zone: &Name) -> Option<u32> {
    let id = super::xfr::rand_id();
    let q = Builder::new(id, 0, Some((zone, rtype::SOA))).buf;
    sock.send_to(&q, node).await.ok()?;
    let mut buf = [0u8; 1500];
    tokio::time::timeout(PROBE_TIMEOUT, async {
        loop {
            let (n, from) = sock.recv_from(&mut buf).await.ok()?;
            let Some(m) = message::parse(&buf[..n]) else { continue };
            if from != node || m.id != id {
                continue;
            }
            return m.answer.iter().find(|r| r.rtype == rtype::SOA && r.owner == *zone).and_then(|r| soa_serial(&r.rdata));
        }
    })
    .await
    .ok()
    .flatten()
}

/// Waits until `required` of `nodes` serve `serial` (or newer) of `zone`, or `deadline` passes.
pub async fn confirm(nodes: &[SocketAddr], zone: &Name, soa: &Record, required: usize, deadline: Duration, key: Option<&Key>) -> Outcome {
    let start = Instant::now();
    let serial = soa_serial(&soa.rdata).unwrap_or(0);
    let confirmed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for &node in nodes {
        let (confirmed, done, zone, soa, key) = (confirmed.clone(), done.clone(), zone.clone(), soa.clone(), key.cloned());
        tasks.push(tokio::spawn(async move {
            let bind: SocketAddr = if node.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
            let Ok(sock) = UdpSocket::bind(bind).await else { return };
            let mut last_notify = Instant::now();
            loop {
                if let Some(s) = probe(&sock, node, &zone).await
                    && !serial_newer(serial, s)
                {
                    if confirmed.fetch_add(1, Ordering::SeqCst) + 1 >= required {
                        done.notify_one();
                    }
                    return;
                }
                if last_notify.elapsed() >= RENOTIFY {
                    last_notify = Instant::now();
                    tokio::spawn(super::notify::send_with_retries(node, zone.clone(), soa.clone(), key.clone()));
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }));
    }
    if required > 0 {
        let _ = tokio::time::timeout(deadline, done.notified()).await;
    }
    for t in &tasks {
        t.abort();
    }
    Outcome { confirmed: confirmed.load(Ordering::SeqCst), required, nodes: nodes.len(), elapsed: start.elapsed() }
}
