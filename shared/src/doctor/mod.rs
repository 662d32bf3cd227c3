//! `doctor`: static diagnosis of the mTLS egress setup, one [`Finding`] per problem, each with the
//! object, what is wrong and the fix. The rules read a [`Snapshot`] — the objects of one or both
//! clusters, from YAML files (`-f`, for GitOps repositories and CI) or from the API — and never
//! touch a cluster themselves (reference/istio-kyma-notes.md §4 is the checklist).
//!
//! - [`command`]: the `doctor` command: gather (files or clusters), diagnose, render.
//! - [`snapshot`]: the objects, typed, from documents.
//! - [`credentials`]: the credential Secrets (layout, key, chain, SAN, EKU, expiry, CA direction).
//! - [`routing`]: ServiceEntry, Gateways, VirtualService, DestinationRules for each host.
//! - [`mesh`]: the Kyma Istio CR, the egress gateway, mesh-wide Telemetry.
//! - [`lockdown`]: NetworkPolicies still let pods reach DNS (UDP and TCP) and istiod; Kyma labels.

pub mod command;
pub mod credentials;
pub mod lockdown;
pub mod mesh;
pub mod routing;
pub mod snapshot;

use serde::Serialize;

pub use snapshot::Snapshot;

use crate::names::DnsName;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The mTLS path cannot work, or is not what it claims to be.
    Error,
    /// It works today but will break or is weaker than intended.
    Warning,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable rule id, e.g. `origination-san-missing`.
    pub id: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// The object concerned, `kind namespace/name`.
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl Finding {
    pub(crate) fn new(
        id: &'static str,
        severity: Severity,
        object: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            id,
            severity,
            object: object.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Every rule id with a one-line description (for `--help`, docs and the troubleshooting guide).
pub const RULES: &[(&str, &str)] = &[
    (
        "credential-cacert-name",
        "a credentialName ends in -cacert, which Istio reads as the CA half of another Secret",
    ),
    (
        "credential-missing",
        "a Gateway or DestinationRule names a credential Secret that is not in istio-system",
    ),
    (
        "credential-layout",
        "a credential Secret has neither cert/key/cacert nor tls.crt/tls.key/ca.crt",
    ),
    (
        "credential-unreadable",
        "a credential Secret's certificate or key is not usable PEM",
    ),
    (
        "credential-key-mismatch",
        "a credential's private key does not belong to its certificate",
    ),
    (
        "credential-expiry",
        "a credential certificate is expired or expires within 30 days",
    ),
    (
        "credential-eku",
        "a server credential without serverAuth, or a client credential without clientAuth",
    ),
    (
        "credential-san",
        "the server certificate's SANs do not cover the Gateway's host",
    ),
    (
        "ca-direction",
        "a CA in one cluster's Secret did not sign the peer certificate of the other cluster",
    ),
    ("istio-cr-count", "not exactly one Kyma Istio CR"),
    ("istio-cr-not-ready", "the Kyma Istio CR is not Ready"),
    (
        "egress-gateway-disabled",
        "mTLS origination is configured but Kyma's egress gateway is not enabled",
    ),
    (
        "egress-gateway-unavailable",
        "the istio-egressgateway Deployment is not Available",
    ),
    ("serviceentry-missing", "no ServiceEntry for the host"),
    (
        "serviceentry-export",
        "the ServiceEntry is not exported to istio-system, so the egress gateway cannot see it",
    ),
    (
        "egress-gateway-route-missing",
        "no egress Gateway (selector istio: egressgateway) for the host",
    ),
    (
        "virtualservice-missing",
        "no VirtualService routing the host through the egress gateway",
    ),
    (
        "virtualservice-export",
        "the VirtualService is not exported to istio-system (404 NR at the egress gateway)",
    ),
    (
        "virtualservice-subset-missing",
        "the VirtualService routes to an egress gateway subset no DestinationRule defines",
    ),
    (
        "hop-tls-mismatch",
        "the egress Gateway and the subset DestinationRule disagree on the sidecar-to-gateway hop",
    ),
    (
        "origination-missing",
        "no DestinationRule in istio-system originates MUTUAL TLS for the host",
    ),
    (
        "origination-san-missing",
        "the origination rule sets sni without subjectAltNames, which turns Istio's SAN check off",
    ),
    (
        "origination-shadowed",
        "another DestinationRule for the host can take precedence over the origination rule",
    ),
    (
        "origination-export",
        "the origination rule is exported beyond istio-system, so it applies to every sidecar",
    ),
    (
        "telemetry-mesh-wide-duplicate",
        "more than one mesh-wide Telemetry in istio-system (only one is honoured)",
    ),
];

/// What to diagnose.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this host (default: every host the snapshot configures).
    pub host: Option<DnsName>,
}

/// Runs every rule over the snapshot; findings sorted by severity, then rule id, then object.
pub fn diagnose(snapshot: &Snapshot, scope: &Scope, now: time::OffsetDateTime) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(credentials::check(snapshot, now));
    findings.extend(mesh::check(snapshot));
    findings.extend(lockdown::check(snapshot));
    let hosts = match &scope.host {
        Some(h) => vec![h.clone()],
        None => routing::hosts(snapshot),
    };
    for host in &hosts {
        findings.extend(routing::check(snapshot, host));
    }
    findings.sort_by(|a, b| (a.severity, a.id, &a.object).cmp(&(b.severity, b.id, &b.object)));
    findings.dedup();
    findings
}
