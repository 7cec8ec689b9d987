//! The kernel's answer store: name records in the NAMES maps, answers in the ANSWERS maps
//! (dns-xdp-common explains the layout), and what the daemon remembers of them so an update
//! writes only the difference.
//!
//! Answers are interned: one id per distinct answer, shared by every name that serves it.
//! Positive answers are keyed by their bytes and never change under an id. Answers carrying the
//! zone's SOA serial (NODATA and NXDOMAIN, and CNAME chains ending in either: the SOA alone in
//! the authority section) are keyed by their bytes *without the serial*. The kernel writes the
//! serial into them from the zone's SERIALS slot at reply time, so a new serial is one map
//! write; zones beyond `SERIAL_SLOTS` get those answers rewritten in place instead.
//!
//! Updates are phased so that every answer a query gets belongs to one version (see `commit`).

use std::collections::HashSet;
use std::hash::{BuildHasher as _, Hasher as _};

/// The store's maps hold an entry per name and per answer: a fast hash, seeded per process.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use anyhow::Context as _;
use aya::maps::{HashMap as BpfHashMap, MapData, MapError};
use dns_xdp_common::dns::{HEADER_LEN, rcode};
use dns_xdp_common::{
    ANSWER_CLASS_SHIFT, ANSWER_CLASSES, ANSWER_PASS, Answer, AnswerValue, KEY_VARIANT_CHILD, MAP_ANSWERS, MAP_NAMES,
    MAP_SERIAL_GEN, MAP_SERIALS, MAX_RECORD_PARTS, NAME_CLASSES, NameKey, NameRecord, QTYPE_DEFAULT,
    RECORD_CHILD_PARTIAL, RECORD_MORE, RECORD_SIGNED, RECORD_SLOTS, SERIAL_SLOTS, SLOT_UNUSED, Slot, VALUE_FLAG_PASS,
    VALUE_FLAG_SIGNED, VALUE_SERIAL_SLOT_SHIFT,
};

use crate::compile::{self, Entries, NameSlots};
use crate::name::Name;
use crate::zone::ZoneSet;

/// How many entries an update wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Diff {
    /// Names whose record was added, changed or removed.
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    /// Answers written (new ones and rewritten shared negatives) and freed.
    pub answers_written: usize,
    pub answers_freed: usize,
}

/// A name's record as installed: its slots (ids resolved) and flags.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Installed {
    slots: Box<[Slot]>,
    flags: u16,
    /// Generation of the full compile that last saw the name.
    seen: u32,
}

impl Installed {
    fn parts(&self) -> usize {
        self.slots.len().div_ceil(RECORD_SLOTS).max(1)
    }
}

/// The installed records by name: the entries in a vector and a table of their indices (4
/// bytes a slot where a map of `(Name, Installed)` spends 40 on every slot, used or not: at a
/// million names the map's half-empty table alone was 80 MB). The names' wire bytes sit in
/// `NameArena` chunks, not a heap block each.
#[derive(Default)]
struct Records {
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

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn position(&self, name: &Name) -> Option<usize> {
        let wire = name.as_wire();
        let hash = Self::hash(&self.hasher, wire);
        self.by_name.find(hash, |&i| self.names.get(self.entries[i as usize].0) == wire).map(|&i| i as usize)
    }

    fn get(&self, name: &Name) -> Option<&Installed> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    fn get_mut(&mut self, name: &Name) -> Option<&mut Installed> {
        self.position(name).map(|i| &mut self.entries[i].1)
    }

    fn contains_key(&self, name: &Name) -> bool {
        self.position(name).is_some()
    }

    /// Sets `name`'s record.
    fn insert(&mut self, name: &Name, rec: Installed) {
        if let Some(i) = self.position(name) {
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

    fn remove(&mut self, name: &Name) -> Option<Installed> {
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
    fn iter(&self) -> impl Iterator<Item = (&[u8], &Installed)> {
        self.entries.iter().map(|(at, r)| (self.names.get(*at), r))
    }
}

/// One interned answer: its content key (`Store::hash`; two words rather than a u128, whose
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
/// number (ids are handed out in order, freed ones again after `ID_QUARANTINE`), so a lookup is
/// an index, not a hash.
/// `by_key` finds a live answer's id from its content key: a table of bare ids whose hash and
/// equality read the key from `classes` (4 bytes a slot rather than a map's 24: at a million
/// answers that is 40 MB).
#[derive(Default)]
struct Answers {
    classes: [Chunks; ANSWER_CLASSES.len()],
    by_key: hashbrown::HashTable<u32>,
    live: usize,
}

impl Answers {
    fn at(id: u32) -> (usize, usize) {
        ((id >> ANSWER_CLASS_SHIFT) as usize, (id & ((1 << ANSWER_CLASS_SHIFT) - 1)) as usize)
    }

    fn get(&self, id: &u32) -> Option<&Meta> {
        let (class, seq) = Self::at(*id);
        self.classes.get(class)?.get(seq).filter(|m| m.live)
    }

    fn get_mut(&mut self, id: &u32) -> Option<&mut Meta> {
        let (class, seq) = Self::at(*id);
        self.classes.get_mut(class)?.get_mut(seq).filter(|m| m.live)
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
                    out.push(((class as u32) << ANSWER_CLASS_SHIFT) | seq as u32);
                }
            }
        }
        out
    }
}

/// An answer carrying its zone's SOA serial: its zone and its bytes (`pack`), to rewrite the
/// serial when its zone has no SERIALS slot.
#[derive(Clone, Debug)]
struct Negative {
    /// Index into `Store::zones`.
    zone: u32,
    bytes: Box<[u8]>,
    /// Offset in the answer's data of the SOA SERIAL.
    serial_at: u16,
}

/// An answer as the store keeps it: the head fields, then the data.
fn pack(v: &AnswerValue) -> Box<[u8]> {
    let mut out = Vec::with_capacity(dns_xdp_common::ANSWER_HEAD_LEN + usize::from(v.data_len));
    for word in [v.flags, v.ancount, v.nscount, v.arcount, v.data_len, v.value_flags, v.data_csum, v.serial_at] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out.extend_from_slice(&v.rrl_key.to_ne_bytes());
    out.extend_from_slice(&v.data[..usize::from(v.data_len)]);
    out.into_boxed_slice()
}

fn unpack(b: &[u8]) -> AnswerValue {
    let w = |i: usize| u16::from_ne_bytes([b[2 * i], b[2 * i + 1]]);
    let mut v = compile::pass_value(0);
    (v.flags, v.ancount, v.nscount, v.arcount, v.data_len, v.value_flags, v.data_csum, v.serial_at) =
        (w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7));
    v.rrl_key = u32::from_ne_bytes(b[16..20].try_into().expect("4 bytes"));
    let data = &b[dns_xdp_common::ANSWER_HEAD_LEN..];
    v.data[..data.len()].copy_from_slice(data);
    v
}

/// Writes queued for one map (`BPF_MAP_UPDATE_BATCH`): keys and values back to back.
#[derive(Default)]
struct Batch {
    keys: Vec<u8>,
    values: Vec<u8>,
    count: u32,
}

/// The types a name's slots give hit entries, each once (its plain and DO slots make one or two
/// entries together): a type's own answer at the name, meta types (ANY and the like, RFC 6895
/// 128..=255) aside. They are rare enough to leave out, and every name has an ANY slot, which
/// would take half the index. Filling and forgetting both go by this.
fn hit_types(slots: &[Slot]) -> impl Iterator<Item = u16> + '_ {
    let hit =
        |s: &Slot| s.variant & KEY_VARIANT_CHILD == 0 && s.qtype != QTYPE_DEFAULT && !(128..=255).contains(&s.qtype);
    slots
        .iter()
        .enumerate()
        .filter(move |&(i, s)| hit(s) && !slots[..i].iter().any(|o| hit(o) && o.qtype == s.qtype))
        .map(|(_, s)| s.qtype)
}

