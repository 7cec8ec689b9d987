//! The answer store's maps (dns-xdp-common explains the layout): name records in the NAMES
//! maps by name length, interned answers in the RESPONSES maps by data length, and the zones'
//! serials in SERIALS and SERIAL_GEN. One table, `CLASSES`, names, sizes and chooses every
//! NAMES and RESPONSES map; entries go in as bytes (bpf.rs), queued while an update is staged
//! (batch.rs).
//!
//! May call: bpf.rs, batch.rs, hits.rs (its size), dns_xdp_common, aya; the zones only to count
//! their names. Nothing of the store or the update above it.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use aya::maps::{Array, MapData, MapError};
use dns_xdp_common::{
    MAP_NAMES, MAP_RESPONSES, MAP_SERIAL_GEN, MAP_SERIALS, MAX_RESPONSE_LEN, NAME_CLASS_SIZE, NAME_CLASSES, NameRecord,
    RESPONSE_CLASS_SHIFT, RESPONSE_CLASS_SIZE, RESPONSE_CLASSES, RESPONSE_HEAD_LEN, ResponseValue,
};

use super::MapsError;
use super::batch::Batches;
use super::bpf::{RawMap, bytes_of};
use crate::zone::ZoneSet;

/// The two kinds of size-classed map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Keyed by response id (`id >> RESPONSE_CLASS_SHIFT` is the class), valued `Response<max_len>`.
    Responses,
    /// Keyed by `NameKey<max_len>` (a name and a part number), valued `NameRecord`.
    Names,
}

/// One size class: one NAMES or RESPONSES map.
#[derive(Clone, Copy, Debug)]
pub struct SizeClass {
    pub kind: Kind,
    /// The map's name in the eBPF object.
    pub map: &'static str,
    /// Longest name (NAMES) or answer data (RESPONSES) its entries hold.
    pub max_len: usize,
    /// Its entries per 16 of `--answers-capacity` (`NAME_CLASS_SIZE`, `RESPONSE_CLASS_SIZE`).
    pub share: u64,
}

impl SizeClass {
    fn key_size(&self) -> usize {
        match self.kind {
            Kind::Responses => size_of::<u32>(),
            Kind::Names => self.max_len + size_of::<u32>(),
        }
    }

    fn value_size(&self) -> usize {
        match self.kind {
            Kind::Responses => RESPONSE_HEAD_LEN + self.max_len,
            Kind::Names => size_of::<NameRecord>(),
        }
    }
}

const RESPONSE_MAPS: usize = RESPONSE_CLASSES.len();
const NAME_MAPS: usize = NAME_CLASSES.len();

/// Every NAMES and RESPONSES map, answers first: the order batches are written in.
pub const CLASSES: [SizeClass; RESPONSE_MAPS + NAME_MAPS] = classes();

const fn classes() -> [SizeClass; RESPONSE_MAPS + NAME_MAPS] {
    let mut out = [SizeClass { kind: Kind::Responses, map: "", max_len: 0, share: 0 }; RESPONSE_MAPS + NAME_MAPS];
    let mut i = 0;
    while i < RESPONSE_MAPS {
        out[i] = SizeClass {
            kind: Kind::Responses,
            map: MAP_RESPONSES[i],
            max_len: RESPONSE_CLASSES[i],
            share: RESPONSE_CLASS_SIZE[i],
        };
        i += 1;
    }
    let mut i = 0;
    while i < NAME_MAPS {
        out[RESPONSE_MAPS + i] =
            SizeClass { kind: Kind::Names, map: MAP_NAMES[i], max_len: NAME_CLASSES[i], share: NAME_CLASS_SIZE[i] };
        i += 1;
    }
    out
}

impl Kind {
    /// This kind's maps in `CLASSES`.
    fn maps(self) -> Range<usize> {
        match self {
            Kind::Responses => 0..RESPONSE_MAPS,
            Kind::Names => RESPONSE_MAPS..RESPONSE_MAPS + NAME_MAPS,
        }
    }

    /// The class (counted within the kind) of an entry of `len` bytes: the smallest that holds
    /// it, the largest for anything longer.
    pub fn class_of(self, len: usize) -> usize {
        let classes = &CLASSES[self.maps()];
        classes.iter().position(|c| len <= c.max_len).unwrap_or(classes.len() - 1)
    }

