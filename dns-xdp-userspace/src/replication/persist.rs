//! What a node keeps on disk (`--journal DIR`) besides its zone files, per zone: a snapshot (the
//! whole zone at some serial: one journal record whose changeset adds every record) and the
//! journal of changes (journal.rs). A primary replays its journal over the zone file or the
//! snapshot, whichever is newer; a secondary over its snapshot, so that after a restart it serves
//! its persisted serial at once and catches up by IXFR instead of reloading the zone by AXFR.
//!
//! Files: a primary's `<zone>.journal` (API changes) and `<zone>.snapshot`; a secondary's
//! `<zone>.secondary.journal` (IXFR changes) and `<zone>.secondary.snapshot`.
//!
//! Compaction bounds a journal at `--journal-max-size` bytes (Knot's `journal-max-usage`, BIND's
//! `max-journal-size`): past it, the newest version becomes the snapshot (written beside the old
//! one, fsynced, renamed, directory fsynced), then the journal is rewritten with only its newest
//! changes, up to half the size: the tail IXFR is served from (older serials get the whole zone,
//! RFC 1995 section 4). An AXFR on a secondary is the same with an empty tail. A crash at any step
//! replays to the same zone: before the snapshot's rename, the old snapshot and the whole journal;
//! after it, a snapshot at the newest serial, and no journal change starts there (serials only
//! grow), so replay applies none, whether the journal was rewritten yet or not.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use dns_xdp_common::dns::rtype;

use super::journal::{self, Changeset, Journal};
use crate::name::Name;
use crate::zone::{Zone, serial_newer, zone_from_records};

/// Whose files: a primary's journal of API changes, or a secondary's of transferred ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

