//! From query bytes to response bytes: the policy around the zone lookup (opcodes, classes,
//! EDNS versions, malformed input). Shared by the UDP/TCP listeners and the map compiler.

use std::borrow::Cow;
use std::net::IpAddr;

use dns_xdp_common::dns::{CLASS_ANY, CLASS_CH, CLASS_IN, OPCODE_NOTIFY, OPCODE_QUERY, rcode, rtype};

use crate::cookie::Cookies;
use crate::hotset::Demand;
use crate::wire::{self, Parsed, Query, Response, Rr};
use crate::zone::{Rdata, ZoneSet, lookup::lookup};

/// Our EDNS(0) UDP payload size: 1232 avoids IP fragmentation on any path (DNS flag day 2020).
pub const DEFAULT_EDNS_PAYLOAD: u16 = 1232;

/// What a query came over. Every transport but UDP is a stream (or QUIC stream) with no size limit
/// and a client address that cannot be spoofed: answered as over TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484).
    Https,
    /// DNS over QUIC (RFC 9250).
    Quic,
}

impl Transport {
    /// Every transport, in the order the metrics list them.
    pub const ALL: [Transport; 5] = [Transport::Udp, Transport::Tcp, Transport::Tls, Transport::Https, Transport::Quic];

    /// The `transport` label of the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Https => "https",
            Transport::Quic => "quic",
        }
    }

    /// Encrypted transports pad their answers (RFC 7830, RFC 8467).
    pub fn encrypted(self) -> bool {
        matches!(self, Transport::Tls | Transport::Https | Transport::Quic)
    }
}

/// Answers to CH-class TXT queries about this server (RFC 4892): `version.bind`/`version.server`
/// and `id.server`/`hostname.bind`. `None` refuses them, the default: the version helps attackers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chaos {
    pub version: Option<String>,
    pub identity: Option<String>,
}

/// Who asked, for DNS cookies (RFC 7873): the source address and our server secret.
#[derive(Clone, Copy)]
pub struct Client<'a> {
    pub ip: IpAddr,
    pub cookies: &'a Cookies,
}

/// A rendered response and its RCODE (for metrics).
pub struct Reply {
    pub bytes: Vec<u8>,
    pub rcode: u16,
    /// The query carried a valid server cookie for its source address: the rate limiter lets
    /// it through (its address cannot be spoofed).
    pub server_cookie: bool,
}

/// Answers one DNS message; `None` means send nothing (not a query, or too broken to reply to).
pub fn handle(zones: &ZoneSet, msg: &[u8], transport: Transport, our_payload: u16) -> Option<Reply> {
    handle_from(zones, msg, transport, our_payload, &Chaos::default(), None, None)
}

/// `handle`, answering CH-class identification queries as `chaos` says, for a query from a
/// known `client` (a COOKIE option is answered with a server cookie and checked; without a
/// client, COOKIE options are ignored like any other option), noting the query's name in
/// `demand` (the hot set's) when given.
pub fn handle_from(
    zones: &ZoneSet,
    msg: &[u8],
    transport: Transport,
    our_payload: u16,
    chaos: &Chaos,
    client: Option<Client<'_>>,
    demand: Option<&Demand>,
) -> Option<Reply> {
    match wire::parse_query(msg) {
        Parsed::Drop => None,
        Parsed::FormErr { id, flags, question } => Some(Reply {
            bytes: wire::render_header_only(id, flags, rcode::FORMERR, question),
            rcode: rcode::FORMERR,
            server_cookie: false,
        }),
        Parsed::Query(query) => {
            // What reaches the daemon is what the kernel does not hold: demand for the hot set.
            if let Some(demand) = demand {
                demand.note(query.qname.as_wire());
            }
            let limit = match transport {
                Transport::Udp => wire::udp_limit(query.edns, our_payload),
                Transport::Tcp | Transport::Tls | Transport::Https | Transport::Quic => u16::MAX as usize,
            };
            Some(respond_on(zones, &query, transport, limit, our_payload, chaos, client))
        }
    }
}

/// Answers a parsed query within `limit` bytes, as over UDP (what the kernel serves).
pub fn respond(zones: &ZoneSet, query: &Query<'_>, limit: usize, our_payload: u16) -> Reply {
    respond_on(zones, query, Transport::Udp, limit, our_payload, &Chaos::default(), None)
}

