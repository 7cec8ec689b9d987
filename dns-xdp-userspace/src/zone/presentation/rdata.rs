//! The RDATA parsers of the types `domain` cannot read: presentation fields in, wire RDATA out
//! (each type's RFC cited at its parser). mod.rs finds the entries and the fields; `PARSERS` maps
//! each type to its function here.

use super::*;

/// A DNSSEC algorithm (RFC 8624 section 3.1 mnemonics, as Knot and BIND write them) or its number.
pub(super) fn algorithm(f: &mut Fields<'_, '_>) -> Result<u8, String> {
    const NAMES: &[(&str, u8)] = &[
        ("RSAMD5", 1),
        ("DH", 2),
        ("DSA", 3),
        ("RSASHA1", 5),
        ("DSA-NSEC3-SHA1", 6),
        ("RSASHA1-NSEC3-SHA1", 7),
        ("RSASHA256", 8),
        ("RSASHA512", 10),
        ("ECC-GOST", 12),
        ("ECDSAP256SHA256", 13),
        ("ECDSAP384SHA384", 14),
        ("ED25519", 15),
        ("ED448", 16),
        ("INDIRECT", 252),
        ("PRIVATEDNS", 253),
        ("PRIVATEOID", 254),
    ];
    let text = f.text("algorithm")?;
    match NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(&text)) {
        Some(&(_, number)) => Ok(number),
        None => parse_int(&text, "algorithm"),
    }
}

/// AFSDB (RFC 1183 section 1): subtype, hostname.
pub(super) fn afsdb(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.int::<u16>("subtype")?.to_be_bytes());
    out.extend_from_slice(&f.name("hostname")?);
    Ok(())
}

/// RT (RFC 1183 section 3.3), KX (RFC 2230 section 3.1), LP (RFC 6742 section 2.4):
/// preference, name.
pub(super) fn preference_and_name(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.int::<u16>("preference")?.to_be_bytes());
    out.extend_from_slice(&f.name("name")?);
    Ok(())
}

/// PX (RFC 2163 section 4): preference, MAP822, MAPX400.
pub(super) fn px(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.int::<u16>("preference")?.to_be_bytes());
    out.extend_from_slice(&f.name("MAP822")?);
    out.extend_from_slice(&f.name("MAPX400")?);
    Ok(())
}

/// KEY (RFC 2535 section 7.1, RFC 3445): flags, protocol, algorithm, key (base64, may be absent).
pub(super) fn key(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.int::<u16>("flags")?.to_be_bytes());
    out.push(f.int("protocol")?);
    out.push(algorithm(f)?);
    out.extend_from_slice(&f.base64_rest("public key", true)?);
    Ok(())
}

/// CERT (RFC 4398 section 2.2): type (mnemonic or number), key tag, algorithm, base64 data.
pub(super) fn cert(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    const TYPES: &[(&str, u16)] = &[
        ("PKIX", 1),
        ("SPKI", 2),
        ("PGP", 3),
        ("IPKIX", 4),
        ("ISPKI", 5),
        ("IPGP", 6),
        ("ACPKIX", 7),
        ("IACPKIX", 8),
        ("URI", 253),
        ("OID", 254),
    ];
    let text = f.text("certificate type")?;
    let cert_type = match TYPES.iter().find(|(name, _)| name.eq_ignore_ascii_case(&text)) {
        Some(&(_, number)) => number,
        None => parse_int(&text, "certificate type")?,
    };
    out.extend_from_slice(&cert_type.to_be_bytes());
    out.extend_from_slice(&f.int::<u16>("key tag")?.to_be_bytes());
    out.push(algorithm(f)?);
    out.extend_from_slice(&f.base64_rest("certificate", false)?);
    Ok(())
}

/// DHCID (RFC 4701 section 3.4): the whole RDATA in base64.
pub(super) fn dhcid(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.base64_rest("digest", false)?);
    Ok(())
}

/// SMIMEA (RFC 8162 section 2.1, TLSA's format): usage, selector, matching type, hex data.
pub(super) fn smimea(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.push(f.int("certificate usage")?);
    out.push(f.int("selector")?);
    out.push(f.int("matching type")?);
    out.extend_from_slice(&f.hex_rest("certificate association data")?);
    Ok(())
}

