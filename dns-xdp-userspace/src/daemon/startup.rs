//! Start-up of `serve`, in the order that keeps a half-started daemon from answering wrongly:
//! zones first (a bad zone fails before the network is touched) while the kernel verifies the XDP
//! program on another core; the program's maps filled before it attaches, so the first packet
//! already hits; replication replaying its journals; then the listeners, the metrics endpoint,
//! the control API and the secondaries' tasks, and only then healthy. Owns that order; calls the
//! parts it builds (state, loader, publish, replication, shadow, responder, listeners, metrics).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle as ThreadHandle;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use super::{ServeError, log_rrl};
use crate::config::Settings;
use crate::kernel::maps::MapSizes;
use crate::loader::{LoaderError, Stats, XdpProgram};
use crate::metrics::{KernelCounters, KernelReader, Sources, serve_http};
use crate::publish::{Publisher, Xdp, install};
use crate::replication::{Replication, secondary};
use crate::responder::Responder;
use crate::rrl::Limiter;
use crate::shadow::Shadow;
use crate::state::{Metrics, State};
use crate::update::{Referrers, Updater};
use crate::{load_zones, slowpath, tcp};

/// What start-up leaves running, for the signal loop and the drain.
pub(super) struct Daemon {
    pub state: Arc<State>,
    pub publisher: Arc<Publisher>,
    pub limiter: Arc<Limiter>,
    /// Replication and the control API (which asks the signal loop for reloads through it).
    pub replication: Arc<Replication>,
    /// The TCP listeners, the HTTP endpoints and the secondaries' tasks: aborted at the drain.
    pub tasks: Vec<JoinHandle<()>>,
    /// How XDP is attached ("native on eth0", "off"), for the service manager's STATUS line.
    pub xdp: String,
    /// The kernel's BPF run-time accounting (`--bpf-stats`), on while this lives.
    _bpf_stats: Option<OwnedFd>,
}

