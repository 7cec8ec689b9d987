//! Answers carrying their zone's SOA serial: NODATA and NXDOMAIN, and CNAME chains ending in
//! either (the SOA alone in the authority section). The kernel writes the serial into them from
//! the zone's SERIALS slot at reply time, so a new serial is one map write; zones beyond
//! `SERIAL_SLOTS` get those answers rewritten in place instead.
//!
//! May call: kernel/maps.rs (SERIALS and the rewritten answers), compile's checksum, the zones.

use std::collections::HashSet;

use dns_xdp_common::dns::{HEADER_LEN, rcode};
use dns_xdp_common::{ResponseValue, SERIAL_SLOTS, VALUE_SERIAL_SLOT_SHIFT};
use foldhash::HashMap;

use super::StoreError;
use crate::kernel::MapsError;
use crate::kernel::maps::{Maps, response_bytes, response_from_bytes};
use crate::name::Name;
use crate::zone::ZoneSet;

/// What an answer says about its zone's serial.
pub(super) enum Serial {
    /// It carries none.
    None,
    Carried(Carried),
    /// It carries the serial of a SOA heading no zone of ours: left to the daemon.
    Foreign,
}

/// The serial an answer carries: its zone (the one its SOA heads), where the SERIAL sits in
/// its data, and its value.
pub(super) struct Carried {
    pub(super) zone: Name,
    pub(super) at: usize,
    pub(super) serial: u32,
}

impl Serial {
    /// What `value`, rendered for `name`, carries. An answer belongs to the zone its SOA heads
    /// (for a DS query at a zone's apex, the parent). With no zones at all (precompiled test
    /// entries), answers are kept exactly as rendered.
    pub(super) fn of(zones: &ZoneSet, name: &Name, value: &ResponseValue) -> Serial {
        let Some((owner_at, at)) = (if zones.is_empty() { None } else { negative_soa(value) }) else {
            return Serial::None;
        };
        match name_in_answer(value, name.as_wire(), owner_at).filter(|o| zones.get(o).is_some()) {
            Some(zone) => {
                let serial = u32::from_be_bytes(value.data[at..at + 4].try_into().expect("4 bytes"));
                Serial::Carried(Carried { zone, at, serial })
            }
            None => Serial::Foreign,
        }
    }
}

/// An answer carrying its zone's SOA serial: its zone and its bytes (`response_bytes`), to
/// rewrite the serial when its zone has no SERIALS slot.
#[derive(Clone, Debug)]
pub(super) struct Negative {
    /// Index into `Serials::zones`.
    zone: u32,
    bytes: Box<[u8]>,
    /// Offset in the answer's data of the SOA SERIAL.
    serial_at: u16,
}

/// The zones' serials as their answers hold them, and the answers carrying one.
pub(super) struct Serials {
    negatives: HashMap<u32, Negative>,
    /// Zones by index (`Negative::zone`, which is also the SERIALS slot below `slots`), and
    /// each one's serial as its negatives hold it (or its SERIALS slot).
    zones: Vec<(Name, Option<u32>)>,
    zone_ids: HashMap<Name, u32>,
    /// Zones with a SERIALS slot: `SERIAL_SLOTS`, fewer in tests of the other path.
    slots: u32,
}

impl Default for Serials {
    fn default() -> Self {
        Serials { negatives: HashMap::default(), zones: Vec::new(), zone_ids: HashMap::default(), slots: SERIAL_SLOTS }
    }
}

impl Serials {
    /// Gives only the first `n` zones a SERIALS slot (at most `SERIAL_SLOTS`); before any zone
    /// is known.
    pub(super) fn limit_slots(&mut self, n: u32) {
        assert!(self.zones.is_empty(), "limit_serial_slots before the first install");
        self.slots = n.min(SERIAL_SLOTS);
    }

    /// Whether answer `id` carries a serial (and may be rewritten under its id).
    pub(super) fn carries(&self, id: u32) -> bool {
        self.negatives.contains_key(&id)
    }

    fn zone_id(&mut self, zone: &Name) -> u32 {
        if let Some(&id) = self.zone_ids.get(zone) {
            return id;
        }
        let id = self.zones.len() as u32;
        self.zones.push((zone.clone(), None));
        self.zone_ids.insert(zone.clone(), id);
        id
    }

    /// An existing answer `id` was rendered with `serial`: if its zone's serial moves with it,
    /// notes that in `new_serials`.
    pub(super) fn note_serial(&self, id: u32, serial: u32, new_serials: &mut HashMap<u32, u32>) {
        if let Some(neg) = self.negatives.get(&id)
            && self.zones[neg.zone as usize].1 != Some(serial)
        {
            new_serials.insert(neg.zone, serial);
        }
    }

