//! `networking.istio.io/v1` Sidecar: used for a namespace-wide `outboundTrafficPolicy: REGISTRY_ONLY`
//! (Kyma's Istio CR has no mesh-wide setting for it). It is not a firewall — istio/api
//! `networking/v1alpha3/sidecar.proto` says REGISTRY_ONLY exists to detect missing ServiceEntries —
//! so the NetworkPolicy stays the enforcement.

use kube::CustomResource;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The spec of an Istio `Sidecar`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "Sidecar",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSpec {
    /// Which hosts the sidecars may reach (`["./*", "istio-system/*"]`); absent means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// What the sidecar does with traffic to hosts it does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// The pods it applies to (read only: ours has none, so it applies to the whole namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<SidecarWorkloadSelector>,
}

/// A Sidecar's `workloadSelector` (networking's own kind: `labels`, not `matchLabels`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SidecarWorkloadSelector {
    /// Pod labels that must all match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl SidecarSpec {
    /// Whether it applies to every pod of its namespace (no `workloadSelector`). Istio allows one
    /// such Sidecar per namespace: with two, which one a pod gets is undefined (analyzer IST0111,
    /// `MultipleSidecarsWithoutWorkloadSelectors`: istio/istio
    /// `pkg/config/analysis/msg/messages.yaml`; an empty `labels` counts as none, as in
    /// `pkg/config/analysis/analyzers/sidecar/selector.go`).
    pub fn namespace_wide(&self) -> bool {
        self.workload_selector
            .as_ref()
            .is_none_or(|s| s.labels.is_empty())
    }
}

/// One `spec.egress[]` entry of a Sidecar.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioEgressListener {
    /// `namespace/dnsName` host selectors.
    pub hosts: Vec<String>,
}

/// `spec.outboundTrafficPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    /// `REGISTRY_ONLY` or `ALLOW_ANY`.
    pub mode: String,
}
