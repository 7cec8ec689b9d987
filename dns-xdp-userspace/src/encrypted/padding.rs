//! EDNS(0) padding (RFC 7830) of answers over the encrypted transports, with the block-length
//! policy of RFC 8467 section 4.1: a response to a query that carried the padding option is padded
//! to a multiple of 468 octets, so its length says little about the name asked. Never over UDP or
//! plain TCP, where it would only cost bytes.

use super::message::{self, Record};

/// The EDNS option code of padding (RFC 7830 section 3).
pub const OPTION: u16 = 12;
/// Responses are padded to a multiple of this (RFC 8467 section 4.1).
pub const RESPONSE_BLOCK: usize = 468;
/// An option's code and length.
const OPTION_HEADER: usize = 4;

/// Whether `query`'s OPT record carries a padding option: only then is the answer padded
/// (RFC 7830 section 4: a server pads only responses to queries that asked for it).
fn asked(query: &[u8]) -> bool {
    let Some(records) = message::records(query) else { return false };
    let Some(opt) = message::opt(&records) else { return false };
    let mut rest = &query[opt.rdata.clone()];
    while rest.len() >= OPTION_HEADER {
        let code = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if code == OPTION {
            return true;
        }
        rest = rest.get(OPTION_HEADER + len..).unwrap_or_default();
    }
    false
}

/// Pads `reply` to the next multiple of `RESPONSE_BLOCK` when `query` asked for padding and the
/// reply's OPT record is its last record (a reply with a TSIG after it is left alone: padding
/// would break its signature).
pub fn pad(query: &[u8], reply: &mut Vec<u8>) {
    if !asked(query) {
        return;
    }
    let Some(records) = message::records(reply) else { return };
    let Some(Record { rdata, .. }) = records.last().filter(|r| Some(*r) == message::opt(&records)) else { return };
    let padding = (RESPONSE_BLOCK - (reply.len() + OPTION_HEADER) % RESPONSE_BLOCK) % RESPONSE_BLOCK;
    let rdlen = rdata.len() + OPTION_HEADER + padding;
    if reply.len() + OPTION_HEADER + padding > usize::from(u16::MAX) || rdlen > usize::from(u16::MAX) {
        return;
    }
    reply[rdata.start - 2..rdata.start].copy_from_slice(&(rdlen as u16).to_be_bytes());
    reply.extend_from_slice(&OPTION.to_be_bytes());
    reply.extend_from_slice(&(padding as u16).to_be_bytes());
    reply.resize(reply.len() + padding, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `a.` type A with an OPT record holding `options`.
    fn query(options: &[u8]) -> Vec<u8> {
        let mut q = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, b'a', 0, 0, 1, 0, 1];
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0]);
        q.extend_from_slice(&(options.len() as u16).to_be_bytes());
        q.extend_from_slice(options);
        q
    }

    #[test]
    fn pads_to_468_only_when_asked() {
        // The reply: the same message as a response with an empty OPT.
        let reply = query(&[]);
        let mut padded = reply.clone();
        pad(&query(&[0, 12, 0, 0]), &mut padded);
        assert_eq!(padded.len(), RESPONSE_BLOCK);
        let records = message::records(&padded).expect("still a message");
        let opt = message::opt(&records).expect("OPT");
        assert_eq!(opt.rdata.len(), RESPONSE_BLOCK - reply.len(), "the option grew the OPT's RDATA");
        assert_eq!(&padded[opt.rdata.start..opt.rdata.start + 2], &[0, 12]);

        let mut unasked = reply.clone();
        pad(&query(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]), &mut unasked);
        assert_eq!(unasked, reply, "a cookie is not a padding option");
        let mut no_edns = reply.clone();
        pad(&[0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1], &mut no_edns);
        assert_eq!(no_edns, reply);
    }

    #[test]
    fn a_reply_already_on_a_block_boundary_gets_an_empty_option_only_when_short() {
        // 468 - 4 bytes: the option header alone reaches the block.
        let mut reply = query(&[]);
        let filler = RESPONSE_BLOCK - OPTION_HEADER - reply.len();
        let mut opts = vec![0, 99];
        opts.extend_from_slice(&((filler - 4) as u16).to_be_bytes());
        opts.resize(filler, 0);
        reply = query(&opts);
        pad(&query(&[0, 12, 0, 0]), &mut reply);
        assert_eq!(reply.len(), RESPONSE_BLOCK);
        assert_eq!(&reply[RESPONSE_BLOCK - 4..], &[0, 12, 0, 0]);
    }
}
