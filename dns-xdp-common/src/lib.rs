//! The contract between the XDP program and the daemon: map names, keys, values, counters; and
//! (`dns`) the DNS protocol's numbers, which both sides read and write.
//!
//! Everything here is `#[repr(C)]` with explicit widths and size asserts, because the kernel
//! side (bpfel, no_std) and userspace (x86_64, std) must agree on every byte.
#![no_std]

pub mod dns;

/// Longest wire-format qname (RFC 1035 section 2.3.4), root label included.
pub const MAX_QNAME_LEN: usize = 255;
/// Bytes reserved for the name in a map key: the name padded with zeros to a 4-byte multiple.
pub const KEY_NAME_LEN: usize = 256;
/// Longest label (RFC 1035 section 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Most labels a 255-byte name can have (one-byte labels: 127 of them plus the root).
pub const MAX_LABELS: usize = 128;
/// Bytes of precompiled response data (everything after the question) one map value holds.
/// An answer that does not fit is not compiled; such queries pass to the daemon.
pub const MAX_RESPONSE_LEN: usize = 1008;
/// Smallest UDP payload every DNS client accepts (RFC 1035 section 4.2.1).
pub const MIN_UDP_PAYLOAD: u16 = 512;

/// Map names as they appear in the eBPF object.
pub const MAP_CONFIG: &str = "CONFIG";
pub const MAP_STATS: &str = "STATS";
pub const MAP_SCRATCH: &str = "SCRATCH";
/// Response rate limiting (issue 5): its settings, its buckets and its allowlist.
pub const MAP_RRL_CONFIG: &str = "RRL_CONFIG";
pub const MAP_RRL_BUCKETS: &str = "RRL_BUCKETS";
pub const MAP_RRL_ALLOW: &str = "RRL_ALLOW";
/// Shadow validation (issue 8): the ring buffer of sampled XDP answers (`Scratch` records).
pub const MAP_SHADOW_RING: &str = "SHADOW_RING";
/// The zones' current SOA serials (`SERIAL_SLOTS` u32 in host order), which the XDP program
/// writes into every answer that carries one (`Answer::serial_at`).
pub const MAP_SERIALS: &str = "SERIALS";
/// One u32 the daemon makes odd while it changes SERIALS and even again after. The XDP program
/// reads it before it looks up a record and after it reads the serial, and passes the query if
/// the two differ or are odd: a query that saw a record of one version must not get the serial
/// of the next (a seqlock; the daemon's phases keep every other pair of reads consistent).
pub const MAP_SERIAL_GEN: &str = "SERIAL_GEN";

/// The hit index: a direct-mapped array (mmapped by the daemon) that takes the commonest
/// query, an exact (name, type) hit, to its answer id in one cache line (`HitEntry`).
pub const MAP_HITS: &str = "HITS";
/// The XDP entry point's function name.
pub const PROG_NAME: &str = "dns_xdp";

/// Default capacity of the answer maps (`--answers-capacity`): the names the kernel holds.
/// Each map is sized from it (`NAME_CLASS_SIZE`, `RESPONSE_CLASS_SIZE`).
pub const ANSWERS_CAPACITY: u32 = 262_144;

// ---------------------------------------------------------------------------------------------
// The answer store: name records and the answers they point at.
//
// A query's name is looked up once, in the NAMES map of its length class; the record lists the
// answers held for that name as (QTYPE, variant, answer id) slots. The id names an answer in
// the RESPONSES map of its size class. Two levels instead of one (name, type) -> answer map: a
// name costs one small key instead of one 260-byte key per type, answers shared by many names
// (NODATA, NXDOMAIN, referrals) are stored once, and a change to such a shared answer (a new
// SOA serial) rewrites one entry instead of every name's.
// ---------------------------------------------------------------------------------------------

/// Name bytes of the keys of each NAMES map (a key is the name plus a 4-byte part number, so
/// keys are 32, 64, 128 and 260 bytes). A name is looked up in the smallest class it fits.
pub const NAME_CLASSES: [usize; 4] = [28, 60, 124, 256];
/// Longest name the kernel answers for.
pub const MAX_KERNEL_NAME: usize = NAME_CLASSES[NAME_CLASSES.len() - 1];
pub const MAP_NAMES: [&str; 4] = ["NAMES28", "NAMES60", "NAMES124", "NAMES256"];

