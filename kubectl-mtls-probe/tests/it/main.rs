//! Integration tests of `kubectl mtls-probe`: `direct` against rustls and Debian's nginx, `check` against the fake
//! API server with a mesh, `doctor`'s rules and command line, and the live API server (e2e).
//!
//! One test binary for the crate (one link instead of one per file); each module is one area.

mod check_cli;
mod check_e2e;
mod direct_nginx;
mod doctor;
mod doctor_cli;
mod e2e_apiserver;
mod probe_check;
mod probe_direct;
