//! The response normaliser lives in the daemon crate (`dns_xdp::compare`), shared with shadow
//! validation and `dns-xdp diff`, so there is one comparator.

pub use dns_xdp::compare::{Normal, Opt, Record, parse, read_name, type_name};
