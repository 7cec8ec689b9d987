//! The durable journal of a zone's changes: one append-only file per zone in `--journal DIR`, one
//! record per serial change, each fsynced before the change is acknowledged. On start a snapshot
//! (persist.rs) or the zone file plus the journal give the last acknowledged version; IXFR is
//! served from the changes it holds.
//!
//! Record layout (big-endian): magic `DXJ1`, payload length u32, CRC-32 of the payload u32, then
//! the payload: the changeset in IXFR order (old SOA, deleted records, new SOA, added records).
//! A crash mid-append leaves a torn tail: a short header, a short payload or a CRC mismatch. Replay
//! truncates the file there; that change was never acknowledged (the fsync had not returned).
//!
//! A failed append (a full disk, an I/O error in write or fsync) is cut back off the file at once,
//! so a later append never lands after torn bytes that replay would stop at; if even the cut
//! fails, the journal refuses writes until a restart (whose replay cuts the tail). A change whose
//! publish failed after its fsync is rolled back the same way (`rollback_last`) before the error
//! is answered, so a later change with the same serial is not shadowed on replay. Creating the
//! file fsyncs the directory, as a rename or a new file is durable only once its directory is.
//!
//! Compaction (persist.rs) keeps the file bounded: once a snapshot holds the newest version,
//! `keep_newest` rewrites the file with only its newest records (a new file written beside it,
//! fsynced and renamed over it), so a crash at any step leaves a file that replays to the same zone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dns_xdp_common::dns::rtype;

use crate::name::{Name, wire_name_len};
use crate::zone::{Diagnostic, Record, Zone, soa_serial, zone_from_records};

const MAGIC: &[u8; 4] = b"DXJ1";
const HEADER: usize = 12;
/// A payload larger than this is corruption, not a change (a whole zone is far smaller).
const MAX_PAYLOAD: u32 = 256 << 20;

/// One serial change, as IXFR carries it (RFC 1995 section 4).
/// Why a changeset could not be applied to a version of its zone.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("changeset from serial {from} does not apply to serial {serial}")]
    Serial { from: u32, serial: u32 },
    /// The zone the change makes breaks the zone rules.
    #[error("{}", .0.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
}

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
    pub fn apply(&self, zone: &Zone) -> Result<Zone, ApplyError> {
        if zone.serial != self.from_serial() {
            return Err(ApplyError::Serial { from: self.from_serial(), serial: zone.serial });
        }
        // One pass with hashed sets: records x changes comparisons made a large IXFR quadratic.
        // A record is its owner, type and RDATA (the TTL is an attribute of the RRset).
        let key = |r: &Record| (r.owner.clone(), r.rtype, r.rdata.clone());
        let gone: std::collections::HashSet<_> = self.removed.iter().chain(&self.added).map(key).collect();
        let mut records = zone.records();
        records.retain(|r| !gone.contains(&key(r)));
        let mut seen = std::collections::HashSet::with_capacity(self.added.len());
        records.extend(self.added.iter().filter(|r| seen.insert(key(r))).cloned());
        records.push(self.new_soa.clone());
        let source = format!("changeset {}->{}", self.from_serial(), self.to_serial());
        zone_from_records(&source, records).map_err(ApplyError::Invalid)
    }

    /// Bytes of this change as a journal record: what `--journal-max-size` counts, on disk and in
    /// memory alike.
    pub fn encoded_len(&self) -> u64 {
        let records = [&self.old_soa, &self.new_soa].into_iter().chain(&self.removed).chain(&self.added);
        let body: usize = records.map(|r| r.owner.as_wire().len() + 8 + r.rdata.len()).sum();
        (HEADER + 4 * 4 + body) as u64
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
    /// Every change recorded, oldest first (shared with the transfers serving them).
    pub changes: Vec<Arc<Changeset>>,
    /// Where each of `changes` starts in the file, and the length of the intact records.
    starts: Vec<u64>,
    len: u64,
    /// Why the file's tail is unknown (a failed append could not be cut back): writes refused.
    broken: Option<String>,
    /// A fault the next append runs into (tests).
    #[cfg(test)]
    pub(crate) fault: Option<Fault>,
}

/// Injected failures (tests): an append whose write stops after this many bytes or whose fsync
/// fails, or a `keep_newest` that stops after writing its new file, before the rename.
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    Write(usize),
    Sync,
    BeforeRename,
}