/// Key of a NAMES map: the lowercased wire name zero-padded to `N`, then which part of the
/// name's record this is (0, then 1.. for names with more slots than one record holds).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameKey<const N: usize> {
    pub name: [u8; N],
    pub part: u32,
}

/// Slots in one record part; a name with more chains parts (`RECORD_MORE`), at most
/// `MAX_RECORD_PARTS` of them.
pub const RECORD_SLOTS: usize = 8;
pub const MAX_RECORD_PARTS: usize = 4;

/// One answer a name holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Slot {
    /// QTYPE in host order, or `QTYPE_DEFAULT`.
    pub qtype: u16,
    /// `KEY_VARIANT_*` bits.
    pub variant: u16,
    /// The answer: `RESPONSE_PASS`, or an id whose top bits are its size class.
    pub answer: u32,
}
const _: () = assert!(core::mem::size_of::<Slot>() == 8);

/// `Slot::variant` of the unused slots of a record (a record always holds `RECORD_SLOTS`):
/// no lookup asks for it.
pub const SLOT_UNUSED: u16 = 0xffff;

/// `Slot::answer` of a slot that is no answer: queries that reach it pass to the daemon.
pub const RESPONSE_PASS: u32 = 0;
/// `Slot::answer >> RESPONSE_CLASS_SHIFT` is the index into `RESPONSE_CLASSES`.
pub const RESPONSE_CLASS_SHIFT: u32 = 29;

/// Value of a NAMES map: one part of a name's record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameRecord {
    /// `RECORD_*` bits.
    pub flags: u16,
    /// Slots in use, at most `RECORD_SLOTS`.
    pub count: u16,
    pub _pad: u32,
    pub slots: [Slot; RECORD_SLOTS],
}
const _: () = assert!(core::mem::size_of::<NameRecord>() == 72);

/// `NameRecord::flags`: part `part + 1` exists and holds more slots.
pub const RECORD_MORE: u16 = 1 << 0;
/// `NameRecord::flags`: the name's zone is signed (its existence marker, the
/// (`QTYPE_DEFAULT`, `KEY_VARIANT_CHILD`) slot, carries `VALUE_FLAG_SIGNED`): DO=1 queries for
/// names below it look for `KEY_VARIANT_CHILD | KEY_VARIANT_DO` answers.
pub const RECORD_SIGNED: u16 = 1 << 1;
/// `NameRecord::flags`: the name's answers for missing names below it (`KEY_VARIANT_CHILD`
/// slots) did not all fit in its record: a type not found passes instead of taking the
/// default.
pub const RECORD_CHILD_PARTIAL: u16 = 1 << 2;

/// Data bytes of the answers of each RESPONSES map: a `Response<N>` element (plus the kernel's
/// per-element header and the 4-byte id key) fits a 128, 192, 256, 512 or 2048-byte slab.
pub const RESPONSE_CLASSES: [usize; 5] = [44, 108, 172, 428, MAX_RESPONSE_LEN];
pub const MAP_RESPONSES: [&str; 5] = ["RESPONSES44", "RESPONSES108", "RESPONSES172", "RESPONSES428", "RESPONSES1008"];
/// Each RESPONSES map holds `capacity * RESPONSE_CLASS_SIZE[i] / 16` entries (at least 1024): most
/// answers are small, and a name has about two of its own (A and AAAA, a CNAME chain per type).
pub const RESPONSE_CLASS_SIZE: [u64; 5] = [32, 8, 4, 2, 1];
/// Each NAMES map holds `capacity * NAME_CLASS_SIZE[i] / 16` entries (at least 1024): names
/// longer than 60 bytes are rare.
pub const NAME_CLASS_SIZE: [u64; 4] = [16, 16, 4, 1];

/// Key of the answers map: the question as the daemon compiled it (one record per name, one
/// slot per question type and variant; see `Slot`).
///
/// `name` is the qname in wire format, ASCII-lowercased (length octets are always < 0x40, so
/// lowercasing every byte in 'A'..='Z' never touches them), terminated by the root label and
/// zero-padded to `KEY_NAME_LEN`. Wire names are self-delimiting, so two different names never
/// share a key and a lookup can never return another name's answer. The XDP program keeps the
/// query's key in its scratch space; the NAMES maps are keyed by its name's first bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponseKey {
    pub name: [u8; KEY_NAME_LEN],
    /// QTYPE in host byte order; `QTYPE_DEFAULT` for the answer to every type without its own key.
    pub qtype: u16,
    /// `KEY_VARIANT_*` bits; 0 for the plain answer (part of the hash, so always set exactly).
    pub variant: u16,
}
const _: () = assert!(core::mem::size_of::<ResponseKey>() == 260);

