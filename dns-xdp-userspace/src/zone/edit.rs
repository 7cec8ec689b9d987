//! Zone edits: the changes of one write (RRsets replaced or deleted, as the control API takes
//! them) turned into the zone's next version, all or nothing. Pure: no HTTP, no locks, no
//! journal; api/ validates the JSON into `Change`s and commits what this returns. It builds
//! through the zone loader's rules (load/), so an edit obeys exactly what a zone file does.

use std::path::PathBuf;
use std::sync::Arc;

use dns_xdp_common::dns::rtype;

use super::load::{Growing, MAX_TTL};
use super::{Diagnostic, Node, Rdata, Record, Zone, soa_with_serial, type_name, zone_from_records};
use crate::name::Name;

/// One validated change: replace (`Some`) or delete (`None`) the RRset at (owner, type).
#[derive(Clone, Debug)]
pub struct Change {
    pub owner: Name,
    pub rtype: u16,
    pub records: Option<Vec<Record>>,
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// Change number `index` deletes an RRset the zone does not hold.
    #[error("no {} RRset at {owner}", type_name(*rtype))]
    NoRrset { index: usize, owner: Name, rtype: u16 },
    /// The zone the changes make breaks the zone rules.
    #[error("{}", .0.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
}

/// `zone` after `changes`, with SOA serial `serial`; `source` names the new version in
/// diagnostics. Puts of ordinary RRsets copy only what they touch (`narrow`); anything else
/// (deletions, zone-wide types, signed zones, CNAME conflicts) is the whole rebuild.
pub fn apply(source: &str, zone: &Zone, changes: &[Change], serial: u32) -> Result<Zone, EditError> {
    match narrow(source, zone, changes, serial) {
        Some(new) => Ok(new),
        None => rebuild(source, zone, changes, serial),
    }
}

/// The whole rebuild: the zone's records as served with the changed RRsets replaced or removed,
/// and the SOA given `serial`, validated like a zone file.
pub fn rebuild(source: &str, zone: &Zone, changes: &[Change], serial: u32) -> Result<Zone, EditError> {
    // As served, not sorted: the RRsets this write leaves alone must come out identical, since
    // only the touched ones are recompiled for the kernel.
    let mut records = zone.records_as_served();
    for (index, c) in changes.iter().enumerate() {
        let before = records.len();
        records.retain(|r| !(r.owner == c.owner && r.rtype == c.rtype));
        match &c.records {
            Some(new) => records.extend(new.iter().cloned()),
            None if before == records.len() => {
                return Err(EditError::NoRrset { index, owner: c.owner.clone(), rtype: c.rtype });
            }
            None => {}
        }
    }
    let soa = zone.soa_record();
    records.push(Record { rdata: soa_with_serial(&soa.rdata, serial), ..soa });
    zone_from_records(source, records).map_err(EditError::Invalid)
}

