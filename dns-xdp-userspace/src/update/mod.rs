//! Keeping the kernel's answers in step with the zones: what a change touched (affected.rs,
//! following the index of who points at whom, referrers.rs), what to recompile, and which names
//! the hot set leaves to the daemon (hotset.rs chooses, from the demand it is given). The
//! compiler renders each name's entries; the store writes them.
//!
//! The compiler hands each name's entries over as it renders them (a million names' entries
//! would not fit in memory at once), and the update passes them straight to the store's
//! staging: neither of the two calls the other.
//!
//! May call: compile, store, hotset, kernel (the maps it is given), the zones. Called by
//! publish.rs, and by the tests and benchmarks that install zones directly.

mod affected;
mod referrers;

pub use affected::{affected, affected_with};
pub use referrers::Referrers;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use crate::compile::{self, Entries};
use crate::hotset::Demand;
use crate::kernel::ResponseMaps;
use crate::name::Name;
use crate::store::{Diff, Store, StoreError};
use crate::zone::ZoneSet;

/// The store of one loaded program and what decides its updates.
pub struct Updater {
    store: Store,
    /// Most names whose own answers the kernel holds (`--answers-capacity`); the others keep
    /// only their existence marker (hot set).
    capacity: usize,
    /// The queries the daemon answered itself, which the hot set follows.
    demand: Arc<Demand>,
    /// Names left to the daemon now, for the hot set.
    cold: HashSet<Name>,
    /// Who points at whom in the installed zones.
    referrers: referrers::Cache,
}

/// What an update recompiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recompiled {
    /// Every name (start, reload, or a change only a full compile takes safely).
    All,
    /// This many names the change touched.
    Names(usize),
}

impl Updater {
    /// Writes the answer maps of a loaded program from now on; the hot set follows `demand`.
    pub fn new(maps: ResponseMaps, demand: Arc<Demand>) -> Self {
        Updater {
            store: Store::new(maps.maps, Some(maps.hits)),
            capacity: maps.sizes.capacity as usize,
            demand,
            cold: HashSet::new(),
            referrers: referrers::Cache::default(),
        }
    }

    /// See `Store::limit_serial_slots` (tests of the path beyond the SERIALS slots).
    pub fn limit_serial_slots(&mut self, n: u32) {
        self.store.limit_serial_slots(n);
    }

    /// Makes the maps hold exactly `entries` (precompiled; tests and benchmarks), writing only
    /// what differs.
    pub fn apply(&mut self, entries: &Entries) -> Result<Diff, StoreError> {
        self.store.install_entries(entries)
    }

    /// Compiles `zones` into the maps, writing only what differs from what they hold. When
    /// the zones have more names than `--answers-capacity`, the hot set (hotset.rs) decides
    /// which names keep their own answers in the kernel; every name keeps its existence
    /// marker and the answers for missing names below it.
    pub fn install(&mut self, zones: &ZoneSet, payload: u16) -> Result<Diff, StoreError> {
        self.referrers.clear();
        self.choose_cold(zones);
        if !self.cold.is_empty() {
            let total: usize = zones.iter().map(|z| z.nodes.len()).sum();
            log::info!(
                "XDP answers: {total} names, capacity {}: {} names left to the daemon",
                self.capacity,
                self.cold.len()
            );
        }
        let cold = |n: &Name| self.cold.contains(n);
        let mut staging = self.store.stage(zones, &cold, true);
        compile::compile_each(zones, payload, |name, slots| staging.add(name, slots));
        staging.commit()
    }

    /// Recompiles only `names` (the owners a change touched, their ancestors and the names
    /// whose answers mention them) against `zones`, which must differ from the installed
    /// version in those names alone.
    pub fn install_names(&mut self, zones: &ZoneSet, payload: u16, names: &[Name]) -> Result<Diff, StoreError> {
        let cold = |n: &Name| self.cold.contains(n);
        let mut staging = self.store.stage(zones, &cold, false);
        compile::compile_names(zones, payload, names, |name, slots| staging.add(name, slots));
        staging.commit()
    }

    /// Takes the maps from `old` (installed) to `new`: only the names the change touched when
    /// that is safe (`affected`; `touched`, when the caller knows them, spares comparing the
    /// zones), else everything.
    pub fn update(
        &mut self,
        old: &ZoneSet,
        new: &ZoneSet,
        touched: Option<&[Name]>,
        payload: u16,
    ) -> Result<(Recompiled, Diff), StoreError> {
        let started = std::time::Instant::now();
        let Some(names) = affected_with(old, new, touched, Some(self.referrers.of(old))) else {
            return Ok((Recompiled::All, self.install(new, payload)?));
        };
        log::debug!("XDP answers: {} names affected, found in {:?}", names.len(), started.elapsed());
        let diff = self.install_names(new, payload, &names)?;
        self.referrers.note(new, &names);
        Ok((Recompiled::Names(names.len()), diff))
    }

    /// The index of the installed zones will arrive on `pending`, built on another thread
    /// (`Referrers::build`) from the zones as they were installed.
    pub fn expect_referrers(&mut self, pending: Receiver<(Arc<ZoneSet>, Referrers)>) {
        self.referrers.expect(pending);
    }

    fn choose_cold(&mut self, zones: &ZoneSet) {
        let total: usize = zones.iter().map(|z| z.nodes.len()).sum();
        if total <= self.capacity {
            self.cold.clear();
            return;
        }
        let demand = self.demand.take();
        let cold = crate::hotset::select_cold(zones, self.capacity, &demand, &|n| self.store.is_hot(n));
        log::debug!("XDP answers: {total} names, capacity {}: {} names left to the daemon", self.capacity, cold.len());
        self.cold = cold;
    }

    /// Re-chooses the hot set from the demand sampled since the last call (promotions and
    /// evictions) and recompiles the names that moved; nothing to do while every name fits.
    pub fn rebalance(&mut self, zones: &ZoneSet, payload: u16) -> Result<Diff, StoreError> {
        let total: usize = zones.iter().map(|z| z.nodes.len()).sum();
        if total <= self.capacity && self.cold.is_empty() {
            return Ok(Diff::default());
        }
        let before = std::mem::take(&mut self.cold);
        self.choose_cold(zones);
        let moved: Vec<Name> = before.symmetric_difference(&self.cold).cloned().collect();
        let promoted = before.difference(&self.cold).count();
        self.demand.count_moves(promoted, moved.len() - promoted);
        if !moved.is_empty() {
            log::info!(
                "XDP hot set: {promoted} names promoted, {} evicted; {} of {total} names left to the daemon (capacity {})",
                moved.len() - promoted,
                self.cold.len(),
                self.capacity
            );
        }
        self.install_names(zones, payload, &moved)
    }

    /// Whether the kernel answers this query from its maps (before its size, DNSSEC and
    /// rate-limit checks), as the installed records say; see `Store::lookup`.
    pub fn kernel_answers(&self, qname: &[u8], qtype: u16, dnssec: bool) -> bool {
        self.store.search(qname, qtype, dnssec).is_some()
    }

    /// Entries in the answer maps: name records and distinct answers.
    pub fn entries(&self) -> (usize, usize) {
        (self.store.names(), self.store.answers())
    }

    /// Entries in use in the hit index (kernel/hits.rs).
    pub fn hit_entries(&self) -> usize {
        self.store.hits_held()
    }
}
