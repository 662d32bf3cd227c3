//! Release tooling for the kubectl-mtls workspace, run as `cargo xtask …`.
//!
//! - [`dist`] builds the four plugins in release mode, packs one reproducible `.tar.gz` per
//!   platform (the four executables, `LICENSE`, bash/zsh/fish completions), writes sha256 sums
//!   and renders the krew manifests in `krew/plugins/` from `krew/template.yaml`.
//! - [`krew`] holds the manifest types and krew's validation rules, used by `dist`, by
//!   `manifests --check`, and by the tests.

pub mod dist;
pub mod krew;
