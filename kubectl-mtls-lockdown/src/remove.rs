//! `kubectl mtls-lockdown remove`: deletes what `apply` created in the namespace — found by the
//! labels `apply` puts on them, so nothing else is touched.

use std::io::Write;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;

use shared::cli::{DryRun, GlobalArgs};
use shared::cluster::{ClusterError, Operation, delete_labelled, served};
use shared::error::Error;
use shared::manifest::lockdown::COMPONENT;
use shared::manifest::{COMPONENT_LABEL, MANAGED_BY_LABEL, MANAGER};
use shared::resources::Sidecar;

/// Delete the lockdown NetworkPolicy and Sidecar that apply created
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Only objects labelled app.kubernetes.io/managed-by=kubectl-mtls and
app.kubernetes.io/component=lockdown are deleted. Pod-template labels added by apply --label-pods stay.

Examples:
  kubectl mtls-lockdown remove -n mtls-demo --dry-run=server
  kubectl mtls-lockdown remove -n mtls-demo"
)]
pub struct RemoveArgs {
    /// Only list (client) or only validate on the server (server); nothing is deleted
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true,
          default_value_t = DryRun::None, default_missing_value = "client")]
    pub dry_run: DryRun,
}

/// The label selector of everything `apply` creates.
pub fn selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGER},{COMPONENT_LABEL}={COMPONENT}")
}

/// Runs `remove`.
pub async fn run(
    args: &RemoveArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let (client, namespace) = global.kube.connect().await?;
    let removed = remove_with(&client, &namespace, args.dry_run, out).await?;
    if removed == 0 {
        writeln!(err, "No lockdown resources found in namespace {namespace}.")?;
    }
    Ok(())
}

/// `remove` against `client` in `namespace`; returns how many objects were (or would be) deleted.
pub async fn remove_with(
    client: &kube::Client,
    namespace: &str,
    dry_run: DryRun,
    out: &mut dyn Write,
) -> Result<usize, Error> {
    let lines = delete(client, namespace, dry_run).await?;
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    Ok(lines.len())
}

/// Deletes what `apply` created in `namespace` (`dry_run`: lists it, or checks the deletion on
/// the server); returns one kubectl-style line per object.
pub async fn delete(
    client: &kube::Client,
    namespace: &str,
    dry_run: DryRun,
) -> Result<Vec<String>, Error> {
    super::detect::require_namespace(client, namespace).await?;
    let mut resources = vec![ApiResource::erase::<NetworkPolicy>(&())];
    if served::<Sidecar>(client).await? {
        resources.push(ApiResource::erase::<Sidecar>(&()));
    }
    let selector = selector();
    let mut lines = Vec::new();
    for resource in &resources {
        if dry_run == DryRun::Client {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
            let found = api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| {
                    ClusterError::from_kube(
                        e,
                        &Operation::new("list", resource, Some(namespace), None),
                    )
                })?;
            let kind = resource.kind.to_ascii_lowercase();
            for o in found.items {
                lines.push(format!(
                    "{kind}.{}/{} deleted (dry run)",
                    resource.group,
                    o.name_any()
                ));
            }
        } else {
            lines.extend(
                delete_labelled(
                    client,
                    resource,
                    Some(namespace),
                    &selector,
                    dry_run == DryRun::Server,
                )
                .await?,
            );
        }
    }
    Ok(lines)
}
