//! Pulling zone transfers over TCP from a primary: AXFR (RFC 5936) and IXFR (RFC 1995), each
//! message's TSIG verified when a key is in use. Serving them is outgoing.rs.

use std::net::SocketAddr;
use std::time::Duration;

use dns_xdp_common::dns::{rcode, rtype};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::journal::Changeset;
use super::message::{self, Builder, Section};
use super::tsig::{self, Key, StreamVerifier};
use crate::config::XfrLimits;
use crate::name::Name;
use crate::source::Sources;
use crate::zone::{Diagnostic, Record, Zone, serial_newer, soa_serial, zone_from_records};

/// A transfer whose primary sends nothing for this long is abandoned; the old version keeps
/// serving. Per read, so a large zone that keeps arriving is not cut off (Knot's
/// `tcp-io-timeout` is likewise per operation).
pub const XFR_IDLE: Duration = Duration::from_secs(10);
/// And any transfer ends after this long (BIND's `max-transfer-time-in` default: 120 minutes).
pub const XFR_MAX_TIME: Duration = Duration::from_secs(2 * 3600);

/// What a transfer from a primary brought.
#[derive(Debug)]
pub enum Pulled {
    /// The primary has no newer serial.
    UpToDate,
    /// The whole zone (AXFR, or IXFR answered with the whole zone).
    Full(Zone),
    /// Changes from our serial on (IXFR).
    Incremental(Vec<Changeset>),
}

#[derive(Debug, thiserror::Error)]
pub enum XfrError {
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("transfer from {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("transfer from {0}: {1}")]
    Timeout(SocketAddr, String),
    #[error("transfer from {0} abandoned: {1}")]
    Limit(SocketAddr, String),
    #[error("transfer from {0}: {1}")]
    Protocol(SocketAddr, StreamError),
    #[error("transfer from {0}: TSIG: {1}")]
    Tsig(SocketAddr, tsig::TsigError),
}

/// What is wrong with a transfer's responses: they arrived, but do not make a transfer of the zone.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("malformed message")]
    Malformed,
    #[error("response does not match the query")]
    Mismatch,
    #[error("primary answered {}", rcode::name(*.0))]
    Rcode(u16),
    #[error("records after the closing SOA")]
    AfterEnd,
    #[error("transfer does not start with a SOA")]
    NoSoa,
    #[error("transfer ended early")]
    Early,
    #[error("connection closed mid-transfer")]
    Closed,
    /// The transferred zone breaks the zone rules.
    #[error("{}", .0.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
    #[error("transferred zone is {got}, not {want}")]
    OtherZone { got: Name, want: Name },
}

/// Pulls `zone` from `primary`: IXFR from `current`'s serial when we have a version, else AXFR.
pub async fn pull(
    primary: SocketAddr,
    zone: &Name,
    current: Option<&Zone>,
    key: Option<&Key>,
    limits: XfrLimits,
    source: Sources,
) -> Result<Pulled, XfrError> {
    let total = || XfrError::Timeout(primary, format!("not complete after {XFR_MAX_TIME:?}"));
    tokio::time::timeout(XFR_MAX_TIME, pull_inner(primary, zone, current, key, limits, source))
        .await
        .map_err(|_| total())?
}

/// `fut`, abandoned when the primary stays silent for `XFR_IDLE`.
async fn idle<T>(
    primary: SocketAddr,
    what: &str,
    fut: impl Future<Output = std::io::Result<T>>,
) -> Result<T, XfrError> {
    match tokio::time::timeout(XFR_IDLE, fut).await {
        Ok(r) => r.map_err(|e| XfrError::Io(primary, e)),
        Err(_) => Err(XfrError::Timeout(primary, format!("nothing {what} for {XFR_IDLE:?}"))),
    }
}

