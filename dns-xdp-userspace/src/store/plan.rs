//! One update of the store: staged name by name as the compiler hands names over (`Staging`),
//! then committed in phases so that every answer a query gets belongs to one version.
//!
//! May call: the store's parts (names.rs, interning.rs, serials.rs, hit_entries.rs), its maps
//! (kernel/maps.rs), the zones.

use std::collections::HashSet;

use dns_xdp_common::{
    KEY_VARIANT_CHILD, MAX_RECORD_PARTS, NameRecord, QTYPE_DEFAULT, RECORD_CHILD_PARTIAL, RECORD_MORE, RECORD_SIGNED,
    RECORD_SLOTS, RESPONSE_PASS, SLOT_UNUSED, Slot, VALUE_FLAG_SIGNED,
};
use foldhash::HashMap;

use super::hit_entries::Entry;
use super::interning::Interned;
use super::names::Installed;
use super::{Diff, Store, StoreError};
use crate::compile::NameSlots;
use crate::kernel::MapsError;
use crate::name::Name;
use crate::zone::ZoneSet;

/// What one update will write, gathered before anything is written.
#[derive(Default)]
pub(super) struct Plan {
    /// Names with a new record (`Some`) or none any more (`None`).
    changes: Vec<(Name, Option<Installed>)>,
    /// Answers created and serials moved while interning.
    interned: Interned,
    /// New names written while staging (nothing to protect them from).
    added_now: usize,
    /// The hit entries of the names in `changes` with a new record.
    hits: HashMap<Name, Vec<Entry>>,
}

/// An update being staged (`Store::stage`): each name's compiled slots, written at once where
/// nothing can read a mix of versions, the rest planned for the commit. End it with `commit`.
pub struct Staging<'a> {
    store: &'a mut Store,
    zones: &'a ZoneSet,
    cold: &'a dyn Fn(&Name) -> bool,
    /// Zones whose serial differs from the one their answers hold.
    serials_changed: HashSet<Name>,
    plan: Plan,
    /// Every name is handed over: those that are not go at the commit.
    full: bool,
    /// The first failure: the names after it are skipped, and `commit` returns it.
    failed: Option<StoreError>,
}

impl Store {
    /// Starts an update to `zones`, the kernel writes it needs while staging batched. With
    /// `full`, every name of `zones` will be handed over, and the names that are not go. Names
    /// `cold` holds for keep only their existence marker and the answers below them, so their
    /// own queries pass (the hot set).
    pub fn stage<'a>(&'a mut self, zones: &'a ZoneSet, cold: &'a dyn Fn(&Name) -> bool, full: bool) -> Staging<'a> {
        if full {
            self.generation = self.generation.wrapping_add(1);
        }
        let serials_changed = self.serials.changed(zones);
        self.maps.start_batch();
        Staging { store: self, zones, cold, serials_changed, plan: Plan::default(), full, failed: None }
    }
}

impl Staging<'_> {
    /// One name's compiled slots; no slots: the name is gone.
    pub fn add(&mut self, name: &Name, slots: NameSlots) {
        if self.failed.is_some() {
            return;
        }
        if slots.is_empty() {
            if self.store.records.contains_key(name) {
                self.plan.changes.push((name.clone(), None));
            }
            return;
        }
        let cold = (self.cold)(name);
        let store = &mut *self.store;
        let staged = store.stage_name(self.zones, name, slots, cold, &self.serials_changed, &mut self.plan);
        if let Err(e) = staged.and_then(|()| if store.maps.full() { Ok(store.maps.flush(true)?) } else { Ok(()) }) {
            self.failed = Some(e);
        }
    }

    /// Writes what was staged, then the plan in the commit's phases. On a failure while
    /// staging, nothing new stays referenced.
    pub fn commit(self) -> Result<Diff, StoreError> {
        let Staging { store, zones, mut plan, full, failed, .. } = self;
        if let Some(e) = failed.map_or_else(|| store.maps.flush(false).err().map(StoreError::from), Some) {
            store.abandon(plan);
            return Err(e);
        }
        store.hits.put_pending();
        if full {
            store.plan_removals(&mut plan);
        }
        store.commit(plan, zones)
    }
}

