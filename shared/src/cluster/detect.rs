//! The cluster reads several plugins decide on: whether this is Kyma (its Istio CRs), and
//! whether the egress gateway runs. Reads only; each plugin draws its own conclusions.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::ListParams;

use super::{ClusterError, get_opt, list, served};
use crate::manifest::ISTIO_NAMESPACE;
use crate::resources::Istio;

/// The egress gateway Deployment Istio's charts (and Kyma) create in istio-system.
pub const EGRESS_DEPLOYMENT: &str = "istio-egressgateway";

/// Where Kyma keeps its Istio CR (`kyma-system/default`).
const KYMA_NAMESPACE: &str = "kyma-system";

/// Kyma's Istio CRs in every namespace — or, for a user who may not list them cluster-wide, in
/// kyma-system — or `None` when the kind is not served (plain Istio).
pub async fn kyma_istio_crs(client: &Client) -> Result<Option<Vec<Istio>>, ClusterError> {
    if !served::<Istio>(client).await? {
        return Ok(None);
    }
    let all = ListParams::default();
    match list(client, None, &all).await {
        Err(ClusterError::Forbidden { .. }) => list(client, Some(KYMA_NAMESPACE), &all).await,
        other => other,
    }
    .map(Some)
}

/// The egress gateway Deployment in istio-system, if any.
pub async fn egress_gateway(client: &Client) -> Result<Option<Deployment>, ClusterError> {
    get_opt::<Deployment>(client, ISTIO_NAMESPACE, EGRESS_DEPLOYMENT).await
}

/// Whether a Deployment reports condition `Available=True`.
pub fn deployment_available(deployment: &Deployment) -> bool {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Available" && c.status == "True")
        })
}
