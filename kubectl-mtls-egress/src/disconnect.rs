//! `kubectl mtls-egress disconnect`: remove what `connect` made for a host on both clusters, found
//! by our labels only — `disable`'s per-host selector, the credential Secrets' host label, and with
//! `--lockdown` the lockdown's label — so nothing we did not create is touched. The local
//! certificate files stay where they are.
//!
//! Every deletion is first checked on both API servers (`dryRun=All`); then the client cluster is
//! cleaned (the caller goes first), then the target. A credential Secret that another
//! DestinationRule or Gateway still names stays (reported as kept, with the objects that use it),
//! and so do the host's istio-system objects while another namespace routes the host.

use std::io::Write;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};

use shared::cli::{DryRun, GlobalArgs};
use shared::cluster::{delete_object, list_dynamic};
use shared::error::Error;
use shared::gateway::GatewayRole;
use shared::manifest::secret::Side;
use shared::manifest::{COMPONENT_LABEL, MANAGED_BY_LABEL, MANAGER};
use shared::names::DnsName;

use super::connect::{
    ClusterRef, Role, cluster_args, cluster_ref, objects, on, reject_single_cluster_flags,
};
use super::{detect, disable, in_use};

/// The number of stages `disconnect` reports progress for.
const STAGES: usize = 3;

/// Remove what connect created for --host on both clusters (by label; nothing else is touched)
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Deletes, on each cluster, what carries app.kubernetes.io/managed-by=kubectl-mtls and
kubectl-mtls/host=<host>: the credential Secret in the gateway's namespace (kept while another
DestinationRule or Gateway still names it), the objects of expose (target) and of enable (client; the shared
access-log Telemetry goes with the last host); with --lockdown also the lockdown NetworkPolicy of
the client namespace. Every deletion is first checked on both
API servers (server dry run); then the client is cleaned, then the target. The certificate files
on this workstation and Kyma's egress gateway setting stay. The gateways' namespaces are read from
the host's objects (istio-system for istioctl's and Kyma's gateways), or given by
--target-gateway-namespace and --client-gateway-namespace. connect's other flags (--client-name,
--service, --certs, ...) are accepted and not used, so its command line works unchanged.

Examples:
  kubectl mtls-egress disconnect --target-context target --client-context client \\
    --host httpbin.example.com -n mtls-demo --dry-run=server
  kubectl mtls-egress disconnect --target-context target --client-context client \\
    --host httpbin.example.com -n mtls-demo --lockdown"
)]
pub struct DisconnectArgs {
    /// The target cluster's kubeconfig context
    #[arg(long, value_name = "CONTEXT", help_heading = "Clusters")]
    pub target_context: String,
    /// The client cluster's kubeconfig context
    #[arg(long, value_name = "CONTEXT", help_heading = "Clusters")]
    pub client_context: String,
    /// The workload's namespace on the target cluster (default: -n, else the target context's)
    #[arg(long, value_name = "NAMESPACE", help_heading = "Clusters")]
    pub target_namespace: Option<String>,
    /// The host connect was run for
    #[arg(long, value_name = "HOST")]
    pub host: String,
    /// Also remove the lockdown from the client namespace (kubectl mtls-lockdown remove)
    #[arg(long)]
    pub lockdown: bool,
    /// The namespace of the target's ingress gateway pods [default: where the host's objects say]
    #[arg(long, value_name = "NS")]
    pub target_gateway_namespace: Option<String>,
    /// The namespace of the client's egress gateway pods [default: where the host's objects say]
    #[arg(long, value_name = "NS")]
    pub client_gateway_namespace: Option<String>,
    /// Only check each deletion on the API servers (server); nothing is deleted
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true,
          default_value_t = DryRun::None, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// connect's other flags: accepted, not used.
    #[command(flatten)]
    pub unused: ConnectOnlyFlags,
}

