//! The RFC 1034 section 4.3.2 algorithm over a `ZoneSet`, with RFC 2308 negative answers,
//! RFC 4592 wildcards, RFC 6672 DNAME substitution, RFC 8482 ANY and, for pre-signed zones,
//! RFC 4035 / RFC 5155 signatures and denial-of-existence proofs. Returns a `Response`.
//!
//! CNAME chains (and CNAMEs synthesised from DNAMEs) are followed inside the zone that holds
//! the first name and stop at its boundary: the client's resolver continues from there, as with
//! Knot DNS. A chain longer than `MAX_CHAIN`, or one that comes back to a name, stops there.

use std::borrow::Cow;

use dns_xdp_common::dns::{ede, rcode, rtype};

use super::{Node, RRset, Rdata, Zone, ZoneSet};
use crate::name::Name;
use crate::wire::{Response, Rr};

/// Most CNAME/DNAME links followed for one query.
const MAX_CHAIN: usize = 16;

pub fn lookup<'z>(zones: &'z ZoneSet, qname: &Name, qtype: u16, dnssec_ok: bool) -> Response<'z> {
    let Some(mut zone) = zones.find(qname) else {
        return Response { ede: Some(ede::NOT_AUTHORITATIVE), ..Response::with_rcode(rcode::REFUSED) };
    };
    // A DS record lives in the parent zone (RFC 4035 section 3.1.4.1): when this server also
    // serves the parent, it answers.
    if qtype == rtype::DS
        && *qname == zone.origin
        && let Some(parent) = qname.parent().and_then(|p| zones.find(&p))
    {
        zone = parent;
    }
    // A missing qname's response is served by XDP from its closest encloser's one rendering,
    // whatever the qname's length: see `Response::position_independent`.
    let position_independent = !zone.nodes.contains_key(qname);
    let mut ctx = Ctx {
        zone,
        dnssec: dnssec_ok && zone.signed,
        resp: Response { aa: true, position_independent, ..Default::default() },
    };
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Answer,
    Authority,
    Additional,
}

struct Ctx<'z> {
    zone: &'z Zone,
    /// Signatures and proofs wanted: DO=1 and the zone is signed.
    dnssec: bool,
    resp: Response<'z>,
}

