//! `networking.istio.io/v1` VirtualService: routes mesh traffic for the host to the egress gateway,
//! and from the egress gateway out (client); or from the ingress Gateway to the workload (target).

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::common::PortSelector;

/// The spec of an Istio `VirtualService`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "VirtualService",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Hosts the routes apply to.
    pub hosts: Vec<String>,
    /// Namespaces that see it; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Gateways (and `mesh` for all sidecars) the routes apply to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// HTTP routes, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
}

/// One `http[]` route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct HttpRoute {
    /// Conditions (any of them).
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    /// Destinations.
    pub route: Vec<RouteDestination>,
    /// Header changes on the way to the destination (and back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// `http[].headers`: what the proxy changes in the headers of a routed request or its response.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Headers {
    /// Changes to the request before it is forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
}

impl Headers {
    /// Whether the request operations remove `name` (header names compare case-insensitively).
    pub fn removes_request_header(&self, name: &str) -> bool {
        self.request
            .as_ref()
            .is_some_and(|r| r.remove.iter().any(|h| h.eq_ignore_ascii_case(name)))
    }
}

/// `headers.request`: the operations on one direction's headers (only `remove` is used).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct HeaderOperations {
    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// One `http[].match[]` condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct HttpMatch {
    /// Only traffic through these gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Only traffic to this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

/// One `route[]` entry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RouteDestination {
    /// Where to send it.
    pub destination: Destination,
    /// Header changes for this destination only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// `route[].destination`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Destination {
    /// Service host (FQDN for services in other namespaces).
    pub host: String,
    /// A subset of a DestinationRule for that host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}
