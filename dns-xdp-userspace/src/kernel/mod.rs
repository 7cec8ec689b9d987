//! What the daemon knows of the kernel's side of the answers: the maps it writes (maps.rs over
//! the raw calls of bpf.rs, batched by batch.rs; the hit index, hits.rs) and the key search the
//! XDP program runs over them (search.rs). The bottom layer: loader.rs hands the maps out of a
//! loaded program, the store writes them.
//!
//! May call: dns_xdp_common, aya, libc; of the daemon only the zones (to count their names).
//! Nothing above it.

mod batch;
mod bpf;
pub mod hits;
pub mod maps;
pub mod search;

/// Why the daemon could not take or write one of the answer maps. Each names the map and what was
/// being done, since the operator's fix depends on it: a full map wants a larger
/// `--answers-capacity`, a missing or misshapen one an eBPF object built from this tree.
#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    /// The eBPF object lacks the map, or holds it in another shape than the daemon expects.
    #[error("{0}")]
    Object(String),
    /// The kernel refused a call on a map.
    #[error("{doing}: {err}")]
    Call { doing: String, err: std::io::Error },
    /// aya refused a map or one of its elements.
    #[error("{doing}: {err}")]
    Aya { doing: String, err: aya::maps::MapError },
    /// The thread writing a set of batches panicked.
    #[error("writing the maps panicked")]
    Panicked,
}

impl MapsError {
    /// Wraps a refused call, saying what it was doing.
    pub fn call(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        move |err| MapsError::Call { doing: doing.into(), err }
    }

    /// Wraps a map aya refused, saying what it was doing.
    pub fn aya(doing: impl Into<String>) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |err| MapsError::Aya { doing: doing.into(), err }
    }
}

/// The answer store's maps, taken out of a loaded program (loader.rs) by the side that writes
/// them (update/), with the sizes they were loaded with.
pub struct ResponseMaps {
    pub maps: maps::Maps,
    pub hits: hits::HitIndex,
    pub sizes: maps::MapSizes,
}
