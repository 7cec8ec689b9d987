//! Zones as immutable snapshots: parsed and validated once, then shared read-only by the slow
//! path and the map compiler. A reload builds a whole new `ZoneSet` and swaps it in; an edit
//! (`edit`, the control API's writes) builds the next version of one zone.

pub mod edit;
mod load;
pub mod lookup;
mod nodes;
pub mod nsec3;
mod presentation;

pub use load::{Diagnostic, LoadError, Severity, load_zone_file, parse_records, type_name, zone_from_records};

use std::collections::HashMap;

pub use nodes::NodeMap;
use std::path::PathBuf;
use std::sync::Arc;

use dns_xdp_common::dns::rtype;

use crate::name::{Name, wire_name_len};

/// One record's data in uncompressed wire format.
///
/// 24 bytes and one allocation (the wire bytes, exactly as long as they are): a zone holds one
/// per record, millions of them, most an address of 4 or 16 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rdata {
    pub wire: Box<[u8]>,
    /// Offsets of embedded names the encoder may compress. Only the RFC 1035 types allow it
    /// (RFC 3597 section 4); every other type is written verbatim.
    pub compressible: Compressible,
}

/// The offsets of an RDATA's compressible names, kept inline: there are at most two (SOA's
/// MNAME and RNAME). Reads as a `&[u16]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compressible {
    len: u8,
    /// Unused slots stay 0, so the derived comparisons are those of the slices.
    at: [u16; 2],
}

impl Compressible {
    fn push(&mut self, at: u16) {
        self.at[self.len as usize] = at;
        self.len += 1;
    }
}

impl std::ops::Deref for Compressible {
    type Target = [u16];
    fn deref(&self) -> &[u16] {
        &self.at[..self.len as usize]
    }
}

impl<'a> IntoIterator for &'a Compressible {
    type Item = &'a u16;
    type IntoIter = std::slice::Iter<'a, u16>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Rdata {
    pub fn new(rtype: u16, wire: Vec<u8>) -> Self {
        let mut compressible = Compressible::default();
        match rtype {
            rtype::NS | rtype::CNAME | rtype::PTR => compressible.push(0),
            rtype::MX => compressible.push(2),
            rtype::SOA => {
                compressible.push(0);
                if let Some(len) = wire_name_len(&wire) {
                    compressible.push(len as u16);
                }
            }
            _ => {}
        }
        Rdata { wire: wire.into_boxed_slice(), compressible }
    }

    /// The name a record of `rtype` points at, for CNAME/DNAME chasing and additional-section
    /// processing (NS, MX, SRV targets).
    pub fn target(&self, rtype: u16) -> Option<Name> {
        let at = match rtype {
            rtype::NS | rtype::CNAME | rtype::DNAME | rtype::PTR => 0,
            rtype::MX => 2,
            rtype::SRV => 6,
            _ => return None,
        };
        let wire = self.wire.get(at..)?;
        Name::from_wire(&wire[..wire_name_len(wire)?])
    }
}

/// One RRset as served: 24 bytes and its records' block, exactly as long as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RRset {
    pub rtype: u16,
    pub ttl: u32,
    pub rdatas: Box<[Rdata]>,
}

/// Everything stored at one owner name. An empty `rrsets` marks an empty non-terminal.
///
/// Boxed slices, not `Vec`s: a zone holds a node per name and changes one only by building it
/// anew, so each list costs exactly its RRsets (no capacity word, no room for four), and the
/// `sigs` of an unsigned zone's node nothing at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Every RRset but the signatures, sorted by type.
    pub rrsets: Box<[RRset]>,
    /// RRSIGs, one set per covered type (`RRset::rtype` is the covered type): each keeps its own
    /// TTL, the TTL of the RRset it signs (RFC 4034 section 3).
    pub sigs: Box<[RRset]>,
}

impl Node {
    pub fn get(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }

    /// The signatures over this node's `covered` RRset.
    pub fn sigs_for(&self, covered: u16) -> Option<&RRset> {
        self.sigs.iter().find(|r| r.rtype == covered)
    }
}

