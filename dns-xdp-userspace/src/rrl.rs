//! Response rate limiting on the daemon's side (issue 5): the same settings, the same keys and the
//! same GCRA arithmetic as the XDP program (dns-xdp-ebpf/src/rrl.rs), so queries the kernel
//! passes on cannot be used to get around its limits.
//!
//! The daemon keeps its own buckets (a mutex-guarded map) rather than sharing the kernel's:
//! it works with XDP off, and a given (prefix, kind, name) is almost always served by one path
//! only (a name is either in the answers map or not), so the budgets rarely add up. Where they
//! can (answers too big or DNSSEC-signed for the kernel), a prefix gets at most twice its rate.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dns_xdp_common::dns::{FLAG_TC, HEADER_LEN, rcode, rtype};
use dns_xdp_common::{RRL_FLAG_DROP_SPOOFS, RRL_FLAG_DRY_RUN, RrlConfig, RrlKey, rrl_kind};

/// Buckets the daemon keeps; beyond this, idle (full) buckets are dropped first.
const MAX_BUCKETS: usize = 65_536;
/// Start/stop log lines per reporting period; the rest are summed up in one line.
const MAX_LOG_LINES: usize = 10;

/// The operator's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrlSettings {
    /// Responses per second per (prefix, kind, name); 0 turns limiting off.
    pub rate: u32,
    /// Responses allowed back to back before the rate applies (>= 1).
    pub burst: u32,
    /// Every `slip`th limited response is a TC=1 slip; 0 never slips.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub allow: Vec<Cidr>,
    pub dry_run: bool,
}

/// Defaults (README "Rate limiting"): off until the operator sets a rate; when on, a burst of one
/// second's worth, every second limited response slipped (BIND's default), /24 and /56 prefixes
/// (an IPv6 customer is typically given a /56 or /48).
impl Default for RrlSettings {
    fn default() -> Self {
        RrlSettings { rate: 0, burst: 0, slip: 2, ipv4_prefix: 24, ipv6_prefix: 56, allow: Vec::new(), dry_run: false }
    }
}

/// An address prefix, as given to `--rrl-allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

/// Text that is no address prefix: the text, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum CidrError {
    #[error("{text}: {err}")]
    Addr { text: String, err: std::net::AddrParseError },
    #[error("{text}: prefix length must be 0..={max}")]
    Len { text: String, max: u8 },
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|err| CidrError::Addr { text: s.to_string(), err })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => {
                l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| CidrError::Len { text: s.to_string(), max })?
            }
            None => max,
        };
        Ok(Cidr { addr, len })
    }
}

impl Cidr {
    /// The RRL_ALLOW trie key: (prefix length, address as IPv6, IPv4 mapped).
    pub fn trie_key(&self) -> (u32, [u8; 16]) {
        match self.addr {
            IpAddr::V4(a) => (96 + u32::from(self.len), a.to_ipv6_mapped().octets()),
            IpAddr::V6(a) => (u32::from(self.len), a.octets()),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (len, net) = self.trie_key();
        let ip = match ip {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
        u128::from_be_bytes(ip) & mask == u128::from_be_bytes(net) & mask
    }
}

/// A rate-limiting setting out of its range, named by its configuration key.
#[derive(Debug, thiserror::Error)]
pub enum RrlSettingError {
    #[error("rrl_ipv4_prefix {0} must be 1..=32")]
    Ipv4Prefix(u8),
    #[error("rrl_ipv6_prefix {0} must be 1..=128")]
    Ipv6Prefix(u8),
    #[error("rrl_rate {0} is more than one response per nanosecond")]
    Rate(u32),
}

impl RrlSettings {
    pub fn validate(&self) -> Result<(), RrlSettingError> {
        if self.ipv4_prefix == 0 || self.ipv4_prefix > 32 {
            return Err(RrlSettingError::Ipv4Prefix(self.ipv4_prefix));
        }
        if self.ipv6_prefix == 0 || self.ipv6_prefix > 128 {
            return Err(RrlSettingError::Ipv6Prefix(self.ipv6_prefix));
        }
        if self.rate > 1_000_000_000 {
            return Err(RrlSettingError::Rate(self.rate));
        }
        Ok(())
    }

    /// Burst as configured, or one second's worth when left at 0.
    pub fn effective_burst(&self) -> u32 {
        if self.burst == 0 { self.rate.max(1) } else { self.burst }
    }

    /// The XDP program's view of these settings. Spoof screening is always on: no real client
    /// sends from a reflection port or an impossible address.
    pub fn kernel_config(&self) -> RrlConfig {
        let interval_ns = if self.rate == 0 { 0 } else { 1_000_000_000 / u64::from(self.rate) };
        let v4 = if self.ipv4_prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.ipv4_prefix)) };
        let v6 = if self.ipv6_prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.ipv6_prefix)) };
        RrlConfig {
            interval_ns,
            burst_ns: u64::from(self.effective_burst() - 1) * interval_ns,
            slip: self.slip,
            flags: RRL_FLAG_DROP_SPOOFS | if self.dry_run { RRL_FLAG_DRY_RUN } else { 0 },
            v4_mask: v4.to_be_bytes(),
            _pad: 0,
            v6_mask: v6.to_be_bytes(),
        }
    }
}

