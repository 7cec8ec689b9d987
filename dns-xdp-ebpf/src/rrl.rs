//! Response rate limiting (issue 5), after BIND's and Knot's RRL: a budget of responses per
//! second per (client prefix, response kind and name), a burst allowance, every Nth limited
//! response slipped as a TC=1 reply so real clients retry over TCP, an allowlist, a dry-run mode.
//! Also the cheap spoof screen that runs before any DNS work.
//!
//! One bucket map shared by every CPU (not per-CPU): RSS may spread one prefix over several
//! queues, and per-CPU buckets would then grant it up to ncpus times its budget. Buckets are
//! updated with atomic adds; the rare races between CPUs cost at most a response per CPU.

use core::intrinsics::{AtomicOrdering::Relaxed, atomic_xadd};
use core::ptr::{read_volatile, write_volatile};

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns, maps::lpm_trie::Key, programs::XdpContext};
use dns_xdp_common::{
    RRL_ALLOW_KEY_LEN, RRL_FLAG_DROP_SPOOFS, RRL_FLAG_DRY_RUN, ResponseValue, RrlBucket, RrlConfig, RrlKey, rrl_kind,
    stat,
};

use crate::{
    Exit, cursor,
    dns::Query,
    headers::{Ipv4Hdr, Ipv6Hdr, UdpHdr},
    l2l3::Frame,
    maps::{RRL_ALLOW, RRL_BUCKETS},
    stats,
};

/// What the limiter decided for an answer the program could send.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Send a TC=1 slip instead, counted under this `stat::RRL_LIMITED_BASE + kind` slot.
    Slip(u32),
}

/// Source ports of UDP services that answer a spoofed packet with more than it carried (echo,
/// daytime, qotd, chargen, time, portmap, NTP, NetBIOS, SNMP, LDAP, RIP, SSDP, WS-Discovery,
/// mDNS, memcached) and port 0: a "query" from one is a reflection attack aimed at that service.
#[inline(always)]
fn reflection_port(port: u16) -> bool {
    matches!(
        port,
        0 | 7 | 13 | 17 | 19 | 37 | 111 | 123 | 137 | 138 | 161 | 162 | 389 | 520 | 1900 | 3702 | 5353 | 11211
    )
}

/// Drops queries no real client can send: from a reflection port, or from an address that is
/// never a unicast source (RFC 1122 3.2.1.3, RFC 4291 2.7) or is our own.
#[inline(always)]
pub fn screen(ctx: &XdpContext, frame: &Frame, rrl: &RrlConfig) -> Result<(), Exit> {
    if rrl.flags & RRL_FLAG_DROP_SPOOFS == 0 {
        return Ok(());
    }
    let udp: *const UdpHdr = cursor::ptr_at(ctx, frame.l4_off).ok_or(Exit::Pass(stat::PASS_NOT_DNS))?;
    // SAFETY: bounds checked by ptr_at.
    if reflection_port(u16::from_be_bytes(unsafe { (*udp).source })) {
        return Err(Exit::Drop(stat::DROP_REFLECTION_PORT));
    }
    let spoofed = if frame.ipv6 {
        let ip: *const Ipv6Hdr = cursor::ptr_at(ctx, frame.l3_off).ok_or(Exit::Pass(stat::PASS_IP_UNUSUAL))?;
        // SAFETY: bounds checked by ptr_at.
        let (s, d) = unsafe { (u128::from_be_bytes((*ip).saddr), u128::from_be_bytes((*ip).daddr)) };
        // Unspecified, loopback, multicast, IPv4-mapped (never on the wire), ours.
        s <= 1 || s >> 120 == 0xff || s >> 32 == 0xffff || s == d
    } else {
        let ip: *const Ipv4Hdr = cursor::ptr_at(ctx, frame.l3_off).ok_or(Exit::Pass(stat::PASS_IP_UNUSUAL))?;
        // SAFETY: bounds checked by ptr_at.
        let (s, d) = unsafe { ((*ip).saddr, (*ip).daddr) };
        // "This network", loopback, multicast, reserved and broadcast, ours.
        s[0] == 0 || s[0] == 127 || s[0] >= 224 || s == d
    };
    if spoofed {
        return Err(Exit::Drop(stat::DROP_SPOOFED_SOURCE));
    }
    Ok(())
}

