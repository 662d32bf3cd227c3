//! Running `connect` against the two clusters: stage by stage, with progress on stderr and the
//! results on stdout. Both plans pass a server dry run before the first write to either cluster;
//! then each cluster's objects are written one at a time, in order, so that a failure says
//! exactly what was applied where.

use std::fmt;
use std::io::Write;

use kube::Client;
use serde::Serialize;

use crate::expose::RouteChoice;
use crate::{detect, enable, expose};
use kubectl_mtls_lockdown::apply::detect_inputs;
use kubectl_mtls_probe::report;
use shared::cli::{ApplyArgs, DryRun, GlobalArgs, OutputFormat, write_output};
use shared::cluster::{Applied, ApplyMode, apply_as};
use shared::error::Error;
use shared::manifest::egress::EnableRequest;
use shared::manifest::expose::ExposeRequest;
use shared::manifest::lockdown::LockdownInputs;
use shared::plan::Plan;

use super::bundle;
use super::probe::{self, ProbeInputs, ProbeResult};
use super::{
    ClusterRef, ConnectArgs, ConnectInputs, ConnectRequest, Role, check_credentials, cluster_args,
    connect_plans, lockdown_options, objects, offline_inputs, on, render_dry_run,
    route_on_one_cluster,
};

/// The number of stages `connect` reports progress for.
const STAGES: usize = 5;

/// What a run did, for `-o json|yaml` (no object bodies: they would carry the private keys).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectReport {
    /// The host.
    pub host: String,
    /// Whether this was a server dry run (nothing persisted).
    pub dry_run: bool,
    /// Where the certificates came from.
    pub certificates: String,
    /// Per cluster, what was applied.
    pub clusters: Vec<ClusterResult>,
    /// The probes' checks (empty with `--no-probe` or a dry run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeResult>,
}

/// What was applied on one cluster.
#[derive(Debug, Serialize)]
pub struct ClusterResult {
    /// The cluster.
    #[serde(flatten)]
    pub cluster: ClusterRef,
    /// One entry per object, in apply order.
    pub objects: Vec<ObjectResult>,
}

/// One applied object.
#[derive(Debug, Serialize)]
pub struct ObjectResult {
    /// `kind/name` as kubectl prints it.
    pub object: String,
    /// Its namespace, for namespaced kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `created`, `configured` or `unchanged`.
    pub outcome: String,
}

impl ObjectResult {
    fn from_applied(applied: &Applied) -> Self {
        Self {
            object: applied.display_name.clone(),
            namespace: applied.namespace.clone(),
            outcome: applied.outcome.to_string(),
        }
    }
}

fn stage(progress: &mut dyn Write, n: usize, text: impl fmt::Display) -> Result<(), Error> {
    writeln!(progress, "[{n}/{STAGES}] {text}")?;
    Ok(())
}

fn applied_count(n: usize) -> String {
    match n {
        0 => "nothing applied".to_string(),
        n => format!("applied {}", objects(n)),
    }
}

/// Runs `connect`: builds one client per context, then [`execute`].
pub async fn run(
    args: &ConnectArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let kube = &global.kube;
    let target_ns = args.target_namespace.as_ref().or(kube.namespace.as_ref());
    let client_ns = kube.namespace.as_ref();
    let default = "default".to_string();
    // Every flag is checked before the kubeconfig is read, a file written or a request sent.
    let request = args.request(
        kube,
        target_ns.unwrap_or(&default),
        client_ns.unwrap_or(&default),
    )?;
    if request.apply.dry_run == DryRun::Client {
        return dry_run_client(&request, out, progress);
    }
    let (target_client, target_namespace) = cluster_args(kube, &args.target_context, target_ns)
        .connect()
        .await
        .map_err(|e| on(&request.target, e))?;
    let (client_client, client_namespace) = cluster_args(kube, &args.client_context, client_ns)
        .connect()
        .await
        .map_err(|e| on(&request.client, e))?;
    let mut request = args.request(kube, &target_namespace, &client_namespace)?;
    // Two contexts can name one API server: then it is one cluster standing in for two.
    if !request.same_cluster {
        let target_args = cluster_args(kube, &args.target_context, target_ns);
        let client_args = cluster_args(kube, &args.client_context, client_ns);
        let (target_config, client_config) = (
            target_args
                .config()
                .await
                .map_err(|e| on(&request.target, e))?,
            client_args
                .config()
                .await
                .map_err(|e| on(&request.client, e))?,
        );
        request.same_cluster = target_config.cluster_url == client_config.cluster_url;
        request.check_one_cluster()?;
    }
    execute(&target_client, &client_client, &request, out, progress).await
}

