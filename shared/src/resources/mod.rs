//! Typed Istio and Kyma resources: minimal structs with only the fields we set or read, so every
//! manifest is built from types (never from YAML text) and checked against the real CRD schemas
//! in tests. Field names follow the CRDs (camelCase); unset options are omitted, not `null`.
//! Versions: networking/telemetry/security `v1` (Istio ≥ 1.22), APIRule `v2`, Kyma Istio `v1alpha2`.

pub mod apirule;
pub(crate) mod authorization_policy;
pub mod common;
pub mod destination_rule;
pub mod gateway;
pub mod kyma_istio;
pub(crate) mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub(crate) mod virtual_service;

pub use apirule::{APIRule, APIRuleSpec};
pub use authorization_policy::{AuthorizationPolicy, AuthorizationPolicySpec};
pub use destination_rule::{DestinationRule, DestinationRuleSpec};
pub use gateway::{Gateway, GatewaySpec};
pub use kyma_istio::{Istio, IstioSpec};
pub use service_entry::{ServiceEntry, ServiceEntrySpec};
pub use sidecar::{OutboundTrafficPolicy, Sidecar, SidecarSpec};
pub use telemetry::{Telemetry, TelemetrySpec};
pub use virtual_service::{VirtualService, VirtualServiceSpec};
