//! Answer interning: one id per distinct answer, shared by every name that serves it, found by
//! a content key. Positive answers are keyed by their bytes and never change under an id;
//! answers carrying their zone's SOA serial (serials.rs) are keyed by their bytes without it,
//! so a new serial keeps their ids.
//!
//! May call: serials.rs, ids.rs, kernel/maps.rs (to write a new answer before anything refers
//! to it, and to delete a freed one), the zones.

use std::hash::{BuildHasher as _, Hasher as _};

use dns_xdp_common::{RESPONSE_CLASS_SHIFT, RESPONSE_CLASSES, RESPONSE_PASS, ResponseValue, VALUE_FLAG_PASS};
use foldhash::HashMap;

use super::StoreError;
use super::ids::IdPool;
use super::serials::{Carried, Serial, Serials};
use crate::kernel::MapsError;
use crate::kernel::maps::{Kind, Maps};
use crate::name::Name;
use crate::zone::ZoneSet;

/// One interned answer: its content key (`Answers::key`; two words rather than a u128, whose
/// 16-byte alignment would pad every entry) and how many record slots point at it.
#[derive(Clone, Copy, Debug, Default)]
struct Meta {
    key: [u64; 2],
    refs: u32,
    live: bool,
}

/// Answers' metadata in fixed chunks: growing never copies what is there (a vector of a million
/// would double into a new 48 MB block on the first answer past its capacity, stalling that
/// update) and wastes at most one chunk.
#[derive(Default)]
struct Chunks {
    chunks: Vec<Box<[Meta]>>,
}

impl Chunks {
    const SHIFT: u32 = 12;