/// The bucket key for `ip`: the same bytes the XDP program builds.
pub fn bucket_key(cfg: &RrlConfig, ip: IpAddr, rrl_key: u32) -> RrlKey {
    let mut key = RrlKey { prefix: [0; 16], family: 4, rrl_key };
    match ip {
        IpAddr::V4(a) => {
            let m = u32::from_be_bytes(a.octets()) & u32::from_be_bytes(cfg.v4_mask);
            key.prefix[..4].copy_from_slice(&m.to_be_bytes());
        }
        IpAddr::V6(a) => {
            // A mapped address is an IPv4 client on a dual-stack socket.
            if let Some(v4) = a.to_ipv4_mapped() {
                return bucket_key(cfg, IpAddr::V4(v4), rrl_key);
            }
            key.prefix = (u128::from_be_bytes(a.octets()) & u128::from_be_bytes(cfg.v6_mask)).to_be_bytes();
            key.family = 6;
        }
    }
    key
}

/// The prefix of a key, for log lines.
pub fn prefix_text(key: &RrlKey, cfg: &RrlSettings) -> String {
    if key.family == 6 {
        format!("{}/{}", std::net::Ipv6Addr::from(key.prefix), cfg.ipv6_prefix)
    } else {
        let p = key.prefix;
        format!("{}/{}", std::net::Ipv4Addr::new(p[0], p[1], p[2], p[3]), cfg.ipv4_prefix)
    }
}