/// `--dry-run=client`: stage 1 in memory (or the bundle in DIR, read only) and both plans from
/// flags; prints them and touches nothing.
pub fn dry_run_client(
    request: &ConnectRequest,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let (credentials, source) = bundle::obtain(&request.bundle, false)?;
    writeln!(
        progress,
        "certificates: {}",
        source.describe(&request.bundle.dir)
    )?;
    if request.route == RouteChoice::Auto {
        writeln!(
            progress,
            "note: --route auto without a cluster emits a VirtualService; pass --route apirule for Kyma's APIRule"
        )?;
    }
    let plans = connect_plans(&offline_inputs(request, credentials)?)?;
    write!(
        out,
        "{}",
        render_dry_run(&plans, &request.target, &request.client, request.output)
    )?;
    Ok(())
}

/// `connect` against two connected clusters (`target`, `client`): stages 1-5 with progress on
/// `progress`, results on `out`. `--dry-run=client` contacts neither.
pub async fn execute(
    target: &Client,
    client: &Client,
    request: &ConnectRequest,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let server_dry_run = match request.apply.dry_run {
        DryRun::Client => return dry_run_client(request, out, progress),
        DryRun::Server => true,
        DryRun::None => false,
    };
    let force_conflicts = request.apply.force_conflicts;
    let manager = request.apply.field_manager.as_str();
    let table = matches!(request.output, None | Some(OutputFormat::Table));
    let (target_ref, client_ref) = (&request.target, &request.client);

    let (credentials, source) = bundle::obtain(&request.bundle, !server_dry_run)?;
    let certificates = source.describe(&request.bundle.dir);
    stage(progress, 1, format!("certificates: {certificates}"))?;

    stage(
        progress,
        2,
        format!(
            "validate: reading {target_ref} and {client_ref}, then a server dry run of both plans (nothing is written yet)"
        ),
    )?;
    let (route, one_cluster_note) = if request.same_cluster {
        route_on_one_cluster(request.route, &request.expose.host)?
    } else {
        (request.route, None)
    };
    let (expose, client_side) = tokio::join!(
        read_target(target, request, route),
        read_client(client, request),
    );
    let (expose, mut target_warnings) = expose.map_err(|e| on(target_ref, e))?;
    if let Some(note) = one_cluster_note
        && detect::apirule_served(target)
            .await
            .map_err(|e| on(target_ref, e))?
    {
        target_warnings.push(note);
    }
    let (enable, lockdown, notes) = client_side.map_err(|e| on(client_ref, e))?;
    for (cluster, line) in target_warnings
        .iter()
        .map(|w| (target_ref, w))
        .chain(notes.iter().map(|n| (client_ref, n)))
    {
        writeln!(progress, "      {}: {line}", cluster.role)?;
    }
    let kyma = enable.kyma_istio.clone();
    let egress_gateway = enable.mesh.egress_gateway.clone();
    let target_secret_ns = expose.ingress.namespace.clone();
    let plans = connect_plans(&ConnectInputs {
        expose,
        enable,
        credentials,
        lockdown,
    })?;
    let (target_credentials, client_credentials) = tokio::join!(
        check_credentials(target, &plans.target, request.force),
        check_credentials(client, &plans.client, request.force),
    );
    for (cluster, checked) in [
        (target_ref, target_credentials),
        (client_ref, client_credentials),
    ] {
        let warnings = checked.map_err(|e| {
            on(
                cluster,
                Error::State(format!("{e}; nothing was applied to either cluster")),
            )
        })?;
        for warning in warnings {
            writeln!(progress, "      {}: {warning}", cluster.role)?;
        }
    }
    let mode = ApplyMode::DryRunServer { force_conflicts };
    let (checked_target, checked_client) = tokio::join!(
        apply_as(target, &plans.target, mode, manager),
        apply_as(client, &plans.client, mode, manager),
    );
    let not_applied = |cluster: &ClusterRef, e: shared::cluster::ClusterError| {
        let e = on(cluster, Error::Cluster(e));
        let message = format!("{e}; nothing was applied to either cluster");
        match e.exit_code() {
            2 => Error::Usage(message),
            _ => Error::State(message),
        }
    };
    let checked_target = checked_target.map_err(|e| not_applied(target_ref, e))?;
    let checked_client = checked_client.map_err(|e| not_applied(client_ref, e))?;
    writeln!(
        progress,
        "      both plans accepted: {target_ref} {}, {client_ref} {}",
        objects(checked_target.len()),
        objects(checked_client.len())
    )?;
    let mut report = ConnectReport {
        host: request.bundle.domain.to_string(),
        dry_run: server_dry_run,
        certificates,
        clusters: Vec::new(),
        probes: Vec::new(),
    };
    if server_dry_run {
        for (cluster, results) in [(target_ref, &checked_target), (client_ref, &checked_client)] {
            if table {
                for applied in results {
                    writeln!(out, "{}: {applied}", cluster.role)?;
                }
            }
            report.clusters.push(ClusterResult {
                cluster: cluster.clone(),
                objects: results.iter().map(ObjectResult::from_applied).collect(),
            });
        }
        return render_report(&report, request.output, out);
    }

    stage(
        progress,
        3,
        format!(
            "{target_ref}: applying {} (namespace {}, secret in {target_secret_ns})",
            objects(plans.target.objects().len()),
            target_ref.namespace
        ),
    )?;
    let written_target = write_in_order(
        target,
        target_ref,
        &plans.target,
        &request.apply,
        table,
        out,
    )
    .await
    .map_err(|stopped| stopped.error(target_ref, request, 0))?;
    stage(
        progress,
        4,
        format!(
            "{client_ref}: applying {} (namespace {}, secret in {})",
            objects(plans.client.objects().len()),
            client_ref.namespace,
            egress_gateway.namespace
        ),
    )?;
    let written_client = write_in_order(
        client,
        client_ref,
        &plans.client,
        &request.apply,
        table,
        out,
    )
    .await
    .map_err(|stopped| stopped.error(client_ref, request, written_target.len()))?;
    for (cluster, written) in [(target_ref, &written_target), (client_ref, &written_client)] {
        report.clusters.push(ClusterResult {
            cluster: cluster.clone(),
            objects: written.iter().map(ObjectResult::from_applied).collect(),
        });
    }
    if let Some(timeout) = request.wait {
        out.flush()?;
        detect::wait_ready(client, kyma.as_ref(), &egress_gateway, timeout, progress)
            .await
            .map_err(|e| {
                on(
                    client_ref,
                    Error::State(format!(
                        "{e} (both plans are applied: {target_ref} {}, {client_ref} {})",
                        applied_count(written_target.len()),
                        applied_count(written_client.len())
                    )),
                )
            })?;
    }

    if request.probe {
        stage(
            progress,
            5,
            format!(
                "probe: direct from this workstation, then check from {client_ref} namespace {}",
                client_ref.namespace
            ),
        )?;
        report.probes = probe::run(
            client,
            &ProbeInputs {
                host: request.bundle.domain.clone(),
                port: request.enable.port,
                certs: request.bundle.dir.clone(),
                namespace: client_ref.namespace.clone(),
                egress_gateway: egress_gateway.clone(),
            },
            progress,
        )
        .await?;
    } else {
        stage(
            progress,
            5,
            format!(
                "probe: skipped (--no-probe); later: kubectl mtls-probe direct --host {} --cert {dir}/client.crt --key {dir}/client.key --ca {dir}/ca.crt",
                request.bundle.domain,
                dir = request.bundle.dir.display()
            ),
        )?;
    }
    render_report(&report, request.output, out)?;
    let failed: Vec<String> = report
        .probes
        .iter()
        .flat_map(|p| {
            p.failed()
                .into_iter()
                .map(move |c| format!("{}/{c}", p.probe))
        })
        .collect();
    if !failed.is_empty() {
        return Err(Error::CheckFailed(format!(
            "both clusters are set up ({target_ref} {}, {client_ref} {}), but the probe failed: {}; see the DETAIL column for the fix, then run `kubectl mtls-probe doctor --context {} --target-context {}`",
            applied_count(written_target.len()),
            applied_count(written_client.len()),
            failed.join(", "),
            client_ref.context,
            target_ref.context
        )));
    }
    writeln!(
        progress,
        "done: {} is exposed on {target_ref} and routed through the egress gateway of {client_ref}; {}",
        request.bundle.domain,
        if request.probe {
            "no probe check failed"
        } else {
            "not probed"
        }
    )?;
    Ok(())
}

