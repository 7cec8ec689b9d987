//! One timed change of one record, as a client sees it: something sets the change off (dns-xdp's
//! API PUT; a zone file rewritten with one record changed and SIGHUP, `knotc zone-reload` or
//! `nsd-control reload`), and a thread polling the name every 100 µs, open loop, takes the first
//! reply with the new address. For dns-xdp that reply must come from XDP: one whose DNS ID an
//! AF_PACKET tap on the server veth did not see leave through the kernel's stack (XDP_TX passes no
//! tap; see tap.rs), checked against the daemon's reply counter.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::super::netbed::{SRV_IF, srv_ns};
use super::super::proc;
use super::probe::{self, Prober};
use super::tap::{Capture, PollKey};
use super::{API_PORT, METRICS_PORT, TOKEN, cli_v4, srv, zonegen};

/// The poller's query spacing (the issue: every 100 µs).
const CHANGE_POLL: Duration = Duration::from_micros(100);
/// After the first reply with the new address, how long to keep polling for one from XDP.
const XDP_AFTER_FIRST_NEW: Duration = Duration::from_secs(5);
/// The packet tap's thread stops by itself this long after the change's deadline at the latest.
const TAP_SLACK: Duration = Duration::from_secs(30);

/// What the poller saw of one change; part of every change and reload sample in results.json.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Polled {
    /// From just before the change was set off until the first reply with the new address (any path).
    pub first_new_ms: Option<f64>,
    /// dns-xdp: the same for the first reply with the new address that the packet tap on the
    /// server veth did not see leave through the stack: XDP's.
    pub xdp_ms: Option<f64>,
    /// dns-xdp: polls the daemon (not XDP) answered during the sample: distinct replies the tap saw leave.
    pub daemon_answered: u64,
    /// The same by the daemon's reply counter (/metrics before the change and after the last reply):
    /// a cross-check of the tap.
    #[serde(default)]
    pub daemon_answered_metrics: u64,
    /// Replies with the new address the daemon sent before XDP sent one.
    #[serde(default)]
    pub new_from_daemon: u64,
    pub polls_sent: u64,
    pub polls_answered: u64,
}

impl Polled {
    /// For the progress lines: when the new answer came and, for dns-xdp (`xdp`), who answered the polls.
    pub fn progress(&self, xdp: bool) -> String {
        let ms = super::fmt_ms;
        if !xdp {
            return format!("first new answer after {} ms", ms(self.first_new_ms));
        }
        format!(
            "first new answer after {} ms, from XDP after {} ms; daemon answered {} of {} polls ({} by its counter, {} \
             with the new address)",
            ms(self.first_new_ms),
            ms(self.xdp_ms),
            self.daemon_answered,
            self.polls_sent,
            self.daemon_answered_metrics,
            self.new_from_daemon
        )
    }
}

/// One API change of dns-xdp.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    pub new_a: String,
    pub api_status: Option<u16>,
    pub api_body: String,
    /// The moment just before the request, in seconds since the daemon was spawned (daemon.log's clock).
    #[serde(default)]
    pub put_at_s: Option<f64>,
    /// From just before the request until its response was read.
    pub api_ms: Option<f64>,
    #[serde(flatten)]
    pub seen: Polled,
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub ok: usize,
    pub xdp_p50_ms: f64,
    pub xdp_max_ms: f64,
    pub first_new_p50_ms: f64,
    pub first_new_max_ms: f64,
    pub api_p50_ms: f64,
    pub api_max_ms: f64,
    /// Samples where the daemon answered some polls (its old or new data) before XDP served the change.
    pub with_daemon_answers: usize,
}

