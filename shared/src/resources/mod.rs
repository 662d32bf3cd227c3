//! Typed Istio and Kyma resources: minimal structs with only the fields we set or read, so every
//! manifest is built from types (never from YAML text) and checked against the real CRD schemas
//! in tests. Field names follow the CRDs (camelCase); unset options are omitted, not `null`.

pub mod sidecar;

pub use sidecar::{OutboundTrafficPolicy, Sidecar, SidecarSpec};
