//! The kernel's answer store: what the daemon remembers of the NAMES and RESPONSES maps
//! (kernel/maps.rs explains them), so an update writes only the difference.
//!
//! - names.rs: the records installed, by name;
//! - interning.rs: one id per distinct answer, shared by every name serving it (ids from
//!   ids.rs, given back after a quarantine);
//! - serials.rs: the answers carrying their zone's SOA serial, which a new serial rewrites;
//! - plan.rs: an update, staged as the compiler hands names over, committed in phases so that
//!   every answer a query gets belongs to one version;
//! - hit_entries.rs: the hit index kept in step with the records.
//!
//! May call: kernel (the maps, the hit index, the key search), compile's types, the zones. It
//! compiles nothing: the update module (update/) hands it each name's compiled slots.

mod hit_entries;
mod ids;
mod interning;
mod names;
pub mod plan;
mod serials;

use dns_xdp_common::{KEY_VARIANT_CHILD, MAX_KERNEL_NAME};
use foldhash::HashMap;

use crate::compile::{Entries, NameSlots};
use crate::kernel::MapsError;
use crate::kernel::hits::HitIndex;
use crate::kernel::maps::Maps;
use crate::name::Name;
use crate::zone::ZoneSet;
use hit_entries::HitSync;
use interning::Interner;
use names::Records;
use serials::Serials;

/// Why an update of the store failed; the caller restores the previous version.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Maps(#[from] MapsError),
    /// More distinct answers of one size class than its ids can name at once.
    #[error("answer ids of size class {0} exhausted")]
    IdsExhausted(u32),
    /// A precompiled entry (tests, benchmarks) whose name is not in wire format.
    #[error("an entry's name is not a wire-format name")]
    EntryName,
}

/// How many entries an update wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Diff {
    /// Names whose record was added, changed or removed.
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    /// Answers written (new ones and rewritten shared negatives) and freed.
    pub responses_written: usize,
    pub responses_freed: usize,
}

/// The store and its kernel maps.
pub struct Store {
    maps: Maps,
    records: Records,
    interner: Interner,
    serials: Serials,
    /// Answers whose last reference went since the last commit (freed there if still unused).
    released: Vec<u32>,
    /// Bumped by every full compile (`Installed::seen`).
    generation: u32,
    /// The hit index, kept in step with `records`; none in tests without one.
    hits: HitSync,
}

impl Store {
    pub fn new(maps: Maps, hits: Option<HitIndex>) -> Self {
        Store {
            maps,
            records: Records::default(),
            interner: Interner::new(),
            serials: Serials::default(),
            released: Vec::new(),
            generation: 0,
            hits: HitSync::new(hits),
        }
    }

    /// Gives only the first `n` zones a SERIALS slot (at most `SERIAL_SLOTS`): the rest get
    /// their answers' serials rewritten in place. Before anything is installed; for tests of
    /// that path, which otherwise needs 4,097 zones.
    pub fn limit_serial_slots(&mut self, n: u32) {
        self.serials.limit_slots(n);
    }

    /// Names with a record installed.
    pub fn names(&self) -> usize {
        self.records.len()
    }

    /// Distinct answers installed.
    pub fn answers(&self) -> usize {
        self.interner.len()
    }

    /// Entries in the hit index.
    pub fn hits_held(&self) -> usize {
        self.hits.held()
    }

    /// Whether `name` has its own answers installed (not only its existence marker).
    pub fn is_hot(&self, name: &Name) -> bool {
        self.records.get(name).is_some_and(|r| r.slots.iter().any(|s| s.variant & KEY_VARIANT_CHILD == 0))
    }

    /// The answer id the kernel finds for a query in the records as installed (its key search:
    /// kernel/search.rs), `None` when it passes. For tests: which queries the kernel answers.
    pub fn search(&self, qname: &[u8], qtype: u16, dnssec: bool) -> Option<u32> {
        crate::kernel::search::search(&self.records, qname, qtype, dnssec)
    }

    /// Installs a precompiled logical map (tests and benchmarks): every name of `entries`,
    /// nothing else.
    pub fn install_entries(&mut self, entries: &Entries) -> Result<Diff, StoreError> {
        let mut by_name: HashMap<Vec<u8>, NameSlots> = HashMap::default();
        for (k, v) in entries {
            let len = k.name.iter().position(|&b| b == 0).map_or(k.name.len(), |p| p + 1);
            // Names are wire format: the first zero byte is the root label only when every
            // label length before it was followed; walk the labels instead.
            let len = crate::name::wire_name_len(&k.name).unwrap_or(len);
            by_name.entry(k.name[..len].to_vec()).or_default().push((k.qtype, k.variant, *v));
        }
        let mut names = Vec::with_capacity(by_name.len());
        for (wire, slots) in by_name {
            let name = Name::from_wire(&wire).ok_or(StoreError::EntryName)?;
            if name.as_wire().len() <= MAX_KERNEL_NAME {
                names.push((name, slots));
            }
        }
        let (zones, cold) = (ZoneSet::default(), |_: &Name| false);
        let mut staging = self.stage(&zones, &cold, true);
        for (name, slots) in names {
            staging.add(&name, slots);
        }
        staging.commit()
    }
}