/// Reads what the target plan depends on: the ingress gateway, then `expose`'s checks.
async fn read_target(
    target: &Client,
    request: &ConnectRequest,
    route: RouteChoice,
) -> Result<(ExposeRequest, Vec<String>), Error> {
    let (ingress, note) = detect::ingress_gateway(target, &request.target_gateway).await?;
    let mut expose = request.expose.clone();
    expose.ingress = ingress;
    let (expose, mut warnings) = expose::prepare(target, expose, route, true).await?;
    warnings.push(note);
    Ok((expose, warnings))
}

/// Reads what the client plan depends on: `enable`'s checks (the egress gateway among them),
/// and the lockdown's inputs.
async fn read_client(
    client: &Client,
    request: &ConnectRequest,
) -> Result<(EnableRequest, Option<LockdownInputs>, Vec<String>), Error> {
    let (enable, mut notes) = enable::prepare(
        client,
        request.enable.clone(),
        &request.client_gateway,
        request.force,
    )
    .await?;
    if !request.lockdown {
        return Ok((enable, None, notes));
    }
    let detected = detect_inputs(
        client,
        &request.client.namespace,
        &lockdown_options(request.dns_ip, &enable.mesh.egress_gateway),
    )
    .await?;
    notes.extend(detected.notes.into_iter().map(|n| format!("note: {n}")));
    Ok((enable, Some(detected.inputs), notes))
}