/// Hit entries written at once while staging (`Store::hits_stage`): 8 MiB of them.
const HIT_WRITE_BATCH: usize = 65_536;

/// How long a freed answer id rests before it names another answer. A query that read a
/// record pointing at the id (before the update that dropped it) reads the answer within the
/// same XDP run, microseconds later, under RCU: after this long no such reader is left, so it
/// can never find the id's next answer under an old record.
const ID_QUARANTINE: std::time::Duration = std::time::Duration::from_secs(1);

/// Answer ids' sequence numbers by size class: new ones in order from 1, and freed ones again
/// once `ID_QUARANTINE` has passed since they were freed (ids are map keys and index the
/// answers' metadata: a server that rewrites answers for days would otherwise run out of them
/// and keep the metadata of every answer it ever installed).
struct IdPool {
    next: [u32; ANSWER_CLASSES.len()],
    /// Oldest first, with when each was freed.
    freed: [std::collections::VecDeque<(u32, std::time::Instant)>; ANSWER_CLASSES.len()],
}

impl Default for IdPool {
    fn default() -> Self {
        IdPool { next: [1; ANSWER_CLASSES.len()], freed: Default::default() }
    }
}

impl IdPool {
    fn take(&mut self, class: usize, now: std::time::Instant) -> u32 {
        match self.freed[class].front() {
            Some(&(seq, at)) if now.duration_since(at) >= ID_QUARANTINE => {
                self.freed[class].pop_front();
                seq
            }
            _ => {
                let seq = self.next[class];
                self.next[class] = seq.saturating_add(1);
                seq
            }
        }
    }

    fn give(&mut self, class: usize, seq: u32, now: std::time::Instant) {
        self.freed[class].push_back((seq, now));
    }
}

/// Queued writes flushed together once this many are waiting.
const BATCH_ENTRIES: usize = 8192;

/// The NAMES and ANSWERS maps of one loaded program.
pub struct Maps {
    /// The maps' fds in batch order: the 5 ANSWERS maps, then the 4 NAMES maps.
    fds: [std::os::fd::RawFd; 9],
    /// While batching (`Store` stages an update), writes wait here; answers are flushed
    /// before records, so a record never points at an answer not yet in the kernel.
    batches: Option<Vec<Batch>>,
    queued: usize,
    /// The previous full set of batches, being written on another thread while the next
    /// fills (`flush(true)`): the kernel's share of a large install (half the time at a
    /// million names) runs beside the staging instead of after it. One at a time, in order.
    in_flight: Option<std::thread::JoinHandle<(Vec<Batch>, anyhow::Result<()>)>>,
    n28: BpfHashMap<MapData, NameKey<28>, NameRecord>,
    n60: BpfHashMap<MapData, NameKey<60>, NameRecord>,
    n124: BpfHashMap<MapData, NameKey<124>, NameRecord>,
    n256: BpfHashMap<MapData, NameKey<256>, NameRecord>,
    /// The smallest answers (most of them: A, AAAA): an array indexed by id, which the program
    /// reads without hashing (see `del_answer`).
    a44: aya::maps::Array<MapData, Answer<44>>,
    a108: BpfHashMap<MapData, u32, Answer<108>>,
    a172: BpfHashMap<MapData, u32, Answer<172>>,
    a428: BpfHashMap<MapData, u32, Answer<428>>,
    a1008: BpfHashMap<MapData, u32, AnswerValue>,
    serials: aya::maps::Array<MapData, u32>,
    serial_gen: aya::maps::Array<MapData, u32>,
    /// SERIAL_GEN as last written.
    generation: u32,
}

fn key<const N: usize>(name: &[u8], part: u32) -> NameKey<N> {
    let mut k = NameKey { name: [0; N], part };
    k.name[..name.len()].copy_from_slice(name);
    k
}

fn sized<const N: usize>(v: &AnswerValue) -> Answer<N> {
    let len = usize::from(v.data_len);
    let mut a = Answer {
        flags: v.flags,
        ancount: v.ancount,
        nscount: v.nscount,
        arcount: v.arcount,
        data_len: v.data_len,
        value_flags: v.value_flags,
        data_csum: v.data_csum,
        serial_at: v.serial_at,
        rrl_key: v.rrl_key,
        data: [0; N],
    };
    a.data[..len].copy_from_slice(&v.data[..len]);
    a
}

fn ignore_missing(r: Result<(), MapError>) -> Result<(), MapError> {
    match r {
        Err(MapError::KeyNotFound) => Ok(()),
        r => r,
    }
}