    fn get(&self, i: usize) -> Option<&Meta> {
        self.chunks.get(i >> Self::SHIFT).map(|c| &c[i & ((1 << Self::SHIFT) - 1)])
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Meta> {
        self.chunks.get_mut(i >> Self::SHIFT).map(|c| &mut c[i & ((1 << Self::SHIFT) - 1)])
    }

    /// Entry `i`, adding chunks up to it.
    fn make(&mut self, i: usize) -> &mut Meta {
        while self.chunks.len() <= i >> Self::SHIFT {
            self.chunks.push(vec![Meta::default(); 1 << Self::SHIFT].into_boxed_slice());
        }
        self.get_mut(i).expect("chunk just added")
    }

    fn iter(&self) -> impl Iterator<Item = &Meta> {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

/// The interned answers by id: one chunked vector per size class, indexed by the id's sequence
/// number (ids are handed out in order, freed ones again after a quarantine: ids.rs), so a
/// lookup is an index, not a hash.
/// `by_key` finds a live answer's id from its content key: a table of bare ids whose hash and
/// equality read the key from `classes` (4 bytes a slot rather than a map's 24: at a million
/// answers that is 40 MB).
struct Answers {
    classes: [Chunks; RESPONSE_CLASSES.len()],
    by_key: hashbrown::HashTable<u32>,
    live: usize,
    /// The content keys' SipHash key, drawn per process.
    hash_key: (u64, u64),
}

impl Answers {
    fn new() -> Self {
        let random = || std::collections::hash_map::RandomState::new().build_hasher().finish();
        Answers { classes: Default::default(), by_key: Default::default(), live: 0, hash_key: (random(), random()) }
    }

    /// An id's size class and sequence number.
    fn at(id: u32) -> (usize, usize) {
        ((id >> RESPONSE_CLASS_SHIFT) as usize, (id & ((1 << RESPONSE_CLASS_SHIFT) - 1)) as usize)
    }

    fn get(&self, id: &u32) -> Option<&Meta> {
        let (class, seq) = Self::at(*id);
        self.classes.get(class)?.get(seq).filter(|m| m.live)
    }

    fn get_mut(&mut self, id: &u32) -> Option<&mut Meta> {
        let (class, seq) = Self::at(*id);
        self.classes.get_mut(class)?.get_mut(seq).filter(|m| m.live)
    }

    /// The content key of `v`: its bytes, or for an answer carrying its zone's serial, its
    /// zone and its bytes without the serial.
    fn key(&self, v: &ResponseValue, carried: Option<&Carried>) -> [u64; 2] {
        use siphasher::sip128::Hasher128 as _;
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(self.hash_key.0, self.hash_key.1);
        let (kind, zone): (&[u8], &[u8]) = match carried {
            Some(c) => (b"neg", c.zone.as_wire()),
            None => (b"pos", &[]),
        };
        h.write(kind);
        h.write(zone);
        for word in [v.flags, v.ancount, v.nscount, v.arcount, v.data_len, v.value_flags] {
            h.write_u16(word);
        }
        h.write_u32(v.rrl_key);
        let data = &v.data[..usize::from(v.data_len)];
        match carried {
            Some(c) => {
                h.write(&data[..c.at]);
                h.write(&data[c.at + 4..]);
            }
            None => h.write(data),
        }
        let h = h.finish128();
        [h.h1, h.h2]
    }

    /// The live answer with content key `key` (hashed by its first word: the key is already a
    /// keyed 128-bit hash of the content).
    fn find(&self, key: &[u64; 2]) -> Option<u32> {
        self.by_key.find(key[0], |&id| self.get(&id).is_some_and(|m| m.key == *key)).copied()
    }

    /// Adds answer `id` (not live) with content key `key` (no live answer has it).
    fn insert(&mut self, id: u32, key: [u64; 2]) {
        let (class, seq) = Self::at(id);
        let meta = self.classes[class].make(seq);
        debug_assert!(!meta.live, "a live answer id is not handed out again");
        *meta = Meta { key, refs: 0, live: true };
        self.live += 1;
        let Answers { classes, by_key, .. } = self;
        let hash = |&id: &u32| {
            let (class, seq) = Self::at(id);
            classes[class].get(seq).map_or(0, |m| m.key[0])
        };
        by_key.insert_unique(key[0], id, hash);
    }

    fn remove(&mut self, id: &u32) -> Option<Meta> {
        let hash = self.get(id)?.key[0];
        if let Ok(entry) = self.by_key.find_entry(hash, |other| other == id) {
            entry.remove();
        }
        let meta = self.get_mut(id)?;
        meta.live = false;
        let meta = *meta;
        self.live -= 1;
        Some(meta)
    }

    fn len(&self) -> usize {
        self.live
    }

    /// Ids of the live answers nothing points at.
    fn unused(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for (class, v) in self.classes.iter().enumerate() {
            for (seq, m) in v.iter().enumerate() {
                if m.live && m.refs == 0 {
                    out.push(((class as u32) << RESPONSE_CLASS_SHIFT) | seq as u32);
                }
            }
        }
        out
    }
}

/// What interning did during one update: the answers it created (freed again at the commit if
/// nothing references them), and the zones (`Serials` index) whose answers now carry a new
/// serial, with that serial.
#[derive(Default)]
pub(super) struct Interned {
    pub(super) created: Vec<u32>,
    pub(super) new_serials: HashMap<u32, u32>,
}

/// The interned answers and their ids.
pub(super) struct Interner {
    answers: Answers,
    ids: IdPool,
}

impl Interner {
    pub(super) fn new() -> Self {
        Interner { answers: Answers::new(), ids: IdPool::default() }
    }

    /// Distinct answers installed.
    pub(super) fn len(&self) -> usize {
        self.answers.len()
    }

    /// How many record slots point at answer `id`; `None` if it is not installed.
    pub(super) fn refs(&self, id: u32) -> Option<u32> {
        self.answers.get(&id).map(|m| m.refs)
    }

    /// Adds `delta` to the references to `id`; true if none are left.
    pub(super) fn reference(&mut self, id: u32, delta: i64) -> bool {
        let Some(meta) = self.answers.get_mut(&id) else { return false };
        meta.refs = (i64::from(meta.refs) + delta).max(0) as u32;
        meta.refs == 0
    }

    /// Ids of the answers nothing points at.
    pub(super) fn unused(&self) -> Vec<u32> {
        self.answers.unused()
    }

    /// The id serving `value` (a rendered answer of `name`, which it was rendered for),
    /// creating it (and writing it to the kernel: nothing refers to a new id yet) if need be.
    /// An answer carrying a SOA serial of no zone of `zones` is left to the daemon.
    pub(super) fn intern(
        &mut self,
        serials: &mut Serials,
        maps: &mut Maps,
        zones: &ZoneSet,
        name: &Name,
        value: &ResponseValue,
        interned: &mut Interned,
    ) -> Result<u32, StoreError> {
        if value.value_flags & VALUE_FLAG_PASS != 0 {
            return Ok(RESPONSE_PASS);
        }
        let carried = match Serial::of(zones, name, value) {
            Serial::None => None,
            Serial::Carried(c) => Some(c),
            Serial::Foreign => return Ok(RESPONSE_PASS),
        };
        let key = self.answers.key(value, carried.as_ref());
        if let Some(id) = self.answers.find(&key) {
            if let Some(c) = &carried {
                serials.note_serial(id, c.serial, &mut interned.new_serials);
            }
            return Ok(id);
        }
        let class = Kind::Responses.class_of(usize::from(value.data_len)) as u32;
        let seq = self.ids.take(class as usize, std::time::Instant::now());
        if seq >= 1 << RESPONSE_CLASS_SHIFT {
            return Err(StoreError::IdsExhausted(class));
        }
        let id = (class << RESPONSE_CLASS_SHIFT) | seq;
        let negative = match &carried {
            Some(c) => Some(serials.slot(c, value, maps)?),
            None => None,
        };
        maps.put_response(id, negative.as_ref().map_or(value, |(slotted, _)| slotted))
            .map_err(MapsError::call("writing an RESPONSES map (is it full? see --answers-capacity)"))?;
        self.answers.insert(id, key);
        if let Some((_, negative)) = negative {
            serials.insert(id, negative);
        }
        interned.created.push(id);
        Ok(id)
    }

    /// Removes answer `id` from the kernel and from here; its id rests before it is used again.
    pub(super) fn free(&mut self, id: u32, serials: &mut Serials, maps: &mut Maps) -> Result<(), StoreError> {
        maps.del_response(id).map_err(MapsError::call("removing from an RESPONSES map"))?;
        if self.answers.remove(&id).is_some() {
            let (class, seq) = Answers::at(id);
            self.ids.give(class, seq as u32, std::time::Instant::now());
        }
        serials.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_by_key_until_removed() {
        let mut answers = Answers::new();
        let id = |class: u32, seq: u32| (class << RESPONSE_CLASS_SHIFT) | seq;
        for seq in 1..10_000u32 {
            answers.insert(id(seq % 5, seq), [u64::from(seq) * 0x9e37_79b9, u64::from(seq)]);
        }
        for seq in (1..10_000u32).filter(|s| s % 4 == 0) {
            assert!(answers.remove(&id(seq % 5, seq)).is_some());
        }
        assert!(answers.remove(&id(0, 4)).is_none(), "already gone");
        for seq in 1..10_000u32 {
            let found = answers.find(&[u64::from(seq) * 0x9e37_79b9, u64::from(seq)]);
            assert_eq!(found, (seq % 4 != 0).then_some(id(seq % 5, seq)), "seq {seq}");
        }
        assert_eq!(answers.find(&[0x9e37_79b9, 2]), None, "the second word must match too");
        assert_eq!(answers.len(), 9999 - 2499);
    }
}
