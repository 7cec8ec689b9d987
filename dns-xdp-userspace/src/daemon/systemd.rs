//! Telling the service manager what the daemon is doing (sd_notify(3), for `Type=notify` units):
//! READY once every zone is served and XDP attached, RELOADING/READY around a reload, STOPPING at
//! the drain, a STATUS line with the zones, their serials and the XDP mode, and the watchdog
//! ping. Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::state::State;

/// Zones named on the STATUS line; more are counted, not listed (`systemctl status` shows one line).
const STATUS_ZONES: usize = 4;

/// Sends `states`; a failure is logged, never fatal (the daemon serves without a manager too).
fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        log::warn!("sd_notify: {err}");
    }
}

/// READY=1 with the STATUS line: every zone is served and XDP attached as asked.
pub(super) fn ready(state: &State, xdp: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(&status_line(state, xdp))]);
}

/// RELOADING=1 with the time it began (systemd 253 and later want MONOTONIC_USEC beside it, to
/// tell this reload from an earlier one).
pub(super) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(err) => log::warn!("sd_notify: reading CLOCK_MONOTONIC: {err}"),
    }
}

/// STOPPING=1: the drain has begun.
pub(super) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// WATCHDOG=1: the main loop is alive.
pub(super) fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog: half its timeout (as sd_watchdog_enabled(3) advises), or
/// `None` when the unit sets no `WatchdogSec=` (or it is meant for another process).
pub(super) fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| (timeout / 2).max(Duration::from_millis(1)))
}

/// "2 zones: example.com. 2026112101, example.net. 7; XDP native on eth0".
fn status_line(state: &State, xdp: &str) -> String {
    let zones = state.zones.load();
    let mut listed: Vec<String> =
        zones.iter().take(STATUS_ZONES).map(|z| format!("{} {}", z.origin, z.serial)).collect();
    if zones.len() > STATUS_ZONES {
        listed.push(format!("and {} more", zones.len() - STATUS_ZONES));
    }
    format!("{} zone(s): {}; XDP {xdp}", zones.len(), listed.join(", "))
}
