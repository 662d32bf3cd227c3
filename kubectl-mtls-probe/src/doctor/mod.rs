//! `doctor`: static diagnosis of the mTLS egress setup, one [`Finding`] per problem, each with the
//! object, what is wrong and the fix. The rules read a [`Snapshot`] — the objects of one or both
//! clusters, from YAML files (`-f`, for GitOps repositories and CI) or from the API — and never
//! touch a cluster themselves.
//!
//! - [`command`]: the `doctor` command: gather (files or clusters), diagnose, render.
//! - `snapshot`: the objects, typed, from documents.
//! - `credentials`: the credential Secrets (layout, key, chain, SAN, EKU, expiry, CA direction).
//! - `routing`: ServiceEntry, Gateways, VirtualService, DestinationRules for each host.
//! - `mesh`: the Kyma Istio CR, the egress gateway, mesh-wide Telemetry, namespace-wide Sidecars.
//! - `lockdown`: NetworkPolicies still let pods reach DNS (UDP and TCP) and istiod; Kyma labels.

pub mod command;
mod credentials;
mod lockdown;
mod mesh;
mod routing;
mod snapshot;

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
        rule: RuleId,
        severity: Severity,
        object: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            id: rule.rule().id,
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

/// Declares every rule once: the [`RuleId`] variant a finding names, its id, what it means and
/// the fix. [`RULE_TABLE`] (the README's troubleshooting table) and [`RuleId::rule`] come from
/// the same list, so a rule that a check can emit is in the table by construction.
macro_rules! rules {
    ($($variant:ident => $id:literal, $description:literal, $fix:literal;)*) => {
        /// A `doctor` rule: every [`Finding`] names one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum RuleId {
            $(#[doc = $description] $variant,)*
        }

        impl RuleId {
            /// The rule: its stable id, what it means, the fix.
            pub const fn rule(self) -> Rule {
                match self {
                    $(RuleId::$variant => Rule { id: $id, description: $description, fix: $fix },)*
                }
            }
        }

        /// Every rule, grouped by module: credentials, mesh, routing, lockdown.
        pub const RULE_TABLE: &[Rule] = &[$(RuleId::$variant.rule(),)*];
    };
}