/// `ResponseKey::variant`: the answer to a query with DO=1 (RRSIGs and proofs included), compiled
/// for signed zones only; a DO=1 query for an unsigned zone falls back to the plain key.
pub const KEY_VARIANT_DO: u16 = 1 << 0;
/// `ResponseKey::variant`: not this name's answer but the one for a name *below* it that does not
/// exist (this name is then the closest encloser, RFC 4592): NXDOMAIN, a wildcard-synthesised
/// answer (owner 0xC00C) or a referral. Every existing name has at least the
/// (`QTYPE_DEFAULT`, `KEY_VARIANT_CHILD`) key, so it also marks existence: the closest-encloser
/// walk stops at the first suffix of the qname that has one.
pub const KEY_VARIANT_CHILD: u16 = 1 << 1;
/// `ResponseKey::qtype` of the answer shared by every query type without a key of its own at that
/// name (NODATA, a referral, a CNAME chain ending in NODATA...). Type 0 is reserved (RFC 6895
/// section 3.1) and never in a zone, so it is also the exact answer to a QTYPE 0 query. Meta
/// types (128..=255: AXFR, IXFR, ANY...) never use it: they have explicit keys or pass.
pub const QTYPE_DEFAULT: u16 = 0;
/// Most labels the closest-encloser walk strips from the qname before it gives up and passes:
/// random-subdomain floods add one or two labels; deeper misses go to the daemon.
pub const MAX_WALK_STEPS: usize = 8;

/// `ResponseValue::value_flags`: the zone is DNSSEC-signed. A query with DO=1 must not be
/// answered from this entry (it would come back without RRSIGs): pass it to the daemon.
pub const VALUE_FLAG_SIGNED: u16 = 1 << 0;
/// `ResponseValue::value_flags`: not an answer but a marker (the name exists, or the answer below
/// it depends on the exact qname, e.g. NSEC3 proofs or DNAME substitution): pass to the daemon.
/// In the maps a marker is a slot whose answer is `RESPONSE_PASS`; the flag is its userspace form.
pub const VALUE_FLAG_PASS: u16 = 1 << 1;
/// `ResponseValue::value_flags` above this shift: the answer's slot in the SERIALS map (its zone),
/// meaningful only when `serial_at` is nonzero.
pub const VALUE_SERIAL_SLOT_SHIFT: u16 = 4;
/// Zones whose serial the kernel patches in (12 bits of `value_flags`); answers of further zones
/// carry their serial in their own bytes and are rewritten when it changes.
pub const SERIAL_SLOTS: u32 = 1 << (16 - VALUE_SERIAL_SLOT_SHIFT);

/// A response rendered by the daemon's encoder, minus the parts that depend on the query (ID,
/// RD and CD bits, the question bytes, the OPT record), with room for `N` bytes of data. The
/// RESPONSES maps hold `Response<RESPONSE_CLASSES[i]>`; the XDP program copies the one it serves into
/// its scratch space as a `ResponseValue`, whose layout every class shares up to its data.
///
/// The XDP program builds the reply as: header (ID from the query, `flags` | query's RD/CD,
/// QDCOUNT=1, counts from here, ARCOUNT + 1 when the query had an OPT), the question exactly as
/// received, `data[..data_len]`, then an OPT record (our payload size, DO echoed, no options) if
/// the query had one. Compression pointers in `data` point only into the question (at offset 12)
/// or into `data` itself, so they stay valid for any query whose qname has the same length.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Response<const N: usize> {
    /// Header flags word (host order) with QR=1 and AA/RCODE as the daemon decided; RD=CD=0.
    pub flags: u16,
    /// ANCOUNT, NSCOUNT and ARCOUNT (ARCOUNT without the OPT record) of the rendered response.
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// Valid bytes in `data`, at most `N`.
    pub data_len: u16,
    /// `VALUE_FLAG_*` bits.
    pub value_flags: u16,
    /// Ones'-complement sum of `data[..data_len]` read as big-endian 16-bit words starting at an
    /// even offset (odd trailing byte padded with zero), folded to 16 bits, in host order.
    /// Lets the XDP program fix the UDP checksum without reading the answer bytes again.
    pub data_csum: u16,
    /// Nonzero: `data[serial_at..serial_at + 4]` is the SOA SERIAL of a NODATA or NXDOMAIN
    /// authority section. The XDP program replaces it with the current value of the zone's
    /// SERIALS slot (`value_flags >> VALUE_SERIAL_SLOT_SHIFT`) and fixes `data_csum` to match,
    /// so a new serial is one map write, not a rewrite of every answer carrying it.
    pub serial_at: u16,
    /// The response's rate-limiting key (`rrl_key`): its kind in the top 4 bits, a hash of the
    /// name it is limited under (qname, zone or delegation) in the rest. The daemon computes it
    /// with the same function its own limiter uses; 0 (unclassified) is safe: such answers share
    /// one budget per client prefix.
    pub rrl_key: u32,
    pub data: [u8; N],
}

