//! The daemon's side of the hit index (`dns_xdp_common::MAP_HITS`; the program's side is
//! dns-xdp-ebpf/src/hits.rs): exact (name, type) hits and the answer id the name's record gives
//! them, in a direct-mapped array the daemon writes through a shared mapping.
//!
//! Why: under load the program's main cost is memory, not instructions. The record lookup
//! reads a hash bucket and three lines of a hash element, each likely a miss; an entry here
//! is one line. It holds only what the record says (`Store` keeps the two in step), so a
//! query the index misses takes the record lookup and finds the same answer.
//!
//! Entries are written in place, not through the bpf syscall: a map update copies a value
//! with no order between its bytes, and a reader could see half of one. Here the writer makes
//! `seq` odd, writes the entry, and makes `seq` even again, each store volatile and in that
//! order (x86 keeps stores in order, as the program relies on its loads staying in order);
//! the program passes to the record lookup when `seq` is odd or moves while it reads.

use std::ptr::{NonNull, read_volatile, write_volatile};

use anyhow::Context as _;
use dns_xdp_common::{HIT_MAX_NAME, HIT_NAME_WORDS, HitEntry, hit_pair};

/// Entries in HITS for `capacity` (`--answers-capacity`): a quarter as many, a power of two,
/// at least 1024. Most hot names have one or two types asked (A, AAAA); names the index
/// cannot hold still take the record lookup.
pub fn entries_for(capacity: u32) -> u32 {
    (capacity / 4).max(1024).next_power_of_two()
}

pub struct HitIndex {
    /// Keeps the map's fd open for as long as the mapping lives.
    _map: aya::maps::Map,
    entries: NonNull<HitEntry>,
    len: usize,
    mapped: usize,
    /// Entries in use.
    held: usize,
}

// SAFETY: the mapping is owned by this value alone (the kernel's readers aside, which the
// seq protocol covers); moving it to another thread moves every writer with it.
unsafe impl Send for HitIndex {}

impl Drop for HitIndex {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.entries.as_ptr().cast(), self.mapped) };
    }
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
    pub fn new(map: aya::maps::Map, len: u32) -> anyhow::Result<Self> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        anyhow::ensure!(len.is_power_of_two() && len >= 2, "HITS needs a power of two entries, not {len}");
        let aya::maps::Map::Array(data) = &map else { anyhow::bail!("HITS is not an array") };
        let fd = data.fd().as_fd().as_raw_fd();
        let bytes = len as usize * size_of::<HitEntry>();
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks the length and flags.
        let at = unsafe { libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0) };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mapping the HITS map (BPF_F_MMAPABLE)");
        }
        let entries = NonNull::new(at.cast::<HitEntry>()).context("mmap returned null")?;
        Ok(HitIndex { _map: map, entries, len: len as usize, mapped: bytes, held: 0 })
    }

    /// `XdpConfig::hit_mask`.
    pub fn mask(&self) -> u32 {
        (self.len - 1) as u32
    }

    /// Entries in use.
    pub fn held(&self) -> usize {
        self.held
    }

    fn read(&self, at: u32) -> HitEntry {
        debug_assert!((at as usize) < self.len);
        // SAFETY: `at` < len (masked), inside the mapping; only this value writes it.
        unsafe { read_volatile(self.entries.as_ptr().add(at as usize)) }
    }

    /// Rewrites entry `at` under its seq (see the module comment).
    fn write(&mut self, at: u32, value: &HitEntry) {
        debug_assert!((at as usize) < self.len);
        // SAFETY: as in `read`; each field is a plain aligned store, volatile so the compiler
        // keeps them all, in this order.
        unsafe {
            let e = self.entries.as_ptr().add(at as usize);
            let seq = read_volatile(&raw const (*e).seq);
            write_volatile(&raw mut (*e).seq, seq | 1);
            write_volatile(&raw mut (*e).qtype_serves, value.qtype_serves);
            write_volatile(&raw mut (*e).answer, value.answer);
            for (i, w) in value.name.iter().enumerate() {
                write_volatile((&raw mut (*e).name).cast::<u64>().add(i), *w);
            }
            write_volatile(&raw mut (*e).seq, (seq | 1).wrapping_add(1));
        }
    }

    /// Holds `answer` for `name` (lowercase wire) and `qtype`, for queries with the DO bits in
    /// `serves`; false if the name is too long or both entries of its pair hold other keys.
    /// The caller removes the key's old entries first (`remove`).
    pub fn put(&mut self, name: &[u8], qtype: u16, serves: u32, answer: u32) -> bool {
        let Some(words) = words(name) else { return false };
        let first = hit_pair(&words, qtype, self.mask());
        let Some(at) = [first, first | 1].into_iter().find(|&i| self.read(i).qtype_serves == 0) else { return false };
        self.write(at, &HitEntry { seq: 0, qtype_serves: u32::from(qtype) | serves, answer, _pad: 0, name: words });
        self.held += 1;
        true
    }

    /// Empties the entries holding (`name`, `qtype`), whatever DO bits they serve.
    pub fn remove(&mut self, name: &[u8], qtype: u16) {
        let Some(words) = words(name) else { return };
        let first = hit_pair(&words, qtype, self.mask());
        for at in [first, first | 1] {
            let e = self.read(at);
            if e.qtype_serves != 0 && e.qtype_serves & 0xffff == u32::from(qtype) && e.name == words {
                self.write(at, &HitEntry::default());
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
    fn pairs_stay_inside_the_mask_and_start_even() {
        for i in 0..1000u32 {
            let w = words(format!("\x05n{i:04}\x04test\x00").as_bytes()).unwrap();
            let p = hit_pair(&w, 1, 1023);
            assert!(p < 1024 && p % 2 == 0);
        }
    }
}
