//! The RFC 1034 section 4.3.2 algorithm over a `ZoneSet`, with RFC 2308 negative answers,
//! RFC 4592 wildcards and RFC 6672 DNAME substitution. Returns a `Response` for the encoder.
//!
//! CNAME and DNAME chains are followed inside the zone that holds the first name and stop at
//! its boundary (the client's resolver continues from there), as Knot DNS does. A chain longer
//! than `MAX_CHAIN` or one that loops stops where it repeats.

use std::borrow::Cow;

use super::{Node, RRset, Zone, ZoneSet, rtype};
use crate::name::Name;
use crate::wire::{Response, Rr, rcode};

/// Most CNAME/DNAME links followed for one query.
const MAX_CHAIN: usize = 16;

pub fn lookup<'z>(zones: &'z ZoneSet, qname: &Name, qtype: u16, dnssec_ok: bool) -> Response<'z> {
    let Some(zone) = zones.find(qname) else { return Response::with_rcode(rcode::REFUSED) };
    let mut ctx = Ctx { zone, dnssec: dnssec_ok && zone.signed, resp: Response { aa: true, ..Default::default() } };
    let mut name = qname.clone();
    let mut visited: Vec<Name> = Vec::new();
    for _ in 0..MAX_CHAIN {
        visited.push(name.clone());
        match ctx.step(&name, qtype) {
            Some(next) if next.is_subdomain_of(&zone.origin) && !visited.contains(&next) => name = next,
            _ => break,
        }
    }
    ctx.resp
}

struct Ctx<'z> {
    zone: &'z Zone,
    dnssec: bool,
    resp: Response<'z>,
}

impl<'z> Ctx<'z> {
    fn push_set(&mut self, section: Section, owner: Cow<'z, Name>, set: &'z RRset, ttl: u32, node: &'z Node) {
        let list = match section {
            Section::Answer => &mut self.resp.answer,
            Section::Authority => &mut self.resp.authority,
            Section::Additional => &mut self.resp.additional,
        };
        for rdata in &set.rdatas {
            list.push(Rr { owner: owner.clone(), rtype: set.rtype, ttl, rdata: Cow::Borrowed(rdata) });
        }
        if self.dnssec
            && let Some(sigs) = node.get(rtype::RRSIG)
        {
            for sig in sigs.rdatas.iter().filter(|s| s.wire.get(..2) == Some(&set.rtype.to_be_bytes())) {
                list.push(Rr { owner: owner.clone(), rtype: rtype::RRSIG, ttl, rdata: Cow::Borrowed(sig) });
            }
        }
    }

    /// Answers `name` for `qtype`; returns the next name when a CNAME or DNAME redirects.
    fn step(&mut self, name: &Name, qtype: u16) -> Option<Name> {
        let zone = self.zone;
        // Walk down from the apex looking for zone cuts and DNAMEs above `name`.
        let wire = name.as_wire();
        let origin_len = zone.origin.as_wire().len();
        let mut offsets: Vec<usize> = name.suffix_offsets().filter(|&o| wire.len() - o > origin_len).collect();
        offsets.reverse();
        for off in offsets {
            let Some((ancestor, node)) = zone.nodes.get_key_value(&wire[off..]) else { break };
            let at_name = off == 0;
            if let Some(ns) = node.get(rtype::NS)
                && !(at_name && qtype == rtype::DS)
            {
                self.referral(ancestor, ns, node);
                return None;
            }
            if !at_name && let Some(dname) = node.get(rtype::DNAME) {
                self.push_set(Section::Answer, Cow::Borrowed(ancestor), dname, dname.ttl, node);
                let target = dname.rdatas[0].target(rtype::DNAME)?;
                let Some(new) = name.replace_suffix(ancestor, &target) else {
                    self.resp.rcode = rcode::YXDOMAIN;
                    return None;
                };
                let mut cname_wire = new.as_wire().to_vec();
                cname_wire.truncate(new.as_wire().len());
                self.resp.answer.push(Rr {
                    owner: Cow::Owned(name.clone()),
                    rtype: rtype::CNAME,
                    ttl: dname.ttl,
                    rdata: Cow::Owned(super::Rdata::new(rtype::CNAME, cname_wire)),
                });
                return Some(new);
            }
        }
        if let Some((owner, node)) = zone.nodes.get_key_value(name.as_wire()) {
            return self.at_node(Cow::Borrowed(owner), node, qtype);
        }
        // No such name: a wildcard at the closest encloser may synthesise it (RFC 4592 section 3.3).
        let encloser = name.suffix_offsets().skip(1).find(|&o| zone.nodes.contains_key(&wire[o..]))?;
        let closest = Name::from_wire(&wire[encloser..])?;
        if let Some(star) = closest.prepend(b"*")
            && let Some(node) = zone.nodes.get(&star)
        {
            return self.at_node(Cow::Owned(name.clone()), node, qtype);
        }
        self.resp.rcode = rcode::NXDOMAIN;
        self.negative();
        None
    }

