//! Integration tests of `xtask`: the release archive and krew manifests (`dist`), the generated
//! README regions (`docs`), and the committed manifests against krew's rules.
//!
//! One test binary for the crate (one link instead of one per file); each module is one area.

mod dist;
mod docs;
mod krew_manifests;