/// The largest answer, as the XDP program works on it.
pub type ResponseValue = Response<MAX_RESPONSE_LEN>;
/// Bytes of a `Response<N>` before its data.
pub const RESPONSE_HEAD_LEN: usize = 20;
const _: () = assert!(core::mem::size_of::<ResponseValue>() == RESPONSE_HEAD_LEN + MAX_RESPONSE_LEN);
const _: () = assert!(core::mem::size_of::<Response<44>>() == 64);

/// Single entry (index 0) of the config array map, written by the daemon before attaching.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpConfig {
    /// UDP port the DNS service listens on (host order), normally 53.
    pub dns_port: u16,
    /// Our EDNS(0) UDP payload size, advertised in every OPT we send (RFC 6891 section 6.2.3).
    pub edns_payload: u16,
    /// Nonzero once the daemon has filled the maps; until then every query passes.
    pub enabled: u32,
    /// Shadow validation: one answered query in `shadow_sample` (drawn with
    /// bpf_get_prandom_u32) is copied to SHADOW_RING; 0 turns sampling off.
    pub shadow_sample: u32,
    /// Entries in HITS minus one (a power of two minus one); 0: the index is not used.
    pub hit_mask: u32,
}
const _: () = assert!(core::mem::size_of::<XdpConfig>() == 16);

/// Longest name (wire bytes) the hit index holds; longer ones take the record lookup.
pub const HIT_MAX_NAME: usize = 48;
pub const HIT_NAME_WORDS: usize = HIT_MAX_NAME / 8;
/// `HitEntry::qtype_serves` high half: the entry answers queries without DO, with DO.
pub const HIT_SERVES_PLAIN: u32 = 1 << 16;
pub const HIT_SERVES_DO: u32 = 1 << 17;
/// `HitEntry::flags`: `value` holds the answer itself (a copy of the RESPONSES44 element).
pub const HIT_INLINE: u32 = 1 << 0;

/// One entry of the hit index: what `search` would find at step 0 for (name, type) and the
/// DO bits it serves, so an exact hit reads two adjacent cache lines instead of a hash bucket,
/// a record element and the answer. `value` holds a copy of the answer when it is one of the
/// smallest (RESPONSES44) and never rewritten under its id (no SOA serial): its line's address
/// is known before the first line arrives, so the two misses overlap. The daemon writes
/// entries in place through its mapping under `seq` (odd while it writes); the program passes
/// to the record lookup whenever `seq` is odd or moves while it reads. A name's entries sit in
/// one of the two pairs `hit_pairs` picks.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HitEntry {
    pub seq: u32,
    /// QTYPE in the low half, `HIT_SERVES_*` bits in the high half; 0: empty.
    pub qtype_serves: u32,
    pub answer: u32,
    /// `HIT_INLINE` or 0.
    pub flags: u32,
    /// The lowercase wire name, zero-padded, as little-endian words (the key's first bytes).
    pub name: [u64; HIT_NAME_WORDS],
    pub value: Response<44>,
}
const _: () = assert!(core::mem::size_of::<HitEntry>() == 128);

impl HitEntry {
    pub const EMPTY: HitEntry = HitEntry {
        seq: 0,
        qtype_serves: 0,
        answer: 0,
        flags: 0,
        name: [0; HIT_NAME_WORDS],
        value: Response {
            flags: 0,
            ancount: 0,
            nscount: 0,
            arcount: 0,
            data_len: 0,
            value_flags: 0,
            data_csum: 0,
            serial_at: 0,
            rrl_key: 0,
            data: [0; 44],
        },
    };
}

