//! Assembling scanned records into a `Zone`: RRsets grouped at their nodes (RRSIGs by the type they
//! cover, duplicates dropped, the lowest TTL served), NSEC3 owners kept apart, the NSEC chain, empty
//! non-terminals, the serial and whether the zone is signed. Which records and nodes a zone may
//! hold is rules.rs's to say; this file calls it and reports what it finds.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use dns_xdp_common::dns::rtype;

use super::rules;
use super::{Diagnostic, Scanned, Severity, type_name};
use crate::name::Name;
use crate::zone::{Node, NodeMap, RRset, Rdata, Zone, canonical_key, nsec3};

/// The nodes while a zone is assembled.
type Nodes = HashMap<Name, Node, foldhash::fast::RandomState>;

/// An RRset as its records come in, which `build` boxes for the zone.
pub(in crate::zone) struct Growing {
    pub(in crate::zone) rtype: u16,
    pub(in crate::zone) ttl: u32,
    pub(in crate::zone) rdatas: Vec<Rdata>,
}

impl Growing {
    fn into_rrset(self) -> RRset {
        RRset { rtype: self.rtype, ttl: self.ttl, rdatas: self.rdatas.into_boxed_slice() }
    }

    pub(in crate::zone) fn build(&self) -> RRset {
        RRset { rtype: self.rtype, ttl: self.ttl, rdatas: self.rdatas.as_slice().into() }
    }
}

/// The zone `records` make, or `None` when they make none; every problem found goes to `diags`
/// (a zone with an error among them must not be served).
pub(super) fn build_zone(file: Arc<PathBuf>, records: Vec<Scanned>, diags: &mut Vec<Diagnostic>) -> Option<Zone> {
    // The zone's origin is the owner of its SOA record.
    let soas: Vec<&Scanned> = records.iter().filter(|r| r.rtype == rtype::SOA).collect();
    let Some(first_soa) = soas.first() else {
        diags.push(Diagnostic {
            file,
            line: 1,
            severity: Severity::Error,
            message: "missing SOA record: a zone needs exactly one, at its apex".into(),
        });
        return None;
    };
    let origin = first_soa.owner.clone();
    for extra in soas.iter().skip(1) {
        diags.push(extra.diagnostic(Severity::Error, format!("second SOA record (the zone's SOA is at {origin})")));
    }
    let (mut nodes, mut firsts) = group(&records, &origin, diags);
    rules::check_nodes(&nodes, &mut firsts, &origin, first_soa, diags);

    // NSEC3 owners are hashes, not names of the zone's tree (RFC 5155 section 7.2.8): a query for
    // one gets NXDOMAIN. Keep them apart (not the apex: rules.rs refuses an NSEC3 record there).
    let hashed: Vec<Name> =
        nodes.iter().filter(|(o, n)| n.get(rtype::NSEC3).is_some() && **o != origin).map(|(o, _)| o.clone()).collect();
    let nsec3_nodes: std::collections::HashMap<Name, Node> =
        hashed.iter().filter_map(|o| nodes.remove_entry(o)).collect();
    let nsec3 = match nodes.get(&origin).and_then(|n| n.get(rtype::NSEC3PARAM)) {
        Some(param) => {
            let chain = nsec3::Chain::new(&param.rdatas[0].wire, nsec3_nodes);
            if chain.is_none() {
                diags.push(first_soa.diagnostic(
                    Severity::Error,
                    format!("NSEC3PARAM at {origin}: malformed or more than {} iterations", nsec3::MAX_ITERATIONS),
                ));
            }
            chain
        }
        None => None,
    };
    let mut nsec_chain: Vec<(Vec<Vec<u8>>, Name)> = nodes
        .iter()
        .filter(|(_, n)| n.get(rtype::NSEC).is_some())
        .map(|(o, _)| (canonical_key(o), o.clone()))
        .collect();
    nsec_chain.sort();
    // Empty non-terminals: every ancestor of a name, up to the origin, exists (RFC 4592 section 2.2.2).
    let owners: Vec<Name> = nodes.keys().cloned().collect();
    for owner in owners {
        let mut cur = owner;
        while cur != origin {
            let Some(parent) = cur.parent() else { break };
            nodes.entry(parent.clone()).or_default();
            cur = parent;
        }
    }
    // No apex node when the first SOA itself was refused above (its class or TTL; already
    // reported): fuzz/xfr found the lookup panicking on such a transfer.
    let soa_wire = &nodes.get(&origin)?.get(rtype::SOA)?.rdatas[0].wire;
    let mname_len = crate::name::wire_name_len(soa_wire)?;
    let rname_len = crate::name::wire_name_len(&soa_wire[mname_len..])?;
    let serial_at = mname_len + rname_len;
    let serial = u32::from_be_bytes(soa_wire.get(serial_at..serial_at + 4)?.try_into().ok()?);
    // Signed means served with signatures: a DNSKEY at the apex and an RRSIG over the SOA, as
    // Knot (zone_contents_is_signed) and NSD (is_secure) decide. A zone that only holds DNSKEY or DS
    // records is unsigned: its referrals carry no DS and its answers no proofs.
    let apex = &nodes[&origin];
    let signed = apex.get(rtype::DNSKEY).is_some() && apex.sigs_for(rtype::SOA).is_some();
    if apex.get(rtype::DNSKEY).is_some() && !signed {
        diags.push(first_soa.diagnostic(
            Severity::Warning,
            format!(
                "{origin} has DNSKEY records but no RRSIG over its SOA: served unsigned (no DS in referrals, no proofs)"
            ),
        ));
    }
    // The zone keeps a copy made in one go, now that the parse is done: the nodes as built sit
    // among the blocks the parse and the grouping freed, which would keep pages the zone only
    // partly uses for as long as it is served (zone RSS at a million names: 380 B a name as
    // built, 250 copied; the copy takes about 0.5 s there).
    let nodes: NodeMap = nodes.iter().map(|(name, node)| (name.clone(), node.clone())).collect();
    let mut types: Vec<u16> = nodes.values().flat_map(|n| n.rrsets.iter().map(|s| s.rtype)).collect();
    types.sort_unstable();
    types.dedup();
    Some(Zone { origin, file, nodes, serial, signed, nsec_chain, nsec3, types })
}

