//! What the daemon knows of the kernel's side of the answers: the maps it writes (maps.rs over
//! the raw calls of bpf.rs, batched by batch.rs; the hit index, hits.rs) and the key search the
//! XDP program runs over them (resolve.rs). The bottom layer: loader.rs hands the maps out of a
//! loaded program, the store writes them.
//!
//! May call: dns_xdp_common, aya, libc; of the daemon only the zones (to count their names).
//! Nothing above it.

mod batch;
mod bpf;
pub mod hits;
pub mod maps;
pub mod resolve;

/// The answer store's maps, taken out of a loaded program (loader.rs) by the side that writes
/// them (update/), with the sizes they were loaded with.
pub struct AnswerMaps {
    pub maps: maps::Maps,
    pub hits: hits::HitIndex,
    pub sizes: maps::MapSizes,
}
