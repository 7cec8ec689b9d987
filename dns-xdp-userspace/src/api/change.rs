//! One change of a write request, as JSON (`{"op", "name", "type", "ttl", "rdata"}`), validated
//! into a `zone::edit::Change` for zone `origin`: the record data through the zone-file parser,
//! so the API accepts exactly what a zone file does. Knows no HTTP beyond the field at fault.

use std::str::FromStr as _;

use dns_xdp_common::dns::rtype;
use serde_json::{Value, json};

use crate::name::Name;
use crate::zone::edit::Change;
use crate::zone::{Record, parse_records, type_name};

/// A request the API refuses: which field (`changes[2].rdata[0]`) and why; answered 400.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl std::fmt::Display) -> FieldError {
        FieldError { field: field.to_string(), message: message.to_string() }
    }

    /// The response body.
    pub fn json(&self) -> Value {
        json!({"error": self.message, "field": self.field})
    }
}

/// Validates change `v`; `prefix` goes before the field names in errors (`changes[2].` in a batch).
pub fn parse_change(origin: &Name, v: &Value, prefix: &str) -> Result<Change, FieldError> {
    let field = |f: &str| format!("{prefix}{f}");
    let bad = |f: &str, message: String| FieldError { field: field(f), message };
    let text = |f: &str| v.get(f).and_then(Value::as_str).ok_or_else(|| bad(f, "expected a string".into()));
    let op = v.get("op").and_then(Value::as_str).ok_or_else(|| bad("op", "expected \"put\" or \"delete\"".into()))?;
    let name_text = text("name")?;
    let owner = owner_name(origin, name_text)
        .ok_or_else(|| bad("name", format!("{name_text:?} is not a name in zone {origin}")))?;
    let type_text = text("type")?;
    let rt = domain::base::iana::Rtype::from_str(&type_text.to_ascii_uppercase())
        .map_err(|_| bad("type", format!("unknown type {type_text:?}")))?
        .to_int();
    if matches!(
        rt,
        rtype::SOA
            | rtype::OPT
            | rtype::AXFR
            | rtype::IXFR
            | rtype::ANY
            | rtype::RRSIG
            | rtype::NSEC
            | rtype::NSEC3
            | rtype::TSIG
    ) {
        return Err(bad(
            "type",
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
                .ok_or_else(|| bad("ttl", "expected an integer from 0 to 2147483647".into()))?;
            let rdata = v
                .get("rdata")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| bad("rdata", "expected a non-empty array of strings".into()))?;
            let mut records = Vec::new();
            for (i, item) in rdata.iter().enumerate() {
                let f = format!("rdata[{i}]");
                let text = item.as_str().ok_or_else(|| bad(&f, "expected a string".into()))?;
                if text.contains(['\n', '\r', '(', ')']) || text.trim().is_empty() {
                    return Err(bad(&f, "one record's data on one line, without parentheses".into()));
                }
                // The zone-file parser validates the data, so the API accepts what a zone file does.
                let line = format!("{} {ttl} IN {} {text}\n", owner, type_name(rt));
                let parsed = parse_records(&line, origin).map_err(|e| bad(&f, e))?;
                match parsed.as_slice() {
                    [r] if r.owner == owner && r.rtype == rt => {
                        if records.iter().any(|x: &Record| x.rdata == r.rdata) {
                            return Err(bad(&f, "duplicate of an earlier rdata".into()));
                        }
                        records.push(r.clone());
                    }
                    _ => return Err(bad(&f, "not exactly one record of this type".into())),
                }
            }
            Ok(Change { owner, rtype: rt, records: Some(records) })
        }
        other => Err(bad("op", format!("{other:?} is neither \"put\" nor \"delete\""))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names() {
        let o = Name::from_text("example.org").unwrap();
        assert_eq!(owner_name(&o, "@"), Some(o.clone()));
        assert_eq!(owner_name(&o, "www").unwrap().to_string(), "www.example.org.");
        assert_eq!(owner_name(&o, "www.example.org.").unwrap().to_string(), "www.example.org.");
        assert_eq!(owner_name(&o, "www.example.com."), None);
    }

    #[test]
    fn invalid_changes_name_the_field() {
        let o = Name::from_text("example.org").unwrap();
        let err = |v: Value| parse_change(&o, &v, "").err().unwrap().field;
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
        assert_eq!(err(json!({"op": "delete", "name": "www", "type": "TSIG"})), "type");
        assert_eq!(
            err(
                json!({"op": "put", "name": "www", "type": "A", "ttl": 1, "rdata": ["192.0.2.1\nevil 1 IN A 192.0.2.9"]})
            ),
            "rdata[0]"
        );
        let batch = parse_change(&o, &json!({"op": "remove", "name": "www", "type": "A"}), "changes[3].");
        assert_eq!(
            batch.unwrap_err().json(),
            json!({"error": "\"remove\" is neither \"put\" nor \"delete\"", "field": "changes[3].op"})
        );
        assert!(
            parse_change(&o, &json!({"op": "put", "name": "www", "type": "txt", "ttl": 1, "rdata": ["\"a b\" c"]}), "")
                .is_ok()
        );
    }
}