impl<'z> Ctx<'z> {
    fn section(&mut self, section: Section) -> &mut Vec<Rr<'z>> {
        match section {
            Section::Answer => &mut self.resp.answer,
            Section::Authority => &mut self.resp.authority,
            Section::Additional => &mut self.resp.additional,
        }
    }

    /// Adds an RRset (and, when signing, its RRSIGs) unless the section already holds it.
    fn push_set(&mut self, section: Section, owner: Cow<'z, Name>, set: &'z RRset, ttl: u32, node: &'z Node) {
        let signed = self.dnssec;
        let list = self.section(section);
        if list.iter().any(|rr| rr.rtype == set.rtype && *rr.owner == *owner) {
            return;
        }
        for rdata in &set.rdatas {
            list.push(Rr { owner: owner.clone(), rtype: set.rtype, ttl, rdata: Cow::Borrowed(rdata) });
        }
        if signed && let Some(sigs) = node.sigs_for(set.rtype) {
            for sig in &sigs.rdatas {
                list.push(Rr { owner: owner.clone(), rtype: rtype::RRSIG, ttl, rdata: Cow::Borrowed(sig) });
            }
        }
    }

    /// Answers `name` for `qtype`; returns the next name when a CNAME or DNAME redirects.
    fn step(&mut self, name: &Name, qtype: u16) -> Option<Name> {
        let zone = self.zone;
        // Walk down from below the apex looking for zone cuts and DNAMEs above or at `name`.
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
                return self.dname(name, ancestor, dname, node, qtype);
            }
        }
        if let Some((owner, node)) = zone.nodes.get_key_value(name.as_wire()) {
            return self.at_node(Cow::Borrowed(owner), node, qtype, None);
        }
        // No such name. The closest encloser exists (the apex at least); a wildcard child of it
        // may synthesise the answer (RFC 4592 section 3.3.1).
        let (ce_off, closest) =
            name.suffix_offsets().skip(1).find_map(|o| zone.nodes.get_key_value(&wire[o..]).map(|(n, _)| (o, n)))?;
        let next_closer = next_closer(name, ce_off);
        if let Some(star) = closest.prepend(b"*")
            && let Some((star_owner, node)) = zone.nodes.get_key_value(&star)
        {
            return self.at_node(Cow::Owned(name.clone()), node, qtype, Some((star_owner, closest, next_closer)));
        }
        self.resp.rcode = rcode::NXDOMAIN;
        self.negative();
        if self.dnssec {
            self.deny_name(name, closest, &next_closer);
        }
        None
    }

    /// DNAME substitution (RFC 6672 section 3.1): the DNAME, a synthesised CNAME, and the new name
    /// to continue with, unless the query asked for the CNAME itself.
    fn dname(&mut self, name: &Name, owner: &'z Name, dname: &'z RRset, node: &'z Node, qtype: u16) -> Option<Name> {
        self.push_set(Section::Answer, Cow::Borrowed(owner), dname, dname.ttl, node);
        let target = dname.rdatas[0].target(rtype::DNAME)?;
        let Some(new) = name.replace_suffix(owner, &target) else {
            // The result would be longer than 255 bytes (RFC 6672 section 2.2).
            self.resp.rcode = rcode::YXDOMAIN;
            return None;
        };
        self.resp.answer.push(Rr {
            owner: Cow::Owned(name.clone()),
            rtype: rtype::CNAME,
            ttl: dname.ttl,
            rdata: Cow::Owned(Rdata::new(rtype::CNAME, new.as_wire().to_vec())),
        });
        (qtype != rtype::CNAME).then_some(new)
    }

    /// Answers from an existing node, or from a wildcard node (`wild`: the wildcard's owner, the
    /// closest encloser and the next closer name) with `owner` the query name.
    fn at_node(
        &mut self,
        owner: Cow<'z, Name>,
        node: &'z Node,
        qtype: u16,
        wild: Option<(&'z Name, &'z Name, Name)>,
    ) -> Option<Name> {
        let wildcard_proof = |ctx: &mut Self| {
            // An NSEC asked for at a wildcard is its own proof (Knot adds nothing either).
            if let Some((_, ce, nc)) = &wild
                && ctx.dnssec
                && qtype != rtype::NSEC
            {
                ctx.cover(&owner, ce, nc);
            }
        };
        let data = match qtype {
            // RFC 8482 section 4.2: one RRset is enough; like Knot, the one of the lowest type.
            rtype::ANY => node.rrsets.first(),
            // Signatures are asked for directly only by debugging tools: like ANY, one set (Knot's
            // choice: the signatures of the lowest covered type), and no CNAME is followed.
            rtype::RRSIG => {
                match node.sigs.first() {
                    Some(set) => {
                        for sig in &set.rdatas {
                            self.resp.answer.push(Rr {
                                owner: owner.clone(),
                                rtype: rtype::RRSIG,
                                ttl: set.ttl,
                                rdata: Cow::Borrowed(sig),
                            });
                        }
                        wildcard_proof(self);
                    }
                    None => self.nodata(&owner, node, wild.as_ref()),
                }
                return None;
            }
            _ => node.get(qtype),
        };
        if let Some(set) = data {
            self.push_set(Section::Answer, owner.clone(), set, set.ttl, node);
            wildcard_proof(self);
            self.additional_for(set, &owner);
            return None;
        }
        // DNSSEC meta-types describe the node itself: a CNAME there is not followed (as Knot does).
        if let Some(cname) = node.get(rtype::CNAME).filter(|_| qtype != rtype::NSEC) {
            self.push_set(Section::Answer, owner.clone(), cname, cname.ttl, node);
            wildcard_proof(self);
            return cname.rdatas[0].target(rtype::CNAME);
        }
        self.nodata(&owner, node, wild.as_ref());
        None
    }

    /// NOERROR with no data: the SOA, and when signing, the proof that the type is absent.
    fn nodata(&mut self, owner: &Name, node: &'z Node, wild: Option<&(&'z Name, &'z Name, Name)>) {
        self.negative();
        if !self.dnssec {
            return;
        }
        let zone = self.zone;
        match (&zone.nsec3, wild) {
            (None, None) => {
                // The name's own NSEC; an empty non-terminal has none: the NSEC covering it.
                if let Some(nsec) = node.get(rtype::NSEC) {
                    self.push_set(Section::Authority, Cow::Owned(owner.clone()), nsec, nsec.ttl, node);
                } else {
                    self.nsec_covering(owner);
                }
            }
            (None, Some((star, _, _))) => {
                self.nsec_covering(owner);
                self.nsec_covering(star);
            }
            (Some(_), None) => self.nsec3_matching(owner),
            (Some(_), Some((star, ce, nc))) => {
                self.nsec3_matching(ce);
                self.nsec3_covering(nc);
                self.nsec3_matching(star);
            }
        }
    }

    /// Proof that `name` does not exist and no wildcard could have matched (RFC 4035 section
    /// 3.1.3.2, RFC 5155 section 7.2.2).
    fn deny_name(&mut self, name: &Name, closest: &Name, next_closer: &Name) {
        let star = closest.prepend(b"*");
        if self.zone.nsec3.is_some() {
            self.nsec3_matching(closest);
            self.nsec3_covering(next_closer);
            if let Some(star) = star {
                self.nsec3_covering(&star);
            }
        } else {
            self.nsec_covering(name);
            if let Some(star) = star {
                self.nsec_covering(&star);
            }
        }
    }

    /// For a wildcard answer: proof that the query name itself does not exist (RFC 4035 section
    /// 3.1.3.3, RFC 5155 section 7.2.6).
    fn cover(&mut self, name: &Name, _closest: &Name, next_closer: &Name) {
        if self.zone.nsec3.is_some() {
            self.nsec3_covering(next_closer);
        } else {
            self.nsec_covering(name);
        }
    }

    fn nsec_covering(&mut self, name: &Name) {
        if let Some((owner, node)) = self.zone.nsec_at_or_before(name)
            && let Some(nsec) = node.get(rtype::NSEC)
        {
            self.push_set(Section::Authority, Cow::Borrowed(owner), nsec, nsec.ttl, node);
        }
    }

    fn nsec3_matching(&mut self, name: &Name) {
        let found = self.zone.nsec3.as_ref().and_then(|c| c.matching(name));
        self.push_nsec3(found);
    }

    fn nsec3_covering(&mut self, name: &Name) {
        let found = self.zone.nsec3.as_ref().and_then(|c| c.covering(name));
        self.push_nsec3(found);
    }

    fn push_nsec3(&mut self, found: Option<(&'z Name, &'z Node)>) {
        if let Some((owner, node)) = found
            && let Some(set) = node.get(rtype::NSEC3)
        {
            self.push_set(Section::Authority, Cow::Borrowed(owner), set, set.ttl, node);
        }
    }

    /// NODATA/NXDOMAIN authority: the SOA with the negative TTL (RFC 2308 section 3).
    fn negative(&mut self) {
        let zone = self.zone;
        self.push_set(Section::Authority, Cow::Borrowed(&zone.origin), zone.soa(), zone.negative_ttl(), zone.apex());
    }

    /// A delegation: not authoritative, NS in authority, the DS or the proof there is none, and
    /// in-zone addresses of the servers as glue.
    fn referral(&mut self, cut: &'z Name, ns: &'z RRset, node: &'z Node) {
        if self.resp.answer.is_empty() {
            self.resp.aa = false;
        }
        // NS at a cut is not authoritative data: never signed (RFC 4035 section 2.2).
        let dnssec = self.dnssec;
        self.dnssec = false;
        self.push_set(Section::Authority, Cow::Borrowed(cut), ns, ns.ttl, node);
        self.dnssec = dnssec;
        if dnssec {
            if let Some(ds) = node.get(rtype::DS) {
                self.push_set(Section::Authority, Cow::Borrowed(cut), ds, ds.ttl, node);
            } else if self.zone.nsec3.is_some() {
                self.nsec3_matching(cut);
            } else if let Some(nsec) = node.get(rtype::NSEC) {
                self.push_set(Section::Authority, Cow::Borrowed(cut), nsec, nsec.ttl, node);
            }
        }
        self.addresses_of(ns, None, true);
    }

    /// Additional-section processing: addresses of NS, MX, SRV and SVCB/HTTPS targets (RFC 1035
    /// section 3.3, RFC 2782, RFC 9460 section 4).
    fn additional_for(&mut self, set: &'z RRset, owner: &Name) {
        if matches!(set.rtype, rtype::NS | rtype::MX | rtype::SRV | rtype::SVCB | rtype::HTTPS) {
            self.addresses_of(set, Some(owner), false);
        }
    }

    fn addresses_of(&mut self, set: &'z RRset, owner: Option<&Name>, glue: bool) {
        let zone = self.zone;
        for rdata in &set.rdatas {
            let target = match set.rtype {
                rtype::SVCB | rtype::HTTPS => svcb_target(rdata, owner),
                rt => rdata.target(rt),
            };
            let Some(target) = target else { continue };
            if !target.is_subdomain_of(&zone.origin) {
                continue;
            }
            let Some((owner, node)) = zone.nodes.get_key_value(&target) else { continue };
            // An SVCB/HTTPS target's own record of that type comes first: for AliasMode it is
            // the next hop (RFC 9460 section 4.1).
            let same = matches!(set.rtype, rtype::SVCB | rtype::HTTPS).then_some(set.rtype);
            for rt in same.into_iter().chain([rtype::A, rtype::AAAA]) {
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

/// The TargetName of an SVCB/HTTPS record; "." in ServiceMode means the owner (RFC 9460 section 2.5).
fn svcb_target(rdata: &Rdata, owner: Option<&Name>) -> Option<Name> {
    let wire = rdata.wire.get(2..)?;
    let target = Name::from_wire(&wire[..crate::name::wire_name_len(wire)?])?;
    let priority = u16::from_be_bytes(rdata.wire.get(..2)?.try_into().ok()?);
    // A "." target (the owner itself in ServiceMode) adds nothing: the client asked about the
    // owner already. Knot adds nothing for it either.
    let _ = (priority, owner);
    (!target.is_root()).then_some(target)
}

/// The ancestor of `name` one label longer than its closest encloser (at byte `ce_off`).
fn next_closer(name: &Name, ce_off: usize) -> Name {
    let wire = name.as_wire();
    let start = name.suffix_offsets().take_while(|&o| o < ce_off).last().unwrap_or(0);
    Name::from_wire(&wire[start..]).expect("suffix of a valid name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_closer_is_one_label_below_the_encloser() {
        let name = Name::from_text("a.b.c.example").unwrap();
        // closest encloser c.example starts at byte 4.
        assert_eq!(next_closer(&name, 4).to_string(), "b.c.example.");
        assert_eq!(next_closer(&name, 2).to_string(), "a.b.c.example.");
    }
}
