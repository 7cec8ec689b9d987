//! Serving AXFR (RFC 5936) and IXFR (RFC 1995) as a stream. A transfer holds an `Arc` of the zone
//! version (or of the changesets) served when the request came, no lock, and renders its messages
//! one at a time as the connection asks for the next, each TSIG-signed as it is finished (RFC 8945
//! section 5.3.1): memory per transfer is one message and one shard of names (`NodeMap`), whatever
//! the zone's size. The old code copied and sorted every record and rendered every message first,
//! under the history lock: some 130 bytes per record of a zone of addresses, per transfer.

use std::ops::Bound;
use std::sync::Arc;

use domain::rdata::tsig::Time48;

use super::journal::Changeset;
use dns_xdp_common::dns::{HEADER_LEN, rtype};

use super::message::{Builder, Section, record_len};
use super::tsig;
use crate::name::Name;
use crate::zone::{Record, Zone, node_records, serial_newer};

/// Bytes of records per transfer message: well under the 64 KiB TCP limit, leaving room for TSIG.
const MESSAGE_BUDGET: usize = 16 * 1024;
/// NSEC3 owners taken from the chain at a time (the chain is not sharded like the names).
const NSEC3_BATCH: usize = 256;
const FLAGS: u16 = 0x8400; // QR, AA

/// What a transfer sends between its SOAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The client has our serial (or a newer one): the SOA alone.
    UpToDate,
    /// The changes from the client's serial on (IXFR).
    Incremental,
    /// Every record (AXFR, or IXFR from a serial the history does not reach).
    WholeZone,
}

/// The messages answering one AXFR or IXFR, rendered as they are taken.
pub struct Transfer {
    id: u16,
    zone: Name,
    records: Box<dyn Iterator<Item = Record> + Send>,
    message: Builder,
    /// A message holding no more than its header and question carries no record yet.
    empty_len: usize,
    verified: Option<tsig::Verified>,
    clock: fn() -> Time48,
    pub kind: Kind,
    done: bool,
}

impl Transfer {
    /// The transfer of `zone` answering query `id` (`qtype` AXFR or IXFR): from `client_serial`
    /// by `chain` when the history reaches it, else the whole zone (RFC 1995 section 4). Each
    /// message is signed through `verified` (the request's TSIG) when given.
    pub fn new(
        id: u16,
        qtype: u16,
        zone: Arc<Zone>,
        client_serial: Option<u32>,
        chain: Option<Vec<Arc<Changeset>>>,
        verified: Option<tsig::Verified>,
    ) -> Transfer {
        let soa = zone.soa_record();
        let (kind, body): (Kind, Box<dyn Iterator<Item = Record> + Send>) = match (client_serial, chain) {
            (Some(serial), _) if !serial_newer(zone.serial, serial) => (Kind::UpToDate, Box::new(std::iter::empty())),
            (Some(_), Some(chain)) => (Kind::Incremental, Box::new(chain.into_iter().flat_map(change_records))),
            _ => (Kind::WholeZone, Box::new(zone_records(zone.clone()))),
        };
        let closing = (kind != Kind::UpToDate).then(|| soa.clone());
        let records = Box::new(std::iter::once(soa).chain(body).chain(closing));
        let message = Builder::new(id, FLAGS, Some((&zone.origin, qtype)));
        let empty_len = HEADER_LEN + zone.origin.as_wire().len() + 4;
        let zone = zone.origin.clone();
        Transfer { id, zone, records, message, empty_len, verified, clock: tsig::now, kind, done: false }
    }

    /// `self` signing with the time from `clock` (tests).
    #[cfg(test)]
    fn clocked(self, clock: fn() -> Time48) -> Transfer {
        Transfer { clock, ..self }
    }

    /// The finished message `buf`, signed when the request was.
    fn seal(&mut self, mut buf: Vec<u8>) -> Vec<u8> {
        if let Some(verified) = self.verified.as_mut()
            && let Err(err) = verified.sign(&mut buf, (self.clock)())
        {
            log::warn!("signing a transfer message of {}: {err}", self.zone);
        }
        buf
    }
}

