//! Sending NOTIFY (RFC 1996): after a change a primary tells each node at once, so secondaries
//! pull within a round trip instead of waiting for their SOA REFRESH timer.

use std::net::SocketAddr;
use std::time::Duration;

use dns_xdp_common::dns::{FLAG_AA, OPCODE_NOTIFY, rcode, rtype};

use super::message::{self, Builder, Section};
use super::tsig::{self, Key};
use crate::name::Name;
use crate::source::Sources;
use crate::zone::Record;

/// RFC 1996 section 3.6: retry an unanswered NOTIFY a few times, some time apart.
const TRIES: u32 = 5;
const FIRST_WAIT: Duration = Duration::from_millis(250);

/// Every NOTIFY sent is retried and re-sent per change and node: its warnings share one budget.
static WARNINGS: super::warn_limit::WarnLimit = super::warn_limit::WarnLimit::new();

/// Sends one NOTIFY for `zone` (with its SOA in the answer section, section 3.7) and waits up to
/// `wait` for the acknowledgement; whether it came.
pub async fn send(
    target: SocketAddr,
    zone: &Name,
    soa: &Record,
    key: Option<&Key>,
    source: Sources,
    wait: Duration,
) -> bool {
    let id = super::xfr::rand_id();
    let flags = u16::from(OPCODE_NOTIFY) << 11 | FLAG_AA;
    let mut b = Builder::new(id, flags, Some((zone, rtype::SOA)));
    b.push(Section::Answer, soa);
    let mut msg = b.buf;
    let mut verifier = match key.map(|k| tsig::sign_request(&mut msg, k, tsig::now())) {
        Some(Ok(v)) => Some(v),
        Some(Err(err)) => {
            WARNINGS.warn(|| format!("NOTIFY {zone} to {target}: signing: {err}"));
            return false;
        }
        None => None,
    };
    let sock = match source.udp(target).await {
        Ok(sock) => sock,
        Err(err) => {
            WARNINGS.warn(|| format!("NOTIFY {zone} to {target}: binding {}: {err}", source.local_for(target)));
            return false;
        }
    };
    if sock.send_to(&msg, target).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 1024];
    let got = tokio::time::timeout(wait, async {
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else { return false };
            if from != target {
                continue;
            }
            if let Some(m) = message::parse(&buf[..n])
                && m.id == id
                && m.is_response()
            {
                if m.rcode() != rcode::NOERROR {
                    WARNINGS.warn(|| format!("NOTIFY {zone} to {target}: answered {}", rcode::name(m.rcode())));
                    return false;
                }
                // A signed NOTIFY's acknowledgement must be signed by the peer (RFC 8945 5.3).
                if let Some(v) = verifier.as_mut()
                    && let Err(err) = v.verify(&buf[..n], tsig::now())
                {
                    WARNINGS.warn(|| format!("NOTIFY {zone} to {target}: acknowledgement fails TSIG: {err}"));
                    return false;
                }
                return true;
            }
        }
    })
    .await;
    matches!(got, Ok(true))
}

/// NOTIFY with retries, doubling the wait; gives up quietly (the node's REFRESH timer and the
/// quorum poller's re-NOTIFY cover a node that is down).
pub async fn send_with_retries(target: SocketAddr, zone: Name, soa: Record, key: Option<Key>, source: Sources) {
    let mut wait = FIRST_WAIT;
    for _ in 0..TRIES {
        if send(target, &zone, &soa, key.as_ref(), source, wait).await {
            return;
        }
        wait *= 2;
    }
    log::debug!("NOTIFY {zone} to {target}: no answer after {TRIES} tries");
}
