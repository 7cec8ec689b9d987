//! `dns-xdp serve` as a script: start (startup.rs), wait for signals, reload on SIGHUP
//! (reload.rs), report rate limiting and rebalance the hot set on a timer, and drain on
//! SIGTERM/SIGINT. Owns the daemon's life; calls every part it starts, and only main.rs calls it.

mod reload;
mod startup;
mod systemd;

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::Settings;
use crate::rrl::{LimitLog, RrlSettings};
use crate::zone::Diagnostic;
use startup::Daemon;

/// How often the rate limiter reports prefixes that start or stop being limited.
const RRL_REPORT_PERIOD: Duration = Duration::from_secs(5);

/// Why `serve` stopped short of serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A zone file does not load: every problem found, errors and warnings.
    #[error("the zones do not load")]
    Zones(Vec<Diagnostic>),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// Serves until SIGTERM or SIGINT, then detaches XDP and stops the listeners.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let daemon = startup::start(&settings)?;
    systemd::ready(&daemon.state, &daemon.xdp);
    // Wait: SIGHUP reloads, SIGTERM/SIGINT stop.
    let mut hup = signal(SignalKind::hangup()).map_err(anyhow::Error::from)?;
    let mut term = signal(SignalKind::terminate()).map_err(anyhow::Error::from)?;
    let mut report = tokio::time::interval(RRL_REPORT_PERIOD);
    let mut limit_log = LimitLog::default();
    // `POST /v1/reload` on the control API: the same reload as SIGHUP, answered with its outcome.
    let (reload_tx, mut reload_requests) = tokio::sync::mpsc::channel(1);
    daemon.replication.take_reload_requests(reload_tx);
    // Pinged from this loop, so a loop that hangs stops the pings and systemd restarts us. The
    // interval's period is unused when the unit sets no watchdog (its branch is disabled).
    let watchdog_period = systemd::watchdog_period();
    let mut watchdog = tokio::time::interval(watchdog_period.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = reload(&daemon, &settings);
            }
            Some(asked) = reload_requests.recv() => {
                let _ = asked.send(reload(&daemon, &settings));
            }
            _ = report.tick() => tick(&daemon, &mut limit_log),
            _ = watchdog.tick(), if watchdog_period.is_some() => systemd::watchdog(),
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    // Drain: detach XDP first so the kernel stops answering, then stop the listeners.
    systemd::stopping();
    log::info!("stopping: detaching XDP");
    drop(daemon.publisher.take_xdp());
    for task in daemon.tasks {
        task.abort();
    }
    Ok(())
}

/// SIGHUP: the zone files and the rate-limiting keys read again, with the service manager told
/// (RELOADING=1, then READY=1 with the serials now served). The error: why the zone files were
/// not taken (the previous zones keep serving).
fn reload(daemon: &Daemon, settings: &Settings) -> Result<(), String> {
    systemd::reloading();
    let zones = reload::zones(&daemon.publisher, settings);
    reload::rate_limits(&daemon.limiter, &daemon.publisher, settings);
    if let Some(certs) = &settings.encrypted.certs {
        crate::encrypted::reload(certs);
    }
    systemd::ready(&daemon.state, &daemon.xdp);
    zones
}

/// Every `RRL_REPORT_PERIOD`: logs the prefixes both limiters started or stopped limiting, and
/// promotes the names the daemon answered most since the last tick into the kernel (hot set).
fn tick(daemon: &Daemon, limit_log: &mut LimitLog) {
    let (limiter, publisher, state) = (&daemon.limiter, &daemon.publisher, &daemon.state);
    let mut limiting: Vec<_> = limiter.take_limiting().into_iter().collect();
    if let Some(more) = publisher.with_xdp(|xdp| xdp.program.rrl_limiting()) {
        limiting.extend(more);
    }
    if let Some(Err(err)) = publisher.with_xdp(|xdp| xdp.answers.rebalance(&state.zones.load(), state.edns_payload)) {
        log::warn!("hot set: {err:#}");
    }
    limit_log.report(limiting, &limiter.settings(), RRL_REPORT_PERIOD);
}

/// Logs the rate-limiting settings in force (at start and when SIGHUP changes them).
fn log_rrl(rrl: &RrlSettings) {
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