/// HIP (RFC 8005 section 5): algorithm, HIT (hex), public key (base64, one token), rendezvous
/// servers. The wire format puts the lengths first.
pub(super) fn hip(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    let algorithm: u8 = f.int("PK algorithm")?;
    let hit = decode_hex(&f.text("HIT")?, "HIT")?;
    let hit_len = u8::try_from(hit.len()).map_err(|_| "HIT longer than 255 bytes".to_string())?;
    let public_key = decode_base64(&f.text("public key")?, "public key")?;
    let key_len = u16::try_from(public_key.len()).map_err(|_| "public key too long".to_string())?;
    if hit.is_empty() || public_key.is_empty() {
        return Err("HIT and public key must not be empty".into());
    }
    out.push(hit_len);
    out.push(algorithm);
    out.extend_from_slice(&key_len.to_be_bytes());
    out.extend_from_slice(&hit);
    out.extend_from_slice(&public_key);
    while !f.is_done() {
        out.extend_from_slice(&f.name("rendezvous server")?);
    }
    Ok(())
}

/// CSYNC (RFC 7477 section 2.1.1): SOA serial, flags, type bitmap.
pub(super) fn csync(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.int::<u32>("SOA serial")?.to_be_bytes());
    out.extend_from_slice(&f.int::<u16>("flags")?.to_be_bytes());
    let mut types = Vec::new();
    while !f.is_done() {
        let text = f.text("type")?;
        let rtype = Rtype::from_str(&text).map_err(|_| format!("unknown type {text} in the type bitmap"))?;
        types.push(rtype.to_int());
    }
    type_bitmap(&mut types, out);
    Ok(())
}

