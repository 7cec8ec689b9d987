//! Replication with DNS's own machinery: a primary journals every change (journal.rs, compacted
//! into snapshots by persist.rs), serves AXFR/IXFR as a stream (outgoing.rs) from a bounded
//! history (history.rs), at most `--xfr-out-max` at once, and sends NOTIFY (notify.rs) to its
//! fleet; secondaries pull on NOTIFY or on the SOA timers (secondary.rs, xfr.rs); the control API
//! counts which nodes serve a new serial (quorum.rs). Transfers and NOTIFY are TSIG-signed when
//! keys are configured (tsig.rs).

pub mod history;
pub mod journal;
pub mod message;
pub mod notify;
pub mod outgoing;
pub mod persist;
pub mod quorum;
pub mod secondary;
pub mod tsig;
pub mod warn_limit;
pub mod xfr;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};

use dns_xdp_common::dns::{FLAG_AA, FLAG_QR, FLAG_RD, OPCODE_MASK, OPCODE_NOTIFY, OPCODE_QUERY, rcode, rtype};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::config::ReplicationSettings;
use crate::name::Name;
use crate::publish::Publisher;
use crate::rrl::Cidr;
use crate::store::StoreError;
use crate::zone::Zone;
use history::{History, Tail};
use journal::Changeset;
use message::Builder;
use persist::{Role, Store};
use tsig::{Key, KeyError};

/// A reload asked through the control API, answered with its outcome (the error: why the zone
/// files were not taken).
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<(), String>>;

/// A zone we are secondary for: its name, its primary, and the NOTIFY receiver its task waits on.
pub type Secondary = (Name, SocketAddr, mpsc::Receiver<()>);

pub struct Replication {
    pub publisher: Arc<Publisher>,
    pub config: ReplicationSettings,
    /// The signing keys of `config.tsig_keys`: when any is set, transfers and NOTIFY must be
    /// signed with one of the keys valid for the peer (tsig.rs), and ours to a peer are signed
    /// with its first key.
    keys: Vec<Key>,
    history: Mutex<HashMap<Name, History>>,
    notify_tx: HashMap<Name, mpsc::Sender<()>>,
    /// Serialises API writes (each reads the served version and derives the next).
    pub write: tokio::sync::Mutex<()>,
    /// Refused NOTIFYs and transfers are logged through this.
    warnings: warn_limit::WarnLimit,
    /// Slots of outgoing transfers (`--xfr-out-max`), each held until its transfer is dropped.
    xfr_out: Arc<Semaphore>,
    /// Where the control API sends reload requests: the daemon's signal loop, which runs them as
    /// SIGHUP (daemon/mod.rs). Unset until that loop runs.
    reload: OnceLock<mpsc::Sender<ReloadRequest>>,
}

/// What `intercept` answers with: messages ready now, or a zone transfer rendering its messages
/// as they are taken, which holds its `--xfr-out-max` slot until it is dropped (finished, or its
/// connection gone).
pub enum Replies {
    Ready(std::vec::IntoIter<Vec<u8>>),
    /// Boxed: a transfer (its TSIG state, its message) is some 900 bytes, a single answer 32.
    Transfer(Box<outgoing::Transfer>, OwnedSemaphorePermit),
}

impl Replies {
    pub fn one(msg: Vec<u8>) -> Replies {
        Replies::Ready(vec![msg].into_iter())
    }
}

impl Iterator for Replies {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Replies::Ready(msgs) => msgs.next(),
            Replies::Transfer(transfer, _slot) => transfer.next(),
        }
    }
}

/// Why a write was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("writing the journal {0}")]
    Journal(persist::PersistError),
    #[error(transparent)]
    Publish(#[from] StoreError),
}

