//! Per-CPU counters (`STATS`): every packet once under RX, once under an action, passes and
//! drops also under a reason. Per-CPU slots need no atomics: XDP never migrates mid-run.

use crate::maps::STATS;

#[inline(always)]
pub fn inc(index: u32) {
    if let Some(slot) = STATS.get_ptr_mut(index) {
        // SAFETY: a per-CPU array slot is private to this CPU while the program runs.
        unsafe { *slot += 1 };
    }
}
