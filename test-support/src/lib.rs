//! Helpers the integration tests of several crates share (a dev-dependency only; never shipped).
//!
//! - [`require_tool`]: a real tool (nginx, curl, openssl, kubectl) on `PATH`, or a loud failure.
//! - [`nginx`]: Debian's real nginx on a free port of 127.0.0.1, killed on drop.
//! - [`e2e`]: access to the live API server named by `MTLS_E2E_KUBECONFIG` (a visible skip
//!   without it, a failure under CI), and the rules that let e2e tests share one API server.
//! - [`envoy_log`]: access-log lines rendered from Istio's own TEXT and JSON format definitions.
//! - [`fake_api`]: an in-process fake API server, for request shapes and what a kubelet-less API
//!   server cannot do (exec, logs, running pods).
//! - [`mesh`]: a fake client cluster with a mesh on top of [`fake_api`] (for `check` and `connect`).
//! - [`schema`]: validation against the real CRD schemas in `../shared/crds`.
//! - [`bundle`]: a fresh certificate bundle.

pub mod e2e;
pub mod envoy_log;
pub mod fake_api;
pub mod mesh;
pub mod nginx;
pub mod schema;

use std::path::PathBuf;

/// Finds `name` on `PATH` (plus `/usr/sbin` and `/sbin`, where Debian puts nginx and which are
/// not on a normal user's `PATH`). Panics with an install hint when it is missing: these tests
/// must fail, never silently pass, on a machine without the tools.
pub fn require_tool(name: &str) -> PathBuf {
    let package = match name {
        "nginx" => "nginx-light",
        "kubectl" => "kubernetes-client",
        other => other,
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} not found: install it (apt-get install -y {package})"))
}

/// A fresh ECDSA bundle (CA, server certificate for `domain`, client certificate for
/// `client.example.com`), valid for 30 days from now.
pub fn bundle(domain: &str) -> shared::pki::Bundle {
    shared::pki::Bundle::generate(
        &shared::pki::BundleRequest {
            domain: shared::names::DnsName::parse(domain).unwrap(),
            client: shared::names::DnsName::parse("client.example.com").unwrap(),
            days: 30,
            key_type: shared::pki::KeyType::EcdsaP256,
            ca_name: None,
        },
        time::OffsetDateTime::now_utc(),
    )
    .expect("a bundle")
}
