//! TSIG verification (RFC 8945, `domain`'s implementation behind replication/tsig.rs): signed
//! requests as NOTIFY and transfer requests are checked, and transfer response streams.
//!
//! The first byte picks the mode, the rest is the input:
//! - 0: the rest as a signed request from a peer; verification must not panic, and a refusal
//!   always carries a reply;
//! - 1: the rest as an unsigned request (no TSIG record yet), signed with our key: it must verify
//!   (round trip), and
//!   the answer we sign for it must verify on the client side;
//! - 2: the rest as TCP-framed responses to a request we signed, through the stream verifier.
#![no_main]

use dns_xdp::replication::tsig;
use dns_xdp_common::dns::rtype;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let key = dns_xdp_fuzz::tsig_key();
    let keys = [key.clone()];
    let peer = std::net::IpAddr::from([192, 0, 2, 1]);
    let now = tsig::now();
    let request = || {
        vec![
            0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 4, b't', b'e', b's',
            b't', 0, 0, 252, 0, 1,
        ]
    };
    match mode % 3 {
        0 => {
            if let Err(refusal) = tsig::verify_request(rest, &keys, peer, now) {
                assert!(!refusal.reply.is_empty() || rest.len() < 12, "a refusal without a reply: {}", refusal.reason);
            }
        }
        1 => {
            // Only messages that parse and carry no TSIG yet can be signed: ours never do.
            let Some(parsed) = dns_xdp::replication::message::parse(rest) else { return };
            let sections = [&parsed.answer, &parsed.authority, &parsed.additional];
            if sections.iter().any(|s| s.iter().any(|r| r.rtype == rtype::TSIG)) {
                return;
            }
            let mut msg = rest.to_vec();
            let Ok(mut client) = tsig::sign_request(&mut msg, &key, now) else { return };
            let mut verified = match tsig::verify_request(&msg, &keys, peer, now) {
                Ok(v) => v,
                Err(r) => panic!("a message we signed does not verify: {}; {msg:02x?}", r.reason),
            };
            // Our answer: the request with QR set, signed over the request's MAC.
            let mut answer = request();
            answer[..2].copy_from_slice(&msg[..2]);
            answer[2] |= 0x80;
            if verified.sign(&mut answer, now).is_ok() {
                let _ = client.verify(&answer, now);
            }
        }
        _ => {
            let mut msg = request();
            let Ok(mut verifier) = tsig::sign_request(&mut msg, &key, now) else { return };
            for f in dns_xdp_fuzz::frames(rest) {
                if verifier.verify(f, now).is_err() {
                    return;
                }
            }
            let _ = verifier.finish();
        }
    }
});