// ------------------------------------------------------------------ classifying a response

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Reads a possibly compressed name at `pos`, lowercased; returns it and the offset after it.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::with_capacity(64);
    let mut end = None;
    // A name has at most 128 labels; more pointer hops than that is a loop.
    for _ in 0..256 {
        let len = *msg.get(pos)?;
        match len {
            0 => {
                name.push(0);
                return Some((name, end.unwrap_or(pos + 1)));
            }
            1..=63 => {
                let label = msg.get(pos + 1..pos + 1 + len as usize)?;
                name.push(len);
                name.extend(label.iter().map(u8::to_ascii_lowercase));
                pos += 1 + len as usize;
            }
            0xc0..=0xff => {
                let target = (usize::from(len & 0x3f) << 8) | usize::from(*msg.get(pos + 1)?);
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
    None
}

/// Skips one resource record at `pos`.
fn skip_rr(msg: &[u8], pos: usize) -> Option<usize> {
    let (_, pos) = read_name(msg, pos)?;
    let rdlen = be16(msg, pos + 8)? as usize;
    Some(pos + 10 + rdlen)
}

/// FNV-1a: small, stable across builds and machines (the kernel only compares the result).
fn fnv1a(kind: u32, name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in std::iter::once(kind as u8).chain(name.iter().copied()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The rate-limiting key of a rendered response (`ResponseValue::rrl_key`): its kind in the top
/// 4 bits and a hash of the name it is limited under. Positive answers count per qname;
/// NODATA and NXDOMAIN per zone (the owner of the SOA in the authority section); referrals per
/// delegation point (the NS owner); errors share one budget. Used by the map compiler and the
/// slow path alike, so both limit under the same keys.
pub fn rrl_key(reply: &[u8]) -> u32 {
    classify(reply).map_or(key_of(rrl_kind::ERROR, &[]), |(kind, name)| key_of(kind, &name))
}

fn key_of(kind: u32, name: &[u8]) -> u32 {
    (kind << rrl_kind::SHIFT) | (fnv1a(kind, name) & ((1 << rrl_kind::SHIFT) - 1))
}

fn classify(reply: &[u8]) -> Option<(u32, Vec<u8>)> {
    let flags = be16(reply, 2)?;
    let (qd, an, ns) = (be16(reply, 4)?, be16(reply, 6)?, be16(reply, 8)?);
    if qd != 1 {
        return None;
    }
    let (qname, mut pos) = read_name(reply, HEADER_LEN)?;
    pos += 4;
    let rcode = flags & 0xf;
    // A truncated response carries no records; it is small, so the qname is as good as any key.
    if rcode == rcode::NOERROR && (an > 0 || flags & FLAG_TC != 0) {
        return Some((rrl_kind::POSITIVE, qname));
    }
    if rcode != rcode::NOERROR && rcode != rcode::NXDOMAIN {
        return None;
    }
    for _ in 0..an {
        pos = skip_rr(reply, pos)?;
    }
    let authority = if ns > 0 {
        let (owner, after) = read_name(reply, pos)?;
        Some((owner, be16(reply, after)?))
    } else {
        None
    };
    match (rcode, authority) {
        (rcode::NXDOMAIN, Some((zone, _))) => Some((rrl_kind::NXDOMAIN, zone)),
        (rcode::NXDOMAIN, None) => Some((rrl_kind::NXDOMAIN, Vec::new())),
        (_, Some((zone, rtype::SOA))) => Some((rrl_kind::NODATA, zone)),
        (_, Some((cut, rtype::NS))) => Some((rrl_kind::REFERRAL, cut)),
        (_, Some((zone, _))) => Some((rrl_kind::NODATA, zone)),
        (_, None) => None,
    }
}

// ------------------------------------------------------------------ the slow path's screen

/// Same list as the XDP program's (dns-xdp-ebpf/src/rrl.rs `reflection_port`).
pub fn reflection_port(port: u16) -> bool {
    matches!(
        port,
        0 | 7 | 13 | 17 | 19 | 37 | 111 | 123 | 137 | 138 | 161 | 162 | 389 | 520 | 1900 | 3702 | 5353 | 11211
    )
}

/// A TC=1 slip for `reply`: header with TC set and empty sections, the question, and an OPT
/// record (our payload size, DO echoed, extended RCODE kept) when the query had EDNS. Byte for
/// byte what the XDP program sends for an answer it holds (respond::stage).
pub fn slip(reply: &[u8], edns: Option<crate::wire::Edns>, rcode: u16, our_payload: u16) -> Option<Vec<u8>> {
    let (_, qend) = read_name(reply, HEADER_LEN)?;
    let qend = qend + 4;
    let mut out = reply.get(..qend)?.to_vec();
    let flags = be16(&out, 2)? | FLAG_TC;
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    out[6..12].copy_from_slice(&[0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    if let Some(e) = edns {
        let p = our_payload.to_be_bytes();
        let d = if e.dnssec_ok { 0x80 } else { 0 };
        let t = rtype::OPT.to_be_bytes();
        out.extend_from_slice(&[0, t[0], t[1], p[0], p[1], (rcode >> 4) as u8, 0, d, 0, 0, 0]);
    }
    Some(out)
}

// ------------------------------------------------------------------ the limiter

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// Send a TC=1 slip instead.
    Slip,
    Drop,
}

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    /// Theoretical arrival time, ns since the limiter started.
    tat: u64,
    limited: u64,
}

/// Counters of the daemon's limiter (exported as metrics with path="userspace").
#[derive(Debug, Default)]
pub struct RrlCounters {
    pub limited: [std::sync::atomic::AtomicU64; rrl_kind::COUNT as usize],
    pub slipped: std::sync::atomic::AtomicU64,
    pub dropped: std::sync::atomic::AtomicU64,
    pub dry_run: std::sync::atomic::AtomicU64,
    pub allowlisted: std::sync::atomic::AtomicU64,
    /// Over the limit but sent: the query carried a valid server cookie.
    pub cookie_exempt: std::sync::atomic::AtomicU64,
    pub reflection: std::sync::atomic::AtomicU64,
}

struct Inner {
    settings: RrlSettings,
    cfg: RrlConfig,
    buckets: HashMap<RrlKey, Bucket>,
    /// Buckets that limited since the last report.
    limiting: HashSet<RrlKey>,
}

pub struct Limiter {
    start: Instant,
    /// Limiting on (rate > 0): lets the slow path skip classifying responses when off.
    on: std::sync::atomic::AtomicBool,
    inner: Mutex<Inner>,
    pub counters: RrlCounters,
}

impl Limiter {
    pub fn new(settings: RrlSettings) -> Self {
        let cfg = settings.kernel_config();
        Limiter {
            start: Instant::now(),
            on: std::sync::atomic::AtomicBool::new(cfg.interval_ns != 0),
            inner: Mutex::new(Inner { settings, cfg, buckets: HashMap::new(), limiting: HashSet::new() }),
            counters: RrlCounters::default(),
        }
    }

    /// Live reconfiguration (SIGHUP): new settings, buckets kept.
    pub fn reconfigure(&self, settings: RrlSettings) {
        let mut inner = self.inner.lock().expect("rrl lock");
        inner.cfg = settings.kernel_config();
        inner.settings = settings;
        self.on.store(inner.cfg.interval_ns != 0, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn settings(&self) -> RrlSettings {
        self.inner.lock().expect("rrl lock").settings.clone()
    }

    /// Decides on a UDP response of kind `rrl_key` to `src`. `server_cookie`: the query carried
    /// a server cookie we validated (cookie.rs): its source address is real, so it is exempt.
    pub fn check(&self, src: IpAddr, rrl_key: u32, server_cookie: bool) -> Decision {
        self.check_at(src, rrl_key, server_cookie, self.start.elapsed().as_nanos() as u64)
    }

    fn check_at(&self, src: IpAddr, rrl_key: u32, server_cookie: bool, now: u64) -> Decision {
        use std::sync::atomic::Ordering::Relaxed;
        let mut inner = self.inner.lock().expect("rrl lock");
        let cfg = inner.cfg;
        if cfg.interval_ns == 0 {
            return Decision::Send;
        }
        if inner.settings.allow.iter().any(|c| c.contains(src)) {
            self.counters.allowlisted.fetch_add(1, Relaxed);
            return Decision::Send;
        }
        let key = bucket_key(&cfg, src, rrl_key);
        if inner.buckets.len() >= MAX_BUCKETS && !inner.buckets.contains_key(&key) {
            // Idle buckets are full ones: forgetting them changes nothing.
            inner.buckets.retain(|_, b| b.tat > now);
            if inner.buckets.len() >= MAX_BUCKETS {
                inner.buckets.clear();
            }
        }
        // Same GCRA as the kernel: a new bucket spends its first response.
        let bucket = inner.buckets.entry(key).or_insert(Bucket { tat: now, limited: 0 });
        let tat = bucket.tat.max(now);
        if tat - now <= cfg.burst_ns {
            bucket.tat = tat + cfg.interval_ns;
            return Decision::Send;
        }
        if cfg.flags & RRL_FLAG_DRY_RUN != 0 {
            self.counters.dry_run.fetch_add(1, Relaxed);
            return Decision::Send;
        }
        if server_cookie {
            self.counters.cookie_exempt.fetch_add(1, Relaxed);
            return Decision::Send;
        }
        bucket.limited += 1;
        let n = bucket.limited;
        inner.limiting.insert(key);
        let kind = (rrl_key >> rrl_kind::SHIFT).min(rrl_kind::COUNT - 1) as usize;
        self.counters.limited[kind].fetch_add(1, Relaxed);
        if cfg.slip != 0 && n.is_multiple_of(u64::from(cfg.slip)) {
            self.counters.slipped.fetch_add(1, Relaxed);
            Decision::Slip
        } else {
            self.counters.dropped.fetch_add(1, Relaxed);
            Decision::Drop
        }
    }

    /// Buckets that limited since the last call (and forgets them).
    pub fn take_limiting(&self) -> HashSet<RrlKey> {
        std::mem::take(&mut self.inner.lock().expect("rrl lock").limiting)
    }
}

/// Logs when a prefix starts and stops being limited, at most `MAX_LOG_LINES` lines a period.
#[derive(Default)]
pub struct LimitLog {
    /// Prefixes limited in the previous period: (family, prefix).
    active: HashSet<(u32, [u8; 16])>,
}

impl LimitLog {
    /// `now_limiting`: the bucket keys (kernel's and daemon's) that limited during this period.
    pub fn report(&mut self, now_limiting: impl IntoIterator<Item = RrlKey>, settings: &RrlSettings, period: Duration) {
        let mut texts = HashMap::new();
        let now: HashSet<(u32, [u8; 16])> = now_limiting
            .into_iter()
            .map(|k| {
                texts.entry((k.family, k.prefix)).or_insert_with(|| prefix_text(&k, settings));
                (k.family, k.prefix)
            })
            .collect();
        let started: Vec<_> = now.difference(&self.active).collect();
        let stopped: Vec<_> = self.active.difference(&now).collect();
        for p in started.iter().take(MAX_LOG_LINES) {
            log::warn!("rate limiting starts for {}", texts[*p]);
        }
        if started.len() > MAX_LOG_LINES {
            log::warn!("rate limiting starts for {} more prefixes", started.len() - MAX_LOG_LINES);
        }
        for p in stopped.iter().take(MAX_LOG_LINES) {
            let key = RrlKey { prefix: p.1, family: p.0, rrl_key: 0 };
            log::info!("rate limiting stops for {} (nothing limited for {period:?})", prefix_text(&key, settings));
        }
        if stopped.len() > MAX_LOG_LINES {
            log::info!("rate limiting stops for {} more prefixes", stopped.len() - MAX_LOG_LINES);
        }
        self.active = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(rate: u32, burst: u32, slip: u32) -> Limiter {
        Limiter::new(RrlSettings { rate, burst, slip, ..Default::default() })
    }

    #[test]
    fn burst_then_rate() {
        let l = on(10, 3, 0);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let at = |t_ms: u64| l.check_at(ip, 1, false, t_ms * 1_000_000);
        assert_eq!([at(0), at(0), at(0), at(0)], [Decision::Send, Decision::Send, Decision::Send, Decision::Drop]);
        // 100 ms at 10/s buys one more response.
        assert_eq!([at(100), at(100)], [Decision::Send, Decision::Drop]);
        // A flood does not push the bucket into the future: after a quiet second, a full burst.
        for _ in 0..1000 {
            at(150);
        }
        assert_eq!([at(1200), at(1200), at(1200)], [Decision::Send; 3]);
    }

    #[test]
    fn prefixes_and_kinds_have_own_budgets() {
        let l = on(1, 1, 0);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let same_24: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "192.0.3.7".parse().unwrap();
        assert_eq!(l.check_at(a, 1, false, 0), Decision::Send);
        assert_eq!(l.check_at(same_24, 1, false, 0), Decision::Drop);
        assert_eq!(l.check_at(other, 1, false, 0), Decision::Send);
        assert_eq!(l.check_at(a, 2, false, 0), Decision::Send);
        let v6: IpAddr = "2001:db8:0:1200::1".parse().unwrap();
        let v6_same_56: IpAddr = "2001:db8:0:12ff::9".parse().unwrap();
        assert_eq!(l.check_at(v6, 1, false, 0), Decision::Send);
        assert_eq!(l.check_at(v6_same_56, 1, false, 0), Decision::Drop);
        assert_eq!(l.counters.limited[0].load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn slip_every_nth_allowlist_dry_run_and_off() {
        let l = on(1, 1, 3);
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let got: Vec<_> = (0..7).map(|_| l.check_at(ip, 1, false, 0)).collect();
        use Decision::*;
        assert_eq!(got, [Send, Drop, Drop, Slip, Drop, Drop, Slip]);
        let l = Limiter::new(RrlSettings {
            rate: 1,
            allow: vec!["198.51.100.0/24".parse().unwrap()],
            ..Default::default()
        });
        assert!((0..5).all(|_| l.check_at(ip, 1, false, 0) == Send));
        let l = Limiter::new(RrlSettings { rate: 1, dry_run: true, ..Default::default() });
        assert!((0..5).all(|_| l.check_at(ip, 1, false, 0) == Send));
        assert_eq!(l.counters.dry_run.load(std::sync::atomic::Ordering::Relaxed), 4);
        let l = on(0, 0, 2);
        assert!((0..5).all(|_| l.check_at(ip, 1, false, 0) == Send));
    }

    #[test]
    fn valid_server_cookie_is_exempt() {
        let l = on(1, 1, 2);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(l.check_at(ip, 1, false, 0), Decision::Send);
        assert_eq!(l.check_at(ip, 1, false, 0), Decision::Drop);
        // The same prefix and key, over budget: a proven address goes through, every time.
        assert!((0..10).all(|_| l.check_at(ip, 1, true, 0) == Decision::Send));
        assert_eq!(l.counters.cookie_exempt.load(std::sync::atomic::Ordering::Relaxed), 10);
        assert_eq!(l.check_at(ip, 1, false, 0), Decision::Slip, "others stay limited");
    }

    #[test]
    fn kernel_config_masks_and_times() {
        let c = RrlSettings { rate: 20, ..Default::default() }.kernel_config();
        assert_eq!(c.interval_ns, 50_000_000);
        assert_eq!(c.burst_ns, 19 * 50_000_000);
        assert_eq!(c.v4_mask, [255, 255, 255, 0]);
        assert_eq!(c.v6_mask, [255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(c.slip, 2);
        assert_eq!(RrlSettings::default().kernel_config().interval_ns, 0);
        let k = bucket_key(&c, "::ffff:192.0.2.9".parse().unwrap(), 5);
        assert_eq!((k.family, &k.prefix[..4]), (4, &[192, 0, 2, 0][..]));
    }

    #[test]
    fn cidr_parsing_and_trie_keys() {
        let c: Cidr = "192.0.2.0/24".parse().unwrap();
        assert_eq!(c.trie_key().0, 120);
        assert!(c.contains("192.0.2.99".parse().unwrap()));
        assert!(!c.contains("192.0.3.1".parse().unwrap()));
        assert!("192.0.2.0/33".parse::<Cidr>().is_err());
        assert_eq!("2001:db8::1".parse::<Cidr>().unwrap().len, 128);
    }

    /// Header + question for www.example.com A, then `body`.
    fn reply(flags: u16, an: u16, ns: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34];
        m.extend(flags.to_be_bytes());
        m.extend([0, 1]);
        m.extend(an.to_be_bytes());
        m.extend(ns.to_be_bytes());
        m.extend([0, 0]);
        m.extend(b"\x03WwW\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend(body);
        m
    }

    #[test]
    fn classifies_responses() {
        // A record, owner compressed to the question.
        let a = reply(0x8400, 1, 0, b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x50");
        assert_eq!(classify(&a), Some((rrl_kind::POSITIVE, b"\x03www\x07example\x03com\x00".to_vec())));
        // NODATA: SOA owned by example.com (pointer into the question at offset 16).
        let soa = b"\xc0\x10\x00\x06\x00\x01\x00\x00\x01\x2c\x00\x00";
        assert_eq!(classify(&reply(0x8400, 0, 1, soa)), Some((rrl_kind::NODATA, b"\x07example\x03com\x00".to_vec())));
        assert_eq!(classify(&reply(0x8403, 0, 1, soa)), Some((rrl_kind::NXDOMAIN, b"\x07example\x03com\x00".to_vec())));
        // Referral: NS owned by www.example.com, AA clear.
        let ns = b"\xc0\x0c\x00\x02\x00\x01\x00\x00\x01\x2c\x00\x00";
        assert_eq!(
            classify(&reply(0x8000, 0, 1, ns)),
            Some((rrl_kind::REFERRAL, b"\x03www\x07example\x03com\x00".to_vec()))
        );
        assert_eq!(classify(&reply(0x8005, 0, 0, b"")), None);
        assert_eq!(rrl_key(&reply(0x8005, 0, 0, b"")) >> rrl_kind::SHIFT, rrl_kind::ERROR);
        // Random subdomains of one zone share the NXDOMAIN key.
        let mut other = reply(0x8403, 0, 1, soa);
        other[13] = b'X';
        assert_eq!(rrl_key(&other), rrl_key(&reply(0x8403, 0, 1, soa)));
        assert_ne!(rrl_key(&a), 0);
    }

    #[test]
    fn slip_is_header_question_and_opt() {
        let a = reply(0x8500, 1, 0, b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x50");
        let s = slip(&a, None, 0, 1232).unwrap();
        assert_eq!(s, reply(0x8700, 0, 0, b""));
        let e = crate::wire::Edns { payload: 4096, version: 0, dnssec_ok: true };
        let s = slip(&a, Some(e), 0, 1232).unwrap();
        assert_eq!(&s[10..12], &[0, 1]);
        assert_eq!(&s[s.len() - 11..], &[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    }
}