impl Maps {
    /// Takes the maps out of `take` (by name), e.g. `|n| ebpf.take_map(n)`.
    pub fn take(mut take: impl FnMut(&str) -> Option<aya::maps::Map>) -> anyhow::Result<Self> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        let mut fds = [0; 9];
        let serials = aya::maps::Array::try_from(take(MAP_SERIALS).context("no SERIALS map in the eBPF object")?)?;
        let serial_gen =
            aya::maps::Array::try_from(take(MAP_SERIAL_GEN).context("no SERIAL_GEN map in the eBPF object")?)?;
        let mut get = |n: &str| {
            let map = take(n).with_context(|| format!("no {n} map in the eBPF object"))?;
            let (aya::maps::Map::HashMap(data) | aya::maps::Map::Array(data)) = &map else {
                anyhow::bail!("{n} is neither a hash map nor an array")
            };
            // The map's order in `fds`: answers first (the order of MAP_ANSWERS), then names.
            let at = MAP_ANSWERS
                .iter()
                .position(|m| *m == n)
                .or_else(|| MAP_NAMES.iter().position(|m| *m == n).map(|i| 5 + i));
            fds[at.expect("a map of ours")] = data.fd().as_fd().as_raw_fd();
            Ok(map)
        };
        let a44: aya::maps::Array<MapData, Answer<44>> = aya::maps::Array::try_from(get(MAP_ANSWERS[0])?)?;
        let (n28, n60, n124, n256) = (get(MAP_NAMES[0])?, get(MAP_NAMES[1])?, get(MAP_NAMES[2])?, get(MAP_NAMES[3])?);
        let (a108, a172, a428, a1008) =
            (get(MAP_ANSWERS[1])?, get(MAP_ANSWERS[2])?, get(MAP_ANSWERS[3])?, get(MAP_ANSWERS[4])?);
        Ok(Maps {
            batches: None,
            queued: 0,
            in_flight: None,
            n28: BpfHashMap::try_from(n28)?,
            n60: BpfHashMap::try_from(n60)?,
            n124: BpfHashMap::try_from(n124)?,
            n256: BpfHashMap::try_from(n256)?,
            a44,
            a108: BpfHashMap::try_from(a108)?,
            a172: BpfHashMap::try_from(a172)?,
            a428: BpfHashMap::try_from(a428)?,
            a1008: BpfHashMap::try_from(a1008)?,
            serials,
            serial_gen,
            generation: 0,
            fds,
        })
    }

    /// Queues writes from now on, until `flush`.
    fn start_batch(&mut self) {
        if self.batches.is_none() {
            self.batches = Some((0..9).map(|_| Batch::default()).collect());
        }
    }

    /// Queues one write if batching; false if not (the caller writes it directly).
    fn queue<K: aya::Pod, V: aya::Pod>(&mut self, at: usize, key: &K, value: &V) -> bool {
        let Some(batches) = self.batches.as_mut() else { return false };
        let b = &mut batches[at];
        // SAFETY: Pod types are plain bytes without padding.
        unsafe {
            b.keys.extend_from_slice(std::slice::from_raw_parts((key as *const K).cast::<u8>(), size_of::<K>()));
            b.values.extend_from_slice(std::slice::from_raw_parts((value as *const V).cast::<u8>(), size_of::<V>()));
        }
        b.count += 1;
        self.queued += 1;
        true
    }

    fn full(&self) -> bool {
        self.queued >= BATCH_ENTRIES
    }

    /// Writes everything queued, answers before records, one BPF_MAP_UPDATE_BATCH call per
    /// map. If `more`, keeps batching and writes on another thread (after the previous
    /// flush's writes, which it waits for); otherwise it is done when this returns.
    fn flush(&mut self, more: bool) -> anyhow::Result<()> {
        let done = self.wait_in_flight();
        let Some(mut batches) = self.batches.take() else { return done.map(drop) };
        self.queued = 0;
        let spare = done?;
        let fds = self.fds;
        if more {
            self.in_flight = Some(std::thread::spawn(move || {
                let written = write_batches(&fds, &mut batches);
                (batches, written)
            }));
            self.batches = Some(spare.unwrap_or_else(|| (0..9).map(|_| Batch::default()).collect()));
            return Ok(());
        }
        write_batches(&fds, &mut batches)
    }

    /// Waits for the batches being written on another thread; gives them back emptied.
    fn wait_in_flight(&mut self) -> anyhow::Result<Option<Vec<Batch>>> {
        let Some(handle) = self.in_flight.take() else { return Ok(None) };
        let (batches, written) = handle.join().map_err(|_| anyhow::anyhow!("writing the maps panicked"))?;
        written.map(|()| Some(batches))
    }

    fn put_record(&mut self, name: &[u8], part: u32, rec: NameRecord) -> Result<(), MapError> {
        let queued = match name.len() {
            n if n <= NAME_CLASSES[0] => self.queue(5, &key::<28>(name, part), &rec),
            n if n <= NAME_CLASSES[1] => self.queue(6, &key::<60>(name, part), &rec),
            n if n <= NAME_CLASSES[2] => self.queue(7, &key::<124>(name, part), &rec),
            _ => self.queue(8, &key::<256>(name, part), &rec),
        };
        if queued {
            return Ok(());
        }
        match name.len() {
            n if n <= NAME_CLASSES[0] => self.n28.insert(key(name, part), rec, 0),
            n if n <= NAME_CLASSES[1] => self.n60.insert(key(name, part), rec, 0),
            n if n <= NAME_CLASSES[2] => self.n124.insert(key(name, part), rec, 0),
            _ => self.n256.insert(key(name, part), rec, 0),
        }
    }

    fn del_record(&mut self, name: &[u8], part: u32) -> Result<(), MapError> {
        ignore_missing(match name.len() {
            n if n <= NAME_CLASSES[0] => self.n28.remove(&key(name, part)),
            n if n <= NAME_CLASSES[1] => self.n60.remove(&key(name, part)),
            n if n <= NAME_CLASSES[2] => self.n124.remove(&key(name, part)),
            _ => self.n256.remove(&key(name, part)),
        })
    }

    fn put_answer(&mut self, id: u32, v: &AnswerValue) -> Result<(), MapError> {
        let queued = match id >> ANSWER_CLASS_SHIFT {
            0 => self.queue(0, &id, &sized::<44>(v)),
            1 => self.queue(1, &id, &sized::<108>(v)),
            2 => self.queue(2, &id, &sized::<172>(v)),
            3 => self.queue(3, &id, &sized::<428>(v)),
            _ => self.queue(4, &id, v),
        };
        if queued {
            return Ok(());
        }
        match id >> ANSWER_CLASS_SHIFT {
            0 => self.a44.set(id, sized::<44>(v), 0),
            1 => self.a108.insert(id, sized::<108>(v), 0),
            2 => self.a172.insert(id, sized::<172>(v), 0),
            3 => self.a428.insert(id, sized::<428>(v), 0),
            _ => self.a1008.insert(id, *v, 0),
        }
    }

    /// Sets the serial the kernel writes into the answers of SERIALS slot `slot`.
    fn put_serial(&mut self, slot: u32, serial: u32) -> Result<(), MapError> {
        self.serials.set(slot, serial, 0)
    }

    /// Makes SERIAL_GEN odd (serials about to change) or even (done), moving it either way.
    fn set_generation(&mut self, changing: bool) -> Result<(), MapError> {
        self.generation = self.generation.wrapping_add(if (self.generation & 1 == 1) == changing { 2 } else { 1 });
        self.serial_gen.set(0, self.generation, 0)
    }

    fn del_answer(&mut self, id: u32) -> Result<(), MapError> {
        ignore_missing(match id >> ANSWER_CLASS_SHIFT {
            // An array keeps every index: the freed id's element stays as it was, unread (no
            // record points at it), until the id names a new answer, which is written before any
            // record points at it (`IdPool`: not within a second of the free).
            0 => Ok(()),
            1 => self.a108.remove(&id),
            2 => self.a172.remove(&id),
            3 => self.a428.remove(&id),
            _ => self.a1008.remove(&id),
        })
    }
}

/// Writes `batches` (in `Maps::fds` order: answers before records) and empties them.
fn write_batches(fds: &[std::os::fd::RawFd; 9], batches: &mut [Batch]) -> anyhow::Result<()> {
    for (at, b) in batches.iter_mut().enumerate() {
        if b.count == 0 {
            continue;
        }
        update_batch(fds[at], &b.keys, &b.values, b.count).with_context(|| {
            let name = if at < 5 { MAP_ANSWERS[at] } else { MAP_NAMES[at - 5] };
            format!("writing the {name} map (is it full? see --answers-capacity)")
        })?;
        b.keys.clear();
        b.values.clear();
        b.count = 0;
    }
    Ok(())
}

impl Drop for Maps {
    /// A write still in flight uses the maps' fds: it ends before they close.
    fn drop(&mut self) {
        let _ = self.wait_in_flight();
    }
}

/// BPF_MAP_UPDATE_BATCH (Linux 5.6): `count` keys and values, back to back, in one call.
fn update_batch(fd: std::os::fd::RawFd, keys: &[u8], values: &[u8], count: u32) -> std::io::Result<()> {
    /// `union bpf_attr`'s `batch` member.
    #[repr(C)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
    let attr = BatchAttr {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count,
        map_fd: fd as u32,
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: the attr points at `count` keys and values that outlive the call; the kernel
    // reads them and writes back `count` (ignored: an error fails the whole update).
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_MAP_UPDATE_BATCH, &attr as *const BatchAttr, size_of::<BatchAttr>() as u32)
    };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// The size class of an answer with `len` data bytes.
fn class_of(len: usize) -> u32 {
    ANSWER_CLASSES.iter().position(|&n| len <= n).unwrap_or(ANSWER_CLASSES.len() - 1) as u32
}

/// Where the SOA's owner starts and where its SERIAL sits, in an answer whose authority section
/// is the zone's SOA alone and last (NODATA, NXDOMAIN, and a CNAME chain ending in either): no
/// additional records, one authority record, a SOA. `None` for every other answer.
fn negative_soa(v: &AnswerValue) -> Option<(usize, usize)> {
    if v.nscount != 1 || v.arcount != 0 || !matches!(v.flags & 0xf, rcode::NOERROR | rcode::NXDOMAIN) {
        return None;
    }
    let data = &v.data[..usize::from(v.data_len)];
    let mut at = 0;
    for rr in 0..=usize::from(v.ancount) {
        let owner_at = at;
        // The owner: labels, ending with the root or a compression pointer.
        loop {
            let len = *data.get(at)? as usize;
            if len & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += len + 1;
            if len == 0 {
                break;
            }
        }
        let field = |o: usize| Some(u16::from_be_bytes([*data.get(at + o)?, *data.get(at + o + 1)?]));
        let (rtype, rdlen) = (field(0)?, usize::from(field(8)?));
        let rdata_end = at + 10 + rdlen;
        if rr == usize::from(v.ancount) {
            let soa = rtype == dns_xdp_common::dns::rtype::SOA && rdata_end == data.len() && rdlen >= 22;
            return soa.then(|| (owner_at, rdata_end - 20));
        }
        at = rdata_end;
    }
    None
}

