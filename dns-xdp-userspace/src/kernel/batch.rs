//! Writes queued while an update is staged, then written with one BPF_MAP_UPDATE_BATCH call per
//! map, in the maps' order (maps.rs puts the answers first, so a record never points at an
//! answer not yet in the kernel). A large install hands a full set of batches to another thread
//! and fills the next meanwhile: the kernel's share of the work (half the time at a million
//! names) runs beside the staging instead of after it.
//!
//! May call: bpf.rs. Knows nothing of what the bytes mean.

use std::sync::Arc;

use super::MapsError;
use super::bpf::RawMap;

/// Queued writes flushed together once this many are waiting.
const BATCH_ENTRIES: usize = 8192;

/// Writes queued for one map: keys and values back to back.
#[derive(Default)]
struct Batch {
    keys: Vec<u8>,
    values: Vec<u8>,
}

/// A set of batches written on another thread, given back emptied.
type InFlight = std::thread::JoinHandle<(Vec<Batch>, Result<(), MapsError>)>;

#[derive(Default)]
pub struct Batches {
    /// While batching, one batch per map; `None` while writes go straight in.
    open: Option<Vec<Batch>>,
    queued: usize,
    /// The previous full set, being written on another thread. One at a time, in order.
    in_flight: Option<InFlight>,
}

impl Batches {
    /// Queues writes to `maps` maps from now on, until `flush`.
    pub fn start(&mut self, maps: usize) {
        if self.open.is_none() {
            self.open = Some((0..maps).map(|_| Batch::default()).collect());
        }
    }

    /// Queues one write to map `map` if batching; false if not (the caller writes it).
    pub fn queue(&mut self, map: usize, key: &[u8], value: &[u8]) -> bool {
        let Some(open) = self.open.as_mut() else { return false };
        open[map].keys.extend_from_slice(key);
        open[map].values.extend_from_slice(value);
        self.queued += 1;
        true
    }

    /// Whether enough is queued to be worth a flush.
    pub fn full(&self) -> bool {
        self.queued >= BATCH_ENTRIES
    }

    /// Writes everything queued to `maps`, one call per map. If `more`, keeps batching and
    /// writes on another thread (after the previous flush's writes, which it waits for);
    /// otherwise it is done when this returns.
    pub fn flush(&mut self, maps: &Arc<[RawMap]>, more: bool) -> Result<(), MapsError> {
        let done = self.wait();
        let Some(mut open) = self.open.take() else { return done.map(drop) };
        self.queued = 0;
        let spare = done?;
        if more {
            self.open = Some(spare.unwrap_or_else(|| (0..maps.len()).map(|_| Batch::default()).collect()));
            let maps = maps.clone();
            self.in_flight = Some(std::thread::spawn(move || {
                let written = write(&maps, &mut open);
                (open, written)
            }));
            return Ok(());
        }
        write(maps, &mut open)
    }

    /// Drops what is queued (a failed update), once a write in flight has ended.
    pub fn discard(&mut self) {
        let _ = self.wait();
        self.open = None;
        self.queued = 0;
    }

    /// Waits for the batches being written on another thread; gives them back emptied.
    fn wait(&mut self) -> Result<Option<Vec<Batch>>, MapsError> {
        let Some(handle) = self.in_flight.take() else { return Ok(None) };
        let (batches, written) = handle.join().map_err(|_| MapsError::Panicked)?;
        written.map(|()| Some(batches))
    }
}

impl Drop for Batches {
    /// An update is over only once its writes are in.
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// Writes `batches` (batch `i` to map `i`, in order) and empties them.
fn write(maps: &[RawMap], batches: &mut [Batch]) -> Result<(), MapsError> {
    for (map, b) in maps.iter().zip(batches) {
        if b.keys.is_empty() {
            continue;
        }
        map.update_batch(&b.keys, &b.values).map_err(|err| MapsError::Call {
            doing: format!("writing the {} map (is it full? see --answers-capacity)", map.name()),
            err,
        })?;
        b.keys.clear();
        b.values.clear();
    }
    Ok(())
}