rules! {
    CredentialCacertName => "credential-cacert-name",
        "a credentialName ends in -cacert, which Istio reads as the CA half of another Secret",
        "rename the Secret and the credentialName (e.g. client-credential)";
    CredentialMissing => "credential-missing",
        "a Gateway or DestinationRule names a credential Secret that is not in istio-system",
        "create it in istio-system: `kubectl mtls-certs secret target|client --dir DIR --name NAME`";
    CredentialLayout => "credential-layout",
        "a credential Secret has neither cert/key/cacert nor tls.crt/tls.key/ca.crt",
        "recreate it with `kubectl mtls-certs secret target|client --dir DIR`";
    CredentialUnreadable => "credential-unreadable",
        "a credential Secret's certificate or key is not usable PEM",
        "put PEM certificates and an unencrypted PEM key in it (`kubectl mtls-certs secret`)";
    CredentialKeyMismatch => "credential-key-mismatch",
        "a credential's private key does not belong to its certificate",
        "put the key generated with that certificate into the Secret";
    CredentialExpiry => "credential-expiry",
        "a credential's certificate is expired or expires within --expiry-warning (default 30 days)",
        "renew it from the same CA and update the Secret in place: `kubectl mtls-certs renew --dir DIR --target-context T --client-context C`";
    TrustBundleExpiry => "trust-bundle-expiry",
        "a CA in a credential's trust bundle (cacert, ca.crt) is expired or expires within --expiry-warning: the gateway then refuses every peer certificate that CA signed",
        "move both sides to a new CA with an overlap (new CA in both trust bundles, then certificates from it, then the old CA out): `kubectl mtls-certs rotate-ca --phase 1 --dir DIR --target-context T --client-context C`";
    CredentialEku => "credential-eku",
        "a server credential without serverAuth, or a client credential without clientAuth",
        "issue a certificate for its side: `kubectl mtls-certs issue server|client --name HOST --ca-dir DIR`";
    CredentialSan => "credential-san",
        "the server certificate's SANs do not cover the Gateway's host",
        "issue a server certificate for the host: `kubectl mtls-certs issue server --name HOST --ca-dir DIR`";
    CaDirection => "ca-direction",
        "a CA in one cluster's Secret did not sign the peer certificate of the other cluster",
        "target `cacert` = the CA that signed the CLIENT certificate; client `ca.crt` = the CA that signed the SERVER certificate";
    IstioCrCount => "istio-cr-count",
        "not exactly one Kyma Istio CR",
        "delete the extra Istio CRs";
    IstioCrNotReady => "istio-cr-not-ready",
        "the Kyma Istio CR is not Ready",
        "see `kubectl get istio -A -o yaml` (status.conditions) and the istio operator's logs";
    EgressGatewayDisabled => "egress-gateway-disabled",
        "mTLS origination is configured but Kyma's egress gateway is not enabled",
        "`kubectl mtls-egress enable --host HOST` (sets only `spec.components.egressGateway.enabled`)";
    EgressGatewayUnavailable => "egress-gateway-unavailable",
        "the istio-egressgateway Deployment is not Available",
        "`kubectl -n istio-system describe deployment istio-egressgateway`";
    ServiceentryMissing => "serviceentry-missing",
        "no ServiceEntry for the host",
        "`kubectl mtls-egress enable --host HOST -n NAMESPACE`";
    ServiceentryExport => "serviceentry-export",
        "the ServiceEntry is not exported to istio-system, so the egress gateway cannot see it",
        "set `exportTo: [\".\", \"istio-system\"]`";
    EgressGatewayRouteMissing => "egress-gateway-route-missing",
        "no egress Gateway (selector istio: egressgateway) for the host",
        "`kubectl mtls-egress enable --host HOST -n NAMESPACE`";
    VirtualserviceMissing => "virtualservice-missing",
        "no VirtualService routing the host through the egress gateway",
        "`kubectl mtls-egress enable --host HOST -n NAMESPACE`";
    VirtualserviceExport => "virtualservice-export",
        "the VirtualService is not exported to istio-system (404 NR at the egress gateway)",
        "set `exportTo: [\".\", \"istio-system\"]`";
    VirtualserviceSubsetMissing => "virtualservice-subset-missing",
        "the VirtualService routes to an egress gateway subset no DestinationRule defines",
        "add a DestinationRule for `istio-egressgateway.istio-system.svc.cluster.local` with that subset in the VirtualService's namespace";
    HopTlsMismatch => "hop-tls-mismatch",
        "the egress Gateway and the subset DestinationRule disagree on the sidecar-to-gateway hop",
        "make both ISTIO_MUTUAL (`kubectl mtls-egress enable --hop istio-mutual`) or both plain (`--hop plain`)";
    OriginationMissing => "origination-missing",
        "no DestinationRule in istio-system originates MUTUAL TLS for the host",
        "`kubectl mtls-egress enable --host HOST -n NAMESPACE`";
    OriginationSanMissing => "origination-san-missing",
        "the origination rule sets sni without subjectAltNames, which turns Istio's SAN check off",
        "add `subjectAltNames: [HOST]` next to `sni`";
    OriginationShadowed => "origination-shadowed",
        "the egress gateway uses another DestinationRule instead of the origination rule (in the gateway's namespace: an older one for the exact host with the same exportTo, a newer one with another private exportTo, or one with a workloadSelector)",
        "delete it, or merge what it needs into the origination rule";
    OriginationExport => "origination-export",
        "the origination rule is exported beyond istio-system, so it applies to every sidecar",
        "set `exportTo: [\".\"]` (only the egress gateway needs it)";
    IdentityForwarded => "identity-forwarded",
        "the egress gateway's route to the host keeps x-forwarded-client-cert, so the partner learns the calling workload's SPIFFE identity",
        "add `headers: {request: {remove: [x-forwarded-client-cert]}}` to the route from the egress Gateway to the host (`kubectl mtls-egress enable` does)";
    TelemetryMeshWideDuplicate => "telemetry-mesh-wide-duplicate",
        "more than one mesh-wide Telemetry in istio-system (only one is honoured)",
        "merge them into one; scope access logs to the egress gateway with a selector (`kubectl mtls-egress enable` does)";
    TelemetryProvidersDropped => "telemetry-providers-dropped",
        "a Telemetry for the egress gateway names access-log providers without the mesh-wide ones, which it thereby switches off there",
        "list the mesh-wide Telemetry's providers in it too (`kubectl mtls-egress enable` does)";
    SidecarNamespaceWideDuplicate => "sidecar-namespace-wide-duplicate",
        "more than one Sidecar without a workloadSelector in a namespace: which one a pod gets is undefined (Istio analyzer IST0111)",
        "keep one: move what the others set (e.g. outboundTrafficPolicy REGISTRY_ONLY) into it and delete them";
    LockdownDns => "lockdown-dns",
        "a NetworkPolicy isolates a pod's egress and does not let it reach DNS over UDP and TCP 53",
        "allow DNS on UDP and TCP 53 (and 8053 to CoreDNS pods); `kubectl mtls-lockdown apply` does";
    LockdownIstiod => "lockdown-istiod",
        "a NetworkPolicy isolates a pod's egress and does not let it reach istiod on TCP 15012 (the sidecar never gets ready)",
        "allow TCP 15012 to `istio: pilot` pods in istio-system (`kubectl mtls-lockdown apply` does)";
    KymaEgressLabel => "kyma-egress-label",
        "Kyma's networkPoliciesEnabled is on and a client pod lacks the label the egress gateway admits",
        "label the pod templates `networking.kyma-project.io/to-egressgateway=allowed` (`kubectl mtls-lockdown apply --label-pods` does)";
}

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
#[derive(Debug, Clone)]
pub struct Scope {
    /// Only this host (default: every host the snapshot configures).
    pub host: Option<DnsName>,
    /// A certificate in use that ends within this time is a warning (`--expiry-warning`).
    pub expiry_warning: time::Duration,
}

impl Default for Scope {
    fn default() -> Self {
        Self {
            host: None,
            expiry_warning: shared::pki::DEFAULT_EXPIRY_WARNING,
        }
    }
}

/// Runs every rule over the snapshot; findings sorted by severity, then rule id, then object.
pub fn diagnose(snapshot: &Snapshot, scope: &Scope, now: time::OffsetDateTime) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(credentials::check(snapshot, now, scope.expiry_warning));
    findings.extend(mesh::check(snapshot));
    findings.extend(lockdown::check(snapshot));
    let hosts = match &scope.host {
        _ if snapshot.routing_unread => Vec::new(),
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
