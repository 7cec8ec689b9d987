//! The daemon's side of the hit index (`dns_xdp_common::MAP_HITS`; the program's side is
//! dns-xdp-ebpf/src/hits.rs): exact (name, type) hits and the answer id the name's record gives
//! them, in a direct-mapped array the daemon writes through a shared mapping.
//!
//! Why: under load the program's main cost is memory, not instructions. The record lookup
//! reads a hash bucket and three lines of a hash element, then the answer's line, each likely
//! a miss and each waiting for the one before; an entry here is two adjacent lines whose
//! misses overlap, the second holding the answer itself when it is one of the smallest and
//! never rewritten under its id. An entry holds only what the record says (the store keeps the
//! two in step), so a query the index misses takes the record lookup and gets the same answer.
//!
//! Entries are written in place, not through the bpf syscall: a map update copies a value
//! with no order between its bytes, and a reader could see half of one. Here the writer makes
//! `seq` odd, writes the entry, and makes `seq` even again, each store volatile and in that
//! order (x86 keeps stores in order, as the program relies on its loads staying in order);
//! the program passes to the record lookup when `seq` is odd or moves while it reads.
//!
//! May call: libc (the mapping), aya, dns_xdp_common. Nothing of the daemon.

use std::os::fd::RawFd;
use std::ptr::{NonNull, read_volatile, write_volatile};

use dns_xdp_common::{HIT_INLINE, HIT_MAX_NAME, HIT_NAME_WORDS, HitEntry, Response, ResponseValue, hit_pairs};

use super::MapsError;

/// Entries in HITS for `capacity` (`--answers-capacity`): a quarter as many, a power of two,
/// at least 1024. Most hot names have one or two types asked (A, AAAA); names the index
/// cannot hold still take the record lookup.
pub fn entries_for(capacity: u32) -> u32 {
    (capacity / 4).max(1024).next_power_of_two()
}

/// A shared, writable mapping of a BPF array created BPF_F_MMAPABLE; unmapped on drop.
struct Mapped {
    at: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping belongs to this value alone; moving it moves its only user.
unsafe impl Send for Mapped {}

impl Mapped {
    fn new(fd: RawFd, len: usize) -> std::io::Result<Self> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks the length and flags.
        let at = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let at = NonNull::new(at.cast()).ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Mapped { at, len })
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.at.as_ptr().cast(), self.len) };
    }
}