    /// A new answer `value` carrying `c`, as the kernel gets it (pointing at its zone's
    /// SERIALS slot if it has one), and what to keep of it (`insert` once it is written). The
    /// zone's first such answer writes its SERIALS slot: nothing reads it yet.
    pub(super) fn slot(
        &mut self,
        c: &Carried,
        value: &ResponseValue,
        maps: &mut Maps,
    ) -> Result<(ResponseValue, Negative), StoreError> {
        let zone_id = self.zone_id(&c.zone);
        if self.zones[zone_id as usize].1.is_none() {
            if zone_id < self.slots {
                maps.put_serial(zone_id, c.serial).map_err(MapsError::aya("writing the SERIALS map"))?;
            }
            self.zones[zone_id as usize].1 = Some(c.serial);
        }
        let mut slotted = *value;
        if zone_id < self.slots {
            slotted.serial_at = c.at as u16;
            slotted.value_flags |= (zone_id as u16) << VALUE_SERIAL_SLOT_SHIFT;
        }
        let mut bytes = Vec::new();
        response_bytes(&slotted, &mut bytes);
        Ok((slotted, Negative { zone: zone_id, bytes: bytes.into_boxed_slice(), serial_at: c.at as u16 }))
    }

    pub(super) fn insert(&mut self, id: u32, negative: Negative) {
        self.negatives.insert(id, negative);
    }

    pub(super) fn remove(&mut self, id: u32) {
        self.negatives.remove(&id);
    }

    /// The zone ids of `zones` whose serial differs from the one their answers hold, with
    /// their new serial, into `new_serials`.
    pub(super) fn moved(&self, zones: &ZoneSet, new_serials: &mut HashMap<u32, u32>) {
        for zone in zones.iter() {
            if let Some(&id) = self.zone_ids.get(&zone.origin)
                && self.zones[id as usize].1.is_some_and(|s| s != zone.serial)
            {
                new_serials.insert(id, zone.serial);
            }
        }
    }

    /// The zones of `zones` whose serial differs from the one their answers hold.
    pub(super) fn changed(&self, zones: &ZoneSet) -> HashSet<Name> {
        let mut moved = HashMap::default();
        self.moved(zones, &mut moved);
        moved.into_keys().map(|id| self.zones[id as usize].0.clone()).collect()
    }

    /// Writes new serials: zones with a SERIALS slot get it there, the others in the bytes of
    /// their answers carrying it. Returns how many answers were rewritten.
    pub(super) fn write(&mut self, new_serials: &HashMap<u32, u32>, maps: &mut Maps) -> Result<usize, StoreError> {
        let mut rewritten = 0;
        for (&zone, &serial) in new_serials {
            if zone < self.slots {
                maps.put_serial(zone, serial).map_err(MapsError::aya("writing the SERIALS map"))?;
            }
        }
        if new_serials.keys().any(|&z| z >= self.slots) {
            let slots = self.slots;
            for (&id, neg) in self.negatives.iter_mut().filter(|(_, n)| n.zone >= slots) {
                let Some(&serial) = new_serials.get(&neg.zone) else { continue };
                let mut v = response_from_bytes(&neg.bytes);
                let at = usize::from(neg.serial_at);
                v.data[at..at + 4].copy_from_slice(&serial.to_be_bytes());
                v.data_csum = crate::compile::csum(&v.data[..usize::from(v.data_len)]);
                let mut bytes = Vec::new();
                response_bytes(&v, &mut bytes);
                neg.bytes = bytes.into_boxed_slice();
                maps.put_response(id, &v).map_err(MapsError::call("rewriting an answer's serial"))?;
                rewritten += 1;
            }
        }
        for (&zone, &serial) in new_serials {
            self.zones[zone as usize].1 = Some(serial);
        }
        Ok(rewritten)
    }

    /// After a commit: every zone's answers hold its serial in `zones`.
    pub(super) fn settle(&mut self, zones: &ZoneSet) {
        for zone in zones.iter() {
            if let Some(&id) = self.zone_ids.get(&zone.origin) {
                self.zones[id as usize].1 = Some(zone.serial);
            }
        }
    }
}