/// The sorted values of `get` over the samples that succeeded.
pub(super) fn sorted<S>(samples: &[S], ok: fn(&S) -> bool, get: impl Fn(&S) -> Option<f64>) -> Vec<f64> {
    let mut v: Vec<f64> = samples.iter().filter(|s| ok(s)).filter_map(get).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// (p50, max) of sorted values; NaN for none.
pub(super) fn p50_max(v: &[f64]) -> (f64, f64) {
    let q = |p| if v.is_empty() { f64::NAN } else { super::super::stats::quantile(v, p) };
    (q(0.5), q(1.0))
}

pub fn summarise_changes(changes: &[Change]) -> Option<ChangeSummary> {
    let ok = |c: &Change| c.error.is_none();
    let xdp = sorted(changes, ok, |c| c.seen.xdp_ms);
    if xdp.is_empty() {
        return None;
    }
    let (xdp_p50_ms, xdp_max_ms) = p50_max(&xdp);
    let (first_new_p50_ms, first_new_max_ms) = p50_max(&sorted(changes, ok, |c| c.seen.first_new_ms));
    let (api_p50_ms, api_max_ms) = p50_max(&sorted(changes, ok, |c| c.api_ms));
    Some(ChangeSummary {
        ok: xdp.len(),
        xdp_p50_ms,
        xdp_max_ms,
        first_new_p50_ms,
        first_new_max_ms,
        api_p50_ms,
        api_max_ms,
        with_daemon_answers: changes.iter().filter(|c| c.seen.daemon_answered > 0).count(),
    })
}

/// Whether the change was set off: not yet, accepted, refused (the poller then stops).
const PENDING: u8 = 0;
const ACCEPTED: u8 = 1;
const REFUSED: u8 = 2;

/// Times one change of `name` to `new_a`, filling `seen` as figures come (a failed sample keeps
/// them). Polls from just before `trigger` runs, on a thread of its own, with that moment; it says
/// whether the change was accepted (a refused one ends the polling with an error, after which the
/// caller's own record of why counts most). Done at the first reply with the new address: from XDP
/// when `metrics` (the daemon's) is given, from anywhere otherwise. Runs inside the client namespace.
pub fn poll(
    seen: &mut Polled,
    name: &str,
    new_a: Ipv4Addr,
    deadline: Duration,
    metrics: Option<SocketAddr>,
    trigger: impl FnOnce(Instant) -> bool + Send,
) -> Result<()> {
    let mut prober = Prober::new(cli_v4(), srv(53))?;
    // The name answers before the change: the sample starts from the served state.
    let before = prober.ask_a(name, Duration::from_secs(1))?.context("no answer for the name before the change")?;
    if before.a.contains(&new_a) {
        bail!("{name} already holds {new_a}");
    }
    // The tap is bound before the first scrape, so it covers every reply the counters below count.
    let watch = match metrics {
        Some(m) => Some((Capture::start(srv_ns(), SRV_IF, deadline + TAP_SLACK)?, m, probe::scrape(m)?)),
        None => None,
    };
    let tap = watch.as_ref().map(|(tap, _, _)| tap);
    // The prober's ports during the sample (a new one each 65,535 IDs): the tap's replies to count.
    let mut ports = vec![prober.local_port()];
    let state = AtomicU8::new(PENDING);
    let t0 = Instant::now();
    let (first_new, xdp_at) = std::thread::scope(|s| {
        let state = &state;
        s.spawn(move || state.store(if trigger(t0) { ACCEPTED } else { REFUSED }, Ordering::SeqCst));
        // Open loop: a query every CHANGE_POLL whatever came back; replies are matched by content.
        let mut next = t0;
        let mut first_new: Option<Duration> = None;
        let mut xdp_at: Option<Duration> = None;
        // Replies with the new address, in arrival order, whose path the tap cannot tell yet.
        let mut pending: VecDeque<(PollKey, Instant)> = VecDeque::new();
        while t0.elapsed() < deadline && !proc::stopping() && state.load(Ordering::SeqCst) != REFUSED {
            if first_new.is_some_and(|f| tap.is_none() || t0.elapsed() > f + XDP_AFTER_FIRST_NEW) {
                break;
            }
            if Instant::now() >= next {
                if prober.send_a(name).is_ok() {
                    seen.polls_sent += 1;
                    let port = prober.local_port();
                    if !ports.contains(&port) {
                        ports.push(port);
                    }
                }
                next += CHANGE_POLL;
            }
            let wait = next.saturating_duration_since(Instant::now());
            if let Some(r) = prober.recv(wait) {
                let at = Instant::now();
                seen.polls_answered += 1;
                if r.a.contains(&new_a) {
                    first_new.get_or_insert(at - t0);
                    pending.push_back(((prober.local_port(), r.id), at));
                }
            }
            while let (Some(&(key, at)), Some(tap)) = (pending.front(), tap) {
                match tap.verdict(key, at) {
                    Some(true) => {
                        seen.new_from_daemon += 1;
                        pending.pop_front();
                    }
                    Some(false) => {
                        xdp_at = Some(at - t0);
                        break;
                    }
                    None => break,
                }
            }
            if xdp_at.is_some() {
                break;
            }
        }
        (first_new, xdp_at)
    });
    if state.load(Ordering::SeqCst) != ACCEPTED {
        bail!("the change was not accepted");
    }
    let first_new = first_new.with_context(|| format!("no reply with {new_a} within {deadline:?}"))?;
    seen.first_new_ms = Some(first_new.as_secs_f64() * 1e3);
    // The replies still in flight, so both counts below cover every poll (the figures are taken).
    while prober.recv(Duration::from_millis(20)).is_some() {
        seen.polls_answered += 1;
    }
    let Some((tap, metrics, c0)) = watch else { return Ok(()) };
    let c1 = probe::scrape(metrics)?;
    let captured = tap.finish()?;
    seen.daemon_answered = captured.replies.iter().filter(|(port, _)| ports.contains(port)).count() as u64;
    seen.daemon_answered_metrics = c1.daemon_responses.saturating_sub(c0.daemon_responses);
    if captured.frames == 0 {
        bail!(
            "the packet tap on {SRV_IF} saw no frame at all (not even the /metrics responses) while the daemon's reply \
             counter moved by {}: the tap is broken, the sample cannot be attributed",
            seen.daemon_answered_metrics
        );
    }
    if captured.dropped > 0 || captured.timed_out {
        bail!(
            "the packet tap on {SRV_IF} dropped {} frames{}: an unseen reply is no proof of XDP",
            captured.dropped,
            if captured.timed_out { " and stopped at its time limit" } else { "" }
        );
    }
    if seen.daemon_answered < seen.daemon_answered_metrics {
        bail!(
            "the daemon's counter says it sent {} replies, the packet tap on {SRV_IF} saw {} of ours leave ({} frames in \
             all): the tap misses replies, so an unseen one is no proof of XDP",
            seen.daemon_answered_metrics,
            seen.daemon_answered,
            captured.frames
        );
    }
    let xdp_at = xdp_at.with_context(|| {
        format!(
            "the new address never came from XDP within {XDP_AFTER_FIRST_NEW:?} of the first new answer ({} replies with \
             it left through the daemon)",
            seen.new_from_daemon
        )
    })?;
    seen.xdp_ms = Some(xdp_at.as_secs_f64() * 1e3);
    Ok(())
}

/// One timed API change; runs inside the client namespace. Failures land in the sample's `error`.
pub fn api_change(name: &str, new_a: Ipv4Addr, deadline: Duration, spawned: Instant) -> Change {
    let mut ch = Change { name: name.to_owned(), new_a: new_a.to_string(), ..Change::default() };
    let zone = zonegen::ORIGIN.trim_end_matches('.');
    let relative = name.strip_suffix(zonegen::ORIGIN).unwrap_or(name).trim_end_matches('.');
    let path = format!("/v1/zones/{zone}/rrsets/{relative}/A");
    let body = format!("{{\"ttl\": 300, \"rdata\": [\"{new_a}\"]}}");
    let mut put_err = None;
    let polled = poll(&mut ch.seen, name, new_a, deadline, Some(srv(METRICS_PORT)), |t0| {
        ch.put_at_s = Some(t0.duration_since(spawned).as_secs_f64());
        let res = probe::http(srv(API_PORT), "PUT", &path, Some(TOKEN), &body);
        ch.api_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
        match res {
            Ok((status, resp)) => {
                ch.api_status = Some(status);
                ch.api_body = resp.chars().take(300).collect();
                status == 200
            }
            Err(e) => {
                put_err = Some(format!("PUT: {e:#}"));
                false
            }
        }
    });
    // Why the PUT failed says more than that the poller saw no change.
    let refused = ch.api_status.filter(|&s| s != 200).map(|s| format!("PUT {path}: {s} {}", ch.api_body));
    ch.error = put_err.or(refused).or_else(|| polled.err().map(|e| format!("{e:#}")));
    ch
}

/// Once before the changes: the tap on the server veth must see the daemon's reply to a query with
/// a COOKIE option (the XDP program passes every such query to the daemon), and must not see XDP's
/// reply to a plain query for the same name. Runs inside the client namespace.
pub fn tap_self_check(name: &str, metrics: SocketAddr) -> Result<()> {
    let mut prober = Prober::new(cli_v4(), srv(53))?;
    let tap = Capture::start(srv_ns(), SRV_IF, Duration::from_secs(60))?;
    let wait = Duration::from_secs(1);
    let verdict = |tap: &Capture, key: PollKey, at: Instant| {
        let end = Instant::now() + wait;
        loop {
            match tap.verdict(key, at) {
                Some(v) => return Some(v),
                None if Instant::now() > end => return None,
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    };
    let c0 = probe::scrape(metrics)?;
    let id = prober.send_a_with_cookie(name)?;
    prober
        .reply_to(id, wait)
        .with_context(|| format!("tap self-check: no reply to a query for {name} with a COOKIE"))?;
    let cookie_seen = verdict(&tap, (prober.local_port(), id), Instant::now());
    let c1 = probe::scrape(metrics)?;
    let id = prober.send_a(name)?;
    prober.reply_to(id, wait).with_context(|| format!("tap self-check: no reply to a plain query for {name}"))?;
    let plain_seen = verdict(&tap, (prober.local_port(), id), Instant::now());
    let c2 = probe::scrape(metrics)?;
    let seen = tap.finish()?;
    if c1.daemon_responses == c0.daemon_responses {
        bail!(
            "tap self-check: the daemon's reply counter did not move for a query with a COOKIE option (XDP answered it?)"
        );
    }
    if cookie_seen != Some(true) {
        bail!(
            "tap self-check: the daemon answered a query with a DNS COOKIE option (XDP passes all of those to it), but an \
             AF_PACKET tap on {SRV_IF} in {} did not see the reply leave ({} frames seen): it cannot tell the daemon's \
             replies from XDP's",
            srv_ns(),
            seen.frames
        );
    }
    if probe::from_xdp(c1, c2) && plain_seen != Some(false) {
        bail!(
            "tap self-check: XDP answered a plain query for {name} (the daemon's reply counter did not move), yet the tap \
             on {SRV_IF} saw the reply leave: XDP_TX replies are visible to it here, so it cannot tell the paths apart"
        );
    }
    if seen.dropped > 0 {
        bail!("tap self-check: the tap dropped {} frames", seen.dropped);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_the_flat_fields_of_earlier_results() {
        let old = r#"{"name":"h5.big.test.","new_a":"198.51.100.1","api_status":200,"api_body":"","api_ms":1.5,
            "first_new_ms":2.0,"xdp_ms":2.5,"daemon_answered":0,"polls_sent":30,"polls_answered":30,"error":null}"#;
        let c: Change = serde_json::from_str(old).unwrap();
        assert_eq!((c.seen.xdp_ms, c.seen.polls_sent, c.put_at_s), (Some(2.5), 30, None));
        let again = serde_json::to_value(&c).unwrap();
        assert_eq!(again["xdp_ms"], 2.5, "still flat: {again}");
    }
}