/// A name's labels in DNSSEC canonical order (RFC 4034 section 6.1): compared from the root
/// down, each label as lowercased bytes, a missing label sorting first.
pub fn canonical_key(name: &Name) -> Vec<Vec<u8>> {
    let wire = name.as_wire();
    let mut labels: Vec<Vec<u8>> = name
        .suffix_offsets()
        .filter(|&o| wire[o] != 0)
        .map(|o| wire[o + 1..o + 1 + wire[o] as usize].to_vec())
        .collect();
    labels.reverse();
    labels
}

#[derive(Clone, Debug)]
pub struct Zone {
    pub origin: Name,
    pub file: Arc<PathBuf>,
    pub nodes: NodeMap,
    pub serial: u32,
    /// The apex carries a DNSKEY: answers to DO=1 queries need signatures.
    pub signed: bool,
    /// Owners of NSEC records in canonical order, for denial-of-existence proofs.
    pub nsec_chain: Vec<(Vec<Vec<u8>>, Name)>,
    /// The NSEC3 chain, when the zone is signed with NSEC3 (its owners are not in `nodes`).
    pub nsec3: Option<nsec3::Chain>,
    /// Every type held somewhere in the zone, sorted.
    pub types: Vec<u16>,
}

impl Zone {
    /// The NSEC record whose owner is the greatest at or before `name` in canonical order: it
    /// matches `name` or covers it (RFC 4035 section 3.1.3).
    pub fn nsec_at_or_before(&self, name: &Name) -> Option<(&Name, &Node)> {
        let key = canonical_key(name);
        let at = self.nsec_chain.partition_point(|(k, _)| *k <= key);
        let (_, owner) = self.nsec_chain.get(at.checked_sub(1)?)?;
        self.nodes.get_key_value(owner)
    }

    pub fn apex(&self) -> &Node {
        &self.nodes[&self.origin]
    }

    pub fn soa(&self) -> &RRset {
        self.apex().get(rtype::SOA).expect("validated zone has a SOA")
    }

    /// TTL for negative answers: the lesser of the SOA's TTL and its MINIMUM (RFC 2308 section 5).
    pub fn negative_ttl(&self) -> u32 {
        let soa = self.soa();
        let wire = &soa.rdatas[0].wire;
        let minimum = u32::from_be_bytes(wire[wire.len() - 4..].try_into().expect("4 bytes"));
        soa.ttl.min(minimum)
    }
}

/// One resource record in uncompressed wire form, as transfers and the journal carry it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    pub owner: Name,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

impl Zone {
    /// Every record of the zone but the SOA, in a stable order (owner, type, RDATA).
    pub fn records(&self) -> Vec<Record> {
        let mut out = self.records_as_served();
        out.sort();
        out
    }

    /// Every record of the zone but the SOA, each RRset's records in the order they are
    /// served: rebuilding the zone from these (with some RRsets replaced) leaves every other
    /// RRset's answers byte for byte as they were.
    pub fn records_as_served(&self) -> Vec<Record> {
        let nsec3 = self.nsec3.iter().flat_map(|chain| chain.records.values().map(|(owner, node)| (owner, node)));
        self.nodes
            .iter()
            .chain(nsec3)
            .flat_map(|(owner, node)| node_records(owner, node))
            .filter(|r| r.rtype != rtype::SOA)
            .collect()
    }

    /// The records of one RRset (none when the name or type is not there).
    pub fn rrset_records(&self, owner: &Name, rtype: u16) -> Vec<Record> {
        let Some(set) = self.nodes.get(owner).and_then(|n| n.get(rtype)) else { return Vec::new() };
        set.rdatas
            .iter()
            .map(|rd| Record { owner: owner.clone(), rtype, ttl: set.ttl, rdata: rd.wire.to_vec() })
            .collect()
    }

    /// The SOA record.
    pub fn soa_record(&self) -> Record {
        let soa = self.soa();
        Record { owner: self.origin.clone(), rtype: rtype::SOA, ttl: soa.ttl, rdata: soa.rdatas[0].wire.to_vec() }
    }

    /// The SOA's REFRESH, RETRY and EXPIRE timers in seconds (RFC 1035 section 3.3.13).
    pub fn soa_timers(&self) -> (u32, u32, u32) {
        let w = &self.soa().rdatas[0].wire;
        let at = |back: usize| u32::from_be_bytes(w[w.len() - back..w.len() - back + 4].try_into().expect("4 bytes"));
        (at(16), at(12), at(8))
    }
}

