//! `dns-xdp`: configure, load, bind, spawn, wait for a signal, drain.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use clap::Parser as _;
use tokio::signal::unix::{SignalKind, signal};

use dns_xdp::config::{Cli, Command, Settings};
use dns_xdp::kernel::maps::MapSizes;
use dns_xdp::loader::{XdpProgram, attach_pass};
use dns_xdp::metrics::{Metrics, Sources, serve_http};
use dns_xdp::publish::{Publisher, Xdp, install};
use dns_xdp::replication::{Replication, secondary};
use dns_xdp::rrl::{LimitLog, Limiter};
use dns_xdp::state::State;
use dns_xdp::update::{Referrers, Updater};
use dns_xdp::zone::Severity;
use dns_xdp::{load_zones, slowpath};

/// sysexits.h: bad usage or configuration.
const EX_CONFIG: u8 = 64;
/// sysexits.h: bad input data (a zone that does not load).
const EX_DATAERR: u8 = 65;
/// How often the rate limiter reports prefixes that start or stop being limited.
const RRL_REPORT_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// Small allocations packed tighter than glibc's 32-byte chunks, and freed memory returned to
/// the system without malloc_trim.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { zone_files } => check(&zone_files),
        Command::XdpPass { iface } => xdp_pass(&iface),
        Command::Bounce(args) => bounce(&args),
        Command::XdpCount(args) => match dns_xdp::reply_count::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                log::error!("{err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Diff(args) => dns_xdp::diff::main(args),
        Command::Serve(args) => {
            let settings = match Settings::from_args(args) {
                Ok(s) => s,
                Err(msg) => {
                    log::error!("{msg}");
                    return ExitCode::from(EX_CONFIG);
                }
            };
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(serve(settings)) {
                Ok(code) => code,
                Err(err) => {
                    log::error!("{err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check(files: &[std::path::PathBuf]) -> ExitCode {
    match load_zones(files) {
        Ok((zones, warnings)) => {
            for w in &warnings {
                println!("{w}");
            }
            for zone in zones.iter() {
                println!(
                    "{}: zone {} serial {} ok ({} names)",
                    zone.file.display(),
                    zone.origin,
                    zone.serial,
                    zone.nodes.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(diags) => {
            for d in &diags {
                println!("{d}");
            }
            ExitCode::from(1)
        }
    }
}

fn xdp_pass(iface: &str) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let _attached = match attach_pass(iface) {
            Ok(e) => e,
            Err(err) => {
                log::error!("{err:#}");
                return ExitCode::FAILURE;
            }
        };
        log::info!("xdp_pass attached to {iface}; waiting for SIGTERM");
        wait_for_stop().await;
        ExitCode::SUCCESS
    })
}

fn bounce(args: &dns_xdp::bounce::BounceArgs) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let _attached = match dns_xdp::bounce::attach(args) {
            Ok(e) => e,
            Err(err) => {
                log::error!("{err:#}");
                return ExitCode::FAILURE;
            }
        };
        log::info!("xdp_bounce attached to {}; waiting for SIGTERM", args.iface);
        wait_for_stop().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_stop() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    // Configure: zones first, so a bad zone fails before we touch the network. The kernel
    // verifies the XDP program meanwhile, on another core (it attaches nothing).
    let started = std::time::Instant::now();
    let preload = settings.xdp_enabled().then(|| {
        let (port, payload, capacity) = (settings.dns_port(), settings.edns_payload, settings.answers_capacity);
        std::thread::spawn(move || XdpProgram::load_sized(port, payload, MapSizes::for_capacity(capacity)))
    });
    let (zones, warnings) = match load_zones(&settings.zones) {
        Ok(z) => z,
        Err(diags) => {
            for d in diags.iter().filter(|d| d.severity == Severity::Error) {
                log::error!("{d}");
            }
            return Ok(ExitCode::from(EX_DATAERR));
        }
    };
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
        shadow: Default::default(),
        cookies: settings.cookies.clone(),
        demand: Default::default(),
        replication: Default::default(),
    });
    let limiter = Arc::new(Limiter::new(settings.rrl.clone()));
    if let Some(shadow) = &settings.shadow {
        dns_xdp::shadow::start(&state, shadow.clone());
    }
    log_rrl(&settings.rrl);

    // Load XDP and fill its maps before attaching, so the first packet already hits.
    let mut xdp = None;
    let mut xdp_stats = None;
    let _bpf_stats = if settings.bpf_stats { Some(dns_xdp::loader::enable_bpf_stats()?) } else { None };
    if let Some(preload) = preload {
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
        let mut answers = Updater::new(program.take_answer_maps()?, state.demand.clone());
        // The index of who points at whom, for narrow updates: built beside the compile (a
        // walk of every zone), so the first write after the start finds it ready.
        let (tx, referrers) = std::sync::mpsc::channel();
        let zones = state.zones.load_full();
        std::thread::spawn(move || {
            let index = Referrers::build(&zones);
            let _ = tx.send((zones, index));
        });
        install(&mut answers, &state, &state.zones.load())?;
        answers.expect_referrers(referrers);
        program.set_rrl(&settings.rrl)?;
        if let Some(shadow) = state.shadow.get() {
            program.set_shadow_sample(shadow.settings.sample)?;
            tokio::spawn(dns_xdp::shadow::run_xdp(shadow.clone(), state.clone(), program.take_shadow_ring()?));
        }
        program.set_enabled(settings.dns_port(), settings.edns_payload, true)?;
        for iface in &settings.ifaces {
            let mode = program.attach(iface, settings.xdp_mode)?;
            log::info!("XDP attached to {iface} in {mode} mode");
        }
        xdp = Some(Xdp { program, answers });
        xdp_stats = Some(Arc::new(stats));
    }

    // Replication: replay the journals (publishing what they add), then take over transfers,
    // NOTIFY and the API.
    let publisher = Arc::new(Publisher::new(state.clone(), xdp));
    let (replication, secondaries) = Replication::new(publisher.clone(), settings.replication.clone())?;
    let _ = state.replication.set(replication.clone());

    // Bind. Every TCP connection is a descriptor: raise the soft limit, and fit the TCP cap to it.
    let tcp_limits = match dns_xdp::tcp::raise_nofile_limit() {
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
            slowpath::spawn_udp(socket, state.clone(), limiter.clone()).context("starting a UDP thread")?;
        }
        tasks.push(tokio::spawn(dns_xdp::tcp::serve(slowpath::bind_tcp(*addr)?, state.clone(), tcp_limits)));
        log::info!("answering DNS on {addr} (UDP, TCP)");
    }
    let http = dns_xdp::http::bind(settings.metrics)
        .with_context(|| format!("binding the metrics address {}", settings.metrics))?;
    tasks.push(tokio::spawn(serve_http(http, Sources { state: state.clone(), xdp: xdp_stats, rrl: limiter.clone() })));
    log::info!("metrics and health on http://{}/metrics", settings.metrics);
    if let Some(api) = &settings.api {
        let addr = api.addr;
        let listener = dns_xdp::http::bind(addr).with_context(|| format!("binding the API address {addr}"))?;
        let (repl, token, tls) = (replication.clone(), api.token.clone(), api.tls.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        tasks.push(tokio::spawn(async move { dns_xdp::api::serve(listener, repl, &token, tls).await }));
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
    // Wait: SIGHUP reloads, SIGTERM/SIGINT stop.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut report = tokio::time::interval(RRL_REPORT_PERIOD);
    let mut limit_log = LimitLog::default();
    loop {
        tokio::select! {
            _ = hup.recv() => {
                reload(&publisher, &settings);
                reload_rrl(&limiter, &publisher, &settings);
            }
            _ = report.tick() => {
                let mut limiting: Vec<_> = limiter.take_limiting().into_iter().collect();
                if let Some(more) = publisher.with_xdp(|xdp| xdp.program.rrl_limiting()) {
                    limiting.extend(more);
                }
                // Promote the names the daemon answered most since the last tick (hot set).
                if let Some(Err(err)) = publisher.with_xdp(|xdp| xdp.answers.rebalance(&state.zones.load(), state.edns_payload)) {
                    log::warn!("hot set: {err:#}");
                }
                limit_log.report(limiting, &limiter.settings(), RRL_REPORT_PERIOD);
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    // Drain: detach XDP first so the kernel stops answering, then stop the listeners.
    log::info!("stopping: detaching XDP");
    drop(publisher.take_xdp());
    for task in tasks {
        task.abort();
    }
    Ok(ExitCode::SUCCESS)
}

fn log_rrl(rrl: &dns_xdp::rrl::RrlSettings) {
    if rrl.rate == 0 {
        log::info!("response rate limiting off (--rrl-rate 0)");
    } else {
        log::info!(
            "response rate limiting: {}/s, burst {}, slip {}, prefixes /{} and /{}, {} allowlisted{}",
            rrl.rate,
            rrl.effective_burst(),
            rrl.slip,
            rrl.ipv4_prefix,
            rrl.ipv6_prefix,
            rrl.allow.len(),
            if rrl.dry_run { ", dry run" } else { "" }
        );
    }
}

/// SIGHUP: the rate-limiting keys of the config file, applied live to both limiters (the XDP
/// program keeps running; buckets are kept). A bad setting keeps the previous ones.
fn reload_rrl(limiter: &Limiter, publisher: &Publisher, settings: &Settings) {
    let rrl = match settings.reread_rrl() {
        Ok(r) => r,
        Err(err) => {
            log::error!("rate-limiting settings not changed: {err}");
            return;
        }
    };
    if rrl == limiter.settings() {
        return;
    }
    if let Some(Err(err)) = publisher.with_xdp(|xdp| xdp.program.set_rrl(&rrl)) {
        log::error!("updating the XDP rate-limiting settings failed: {err:#}");
        return;
    }
    log_rrl(&rrl);
    limiter.reconfigure(rrl);
}

/// SIGHUP: reads every zone file again; on any error the previous zones keep serving. Zones not
/// from files (secondaries) stay, and so does a served version newer than its file (changes
/// made through the API, which live in the journal).
fn reload(publisher: &Publisher, settings: &Settings) {
    log::info!("SIGHUP: reloading zone files");
    let state = &publisher.state;
    let (zones, warnings) = match load_zones(&settings.zones) {
        Ok(z) => z,
        Err(diags) => {
            state.metrics.reloads_failed.fetch_add(1, Relaxed);
            for d in diags.iter().filter(|d| d.severity == Severity::Error) {
                log::error!("zone reload failed: {d}");
            }
            for zone in state.zones.load().iter() {
                log::error!("still serving zone {} serial {}", zone.origin, zone.serial);
            }
            return;
        }
    };
    for w in &warnings {
        log::warn!("{w}");
    }
    let result = publisher.update(|served| {
        let mut next = zones;
        for zone in served.iter() {
            match next.get(&zone.origin) {
                Some(file) if dns_xdp::zone::serial_newer(zone.serial, file.serial) => {
                    log::warn!("zone {}: keeping serial {} (newer than the file's {})", zone.origin, zone.serial, file.serial);
                    next = next.with_zone(zone.clone());
                }
                // Same serial, different data: secondaries and caches will never notice.
                Some(file) if file.serial == zone.serial && file.records() != zone.records() => {
                    log::warn!(
                        "{}: zone {} changed but its serial {} did not; secondaries will not transfer the change (bump the SOA serial)",
                        file.file.display(),
                        zone.origin,
                        zone.serial
                    );
                    state.metrics.serial_unchanged.fetch_add(1, Relaxed);
                }
                Some(_) => {}
                None => next = next.with_zone(zone.clone()),
            }
        }
        Ok::<_, anyhow::Error>(next)
    });
    if let Err(err) = result {
        log::error!("updating the XDP maps failed: {err:#}; restoring the previous zones");
        state.metrics.reloads_failed.fetch_add(1, Relaxed);
        return;
    }
    state.metrics.reloads_ok.fetch_add(1, Relaxed);
    for zone in state.zones.load().iter() {
        log::info!("serving zone {} serial {}", zone.origin, zone.serial);
    }
}