impl Iterator for Transfer {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        loop {
            let Some(r) = self.records.next() else {
                self.done = true;
                let last = std::mem::replace(&mut self.message, Builder::new(self.id, FLAGS, None));
                return Some(self.seal(last.buf));
            };
            if self.message.len() + record_len(&r) > MESSAGE_BUDGET && self.message.len() > self.empty_len {
                let full = std::mem::replace(&mut self.message, Builder::new(self.id, FLAGS, None));
                self.message.push(Section::Answer, &r);
                return Some(self.seal(full.buf));
            }
            self.message.push(Section::Answer, &r);
        }
    }
}

/// A changeset's records in IXFR order (old SOA, removed, new SOA, added), cloned one at a time.
fn change_records(cs: Arc<Changeset>) -> impl Iterator<Item = Record> + Send {
    let (removed, added) = (cs.removed.len(), cs.added.len());
    (0..removed + added + 2).map(move |i| match i {
        0 => cs.old_soa.clone(),
        i if i <= removed => cs.removed[i - 1].clone(),
        i if i == removed + 1 => cs.new_soa.clone(),
        i => cs.added[i - removed - 2].clone(),
    })
}

/// Every record of `zone` but the SOA: the names shard by shard, then the NSEC3 chain
/// `NSEC3_BATCH` owners at a time.
fn zone_records(zone: Arc<Zone>) -> impl Iterator<Item = Record> + Send {
    let names = {
        let zone = zone.clone();
        (0..zone.nodes.shard_count()).flat_map(move |i| {
            zone.nodes.shard(i).flat_map(|(owner, node)| node_records(owner, node)).collect::<Vec<_>>()
        })
    };
    let mut after: Option<Vec<u8>> = None;
    let nsec3 = std::iter::from_fn(move || {
        let chain = zone.nsec3.as_ref()?;
        let from = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let batch: Vec<_> = chain.records.range::<Vec<u8>, _>((from, Bound::Unbounded)).take(NSEC3_BATCH).collect();
        after = Some(batch.last()?.0.clone());
        Some(batch.into_iter().flat_map(|(_, (owner, node))| node_records(owner, node)).collect::<Vec<_>>())
    })
    .flatten();
    names.chain(nsec3).filter(|r| r.rtype != rtype::SOA)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::message::{self, Message};
    use crate::replication::tsig::{Key, sign_request, verify_request};

    const T: u64 = 1_800_000_000;

    fn at() -> Time48 {
        Time48::from_u64(T)
    }

    /// example.org with `n` names and an NSEC3 chain of `hashed` owners.
    fn zone(n: usize, hashed: usize) -> Arc<Zone> {
        let names: String = (0..n).map(|i| format!("h{i} 60 IN A 10.0.{}.{}\n", i / 256, i % 256)).collect();
        let chain: String =
            (0..hashed).map(|i| format!("{i:032x} 60 IN NSEC3 1 0 0 - {:032x} A\n", (i + 1) % hashed)).collect();
        let extra = format!("@ 60 IN NSEC3PARAM 1 0 0 -\n{names}{chain}");
        Arc::new(crate::replication::test_zone(7, &extra))
    }

    fn key() -> Key {
        Key::new(Name::from_text("xfr-key").unwrap(), super::tsig::Algorithm::Sha256, &[7; 32], Vec::new()).unwrap()
    }

    /// The request a secondary signs at `T`, and the server's verified sequence for it.
    fn request(zone: &Name, qtype: u16) -> (Vec<u8>, tsig::Verified) {
        let mut req = Builder::new(42, 0, Some((zone, qtype))).buf;
        sign_request(&mut req, &key(), at()).unwrap();
        let peer = "192.0.2.1".parse().unwrap();
        let verified = verify_request(&req, &[key()], peer, at()).ok().expect("verifies");
        (req, verified)
    }

    fn answers(msgs: &[Vec<u8>]) -> Vec<Record> {
        let parsed: Vec<Message> = msgs.iter().map(|m| message::parse(m).expect("parses")).collect();
        parsed.iter().flat_map(|m| m.answer.iter().filter(|r| r.rtype != rtype::TSIG).map(|r| r.record())).collect()
    }

    /// Every record once between two SOAs, messages within the budget, the NSEC3 chain taken in
    /// batches; and signed, each message exactly as signing the whole list one by one (what the
    /// old code did) signs it, which a secondary's verifier accepts.
    #[test]
    fn an_axfr_streams_every_record_signed_message_by_message() {
        let z = zone(3000, 2 * NSEC3_BATCH + 5);
        assert_eq!(z.nsec3.as_ref().map(|c| c.records.len()), Some(2 * NSEC3_BATCH + 5), "a chain of 3 batches");
        let plain: Vec<Vec<u8>> = Transfer::new(42, rtype::AXFR, z.clone(), None, None, None).collect();
        assert!(plain.len() > 3, "{} messages", plain.len());
        assert!(plain.iter().all(|m| m.len() <= MESSAGE_BUDGET + 512));
        let records = answers(&plain);
        let soa = z.soa_record();
        assert_eq!((records.first(), records.last()), (Some(&soa), Some(&soa)));
        let mut body = records[1..records.len() - 1].to_vec();
        body.sort();
        assert_eq!(body, z.records(), "every record but the SOA, once");

        let (req, verified) = request(&z.origin, rtype::AXFR);
        let streamed: Vec<Vec<u8>> =
            Transfer::new(42, rtype::AXFR, z.clone(), None, None, Some(verified)).clocked(at).collect();
        let (_, mut one_by_one) = request(&z.origin, rtype::AXFR);
        let signed: Vec<Vec<u8>> = plain
            .iter()
            .map(|m| {
                let mut m = m.clone();
                one_by_one.sign(&mut m, at()).unwrap();
                m
            })
            .collect();
        assert_eq!(streamed, signed);
        let mut again = Builder::new(42, 0, Some((&z.origin, rtype::AXFR))).buf;
        let mut client = sign_request(&mut again, &key(), at()).unwrap();
        assert_eq!(again, req, "one request, one MAC: the client checks the answers to it");
        for m in &streamed {
            client.verify(m, at()).unwrap();
        }
        client.finish().unwrap();
    }

    #[test]
    fn an_ixfr_streams_the_chain_the_whole_zone_or_the_soa() {
        let z1 = crate::replication::test_zone(1, "www 60 IN A 192.0.2.1\n");
        let z2 = crate::replication::test_zone(2, "www 60 IN A 192.0.2.2\n");
        let z3 = Arc::new(crate::replication::test_zone(3, "www 60 IN A 192.0.2.3\nmx 60 IN MX 1 www\n"));
        let chain = vec![Arc::new(Changeset::between(&z1, &z2)), Arc::new(Changeset::between(&z2, &z3))];
        let ixfr = |serial, chain| Transfer::new(9, rtype::IXFR, z3.clone(), Some(serial), chain, None);

        let t = ixfr(1, Some(chain.clone()));
        assert_eq!(t.kind, Kind::Incremental);
        let soa = z3.soa_record();
        let mut want = vec![soa.clone()];
        for cs in &chain {
            want.push(cs.old_soa.clone());
            want.extend(cs.removed.iter().cloned());
            want.push(cs.new_soa.clone());
            want.extend(cs.added.iter().cloned());
        }
        want.push(soa.clone());
        assert_eq!(answers(&t.collect::<Vec<_>>()), want);

        let t = ixfr(3, None);
        assert_eq!(t.kind, Kind::UpToDate);
        assert_eq!(answers(&t.collect::<Vec<_>>()), vec![soa.clone()]);

        let t = ixfr(0, None);
        assert_eq!(t.kind, Kind::WholeZone, "older than the history");
        let records = answers(&t.collect::<Vec<_>>());
        assert_eq!(records.len(), z3.records().len() + 2);
    }
}
