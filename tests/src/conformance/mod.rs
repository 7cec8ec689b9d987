//! Conformance against reference servers: the same zones served by dns-xdp, Knot DNS and NSD,
//! the same generated corpus sent to each, responses compared after normalisation
//! (`message::Normal`), differences checked against `testdata/conformance/deviations.txt`.

pub mod corpus;
pub mod deviations;
pub mod message;
pub mod servers;
pub mod verdict;