impl Store {
    /// A name's record from its compiled slots.
    fn prepare(
        &mut self,
        zones: &ZoneSet,
        name: &Name,
        slots: &NameSlots,
        plan: &mut Plan,
    ) -> Result<Installed, StoreError> {
        let mut flags = 0;
        let mut out = Vec::with_capacity(slots.len());
        for (qtype, variant, value) in slots {
            if *qtype == QTYPE_DEFAULT && *variant == KEY_VARIANT_CHILD && value.value_flags & VALUE_FLAG_SIGNED != 0 {
                flags |= RECORD_SIGNED;
            }
            let answer =
                self.interner.intern(&mut self.serials, &mut self.maps, zones, name, value, &mut plan.interned)?;
            out.push(Slot { qtype: *qtype, variant: *variant, answer });
        }
        // The existence marker leads (the kernel's walk looks for it in part 0 only), then the
        // answers for names below and the type-independent ones: most queries end in part 0.
        out.sort_by_key(|s| {
            let marker = s.qtype == QTYPE_DEFAULT && s.variant == KEY_VARIANT_CHILD;
            (!marker, s.variant & KEY_VARIANT_CHILD == 0, s.qtype != QTYPE_DEFAULT, s.variant, s.qtype)
        });
        // What does not fit is left to the daemon. A type without a slot would fall back to the
        // name's default, so such a name keeps none of its own answers (its queries pass at its
        // marker), and if even the answers below it overflow, RECORD_CHILD_PARTIAL makes a type
        // without a slot there pass too.
        // The kernel's walk reads the answers for names below from part 0 only.
        let below = out.iter().filter(|s| s.variant & KEY_VARIANT_CHILD != 0).count();
        if below > RECORD_SLOTS {
            flags |= RECORD_CHILD_PARTIAL;
        }
        let room = RECORD_SLOTS * MAX_RECORD_PARTS;
        if out.len() > room {
            out.retain(|s| s.variant & KEY_VARIANT_CHILD != 0);
            out.truncate(room);
        }
        Ok(Installed { slots: out.into_boxed_slice(), flags, seen: self.generation })
    }

    /// Names a full compile did not see go.
    fn plan_removals(&self, plan: &mut Plan) {
        let changed: HashSet<&[u8]> = plan.changes.iter().map(|(n, _)| n.as_wire()).collect();
        let gone: Vec<Name> = self
            .records
            .iter()
            .filter(|(wire, rec)| rec.seen != self.generation && !changed.contains(wire))
            .filter_map(|(wire, _)| Name::from_wire(wire))
            .collect();
        plan.changes.extend(gone.into_iter().map(|n| (n, None)));
    }

    /// Plans one name's new record. A name new to the store whose zone keeps its negatives
    /// goes in at once (nothing can read a mix), anything else waits for `commit`'s phases.
    fn stage_name(
        &mut self,
        zones: &ZoneSet,
        name: &Name,
        slots: NameSlots,
        cold: bool,
        serials_changed: &HashSet<Name>,
        plan: &mut Plan,
    ) -> Result<(), StoreError> {
        let slots: NameSlots =
            if cold { slots.into_iter().filter(|s| s.1 & KEY_VARIANT_CHILD != 0).collect() } else { slots };
        let mut rec = self.prepare(zones, name, &slots, plan)?;
        match self.records.get_mut(name) {
            Some(old) if old.slots == rec.slots && old.flags == rec.flags => old.seen = rec.seen,
            Some(_) => {
                self.hits.plan(name, &rec, &slots, &self.serials, &mut plan.hits);
                plan.changes.push((name.clone(), Some(rec)));
            }
            // New, and no serial changes: nothing it serves can mix versions. Otherwise it may
            // use answers whose serial changes (its zone's, or its parent's): wait for those.
            None if serials_changed.is_empty() && plan.interned.new_serials.is_empty() => {
                self.write_record(name, &rec)?;
                self.hits.stage(name, &rec, &slots, &self.serials);
                self.reference(&rec, 1);
                rec.seen = self.generation;
                self.records.insert(name, rec);
                plan.added_now += 1;
            }
            None => {
                self.hits.plan(name, &rec, &slots, &self.serials, &mut plan.hits);
                plan.changes.push((name.clone(), Some(rec)));
            }
        }
        Ok(())
    }

    fn reference(&mut self, rec: &Installed, delta: i64) {
        for s in rec.slots.iter().filter(|s| s.answer != RESPONSE_PASS) {
            if self.interner.reference(s.answer, delta) {
                self.released.push(s.answer);
            }
        }
    }

    /// Writes a record's parts, the last first, so part 0 (which readers start from) links
    /// only to parts already written.
    fn write_record(&mut self, name: &Name, rec: &Installed) -> Result<(), StoreError> {
        let parts: Vec<&[Slot]> =
            if rec.slots.is_empty() { vec![&[]] } else { rec.slots.chunks(RECORD_SLOTS).collect() };
        for (i, chunk) in parts.iter().enumerate().rev() {
            let mut r = record(rec.flags, chunk);
            if i + 1 < parts.len() {
                r.flags |= RECORD_MORE;
            }
            self.maps
                .put_record(name.as_wire(), i as u32, &r)
                .map_err(MapsError::call("writing a NAMES map (is it full? see --answers-capacity)"))?;
        }
        Ok(())
    }

    fn delete_record(&mut self, name: &Name, from_part: usize, parts: usize) -> Result<(), StoreError> {
        for part in from_part..parts {
            self.maps.del_record(name.as_wire(), part as u32).map_err(MapsError::call("removing from a NAMES map"))?;
        }
        Ok(())
    }