    fn at_node(&mut self, owner: Cow<'z, Name>, node: &'z Node, qtype: u16) -> Option<Name> {
        if qtype == rtype::ANY {
            let sets: Vec<&RRset> = node.rrsets.iter().filter(|s| s.rtype != rtype::RRSIG).collect();
            if sets.is_empty() {
                self.negative();
            }
            for set in sets {
                self.push_set(Section::Answer, owner.clone(), set, set.ttl, node);
            }
            return None;
        }
        if let Some(set) = node.get(qtype) {
            self.push_set(Section::Answer, owner, set, set.ttl, node);
            self.additional_for(set);
            return None;
        }
        if let Some(cname) = node.get(rtype::CNAME) {
            self.push_set(Section::Answer, owner, cname, cname.ttl, node);
            return cname.rdatas[0].target(rtype::CNAME);
        }
        self.negative();
        None
    }

    /// NODATA/NXDOMAIN authority: the SOA with the negative TTL (RFC 2308 section 3).
    fn negative(&mut self) {
        let zone = self.zone;
        let apex = zone.apex();
        let soa = zone.soa();
        self.push_set(Section::Authority, Cow::Borrowed(&zone.origin), soa, zone.negative_ttl(), apex);
    }

    /// A delegation: not authoritative, NS in authority, in-zone addresses of the servers as glue.
    fn referral(&mut self, cut: &'z Name, ns: &'z RRset, node: &'z Node) {
        if self.resp.answer.is_empty() {
            self.resp.aa = false;
        }
        self.push_set(Section::Authority, Cow::Borrowed(cut), ns, ns.ttl, node);
        if self.dnssec && let Some(ds) = node.get(rtype::DS) {
            self.push_set(Section::Authority, Cow::Borrowed(cut), ds, ds.ttl, node);
        }
        self.addresses_of(ns, true);
    }

    /// Additional-section processing for NS, MX and SRV answers (RFC 1035 section 3.3, RFC 2782).
    fn additional_for(&mut self, set: &'z RRset) {
        if matches!(set.rtype, rtype::NS | rtype::MX | rtype::SRV) {
            self.addresses_of(set, false);
        }
    }

    fn addresses_of(&mut self, set: &'z RRset, glue: bool) {
        let zone = self.zone;
        for rdata in &set.rdatas {
            let Some(target) = rdata.target(set.rtype) else { continue };
            if !target.is_subdomain_of(&zone.origin) {
                continue;
            }
            let Some((owner, node)) = zone.nodes.get_key_value(&target) else { continue };
            for rt in [rtype::A, rtype::AAAA] {
                if let Some(addrs) = node.get(rt) {
                    // Glue is not signed; authoritative addresses carry their RRSIGs.
                    let dnssec = self.dnssec;
                    self.dnssec = dnssec && !glue;
                    self.push_set(Section::Additional, Cow::Borrowed(owner), addrs, addrs.ttl, node);
                    self.dnssec = dnssec;
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Section {
    Answer,
    Authority,
    Additional,
}
