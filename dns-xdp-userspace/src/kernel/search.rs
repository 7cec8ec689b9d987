//! The userspace mirror of the XDP program's key search (dns-xdp-ebpf/src/search.rs): which
//! answer the kernel serves a query (before its size, DNSSEC and rate-limit checks), read from
//! the daemon's own view of the NAMES maps. One search for both views the daemon has: the
//! compiled entries (`compile::search`) and the records the store installed
//! (`Store::search`); tests hold each against the daemon's answers.
//!
//! May call: dns_xdp_common. Nothing of the daemon.

use dns_xdp_common::{
    KEY_VARIANT_CHILD, KEY_VARIANT_DO, MAX_KERNEL_NAME, MAX_WALK_STEPS, QTYPE_DEFAULT, RECORD_CHILD_PARTIAL,
    RECORD_SIGNED,
};

/// RFC 6895 section 3.1 meta and query types: the kernel never serves them a default answer.
pub fn is_meta(qtype: u16) -> bool {
    (128..=255).contains(&qtype)
}

/// A view of the NAMES maps.
pub trait NamesView {
    /// What a slot holds: an answer id, or the compiled answer itself.
    type Response: Copy;

    /// The answer in the (`qtype`, `variant`) slot of the record of `name` (lowercase wire),
    /// looking in the record's first part only when `part0` (the kernel's walk reads no more).
    fn slot(&self, name: &[u8], qtype: u16, variant: u16, part0: bool) -> Option<Self::Response>;

    /// The `RECORD_*` flags of `name`'s record (0 without one).
    fn flags(&self, name: &[u8]) -> u16;

    /// Whether `answer` is a pass marker.
    fn passes(answer: Self::Response) -> bool;
}

/// The answer the kernel finds for a query in `records`: the name's own for the type, its
/// type-independent one, or its closest encloser's for names below; `None` when the query
/// passes (no answer, a marker). `qname` is lowercase wire format.
pub fn search<R: NamesView>(records: &R, qname: &[u8], qtype: u16, dnssec: bool) -> Option<R::Response> {
    // The kernel's name keys stop there; longer names always pass.
    if qname.is_empty() || qname.len() > MAX_KERNEL_NAME {
        return None;
    }
    let meta = is_meta(qtype);
    let d = if dnssec { KEY_VARIANT_DO } else { 0 };
    let own = |t: u16, v: u16| records.slot(qname, t, v, false);
    let found = own(qtype, d)
        .or_else(|| if dnssec { own(qtype, 0) } else { None })
        .or_else(|| if meta { None } else { own(QTYPE_DEFAULT, d) })
        .or_else(|| if meta || !dnssec { None } else { own(QTYPE_DEFAULT, 0) });
    if let Some(answer) = found {
        return (!R::passes(answer)).then_some(answer);
    }
    // The name exists but holds no answer for the type: never answered as missing.
    if own(QTYPE_DEFAULT, KEY_VARIANT_CHILD).is_some() {
        return None;
    }
    let mut off = 0;
    for _ in 0..MAX_WALK_STEPS {
        if qname[off] == 0 {
            return None;
        }
        off += usize::from(qname[off]) + 1;
        let suffix = &qname[off..];
        let part0 = |t: u16, v: u16| records.slot(suffix, t, v, true);
        // Only a name with an existence marker counts as existing.
        let Some(marker) = part0(QTYPE_DEFAULT, KEY_VARIANT_CHILD) else { continue };
        if R::passes(marker) {
            return None;
        }
        let flags = records.flags(suffix);
        let v =
            if dnssec && flags & RECORD_SIGNED != 0 { KEY_VARIANT_CHILD | KEY_VARIANT_DO } else { KEY_VARIANT_CHILD };
        let answer = part0(qtype, v);
        if answer.is_none() && flags & RECORD_CHILD_PARTIAL != 0 {
            return None;
        }
        return answer.or_else(|| if meta { None } else { part0(QTYPE_DEFAULT, v) }).filter(|&a| !R::passes(a));
    }
    None
}
