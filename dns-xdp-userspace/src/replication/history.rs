//! A zone's change history, which IXFR is served from: the journal's changes when the zone is
//! persisted (`--journal`), else the newest changes kept in memory. Both are bounded by
//! `--journal-max-size` bytes of changes, and both drop their oldest changes the same way once past
//! it (down to half), so a secondary further behind than the history reaches gets the whole zone
//! (RFC 1995 section 4). Changes are shared (`Arc`) with the transfers sending them.

use std::sync::Arc;

use super::journal::{self, Changeset};
use super::persist::{PersistError, Store};

pub enum History {
    /// Persisted: the journal's changes (persist.rs compacts it).
    Stored(Store),
    /// Not persisted: the newest changes, in memory only.
    Memory(Tail),
}

/// Changes in memory, oldest first, bounded like a journal.
pub struct Tail {
    changes: Vec<Arc<Changeset>>,
    bytes: u64,
    max_size: u64,
}

impl Tail {
    pub fn new(max_size: u64) -> Tail {
        Tail { changes: Vec::new(), bytes: 0, max_size }
    }

    /// Adds the newest change; past the size cap, keeps only the newest changes that fit in half
    /// of it (dropping in batches, as journal compaction does, so each change is moved about once).
    fn push(&mut self, change: Arc<Changeset>) {
        self.bytes += change.encoded_len();
        self.changes.push(change);
        if self.bytes > self.max_size {
            let keep = journal::fitting(self.changes.iter().rev().map(|c| c.encoded_len()), self.max_size / 2);
            let cut = self.changes.len() - keep;
            self.bytes -= self.changes.drain(..cut).map(|c| c.encoded_len()).sum::<u64>();
        }
    }
}

impl History {
    pub fn changes(&self) -> &[Arc<Changeset>] {
        match self {
            History::Stored(store) => &store.journal.changes,
            History::Memory(tail) => &tail.changes,
        }
    }

    /// Records `change` as the newest (on disk and fsynced when persisted).
    pub fn record(&mut self, change: Arc<Changeset>) -> Result<(), PersistError> {
        match self {
            History::Stored(store) => {
                store.journal.append(change).map_err(|e| PersistError::Io(store.journal.path().to_path_buf(), e))
            }
            History::Memory(tail) => {
                tail.push(change);
                Ok(())
            }
        }
    }

    /// Takes the newest change back off (its publish failed).
    pub fn unrecord_last(&mut self) {
        match self {
            History::Stored(store) => {
                if let Err(err) = store.journal.rollback_last() {
                    log::error!(
                        "{}: rolling back an unpublished change: {err}; refusing writes until restart",
                        store.journal.path().display()
                    );
                }
            }
            History::Memory(tail) => {
                if let Some(c) = tail.changes.pop() {
                    tail.bytes -= c.encoded_len();
                }
            }
        }
    }

    /// Forgets every change (an AXFR brought a version they do not lead to). A persisted history
    /// is emptied by `Store::compact` once the new snapshot is written.
    pub fn forget(&mut self) {
        if let History::Memory(tail) = self {
            tail.changes.clear();
            tail.bytes = 0;
        }
    }
}

/// Changes leading from `serial` to `current`, when the history reaches back that far. A newer
/// change may follow them: a write is recorded before it is served, and a transfer of the
/// served version must not fall back to the whole zone meanwhile.
pub fn chain_from(changes: &[Arc<Changeset>], serial: u32, current: u32) -> Option<Vec<Arc<Changeset>>> {
    let start = changes.iter().rposition(|c| c.from_serial() == serial)?;
    let len = changes[start..].iter().position(|c| c.to_serial() == current)? + 1;
    let chain = &changes[start..start + len];
    chain.windows(2).all(|w| w[0].to_serial() == w[1].from_serial()).then(|| chain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::test_zone as zone;

    fn change(from: u32) -> Arc<Changeset> {
        let at = |s: u32| zone(s, &format!("www 60 IN A 192.0.2.{}\n", s % 250));
        Arc::new(Changeset::between(&at(from), &at(from + 1)))
    }

    /// The old in-memory history of a primary without `--journal` grew with every write; now it
    /// stays under the cap, keeps the newest changes, and a chain from past its start is gone
    /// (the transfer falls back to the whole zone).
    #[test]
    fn memory_history_is_bounded_by_size() {
        let size = change(1).encoded_len();
        let mut h = History::Memory(Tail::new(20 * size));
        for serial in 1..=100 {
            h.record(change(serial)).unwrap();
            let History::Memory(tail) = &h else { unreachable!() };
            assert!(tail.bytes <= 20 * size, "{} bytes after {serial} changes", tail.bytes);
            assert_eq!(tail.bytes, tail.changes.iter().map(|c| c.encoded_len()).sum::<u64>());
        }
        let changes = h.changes();
        assert!((10..=20).contains(&changes.len()), "{} changes kept", changes.len());
        assert_eq!(changes.last().unwrap().to_serial(), 101, "the newest stay");
        assert_eq!(chain_from(changes, 95, 101).unwrap().len(), 6);
        assert!(chain_from(changes, 50, 101).is_none(), "older than the history: whole zone");
        h.unrecord_last();
        assert_eq!(h.changes().last().unwrap().to_serial(), 100);
    }

    #[test]
    fn chains_must_link_and_reach_the_current_serial() {
        let changes = vec![change(1), change(2), change(3)];
        assert_eq!(chain_from(&changes, 2, 4).unwrap().len(), 2);
        assert!(chain_from(&changes, 2, 5).is_none(), "does not reach the served serial");
        // The old code gave the whole zone while a newer write was recorded but not served yet.
        assert_eq!(chain_from(&changes, 1, 3).unwrap().len(), 2, "a change after the served serial");
        assert!(chain_from(&changes, 7, 4).is_none());
        let gap = vec![change(1), change(3)];
        assert!(chain_from(&gap, 1, 4).is_none(), "a gap");
    }
}
