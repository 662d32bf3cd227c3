//! `kubectl mtls-egress disable`: remove exactly what `enable` (or `expose`) made for a host in a
//! namespace; the host's objects in the egress gateway's namespace (istio-system for istioctl's
//! and Kyma's gateway; read from the subset DestinationRule's host, else `--gateway-namespace`,
//! else the gateway found) only when no other namespace still routes it.

use std::io::Write;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::core::ApiResource;
use kube::{Resource, ResourceExt};

use shared::cli::{ApplyArgs, DryRun, GlobalArgs, apply_and_print};
use shared::cluster::{ClusterError, delete_labelled, display_kind, list, list_dynamic};
use shared::error::Error;
use shared::gateway::GatewayRole;
use shared::manifest::egress::{ACCESS_LOG_COMPONENT, egress_gateway_off};
use shared::manifest::host::{HOST_LABEL, host_selector, slug};
use shared::manifest::{COMPONENT_LABEL, MANAGED_BY_LABEL, MANAGER};
use shared::names::DnsName;
use shared::plan::Plan;
use shared::resources::{
    APIRule, AuthorizationPolicy, DestinationRule, Gateway, ServiceEntry, Telemetry, VirtualService,
};

use super::{detect, in_use};

/// Remove what enable/expose created for --host (by label; nothing else is touched)
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Deletes the objects labelled app.kubernetes.io/managed-by=kubectl-mtls and kubectl-mtls/host=<host>
in the namespace, and in the egress gateway's namespace unless another namespace still routes the
host (they are reported as kept); the shared access-log Telemetry goes with the last host. The
gateway's namespace is --gateway-namespace when given, else the one the host's subset
DestinationRule routes to (istio-system for istioctl's and Kyma's gateway), else the egress gateway
found on the cluster.
The Istio CR's egress gateway setting stays unless --egress-gateway is given.

Examples:
  kubectl mtls-egress disable --host httpbin.example.com -n mtls-demo --dry-run=server
  kubectl mtls-egress disable --host httpbin.example.com -n mtls-demo --egress-gateway"
)]
pub struct DisableArgs {
    /// The host enable was run for
    #[arg(long, value_name = "HOST")]
    pub host: String,
    /// Also switch the Kyma egress gateway off (spec.components.egressGateway.enabled: false)
    #[arg(long)]
    pub egress_gateway: bool,
    /// The namespace of the egress gateway pods [default: where the host's objects say]
    #[arg(long, value_name = "NS")]
    pub gateway_namespace: Option<String>,
    /// --dry-run=server checks each deletion on the server without deleting; -o for the Istio CR patch.
    #[command(flatten)]
    pub apply: ApplyArgs,
}

/// The kinds `enable`/`expose` create per host in the namespace.
fn per_host_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<VirtualService>(&()),
        ApiResource::erase::<APIRule>(&()),
        ApiResource::erase::<Gateway>(&()),
        ApiResource::erase::<DestinationRule>(&()),
        ApiResource::erase::<ServiceEntry>(&()),
    ]
}

/// The kinds `enable` creates per host in the egress gateway's namespace: shared by the host's
/// one client namespace, so they stay while another namespace still routes the host.
fn per_host_istio_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<DestinationRule>(&()),
        ApiResource::erase::<AuthorizationPolicy>(&()),
    ]
}

/// Runs `disable`.
pub async fn run(
    args: &DisableArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let host = DnsName::parse(&args.host)?;
    if args.apply.dry_run == DryRun::Client {
        return Err(Error::Usage(
            "disable deletes by label on the cluster; use --dry-run=server to see what it would delete".into(),
        ));
    }
    let (client, namespace) = global.kube.connect().await?;
    execute(&client, &namespace, &host, args, out, err).await
}

