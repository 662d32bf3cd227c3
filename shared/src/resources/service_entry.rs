//! `networking.istio.io/v1` ServiceEntry: puts the external host into the mesh's registry, so the
//! sidecars and the egress gateway (cluster `outbound|443||HOST`) know it.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The spec of an Istio `ServiceEntry`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "ServiceEntry",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntrySpec {
    /// The hosts.
    pub hosts: Vec<String>,
    /// Namespaces that see it; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// `MESH_EXTERNAL` or `MESH_INTERNAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `DNS`, `STATIC`, `NONE`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// The ports.
    pub ports: Vec<ServicePort>,
}

/// `ports[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServicePort {
    /// Port number.
    pub number: u32,
    /// Port name.
    pub name: String,
    /// `HTTP`, `HTTPS`, `TLS`, ...
    pub protocol: String,
}