/// The two pairs of HITS entries that may hold (name, qtype), by their first entry: `name` is
/// the key's first HIT_MAX_NAME bytes as little-endian words, zero past the name; `mask` is
/// `hit_mask`. Two places of two: at a third of the entries in use, about 5% of keys found
/// both entries of one pair taken, next to none both pairs.
#[inline(always)]
pub fn hit_pairs(name: &[u64; HIT_NAME_WORDS], qtype: u16, mask: u32) -> [u32; 2] {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ qtype as u64;
    let mut i = 0;
    while i < HIT_NAME_WORDS {
        h = (h ^ name[i]).wrapping_mul(0x2127_599b_f432_5c37);
        h ^= h >> 29;
        i += 1;
    }
    let first = ((h >> 32) as u32) & mask & !1;
    let second = (h as u32) & mask & !1;
    [first, if second == first { first ^ 2 } else { second }]
}

/// Per-CPU scratch space (array map, one entry): the 512-byte BPF stack cannot hold the key.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Scratch {
    pub key: ResponseKey,
    /// The question's qname exactly as received (original case), zero-padded by at least 4 bytes
    /// past its end so it can be checksummed in 4-byte steps.
    pub raw: [u8; KEY_NAME_LEN + 4],
    /// Length of the name left in `key.name` by the previous packet on this CPU, so only the
    /// stale tail needs zeroing.
    pub prev_len: u32,
    /// The header fields and data length of the reply being built: the answer's, or a slip's
    /// (TC=1, empty sections). Passed through memory so the verifier explores the reply builder
    /// once, not once per rate-limiting outcome.
    pub body: ReplyBody,
    /// Nonzero when the reply being built is a slip (counted under `stat::ACTION_SLIP`).
    pub slip: u32,
    /// Shadow validation: who asked, and how, for a query picked for sampling. Together with
    /// `raw`, `key.qtype` and `body` this is the whole record sent to SHADOW_RING.
    pub shadow: ShadowSample,
    /// The key the answer was found under: the query's own key, its `QTYPE_DEFAULT` or
    /// `KEY_VARIANT_DO` fallback, or a closest encloser's `KEY_VARIANT_CHILD` key.
    pub found: ResponseKey,
    /// The lowercased qname again, followed by at least 256 zero bytes that are never written:
    /// a suffix of the name copied out from any label offset comes out zero-padded, as keys are.
    pub walk_name: [u8; 2 * KEY_NAME_LEN],
    /// The answer being served, copied out of its RESPONSES map (whatever its size class).
    pub response: ResponseValue,
    /// The id of that answer, as the lookup found it in a name's record.
    pub response_id: u32,
    /// The record part being searched, copied out of its NAMES map (one type for the
    /// verifier, whichever length class it came from).
    pub record: NameRecord,
}
const _: () = assert!(core::mem::size_of::<Scratch>() == 576 + 260 + 512 + 1028 + 4 + 72);

/// A SHADOW_RING record: the first `SHADOW_RECORD_LEN` bytes of `Scratch`, everything up to and
/// including `shadow` (the lookup's working space after it is not sent).
pub const SHADOW_RECORD_LEN: usize = core::mem::offset_of!(Scratch, shadow) + core::mem::size_of::<ShadowSample>();
const _: () = assert!(SHADOW_RECORD_LEN == 576);

/// Bytes of SHADOW_RING (a power-of-two multiple of the page size): about 1800 records, ample
/// for a daemon that drains it as records arrive.
pub const SHADOW_RING_BYTES: u32 = 1 << 20;

/// `ShadowSample::edns_flags`: the query had an OPT record.
pub const SHADOW_EDNS_PRESENT: u16 = 1 << 0;
/// `ShadowSample::edns_flags`: its DO bit was set.
pub const SHADOW_EDNS_DO: u16 = 1 << 1;

