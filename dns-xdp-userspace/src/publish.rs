//! The one way a new zone version goes live, for SIGHUP reloads, API writes and zone transfers:
//! compile the kernel's answers, apply them to the BPF maps, then swap the slow path's snapshot.
//! The maps go first so that a SOA query (always answered by the slow path) reports a serial only
//! once both paths serve it: that is what quorum confirmation counts.
//!
//! May call: update/ (which decides what to recompile and writes it), loader (the program it
//! holds), state. Called by replication (transfers, the API's writes) and main (reloads).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use crate::loader::XdpProgram;
use crate::name::Name;
use crate::state::State;
use crate::store::{Diff, StoreError};
use crate::update::{Recompiled, Updater};
use crate::zone::ZoneSet;

/// The XDP program and the side that writes its answer maps.
pub struct Xdp {
    pub program: XdpProgram,
    pub answers: Updater,
}

pub struct Publisher {
    pub state: Arc<State>,
    /// The XDP program when attached; the mutex also serialises publishes.
    xdp: Mutex<Option<Xdp>>,
    /// Makes the next publish fail as a map update would (tests).
    #[cfg(test)]
    pub(crate) fail_next: std::sync::atomic::AtomicBool,
}

impl Publisher {
    pub fn new(state: Arc<State>, xdp: Option<Xdp>) -> Self {
        Publisher {
            state,
            xdp: Mutex::new(xdp),
            #[cfg(test)]
            fail_next: Default::default(),
        }
    }

    /// Publishes the set `change` derives from the one being served. On a map failure the
    /// previous version stays (maps restored, snapshot untouched).
    pub fn update<E: From<StoreError>>(&self, change: impl FnOnce(&ZoneSet) -> Result<ZoneSet, E>) -> Result<(), E> {
        self.update_touching(change, None)
    }

    /// `update`, told which owners the change touched (`None`: find out by comparing).
    pub fn update_touching<E: From<StoreError>>(
        &self,
        change: impl FnOnce(&ZoneSet) -> Result<ZoneSet, E>,
        touched: Option<&[Name]>,
    ) -> Result<(), E> {
        let mut xdp = self.xdp.lock().expect("publisher lock");
        let old = self.state.zones.load_full();
        let new = change(&old)?;
        #[cfg(test)]
        if self.fail_next.swap(false, Relaxed) {
            return Err(StoreError::from(crate::kernel::MapsError::Object("injected map update failure".into())).into());
        }
        if let Some(xdp) = xdp.as_mut()
            && let Err(err) = install_change(&mut xdp.answers, &self.state, &old, &new, touched)
        {
            log::error!("updating the XDP maps failed: {err}; keeping the previous zones");
            let _ = install(&mut xdp.answers, &self.state, &old);
            return Err(err.into());
        }
        self.state.zones.store(Arc::new(new));
        Ok(())
    }

    /// Runs `f` on the XDP program and its answers, when there is one.
    pub fn with_xdp<R>(&self, f: impl FnOnce(&mut Xdp) -> R) -> Option<R> {
        self.xdp.lock().expect("publisher lock").as_mut().map(f)
    }

    /// Takes the program out (drain: dropping it detaches XDP).
    pub fn take_xdp(&self) -> Option<Xdp> {
        self.xdp.lock().expect("publisher lock").take()
    }
}

/// Compiles what changed from `old` to `new` into the answer maps: only the names the change
/// touched when that is safe, else everything (`Updater::update` decides).
fn install_change(
    answers: &mut Updater,
    state: &State,
    old: &ZoneSet,
    new: &ZoneSet,
    touched: Option<&[Name]>,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    match answers.update(old, new, touched, state.edns_payload)? {
        (Recompiled::All, diff) => full_compile_done(answers, state, &diff, started),
        (Recompiled::Names(names), diff) => {
            report(answers, state, &diff, &format!("{names} names recompiled"), started, log::Level::Debug)
        }
    }
    Ok(())
}

/// Publishes the maps' sizes in the metrics and logs what an update wrote.
fn report(answers: &Updater, state: &State, diff: &Diff, what: &str, started: std::time::Instant, level: log::Level) {
    let (names, installed) = answers.entries();
    state.metrics.map_entries.store(names as u64, Relaxed);
    state.metrics.response_entries.store(installed as u64, Relaxed);
    state.metrics.hit_entries.store(answers.hit_entries() as u64, Relaxed);
    log::log!(
        level,
        "XDP answers: {what}; {names} names, {installed} answers installed ({} added, {} changed, {} removed names; {} answers written, {} freed) in {:.1?}",
        diff.added,
        diff.changed,
        diff.removed,
        diff.responses_written,
        diff.responses_freed,
        started.elapsed()
    );
}

/// Compiles `zones` into the answer maps.
pub fn install(answers: &mut Updater, state: &State, zones: &ZoneSet) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let diff = answers.install(zones, state.edns_payload)?;
    full_compile_done(answers, state, &diff, started);
    Ok(())
}

/// After a full compile (start, reload): frees what it no longer needs and says what it did.
fn full_compile_done(answers: &Updater, state: &State, diff: &Diff, started: std::time::Instant) {
    // A full compile frees far more than it keeps (the parser's records, the rendered
    // answers): give it back to the system rather than keep it as resident heap.
    release_free_memory();
    // Full compiles are rare (start, reload) and slow for large zones: worth a line.
    report(answers, state, diff, "full compile", started, log::Level::Info);
}

/// Returns freed heap pages to the system: mimalloc's (the daemon's allocator) keeps freed pages
/// resident for reuse, glibc's (C libraries) likewise.
pub fn release_free_memory() {
    // SAFETY: both only walk their allocator's own free lists; mi_collect(true) also frees
    // this thread's abandoned pages, which is always allowed.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        libc::malloc_trim(0);
    }
}
