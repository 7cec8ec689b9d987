//! SIGHUP: the zone files read again and published, and the configuration file's rate-limiting
//! keys applied live to both limiters; on any error the previous zones or settings keep serving.
//! Owns what a reload keeps (zones not from files, served versions newer than their file); calls
//! the zone loader, the publisher and the limiters.

use std::sync::atomic::Ordering::Relaxed;

use super::log_rrl;
use crate::config::Settings;
use crate::load_zones;
use crate::publish::Publisher;
use crate::rrl::Limiter;
use crate::zone::{Severity, serial_newer};

/// SIGHUP: reads every zone file again; on any error the previous zones keep serving. Zones not
/// from files (secondaries) stay, and so does a served version newer than its file (changes
/// made through the API, which live in the journal). The error says why nothing changed.
pub(super) fn zones(publisher: &Publisher, settings: &Settings) -> Result<(), String> {
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
            let errors: Vec<String> =
                diags.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect();
            return Err(errors.join("\n"));
        }
    };
    for w in &warnings {
        log::warn!("{w}");
    }
    let result = publisher.update(|served| {
        let mut next = zones;
        for zone in served.iter() {
            match next.get(&zone.origin) {
                Some(file) if serial_newer(zone.serial, file.serial) => {
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
        return Err(format!("updating the XDP maps failed: {err:#}"));
    }
    state.metrics.reloads_ok.fetch_add(1, Relaxed);
    for zone in state.zones.load().iter() {
        log::info!("serving zone {} serial {}", zone.origin, zone.serial);
    }
    Ok(())
}

/// SIGHUP: the rate-limiting keys of the config file, applied live to both limiters (the XDP
/// program keeps running; buckets are kept). A bad setting keeps the previous ones.
pub(super) fn rate_limits(limiter: &Limiter, publisher: &Publisher, settings: &Settings) {
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