/// What a SHADOW_RING record adds to the reply's scratch: the client and the query fields that
/// decide the answer. A record is the `Scratch` prefix (`SHADOW_RECORD_LEN`) of an answered
/// (XDP_TX, not a slip) query:
/// the daemon rebuilds the query from `raw[..shadow.qname_len]`, `key.qtype` and these fields,
/// renders its own answer with the same encoder the map was compiled with, and checks it
/// against `body` (counts, data length and data checksum of the answer XDP sent), so a record
/// whose answer changed since (a reload) is recognised rather than mis-compared.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ShadowSample {
    /// Nonzero while the packet being answered was picked for sampling.
    pub picked: u32,
    /// 4 or 6.
    pub family: u32,
    /// The client's address as received (IPv4 in the first 4 bytes).
    pub client_addr: [u8; 16],
    /// The client's UDP port, host order.
    pub client_port: u16,
    /// The query's header flags word, host order.
    pub query_flags: u16,
    /// The requestor's payload size as the program took it (`max(512, payload)`), 0 without EDNS.
    pub edns_payload: u16,
    /// `SHADOW_EDNS_*` bits.
    pub edns_flags: u16,
    /// Wire length of the qname in `raw`, root label included.
    pub qname_len: u16,
    /// Always zero.
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<ShadowSample>() == 36);

/// What the reply builder copies into the header and after the question (see `Scratch::body`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyBody {
    pub flags: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// Bytes of `ResponseValue::data` to copy (0 for a slip).
    pub data_len: u16,
    pub data_csum: u16,
}
const _: () = assert!(core::mem::size_of::<ReplyBody>() == 12);

/// Kinds of response the limiter keeps apart (top 4 bits of `ResponseValue::rrl_key`), after BIND
/// and Knot: positive answers are limited per name, negative ones per zone, so a random-subdomain
/// or type sweep collapses into one budget.
pub mod rrl_kind {
    /// Not classified (`rrl_key` 0).
    pub const UNCLASSIFIED: u32 = 0;
    /// Data for the qname (keyed by qname).
    pub const POSITIVE: u32 = 1;
    /// NOERROR without data (keyed by zone).
    pub const NODATA: u32 = 2;
    /// Name does not exist (keyed by zone).
    pub const NXDOMAIN: u32 = 3;
    /// Delegation to a child zone (keyed by the delegation point).
    pub const REFERRAL: u32 = 4;
    /// REFUSED, SERVFAIL, FORMERR, NOTIMP... (one budget per prefix).
    pub const ERROR: u32 = 5;
    /// Kinds that have a counter slot (`stat::RRL_LIMITED_BASE + kind`).
    pub const COUNT: u32 = 6;
    /// Bits of `rrl_key` holding the kind.
    pub const SHIFT: u32 = 28;
}

/// `RrlConfig::flags`: count what would be limited, answer it anyway.
pub const RRL_FLAG_DRY_RUN: u32 = 1 << 0;
/// `RrlConfig::flags`: drop queries from reflection source ports and impossible source addresses.
pub const RRL_FLAG_DROP_SPOOFS: u32 = 1 << 1;

/// Single entry (index 0) of the RRL_CONFIG array, rewritten live by the daemon (no reload).
/// All zeros (the state before the daemon writes it) means: no limiting, no spoof drops.
///
/// The limiter is GCRA, a token bucket in one word: a bucket holds the theoretical arrival
/// time `tat` of its next response. A response is allowed when `tat - now <= burst_ns`, and
/// moves `tat` on by `interval_ns`, so a prefix gets `burst` responses back to back and then
/// one per `interval_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RrlConfig {
    /// 1e9 / rate: nanoseconds per response at the steady rate; 0 turns limiting off.
    pub interval_ns: u64,
    /// How far a bucket's clock may run ahead of now: (burst - 1) * interval_ns.
    pub burst_ns: u64,
    /// Every `slip`th limited response is a TC=1 slip; 0 never slips.
    pub slip: u32,
    /// `RRL_FLAG_*` bits.
    pub flags: u32,
    /// Mask for the IPv4 source address (a /24 is ff.ff.ff.00).
    pub v4_mask: [u8; 4],
    pub _pad: u32,
    /// Mask for the IPv6 source address (a /56 is seven 0xff bytes, then zeros).
    pub v6_mask: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<RrlConfig>() == 48);

/// Key of the RRL_BUCKETS LRU hash (and of the daemon's own limiter): the client's prefix and
/// the response's `rrl_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RrlKey {
    /// Masked source address: IPv4 in the first 4 bytes, the rest zero.
    pub prefix: [u8; 16],
    /// 4 or 6, so an IPv4 prefix never shares a bucket with an IPv6 one.
    pub family: u32,
    pub rrl_key: u32,
}
const _: () = assert!(core::mem::size_of::<RrlKey>() == 24);

