//! [`apply`]: sends a [`Plan`] to the cluster by server-side apply, all or nothing.
//!
//! Every object goes as `PATCH` with `application/apply-patch+yaml`, field manager
//! [`FIELD_MANAGER`] and `fieldValidation=Strict` (an unknown field is an error, never silently
//! dropped); `force=true` only when the user asked to take over conflicting fields.
//!
//! "Nothing half-applied": a preflight pass first server-dry-runs (`dryRun=All`) every object and
//! stops at the first error, before anything is written; only then does the real pass write.
//! Objects are independent within a pass, so both passes send their requests concurrently over
//! the client's shared connection pool (cluster-scoped objects, such as a Namespace the others
//! live in, are written first and in order), at most [`DEFAULT_MAX_IN_FLIGHT`] (or the caller's
//! bound) at a time. Every result says whether the object was `created`, `configured` or left
//! `unchanged`, like kubectl: a real apply tells it from the `resourceVersion`s the dry run and
//! the write return, `--dry-run=server` by reading each object alongside its dry run.

use std::fmt;

use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::error::{ClusterError, Operation};
use crate::plan::{Plan, PlannedObject};

/// The field manager that owns the fields we write (`kubectl get -o yaml --show-managed-fields`).
pub const FIELD_MANAGER: &str = "kubectl-mtls";

/// How to send a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Validate everything by server dry run, then write it (`--dry-run=none`).
    Apply {
        /// Take over fields another field manager owns (`--force-conflicts`).
        force_conflicts: bool,
    },
    /// Only the server dry run: the API server validates and admits, nothing persists
    /// (`--dry-run=server`).
    DryRunServer {
        /// Send `force=true`, to show what `--force-conflicts` would do.
        force_conflicts: bool,
    },
}

impl ApplyMode {
    fn force_conflicts(self) -> bool {
        match self {
            ApplyMode::Apply { force_conflicts } | ApplyMode::DryRunServer { force_conflicts } => {
                force_conflicts
            }
        }
    }
}

/// What applying one object did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The object did not exist.
    Created,
    /// The object existed and changed.
    Configured,
    /// The object existed and already was as planned.
    Unchanged,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        })
    }
}

/// The result for one object of the plan. `Display` reads like kubectl:
/// `secret/kyma-mtls-certs created`, `secret/kyma-mtls-certs created (server dry run)`.
#[derive(Debug, Clone)]
pub struct Applied {
    /// `kind/name` as kubectl prints it, e.g. `secret/kyma-mtls-certs`.
    pub display_name: String,
    /// The object's namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Created, configured or unchanged.
    pub outcome: Outcome,
    /// Whether this was a server dry run (nothing persisted).
    pub dry_run: bool,
    /// The object as the server returned it (for a Secret this holds its data: never log it).
    pub object: Value,
}

impl Applied {
    /// The returned object as kubectl's `-o yaml` shows it: without `metadata.managedFields`.
    pub(crate) fn object_for_output(&self) -> Value {
        let mut object = self.object.clone();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        object
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.display_name, self.outcome)?;
        if self.dry_run {
            f.write_str(" (server dry run)")?;
        }
        Ok(())
    }
}

/// Applies `plan` in order by server-side apply, after a server dry run of every object.
///
/// With [`ApplyMode::DryRunServer`] only the dry run is sent. With [`ApplyMode::Apply`] the real
/// pass follows only when the dry run accepted every object; it can still fail midway (the cluster
/// can change in between), in which case the error names the object.
///
/// One exception to "the dry run must accept everything": an object whose namespace is missing
/// while the plan itself creates that namespace earlier is accepted, since a dry run cannot see
/// the namespace the real pass will create.
pub async fn apply<'a>(
    client: &'a Client,
    plan: &'a Plan,
    mode: ApplyMode,
) -> Result<Vec<Applied>, ClusterError> {
    apply_as(client, plan, mode, FIELD_MANAGER).await
}

/// [`apply`] as the field manager `field_manager` (kubectl's `--field-manager`) instead of
/// [`FIELD_MANAGER`], with at most [`DEFAULT_MAX_IN_FLIGHT`] requests in flight.
pub async fn apply_as<'a>(
    client: &'a Client,
    plan: &'a Plan,
    mode: ApplyMode,
    field_manager: &'a str,
) -> Result<Vec<Applied>, ClusterError> {
    apply_limited(client, plan, mode, field_manager, DEFAULT_MAX_IN_FLIGHT).await
}

/// How many requests [`apply_as`] keeps in flight by default. kube's client speaks HTTP/1.1
/// only (kube-client 5 builds its rustls connector with `enable_http1()` alone) from a kept-alive
/// pool, so every request in flight holds one connection, and each connection beyond the idle
/// ones costs a TLS handshake: the bound is also the most connections a run opens. Chosen by
/// measurement (`bench/apply.sh`, CONTRIBUTING.md "Performance").
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