async fn pull_inner(
    primary: SocketAddr,
    zone: &Name,
    current: Option<&Zone>,
    key: Option<&Key>,
    limits: XfrLimits,
    source: Sources,
) -> Result<Pulled, XfrError> {
    let proto = |e| XfrError::Protocol(primary, e);
    let qtype = if current.is_some() { rtype::IXFR } else { rtype::AXFR };
    let id: u16 = rand_id();
    let mut query = Builder::new(id, 0, Some((zone, qtype)));
    if let Some(cur) = current {
        query.push(Section::Authority, &cur.soa_record());
    }
    let mut query = query.buf;
    let mut verifier: Option<StreamVerifier> = match key {
        Some(k) => Some(tsig::sign_request(&mut query, k, tsig::now()).map_err(|e| XfrError::Tsig(primary, e))?),
        None => None,
    };
    let mut conn = match tokio::time::timeout(XFR_IDLE, source.tcp(primary)).await {
        Ok(r) => r.map_err(|e| XfrError::Connect(primary, e))?,
        Err(_) => return Err(XfrError::Connect(primary, std::io::ErrorKind::TimedOut.into())),
    };
    let _ = conn.set_nodelay(true);
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    idle(primary, "written", conn.write_all(&framed)).await?;

    let mut stream = StreamState::default();
    let mut buf = vec![0u8; 65535];
    let (mut records, mut bytes) = (0u64, 0u64);
    loop {
        let mut len = [0u8; 2];
        idle(primary, "received", conn.read_exact(&mut len)).await?;
        let len = u16::from_be_bytes(len) as usize;
        idle(primary, "received", conn.read_exact(&mut buf[..len])).await?;
        bytes += len as u64 + 2;
        if bytes > limits.max_bytes {
            return Err(XfrError::Limit(
                primary,
                format!("{zone}: more than {} bytes (xfr_max_bytes)", limits.max_bytes),
            ));
        }
        let raw = &buf[..len];
        if let Some(v) = verifier.as_mut() {
            v.verify(raw, tsig::now()).map_err(|e| XfrError::Tsig(primary, e))?;
        }
        records += stream.absorb(raw, id).map_err(proto)?;
        if records > limits.max_records {
            return Err(XfrError::Limit(
                primary,
                format!("{zone}: more than {} records (xfr_max_records)", limits.max_records),
            ));
        }
        let our = current.map(|z| z.serial);
        if stream.done(our) {
            if let Some(v) = verifier.take() {
                v.finish().map_err(|e| XfrError::Tsig(primary, e))?;
            }
            return stream.finish(our, zone).map_err(proto);
        }
    }
}

/// Reading a transfer's records: AXFR format (SOA, records, SOA) or IXFR's sequence of changes.
#[derive(Default)]
struct StreamState {
    new_serial: Option<u32>,
    records: Vec<Record>,
    /// IXFR format: changesets so far; the last may be incomplete.
    changes: Vec<Changeset>,
    mode: Mode,
    complete: bool,
}

#[derive(Default, PartialEq, Eq, Clone, Copy)]
enum Mode {
    #[default]
    Start,
    Axfr,
    Removing,
    Adding,
}

/// Reads a transfer's response messages as `pull` does once their TSIG checked out, with no
/// network: the fuzz targets' door to the transfer reader. Running out of messages before the
/// stream says it is done is the early end `pull` would hit as a closed connection.
#[doc(hidden)]
pub fn read_responses<'m>(
    id: u16,
    zone: &Name,
    current: Option<&Zone>,
    messages: impl IntoIterator<Item = &'m [u8]>,
) -> Result<Pulled, StreamError> {
    let mut stream = StreamState::default();
    let our = current.map(|z| z.serial);
    for raw in messages {
        stream.absorb(raw, id)?;
        if stream.done(our) {
            return stream.finish(our, zone);
        }
    }
    Err(StreamError::Closed)
}

impl StreamState {
    /// One response message of the transfer answering query `id`: its records, minus the TSIG;
    /// returns how many it took.
    fn absorb(&mut self, raw: &[u8], id: u16) -> Result<u64, StreamError> {
        let msg = message::parse(raw).ok_or(StreamError::Malformed)?;
        if msg.id != id || !msg.is_response() {
            return Err(StreamError::Mismatch);
        }
        if msg.rcode() != rcode::NOERROR {
            return Err(StreamError::Rcode(msg.rcode()));
        }
        let mut taken = 0;
        for rr in msg.answer.iter().filter(|r| r.rtype != rtype::TSIG) {
            self.push(rr.record())?;
            taken += 1;
        }
        Ok(taken)
    }

