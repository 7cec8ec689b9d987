//! The hot set: when the compiled answers outnumber `--answers-capacity`, which of them the
//! kernel holds. Demand comes from the queries the daemon answers itself (XDP misses, sampled);
//! the hottest names are promoted into the map, the coldest evicted.
//!
//! Correctness does not depend on the choice: every name's CHILD keys (its existence marker
//! and the answers for missing names below it) are always installed, and a name's own answers
//! are installed all together or not at all. A name without its own answers then meets its
//! own marker in the kernel's walk and passes to the daemon, never an ancestor's NXDOMAIN.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use dns_xdp_common::{KEY_NAME_LEN, KEY_VARIANT_CHILD};

use crate::compile::Entries;

type KeyName = [u8; KEY_NAME_LEN];

/// One query in `SAMPLE_ONE_IN` answered by the daemon is counted (a cheap modulo on a counter).
const SAMPLE_ONE_IN: u64 = 8;
/// Demand decays by half at each rebalance, so yesterday's flood does not pin names forever.
const DECAY_SHIFT: u32 = 1;
/// Most distinct names tracked; beyond it new names are not counted until the next decay.
const MAX_TRACKED: usize = 1 << 20;

static SEEN: AtomicU64 = AtomicU64::new(0);
static DEMAND: Mutex<Option<HashMap<KeyName, u64>>> = Mutex::new(None);
/// Names moved into / out of the map by the hot set since start (for metrics).
pub static PROMOTIONS: AtomicU64 = AtomicU64::new(0);
pub static EVICTIONS: AtomicU64 = AtomicU64::new(0);

/// Counts a query the daemon answered (`qname` lowercase wire format), one in SAMPLE_ONE_IN.
pub fn note(qname: &[u8]) {
    if SEEN.fetch_add(1, Relaxed) % SAMPLE_ONE_IN != 0 || qname.len() > KEY_NAME_LEN {
        return;
    }
    let mut name = [0u8; KEY_NAME_LEN];
    name[..qname.len()].copy_from_slice(qname);
    let mut demand = DEMAND.lock().unwrap_or_else(|e| e.into_inner());
    let map = demand.get_or_insert_with(HashMap::new);
    if map.len() < MAX_TRACKED || map.contains_key(&name) {
        *map.entry(name).or_default() += 1;
    }
}

/// The sampled demand so far, then halved.
pub fn take_demand() -> HashMap<KeyName, u64> {
    let mut demand = DEMAND.lock().unwrap_or_else(|e| e.into_inner());
    let map = demand.get_or_insert_with(HashMap::new);
    let now = map.clone();
    map.retain(|_, n| {
        *n >>= DECAY_SHIFT;
        *n > 0
    });
    now
}

/// What `select` chose.
pub struct Selection {
    pub entries: Entries,
    /// Names whose answers are left out.
    pub left_out: usize,
}

/// Chooses at most `capacity` entries of `all`: every CHILD key, then whole names by demand
/// (names installed now keep their place on ties, so the set does not churn), shortest names
/// first when nothing is known. `None` when the CHILD keys alone do not fit: then nothing can
/// be served safely and the caller installs nothing.
pub fn select(all: &Entries, capacity: usize, demand: &HashMap<KeyName, u64>, installed: &Entries) -> Option<Selection> {
    if all.len() <= capacity {
        return Some(Selection { entries: all.clone(), left_out: 0 });
    }
    let mut entries = Entries::new();
    let mut names: HashMap<KeyName, usize> = HashMap::new();
    for (key, value) in all {
        if key.variant & KEY_VARIANT_CHILD != 0 {
            entries.insert(*key, *value);
        } else {
            *names.entry(key.name).or_default() += 1;
        }
    }
    if entries.len() > capacity {
        return None;
    }
    let is_installed: std::collections::HashSet<KeyName> = installed.keys().map(|k| k.name).collect();
    let mut ranked: Vec<(KeyName, usize)> = names.into_iter().collect();
    ranked.sort_by_key(|(name, _)| {
        let len = name.iter().rposition(|&b| b != 0).unwrap_or(0);
        (std::cmp::Reverse(demand.get(name).copied().unwrap_or(0)), !is_installed.contains(name), len, *name)
    });
    let mut chosen = std::collections::HashSet::new();
    let mut room = capacity - entries.len();
    let mut left_out = 0;
    for (name, count) in ranked {
        if count <= room {
            room -= count;
            chosen.insert(name);
        } else {
            left_out += 1;
        }
    }
    for (key, value) in all {
        if key.variant & KEY_VARIANT_CHILD == 0 && chosen.contains(&key.name) {
            entries.insert(*key, *value);
        }
    }
    Some(Selection { entries, left_out })
}

/// Counts names that entered and left the map between two installed sets.
pub fn count_moves(before: &Entries, after: &Entries) {
    let names = |e: &Entries| -> std::collections::HashSet<KeyName> {
        e.keys().filter(|k| k.variant & KEY_VARIANT_CHILD == 0).map(|k| k.name).collect()
    };
    let (b, a) = (names(before), names(after));
    PROMOTIONS.fetch_add(a.difference(&b).count() as u64, Relaxed);
    EVICTIONS.fetch_add(b.difference(&a).count() as u64, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile, resolve};
    use crate::name::Name;

    #[test]
    fn hot_names_win_and_cold_names_pass_instead_of_nxdomain() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let (zones, _) = crate::load_zones(&[root.join("testdata/zones/xdp.test.zone")]).expect("zone loads");
        let all = compile(&zones, 1232);
        let child = all.keys().filter(|k| k.variant & KEY_VARIANT_CHILD != 0).count();
        let hot = Name::from_text("v6.xdp.test").unwrap();
        let cold = Name::from_text("mixed.xdp.test").unwrap();
        let mut demand = HashMap::new();
        let mut key = [0u8; KEY_NAME_LEN];
        key[..hot.as_wire().len()].copy_from_slice(hot.as_wire());
        demand.insert(key, 100);
        let picked = select(&all, child + 4, &demand, &Entries::new()).expect("CHILD keys fit");
        assert!(picked.entries.len() <= child + 4);
        assert!(picked.left_out > 0);
        assert!(resolve(&picked.entries, hot.as_wire(), 28, false).is_some(), "the hot name is served");
        // The cold name is not installed: the walk stops at its own marker (pass), not at the
        // apex's NXDOMAIN.
        assert!(resolve(&picked.entries, cold.as_wire(), 1, false).is_none(), "a cold name passes");
        assert!(resolve(&all, cold.as_wire(), 1, false).is_some());
        // Missing names are still answered from the kernel.
        let missing = Name::from_text("nothing-here.xdp.test").unwrap();
        assert!(resolve(&picked.entries, missing.as_wire(), 1, false).is_some());
        assert!(select(&all, child - 1, &demand, &Entries::new()).is_none(), "CHILD keys must fit");
    }
}
