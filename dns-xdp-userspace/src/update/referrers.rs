//! Who points at whom: the index a narrow update follows from a changed name to the names whose
//! answers mention it (CNAME chains, additional-section targets), and the copy of it kept for
//! the zones installed.
//!
//! May call: the zones.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use crate::name::Name;
use crate::zone::{Node, ZoneSet};

/// Which names point at which (CNAME, DNAME, NS, MX, SRV, PTR targets): target -> owners.
/// Built once from a zone set, then kept up to date by adding the targets of names as they are
/// recompiled (an owner that stopped pointing somewhere stays listed: it is only recompiled
/// once too often).
#[derive(Default)]
pub struct Referrers {
    by_target: HashMap<Name, Vec<Name>>,
}

impl Referrers {
    pub fn build(zones: &ZoneSet) -> Self {
        let mut r = Referrers::default();
        for zone in zones.iter() {
            for (name, node) in &zone.nodes {
                r.add_node(name, node);
            }
        }
        r
    }

    fn add_node(&mut self, name: &Name, node: &Node) {
        for set in &node.rrsets {
            for target in set.rdatas.iter().filter_map(|rd| rd.target(set.rtype)) {
                let owners = self.by_target.entry(target).or_default();
                if !owners.contains(name) {
                    owners.push(name.clone());
                }
            }
        }
    }

    /// Records what `names` point at in `zones` now.
    fn add(&mut self, zones: &ZoneSet, names: &[Name]) {
        for name in names {
            if let Some(node) = zones.find(name).and_then(|z| z.nodes.get(name)) {
                self.add_node(name, node);
            }
        }
    }

    pub(super) fn of(&self, target: &Name) -> &[Name] {
        self.by_target.get(target).map_or(&[], Vec::as_slice)
    }
}

/// The index of the zones installed: built beside the start's compile (`expect`), else at the
/// first narrow update after a full install.
#[derive(Default)]
pub(super) struct Cache {
    index: Option<Referrers>,
    /// An index being built elsewhere (`expect`): waited for rather than built again.
    pending: Option<Receiver<(Arc<ZoneSet>, Referrers)>>,
}

impl Cache {
    /// A full install: the index no longer matches the zones installed.
    pub(super) fn clear(&mut self) {
        self.index = None;
        self.pending = None;
    }

    /// The index of the installed zones will arrive on `pending` (built on another thread,
    /// from the zones as they were installed): the first write waits for it there, which takes
    /// less than building its own (a walk of every zone: 0.3 s at a million names).
    pub(super) fn expect(&mut self, pending: Receiver<(Arc<ZoneSet>, Referrers)>) {
        self.pending = Some(pending);
    }

    /// The index of `installed` (the zones the maps hold now).
    pub(super) fn of(&mut self, installed: &ZoneSet) -> &Referrers {
        if let Some(pending) = self.pending.take().filter(|_| self.index.is_none()) {
            // Built for other zones (an update went live since): of no use.
            if let Ok((built_for, index)) = pending.recv()
                && std::ptr::eq(&*built_for, installed)
            {
                self.index = Some(index);
            }
        }
        self.index.get_or_insert_with(|| Referrers::build(installed))
    }

    /// After a narrow update: what the recompiled `names` point at now.
    pub(super) fn note(&mut self, zones: &ZoneSet, names: &[Name]) {
        if let Some(index) = self.index.as_mut() {
            index.add(zones, names);
        }
    }
}