/// Why replication could not start: a key it cannot use, a journal it cannot open, or a
/// replayed version the maps would not take.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("tsig_key {name}: {err}")]
    Key { name: Name, err: KeyError },
    #[error("creating the journal directory {}: {err}", .dir.display())]
    JournalDir { dir: std::path::PathBuf, err: std::io::Error },
    #[error("syncing {}: {err}", .dir.display())]
    SyncDir { dir: std::path::PathBuf, err: std::io::Error },
    #[error("zone {zone}: opening its journal: {err}")]
    Journal { zone: Name, err: persist::PersistError },
    #[error(transparent)]
    Publish(#[from] StoreError),
}

/// Why a secondary's pull did not go live; the version served stays.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Transfer(#[from] xfr::XfrError),
    #[error("IXFR without a current version")]
    NoCurrent,
    #[error(transparent)]
    Apply(#[from] journal::ApplyError),
    #[error(transparent)]
    Publish(#[from] StoreError),
}

impl Replication {
    /// Sets up replication and replays the journals over the zones loaded from files. Returns
    /// the receivers the secondary tasks wait on for NOTIFY.
    pub fn new(
        publisher: Arc<Publisher>,
        mut config: ReplicationSettings,
    ) -> Result<(Arc<Self>, Vec<Secondary>), SetupError> {
        let keys = config
            .tsig_keys
            .iter()
            .map(|k| {
                Key::new(k.name.clone(), k.algorithm, &k.secret, k.peers.clone())
                    .map_err(|err| SetupError::Key { name: k.name.clone(), err })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if config.allow_transfer.is_empty() {
            config.allow_transfer =
                config.nodes.iter().map(|n| Cidr { addr: n.ip(), len: if n.is_ipv4() { 32 } else { 128 } }).collect();
        }
        let mut history = HashMap::new();
        if let Some(dir) = &config.journal {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|err| SetupError::JournalDir { dir: dir.clone(), err })?;
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    journal::sync_dir(parent).map_err(|err| SetupError::SyncDir { dir: parent.to_path_buf(), err })?;
                }
            }
            let zones = publisher.state.zones.load_full();
            for zone in zones.iter() {
                let (store, snapshot) = Store::open(dir, &zone.origin, Role::Primary, config.journal_max_size)
                    .map_err(|err| SetupError::Journal { zone: zone.origin.clone(), err })?;
                let snapshot_serial = snapshot.as_ref().map(|s| s.serial);
                let (restored, applied) = store.restore(snapshot, Some(zone)).expect("a zone file");
                if restored.serial != zone.serial {
                    log::info!(
                        "zone {}: replayed {applied} journal changes, serial {} -> {}{}",
                        zone.origin,
                        zone.serial,
                        restored.serial,
                        snapshot_serial.map(|s| format!(" (snapshot at serial {s})")).unwrap_or_default()
                    );
                    let restored = Arc::new(restored);
                    publisher.update(|set| Ok::<_, StoreError>(set.with_zone(restored)))?;
                }
                history.insert(zone.origin.clone(), History::Stored(store));
            }
            // Secondaries start from the serial they persisted and catch up by IXFR from there.
            for (origin, primary) in &config.secondaries {
                let (store, snapshot) = match Store::open(dir, origin, Role::Secondary, config.journal_max_size) {
                    Ok(opened) => opened,
                    Err(err) => {
                        log::warn!("zone {origin}: {err}; starting without history (AXFR)");
                        continue;
                    }
                };
                if let Some((zone, _)) = store.restore(snapshot, None) {
                    log::info!(
                        "zone {origin}: persisted serial {} ({} journal changes), catching up from {primary}",
                        zone.serial,
                        store.journal.changes.len()
                    );
                    let zone = Arc::new(zone);
                    publisher.update(|set| Ok::<_, StoreError>(set.with_zone(zone)))?;
                }
                history.insert(origin.clone(), History::Stored(store));
            }
        }
        let mut notify_tx = HashMap::new();
        let mut receivers = Vec::new();
        for (zone, primary) in &config.secondaries {
            let (tx, rx) = mpsc::channel(4);
            notify_tx.insert(zone.clone(), tx);
            receivers.push((zone.clone(), *primary, rx));
        }
        let repl = Replication {
            publisher,
            history: Mutex::new(history),
            notify_tx,
            write: tokio::sync::Mutex::new(()),
            warnings: Default::default(),
            xfr_out: Arc::new(Semaphore::new(config.xfr_out_max)),
            config,
            keys,
            reload: OnceLock::new(),
        };
        Ok((Arc::new(repl), receivers))
    }

    /// The daemon's signal loop takes the control API's reload requests from here on.
    pub fn take_reload_requests(&self, to: mpsc::Sender<ReloadRequest>) {
        let _ = self.reload.set(to);
    }

    /// Reloads the zone files as SIGHUP does and waits for the outcome.
    pub async fn reload(&self) -> Result<(), String> {
        let to = self.reload.get().ok_or("the daemon is still starting")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        to.send(tx).await.map_err(|_| "the daemon is stopping")?;
        rx.await.map_err(|_| "the daemon is stopping")?
    }

    /// The key messages to `peer` are signed with.
    pub fn key_for(&self, peer: IpAddr) -> Option<&Key> {
        tsig::key_for(&self.keys, peer)
    }

    /// Every configured key (the quorum poller picks each node's).
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn is_secondary(&self, zone: &Name) -> bool {
        self.notify_tx.contains_key(zone)
    }

    /// The version of `zone` being served.
    pub fn current(&self, zone: &Name) -> Option<Arc<Zone>> {
        self.publisher.state.zones.load().get(zone).cloned()
    }

    /// Makes `new` the served version of its zone: journal first (fsync), then publish, then
    /// NOTIFY the fleet. The caller holds `write`.
    pub fn commit(&self, new: Zone) -> Result<u32, CommitError> {
        self.commit_touching(new, None)
    }

    /// `commit` for a change to the RRsets `touched` (owner, type) alone: the journal entry
    /// and the kernel's update come from those, not from comparing the whole zone.
    pub fn commit_touching(&self, new: Zone, touched: Option<&[(Name, u16)]>) -> Result<u32, CommitError> {
        let origin = new.origin.clone();
        let serial = new.serial;
        let old = self.current(&origin);
        if let Some(old) = &old {
            let change = match touched {
                Some(pairs) if !old.signed && !new.signed => Changeset::of_rrsets(old, &new, pairs),
                _ => Changeset::between(old, &new),
            };
            self.with_history(&origin, |h| h.record(Arc::new(change))).map_err(CommitError::Journal)?;
        }
        let new = Arc::new(new);
        let owners: Option<Vec<Name>> = touched.map(|pairs| pairs.iter().map(|(owner, _)| owner.clone()).collect());
        if let Err(err) =
            self.publisher.update_touching(|set| Ok::<_, StoreError>(set.with_zone(new.clone())), owners.as_deref())
        {
            // Not served, so not acknowledged: take it off the journal before answering, or a
            // later write reusing the serial would be shadowed by it on replay.
            if old.is_some() {
                self.with_history(&origin, History::unrecord_last);
            }
            return Err(err.into());
        }
        // Only now: a snapshot must never hold a version that was not served.
        self.compact_if_due(&new);
        self.notify_fleet(&new);
        Ok(serial)
    }

    /// Runs `f` on the history of `origin` (in memory only when nothing was opened for it).
    fn with_history<T>(&self, origin: &Name, f: impl FnOnce(&mut History) -> T) -> T {
        let mut history = self.history.lock().expect("history lock");
        let h =
            history.entry(origin.clone()).or_insert_with(|| History::Memory(Tail::new(self.config.journal_max_size)));
        f(h)
    }

    /// Compacts `zone`'s journal when it outgrew `--journal-max-size`: `zone` (the newest version,
    /// the one its last change leads to) becomes the snapshot, then the journal keeps its tail.
    fn compact_if_due(&self, zone: &Zone) {
        let due = self.with_history(&zone.origin, |h| match h {
            History::Stored(store) if store.compaction_due() => Some(store.snapshot_path().to_path_buf()),
            _ => None,
        });
        if let Some(path) = due {
            self.snapshot(zone, &path);
        }
    }

    /// Writes `zone` as its snapshot at `path`, outside the history lock (transfers keep being
    /// served meanwhile), then folds the journal into it. A failure is logged and changes
    /// nothing durable: the journal still holds every change.
    fn snapshot(&self, zone: &Zone, path: &std::path::Path) {
        let started = std::time::Instant::now();
        let done = persist::write_snapshot(path, zone).and_then(|()| {
            self.with_history(&zone.origin, |h| match h {
                History::Stored(store) => store.compact(zone.serial).map(|()| store.journal.len()),
                History::Memory(_) => Ok(0),
            })
        });
        match done {
            Ok(left) => log::info!(
                "zone {}: snapshot at serial {} written in {:?}; {left} bytes of journal kept",
                zone.origin,
                zone.serial,
                started.elapsed()
            ),
            Err(err) => log::error!("zone {}: compacting the journal: {err} (it keeps growing)", zone.origin),
        }
    }

    /// Sends NOTIFY for `zone` to every node, in the background.
    pub fn notify_fleet(&self, zone: &Zone) {
        for node in &self.config.nodes {
            tokio::spawn(notify::send_with_retries(
                *node,
                zone.origin.clone(),
                zone.soa_record(),
                self.key_for(node.ip()).cloned(),
                self.config.source,
            ));
        }
    }

    /// A secondary's transfer result goes live (or is rejected, keeping the old version).
    pub fn apply_pulled(&self, origin: &Name, pulled: xfr::Pulled) -> Result<Option<u32>, PullError> {
        let new = match pulled {
            xfr::Pulled::UpToDate => return Ok(None),
            xfr::Pulled::Full(zone) => {
                let persisted = self.with_history(origin, |h| {
                    h.forget();
                    match h {
                        History::Stored(store) => Some(store.snapshot_path().to_path_buf()),
                        History::Memory(_) => None,
                    }
                });
                // A new snapshot, and an empty journal: its changes do not lead to this version.
                if let Some(path) = persisted {
                    self.snapshot(&zone, &path);
                }
                zone
            }
            xfr::Pulled::Incremental(changes) => {
                let mut zone = Zone::clone(&*self.current(origin).ok_or(PullError::NoCurrent)?);
                for cs in &changes {
                    zone = cs.apply(&zone)?;
                }
                // The tiers below us are served IXFR from this history.
                let recorded =
                    self.with_history(origin, |h| changes.into_iter().try_for_each(|cs| h.record(Arc::new(cs))));
                if let Err(err) = recorded {
                    log::warn!("zone {origin}: persisting serial {}: {err} (serving it anyway)", zone.serial);
                }
                zone
            }
        };
        let serial = new.serial;
        let new = Arc::new(new);
        self.publisher.update(|set| Ok::<_, StoreError>(set.with_zone(new.clone())))?;
        self.compact_if_due(&new);
        Ok(Some(serial))
    }

    /// A secondary zone past its SOA EXPIRE without contact stops being served (RFC 1035 3.3.13).
    pub fn expire(&self, origin: &Name) {
        let _ = self.publisher.update(|set| Ok::<_, StoreError>(set.without(origin)));
    }

    fn transfer_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.config.allow_transfer.iter().any(|c| c.contains(ip))
    }

    /// The replication messages the listeners hand over before normal query processing: NOTIFY
    /// and, over TCP, AXFR/IXFR. `None`: not ours (the normal policy answers, refusing transfers
    /// and NOTIFYs for zones we are no secondary of).
    pub fn intercept(&self, raw: &[u8], peer: SocketAddr, tcp: bool) -> Option<Replies> {
        let opcode = (*raw.get(2)? >> 3) & 0xf;
        // A signed query (a secondary's SOA refresh check, RFC 1996 section 3.11) is ours on UDP too.
        let signed = raw.get(10..12).is_some_and(|ar| ar != [0, 0]) && !self.keys.is_empty();
        if raw[2] & 0x80 != 0 || (opcode != OPCODE_NOTIFY && !(opcode == OPCODE_QUERY && (tcp || signed))) {
            return None;
        }
        let msg = message::parse(raw)?;
        let (zone, qtype, _) = msg.question.clone()?;
        let tsig_present = msg.additional.last().is_some_and(|r| r.rtype == rtype::TSIG);
        match opcode {
            OPCODE_NOTIFY => {
                let primary = self.config.secondaries.iter().find(|(z, _)| *z == zone).map(|(_, p)| p.ip());
                primary?;
                let from_primary = primary.is_some_and(|p| canonical(p) == canonical(peer.ip()));
                if !from_primary && !self.transfer_allowed(peer.ip()) {
                    self.warnings.warn(|| format!("NOTIFY for {zone} from {peer} refused: not our primary"));
                    return Some(Replies::one(reply(&msg, &zone, qtype, rcode::REFUSED)));
                }
                let mut verified = match self.check_tsig(raw, &zone, peer, "NOTIFY") {
                    Ok(verified) => verified,
                    Err(refusal) => return Some(Replies::one(refusal)),
                };
                if let Some(tx) = self.notify_tx.get(&zone) {
                    let _ = tx.try_send(());
                }
                let mut out = reply(&msg, &zone, qtype, rcode::NOERROR);
                if let Some(v) = verified.as_mut()
                    && let Err(err) = v.sign(&mut out, tsig::now())
                {
                    self.warnings.warn(|| format!("signing the NOTIFY answer to {peer}: {err}"));
                }
                Some(Replies::one(out))
            }
            // A secondary's signed SOA query: answered signed with its key (Knot and BIND check
            // the primary's serial this way before an IXFR). Unsigned ones take the normal path.
            _ if qtype == rtype::SOA && tsig_present && !self.keys.is_empty() && self.transfer_allowed(peer.ip()) => {
                let mut verified = match self.check_tsig(raw, &zone, peer, "SOA query") {
                    Ok(verified) => verified,
                    Err(refusal) => return Some(Replies::one(refusal)),
                };
                let current = self.current(&zone)?;
                let mut b = Builder::new(msg.id, FLAG_QR | FLAG_AA | (msg.flags & FLAG_RD), Some((&zone, qtype)));
                b.push(message::Section::Answer, &current.soa_record());
                let mut out = b.buf;
                if let Some(v) = verified.as_mut()
                    && let Err(err) = v.sign(&mut out, tsig::now())
                {
                    self.warnings.warn(|| format!("signing the SOA answer to {peer}: {err}"));
                }
                Some(Replies::one(out))
            }
            _ if tcp && (qtype == rtype::AXFR || qtype == rtype::IXFR) => {
                if !self.transfer_allowed(peer.ip()) {
                    return None;
                }
                let verified = match self.check_tsig(raw, &zone, peer, "transfer") {
                    Ok(verified) => verified,
                    Err(refusal) => return Some(Replies::one(refusal)),
                };
                let Some(current) = self.current(&zone) else {
                    return Some(Replies::one(reply(&msg, &zone, qtype, rcode::NOTAUTH)));
                };
                let metrics = &self.publisher.state.metrics;
                // Over the cap: SERVFAIL at once, as BIND answers past `transfers-out`; the
                // secondary retries after its SOA RETRY.
                let Ok(slot) = self.xfr_out.clone().try_acquire_owned() else {
                    metrics.xfr_out_busy.fetch_add(1, Relaxed);
                    self.warnings.warn(|| {
                        format!("transfer of {zone} to {peer}: SERVFAIL, {} transfers running", self.config.xfr_out_max)
                    });
                    let mut out = reply(&msg, &zone, qtype, rcode::SERVFAIL);
                    if let Some(mut v) = verified
                        && let Err(err) = v.sign(&mut out, tsig::now())
                    {
                        log::warn!("signing the SERVFAIL to {peer}: {err}");
                    }
                    return Some(Replies::one(out));
                };
                metrics.xfr_out_started.fetch_add(1, Relaxed);
                let client_serial = (qtype == rtype::IXFR)
                    .then(|| {
                        msg.authority
                            .iter()
                            .find(|r| r.rtype == rtype::SOA)
                            .and_then(|r| crate::zone::soa_serial(&r.rdata))
                    })
                    .flatten();
                // Only the changes' `Arc`s are taken under the lock; the zone is an `Arc` already.
                let chain = client_serial.and_then(|s| {
                    let history = self.history.lock().expect("history lock");
                    history.get(&zone).and_then(|h| history::chain_from(h.changes(), s, current.serial))
                });
                let serial = current.serial;
                let transfer = outgoing::Transfer::new(msg.id, qtype, current, client_serial, chain, verified);
                let how = match (client_serial, transfer.kind) {
                    (Some(from), outgoing::Kind::WholeZone) => format!(" from serial {from} (whole zone)"),
                    (Some(from), _) => format!(" from serial {from}"),
                    (None, _) => String::new(),
                };
                log::info!(
                    "{} of {zone} serial {serial} to {peer}{how}",
                    if qtype == rtype::AXFR { "AXFR" } else { "IXFR" }
                );
                Some(Replies::Transfer(Box::new(transfer), slot))
            }
            _ => None,
        }
    }

    /// With keys configured the request must carry a valid TSIG with one of the peer's keys:
    /// `Ok(Some(verified))` signs the answers; without keys, `Ok(None)`. `Err(reply)` refuses
    /// with the RFC 8945 error reply (BADSIG, BADKEY, signed BADTIME; REFUSED when unsigned).
    fn check_tsig(
        &self,
        raw: &[u8],
        zone: &Name,
        peer: SocketAddr,
        what: &str,
    ) -> Result<Option<tsig::Verified>, Vec<u8>> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        match tsig::verify_request(raw, &self.keys, peer.ip(), tsig::now()) {
            Ok(verified) => Ok(Some(verified)),
            Err(refusal) => {
                self.warnings.warn(|| format!("{what} of {zone} from {peer} refused: TSIG: {}", refusal.reason));
                Err(refusal.reply)
            }
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A header-and-question reply with `rc`, mirroring the request's opcode and ID.
fn reply(msg: &message::Message, zone: &Name, qtype: u16, rc: u16) -> Vec<u8> {
    let flags = FLAG_QR | (msg.flags & OPCODE_MASK) | FLAG_AA | (rc & 0xf);
    Builder::new(msg.id, flags, Some((zone, qtype))).buf
}

/// example.org at `serial` with an SOA, an NS and its address, plus the zone-file lines `extra`:
/// the zone the replication tests change.
#[cfg(test)]
fn test_zone(serial: u32, extra: &str) -> Zone {
    let origin = Name::from_text("example.org").unwrap();
    let text = format!("@ 300 IN SOA ns1 host {serial} 2 3 4 60\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n{extra}");
    crate::zone::zone_from_records("test", crate::zone::parse_records(&text, &origin).unwrap()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::test_zone as zone;
    use super::*;
    use crate::zone::ZoneSet;

    fn replication(dir: &std::path::Path) -> Arc<Replication> {
        replication_with(ReplicationSettings { journal: Some(dir.to_path_buf()), ..Default::default() })
    }

    fn replication_with(config: ReplicationSettings) -> Arc<Replication> {
        let set = ZoneSet::default().with_zone(Arc::new(zone(1, "")));
        let state = Arc::new(crate::state::State {
            zones: arc_swap::ArcSwap::from_pointee(set),
            metrics: Default::default(),
            edns_payload: 1232,
            chaos: Default::default(),
            cookies: crate::cookie::Cookies::new([7; 16]),
            demand: Default::default(),
        });
        Replication::new(Arc::new(Publisher::new(state, None)), config).unwrap().0
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dnsxdp-repl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Writes past `--journal-max-size` compact the journal (the old one grew with every write)
    /// and a restart still serves the last acknowledged write, from the snapshot and the tail.
    #[test]
    fn writes_past_the_journal_cap_compact_and_survive_a_restart() {
        let dir = scratch("compact");
        let max = 4096;
        let config = ReplicationSettings { journal: Some(dir.clone()), journal_max_size: max, ..Default::default() };
        let repl = replication_with(config.clone());
        let journal = journal::path_for(&dir, &zone(1, "").origin);
        let mut last = zone(1, "");
        let mut largest = 0;
        for serial in 2..=200 {
            last = zone(serial, &format!("www 60 IN A 192.0.2.{}\nmx 60 IN MX 10 www\n", serial % 250));
            repl.commit(last.clone()).unwrap();
            largest = largest.max(std::fs::metadata(&journal).unwrap().len());
        }
        // One change past the cap triggers the compaction that brings it back under half.
        assert!(largest <= max + 256, "journal peaked at {largest} bytes");
        assert!(journal.with_extension("snapshot").exists());
        let kept = repl.history.lock().unwrap()[&last.origin].changes().len();
        assert!(kept > 0, "a tail serves IXFR");
        drop(repl);
        let repl = replication_with(config);
        let served = repl.current(&last.origin).unwrap();
        assert_eq!((served.serial, served.records()), (200, last.records()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The old code served any number of transfers at once; now the one past `--xfr-out-max` is
    /// answered SERVFAIL and counted, and a slot comes back when a transfer is dropped.
    #[test]
    fn transfers_past_the_cap_get_servfail_until_one_ends() {
        let allow = vec!["127.0.0.0/8".parse().unwrap()];
        let repl =
            replication_with(ReplicationSettings { xfr_out_max: 2, allow_transfer: allow, ..Default::default() });
        let origin = zone(1, "").origin;
        let query = Builder::new(5, 0, Some((&origin, rtype::AXFR))).buf;
        let peer: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let ask = || repl.intercept(&query, peer, true).expect("a transfer request is ours");
        let first = ask();
        let second = ask();
        assert!(matches!((&first, &second), (Replies::Transfer(..), Replies::Transfer(..))));
        let refused: Vec<Vec<u8>> = ask().collect();
        assert_eq!(refused.len(), 1);
        let m = message::parse(&refused[0]).unwrap();
        assert_eq!((m.id, m.rcode(), m.answer.len()), (5, rcode::SERVFAIL, 0));
        let metrics = &repl.publisher.state.metrics;
        assert_eq!((metrics.xfr_out_started.load(Relaxed), metrics.xfr_out_busy.load(Relaxed)), (2, 1));
        // A transfer ends (sent, or its connection gone): its slot is free again.
        assert!(first.count() > 0);
        assert!(matches!(ask(), Replies::Transfer(..)));
    }

    /// A write whose publish fails after the journal fsync is not acknowledged, so it must not
    /// survive in the journal: the old code left it there, and replay then served it instead of
    /// the later acknowledged write that reused its serial.
    #[test]
    fn a_failed_publish_rolls_the_journal_back() {
        let dir = scratch("rollback");
        let repl = replication(&dir);
        repl.publisher.fail_next.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(repl.commit(zone(2, "lost 60 IN A 192.0.2.66\n")), Err(CommitError::Publish(_))));
        assert_eq!(repl.current(&zone(1, "").origin).unwrap().serial, 1, "still serving the old version");
        let acked = zone(2, "kept 60 IN A 192.0.2.77\n");
        assert_eq!(repl.commit(acked.clone()).unwrap(), 2);
        drop(repl);
        // Restart: the journal replays to the acknowledged write.
        let repl = replication(&dir);
        let served = repl.current(&acked.origin).unwrap();
        assert_eq!(served.records(), acked.records());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
