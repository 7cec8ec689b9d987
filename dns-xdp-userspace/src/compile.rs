//! Zone snapshot -> BPF map entries. Every entry is a response rendered by the slow path's own
//! encoder (`respond::respond`) for a canonical query, with the query-dependent parts cut off, so
//! the kernel's answer cannot differ from the daemon's.
//!
//! What is compiled, per name of every zone (names a deeper zone of ours owns are left to it):
//! - the answer to every type present at the name (at a CNAME: every type of the zone), and to
//!   the types the lookup treats specially (ANY, RRSIG, NSEC, DS, CNAME), unless it equals
//! - the name's type-independent answer (`QTYPE_DEFAULT`): NODATA, a referral, a CNAME chain
//!   ending in NODATA; the kernel serves it to every non-meta type without a key of its own;
//! - the answer for missing names *below* it (`KEY_VARIANT_CHILD`): NXDOMAIN, a wildcard's
//!   synthesised answer (owner 0xC00C), a referral below a zone cut. These are rendered with
//!   `Response::position_independent`, checked identical for two very different sample names,
//!   and replaced by a pass marker when they are not (NSEC3 proofs, DNAME substitution...).
//!
//! For signed zones every key also has a `KEY_VARIANT_DO` twin rendered for DO=1 (RRSIGs and
//! proofs), minus the OPT record the kernel appends itself. A DO=1 negative is compiled only
//! when its proof cannot depend on the missing name: NSEC chains, encloser without descendants.
//!
//! May call: respond.rs (the encoder), the zones, kernel/search.rs (the key search `search`
//! runs). It hands each name's entries to its caller and writes nothing itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dns_xdp_common::dns::{CLASS_IN, FLAG_TC, HEADER_LEN, OPT_LEN, rtype};
use dns_xdp_common::{
    KEY_NAME_LEN, KEY_VARIANT_CHILD, KEY_VARIANT_DO, MAX_KERNEL_NAME, MAX_RESPONSE_LEN, QTYPE_DEFAULT, RECORD_SIGNED,
    ResponseKey, ResponseValue, VALUE_FLAG_PASS, VALUE_FLAG_SIGNED,
};

use crate::kernel::search::{self, NamesView, is_meta};
use crate::name::Name;
use crate::respond;
use crate::wire::{Edns, Query};
use crate::zone::{Node, Zone, ZoneSet};

/// Types whose answer may differ from a name's type-independent one even when absent there.
const SPECIAL_QTYPES: [u16; 5] = [rtype::ANY, rtype::RRSIG, rtype::NSEC, rtype::DS, rtype::CNAME];
/// Labels of two missing names used to render (and cross-check) a closest encloser's answer
/// for names below it: different lengths and opposite ends of the canonical order.
const SAMPLE_LABELS: [&[u8]; 2] = [b"\x01!", b"\x16~dns-xdp-sample-probe~"];

pub type Entries = HashMap<ResponseKey, ResponseValue>;

pub fn key(name: &Name, qtype: u16) -> ResponseKey {
    key_variant(name.as_wire(), qtype, 0)
}

pub fn key_variant(name_wire: &[u8], qtype: u16, variant: u16) -> ResponseKey {
    let mut key = ResponseKey { name: [0; KEY_NAME_LEN], qtype, variant };
    key.name[..name_wire.len()].copy_from_slice(name_wire);
    key
}

/// One name's compiled answers: (QTYPE, variant, answer) slots, markers as `pass_value`s.
pub type NameSlots = Vec<(u16, u16, ResponseValue)>;

/// Compiles the kernel's view of `zones` into one map (tests, small sets).
pub fn compile(zones: &ZoneSet, our_payload: u16) -> Entries {
    let mut entries = Entries::new();
    compile_each(zones, our_payload, |name, slots| {
        for (qtype, variant, value) in slots {
            entries.insert(key_variant(name.as_wire(), qtype, variant), value);
        }
    });
    entries
}

/// What the compiler needs to know about a zone beyond one name.
struct ZoneContext {
    /// Names with at least one child node.
    parents: HashSet<Name>,
    /// Every type held somewhere in the zone.
    zone_types: Vec<u16>,
    /// Names with a wildcard child, and names with a child named like a sample label: found in
    /// one pass when the whole zone is compiled, rather than by two or three lookups of made-up
    /// names per name; `None` when only a few names are (the lookups are cheaper then).
    wild_parents: Option<HashSet<Name>>,
    sample_parents: Option<HashSet<Name>>,
}

