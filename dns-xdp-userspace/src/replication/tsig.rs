//! TSIG (RFC 8945) with HMAC-SHA256: signing and verifying requests, responses and the message
//! streams of zone transfers.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::message::{self, CLASS_ANY, TYPE_TSIG};
use crate::name::Name;

type HmacSha256 = Hmac<Sha256>;

/// Seconds of clock difference we accept (RFC 8945 section 10 recommends 300).
pub const FUDGE: u16 = 300;
/// TSIG error codes (RFC 8945 section 3).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub name: Name,
    pub secret: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TsigError {
    #[error("message is not signed")]
    Unsigned,
    #[error("unknown key or algorithm")]
    BadKey,
    #[error("signature does not verify")]
    BadSig,
    #[error("time signed is outside the fudge")]
    BadTime,
    #[error("malformed TSIG record")]
    Malformed,
}

impl TsigError {
    pub fn code(&self) -> u16 {
        match self {
            TsigError::BadTime => BADTIME,
            TsigError::BadKey => BADKEY,
            _ => BADSIG,
        }
    }
}

pub fn algorithm() -> Name {
    Name::from_text("hmac-sha256").expect("literal")
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hmac(key: &Key) -> HmacSha256 {
    HmacSha256::new_from_slice(&key.secret).expect("HMAC takes any key length")
}

fn time_bytes(time: u64) -> [u8; 6] {
    let b = time.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// The TSIG variables of RFC 8945 section 4.3.3 (a whole set: first message of an exchange).
fn variables(mac: &mut HmacSha256, key: &Key, time: u64, error: u16, other: &[u8]) {
    mac.update(key.name.as_wire());
    mac.update(&CLASS_ANY.to_be_bytes());
    mac.update(&0u32.to_be_bytes());
    mac.update(algorithm().as_wire());
    mac.update(&time_bytes(time));
    mac.update(&FUDGE.to_be_bytes());
    mac.update(&error.to_be_bytes());
    mac.update(&(other.len() as u16).to_be_bytes());
    mac.update(other);
}

fn append(msg: &mut Vec<u8>, key: &Key, time: u64, mac: &[u8], original_id: u16, error: u16) {
    let mut rdata = algorithm().as_wire().to_vec();
    rdata.extend_from_slice(&time_bytes(time));
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&original_id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes());
    msg.extend_from_slice(key.name.as_wire());
    msg.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    msg.extend_from_slice(&rdata);
    let ar = u16::from_be_bytes([msg[10], msg[11]]) + 1;
    msg[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Signs a request, or the first message answering `request_mac`; returns the MAC.
pub fn sign(msg: &mut Vec<u8>, key: &Key, request_mac: Option<&[u8]>) -> Vec<u8> {
    let time = now();
    let mut mac = hmac(key);
    if let Some(req) = request_mac {
        mac.update(&(req.len() as u16).to_be_bytes());
        mac.update(req);
    }
    mac.update(msg);
    variables(&mut mac, key, time, 0, &[]);
    let out = mac.finalize().into_bytes().to_vec();
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    append(msg, key, time, &out, id, 0);
    out
}

/// Signs a later message of a transfer stream (RFC 8945 section 5.3.1): prior MAC, the message,
/// the timers only.
pub fn sign_next(msg: &mut Vec<u8>, key: &Key, prior_mac: &[u8]) -> Vec<u8> {
    let time = now();
    let mut mac = hmac(key);
    mac.update(&(prior_mac.len() as u16).to_be_bytes());
    mac.update(prior_mac);
    mac.update(msg);
    mac.update(&time_bytes(time));
    mac.update(&FUDGE.to_be_bytes());
    let out = mac.finalize().into_bytes().to_vec();
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    append(msg, key, time, &out, id, 0);
    out
}

/// A message's TSIG record split off: the message as it was before signing, and the fields.
struct Signed {
    unsigned: Vec<u8>,
    key_name: Name,
    algorithm: Name,
    time: u64,
    fudge: u16,
    mac: Vec<u8>,
    error: u16,
    other: Vec<u8>,
}

fn split(msg: &[u8]) -> Result<Signed, TsigError> {
    let parsed = message::parse(msg).ok_or(TsigError::Malformed)?;
    let Some(last) = parsed.additional.last().filter(|r| r.rtype == TYPE_TSIG) else { return Err(TsigError::Unsigned) };
    // The TSIG record ends the message (RFC 8945 section 5.1): bytes after it would ride along
    // unauthenticated.
    let (_, after_owner) = message::read_name(msg, last.start).ok_or(TsigError::Malformed)?;
    if after_owner + 10 + last.rdata.len() != msg.len() {
        return Err(TsigError::Malformed);
    }
    let rd = &last.rdata;
    let alg_len = crate::name::wire_name_len(rd).ok_or(TsigError::Malformed)?;
    let algorithm = Name::from_wire(&rd[..alg_len]).ok_or(TsigError::Malformed)?;
    let field = |at: usize, n: usize| rd.get(alg_len + at..alg_len + at + n).ok_or(TsigError::Malformed);
    let time = field(0, 6)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let fudge = u16::from_be_bytes(field(6, 2)?.try_into().expect("2"));
    let mac_len = u16::from_be_bytes(field(8, 2)?.try_into().expect("2")) as usize;
    let mac = field(10, mac_len)?.to_vec();
    let original_id = field(10 + mac_len, 2)?;
    let error = u16::from_be_bytes(field(12 + mac_len, 2)?.try_into().expect("2"));
    let other_len = u16::from_be_bytes(field(14 + mac_len, 2)?.try_into().expect("2")) as usize;
    let other = field(16 + mac_len, other_len)?.to_vec();
    let mut unsigned = msg[..last.start].to_vec();
    unsigned[0..2].copy_from_slice(original_id);
    let ar = u16::from_be_bytes([unsigned[10], unsigned[11]]) - 1;
    unsigned[10..12].copy_from_slice(&ar.to_be_bytes());
    Ok(Signed { unsigned, key_name: last.owner.clone(), algorithm, time, fudge, mac, error, other })
}

fn check_time(s: &Signed) -> Result<(), TsigError> {
    (now().abs_diff(s.time) <= u64::from(s.fudge)).then_some(()).ok_or(TsigError::BadTime)
}

/// Verifies a signed request against `keys`; returns the key used and the request's MAC (the
/// response is signed over it).
pub fn verify_request<'k>(msg: &[u8], keys: &'k [Key]) -> Result<(&'k Key, Vec<u8>), TsigError> {
    let s = split(msg)?;
    let key = keys.iter().find(|k| k.name == s.key_name).ok_or(TsigError::BadKey)?;
    if s.algorithm != algorithm() {
        return Err(TsigError::BadKey);
    }
    let mut mac = hmac(key);
    mac.update(&s.unsigned);
    variables(&mut mac, key, s.time, s.error, &s.other);
    mac.verify_slice(&s.mac).map_err(|_| TsigError::BadSig)?;
    check_time(&s)?;
    Ok((key, s.mac))
}

/// Verifies the messages answering a request we signed with `key`: the first must be signed;
/// later ones may go unsigned in between (RFC 8945 section 5.3.1), and are covered by the next
/// signed one. `finish` fails when the stream ended on unsigned messages.
pub struct StreamVerifier {
    key: Key,
    prior_mac: Vec<u8>,
    first: bool,
    pending: Option<HmacSha256>,
}

impl StreamVerifier {
    pub fn new(key: Key, request_mac: Vec<u8>) -> Self {
        StreamVerifier { key, prior_mac: request_mac, first: true, pending: None }
    }

    pub fn verify(&mut self, msg: &[u8]) -> Result<(), TsigError> {
        let s = match split(msg) {
            Err(TsigError::Unsigned) if !self.first => {
                let mac = self.pending.get_or_insert_with(|| start(&self.key, &self.prior_mac));
                mac.update(msg);
                return Ok(());
            }
            other => other?,
        };
        if s.key_name != self.key.name || s.algorithm != algorithm() {
            return Err(TsigError::BadKey);
        }
        let mut mac = self.pending.take().unwrap_or_else(|| start(&self.key, &self.prior_mac));
        mac.update(&s.unsigned);
        if self.first {
            variables(&mut mac, &self.key, s.time, s.error, &s.other);
        } else {
            mac.update(&time_bytes(s.time));
            mac.update(&s.fudge.to_be_bytes());
        }
        mac.verify_slice(&s.mac).map_err(|_| TsigError::BadSig)?;
        check_time(&s)?;
        self.first = false;
        self.prior_mac = s.mac;
        Ok(())
    }

    pub fn finish(&self) -> Result<(), TsigError> {
        if self.first || self.pending.is_some() { Err(TsigError::Unsigned) } else { Ok(()) }
    }
}

fn start(key: &Key, prior: &[u8]) -> HmacSha256 {
    let mut mac = hmac(key);
    mac.update(&(prior.len() as u16).to_be_bytes());
    mac.update(prior);
    mac
}

/// Decodes a base64 secret as key files write it (RFC 4648 section 4, padding optional).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::message::Builder;

    fn key(name: &str, secret: &[u8]) -> Key {
        Key { name: Name::from_text(name).unwrap(), secret: secret.to_vec() }
    }

    /// fuzz/tsig: bytes after the TSIG record were accepted, outside the MAC (RFC 8945 section 5.1:
    /// the TSIG record is the last thing in the message).
    #[test]
    fn bytes_after_the_tsig_record_are_malformed() {
        let k = key("xfr-key", b"0123456789abcdef0123456789abcdef");
        let zone = Name::from_text("example.org").unwrap();
        let mut req = Builder::new(42, 0, Some((&zone, 252))).buf;
        sign(&mut req, &k, None);
        assert!(verify_request(&req, std::slice::from_ref(&k)).is_ok());
        req.push(0);
        assert_eq!(verify_request(&req, std::slice::from_ref(&k)), Err(TsigError::Malformed));
        let mut stream = StreamVerifier::new(k.clone(), Vec::new());
        assert_eq!(stream.verify(&req), Err(TsigError::Malformed));
    }

    #[test]
    fn request_and_stream_round_trip() {
        let k = key("xfr-key", b"0123456789abcdef0123456789abcdef");
        let zone = Name::from_text("example.org").unwrap();
        let mut req = Builder::new(42, 0, Some((&zone, 252))).buf;
        let req_mac = sign(&mut req, &k, None);
        let (found, mac) = verify_request(&req, std::slice::from_ref(&k)).unwrap();
        assert_eq!((found, &mac), (&k, &req_mac));
        // Wrong key name, wrong secret, unsigned.
        assert_eq!(verify_request(&req, &[key("other", b"x")]), Err(TsigError::BadKey));
        assert_eq!(verify_request(&req, &[key("xfr-key", b"y")]), Err(TsigError::BadSig));
        let plain = Builder::new(42, 0, Some((&zone, 252))).buf;
        assert_eq!(verify_request(&plain, &[k.clone()]), Err(TsigError::Unsigned));
        // A stream: signed, unsigned, signed.
        let mut first = Builder::new(42, 0x8400, Some((&zone, 252))).buf;
        let m1 = sign(&mut first, &k, Some(&mac));
        let middle = Builder::new(42, 0x8400, None).buf;
        let mut last = Builder::new(42, 0x8400, None).buf;
        let both: Vec<u8>;
        {
            let mut h = start(&k, &m1);
            h.update(&middle);
            h.update(&last);
            let t = now();
            h.update(&time_bytes(t));
            h.update(&FUDGE.to_be_bytes());
            both = h.finalize().into_bytes().to_vec();
            append(&mut last, &k, t, &both, 42, 0);
        }
        let mut v = StreamVerifier::new(k.clone(), mac.clone());
        v.verify(&first).unwrap();
        v.verify(&middle).unwrap();
        assert!(v.finish().is_err());
        v.verify(&last).unwrap();
        v.finish().unwrap();
        // A tampered stream fails.
        let mut v = StreamVerifier::new(k.clone(), mac);
        let mut bad = first.clone();
        bad[3] ^= 1;
        assert_eq!(v.verify(&bad), Err(TsigError::BadSig));
        let _ = both;
    }
}