fn respond_on(
    zones: &ZoneSet,
    query: &Query<'_>,
    transport: Transport,
    limit: usize,
    our_payload: u16,
    chaos: &Chaos,
    client: Option<Client<'_>>,
) -> Reply {
    let mut resp = if let Some(tsig) = &query.tsig {
        // No TSIG key signs queries here (the replication module checks its own, before this):
        // RFC 8945 section 5.2, an unknown key is NOTAUTH with an unsigned BADKEY record.
        Response { tsig: Some(tsig.error_record(rcode::BADKEY)), ..Response::with_rcode(rcode::NOTAUTH) }
    } else if query.qclass == CLASS_CH && query.opcode() == OPCODE_QUERY && query.edns.is_none_or(|e| e.version == 0) {
        chaos_answer(query, chaos)
    } else {
        decide(zones, query, transport)
    };
    let mut server_cookie = false;
    // The COOKIE goes back in the OPT, so only with EDNS (RFC 7873 section 5.2 answers every
    // query that has one, whatever its RCODE).
    if let (Some(client), Some(cookie), Some(_)) = (client, &query.cookie, query.edns) {
        let outcome = client.cookies.answer(cookie, client.ip);
        resp.cookie = Some(outcome.reply);
        server_cookie = outcome.valid;
    }
    let rcode = resp.rcode;
    Reply { bytes: wire::render(query, &resp, limit, our_payload), rcode, server_cookie }
}

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
    // QCLASS * matches IN, the only class we serve.
    if query.qclass != CLASS_IN && query.qclass != CLASS_ANY {
        return Response::with_rcode(rcode::REFUSED);
    }
    let dnssec_ok = query.edns.is_some_and(|e| e.dnssec_ok);
    lookup(zones, &query.qname, query.qtype, dnssec_ok)
}

