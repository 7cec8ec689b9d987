//! The reference servers of a bench-zone run: knotd and NSD serve the same large zone in the same
//! server namespace after dns-xdp, started as the main bench starts them (servers.rs, each with a
//! control socket), and measured as dns-xdp is: spawn to the zone's last name answered right,
//! memory (NSD's processes summed), and zone-file reloads with one record changed.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::super::proc::Guard;
use super::super::servers::{self, Server};
use super::probe::{self, Prober};
use super::reload::{self, Reload, ReloadSummary, Samples, Trigger};
use super::start::{self, START_POLL, per_name};
use super::{Options, PerName, STOP_DEADLINE, cli_v4, in_netns_client, srv, zonegen};
use crate::cmd;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Ref {
    Knotd,
    Nsd,
}

impl Ref {
    fn server(self) -> Server {
        match self {
            Ref::Knotd => Server::Knot,
            Ref::Nsd => Server::Nsd,
        }
    }
}

/// One reference server's figures.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Reference {
    /// `knotd` or `nsd`.
    pub server: String,
    pub version: String,
    pub command: String,
    pub start: Option<RefStart>,
    /// Once the start is done and the memory settled.
    pub memory: Option<PerName>,
    /// After the reloads (NSD's reload forks a new set of server processes).
    pub memory_after_reloads: Option<PerName>,
    pub reloads: Vec<Reload>,
    pub reload_summary: Option<ReloadSummary>,
    pub error: Option<String>,
}

/// Seconds since the server was spawned.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RefStart {
    /// The first reply to the start poller, whatever it said: the server listens, maybe still loading.
    pub first_reply_s: Option<f64>,
    /// The first right answer for the zone's last name.
    pub last_name_s: f64,
}

/// What every reference run shares with the others.
pub struct Context<'a> {
    pub opts: &'a Options,
    pub out: &'a Path,
    /// The zone as generated; each server serves (and rewrites) a copy in its own directory.
    pub zone: &'a Path,
    pub reload_targets: &'a [usize],
    pub versions: &'a [(String, String)],
}

pub fn measure(which: Ref, ctx: &Context) -> Reference {
    let server = which.server();
    let mut rf = Reference {
        server: server.name().into(),
        version: ctx.versions.iter().find(|(n, _)| n == server.name()).map(|(_, v)| v.clone()).unwrap_or_default(),
        ..Reference::default()
    };
    if let Err(e) = serve_and_measure(&mut rf, server, ctx) {
        rf.error = Some(format!("{e:#}"));
    }
    rf
}

fn serve_and_measure(rf: &mut Reference, server: Server, ctx: &Context) -> Result<()> {
    let names = ctx.opts.names;
    let dir = ctx.out.join(server.name());
    // knotd's timer database and NSD's zone list of an earlier run would carry its state over.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(ctx.zone.file_name().context("zone file name")?);
    std::fs::copy(ctx.zone, &file).with_context(|| format!("copying the zone to {}", file.display()))?;
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path)?;
    // servers::command needs no dns-xdp binary for knotd and NSD.
    let mut c = servers::command(server, Path::new("dns-xdp"), zonegen::ORIGIN, &file, &dir)?;
    c.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    rf.command = cmd::render(&c);
    eprintln!("bench-zone: starting {}", rf.command);
    let spawned = Instant::now();
    let mut guard = Guard::spawn(c)?;
    let pid = guard.pid().context("server pid")?;
    let result = (|| -> Result<()> {
        let who = format!("{} (log: {})", server.name(), log_path.display());
        let start = in_netns_client(|| start_figures(pid, spawned, ctx.opts, &who))?;
        eprintln!("bench-zone: {} answered the last name {:.2} s after the spawn", server.name(), start.last_name_s);
        rf.start = Some(start);
        rf.memory = Some(start::settled_memory(pid, spawned, names)?);
        let samples = Samples {
            server: server.name(),
            pid,
            spawned,
            file: &file,
            names,
            targets: ctx.reload_targets,
            deadline: std::time::Duration::from_secs(ctx.opts.change_timeout),
            metrics: None,
        };
        samples.run(&Trigger::Control(server, dir.clone()), &mut rf.reloads)?;
        rf.reload_summary = reload::summarise(&rf.reloads, false);
        rf.memory_after_reloads = Some(per_name(pid, spawned, names));
        Ok(())
    })();
    if result.is_err() && rf.memory.is_none() && probe::alive(pid) {
        rf.memory = Some(per_name(pid, spawned, names));
    }
    // SIGTERM to the first process stops NSD's whole tree, the reloaded one too.
    guard.stop(STOP_DEADLINE);
    result
}

/// Polls the zone's last name until the right answer; runs inside the client namespace.
fn start_figures(pid: u32, spawned: Instant, opts: &Options, who: &str) -> Result<RefStart> {
    let last = zonegen::last_a(opts.names);
    let (qname, want) = (zonegen::name(last), zonegen::addr(last));
    let mut prober = Prober::new(cli_v4(), srv(53))?;
    let mut s = RefStart::default();
    start::poll_start(pid, spawned, opts, who, &format!("no right answer for {qname}"), || {
        let reply = prober.ask_a(&qname, START_POLL)?;
        let at = spawned.elapsed().as_secs_f64();
        if reply.is_some() {
            s.first_reply_s.get_or_insert(at);
        }
        let right = reply.is_some_and(|r| r.rcode == 0 && r.a == [want]);
        if right {
            s.last_name_s = at;
        }
        Ok(right)
    })?;
    Ok(s)
}
