//! A secondary zone: pull from the primary at start, on each NOTIFY and on the SOA timers
//! (REFRESH after success, RETRY after failure, EXPIRE without contact: stop serving). A broken
//! or interrupted transfer changes nothing; the previous version keeps serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::xfr;
use super::{PullError, Replication};
use crate::name::Name;

/// Before the first successful transfer, retry this often.
const INITIAL_RETRY: Duration = Duration::from_secs(1);

pub async fn run(repl: Arc<Replication>, zone: Name, primary: SocketAddr, mut notified: mpsc::Receiver<()>) {
    let mut wait = Duration::ZERO;
    // A version persisted before a restart (persist.rs) is served at once; EXPIRE counts from here.
    let mut last_contact: Option<Instant> = repl.current(&zone).map(|_| Instant::now());
    let mut force_axfr = false;
    loop {
        tokio::select! {
            _ = notified.recv() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        while notified.try_recv().is_ok() {}
        let current = if force_axfr { None } else { repl.current(&zone) };
        let key = repl.key_for(primary.ip());
        let pulled =
            xfr::pull(primary, &zone, current.as_deref(), key, repl.config.xfr_limits, repl.config.source).await;
        let timers = repl.current(&zone).map(|z| z.soa_timers());
        let how = match &pulled {
            Ok(xfr::Pulled::Full(_)) => "AXFR".to_string(),
            Ok(xfr::Pulled::Incremental(c)) => format!("IXFR, {} changes", c.len()),
            _ => String::new(),
        };
        match pulled.map_err(PullError::from).and_then(|p| repl.apply_pulled(&zone, p)) {
            Ok(serial) => {
                last_contact = Some(Instant::now());
                force_axfr = false;
                if let Some(serial) = serial {
                    log::info!("zone {zone}: serving serial {serial} from {primary} ({how})");
                }
                wait = timers.map_or(INITIAL_RETRY, |(refresh, _, _)| Duration::from_secs(refresh.into()));
            }
            Err(err) => {
                log::warn!("zone {zone}: {err}; keeping the version served");
                // A change that does not apply: the next attempt takes the whole zone.
                force_axfr = current.is_some() && !matches!(err, PullError::Transfer(xfr::XfrError::Connect(..)));
                wait = timers.map_or(INITIAL_RETRY, |(_, retry, _)| Duration::from_secs(retry.into()));
                if let (Some((_, _, expire)), Some(t)) = (timers, last_contact)
                    && t.elapsed() > Duration::from_secs(expire.into())
                {
                    log::error!("zone {zone}: no contact with {primary} for longer than EXPIRE; no longer served");
                    repl.expire(&zone);
                    last_contact = None;
                }
            }
        }
    }
}