/// Groups the records rules.rs accepts into RRsets at their nodes, straight from the records.
/// RRSIGs are grouped by the type they cover: each such set has its own TTL. Returns the nodes
/// and, for each RRset of a type the node rules check (`rules::CHECKED`), its owner, type and
/// first record, for their diagnostics.
fn group<'r>(records: &'r [Scanned], origin: &Name, diags: &mut Vec<Diagnostic>) -> (Nodes, Vec<rules::First<'r>>) {
    type Growing2 = (Vec<Growing>, Vec<Growing>);
    let mut growing: HashMap<Name, Growing2, foldhash::fast::RandomState> = HashMap::default();
    let mut firsts = Vec::new();
    for r in records {
        if let Some(problem) = rules::record_problem(r, origin) {
            diags.push(r.diagnostic(Severity::Error, problem));
            continue;
        }
        let node = match growing.get_mut(&r.owner) {
            Some(node) => node,
            None => growing.entry(r.owner.clone()).or_default(),
        };
        let (sets, key) = if r.rtype == rtype::RRSIG {
            (&mut node.1, covered_type(r.rtype, &r.rdata))
        } else {
            (&mut node.0, r.rtype)
        };
        let set = match sets.iter().position(|s| s.rtype == key) {
            Some(i) => &mut sets[i],
            None => {
                if rules::CHECKED.contains(&r.rtype) {
                    firsts.push((r.owner.clone(), r.rtype, r));
                }
                sets.push(Growing { rtype: key, ttl: r.ttl, rdatas: Vec::new() });
                sets.last_mut().expect("just pushed")
            }
        };
        let rdata = Rdata::new(r.rtype, r.rdata.clone());
        if set.rdatas.contains(&rdata) {
            diags.push(r.diagnostic(
                Severity::Warning,
                format!("duplicate {} record at {} ignored", type_name(r.rtype), r.owner),
            ));
            continue;
        }
        if set.ttl != r.ttl {
            diags.push(r.diagnostic(
                Severity::Warning,
                format!(
                    "TTL {} differs from {} of the same {} RRset at {}; serving the lower (RFC 2181 section 5.2)",
                    r.ttl,
                    set.ttl,
                    type_name(r.rtype),
                    r.owner
                ),
            ));
            set.ttl = set.ttl.min(r.ttl);
        }
        set.rdatas.push(rdata);
    }
    // The nodes: RRsets by type, signatures by the type they cover, each list exactly as long
    // as it needs to be.
    let mut nodes = Nodes::default();
    nodes.reserve(growing.len());
    for (owner, (mut rrsets, mut sigs)) in growing {
        rrsets.sort_by_key(|s| s.rtype);
        sigs.sort_by_key(|s| s.rtype);
        let node = Node {
            rrsets: rrsets.into_iter().map(Growing::into_rrset).collect(),
            sigs: sigs.into_iter().map(Growing::into_rrset).collect(),
        };
        nodes.insert(owner, node);
    }
    (nodes, firsts)
}

/// The type an RRSIG covers (its first two RDATA bytes); 0 for every other type.
fn covered_type(rt: u16, rdata: &[u8]) -> u16 {
    match (rt, rdata) {
        (rtype::RRSIG, [hi, lo, ..]) => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    }
}