    /// Where class `class` of this kind sits in `CLASSES`.
    fn map(self, class: usize) -> usize {
        let maps = self.maps();
        assert!(class < maps.len(), "no {self:?} class {class}");
        maps.start + class
    }
}

/// How many entries each map gets: NAMES and RESPONSES from `--answers-capacity`, NAMES at least
/// a record per name (`records_needed`), HITS from the capacity too (hits.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    /// `--answers-capacity`, at least 1: the most names whose own answers the kernel holds.
    pub capacity: u32,
    /// Entries of each map of `CLASSES`.
    entries: [u32; CLASSES.len()],
    hits: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes::for_capacity(dns_xdp_common::ANSWERS_CAPACITY)
    }
}

impl MapSizes {
    /// `capacity * share / 16` entries per map, at least 1024.
    pub fn for_capacity(capacity: u32) -> Self {
        let capacity = capacity.max(1);
        let entries = CLASSES.map(|c| (u64::from(capacity) * c.share / 16).clamp(1024, u64::from(u32::MAX)) as u32);
        MapSizes { capacity, entries, hits: super::hits::entries_for(capacity) }
    }

    /// These sizes with at least `records[i]` entries in NAMES map `i`.
    pub fn with_records(mut self, records: [u32; NAME_MAPS]) -> Self {
        for (entries, records) in self.entries[Kind::Names.maps()].iter_mut().zip(records) {
            *entries = (*entries).max(records);
        }
        self
    }

    /// NAMES map sizes that would hold a record for every name of `zones` (with a quarter to
    /// spare), when these do not: every name keeps its record even when the hot set leaves it
    /// without answers, so `--answers-capacity` alone may leave too little room.
    pub fn records_needed(&self, zones: &ZoneSet) -> Option<[u32; NAME_MAPS]> {
        let mut count = [0usize; NAME_MAPS];
        for name in zones.iter().flat_map(|z| z.nodes.keys()) {
            count[Kind::Names.class_of(name.as_wire().len())] += 1;
        }
        let room = &self.entries[Kind::Names.maps()];
        if count.iter().zip(room).all(|(&n, &room)| n <= room as usize) {
            return None;
        }
        Some(std::array::from_fn(|i| (count[i].max(room[i] as usize) as u64 * 5 / 4).min(u64::from(u32::MAX)) as u32))
    }

    /// Entries in HITS.
    pub fn hits(&self) -> u32 {
        self.hits
    }

    /// Each NAMES and RESPONSES map's name and entries.
    pub fn classes(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        CLASSES.iter().zip(self.entries).map(|(c, n)| (c.map, n))
    }
}

/// An answer's bytes as an `Answer<N>` starts: the head fields in their order, then the data,
/// without the padding to `N`. A map value is this padded with zeros; the store keeps the
/// answers it may have to rewrite in this form.
pub fn response_bytes(v: &ResponseValue, out: &mut Vec<u8>) {
    for word in [v.flags, v.ancount, v.nscount, v.arcount, v.data_len, v.value_flags, v.data_csum, v.serial_at] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out.extend_from_slice(&v.rrl_key.to_ne_bytes());
    out.extend_from_slice(&v.data[..usize::from(v.data_len)]);
}

/// The answer `response_bytes` wrote.
pub fn response_from_bytes(b: &[u8]) -> ResponseValue {
    let w = |i: usize| u16::from_ne_bytes([b[2 * i], b[2 * i + 1]]);
    let data = &b[RESPONSE_HEAD_LEN..];
    let mut v = ResponseValue {
        flags: w(0),
        ancount: w(1),
        nscount: w(2),
        arcount: w(3),
        data_len: w(4),
        value_flags: w(5),
        data_csum: w(6),
        serial_at: w(7),
        rrl_key: u32::from_ne_bytes(b[16..20].try_into().expect("4 bytes")),
        data: [0; MAX_RESPONSE_LEN],
    };
    v.data[..data.len()].copy_from_slice(data);
    v
}

/// A NAMES key as `NameKey<class_len>` lays it out: the name zero-padded, then the part.
fn name_key(name: &[u8], part: u32, class_len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(name);
    out.resize(class_len, 0);
    out.extend_from_slice(&part.to_ne_bytes());
}

