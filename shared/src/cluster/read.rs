//! Reads: get-or-none, list, and "is this kind served?" — with the same one-line errors as writes.

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::error::{ClusterError, Operation};

/// An `Api` for a typed kind, in `namespace` or cluster-wide (`None`).
pub fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn operation<K: Resource<DynamicType = ()>>(
    verb: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> Operation {
    Operation::new(verb, &ApiResource::erase::<K>(&()), ns, name)
}

/// Gets one object; `Ok(None)` when it does not exist.
pub async fn get_opt<K>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, ClusterError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    api::<K>(client, Some(namespace))
        .get_opt(name)
        .await
        .map_err(|e| {
            ClusterError::from_kube(e, &operation::<K>("get", Some(namespace), Some(name)))
        })
}

/// Lists objects of a namespaced kind in `namespace` (or all namespaces for `None`).
pub async fn list<K>(
    client: &Client,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Vec<K>, ClusterError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    api::<K>(client, namespace)
        .list(params)
        .await
        .map(|l| l.items)
        .map_err(|e| ClusterError::from_kube(e, &operation::<K>("list", namespace, None)))
}

/// Whether the API server serves kind `K` (its CRD is installed and the version is served).
/// One discovery request for the group/version.
pub async fn served<K: Resource<DynamicType = ()>>(client: &Client) -> Result<bool, ClusterError> {
    let ar = ApiResource::erase::<K>(&());
    match client.list_api_group_resources(&ar.api_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == ar.plural)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(ClusterError::from_kube(
            e,
            &Operation::new("get", &ar, None, None),
        )),
    }
}

/// Gets one cluster-scoped object (a Namespace, say); `Ok(None)` when it does not exist.
pub async fn get_cluster_opt<K>(client: &Client, name: &str) -> Result<Option<K>, ClusterError>
where
    K: Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::all(client.clone())
        .get_opt(name)
        .await
        .map_err(|e| ClusterError::from_kube(e, &operation::<K>("get", None, Some(name))))
}

/// Lists objects of any kind (`resource`) in `namespace` (or all namespaces for `None`) as
/// untyped objects: for reading fields of objects other tools wrote, whose shape our typed
/// structs need not accept.
pub async fn list_dynamic(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Vec<DynamicObject>, ClusterError> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    api.list(params)
        .await
        .map(|l| l.items)
        .map_err(|e| ClusterError::from_kube(e, &Operation::new("list", resource, namespace, None)))
}