/// The name at `at` in an answer's data, compression resolved, lowercase. The answer follows
/// the question of `qname` (the name it was rendered for; the kernel sends it after a question
/// of the same length, so pointers into it stay valid).
fn name_in_answer(v: &AnswerValue, qname: &[u8], mut at: usize) -> Option<Name> {
    let data = &v.data[..usize::from(v.data_len)];
    let data_start = HEADER_LEN + qname.len() + 4;
    let mut in_question = false;
    let mut out = Vec::new();
    // A pointer only goes backwards, but a broken one could loop: bounded.
    for _ in 0..256 {
        let buf = if in_question { qname } else { data };
        let len = usize::from(*buf.get(at)?);
        if len & 0xc0 == 0xc0 {
            let to = ((len & 0x3f) << 8) | usize::from(*buf.get(at + 1)?);
            (in_question, at) = match to {
                t if (HEADER_LEN..HEADER_LEN + qname.len()).contains(&t) => (true, t - HEADER_LEN),
                t if t >= data_start => (false, t - data_start),
                _ => return None,
            };
            continue;
        }
        out.extend_from_slice(buf.get(at..at + len + 1)?);
        if len == 0 {
            return Name::from_wire(&crate::name::lowercase(&out));
        }
        at += len + 1;
    }
    None
}

/// The store and its kernel maps.
pub struct Store {
    maps: Maps,
    records: Records,
    answers: Answers,
    negatives: HashMap<u32, Negative>,
    /// Answers whose last reference went since the last commit (freed there if still unused).
    released: Vec<u32>,
    /// Zones by index (`Negative::zone`, which is also the SERIALS slot below SERIAL_SLOTS), and
    /// each one's serial as its negatives hold it (or its SERIALS slot).
    zones: Vec<(Name, Option<u32>)>,
    zone_ids: HashMap<Name, u32>,
    ids: IdPool,
    /// Bumped by every full compile (`Installed::seen`).
    generation: u32,
    /// Zones with a SERIALS slot: `SERIAL_SLOTS`, fewer in tests of the other path.
    serial_slots: u32,
    hash_key: (u64, u64),
    /// The hit index, kept in step with `records` (hits.rs); None in tests without one.
    hits: Option<crate::hits::HitIndex>,
    /// Hit entries of names written while staging (with their pairs, `HitIndex::entry`), written
    /// in order of place when there are many (`HitIndex::put_all`) and at the end of staging.
    hits_ready: Vec<([u32; 2], dns_xdp_common::HitEntry)>,
    /// Those that name an answer in a batch not yet written: only after it is.
    hits_pending: Vec<([u32; 2], dns_xdp_common::HitEntry)>,
}

/// What one update will write, gathered before anything is written.
#[derive(Default)]
struct Plan {
    /// Names with a new record (`Some`) or none any more (`None`).
    changes: Vec<(Name, Option<Installed>)>,
    /// Zones (`Store::zones` index) whose answers carry a new serial, and that serial.
    new_serials: HashMap<u32, u32>,
    /// Answers this update created (freed again if nothing references them).
    created: Vec<u32>,
    /// New names written while staging (nothing to protect them from).
    added_now: usize,
    /// The hit entries (with their pairs, `HitIndex::entry`) of the names in `changes` with a
    /// new record.
    hits: HashMap<Name, Vec<([u32; 2], dns_xdp_common::HitEntry)>>,
}

impl Store {
    pub fn new(maps: Maps) -> Self {
        let random = || std::collections::hash_map::RandomState::new().build_hasher().finish();
        Store {
            maps,
            records: Records::default(),
            answers: Answers::default(),
            negatives: HashMap::default(),
            released: Vec::new(),
            zones: Vec::new(),
            zone_ids: HashMap::default(),
            ids: IdPool::default(),
            generation: 0,
            serial_slots: SERIAL_SLOTS,
            hash_key: (random(), random()),
            hits: None,
            hits_ready: Vec::new(),
            hits_pending: Vec::new(),
        }
    }

    /// Keeps `hits` in step with the records from now on; before anything is installed.
    pub fn set_hits(&mut self, hits: crate::hits::HitIndex) {
        assert!(self.records.len() == 0, "set_hits before the first install");
        self.hits = Some(hits);
    }

    /// Entries in the hit index.
    pub fn hits_held(&self) -> usize {
        self.hits.as_ref().map_or(0, crate::hits::HitIndex::held)
    }

    /// Empties `name`'s hit entries (its record is about to change or go). Safe at any time:
    /// queries then take the record lookup.
    fn hits_forget(&mut self, name: &Name) {
        let (Some(hits), Some(rec)) = (self.hits.as_mut(), self.records.get(name)) else { return };
        for qtype in hit_types(&rec.slots) {
            hits.remove(name.as_wire(), qtype);
        }
    }

    /// A name's hit entries, with their pairs, into `out` (none without an index, or for a name
    /// too long for it): for each type but the meta types with a slot of its own in `rec`, the
    /// answer `resolve`'s first step gives a query without DO (the plain slot) and with DO (the
    /// DO slot, else the plain one), with the answer itself when it is one of the smallest and
    /// never rewritten under its id (not one carrying a SOA serial, `negatives`). `slots` are
    /// the values `rec` was made from.
    fn hit_entries(
        &self,
        name: &Name,
        rec: &Installed,
        slots: &NameSlots,
        out: &mut Vec<([u32; 2], dns_xdp_common::HitEntry)>,
    ) {
        use dns_xdp_common::{HIT_SERVES_DO, HIT_SERVES_PLAIN, KEY_VARIANT_DO};
        let Some(hits) = self.hits.as_ref() else { return };
        // `own` skips pass markers: those queries take the record lookup, which passes them.
        let own = |qtype: u16, variant: u16| {
            rec.slots
                .iter()
                .find(|s| s.qtype == qtype && s.variant == variant)
                .map(|s| s.answer)
                .filter(|&a| a != ANSWER_PASS)
        };
        let mut put = |qtype: u16, variant: u16, serves: u32, answer: u32| {
            let small = answer >> ANSWER_CLASS_SHIFT == 0 && !self.negatives.contains_key(&answer);
            let value = slots.iter().find(|s| s.0 == qtype && s.1 == variant).map(|s| &s.2);
            out.extend(hits.entry(name.as_wire(), qtype, serves, answer, value.filter(|_| small).map(sized::<44>)));
        };
        for qtype in hit_types(&rec.slots) {
            let plain = own(qtype, 0);
            let dnssec = own(qtype, KEY_VARIANT_DO).map(|a| (a, KEY_VARIANT_DO)).or(plain.map(|a| (a, 0)));
            match (plain, dnssec) {
                (Some(p), Some((d, _))) if p == d => put(qtype, 0, HIT_SERVES_PLAIN | HIT_SERVES_DO, p),
                _ => {
                    if let Some(p) = plain {
                        put(qtype, 0, HIT_SERVES_PLAIN, p);
                    }
                    if let Some((d, variant)) = dnssec {
                        put(qtype, variant, HIT_SERVES_DO, d);
                    }
                }
            }
        }
    }

