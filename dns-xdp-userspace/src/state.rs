//! What every query needs, built whole before the listeners start: the zone snapshot being
//! served, the settings the answers depend on, and the daemon's counters. Parts that come and go
//! with the configuration (replication, shadow validation, the rate limiter) are not in here: the
//! per-query handler (responder.rs) holds them beside it. Calls only the types it holds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwap;

use crate::cookie::Cookies;
use crate::hotset::Demand;
use crate::respond::{Chaos, Transport};
use crate::zone::ZoneSet;
use dns_xdp_common::dns::rcode;

pub struct State {
    /// Swapped whole on reload; readers hold an `Arc` to the version they started with.
    pub zones: ArcSwap<ZoneSet>,
    pub metrics: Metrics,
    pub edns_payload: u16,
    /// CH-class version.bind/id.server answers (refused when unset).
    pub chaos: Chaos,
    /// The DNS cookie secret (RFC 9018): server cookies issued and checked by the listeners.
    pub cookies: Cookies,
    /// What the listeners answer, sampled for the hot set, which the XDP answers' updates
    /// follow (update/).
    pub demand: std::sync::Arc<Demand>,
}

/// RCODEs we count individually; everything else is "OTHER".
pub const RCODES: [u16; 8] = [
    rcode::NOERROR,
    rcode::FORMERR,
    rcode::SERVFAIL,
    rcode::NXDOMAIN,
    rcode::NOTIMP,
    rcode::REFUSED,
    rcode::YXDOMAIN,
    rcode::BADVERS,
];

/// The daemon's own counters; metrics.rs renders them.
#[derive(Default)]
pub struct Metrics {
    /// By transport (`Transport::ALL` order), then by `RCODES` index.
    responses: [[AtomicU64; RCODES.len() + 1]; Transport::ALL.len()],
    pub queries_dropped: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Reloads that found a zone's data changed under an unchanged serial.
    pub serial_unchanged: AtomicU64,
    /// Name records in the kernel's NAMES maps.
    pub map_entries: AtomicU64,
    /// Distinct answers in the kernel's RESPONSES maps.
    pub response_entries: AtomicU64,
    /// Entries in use in the kernel's hit index (HITS).
    pub hit_entries: AtomicU64,
    pub tcp_connections: AtomicU64,
    /// TCP connections closed at accept: over the per-client cap, or out of descriptors (tcp.rs).
    pub tcp_refused: AtomicU64,
    /// TCP connections closed because a reply could not be written in time (a client not reading).
    pub tcp_write_stalls: AtomicU64,
    /// Zone transfers we started serving, and those answered SERVFAIL over `--xfr-out-max`.
    pub xfr_out_started: AtomicU64,
    pub xfr_out_busy: AtomicU64,
    pub ready: AtomicBool,
}

impl Metrics {
    pub fn count_response(&self, transport: Transport, rc: u16) {
        let t = Transport::ALL.iter().position(|&t| t == transport).unwrap_or(0);
        let i = RCODES.iter().position(|&r| r == rc).unwrap_or(RCODES.len());
        self.responses[t][i].fetch_add(1, Relaxed);
    }

    /// Responses the daemon sent over `transport`, by `RCODES` index; the last counts every other RCODE.
    pub fn responses(&self, transport: Transport) -> [u64; RCODES.len() + 1] {
        let t = Transport::ALL.iter().position(|&t| t == transport).unwrap_or(0);
        std::array::from_fn(|i| self.responses[t][i].load(Relaxed))
    }
}
