//! A write through the API: its changes validated (change.rs), the zone's next version made by
//! `zone::edit` under the replication write lock, committed (journal, publish, NOTIFY), then
//! confirmed by the fleet's quorum. The status tells the client which of those it got to.

use serde_json::{Value, json};

use super::change::parse_change;
use super::reply::{Reply, bad};
use crate::name::Name;
use crate::replication::{Replication, quorum};
use crate::zone::Zone;
use crate::zone::edit::{self, EditError};

/// Applies `changes` (JSON, already split out of the request) to `current`, the zone as the
/// request found it; `batch` says whether they came as a batch, which names fields by their
/// position (`changes[2].rdata`).
pub(super) async fn write(repl: &Replication, current: &Zone, changes: &[Value], batch: bool) -> Reply {
    if repl.is_secondary(&current.origin) {
        return bad("zone", format!("zone {} is a secondary here; write to its primary", current.origin));
    }
    let origin = current.origin.clone();
    let mut parsed = Vec::new();
    for (i, v) in changes.iter().enumerate() {
        let prefix = if batch { format!("changes[{i}].") } else { String::new() };
        match parse_change(&origin, v, &prefix) {
            Ok(c) => parsed.push(c),
            Err(e) => return (400, e.json()),
        }
    }
    let (serial, soa) = {
        let _guard = repl.write.lock().await;
        let Some(current) = repl.current(&origin) else { return (404, json!({"error": "zone went away"})) };
        let serial = current.serial.wrapping_add(1);
        let started = std::time::Instant::now();
        let new = match edit::apply(&format!("API change to {origin}"), &current, &parsed, serial) {
            Ok(z) => z,
            Err(err @ EditError::NoRrset { index, .. }) if batch => {
                return bad(&format!("changes[{index}].name"), err);
            }
            Err(err @ EditError::NoRrset { .. }) => return (404, json!({"error": err.to_string(), "field": "name"})),
            Err(err @ EditError::Invalid(_)) => return bad(if batch { "changes" } else { "rdata" }, err),
        };
        log::debug!("API write to {origin}: new version built in {:?}", started.elapsed());
        let soa = new.soa_record();
        let touched: Vec<(Name, u16)> = parsed.iter().map(|c| (c.owner.clone(), c.rtype)).collect();
        match repl.commit_touching(new, Some(&touched)) {
            Ok(serial) => {
                log::debug!("API write to {origin}: serial {serial} committed after {:?}", started.elapsed());
                (serial, soa)
            }
            Err(err) => {
                log::error!("API write to {origin} failed: {err}");
                return (500, json!({"error": err.to_string()}));
            }
        }
    };
    let c = &repl.config;
    let outcome = quorum::confirm(&c.nodes, &origin, &soa, c.quorum, c.quorum_deadline, repl.keys(), c.source).await;
    let body = json!({
        "serial": serial,
        "confirmed": outcome.confirmed,
        "required": outcome.required,
        "nodes": outcome.nodes,
        "elapsed_ms": outcome.elapsed.as_millis() as u64,
    });
    if outcome.reached() {
        (200, body)
    } else {
        log::warn!(
            "zone {origin} serial {serial}: {} of {} nodes confirmed within {:?} (needed {})",
            outcome.confirmed,
            outcome.nodes,
            c.quorum_deadline,
            outcome.required
        );
        (503, body)
    }
}
