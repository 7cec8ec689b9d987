//! The hot set: when the zones hold more names than `--answers-capacity`, which names keep
//! their own answers in the kernel. Demand comes from the queries the daemon answers itself
//! (XDP misses, sampled); the hottest names are promoted, the coldest evicted.
//!
//! Correctness does not depend on the choice: every name keeps its record in the kernel, with
//! its existence marker and the answers for missing names below it; a cold name's record
//! holds nothing else, so its own queries meet the marker and pass to the daemon, never an
//! ancestor's NXDOMAIN.
//!
//! May call: names, the zones. The update module (update/) applies the choice.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use dns_xdp_common::KEY_NAME_LEN;

use crate::name::Name;
use crate::zone::ZoneSet;

type KeyName = [u8; KEY_NAME_LEN];

/// One query in `SAMPLE_ONE_IN` answered by the daemon is counted (a cheap modulo on a counter).
const SAMPLE_ONE_IN: u64 = 8;
/// Demand decays by half at each rebalance, so yesterday's flood does not pin names forever.
const DECAY_SHIFT: u32 = 1;
/// Most distinct names tracked; beyond it new names are not counted until the next decay.
const MAX_TRACKED: usize = 1 << 20;

/// What the hot set learns and does: the queries the daemon answered itself (noted by the
/// listeners' answer path, taken at each rebalance) and the names moved since start (for the
/// metrics). One per daemon, shared by the listeners, the update module and the metrics.
#[derive(Default)]
pub struct Demand {
    seen: AtomicU64,
    sampled: Mutex<HashMap<KeyName, u64>>,
    promotions: AtomicU64,
    evictions: AtomicU64,
}

impl Demand {
    /// Counts a query the daemon answered (`qname` lowercase wire format), one in SAMPLE_ONE_IN.
    pub fn note(&self, qname: &[u8]) {
        if !self.seen.fetch_add(1, Relaxed).is_multiple_of(SAMPLE_ONE_IN) || qname.len() > KEY_NAME_LEN {
            return;
        }
        let mut name = [0u8; KEY_NAME_LEN];
        name[..qname.len()].copy_from_slice(qname);
        let mut map = self.sampled.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() < MAX_TRACKED || map.contains_key(&name) {
            *map.entry(name).or_default() += 1;
        }
    }

    /// The sampled demand so far, then halved.
    pub fn take(&self) -> HashMap<KeyName, u64> {
        let mut map = self.sampled.lock().unwrap_or_else(|e| e.into_inner());
        let now = map.clone();
        map.retain(|_, n| {
            *n >>= DECAY_SHIFT;
            *n > 0
        });
        now
    }

    /// Counts names that entered and left the kernel's hot set.
    pub fn count_moves(&self, promoted: usize, evicted: usize) {
        self.promotions.fetch_add(promoted as u64, Relaxed);
        self.evictions.fetch_add(evicted as u64, Relaxed);
    }

    /// Names moved into and out of the kernel's answers by the hot set since start.
    pub fn moves(&self) -> (u64, u64) {
        (self.promotions.load(Relaxed), self.evictions.load(Relaxed))
    }
}

/// The names left out of the kernel when `zones` have more than `capacity`: the hottest
/// `capacity` names keep their own answers (names installed now keep their place on ties, so
/// the set does not churn; shortest names first when nothing is known), the rest are returned.
pub fn select_cold(
    zones: &ZoneSet,
    capacity: usize,
    demand: &HashMap<KeyName, u64>,
    hot_now: &dyn Fn(&Name) -> bool,
) -> HashSet<Name> {
    let mut ranked: Vec<(&Name, u64, bool)> = zones
        .iter()
        .flat_map(|z| z.nodes.keys())
        .map(|name| {
            let mut key = [0u8; KEY_NAME_LEN];
            let wire = name.as_wire();
            key[..wire.len()].copy_from_slice(wire);
            (name, demand.get(&key).copied().unwrap_or(0), hot_now(name))
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.as_wire().len().cmp(&b.0.as_wire().len())).then(a.0.cmp(b.0))
    });
    ranked.into_iter().skip(capacity).map(|(name, _, _)| name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile, search};
    use dns_xdp_common::KEY_VARIANT_CHILD;

    #[test]
    fn hot_names_win_and_cold_names_pass_instead_of_nxdomain() {
        let zones = crate::test_zones(&["zones/xdp.test.zone"]);
        let all = compile(&zones, 1232);
        let hot = Name::from_text("v6.xdp.test").unwrap();
        let cold_name = Name::from_text("mixed.xdp.test").unwrap();
        let mut demand = HashMap::new();
        let mut key = [0u8; KEY_NAME_LEN];
        key[..hot.as_wire().len()].copy_from_slice(hot.as_wire());
        demand.insert(key, 100);
        let names: usize = zones.iter().map(|z| z.nodes.len()).sum();
        let cold = select_cold(&zones, 4, &demand, &|_| false);
        assert_eq!(cold.len(), names - 4);
        assert!(!cold.contains(&hot), "the hot name keeps its answers");
        // What the store installs for cold names: their CHILD slots only.
        let picked: crate::compile::Entries = all
            .iter()
            .filter(|(k, _)| {
                let name = Name::from_wire(&k.name[..crate::name::wire_name_len(&k.name).unwrap()]).unwrap();
                !cold.contains(&name) || k.variant & KEY_VARIANT_CHILD != 0
            })
            .map(|(k, v)| (*k, *v))
            .collect();
        assert!(search(&picked, hot.as_wire(), 28, false).is_some(), "the hot name is served");
        // The cold name is not installed: the walk stops at its own marker (pass), not at the
        // apex's NXDOMAIN.
        assert!(search(&picked, cold_name.as_wire(), 1, false).is_none(), "a cold name passes");
        assert!(search(&all, cold_name.as_wire(), 1, false).is_some());
        // Missing names are still answered from the kernel.
        let missing = Name::from_text("nothing-here.xdp.test").unwrap();
        assert!(search(&picked, missing.as_wire(), 1, false).is_some());
        // Installed names win ties.
        let sticky = select_cold(&zones, 1, &HashMap::new(), &|n| *n == cold_name);
        assert!(!sticky.contains(&cold_name));
    }
}