    fn push(&mut self, r: Record) -> Result<(), StreamError> {
        if self.complete {
            return Err(StreamError::AfterEnd);
        }
        let soa = (r.rtype == rtype::SOA).then(|| soa_serial(&r.rdata)).flatten();
        let Some(new) = self.new_serial else {
            let s = soa.ok_or(StreamError::NoSoa)?;
            self.new_serial = Some(s);
            self.records.push(r);
            return Ok(());
        };
        match (self.mode, soa) {
            (Mode::Start, Some(s)) if s != new => {
                self.mode = Mode::Removing;
                self.changes.push(Changeset {
                    old_soa: r,
                    removed: vec![],
                    new_soa: self.records[0].clone(),
                    added: vec![],
                });
            }
            (Mode::Start, Some(_)) | (Mode::Axfr, Some(_)) => self.complete = true,
            (Mode::Start | Mode::Axfr, None) => {
                self.mode = Mode::Axfr;
                self.records.push(r);
            }
            (Mode::Removing, Some(_)) => {
                self.changes.last_mut().expect("in a change").new_soa = r;
                self.mode = Mode::Adding;
            }
            (Mode::Removing, None) => self.changes.last_mut().expect("in a change").removed.push(r),
            (Mode::Adding, Some(s)) => {
                let last_to = self.changes.last().expect("in a change").to_serial();
                if s == new && last_to == new {
                    self.complete = true;
                } else {
                    self.changes.push(Changeset {
                        old_soa: r,
                        removed: vec![],
                        new_soa: self.records[0].clone(),
                        added: vec![],
                    });
                    self.mode = Mode::Removing;
                }
            }
            (Mode::Adding, None) => self.changes.last_mut().expect("in a change").added.push(r),
        }
        Ok(())
    }

    /// Whether the stream is over; a lone SOA at our serial (after a whole message) means no news.
    fn done(&self, our: Option<u32>) -> bool {
        self.complete
            || (self.mode == Mode::Start
                && self.new_serial.is_some()
                && our.is_some_and(|o| !serial_newer(self.new_serial.unwrap_or(o), o)))
    }

    fn finish(self, our: Option<u32>, zone: &Name) -> Result<Pulled, StreamError> {
        if !self.complete {
            return match (our, self.new_serial) {
                (Some(o), Some(n)) if !serial_newer(n, o) => Ok(Pulled::UpToDate),
                _ => Err(StreamError::Early),
            };
        }
        if self.changes.is_empty() {
            let z = zone_from_records(&format!("AXFR of {zone}"), self.records).map_err(StreamError::Invalid)?;
            if z.origin != *zone {
                return Err(StreamError::OtherZone { got: z.origin, want: zone.clone() });
            }
            Ok(Pulled::Full(z))
        } else {
            Ok(Pulled::Incremental(self.changes))
        }
    }
}

/// A query ID that is hard to guess (RFC 5452 section 9.2); the TSIG keeps transfers honest anyway.
pub fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish() as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::parse_records;

    fn zone(n: usize) -> Zone {
        let origin = Name::from_text("example.org").unwrap();
        let mut text = "@ 300 IN SOA ns1 host 7 2 3 4 60\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n".to_string();
        text.extend((0..n).map(|i| format!("h{i} 60 IN A 10.0.{}.{}\n", i / 256, i % 256)));
        zone_from_records("test", parse_records(&text, &origin).unwrap()).unwrap()
    }

    /// A primary on loopback answering one AXFR of `z`.
    async fn primary(z: Zone) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut len = [0u8; 2];
                conn.read_exact(&mut len).await.unwrap();
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                conn.read_exact(&mut q).await.unwrap();
                let id = u16::from_be_bytes([q[0], q[1]]);
                let z = std::sync::Arc::new(z.clone());
                for m in super::super::outgoing::Transfer::new(id, rtype::AXFR, z, None, None, None) {
                    let _ = conn.write_all(&(m.len() as u16).to_be_bytes()).await;
                    let _ = conn.write_all(&m).await;
                }
            }
        });
        addr
    }

    /// The old code took whatever a primary sent; now a transfer past the record or byte limit
    /// is abandoned, naming the setting.
    #[tokio::test]
    async fn transfers_past_the_limits_are_abandoned() {
        let z = zone(2000);
        let addr = primary(z.clone()).await;
        let got = pull(addr, &z.origin, None, None, XfrLimits::default(), Sources::default()).await.unwrap();
        assert!(matches!(got, Pulled::Full(ref full) if full.records() == z.records()));
        let refused = |limits| pull(addr, &z.origin, None, None, limits, Sources::default());
        let err = refused(XfrLimits { max_records: 1000, ..XfrLimits::default() }).await.unwrap_err();
        assert!(err.to_string().contains("xfr_max_records"), "{err}");
        let err = refused(XfrLimits { max_bytes: 20_000, ..XfrLimits::default() }).await.unwrap_err();
        assert!(err.to_string().contains("xfr_max_bytes"), "{err}");
    }
}
