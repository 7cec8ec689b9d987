//! The API's routes, behind the token check: the reads answered here (zones and their RRsets as
//! JSON), writes handed to write.rs with the zone they name.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, Response, Uri};
use serde_json::{Value, json};

use super::reply::{Reply, bad, reply};
use super::write::write;
use crate::name::Name;
use crate::replication::Replication;
use crate::zone::{Zone, type_name};

pub(super) async fn handle(
    State(repl): State<Arc<Replication>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response<Body> {
    let (status, value) = route(method.as_str(), uri.path(), &body, &repl).await;
    reply(status, &value)
}

async fn route(method: &str, path: &str, body: &[u8], repl: &Replication) -> Reply {
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
            match find_zone(repl, zone) {
                Ok(zone) => write(repl, &zone, &[change], false).await,
                Err(e) => e,
            }
        }
        ("POST", ["v1", "zones", zone, "batch"]) => {
            let changes = match serde_json::from_slice::<Value>(body) {
                Ok(v) => v.get("changes").and_then(Value::as_array).cloned(),
                Err(_) => None,
            };
            match changes {
                Some(c) if !c.is_empty() => match find_zone(repl, zone) {
                    Ok(zone) => write(repl, &zone, &c, true).await,
                    Err(e) => e,
                },
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

/// The served zone `zone` names: 400 when it is no name, 404 when we do not serve it.
/// `{"zones": [{"zone", "serial"}]}`, sorted by name.
fn zone_list(repl: &Replication) -> Value {
    let zones = repl.publisher.state.zones.load();
    let mut list: Vec<Value> =
        zones.iter().map(|z| json!({"zone": z.origin.to_string(), "serial": z.serial})).collect();
    list.sort_by_key(|v| v["zone"].as_str().unwrap_or("").to_string());
    json!({"zones": list})
}

fn find_zone(repl: &Replication, zone: &str) -> Result<Arc<Zone>, Reply> {
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
fn rdata_text(rt: u16, wire: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use dns_xdp_common::dns::rtype;

    use crate::zone::parse_records;

    #[test]
    fn rdata_in_presentation_format() {
        let o = Name::from_text("example.org").unwrap();
        assert_eq!(rdata_text(rtype::A, &[192, 0, 2, 1]), "192.0.2.1");
        let mx = parse_records("@ 60 IN MX 10 mail\n", &o).unwrap();
        assert_eq!(rdata_text(rtype::MX, &mx[0].rdata), "10 mail.example.org.");
        assert_eq!(rdata_text(rtype::A, &[192, 0, 2]), "\\# 3 c00002");
    }
}
