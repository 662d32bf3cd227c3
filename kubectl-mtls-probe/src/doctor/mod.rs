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

use shared::names::DnsName;

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

/// A `doctor` rule: its stable id, what it means, and the fix `doctor` suggests, in general form
/// (a finding names the concrete object, host and Secret; HOST, NAME, DIR and NAMESPACE stand for
/// them here). For the troubleshooting guide (`cargo xtask docs`) and `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable rule id, as in [`Finding::id`].
    pub id: &'static str,
    /// One line: what is wrong when the rule fires.
    pub description: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

/// Every rule, grouped by module: credentials, mesh, routing, lockdown.
pub const RULE_TABLE: [Rule; 28] = [
    Rule {
        id: "credential-cacert-name",
        description: "a credentialName ends in -cacert, which Istio reads as the CA half of another Secret",
        fix: "rename the Secret and the credentialName (e.g. client-credential)",
    },
    Rule {
        id: "credential-missing",
        description: "a Gateway or DestinationRule names a credential Secret that is not in istio-system",
        fix: "create it in istio-system: `kubectl mtls-certs secret target|client --dir DIR --name NAME`",
    },
    Rule {
        id: "credential-layout",
        description: "a credential Secret has neither cert/key/cacert nor tls.crt/tls.key/ca.crt",
        fix: "recreate it with `kubectl mtls-certs secret target|client --dir DIR`",
    },
    Rule {
        id: "credential-unreadable",
        description: "a credential Secret's certificate or key is not usable PEM",
        fix: "put PEM certificates and an unencrypted PEM key in it (`kubectl mtls-certs secret`)",
    },
    Rule {
        id: "credential-key-mismatch",
        description: "a credential's private key does not belong to its certificate",
        fix: "put the key generated with that certificate into the Secret",
    },
    Rule {
        id: "credential-expiry",
        description: "a credential certificate is expired or expires within 30 days",
        fix: "issue a new certificate (`kubectl mtls-certs issue`) and update the Secret",
    },
    Rule {
        id: "credential-eku",
        description: "a server credential without serverAuth, or a client credential without clientAuth",
        fix: "issue a certificate for its side: `kubectl mtls-certs issue server|client --name HOST --ca-dir DIR`",
    },
    Rule {
        id: "credential-san",
        description: "the server certificate's SANs do not cover the Gateway's host",
        fix: "issue a server certificate for the host: `kubectl mtls-certs issue server --name HOST --ca-dir DIR`",
    },
    Rule {
        id: "ca-direction",
        description: "a CA in one cluster's Secret did not sign the peer certificate of the other cluster",
        fix: "target `cacert` = the CA that signed the CLIENT certificate; client `ca.crt` = the CA that signed the SERVER certificate",
    },
    Rule {
        id: "istio-cr-count",
        description: "not exactly one Kyma Istio CR",
        fix: "delete the extra Istio CRs",
    },
    Rule {
        id: "istio-cr-not-ready",
        description: "the Kyma Istio CR is not Ready",
        fix: "see `kubectl get istio -A -o yaml` (status.conditions) and the istio operator's logs",
    },
    Rule {
        id: "egress-gateway-disabled",
        description: "mTLS origination is configured but Kyma's egress gateway is not enabled",
        fix: "`kubectl mtls-egress enable --host HOST` (sets only `spec.components.egressGateway.enabled`)",
    },
    Rule {
        id: "egress-gateway-unavailable",
        description: "the istio-egressgateway Deployment is not Available",
        fix: "`kubectl -n istio-system describe deployment istio-egressgateway`",
    },
    Rule {
        id: "serviceentry-missing",
        description: "no ServiceEntry for the host",
        fix: "`kubectl mtls-egress enable --host HOST -n NAMESPACE`",
    },
    Rule {
        id: "serviceentry-export",
        description: "the ServiceEntry is not exported to istio-system, so the egress gateway cannot see it",
        fix: "set `exportTo: [\".\", \"istio-system\"]`",
    },
    Rule {
        id: "egress-gateway-route-missing",
        description: "no egress Gateway (selector istio: egressgateway) for the host",
        fix: "`kubectl mtls-egress enable --host HOST -n NAMESPACE`",
    },
    Rule {
        id: "virtualservice-missing",
        description: "no VirtualService routing the host through the egress gateway",
        fix: "`kubectl mtls-egress enable --host HOST -n NAMESPACE`",
    },
    Rule {
        id: "virtualservice-export",
        description: "the VirtualService is not exported to istio-system (404 NR at the egress gateway)",
        fix: "set `exportTo: [\".\", \"istio-system\"]`",
    },
    Rule {
        id: "virtualservice-subset-missing",
        description: "the VirtualService routes to an egress gateway subset no DestinationRule defines",
        fix: "add a DestinationRule for `istio-egressgateway.istio-system.svc.cluster.local` with that subset in the VirtualService's namespace",
    },
    Rule {
        id: "hop-tls-mismatch",
        description: "the egress Gateway and the subset DestinationRule disagree on the sidecar-to-gateway hop",
        fix: "make both ISTIO_MUTUAL (`kubectl mtls-egress enable --hop istio-mutual`) or both plain (`--hop plain`)",
    },
    Rule {
        id: "origination-missing",
        description: "no DestinationRule in istio-system originates MUTUAL TLS for the host",
        fix: "`kubectl mtls-egress enable --host HOST -n NAMESPACE`",
    },
    Rule {
        id: "origination-san-missing",
        description: "the origination rule sets sni without subjectAltNames, which turns Istio's SAN check off",
        fix: "add `subjectAltNames: [HOST]` next to `sni`",
    },
    Rule {
        id: "origination-shadowed",
        description: "another DestinationRule for the host can take precedence over the origination rule",
        fix: "delete it, or merge what it needs into the origination rule",
    },
    Rule {
        id: "origination-export",
        description: "the origination rule is exported beyond istio-system, so it applies to every sidecar",
        fix: "set `exportTo: [\".\"]` (only the egress gateway needs it)",
    },
    Rule {
        id: "telemetry-mesh-wide-duplicate",
        description: "more than one mesh-wide Telemetry in istio-system (only one is honoured)",
        fix: "merge them into one; scope access logs to the egress gateway with a selector (`kubectl mtls-egress enable` does)",
    },
    Rule {
        id: "lockdown-dns",
        description: "a NetworkPolicy isolates a pod's egress and does not let it reach DNS over UDP and TCP 53",
        fix: "allow DNS on UDP and TCP 53 (and 8053 to CoreDNS pods); `kubectl mtls-lockdown apply` does",
    },
    Rule {
        id: "lockdown-istiod",
        description: "a NetworkPolicy isolates a pod's egress and does not let it reach istiod on TCP 15012 (the sidecar never gets ready)",
        fix: "allow TCP 15012 to `istio: pilot` pods in istio-system (`kubectl mtls-lockdown apply` does)",
    },
    Rule {
        id: "kyma-egress-label",
        description: "Kyma's networkPoliciesEnabled is on and a client pod lacks the label the egress gateway admits",
        fix: "label the pod templates `networking.kyma-project.io/to-egressgateway=allowed` (`kubectl mtls-lockdown apply --label-pods` does)",
    },
];

/// Every rule id with a one-line description (for `--help`, docs and the troubleshooting guide);
/// the `(id, description)` view of [`RULE_TABLE`].
pub const RULES: &[(&str, &str)] = &rule_pairs();

const fn rule_pairs() -> [(&'static str, &'static str); RULE_TABLE.len()] {
    let mut pairs = [("", ""); RULE_TABLE.len()];
    let mut i = 0;
    while i < RULE_TABLE.len() {
        pairs[i] = (RULE_TABLE[i].id, RULE_TABLE[i].description);
        i += 1;
    }
    pairs
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_and_every_rule_says_what_and_how() {
        let mut ids: Vec<&str> = RULE_TABLE.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULE_TABLE.len(), "duplicate rule id");
        for r in RULE_TABLE {
            assert!(!r.description.is_empty() && !r.fix.is_empty(), "{}", r.id);
        }
        let pairs: Vec<(&str, &str)> = RULE_TABLE.iter().map(|r| (r.id, r.description)).collect();
        assert_eq!(RULES, pairs.as_slice());
    }
}
