//! `telemetry.istio.io/v1` Telemetry: access logs for the egress gateway pods only — a selector-scoped
//! object, so an existing mesh-wide Telemetry is never replaced (Istio honours only one mesh-wide
//! Telemetry: analyzer IST0160, istio/istio `pkg/config/analysis/msg/messages.yaml`). Its
//! providers replace the mesh-wide ones for those pods, so it repeats them (see
//! [`crate::manifest::egress::kept_access_logging`]).

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::common::WorkloadSelector;

/// The spec of an Istio `Telemetry`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "telemetry.istio.io",
    version = "v1",
    kind = "Telemetry",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySpec {
    /// The workloads it applies to; absent in the root namespace means the whole mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Access log settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLogging>,
}

/// `accessLogging[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogging {
    /// Extension providers (e.g. `envoy`, Istio's built-in stdout log); none means the mesh
    /// config's `defaultProviders.accessLogging`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Which traffic direction it applies to.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<LogSelector>,
    /// Only requests for which this CEL expression holds are logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<LogFilter>,
    /// Turns the providers' logging off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// `accessLogging[].match`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LogSelector {
    /// `CLIENT_AND_SERVER`, `CLIENT` or `SERVER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// `accessLogging[].filter`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LogFilter {
    /// A CEL expression.
    pub expression: String,
}

/// `providers[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ProviderRef {
    /// The provider's name in the mesh config.
    pub name: String,
}
