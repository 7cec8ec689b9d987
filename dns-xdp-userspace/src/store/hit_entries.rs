//! The hit index (kernel/hits.rs) kept in step with the records: which entries a name's record
//! gives, emptied before the record changes, written once it (and the answers they name) are in.
//!
//! May call: kernel/hits.rs, names.rs, serials.rs (which answers may be held inline).

use dns_xdp_common::{
    HIT_INLINE, HIT_SERVES_DO, HIT_SERVES_PLAIN, HitEntry, KEY_VARIANT_CHILD, KEY_VARIANT_DO, QTYPE_DEFAULT,
    RESPONSE_CLASS_SHIFT, RESPONSE_PASS, Slot,
};

use foldhash::HashMap;

use super::names::Installed;
use super::serials::Serials;
use crate::compile::NameSlots;
use crate::kernel::hits::HitIndex;
use crate::kernel::search::is_meta;
use crate::name::Name;

/// Hit entries written at once while staging (`HitSync::stage`): 8 MiB of them.
const HIT_WRITE_BATCH: usize = 65_536;

/// An entry with its pairs (`HitIndex::entry`).
pub(super) type Entry = ([u32; 2], HitEntry);

/// The types a name's slots give hit entries, each once (its plain and DO slots make one or two
/// entries together): a type's own answer at the name, meta types (ANY and the like) aside.
/// They are rare enough to leave out, and every name has an ANY slot, which would take half the
/// index. Filling and forgetting both go by this.
fn hit_types(slots: &[Slot]) -> impl Iterator<Item = u16> + '_ {
    let hit = |s: &Slot| s.variant & KEY_VARIANT_CHILD == 0 && s.qtype != QTYPE_DEFAULT && !is_meta(s.qtype);
    slots
        .iter()
        .enumerate()
        .filter(move |&(i, s)| hit(s) && !slots[..i].iter().any(|o| hit(o) && o.qtype == s.qtype))
        .map(|(_, s)| s.qtype)
}

/// The hit index, when there is one, and the entries waiting to be written into it.
#[derive(Default)]
pub(super) struct HitSync {
    index: Option<HitIndex>,
    /// Entries of names written while staging, written in order of place when there are many
    /// (`HitIndex::put_all`) and at the end of staging.
    ready: Vec<Entry>,
    /// Those that name an answer in a batch not yet written: only after it is.
    pending: Vec<Entry>,
}

impl HitSync {
    pub(super) fn new(index: Option<HitIndex>) -> Self {
        HitSync { index, ..HitSync::default() }
    }

    /// Entries in the index.
    pub(super) fn held(&self) -> usize {
        self.index.as_ref().map_or(0, HitIndex::held)
    }

    /// Empties the entries of `name`, whose record `rec` is about to change or go. Safe at any
    /// time: queries then take the record lookup.
    pub(super) fn forget(&mut self, name: &Name, rec: Option<&Installed>) {
        let (Some(index), Some(rec)) = (self.index.as_mut(), rec) else { return };
        for qtype in hit_types(&rec.slots) {
            index.remove(name.as_wire(), qtype);
        }
    }

    /// A name's entries into `out` (none without an index, or for a name too long for it): for
    /// each type but the meta types with a slot of its own in `rec`, the answer the kernel's
    /// first step gives a query without DO (the plain slot) and with DO (the DO slot, else the
    /// plain one), with the answer itself when it is one of the smallest and never rewritten
    /// under its id (not one carrying a SOA serial). `slots` are the values `rec` was made from.
    pub(super) fn entries(
        &self,
        name: &Name,
        rec: &Installed,
        slots: &NameSlots,
        serials: &Serials,
        out: &mut Vec<Entry>,
    ) {
        let Some(index) = self.index.as_ref() else { return };
        // `own` skips pass markers: those queries take the record lookup, which passes them.
        let own = |qtype: u16, variant: u16| {
            rec.slots
                .iter()
                .find(|s| s.qtype == qtype && s.variant == variant)
                .map(|s| s.answer)
                .filter(|&a| a != RESPONSE_PASS)
        };
        let mut put = |qtype: u16, variant: u16, serves: u32, answer: u32| {
            let small = answer >> RESPONSE_CLASS_SHIFT == 0 && !serials.carries(answer);
            let value = slots.iter().find(|s| s.0 == qtype && s.1 == variant).map(|s| &s.2);
            out.extend(index.entry(name.as_wire(), qtype, serves, answer, value.filter(|_| small)));
        };
        for qtype in hit_types(&rec.slots) {
            let plain = own(qtype, 0);
            let dnssec = own(qtype, KEY_VARIANT_DO).map(|a| (a, KEY_VARIANT_DO)).or(plain.map(|a| (a, 0)));
            match (plain, dnssec) {
                (Some(p), Some((d, _))) if p == d => put(qtype, 0, HIT_SERVES_PLAIN | HIT_SERVES_DO, p),
                _ => {
                    if let Some(p) = plain {
                        put(qtype, 0, HIT_SERVES_PLAIN, p);
                    }
                    if let Some((d, variant)) = dnssec {
                        put(qtype, variant, HIT_SERVES_DO, d);
                    }
                }
            }
        }
    }

    /// The entries of a name whose record the commit writes, into `planned`.
    pub(super) fn plan(
        &self,
        name: &Name,
        rec: &Installed,
        slots: &NameSlots,
        serials: &Serials,
        planned: &mut HashMap<Name, Vec<Entry>>,
    ) {
        let mut entries = Vec::new();
        self.entries(name, rec, slots, serials, &mut entries);
        if !entries.is_empty() {
            planned.insert(name.clone(), entries);
        }
    }

    /// Queues the entries of a name written while staging: those holding their answer are
    /// written in batches in order of place, those naming an id once its answer is written.
    pub(super) fn stage(&mut self, name: &Name, rec: &Installed, slots: &NameSlots, serials: &Serials) {
        let mut ready = std::mem::take(&mut self.ready);
        let before = ready.len();
        self.entries(name, rec, slots, serials, &mut ready);
        for i in (before..ready.len()).rev() {
            if ready[i].1.flags & HIT_INLINE == 0 {
                self.pending.push(ready.swap_remove(i));
            }
        }
        if ready.len() >= HIT_WRITE_BATCH
            && let Some(index) = self.index.as_mut()
        {
            index.put_all(&mut ready);
        }
        self.ready = ready;
    }

    /// Writes the queued entries, now that every batch is written.
    pub(super) fn put_pending(&mut self) {
        let (mut ready, mut pending) = (std::mem::take(&mut self.ready), std::mem::take(&mut self.pending));
        if let Some(index) = self.index.as_mut() {
            index.put_all(&mut ready);
            index.put_all(&mut pending);
        }
    }

    /// Writes a committed name's entries.
    pub(super) fn put(&mut self, entries: &[Entry]) {
        if let Some(index) = self.index.as_mut() {
            for (pairs, entry) in entries {
                index.put(*pairs, entry);
            }
        }
    }

    /// A failed update: its names' records may not be in the kernel, so their queued entries
    /// go; those queries keep the record lookup.
    pub(super) fn discard(&mut self) {
        self.ready.clear();
        self.pending.clear();
    }
}
