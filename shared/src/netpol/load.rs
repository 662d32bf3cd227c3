//! Filling an [`Inventory`] for `kubectl mtls-lockdown explain` and `doctor`: from `-f` files
//! (offline, no cluster) or from the cluster (the same kinds, read with kube, for the namespaces
//! that matter).

use std::io::Write;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::core::ApiResource;

use super::Inventory;
use crate::cli::read_manifests;
use crate::cluster::{ClusterError, Operation, list};
use crate::error::Error;

/// Reads `-f` arguments ([`read_manifests`]: files, directories — with `recursive`, their
/// subdirectories too — and `-` for stdin; skipped files are named on `warn`). Objects without a
/// namespace belong to `default_namespace`.
pub fn from_files(
    paths: &[PathBuf],
    recursive: bool,
    default_namespace: &str,
    warn: &mut dyn Write,
) -> Result<Inventory, Error> {
    let mut inventory = Inventory::new();
    for source in read_manifests(paths, recursive, warn)? {
        inventory
            .add_documents(source.documents, &source.origin, default_namespace)
            .map_err(|e| Error::Usage(e.to_string()))?;
    }
    Ok(inventory)
}

/// Reads all namespaces, and the pods, Services and NetworkPolicies of `namespaces`.
pub async fn from_cluster(client: &Client, namespaces: &[&str]) -> Result<Inventory, Error> {
    let mut inventory = Inventory::new();
    let api: Api<Namespace> = Api::all(client.clone());
    let all = api.list(&ListParams::default()).await.map_err(|e| {
        ClusterError::from_kube(
            e,
            &Operation::new("list", &ApiResource::erase::<Namespace>(&()), None, None),
        )
    })?;
    for ns in &all.items {
        inventory.add_namespace(ns);
    }
    let params = ListParams::default();
    let mut seen: Vec<&str> = Vec::new();
    for ns in namespaces {
        if seen.contains(ns) {
            continue;
        }
        seen.push(ns);
        for pod in list::<Pod>(client, Some(ns), &params).await? {
            inventory.add_pod(&pod, ns);
        }
        for svc in list::<Service>(client, Some(ns), &params).await? {
            inventory.add_service(&svc, ns);
        }
        for policy in list::<NetworkPolicy>(client, Some(ns), &params).await? {
            inventory.add_policy(&policy, ns).map_err(Error::Usage)?;
        }
    }
    Ok(inventory)
}