/// A CH TXT answer about this server, or REFUSED.
fn chaos_answer(query: &Query<'_>, chaos: &Chaos) -> Response<'static> {
    let text = match (query.qtype, query.qname.to_string().as_str()) {
        (rtype::TXT, "version.bind." | "version.server.") => chaos.version.as_deref(),
        (rtype::TXT, "id.server." | "hostname.bind.") => chaos.identity.as_deref(),
        _ => None,
    };
    let Some(text) = text else { return Response::with_rcode(rcode::REFUSED) };
    // TXT RDATA: character-strings of at most 255 bytes (RFC 1035 section 3.3.14).
    let mut wire = Vec::with_capacity(text.len() + 1);
    for chunk in text.as_bytes().chunks(255) {
        wire.push(chunk.len() as u8);
        wire.extend_from_slice(chunk);
    }
    if wire.is_empty() {
        wire.push(0);
    }
    Response {
        aa: true,
        class: Some(CLASS_CH),
        answer: vec![Rr {
            owner: Cow::Owned(query.qname.clone()),
            rtype: rtype::TXT,
            ttl: 0,
            rdata: Cow::Owned(Rdata::new(rtype::TXT, wire)),
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch_query(name: &[u8]) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(name);
        q.extend_from_slice(&[0, 16, 0, 3]);
        q
    }

    #[test]
    fn chaos_answers_only_when_configured() {
        let zones = ZoneSet::default();
        let q = ch_query(b"\x07version\x04bind\x00");
        let refused = handle(&zones, &q, Transport::Udp, 1232).unwrap();
        assert_eq!(refused.rcode, rcode::REFUSED);
        let chaos = Chaos { version: Some("dns-xdp".into()), identity: None };
        let reply = handle_from(&zones, &q, Transport::Udp, 1232, &chaos, None, None).unwrap();
        assert_eq!(reply.rcode, rcode::NOERROR);
        // Answer: pointer to the question, TXT, CH, TTL 0, "dns-xdp".
        assert!(
            reply.bytes.ends_with(b"\xc0\x0c\x00\x10\x00\x03\x00\x00\x00\x00\x00\x08\x07dns-xdp"),
            "{:?}",
            reply.bytes
        );
        let id =
            handle_from(&zones, &ch_query(b"\x02id\x06server\x00"), Transport::Udp, 1232, &chaos, None, None).unwrap();
        assert_eq!(id.rcode, rcode::REFUSED, "identity not configured");
    }

    /// A CH query for version.bind with an OPT holding `options`.
    fn with_options(options: &[u8]) -> Vec<u8> {
        let mut q = ch_query(b"\x07version\x04bind\x00");
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0]);
        q.extend_from_slice(&(options.len() as u16).to_be_bytes());
        q.extend_from_slice(options);
        q
    }

    #[test]
    fn cookies_answered_checked_and_malformed_ones_formerr() {
        let zones = ZoneSet::default();
        let cookies = Cookies::new([7; 16]);
        let client = Client { ip: "192.0.2.1".parse().unwrap(), cookies: &cookies };
        let chaos = Chaos::default();
        let ask = |opts: &[u8], client| {
            handle_from(&zones, &with_options(opts), Transport::Udp, 1232, &chaos, client, None).unwrap()
        };
        // NSID (ignored) then a client cookie: the OPT carries the client cookie + a server cookie.
        let first = ask(b"\x00\x03\x00\x00\x00\x0a\x00\x08abcdefgh", Some(client));
        assert!(!first.server_cookie);
        let opt = &first.bytes[first.bytes.len() - 39..];
        assert_eq!(&opt[..11], &[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 28], "OPT with one 28-byte option");
        assert_eq!(&opt[11..23], b"\x00\x0a\x00\x18abcdefgh");
        assert_eq!(opt[23], 1, "RFC 9018 version");
        // Echoing it back proves the address: valid, and the same cookie comes back.
        let mut echo = b"\x00\x0a\x00\x18".to_vec();
        echo.extend_from_slice(&opt[15..]);
        let second = ask(&echo, Some(client));
        assert!(second.server_cookie);
        assert_eq!(&second.bytes[second.bytes.len() - 24..], &opt[15..]);
        // From another address it is just a client cookie.
        let elsewhere = Client { ip: "192.0.2.2".parse().unwrap(), cookies: &cookies };
        assert!(!ask(&echo, Some(elsewhere)).server_cookie);
        // Without a known client (the map compiler), the option is ignored.
        assert!(ask(&echo, None).bytes.ends_with(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]));
        // Malformed lengths (RFC 7873 section 5.2.2): FORMERR.
        for bad in [&b"\x00\x0a\x00\x07abcdefg"[..], b"\x00\x0a\x00\x0aabcdefghij", b"\x00\x0a\x00\x00"] {
            assert_eq!(ask(bad, Some(client)).rcode, rcode::FORMERR, "{bad:?}");
        }
    }

    /// A query for www.example. A with `additional` records (ARCOUNT `count`).
    fn with_additional(count: u8, additional: &[u8]) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, count];
        q.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        q.extend_from_slice(additional);
        q
    }

    /// A TSIG record owned by `key.`: `rdata` under `class` and `ttl`.
    fn tsig_rr(class: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
        let mut rr = b"\x03key\x00\x00\xfa".to_vec();
        rr.extend_from_slice(&class.to_be_bytes());
        rr.extend_from_slice(&ttl.to_be_bytes());
        rr.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        rr.extend_from_slice(rdata);
        rr
    }

    /// hmac-sha256, time signed, fudge 300, a 32-byte MAC, original ID, no error, no other data.
    fn tsig_rdata() -> Vec<u8> {
        let mut r = b"\x0bhmac-sha256\x00".to_vec();
        r.extend_from_slice(&[0, 0, 0x65, 0x43, 0x21, 0x00, 0x01, 0x2c, 0, 32]);
        r.extend_from_slice(&[0x5a; 32]);
        r.extend_from_slice(&[0xab, 0xcd, 0, 0, 0, 0]);
        r
    }

    #[test]
    fn tsig_malformed_is_formerr_and_unknown_key_is_badkey() {
        let zones = ZoneSet::default();
        let ask = |q: &[u8]| handle(&zones, q, Transport::Udp, 1232).unwrap();
        // Well-formed, with a key nobody here knows: NOTAUTH and an unsigned TSIG BADKEY record last.
        let reply = ask(&with_additional(1, &tsig_rr(255, 0, &tsig_rdata())));
        assert_eq!(reply.rcode, rcode::NOTAUTH);
        assert_eq!(&reply.bytes[10..12], &[0, 1], "ARCOUNT: the TSIG record");
        let mut expect = tsig_rr(255, 0, &{
            let mut r = b"\x0bhmac-sha256\x00".to_vec();
            r.extend_from_slice(&[0, 0, 0x65, 0x43, 0x21, 0x00, 0x01, 0x2c, 0, 0, 0xab, 0xcd, 0, 17, 0, 0]);
            r
        });
        assert!(reply.bytes.ends_with(&expect), "{:02x?}", reply.bytes);
        // After an OPT it still comes last, and the OPT is answered.
        let opt = [0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0];
        let mut both = opt.to_vec();
        both.extend_from_slice(&tsig_rr(255, 0, &tsig_rdata()));
        let reply = ask(&with_additional(2, &both));
        assert_eq!((reply.rcode, &reply.bytes[10..12]), (rcode::NOTAUTH, &[0, 2][..]));
        expect.splice(0..0, opt);
        assert!(reply.bytes.ends_with(&expect), "{:02x?}", reply.bytes);
        // Malformed: empty RDATA, RDATA cut short, class IN, a TTL, not the last record.
        let full = tsig_rdata();
        let mut not_last = tsig_rr(255, 0, &full);
        not_last.extend_from_slice(&opt);
        for (what, q) in [
            ("empty rdata", with_additional(1, &tsig_rr(255, 0, &[]))),
            ("truncated rdata", with_additional(1, &tsig_rr(255, 0, &full[..full.len() - 2]))),
            ("class IN", with_additional(1, &tsig_rr(1, 0, &full))),
            ("TTL 300", with_additional(1, &tsig_rr(255, 300, &full))),
            ("before the OPT", with_additional(2, &not_last)),
        ] {
            assert_eq!(ask(&q).rcode, rcode::FORMERR, "{what}");
        }
    }
}
