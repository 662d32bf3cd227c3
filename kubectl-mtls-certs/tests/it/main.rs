//! Integration tests of `kubectl mtls-certs`: the command line, real TLS interop with Debian's tools, and the
//! live API server (e2e).
//!
//! One test binary for the crate (one link instead of one per file); each module is one area.

mod cli;
mod e2e_apiserver;
mod e2e_managed;
mod e2e_rotate;
mod e2e_secret;
mod lifecycle_cli;
mod rotate_all_cli;
mod rotate_tls;
mod tls_interop;
