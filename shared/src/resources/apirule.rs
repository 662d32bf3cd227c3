//! `gateway.kyma-project.io/v2` APIRule: Kyma's way to expose a workload through a Gateway
//! (v2 is the stable version; v1beta1 can no longer be created or edited: kyma-project/api-gateway
//! `docs/user/custom-resources/apirule/04-70-changes-in-apirule-v2.md`).

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The spec of a Kyma `APIRule`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.kyma-project.io",
    version = "v2",
    kind = "APIRule",
    plural = "apirules",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct APIRuleSpec {
    /// Exactly one host.
    pub hosts: Vec<String>,
    /// The workload's Service.
    pub service: ApiRuleService,
    /// `namespace/name` of the Gateway.
    pub gateway: String,
    /// Access rules.
    pub rules: Vec<ApiRuleRule>,
}

/// `service`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ApiRuleService {
    /// Service name.
    pub name: String,
    /// Service namespace.
    pub namespace: String,
    /// Service port.
    pub port: u32,
}

/// `rules[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiRuleRule {
    /// Path pattern, e.g. `/*`.
    pub path: String,
    /// Allowed HTTP methods.
    pub methods: Vec<String>,
    /// No authentication at the gateway (the mTLS handshake is the authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_auth: Option<bool>,
}
