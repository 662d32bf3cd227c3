//! `networking.istio.io/v1` DestinationRule: the subset that sends the hop to the egress gateway,
//! and the rule that makes the egress gateway originate mutual TLS with the client credential.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::common::{PortSelector, WorkloadSelector};

/// The spec of an Istio `DestinationRule`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "DestinationRule",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The service host the rule is for.
    pub host: String,
    /// Namespaces that see it; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Policy for all traffic to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named subsets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// The workloads it applies to (read only: we never set it; Istio then keeps the rule in
    /// its own namespace and prefers it over rules without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

/// `trafficPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// TLS for every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    /// Settings per port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// `trafficPolicy.portLevelSettings[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PortTrafficPolicy {
    /// The port.
    pub port: PortSelector,
    /// TLS to use on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
}

/// Client-side TLS settings (`tls`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientTls {
    /// `DISABLE`, `SIMPLE`, `MUTUAL`, `ISTIO_MUTUAL`.
    pub mode: String,
    /// Secret with the client certificate, key and CA (in the proxy's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// The SNI to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Names the server certificate must carry (setting `sni` alone turns Istio's SAN check off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// `subsets[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// The subset's name, referenced by VirtualService routes.
    pub name: String,
    /// Policy for this subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}
