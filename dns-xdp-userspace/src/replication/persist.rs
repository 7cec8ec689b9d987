//! What a secondary keeps on disk (`--journal DIR`), so that after a restart it serves its last
//! transferred serial at once and catches up by IXFR instead of reloading the zone by AXFR.
//!
//! Two files per zone: `<zone>.secondary.snapshot`, the whole zone at some serial (one journal
//! record whose changeset adds every record, written to a temp file, fsynced and renamed over the
//! old one), and `<zone>.secondary.journal`, the IXFR changesets applied since (journal.rs, fsynced
//! per transfer). An AXFR writes a new snapshot and empties the journal; so does a journal that
//! reaches [`COMPACT_AFTER`] changes. A crash between the two leaves a journal whose changes do not
//! start at the snapshot's serial: replay skips them.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use dns_xdp_common::dns::rtype;

use super::journal::{self, Changeset, Journal};
use crate::name::Name;
use crate::zone::{Zone, zone_from_records};

/// Journal length at which the zone is snapshotted again: replay stays short, and the disk holds
/// about as many changes as a secondary keeps in memory for IXFR.
pub const COMPACT_AFTER: usize = super::secondary::MEMORY_HISTORY;

/// A secondary zone's snapshot and journal.
pub struct Store {
    snapshot: PathBuf,
    pub journal: Journal,
}

/// Why the persisted state was not usable.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: not an intact snapshot")]
    Corrupt(PathBuf),
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
}

fn paths(dir: &Path, origin: &Name) -> (PathBuf, PathBuf) {
    let base = journal::path_for(dir, origin);
    (base.with_extension("secondary.snapshot"), base.with_extension("secondary.journal"))
}

impl Store {
    /// Opens the store of `origin` in `dir` and rebuilds the persisted version: the snapshot plus
    /// every journal change that applies in turn. `None` when nothing was persisted yet.
    pub fn open(dir: &Path, origin: &Name) -> Result<(Store, Option<Zone>), PersistError> {
        let (snapshot, journal_path) = paths(dir, origin);
        let (journal, replay) = Journal::open(&journal_path).map_err(|e| PersistError::Io(journal_path.clone(), e))?;
        if replay.truncated > 0 {
            log::warn!("{}: cut a torn tail of {} bytes", journal_path.display(), replay.truncated);
        }
        let store = Store { snapshot, journal };
        let zone = match std::fs::read(&store.snapshot) {
            Ok(bytes) => {
                let base = decode_snapshot(&bytes, &store.snapshot)?;
                Some(store.journal.replay(base).0)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(PersistError::Io(store.snapshot.clone(), e)),
        };
        Ok((store, zone))
    }

    /// Records a whole zone (after an AXFR, or to compact): snapshot first, then an empty journal.
    pub fn save_full(&mut self, zone: &Zone) -> Result<(), PersistError> {
        let io = |e| PersistError::Io(self.snapshot.clone(), e);
        let tmp = self.snapshot.with_extension("snapshot.tmp");
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&encode_snapshot(zone)).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.snapshot).map_err(io)?;
        // The rename is durable only once the directory is.
        if let Some(dir) = self.snapshot.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.journal.reset().map_err(|e| PersistError::Io(self.journal.path().to_path_buf(), e))
    }

    /// Records the changes an IXFR applied; `after` is the zone they lead to (snapshotted instead
    /// when the journal is long).
    pub fn append(&mut self, changes: &[Changeset], after: &Zone) -> Result<(), PersistError> {
        if self.journal.changes.len() + changes.len() >= COMPACT_AFTER {
            return self.save_full(after);
        }
        for cs in changes {
            self.journal.append(cs.clone()).map_err(|e| PersistError::Io(self.journal.path().to_path_buf(), e))?;
        }
        Ok(())
    }
}

/// A zone as one journal record: the changeset from nothing (SOA to SOA) adding every record.
fn encode_snapshot(zone: &Zone) -> Vec<u8> {
    let soa = zone.soa_record();
    let added = zone.records().into_iter().filter(|r| r.rtype != rtype::SOA).collect();
    journal::record_bytes(&Changeset { old_soa: soa.clone(), removed: Vec::new(), new_soa: soa, added })
}