/// The flags of `connect` that shape what it creates (or how it runs), none of which is needed to
/// find what it created: accepted and ignored, so connect's command line works for disconnect.
/// Hidden from the help, which says so.
#[derive(clap::Args, Debug, Default)]
pub struct ConnectOnlyFlags {
    #[arg(long, hide = true)]
    client_name: Option<String>,
    #[arg(long, hide = true)]
    service: Option<String>,
    #[arg(long, hide = true)]
    certs: Option<PathBuf>,
    #[arg(long, hide = true)]
    days: Option<String>,
    #[arg(long, hide = true)]
    key_type: Option<String>,
    #[arg(long, hide = true)]
    target_credential: Option<String>,
    #[arg(long, hide = true)]
    gateway: Option<String>,
    #[arg(long, hide = true)]
    route: Option<String>,
    #[arg(long, hide = true)]
    methods: Option<String>,
    #[arg(long, hide = true)]
    label_namespace: bool,
    #[arg(long, hide = true)]
    client_credential: Option<String>,
    #[arg(long, hide = true)]
    hop: Option<String>,
    #[arg(long, hide = true)]
    port: Option<String>,
    #[arg(long, hide = true)]
    no_access_log: bool,
    #[arg(long, hide = true)]
    restrict_to_namespace: bool,
    #[arg(long, hide = true)]
    istio_cr: Option<String>,
    #[arg(long, hide = true)]
    force: bool,
    #[arg(long, hide = true)]
    no_wait: bool,
    #[arg(long, hide = true)]
    timeout: Option<String>,
    #[arg(long, hide = true)]
    dns_ip: Option<String>,
    #[arg(long, hide = true)]
    no_probe: bool,
    #[arg(long, hide = true)]
    target_gateway_selector: Option<String>,
    #[arg(long, hide = true)]
    client_gateway_selector: Option<String>,
    #[arg(long, hide = true)]
    force_conflicts: bool,
}

/// What `disconnect` was asked for, validated.
#[derive(Debug, Clone)]
pub struct DisconnectRequest {
    /// The target cluster.
    pub target: ClusterRef,
    /// The client cluster.
    pub client: ClusterRef,
    /// The host.
    pub host: DnsName,
    /// Also remove the lockdown.
    pub lockdown: bool,
    /// Only the server dry run.
    pub dry_run: bool,
    /// `--target-gateway-namespace`.
    pub target_gateway_namespace: Option<String>,
    /// `--client-gateway-namespace`.
    pub client_gateway_namespace: Option<String>,
}

impl DisconnectArgs {
    /// Checks the flags and builds the request for the two namespaces (no I/O).
    pub fn request(
        &self,
        global: &GlobalArgs,
        target_namespace: &str,
        client_namespace: &str,
    ) -> Result<DisconnectRequest, Error> {
        reject_single_cluster_flags(&global.kube)?;
        let dry_run = match self.dry_run {
            DryRun::Client => {
                return Err(Error::Usage(
                    "disconnect deletes by label on both clusters; use --dry-run=server to see what it would delete".into(),
                ));
            }
            DryRun::Server => true,
            DryRun::None => false,
        };
        let target = cluster_ref(Role::Target, &self.target_context, target_namespace)?;
        let client = cluster_ref(Role::Client, &self.client_context, client_namespace)?;
        Ok(DisconnectRequest {
            target,
            client,
            host: DnsName::parse_exact(&self.host)?,
            lockdown: self.lockdown,
            dry_run,
            target_gateway_namespace: self.target_gateway_namespace.clone(),
            client_gateway_namespace: self.client_gateway_namespace.clone(),
        })
    }
}

/// Runs `disconnect`: builds one client per context, then [`execute`].
pub async fn run(
    args: &DisconnectArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let kube = &global.kube;
    let target_ns = args.target_namespace.as_ref().or(kube.namespace.as_ref());
    let client_ns = kube.namespace.as_ref();
    let default = "default".to_string();
    let request = args.request(
        global,
        target_ns.unwrap_or(&default),
        client_ns.unwrap_or(&default),
    )?;
    let (target_client, target_namespace) = cluster_args(kube, &args.target_context, target_ns)
        .connect()
        .await
        .map_err(|e| on(&request.target, e))?;
    let (client_client, client_namespace) = cluster_args(kube, &args.client_context, client_ns)
        .connect()
        .await
        .map_err(|e| on(&request.client, e))?;
    let request = args.request(global, &target_namespace, &client_namespace)?;
    execute(&target_client, &client_client, &request, out, progress).await
}

