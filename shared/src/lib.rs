//! What two or more of the `kubectl mtls-*` plugins use. Each plugin's commands live in its own
//! crate (`kubectl-mtls-certs`, `-egress`, `-lockdown`, `-probe`); this crate holds the layers
//! under them:
//!
//! - [`names`]: DNS names as certificates and Istio hosts need them.
//! - [`pki`]: generate, issue, parse, inspect and verify certificates; bundles and credentials on
//!   disk.
//! - [`manifest`]: pure builders of the objects we emit (credential Secrets, target and egress
//!   routing, the lockdown policy).
//! - [`resources`]: typed Istio and Kyma custom resources (minimal structs).
//! - [`plan`]: an ordered list of typed objects, rendered for `--dry-run=client` or sent by [`cluster`].
//! - [`cluster`]: the thin cluster layer — client from kubectl-style flags, server-side apply of a
//!   [`plan::Plan`], reads (and the reads several plugins decide on, [`cluster::detect`]), pods,
//!   and API failures mapped to one actionable line.
//! - [`gateway`]: where the ingress and egress gateways run and which labels select their pods
//!   (istioctl's and Kyma's defaults, Istio's Helm chart, or `--gateway-namespace` /
//!   `--gateway-selector`).
//! - [`resolve`]: whether a partner's host resolves from this workstation (before a probe).
//! - [`precedence`]: which DestinationRule Istio really applies at the egress gateway (so only a
//!   rule that takes the place of our origination rule is refused or reported).
//! - [`documents`]: Kubernetes objects as `-f` gives them (YAML/JSON, Lists, workloads as pods).
//! - [`netpol`]: the NetworkPolicy evaluator behind `kubectl mtls-lockdown explain` and `doctor`.
//! - [`cli`]: flags and plumbing every plugin shares (output format, dry-run, exit codes, logging,
//!   completion).
//! - [`error`]: the error every command returns, and its exit code.

pub mod cli;
pub mod cluster;
pub mod documents;
pub mod error;
pub mod gateway;
pub mod manifest;
pub mod names;
pub mod netpol;
pub mod pki;
pub mod plan;
pub mod precedence;
pub mod resolve;
pub mod resources;

pub use error::Error;