impl ZoneContext {
    fn new(zone: &Zone, whole: bool) -> Self {
        // Only signed zones ask (DO=1 denial proofs).
        let parents: HashSet<Name> =
            if zone.signed { zone.nodes.keys().filter_map(Name::parent).collect() } else { HashSet::new() };
        fn first_label(name: &Name) -> Option<&[u8]> {
            let wire = name.as_wire();
            wire.get(..=usize::from(*wire.first()?))
        }
        let (mut wild_parents, mut sample_parents) = (None, None);
        if whole {
            let (wild, sample) = (wild_parents.insert(HashSet::new()), sample_parents.insert(HashSet::new()));
            for name in zone.nodes.keys() {
                match first_label(name) {
                    Some(b"\x01*") => wild.extend(name.parent()),
                    Some(l) if SAMPLE_LABELS.contains(&l) => sample.extend(name.parent()),
                    _ => {}
                }
            }
        }
        ZoneContext { parents, zone_types: zone.types.clone(), wild_parents, sample_parents }
    }

    fn compiler<'a>(&'a self, zones: &'a ZoneSet, zone: &'a Zone, our_payload: u16) -> Compiler<'a> {
        Compiler {
            zones,
            zone,
            nxdomain: Default::default(),
            zone_types: &self.zone_types,
            wild_parents: self.wild_parents.as_ref(),
            sample_parents: self.sample_parents.as_ref(),
            our_payload,
        }
    }
}

/// Compiles every name of `zones` the kernel may hold, handing each name's slots to `each`
/// (names a deeper zone of ours owns are compiled with that zone; names too long for the
/// kernel's keys are left out, so their queries pass). Uses every core; `each` runs on the
/// calling thread, in no particular order of names.
pub fn compile_each(zones: &ZoneSet, our_payload: u16, mut each: impl FnMut(&Name, NameSlots)) {
    const BATCH: usize = 512;
    let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 8);
    for zone in zones.iter() {
        let ctx = ZoneContext::new(zone, true);
        let names: Vec<(&Name, &Node)> = zone
            .nodes
            .iter()
            .filter(|(name, _)| name.as_wire().len() <= MAX_KERNEL_NAME)
            .filter(|(name, _)| zones.find(name).is_some_and(|z| Arc::ptr_eq(z, zone)))
            .collect();
        let c = ctx.compiler(zones, zone, our_payload);
        let compile_name = |name: &Name, node: &Node| {
            let mut out = NameSlots::with_capacity(4);
            c.name(name, node, &mut out);
            c.below(name, node, ctx.parents.contains(name), &mut out);
            out
        };
        if threads == 1 || names.len() < 4 * BATCH {
            for (name, node) in names {
                each(name, compile_name(name, node));
            }
            continue;
        }
        // Workers compile batches; this thread hands them to `each` as they come.
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(&Name, NameSlots)>>(4 * threads);
            for _ in 0..threads {
                let tx = tx.clone();
                let (names, next, compile_name) = (&names, &next, &compile_name);
                scope.spawn(move || {
                    loop {
                        let start = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                        if start >= names.len() {
                            break;
                        }
                        let batch = names[start..(start + BATCH).min(names.len())]
                            .iter()
                            .map(|&(name, node)| (name, compile_name(name, node)))
                            .collect();
                        if tx.send(batch).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for batch in rx {
                for (name, slots) in batch {
                    each(name, slots);
                }
            }
        });
    }
}

/// Compiles only `names` (a change touching them): each name's slots, or no slots for a name
/// that is gone, too long for the kernel, or owned by no zone of ours (the caller removes it).
pub fn compile_names<'n>(
    zones: &ZoneSet,
    our_payload: u16,
    names: impl IntoIterator<Item = &'n Name>,
    mut each: impl FnMut(&Name, NameSlots),
) {
    let mut contexts: HashMap<Name, ZoneContext> = HashMap::new();
    for name in names {
        let found = zones.find(name).and_then(|zone| Some((zone, zone.nodes.get(name)?)));
        let Some((zone, node)) = found.filter(|_| name.as_wire().len() <= MAX_KERNEL_NAME) else {
            each(name, NameSlots::new());
            continue;
        };
        let ctx = contexts.entry(zone.origin.clone()).or_insert_with(|| ZoneContext::new(zone, false));
        let c = ctx.compiler(zones, zone, our_payload);
        let mut out = NameSlots::with_capacity(4);
        c.name(name, node, &mut out);
        c.below(name, node, ctx.parents.contains(name), &mut out);
        each(name, out);
    }
}

