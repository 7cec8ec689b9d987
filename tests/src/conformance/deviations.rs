//! Deliberate differences from the reference servers, read from `deviations.txt`:
//! one per line, `GLOB | PART | reason`, where GLOB matches a query description (`*` is any text,
//! case-insensitive) and PART names what may differ: `rcode`, `flags`, `question`, `answer`,
//! `authority`, `additional`, `opt`, `response` (answered vs not answered) or `any`.

use dns_xdp::compare::{Normal, Scope, differences};

#[derive(Debug)]
pub struct Deviation {
    pub glob: String,
    pub part: String,
    pub reason: String,
    pub line: usize,
}

pub fn parse(text: &str) -> Vec<Deviation> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            let fields: Vec<&str> = l.splitn(3, '|').map(str::trim).collect();
            assert!(
                fields.len() == 3 && !fields[2].is_empty(),
                "deviations.txt:{}: want `GLOB | PART | reason`, got {l:?}",
                i + 1
            );
            Deviation {
                glob: fields[0].to_ascii_lowercase(),
                part: fields[1].to_owned(),
                reason: fields[2].to_owned(),
                line: i + 1,
            }
        })
        .collect()
}

/// `*`-only glob matching.
pub fn glob_match(glob: &str, text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == text;
    }
    let mut rest = text.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else { return false };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// The parts in which two outcomes differ (`None` = no response): `response`, or what
/// `dns_xdp::compare::differences` finds under its strict scope.
pub fn differing_parts(a: &Option<Normal>, b: &Option<Normal>) -> Vec<&'static str> {
    match (a, b) {
        (None, None) => vec![],
        (Some(a), Some(b)) => differences(a, b, Scope::Strict),
        _ => vec!["response"],
    }
}

/// The deviations that excuse every one of `parts` for the query `desc`, or `None`.
pub fn excuse<'d>(devs: &'d [Deviation], desc: &str, parts: &[&str]) -> Option<Vec<&'d Deviation>> {
    let matching: Vec<&Deviation> = devs.iter().filter(|d| glob_match(&d.glob, desc)).collect();
    let mut used = Vec::new();
    for part in parts {
        let d = matching.iter().find(|d| d.part == *part || d.part == "any")?;
        used.push(*d);
    }
    Some(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("udp * special: opcode*", "udp x special: opcode NOTIFY"));
        assert!(glob_match("*rrsig", "udp do www.secure.test. RRSIG"));
        assert!(!glob_match("*rrsig", "udp do www.secure.test. A"));
        assert!(glob_match("exact", "EXACT"));
    }
}