    /// Queues the hit entries of a name written while staging: those holding their answer are
    /// written in batches in order of place, those naming an id once its answer is written.
    fn hits_stage(&mut self, name: &Name, rec: &Installed, slots: &NameSlots) {
        use dns_xdp_common::HIT_INLINE;
        let mut ready = std::mem::take(&mut self.hits_ready);
        let before = ready.len();
        self.hit_entries(name, rec, slots, &mut ready);
        for i in (before..ready.len()).rev() {
            if ready[i].1.flags & HIT_INLINE == 0 {
                self.hits_pending.push(ready.swap_remove(i));
            }
        }
        if ready.len() >= HIT_WRITE_BATCH
            && let Some(hits) = self.hits.as_mut()
        {
            hits.put_all(&mut ready);
        }
        self.hits_ready = ready;
    }

    /// Writes the queued hit entries, now that every batch is written.
    fn hits_put_pending(&mut self) {
        let (mut ready, mut pending) = (std::mem::take(&mut self.hits_ready), std::mem::take(&mut self.hits_pending));
        if let Some(hits) = self.hits.as_mut() {
            hits.put_all(&mut ready);
            hits.put_all(&mut pending);
        }
    }

    /// Gives only the first `n` zones a SERIALS slot (at most `SERIAL_SLOTS`): the rest get
    /// their answers' serials rewritten in place. Before anything is installed; for tests of
    /// that path, which otherwise needs 4,097 zones.
    pub fn limit_serial_slots(&mut self, n: u32) {
        assert!(self.zones.is_empty(), "limit_serial_slots before the first install");
        self.serial_slots = n.min(SERIAL_SLOTS);
    }

    /// Names with a record installed.
    pub fn names(&self) -> usize {
        self.records.len()
    }

    /// Distinct answers installed.
    pub fn answers(&self) -> usize {
        self.answers.len()
    }

    /// Whether `name` has its own answers installed (not only its existence marker).
    pub fn is_hot(&self, name: &Name) -> bool {
        self.records.get(name).is_some_and(|r| r.slots.iter().any(|s| s.variant & KEY_VARIANT_CHILD == 0))
    }

    fn hash(&self, kind: &[u8], zone: &[u8], v: &AnswerValue, serial_at: Option<usize>) -> [u64; 2] {
        use siphasher::sip128::Hasher128 as _;
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(self.hash_key.0, self.hash_key.1);
        h.write(kind);
        h.write(zone);
        for word in [v.flags, v.ancount, v.nscount, v.arcount, v.data_len, v.value_flags] {
            h.write_u16(word);
        }
        h.write_u32(v.rrl_key);
        let data = &v.data[..usize::from(v.data_len)];
        match serial_at {
            Some(at) => {
                h.write(&data[..at]);
                h.write(&data[at + 4..]);
            }
            None => h.write(data),
        }
        let h = h.finish128();
        [h.h1, h.h2]
    }

    /// The id serving `value` (a rendered answer of a name in `zone`), creating it (and writing
    /// it to the kernel: nothing refers to a new id yet) if need be.
    /// `name` is the name `value` was rendered for. An answer carrying a SOA serial belongs to
    /// the zone that SOA heads (for a DS query at a zone's apex, the parent); one whose SOA heads
    /// no zone of `zones` is left to the daemon. With no zones at all (precompiled test
    /// entries), answers are kept exactly as rendered.
    fn intern(&mut self, zones: &ZoneSet, name: &Name, value: &AnswerValue, plan: &mut Plan) -> anyhow::Result<u32> {
        if value.value_flags & VALUE_FLAG_PASS != 0 {
            return Ok(ANSWER_PASS);
        }
        let soa = if zones.is_empty() { None } else { negative_soa(value) };
        let zone = match soa {
            Some((owner_at, _)) => {
                match name_in_answer(value, name.as_wire(), owner_at).filter(|o| zones.get(o).is_some()) {
                    Some(origin) => Some(origin),
                    None => return Ok(ANSWER_PASS),
                }
            }
            None => None,
        };
        let zone = zone.as_ref();
        let serial_at = soa.map(|(_, at)| at);
        let key = match (zone, serial_at) {
            (Some(zone), Some(at)) => self.hash(b"neg", zone.as_wire(), value, Some(at)),
            _ => self.hash(b"pos", &[], value, None),
        };
        let serial = serial_at.map(|at| u32::from_be_bytes(value.data[at..at + 4].try_into().expect("4 bytes")));
        if let Some(id) = self.answers.find(&key) {
            if let (Some(neg), Some(serial)) = (self.negatives.get(&id), serial)
                && self.zones[neg.zone as usize].1 != Some(serial)
            {
                plan.new_serials.insert(neg.zone, serial);
            }
            return Ok(id);
        }
        let class = class_of(usize::from(value.data_len));
        let seq = self.ids.take(class as usize, std::time::Instant::now());
        anyhow::ensure!(seq < 1 << ANSWER_CLASS_SHIFT, "answer ids of size class {class} exhausted");
        let id = (class << ANSWER_CLASS_SHIFT) | seq;
        // Copied (an AnswerValue is 1 KiB) only to be given its serial slot.
        let mut slotted = None;
        let negative = match (zone, serial_at, serial) {
            (Some(zone), Some(at), Some(serial)) => {
                let zone_id = self.zone_id(zone);
                if self.zones[zone_id as usize].1.is_none() {
                    // The zone's first answer with a serial: nothing reads its slot yet.
                    if zone_id < self.serial_slots {
                        self.maps.put_serial(zone_id, serial).context("writing the SERIALS map")?;
                    }
                    self.zones[zone_id as usize].1 = Some(serial);
                }
                let value = slotted.insert(*value);
                if zone_id < self.serial_slots {
                    value.serial_at = at as u16;
                    value.value_flags |= (zone_id as u16) << VALUE_SERIAL_SLOT_SHIFT;
                }
                Some(Negative { zone: zone_id, bytes: pack(value), serial_at: at as u16 })
            }
            _ => None,
        };
        self.maps
            .put_answer(id, slotted.as_ref().unwrap_or(value))
            .context("writing an ANSWERS map (is it full? see --answers-capacity)")?;
        self.answers.insert(id, key);
        if let Some(neg) = negative {
            self.negatives.insert(id, neg);
        }
        plan.created.push(id);
        Ok(id)
    }

    fn zone_id(&mut self, zone: &Name) -> u32 {
        if let Some(&id) = self.zone_ids.get(zone) {
            return id;
        }
        let id = self.zones.len() as u32;
        self.zones.push((zone.clone(), None));
        self.zone_ids.insert(zone.clone(), id);
        id
    }

