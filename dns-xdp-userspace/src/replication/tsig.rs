//! TSIG (RFC 8945) on NOTIFY and zone transfers, through `domain`'s maintained implementation
//! (`domain::tsig`): it takes the fudge from the wire for both the MAC and the time check, answers
//! BADTIME with a signed error carrying the server's time (section 5.2.3), echoes BADSIG/BADKEY in
//! an unsigned TSIG record (5.3.2), enforces MAC truncation limits and signs and verifies the
//! multi-message streams of transfers (5.3.1). This file adapts it to our byte messages and
//! chooses keys by peer address.
//!
//! Keys per peer, as Knot's `remote`/`acl` and BIND's `server { keys }` do: a `[[tsig_key]]` with
//! `peers` is the key of those addresses only; a key without `peers` is the fleet's key for every
//! address no key lists. Outgoing messages to a peer are signed with its first key; incoming ones
//! must be signed with one of the peer's keys (any other key is BADKEY).

use std::net::IpAddr;

use dns_xdp_common::dns::{FLAG_QR, HEADER_LEN, rcode, rtype};
use domain::base::iana::{Rcode, TsigRcode};
use domain::base::message_builder::AdditionalBuilder;
use domain::base::{Message, MessageBuilder, ToName, UnknownRecordData};
use domain::rdata::tsig::Time48;
use domain::tsig::{self as dt, KeyName};

use super::message;
use crate::name::Name;
use crate::rrl::Cidr;

/// The HMAC algorithms a key may use.
pub use domain::tsig::Algorithm;

/// A TSIG key as configured: name, algorithm, secret and the peers it is for.
#[derive(Clone, Debug)]
pub struct Key {
    pub name: Name,
    /// Addresses this key is for; empty: every address no other key lists.
    pub peers: Vec<Cidr>,
    inner: dt::Key,
}

impl AsRef<dt::Key> for Key {
    fn as_ref(&self) -> &dt::Key {
        &self.inner
    }
}

/// Why a configured key cannot be used: its name is no TSIG key name, or `domain` refuses the
/// key (a secret of the wrong length for the algorithm).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key name {name}: {err}")]
    Name { name: Name, err: domain::base::name::FromStrError },
    #[error("key {name}: {err}")]
    Key { name: Name, err: dt::NewKeyError },
}

impl Key {
    pub fn new(name: Name, alg: Algorithm, secret: &[u8], peers: Vec<Cidr>) -> Result<Key, KeyError> {
        let key_name =
            KeyName::from_chars(name.to_string().chars()).map_err(|err| KeyError::Name { name: name.clone(), err })?;
        let inner =
            dt::Key::new(alg, secret, key_name, None, None).map_err(|err| KeyError::Key { name: name.clone(), err })?;
        Ok(Key { name, peers, inner })
    }

    fn lists(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.peers.iter().any(|c| c.contains(ip))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The keys valid for `peer`: those listing it, else those listing no peer.
pub fn for_peer(keys: &[Key], peer: IpAddr) -> Vec<&Key> {
    let listed: Vec<&Key> = keys.iter().filter(|k| k.lists(peer)).collect();
    if listed.is_empty() { keys.iter().filter(|k| k.peers.is_empty()).collect() } else { listed }
}

/// The key we sign messages to `peer` with.
pub fn key_for(keys: &[Key], peer: IpAddr) -> Option<&Key> {
    for_peer(keys, peer).into_iter().next()
}

/// A peer's keys as `domain`'s key store.
struct PeerKeys<'a>(Vec<&'a Key>);

impl dt::KeyStore for PeerKeys<'_> {
    type Key = Key;

