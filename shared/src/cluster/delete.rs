//! [`delete_labelled`]: remove exactly the objects a command created, found by their labels —
//! never anything else, so `disable`/`remove` cannot destroy what we did not make.
//!
//! Deleting never waits: an object that another controller holds with a finalizer (or that sits
//! in a Terminating namespace) is reported as marked for deletion, naming the finalizers, instead
//! of as deleted.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};

use super::error::{ClusterError, Operation};

/// Deletes every object of `resource` (in `namespace`, or cluster-wide for `None`) that matches
/// `label_selector`, and returns one kubectl-style line per object, e.g.
/// `networkpolicy.networking.k8s.io/mtls-lockdown deleted`, or, when finalizers keep it,
/// `… marked for deletion, kept until its finalizers finish: FINALIZER, …`. With `dry_run` the
/// API server checks each deletion (`dryRun=All`) and nothing is removed.
pub async fn delete_labelled(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    label_selector: &str,
    dry_run: bool,
) -> Result<Vec<String>, ClusterError> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let listed = api
        .list(&ListParams::default().labels(label_selector))
        .await
        .map_err(|e| {
            ClusterError::from_kube(e, &Operation::new("list", resource, namespace, None))
        })?;
    let kind = resource.kind.to_ascii_lowercase();
    let prefix = if resource.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", resource.group)
    };
    let params = DeleteParams {
        dry_run,
        ..DeleteParams::default()
    };
    let mut deleted = Vec::new();
    for object in listed.items {
        let name = object.name_any();
        let ns = object.namespace();
        let api: Api<DynamicObject> = match &ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        };
        let finalizers = match api.delete(&name, &params).await {
            // The server answers with the object as it left it (with finalizers, it stays until
            // they are done), or with a Status when it is gone.
            Ok(answer) => answer
                .left()
                .map(|remaining| remaining.finalizers().to_vec())
                .unwrap_or_default(),
            // Gone in the meantime: the goal is reached.
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(e) => {
                return Err(ClusterError::from_kube(
                    e,
                    &Operation::new("delete", resource, ns.as_deref(), Some(&name)),
                ));
            }
        };
        let outcome = if finalizers.is_empty() {
            "deleted".to_string()
        } else {
            format!(
                "marked for deletion, kept until its finalizers finish: {}",
                finalizers.join(", ")
            )
        };
        deleted.push(format!(
            "{prefix}/{name} {outcome}{}",
            if dry_run { " (server dry run)" } else { "" }
        ));
    }
    Ok(deleted)
}
