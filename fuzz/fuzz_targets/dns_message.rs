//! The query path of the daemon: `wire::parse_query` and `respond::handle` over the conformance
//! zones, for UDP and TCP. Besides not panicking, every reply echoes the ID, has QR set, fits the
//! UDP size the query allows, and parses as a DNS message.
#![no_main]

use dns_xdp::replication::message;
use dns_xdp::respond::{self, DEFAULT_EDNS_PAYLOAD, Transport};
use dns_xdp::wire::{self, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|msg: &[u8]| {
    let zones = dns_xdp_fuzz::conformance_zones();
    let udp_limit = match wire::parse_query(msg) {
        Parsed::Query(q) => Some(wire::udp_limit(q.edns, DEFAULT_EDNS_PAYLOAD)),
        Parsed::FormErr { .. } => Some(512),
        Parsed::Drop => None,
    };
    for transport in [Transport::Udp, Transport::Tcp] {
        let reply = respond::handle(zones, msg, transport, DEFAULT_EDNS_PAYLOAD);
        assert_eq!(reply.is_some(), udp_limit.is_some(), "answered exactly what parse_query accepts");
        let Some(reply) = reply else { continue };
        let r = &reply.bytes;
        assert!(r.len() >= 12 && r[..2] == msg[..2] && r[2] & 0x80 != 0, "reply header: {r:02x?}");
        if transport == Transport::Udp {
            assert!(r.len() <= udp_limit.unwrap_or(512), "{} bytes over UDP", r.len());
        }
        assert!(message::parse(r).is_some(), "our reply does not parse: {r:02x?}");
    }
});