/// Value of RRL_BUCKETS. One map shared by all CPUs (not per-CPU): a prefix has one budget
/// however RSS spreads its packets; the words are updated with atomic adds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RrlBucket {
    /// Theoretical arrival time (CLOCK_MONOTONIC ns, as bpf_ktime_get_ns).
    pub tat: u64,
    /// Responses limited so far (drives the slip count and the daemon's log lines).
    pub limited: u64,
}
const _: () = assert!(core::mem::size_of::<RrlBucket>() == 16);

/// Key of the RRL_ALLOW LPM trie (after the kernel's 4-byte prefix length): IPv4 addresses
/// appear as IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix length + 96).
pub const RRL_ALLOW_KEY_LEN: usize = 16;

/// Capacity of RRL_BUCKETS: enough for every active (prefix, kind) pair of a large flood; the
/// LRU evicts idle buckets first, and an evicted bucket is a full one, so eviction never hurts
/// an innocent prefix.
pub const RRL_BUCKETS_CAPACITY: u32 = 65_536;
/// Capacity of RRL_ALLOW.
pub const RRL_ALLOW_CAPACITY: u32 = 1024;

/// Indices into the per-CPU `STATS` array. Every packet is counted once under `RX` and once
/// under exactly one action; passes also under one reason.
///
/// The program does not count `RX` and `ACTION_TX` itself (two counter updates less per
/// answer): readers derive them with [`stat::derive`].
/// The test bed's reply counter (`xdp_count`, dns-xdp-ebpf/src/testbed/count.rs): the load generator's
/// client end counts DNS replies in the kernel and drops them, passing a 1-in-(mask+1) sample
/// (the DNS ID ANDed with `COUNT_CONFIG[0]` is zero) to the stack for checking and timing.
pub mod count {
    /// Map names in the eBPF object.
    pub const MAP_COUNTS: &str = "COUNTS";
    pub const MAP_COUNT_CONFIG: &str = "COUNT_CONFIG";
    /// Name of the program.
    pub const PROG_NAME: &str = "xdp_count";
    /// DNS replies (UDP from port 53, QR set), sampled or not.
    pub const REPLIES: u32 = 0;
    /// Of the replies, those passed to the stack as the sample.
    pub const SAMPLED: u32 = 1;
    /// Anything else, passed (ARP, neighbour discovery: the servers need them to reach us).
    pub const OTHER: u32 = 2;
    /// Slots in `COUNTS`.
    pub const SLOTS: u32 = 3;
}

pub mod stat {
    /// Fills in the counters the program leaves to its readers in `k` (the summed STATS array):
    /// `ACTION_TX` is the sum of the `TX_RCODE_BASE` slots (every answer has one RCODE), and
    /// `RX` the sum of the actions (every packet leaves by exactly one).
    pub fn derive(k: &mut [u64]) {
        let rcodes = TX_RCODE_BASE as usize..TX_RCODE_BASE as usize + 16;
        k[ACTION_TX as usize] = k[rcodes].iter().sum();
        k[RX as usize] = k[ACTION_TX as usize..=ACTION_SLIP as usize].iter().sum();
    }

    pub const RX: u32 = 0;
    pub const ACTION_TX: u32 = 1;
    pub const ACTION_PASS: u32 = 2;
    pub const ACTION_DROP: u32 = 3;
    pub const ACTION_ABORTED: u32 = 4;
    pub const ACTION_RATE_LIMITED: u32 = 5;
    pub const ACTION_SLIP: u32 = 6;

    /// Not IPv4/IPv6 over Ethernet (ARP, more than two VLAN tags, other ethertypes).
    pub const PASS_NOT_IP: u32 = 10;
    /// IPv4 with options or fragmented, IPv6 with extension headers.
    pub const PASS_IP_UNUSUAL: u32 = 11;
    /// Not UDP to the DNS port (TCP, other ports, other protocols).
    pub const PASS_NOT_DNS: u32 = 12;
    /// DNS header we do not answer: QR=1, opcode != QUERY, QDCOUNT != 1, ANCOUNT/NSCOUNT != 0,
    /// ARCOUNT > 1, TC set, or a message shorter than a header.
    pub const PASS_HEADER: u32 = 13;
    /// A qname we do not handle: compression, label > 63, longer than 255, truncated.
    pub const PASS_QNAME: u32 = 14;
    /// QCLASS not IN.
    pub const PASS_QCLASS: u32 = 15;
    /// Additional record that is not a well-formed OPT ending the message, or EDNS version > 0.
    pub const PASS_EDNS: u32 = 16;
    /// No answer for (qname, qtype) in the maps (or a qname longer than `MAX_KERNEL_NAME`).
    pub const PASS_MISS: u32 = 17;
    /// The answer would not fit the client's UDP payload size: the daemon truncates.
    pub const PASS_TOO_BIG: u32 = 18;
    /// DO=1 for a signed zone.
    pub const PASS_DNSSEC: u32 = 19;
    /// The kernel refused to resize the packet.
    pub const PASS_RESIZE: u32 = 20;
    /// Maps not ready (daemon starting).
    pub const PASS_DISABLED: u32 = 21;

