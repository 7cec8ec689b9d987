//! The control API's JSON: a request body as `PUT .../rrsets/NAME/TYPE` (an object) or
//! `POST .../batch` (`{"changes": [...]}`) carries it, validated change by change
//! (`api::parse_change`, through `dns_xdp::fuzzing`) and applied to example.test the two ways
//! the API's write may take (`zone::edit`): copying the touched RRsets, or rebuilding the zone.
#![no_main]

use dns_xdp::fuzzing::api_change;
use dns_xdp::zone::edit;
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
            Err(error) => {
                assert!(error.field.starts_with(&format!("changes[{i}].")), "{error}");
                return;
            }
        }
    }
    let serial = current.serial.wrapping_add(1);
    let _ = edit::narrow("fuzz", current, &parsed, serial);
    let _ = edit::rebuild("fuzz", current, &parsed, serial);
});
