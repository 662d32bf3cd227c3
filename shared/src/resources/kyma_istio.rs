//! `operator.kyma-project.io/v1alpha2` Istio: Kyma's Istio module configuration. We read it and set
//! exactly one field, `spec.components.egressGateway.enabled`, by server-side apply — never the
//! whole object (the tutorial's `kubectl apply` of a full CR removes, by three-way merge, every
//! other field that was applied before; Kyma reconciles only the oldest Istio CR:
//! kyma-project/istio `docs/user/04-00-istio-custom-resource.md`).

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The spec fields of Kyma's `Istio` CR that we set or read; unknown fields are ignored on read.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "operator.kyma-project.io",
    version = "v1alpha2",
    kind = "Istio",
    plural = "istios",
    namespaced,
    status = "IstioStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct IstioSpec {
    /// Component settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Components>,
    /// Whether Kyma adds its own NetworkPolicies in istio-system (then pods need labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policies_enabled: Option<bool>,
}

/// `spec.components`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Components {
    /// The egress gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_gateway: Option<EgressGateway>,
}

/// `spec.components.egressGateway`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct EgressGateway {
    /// Whether Kyma deploys `istio-egressgateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `status`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct IstioStatus {
    /// `Processing`, `Deleting`, `Ready`, `Error`, `Warning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Why the state is what it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