/// Where a cluster's writes stopped.
struct Stopped {
    /// What was applied before.
    applied: Vec<Applied>,
    /// The object that failed.
    object: String,
    /// Why.
    error: Error,
}

impl Stopped {
    /// The one line that says what failed and what was applied where. `target_done` is the
    /// number of target objects applied when the client's writes stopped.
    fn error(self, at: &ClusterRef, request: &ConnectRequest, target_done: usize) -> Error {
        let (target, client) = match at.role {
            Role::Target => (self.applied.len(), 0),
            Role::Client => (target_done, self.applied.len()),
        };
        let message = format!(
            "{at}: {}: {}; so far {} {}, {} {}; run the same command again to continue (what is applied already comes back unchanged)",
            self.object,
            self.error,
            request.target,
            applied_count(target),
            request.client,
            applied_count(client),
        );
        match self.error.exit_code() {
            2 => Error::Usage(message),
            _ => Error::State(message),
        }
    }
}

/// Writes `plan` one object at a time, in order (each after its own server dry run), printing a
/// line per object when `table`; stops at the first failure.
async fn write_in_order(
    client: &Client,
    cluster: &ClusterRef,
    plan: &Plan,
    flags: &ApplyArgs,
    table: bool,
    out: &mut dyn Write,
) -> Result<Vec<Applied>, Stopped> {
    let mut done = Vec::with_capacity(plan.objects().len());
    for object in plan.objects() {
        let single: Plan = std::iter::once(object.clone()).collect();
        let stop = |applied, error| Stopped {
            applied,
            object: object.display_name(),
            error,
        };
        let mode = ApplyMode::Apply {
            force_conflicts: flags.force_conflicts,
        };
        match apply_as(client, &single, mode, &flags.field_manager).await {
            Ok(mut applied) => {
                let applied = applied.remove(0);
                if table && let Err(e) = writeln!(out, "{}: {applied}", cluster.role) {
                    done.push(applied);
                    return Err(stop(done, e.into()));
                }
                done.push(applied);
            }
            Err(e) => return Err(stop(done, e.into())),
        }
    }
    Ok(done)
}

/// Prints the report: JSON or YAML as asked, or (table) the probes' checks.
fn render_report(
    report: &ConnectReport,
    output: Option<OutputFormat>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    write_output(out, output.unwrap_or(OutputFormat::Table), report, |out| {
        for result in &report.probes {
            writeln!(out, "\nprobe {}:", result.probe)?;
            write!(out, "{}", report::table(&result.checks))?;
        }
        Ok(())
    })
}
