//! What `apply` reads from the cluster before it builds the policy: the namespace exists, the
//! kube-dns ClusterIP and target ports, whether node-local DNS runs, the egress gateway Service's
//! target ports, and Kyma's `networkPoliciesEnabled` (from [`kyma_istio_crs`]). Reads only.

use std::net::IpAddr;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::Api;
use kube::core::ApiResource;

use shared::cluster::detect::kyma_istio_crs;
use shared::cluster::{ClusterError, Operation, get_opt};
use shared::error::Error;
use shared::gateway::GatewayWorkload;
use shared::manifest::lockdown::DNS_NAMESPACE;

/// Fails with one line when `namespace` does not exist.
pub(crate) async fn require_namespace(client: &Client, namespace: &str) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let found = api.get_opt(namespace).await.map_err(|e| {
        ClusterError::from_kube(
            e,
            &Operation::new(
                "get",
                &ApiResource::erase::<Namespace>(&()),
                None,
                Some(namespace),
            ),
        )
    })?;
    match found {
        Some(_) => Ok(()),
        None => Err(Error::Usage(format!(
            "namespace {namespace} does not exist; create it with `kubectl create namespace {namespace}` or choose another with -n"
        ))),
    }
}

/// The kube-dns Service's ClusterIP and its numeric target ports, or `None` when there is no
/// kube-dns Service with a ClusterIP.
pub(crate) async fn kube_dns(client: &Client) -> Result<Option<(IpAddr, Vec<u16>)>, Error> {
    let Some(svc) = get_opt::<Service>(client, DNS_NAMESPACE, "kube-dns").await? else {
        return Ok(None);
    };
    let spec = svc.spec.unwrap_or_default();
    let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()) else {
        return Ok(None);
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| match &p.target_port {
            Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
            None => u16::try_from(p.port).ok(),
            Some(IntOrString::String(s)) => s.parse().ok(),
        })
        .collect();
    Ok(Some((ip, ports)))
}

/// Whether the `node-local-dns` DaemonSet runs in kube-system.
pub async fn node_local_dns(client: &Client) -> Result<bool, Error> {
    Ok(
        get_opt::<DaemonSet>(client, DNS_NAMESPACE, "node-local-dns")
            .await?
            .is_some(),
    )
}

/// The target ports of the egress gateway's Service, or `None` when it does not exist.
pub async fn egress_gateway_ports(
    client: &Client,
    gateway: &GatewayWorkload,
) -> Result<Option<Vec<IntOrString>>, Error> {
    let Some(svc) = get_opt::<Service>(client, &gateway.namespace, &gateway.name).await? else {
        return Ok(None);
    };
    let mut ports: Vec<IntOrString> = Vec::new();
    for p in svc.spec.unwrap_or_default().ports.into_iter().flatten() {
        if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
            continue;
        }
        let target = p.target_port.unwrap_or(IntOrString::Int(p.port));
        if !ports.contains(&target) {
            ports.push(target);
        }
    }
    Ok(Some(ports))
}

/// Kyma's `spec.networkPoliciesEnabled` on any Istio CR; `None` when the Istio CR kind is not
/// served (plain Istio, no Kyma).
pub(crate) async fn kyma_network_policies(client: &Client) -> Result<Option<bool>, Error> {
    Ok(kyma_istio_crs(client).await?.map(|crs| {
        crs.iter()
            .any(|cr| cr.spec.network_policies_enabled == Some(true))
    }))
}