/// The records at one node, each RRset's in the order they are served, its RRSIGs last.
pub fn node_records<'a>(owner: &'a Name, node: &'a Node) -> impl Iterator<Item = Record> + 'a {
    let sets = node.rrsets.iter().map(|set| (set.rtype, set));
    let sigs = node.sigs.iter().map(|set| (rtype::RRSIG, set));
    sets.chain(sigs).flat_map(move |(rtype, set)| {
        set.rdatas.iter().map(move |rd| Record { owner: owner.clone(), rtype, ttl: set.ttl, rdata: rd.wire.to_vec() })
    })
}

/// The SOA RDATA `wire` with its SERIAL replaced.
pub fn soa_with_serial(wire: &[u8], serial: u32) -> Vec<u8> {
    let mut out = wire.to_vec();
    let at = out.len() - 20;
    out[at..at + 4].copy_from_slice(&serial.to_be_bytes());
    out
}

/// The SERIAL of SOA RDATA.
pub fn soa_serial(wire: &[u8]) -> Option<u32> {
    let at = wire.len().checked_sub(20)?;
    Some(u32::from_be_bytes(wire[at..at + 4].try_into().ok()?))
}

/// RFC 1982 serial number arithmetic: whether `a` is newer than `b`.
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// The zones one server is authoritative for.
#[derive(Debug, Default)]
pub struct ZoneSet {
    zones: HashMap<Name, Arc<Zone>, foldhash::fast::RandomState>,
}

impl ZoneSet {
    pub fn new(zones: impl IntoIterator<Item = Arc<Zone>>) -> Self {
        ZoneSet { zones: zones.into_iter().map(|z| (z.origin.clone(), z)).collect() }
    }

    /// The deepest zone whose origin is `name` or an ancestor of it.
    pub fn find(&self, name: &Name) -> Option<&Arc<Zone>> {
        name.suffix_offsets().find_map(|off| self.zones.get(&name.as_wire()[off..]))
    }

    /// This set with `zone` added or replacing the zone of the same origin.
    pub fn with_zone(&self, zone: Arc<Zone>) -> ZoneSet {
        let mut zones = self.zones.clone();
        zones.insert(zone.origin.clone(), zone);
        ZoneSet { zones }
    }

    /// This set without the zone at `origin`.
    pub fn without(&self, origin: &Name) -> ZoneSet {
        let mut zones = self.zones.clone();
        zones.remove(origin);
        ZoneSet { zones }
    }

    /// The zone whose origin is exactly `origin`.
    pub fn get(&self, origin: &Name) -> Option<&Arc<Zone>> {
        self.zones.get(origin)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdata_keeps_its_compressible_offsets_inline() {
        assert_eq!(std::mem::size_of::<Rdata>(), 24);
        let soa = Rdata::new(
            rtype::SOA,
            b"\x02ns\x00\x04host\x00\0\0\0\x01\0\0\0\x02\0\0\0\x03\0\0\0\x04\0\0\0\x05".to_vec(),
        );
        assert_eq!(*soa.compressible, [0, 4]);
        assert_eq!(*Rdata::new(rtype::MX, b"\0\x0a\x02mx\x00".to_vec()).compressible, [2]);
        assert!(Rdata::new(rtype::A, vec![192, 0, 2, 1]).compressible.is_empty());
    }

    #[test]
    fn rebuilding_from_served_records_keeps_every_rrset_as_served() {
        let origin = Name::from_text("order.test").unwrap();
        // RDATA out of sorted order: a rebuild from sorted records would reorder them.
        let text = "@ 300 IN SOA ns host 1 2 3 4 60\n@ 300 IN NS ns\nns 300 IN A 192.0.2.1\n\
                    www 60 IN A 192.0.2.9\nwww 60 IN A 192.0.2.3\nwww 60 IN A 192.0.2.5\n";
        let zone = zone_from_records("test", parse_records(text, &origin).unwrap()).unwrap();
        let mut records = zone.records_as_served();
        records.push(zone.soa_record());
        let rebuilt = zone_from_records("rebuilt", records).unwrap();
        assert_eq!(rebuilt.nodes, zone.nodes, "every RRset in the same order");
        let www = Name::from_text("www.order.test").unwrap();
        let order: Vec<u8> = zone.nodes[&www].get(rtype::A).unwrap().rdatas.iter().map(|r| r.wire[3]).collect();
        assert_eq!(order, [9, 3, 5], "served in file order");
    }
}
