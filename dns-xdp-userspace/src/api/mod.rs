//! The control API on the primary (`--api IP:PORT`): HTTP/1.1 (optionally over TLS) with JSON bodies
//! and a bearer token. A write journals the change (fsync), publishes it, NOTIFYs the fleet and answers once
//! `--quorum` of the `--node`s serve the new serial (200) or the deadline passes (503; the change
//! stays and keeps propagating).
//!
//! - `GET /v1/zones`, `GET /v1/zones/{zone}`
//! - `PUT /v1/zones/{zone}/rrsets/{name}/{type}` with `{"ttl": 300, "rdata": ["192.0.2.1"]}`
//! - `DELETE /v1/zones/{zone}/rrsets/{name}/{type}`
//! - `POST /v1/zones/{zone}/batch` with `{"changes": [{"op": "put"|"delete", "name", "type",
//!   "ttl", "rdata"}]}`: all or nothing, one serial.
//! - `POST /v1/reload`: reread the zone files as SIGHUP does; 200 with the zones then served, or
//!   500 with the errors (the previous zones keep serving).
//!
//! `server` stacks the limits and the token check (`auth`) in front of `routes`, which answers
//! the reads and hands writes to `write`; `change` validates a change's JSON; `reply` shapes
//! every answer. None of them edits a zone: `zone::edit` makes the next version, `replication`
//! commits and confirms it.

mod auth;
mod change;
mod reply;
mod routes;
mod server;
mod write;

pub use change::FieldError;
pub(crate) use change::parse_change;
pub use server::serve;
