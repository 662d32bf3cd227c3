//! `kubectl mtls-probe doctor`: gather a [`Snapshot`] (from `-f` files, or from the client cluster
//! and optionally the target cluster), run the rules, render the findings.

use std::io::Write;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::ListParams;

use super::{Finding, Scope, Severity, Snapshot, diagnose};
use shared::cli::{GlobalArgs, OutputFormat, Table, read_manifests, write_output};
use shared::cluster::detect::{egress_gateway, kyma_istio_crs};
use shared::cluster::{ClusterError, KubeArgs, list, served};
use shared::error::Error;
use shared::manifest::ISTIO_NAMESPACE;
use shared::names::DnsName;
use shared::resources::{DestinationRule, Gateway, ServiceEntry, Telemetry, VirtualService};

/// Diagnose the mTLS egress setup statically: one finding per problem, with the fix
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Reads the client cluster (and the target cluster with --target-context), or YAML files with -f
(GitOps repositories, CI: no cluster needed). Exit 0 when no error is found, 1 when one is.

Examples:
  kubectl mtls-probe doctor --context client --target-context target
  kubectl mtls-probe doctor --host httpbin.example.com -n mtls-demo
  kubectl mtls-probe doctor -f ./gitops/client -f ./gitops/target -o json"
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

/// Reads what the rules look at from one cluster into `snapshot`. Secrets that may not be read
/// (403) are skipped with a note on `progress`, and the credential rules then say nothing about
/// them.
pub async fn gather(
    client: &Client,
    namespace: &str,
    snapshot: &mut Snapshot,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let all = ListParams::default();
    match list::<Secret>(client, Some(ISTIO_NAMESPACE), &all).await {
        Ok(secrets) => {
            snapshot.secrets.extend(secrets);
            snapshot.secrets_supplied = true;
        }
        Err(ClusterError::Forbidden { .. }) => {
            writeln!(
                progress,
                "note: not allowed to list secrets in {ISTIO_NAMESPACE}: credential checks skipped"
            )?;
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(crs) = kyma_istio_crs(client).await? {
        snapshot.istios.extend(crs);
    }
    if let Some(d) = egress_gateway(client).await? {
        snapshot.deployments.push(d);
    }
    if served::<ServiceEntry>(client).await? {
        snapshot
            .service_entries
            .extend(list::<ServiceEntry>(client, None, &all).await?);
        snapshot
            .gateways
            .extend(list::<Gateway>(client, None, &all).await?);
        snapshot
            .virtual_services
            .extend(list::<VirtualService>(client, None, &all).await?);
        snapshot
            .destination_rules
            .extend(list::<DestinationRule>(client, None, &all).await?);
    }
    if served::<Telemetry>(client).await? {
        snapshot
            .telemetries
            .extend(list::<Telemetry>(client, Some(ISTIO_NAMESPACE), &all).await?);
    }
    let inventory =
        shared::netpol::load::from_cluster(client, &[namespace, "kube-system", ISTIO_NAMESPACE])
            .await?;
    snapshot.inventory = inventory;
    Ok(())
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
            snapshot.gateways.extend(other.gateways);
            snapshot.virtual_services.extend(other.virtual_services);
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
    let findings = diagnose(&snapshot, &Scope { host }, time::OffsetDateTime::now_utc());
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