/// [`apply_as`] with at most `max_in_flight` requests in flight (at least one).
///
/// Rounds: the dry run of every object (in `--dry-run=server` mode together with a GET of each,
/// to tell `configured` from `unchanged`), then the writes. A real apply needs no GET: the
/// server's dry run of an object that does not exist returns it without a `resourceVersion`
/// (`created`), and of one that exists with its current `resourceVersion`, which the write
/// returns unchanged only when it changed nothing (`unchanged`, else `configured`).
pub async fn apply_limited<'a>(
    client: &'a Client,
    plan: &'a Plan,
    mode: ApplyMode,
    field_manager: &'a str,
    max_in_flight: usize,
) -> Result<Vec<Applied>, ClusterError> {
    let force = mode.force_conflicts();
    let objects = plan.objects();
    let limit = max_in_flight.max(1);
    let dry_run_only = matches!(mode, ApplyMode::DryRunServer { .. });

    // Preflight: dry-run every object; nothing is written. Objects are independent here, so they
    // are checked concurrently (at most `limit` at a time) over the client's connection pool;
    // the first refusal stops the run.
    let checked: Vec<Checked> = stream::iter(objects.iter().enumerate().map(
        |(index, object)| async move {
            let api = api_for(client, object);
            let dry_run = async {
                match patch(&api, object, field_manager, force, true).await {
                    Ok(returned) => Ok(Some(returned)),
                    Err(ClusterError::NamespaceNotFound { namespace, .. })
                        if plan_creates_namespace(&objects[..index], &namespace) =>
                    {
                        tracing::debug!(
                            object = %object.display_name(),
                            namespace = %namespace,
                            "dry run skipped: the plan creates the namespace first"
                        );
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            };
            if dry_run_only {
                let (before, dry_run) =
                    futures::future::try_join(get(&api, object), dry_run).await?;
                Ok::<_, ClusterError>(Checked { before, dry_run })
            } else {
                Ok(Checked {
                    before: None,
                    dry_run: dry_run.await?,
                })
            }
        },
    ))
    .buffered(limit)
    .try_collect()
    .await?;

    let mut results = Vec::with_capacity(objects.len());
    match mode {
        ApplyMode::DryRunServer { .. } => {
            for (object, Checked { before, dry_run }) in objects.iter().zip(checked) {
                let (outcome, returned) = match (before, dry_run) {
                    (Some(before), Some(returned)) => {
                        let outcome = if same_content(&before, &returned) {
                            Outcome::Unchanged
                        } else {
                            Outcome::Configured
                        };
                        (outcome, returned)
                    }
                    (None, Some(returned)) => (Outcome::Created, returned),
                    // Dry run skipped (its namespace is created by the plan): it will be created.
                    (_, None) => (Outcome::Created, object.body.clone()),
                };
                results.push(result(object, outcome, true, returned));
            }
        }
        ApplyMode::Apply { .. } => {
            // Cluster-scoped objects (a Namespace the rest may live in) go first, in order; the
            // namespaced objects then go concurrently, at most `limit` at a time.
            let write = |object: &'a PlannedObject, dry_run: Option<Value>| async move {
                let api = api_for(client, object);
                let returned = patch(&api, object, field_manager, force, false).await?;
                // The version the object had before (the dry run changes none): none when it
                // did not exist, or when its dry run was skipped (its namespace is new).
                let existing = dry_run.as_ref().and_then(resource_version);
                let outcome = match existing {
                    None => Outcome::Created,
                    Some(version) if Some(version) == resource_version(&returned) => {
                        Outcome::Unchanged
                    }
                    Some(_) => Outcome::Configured,
                };
                Ok::<_, ClusterError>(result(object, outcome, false, returned))
            };
            let (cluster_scoped, namespaced): (Vec<_>, Vec<_>) = objects
                .iter()
                .zip(checked)
                .enumerate()
                .partition(|(_, (object, _))| object.namespace.is_none());
            let mut done = Vec::with_capacity(objects.len());
            for (index, (object, checked)) in cluster_scoped {
                done.push((index, write(object, checked.dry_run).await?));
            }
            let written: Vec<(usize, Applied)> = stream::iter(namespaced.into_iter().map(
                |(index, (object, checked))| async move {
                    Ok::<_, ClusterError>((index, write(object, checked.dry_run).await?))
                },
            ))
            .buffered(limit)
            .try_collect()
            .await?;
            done.extend(written);
            done.sort_by_key(|(index, _)| *index);
            results.extend(done.into_iter().map(|(_, applied)| applied));
        }
    }
    Ok(results)
}

/// What the preflight learnt of one object.
struct Checked {
    /// The object as it is (read only for `--dry-run=server`).
    before: Option<Value>,
    /// What the server's dry run returned; `None` when it was skipped (the plan creates the
    /// object's namespace first).
    dry_run: Option<Value>,
}

fn result(object: &PlannedObject, outcome: Outcome, dry_run: bool, returned: Value) -> Applied {
    Applied {
        display_name: object.display_name(),
        namespace: object.namespace.clone(),
        outcome,
        dry_run,
        object: returned,
    }
}

fn api_for(client: &Client, object: &PlannedObject) -> Api<DynamicObject> {
    match &object.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &object.resource),
        None => Api::all_with(client.clone(), &object.resource),
    }
}

