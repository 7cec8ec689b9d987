//! The durable journal of a primary's zone changes: one append-only file per zone in `--journal
//! DIR`, one record per serial change, each fsynced before the change is acknowledged. On start
//! the zone file plus the journal give the last acknowledged version; IXFR is served from it.
//!
//! Record layout (big-endian): magic `DXJ1`, payload length u32, CRC-32 of the payload u32, then
//! the payload: the changeset in IXFR order (old SOA, deleted records, new SOA, added records).
//! A crash mid-append leaves a torn tail: a short header, a short payload or a CRC mismatch. Replay
//! truncates the file there; that change was never acknowledged (the fsync had not returned).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::name::{Name, wire_name_len};
use crate::zone::{Record, Zone, rtype, soa_serial, zone_from_records};

const MAGIC: &[u8; 4] = b"DXJ1";
const HEADER: usize = 12;
/// A payload larger than this is corruption, not a change (a whole zone is far smaller).
const MAX_PAYLOAD: u32 = 256 << 20;

/// One serial change, as IXFR carries it (RFC 1995 section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changeset {
    pub old_soa: Record,
    pub removed: Vec<Record>,
    pub new_soa: Record,
    pub added: Vec<Record>,
}

impl Changeset {
    pub fn from_serial(&self) -> u32 {
        soa_serial(&self.old_soa.rdata).unwrap_or(0)
    }
    pub fn to_serial(&self) -> u32 {
        soa_serial(&self.new_soa.rdata).unwrap_or(0)
    }

    /// The changeset turning `old` into `new`.
    pub fn between(old: &Zone, new: &Zone) -> Changeset {
        let a: std::collections::BTreeSet<Record> = old.records().into_iter().collect();
        let b: std::collections::BTreeSet<Record> = new.records().into_iter().collect();
        Changeset {
            old_soa: old.soa_record(),
            removed: a.difference(&b).cloned().collect(),
            new_soa: new.soa_record(),
            added: b.difference(&a).cloned().collect(),
        }
    }

    /// The change between two versions that differ only in the RRsets `pairs` (owner, type)
    /// and the SOA: `between` restricted to those, without walking either zone.
    pub fn of_rrsets(old: &Zone, new: &Zone, pairs: &[(Name, u16)]) -> Changeset {
        let mut seen = std::collections::BTreeSet::new();
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for (owner, rtype) in pairs {
            if *rtype == rtype::SOA || !seen.insert((owner.clone(), *rtype)) {
                continue;
            }
            let a = old.rrset_records(owner, *rtype);
            let b = new.rrset_records(owner, *rtype);
            removed.extend(a.iter().filter(|r| !b.contains(r)).cloned());
            added.extend(b.iter().filter(|r| !a.contains(r)).cloned());
        }
        removed.sort();
        added.sort();
        Changeset { old_soa: old.soa_record(), removed, new_soa: new.soa_record(), added }
    }

    /// Applies this change to `zone`, validating the result like a zone file.
    pub fn apply(&self, zone: &Zone) -> Result<Zone, String> {
        if zone.serial != self.from_serial() {
            return Err(format!("changeset from serial {} does not apply to serial {}", self.from_serial(), zone.serial));
        }
        let same = |a: &Record, b: &Record| a.owner == b.owner && a.rtype == b.rtype && a.rdata == b.rdata;
        let mut records = zone.records();
        records.retain(|r| !self.removed.iter().any(|d| same(r, d)));
        for add in &self.added {
            records.retain(|r| !same(r, add));
            records.push(add.clone());
        }
        records.push(self.new_soa.clone());
        let source = format!("changeset {}->{}", self.from_serial(), self.to_serial());
        zone_from_records(&source, records).map_err(|d| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |list: &[Record]| {
            out.extend_from_slice(&(list.len() as u32).to_be_bytes());
            for r in list {
                out.extend_from_slice(r.owner.as_wire());
                out.extend_from_slice(&r.rtype.to_be_bytes());
                out.extend_from_slice(&r.ttl.to_be_bytes());
                out.extend_from_slice(&(r.rdata.len() as u16).to_be_bytes());
                out.extend_from_slice(&r.rdata);
            }
        };
        put(std::slice::from_ref(&self.old_soa));
        put(&self.removed);
        put(std::slice::from_ref(&self.new_soa));
        put(&self.added);
        out
    }

    fn decode(mut b: &[u8]) -> Option<Changeset> {
        let mut lists: Vec<Vec<Record>> = Vec::with_capacity(4);
        for _ in 0..4 {
            let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?);
            b = &b[4..];
            let mut list = Vec::new();
            for _ in 0..n {
                let len = wire_name_len(b)?;
                let owner = Name::from_wire(&b[..len])?;
                let rest = b.get(len..len + 8)?;
                let rt = u16::from_be_bytes(rest[0..2].try_into().ok()?);
                let ttl = u32::from_be_bytes(rest[2..6].try_into().ok()?);
                let rdlen = u16::from_be_bytes(rest[6..8].try_into().ok()?) as usize;
                let rdata = b.get(len + 8..len + 8 + rdlen)?.to_vec();
                b = &b[len + 8 + rdlen..];
                list.push(Record { owner, rtype: rt, ttl, rdata });
            }
            lists.push(list);
        }
        let added = lists.pop()?;
        let new_soa = lists.pop()?.pop().filter(|r| r.rtype == rtype::SOA)?;
        let removed = lists.pop()?;
        let old_soa = lists.pop()?.pop().filter(|r| r.rtype == rtype::SOA)?;
        b.is_empty().then_some(Changeset { old_soa, removed, new_soa, added })
    }
}

