//! The records installed, by name: each name's slots (answer ids) and flags as the NAMES maps
//! hold them, in a table sized for millions of names, with the names' bytes in an arena. The
//! kernel's key search (kernel/search.rs) reads them as it reads the maps.
//!
//! May call: names, kernel/search.rs (the view it searches). Writes nothing to the kernel.

use std::hash::BuildHasher as _;

use dns_xdp_common::{RECORD_SLOTS, RESPONSE_PASS, Slot};

use crate::kernel::search::NamesView;
use crate::name::Name;

/// A name's record as installed: its slots (ids resolved) and flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Installed {
    pub(super) slots: Box<[Slot]>,
    pub(super) flags: u16,
    /// Generation of the full compile that last saw the name.
    pub(super) seen: u32,
}

impl Installed {
    pub(super) fn parts(&self) -> usize {
        self.slots.len().div_ceil(RECORD_SLOTS).max(1)
    }
}

/// The installed records by name: the entries in a vector and a table of their indices (4
/// bytes a slot where a map of `(Name, Installed)` spends 40 on every slot, used or not: at a
/// million names the map's half-empty table alone was 80 MB). The names' wire bytes sit in
/// `NameArena` chunks, not a heap block each.
#[derive(Default)]
pub(super) struct Records {
    entries: Vec<(u32, Installed)>,
    names: NameArena,
    by_name: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

/// Names' wire bytes, each behind its length byte, in chunks that never move (growing copies
/// nothing). A removed name's bytes stay until `compact` writes the live ones out afresh.
#[derive(Default)]
struct NameArena {
    chunks: Vec<Vec<u8>>,
    /// Bytes of removed names.
    garbage: usize,
}

impl NameArena {
    const CHUNK: usize = 1 << 16;

    fn get(&self, at: u32) -> &[u8] {
        let chunk = &self.chunks[(at >> 16) as usize];
        let pos = (at & 0xffff) as usize;
        &chunk[pos + 1..pos + 1 + usize::from(chunk[pos])]
    }

    fn push(&mut self, wire: &[u8]) -> u32 {
        let len = u8::try_from(wire.len()).expect("a name is at most 255 bytes");
        if self.chunks.last().is_none_or(|c| c.len() + wire.len() + 1 > Self::CHUNK) {
            assert!(self.chunks.len() < 1 << 16, "name arena full");
            self.chunks.push(Vec::with_capacity(Self::CHUNK));
        }
        let at = ((self.chunks.len() - 1) << 16 | self.chunks.last().expect("just made").len()) as u32;
        let chunk = self.chunks.last_mut().expect("just made");
        chunk.push(len);
        chunk.extend_from_slice(wire);
        at
    }
}

impl Records {
    fn hash(hasher: &foldhash::fast::RandomState, wire: &[u8]) -> u64 {
        hasher.hash_one(wire)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry of the name whose wire bytes are `wire`.
    fn position(&self, wire: &[u8]) -> Option<usize> {
        let hash = Self::hash(&self.hasher, wire);
        self.by_name.find(hash, |&i| self.names.get(self.entries[i as usize].0) == wire).map(|&i| i as usize)
    }

    fn get_wire(&self, wire: &[u8]) -> Option<&Installed> {
        self.position(wire).map(|i| &self.entries[i].1)
    }

    pub(super) fn get(&self, name: &Name) -> Option<&Installed> {
        self.get_wire(name.as_wire())
    }

    pub(super) fn get_mut(&mut self, name: &Name) -> Option<&mut Installed> {
        self.position(name.as_wire()).map(|i| &mut self.entries[i].1)
    }

    pub(super) fn contains_key(&self, name: &Name) -> bool {
        self.position(name.as_wire()).is_some()
    }

    /// Sets `name`'s record.
    pub(super) fn insert(&mut self, name: &Name, rec: Installed) {
        if let Some(i) = self.position(name.as_wire()) {
            self.entries[i].1 = rec;
            return;
        }
        let at = self.names.push(name.as_wire());
        let Records { entries, names, by_name, hasher } = self;
        let index = u32::try_from(entries.len()).expect("fewer than 2^32 names");
        by_name.insert_unique(Self::hash(hasher, name.as_wire()), index, |&i| {
            Self::hash(hasher, names.get(entries[i as usize].0))
        });
        entries.push((at, rec));
    }

    pub(super) fn remove(&mut self, name: &Name) -> Option<Installed> {
        let wire = name.as_wire();
        let Records { entries, names, by_name, hasher } = self;
        let entry = by_name.find_entry(Self::hash(hasher, wire), |&i| names.get(entries[i as usize].0) == wire).ok()?;
        let index = *entry.get() as usize;
        entry.remove();
        // The last entry moves into the hole: repoint its index.
        let last = entries.len() - 1;
        if index != last {
            let moved = Self::hash(hasher, names.get(entries[last].0));
            if let Some(i) = by_name.find_mut(moved, |&i| i as usize == last) {
                *i = index as u32;
            }
        }
        let (_, rec) = entries.swap_remove(index);
        names.garbage += wire.len() + 1;
        self.compact_if_wasteful();
        Some(rec)
    }

    /// Writes the live names into a fresh arena once removed ones take more than half of it.
    fn compact_if_wasteful(&mut self) {
        let total: usize = self.names.chunks.iter().map(Vec::len).sum();
        if self.names.garbage < (1 << 20) || self.names.garbage * 2 < total {
            return;
        }
        let old = std::mem::take(&mut self.names);
        for (at, _) in &mut self.entries {
            *at = self.names.push(old.get(*at));
        }
    }

    /// Every installed name's wire bytes and record.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], &Installed)> {
        self.entries.iter().map(|(at, r)| (self.names.get(*at), r))
    }
}

/// The records as the kernel's key search reads the NAMES maps: a name's parts one after the
/// other, the first `RECORD_SLOTS` slots being part 0.
impl NamesView for Records {
    type Response = u32;

