//! `networking.istio.io/v1` Sidecar: used for a namespace-wide `outboundTrafficPolicy: REGISTRY_ONLY`
//! (Kyma's Istio CR has no mesh-wide setting for it). It is not a firewall — istio/api
//! `networking/v1alpha3/sidecar.proto` says REGISTRY_ONLY exists to detect missing ServiceEntries —
//! so the NetworkPolicy stays the enforcement.

use kube::CustomResource;
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