/// The bucket key and the allowlist key for the query's source address.
#[inline(always)]
fn keys(
    ctx: &XdpContext,
    frame: &Frame,
    rrl: &RrlConfig,
    rrl_key: u32,
) -> Result<(RrlKey, Key<[u8; RRL_ALLOW_KEY_LEN]>), Exit> {
    let mut key = RrlKey { prefix: [0; 16], family: 4, rrl_key };
    if frame.ipv6 {
        let ip: *const Ipv6Hdr = cursor::ptr_at(ctx, frame.l3_off).ok_or(Exit::Pass(stat::PASS_IP_UNUSUAL))?;
        // SAFETY: bounds checked by ptr_at.
        let allow = unsafe { (*ip).saddr };
        let masked = u128::from_ne_bytes(allow) & u128::from_ne_bytes(rrl.v6_mask);
        key.prefix = masked.to_ne_bytes();
        key.family = 6;
        Ok((key, Key::new(128, allow)))
    } else {
        let ip: *const Ipv4Hdr = cursor::ptr_at(ctx, frame.l3_off).ok_or(Exit::Pass(stat::PASS_IP_UNUSUAL))?;
        // SAFETY: bounds checked by ptr_at.
        let s = unsafe { (*ip).saddr };
        let masked = u32::from_ne_bytes(s) & u32::from_ne_bytes(rrl.v4_mask);
        let m = masked.to_ne_bytes();
        key.prefix = [m[0], m[1], m[2], m[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        // IPv4-mapped IPv6, so one trie holds both families.
        let allow = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, s[0], s[1], s[2], s[3]];
        Ok((key, Key::new(128, allow)))
    }
}

/// Decides whether the answer in `value` may go out. `Err(Exit::RateLimited)` drops it. Queries
/// with a COOKIE never get here (dns.rs passes them): the daemon validates server cookies and
/// exempts the valid ones.
#[inline(always)]
pub fn limit(
    ctx: &XdpContext,
    frame: &Frame,
    _query: &Query,
    value: &ResponseValue,
    rrl: &RrlConfig,
) -> Result<Verdict, Exit> {
    let interval = rrl.interval_ns;
    if interval == 0 {
        return Ok(Verdict::Answer);
    }
    let (key, allow) = keys(ctx, frame, rrl, value.rrl_key)?;
    if RRL_ALLOW.get(&allow).is_some() {
        stats::inc(stat::RRL_ALLOWLISTED);
        return Ok(Verdict::Answer);
    }
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(bucket) = RRL_BUCKETS.get_ptr_mut(&key) else {
        // A new bucket spends its first response. NOEXIST: if another CPU created it meanwhile,
        // theirs stands and this response goes free (one at most).
        let _ = RRL_BUCKETS.insert(&key, &RrlBucket { tat: now + interval, limited: 0 }, BPF_NOEXIST as u64);
        return Ok(Verdict::Answer);
    };
    // SAFETY: `bucket` points into an LRU hash element that stays allocated for this RCU read
    // section; every access is a plain or atomic 8-byte access to an 8-byte-aligned field.
    let (tat, limited) = unsafe { (&raw mut (*bucket).tat, &raw mut (*bucket).limited) };
    // SAFETY: as above.
    let mut next = unsafe { read_volatile(tat) };
    if next < now {
        // An idle bucket restarts from now (GCRA); CPUs racing here store nearly the same.
        next = now;
        // SAFETY: as above.
        unsafe { write_volatile(tat, now) };
    }
    if next - now <= rrl.burst_ns {
        // Atomic add without fetch (BPF_XADD: the program is built for the generic BPF CPU,
        // which has no fetching atomics). CPUs that read the same `next` at once may each
        // answer: the budget can be exceeded by at most one response per other CPU.
        // SAFETY: as above.
        unsafe { atomic_xadd::<u64, u64, { Relaxed }>(tat, interval) };
        return Ok(Verdict::Answer);
    }
    if rrl.flags & RRL_FLAG_DRY_RUN != 0 {
        stats::inc(stat::RRL_DRY_RUN);
        return Ok(Verdict::Answer);
    }
    let mut kind = value.rrl_key >> rrl_kind::SHIFT;
    if kind >= rrl_kind::COUNT {
        kind = rrl_kind::UNCLASSIFIED;
    }
    let reason = stat::RRL_LIMITED_BASE + kind;
    // SAFETY: as above. Racing CPUs may read the same count: a slip more or less.
    let n = unsafe {
        let n = read_volatile(limited) + 1;
        atomic_xadd::<u64, u64, { Relaxed }>(limited, 1);
        n
    };
    let slip = rrl.slip as u64;
    if slip != 0 && n % slip == 0 {
        return Ok(Verdict::Slip(reason));
    }
    Err(Exit::RateLimited(reason))
}
