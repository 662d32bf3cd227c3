//! `networking.istio.io/v1` Gateway: a listener on the ingress gateway (target, `tls.mode: MUTUAL`)
//! or on the egress gateway (client, the hop from the sidecars).

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The spec of an Istio `Gateway`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "Gateway",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Labels of the gateway pods this listener is configured on (selection is cluster-wide).
    pub selector: BTreeMap<String, String>,
    /// The listeners.
    pub servers: Vec<Server>,
}

/// One listener of a Gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// The port it listens on.
    pub port: ServerPort,
    /// Hosts it serves.
    pub hosts: Vec<String>,
    /// TLS settings (absent for plain HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
}

/// `servers[].port`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ServerPort {
    /// Port number.
    pub number: u32,
    /// Port name, unique per gateway.
    pub name: String,
    /// `HTTP`, `HTTPS`, ...
    pub protocol: String,
}

/// `servers[].tls`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerTls {
    /// `MUTUAL`, `ISTIO_MUTUAL`, `SIMPLE`, ...
    pub mode: String,
    /// The Secret (in the gateway pods' namespace) with the server credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
}
