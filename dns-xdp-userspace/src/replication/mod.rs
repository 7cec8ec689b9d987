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
pub mod xfr;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::name::Name;
use crate::publish::Publisher;
use crate::rrl::Cidr;
use crate::wire::rcode;
use crate::zone::{Zone, rtype};
use journal::{Changeset, Journal};
use message::{Builder, OPCODE_NOTIFY, OPCODE_QUERY};
use tsig::Key;

/// Replication settings (flags `--secondary`, `--node`, `--quorum`, `--journal`, ...).
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Zones pulled from a primary.
    pub secondaries: Vec<(Name, SocketAddr)>,
    /// The fleet a primary notifies and counts confirmations from.
    pub nodes: Vec<SocketAddr>,
    /// Nodes that must serve a new serial before a write returns 200.
    pub quorum: usize,
    pub quorum_deadline: Duration,
    pub journal: Option<PathBuf>,
    /// TSIG keys: when any is set, transfers and NOTIFY must be signed with one of them, and ours
    /// are signed with the first.
    pub keys: Vec<Key>,
    /// Who may transfer our zones (and send us NOTIFY besides our primaries). Default: the nodes.
    pub allow_transfer: Vec<Cidr>,
}

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

pub struct Replication {
    pub publisher: Arc<Publisher>,
    pub config: Config,
    history: Mutex<HashMap<Name, History>>,
    notify_tx: HashMap<Name, mpsc::Sender<()>>,
    /// Serialises API writes (each reads the served version and derives the next).
    pub write: tokio::sync::Mutex<()>,
}

/// Why a write was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("writing the journal {0}: {1}")]
    Journal(PathBuf, std::io::Error),
    #[error("{0:#}")]
    Publish(#[from] anyhow::Error),
}