struct Compiler<'a> {
    zones: &'a ZoneSet,
    zone: &'a Zone,
    /// The answer for missing names below a plain name (`plain`): the zone's NXDOMAIN, the same
    /// for all of them, rendered (and cross-checked) once.
    nxdomain: std::sync::OnceLock<Option<ResponseValue>>,
    /// Every type held somewhere in the zone.
    zone_types: &'a [u16],
    wild_parents: Option<&'a HashSet<Name>>,
    sample_parents: Option<&'a HashSet<Name>>,
    our_payload: u16,
}

impl Compiler<'_> {
    fn variants(&self) -> &'static [bool] {
        if self.zone.signed { &[false, true] } else { &[false] }
    }

    fn flags(&self, dnssec: bool) -> u16 {
        if self.zone.signed && !dnssec { VALUE_FLAG_SIGNED } else { 0 }
    }

    fn marker(&self, dnssec: bool) -> ResponseValue {
        pass_value(self.flags(dnssec))
    }

    /// Types worth a key of their own at `node`: its own and the specially treated ones; for a
    /// CNAME, every type of the zone, since its chain may end anywhere in it (through other
    /// CNAMEs, DNAMEs, wildcards). A type the zone does not hold is answered like type 0.
    fn qtypes(&self, node: &Node) -> Vec<u16> {
        let mut types: Vec<u16> = SPECIAL_QTYPES.to_vec();
        if node.get(rtype::CNAME).is_some() {
            types.extend_from_slice(self.zone_types);
        } else {
            types.extend(node.rrsets.iter().map(|s| s.rtype));
        }
        types.retain(|&t| t != QTYPE_DEFAULT);
        types.sort_unstable();
        types.dedup();
        types
    }

    /// Whether the answers at and below `name` follow from its own records alone: an unsigned
    /// zone, no CNAME, DNAME or zone cut at the name or between it and the apex, no wildcard
    /// child. Then RRSIG, NSEC, DS and CNAME queries get the name's NODATA (DS too, except at
    /// the apex, which a parent zone of ours may answer), and every missing name below gets the
    /// zone's NXDOMAIN: neither needs rendering per name. (xdp_matches_daemon checks these
    /// shortcuts against the daemon for every name of the test zones.)
    fn plain(&self, name: &Name, node: &Node) -> bool {
        if self.zone.signed || node.get(rtype::CNAME).is_some() || node.get(rtype::DNAME).is_some() {
            return false;
        }
        if *name != self.zone.origin && node.get(rtype::NS).is_some() {
            return false;
        }
        let wildcard_below = match self.wild_parents {
            Some(parents) => parents.contains(name),
            None => name.prepend(b"*").is_some_and(|star| self.zone.nodes.contains_key(&star)),
        };
        if wildcard_below {
            return false;
        }
        let mut up = name.parent();
        while let Some(p) = up.filter(|p| p.as_wire().len() >= self.zone.origin.as_wire().len()) {
            if p == self.zone.origin {
                break;
            }
            if self.zone.nodes.get(&p).is_some_and(|n| n.get(rtype::NS).is_some() || n.get(rtype::DNAME).is_some()) {
                return false;
            }
            up = p.parent();
        }
        true
    }

    /// The name's own answers.
    fn name(&self, name: &Name, node: &Node, out: &mut NameSlots) {
        let mut qtypes = self.qtypes(node);
        let plain = self.plain(name, node);
        // A plain name with one RRset answers ANY with it (RFC 8482, one RRset): the same
        // answer as that type's, so it is not rendered twice.
        let only = if plain && node.rrsets.len() == 1 { Some(node.rrsets[0].rtype) } else { None };
        let mut only_value: Option<Option<ResponseValue>> = None;
        if plain {
            let apex = *name == self.zone.origin;
            qtypes.retain(|&t| {
                let same_as_default =
                    matches!(t, rtype::RRSIG | rtype::NSEC | rtype::CNAME) || (t == rtype::DS && !apex);
                !same_as_default || node.get(t).is_some()
            });
        }
        let mut explicit: HashSet<u16> = HashSet::new();
        for &dnssec in self.variants() {
            let variant = if dnssec { KEY_VARIANT_DO } else { 0 };
            let wire = name.as_wire();
            // A zone never holds type 0 (validated), so this is the answer to every absent type.
            let default = self.render(wire, QTYPE_DEFAULT, dnssec);
            for &qtype in &qtypes {
                let value = match (only, &only_value) {
                    (Some(_), Some(v)) if qtype == rtype::ANY && !dnssec => *v,
                    _ => self.render(wire, qtype, dnssec),
                };
                if only == Some(qtype) && !dnssec {
                    only_value = Some(value);
                }
                let needed = is_meta(qtype)
                    || explicit.contains(&qtype)
                    || match (&value, &default) {
                        (Some(v), Some(d)) => !same_value(v, d),
                        _ => true,
                    };
                if !needed {
                    continue;
                }
                explicit.insert(qtype);
                // Not servable while the default would be: a marker keeps the kernel off it.
                let value = value.unwrap_or_else(|| self.marker(dnssec));
                out.push((qtype, variant, value));
            }
            if let Some(d) = default {
                out.push((QTYPE_DEFAULT, variant, d));
            }
        }
    }

    /// The answers for missing names below `name` (which exists): its CHILD keys. The plain
    /// default CHILD key is always written (as a pass marker if need be): it is the existence
    /// mark the kernel's walk stops at.
    fn below(&self, name: &Name, node: &Node, has_children: bool, out: &mut NameSlots) {
        let samples = || -> Vec<Name> { SAMPLE_LABELS.iter().filter_map(|l| name.prepend(&l[1..])).collect() };
        // A qname the walk reaches here is at most MAX_WALK_STEPS labels below; no sample may
        // exist (it would be answered as itself), and both must fit in a name.
        let fits = SAMPLE_LABELS.iter().all(|l| name.as_wire().len() + l.len() <= 255);
        let sample_exists = match self.sample_parents {
            Some(parents) => parents.contains(name),
            None => samples().iter().any(|s| self.zone.nodes.contains_key(s)),
        };
        let usable = fits && !sample_exists;
        if usable && self.plain(name, node) {
            // The zone's NXDOMAIN (ANY gets the same, so no slot of its own).
            let nx = *self.nxdomain.get_or_init(|| self.render_below(&samples(), QTYPE_DEFAULT, false));
            out.push((QTYPE_DEFAULT, KEY_VARIANT_CHILD, nx.unwrap_or_else(|| self.marker(false))));
            return;
        }
        let samples = samples();
        let wildcard = name.prepend(b"*").and_then(|star| self.zone.nodes.get(&star));
        let mut qtypes = vec![QTYPE_DEFAULT, rtype::ANY];
        if let Some(star) = wildcard {
            qtypes.extend(self.qtypes(star));
        }
        qtypes.sort_unstable();
        qtypes.dedup();
        for &dnssec in self.variants() {
            let variant = KEY_VARIANT_CHILD | if dnssec { KEY_VARIANT_DO } else { 0 };
            // With DO=1 the proof names the NSEC covering the missing name: the same for all of
            // them only when nothing exists below the encloser. NSEC3 hashes the name: never.
            let provable = !dnssec || (self.zone.nsec3.is_none() && !has_children);
            let mut default: Option<ResponseValue> = None;
            for &qtype in &qtypes {
                let value = if usable && provable { self.render_below(&samples, qtype, dnssec) } else { None };
                if qtype == QTYPE_DEFAULT {
                    let v = value.unwrap_or_else(|| self.marker(dnssec));
                    default = Some(v);
                    out.push((qtype, variant, v));
                    continue;
                }
                let needed = is_meta(qtype)
                    || match (&value, &default) {
                        (Some(v), Some(d)) => !same_value(v, d),
                        _ => true,
                    };
                if needed {
                    out.push((qtype, variant, value.unwrap_or_else(|| self.marker(dnssec))));
                }
            }
        }
    }

    /// One rendering valid for every missing name below: both samples must give the same bytes.
    fn render_below(&self, samples: &[Name], qtype: u16, dnssec: bool) -> Option<ResponseValue> {
        let first = self.render(samples[0].as_wire(), qtype, dnssec)?;
        let all_same = samples[1..]
            .iter()
            .all(|s| self.render(s.as_wire(), qtype, dnssec).is_some_and(|v| same_value(&v, &first)));
        all_same.then_some(first)
    }

    fn render(&self, qname: &[u8], qtype: u16, dnssec: bool) -> Option<ResponseValue> {
        compile_one(self.zones, qname, qtype, dnssec, self.flags(dnssec), self.our_payload)
    }
}

