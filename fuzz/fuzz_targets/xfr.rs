//! What a secondary reads from a primary and from its own disk: the replication message parser,
//! AXFR/IXFR response streams (`xfr::read_responses`, the reader `xfr::pull` runs) and applying
//! the IXFR changesets to the zone, and journal records (`journal::read_record`).
//!
//! Input: one flag byte (bit 0: we hold example.test, so the transfer is an IXFR from its serial),
//! then TCP-framed messages (u16 length, message). Every frame is also tried as a journal record,
//! raw and with a valid header and CRC, so the fuzzer reaches the changeset decoder.
#![no_main]

use dns_xdp::fuzzing::{journal_read_record, journal_record_bytes};
use dns_xdp::replication::message;
use dns_xdp::replication::xfr::{self, Pulled};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let frames = dns_xdp_fuzz::frames(rest);
    let current = dns_xdp_fuzz::example_test();
    let ixfr = flags & 1 != 0;
    for f in &frames {
        let _ = message::parse(f);
    }

    // The ID must match the query's; take the first message's so mutations keep it.
    let id = frames.first().and_then(|f| f.get(..2)).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let pulled = xfr::read_responses(id, &current.origin, ixfr.then_some(&**current), frames.iter().copied());
    if let Ok(Pulled::Incremental(changes)) = pulled {
        let mut zone = None;
        for c in &changes {
            match c.apply(zone.as_ref().unwrap_or(&**current)) {
                Ok(z) => zone = Some(z),
                Err(_) => break,
            }
        }
    }

    for f in &frames {
        let _ = journal_read_record(f);
        let mut record = b"DXJ1".to_vec();
        record.extend_from_slice(&(f.len() as u32).to_be_bytes());
        record.extend_from_slice(&crc32fast::hash(f).to_be_bytes());
        record.extend_from_slice(f);
        if let Some((change, len)) = journal_read_record(&record) {
            assert_eq!(len, record.len());
            let again = journal_record_bytes(&change);
            let (back, _) = journal_read_record(&again).expect("a written record reads back");
            assert_eq!(back, change, "journal record round trip");
        }
    }
});
