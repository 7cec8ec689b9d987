//! What the listeners share: the zone snapshot being served and the counters.

use arc_swap::ArcSwap;

use crate::answer::Chaos;
use crate::hotset::Demand;
use crate::metrics::Metrics;
use crate::zone::ZoneSet;

pub struct State {
    /// Swapped whole on reload; readers hold an `Arc` to the version they started with.
    pub zones: ArcSwap<ZoneSet>,
    pub metrics: Metrics,
    pub edns_payload: u16,
    /// CH-class version.bind/id.server answers (refused when unset).
    pub chaos: Chaos,
    /// Shadow validation, when `--shadow-reference` is set (shadow.rs).
    pub shadow: std::sync::OnceLock<std::sync::Arc<crate::shadow::Shadow>>,
    /// The DNS cookie secret (RFC 9018): server cookies issued and checked by the listeners.
    pub cookies: crate::cookie::Cookies,
    /// What the listeners answer, sampled for the hot set, which the XDP answers' updates
    /// follow (update/).
    pub demand: std::sync::Arc<Demand>,
    /// Zone transfers and NOTIFY, once set up (the listeners hand those messages over).
    pub replication: std::sync::OnceLock<std::sync::Arc<crate::replication::Replication>>,
}
