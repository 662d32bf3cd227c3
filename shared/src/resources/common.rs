//! Small pieces several Istio kinds share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `port: {number: N}` — selects a port by number.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSelector {
    /// The port number.
    pub number: u32,
}

/// `selector: {matchLabels: {...}}` — the workloads a policy applies to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Pod labels that must all match.
    pub match_labels: BTreeMap<String, String>,
}
