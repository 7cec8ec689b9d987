//! The bpf(2) calls the answer store makes itself: one element's update or delete, and
//! BPF_MAP_UPDATE_BATCH, all over bytes. aya's typed maps would need a type per size class and
//! a dispatch per map; over bytes one table (maps.rs) says how big each map's keys and values
//! are. The only `unsafe` of the answer maps lives here, each block behind a length check
//! against the sizes the kernel reported for the map.
//!
//! May call: libc, aya (map data and info). Nothing of the daemon.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};

use aya::maps::{MapData, MapError};

/// A map written through raw calls, with the key and value sizes the kernel reads from every
/// pointer we pass it.
pub struct RawMap {
    /// Keeps the fd open for as long as the value lives.
    data: MapData,
    /// Its name in the eBPF object, for errors.
    name: &'static str,
    key_size: usize,
    value_size: usize,
}

/// `union bpf_attr` for the element commands (BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM).
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

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

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
/// Linux 5.6.
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// One bpf(2) call with `attr`.
///
/// # Safety
/// Every pointer in `attr` must point at as many bytes as the command reads for the map.
unsafe fn bpf<A>(cmd: libc::c_long, attr: &A) -> io::Result<()> {
    // SAFETY: the caller's promise; the kernel copies `attr` (size_of::<A>() bytes) first.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *const A, size_of::<A>() as u32) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

impl RawMap {
    pub fn new(data: MapData, name: &'static str) -> Result<Self, MapError> {
        let info = data.info()?;
        Ok(RawMap { key_size: info.key_size() as usize, value_size: info.value_size() as usize, data, name })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn key_size(&self) -> usize {
        self.key_size
    }

    pub fn value_size(&self) -> usize {
        self.value_size
    }

    fn fd(&self) -> RawFd {
        self.data.fd().as_fd().as_raw_fd()
    }

    /// Sets `key` to `value` (BPF_ANY).
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        assert!(key.len() == self.key_size && value.len() == self.value_size, "key or value of the wrong size");
        let attr = ElemAttr {
            map_fd: self.fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags: 0,
        };
        // SAFETY: key and value hold exactly the sizes the kernel reads (checked above) and
        // outlive the call.
        unsafe { bpf(BPF_MAP_UPDATE_ELEM, &attr) }
    }

    /// Removes `key`; a key not there is no error.
    pub fn delete(&self, key: &[u8]) -> io::Result<()> {
        assert!(key.len() == self.key_size, "key of the wrong size");
        let attr = ElemAttr { map_fd: self.fd() as u32, _pad: 0, key: key.as_ptr() as u64, value: 0, flags: 0 };
        // SAFETY: key holds exactly the size the kernel reads (checked above) and outlives the call.
        match unsafe { bpf(BPF_MAP_DELETE_ELEM, &attr) } {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    }

    /// Sets every key of `keys` to its value in `values` (both back to back, as many of each)
    /// in one call.
    pub fn update_batch(&self, keys: &[u8], values: &[u8]) -> io::Result<()> {
        let count = keys.len() / self.key_size;
        assert!(
            keys.len() == count * self.key_size && values.len() == count * self.value_size,
            "keys and values of the wrong sizes"
        );
        let attr = BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: u32::try_from(count).expect("fewer than 2^32 entries in a batch"),
            map_fd: self.fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: `count` keys and values of the map's sizes (checked above) that outlive the
        // call; the kernel reads them and writes back `count` (ignored: an error fails the
        // whole update).
        unsafe { bpf(BPF_MAP_UPDATE_BATCH, &attr) }
    }
}

/// The bytes of a plain value (a map record).
pub fn bytes_of<T: aya::Pod>(value: &T) -> &[u8] {
    // SAFETY: Pod types are plain bytes without padding, readable for their whole size.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}
