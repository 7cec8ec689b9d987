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

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::validate_request::{ValidateRequest, ValidateRequestHeaderLayer};

use crate::name::Name;
use crate::replication::{Replication, quorum};
use crate::zone::{
    Record, Zone, parse_records, rtype, soa_with_serial, type_name, zone_from_records, zone_with_rrsets,
};

/// Largest request body (a batch of changes); larger gets 413 before it is read.
pub const MAX_BODY: usize = 1 << 20;
/// Longest pause between two pieces of a request body (a client trickling its body).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests past the token check running at once; more wait for a slot (within the request timeout).
const MAX_IN_FLIGHT: usize = 64;
/// Open connections at once; past that, new ones are closed at accept. Each idle one is closed
/// after `http::HEAD_TIMEOUT`, so this only has to exceed what arrives within that time.
pub const MAX_CONNECTIONS: usize = 8192;
/// A request's whole run time beyond the quorum deadline (its body, a wait for a slot, the
/// journal fsync); past it the client gets 408. The write itself stays and keeps propagating.
const REQUEST_SLACK: Duration = Duration::from_secs(30);

pub async fn serve(listener: TcpListener, repl: Arc<Replication>, token: &str, tls: Option<TlsAcceptor>) {
    crate::http::serve(listener, router(repl, token), tls, MAX_CONNECTIONS, "API").await
}

/// The API with its limits, outermost first: request timeout (408), bearer token (401, before a
/// byte of the body is read), a slot among `MAX_IN_FLIGHT`, body pace, body size (413).
pub fn router(repl: Arc<Replication>, token: &str) -> Router {
    let request_timeout = repl.config.quorum_deadline + REQUEST_SLACK;
    Router::new()
        .fallback(handle)
        .with_state(repl)
        // The size limit innermost, so a body cut off at the limit reaches the handler as 413.
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .layer(ValidateRequestHeaderLayer::custom(Bearer::new(token)))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
}

/// Checks `Authorization: Bearer TOKEN` (the scheme is case-insensitive, RFC 9110 section 11.1).
/// Both sides are hashed first and the digests compared in constant time, so neither the position
/// of the first wrong byte nor the token's length shows in the time taken.
#[derive(Clone)]
struct Bearer {
    digest: Arc<[u8; 32]>,
}

impl Bearer {
    fn new(token: &str) -> Bearer {
        Bearer { digest: Arc::new(sha256(token.as_bytes())) }
    }

    fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization.map(HeaderValue::as_bytes) else { return false };
        let Some(space) = value.iter().position(|b| *b == b' ') else { return false };
        let (scheme, credentials) = value.split_at(space);
        let credentials = credentials.trim_ascii();
        // Evaluated whatever the scheme, so a wrong scheme takes the time of a wrong token.
        let digest_matches: bool = sha256(credentials).ct_eq(&self.digest[..]).into();
        scheme.eq_ignore_ascii_case(b"bearer") & digest_matches
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

impl<B> ValidateRequest<B> for Bearer {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Body>> {
        if self.accepts(request.headers().get(header::AUTHORIZATION)) {
            return Ok(());
        }
        let mut response = reply(401, &json!({"error": "missing or wrong bearer token"}));
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(response)
    }
}

async fn handle(State(repl): State<Arc<Replication>>, method: Method, uri: Uri, body: Bytes) -> Response<Body> {
    let (status, value) = route(method.as_str(), uri.path(), &body, &repl).await;
    reply(status, &value)
}

fn reply(status: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn bad(field: &str, message: impl std::fmt::Display) -> (u16, Value) {
    (400, json!({"error": message.to_string(), "field": field}))
}

/// The routes, behind the token check.
async fn route(method: &str, path: &str, body: &[u8], repl: &Replication) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["v1", "zones"]) => (200, zone_list(repl)),
        ("GET", ["v1", "zones", zone]) => match find_zone(repl, zone) {
            Ok(z) => (200, zone_json(&z)),
            Err(e) => e,
        },
        ("PUT" | "DELETE", ["v1", "zones", zone, "rrsets", name, rtype_text]) => {
            let op = if method == "PUT" { "put" } else { "delete" };
            let mut change = if op == "put" {
                match serde_json::from_slice::<Value>(body) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => return bad("body", "expected a JSON object {\"ttl\": N, \"rdata\": [...]}"),
                }
            } else {
                json!({})
            };
            change["op"] = json!(op);
            change["name"] = json!(name);
            change["type"] = json!(rtype_text);
            write(repl, zone, &[change], false).await
        }
        ("POST", ["v1", "zones", zone, "batch"]) => {
            let changes = match serde_json::from_slice::<Value>(body) {
                Ok(v) => v.get("changes").and_then(Value::as_array).cloned(),
                Err(_) => None,
            };
            match changes {
                Some(c) if !c.is_empty() => write(repl, zone, &c, true).await,
                _ => bad("changes", "expected {\"changes\": [...]} with at least one change"),
            }
        }
        ("POST", ["v1", "reload"]) => match repl.reload().await {
            Ok(()) => (200, zone_list(repl)),
            Err(err) => (500, json!({"error": err})),
        },
        (_, ["v1", ..]) => (405, json!({"error": format!("{method} {path} is not supported")})),
        _ => (404, json!({"error": "not found"})),
    }
}