pub struct Journal {
    path: PathBuf,
    file: File,
    /// Every change recorded, oldest first.
    pub changes: Vec<Changeset>,
}

/// What replay found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub records: usize,
    /// Bytes cut off a torn tail.
    pub truncated: u64,
}

/// The journal file of the zone at `origin` in `dir`.
pub fn path_for(dir: &Path, origin: &Name) -> PathBuf {
    let text = origin.to_string();
    let stem = text.trim_end_matches('.');
    dir.join(format!("{}.journal", if stem.is_empty() { "root" } else { stem }))
}

impl Journal {
    /// Opens (or creates) the journal, reading every intact record and cutting off a torn tail.
    pub fn open(path: &Path) -> std::io::Result<(Journal, Replay)> {
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut changes = Vec::new();
        let mut at = 0usize;
        while at < bytes.len() {
            let Some(cs) = read_record(&bytes[at..]) else { break };
            changes.push(cs.0);
            at += cs.1;
        }
        let truncated = (bytes.len() - at) as u64;
        if truncated > 0 {
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        let replay = Replay { records: changes.len(), truncated };
        Ok((Journal { path: path.to_path_buf(), file, changes }, replay))
    }

    /// Appends `change` and waits until it is on disk.
    pub fn append(&mut self, change: Changeset) -> std::io::Result<()> {
        self.file.write_all(&record_bytes(&change))?;
        self.file.sync_data()?;
        self.changes.push(change);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Empties the journal (its changes are folded into a snapshot), on disk first.
    pub fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.changes.clear();
        Ok(())
    }

    /// Replays the journal over `zone` (from its zone file): every change that applies in turn.
    /// Changes from before the file's serial are skipped (the file already has them, or was
    /// replaced by the operator); a change that does not validate stops the replay.
    pub fn replay(&self, mut zone: Zone) -> (Zone, usize) {
        let mut applied = 0;
        for cs in &self.changes {
            if cs.from_serial() != zone.serial {
                continue;
            }
            match cs.apply(&zone) {
                Ok(z) => {
                    zone = z;
                    applied += 1;
                }
                Err(err) => {
                    log::error!("{}: replay stopped at serial {}: {err}", self.path.display(), cs.from_serial());
                    break;
                }
            }
        }
        (zone, applied)
    }
}

/// Changes leading from `serial` to the newest one, when the history reaches back that far.
pub fn chain_from(changes: &[Changeset], serial: u32, current: u32) -> Option<Vec<&Changeset>> {
    let start = changes.iter().rposition(|c| c.from_serial() == serial)?;
    let chain: Vec<&Changeset> = changes[start..].iter().collect();
    let linked = chain.windows(2).all(|w| w[0].to_serial() == w[1].from_serial());
    (linked && chain.last()?.to_serial() == current).then_some(chain)
}

/// `change` as one journal record: header (magic, length, CRC-32) and payload.
pub(crate) fn record_bytes(change: &Changeset) -> Vec<u8> {
    let payload = change.encode();
    let mut rec = Vec::with_capacity(HEADER + payload.len());
    rec.extend_from_slice(MAGIC);
    rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    rec.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    rec.extend_from_slice(&payload);
    rec
}

/// One intact record at the start of `b` and its length.
pub(crate) fn read_record(b: &[u8]) -> Option<(Changeset, usize)> {
    if b.len() < HEADER || &b[..4] != MAGIC {
        return None;
    }
    let len = u32::from_be_bytes(b[4..8].try_into().ok()?);
    if len > MAX_PAYLOAD {
        return None;
    }
    let crc = u32::from_be_bytes(b[8..12].try_into().ok()?);
    let payload = b.get(HEADER..HEADER + len as usize)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((Changeset::decode(payload)?, HEADER + len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::{parse_records, soa_with_serial};

    fn zone(serial: u32, extra: &str) -> Zone {
        let origin = Name::from_text("example.org").unwrap();
        let text = format!("@ 300 IN SOA ns1 host {serial} 2 3 4 60\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n{extra}");
        zone_from_records("test", parse_records(&text, &origin).unwrap()).unwrap()
    }

    #[test]
    fn rrset_changes_equal_the_whole_zone_diff() {
        let old = zone(1, "www 60 IN A 192.0.2.2\nwww 60 IN A 192.0.2.3\nmx 60 IN MX 10 ns1\n");
        let new = zone(2, "www 60 IN A 192.0.2.2\nwww 60 IN A 192.0.2.4\nnew 90 IN TXT \"x\"\nmx 60 IN MX 10 ns1\n");
        let name = |t: &str| Name::from_text(t).unwrap();
        let pairs = [(name("www.example.org"), rtype::A), (name("new.example.org"), rtype::TXT), (name("gone.example.org"), rtype::A)];
        let narrow = Changeset::of_rrsets(&old, &new, &pairs);
        let full = Changeset::between(&old, &new);
        assert_eq!((narrow.removed.len(), narrow.added.len()), (1, 2));
        assert_eq!((narrow.removed, narrow.added), (full.removed, full.added));
        assert_eq!((narrow.old_soa, narrow.new_soa), (full.old_soa, full.new_soa));
    }

    #[test]
    fn append_replay_and_torn_tail() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = path_for(&dir, &Name::from_text("example.org").unwrap());
        let (z1, z2, z3) = (zone(1, ""), zone(2, "www 60 IN A 192.0.2.2\n"), zone(3, "www 60 IN A 192.0.2.3\n"));
        {
            let (mut j, replay) = Journal::open(&path).unwrap();
            assert_eq!(replay, Replay::default());
            j.append(Changeset::between(&z1, &z2)).unwrap();
            j.append(Changeset::between(&z2, &z3)).unwrap();
        }
        let (j, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.records, 2);
        let (replayed, n) = j.replay(zone(1, ""));
        assert_eq!((replayed.serial, n), (3, 2));
        assert_eq!(replayed.records(), z3.records());
        assert_eq!(chain_from(&j.changes, 2, 3).unwrap().len(), 1);
        assert!(chain_from(&j.changes, 7, 3).is_none());
        drop(j);
        // A torn tail: half of a third record, then a flipped byte in a fourth's payload.
        let whole = std::fs::read(&path).unwrap();
        let mut torn = whole.clone();
        let third = {
            let mut cs = Changeset::between(&z3, &zone(4, ""));
            cs.new_soa.rdata = soa_with_serial(&cs.new_soa.rdata, 4);
            cs.encode()
        };
        torn.extend_from_slice(MAGIC);
        torn.extend_from_slice(&(third.len() as u32).to_be_bytes());
        torn.extend_from_slice(&crc32fast::hash(&third).to_be_bytes());
        torn.extend_from_slice(&third[..third.len() / 2]);
        std::fs::write(&path, &torn).unwrap();
        let (j, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.records, 2);
        assert_eq!(replay.truncated, (torn.len() - whole.len()) as u64);
        assert_eq!(std::fs::read(&path).unwrap(), whole, "torn tail cut off");
        drop(j);
        let mut bad = whole.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let (j, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.records, 1, "a CRC mismatch ends the journal");
        assert_eq!(j.replay(zone(1, "")).0.serial, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
