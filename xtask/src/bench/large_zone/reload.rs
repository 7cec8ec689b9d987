//! Zone-file reloads with one record changed, the same on every server: the server's zone file is
//! rewritten with one more name moved to a new address and the SOA serial bumped, the server is
//! told (dns-xdp: SIGHUP; knotd: `knotc zone-reload`; NSD: `nsd-control reload`), and the poller of
//! change.rs times the new answer (for dns-xdp: the new answer from XDP).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::super::proc;
use super::super::servers::{self, Server};
use super::change::{self, Polled};
use super::{in_netns_client, probe, zonegen};
use crate::cmd;

/// A control command that hangs is a failed sample, not a hung bench.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// One reload of a rewritten zone file with one more record changed than before, on any server.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Reload {
    pub name: String,
    pub new_a: String,
    /// The file's new SOA serial.
    pub serial: u32,
    /// What set it off: `kill -HUP`, `knotc ... zone-reload ...`, `nsd-control ... reload ...`.
    pub command: String,
    /// The moment just before it, in seconds since the server was spawned.
    pub at_s: f64,
    /// Until the signal was sent or the control command returned (both return before the reload is done).
    pub command_ms: Option<f64>,
    #[serde(flatten)]
    pub seen: Polled,
    pub error: Option<String>,
}

impl Reload {
    /// The figure compared across servers: the new answer from XDP for dns-xdp (`xdp`), the first
    /// reply with it for the others.
    pub fn served_ms(&self, xdp: bool) -> Option<f64> {
        if xdp { self.seen.xdp_ms } else { self.seen.first_new_ms }
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ReloadSummary {
    pub ok: usize,
    /// From the command to the new answer served (from XDP for dns-xdp), see [`Reload::served_ms`].
    pub served_p50_ms: f64,
    pub served_max_ms: f64,
}

pub fn summarise(reloads: &[Reload], xdp: bool) -> Option<ReloadSummary> {
    let served = change::sorted(reloads, |r| r.error.is_none(), |r| r.served_ms(xdp));
    let (served_p50_ms, served_max_ms) = change::p50_max(&served);
    (!served.is_empty()).then_some(ReloadSummary { ok: served.len(), served_p50_ms, served_max_ms })
}

/// How a server is told to read its zone file again.
pub enum Trigger {
    Sighup(u32),
    /// knotc or NSD's nsd-control, on the control socket in the server's run directory.
    Control(Server, PathBuf),
}

impl Trigger {
    /// For the record: what it runs.
    fn describe(&self) -> String {
        match self {
            Trigger::Sighup(pid) => format!("kill -HUP {pid}"),
            Trigger::Control(server, dir) => servers::reload_command(*server, zonegen::ORIGIN, dir)
                .map(|c| cmd::render(&c))
                .unwrap_or_else(|e| format!("{e:#}")),
        }
    }

    fn fire(&self) -> Result<()> {
        match self {
            Trigger::Sighup(pid) => proc::signal(*pid, libc::SIGHUP),
            Trigger::Control(server, dir) => {
                let c = servers::reload_command(*server, zonegen::ORIGIN, dir)?;
                let what = cmd::render(&c);
                let (status, out, err) = proc::run_captured(c, COMMAND_DEADLINE)?;
                if !status.success() {
                    bail!("`{what}`: {status}: {}", format!("{out} {err}").trim());
                }
                Ok(())
            }
        }
    }
}

/// The reload samples, one per name of `targets`, on the server `pid` serving `file` (a zone of
/// `names` names) since `spawned`. `metrics`: dns-xdp's, to time the new answer from XDP. A sample
/// that fails keeps its error; a server that exits ends the samples with one.
pub struct Samples<'a> {
    pub server: &'a str,
    pub pid: u32,
    pub spawned: Instant,
    pub file: &'a Path,
    pub names: usize,
    pub targets: &'a [usize],
    pub deadline: Duration,
    pub metrics: Option<SocketAddr>,
}

impl Samples<'_> {
    pub fn run(&self, trigger: &Trigger, out: &mut Vec<Reload>) -> Result<()> {
        let mut changed: Vec<(usize, Ipv4Addr)> = Vec::new();
        for (k, &i) in self.targets.iter().enumerate() {
            proc::check_stop()?;
            if !probe::alive(self.pid) {
                bail!("{} exited during the reloads", self.server);
            }
            // TEST-NET-3: neither one of the zone's 10/8 addresses nor an API change's (TEST-NET-2).
            let new_a = Ipv4Addr::new(203, 0, 113, (k % 254 + 1) as u8);
            changed.push((i, new_a));
            let serial = 2 + k as u32;
            zonegen::write_version(self.file, self.names, serial, &changed)?;
            let mut rl = Reload {
                name: zonegen::name(i),
                new_a: new_a.to_string(),
                serial,
                command: trigger.describe(),
                ..Reload::default()
            };
            let mut failed = None;
            let polled = in_netns_client(|| {
                Ok(change::poll(&mut rl.seen, &rl.name, new_a, self.deadline, self.metrics, |t0| {
                    rl.at_s = t0.duration_since(self.spawned).as_secs_f64();
                    let fired = trigger.fire();
                    rl.command_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
                    fired.map_err(|e| failed = Some(format!("{e:#}"))).is_ok()
                }))
            })?;
            rl.error = failed.or_else(|| polled.err().map(|e| format!("{e:#}")));
            eprintln!(
                "bench-zone: {} reload {}/{}: {} -> {new_a} (serial {serial}): at +{:.3} s, command {} ms, {}{}",
                self.server,
                k + 1,
                self.targets.len(),
                rl.name,
                rl.at_s,
                super::fmt_ms(rl.command_ms),
                rl.seen.progress(self.metrics.is_some()),
                rl.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            );
            out.push(rl);
            proc::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_take_only_the_samples_that_succeeded() {
        let reload = |first, xdp, error: Option<&str>| Reload {
            seen: Polled { first_new_ms: Some(first), xdp_ms: Some(xdp), ..Polled::default() },
            error: error.map(String::from),
            ..Reload::default()
        };
        let r = [reload(1.0, 4.0, None), reload(2.0, 6.0, None), reload(0.5, 0.5, Some("tap dropped frames"))];
        let s = summarise(&r, true).unwrap();
        assert_eq!((s.ok, s.served_max_ms), (2, 6.0));
        assert_eq!(summarise(&r, false).unwrap().served_max_ms, 2.0);
        assert!(summarise(&r[2..], true).is_none());
    }
}
