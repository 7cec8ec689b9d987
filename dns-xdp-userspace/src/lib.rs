//! dns-xdp: an authoritative DNS server whose hot path runs in XDP.
pub const EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dns-xdp"));