    /// The query carries a COOKIE option (RFC 7873): only the daemon can compute and check
    /// server cookies, so it answers (and exempts valid ones from rate limiting).
    pub const PASS_COOKIE: u32 = 22;

    /// Structurally broken headers of packets addressed to us.
    pub const DROP_MALFORMED: u32 = 30;
    /// Source port of a UDP reflection service (chargen, NTP, SSDP...): a spoofed query.
    pub const DROP_REFLECTION_PORT: u32 = 31;

    /// Responses sent by XDP, by RCODE: `TX_RCODE_BASE + rcode` (rcode 0..=15).
    pub const TX_RCODE_BASE: u32 = 32;

    /// Source address no client can have (loopback, multicast, unspecified, ours): spoofed.
    pub const DROP_SPOOFED_SOURCE: u32 = 48;
    /// Would have been limited, answered because of dry-run.
    pub const RRL_DRY_RUN: u32 = 49;
    /// Answered without limiting: the client is in the allowlist.
    pub const RRL_ALLOWLISTED: u32 = 50;
    /// Limited (dropped or slipped), by kind: `RRL_LIMITED_BASE + rrl_kind` (6 slots).
    pub const RRL_LIMITED_BASE: u32 = 51;

    /// Answers copied to SHADOW_RING.
    pub const SHADOW_SAMPLED: u32 = 57;
    /// Answers picked for shadowing that did not fit in SHADOW_RING (the daemon is behind).
    pub const SHADOW_RING_FULL: u32 = 58;

    /// Answers found under a `QTYPE_DEFAULT` key (types without a key of their own).
    pub const TX_DEFAULT: u32 = 60;
    /// Answers found under a closest encloser's `KEY_VARIANT_CHILD` key (NXDOMAIN, wildcard,
    /// referral below a cut).
    pub const TX_ENCLOSER: u32 = 61;
    /// Misses that walked to a marker telling them to pass (the name exists but is not
    /// installed, or its answer depends on the exact qname).
    pub const PASS_MARKER: u32 = 62;
    /// Answers found in the hit index (`MAP_HITS`), without the record lookup.
    pub const TX_HIT: u32 = 63;

    /// Number of slots in the STATS array.
    pub const COUNT: u32 = 64;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data with no padding holes (sizes asserted above), valid for any
    // bit pattern.
    unsafe impl aya::Pod for super::ResponseKey {}
    // SAFETY: as above (every field is naturally aligned; sizes are multiples of 4).
    unsafe impl<const N: usize> aya::Pod for super::Response<N> {}
    // SAFETY: as above.
    unsafe impl<const N: usize> aya::Pod for super::NameKey<N> {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::NameRecord {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::XdpConfig {}
    // SAFETY: repr(C), no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::HitEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RrlConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RrlKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RrlBucket {}
    // SAFETY: as above (Scratch and ShadowSample: every field is naturally aligned, sizes asserted).
    unsafe impl aya::Pod for super::Scratch {}
}

#[cfg(test)]
mod tests {
    use super::stat;

    #[test]
    fn derived_counters_sum_the_rcodes_and_the_actions() {
        let mut k = [0u64; stat::COUNT as usize];
        k[(stat::TX_RCODE_BASE) as usize] = 5; // NOERROR
        k[(stat::TX_RCODE_BASE + 3) as usize] = 2; // NXDOMAIN
        k[stat::ACTION_PASS as usize] = 4;
        k[stat::ACTION_SLIP as usize] = 1;
        k[stat::TX_HIT as usize] = 100; // not an action
        k[stat::RX as usize] = 999; // whatever was there is replaced
        stat::derive(&mut k);
        assert_eq!(k[stat::ACTION_TX as usize], 7);
        assert_eq!(k[stat::RX as usize], 7 + 4 + 1);
    }
}
