//! Steady-state memory of a loaded zone, run by hand
//! (`cargo run --release -p dns-xdp-userspace --example zone_mem -- ZONE_FILE...`): loads the
//! zones as the daemon does (same allocator, mimalloc), keeps only the `ZoneSet`, and prints
//! VmRSS before loading, after it, after dropping the diagnostics and after asking mimalloc to
//! return freed pages (`mi_collect`: the steady state), with the bytes per name.
//!
//! Also counts the heap the process holds (bytes asked for and blocks, not what the allocator
//! rounds them up to): the zone's own cost without the allocator's slack and the parser's
//! freed-but-kept pages.

use std::alloc::{GlobalAlloc, Layout};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use dns_xdp::load_zones;

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

// SAFETY: forwards every call to mimalloc unchanged; only counts around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as is.
        let p = unsafe { INNER.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Relaxed);
            LIVE_BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for alloc.
        let p = unsafe { INNER.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Relaxed);
            LIVE_BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for alloc.
        unsafe { INNER.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for alloc.
        let p = unsafe { INNER.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size, Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

unsafe extern "C" {
    fn mi_collect(force: bool);
}

/// VmRSS of this process in bytes.
fn vm_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    let kb: usize = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB");
    kb * 1024
}

fn main() {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        eprintln!("usage: zone_mem ZONE_FILE...");
        std::process::exit(2);
    }
    let rss0 = vm_rss();
    let heap0 = LIVE_BYTES.load(Relaxed);
    let blocks0 = LIVE_BLOCKS.load(Relaxed);
    let (zones, diags) = match load_zones(&files) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    };
    let rss1 = vm_rss();
    let warnings = diags.len();
    drop(diags);
    let rss2 = vm_rss();
    // What the daemon settles to once mimalloc has handed the parser's freed pages back.
    // SAFETY: mimalloc's own entry point (linked in through the mimalloc crate), no preconditions.
    unsafe { mi_collect(true) };
    let rss3 = vm_rss();
    let heap = LIVE_BYTES.load(Relaxed) - heap0;
    let blocks = LIVE_BLOCKS.load(Relaxed) - blocks0;
    let names: usize = zones.iter().map(|z| z.nodes.len()).sum();
    let per = |bytes: usize| bytes as f64 / names.max(1) as f64;
    println!("zones {}, names {names}, warnings {warnings}", zones.len());
    println!("VmRSS before load        {:>12} B", rss0);
    println!("VmRSS after load         {:>12} B  (+{:.0} B/name)", rss1, per(rss1 - rss0));
    println!("VmRSS after diags dropped{:>12} B  (+{:.0} B/name)", rss2, per(rss2.saturating_sub(rss0)));
    println!("VmRSS after mi_collect   {:>12} B  (+{:.0} B/name)", rss3, per(rss3.saturating_sub(rss0)));
    println!("live heap (asked for)    {:>12} B  ({:.0} B/name)", heap, per(heap));
    println!("live heap blocks         {:>12}    ({:.2} /name)", blocks, per(blocks));
    // Exit without dropping the zones: a million names take a while to free and it is not measured.
    std::process::exit(0);
}
