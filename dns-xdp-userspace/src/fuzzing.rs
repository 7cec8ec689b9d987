//! Doors for the fuzz targets (`fuzz/`) to crate-private parsers. Each is a plain call of the
//! code the daemon runs, with no behaviour of its own; nothing else should use them.

use serde_json::Value;

use crate::api::FieldError;
use crate::name::Name;
use crate::replication::journal::{self, Changeset};
use crate::zone::edit::Change;

/// One journal record at the start of `bytes` (magic, length, CRC, changeset) and its length.
pub fn journal_read_record(bytes: &[u8]) -> Option<(Changeset, usize)> {
    journal::read_record(bytes)
}

/// `change` as the journal writes it.
pub fn journal_record_bytes(change: &Changeset) -> Vec<u8> {
    journal::record_bytes(change)
}

/// A change of the control API's JSON body, validated as a write to zone `origin` validates it.
pub fn api_change(origin: &Name, change: &Value, prefix: &str) -> Result<Change, FieldError> {
    crate::api::parse_change(origin, change, prefix)
}