    /// A name's record from its compiled slots.
    fn prepare(
        &mut self,
        zones: &ZoneSet,
        name: &Name,
        slots: &NameSlots,
        plan: &mut Plan,
    ) -> anyhow::Result<Installed> {
        let mut flags = 0;
        let mut out = Vec::with_capacity(slots.len());
        for (qtype, variant, value) in slots {
            if *qtype == QTYPE_DEFAULT && *variant == KEY_VARIANT_CHILD && value.value_flags & VALUE_FLAG_SIGNED != 0 {
                flags |= RECORD_SIGNED;
            }
            out.push(Slot { qtype: *qtype, variant: *variant, answer: self.intern(zones, name, value, plan)? });
        }
        // The existence marker leads (the kernel's walk looks for it in part 0 only), then the
        // answers for names below and the type-independent ones: most queries end in part 0.
        out.sort_by_key(|s| {
            let marker = s.qtype == QTYPE_DEFAULT && s.variant == KEY_VARIANT_CHILD;
            (!marker, s.variant & KEY_VARIANT_CHILD == 0, s.qtype != QTYPE_DEFAULT, s.variant, s.qtype)
        });
        // What does not fit is left to the daemon. A type without a slot would fall back to the
        // name's default, so such a name keeps none of its own answers (its queries pass at its
        // marker), and if even the answers below it overflow, RECORD_CHILD_PARTIAL makes a type
        // without a slot there pass too.
        // The kernel's walk reads the answers for names below from part 0 only.
        let below = out.iter().filter(|s| s.variant & KEY_VARIANT_CHILD != 0).count();
        if below > RECORD_SLOTS {
            flags |= RECORD_CHILD_PARTIAL;
        }
        let room = RECORD_SLOTS * MAX_RECORD_PARTS;
        if out.len() > room {
            out.retain(|s| s.variant & KEY_VARIANT_CHILD != 0);
            out.truncate(room);
        }
        Ok(Installed { slots: out.into_boxed_slice(), flags, seen: self.generation })
    }

    /// Makes the maps hold exactly `zones` (every name compiled; names in `cold` keep only
    /// their existence marker and the answers below them, so their own queries pass).
    pub fn install_all(&mut self, zones: &ZoneSet, payload: u16, cold: &dyn Fn(&Name) -> bool) -> anyhow::Result<Diff> {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let mut plan = self.stage_compiled(zones, cold, |each| compile::compile_each(zones, payload, each))?;
        self.plan_removals(&mut plan, generation);
        self.commit(plan, zones)
    }

    /// Names a full compile did not see go.
    fn plan_removals(&self, plan: &mut Plan, generation: u32) {
        let changed: HashSet<&[u8]> = plan.changes.iter().map(|(n, _)| n.as_wire()).collect();
        let gone: Vec<Name> = self
            .records
            .iter()
            .filter(|(wire, rec)| rec.seen != generation && !changed.contains(wire))
            .filter_map(|(wire, _)| Name::from_wire(wire))
            .collect();
        plan.changes.extend(gone.into_iter().map(|n| (n, None)));
    }

    /// Recompiles only `names` (those a change touched) against `zones`.
    pub fn install_names(
        &mut self,
        zones: &ZoneSet,
        payload: u16,
        names: &[Name],
        cold: &dyn Fn(&Name) -> bool,
    ) -> anyhow::Result<Diff> {
        let plan = self.stage_compiled(zones, cold, |each| compile::compile_names(zones, payload, names, each))?;
        self.commit(plan, zones)
    }

    /// Stages every name `compile` hands over (no slots: the name is gone), with the kernel
    /// writes it needs now batched; on failure nothing new stays referenced.
    fn stage_compiled(
        &mut self,
        zones: &ZoneSet,
        cold: &dyn Fn(&Name) -> bool,
        compile: impl FnOnce(&mut dyn FnMut(&Name, NameSlots)),
    ) -> anyhow::Result<Plan> {
        let mut plan = Plan::default();
        let mut failed = None;
        let serials_changed = self.serial_changes(zones);
        self.maps.start_batch();
        compile(&mut |name: &Name, slots: NameSlots| {
            if failed.is_some() {
                return;
            }
            if slots.is_empty() {
                if self.records.contains_key(name) {
                    plan.changes.push((name.clone(), None));
                }
                return;
            }
            let staged = self.stage(zones, name, slots, cold(name), &serials_changed, &mut plan);
            if let Err(e) = staged.and_then(|()| if self.maps.full() { self.maps.flush(true) } else { Ok(()) }) {
                failed = Some(e);
            }
        });
        if let Some(e) = failed.map_or_else(|| self.maps.flush(false).err(), Some) {
            self.abandon(plan);
            return Err(e);
        }
        self.hits_put_pending();
        Ok(plan)
    }

    /// Zones whose serial differs from the one their negatives hold.
    fn serial_changes(&self, zones: &ZoneSet) -> HashSet<Name> {
        zones
            .iter()
            .filter(|z| {
                self.zone_ids.get(&z.origin).is_some_and(|&id| self.zones[id as usize].1.is_some_and(|s| s != z.serial))
            })
            .map(|z| z.origin.clone())
            .collect()
    }

    /// Plans one name's new record. A name new to the store whose zone keeps its negatives
    /// goes in at once (nothing can read a mix), anything else waits for `commit`'s phases.
    fn stage(
        &mut self,
        zones: &ZoneSet,
        name: &Name,
        slots: NameSlots,
        cold: bool,
        serials_changed: &HashSet<Name>,
        plan: &mut Plan,
    ) -> anyhow::Result<()> {
        let slots: NameSlots =
            if cold { slots.into_iter().filter(|s| s.1 & KEY_VARIANT_CHILD != 0).collect() } else { slots };
        let mut rec = self.prepare(zones, name, &slots, plan)?;
        match self.records.get_mut(name) {
            Some(old) if old.slots == rec.slots && old.flags == rec.flags => old.seen = rec.seen,
            Some(_) => {
                self.plan_hits(name, &rec, &slots, plan);
                plan.changes.push((name.clone(), Some(rec)));
            }
            // New, and no serial changes: nothing it serves can mix versions. Otherwise it may
            // use answers whose serial changes (its zone's, or its parent's): wait for those.
            None if serials_changed.is_empty() && plan.new_serials.is_empty() => {
                self.write_record(name, &rec)?;
                self.hits_stage(name, &rec, &slots);
                self.reference(&rec, 1);
                rec.seen = self.generation;
                self.records.insert(name, rec);
                plan.added_now += 1;
            }
            None => {
                self.plan_hits(name, &rec, &slots, plan);
                plan.changes.push((name.clone(), Some(rec)));
            }
        }
        Ok(())
    }

    /// The hit entries of a name whose record `commit` writes.
    fn plan_hits(&self, name: &Name, rec: &Installed, slots: &NameSlots, plan: &mut Plan) {
        let mut entries = Vec::new();
        self.hit_entries(name, rec, slots, &mut entries);
        if !entries.is_empty() {
            plan.hits.insert(name.clone(), entries);
        }
    }

    fn reference(&mut self, rec: &Installed, delta: i64) {
        for s in rec.slots.iter().filter(|s| s.answer != ANSWER_PASS) {
            if let Some(meta) = self.answers.get_mut(&s.answer) {
                meta.refs = (i64::from(meta.refs) + delta).max(0) as u32;
                if meta.refs == 0 {
                    self.released.push(s.answer);
                }
            }
        }
    }

    /// Writes a record's parts, the last first, so part 0 (which readers start from) links
    /// only to parts already written.
    fn write_record(&mut self, name: &Name, rec: &Installed) -> anyhow::Result<()> {
        let parts: Vec<&[Slot]> =
            if rec.slots.is_empty() { vec![&[]] } else { rec.slots.chunks(RECORD_SLOTS).collect() };
        for (i, chunk) in parts.iter().enumerate().rev() {
            let unused = Slot { qtype: 0, variant: SLOT_UNUSED, answer: ANSWER_PASS };
            let mut r =
                NameRecord { flags: rec.flags, count: chunk.len() as u16, _pad: 0, slots: [unused; RECORD_SLOTS] };
            if i + 1 < parts.len() {
                r.flags |= RECORD_MORE;
            }
            r.slots[..chunk.len()].copy_from_slice(chunk);
            self.maps
                .put_record(name.as_wire(), i as u32, r)
                .context("writing a NAMES map (is it full? see --answers-capacity)")?;
        }
        Ok(())
    }

