//! The only door to packet memory: one bounds-checked pointer helper, the two byte-copy
//! helpers and the head move, so every other module reasons about offsets, never about raw
//! packet pointers.

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_load_bytes, bpf_xdp_store_bytes},
    programs::XdpContext,
};

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
