//! Running kdig/dig and reading their presentation output.
//!
//! Both print `;; ->>HEADER<<- opcode: QUERY; status: NOERROR; ...` (dig with commas), a flags line
//! (`;; Flags: qr aa rd; ...` in kdig, `;; flags: qr aa rd; ...` in dig), and sections introduced by
//! `;; QUESTION SECTION:` etc. that end at a blank line.

use std::process::Command;

/// The output of one kdig/dig run.
#[derive(Debug, Clone)]
pub struct DigOutput {
    pub command: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// One resource record line: owner, TTL, class, type, rdata (joined by single spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub owner: String,
    pub ttl: Option<u32>,
    pub rtype: String,
    pub rdata: String,
}

impl DigOutput {
    pub fn run(c: &mut Command) -> Self {
        let out = c.output().unwrap_or_else(|e| panic!("could not start {c:?}: {e}"));
        DigOutput {
            command: format!("{c:?}"),
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Build from text, for parser tests.
    pub fn from_text(stdout: &str) -> Self {
        DigOutput { command: String::new(), success: true, stdout: stdout.to_owned(), stderr: String::new() }
    }

    /// Panic with the whole output unless the client got a response.
    pub fn expect_response(&self) -> &Self {
        assert!(self.success && self.rcode().is_some(), "no response: {self}");
        self
    }

    /// The response code, e.g. `NOERROR`.
    pub fn rcode(&self) -> Option<String> {
        let line = self.stdout.lines().find(|l| l.contains("->>HEADER<<-"))?;
        let rest = &line[line.find("status: ")? + "status: ".len()..];
        Some(rest.split([';', ',']).next()?.trim().to_owned())
    }

    /// Header flags, lowercase, e.g. `["qr", "aa", "rd"]`.
    pub fn flags(&self) -> Vec<String> {
        let Some(line) = self.stdout.lines().find(|l| l.to_ascii_lowercase().starts_with(";; flags:")) else {
            return Vec::new();
        };
        let rest = &line[";; flags:".len()..];
        rest.split(';').next().unwrap_or("").split_whitespace().map(str::to_ascii_lowercase).collect()
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags().iter().any(|f| f == flag)
    }

    /// Raw lines of a section (`"QUESTION"`, `"ANSWER"`, `"AUTHORITY"`, `"ADDITIONAL"`), leading `;`
    /// stripped (question lines are comments in presentation format).
    pub fn section(&self, name: &str) -> Vec<String> {
        let header = format!(";; {name} SECTION:");
        let mut lines = self.stdout.lines().skip_while(|l| !l.starts_with(&header));
        if lines.next().is_none() {
            return Vec::new();
        }
        lines.take_while(|l| !l.trim().is_empty()).map(|l| l.trim_start_matches(';').trim().to_owned()).collect()
    }

    /// Parsed records of a section.
    pub fn records(&self, name: &str) -> Vec<Record> {
        self.section(name).iter().filter_map(|l| parse_record(l)).collect()
    }

    /// The rdata of the answer records of type `rtype`, sorted.
    pub fn answers(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .records("ANSWER")
            .into_iter()
            .filter(|r| r.rtype.eq_ignore_ascii_case(rtype))
            .map(|r| r.rdata)
            .collect();
        v.sort();
        v
    }

    /// The question name exactly as printed (case kept).
    pub fn question_name(&self) -> Option<String> {
        Some(self.section("QUESTION").first()?.split_whitespace().next()?.to_owned())
    }

    /// Non-empty lines, for `+short` output.
    pub fn short_lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    }
}

impl std::fmt::Display for DigOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n--- stdout ---\n{}--- stderr ---\n{}", self.command, self.stdout, self.stderr)
    }
}

const CLASSES: &[&str] = &["IN", "CH", "HS", "ANY", "NONE"];

/// `owner [ttl] [class] type rdata...`; question lines have no TTL and no rdata.
fn parse_record(line: &str) -> Option<Record> {
    let mut fields = line.split_whitespace().peekable();
    let owner = fields.next()?.to_owned();
    let ttl = fields.peek().and_then(|t| t.parse::<u32>().ok());
    if ttl.is_some() {
        fields.next();
    }
    if fields.peek().is_some_and(|c| CLASSES.contains(c)) {
        fields.next();
    }
    let rtype = fields.next()?.to_owned();
    let rdata = fields.collect::<Vec<_>>().join(" ");
    Some(Record { owner, ttl, rtype, rdata })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KDIG: &str = ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 4660
;; Flags: qr aa rd; QUERY: 1; ANSWER: 2; AUTHORITY: 0; ADDITIONAL: 0

;; QUESTION SECTION:
;; www.example.com.    \t\tIN\tA

;; ANSWER SECTION:
www.example.com.    \t300\tIN\tA\t192.0.2.81
www.example.com.    \t300\tIN\tA\t192.0.2.80

;; Received 65 B
";

    const DIG: &str = ";; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 1
;; flags: qr aa rd; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1

;; QUESTION SECTION:
;NoPe.ExAmPlE.CoM.\t\tIN\tA

;; AUTHORITY SECTION:
example.com.\t\t300\tIN\tSOA\tns1.example.com. hostmaster.example.com. 2026112101 7200 3600 1209600 300
";

    #[test]
    fn reads_kdig_output() {
        let o = DigOutput::from_text(KDIG);
        assert_eq!(o.rcode().as_deref(), Some("NOERROR"));
        assert_eq!(o.flags(), ["qr", "aa", "rd"]);
        assert_eq!(o.answers("A"), ["192.0.2.80", "192.0.2.81"]);
        assert_eq!(o.question_name().as_deref(), Some("www.example.com."));
        assert_eq!(o.records("ANSWER")[0].ttl, Some(300));
    }

    #[test]
    fn reads_dig_output() {
        let o = DigOutput::from_text(DIG);
        assert_eq!(o.rcode().as_deref(), Some("NXDOMAIN"));
        assert!(o.has_flag("aa"));
        assert_eq!(o.question_name().as_deref(), Some("NoPe.ExAmPlE.CoM."));
        let soa = &o.records("AUTHORITY")[0];
        assert_eq!((soa.owner.as_str(), soa.rtype.as_str()), ("example.com.", "SOA"));
        assert!(soa.rdata.contains("2026112101"));
        assert!(o.answers("A").is_empty());
    }
}
