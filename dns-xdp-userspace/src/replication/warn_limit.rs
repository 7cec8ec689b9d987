//! Rate-limited warnings: refused NOTIFYs and transfers are logged, but a flood of them (spoofed
//! sources cost an attacker nothing over UDP) must not flood the log or the disk under it.
//! Like BIND's and Knot's rate-limited logging: a few lines a second, then a count of the rest.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Warnings let through per window; the rest are counted and reported with the next one.
const PER_WINDOW: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct WarnLimit {
    state: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    start: Option<Instant>,
    sent: u32,
    suppressed: u64,
}

impl WarnLimit {
    /// A limit usable in a `static`, for the warnings of code that holds no state (notify.rs).
    pub const fn new() -> Self {
        WarnLimit { state: Mutex::new(Window { start: None, sent: 0, suppressed: 0 }) }
    }

    /// Logs `line()` at warning level unless this window's budget is spent; the first line of a
    /// new window says how many were left out before it.
    pub fn warn(&self, line: impl FnOnce() -> String) {
        self.warn_at(Instant::now(), line);
    }

    fn warn_at(&self, now: Instant, line: impl FnOnce() -> String) -> bool {
        let mut w = self.state.lock().expect("warn limit lock");
        if w.start.is_none_or(|s| now.duration_since(s) >= WINDOW) {
            w.start = Some(now);
            w.sent = 0;
        }
        if w.sent >= PER_WINDOW {
            w.suppressed += 1;
            return false;
        }
        w.sent += 1;
        let suppressed = std::mem::take(&mut w.suppressed);
        drop(w);
        if suppressed > 0 {
            log::warn!("{} ({suppressed} similar warnings suppressed)", line());
        } else {
            log::warn!("{}", line());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_few_lines_a_second() {
        let limit = WarnLimit::default();
        let t = Instant::now();
        let logged = (0..1000).filter(|_| limit.warn_at(t, || "x".into())).count();
        assert_eq!(logged, PER_WINDOW as usize);
        assert!(limit.warn_at(t + WINDOW, || "x".into()), "a new window logs again");
        assert_eq!(limit.state.lock().unwrap().suppressed, 0, "and reports the suppressed count");
    }
}