    fn delete_record(&mut self, name: &Name, from_part: usize, parts: usize) -> anyhow::Result<()> {
        for part in from_part..parts {
            self.maps.del_record(name.as_wire(), part as u32).context("removing from a NAMES map")?;
        }
        Ok(())
    }

    /// Writes new serials: zones with a SERIALS slot get it there, the others in the bytes of
    /// their answers carrying it. Returns how many answers were rewritten.
    fn write_serials(&mut self, new_serials: &HashMap<u32, u32>) -> anyhow::Result<usize> {
        let mut rewritten = 0;
        for (&zone, &serial) in new_serials {
            if zone < self.serial_slots {
                self.maps.put_serial(zone, serial).context("writing the SERIALS map")?;
            }
        }
        if new_serials.keys().any(|&z| z >= self.serial_slots) {
            let ids: Vec<u32> = self
                .negatives
                .iter()
                .filter(|(_, n)| n.zone >= self.serial_slots && new_serials.contains_key(&n.zone))
                .map(|(&id, _)| id)
                .collect();
            for id in ids {
                let neg = self.negatives.get_mut(&id).expect("listed above");
                let serial = new_serials[&neg.zone];
                let mut v = unpack(&neg.bytes);
                let at = usize::from(neg.serial_at);
                v.data[at..at + 4].copy_from_slice(&serial.to_be_bytes());
                v.data_csum = compile::csum(&v.data[..usize::from(v.data_len)]);
                neg.bytes = pack(&v);
                self.maps.put_answer(id, &v).context("rewriting an answer's serial")?;
                rewritten += 1;
            }
        }
        for (&zone, &serial) in new_serials {
            self.zones[zone as usize].1 = Some(serial);
        }
        Ok(rewritten)
    }

    /// Applies a plan in phases, so a query reading a record and then an answer always gets
    /// one version's answer:
    /// 1. every changed, new or removed name gets a pass marker (its queries, and those of
    ///    missing names below it, go to the daemon);
    /// 2. zones with a new serial get it in their SERIALS slot (or, beyond the slots, in the
    ///    bytes of their answers carrying it): the names still pointing at those answers did not
    ///    change, so they serve the new version's answer;
    /// 3. new records (last part first), then removed names' records and stale parts;
    /// 4. answers nothing references any more are freed (a reader that still holds an old id
    ///    finds nothing and passes).
    fn commit(&mut self, plan: Plan, zones: &ZoneSet) -> anyhow::Result<Diff> {
        let t0 = std::time::Instant::now();
        let Plan { changes, mut new_serials, created, added_now, mut hits } = plan;
        let mut diff = Diff { answers_written: created.len(), added: added_now, ..Diff::default() };
        for zone in zones.iter() {
            if let Some(&id) = self.zone_ids.get(&zone.origin)
                && self.zones[id as usize].1.is_some_and(|s| s != zone.serial)
            {
                new_serials.insert(id, zone.serial);
            }
        }
        // 1. Markers, for new names too: once the negatives change, a query for a name that
        //    exists only in the new version must not reach its ancestor's new NXDOMAIN.
        for (name, _) in &changes {
            // Before the serials change: an entry would lead past the marker to an answer
            // whose serial is about to move.
            self.hits_forget(name);
            let flags = self.records.get(name).map_or(0, |old| old.flags & RECORD_SIGNED);
            let unused = Slot { qtype: 0, variant: SLOT_UNUSED, answer: ANSWER_PASS };
            let mut marker = NameRecord { flags, count: 1, _pad: 0, slots: [unused; RECORD_SLOTS] };
            marker.slots[0] = Slot { qtype: QTYPE_DEFAULT, variant: KEY_VARIANT_CHILD, answer: ANSWER_PASS };
            self.maps
                .put_record(name.as_wire(), 0, marker)
                .context("writing a NAMES map (is it full? see --answers-capacity)")?;
        }
        let t1 = t0.elapsed();
        // 2. The serial: one slot per zone, or in place in the answers carrying it. Readers
        //    that overlap this see SERIAL_GEN move and pass; it is even again even if a write
        //    fails (the caller then restores the previous version).
        if !new_serials.is_empty() {
            self.maps.set_generation(true).context("writing the SERIAL_GEN map")?;
            let written = self.write_serials(&new_serials);
            self.maps.set_generation(false).context("writing the SERIAL_GEN map")?;
            diff.answers_written += written?;
        }
        let t2 = t0.elapsed();
        // 3. Records.
        for (name, new) in changes {
            let old = self.records.remove(&name);
            let old_parts = old.as_ref().map_or(0, Installed::parts);
            match new {
                Some(mut rec) => {
                    self.write_record(&name, &rec)?;
                    self.delete_record(&name, rec.parts(), old_parts)?;
                    self.reference(&rec, 1);
                    if old.is_some() {
                        diff.changed += 1
                    } else {
                        diff.added += 1
                    }
                    rec.seen = self.generation;
                    self.records.insert(&name, rec);
                    if let (Some(index), Some(entries)) = (self.hits.as_mut(), hits.remove(&name)) {
                        for (pairs, entry) in &entries {
                            index.put(*pairs, entry);
                        }
                    }
                }
                None => {
                    self.delete_record(&name, 0, old_parts)?;
                    diff.removed += 1;
                }
            }
            if let Some(old) = old {
                self.reference(&old, -1);
            }
        }
        for zone in zones.iter() {
            if let Some(&id) = self.zone_ids.get(&zone.origin) {
                self.zones[id as usize].1 = Some(zone.serial);
            }
        }
        let t3 = t0.elapsed();
        // 4. Unreferenced answers: those whose last reference went, and new ones never used.
        //    A full compile creates about as many as there are: then a scan is cheaper.
        let mut candidates = std::mem::take(&mut self.released);
        candidates.extend(created);
        let unused: Vec<u32> = if candidates.len() > self.answers.len() / 2 {
            self.answers.unused()
        } else {
            candidates.sort_unstable();
            candidates.dedup();
            candidates.retain(|id| self.answers.get(id).is_some_and(|m| m.refs == 0));
            candidates
        };
        for id in unused {
            self.free(id)?;
            diff.answers_freed += 1;
        }
        log::debug!("commit phases: markers {t1:?}, serials {t2:?}, records {t3:?}, frees {:?}", t0.elapsed());
        Ok(diff)
    }

    fn free(&mut self, id: u32) -> anyhow::Result<()> {
        self.maps.del_answer(id).context("removing from an ANSWERS map")?;
        if self.answers.remove(&id).is_some() {
            let (class, seq) = Answers::at(id);
            self.ids.give(class, seq as u32, std::time::Instant::now());
        }
        self.negatives.remove(&id);
        Ok(())
    }

    /// A failed update: frees the answers it created (nothing references them yet).
    fn abandon(&mut self, plan: Plan) {
        // Their records may not be in the kernel: they keep the record lookup.
        self.hits_ready.clear();
        self.hits_pending.clear();
        let _ = self.maps.wait_in_flight();
        self.maps.batches = None;
        self.maps.queued = 0;
        for id in plan.created {
            if self.answers.get(&id).is_some_and(|m| m.refs == 0) {
                let _ = self.free(id);
            }
        }
    }