/// Starts everything `settings` asks for; returns once the daemon is healthy.
pub(super) fn start(settings: &Settings) -> Result<Daemon, ServeError> {
    // Configure: zones first, so a bad zone fails before we touch the network. The kernel
    // verifies the XDP program meanwhile, on another core (it attaches nothing).
    let started = std::time::Instant::now();
    let preload = settings.xdp_enabled().then(|| {
        let (port, payload, capacity) = (settings.dns_port(), settings.edns_payload, settings.answers_capacity);
        std::thread::spawn(move || XdpProgram::load_sized(port, payload, MapSizes::for_capacity(capacity)))
    });
    let (zones, warnings) = load_zones(&settings.zones).map_err(ServeError::Zones)?;
    for w in &warnings {
        log::warn!("{w}");
    }
    let names: usize = zones.iter().map(|z| z.nodes.len()).sum();
    log::info!("loaded {} zone(s), {names} names, in {:.1?}", zones.len(), started.elapsed());
    let state = Arc::new(State {
        zones: ArcSwap::from_pointee(zones),
        metrics: Metrics::default(),
        edns_payload: settings.edns_payload,
        chaos: settings.chaos.clone(),
        cookies: settings.cookies.clone(),
        demand: Default::default(),
    });
    let limiter = Arc::new(Limiter::new(settings.rrl.clone()));
    let shadow = settings.shadow.clone().map(crate::shadow::start);
    log_rrl(&settings.rrl);

    let bpf_stats =
        if settings.bpf_stats { Some(crate::loader::enable_bpf_stats().map_err(anyhow::Error::from)?) } else { None };
    let (xdp, kernel, attached) = match preload {
        Some(preload) => {
            let (program, stats, attached) = load_xdp(preload, settings, &state, shadow.as_ref())?;
            (Some(program), Some(kernel_reader(stats)), attached.join(", "))
        }
        None => (None, None, "off".to_string()),
    };

    // Replication: replay the journals (publishing what they add), then take over transfers,
    // NOTIFY and the API.
    let publisher = Arc::new(Publisher::new(state.clone(), xdp));
    let (replication, secondaries) =
        Replication::new(publisher.clone(), settings.replication.clone()).map_err(anyhow::Error::from)?;
    let responder = Arc::new(Responder {
        state: state.clone(),
        replication: replication.clone(),
        shadow: shadow.clone(),
        limiter: limiter.clone(),
    });

    let mut tasks = listen(settings, &responder)?;
    let http = crate::http::bind(settings.metrics)
        .with_context(|| format!("binding the metrics address {}", settings.metrics))?;
    tasks.push(tokio::spawn(serve_http(http, Sources { state: state.clone(), shadow, rrl: limiter.clone(), kernel })));
    log::info!("metrics and health on http://{}/metrics", settings.metrics);
    if let Some(api) = &settings.api {
        let addr = api.addr;
        let listener = crate::http::bind(addr).with_context(|| format!("binding the API address {addr}"))?;
        let (repl, token, tls) = (replication.clone(), api.token.clone(), api.tls.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        tasks.push(tokio::spawn(async move { crate::api::serve(listener, repl, &token, tls).await }));
        log::info!("control API on {scheme}://{addr}/v1/zones");
    }
    for (zone, primary, notified) in secondaries {
        log::info!("zone {zone}: secondary of {primary}");
        tasks.push(tokio::spawn(secondary::run(replication.clone(), zone, primary, notified)));
    }
    if !settings.replication.nodes.is_empty() {
        log::info!("fleet: {} nodes, quorum {}", settings.replication.nodes.len(), settings.replication.quorum);
    }
    for zone in state.zones.load().iter() {
        log::info!("serving zone {} serial {} from {}", zone.origin, zone.serial, zone.file.display());
    }
    state.metrics.ready.store(true, Relaxed);
    Ok(Daemon { state, publisher, limiter, replication, tasks, xdp: attached, _bpf_stats: bpf_stats })
}

/// Takes the program the preload thread loaded and fills its maps before attaching it, so the
/// first packet already hits. Also returns how it is attached, per interface ("native on eth0").
fn load_xdp(
    preload: ThreadHandle<Result<(XdpProgram, Stats), LoaderError>>,
    settings: &Settings,
    state: &Arc<State>,
    shadow: Option<&Arc<Shadow>>,
) -> anyhow::Result<(Xdp, Stats, Vec<String>)> {
    let (mut program, mut stats) =
        preload.join().map_err(|_| anyhow::anyhow!("loading the XDP program panicked"))??;
    // Loaded before the zones were known: too small for every name's record (more names
    // than --answers-capacity in one length class), load it again with room for them.
    if let Some(records) = program.sizes().records_needed(&state.zones.load()) {
        log::warn!(
            "XDP name records: the zones need {records:?} entries (NAMES maps by name length), more than --answers-capacity {} gives; loading the XDP program with room for them",
            settings.answers_capacity
        );
        let sizes = program.sizes().with_records(records);
        drop(program);
        (program, stats) = XdpProgram::load_sized(settings.dns_port(), settings.edns_payload, sizes)?;
    }
    let mut answers = Updater::new(program.take_response_maps()?, state.demand.clone());
    // The index of who points at whom, for narrow updates: built beside the compile (a
    // walk of every zone), so the first write after the start finds it ready.
    let (tx, referrers) = std::sync::mpsc::channel();
    let zones = state.zones.load_full();
    std::thread::spawn(move || {
        let index = Referrers::build(&zones);
        let _ = tx.send((zones, index));
    });
    install(&mut answers, state, &state.zones.load())?;
    answers.expect_referrers(referrers);
    program.set_rrl(&settings.rrl)?;
    if let Some(shadow) = shadow {
        program.set_shadow_sample(shadow.settings.sample)?;
        tokio::spawn(crate::shadow::run_xdp(shadow.clone(), state.clone(), program.take_shadow_ring()?));
    }
    program.set_enabled(settings.dns_port(), settings.edns_payload, true)?;
    let mut attached = Vec::new();
    for iface in &settings.ifaces {
        let mode = program.attach(iface, settings.xdp_mode)?;
        log::info!("XDP attached to {iface} in {mode} mode");
        attached.push(format!("{mode} on {iface}"));
    }
    Ok((Xdp { program, answers }, stats, attached))
}

/// The XDP program's counters as the metrics endpoint reads them.
fn kernel_reader(stats: Stats) -> KernelReader {
    Arc::new(move || Ok(KernelCounters { stats: stats.read()?, run_time: stats.run_time() }))
}

/// Binds UDP and TCP on every `--listen` address and starts answering: a UDP thread per core on
/// each, a TCP task each (returned).
fn listen(settings: &Settings, responder: &Arc<Responder>) -> anyhow::Result<Vec<JoinHandle<()>>> {
    // Every TCP connection is a descriptor: raise the soft limit, and fit the TCP cap to it.
    let tcp_limits = match tcp::raise_nofile_limit() {
        Ok(nofile) => settings.tcp.fitted_to(nofile),
        Err(err) => {
            log::warn!("could not raise the open-file limit ({err}); TCP capped at {}", settings.tcp.max_connections);
            settings.tcp
        }
    };
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut tasks = Vec::new();
    for addr in &settings.listen {
        for socket in slowpath::bind_udp(*addr, workers)? {
            slowpath::spawn_udp(socket, responder.clone()).context("starting a UDP thread")?;
        }
        tasks.push(tokio::spawn(tcp::serve(slowpath::bind_tcp(*addr)?, responder.clone(), tcp_limits)));
        log::info!("answering DNS on {addr} (UDP, TCP)");
    }
    tasks.extend(crate::encrypted::listen(&settings.encrypted, responder, tcp_limits)?);
    Ok(tasks)
}
