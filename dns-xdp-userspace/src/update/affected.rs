//! What a change touched: the names whose compiled answers may differ between two versions of
//! the zones, so an update recompiles those alone, or `None` when only a full compile is safe.
//!
//! May call: the zones, referrers.rs. Compiles nothing and writes nothing.

use std::collections::HashSet;
use std::sync::Arc;

use super::referrers::Referrers;
use crate::name::Name;
use dns_xdp_common::dns::rtype;

use crate::zone::{Zone, ZoneSet};

/// The names whose compiled answers may differ between `old` and `new`, when a narrow
/// recompile is safe: every owner whose data changed, its ancestors up to the apex (existence,
/// wildcards and the answers below them), and every name whose records point at a changed
/// name or below it (CNAME chains, additional-section targets), to a fixpoint. `None` when the
/// whole set must be recompiled: zones added or removed, a signed zone changed, or a change
/// to a wildcard, a zone cut or a DNAME, or to the set of types a zone holds.
pub fn affected(old: &ZoneSet, new: &ZoneSet) -> Option<Vec<Name>> {
    affected_with(old, new, None, None)
}

/// `affected`, told which owners the change touched (`touched`, the API's and IXFR's own
/// list), so the zones are not compared node by node.
/// With `referrers` (an index of `old`), names pointing at changed ones are looked up instead of
/// found by walking the zone.
pub fn affected_with(
    old: &ZoneSet,
    new: &ZoneSet,
    touched: Option<&[Name]>,
    referrers: Option<&Referrers>,
) -> Option<Vec<Name>> {
    if old.len() != new.len() {
        return None;
    }
    let mut out = Vec::new();
    for zone in new.iter() {
        let before = old.get(&zone.origin)?;
        if Arc::ptr_eq(before, zone) {
            continue;
        }
        if zone.signed || before.signed {
            return None;
        }
        let mut changed: HashSet<Name> = HashSet::new();
        match touched {
            Some(owners) => {
                changed.extend(
                    owners.iter().filter(|n| zones_find_is(new, n, zone) || zones_find_is(old, n, before)).cloned(),
                );
                changed.insert(zone.origin.clone());
            }
            None => {
                for (name, node) in &zone.nodes {
                    if before.nodes.get(name) != Some(node) {
                        changed.insert(name.clone());
                    }
                }
                for name in before.nodes.keys() {
                    if !zone.nodes.contains_key(name) {
                        changed.insert(name.clone());
                    }
                }
            }
        }
        let risky = |z: &Zone, n: &Name| {
            n.as_wire().starts_with(b"\x01*")
                || z.nodes.get(n).is_some_and(|node| {
                    node.get(rtype::DNAME).is_some() || (node.get(rtype::NS).is_some() && *n != z.origin)
                })
        };
        if changed.iter().any(|n| risky(zone, n) || risky(before, n)) {
            return None;
        }
        if zone.types != before.types {
            return None;
        }
        // Ancestors, then referrers until nothing new comes in.
        let mut all: HashSet<Name> = HashSet::new();
        for name in &changed {
            let mut n = Some(name.clone());
            while let Some(cur) = n {
                if !all.insert(cur.clone()) || cur == zone.origin {
                    break;
                }
                n = cur.parent();
            }
        }
        if let Some(index) = referrers {
            // Names pointing at a recompiled name, and at those, and so on. (A change above a
            // target, not at it, matters only for wildcards, cuts and DNAMEs, which take the
            // whole recompile above.)
            let mut queue: Vec<Name> = all.iter().cloned().collect();
            while let Some(target) = queue.pop() {
                for owner in index.of(&target) {
                    if zones_find_is(new, owner, zone) && all.insert(owner.clone()) {
                        queue.push(owner.clone());
                    }
                }
            }
            out.extend(all);
            continue;
        }
        loop {
            let before_len = all.len();
            let touches = |target: &Name| {
                target.suffix_offsets().any(|o| {
                    // A change at or above the target (not the apex: its SOA changes every time)
                    // may change what the target resolves to.
                    Name::from_wire(&target.as_wire()[o..])
                        .is_some_and(|s| (s != zone.origin && changed.contains(&s)) || all.contains(target))
                })
            };
            let mut found = Vec::new();
            for (name, node) in &zone.nodes {
                if all.contains(name) {
                    continue;
                }
                let points = node
                    .rrsets
                    .iter()
                    .any(|set| set.rdatas.iter().any(|rd| rd.target(set.rtype).is_some_and(|t| touches(&t))));
                if points {
                    found.push(name.clone());
                }
            }
            all.extend(found);
            if all.len() == before_len {
                break;
            }
        }
        out.extend(all);
    }
    Some(out)
}

/// Whether `name` belongs to `zone` within `zones`.
fn zones_find_is(zones: &ZoneSet, name: &Name, zone: &Arc<Zone>) -> bool {
    zones.find(name).is_some_and(|z| Arc::ptr_eq(z, zone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affected_names_follow_cname_chains_with_and_without_the_index() {
        let old = crate::test_zones(&["zones/xdp.test.zone"]);
        let text = std::fs::read_to_string(old.iter().next().expect("one zone").file.as_path()).unwrap();
        let target = text
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("mixed") && l.contains(" A "))
            .expect("an A record at mixed");
        let changed = text.replace(target, "mixed IN A 192.0.2.99").replace(" 7 3600", " 8 3600");
        let dir = std::env::temp_dir().join(format!("dnsxdp-affected-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("changed.zone");
        std::fs::write(&file, &changed).unwrap();
        let (new, _) = crate::load_zones(&[file]).unwrap();
        let name = |t: &str| Name::from_text(t).unwrap();
        let scan: HashSet<Name> = affected(&old, &new).expect("a narrow change").into_iter().collect();
        let index = Referrers::build(&old);
        let hinted: HashSet<Name> = affected_with(&old, &new, Some(&[name("mixed.xdp.test")]), Some(&index))
            .expect("a narrow change")
            .into_iter()
            .collect();
        for n in ["mixed.xdp.test", "alias.xdp.test", "chain.xdp.test", "xdp.test"] {
            assert!(scan.contains(&name(n)) && hinted.contains(&name(n)), "{n} recompiled");
        }
        assert_eq!(scan, hinted, "the index finds what the walk finds");
        std::fs::remove_dir_all(&dir).ok();
    }
}
