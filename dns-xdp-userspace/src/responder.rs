//! One query through the daemon, the same for UDP, TCP and the encrypted transports: replication's
//! messages (NOTIFY, zone transfers) go to replication, the rest to the zone logic (respond.rs) with
//! the client's cookie; answers are offered to shadow validation and counted by transport, over UDP
//! pass the rate limiter, and over TLS, HTTPS and QUIC are padded (RFC 8467). The listeners
//! (slowpath.rs for UDP, tcp.rs, encrypted/) only move bytes. Owns that order; calls answer,
//! replication, shadow, rrl and the state's counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::replication::{Replication, Replies};
use crate::respond::{Client, Transport, handle_from};
use crate::rrl::{self, Decision, Limiter};
use crate::shadow::Shadow;
use crate::state::State;
use crate::wire::{self, Parsed};

/// Everything a listener needs to answer, complete before the first listener starts.
pub struct Responder {
    pub state: Arc<State>,
    /// Zone transfers and NOTIFY: the listeners hand those messages over.
    pub replication: Arc<Replication>,
    /// Shadow validation, when `--shadow-reference` is set.
    pub shadow: Option<Arc<Shadow>>,
    /// Response rate limiting, applied to UDP only: a TCP client's address cannot be spoofed, and
    /// TCP is where slips send real clients.
    pub limiter: Arc<Limiter>,
}

/// What to send back for one query.
pub enum Outcome {
    /// One DNS response.
    Reply(Vec<u8>),
    /// Replication's messages, in order: a NOTIFY or SOA answer, or a zone transfer's stream
    /// (rendered as it is taken).
    Messages(Replies),
    /// Nothing: the rate limiter held the answer back, or the source port is one that only
    /// reflection attacks use (both counted by the limiter).
    Withheld,
    /// Nothing: not a query we can answer (counted as dropped). TCP closes the connection.
    Dropped,
}

impl Responder {
    /// Answers the DNS message `query` from `peer`.
    pub fn respond(&self, query: &[u8], peer: SocketAddr, transport: Transport) -> Outcome {
        let udp = transport == Transport::Udp;
        if udp && rrl::reflection_port(peer.port()) {
            self.limiter.counters.reflection.fetch_add(1, Relaxed);
            return Outcome::Withheld;
        }
        if let Some(replies) = self.replication.intercept(query, peer, !udp) {
            if !udp {
                return Outcome::Messages(replies);
            }
            // NOTIFY answers (and refusals) are responses like any other: a spoofed flood must
            // not be reflected at full rate (BIND's RRL limits every UDP response the same way).
            let limited: Vec<_> = replies.filter_map(|reply| self.limit_message(peer, reply)).collect();
            return Outcome::Messages(Replies::Ready(limited.into_iter()));
        }
        let state = &self.state;
        let zones = state.zones.load();
        let client = Client { ip: peer.ip(), cookies: &state.cookies };
        let (payload, chaos, demand) = (state.edns_payload, &state.chaos, Some(&*state.demand));
        let Some(mut reply) = handle_from(&zones, query, transport, payload, chaos, Some(client), demand) else {
            state.metrics.queries_dropped.fetch_add(1, Relaxed);
            return Outcome::Dropped;
        };
        if let Some(shadow) = &self.shadow {
            shadow.sample_answer(query, &reply.bytes, transport, peer);
        }
        if udp && self.limiter.is_on() {
            match self.limiter.check(peer.ip(), rrl::rrl_key(&reply.bytes), reply.server_cookie) {
                Decision::Send => {}
                Decision::Drop => return Outcome::Withheld,
                Decision::Slip => {
                    let edns = match wire::parse_query(query) {
                        Parsed::Query(q) => q.edns,
                        _ => None,
                    };
                    match rrl::slip(&reply.bytes, edns, reply.rcode, state.edns_payload) {
                        Some(bytes) => reply.bytes = bytes,
                        None => return Outcome::Withheld,
                    }
                }
            }
        }
        if transport.encrypted() {
            crate::encrypted::padding::pad(query, &mut reply.bytes);
        }
        state.metrics.count_response(transport, reply.rcode);
        Outcome::Reply(reply.bytes)
    }

    /// A replication message to `peer` over UDP as the rate limiter decides: as is, slipped
    /// (TC=1) or not at all.
    fn limit_message(&self, peer: SocketAddr, reply: Vec<u8>) -> Option<Vec<u8>> {
        if !self.limiter.is_on() {
            return Some(reply);
        }
        match self.limiter.check(peer.ip(), rrl::rrl_key(&reply), false) {
            Decision::Send => Some(reply),
            Decision::Drop => None,
            Decision::Slip => {
                rrl::slip(&reply, None, u16::from(reply.get(3).map_or(0, |b| b & 0xf)), self.state.edns_payload)
            }
        }
    }
}