/// Where the SOA's owner starts and where its SERIAL sits, in an answer whose authority section
/// is the zone's SOA alone and last (NODATA, NXDOMAIN, and a CNAME chain ending in either): no
/// additional records, one authority record, a SOA. `None` for every other answer.
fn negative_soa(v: &ResponseValue) -> Option<(usize, usize)> {
    if v.nscount != 1 || v.arcount != 0 || !matches!(v.flags & 0xf, rcode::NOERROR | rcode::NXDOMAIN) {
        return None;
    }
    let data = &v.data[..usize::from(v.data_len)];
    let mut at = 0;
    for rr in 0..=usize::from(v.ancount) {
        let owner_at = at;
        // The owner: labels, ending with the root or a compression pointer.
        loop {
            let len = *data.get(at)? as usize;
            if len & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += len + 1;
            if len == 0 {
                break;
            }
        }
        let field = |o: usize| Some(u16::from_be_bytes([*data.get(at + o)?, *data.get(at + o + 1)?]));
        let (rtype, rdlen) = (field(0)?, usize::from(field(8)?));
        let rdata_end = at + 10 + rdlen;
        if rr == usize::from(v.ancount) {
            let soa = rtype == dns_xdp_common::dns::rtype::SOA && rdata_end == data.len() && rdlen >= 22;
            return soa.then(|| (owner_at, rdata_end - 20));
        }
        at = rdata_end;
    }
    None
}

/// The name at `at` in an answer's data, compression resolved, lowercase. The answer follows
/// the question of `qname` (the name it was rendered for; the kernel sends it after a question
/// of the same length, so pointers into it stay valid).
fn name_in_answer(v: &ResponseValue, qname: &[u8], mut at: usize) -> Option<Name> {
    let data = &v.data[..usize::from(v.data_len)];
    let data_start = HEADER_LEN + qname.len() + 4;
    let mut in_question = false;
    let mut out = Vec::new();
    // A pointer only goes backwards, but a broken one could loop: bounded.
    for _ in 0..256 {
        let buf = if in_question { qname } else { data };
        let len = usize::from(*buf.get(at)?);
        if len & 0xc0 == 0xc0 {
            let to = ((len & 0x3f) << 8) | usize::from(*buf.get(at + 1)?);
            (in_question, at) = match to {
                t if (HEADER_LEN..HEADER_LEN + qname.len()).contains(&t) => (true, t - HEADER_LEN),
                t if t >= data_start => (false, t - data_start),
                _ => return None,
            };
            continue;
        }
        out.extend_from_slice(buf.get(at..at + len + 1)?);
        if len == 0 {
            return Name::from_wire(&crate::name::lowercase(&out));
        }
        at += len + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use dns_xdp_common::VALUE_FLAG_PASS;

    use super::*;
    use crate::compile;

    #[test]
    fn finds_the_serial_of_negative_answers_only() {
        let zones = crate::test_zones(&["zones/xdp.test.zone"]);
        let zone = zones.iter().next().unwrap();
        let serial = zone.serial.to_be_bytes();
        let entries = compile::compile(&zones, 1232);
        let mut negatives = 0;
        for v in entries.values().filter(|v| v.value_flags & VALUE_FLAG_PASS == 0) {
            if let Some((_, at)) = negative_soa(v) {
                negatives += 1;
                assert_eq!(v.data[at..at + 4], serial, "the serial sits where we look");
            }
        }
        assert!(negatives > 2, "the test zone compiles NODATA and NXDOMAIN answers");
        let cname_chains = entries.values().filter(|v| v.ancount > 0 && negative_soa(v).is_some()).count();
        assert!(cname_chains > 0, "a CNAME chain ending in NODATA carries the serial too");
    }

    #[test]
    fn finds_the_zone_a_negative_answer_belongs_to() {
        let zones = crate::test_zones(&["conformance/example.test.zone", "conformance/sub.example.test.zone"]);
        let entries = compile::compile(&zones, 1232);
        let (mut parent, mut child, mut ds_at_apex) = (0, 0, 0);
        for (k, v) in entries.iter().filter(|(_, v)| v.value_flags & VALUE_FLAG_PASS == 0) {
            let Some((owner_at, _)) = negative_soa(v) else { continue };
            let len = crate::name::wire_name_len(&k.name).expect("a wire name");
            let name = Name::from_wire(&k.name[..len]).expect("a name");
            let zone = name_in_answer(v, name.as_wire(), owner_at).expect("the SOA owner decodes");
            let held_by = zones.find(&name).expect("a name of ours").origin.clone();
            if zone.to_string() == "example.test." {
                parent += 1;
            } else {
                assert_eq!(zone.to_string(), "sub.example.test.", "{name}");
                child += 1;
            }
            if zone != held_by {
                // Only the parent answers for the child's apex (DS), never the other way round.
                assert_eq!(
                    (name.to_string().as_str(), k.qtype),
                    ("sub.example.test.", 43),
                    "{name} answered by {zone}"
                );
                ds_at_apex += 1;
            }
        }
        assert!(parent > 0 && child > 0, "negatives of both zones ({parent}, {child})");
        assert!(ds_at_apex > 0, "the child apex's DS is the parent's NODATA");
    }
}
