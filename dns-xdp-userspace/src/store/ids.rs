//! Answer ids: handed out by size class, and given back only after a quarantine, so a query
//! that read a record before an update never finds another answer under the id it read.
//!
//! May call: nothing of the daemon.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dns_xdp_common::RESPONSE_CLASSES;

/// How long a freed answer id rests before it names another answer. A query that read a
/// record pointing at the id (before the update that dropped it) reads the answer within the
/// same XDP run, microseconds later, under RCU: after this long no such reader is left, so it
/// can never find the id's next answer under an old record.
const ID_QUARANTINE: Duration = Duration::from_secs(1);

/// Answer ids' sequence numbers by size class: new ones in order from 1, and freed ones again
/// once `ID_QUARANTINE` has passed since they were freed (ids are map keys and index the
/// answers' metadata: a server that rewrites answers for days would otherwise run out of them
/// and keep the metadata of every answer it ever installed).
pub(super) struct IdPool {
    next: [u32; RESPONSE_CLASSES.len()],
    /// Oldest first, with when each was freed.
    freed: [VecDeque<(u32, Instant)>; RESPONSE_CLASSES.len()],
}

impl Default for IdPool {
    fn default() -> Self {
        IdPool { next: [1; RESPONSE_CLASSES.len()], freed: Default::default() }
    }
}

impl IdPool {
    pub(super) fn take(&mut self, class: usize, now: Instant) -> u32 {
        match self.freed[class].front() {
            Some(&(seq, at)) if now.duration_since(at) >= ID_QUARANTINE => {
                self.freed[class].pop_front();
                seq
            }
            _ => {
                let seq = self.next[class];
                self.next[class] = seq.saturating_add(1);
                seq
            }
        }
    }

    pub(super) fn give(&mut self, class: usize, seq: u32, now: Instant) {
        self.freed[class].push_back((seq, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_answer_ids_come_back_only_after_the_quarantine() {
        let t0 = Instant::now();
        let mut ids = IdPool::default();
        assert_eq!([ids.take(0, t0), ids.take(0, t0), ids.take(1, t0)], [1, 2, 1]);
        ids.give(0, 1, t0);
        let soon = t0 + ID_QUARANTINE / 2;
        assert_eq!(ids.take(0, soon), 3, "freed half a quarantine ago: a new id");
        ids.give(0, 3, soon);
        let later = t0 + ID_QUARANTINE;
        assert_eq!(ids.take(0, later), 1, "the oldest freed id, once its quarantine is over");
        assert_eq!(ids.take(0, later), 4, "id 3's quarantine is not over yet");
        assert_eq!(ids.take(1, later), 2, "each class has its own ids");
        assert_eq!(ids.take(0, soon + ID_QUARANTINE), 3);
    }
}