/// The NAMES and RESPONSES maps of one loaded program, with SERIALS and SERIAL_GEN.
pub struct Maps {
    /// The maps of `CLASSES`, in its order (shared with a batch written on another thread).
    maps: Arc<[RawMap]>,
    /// Which of them are arrays: their elements cannot be deleted (`del_response`).
    arrays: [bool; CLASSES.len()],
    batches: Batches,
    /// One entry's key and value, encoded.
    key: Vec<u8>,
    value: Vec<u8>,
    serials: Array<MapData, u32>,
    serial_gen: Array<MapData, u32>,
    /// SERIAL_GEN as last written.
    generation: u32,
}

impl Maps {
    /// Takes the maps out of `take` (by name), e.g. `|n| ebpf.take_map(n)`.
    pub fn take(mut take: impl FnMut(&str) -> Option<aya::maps::Map>) -> Result<Self, MapsError> {
        let mut array = |name: &str| {
            let map = take(name).ok_or_else(|| missing(name))?;
            Array::try_from(map).map_err(MapsError::aya(format!("reading the {name} map")))
        };
        let serials = array(MAP_SERIALS)?;
        let serial_gen = array(MAP_SERIAL_GEN)?;
        let mut arrays = [false; CLASSES.len()];
        let mut maps = Vec::with_capacity(CLASSES.len());
        for (class, array) in CLASSES.iter().zip(&mut arrays) {
            let data = match take(class.map).ok_or_else(|| missing(class.map))? {
                aya::maps::Map::HashMap(data) => data,
                aya::maps::Map::Array(data) => {
                    *array = true;
                    data
                }
                _ => return Err(MapsError::Object(format!("{} is neither a hash map nor an array", class.map))),
            };
            let map = RawMap::new(data, class.map)
                .map_err(MapsError::aya(format!("reading the {} map's sizes", class.map)))?;
            if (map.key_size(), map.value_size()) != (class.key_size(), class.value_size()) {
                return Err(MapsError::Object(format!(
                    "{}: keys of {} and values of {} bytes, not the {} and {} its size class says",
                    class.map,
                    map.key_size(),
                    map.value_size(),
                    class.key_size(),
                    class.value_size()
                )));
            }
            maps.push(map);
        }
        Ok(Maps {
            maps: maps.into(),
            arrays,
            batches: Batches::default(),
            key: Vec::new(),
            value: Vec::new(),
            serials,
            serial_gen,
            generation: 0,
        })
    }

    /// Queues writes from now on, until `flush`.
    pub fn start_batch(&mut self) {
        self.batches.start(CLASSES.len());
    }

    /// Whether enough writes are queued to be worth a flush.
    pub fn full(&self) -> bool {
        self.batches.full()
    }

    /// Writes everything queued, answers before records (batch.rs). If `more`, keeps batching
    /// and writes on another thread; otherwise it is done when this returns.
    pub fn flush(&mut self, more: bool) -> Result<(), MapsError> {
        self.batches.flush(&self.maps, more)
    }

    /// Drops the queued writes of a failed update.
    pub fn discard_batch(&mut self) {
        self.batches.discard();
    }

    /// Writes the encoded entry to map `map`: queued while batching, else at once.
    fn write(&mut self, map: usize) -> io::Result<()> {
        if self.batches.queue(map, &self.key, &self.value) {
            return Ok(());
        }
        self.maps[map].update(&self.key, &self.value)
    }

    pub fn put_record(&mut self, name: &[u8], part: u32, rec: &NameRecord) -> io::Result<()> {
        let map = Kind::Names.map(Kind::Names.class_of(name.len()));
        self.key.clear();
        name_key(name, part, CLASSES[map].max_len, &mut self.key);
        self.value.clear();
        self.value.extend_from_slice(bytes_of(rec));
        self.write(map)
    }

    pub fn del_record(&mut self, name: &[u8], part: u32) -> io::Result<()> {
        let map = Kind::Names.map(Kind::Names.class_of(name.len()));
        self.key.clear();
        name_key(name, part, CLASSES[map].max_len, &mut self.key);
        self.maps[map].delete(&self.key)
    }

    /// The map of answer `id`'s class.
    fn response_map(id: u32) -> usize {
        Kind::Responses.map((id >> RESPONSE_CLASS_SHIFT) as usize)
    }