    /// Applies a plan in phases, so a query reading a record and then an answer always gets
    /// one version's answer:
    /// 1. every changed, new or removed name gets a pass marker (its queries, and those of
    ///    missing names below it, go to the daemon);
    /// 2. zones with a new serial get it in their SERIALS slot (or, beyond the slots, in the
    ///    bytes of their answers carrying it): the names still pointing at those answers did not
    ///    change, so they serve the new version's answer;
    /// 3. new records (last part first), then removed names' records and stale parts;
    /// 4. answers nothing references any more are freed (a reader that still holds an old id
    ///    finds nothing and passes).
    fn commit(&mut self, plan: Plan, zones: &ZoneSet) -> Result<Diff, StoreError> {
        let t0 = std::time::Instant::now();
        let Plan { changes, interned: Interned { created, mut new_serials }, added_now, mut hits } = plan;
        let mut diff = Diff { responses_written: created.len(), added: added_now, ..Diff::default() };
        self.serials.moved(zones, &mut new_serials);
        // 1. Markers, for new names too: once the negatives change, a query for a name that
        //    exists only in the new version must not reach its ancestor's new NXDOMAIN.
        for (name, _) in &changes {
            // Before the serials change: an entry would lead past the marker to an answer
            // whose serial is about to move.
            let old = self.records.get(name);
            self.hits.forget(name, old);
            let marker = Slot { qtype: QTYPE_DEFAULT, variant: KEY_VARIANT_CHILD, answer: RESPONSE_PASS };
            let marker = record(old.map_or(0, |old| old.flags & RECORD_SIGNED), &[marker]);
            self.maps
                .put_record(name.as_wire(), 0, &marker)
                .map_err(MapsError::call("writing a NAMES map (is it full? see --answers-capacity)"))?;
        }
        let t1 = t0.elapsed();
        // 2. The serial: one slot per zone, or in place in the answers carrying it. Readers
        //    that overlap this see SERIAL_GEN move and pass; it is even again even if a write
        //    fails (the caller then restores the previous version).
        if !new_serials.is_empty() {
            self.maps.set_generation(true).map_err(MapsError::aya("writing the SERIAL_GEN map"))?;
            let written = self.serials.write(&new_serials, &mut self.maps);
            self.maps.set_generation(false).map_err(MapsError::aya("writing the SERIAL_GEN map"))?;
            diff.responses_written += written?;
        }
        let t2 = t0.elapsed();
        // 3. Records.
        for (name, new) in changes {
            let old = self.records.remove(&name);
            let old_parts = old.as_ref().map_or(0, Installed::parts);
            match new {
                Some(mut rec) => {
                    self.write_record(&name, &rec)?;
                    self.delete_record(&name, rec.parts(), old_parts)?;
                    self.reference(&rec, 1);
                    if old.is_some() {
                        diff.changed += 1
                    } else {
                        diff.added += 1
                    }
                    rec.seen = self.generation;
                    self.records.insert(&name, rec);
                    if let Some(entries) = hits.remove(&name) {
                        self.hits.put(&entries);
                    }
                }
                None => {
                    self.delete_record(&name, 0, old_parts)?;
                    diff.removed += 1;
                }
            }
            if let Some(old) = old {
                self.reference(&old, -1);
            }
        }
        self.serials.settle(zones);
        let t3 = t0.elapsed();
        // 4. Unreferenced answers: those whose last reference went, and new ones never used.
        //    A full compile creates about as many as there are: then a scan is cheaper.
        let mut candidates = std::mem::take(&mut self.released);
        candidates.extend(created);
        let unused: Vec<u32> = if candidates.len() > self.interner.len() / 2 {
            self.interner.unused()
        } else {
            candidates.sort_unstable();
            candidates.dedup();
            candidates.retain(|&id| self.interner.refs(id) == Some(0));
            candidates
        };
        for id in unused {
            self.interner.free(id, &mut self.serials, &mut self.maps)?;
            diff.responses_freed += 1;
        }
        log::debug!("commit phases: markers {t1:?}, serials {t2:?}, records {t3:?}, frees {:?}", t0.elapsed());
        Ok(diff)
    }

    /// A failed update: frees the answers it created (nothing references them yet).
    fn abandon(&mut self, plan: Plan) {
        self.hits.discard();
        self.maps.discard_batch();
        for id in plan.interned.created {
            if self.interner.refs(id) == Some(0) {
                let _ = self.interner.free(id, &mut self.serials, &mut self.maps);
            }
        }
    }
}

/// One record part holding `slots` (at most `RECORD_SLOTS`), the rest unused.
fn record(flags: u16, slots: &[Slot]) -> NameRecord {
    let unused = Slot { qtype: 0, variant: SLOT_UNUSED, answer: RESPONSE_PASS };
    let mut r = NameRecord { flags, count: slots.len() as u16, _pad: 0, slots: [unused; RECORD_SLOTS] };
    r.slots[..slots.len()].copy_from_slice(slots);
    r
}
