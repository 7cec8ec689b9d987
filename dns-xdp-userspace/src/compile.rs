//! Zone snapshot -> BPF map entries. Every entry is a response rendered by the slow path's own
//! encoder (`answer::answer`) for a canonical query, with the query-dependent parts cut off, so
//! the kernel's answer cannot differ from the daemon's.

use std::collections::HashMap;

use dns_xdp_common::{AnswerKey, AnswerValue, KEY_NAME_LEN, MAX_ANSWER_LEN, VALUE_FLAG_SIGNED};

use crate::answer;
use crate::name::Name;
use crate::wire::{self, FLAG_TC, HEADER_LEN, Query};
use crate::zone::{ZoneSet, rtype};

/// Query types whose answers the kernel serves.
pub const KERNEL_QTYPES: [u16; 2] = [rtype::A, rtype::AAAA];

pub type Entries = HashMap<AnswerKey, AnswerValue>;

pub fn key(name: &Name, qtype: u16) -> AnswerKey {
    let mut key = AnswerKey { name: [0; KEY_NAME_LEN], qtype, _pad: 0 };
    key.name[..name.as_wire().len()].copy_from_slice(name.as_wire());
    key
}

/// Compiles the kernel's view of `zones`: for every name holding A, AAAA or a CNAME, the
/// response to an A and an AAAA query, when it fits a map value.
pub fn compile(zones: &ZoneSet, our_payload: u16) -> Entries {
    let mut entries = Entries::new();
    for zone in zones.iter() {
        for (name, node) in &zone.nodes {
            let relevant = [rtype::A, rtype::AAAA, rtype::CNAME].iter().any(|&t| node.get(t).is_some());
            if !relevant {
                continue;
            }
            for qtype in KERNEL_QTYPES {
                if let Some(value) = compile_one(zones, name, qtype, zone.signed, our_payload) {
                    entries.insert(key(name, qtype), value);
                }
            }
        }
    }
    entries
}

/// Renders the answer to `name`/`qtype` (ID 0, RD=CD=0, no EDNS, no size limit) and keeps what
/// follows the question. `None` when the response is not one the kernel may copy.
pub fn compile_one(zones: &ZoneSet, name: &Name, qtype: u16, signed: bool, our_payload: u16) -> Option<AnswerValue> {
    let query = Query { id: 0, flags: 0, qname_wire: name.as_wire(), qname: name.clone(), qtype, qclass: wire::CLASS_IN, edns: None };
    let reply = answer::answer(zones, &query, u16::MAX as usize, our_payload);
    let bytes = reply.bytes;
    let flags = u16::from_be_bytes([bytes[2], bytes[3]]);
    let data = &bytes[HEADER_LEN + name.as_wire().len() + 4..];
    if flags & FLAG_TC != 0 || reply.rcode > 15 || data.len() > MAX_ANSWER_LEN {
        return None;
    }
    let count = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let mut value = AnswerValue {
        flags,
        ancount: count(6),
        nscount: count(8),
        arcount: count(10),
        data_len: data.len() as u16,
        value_flags: if signed { VALUE_FLAG_SIGNED } else { 0 },
        data_csum: csum(data),
        _pad: 0,
        data: [0; MAX_ANSWER_LEN],
        rrl_key: crate::rrl::rrl_key(&bytes),
    };
    value.data[..data.len()].copy_from_slice(data);
    Some(value)
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
pub fn same_value(a: &AnswerValue, b: &AnswerValue) -> bool {
    a.flags == b.flags
        && a.ancount == b.ancount
        && a.nscount == b.nscount
        && a.arcount == b.arcount
        && a.data_len == b.data_len
        && a.value_flags == b.value_flags
        && a.data_csum == b.data_csum
        && a.data[..a.data_len as usize] == b.data[..b.data_len as usize]
}
