//! The cluster reads several plugins decide on: whether this is Kyma (its Istio CRs), where the
//! ingress and egress gateways run ([`find_gateway`], decided by [`crate::gateway`]), and whether
//! the egress gateway is Available. Reads only; each plugin draws its own conclusions.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::ListParams;

use super::{ClusterError, get_opt, list, served};
use crate::error::Error;
use crate::gateway::{GatewayArgs, GatewayRole, GatewayWorkload, choose_gateway};
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

/// The Deployment of `gateway`, if any.
pub async fn gateway_deployment(
    client: &Client,
    gateway: &GatewayWorkload,
) -> Result<Option<Deployment>, ClusterError> {
    get_opt::<Deployment>(client, &gateway.namespace, &gateway.name).await
}

/// Finds the `role` gateway ([`choose_gateway`]). On Kyma (`kyma`) without flags nothing is
/// read: its gateways are istioctl's in istio-system. Elsewhere, or with a flag, the
/// Deployments are listed — in `--gateway-namespace` when given, else across namespaces, else
/// (for a user who may not list them there) in istio-system, else the default Deployment is
/// read by name — and the Services of the chosen one's namespace. With both flags and no
/// Deployment that matches (a DaemonSet, say), the flags name the gateway. Returns the gateway and the
/// note that says what was found (and what could not be read).
pub async fn find_gateway(
    client: &Client,
    role: GatewayRole,
    flags: &GatewayArgs,
    kyma: bool,
) -> Result<(GatewayWorkload, String), Error> {
    flags.validate()?;
    if kyma && flags.is_empty() {
        let gateway = flags.offline(role);
        let note = format!("note: {role} gateway: {} (Kyma)", gateway.describe());
        return Ok((gateway, note));
    }
    let all = ListParams::default();
    let mut limited = None;
    // What nobody may read: the flags (or the defaults) are all there is to go on.
    let unreadable = |what: String| {
        let gateway = flags.offline(role);
        let note = format!(
            "note: {role} gateway: {} (not allowed to read {what}; taken from the flags and defaults: name it with --gateway-namespace and --gateway-selector)",
            gateway.describe()
        );
        Ok((gateway, note))
    };
    let deployments: Vec<Deployment> = match flags.gateway_namespace.as_deref() {
        Some(ns) => match list(client, Some(ns), &all).await {
            Ok(d) => d,
            Err(ClusterError::Forbidden { .. }) => {
                return unreadable(format!("deployments in {ns}"));
            }
            Err(e) => return Err(e.into()),
        },
        None => match list(client, None, &all).await {
            Ok(d) => d,
            Err(ClusterError::Forbidden { .. }) => {
                limited = Some(format!(
                    "not allowed to list deployments across namespaces, looked in {ISTIO_NAMESPACE} only"
                ));
                match list(client, Some(ISTIO_NAMESPACE), &all).await {
                    Ok(d) => d,
                    Err(ClusterError::Forbidden { .. }) => {
                        match get_opt::<Deployment>(client, ISTIO_NAMESPACE, role.default_name())
                            .await
                        {
                            Ok(d) => d.into_iter().collect(),
                            Err(ClusterError::Forbidden { .. }) => {
                                return unreadable(format!("deployments in {ISTIO_NAMESPACE}"));
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        },
    };
    // The Services only matter for a gateway that is not the default one.
    let found = choose_gateway(role, &deployments, &[], flags);
    let both_flags = flags.gateway_namespace.is_some() && flags.gateway_selector.is_some();
    if both_flags && matches!(found, Err(crate::gateway::GatewayError::NotFound(_))) {
        // A gateway run by something else than a Deployment (the chart's `kind: DaemonSet`):
        // the flags are all there is to go on.
        let gateway = flags.offline(role);
        let note = format!(
            "note: {role} gateway: {} (from --gateway-namespace and --gateway-selector; no Deployment found)",
            gateway.describe()
        );
        return Ok((gateway, note));
    }
    let gateway = match found {
        Ok(g) if g.is_default() => g,
        Ok(g) => {
            let services: Vec<Service> = match list(client, Some(&g.namespace), &all).await {
                Ok(s) => s,
                Err(ClusterError::Forbidden { .. }) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            choose_gateway(role, &deployments, &services, flags)?
        }
        Err(e) => {
            let mut message = e.to_string();
            if let Some(limited) = limited {
                message = format!("{message} ({limited})");
            }
            return Err(Error::State(message));
        }
    };
    let mut note = format!("note: {role} gateway: {}", gateway.describe());
    if let Some(limited) = limited {
        note.push_str(&format!(" ({limited})"));
    }
    Ok((gateway, note))
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