/// `{"zones": [{"zone", "serial"}]}`, sorted by name.
fn zone_list(repl: &Replication) -> Value {
    let zones = repl.publisher.state.zones.load();
    let mut list: Vec<Value> =
        zones.iter().map(|z| json!({"zone": z.origin.to_string(), "serial": z.serial})).collect();
    list.sort_by_key(|v| v["zone"].as_str().unwrap_or("").to_string());
    json!({"zones": list})
}

fn find_zone(repl: &Replication, zone: &str) -> Result<Arc<Zone>, (u16, Value)> {
    let name = Name::from_text(zone).ok_or_else(|| bad("zone", format!("{zone:?} is not a domain name")))?;
    repl.current(&name)
        .ok_or_else(|| (404, json!({"error": format!("zone {name} is not served here"), "field": "zone"})))
}

fn zone_json(zone: &Zone) -> Value {
    let mut all = vec![zone.soa_record()];
    all.extend(zone.records());
    let mut sets: Vec<Value> = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let (owner, rt) = (&all[i].owner, all[i].rtype);
        let mut rdata = Vec::new();
        let ttl = all[i].ttl;
        while i < all.len() && all[i].owner == *owner && all[i].rtype == rt {
            rdata.push(rdata_text(rt, &all[i].rdata));
            i += 1;
        }
        sets.push(json!({"name": owner.to_string(), "type": type_name(rt), "ttl": ttl, "rdata": rdata}));
    }
    json!({"zone": zone.origin.to_string(), "serial": zone.serial, "rrsets": sets})
}

