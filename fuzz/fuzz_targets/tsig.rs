//! TSIG verification (RFC 8945): signed requests (`tsig::verify_request`, as NOTIFY and transfer
//! requests are checked) and transfer response streams (`tsig::StreamVerifier`).
//!
//! The first byte picks the mode, the rest is the input:
//! - 0: the rest as a signed request; verification must not panic, and a forged MAC never passes;
//! - 1: the rest as an unsigned message, signed with our key: it must verify (round trip);
//! - 2: the rest as TCP-framed responses to a request we signed, through the stream verifier.
#![no_main]

use dns_xdp::replication::message::{self, Section};
use dns_xdp::replication::tsig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let key = dns_xdp_fuzz::tsig_key();
    let keys = [key.clone()];
    match mode % 3 {
        0 => {
            let _ = tsig::verify_request(rest, &keys);
        }
        1 => {
            // `sign` is only given messages we built: rebuild the parsed one as our Builder would.
            let Some(parsed) = message::parse(rest) else { return };
            if parsed.additional.len() >= usize::from(u16::MAX) {
                return;
            }
            let question = parsed.question.as_ref().map(|(name, qtype, _)| (name, *qtype));
            let mut built = message::Builder::new(parsed.id, parsed.flags, question);
            let sections = [&parsed.answer, &parsed.authority, &parsed.additional];
            for (i, records) in sections.into_iter().enumerate() {
                for r in records {
                    if r.rdata.len() > usize::from(u16::MAX) {
                        return;
                    }
                    let section = [Section::Answer, Section::Authority, Section::Additional].into_iter().nth(i).expect("three");
                    built.push_raw(section, &r.owner, r.rtype, r.class, r.ttl, &r.rdata);
                }
            }
            let mut msg = built.buf;
            let mac = tsig::sign(&mut msg, &key, None);
            match tsig::verify_request(&msg, &keys) {
                Ok((_, got)) => assert_eq!(got, mac),
                Err(e) => panic!("a message we signed does not verify: {e}; {msg:02x?}"),
            }
        }
        _ => {
            let mut request = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 4, b't', b'e', b's', b't', 0, 0, 252, 0, 1];
            let request_mac = tsig::sign(&mut request, &key, None);
            let mut verifier = tsig::StreamVerifier::new(key, request_mac);
            for f in dns_xdp_fuzz::frames(rest) {
                if verifier.verify(f).is_err() {
                    return;
                }
            }
            let _ = verifier.finish();
        }
    }
});
