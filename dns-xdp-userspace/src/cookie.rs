//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018): a client that sends a
//! client cookie gets a server cookie back, and a query that echoes a valid server cookie proves
//! its source address is real, so the rate limiter lets it through (issue 5).
//!
//! The XDP program cannot compute SipHash cheaply, so it passes every query carrying a COOKIE
//! option to the daemon (dns-xdp-ebpf/src/dns.rs, `stat::PASS_COOKIE`); everything here runs in
//! the daemon only.
//!
//! We never answer BADCOOKIE: RFC 7873 section 5.2.3 lets a server answer normally when the
//! server cookie is missing or invalid, and for an authoritative server that costs nothing an
//! attacker could use (the answer is rate-limited like any other). A client with a stale cookie
//! simply gets a fresh one in the answer.

use std::hash::Hasher as _;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use siphasher::sip::SipHasher24;

/// Client cookie length (RFC 7873 section 4).
pub const CLIENT_LEN: usize = 8;
/// Server cookie length limits (RFC 7873 section 4).
pub const SERVER_MIN_LEN: usize = 8;
pub const SERVER_MAX_LEN: usize = 32;
/// The RFC 9018 server cookie: version, 3 reserved bytes, timestamp, 8-byte hash.
pub const SERVER_LEN: usize = 16;
/// The option data we send: client cookie + our server cookie.
pub const REPLY_LEN: usize = CLIENT_LEN + SERVER_LEN;
/// RFC 9018 section 4.2.
const VERSION: u8 = 1;
/// Server cookies older than this are not accepted (RFC 9018 section 4.3: one hour).
const MAX_AGE_SECS: u32 = 3600;
/// Clock skew tolerated for cookies from another node of an anycast set (RFC 9018: 5 minutes).
const MAX_FUTURE_SECS: u32 = 300;
/// A valid cookie younger than this is echoed unchanged; older ones are refreshed (RFC 9018
/// section 4.3 suggests half an hour), so a client's cookie stays stable between refreshes.
const REFRESH_AFTER_SECS: u32 = 1800;

/// The COOKIE option of a query (RFC 7873 section 4): a client cookie and maybe a server cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryCookie {
    pub client: [u8; CLIENT_LEN],
    server: [u8; SERVER_MAX_LEN],
    server_len: u8,
}

impl QueryCookie {
    /// Parses the option data; `None` for a malformed length, which RFC 7873 section 5.2.2 answers
    /// with FORMERR.
    pub fn parse(data: &[u8]) -> Option<QueryCookie> {
        let server = data.get(CLIENT_LEN..)?;
        if !server.is_empty() && !(SERVER_MIN_LEN..=SERVER_MAX_LEN).contains(&server.len()) {
            return None;
        }
        let mut cookie = QueryCookie {
            client: data[..CLIENT_LEN].try_into().ok()?,
            server: [0; SERVER_MAX_LEN],
            server_len: server.len() as u8,
        };
        cookie.server[..server.len()].copy_from_slice(server);
        Some(cookie)
    }

    pub fn server(&self) -> &[u8] {
        &self.server[..self.server_len as usize]
    }
}

/// What the daemon decided about a query's cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The COOKIE option data to put in the response (client cookie + server cookie).
    pub reply: [u8; REPLY_LEN],
    /// The query carried a valid server cookie for its source address.
    pub valid: bool,
}

/// A configured server secret that is not 32 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("cookie secret must be 32 hex digits (128 bits)")]
pub struct SecretError;

/// The server secret (a 128-bit SipHash key). Random per process by default; nodes of an
/// anycast set share one (`cookie_secret`) so a cookie from one node is good at the others.
#[derive(Clone)]
pub struct Cookies {
    key: [u8; 16],
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookies { key: <secret> }")
    }
}

impl Cookies {
    pub fn new(key: [u8; 16]) -> Self {
        Cookies { key }
    }

    /// A fresh random secret from the kernel's CSPRNG.
    pub fn random() -> std::io::Result<Self> {
        use std::io::Read as _;
        let mut key = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(Cookies { key })
    }

