//! Replication with DNS's own machinery: a primary journals every change (journal.rs), serves
//! AXFR/IXFR (xfr.rs) and sends NOTIFY (notify.rs) to its fleet; secondaries pull on NOTIFY or
//! on the SOA timers (secondary.rs); the control API counts which nodes serve a new serial
//! (quorum.rs). Transfers and NOTIFY are TSIG-signed when keys are configured (tsig.rs).

pub mod journal;
pub mod message;
pub mod notify;
pub mod persist;
pub mod quorum;
pub mod secondary;
pub mod tsig;
pub mod warn_limit;
pub mod xfr;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dns_xdp_common::dns::{FLAG_AA, FLAG_QR, FLAG_RD, OPCODE_MASK, OPCODE_NOTIFY, OPCODE_QUERY, rcode, rtype};
use tokio::sync::mpsc;

use crate::config::ReplicationSettings;
use crate::name::Name;
use crate::publish::Publisher;
use crate::rrl::Cidr;
use crate::store::StoreError;
use crate::zone::Zone;
use journal::{Changeset, Journal};
use message::Builder;
use tsig::{Key, KeyError};

/// A zone's change history: the journal on a primary, in memory on a secondary (which with
/// `--journal` also persists what it transferred: `store`).
#[derive(Default)]
struct History {
    journal: Option<Journal>,
    mem: Vec<Changeset>,
    store: Option<persist::Store>,
}

impl History {
    fn changes(&self) -> &[Changeset] {
        self.journal.as_ref().map_or(&self.mem, |j| &j.changes)
    }
}

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
}

