//! What a zone may hold before it goes live: per record (class IN, a TTL resolvers honour, a name
//! inside the zone) and per node (CNAME alone and not at the apex, DNAME and SOA where they may
//! stand, NS at the apex with glue for in-zone targets, no NSEC3 record at the apex). Each problem
//! is a diagnostic at the line of the record it is about; build.rs calls these while it assembles.

use std::collections::HashMap;
use std::hash::BuildHasher;

use dns_xdp_common::dns::rtype;
use domain::base::iana::Class;

use super::{Diagnostic, Scanned, Severity};
use crate::name::Name;
use crate::zone::Node;

/// Largest TTL a resolver honours (RFC 2181 section 8: the top bit must be zero).
pub(in crate::zone) const MAX_TTL: u32 = 0x7fff_ffff;

/// Types whose RRsets the node rules check: build.rs remembers the first record of each.
pub(super) const CHECKED: [u16; 4] = [rtype::CNAME, rtype::DNAME, rtype::SOA, rtype::NS];

/// An RRset the node rules check: its owner, its type and its first record.
pub(super) type First<'r> = (Name, u16, &'r Scanned);

/// Why the zone cannot serve record `r`, if it cannot.
pub(super) fn record_problem(r: &Scanned, origin: &Name) -> Option<String> {
    if r.class != Class::IN {
        return Some(format!("class {} is not served (only IN)", r.class));
    }
    if r.ttl > MAX_TTL {
        return Some(format!("TTL {} exceeds 2^31-1; resolvers treat it as 0 (RFC 2181 section 8)", r.ttl));
    }
    if !r.owner.is_subdomain_of(origin) {
        return Some(format!("{} is outside the zone {origin}", r.owner));
    }
    None
}

/// The node-level rules, reported in the order of the records they are about (`firsts` is
/// sorted so); the apex's own at its SOA record.
pub(super) fn check_nodes<S: BuildHasher>(
    nodes: &HashMap<Name, Node, S>,
    firsts: &mut [First<'_>],
    origin: &Name,
    first_soa: &Scanned,
    diags: &mut Vec<Diagnostic>,
) {
    let mut push = |r: &Scanned, message: String| diags.push(r.diagnostic(Severity::Error, message));
    firsts.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (owner, rt, first) in firsts.iter() {
        let node = &nodes[owner];
        let set = node.get(*rt).expect("grouped above");
        match *rt {
            rtype::CNAME => {
                if owner == origin {
                    push(
                        first,
                        format!(
                            "CNAME at the zone apex {origin} is not allowed (RFC 1912 section 2.4); use ALIAS flattening to point the apex elsewhere"
                        ),
                    );
                } else if node.rrsets.iter().any(|r| !matches!(r.rtype, rtype::CNAME | rtype::RRSIG | rtype::NSEC)) {
                    push(first, format!("CNAME at {owner} beside other data (RFC 1034 section 3.6.2)"));
                }
                if set.rdatas.len() > 1 {
                    push(first, format!("more than one CNAME at {owner}"));
                }
            }
            rtype::DNAME if owner == origin => {
                push(
                    first,
                    format!(
                        "DNAME at the zone apex {origin} is not supported; use ALIAS flattening or a DNAME in the parent"
                    ),
                );
            }
            rtype::SOA if owner != origin => {
                push(first, format!("SOA at {owner}, which is not the zone apex {origin}"));
            }
            _ => {}
        }
    }
    if nodes.get(origin).and_then(|n| n.get(rtype::NS)).is_none() {
        push(first_soa, format!("missing NS records at the zone apex {origin}"));
    }
    // In-bailiwick NS targets need addresses in this zone (glue for delegations).
    for (owner, rt, first) in firsts.iter() {
        if *rt != rtype::NS {
            continue;
        }
        let set = nodes[owner].get(rtype::NS).expect("grouped above");
        for rdata in &set.rdatas {
            let Some(target) = rdata.target(rtype::NS) else { continue };
            if !target.is_subdomain_of(origin) {
                continue;
            }
            let has_address =
                nodes.get(&target).is_some_and(|n| n.get(rtype::A).is_some() || n.get(rtype::AAAA).is_some());
            if !has_address {
                push(
                    first,
                    format!("NS {target} of {owner} is inside the zone but has no A or AAAA record (missing glue)"),
                );
            }
        }
    }
    // NSEC3 owners are hashed names below the apex, which build.rs keeps apart from the tree; the
    // apex is no hash, and moving it out left a zone without its SOA node (a panic found by
    // fuzz/xfr: an AXFR or a zone file with an NSEC3 record at the apex).
    if nodes.get(origin).is_some_and(|n| n.get(rtype::NSEC3).is_some()) {
        push(
            first_soa,
            format!("NSEC3 record at the apex {origin}: NSEC3 owners are hashed names below it (RFC 5155 section 3)"),
        );
    }
}