impl Replication {
    /// Sets up replication and replays the journals over the zones loaded from files. Returns
    /// the receivers the secondary tasks wait on for NOTIFY.
    pub fn new(publisher: Arc<Publisher>, mut config: Config) -> anyhow::Result<(Arc<Self>, Vec<(Name, SocketAddr, mpsc::Receiver<()>)>)> {
        if config.allow_transfer.is_empty() {
            config.allow_transfer = config.nodes.iter().map(|n| Cidr { addr: n.ip(), len: if n.is_ipv4() { 32 } else { 128 } }).collect();
        }
        let mut history = HashMap::new();
        if let Some(dir) = &config.journal {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating the journal directory {}: {e}", dir.display()))?;
            let zones = publisher.state.zones.load_full();
            for zone in zones.iter() {
                let path = journal::path_for(dir, &zone.origin);
                let (j, replay) = Journal::open(&path).map_err(|e| anyhow::anyhow!("opening the journal {}: {e}", path.display()))?;
                if replay.truncated > 0 {
                    log::warn!("{}: cut a torn tail of {} bytes (a write that was never acknowledged)", path.display(), replay.truncated);
                }
                let base = Zone::clone(zone);
                let (replayed, applied) = j.replay(base);
                if applied > 0 {
                    log::info!("zone {}: replayed {applied} journal changes, serial {} -> {}", zone.origin, zone.serial, replayed.serial);
                    let replayed = Arc::new(replayed);
                    publisher.update(|set| Ok::<_, anyhow::Error>(set.with_zone(replayed)))?;
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
                    log::info!("zone {origin}: persisted serial {} ({} journal changes), catching up from {primary}", zone.serial, store.journal.changes.len());
                    let zone = Arc::new(zone);
                    publisher.update(|set| Ok::<_, anyhow::Error>(set.with_zone(zone)))?;
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
        let repl = Replication { publisher, config, history: Mutex::new(history), notify_tx, write: tokio::sync::Mutex::new(()) };
        Ok((Arc::new(repl), receivers))
    }

    pub fn key(&self) -> Option<&Key> {
        self.config.keys.first()
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
        self.publisher.update_touching(|set| Ok::<_, anyhow::Error>(set.with_zone(new.clone())), owners.as_deref())?;
        self.notify_fleet(&new);
        Ok(serial)
    }

    /// Sends NOTIFY for `zone` to every node, in the background.
    pub fn notify_fleet(&self, zone: &Zone) {
        for node in &self.config.nodes {
            tokio::spawn(notify::send_with_retries(*node, zone.origin.clone(), zone.soa_record(), self.key().cloned()));
        }
    }

    /// A secondary's transfer result goes live (or is rejected, keeping the old version).
    pub fn apply_pulled(&self, origin: &Name, pulled: xfr::Pulled) -> Result<Option<u32>, String> {
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
                let mut zone = Zone::clone(&*self.current(origin).ok_or("IXFR without a current version")?);
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
        self.publisher.update(|set| Ok::<_, anyhow::Error>(set.with_zone(new.clone()))).map_err(|e| format!("{e:#}"))?;
        Ok(Some(serial))
    }

    /// A secondary zone past its SOA EXPIRE without contact stops being served (RFC 1035 3.3.13).
    pub fn expire(&self, origin: &Name) {
        let _ = self.publisher.update(|set| Ok::<_, anyhow::Error>(set.without(origin)));
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
        if raw[2] & 0x80 != 0 || (opcode != OPCODE_NOTIFY && !(opcode == OPCODE_QUERY && tcp)) {
            return None;
        }
        let msg = message::parse(raw)?;
        let (zone, qtype, _) = msg.question.clone()?;
        match opcode {
            OPCODE_NOTIFY => {
                let primary = self.config.secondaries.iter().find(|(z, _)| *z == zone).map(|(_, p)| p.ip());
                primary?;
                let from_primary = primary.is_some_and(|p| canonical(p) == canonical(peer.ip()));
                if !from_primary && !self.transfer_allowed(peer.ip()) {
                    log::warn!("NOTIFY for {zone} from {peer} refused: not our primary");
                    return Some(vec![reply(&msg, &zone, qtype, rcode::REFUSED)]);
                }
                let mac = match self.check_tsig(raw, &zone, peer, "NOTIFY") {
                    Ok(mac) => mac,
                    Err(resp) => return Some(vec![reply(&msg, &zone, qtype, resp)]),
                };
                if let Some(tx) = self.notify_tx.get(&zone) {
                    let _ = tx.try_send(());
                }
                let mut out = reply(&msg, &zone, qtype, rcode::NOERROR);
                if let (Some(key), Some(mac)) = (self.key(), mac) {
                    tsig::sign(&mut out, key, Some(&mac));
                }
                Some(vec![out])
            }
            _ if qtype == rtype::AXFR || qtype == rtype::IXFR => {
                if !self.transfer_allowed(peer.ip()) {
                    return None;
                }
                let mac = match self.check_tsig(raw, &zone, peer, "transfer") {
                    Ok(mac) => mac,
                    Err(resp) => return Some(vec![reply(&msg, &zone, qtype, resp)]),
                };
                let Some(current) = self.current(&zone) else { return Some(vec![reply(&msg, &zone, qtype, rcode::NOTAUTH)]) };
                let client_serial = (qtype == rtype::IXFR)
                    .then(|| msg.authority.iter().find(|r| r.rtype == rtype::SOA).and_then(|r| crate::zone::soa_serial(&r.rdata)))
                    .flatten();
                let history = self.history.lock().expect("history lock");
                let chain = client_serial.and_then(|s| history.get(&zone).and_then(|h| journal::chain_from(h.changes(), s, current.serial)));
                let incremental = chain.is_some();
                let records = xfr::answer_records(&current, client_serial, chain);
                drop(history);
                log::info!(
                    "{} of {zone} serial {} to {peer}{}",
                    if qtype == rtype::AXFR { "AXFR" } else { "IXFR" },
                    current.serial,
                    if qtype == rtype::IXFR && !incremental && records.len() > 1 { " (whole zone)" } else { "" }
                );
                let key = self.key().zip(mac);
                Some(xfr::messages(msg.id, &zone, qtype, &records, key.map(|(k, m)| (k, m))))
            }
            _ => None,
        }
    }

    /// With keys configured the request must carry a valid TSIG: `Ok(Some(mac))`; without,
    /// `Ok(None)`. `Err(rcode)` refuses.
    fn check_tsig(&self, raw: &[u8], zone: &Name, peer: SocketAddr, what: &str) -> Result<Option<Vec<u8>>, u16> {
        if self.config.keys.is_empty() {
            return Ok(None);
        }
        match tsig::verify_request(raw, &self.config.keys) {
            Ok((_, mac)) => Ok(Some(mac)),
            Err(err) => {
                log::warn!("{what} of {zone} from {peer} refused: TSIG: {err}");
                Err(rcode::NOTAUTH)
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
    let flags = 0x8000 | (msg.flags & 0x7800) | 0x0400 | (rc & 0xf);
    Builder::new(msg.id, flags, Some((zone, qtype))).buf
}