fn operation(verb: &str, object: &PlannedObject) -> Operation {
    Operation::new(
        verb,
        &object.resource,
        object.namespace.as_deref(),
        Some(&object.name),
    )
}

/// The object as it is now, or `None` when it does not exist.
async fn get(
    api: &Api<DynamicObject>,
    object: &PlannedObject,
) -> Result<Option<Value>, ClusterError> {
    tracing::debug!(object = %object.display_name(), namespace = ?object.namespace, "GET");
    let found = api
        .get_opt(&object.name)
        .await
        .map_err(|e| ClusterError::from_kube(e, &operation("get", object)))?;
    found.map(|o| to_value(o, object)).transpose()
}

/// One server-side apply request; returns the object the server sent back.
async fn patch(
    api: &Api<DynamicObject>,
    object: &PlannedObject,
    field_manager: &str,
    force: bool,
    dry_run: bool,
) -> Result<Value, ClusterError> {
    let mut params = PatchParams::apply(field_manager).validation_strict();
    if force {
        params = params.force();
    }
    if dry_run {
        params = params.dry_run();
    }
    // Never log the body: it may be a Secret.
    tracing::debug!(
        object = %object.display_name(),
        namespace = ?object.namespace,
        dry_run,
        force,
        "PATCH (server-side apply)"
    );
    let returned = api
        .patch(&object.name, &params, &Patch::Apply(&object.body))
        .await
        .map_err(|e| ClusterError::from_kube(e, &operation("patch", object)))?;
    tracing::debug!(
        object = %object.display_name(),
        resource_version = ?returned.resource_version(),
        "applied"
    );
    to_value(returned, object)
}

fn to_value(returned: DynamicObject, object: &PlannedObject) -> Result<Value, ClusterError> {
    serde_json::to_value(returned).map_err(|e| ClusterError::Client {
        operation: Box::new(operation("patch", object)),
        reason: format!("cannot read the server's response: {e}"),
    })
}

fn plan_creates_namespace(earlier: &[PlannedObject], namespace: &str) -> bool {
    earlier.iter().any(|o| {
        o.resource.group.is_empty() && o.resource.kind == "Namespace" && o.name == namespace
    })
}

fn resource_version(object: &Value) -> Option<&str> {
    object.pointer("/metadata/resourceVersion")?.as_str()
}

/// Whether two versions of an object are the same, ignoring what the server changes on every
/// write (managed fields, resource version, generation, creation time, uid).
fn same_content(before: &Value, after: &Value) -> bool {
    fn strip(object: &Value) -> Value {
        let mut object = object.clone();
        if let Some(Value::Object(meta)) = object.get_mut("metadata") {
            for field in [
                "managedFields",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "uid",
            ] {
                meta.remove(field);
            }
        }
        object
    }
    strip(before) == strip(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_content_ignores_server_bookkeeping_only() {
        let before = json!({"metadata": {"name": "a", "resourceVersion": "1", "uid": "u",
            "generation": 1, "creationTimestamp": "t", "managedFields": [1]}, "data": {"k": "dg=="}});
        let after = json!({"metadata": {"name": "a", "resourceVersion": "2", "managedFields": [2]},
            "data": {"k": "dg=="}});
        assert!(same_content(&before, &after));
        let changed = json!({"metadata": {"name": "a"}, "data": {"k": "dw=="}});
        assert!(!same_content(&before, &changed));
        let labelled =
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "dg=="}});
        assert!(!same_content(&before, &labelled));
    }

    #[test]
    fn applied_reads_like_kubectl() {
        let mut applied = Applied {
            display_name: "secret/kyma-mtls-certs".into(),
            namespace: Some("istio-system".into()),
            outcome: Outcome::Created,
            dry_run: false,
            object: Value::Null,
        };
        assert_eq!(applied.to_string(), "secret/kyma-mtls-certs created");
        applied.dry_run = true;
        applied.outcome = Outcome::Unchanged;
        assert_eq!(
            applied.to_string(),
            "secret/kyma-mtls-certs unchanged (server dry run)"
        );
        assert_eq!(Outcome::Configured.to_string(), "configured");
    }
}
