//! Domain names as the daemon keeps them: uncompressed wire format, ASCII-lowercased.
//!
//! One representation everywhere (zone keys, lookups, BPF map keys) so comparisons are plain byte
//! comparisons; the original case of a query survives only in the question bytes we echo.

use std::borrow::Borrow;
use std::fmt;

/// A wire-format domain name (labels with length octets, ending with the root label), lowercased.
///
/// A boxed slice, not a `Vec`: a zone keeps one per name (millions), and a name never grows in
/// place, so the capacity word and any slack would be memory spent for nothing. Hash, Eq and Ord
/// are those of the wire bytes (`Box<[u8]>` forwards to `[u8]`), which `Borrow<[u8]>` relies on.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Box<[u8]>);

impl Name {
    pub fn root() -> Self {
        Name(Box::new([0]))
    }

    /// Builds a name from uncompressed wire bytes; `None` unless it is exactly one valid name.
    pub fn from_wire(wire: &[u8]) -> Option<Self> {
        let len = wire_name_len(wire)?;
        (len == wire.len()).then(|| Name(lowercase(wire).into_boxed_slice()))
    }

    /// Parses presentation format ("www.example.com." or relative to nothing: a trailing dot is
    /// implied). Escapes are not supported; used for configuration and tests.
    pub fn from_text(text: &str) -> Option<Self> {
        let text = text.strip_suffix('.').unwrap_or(text);
        let mut wire = Vec::with_capacity(text.len() + 2);
        if !text.is_empty() {
            for label in text.split('.') {
                if label.is_empty() || label.len() > 63 {
                    return None;
                }
                wire.push(label.len() as u8);
                wire.extend_from_slice(label.as_bytes());
            }
        }
        wire.push(0);
        (wire.len() <= 255).then(|| Name(lowercase(&wire).into_boxed_slice()))
    }

    pub fn as_wire(&self) -> &[u8] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// Number of labels, not counting the root label.
    pub fn label_count(&self) -> usize {
        self.suffix_offsets().count() - 1
    }

    /// Byte offsets at which each suffix starts: the name itself first, the root last.
    pub fn suffix_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let mut pos = Some(0usize);
        std::iter::from_fn(move || {
            let p = pos?;
            let len = self.0[p] as usize;
            pos = (len != 0).then_some(p + 1 + len);
            Some(p)
        })
    }

    /// The name with its first label removed; `None` for the root.
    pub fn parent(&self) -> Option<Name> {
        let len = self.0[0] as usize;
        (len != 0).then(|| Name(self.0[1 + len..].into()))
    }

    pub fn first_label(&self) -> &[u8] {
        let len = self.0[0] as usize;
        &self.0[1..1 + len]
    }

    pub fn is_wildcard(&self) -> bool {
        self.first_label() == b"*"
    }

    /// True when `self` equals `ancestor` or lies below it.
    pub fn is_subdomain_of(&self, ancestor: &Name) -> bool {
        self.0.len() >= ancestor.0.len()
            && self.0.ends_with(&ancestor.0)
            && self.suffix_offsets().any(|off| off == self.0.len() - ancestor.0.len())
    }

    /// `label` prepended to this name, if the result is still a legal name.
    pub fn prepend(&self, label: &[u8]) -> Option<Name> {
        if label.is_empty() || label.len() > 63 || self.0.len() + label.len() + 1 > 255 {
            return None;
        }
        let mut wire = Vec::with_capacity(self.0.len() + label.len() + 1);
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
        wire.extend_from_slice(&self.0);
        Some(Name(wire.into_boxed_slice()))
    }

    /// Replaces the suffix `old` (which `self` must be below) by `new` (DNAME substitution,
    /// RFC 6672 section 2.2); `None` if the result would exceed 255 bytes.
    pub fn replace_suffix(&self, old: &Name, new: &Name) -> Option<Name> {
        let keep = self.0.len() - old.0.len();
        if keep + new.0.len() > 255 {
            return None;
        }
        let mut wire = Vec::with_capacity(keep + new.0.len());
        wire.extend_from_slice(&self.0[..keep]);
        wire.extend_from_slice(&new.0);
        Some(Name(wire.into_boxed_slice()))
    }
}

// Lets hash maps keyed by `Name` be probed with a borrowed wire slice (no allocation).
impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        let mut pos = 0;
        while self.0[pos] != 0 {
            let len = self.0[pos] as usize;
            for &b in &self.0[pos + 1..pos + 1 + len] {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    write!(f, "{}", b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
            f.write_str(".")?;
            pos += 1 + len;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// ASCII-lowercases wire bytes. Length octets are < 0x40 and so never changed.
pub fn lowercase(wire: &[u8]) -> Vec<u8> {
    wire.iter().map(u8::to_ascii_lowercase).collect()
}

/// Length of the uncompressed name at the start of `wire`, or `None` if it is not a valid,
/// complete, uncompressed name of at most 255 bytes.
pub fn wire_name_len(wire: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let len = *wire.get(pos)? as usize;
        if len > 63 {
            return None;
        }
        pos += 1 + len;
        if pos > 255 {
            return None;
        }
        if len == 0 {
            return Some(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_case() {
        let n = Name::from_text("WWW.Example.COM.").unwrap();
        assert_eq!(n.as_wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(n.to_string(), "www.example.com.");
        assert_eq!(n.label_count(), 3);
        assert_eq!(Name::root().to_string(), ".");
    }

    #[test]
    fn subdomain_respects_label_boundaries() {
        let zone = Name::from_text("example.com").unwrap();
        assert!(Name::from_text("a.example.com").unwrap().is_subdomain_of(&zone));
        assert!(zone.is_subdomain_of(&zone));
        assert!(!Name::from_text("badexample.com").unwrap().is_subdomain_of(&zone));
        assert!(!Name::from_text("com").unwrap().is_subdomain_of(&zone));
    }

    #[test]
    fn wire_len_rejects_bad_names() {
        assert_eq!(wire_name_len(b"\x01a\x00rest"), Some(3));
        assert_eq!(wire_name_len(b"\x01a"), None);
        assert_eq!(wire_name_len(b"\xc0\x0c"), None);
        let mut long = Vec::new();
        for _ in 0..64 {
            long.extend_from_slice(b"\x03abc");
        }
        long.push(0);
        assert_eq!(wire_name_len(&long), None);
    }

    #[test]
    fn hashes_and_compares_as_its_wire_bytes() {
        // Maps keyed by Name are probed with &[u8] (Borrow): both must hash alike.
        use std::hash::BuildHasher;
        let n = Name::from_text("www.example.com").unwrap();
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(state.hash_one(&n), state.hash_one(n.as_wire()));
        let m = Name::from_text("example.com").unwrap();
        assert_eq!(n.cmp(&m), n.as_wire().cmp(m.as_wire()));
        assert_eq!(n.parent().unwrap().parent(), Some(Name::from_text("com").unwrap()));
        assert_eq!(m.prepend(b"WWW"), Some(n));
    }

    #[test]
    fn dname_substitution() {
        let q = Name::from_text("a.b.old.example").unwrap();
        let r =
            q.replace_suffix(&Name::from_text("old.example").unwrap(), &Name::from_text("new.test").unwrap()).unwrap();
        assert_eq!(r.to_string(), "a.b.new.test.");
    }
}