    pub fn put_response(&mut self, id: u32, v: &ResponseValue) -> io::Result<()> {
        let map = Self::response_map(id);
        self.key.clear();
        self.key.extend_from_slice(&id.to_ne_bytes());
        self.value.clear();
        response_bytes(v, &mut self.value);
        self.value.resize(CLASSES[map].value_size(), 0);
        self.write(map)
    }

    pub fn del_response(&mut self, id: u32) -> io::Result<()> {
        let map = Self::response_map(id);
        if self.arrays[map] {
            // An array keeps every index: the freed id's element stays as it was, unread (no
            // record points at it), until the id names a new answer, which is written before
            // any record points at it (the store's id pool: not within a second of the free).
            return Ok(());
        }
        self.maps[map].delete(&id.to_ne_bytes())
    }

    /// Sets the serial the kernel writes into the answers of SERIALS slot `slot`.
    pub fn put_serial(&mut self, slot: u32, serial: u32) -> Result<(), MapError> {
        self.serials.set(slot, serial, 0)
    }

    /// Makes SERIAL_GEN odd (serials about to change) or even (done), moving it either way.
    pub fn set_generation(&mut self, changing: bool) -> Result<(), MapError> {
        self.generation = self.generation.wrapping_add(if (self.generation & 1 == 1) == changing { 2 } else { 1 });
        self.serial_gen.set(0, self.generation, 0)
    }
}

/// A map the eBPF object should hold and does not.
fn missing(name: &str) -> MapsError {
    MapsError::Object(format!("no {name} map in the eBPF object"))
}

#[cfg(test)]
mod tests {
    use dns_xdp_common::NameKey;

    use super::super::hits::sized;
    use super::*;

    fn value(len: usize) -> ResponseValue {
        let mut v = ResponseValue {
            flags: 0x8400,
            ancount: 1,
            nscount: 2,
            arcount: 3,
            data_len: len as u16,
            value_flags: 0x31,
            data_csum: 0xbeef,
            serial_at: 7,
            rrl_key: 0x1234_5678,
            data: [0; MAX_RESPONSE_LEN],
        };
        v.data[..len].iter_mut().enumerate().for_each(|(i, b)| *b = i as u8 | 1);
        v
    }

    /// The bytes the maps get are those of the kernel's types, class by class.
    #[test]
    fn entries_are_laid_out_as_the_kernels_types() {
        fn answer<const N: usize>(class: usize) {
            let v = value(N - 3);
            let mut bytes = Vec::new();
            response_bytes(&v, &mut bytes);
            bytes.resize(CLASSES[Kind::Responses.map(class)].value_size(), 0);
            assert_eq!(bytes, bytes_of(&sized::<N>(&v)), "RESPONSES class {class}");
            let back = response_from_bytes(&bytes[..RESPONSE_HEAD_LEN + N - 3]);
            assert_eq!(bytes_of(&back), bytes_of(&v));
        }
        answer::<44>(0);
        answer::<108>(1);
        answer::<172>(2);
        answer::<428>(3);
        answer::<MAX_RESPONSE_LEN>(4);
        fn name<const N: usize>(class: usize) {
            let wire = b"\x03www\x07example\x00";
            let mut k = NameKey { name: [0; N], part: 3 };
            k.name[..wire.len()].copy_from_slice(wire);
            let mut bytes = Vec::new();
            name_key(wire, 3, CLASSES[Kind::Names.map(class)].max_len, &mut bytes);
            assert_eq!(bytes, bytes_of(&k), "NAMES class {class}");
        }
        name::<28>(0);
        name::<60>(1);
        name::<124>(2);
        name::<256>(3);
    }

    #[test]
    fn classes_fit_their_entries() {
        assert_eq!(Kind::Responses.class_of(0), 0);
        assert_eq!(Kind::Responses.class_of(44), 0);
        assert_eq!(Kind::Responses.class_of(45), 1);
        assert_eq!(Kind::Responses.class_of(1008), 4);
        assert_eq!(Kind::Names.class_of(28), 0);
        assert_eq!(Kind::Names.class_of(29), 1);
        assert_eq!(Kind::Names.class_of(255), 3);
        assert_eq!(CLASSES[Kind::Names.map(0)].map, MAP_NAMES[0]);
        assert_eq!(CLASSES[Kind::Responses.map(4)].map, MAP_RESPONSES[4]);
    }
}