/// An NSEC-style type bitmap (RFC 4034 section 4.1.2): per 256-type window its number, length
/// and bits, trailing zero bytes left out.
pub(super) fn type_bitmap(types: &mut Vec<u16>, out: &mut Vec<u8>) {
    types.sort_unstable();
    types.dedup();
    let mut i = 0;
    while i < types.len() {
        let window = (types[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while i < types.len() && (types[i] >> 8) as u8 == window {
            let low = (types[i] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
}

/// SPF (RFC 4408 section 3.1.1, TXT's format): one or more character-strings.
pub(super) fn spf(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    if f.is_done() {
        return Err("missing text".into());
    }
    while !f.is_done() {
        let text = f.char_string("text")?;
        let len = u8::try_from(text.len()).map_err(|_| format!("a string of {} bytes exceeds 255", text.len()))?;
        out.push(len);
        out.extend_from_slice(&text);
    }
    Ok(())
}

/// NID and L64 (RFC 6742 sections 2.1 and 2.3): preference, 64 bits as four colon-separated
/// groups of four hex digits.
pub(super) fn nid_l64(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.int::<u16>("preference")?.to_be_bytes());
    let text = f.text("identifier")?;
    let groups: Vec<&str> = text.split(':').collect();
    if groups.len() != 4 || groups.iter().any(|g| g.len() != 4) {
        return Err(format!("{text} is not four groups of four hex digits (0014:4fff:ff20:ee64)"));
    }
    for group in groups {
        let value = u16::from_str_radix(group, 16).map_err(|_| format!("{text} is not hex"))?;
        out.extend_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

/// L32 (RFC 6742 section 2.2): preference, IPv4 locator.
pub(super) fn l32(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.int::<u16>("preference")?.to_be_bytes());
    let text = f.text("locator")?;
    let addr = Ipv4Addr::from_str(&text).map_err(|_| format!("locator {text} is not an IPv4 address"))?;
    out.extend_from_slice(&addr.octets());
    Ok(())
}

/// EUI48 and EUI64 (RFC 7043 sections 3.2 and 4.2): hex pairs joined by hyphens.
pub(super) fn eui48(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    eui(f, out, 6)
}

pub(super) fn eui64(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    eui(f, out, 8)
}

pub(super) fn eui(f: &mut Fields<'_, '_>, out: &mut Vec<u8>, len: usize) -> Result<(), String> {
    let text = f.text("address")?;
    let pairs: Vec<&str> = text.split('-').collect();
    if pairs.len() != len || pairs.iter().any(|p| p.len() != 2) {
        return Err(format!("{text} is not {len} hex pairs joined by hyphens"));
    }
    for pair in pairs {
        out.push(u8::from_str_radix(pair, 16).map_err(|_| format!("{text} is not hex"))?);
    }
    Ok(())
}

/// URI (RFC 7553 section 4.5): priority, weight, target (the rest of the RDATA, no length byte).
pub(super) fn uri(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.int::<u16>("priority")?.to_be_bytes());
    out.extend_from_slice(&f.int::<u16>("weight")?.to_be_bytes());
    let target = f.char_string("target")?;
    if target.is_empty() {
        return Err("empty target".into());
    }
    out.extend_from_slice(&target);
    Ok(())
}

/// APL (RFC 3123 section 4): `[!]afi:address/prefix` items; on the wire each address without
/// its trailing zero bytes.
pub(super) fn apl(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    while !f.is_done() {
        let text = f.text("APL item")?;
        let (negated, item) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let bad = || format!("{text} is not [!]afi:address/prefix");
        let (family, rest) = item.split_once(':').ok_or_else(bad)?;
        let (address, prefix) = rest.rsplit_once('/').ok_or_else(bad)?;
        let prefix: u8 = parse_int(prefix, "prefix")?;
        let (family, mut bytes, max) = match family {
            "1" => (1u16, Ipv4Addr::from_str(address).map_err(|_| bad())?.octets().to_vec(), 32),
            "2" => (2u16, Ipv6Addr::from_str(address).map_err(|_| bad())?.octets().to_vec(), 128),
            _ => return Err(format!("{text}: address family {family} is neither 1 (IPv4) nor 2 (IPv6)")),
        };
        if prefix > max {
            return Err(format!("{text}: prefix longer than {max}"));
        }
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        out.extend_from_slice(&family.to_be_bytes());
        out.push(prefix);
        out.push(u8::from(negated) << 7 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    Ok(())
}

/// LOC (RFC 1876 section 3): `d1 [m1 [s1]] N|S d2 [m2 [s2]] E|W alt[m] [siz[m] [hp[m] [vp[m]]]]`.
pub(super) fn loc(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    /// Centimetres the altitude is counted from: 100 000 m below the WGS 84 spheroid.
    const ALTITUDE_BASE_CM: i64 = 10_000_000;
    /// Defaults of the optional fields (RFC 1876 section 3): 1 m, 10 000 m, 10 m.
    const DEFAULTS_CM: [u64; 3] = [100, 1_000_000, 1_000];
    /// Largest size or precision: 90 000 000.00 m, 9e9 cm as mantissa 9, exponent 9.
    const MAX_PRECISION_CM: u64 = 9_000_000_000;
    let latitude = loc_angle(f, ["N", "S"], 90, "latitude")?;
    let longitude = loc_angle(f, ["E", "W"], 180, "longitude")?;
    let altitude = f.text("altitude")?;
    let (negative, cm) = decimal(strip_metres(&altitude), 2).ok_or_else(|| format!("bad altitude {altitude}"))?;
    let above_base = i64::try_from(cm)
        .ok()
        .and_then(|cm| if negative { ALTITUDE_BASE_CM.checked_sub(cm) } else { ALTITUDE_BASE_CM.checked_add(cm) });
    let altitude_wire = above_base
        .and_then(|cm| u32::try_from(cm).ok())
        .ok_or_else(|| format!("altitude {altitude} is outside -100000.00m..42849672.95m"))?;
    let mut precisions = [0u8; 3];
    for (i, what) in ["size", "horizontal precision", "vertical precision"].into_iter().enumerate() {
        let cm = if f.is_done() {
            DEFAULTS_CM[i]
        } else {
            let text = f.text(what)?;
            match decimal(strip_metres(&text), 2) {
                Some((false, cm)) if cm <= MAX_PRECISION_CM => cm,
                _ => return Err(format!("bad {what} {text} (0 to 90000000.00m)")),
            }
        };
        precisions[i] = precision_byte(cm);
    }
    out.push(0); // version
    out.extend_from_slice(&precisions);
    out.extend_from_slice(&latitude.to_be_bytes());
    out.extend_from_slice(&longitude.to_be_bytes());
    out.extend_from_slice(&altitude_wire.to_be_bytes());
    Ok(())
}

pub(super) fn strip_metres(text: &str) -> &str {
    text.strip_suffix(['m', 'M']).unwrap_or(text)
}

/// Degrees, optional minutes and seconds, then a hemisphere letter; on the wire in thousandths
/// of an arcsecond from 2^31 at the equator or prime meridian.
pub(super) fn loc_angle(
    f: &mut Fields<'_, '_>,
    hemispheres: [&str; 2],
    max_degrees: u32,
    what: &str,
) -> Result<u32, String> {
    const EQUATOR: u32 = 1 << 31;
    let degrees: u32 = f.int(&format!("{what} degrees"))?;
    let mut minutes = 0;
    let mut milliseconds = 0;
    let mut text = f.text(&format!("{what} hemisphere"))?;
    if !hemispheres.iter().any(|h| h.eq_ignore_ascii_case(&text)) {
        minutes = parse_int::<u32>(&text, &format!("{what} minutes"))?;
        text = f.text(&format!("{what} hemisphere"))?;
        if !hemispheres.iter().any(|h| h.eq_ignore_ascii_case(&text)) {
            milliseconds = match decimal(&text, 3) {
                Some((false, ms)) if ms < 60_000 => ms,
                _ => return Err(format!("bad {what} seconds {text} (0 to 59.999)")),
            };
            text = f.text(&format!("{what} hemisphere"))?;
        }
    }
    if minutes > 59 {
        return Err(format!("{what} minutes {minutes} above 59"));
    }
    let offset = u64::from(degrees) * 3_600_000 + u64::from(minutes) * 60_000 + milliseconds;
    if offset > u64::from(max_degrees) * 3_600_000 {
        return Err(format!("{what} beyond {max_degrees} degrees"));
    }
    // At most 180 degrees: 648 000 000, well inside a u32 either side of 2^31.
    let offset = offset as u32;
    if text.eq_ignore_ascii_case(hemispheres[0]) {
        Ok(EQUATOR + offset)
    } else if text.eq_ignore_ascii_case(hemispheres[1]) {
        Ok(EQUATOR - offset)
    } else {
        Err(format!("{what} hemisphere {text} is neither {} nor {}", hemispheres[0], hemispheres[1]))
    }
}

/// `[-]digits[.digits]` with at most `places` decimals, scaled by 10^places: (negative, value).
pub(super) fn decimal(text: &str, places: u32) -> Option<(bool, u64)> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > places as usize {
        return None;
    }
    if text.ends_with('.') {
        return None;
    }
    let scale = 10u64.pow(places - fraction.len() as u32);
    let fraction: u64 = if fraction.is_empty() { 0 } else { fraction.parse().ok()? };
    let value = whole.parse::<u64>().ok()?.checked_mul(10u64.pow(places))?.checked_add(fraction * scale)?;
    Some((negative, value))
}

/// RFC 1876 section 2's size encoding: centimetres as mantissa (high nibble) times ten to the
/// exponent (low nibble), rounded down as its reference code `precsize_aton` does.
pub(super) fn precision_byte(cm: u64) -> u8 {
    let mut exponent = 0;
    while exponent < 9 && cm >= 10u64.pow(exponent + 1) {
        exponent += 1;
    }
    let mantissa = (cm / 10u64.pow(exponent)).min(9) as u8;
    mantissa << 4 | exponent as u8
}

/// SVCB and HTTPS (RFC 9460 section 2.1): priority, target, `key[=value]` parameters, on the wire
/// in increasing key order.
pub(super) fn svcb(f: &mut Fields<'_, '_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(&f.int::<u16>("priority")?.to_be_bytes());
    out.extend_from_slice(&f.name("target")?);
    let mut params: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    let mut mandatory = Vec::new();
    while let Some(token) = f.peek() {
        f.at += 1;
        if token.quoted {
            return Err(format!("\"{}\" where a SvcParamKey belongs", String::from_utf8_lossy(token.raw)));
        }
        let (key_text, value_raw) = match token.raw.iter().position(|&b| b == b'=') {
            Some(eq) if eq + 1 == token.raw.len() => match f.peek() {
                // `key="value"`: the quoted value is a token of its own.
                Some(next) if next.quoted && next.joined => {
                    f.at += 1;
                    (&token.raw[..eq], Some(next.raw))
                }
                _ => (&token.raw[..eq], Some(&b""[..])),
            },
            Some(eq) => (&token.raw[..eq], Some(&token.raw[eq + 1..])),
            None => (token.raw, None),
        };
        let key_text = String::from_utf8_lossy(key_text).into_owned();
        let key = svc_param_key(&key_text)?;
        let value = value_raw.map(unescape).transpose()?;
        if key == 0 {
            mandatory = comma_items(value.as_deref(), &key_text)?
                .iter()
                .map(|k| svc_param_key(&String::from_utf8_lossy(k)))
                .collect::<Result<Vec<u16>, String>>()?;
        }
        let wire = svc_param_value(key, &key_text, value.as_deref())?;
        if params.insert(key, wire).is_some() {
            return Err(format!("{key_text} given twice"));
        }
    }
    for key in &mandatory {
        if *key == 0 {
            return Err("mandatory lists itself".into());
        }
        if !params.contains_key(key) {
            return Err(format!("mandatory key{key} is missing from the parameters"));
        }
    }
    for (key, value) in params {
        let len = u16::try_from(value.len()).map_err(|_| format!("key{key} value too long"))?;
        out.extend_from_slice(&key.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&value);
    }
    Ok(())
}

/// A SvcParamKey's number: its name (RFC 9460 section 14.3.2, RFC 9461, RFC 9540) or `keyNNNNN`.
pub(super) fn svc_param_key(text: &str) -> Result<u16, String> {
    const NAMES: &[&str] =
        &["mandatory", "alpn", "no-default-alpn", "port", "ipv4hint", "ech", "ipv6hint", "dohpath", "ohttp"];
    if let Some(i) = NAMES.iter().position(|n| *n == text) {
        return Ok(i as u16);
    }
    match text.strip_prefix("key").map(|n| parse_int::<u16>(n, "key")) {
        // 65535 is reserved as invalid (RFC 9460 section 14.3.2).
        Some(Ok(key)) if key != 65535 => Ok(key),
        _ => Err(format!("unknown SvcParamKey {text:?}")),
    }
}

/// Comma-separated items of a SvcParamValue, with RFC 9460 appendix A.1's `\,` and `\\`.
pub(super) fn comma_items(value: Option<&[u8]>, key: &str) -> Result<Vec<Vec<u8>>, String> {
    let value = value.filter(|v| !v.is_empty()).ok_or_else(|| format!("{key} needs a value"))?;
    let mut items = vec![Vec::new()];
    let mut bytes = value.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => items
                .last_mut()
                .expect("never empty")
                .push(*bytes.next().ok_or_else(|| format!("{key} ends in a backslash"))?),
            b',' => items.push(Vec::new()),
            _ => items.last_mut().expect("never empty").push(b),
        }
    }
    if items.iter().any(Vec::is_empty) {
        return Err(format!("{key} has an empty item"));
    }
    Ok(items)
}

pub(super) fn svc_param_value(key: u16, name: &str, value: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let mut out = Vec::new();
    match key {
        0 => {
            let mut keys = comma_items(value, name)?
                .iter()
                .map(|k| svc_param_key(&text(k)))
                .collect::<Result<Vec<u16>, String>>()?;
            keys.sort_unstable();
            if keys.windows(2).any(|w| w[0] == w[1]) {
                return Err("mandatory lists a key twice".into());
            }
            keys.iter().for_each(|k| out.extend_from_slice(&k.to_be_bytes()));
        }
        1 => {
            for id in comma_items(value, name)? {
                out.push(u8::try_from(id.len()).map_err(|_| "an alpn id longer than 255 bytes".to_string())?);
                out.extend_from_slice(&id);
            }
        }
        // Flags without a value (RFC 9460 section 7.1.1, RFC 9540 section 4).
        2 | 8 => {
            if value.is_some_and(|v| !v.is_empty()) {
                return Err(format!("{name} takes no value"));
            }
        }
        3 => {
            let port = value.filter(|v| !v.is_empty()).ok_or_else(|| "port needs a value".to_string())?;
            out.extend_from_slice(&parse_int::<u16>(&text(port), "port")?.to_be_bytes());
        }
        4 => {
            for addr in comma_items(value, name)? {
                let addr = Ipv4Addr::from_str(&text(&addr))
                    .map_err(|_| format!("ipv4hint {} is not an IPv4 address", text(&addr)))?;
                out.extend_from_slice(&addr.octets());
            }
        }
        5 => {
            let ech = value.filter(|v| !v.is_empty()).ok_or_else(|| "ech needs a value".to_string())?;
            out = decode_base64(&text(ech), "ech")?;
        }
        6 => {
            for addr in comma_items(value, name)? {
                let addr = Ipv6Addr::from_str(&text(&addr))
                    .map_err(|_| format!("ipv6hint {} is not an IPv6 address", text(&addr)))?;
                out.extend_from_slice(&addr.octets());
            }
        }
        7 => {
            // A URI template (RFC 9461 section 5), kept as written.
            out = value.filter(|v| !v.is_empty()).ok_or_else(|| "dohpath needs a value".to_string())?.to_vec();
        }
        _ => out = value.unwrap_or_default().to_vec(),
    }
    Ok(out)
}