/// fsyncs `dir`: a file created or renamed in it survives a crash only once this returns.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Where a new version of `path` is written before `install` renames it over `path`.
pub(crate) fn beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes a new version of `path` beside it (`beside`), filled by `fill` and fsynced; a leftover
/// of an earlier attempt is replaced. The handle stays open for appends once `install` ran.
pub(crate) fn write_beside(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> std::io::Result<File> {
    let tmp = beside(path);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = OpenOptions::new().read(true).append(true).create_new(true).open(&tmp)?;
    fill(&mut file)?;
    file.sync_all()?;
    Ok(file)
}

/// Renames the version `write_beside` made over `path`, durably: after a crash the directory holds
/// the old file or the new one, never a mix.
pub(crate) fn install(path: &Path) -> std::io::Result<()> {
    std::fs::rename(beside(path), path)?;
    sync_dir(path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// What replay found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub records: usize,
    /// Bytes cut off a torn tail.
    pub truncated: u64,
}

/// The journal file of the zone at `origin` in `dir`. Labels are joined with dots, and every
/// byte other than a letter, digit, `-` or `_` is written `%HH`, so a label holding `/`, `.` or
/// `..` cannot leave `dir` or name another zone's file (ordinary names keep their plain names).
pub fn path_for(dir: &Path, origin: &Name) -> PathBuf {
    let wire = origin.as_wire();
    let mut stem = String::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at).filter(|&&l| l > 0) {
        if !stem.is_empty() {
            stem.push('.');
        }
        for &b in &wire[at + 1..at + 1 + len as usize] {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                stem.push(char::from(b));
            } else {
                stem.push_str(&format!("%{b:02X}"));
            }
        }
        at += 1 + len as usize;
    }
    dir.join(format!("{}.journal", if stem.is_empty() { "root" } else { &stem }))
}

impl Journal {
    /// Opens (or creates) the journal, reading every intact record and cutting off a torn tail.
    pub fn open(path: &Path) -> std::io::Result<(Journal, Replay)> {
        let existed = path.try_exists()?;
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        if !existed && let Some(dir) = path.parent() {
            sync_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (mut changes, mut starts) = (Vec::new(), Vec::new());
        let mut at = 0usize;
        while at < bytes.len() {
            let Some(cs) = read_record(&bytes[at..]) else { break };
            changes.push(Arc::new(cs.0));
            starts.push(at as u64);
            at += cs.1;
        }
        let truncated = (bytes.len() - at) as u64;
        if truncated > 0 {
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        let replay = Replay { records: changes.len(), truncated };
        let journal = Journal {
            path: path.to_path_buf(),
            file,
            changes,
            starts,
            len: at as u64,
            broken: None,
            #[cfg(test)]
            fault: None,
        };
        Ok((journal, replay))
    }

    /// Appends `change` and waits until it is on disk. On failure nothing of it stays in the
    /// file (or, when it cannot be cut off, the journal refuses every later append).
    pub fn append(&mut self, change: impl Into<Arc<Changeset>>) -> std::io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(std::io::Error::other(format!("refusing writes until restart: {why}")));
        }
        let change = change.into();
        let rec = record_bytes(&change);
        let start = self.len;
        if let Err(err) = self.write_and_sync(&rec) {
            if let Err(cut) = self.cut_to(start) {
                self.broken = Some(format!("a failed append ({err}) could not be cut off: {cut}"));
                log::error!(
                    "{}: {}; refusing writes until restart",
                    self.path.display(),
                    self.broken.as_deref().unwrap_or_default()
                );
            }
            return Err(err);
        }
        self.len = start + rec.len() as u64;
        self.starts.push(start);
        self.changes.push(change);
        Ok(())
    }

