//! Integration tests of the multi-call `kubectl-mtls`: the plugins working together as the release
//! archive ships them (one executable, run under each plugin's name).
//!
//! One test binary for the crate; each module is one area.

#[cfg(unix)]
mod rotate_all;