/// `disconnect` against two connected clusters: check every deletion on both, then delete on the
/// client cluster, then on the target; one line per deleted object on `out`.
pub async fn execute(
    target: &Client,
    client: &Client,
    request: &DisconnectRequest,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let (target_ref, client_ref) = (&request.target, &request.client);
    let stage = |progress: &mut dyn Write, n: usize, text: String| {
        writeln!(progress, "[{n}/{STAGES}] {text}")
    };
    stage(
        progress,
        1,
        format!(
            "check: a server dry run of every deletion on {client_ref} and {target_ref} (nothing is deleted yet)"
        ),
    )?;
    let checked_client = remove(client, request, Role::Client, true)
        .await
        .map_err(|e| on(client_ref, e))?;
    let checked_target = remove(target, request, Role::Target, true)
        .await
        .map_err(|e| on(target_ref, e))?;
    // Lines of objects that stay (another namespace or host uses them) are not deletions.
    let deleting = |lines: &[String]| lines.iter().filter(|l| !l.contains(" kept: ")).count();
    writeln!(
        progress,
        "      to delete: {client_ref} {}, {target_ref} {}",
        objects(deleting(&checked_client)),
        objects(deleting(&checked_target))
    )?;
    if request.dry_run {
        for (cluster, lines) in [(client_ref, &checked_client), (target_ref, &checked_target)] {
            for line in lines {
                writeln!(out, "{}: {line}", cluster.role)?;
            }
        }
        return Ok(());
    }

    stage(progress, 2, format!("{client_ref}: deleting"))?;
    let deleted_client = remove(client, request, Role::Client, false)
        .await
        .map_err(|e| {
            on(
                client_ref,
                Error::State(format!(
                    "{e}; {target_ref}: nothing deleted yet; run the same command again to finish"
                )),
            )
        })?;
    for line in &deleted_client {
        writeln!(out, "client: {line}")?;
    }
    stage(progress, 3, format!("{target_ref}: deleting"))?;
    let deleted_target = remove(target, request, Role::Target, false)
        .await
        .map_err(|e| {
            on(
                target_ref,
                Error::State(format!(
                    "{e}; {client_ref}: {} deleted; run the same command again to finish",
                    objects(deleted_client.len())
                )),
            )
        })?;
    for line in &deleted_target {
        writeln!(out, "target: {line}")?;
    }
    if deleted_client.is_empty() && deleted_target.is_empty() {
        writeln!(
            progress,
            "nothing managed by kubectl-mtls for {} on either cluster",
            request.host
        )?;
    }
    writeln!(
        progress,
        "disconnected {}; the certificate files on this workstation are left as they are",
        request.host
    )?;
    Ok(())
}

/// Deletes (or, with `dry_run`, server-checks the deletion of) what `connect` made on one
/// cluster; returns one kubectl-style line per object.
async fn remove(
    client: &Client,
    request: &DisconnectRequest,
    role: Role,
    dry_run: bool,
) -> Result<Vec<String>, Error> {
    let (namespace, side, gateway_role, flag) = match role {
        Role::Target => (
            &request.target.namespace,
            Side::Target,
            GatewayRole::Ingress,
            request.target_gateway_namespace.as_deref(),
        ),
        Role::Client => (
            &request.client.namespace,
            Side::Client,
            GatewayRole::Egress,
            request.client_gateway_namespace.as_deref(),
        ),
    };
    let host = &request.host;
    // Read before anything goes, so that a run and its dry run decide alike: where the gateway
    // (and so the Secret) is, which objects name which Secrets, and whether the host's objects
    // in the egress gateway's namespace go (not while another namespace routes the host).
    let secret_ns =
        detect::host_gateway_namespace(client, namespace, host, gateway_role, flag).await?;
    let egress_ns = match role {
        Role::Client => secret_ns.clone(),
        Role::Target => {
            detect::host_gateway_namespace(client, namespace, host, GatewayRole::Egress, None)
                .await?
        }
    };
    let gateway_objects_go = in_use::other_namespaces_routing(client, host, namespace, &egress_ns)
        .await?
        .is_empty();
    let candidates = in_use::secret_users(client, namespace, &secret_ns).await?;
    let removed = |o: &DynamicObject| {
        in_use::ours_for(o, host)
            && match o.namespace().as_deref() {
                Some(ns) if ns == namespace.as_str() => true,
                Some(ns) if ns == egress_ns => gateway_objects_go,
                _ => false,
            }
    };
    let named_by_removed = in_use::named_by(&candidates, &removed);

    let mut lines =
        disable::delete_host(client, namespace, host, Some(&egress_ns), dry_run).await?;
    if role == Role::Client && request.lockdown {
        let mode = if dry_run {
            DryRun::Server
        } else {
            DryRun::None
        };
        lines.extend(kubectl_mtls_lockdown::remove::delete(client, namespace, mode).await?);
    }
    // The credential Secrets of the host — labelled for it, or ours and named by one of its
    // objects this run removes — go unless another DestinationRule or Gateway still names them
    // (two hosts given one --client-credential, say).
    let secrets = ApiResource::erase::<Secret>(&());
    let ours = list_dynamic(
        client,
        &secrets,
        Some(&secret_ns),
        &ListParams::default().labels(&format!(
            "{MANAGED_BY_LABEL}={MANAGER},{COMPONENT_LABEL}={}",
            side.component()
        )),
    )
    .await?;
    for secret in ours {
        let name = secret.name_any();
        if !(in_use::ours_for(&secret, host) || named_by_removed.contains(&name)) {
            continue;
        }
        let users = in_use::still_used_by(&name, &candidates, &removed);
        if users.is_empty() {
            lines.extend(delete_object(client, &secrets, Some(&secret_ns), &name, dry_run).await?);
        } else {
            lines.push(format!(
                "secret/{name} kept: {} still uses it",
                users.join(", ")
            ));
        }
    }
    Ok(lines)
}
