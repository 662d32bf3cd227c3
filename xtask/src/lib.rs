//! Project tooling for the kubectl-mtls workspace, run as `cargo xtask …`.
//!
//! - [`dist`] builds the multi-call `kubectl-mtls` (all four plugins, chosen by the name it runs
//!   as) in release mode, packs one reproducible `.tar.gz` per platform (that executable,
//!   `LICENSE`, bash/zsh/fish completions for each plugin), writes sha256 sums and renders the
//!   krew manifests in `krew/plugins/` from `krew/template.yaml`; every manifest's `bin` is
//!   `kubectl-mtls` (`.exe` on Windows). It also writes the index repository's tree (`plugins/`
//!   at its root, where `kubectl krew index add` reads it); `index_from_archives` does the same
//!   for all [`dist::RELEASE_TARGETS`] from the release workflow's archives.
//! - [`docs`] renders docs/reference.md's generated regions: the command reference from the plugins'
//!   clap definitions and the troubleshooting table from `doctor`'s rules.
//! - [`krew`] holds the manifest types and krew's validation rules, used by `dist`, by
//!   `manifests --check`, and by the tests.

pub mod dist;
pub mod docs;
pub mod krew;
