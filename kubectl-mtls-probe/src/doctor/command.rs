//! `kubectl mtls-probe doctor`: gather a [`Snapshot`] (from `-f` files, or from the client cluster
//! and optionally the target cluster), run the rules, render the findings.

use std::io::Write;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::ListParams;

use super::{Finding, Scope, Severity, Snapshot, diagnose};
use shared::cli::{ExpiryArgs, GlobalArgs, OutputFormat, Table, read_manifests, write_output};
use shared::cluster::detect::{find_gateway, gateway_deployment, kyma_istio_crs};
use shared::cluster::{ClusterError, KubeArgs, list, served};
use shared::error::Error;
use shared::gateway::{GatewayArgs, GatewayRole, GatewayWorkload};
use shared::manifest::ISTIO_NAMESPACE;
use shared::names::DnsName;
use shared::resources::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, Telemetry, VirtualService,
};

/// Diagnose the mTLS egress setup statically: one finding per problem, with the fix
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Reads the client cluster (and the target cluster with --target-context), or YAML files with -f
(GitOps repositories, CI: no cluster needed). Exit 0 when no error is found, 1 when one is.

Examples:
  kubectl mtls-probe doctor --context client --target-context target
  kubectl mtls-probe doctor --host httpbin.example.com -n mtls-demo
  kubectl mtls-probe doctor -f ./gitops/client -f ./gitops/target -o json
  kubectl mtls-probe doctor --context client --expiry-warning 60d"
)]
pub(crate) struct DoctorArgs {
    /// Only this host (default: every host the objects configure)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// YAML or JSON manifests to diagnose instead of a cluster (files, directories, - for stdin)
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Process the directories given with -f recursively
    #[arg(short = 'R', long, requires = "files")]
    pub recursive: bool,
    /// The target cluster's kubeconfig context, to check both CA directions
    #[arg(long, value_name = "CONTEXT")]
    pub target_context: Option<String>,
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Builds a snapshot from `-f` paths (`recursive`: `-R`); skipped files are named on `warn`.
pub(crate) fn snapshot_from_files(
    paths: &[PathBuf],
    recursive: bool,
    warn: &mut dyn Write,
) -> Result<Snapshot, Error> {
    let mut snapshot = Snapshot::default();
    for source in read_manifests(paths, recursive, warn)? {
        snapshot
            .add_documents(source.documents, &source.origin)
            .map_err(Error::Usage)?;
    }
    Ok(snapshot)
}

/// Reads what the rules look at from one cluster into `snapshot`.
///
/// A user whose RBAC does not allow a read still gets a diagnosis: each read that is forbidden
/// (403 from authorization) is skipped with a note on `progress` naming what it would have read and
/// which checks go without it, and the rules then say nothing about those objects rather than
/// report them missing. The routing objects, when they may not be listed cluster-wide, are read
/// from `namespace` and istio-system (where `enable` and `expose` put them).
pub async fn gather(
    client: &Client,
    namespace: &str,
    snapshot: &mut Snapshot,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let all = ListParams::default();
    let kyma_crs = allowed(
        kyma_istio_crs(client).await,
        "Istio CR checks skipped",
        progress,
    )?;
    let kyma = matches!(kyma_crs, Some(Some(_)));
    if let Some(Some(crs)) = kyma_crs {
        snapshot.istios.extend(crs);
    }
    // The gateways, as `expose` and `enable` find them (istio-system on Kyma); a cluster where
    // none or several are found is judged with istioctl's defaults, and says so.
    let mut gateway_namespaces = vec![ISTIO_NAMESPACE.to_string()];
    for role in [GatewayRole::Egress, GatewayRole::Ingress] {
        let gateway = match find_gateway(client, role, &GatewayArgs::default(), kyma).await {
            Ok((gateway, note)) => {
                if !gateway.is_default() {
                    writeln!(progress, "{note}")?;
                }
                gateway
            }
            Err(Error::State(why)) if !why.starts_with("no ") => {
                writeln!(
                    progress,
                    "note: {why}; the {role} gateway checks assume istio-system"
                )?;
                GatewayWorkload::default_for(role)
            }
            Err(Error::State(_)) => GatewayWorkload::default_for(role),
            Err(e) => return Err(e),
        };
        if !gateway_namespaces.contains(&gateway.namespace) {
            gateway_namespaces.push(gateway.namespace.clone());
        }
        if role == GatewayRole::Egress
            && let Some(Some(d)) = allowed(
                gateway_deployment(client, &gateway).await,
                "egress gateway checks skipped",
                progress,
            )?
        {
            snapshot.deployments.push(d);
        }
        match role {
            GatewayRole::Egress => snapshot.egress_gateway = Some(gateway),
            GatewayRole::Ingress => snapshot.ingress_gateway = Some(gateway),
        }
    }
    for ns in &gateway_namespaces {
        if let Some(secrets) = allowed(
            list::<Secret>(client, Some(ns), &all).await,
            "credential checks skipped",
            progress,
        )? {
            snapshot.secrets.extend(secrets);
            snapshot.secrets_supplied = true;
        }
    }
    if served::<ServiceEntry>(client).await? {
        let routing = match routing(client, &[None]).await {
            Err(ClusterError::Forbidden {
                verb, operation, ..
            }) => {
                let mut visible = vec![Some(namespace)];
                visible.extend(gateway_namespaces.iter().map(|ns| Some(ns.as_str())));
                let fallback = allowed(
                    routing(client, &visible).await,
                    "routing checks skipped",
                    progress,
                )?;
                if fallback.is_some() {
                    writeln!(
                        progress,
                        "note: not allowed to {verb} {} cluster-wide: routing checks read only namespaces {namespace} and {}",
                        operation.resource,
                        gateway_namespaces.join(", ")
                    )?;
                }
                fallback
            }
            other => allowed(other, "routing checks skipped", progress)?,
        };
        match routing {
            Some((service_entries, gateways, virtual_services, destination_rules)) => {
                snapshot.service_entries.extend(service_entries);
                snapshot.gateways.extend(gateways);
                snapshot.virtual_services.extend(virtual_services);
                snapshot.destination_rules.extend(destination_rules);
            }
            None => snapshot.routing_unread = true,
        }
    }
    if served::<Telemetry>(client).await? {
        for ns in &gateway_namespaces {
            if let Some(telemetries) = allowed(
                list::<Telemetry>(client, Some(ns), &all).await,
                "Telemetry checks skipped",
                progress,
            )? {
                snapshot.telemetries.extend(telemetries);
            }
        }
    }
    if served::<Sidecar>(client).await?
        && let Some(sidecars) = allowed(
            list::<Sidecar>(client, Some(namespace), &all).await,
            "Sidecar checks skipped",
            progress,
        )?
    {
        snapshot.sidecars.extend(sidecars);
    }
    let inventory =
        shared::netpol::load::from_cluster(client, &[namespace, "kube-system", ISTIO_NAMESPACE])
            .await;
    match inventory {
        Ok(inventory) => snapshot.inventory = inventory,
        Err(Error::Cluster(e)) => {
            if let Some(inventory) = allowed(Err(e), "lockdown checks skipped", progress)? {
                snapshot.inventory = inventory;
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The routing objects (ServiceEntries, Gateways, VirtualServices, DestinationRules) of the
/// namespaces `scopes` (`None`: all namespaces).
async fn routing(
    client: &Client,
    scopes: &[Option<&str>],
) -> Result<
    (
        Vec<ServiceEntry>,
        Vec<Gateway>,
        Vec<VirtualService>,
        Vec<DestinationRule>,
    ),
    ClusterError,
> {
    let all = ListParams::default();
    let mut found = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for scope in scopes {
        found
            .0
            .extend(list::<ServiceEntry>(client, *scope, &all).await?);
        found.1.extend(list::<Gateway>(client, *scope, &all).await?);
        found
            .2
            .extend(list::<VirtualService>(client, *scope, &all).await?);
        found
            .3
            .extend(list::<DestinationRule>(client, *scope, &all).await?);
    }
    Ok(found)
}

/// A read doctor can go without: `None` after a note on `progress` when authorization forbids
/// it (`note: not allowed to list secrets in namespace istio-system: credential checks skipped`);
/// other errors stop doctor.
fn allowed<T>(
    read: Result<T, ClusterError>,
    skipped: &str,
    progress: &mut dyn Write,
) -> Result<Option<T>, Error> {
    match read {
        Ok(value) => Ok(Some(value)),
        Err(ClusterError::Forbidden {
            verb, operation, ..
        }) => {
            let scope = match &operation.namespace {
                Some(ns) => format!("in namespace {ns}"),
                None => "cluster-wide".into(),
            };
            writeln!(
                progress,
                "note: not allowed to {verb} {} {scope}: {skipped}",
                operation.resource
            )?;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `doctor`.
pub(crate) async fn run(
    args: &DoctorArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let host = args.host.as_deref().map(DnsName::parse_exact).transpose()?;
    let snapshot = if args.files.is_empty() {
        let (client, namespace) = global.kube.connect().await?;
        let mut snapshot = Snapshot::default();
        gather(&client, &namespace, &mut snapshot, progress).await?;
        if let Some(context) = &args.target_context {
            let target = KubeArgs {
                context: Some(context.clone()),
                ..global.kube.clone()
            };
            let (client, namespace) = target.connect().await?;
            let mut other = Snapshot::default();
            gather(&client, &namespace, &mut other, progress).await?;
            // The target's pods and policies are not the client's lockdown: keep only its
            // routing and credentials.
            snapshot.secrets.extend(other.secrets);
            snapshot.secrets_supplied &= other.secrets_supplied;
            snapshot.routing_unread |= other.routing_unread;
            snapshot.gateways.extend(other.gateways);
            snapshot.virtual_services.extend(other.virtual_services);
            // The target's Gateways are served by its ingress gateway.
            snapshot.ingress_gateway = other.ingress_gateway;
        }
        snapshot
    } else {
        if args.target_context.is_some() {
            return Err(Error::Usage(
                "--target-context reads a cluster; with -f, pass the target's manifests as another -f".into(),
            ));
        }
        snapshot_from_files(&args.files, args.recursive, progress)?
    };
    let scope = Scope {
        host,
        expiry_warning: args.expiry.expiry_warning,
    };
    let findings = diagnose(&snapshot, &scope, time::OffsetDateTime::now_utc());
    render(&findings, args.output, out)?;
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if errors == 0 {
        Ok(())
    } else {
        Err(Error::CheckFailed(format!(
            "{errors} problem(s) found ({} warning(s)); each line above says how to fix it",
            findings.len() - errors
        )))
    }
}

fn render(findings: &[Finding], output: OutputFormat, out: &mut dyn Write) -> Result<(), Error> {
    write_output(out, output, findings, |out| {
        if findings.is_empty() {
            writeln!(out, "No problems found.")?;
            return Ok(());
        }
        let mut table = Table::new(["SEVERITY", "RULE", "OBJECT", "PROBLEM", "FIX"]);
        for f in findings {
            let severity = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            table.row([severity, f.id, &f.object, &f.problem, &f.fix]);
        }
        write!(out, "{table}")?;
        Ok(())
    })
}
