//! The contract between the XDP program and the daemon: map names, keys, values, counters.
//!
//! Everything here is `#[repr(C)]` with explicit widths and size asserts, because the kernel
//! side (bpfel, no_std) and userspace (x86_64, std) must agree on every byte.
#![no_std]

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
pub const MAX_ANSWER_LEN: usize = 1008;
/// Smallest UDP payload every DNS client accepts (RFC 1035 section 4.2.1).
pub const MIN_UDP_PAYLOAD: u16 = 512;

/// Map names as they appear in the eBPF object.
pub const MAP_ANSWERS: &str = "ANSWERS";
pub const MAP_CONFIG: &str = "CONFIG";
pub const MAP_STATS: &str = "STATS";
pub const MAP_SCRATCH: &str = "SCRATCH";
/// The XDP entry point's function name.
pub const PROG_NAME: &str = "dns_xdp";

/// Capacity of the answers map (entries). Issue-4 work makes this configurable.
pub const ANSWERS_CAPACITY: u32 = 262_144;

/// Key of the answers map: the question as the daemon compiled it.
///
/// `name` is the qname in wire format, ASCII-lowercased (length octets are always < 0x40, so
/// lowercasing every byte in 'A'..='Z' never touches them), terminated by the root label and
/// zero-padded to `KEY_NAME_LEN`. Wire names are self-delimiting, so two different names never
/// share a key and a lookup can never return another name's answer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    pub name: [u8; KEY_NAME_LEN],
    /// QTYPE in host byte order.
    pub qtype: u16,
    /// Always zero (explicit padding so the whole key is hashed deterministically).
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<AnswerKey>() == 260);

/// `AnswerValue::value_flags`: the zone is DNSSEC-signed. A query with DO=1 must not be
/// answered from this entry (it would come back without RRSIGs): pass it to the daemon.
pub const VALUE_FLAG_SIGNED: u16 = 1 << 0;

/// Value of the answers map: a response rendered by the daemon's encoder, minus the parts that
/// depend on the query (ID, RD and CD bits, the question bytes, the OPT record).
///
/// The XDP program builds the reply as: header (ID from the query, `flags` | query's RD/CD,
/// QDCOUNT=1, counts from here, ARCOUNT + 1 when the query had an OPT), the question exactly as
/// received, `data[..data_len]`, then an OPT record (our payload size, DO echoed, no options) if
/// the query had one. Compression pointers in `data` point only into the question (at offset 12)
/// or into `data` itself, so they stay valid for any query whose qname has the same length.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AnswerValue {
    /// Header flags word (host order) with QR=1 and AA/RCODE as the daemon decided; RD=CD=0.
    pub flags: u16,
    /// ANCOUNT, NSCOUNT and ARCOUNT (ARCOUNT without the OPT record) of the rendered response.
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// Valid bytes in `data`, at most `MAX_ANSWER_LEN`.
    pub data_len: u16,
    /// `VALUE_FLAG_*` bits.
    pub value_flags: u16,
    /// Ones'-complement sum of `data[..data_len]` read as big-endian 16-bit words starting at an
    /// even offset (odd trailing byte padded with zero), folded to 16 bits, in host order.
    /// Lets the XDP program fix the UDP checksum without reading the answer bytes again.
    pub data_csum: u16,
    pub _pad: u16,
    pub data: [u8; MAX_ANSWER_LEN],
}
const _: () = assert!(core::mem::size_of::<AnswerValue>() == 1024);

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
}
const _: () = assert!(core::mem::size_of::<XdpConfig>() == 8);

/// Per-CPU scratch space (array map, one entry): the 512-byte BPF stack cannot hold the key.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Scratch {
    pub key: AnswerKey,
    /// The question's qname exactly as received (original case), zero-padded by at least 4 bytes
    /// past its end so it can be checksummed in 4-byte steps.
    pub raw: [u8; KEY_NAME_LEN + 4],
    /// Length of the name left in `key.name` by the previous packet on this CPU, so only the
    /// stale tail needs zeroing.
    pub prev_len: u32,
}
const _: () = assert!(core::mem::size_of::<Scratch>() == 524);

/// Indices into the per-CPU `STATS` array. Every packet is counted once under `RX` and once
/// under exactly one action; passes also under one reason.
pub mod stat {
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
    /// No answer for (qname, qtype) in the map.
    pub const PASS_MISS: u32 = 17;
    /// The answer would not fit the client's UDP payload size: the daemon truncates.
    pub const PASS_TOO_BIG: u32 = 18;
    /// DO=1 for a signed zone.
    pub const PASS_DNSSEC: u32 = 19;
    /// The kernel refused to resize the packet.
    pub const PASS_RESIZE: u32 = 20;
    /// Maps not ready (daemon starting).
    pub const PASS_DISABLED: u32 = 21;

    /// Structurally broken headers of packets addressed to us.
    pub const DROP_MALFORMED: u32 = 30;

    /// Responses sent by XDP, by RCODE: `TX_RCODE_BASE + rcode` (rcode 0..=15).
    pub const TX_RCODE_BASE: u32 = 32;

    /// Number of slots in the STATS array.
    pub const COUNT: u32 = 48;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data with no padding holes (sizes asserted above), valid for any
    // bit pattern.
    unsafe impl aya::Pod for super::AnswerKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::AnswerValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::XdpConfig {}
}