    fn get_key<N: ToName>(&self, name: &N, algorithm: Algorithm) -> Option<Key> {
        self.0.iter().find(|k| k.inner.name().name_eq(name) && k.inner.algorithm() == algorithm).map(|k| (*k).clone())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TsigError {
    #[error("message is not signed")]
    Unsigned,
    #[error("malformed message")]
    Malformed,
    #[error("{0}")]
    Invalid(String),
}

/// Seconds since the epoch as TSIG counts them; tests pass their own clock.
pub fn now() -> Time48 {
    Time48::now()
}

/// Our byte message rebuilt in `domain`'s builder, ready for a TSIG record: our builder writes
/// uncompressed names, so the RDATA copies verbatim.
fn rebuild(bytes: &[u8]) -> Result<AdditionalBuilder<Vec<u8>>, TsigError> {
    let bad = |_| TsigError::Malformed;
    let msg = Message::from_octets(bytes).map_err(|_| TsigError::Malformed)?;
    let mut b = MessageBuilder::from_target(Vec::with_capacity(bytes.len() + 128)).map_err(|_| TsigError::Malformed)?;
    *b.header_mut() = msg.header();
    let mut q = b.question();
    for question in msg.question() {
        q.push(question.map_err(bad)?).map_err(|_| TsigError::Malformed)?;
    }
    let (mut answer, sections) = (q.answer(), msg.sections().map_err(bad)?);
    for r in sections.1 {
        let r = r.map_err(bad)?.to_record::<UnknownRecordData<_>>().map_err(bad)?.ok_or(TsigError::Malformed)?;
        answer.push(r).map_err(|_| TsigError::Malformed)?;
    }
    let mut authority = answer.authority();
    for r in sections.2 {
        let r = r.map_err(bad)?.to_record::<UnknownRecordData<_>>().map_err(bad)?.ok_or(TsigError::Malformed)?;
        authority.push(r).map_err(|_| TsigError::Malformed)?;
    }
    let mut additional = authority.additional();
    for r in sections.3 {
        let r = r.map_err(bad)?.to_record::<UnknownRecordData<_>>().map_err(bad)?.ok_or(TsigError::Malformed)?;
        additional.push(r).map_err(|_| TsigError::Malformed)?;
    }
    Ok(additional)
}

/// A verified request: sign the answer (or answers, for a transfer) with it.
pub struct Verified {
    seq: dt::ServerSequence<Key>,
}

impl Verified {
    /// Signs `msg`, a reply to the verified request (each message of a transfer in turn).
    pub fn sign(&mut self, msg: &mut Vec<u8>, now: Time48) -> Result<(), TsigError> {
        let mut b = rebuild(msg)?;
        self.seq.answer(&mut b, now).map_err(|e| TsigError::Invalid(e.to_string()))?;
        *msg = b.finish();
        Ok(())
    }
}

/// Why a request was refused: the log line and the reply that says so.
pub struct Refusal {
    pub reason: String,
    /// The error reply: NOTAUTH with a TSIG record whose error field says BADSIG, BADKEY or
    /// BADTIME (BADTIME signed, with our time in Other Data); REFUSED for an unsigned request.
    pub reply: Vec<u8>,
}

/// Verifies a request from `peer` against the keys valid for it.
pub fn verify_request(raw: &[u8], keys: &[Key], peer: IpAddr, now: Time48) -> Result<Verified, Refusal> {
    let store = PeerKeys(for_peer(keys, peer));
    let original = Message::from_octets(raw).map_err(|_| formerr(raw))?;
    let mut msg = Message::from_octets(raw.to_vec()).map_err(|_| formerr(raw))?;
    match dt::ServerSequence::request(&store, &mut msg, now) {
        Ok(Some(seq)) => Ok(Verified { seq }),
        // BIND and Knot refuse an unsigned request where a key is required.
        Ok(None) => Err(Refusal { reason: "not signed".into(), reply: error_reply(&original, Rcode::REFUSED) }),
        Err(err) => {
            // domain 0.12.3 reports a MAC that does not verify as TSIG error FORMERR in an
            // unsigned TSIG record (tsig/mod.rs, `server_request`); RFC 8945 section 5.2.2 says
            // BADSIG. A malformed TSIG is a plain FORMERR without a record, so this is exact.
            let badsig = err.error() == TsigRcode::FORMERR;
            let reason = if badsig { "BADSIG".to_string() } else { format!("{}", err.error()) };
            let mut reply = MessageBuilder::from_target(Vec::new())
                .ok()
                .and_then(|b| err.build_message(&original, b).ok())
                .map(AdditionalBuilder::finish)
                .unwrap_or_else(|| error_reply(&original, Rcode::NOTAUTH));
            if badsig {
                set_tsig_error(&mut reply, 16);
            }
            Err(Refusal { reason, reply })
        }
    }
}

/// Sets the error field of `reply`'s (unsigned) TSIG record.
fn set_tsig_error(reply: &mut [u8], error: u16) {
    let Some(m) = message::parse(reply) else { return };
    let Some(t) = m.additional.last().filter(|r| r.rtype == rtype::TSIG) else { return };
    let Some(alg) = crate::name::wire_name_len(&t.rdata) else { return };
    let Some(mac_len) = t.rdata.get(alg + 8..alg + 10).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) else {
        return;
    };
    let at = alg + 12 + mac_len;
    if t.rdata.len() < at + 2 {
        return;
    }
    // The record ends the message: its RDATA is its last bytes.
    let rdata_start = reply.len() - t.rdata.len();
    reply[rdata_start + at..rdata_start + at + 2].copy_from_slice(&error.to_be_bytes());
}

fn formerr(raw: &[u8]) -> Refusal {
    let mut reply = raw.get(..HEADER_LEN).map(<[u8]>::to_vec).unwrap_or_default();
    if reply.len() == HEADER_LEN {
        let flags = (u16::from_be_bytes([reply[2], reply[3]]) | FLAG_QR) & !0xf | rcode::FORMERR;
        reply[2..4].copy_from_slice(&flags.to_be_bytes());
        reply[4..HEADER_LEN].fill(0);
    }
    Refusal { reason: "malformed".into(), reply }
}

fn error_reply(msg: &Message<&[u8]>, rcode: Rcode) -> Vec<u8> {
    MessageBuilder::from_target(Vec::new())
        .ok()
        .and_then(|b| b.start_answer(msg, rcode).ok())
        .map(|b| b.finish())
        .unwrap_or_default()
}

/// Signs the request `msg` with `key`; the returned verifier checks the answer stream.
pub fn sign_request(msg: &mut Vec<u8>, key: &Key, now: Time48) -> Result<StreamVerifier, TsigError> {
    let mut b = rebuild(msg)?;
    let seq = dt::ClientSequence::request(key.clone(), &mut b, now).map_err(|e| TsigError::Invalid(e.to_string()))?;
    *msg = b.finish();
    Ok(StreamVerifier { seq })
}

/// Verifies the messages answering a request we signed: the first must be signed, later ones
/// may go unsigned in between (up to 99, RFC 8945 section 5.3.1) and the last must be signed.
pub struct StreamVerifier {
    seq: dt::ClientSequence<Key>,
}

impl StreamVerifier {
    pub fn verify(&mut self, msg: &[u8], now: Time48) -> Result<(), TsigError> {
        let mut m = Message::from_octets(msg.to_vec()).map_err(|_| TsigError::Malformed)?;
        self.seq.answer(&mut m, now).map_err(|e| TsigError::Invalid(e.to_string()))
    }

