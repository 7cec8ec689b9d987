//! Reading Prometheus text exposition (`GET /metrics`).

/// One scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Self {
        Metrics { text: text.to_owned() }
    }

    /// Sum of every sample of `name` whose labels include all of `labels` (other labels, e.g. a per-CPU
    /// or per-interface one, are summed over). `None` when no sample matches.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for line in self.text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let Some((series, value)) = split_sample(line) else { continue };
            let (sname, slabels) = match series.find('{') {
                Some(i) => (&series[..i], parse_labels(&series[i + 1..series.len() - 1])),
                None => (series, Vec::new()),
            };
            if sname != name {
                continue;
            }
            if labels.iter().all(|(k, v)| slabels.iter().any(|(sk, sv)| sk == k && sv == v)) {
                *found.get_or_insert(0.0) += value;
            }
        }
        found
    }

    /// Like [`sum`](Self::sum), 0 when absent: for counters that may not exist before their first event.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(name, labels).unwrap_or(0.0)
    }
}

/// `series value [timestamp]` -> (series, value); the series may contain spaces inside quoted labels.
fn split_sample(line: &str) -> Option<(&str, f64)> {
    let end = match line.rfind('}') {
        Some(i) => i + 1,
        None => line.find(char::is_whitespace)?,
    };
    let value = line[end..].split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((&line[..end], value))
}

/// `a="x",b="y\"z"` -> [(a, x), (b, y"z)].
fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_owned();
        let mut chars = rest[eq + 1..].trim_start().char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            break;
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false
                }
                (true, c) => {
                    value.push(c);
                    escaped = false
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        let Some(end) = end else { break };
        out.push((key, value));
        rest = &rest[eq + 1..].trim_start()[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP dnsxdp_xdp_packets_total Packets by XDP action.
# TYPE dnsxdp_xdp_packets_total counter
dnsxdp_xdp_packets_total{action="tx"} 7
dnsxdp_xdp_packets_total{action="pass"} 3
dnsxdp_responses_total{path="userspace",rcode="NOERROR"} 2
dnsxdp_responses_total{rcode="NOERROR",path="userspace",iface="veth, \"0\""} 1
dnsxdp_zone_serial{zone="example.com."} 2026112101
dnsxdp_up 1 1700000000000
"#;

    #[test]
    fn sums_matching_series_regardless_of_label_order() {
        let m = Metrics::parse(TEXT);
        assert_eq!(m.sum("dnsxdp_xdp_packets_total", &[("action", "tx")]), Some(7.0));
        assert_eq!(m.sum("dnsxdp_responses_total", &[("path", "userspace"), ("rcode", "NOERROR")]), Some(3.0));
        assert_eq!(m.sum("dnsxdp_zone_serial", &[("zone", "example.com.")]), Some(2026112101.0));
        assert_eq!(m.sum("dnsxdp_up", &[]), Some(1.0));
        assert_eq!(m.sum("dnsxdp_xdp_packets_total", &[("action", "drop")]), None);
        assert_eq!(m.value("dnsxdp_xdp_packets_total", &[("action", "drop")]), 0.0);
        assert_eq!(m.sum("dnsxdp_xdp", &[]), None, "a name prefix is not a match");
    }

    #[test]
    fn unescapes_label_values() {
        assert_eq!(parse_labels(r#"a="x",b="y\"z,w""#), [("a".into(), "x".into()), ("b".into(), "y\"z,w".into())]);
    }
}