    /// Parses a secret given as 32 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SecretError);
        }
        let mut key = [0u8; 16];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(Cookies { key })
    }

    /// The RFC 9018 section 4.4 hash: SipHash-2-4 over client cookie | version | reserved |
    /// timestamp | client IP (4 or 16 bytes).
    fn hash(&self, client: &[u8; CLIENT_LEN], head: &[u8; 8], ip: IpAddr) -> [u8; 8] {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write(client);
        h.write(head);
        match canonical(ip) {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        // The reference implementation emits the 64-bit result little-endian.
        h.finish().to_le_bytes()
    }

    /// A server cookie for `client` at `ip`, stamped `now` (seconds since the epoch, mod 2^32).
    pub fn server_cookie(&self, client: &[u8; CLIENT_LEN], ip: IpAddr, now: u32) -> [u8; SERVER_LEN] {
        let mut head = [VERSION, 0, 0, 0, 0, 0, 0, 0];
        head[4..].copy_from_slice(&now.to_be_bytes());
        let mut out = [0u8; SERVER_LEN];
        out[..8].copy_from_slice(&head);
        out[8..].copy_from_slice(&self.hash(client, &head, ip));
        out
    }

    /// Checks a received server cookie: ours (version 1, reserved 0, right hash for this client
    /// cookie and address) and neither older than an hour nor more than 5 minutes ahead.
    /// Returns its age in seconds when valid.
    fn validate(&self, cookie: &QueryCookie, ip: IpAddr, now: u32) -> Option<u32> {
        let server: &[u8; SERVER_LEN] = cookie.server().try_into().ok()?;
        if server[..4] != [VERSION, 0, 0, 0] {
            return None;
        }
        let stamp = u32::from_be_bytes(server[4..8].try_into().expect("4 bytes"));
        // Serial-number arithmetic (RFC 1982): the timestamp wraps in 2106.
        let age = now.wrapping_sub(stamp);
        let ahead = stamp.wrapping_sub(now);
        if age > MAX_AGE_SECS && ahead > MAX_FUTURE_SECS {
            return None;
        }
        let head: &[u8; 8] = server[..8].try_into().expect("8 bytes");
        // Not constant-time: a timing oracle on an 8-byte hash that is only good for one
        // (client cookie, address) pair and an hour buys an attacker little.
        (self.hash(&cookie.client, head, ip) == server[8..]).then_some(if age <= MAX_AGE_SECS { age } else { 0 })
    }

    /// Decides the response's COOKIE for a query from `ip` at `now`: a valid recent server
    /// cookie is echoed, anything else gets a fresh one.
    pub fn answer_at(&self, cookie: &QueryCookie, ip: IpAddr, now: u32) -> Outcome {
        let mut reply = [0u8; REPLY_LEN];
        reply[..CLIENT_LEN].copy_from_slice(&cookie.client);
        let age = self.validate(cookie, ip, now);
        match age {
            Some(age) if age < REFRESH_AFTER_SECS => reply[CLIENT_LEN..].copy_from_slice(cookie.server()),
            _ => reply[CLIENT_LEN..].copy_from_slice(&self.server_cookie(&cookie.client, ip, now)),
        }
        Outcome { reply, valid: age.is_some() }
    }

    pub fn answer(&self, cookie: &QueryCookie, ip: IpAddr) -> Outcome {
        self.answer_at(cookie, ip, unix_now())
    }
}

/// Seconds since the epoch, truncated to 32 bits as RFC 9018 timestamps are.
pub fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

