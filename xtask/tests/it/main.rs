//! Integration tests of `xtask`: the release archive and krew manifests (`dist`), the generated
//! README regions (`docs`), the committed manifests against krew's rules, and the release
//! workflow's platforms against xtask's and the manifests' (`release`).
//!
//! One test binary for the crate (one link instead of one per file); each module is one area.

mod dist;
mod docs;
mod krew_manifests;
mod release;