    /// What the kernel's lookup (dns-xdp-ebpf/src/resolve.rs) finds for a query, from the
    /// records as installed: the answer id, `Some(ANSWER_PASS)` for a marker, `None` for a
    /// miss. `qname` is lowercase wire format. For tests: which queries the kernel answers.
    pub fn lookup(&self, qname: &[u8], qtype: u16, dnssec: bool) -> Option<u32> {
        use dns_xdp_common::{KEY_VARIANT_DO, MAX_WALK_STEPS};
        let find = |rec: &Installed, qt: u16, v: u16, part0_only: bool| {
            let slots = if part0_only { &rec.slots[..rec.slots.len().min(RECORD_SLOTS)] } else { &rec.slots[..] };
            slots.iter().find(|s| s.qtype == qt && s.variant == v).map(|s| s.answer)
        };
        let meta = compile::is_meta(qtype);
        let d = if dnssec { KEY_VARIANT_DO } else { 0 };
        if let Some(rec) = Name::from_wire(qname).and_then(|n| self.records.get(&n)) {
            let own = find(rec, qtype, d, false)
                .or_else(|| if dnssec { find(rec, qtype, 0, false) } else { None })
                .or_else(|| if meta { None } else { find(rec, QTYPE_DEFAULT, d, false) })
                .or_else(|| if meta || !dnssec { None } else { find(rec, QTYPE_DEFAULT, 0, false) });
            if own.is_some() {
                return own;
            }
            if find(rec, QTYPE_DEFAULT, KEY_VARIANT_CHILD, false).is_some() {
                return Some(ANSWER_PASS);
            }
        }
        let mut off = 0;
        for _ in 0..MAX_WALK_STEPS {
            if qname[off] == 0 {
                return None;
            }
            off += qname[off] as usize + 1;
            let Some(rec) = Name::from_wire(&qname[off..]).and_then(|n| self.records.get(&n)) else { continue };
            let Some(marker) = find(rec, QTYPE_DEFAULT, KEY_VARIANT_CHILD, true) else { continue };
            if marker == ANSWER_PASS {
                return Some(ANSWER_PASS);
            }
            let v = if dnssec && rec.flags & RECORD_SIGNED != 0 {
                KEY_VARIANT_CHILD | KEY_VARIANT_DO
            } else {
                KEY_VARIANT_CHILD
            };
            let answer = find(rec, qtype, v, true);
            if answer.is_none() && rec.flags & RECORD_CHILD_PARTIAL != 0 {
                return Some(ANSWER_PASS);
            }
            return Some(
                answer.or_else(|| if meta { None } else { find(rec, QTYPE_DEFAULT, v, true) }).unwrap_or(ANSWER_PASS),
            );
        }
        None
    }

    /// As `install_entries` (the writer handle of the refresh tests).
    pub fn apply(&mut self, entries: Entries) -> anyhow::Result<Diff> {
        self.install_entries(&entries)
    }

    /// Installs a precompiled logical map (tests): every name of `entries`, nothing else.
    pub fn install_entries(&mut self, entries: &Entries) -> anyhow::Result<Diff> {
        self.generation = self.generation.wrapping_add(1);
        let mut by_name: HashMap<Vec<u8>, NameSlots> = HashMap::default();
        for (k, v) in entries {
            let len = k.name.iter().position(|&b| b == 0).map_or(k.name.len(), |p| p + 1);
            // Names are wire format: the first zero byte is the root label only when every
            // label length before it was followed; walk the labels instead.
            let len = crate::name::wire_name_len(&k.name).unwrap_or(len);
            by_name.entry(k.name[..len].to_vec()).or_default().push((k.qtype, k.variant, *v));
        }
        let mut plan = Plan::default();
        let zones = ZoneSet::default();
        let none = HashSet::new();
        self.maps.start_batch();
        for (wire, slots) in by_name {
            let name = Name::from_wire(&wire).context("an entry's name is not a wire-format name")?;
            if name.as_wire().len() > dns_xdp_common::MAX_KERNEL_NAME {
                continue;
            }
            if let Err(e) = self.stage(&zones, &name, slots, false, &none, &mut plan) {
                self.abandon(plan);
                return Err(e);
            }
        }
        if let Err(e) = self.maps.flush(false) {
            self.abandon(plan);
            return Err(e);
        }
        self.hits_put_pending();
        self.plan_removals(&mut plan, self.generation);
        self.commit(plan, &zones)
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

    #[test]
    fn freed_answer_ids_come_back_only_after_the_quarantine() {
        let t0 = std::time::Instant::now();
        let mut ids = IdPool::default();
        assert_eq!([ids.take(0, t0), ids.take(0, t0), ids.take(1, t0)], [1, 2, 1]);
        ids.give(0, 1, t0);
        let soon = t0 + ID_QUARANTINE / 2;
        assert_eq!(ids.take(0, soon), 3, "freed half a quarantine ago: a new id");
        ids.give(0, 3, soon);
        let later = t0 + ID_QUARANTINE;
        assert_eq!(ids.take(0, later), 1, "the oldest freed id, once its quarantine is over");
        assert_eq!(ids.take(0, later), 4, "id 3's quarantine is not over yet");
        assert_eq!(ids.take(1, later), 2, "each class has its own ids");
        assert_eq!(ids.take(0, soon + ID_QUARANTINE), 3);
    }

    #[test]
    fn answers_are_found_by_key_until_removed() {
        let mut answers = Answers::default();
        let id = |class: u32, seq: u32| (class << ANSWER_CLASS_SHIFT) | seq;
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

    #[test]
    fn finds_the_serial_of_negative_answers_only() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let (zones, _) = crate::load_zones(&[root.join("testdata/zones/xdp.test.zone")]).expect("zone loads");
        let zone = zones.iter().next().unwrap();
        let serial = zone.serial.to_be_bytes();
        let entries = compile::compile(&zones, 1232);
        let mut negatives = 0;
        for v in entries.values().filter(|v| v.value_flags & VALUE_FLAG_PASS == 0) {
            if let Some((_, at)) = negative_soa(v) {
                negatives += 1;
                assert_eq!(v.data[at..at + 4], serial, "the serial sits where we look");
            }
        }
        assert!(negatives > 2, "the test zone compiles NODATA and NXDOMAIN answers");
        let cname_chains = entries.values().filter(|v| v.ancount > 0 && negative_soa(v).is_some()).count();
        assert!(cname_chains > 0, "a CNAME chain ending in NODATA carries the serial too");
    }

    #[test]
    fn finds_the_zone_a_negative_answer_belongs_to() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let files = ["example.test.zone", "sub.example.test.zone"].map(|f| root.join("testdata/conformance").join(f));
        let (zones, _) = crate::load_zones(&files).expect("zones load");
        let entries = compile::compile(&zones, 1232);
        let (mut parent, mut child, mut ds_at_apex) = (0, 0, 0);
        for (k, v) in entries.iter().filter(|(_, v)| v.value_flags & VALUE_FLAG_PASS == 0) {
            let Some((owner_at, _)) = negative_soa(v) else { continue };
            let len = crate::name::wire_name_len(&k.name).expect("a wire name");
            let name = Name::from_wire(&k.name[..len]).expect("a name");
            let zone = name_in_answer(v, name.as_wire(), owner_at).expect("the SOA owner decodes");
            let held_by = zones.find(&name).expect("a name of ours").origin.clone();
            if zone.to_string() == "example.test." {
                parent += 1;
            } else {
                assert_eq!(zone.to_string(), "sub.example.test.", "{name}");
                child += 1;
            }
            if zone != held_by {
                // Only the parent answers for the child's apex (DS), never the other way round.
                assert_eq!(
                    (name.to_string().as_str(), k.qtype),
                    ("sub.example.test.", 43),
                    "{name} answered by {zone}"
                );
                ds_at_apex += 1;
            }
        }
        assert!(parent > 0 && child > 0, "negatives of both zones ({parent}, {child})");
        assert!(ds_at_apex > 0, "the child apex's DS is the parent's NODATA");
    }

    #[test]
    fn classes_fit_their_answers() {
        assert_eq!(class_of(0), 0);
        assert_eq!(class_of(44), 0);
        assert_eq!(class_of(45), 1);
        assert_eq!(class_of(1008), 4);
    }
}