/// A zone's snapshot and journal.
pub struct Store {
    snapshot: PathBuf,
    pub journal: Journal,
    max_size: u64,
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

fn paths(dir: &Path, origin: &Name, role: Role) -> (PathBuf, PathBuf) {
    let base = journal::path_for(dir, origin);
    match role {
        Role::Primary => (base.with_extension("snapshot"), base),
        Role::Secondary => (base.with_extension("secondary.snapshot"), base.with_extension("secondary.journal")),
    }
}

impl Store {
    /// Opens the store of `origin` in `dir`: its journal (a torn tail cut off) and its snapshot,
    /// `None` when none was written yet. The caller replays the journal over its base version.
    pub fn open(dir: &Path, origin: &Name, role: Role, max_size: u64) -> Result<(Store, Option<Zone>), PersistError> {
        let (snapshot, journal_path) = paths(dir, origin, role);
        let (journal, replay) = Journal::open(&journal_path).map_err(|e| PersistError::Io(journal_path.clone(), e))?;
        if replay.truncated > 0 {
            log::warn!(
                "{}: cut a torn tail of {} bytes (a write that was never acknowledged)",
                journal_path.display(),
                replay.truncated
            );
        }
        let store = Store { snapshot, journal, max_size };
        let zone = match std::fs::read(&store.snapshot) {
            Ok(bytes) => Some(decode_snapshot(&bytes, &store.snapshot)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(PersistError::Io(store.snapshot.clone(), e)),
        };
        Ok((store, zone))
    }

    /// The version to serve after a restart: the journal replayed over the snapshot, or over the
    /// zone `file` when its serial is newer (the operator replaced the zone since; SIGHUP keeps
    /// the same rule). Also how many changes applied; `None` with neither a snapshot nor a file.
    pub fn restore(&self, snapshot: Option<Zone>, file: Option<&Zone>) -> Option<(Zone, usize)> {
        let base = match (snapshot, file) {
            (Some(snap), Some(file)) if !serial_newer(snap.serial, file.serial) => Zone::clone(file),
            (Some(snap), _) => snap,
            (None, file) => Zone::clone(file?),
        };
        Some(self.journal.replay(base))
    }

    pub fn snapshot_path(&self) -> &Path {
        &self.snapshot
    }

    /// Whether the journal has grown past its size cap: time to `compact`.
    pub fn compaction_due(&self) -> bool {
        self.journal.len() > self.max_size
    }

    /// After `write_snapshot` of the version at `serial`: rewrites the journal with the newest
    /// changes that fit in half the size cap, when they lead to `serial` (IXFR keeps serving
    /// them); with none when they do not.
    pub fn compact(&mut self, serial: u32) -> Result<(), PersistError> {
        let leads = self.journal.changes.last().is_some_and(|c| c.to_serial() == serial);
        let keep = if leads { self.journal.newest_within(self.max_size / 2) } else { 0 };
        self.journal.keep_newest(keep).map_err(|e| PersistError::Io(self.journal.path().to_path_buf(), e))
    }
}

/// Writes `zone` as the snapshot at `path`: beside the old one, fsynced, renamed over it, the
/// directory fsynced. Needs no lock: callers run it before `Store::compact`.
pub fn write_snapshot(path: &Path, zone: &Zone) -> Result<(), PersistError> {
    let io = |e| PersistError::Io(path.to_path_buf(), e);
    journal::write_beside(path, |f| f.write_all(&encode_snapshot(zone))).map_err(io)?;
    journal::install(path).map_err(io)
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
    use crate::config::DEFAULT_JOURNAL_MAX_SIZE;

    use crate::replication::journal::Fault;
    use crate::replication::test_zone as zone;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnsxdp-persist-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn origin() -> Name {
        Name::from_text("example.org").unwrap()
    }

    /// Serial `serial` of a zone whose every version changes `www` (and adds `bulk` TXT records).
    fn version(serial: u32, bulk: usize) -> Zone {
        let extra: String = (0..bulk).map(|i| format!("t{i} 60 IN TXT \"{serial}\"\n")).collect();
        zone(serial, &format!("www 60 IN A 192.0.2.{}\n{extra}", serial % 250))
    }

    /// What a restart serves: the store reopened and restored as `Replication::new` does.
    fn restart(dir: &Path, role: Role, max: u64, file: Option<&Zone>) -> (Store, Zone) {
        let (store, snapshot) = Store::open(dir, &origin(), role, max).unwrap();
        let (zone, _) = store.restore(snapshot, file).expect("something to restore");
        (store, zone)
    }

    #[test]
    fn snapshot_plus_journal_restores_the_last_serial() {
        let dir = scratch("restore");
        let (z1, z2, z3) = (version(1, 0), version(2, 0), version(3, 1));
        {
            let (mut store, none) = Store::open(&dir, &origin(), Role::Secondary, DEFAULT_JOURNAL_MAX_SIZE).unwrap();
            assert!(none.is_none(), "nothing persisted yet");
            write_snapshot(store.snapshot_path(), &z1).unwrap();
            store.compact(1).unwrap();
            store.journal.append(Changeset::between(&z1, &z2)).unwrap();
            store.journal.append(Changeset::between(&z2, &z3)).unwrap();
        }
        let (store, got) = restart(&dir, Role::Secondary, DEFAULT_JOURNAL_MAX_SIZE, None);
        assert_eq!((got.serial, got.records()), (3, z3.records()));
        assert_eq!(store.journal.changes.len(), 2);
        drop(store);
        // An AXFR replaces the snapshot and empties the journal: its changes do not lead to 9.
        let z9 = zone(9, "other 60 IN TXT \"x\"\n");
        let (mut store, _) = Store::open(&dir, &origin(), Role::Secondary, DEFAULT_JOURNAL_MAX_SIZE).unwrap();
        write_snapshot(store.snapshot_path(), &z9).unwrap();
        store.compact(9).unwrap();
        drop(store);
        let (store, got) = restart(&dir, Role::Secondary, DEFAULT_JOURNAL_MAX_SIZE, None);
        assert_eq!(got.records(), z9.records());
        assert!(store.journal.changes.is_empty());
        assert!(!journal::beside(store.snapshot_path()).exists(), "temp file renamed away");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn crash_leftovers_are_harmless_and_corruption_is_reported() {
        let dir = scratch("crash");
        let (z1, z2, z5) = (version(1, 0), version(2, 0), version(5, 0));
        let (mut store, _) = Store::open(&dir, &origin(), Role::Secondary, DEFAULT_JOURNAL_MAX_SIZE).unwrap();
        write_snapshot(store.snapshot_path(), &z1).unwrap();
        store.journal.append(Changeset::between(&z1, &z2)).unwrap();
        // Crash after an AXFR's snapshot rename but before the journal was emptied: the old
        // changes (from serial 1) do not start at 5 and are skipped.
        let snapshot = store.snapshot_path().to_path_buf();
        write_snapshot(&snapshot, &z5).unwrap();
        // And the temp file of an interrupted later snapshot.
        std::fs::write(journal::beside(&snapshot), b"half").unwrap();
        drop(store);
        let (_, got) = restart(&dir, Role::Secondary, DEFAULT_JOURNAL_MAX_SIZE, None);
        assert_eq!(got.records(), z5.records());
        // A snapshot that does not pass its CRC is an error (the caller falls back to AXFR).
        let mut bytes = std::fs::read(&snapshot).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&snapshot, &bytes).unwrap();
        let opened = Store::open(&dir, &origin(), Role::Secondary, DEFAULT_JOURNAL_MAX_SIZE);
        assert!(matches!(opened, Err(PersistError::Corrupt(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The old primary journal grew with every write. Now, past the cap, the newest version is
    /// snapshotted and the journal keeps a tail of at most half the cap, which still serves IXFR
    /// and replays to the newest version over the snapshot.
    #[test]
    fn compaction_bounds_the_journal_and_keeps_a_tail() {
        let dir = scratch("compact");
        let max = 8 * 1024;
        let file = version(1, 0);
        let (mut store, _) = Store::open(&dir, &origin(), Role::Primary, max).unwrap();
        let mut prev = file.clone();
        let mut compactions = 0;
        for serial in 2..=300 {
            let next = version(serial, serial as usize % 3);
            store.journal.append(Changeset::between(&prev, &next)).unwrap();
            if store.compaction_due() {
                write_snapshot(store.snapshot_path(), &next).unwrap();
                store.compact(serial).unwrap();
                compactions += 1;
                let tail = store.journal.len();
                assert!(tail > 0 && tail <= max / 2, "tail of {tail} bytes");
                assert_eq!(std::fs::metadata(store.journal.path()).unwrap().len(), tail);
            }
            assert!(store.journal.len() <= max + next.records().len() as u64 * 64, "bounded");
            prev = next;
        }
        assert!(compactions > 3, "{compactions} compactions");
        let changes = &store.journal.changes;
        let oldest = changes[0].from_serial();
        assert!(oldest > 200, "only the tail is kept: from {oldest}");
        assert!(crate::replication::history::chain_from(changes, oldest, 300).is_some(), "IXFR from the tail");
        drop(store);
        let (_, got) = restart(&dir, Role::Primary, max, Some(&file));
        assert_eq!((got.serial, got.records()), (300, prev.records()));
        // A zone file with a newer serial than the snapshot wins, as on SIGHUP.
        let newer = version(1000, 0);
        let (_, got) = restart(&dir, Role::Primary, max, Some(&newer));
        assert_eq!(got.records(), newer.records());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A crash at any step of a compaction replays to the newest acknowledged version, and a
    /// step that failed without a crash leaves a journal that takes further changes.
    #[test]
    fn a_crash_at_any_step_of_compaction_loses_nothing() {
        #[derive(Debug, Clone, Copy)]
        enum Step {
            SnapshotWrittenNotRenamed,
            SnapshotRenamed,
            TailWrittenNotRenamed,
            Done,
        }
        let max = 4096;
        for step in [Step::SnapshotWrittenNotRenamed, Step::SnapshotRenamed, Step::TailWrittenNotRenamed, Step::Done] {
            let dir = scratch(&format!("step-{step:?}"));
            let file = version(1, 0);
            let (mut store, _) = Store::open(&dir, &origin(), Role::Primary, max).unwrap();
            let mut prev = file.clone();
            let mut serial = 1;
            while !store.compaction_due() {
                serial += 1;
                let next = version(serial, 2);
                store.journal.append(Changeset::between(&prev, &next)).unwrap();
                prev = next;
            }
            let before = store.journal.len();
            let path = store.snapshot_path().to_path_buf();
            match step {
                Step::SnapshotWrittenNotRenamed => {
                    journal::write_beside(&path, |f| f.write_all(&encode_snapshot(&prev))).unwrap();
                }
                Step::SnapshotRenamed => write_snapshot(&path, &prev).unwrap(),
                Step::TailWrittenNotRenamed => {
                    write_snapshot(&path, &prev).unwrap();
                    store.journal.fault = Some(Fault::BeforeRename);
                    assert!(store.compact(serial).is_err());
                    assert_eq!(store.journal.len(), before, "the old journal stays in use");
                }
                Step::Done => {
                    write_snapshot(&path, &prev).unwrap();
                    store.compact(serial).unwrap();
                    assert!(store.journal.len() < before);
                }
            }
            // The process goes on: one more acknowledged change.
            serial += 1;
            let next = version(serial, 2);
            store.journal.append(Changeset::between(&prev, &next)).unwrap();
            drop(store);
            let (_, got) = restart(&dir, Role::Primary, max, Some(&file));
            assert_eq!((got.serial, got.records()), (serial, next.records()), "{step:?}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
