//! Helpers the plugins' integration tests share (a dev-dependency only; never shipped).
//!
//! - [`nginx`]: Debian's real nginx on a free port of 127.0.0.1, killed on drop, and
//!   [`nginx::require_tool`], which fails a test loudly when a tool is missing.
//! - [`e2e`]: access to the live API server named by `MTLS_E2E_KUBECONFIG`, or a visible skip.

pub mod e2e;
pub mod nginx;
