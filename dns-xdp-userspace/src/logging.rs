//! Log lines as operators' tools read them: text (`--log-format text`, the default) or one JSON
//! object per line (`json`), filtered by `RUST_LOG` (default `info`). Under systemd, whose journal
//! connects stderr and says so in `JOURNAL_STREAM`, every line starts with its syslog priority
//! (`<3>` for errors, sd-daemon(3)) so the journal keeps the levels, and without our time stamp
//! (the journal adds its own).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use log::Level;
use serde::Deserialize;

/// `--log-format`, `log_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `msg`.
    Json,
}

/// Set once the settings are read (the logger starts before them, to report their errors).
static JSON: AtomicBool = AtomicBool::new(false);

/// Starts logging in text; `set_format` switches to what the settings say.
pub fn init() {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(move |buf, record| {
            let prefix = if journal { format!("<{}>", priority(record.level())) } else { String::new() };
            if JSON.load(Relaxed) {
                let mut line = serde_json::json!({
                    "level": record.level().as_str().to_ascii_lowercase(),
                    "target": record.target(),
                    "msg": record.args().to_string(),
                });
                if !journal {
                    line["ts"] = buf.timestamp_millis().to_string().into();
                }
                writeln!(buf, "{prefix}{line}")
            } else if journal {
                writeln!(buf, "{prefix}{}: {}", record.target(), record.args())
            } else {
                writeln!(
                    buf,
                    "[{} {:<5} {}] {}",
                    buf.timestamp_millis(),
                    record.level(),
                    record.target(),
                    record.args()
                )
            }
        })
        .init();
}

pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Relaxed);
}

/// The syslog priority of a level (RFC 5424 section 6.2.1): err, warning, info, debug.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!([Level::Error, Level::Warn, Level::Info, Level::Debug].map(priority), [3, 4, 6, 7]);
    }
}
