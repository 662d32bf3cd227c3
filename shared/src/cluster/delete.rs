//! [`delete_labelled`]: remove exactly the objects a command created, found by their labels —
//! never anything else, so `disable`/`remove` cannot destroy what we did not make.
//!
//! [`delete_object`] deletes one object by name, for callers that decided per object (e.g. to
//! keep a Secret another object still uses).
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
    let mut deleted = Vec::new();
    for object in listed.items {
        let ns = object.namespace();
        if let Some(line) =
            delete_object(client, resource, ns.as_deref(), &object.name_any(), dry_run).await?
        {
            deleted.push(line);
        }
    }
    Ok(deleted)
}

/// Deletes one object (`dry_run`: the server only checks the deletion) and returns its
/// kubectl-style line as [`delete_labelled`] does; `None` when it is gone already.
pub async fn delete_object(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
    dry_run: bool,
) -> Result<Option<String>, ClusterError> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let params = DeleteParams {
        dry_run,
        ..DeleteParams::default()
    };
    let finalizers = match api.delete(name, &params).await {
        // The server answers with the object as it left it (with finalizers, it stays until
        // they are done), or with a Status when it is gone.
        Ok(answer) => answer
            .left()
            .map(|remaining| remaining.finalizers().to_vec())
            .unwrap_or_default(),
        // Gone in the meantime: the goal is reached.
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
        Err(e) => {
            return Err(ClusterError::from_kube(
                e,
                &Operation::new("delete", resource, namespace, Some(name)),
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
    Ok(Some(format!(
        "{}/{name} {outcome}{}",
        display_kind(resource),
        if dry_run { " (server dry run)" } else { "" }
    )))
}

/// `kind.group` as kubectl prints it before an object's name (`secret`,
/// `destinationrule.networking.istio.io`).
pub fn display_kind(resource: &ApiResource) -> String {
    let kind = resource.kind.to_ascii_lowercase();
    if resource.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", resource.group)
    }
}
