//! The control API's JSON: a request body as `PUT .../rrsets/NAME/TYPE` (an object) or
//! `POST .../batch` (`{"changes": [...]}`) carries it, validated change by change
//! (`api::parse_change`, through `dns_xdp::fuzzing`) and applied to example.test the two ways
//! the API's write does: copying the touched RRsets, or rebuilding the whole zone.
#![no_main]

use dns_xdp::fuzzing::api_change;
use dns_xdp::zone::{Record, soa_with_serial, zone_from_records, zone_with_rrsets};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    dns_xdp_fuzz::allow_caught_panics();
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return };
    let changes = match body.get("changes").and_then(Value::as_array) {
        Some(batch) => batch.clone(),
        None => vec![body],
    };
    let current = dns_xdp_fuzz::example_test();
    let mut parsed = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        match api_change(&current.origin, change, &format!("changes[{i}].")) {
            Ok(c) => parsed.push(c),
            Err((status, error)) => {
                assert_eq!(status, 400, "{error}");
                assert!(error["error"].is_string() && error["field"].is_string(), "{error}");
                return;
            }
        }
    }
    let serial = current.serial.wrapping_add(1);
    let puts: Option<Vec<_>> = parsed
        .iter()
        .map(|(owner, rt, r)| r.clone().filter(|r| !r.is_empty()).map(|r| (owner.clone(), *rt, r)))
        .collect();
    if let Some(puts) = puts {
        let _ = zone_with_rrsets("fuzz", current, &puts, serial);
    }
    let mut records = current.records_as_served();
    for (owner, rt, new) in &parsed {
        records.retain(|r| !(r.owner == *owner && r.rtype == *rt));
        if let Some(new) = new {
            records.extend(new.iter().cloned());
        }
    }
    let soa = current.soa_record();
    records.push(Record { rdata: soa_with_serial(&soa.rdata, serial), ..soa });
    let _ = zone_from_records("fuzz", records);
});