fn decode_snapshot(bytes: &[u8], path: &Path) -> Result<Zone, PersistError> {
    let (cs, len) = journal::read_record(bytes).ok_or_else(|| PersistError::Corrupt(path.to_path_buf()))?;
    if len != bytes.len() {
        return Err(PersistError::Corrupt(path.to_path_buf()));
    }
    let mut records = cs.added;
    records.push(cs.new_soa);
    zone_from_records(&path.display().to_string(), records).map_err(|d| {
        PersistError::Invalid(path.to_path_buf(), d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::replication::test_zone as zone;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnsxdp-persist-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn snapshot_plus_journal_restores_the_last_serial() {
        let dir = scratch("restore");
        let origin = Name::from_text("example.org").unwrap();
        let (z1, z2, z3) =
            (zone(1, ""), zone(2, "www 60 IN A 192.0.2.2\n"), zone(3, "www 60 IN A 192.0.2.3\nmail 60 IN MX 10 www\n"));
        {
            let (mut store, none) = Store::open(&dir, &origin).unwrap();
            assert!(none.is_none(), "nothing persisted yet");
            store.save_full(&z1).unwrap();
            store.append(&[Changeset::between(&z1, &z2)], &z2).unwrap();
            store.append(&[Changeset::between(&z2, &z3)], &z3).unwrap();
        }
        let (store, got) = Store::open(&dir, &origin).unwrap();
        let got = got.expect("persisted zone");
        assert_eq!((got.serial, got.records()), (3, z3.records()));
        assert_eq!(store.journal.changes.len(), 2);
        drop(store);
        // An AXFR replaces the snapshot and empties the journal.
        let z9 = zone(9, "other 60 IN TXT \"x\"\n");
        let (mut store, _) = Store::open(&dir, &origin).unwrap();
        store.save_full(&z9).unwrap();
        drop(store);
        let (store, got) = Store::open(&dir, &origin).unwrap();
        assert_eq!(got.unwrap().records(), z9.records());
        assert!(store.journal.changes.is_empty());
        assert!(!dir.join("example.org.secondary.snapshot.tmp").exists(), "temp file renamed away");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn crash_leftovers_are_harmless_and_corruption_is_reported() {
        let dir = scratch("crash");
        let origin = Name::from_text("example.org").unwrap();
        let (z1, z2, z5) = (zone(1, ""), zone(2, "www 60 IN A 192.0.2.2\n"), zone(5, "www 60 IN A 192.0.2.5\n"));
        let (mut store, _) = Store::open(&dir, &origin).unwrap();
        store.save_full(&z1).unwrap();
        store.append(&[Changeset::between(&z1, &z2)], &z2).unwrap();
        // Crash after the new snapshot's rename but before the journal reset: the old changes
        // (from serial 1) do not start at 5 and are skipped.
        let (snapshot, _) = paths(&dir, &origin);
        std::fs::write(&snapshot, encode_snapshot(&z5)).unwrap();
        // And a temp file of an interrupted later snapshot.
        std::fs::write(snapshot.with_extension("snapshot.tmp"), b"half").unwrap();
        drop(store);
        let (_, got) = Store::open(&dir, &origin).unwrap();
        assert_eq!(got.unwrap().records(), z5.records());
        // A snapshot that does not pass its CRC is an error (the caller falls back to AXFR).
        let mut bytes = std::fs::read(&snapshot).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&snapshot, &bytes).unwrap();
        assert!(matches!(Store::open(&dir, &origin), Err(PersistError::Corrupt(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_long_journal_is_folded_into_the_snapshot() {
        let dir = scratch("compact");
        let origin = Name::from_text("example.org").unwrap();
        let (mut store, _) = Store::open(&dir, &origin).unwrap();
        let mut prev = zone(1, "");
        store.save_full(&prev).unwrap();
        for serial in 2..=(COMPACT_AFTER as u32 + 5) {
            let next = zone(serial, &format!("www 60 IN A 192.0.2.{}\n", serial % 250));
            store.append(&[Changeset::between(&prev, &next)], &next).unwrap();
            prev = next;
        }
        assert!(store.journal.changes.len() < COMPACT_AFTER, "compacted: {}", store.journal.changes.len());
        drop(store);
        let (_, got) = Store::open(&dir, &origin).unwrap();
        assert_eq!(got.unwrap().records(), prev.records());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
