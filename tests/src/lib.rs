//! Test harness for integration tests.