/// A pass marker: not an answer; queries that reach it go to the daemon.
pub fn pass_value(value_flags: u16) -> ResponseValue {
    ResponseValue {
        flags: 0,
        ancount: 0,
        nscount: 0,
        arcount: 0,
        data_len: 0,
        value_flags: VALUE_FLAG_PASS | value_flags,
        data_csum: 0,
        serial_at: 0,
        data: [0; MAX_RESPONSE_LEN],
        rrl_key: 0,
    }
}

/// Renders the answer to `qname`/`qtype` (ID 0, RD=CD=0, no size limit; with DO=1 an OPT
/// record, which is cut off again: the kernel appends its own) and keeps what follows the
/// question. `None` when the response is not one the kernel may copy.
pub fn compile_one(
    zones: &ZoneSet,
    qname: &[u8],
    qtype: u16,
    dnssec: bool,
    value_flags: u16,
    our_payload: u16,
) -> Option<ResponseValue> {
    let name = Name::from_wire(qname)?;
    let edns = dnssec.then_some(Edns { payload: our_payload, version: 0, dnssec_ok: true });
    let query = Query {
        id: 0,
        flags: 0,
        qname_wire: qname,
        qname: name,
        qtype,
        qclass: CLASS_IN,
        edns,
        cookie: None,
        tsig: None,
    };
    let reply = respond::respond(zones, &query, u16::MAX as usize, our_payload);
    let bytes = reply.bytes;
    let flags = u16::from_be_bytes([bytes[2], bytes[3]]);
    let count = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let (end, arcount) = if dnssec {
        // Our OPT is the last record and carries no option (an EDE would make it longer).
        let opt_at = bytes.len().checked_sub(OPT_LEN)?;
        if bytes[opt_at] != 0 || count(opt_at + 1) != rtype::OPT || count(opt_at + 9) != 0 {
            return None;
        }
        (opt_at, count(10).checked_sub(1)?)
    } else {
        (bytes.len(), count(10))
    };
    let data = bytes.get(HEADER_LEN + qname.len() + 4..end)?;
    if flags & FLAG_TC != 0 || reply.rcode > 15 || data.len() > MAX_RESPONSE_LEN {
        return None;
    }
    let mut value = ResponseValue {
        flags,
        ancount: count(6),
        nscount: count(8),
        arcount,
        data_len: data.len() as u16,
        value_flags,
        data_csum: csum(data),
        serial_at: 0,
        data: [0; MAX_RESPONSE_LEN],
        rrl_key: crate::rrl::rrl_key(&bytes),
    };
    value.data[..data.len()].copy_from_slice(data);
    Some(value)
}