/// What `rebuild` makes of puts alone, made by copying only the shards of the names they touch.
/// `None` when the change needs the whole rebuild (which also reports any error precisely): a
/// signed zone, a deletion or an empty RRset, a type with zone-wide rules (SOA, NS, DNAME, DNSSEC
/// types), a TTL out of range, or a CNAME that would break its rules.
pub fn narrow(source: &str, zone: &Zone, changes: &[Change], serial: u32) -> Option<Zone> {
    const ZONE_WIDE: [u16; 9] = [
        rtype::SOA,
        rtype::NS,
        rtype::DNAME,
        rtype::DS,
        rtype::RRSIG,
        rtype::NSEC,
        rtype::DNSKEY,
        rtype::NSEC3,
        rtype::NSEC3PARAM,
    ];
    if zone.signed || zone.nsec3.is_some() || !zone.nsec_chain.is_empty() {
        return None;
    }
    let origin = &zone.origin;
    let mut new = zone.clone();
    new.file = Arc::new(PathBuf::from(source));
    for Change { owner, rtype: rt, records } in changes {
        let records = records.as_ref()?;
        let first = records.first()?;
        if ZONE_WIDE.contains(rt) || !owner.is_subdomain_of(origin) {
            return None;
        }
        // As the loader groups them: duplicates dropped, the lowest TTL served.
        let mut set = Growing { rtype: *rt, ttl: first.ttl, rdatas: Vec::new() };
        for r in records {
            if r.owner != *owner || r.rtype != *rt || r.ttl > MAX_TTL {
                return None;
            }
            let rdata = Rdata::new(*rt, r.rdata.clone());
            if set.rdatas.contains(&rdata) {
                continue;
            }
            set.ttl = set.ttl.min(r.ttl);
            set.rdatas.push(rdata);
        }
        let existed = new.nodes.contains_key(owner);
        let mut node = new.nodes.get(owner).cloned().unwrap_or_default();
        let mut rrsets = std::mem::take(&mut node.rrsets).into_vec();
        match rrsets.binary_search_by_key(rt, |s| s.rtype) {
            Ok(i) => rrsets[i] = set.build(),
            Err(i) => rrsets.insert(i, set.build()),
        }
        node.rrsets = rrsets.into();
        if let Some(cname) = node.get(rtype::CNAME) {
            let beside = node.rrsets.iter().any(|r| !matches!(r.rtype, rtype::CNAME | rtype::RRSIG | rtype::NSEC));
            if owner == origin || beside || cname.rdatas.len() > 1 {
                return None;
            }
        }
        new.nodes.insert(owner.clone(), node);
        // Empty non-terminals up to the origin, as the loader adds them.
        if !existed {
            let mut cur = owner.clone();
            while cur != *origin {
                let parent = cur.parent()?;
                if !new.nodes.contains_key(&parent) {
                    new.nodes.insert(parent.clone(), Node::default());
                }
                cur = parent;
            }
        }
        if let Err(at) = new.types.binary_search(rt) {
            new.types.insert(at, *rt);
        }
    }
    let apex = new.nodes.get_mut(origin)?;
    let soa = apex.rrsets.iter_mut().find(|s| s.rtype == rtype::SOA)?;
    let wire = soa_with_serial(&soa.rdatas.first()?.wire, serial);
    soa.rdatas[0] = Rdata::new(rtype::SOA, wire);
    new.serial = serial;
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::parse_records;

    fn origin() -> Name {
        Name::from_text("inc.test").unwrap()
    }

    fn zone() -> Zone {
        let text = "@ 300 IN SOA ns host 7 2 3 4 60\n@ 300 IN NS ns\nns 300 IN A 192.0.2.1\n\
                    www 60 IN A 192.0.2.9\nwww 60 IN A 192.0.2.3\nalias 60 IN CNAME www\nmail 60 IN MX 10 ns\n";
        zone_from_records("API change", parse_records(text, &origin()).unwrap()).unwrap()
    }

    /// A put of the records in `line`, all at `owner` and of one type.
    fn put(owner: &str, line: &str) -> Change {
        let records = parse_records(line, &origin()).unwrap();
        Change { owner: Name::from_text(owner).unwrap(), rtype: records[0].rtype, records: Some(records) }
    }

    fn delete(owner: &str, rtype: u16) -> Change {
        Change { owner: Name::from_text(owner).unwrap(), rtype, records: None }
    }

    #[test]
    fn narrow_equals_the_whole_rebuild() {
        let zone = zone();
        let cases = vec![
            vec![put("www.inc.test", "www 60 IN A 192.0.2.7\nwww 30 IN A 192.0.2.8\nwww 60 IN A 192.0.2.7\n")],
            vec![put("a.b.new.inc.test", "a.b.new 120 IN TXT \"fresh\"\n")],
            vec![put("mail.inc.test", "mail 60 IN AAAA 2001:db8::1\n"), put("www.inc.test", "www 60 IN A 192.0.2.1\n")],
            vec![put("alias.inc.test", "alias 60 IN CNAME mail\n")],
        ];
        for changes in cases {
            let narrow = narrow("API change", &zone, &changes, 8).expect("the narrow path applies");
            let whole = rebuild("API change", &zone, &changes, 8).expect("valid change");
            assert_eq!(narrow.nodes, whole.nodes, "{changes:?}");
            assert_eq!(
                (narrow.types.clone(), narrow.serial, narrow.soa_record()),
                (whole.types.clone(), whole.serial, whole.soa_record())
            );
        }
    }

    #[test]
    fn narrow_leaves_the_hard_cases_to_the_rebuild() {
        let zone = zone();
        let cname_beside = [put("alias.inc.test", "alias 60 IN TXT \"beside\"\n")];
        assert!(narrow("x", &zone, &cname_beside, 8).is_none(), "CNAME and other data");
        assert!(narrow("x", &zone, &[put("sub.inc.test", "sub 60 IN NS ns\n")], 8).is_none(), "a delegation");
        assert!(narrow("x", &zone, &[delete("www.inc.test", rtype::A)], 8).is_none(), "a deletion");
        let empty = Change { records: Some(Vec::new()), ..delete("www.inc.test", rtype::A) };
        assert!(narrow("x", &zone, &[empty], 8).is_none(), "an empty RRset");
    }

    #[test]
    fn apply_deletes_and_bumps_the_serial() {
        let zone = zone();
        let new = apply("x", &zone, &[delete("mail.inc.test", rtype::MX)], 8).expect("a valid deletion");
        assert_eq!(new.serial, 8);
        assert!(new.nodes.get(&Name::from_text("mail.inc.test").unwrap()).is_none_or(|n| n.get(rtype::MX).is_none()));
        assert_eq!(new.soa_record().rdata, soa_with_serial(&zone.soa_record().rdata, 8));
    }

    #[test]
    fn errors_say_which_change_and_what_rule() {
        let zone = zone();
        let missing = [put("www.inc.test", "www 60 IN A 192.0.2.1\n"), delete("nope.inc.test", rtype::TXT)];
        match apply("x", &zone, &missing, 8) {
            Err(e @ EditError::NoRrset { index: 1, .. }) => assert_eq!(e.to_string(), "no TXT RRset at nope.inc.test."),
            other => panic!("expected NoRrset for change 1, got {other:?}"),
        }
        let beside = [put("alias.inc.test", "alias 60 IN TXT \"beside\"\n")];
        let err = apply("x", &zone, &beside, 8).expect_err("CNAME beside other data");
        assert!(matches!(err, EditError::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains("CNAME at alias.inc.test. beside other data"), "{err}");
    }
}
