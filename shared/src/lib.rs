//! The library behind the four `kubectl mtls-*` plugins.
//!
//! Everything that decides something lives here, so it can be tested without a cluster; the binaries
//! only parse flags, call in, and render. The modules follow the stages of the procedure:
//!
//! - [`names`]: DNS names as certificates and Istio hosts need them.
//! - [`pki`]: stage 1 — generate, issue, parse, inspect and verify certificates; bundles on disk.
//! - [`manifest`]: pure builders of the objects we emit (credential Secrets, target and egress
//!   routing, the lockdown policy).
//! - [`resources`]: typed Istio and Kyma custom resources (minimal structs).
//! - [`plan`]: an ordered list of typed objects, rendered for `--dry-run=client` or sent by [`cluster`].
//! - [`cluster`]: the thin cluster layer — client from kubectl-style flags, server-side apply of a
//!   [`plan::Plan`], reads, and API failures mapped to one actionable line.
//! - [`cli`]: flags and plumbing every plugin shares (output format, dry-run, exit codes, logging).
//! - [`certs`]: the `kubectl mtls-certs` commands.
//! - [`egress`]: the `kubectl mtls-egress` commands.
//! - [`doctor`]: static diagnosis rules (used by `kubectl mtls-probe doctor`).
//! - [`netpol`]: the NetworkPolicy evaluator behind `kubectl mtls-lockdown explain`.
//! - [`lockdown`]: the `kubectl mtls-lockdown` commands.
//! - [`probe`]: the `kubectl mtls-probe` commands.
//! - [`error`]: the error every command returns, and its exit code.

pub mod certs;
pub mod cli;
pub mod cluster;
pub mod doctor;
pub mod egress;
pub mod error;
pub mod lockdown;
pub mod manifest;
pub mod names;
pub mod netpol;
pub mod pki;
pub mod plan;
pub mod probe;
pub mod resources;

pub use error::Error;