/// Which compiled value the kernel would serve for this query, were `entries` installed as they
/// are (before its size and DO checks); `qname` is lowercase wire format.
pub fn search<'e>(entries: &'e Entries, qname: &[u8], qtype: u16, dnssec: bool) -> Option<&'e ResponseValue> {
    search::search(&Compiled(entries), qname, qtype, dnssec)
}

/// Compiled entries as the kernel's key search reads them: every key stands alone (no record
/// parts), and a name's record is signed when its existence marker is.
struct Compiled<'e>(&'e Entries);

impl<'e> NamesView for Compiled<'e> {
    type Response = &'e ResponseValue;

    fn slot(&self, name: &[u8], qtype: u16, variant: u16, _part0: bool) -> Option<&'e ResponseValue> {
        self.0.get(&key_variant(name, qtype, variant))
    }

    fn flags(&self, name: &[u8]) -> u16 {
        match self.slot(name, QTYPE_DEFAULT, KEY_VARIANT_CHILD, true) {
            Some(marker) if marker.value_flags & VALUE_FLAG_SIGNED != 0 => RECORD_SIGNED,
            _ => 0,
        }
    }

    fn passes(answer: Self::Response) -> bool {
        answer.value_flags & VALUE_FLAG_PASS != 0
    }
}

/// Ones'-complement sum of `data` as big-endian 16-bit words (RFC 1071), folded, not inverted.
pub fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Two values are the same answer when every meaningful byte matches.
pub fn same_value(a: &ResponseValue, b: &ResponseValue) -> bool {
    a.flags == b.flags
        && a.ancount == b.ancount
        && a.nscount == b.nscount
        && a.arcount == b.arcount
        && a.data_len == b.data_len
        && a.value_flags == b.value_flags
        && a.data_csum == b.data_csum
        && a.data[..a.data_len as usize] == b.data[..b.data_len as usize]
}
