//! The only door to packet memory: one bounds-checked pointer helper, the two byte-copy
//! helpers and the head move, so every other module reasons about offsets, never about raw
//! packet pointers.

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    programs::XdpContext,
};

/// No frame is longer: the program does not set xdp.frags, so it sees one page at most.
const MAX_FRAME: usize = 4096;

/// Bytes in the frame as the kernel hands it to us (the linear part; we do not set xdp.frags).
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}

/// A pointer to a `T` at `offset`, or `None` when the frame is too short to hold all of it.
/// `T` must be a byte-array header (alignment 1): packet data has no alignment guarantee.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    // A frame's linear part lies within one page. The bound also tells the verifier that a
    // variable offset stays far below its 64 KiB packet limit, without which it learns
    // nothing from the comparison below.
    if offset > MAX_FRAME {
        return None;
    }
    // The verifier only accepts a packet access after a comparison against data_end that
    // covers the whole object, which is exactly this check.
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Moves the frame's start `len` bytes earlier; the bytes that were at 0 are then at `len` and
/// the new front is uninitialised. False when the headroom is too small (nothing changed then).
/// Every packet pointer is invalid afterwards.
#[inline(always)]
pub fn grow_head(ctx: &XdpContext, len: usize) -> bool {
    // SAFETY: the helper checks -len against the headroom it keeps for the xdp_frame and
    // metadata; it only moves ctx->data.
    unsafe { bpf_xdp_adjust_head(ctx.ctx, -(len as i32)) == 0 }
}

/// Copies `len` packet bytes at `offset` into `buf` (map or stack memory). The kernel checks the
/// range against the packet; the caller must bound `len` by the size of `buf` for the verifier.
#[inline(always)]
pub fn load(ctx: &XdpContext, offset: usize, buf: *mut u8, len: usize) -> Option<()> {
    // SAFETY: the helper checks offset/len against the packet and the verifier checks `buf` and
    // `len` against the destination object; nothing is dereferenced here.
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, offset as u32, buf.cast(), len as u32) };
    if rc == 0 { Some(()) } else { None }
}

/// Copies `len` bytes from `buf` into the packet at `offset` (same contract as [`load`]).
#[inline(always)]
pub fn store(ctx: &XdpContext, offset: usize, buf: *const u8, len: usize) -> Option<()> {
    // SAFETY: as for `load`; the helper never writes outside the packet.
    let rc = unsafe { bpf_xdp_store_bytes(ctx.ctx, offset as u32, buf.cast_mut().cast(), len as u32) };
    if rc == 0 { Some(()) } else { None }
}

/// The longest copy `store_words` makes.
pub const WORDS_MAX_LEN: usize = 64;
/// The longest copy `load_words` makes (a key name).
pub const LOAD_WORDS_MAX_LEN: usize = 256;

/// Copies `len` bytes (8 <= `len` <= WORDS_MAX_LEN) from `src` (map memory) into the packet at
/// `offset` with direct stores: cheaper than the helper call for the small answers most
/// replies carry.
#[inline(always)]
pub fn store_words(ctx: &XdpContext, offset: usize, src: *const u8, len: usize) -> Option<()> {
    if !(8..=WORDS_MAX_LEN).contains(&len) {
        return None;
    }
    for_each_word::<{ WORDS_MAX_LEN / 8 }>(len, |at| {
        let p: *mut [u8; 8] = ptr_at(ctx, opaque(offset + at))?;
        // SAFETY: bounds checked by ptr_at; `at + 8 <= len`, inside `src`. See `word`.
        unsafe { p.cast::<u64>().write_unaligned(word(src, at)) };
        Some(())
    })
}

/// Copies `len` packet bytes at `offset` into `dst` (map memory) the same way, with direct
/// loads; `len` up to LOAD_WORDS_MAX_LEN. Below 8 bytes it calls the helper.
#[inline(always)]
pub fn load_words(ctx: &XdpContext, offset: usize, dst: *mut u8, len: usize) -> Option<()> {
    if len < 8 {
        return load(ctx, offset, dst, len);
    }
    if len > LOAD_WORDS_MAX_LEN {
        return None;
    }
    for_each_word::<{ LOAD_WORDS_MAX_LEN / 8 }>(len, |at| {
        let p: *const [u8; 8] = ptr_at(ctx, opaque(offset + at))?;
        // SAFETY: bounds checked by ptr_at; `at + 8 <= len`, inside `dst`. See `word`.
        unsafe { dst.add(at).cast::<u64>().write_unaligned(word(p.cast(), 0)) };
        Some(())
    })
}

/// Calls `copy` with the offset of every 8-byte word of a `len`-byte copy (8 <= `len` <= 8 *
/// `MAX_WORDS`): each whole word, then the last eight bytes, which overlap the word before
/// unless `len` is a multiple of 8 (copying those bytes twice is harmless).
#[inline(always)]
fn for_each_word<const MAX_WORDS: usize>(len: usize, mut copy: impl FnMut(usize) -> Option<()>) -> Option<()> {
    for i in 0..MAX_WORDS {
        let at = i * 8;
        if at + 8 > len {
            break;
        }
        copy(at)?;
    }
    copy(len - 8)
}

/// The unaligned 8-byte word at `src + at`. Unaligned accesses are single instructions (the
/// program is built with allows-misaligned-mem-access, dns-xdp-ebpf/build.rs), and the
/// verifier allows them on packet and map memory (not on the stack).
///
/// # Safety
/// `src + at .. src + at + 8` must be readable.
#[inline(always)]
unsafe fn word(src: *const u8, at: usize) -> u64 {
    // SAFETY: the caller's promise.
    unsafe { src.add(at).cast::<u64>().read_unaligned() }
}

/// `x`, through the stack: LLVM then cannot fold `offset + 8` into a sum it computed elsewhere
/// and check that instead of the pointer it accesses, which the verifier cannot follow. A
/// spilled scalar keeps its bounds for the verifier.
#[inline(always)]
fn opaque(x: usize) -> usize {
    let slot = x;
    // SAFETY: a local.
    unsafe { core::ptr::read_volatile(&slot) }
}