    fn write_and_sync(&mut self, rec: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        match self.fault.take() {
            Some(Fault::Write(n)) => {
                self.file.write_all(&rec[..n.min(rec.len())])?;
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            Some(Fault::Sync) => {
                self.file.write_all(rec)?;
                return Err(std::io::Error::from_raw_os_error(libc::EIO));
            }
            Some(Fault::BeforeRename) | None => {}
        }
        self.file.write_all(rec)?;
        self.file.sync_data()
    }

    /// Cuts the file back to `len` bytes, durably.
    fn cut_to(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()
    }

    /// Takes the newest change back off the journal (its publish failed after the fsync): cut
    /// from the file and fsynced before the caller answers the error.
    pub fn rollback_last(&mut self) -> std::io::Result<()> {
        let Some(&start) = self.starts.last() else { return Ok(()) };
        if let Err(err) = self.cut_to(start) {
            self.broken =
                Some(format!("rolling back serial {} failed: {err}", self.changes.last().map_or(0, |c| c.to_serial())));
            return Err(err);
        }
        self.len = start;
        self.starts.pop();
        self.changes.pop();
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of intact records in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many of the newest changes fit in `budget` bytes of records.
    pub fn newest_within(&self, budget: u64) -> usize {
        let ends = self.starts.iter().skip(1).copied().chain([self.len]);
        let sizes: Vec<u64> = self.starts.iter().zip(ends).map(|(start, end)| end - start).collect();
        fitting(sizes.into_iter().rev(), budget)
    }

    /// Rewrites the file with only its newest `keep` changes: the caller made a snapshot holding
    /// the others durable first. The new file is written beside the old one, fsynced and renamed
    /// over it, so a crash leaves the old file or the new one, and the snapshot replays the same
    /// over either. On failure the old file and its changes stay as they were.
    pub fn keep_newest(&mut self, keep: usize) -> std::io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(std::io::Error::other(format!("refusing writes until restart: {why}")));
        }
        let cut = self.changes.len().saturating_sub(keep);
        if cut == 0 {
            return Ok(());
        }
        let from = self.starts.get(cut).copied().unwrap_or(self.len);
        let mut tail = self.file.try_clone()?;
        tail.seek(SeekFrom::Start(from))?;
        let file = write_beside(&self.path, |f| std::io::copy(&mut tail.take(self.len - from), f).map(drop))?;
        #[cfg(test)]
        if let Some(Fault::BeforeRename) = self.fault.take() {
            return Err(std::io::Error::other("injected: stopped before the rename"));
        }
        install(&self.path)?;
        self.file = file;
        self.len -= from;
        self.starts.drain(..cut);
        self.starts.iter_mut().for_each(|s| *s -= from);
        self.changes.drain(..cut);
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

/// How many of the leading sizes (newest change first) add up to at most `budget` bytes.
pub(crate) fn fitting(newest_first: impl Iterator<Item = u64>, budget: u64) -> usize {
    let mut total = 0;
    newest_first
        .take_while(|size| {
            total += size;
            total <= budget
        })
        .count()
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
    use crate::zone::soa_with_serial;

    use crate::replication::test_zone as zone;

    #[test]
    fn rrset_changes_equal_the_whole_zone_diff() {
        let old = zone(1, "www 60 IN A 192.0.2.2\nwww 60 IN A 192.0.2.3\nmx 60 IN MX 10 ns1\n");
        let new = zone(2, "www 60 IN A 192.0.2.2\nwww 60 IN A 192.0.2.4\nnew 90 IN TXT \"x\"\nmx 60 IN MX 10 ns1\n");
        let name = |t: &str| Name::from_text(t).unwrap();
        let pairs = [
            (name("www.example.org"), rtype::A),
            (name("new.example.org"), rtype::TXT),
            (name("gone.example.org"), rtype::A),
        ];
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

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnsxdp-journal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Every fault at every point of an append: the failed change leaves no byte behind, the next
    /// one appends cleanly, and replay returns every acknowledged change (the old code left torn
    /// bytes mid-file, so replay stopped before the next acknowledged change).
    #[test]
    fn a_failed_append_is_cut_off_and_later_changes_survive() {
        let dir = scratch("fault");
        let path = path_for(&dir, &Name::from_text("example.org").unwrap());
        let (z1, z2, z3) = (zone(1, ""), zone(2, "www 60 IN A 192.0.2.2\n"), zone(3, "www 60 IN A 192.0.2.3\n"));
        let second_len = record_bytes(&Changeset::between(&z2, &z3)).len();
        for fault in [Fault::Write(0), Fault::Write(5), Fault::Write(second_len - 1), Fault::Sync] {
            let _ = std::fs::remove_file(&path);
            let (mut j, _) = Journal::open(&path).unwrap();
            j.append(Changeset::between(&z1, &z2)).unwrap();
            let acked = std::fs::read(&path).unwrap();
            j.fault = Some(fault);
            assert!(j.append(Changeset::between(&z2, &z3)).is_err(), "{fault:?}");
            assert_eq!(std::fs::read(&path).unwrap(), acked, "{fault:?}: the failed record is cut off");
            assert_eq!(j.changes.len(), 1);
            j.append(Changeset::between(&z2, &z3)).unwrap();
            drop(j);
            let (j, replay) = Journal::open(&path).unwrap();
            assert_eq!((replay.records, replay.truncated), (2, 0), "{fault:?}");
            assert_eq!(j.replay(zone(1, "")).0.serial, 3, "{fault:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rollback_takes_the_newest_change_off_durably() {
        let dir = scratch("rollback");
        let path = path_for(&dir, &Name::from_text("example.org").unwrap());
        let (z1, z2) = (zone(1, ""), zone(2, "www 60 IN A 192.0.2.2\n"));
        let z2b = zone(2, "www 60 IN A 192.0.2.9\n");
        let (mut j, _) = Journal::open(&path).unwrap();
        j.append(Changeset::between(&z1, &z2)).unwrap();
        j.rollback_last().unwrap();
        j.append(Changeset::between(&z1, &z2b)).unwrap();
        drop(j);
        let (j, replay) = Journal::open(&path).unwrap();
        assert_eq!(replay.records, 1);
        assert_eq!(
            j.replay(zone(1, "")).0.records(),
            z2b.records(),
            "the rolled-back change does not shadow the later one"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A small tmpfs, unmounted on drop (even when the test fails).
    struct Tmpfs(PathBuf);

    impl Tmpfs {
        /// `None` (with the reason printed) where mounting is not possible here; in CI a failure.
        fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
            let dir = scratch(tag);
            let out = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&dir)
                .output();
            match out {
                Ok(o) if o.status.success() => Some(Tmpfs(dir)),
                other => {
                    let why = format!("mount -t tmpfs: {other:?}");
                    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must run the full-disk test: {why}");
                    eprintln!("skipped: cannot mount a tmpfs here ({why})");
                    None
                }
            }
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A real full disk: the change that does not fit fails, nothing of it stays, and once space
    /// is back the next change appends and replays.
    #[test]
    fn a_full_disk_loses_no_acknowledged_change() {
        let Some(fs) = Tmpfs::mount("full", "256k") else { return };
        let path = path_for(&fs.0, &Name::from_text("example.org").unwrap());
        let (z1, z2) = (zone(1, ""), zone(2, "www 60 IN A 192.0.2.2\n"));
        let big: String = (0..3000).map(|i| format!("h{i} 60 IN TXT \"{}\"\n", "x".repeat(40))).collect();
        let z3 = zone(3, &big);
        let (mut j, _) = Journal::open(&path).unwrap();
        j.append(Changeset::between(&z1, &z2)).unwrap();
        let acked = std::fs::read(&path).unwrap();
        // Fill the rest but about 16 KiB: the big change (~200 KiB) does not fit.
        let filler = fs.0.join("filler");
        let mut f = File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        drop(f);
        let full = std::fs::metadata(&filler).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&filler).unwrap().set_len(full - 16 * 1024).unwrap();
        let err = j.append(Changeset::between(&z2, &z3)).expect_err("the disk is full");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), acked, "no torn bytes left behind");
        std::fs::remove_file(&filler).unwrap();
        j.append(Changeset::between(&z2, &z3)).unwrap();
        drop(j);
        let (j, replay) = Journal::open(&path).unwrap();
        assert_eq!((replay.records, replay.truncated), (2, 0));
        assert_eq!(j.replay(zone(1, "")).0.serial, 3);
    }

    #[test]
    fn zone_names_are_escaped_in_paths() {
        let dir = Path::new("/var/lib/dns-xdp");
        let name = |labels: &[&[u8]]| {
            let mut wire = Vec::new();
            for l in labels {
                wire.push(l.len() as u8);
                wire.extend_from_slice(l);
            }
            wire.push(0);
            Name::from_wire(&wire).unwrap()
        };
        assert_eq!(path_for(dir, &Name::from_text("example.org").unwrap()), dir.join("example.org.journal"));
        assert_eq!(path_for(dir, &Name::root()), dir.join("root.journal"));
        for (labels, want) in [
            (vec![b"..".as_slice(), b"org"], "%2E%2E.org.journal"),
            (vec![b"a/b".as_slice(), b"org"], "a%2Fb.org.journal"),
            (vec![b"a.b".as_slice(), b"org"], "a%2Eb.org.journal"),
            (vec![b"%41".as_slice()], "%2541.journal"),
        ] {
            let path = path_for(dir, &name(&labels));
            assert_eq!(path, dir.join(want));
            assert_eq!(path.parent(), Some(dir), "{path:?} stays in the directory");
        }
    }

    /// A large IXFR applies in linear time (the old retain per record was records x changes:
    /// minutes for 100k changes to a 100k-record zone).
    #[test]
    fn a_large_changeset_applies_as_a_set() {
        let n = 50_000;
        let old_text: String = (0..n).map(|i| format!("h{i} 60 IN A 10.{}.{}.1\n", i / 256 % 256, i % 256)).collect();
        let new_text: String = (0..n).map(|i| format!("h{i} 60 IN A 10.{}.{}.2\n", i / 256 % 256, i % 256)).collect();
        let (old, new) = (zone(1, &old_text), zone(2, &new_text));
        let cs = Changeset::between(&old, &new);
        assert_eq!((cs.removed.len(), cs.added.len()), (n, n));
        let started = std::time::Instant::now();
        let applied = cs.apply(&old).unwrap();
        let took = started.elapsed();
        assert_eq!(applied.records(), new.records());
        eprintln!("applied {n} removals and {n} additions in {took:?}");
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }
}