/// `disable` against a connected cluster.
pub async fn execute(
    client: &kube::Client,
    namespace: &str,
    host: &DnsName,
    args: &DisableArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let dry_run = args.apply.dry_run == DryRun::Server;
    let lines = delete_host(
        client,
        namespace,
        host,
        args.gateway_namespace.as_deref(),
        dry_run,
    )
    .await?;
    if lines.is_empty() {
        writeln!(
            out,
            "nothing managed by kubectl-mtls for {host} in {namespace}"
        )?;
    }
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    if args.egress_gateway {
        match detect::kyma_istio(client).await? {
            Some((ns, name)) => {
                let mut plan = Plan::new();
                plan.push(&egress_gateway_off(&ns, &name))?;
                apply_and_print(client, &plan, &args.apply, out).await?;
            }
            None => writeln!(
                err,
                "note: not Kyma: the egress gateway is not ours to switch off; left as it is"
            )?,
        }
    }
    Ok(())
}

/// Deletes (with `dry_run`, server-checks the deletion of) what `enable` and `expose` made for
/// `host` in `namespace`; the host's objects in the egress gateway's namespace too (`gateway_ns`
/// when given, else [`detect::host_gateway_namespace`]), unless another namespace still routes
/// the host (then each is reported as kept); and the shared access-log Telemetry when no other
/// host (or namespace) is left.
pub(crate) async fn delete_host(
    client: &kube::Client,
    namespace: &str,
    host: &DnsName,
    gateway_ns: Option<&str>,
    dry_run: bool,
) -> Result<Vec<String>, Error> {
    let client = client.clone();
    // The namespace must exist, or a typo would report "nothing to delete" as success.
    if shared::cluster::get_cluster_opt::<Namespace>(&client, namespace)
        .await?
        .is_none()
    {
        return Err(Error::State(format!("namespace {namespace} not found")));
    }
    let selector = host_selector(host);
    // Read before the subset DestinationRule that names the gateway goes.
    let gateway_ns =
        detect::host_gateway_namespace(&client, namespace, host, GatewayRole::Egress, gateway_ns)
            .await?;
    let apirule = detect::apirule_served(&client).await?;
    let mut lines = Vec::new();
    for resource in per_host_kinds() {
        if resource.kind == APIRule::kind(&()) && !apirule {
            continue;
        }
        lines.extend(
            delete_labelled(&client, &resource, Some(namespace), &selector, dry_run).await?,
        );
    }
    let kept_for = in_use::other_namespaces_routing(&client, host, namespace, &gateway_ns).await?;
    for resource in per_host_istio_kinds() {
        if kept_for.is_empty() {
            lines.extend(
                delete_labelled(&client, &resource, Some(&gateway_ns), &selector, dry_run).await?,
            );
            continue;
        }
        let kept = list_dynamic(
            &client,
            &resource,
            Some(&gateway_ns),
            &ListParams::default().labels(&selector),
        )
        .await?;
        for object in kept {
            lines.push(format!(
                "{}/{} kept: namespace {} still routes {host} through the egress gateway",
                display_kind(&resource),
                object.name_any(),
                kept_for.join(", ")
            ));
        }
    }
    // The access-log Telemetry serves every host: remove it with the last one. A user who may
    // not list ServiceEntries across namespaces cannot tell, so it stays.
    let remaining: Option<Vec<ServiceEntry>> = match list(
        &client,
        None,
        &ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}")),
    )
    .await
    {
        Ok(entries) => Some(entries),
        Err(ClusterError::Forbidden { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let this_host = slug(host);
    let last = remaining.is_some_and(|entries| {
        entries.iter().all(|se| {
            se.labels().get(HOST_LABEL) == Some(&this_host)
                && se.namespace().as_deref() == Some(namespace)
        })
    });
    if last {
        lines.extend(
            delete_labelled(
                &client,
                &ApiResource::erase::<Telemetry>(&()),
                Some(&gateway_ns),
                &format!("{MANAGED_BY_LABEL}={MANAGER},{COMPONENT_LABEL}={ACCESS_LOG_COMPONENT}"),
                dry_run,
            )
            .await?,
        );
    }
    Ok(lines)
}