    pub fn finish(self) -> Result<(), TsigError> {
        self.seq.done().map_err(|e| TsigError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::message::Builder;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn key(name: &str, secret: &[u8], peers: &[&str]) -> Key {
        let peers = peers.iter().map(|p| p.parse().unwrap()).collect();
        Key::new(Name::from_text(name).unwrap(), Algorithm::Sha256, secret, peers).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The TSIG error field of `reply`'s TSIG record, and whether it carries a MAC.
    fn tsig_error(reply: &[u8]) -> (u16, u16, bool) {
        let m = message::parse(reply).expect("reply parses");
        let t = m.additional.last().filter(|r| r.rtype == rtype::TSIG).expect("reply has a TSIG record");
        let alg = crate::name::wire_name_len(&t.rdata).unwrap();
        let f = &t.rdata[alg..];
        let mac_len = u16::from_be_bytes([f[8], f[9]]) as usize;
        (m.rcode(), u16::from_be_bytes([f[12 + mac_len], f[13 + mac_len]]), mac_len > 0)
    }

    fn signed_request(k: &Key, at: u64) -> Vec<u8> {
        let zone = Name::from_text("example.org").unwrap();
        let mut req = Builder::new(42, 0, Some((&zone, 252))).buf;
        sign_request(&mut req, k, Time48::from_u64(at)).unwrap();
        req
    }

    #[test]
    fn request_and_stream_round_trip() {
        let k = key("xfr-key", SECRET, &[]);
        let t = 1_800_000_000;
        let req = signed_request(&k, t);
        let peer = ip("192.0.2.1");
        let mut server =
            verify_request(&req, std::slice::from_ref(&k), peer, Time48::from_u64(t + 10)).ok().expect("verifies");
        let zone = Name::from_text("example.org").unwrap();
        let mut client = {
            let mut again = Builder::new(42, 0, Some((&zone, 252))).buf;
            sign_request(&mut again, &k, Time48::from_u64(t)).unwrap()
        };
        // The same request signed twice at one time gives one MAC, so the client verifier of
        // the second signing checks the server's answers to the first.
        let mut msgs = vec![Builder::new(42, 0x8400, Some((&zone, 252))).buf, Builder::new(42, 0x8400, None).buf];
        for m in &mut msgs {
            server.sign(m, Time48::from_u64(t + 11)).unwrap();
        }
        for m in &msgs {
            client.verify(m, Time48::from_u64(t + 12)).unwrap();
        }
        client.finish().unwrap();
        // A tampered answer fails.
        let mut client = {
            let mut again = Builder::new(42, 0, Some((&zone, 252))).buf;
            sign_request(&mut again, &k, Time48::from_u64(t)).unwrap()
        };
        let mut bad = msgs[0].clone();
        bad[3] ^= 1;
        assert!(client.verify(&bad, Time48::from_u64(t + 12)).is_err());
    }

    /// The old code signed over a constant fudge of 300 but checked time against the wire's
    /// fudge: raising the fudge on a captured message made it replayable for 18 hours.
    #[test]
    fn a_raised_fudge_does_not_extend_a_captured_request() {
        let k = key("xfr-key", SECRET, &[]);
        let t = 1_800_000_000;
        let mut req = signed_request(&k, t);
        let m = message::parse(&req).unwrap();
        let rr = m.additional.last().unwrap();
        let alg = crate::name::wire_name_len(&rr.rdata).unwrap();
        // rdata starts after owner (uncompressed), type, class, ttl, rdlength.
        let rdata_at = rr.start + rr.owner.as_wire().len() + 10;
        let fudge_at = rdata_at + alg + 6;
        req[fudge_at..fudge_at + 2].copy_from_slice(&u16::MAX.to_be_bytes());
        let later = Time48::from_u64(t + 3600);
        let refused =
            verify_request(&req, std::slice::from_ref(&k), ip("192.0.2.1"), later).err().expect("replay refused");
        let (rcode, error, _) = tsig_error(&refused.reply);
        assert_eq!((rcode, error), (9, 16), "NOTAUTH/BADSIG: the MAC covers the fudge");
    }

    #[test]
    fn errors_carry_a_tsig_record() {
        let k = key("xfr-key", SECRET, &[]);
        let t = 1_800_000_000;
        let peer = ip("192.0.2.1");
        // BADTIME: signed, so the client can trust our clock (RFC 8945 section 5.2.3).
        let req = signed_request(&k, t);
        let refused =
            verify_request(&req, std::slice::from_ref(&k), peer, Time48::from_u64(t + 301)).err().expect("too late");
        assert_eq!(tsig_error(&refused.reply), (9, 18, true), "NOTAUTH, BADTIME, signed");
        // BADSIG and BADKEY: an unsigned TSIG record with the error.
        let wrong = key("xfr-key", b"another secret of the right size", &[]);
        let req = signed_request(&wrong, t);
        let refused = verify_request(&req, std::slice::from_ref(&k), peer, Time48::from_u64(t)).err().expect("bad sig");
        assert_eq!(tsig_error(&refused.reply), (9, 16, false));
        let other = key("other-key", SECRET, &[]);
        let req = signed_request(&other, t);
        let refused = verify_request(&req, std::slice::from_ref(&k), peer, Time48::from_u64(t)).err().expect("bad key");
        assert_eq!(tsig_error(&refused.reply), (9, 17, false));
        // Unsigned where a key is required: REFUSED, as BIND and Knot answer.
        let zone = Name::from_text("example.org").unwrap();
        let plain = Builder::new(42, 0, Some((&zone, 252))).buf;
        let refused =
            verify_request(&plain, std::slice::from_ref(&k), peer, Time48::from_u64(t)).err().expect("unsigned");
        assert_eq!(message::parse(&refused.reply).unwrap().rcode(), 5);
    }

    #[test]
    fn keys_are_chosen_by_peer() {
        let a = key("key-a", SECRET, &["192.0.2.1/32"]);
        let b = key("key-b", b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", &["198.51.100.0/24"]);
        let fleet = key("fleet", b"ffffffffffffffffffffffffffffffff", &[]);
        let keys = vec![a.clone(), b.clone(), fleet.clone()];
        assert_eq!(key_for(&keys, ip("192.0.2.1")).unwrap().name, a.name);
        assert_eq!(key_for(&keys, ip("::ffff:198.51.100.7")).unwrap().name, b.name);
        assert_eq!(key_for(&keys, ip("203.0.113.5")).unwrap().name, fleet.name);
        let t = 1_800_000_000;
        // B's key is no good from A's address, nor the fleet key: BADKEY.
        for k in [&b, &fleet] {
            let req = signed_request(k, t);
            let refused =
                verify_request(&req, &keys, ip("192.0.2.1"), Time48::from_u64(t)).err().expect("not this peer's key");
            assert_eq!(tsig_error(&refused.reply).1, 17);
        }
        assert!(verify_request(&signed_request(&a, t), &keys, ip("192.0.2.1"), Time48::from_u64(t)).is_ok());
        assert!(verify_request(&signed_request(&fleet, t), &keys, ip("203.0.113.5"), Time48::from_u64(t)).is_ok());
    }
}
