//! From query bytes to response bytes: the policy around the zone lookup (opcodes, classes,
//! EDNS versions, malformed input). Shared by the UDP/TCP listeners and the map compiler.

use crate::wire::{self, Parsed, Query, Response, rcode};
use crate::zone::{ZoneSet, lookup::lookup, rtype};

/// Our EDNS(0) UDP payload size: 1232 avoids IP fragmentation on any path (DNS flag day 2020).
pub const DEFAULT_EDNS_PAYLOAD: u16 = 1232;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A rendered response and its RCODE (for metrics).
pub struct Reply {
    pub bytes: Vec<u8>,
    pub rcode: u16,
}

/// Answers one DNS message; `None` means send nothing (not a query, or too broken to reply to).
pub fn handle(zones: &ZoneSet, msg: &[u8], transport: Transport, our_payload: u16) -> Option<Reply> {
    match wire::parse_query(msg) {
        Parsed::Drop => None,
        Parsed::FormErr { id, flags, question } => {
            Some(Reply { bytes: wire::render_header_only(id, flags, rcode::FORMERR, question), rcode: rcode::FORMERR })
        }
        Parsed::Query(query) => {
            let limit = match transport {
                Transport::Udp => wire::udp_limit(query.edns, our_payload),
                Transport::Tcp => u16::MAX as usize,
            };
            Some(answer_on(zones, &query, transport, limit, our_payload))
        }
    }
}

/// Answers a parsed query within `limit` bytes, as over UDP (what the kernel serves).
pub fn answer(zones: &ZoneSet, query: &Query<'_>, limit: usize, our_payload: u16) -> Reply {
    answer_on(zones, query, Transport::Udp, limit, our_payload)
}

fn answer_on(zones: &ZoneSet, query: &Query<'_>, transport: Transport, limit: usize, our_payload: u16) -> Reply {
    let resp = decide(zones, query, transport);
    let rcode = resp.rcode;
    Reply { bytes: wire::render(query, &resp, limit, our_payload), rcode }
}

/// Opcodes (RFC 6895 section 2.2).
const OPCODE_QUERY: u8 = 0;
const OPCODE_NOTIFY: u8 = 4;
/// QCLASS * (RFC 1035 section 3.2.5): matches IN, the only class we serve.
const CLASS_ANY: u16 = 255;

fn decide<'z>(zones: &'z ZoneSet, query: &Query<'_>, transport: Transport) -> Response<'z> {
    match query.opcode() {
        OPCODE_QUERY => {}
        // We are no secondary: a NOTIFY is not for us to act on (Knot answers NOTAUTH too).
        OPCODE_NOTIFY => return Response::with_rcode(rcode::NOTAUTH),
        _ => return Response::with_rcode(rcode::NOTIMP),
    }
    if query.edns.is_some_and(|e| e.version > 0) {
        // RFC 6891 section 6.1.3: answer BADVERS with an OPT of the version we speak.
        return Response::with_rcode(rcode::BADVERS);
    }
    match (query.qtype, transport) {
        // Zone transfers need TCP (RFC 5936 section 4.2); over UDP, as Knot and NSD do.
        (rtype::AXFR, Transport::Udp) => return Response::with_rcode(rcode::NOTIMP),
        (rtype::AXFR | rtype::IXFR, _) => return Response::with_rcode(rcode::REFUSED),
        _ => {}
    }
    if query.qclass != wire::CLASS_IN && query.qclass != CLASS_ANY {
        return Response::with_rcode(rcode::REFUSED);
    }
    let dnssec_ok = query.edns.is_some_and(|e| e.dnssec_ok);
    lookup(zones, &query.qname, query.qtype, dnssec_ok)
}