/// `v` as a `Response<N>` (`N` at least its data): how an entry holds one of the smallest answers
/// (`RESPONSE_CLASSES[0]` bytes).
pub fn sized<const N: usize>(v: &ResponseValue) -> Response<N> {
    let len = usize::from(v.data_len);
    let mut a = Response {
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

pub struct HitIndex {
    /// Keeps the map's fd open for as long as the mapping lives (dropped after it).
    mapped: Mapped,
    _map: aya::maps::Map,
    len: usize,
    /// Entries in use.
    held: usize,
}

/// The key's first HIT_MAX_NAME bytes as the program reads them; None for longer names.
fn words(name: &[u8]) -> Option<[u64; HIT_NAME_WORDS]> {
    if name.len() > HIT_MAX_NAME {
        return None;
    }
    let mut bytes = [0u8; HIT_MAX_NAME];
    bytes[..name.len()].copy_from_slice(name);
    let mut out = [0u64; HIT_NAME_WORDS];
    for (w, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    Some(out)
}

impl HitIndex {
    /// Maps HITS (created BPF_F_MMAPABLE with `len` entries, a power of two).
    pub fn new(map: aya::maps::Map, len: u32) -> Result<Self, MapsError> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        if !(len.is_power_of_two() && len >= 2) {
            return Err(MapsError::Object(format!("HITS needs a power of two entries, not {len}")));
        }
        let aya::maps::Map::Array(data) = &map else { return Err(MapsError::Object("HITS is not an array".into())) };
        let fd = data.fd().as_fd().as_raw_fd();
        let mapped = Mapped::new(fd, len as usize * size_of::<HitEntry>())
            .map_err(MapsError::call("HITS: mapping a BPF array (BPF_F_MMAPABLE)"))?;
        Ok(HitIndex { mapped, _map: map, len: len as usize, held: 0 })
    }

    /// `XdpConfig::hit_mask`.
    pub fn mask(&self) -> u32 {
        (self.len - 1) as u32
    }

    /// Entries in use.
    pub fn held(&self) -> usize {
        self.held
    }

    fn entry_at(&self, at: u32) -> *mut HitEntry {
        assert!((at as usize) < self.len);
        // SAFETY: inside the mapping (checked above).
        unsafe { self.mapped.at.as_ptr().cast::<HitEntry>().add(at as usize) }
    }

    fn read(&self, at: u32) -> HitEntry {
        // SAFETY: an entry of the mapping; only this value writes it.
        unsafe { read_volatile(self.entry_at(at)) }
    }

    /// Rewrites entry `at` under its seq (see the module comment).
    fn write(&mut self, at: u32, value: &HitEntry) {
        let e = self.entry_at(at);
        // SAFETY: an entry of the mapping; each store is volatile, so the compiler keeps them
        // all, in this order.
        unsafe {
            let seq = read_volatile(&raw const (*e).seq);
            write_volatile(&raw mut (*e).seq, seq | 1);
            write_volatile(&raw mut (*e).qtype_serves, value.qtype_serves);
            write_volatile(&raw mut (*e).answer, value.answer);
            write_volatile(&raw mut (*e).flags, value.flags);
            for (i, w) in value.name.iter().enumerate() {
                write_volatile((&raw mut (*e).name).cast::<u64>().add(i), *w);
            }
            write_volatile(&raw mut (*e).value, value.value);
            write_volatile(&raw mut (*e).seq, (seq | 1).wrapping_add(1));
        }
    }

    /// The entry holding `answer` (and its bytes, `inline`, if given: one of the smallest
    /// answers) for `name` (lowercase wire) and `qtype`, for queries with the DO bits in
    /// `serves`, with the first entries of its two pairs; None if the name is too long. An
    /// inline answer must never change under its id while the entry holds it.
    pub fn entry(
        &self,
        name: &[u8],
        qtype: u16,
        serves: u32,
        answer: u32,
        inline: Option<&ResponseValue>,
    ) -> Option<([u32; 2], HitEntry)> {
        let words = words(name)?;
        let entry = HitEntry {
            qtype_serves: u32::from(qtype) | serves,
            answer,
            flags: if inline.is_some() { HIT_INLINE } else { 0 },
            name: words,
            value: inline.map_or(HitEntry::EMPTY.value, sized),
            ..HitEntry::EMPTY
        };
        Some((hit_pairs(&words, qtype, self.mask()), entry))
    }

    /// Writes `entry` into a free place of its pairs, the first pair first; false if all four
    /// hold other keys. The caller removes the key's old entries first (`remove`).
    pub fn put(&mut self, [first, second]: [u32; 2], entry: &HitEntry) -> bool {
        let places = [first, first | 1, second, second | 1];
        let Some(at) = places.into_iter().find(|&i| self.qtype_serves(i) == 0) else { return false };
        self.write(at, entry);
        self.held += 1;
        true
    }

    /// `put` for many, in the order of their places (the array is too large for the TLB:
    /// in order, a page's entries are written together; a million random ones took a second).
    /// Leaves `entries` empty.
    pub fn put_all(&mut self, entries: &mut Vec<([u32; 2], HitEntry)>) {
        // The order, not the entries: sorting moves its elements, 136 bytes each.
        let mut order: Vec<(u32, u32)> = entries.iter().enumerate().map(|(i, e)| (e.0[0], i as u32)).collect();
        order.sort_unstable();
        for (_, i) in order {
            let (pairs, entry) = &entries[i as usize];
            self.put(*pairs, entry);
        }
        entries.clear();
    }

    fn qtype_serves(&self, at: u32) -> u32 {
        // SAFETY: an entry of the mapping; only this value writes it.
        unsafe { read_volatile(&raw const (*self.entry_at(at)).qtype_serves) }
    }

    /// Empties the entries holding (`name`, `qtype`), whatever DO bits they serve.
    pub fn remove(&mut self, name: &[u8], qtype: u16) {
        let Some(words) = words(name) else { return };
        let [first, second] = hit_pairs(&words, qtype, self.mask());
        for at in [first, first | 1, second, second | 1] {
            let e = self.read(at);
            if e.qtype_serves != 0 && e.qtype_serves & 0xffff == u32::from(qtype) && e.name == words {
                self.write(at, &HitEntry::EMPTY);
                self.held -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_the_zero_padded_name_little_endian() {
        let name = b"\x03www\x07example\x03com\x00";
        let w = words(name).unwrap();
        assert_eq!(w[0], u64::from_le_bytes(*b"\x03www\x07exa"));
        assert_eq!(w[2] >> 8, 0, "zero past the name");
        assert_eq!(w[3..], [0; 3]);
        assert!(words(&[1u8; HIT_MAX_NAME]).is_some());
        assert!(words(&[1u8; HIT_MAX_NAME + 1]).is_none());
    }

    #[test]
    fn pairs_are_two_stay_inside_the_mask_and_start_even() {
        for i in 0..1000u32 {
            let w = words(format!("\x05n{i:04}\x04test\x00").as_bytes()).unwrap();
            let [a, b] = hit_pairs(&w, 1, 1023);
            assert!(a < 1024 && b < 1024 && a % 2 == 0 && b % 2 == 0 && a != b);
        }
    }
}
