//! The zone-file reader: the text parser the API also uses (`zone::parse_records`, then
//! `zone_from_records`), and the same bytes as a file through `zone::load_zone_file` (with its
//! `$INCLUDE`s, confined to the file's folder). A zone that loads is compiled into the XDP
//! program's map entries, which runs the lookup and the encoder over every name it holds.
#![no_main]

use std::sync::Arc;

use dns_xdp::name::Name;
use dns_xdp::respond::DEFAULT_EDNS_PAYLOAD;
use dns_xdp::zone::{self, ZoneSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dns_xdp_fuzz::allow_caught_panics();
    if let Ok(text) = std::str::from_utf8(data) {
        let origin = Name::from_text("example.test").expect("literal");
        if let Ok(records) = zone::parse_records(text, &origin) {
            let _ = zone::zone_from_records("fuzz input", records);
        }
    }
    // Named like a zone file, so the origin defaults to example.test as for an operator's file.
    let path = dns_xdp_fuzz::scratch_file("example.test.zone");
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    if let Ok((zone, _warnings)) = zone::load_zone_file(&path) {
        let _ = dns_xdp::compile::compile(&ZoneSet::new([Arc::new(zone)]), DEFAULT_EDNS_PAYLOAD);
    }
});
