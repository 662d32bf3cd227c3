//! `security.istio.io/v1` AuthorizationPolicy: on the egress gateway, deny requests for the host from
//! every namespace but ours, so no other workload can borrow the client identity the gateway holds
//! (possible only with Istio mTLS on the sidecar → gateway hop, which tells the gateway the caller's
//! namespace; istio/istio#27616).

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::common::WorkloadSelector;

/// The spec of an Istio `AuthorizationPolicy`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "AuthorizationPolicy",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// The workloads it applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// `ALLOW`, `DENY`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// `rules[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Rule {
    /// Who sends the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<From>,
    /// What the request is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<To>,
}

/// `rules[].from[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct From {
    /// The source.
    pub source: Source,
}

/// `rules[].from[].source`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Matches every namespace except these (needs a known peer identity: ISTIO_MUTUAL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
}

/// `rules[].to[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct To {
    /// The operation.
    pub operation: Operation,
}

/// `rules[].to[].operation`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Operation {
    /// Request hosts (`Host`/`:authority`), with and without port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}
