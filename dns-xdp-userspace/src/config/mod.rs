//! Command line and configuration file. Every `serve` flag has a key of the same name (dashes
//! become underscores) in the TOML file; flags given on the command line win; unknown keys are
//! an error.
//!
//! The settled settings are plain data that flow down: replication, shadow validation, the TCP
//! listener and the XDP loader import their settings from here, and nothing here imports them.
//! `cli` is what clap parses, `file` the file's format, `merge` settles the two into the
//! `settings` types.

mod cli;
mod file;
mod merge;
mod settings;

pub use cli::{Cli, Command, DiffArgs, DiffProto, EncryptedArgs, ReplicationArgs, RrlArgs, ServeArgs, XdpModeChoice};
pub use merge::ConfigError;
pub use settings::{
    ApiSettings, DEFAULT_JOURNAL_MAX_SIZE, DEFAULT_SHADOW_SAMPLE, DEFAULT_XFR_OUT_MAX, EncryptedSettings,
    MIN_JOURNAL_MAX_SIZE, ReplicationSettings, SHADOW_TIMEOUT, Settings, ShadowSettings, TcpLimits, TsigKeySettings,
    XfrLimits,
};