/// Why a write was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("writing the journal {0}: {1}")]
    Journal(PathBuf, std::io::Error),
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
    JournalDir { dir: PathBuf, err: std::io::Error },
    #[error("syncing {}: {err}", .dir.display())]
    SyncDir { dir: PathBuf, err: std::io::Error },
    #[error("opening the journal {}: {err}", .path.display())]
    Journal { path: PathBuf, err: std::io::Error },
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
                let path = journal::path_for(dir, &zone.origin);
                let (j, replay) =
                    Journal::open(&path).map_err(|err| SetupError::Journal { path: path.clone(), err })?;
                if replay.truncated > 0 {
                    log::warn!(
                        "{}: cut a torn tail of {} bytes (a write that was never acknowledged)",
                        path.display(),
                        replay.truncated
                    );
                }
                let base = Zone::clone(zone);
                let (replayed, applied) = j.replay(base);
                if applied > 0 {
                    log::info!(
                        "zone {}: replayed {applied} journal changes, serial {} -> {}",
                        zone.origin,
                        zone.serial,
                        replayed.serial
                    );
                    let replayed = Arc::new(replayed);
                    publisher.update(|set| Ok::<_, StoreError>(set.with_zone(replayed)))?;
                }
                history.insert(zone.origin.clone(), History { journal: Some(j), ..History::default() });
            }
            // Secondaries start from the serial they persisted and catch up by IXFR from there.
            for (origin, primary) in &config.secondaries {
                let (store, zone) = match persist::Store::open(dir, origin) {
                    Ok(opened) => opened,
                    Err(err) => {
                        log::warn!("zone {origin}: {err}; starting without history (AXFR)");
                        continue;
                    }
                };
                if let Some(zone) = zone {
                    log::info!(
                        "zone {origin}: persisted serial {} ({} journal changes), catching up from {primary}",
                        zone.serial,
                        store.journal.changes.len()
                    );
                    let zone = Arc::new(zone);
                    publisher.update(|set| Ok::<_, StoreError>(set.with_zone(zone)))?;
                }
                let mem = store.journal.changes.clone();
                history.insert(origin.clone(), History { store: Some(store), mem, ..History::default() });
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
            config,
            keys,
            history: Mutex::new(history),
            notify_tx,
            write: tokio::sync::Mutex::new(()),
            warnings: Default::default(),
        };
        Ok((Arc::new(repl), receivers))
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
            let mut history = self.history.lock().expect("history lock");
            let h = history.entry(origin.clone()).or_default();
            match &mut h.journal {
                Some(j) => j.append(change).map_err(|e| CommitError::Journal(j.path().to_path_buf(), e))?,
                None => h.mem.push(change),
            }
        }
        let new = Arc::new(new);
        let owners: Option<Vec<Name>> = touched.map(|pairs| pairs.iter().map(|(owner, _)| owner.clone()).collect());
        if let Err(err) =
            self.publisher.update_touching(|set| Ok::<_, StoreError>(set.with_zone(new.clone())), owners.as_deref())
        {
            // Not served, so not acknowledged: take it off the journal before answering, or a
            // later write reusing the serial would be shadowed by it on replay.
            if old.is_some() {
                self.unrecord_last(&origin);
            }
            return Err(err.into());
        }
        self.notify_fleet(&new);
        Ok(serial)
    }

    /// Rolls back the change `commit` just recorded for `origin` (truncate + fsync).
    fn unrecord_last(&self, origin: &Name) {
        let mut history = self.history.lock().expect("history lock");
        let Some(h) = history.get_mut(origin) else { return };
        match &mut h.journal {
            Some(j) => {
                if let Err(err) = j.rollback_last() {
                    log::error!(
                        "{}: rolling back an unpublished change: {err}; refusing writes until restart",
                        j.path().display()
                    );
                }
            }
            None => {
                h.mem.pop();
            }
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
            ));
        }
    }

    /// A secondary's transfer result goes live (or is rejected, keeping the old version).
    pub fn apply_pulled(&self, origin: &Name, pulled: xfr::Pulled) -> Result<Option<u32>, PullError> {
        let new = match pulled {
            xfr::Pulled::UpToDate => return Ok(None),
            xfr::Pulled::Full(zone) => {
                let mut history = self.history.lock().expect("history lock");
                let h = history.entry(origin.clone()).or_default();
                h.mem.clear();
                if let Some(Err(err)) = h.store.as_mut().map(|s| s.save_full(&zone)) {
                    log::warn!("zone {origin}: persisting serial {}: {err} (serving it anyway)", zone.serial);
                }
                zone
            }
            xfr::Pulled::Incremental(changes) => {
                let mut zone = Zone::clone(&*self.current(origin).ok_or(PullError::NoCurrent)?);
                for cs in &changes {
                    zone = cs.apply(&zone)?;
                }
                let mut history = self.history.lock().expect("history lock");
                let h = history.entry(origin.clone()).or_default();
                if let Some(Err(err)) = h.store.as_mut().map(|s| s.append(&changes, &zone)) {
                    log::warn!("zone {origin}: persisting serial {}: {err} (serving it anyway)", zone.serial);
                }
                let mem = &mut h.mem;
                mem.extend(changes);
                // A secondary serves IXFR to tiers below it from a bounded memory history.
                let excess = mem.len().saturating_sub(secondary::MEMORY_HISTORY);
                mem.drain(..excess);
                zone
            }
        };
        let serial = new.serial;
        let new = Arc::new(new);
        self.publisher.update(|set| Ok::<_, StoreError>(set.with_zone(new.clone())))?;
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
    pub fn intercept(&self, raw: &[u8], peer: SocketAddr, tcp: bool) -> Option<Vec<Vec<u8>>> {
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
                    return Some(vec![reply(&msg, &zone, qtype, rcode::REFUSED)]);
                }
                let mut verified = match self.check_tsig(raw, &zone, peer, "NOTIFY") {
                    Ok(verified) => verified,
                    Err(refusal) => return Some(vec![refusal]),
                };
                if let Some(tx) = self.notify_tx.get(&zone) {
                    let _ = tx.try_send(());
                }
                let mut out = reply(&msg, &zone, qtype, rcode::NOERROR);
                if let Some(v) = verified.as_mut()
                    && let Err(err) = v.sign(&mut out, tsig::now())
                {
                    log::warn!("signing the NOTIFY answer to {peer}: {err}");
                }
                Some(vec![out])
            }
            // A secondary's signed SOA query: answered signed with its key (Knot and BIND check
            // the primary's serial this way before an IXFR). Unsigned ones take the normal path.
            _ if qtype == rtype::SOA && tsig_present && !self.keys.is_empty() && self.transfer_allowed(peer.ip()) => {
                let mut verified = match self.check_tsig(raw, &zone, peer, "SOA query") {
                    Ok(verified) => verified,
                    Err(refusal) => return Some(vec![refusal]),
                };
                let current = self.current(&zone)?;
                let mut b = Builder::new(msg.id, FLAG_QR | FLAG_AA | (msg.flags & FLAG_RD), Some((&zone, qtype)));
                b.push(message::Section::Answer, &current.soa_record());
                let mut out = b.buf;
                if let Some(v) = verified.as_mut()
                    && let Err(err) = v.sign(&mut out, tsig::now())
                {
                    log::warn!("signing the SOA answer to {peer}: {err}");
                }
                Some(vec![out])
            }
            _ if tcp && (qtype == rtype::AXFR || qtype == rtype::IXFR) => {
                if !self.transfer_allowed(peer.ip()) {
                    return None;
                }
                let verified = match self.check_tsig(raw, &zone, peer, "transfer") {
                    Ok(verified) => verified,
                    Err(refusal) => return Some(vec![refusal]),
                };
                let Some(current) = self.current(&zone) else {
                    return Some(vec![reply(&msg, &zone, qtype, rcode::NOTAUTH)]);
                };
                let client_serial = (qtype == rtype::IXFR)
                    .then(|| {
                        msg.authority
                            .iter()
                            .find(|r| r.rtype == rtype::SOA)
                            .and_then(|r| crate::zone::soa_serial(&r.rdata))
                    })
                    .flatten();
                let history = self.history.lock().expect("history lock");
                let chain = client_serial
                    .and_then(|s| history.get(&zone).and_then(|h| journal::chain_from(h.changes(), s, current.serial)));
                let incremental = chain.is_some();
                let records = xfr::answer_records(&current, client_serial, chain);
                drop(history);
                log::info!(
                    "{} of {zone} serial {} to {peer}{}",
                    if qtype == rtype::AXFR { "AXFR" } else { "IXFR" },
                    current.serial,
                    if qtype == rtype::IXFR && !incremental && records.len() > 1 { " (whole zone)" } else { "" }
                );
                Some(xfr::messages(msg.id, &zone, qtype, &records, verified))
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
        let set = ZoneSet::default().with_zone(Arc::new(zone(1, "")));
        let state = Arc::new(crate::state::State {
            zones: arc_swap::ArcSwap::from_pointee(set),
            metrics: Default::default(),
            edns_payload: 1232,
            chaos: Default::default(),
            cookies: crate::cookie::Cookies::new([7; 16]),
            demand: Default::default(),
        });
        let config = ReplicationSettings { journal: Some(dir.to_path_buf()), ..Default::default() };
        Replication::new(Arc::new(Publisher::new(state, None)), config).unwrap().0
    }

    /// A write whose publish fails after the journal fsync is not acknowledged, so it must not
    /// survive in the journal: the old code left it there, and replay then served it instead of
    /// the later acknowledged write that reused its serial.
    #[test]
    fn a_failed_publish_rolls_the_journal_back() {
        let dir = std::env::temp_dir().join(format!("dnsxdp-repl-rollback-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
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
