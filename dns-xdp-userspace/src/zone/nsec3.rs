//! NSEC3 (RFC 5155): hashing names and finding the records that match or cover them. The chain
//! comes pre-signed in the zone file; we only look it up.

use std::collections::{BTreeMap, HashMap};

use super::Node;
use crate::name::Name;

/// Iterations above this are not worth answering with (RFC 9276 section 3.2 recommends 0);
/// bounds the work one query can cost.
pub const MAX_ITERATIONS: u16 = 500;

/// A zone's NSEC3 records, keyed by hashed owner label (base32hex sorts like the hash bytes).
#[derive(Clone, Debug, Default)]
pub struct Chain {
    pub iterations: u16,
    pub salt: Vec<u8>,
    pub records: BTreeMap<Vec<u8>, (Name, Node)>,
}

impl Chain {
    /// Builds the chain from the NSEC3PARAM RDATA and the nodes holding NSEC3 records.
    pub fn new(param: &[u8], nodes: HashMap<Name, Node>) -> Option<Chain> {
        let iterations = u16::from_be_bytes(param.get(2..4)?.try_into().ok()?);
        let salt_len = *param.get(4)? as usize;
        let salt = param.get(5..5 + salt_len)?.to_vec();
        let records = nodes.into_iter().map(|(owner, node)| (owner.first_label().to_vec(), (owner, node))).collect();
        (iterations <= MAX_ITERATIONS).then_some(Chain { iterations, salt, records })
    }

    /// The base32hex label of `name`'s hash (RFC 5155 section 5).
    pub fn hash_label(&self, name: &Name) -> Vec<u8> {
        let mut digest = sha1(&[name.as_wire(), &self.salt].concat());
        for _ in 0..self.iterations {
            digest = sha1(&[&digest[..], &self.salt].concat());
        }
        base32hex(&digest)
    }

    /// The NSEC3 whose owner hashes from `name`.
    pub fn matching(&self, name: &Name) -> Option<(&Name, &Node)> {
        self.records.get(&self.hash_label(name)).map(|(o, n)| (o, n))
    }

    /// The NSEC3 covering `name`'s hash: the greatest owner hash before it, wrapping around.
    pub fn covering(&self, name: &Name) -> Option<(&Name, &Node)> {
        let hash = self.hash_label(name);
        let (_, (o, n)) = self.records.range(..hash).next_back().or_else(|| self.records.iter().next_back())?;
        Some((o, n))
    }
}

fn base32hex(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(ALPHABET[((v >> (35 - 5 * i)) & 31) as usize]);
        }
    }
    out
}

/// SHA-1 (FIPS 180-4), the only NSEC3 hash algorithm (RFC 5155 section 11).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().expect("4 bytes"));
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_vectors() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn rfc5155_appendix_a_hash() {
        // RFC 5155 appendix A: example, salt aabbccdd, 12 iterations.
        let chain = Chain { iterations: 12, salt: vec![0xaa, 0xbb, 0xcc, 0xdd], records: BTreeMap::new() };
        let label = chain.hash_label(&Name::from_text("example").unwrap());
        assert_eq!(label, b"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom");
        let label = chain.hash_label(&Name::from_text("a.example").unwrap());
        assert_eq!(label, b"35mthgpgcu1qg68fab165klnsnk3dpvl");
    }
}