/// An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d; the XDP program and other
/// nodes see a.b.c.d, so the hash uses that.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn query_cookie(client: &str, server: &str) -> QueryCookie {
        QueryCookie::parse(&hex(&format!("{client}{server}"))).unwrap()
    }

    /// RFC 9018 Appendix A: the test vectors for the interoperable server cookie.
    #[test]
    fn rfc9018_appendix_a_vectors() {
        let secret = Cookies::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf").unwrap();
        let client: [u8; 8] = hex("2464c4abcf10c957").try_into().unwrap();
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        // A.1: learning a new server cookie.
        assert_eq!(secret.server_cookie(&client, ip, 1559731985).to_vec(), hex("010000005cf79f111f8130c3eee29480"));
        // A.2: the same client, later: a new timestamp and hash.
        assert_eq!(secret.server_cookie(&client, ip, 1559734385).to_vec(), hex("010000005cf7a871d4a564a1442aca77"));
        // A.3: another resolver.
        let client: [u8; 8] = hex("fc93fc62807ddb86").try_into().unwrap();
        let ip: IpAddr = "203.0.113.203".parse().unwrap();
        assert_eq!(secret.server_cookie(&client, ip, 1559734700).to_vec(), hex("010000005cf7a9acf73a7810aca2381e"));
        // A.4: IPv6 query with a rolled-over secret.
        let secret = Cookies::from_hex("dd3bdf9344b678b185a6f5cb60fca715").unwrap();
        let client: [u8; 8] = hex("22681ab97d52c298").try_into().unwrap();
        let ip: IpAddr = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
        assert_eq!(secret.server_cookie(&client, ip, 1559741817).to_vec(), hex("010000005cf7c57926556bd0934c72f8"));
    }

    #[test]
    fn parse_lengths() {
        assert!(QueryCookie::parse(&[0; 7]).is_none(), "client cookie too short");
        assert_eq!(QueryCookie::parse(&[1; 8]).unwrap().server(), b"");
        assert!(QueryCookie::parse(&[0; 9]).is_none(), "server cookie of 1 byte");
        assert!(QueryCookie::parse(&[0; 15]).is_none(), "server cookie of 7 bytes");
        assert_eq!(QueryCookie::parse(&[2; 16]).unwrap().server(), &[2; 8]);
        assert_eq!(QueryCookie::parse(&[3; 40]).unwrap().server(), &[3; 32]);
        assert!(QueryCookie::parse(&[0; 41]).is_none(), "server cookie of 33 bytes");
    }

    #[test]
    fn validation_window_address_and_refresh() {
        let secret = Cookies::from_hex("e5e973e5a6b2a43f48e7dc849e37bfcf").unwrap();
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let t = 1_559_731_985;
        // A client cookie alone: a fresh server cookie, not valid.
        let first = secret.answer_at(&query_cookie("2464c4abcf10c957", ""), ip, t);
        assert!(!first.valid);
        assert_eq!(first.reply.to_vec(), hex("2464c4abcf10c957010000005cf79f111f8130c3eee29480"));
        let echoed = QueryCookie::parse(&first.reply).unwrap();
        // Echoed a minute later: valid, and returned unchanged.
        let again = secret.answer_at(&echoed, ip, t + 60);
        assert!(again.valid);
        assert_eq!(again.reply, first.reply);
        // 40 minutes later: still valid, but refreshed.
        let later = secret.answer_at(&echoed, ip, t + 2400);
        assert!(later.valid);
        assert_ne!(later.reply, first.reply);
        // Over an hour old, or stamped more than 5 minutes ahead: invalid.
        assert!(!secret.answer_at(&echoed, ip, t + 3601).valid);
        assert!(secret.answer_at(&echoed, ip, t - 299).valid);
        assert!(!secret.answer_at(&echoed, ip, t - 301).valid);
        // Another address, another client cookie, another secret, a flipped bit: invalid.
        assert!(!secret.answer_at(&echoed, "198.51.100.101".parse().unwrap(), t).valid);
        let mut other = first.reply;
        other[0] ^= 1;
        assert!(!secret.answer_at(&QueryCookie::parse(&other).unwrap(), ip, t).valid);
        other = first.reply;
        other[23] ^= 1;
        assert!(!secret.answer_at(&QueryCookie::parse(&other).unwrap(), ip, t).valid);
        assert!(!Cookies::new([0; 16]).answer_at(&echoed, ip, t).valid);
        // The same client over a dual-stack socket (IPv4-mapped): the same cookie.
        assert!(secret.answer_at(&echoed, "::ffff:198.51.100.100".parse().unwrap(), t).valid);
    }

    #[test]
    fn secret_from_hex() {
        assert!(Cookies::from_hex("00").is_err());
        assert!(Cookies::from_hex("zz3bdf9344b678b185a6f5cb60fca715").is_err());
        assert_eq!(
            Cookies::from_hex("000102030405060708090a0b0c0d0e0f").unwrap().key,
            core::array::from_fn(|i| i as u8)
        );
        assert_ne!(Cookies::random().unwrap().key, Cookies::random().unwrap().key);
    }
}