    fn slot(&self, name: &[u8], qtype: u16, variant: u16, part0: bool) -> Option<u32> {
        let rec = self.get_wire(name)?;
        let slots = if part0 { &rec.slots[..rec.slots.len().min(RECORD_SLOTS)] } else { &rec.slots[..] };
        slots.iter().find(|s| s.qtype == qtype && s.variant == variant).map(|s| s.answer)
    }

    fn flags(&self, name: &[u8]) -> u16 {
        self.get_wire(name).map_or(0, |rec| rec.flags)
    }

    fn passes(answer: u32) -> bool {
        answer == RESPONSE_PASS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(n: u32) -> Installed {
        Installed { slots: Box::new([Slot { qtype: 1, variant: 0, answer: n }]), flags: 0, seen: n }
    }

    #[test]
    fn records_find_every_name_after_removals_move_others() {
        let name = |i: u32| {
            Name::from_wire(&[&[format!("n{i}").len() as u8][..], format!("n{i}").as_bytes(), b"\x04test\x00"].concat())
                .unwrap()
        };
        let mut records = Records::default();
        for i in 0..5000 {
            records.insert(&name(i), installed(i));
        }
        records.insert(&name(7), installed(70_007));
        // Removing from the middle moves the last entry into the hole.
        for i in (0..5000).filter(|i| i % 3 == 0) {
            assert_eq!(records.remove(&name(i)).map(|r| r.seen), Some(if i == 7 { 70_007 } else { i }));
        }
        assert!(records.remove(&name(3)).is_none());
        assert_eq!(records.len(), 5000 - 1667);
        for i in 0..5000 {
            let want = (i % 3 != 0).then_some(if i == 7 { 70_007 } else { i });
            assert_eq!(records.get(&name(i)).map(|r| r.seen), want, "name {i}");
        }
        assert_eq!(records.iter().count(), records.len());
        assert!(
            records
                .iter()
                .all(|(wire, rec)| records.get(&Name::from_wire(wire).unwrap()).is_some_and(|r| r.seen == rec.seen))
        );
    }

    #[test]
    fn records_survive_the_name_arena_being_compacted() {
        let name = |i: u32| Name::from_text(&format!("host-{i}.example.test")).unwrap();
        let mut records = Records::default();
        for i in 0..200_000 {
            records.insert(&name(i), installed(i));
        }
        let chunks = records.names.chunks.len();
        for i in (0..200_000).filter(|i| i % 10 != 0) {
            assert!(records.remove(&name(i)).is_some());
        }
        assert!(records.names.chunks.len() < chunks / 2, "the removed names' bytes were given back");
        for i in 0..200_000 {
            assert_eq!(records.get(&name(i)).map(|r| r.seen), (i % 10 == 0).then_some(i), "name {i}");
        }
        records.insert(&name(1), installed(1));
        assert_eq!(records.get(&name(1)).map(|r| r.seen), Some(1));
    }
}
