//! Confirming a write: poll each node's SOA over plain DNS until enough of them serve the new
//! serial. A node answers SOA from its slow path, whose snapshot is swapped only after the XDP
//! maps were updated (publish.rs), so a node reporting the serial serves it on both paths.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dns_xdp_common::dns::{CLASS_IN, rcode, rtype};
use tokio::net::UdpSocket;

use super::message::{self, Builder};
use super::tsig::{self, Key};
use crate::name::Name;
use crate::source::Sources;
use crate::zone::{Record, serial_newer, soa_serial};

/// Between SOA probes of one node: short, since propagation is a few milliseconds on a LAN.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How long one probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);
/// Probes start per write and node: their warnings share one budget.
static WARNINGS: super::warn_limit::WarnLimit = super::warn_limit::WarnLimit::new();
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
            if from != node {
                continue;
            }
            if let Some(serial) = answered_serial(&buf[..n], id, zone) {
                return Some(serial);
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// The serial in `reply` when it answers our SOA query `id` for `zone`: a response (QR), with
/// our ID and our question echoed, NOERROR. Anything else (a reflected query, a stale or forged
/// answer to another question) is ignored, as resolvers do (RFC 5452 section 9.1).
fn answered_serial(reply: &[u8], id: u16, zone: &Name) -> Option<u32> {
    let m = message::parse(reply)?;
    let (qname, qtype, qclass) = m.question.as_ref()?;
    if !m.is_response()
        || m.id != id
        || m.rcode() != rcode::NOERROR
        || qname != zone
        || *qtype != rtype::SOA
        || *qclass != CLASS_IN
    {
        return None;
    }
    m.answer.iter().find(|r| r.rtype == rtype::SOA && r.owner == *zone).and_then(|r| soa_serial(&r.rdata))
}

/// Waits until `required` of `nodes` serve `serial` (or newer) of `zone`, or `deadline` passes.
pub async fn confirm(
    nodes: &[SocketAddr],
    zone: &Name,
    soa: &Record,
    required: usize,
    deadline: Duration,
    keys: &[Key],
    source: Sources,
) -> Outcome {
    let start = Instant::now();
    let serial = soa_serial(&soa.rdata).unwrap_or(0);
    let confirmed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for &node in nodes {
        let key = tsig::key_for(keys, node.ip()).cloned();
        let (confirmed, done, zone, soa) = (confirmed.clone(), done.clone(), zone.clone(), soa.clone());
        tasks.push(tokio::spawn(async move {
            let sock = match source.udp(node).await {
                Ok(sock) => sock,
                Err(err) => {
                    WARNINGS.warn(|| format!("quorum probe of {node}: binding {}: {err}", source.local_for(node)));
                    return;
                }
            };
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
                    tokio::spawn(super::notify::send_with_retries(
                        node,
                        zone.clone(),
                        soa.clone(),
                        key.clone(),
                        source,
                    ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::message::{Builder, Section};
    use crate::zone::Record;

    #[test]
    fn only_our_answer_counts() {
        let zone = Name::from_text("example.org").unwrap();
        let soa = Record {
            owner: zone.clone(),
            rtype: rtype::SOA,
            ttl: 60,
            rdata: crate::zone::soa_with_serial(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 7),
        };
        let msg = |id: u16, flags: u16, q: (&Name, u16)| {
            let mut b = Builder::new(id, flags, Some(q));
            b.push(Section::Answer, &soa);
            b.buf
        };
        assert_eq!(answered_serial(&msg(9, 0x8400, (&zone, rtype::SOA)), 9, &zone), Some(7));
        // A query (QR=0) carrying a SOA, e.g. our own probe reflected back: not an answer.
        assert_eq!(answered_serial(&msg(9, 0x0000, (&zone, rtype::SOA)), 9, &zone), None);
        assert_eq!(answered_serial(&msg(8, 0x8400, (&zone, rtype::SOA)), 9, &zone), None, "another ID");
        let other = Name::from_text("example.net").unwrap();
        assert_eq!(answered_serial(&msg(9, 0x8400, (&other, rtype::SOA)), 9, &zone), None, "another question");
        assert_eq!(answered_serial(&msg(9, 0x8400, (&zone, rtype::A)), 9, &zone), None, "another type");
    }
}