/// RDATA in presentation format, through `domain` (the parser's own inverse).
pub fn rdata_text(rt: u16, wire: &[u8]) -> String {
    use domain::base::ParsedName;
    use domain::base::rdata::ParseAnyRecordData;
    use domain::rdata::AllRecordData;
    let mut parser = domain::dep::octseq::Parser::from_ref(wire);
    match AllRecordData::<&[u8], ParsedName<&[u8]>>::parse_any_rdata(
        domain::base::iana::Rtype::from_int(rt),
        &mut parser,
    ) {
        Ok(data) => data.to_string(),
        Err(_) => format!("\\# {} {}", wire.len(), wire.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

/// One validated change: replace (`Some`) or delete (`None`) the RRset at (owner, type).
pub(crate) struct Change {
    pub(crate) owner: Name,
    pub(crate) rtype: u16,
    pub(crate) records: Option<Vec<Record>>,
}

pub(crate) fn parse_change(origin: &Name, v: &Value, prefix: &str) -> Result<Change, (u16, Value)> {
    let field = |f: &str| format!("{prefix}{f}");
    let op = v.get("op").and_then(Value::as_str).ok_or_else(|| bad(&field("op"), "expected \"put\" or \"delete\""))?;
    let name_text = v.get("name").and_then(Value::as_str).ok_or_else(|| bad(&field("name"), "expected a string"))?;
    let owner = owner_name(origin, name_text)
        .ok_or_else(|| bad(&field("name"), format!("{name_text:?} is not a name in zone {origin}")))?;
    let type_text = v.get("type").and_then(Value::as_str).ok_or_else(|| bad(&field("type"), "expected a string"))?;
    let rt = domain::base::iana::Rtype::from_str(&type_text.to_ascii_uppercase())
        .map_err(|_| bad(&field("type"), format!("unknown type {type_text:?}")))?
        .to_int();
    if matches!(
        rt,
        rtype::SOA | rtype::OPT | rtype::AXFR | rtype::IXFR | rtype::ANY | rtype::RRSIG | rtype::NSEC | rtype::NSEC3
    ) || rt == 250
    {
        return Err(bad(
            &field("type"),
            format!("{type_text} records are not changed through the API (the SOA serial is managed by the server)"),
        ));
    }
    match op {
        "delete" => Ok(Change { owner, rtype: rt, records: None }),
        "put" => {
            let ttl = v
                .get("ttl")
                .and_then(Value::as_u64)
                .filter(|t| *t <= i32::MAX as u64)
                .ok_or_else(|| bad(&field("ttl"), "expected an integer from 0 to 2147483647"))?;
            let rdata = v
                .get("rdata")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| bad(&field("rdata"), "expected a non-empty array of strings"))?;
            let mut records = Vec::new();
            for (i, item) in rdata.iter().enumerate() {
                let f = field(&format!("rdata[{i}]"));
                let text = item.as_str().ok_or_else(|| bad(&f, "expected a string"))?;
                if text.contains(['\n', '\r', '(', ')']) || text.trim().is_empty() {
                    return Err(bad(&f, "one record's data on one line, without parentheses"));
                }
                // The zone-file parser validates the data, so the API accepts what a zone file does.
                let line = format!("{} {ttl} IN {} {text}\n", owner, type_name(rt));
                let parsed = parse_records(&line, origin).map_err(|e| bad(&f, e))?;
                match parsed.as_slice() {
                    [r] if r.owner == owner && r.rtype == rt => {
                        if records.iter().any(|x: &Record| x.rdata == r.rdata) {
                            return Err(bad(&f, "duplicate of an earlier rdata"));
                        }
                        records.push(r.clone());
                    }
                    _ => return Err(bad(&f, "not exactly one record of this type")),
                }
            }
            Ok(Change { owner, rtype: rt, records: Some(records) })
        }
        other => Err(bad(&field("op"), format!("{other:?} is neither \"put\" nor \"delete\""))),
    }
}

/// `@` is the apex; a name ending in a dot is absolute; anything else is relative to the zone.
fn owner_name(origin: &Name, text: &str) -> Option<Name> {
    let name = if text == "@" {
        origin.clone()
    } else if text.ends_with('.') {
        Name::from_text(text)?
    } else {
        let o = origin.to_string();
        Name::from_text(&format!("{text}.{}", o.trim_end_matches('.')))?
    };
    name.is_subdomain_of(origin).then_some(name)
}

async fn write(repl: &Replication, zone: &str, changes: &[Value], batch: bool) -> (u16, Value) {
    let current = match find_zone(repl, zone) {
        Ok(z) => z,
        Err(e) => return e,
    };
    if repl.is_secondary(&current.origin) {
        return bad("zone", format!("zone {} is a secondary here; write to its primary", current.origin));
    }
    let origin = current.origin.clone();
    let mut parsed = Vec::new();
    for (i, v) in changes.iter().enumerate() {
        let prefix = if batch { format!("changes[{i}].") } else { String::new() };
        match parse_change(&origin, v, &prefix) {
            Ok(c) => parsed.push(c),
            Err(e) => return e,
        }
    }
    let (serial, soa) = {
        let _guard = repl.write.lock().await;
        let Some(current) = repl.current(&origin) else { return (404, json!({"error": "zone went away"})) };
        let serial = current.serial.wrapping_add(1);
        let started = std::time::Instant::now();
        let source = format!("API change to {origin}");
        // Puts of ordinary RRsets: copy only what they touch. Anything else (deletions, zone-wide
        // types, signed zones, CNAME conflicts) goes through the whole rebuild below.
        let puts: Option<Vec<(Name, u16, Vec<Record>)>> = parsed
            .iter()
            .map(|c| c.records.clone().filter(|r| !r.is_empty()).map(|r| (c.owner.clone(), c.rtype, r)))
            .collect();
        let narrow = puts.and_then(|puts| zone_with_rrsets(&source, &current, &puts, serial));
        let rebuilt = match narrow {
            Some(zone) => Ok(zone),
            None => {
                // As served, not sorted: the RRsets this write leaves alone must come out
                // identical, since only the touched ones are recompiled for the kernel.
                let mut records = current.records_as_served();
                for (i, c) in parsed.iter().enumerate() {
                    let before = records.len();
                    records.retain(|r| !(r.owner == c.owner && r.rtype == c.rtype));
                    match &c.records {
                        Some(new) => records.extend(new.iter().cloned()),
                        None if before == records.len() => {
                            let f = if batch { format!("changes[{i}].name") } else { "name".into() };
                            return if batch {
                                bad(&f, format!("no {} RRset at {}", type_name(c.rtype), c.owner))
                            } else {
                                (
                                    404,
                                    json!({"error": format!("no {} RRset at {}", type_name(c.rtype), c.owner), "field": "name"}),
                                )
                            };
                        }
                        None => {}
                    }
                }
                let soa = current.soa_record();
                records.push(Record { rdata: soa_with_serial(&soa.rdata, serial), ..soa });
                zone_from_records(&source, records)
            }
        };
        let new = match rebuilt {
            Ok(z) => z,
            Err(diags) => {
                let msg = diags.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; ");
                return bad(if batch { "changes" } else { "rdata" }, msg);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_and_rdata_text() {
        let o = Name::from_text("example.org").unwrap();
        assert_eq!(owner_name(&o, "@"), Some(o.clone()));
        assert_eq!(owner_name(&o, "www").unwrap().to_string(), "www.example.org.");
        assert_eq!(owner_name(&o, "www.example.org.").unwrap().to_string(), "www.example.org.");
        assert_eq!(owner_name(&o, "www.example.com."), None);
        assert_eq!(rdata_text(rtype::A, &[192, 0, 2, 1]), "192.0.2.1");
        let mx = parse_records("@ 60 IN MX 10 mail\n", &o).unwrap();
        assert_eq!(rdata_text(rtype::MX, &mx[0].rdata), "10 mail.example.org.");
    }

    #[test]
    fn invalid_changes_name_the_field() {
        let o = Name::from_text("example.org").unwrap();
        let err = |v: Value| parse_change(&o, &v, "").err().unwrap().1["field"].as_str().unwrap().to_string();
        assert_eq!(
            err(json!({"op": "put", "name": "www", "type": "A", "ttl": 60, "rdata": ["192.0.2.300"]})),
            "rdata[0]"
        );
        assert_eq!(err(json!({"op": "put", "name": "www", "type": "BOGUS", "ttl": 60, "rdata": ["x"]})), "type");
        assert_eq!(err(json!({"op": "put", "name": "www", "type": "A", "ttl": -1, "rdata": ["192.0.2.1"]})), "ttl");
        assert_eq!(
            err(json!({"op": "put", "name": "x.other.", "type": "A", "ttl": 1, "rdata": ["192.0.2.1"]})),
            "name"
        );
        assert_eq!(
            err(json!({"op": "put", "name": "www", "type": "SOA", "ttl": 1, "rdata": ["a b 1 2 3 4 5"]})),
            "type"
        );
        assert_eq!(
            err(
                json!({"op": "put", "name": "www", "type": "A", "ttl": 1, "rdata": ["192.0.2.1\nevil 1 IN A 192.0.2.9"]})
            ),
            "rdata[0]"
        );
        assert!(
            parse_change(&o, &json!({"op": "put", "name": "www", "type": "txt", "ttl": 1, "rdata": ["\"a b\" c"]}), "")
                .is_ok()
        );
    }
}
