//! `kubectl mtls-egress connect`: the whole procedure across two clusters in one command —
//! certificates (stage 1), the target's credential Secret and `expose` objects (stage 2), the
//! client's credential Secret and `enable` objects, optionally the lockdown (stages 3 and 5), and
//! the probes (stage 4).
//!
//! Plan is pure: [`connect_plans`] builds one [`Plan`] per cluster from inputs already read
//! ([`ConnectInputs`]); [`render_dry_run`] prints both for `--dry-run=client`. [`execute`] takes
//! one client per cluster: it reads both clusters, server-dry-runs *both* plans in full before the
//! first write to either, then writes the target's objects and the client's one at a time, in
//! order, so a failure midway says exactly what was applied where. Writes are server-side apply,
//! so a re-run continues: what is there already comes back `unchanged`.
//!
//! Submodules: [`bundle`] (stage 1: reuse or generate the certificates), `execute` (the run
//! against both clusters, stage by stage) and `probe` (stage 4).

pub mod bundle;
mod execute;
mod probe;

pub use execute::{ClusterResult, ConnectReport, ObjectResult, dry_run_client, execute, run};

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;
use serde_json::{Value, json};

use kubectl_mtls_lockdown::apply::LockdownOptions;
use shared::cli::{ApplyArgs, DryRun, OutputFormat};
use shared::cluster::{KubeArgs, parse_request_timeout};
use shared::error::Error;
use shared::gateway::{GatewayArgs, GatewayRole, GatewaySelector, GatewayWorkload};
use shared::manifest::COMPONENT_LABEL;
use shared::manifest::egress::{EnableRequest, Hop, MeshFacts, enable_plan};
use shared::manifest::expose::{ExposeRequest, ServiceRef, expose_plan};
use shared::manifest::host::{HOST_LABEL, host_annotations, slug};
use shared::manifest::lockdown::LockdownInputs;
use shared::manifest::secret::{Side, credential_secret};
use shared::names::DnsName;
use shared::pki::CredentialPem;
use shared::pki::{KeyType, check_days};
use shared::plan::Plan;

use super::enable::parse_istio_cr;
use super::expose::RouteChoice;
use bundle::{BundleSpec, Credentials};

/// Which side of the connection a cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The cluster that exposes the workload behind mutual TLS (stage 2).
    Target,
    /// The cluster whose workloads call it through the egress gateway (stage 3).
    Client,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Target => "target",
            Role::Client => "client",
        })
    }
}

/// One of the two clusters: its role, kubeconfig context, and the namespace used there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterRef {
    /// Target or client.
    pub role: Role,
    /// The kubeconfig context.
    pub context: String,
    /// The workload namespace (target) or the calling namespace (client).
    pub namespace: String,
}

impl fmt::Display for ClusterRef {
    /// `target (context A)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (context {})", self.role, self.context)
    }
}

/// `err` as it happened on `cluster`: the cluster named first, the exit code kept.
pub fn on(cluster: &ClusterRef, err: impl Into<Error>) -> Error {
    let err = err.into();
    let message = format!("{cluster}: {err}");
    match err.exit_code() {
        1 => Error::CheckFailed(message),
        2 => Error::Usage(message),
        3 => Error::State(message),
        _ => err,
    }
}

/// Stages 1-4 across two clusters: certificates, target, client (and lockdown), probe
#[derive(clap::Args, Debug)]
#[command(after_help = "Stages (progress on stderr, results on stdout):
  [1/5] certificates: reuse the bundle in --certs DIR, or generate one into it (no overwriting)
  [2/5] validate: read both clusters, then a server dry run of every object of both plans
  [3/5] target: server credential Secret (in the ingress gateway's namespace), MUTUAL Gateway,
        APIRule or VirtualService
  [4/5] client: client credential Secret (in the egress gateway's namespace), the objects of
        `enable`, the lockdown (--lockdown); then it waits for the egress gateway (unless --no-wait)
  [5/5] probe: direct (this workstation -> HOST, if HOST resolves here), then check on the client
Nothing is written before both plans pass the server dry run. When a write fails midway, the
error says what was applied on which cluster; run the same command again to continue (what is
applied already comes back unchanged). -n is the client namespace, and the target's too unless
--target-namespace is given. The gateways are found as expose and enable find them (Kyma:
istio-system), or named by --target-gateway-namespace/-selector and
--client-gateway-namespace/-selector.
--dry-run=client prints one stream per cluster, each after a `# cluster: ...` line (-o json:
{\"target\": ..., \"client\": ...}) and contacts nothing. Otherwise -o json|yaml prints a report:
the outcome of each object per cluster and the probes' checks (never a Secret).

Examples:
  kubectl mtls-egress connect --target-context target --client-context client \\
    --host httpbin.example.com --client-name client.example.com \\
    --service httpbin:8000 -n mtls-demo

  # Review both clusters' manifests first (the Secrets in it carry private keys)
  kubectl mtls-egress connect --target-context target --client-context client \\
    --host httpbin.example.com --client-name client.example.com \\
    --service httpbin:8000 -n mtls-demo --certs ./mtls --dry-run=client > connect.yaml

  # One cluster standing in for two (a demo): two namespaces
  kubectl mtls-egress connect --target-context kind-demo --client-context kind-demo \\
    --target-namespace partner -n mtls-demo --host httpbin.example.com \\
    --client-name client.example.com --service httpbin:8000 --lockdown --no-probe")]
pub struct ConnectArgs {
    /// The target cluster's kubeconfig context (where --service runs)
    #[arg(long, value_name = "CONTEXT", help_heading = "Clusters")]
    pub target_context: String,
    /// The client cluster's kubeconfig context (whose workloads call --host)
    #[arg(long, value_name = "CONTEXT", help_heading = "Clusters")]
    pub client_context: String,
    /// The workload's namespace on the target cluster (default: -n, else the target context's)
    #[arg(long, value_name = "NAMESPACE", help_heading = "Clusters")]
    pub target_namespace: Option<String>,
    /// The target's host name: the server certificate's SAN and the host clients call
    #[arg(long, value_name = "HOST")]
    pub host: String,
    /// The client identity: the client certificate's SAN (DNS), e.g. client.example.com
    #[arg(long, value_name = "NAME")]
    pub client_name: String,
    /// The workload's Service and port on the target cluster, NAME:PORT
    #[arg(long, value_name = "NAME:PORT")]
    pub service: String,

    /// Bundle directory: reused when it holds ca.crt, server.crt/.key, client.crt/.key, else
    /// generated into it [default: ./mtls-<HOST>]
    #[arg(long, value_name = "DIR", help_heading = "Certificates (stage 1)")]
    pub certs: Option<PathBuf>,
    /// Validity of generated certificates, in days (1-3650)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 365,
        help_heading = "Certificates (stage 1)"
    )]
    pub days: u32,
    /// Key algorithm of generated keys
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256, help_heading = "Certificates (stage 1)")]
    pub key_type: KeyType,

    /// The server credential Secret in the target's ingress gateway namespace (default mtls-server-<host>)
    #[arg(long, value_name = "NAME", help_heading = "Target cluster (stage 2)")]
    pub target_credential: Option<String>,
    /// The Gateway's name (default mtls-<host>)
    #[arg(long, value_name = "NAME", help_heading = "Target cluster (stage 2)")]
    pub gateway: Option<String>,
    /// How to route from the Gateway to the Service
    #[arg(long, value_enum, default_value_t = RouteChoice::Auto, help_heading = "Target cluster (stage 2)")]
    pub route: RouteChoice,
    /// HTTP methods the APIRule allows (comma-separated)
    #[arg(
        long,
        value_name = "METHODS",
        value_delimiter = ',',
        default_value = "GET",
        help_heading = "Target cluster (stage 2)"
    )]
    pub methods: Vec<String>,
    /// Also label the target namespace istio-injection=enabled (pods need a restart)
    #[arg(long, help_heading = "Target cluster (stage 2)")]
    pub label_namespace: bool,
    /// The namespace of the target's ingress gateway pods [default: detected; istio-system on Kyma]
    #[arg(long, value_name = "NS", help_heading = "Target cluster (stage 2)")]
    pub target_gateway_namespace: Option<String>,
    /// The target's ingress gateway pods' labels, K=V[,K=V] [default: detected]
    #[arg(
        long,
        value_name = "K=V[,K=V]",
        help_heading = "Target cluster (stage 2)"
    )]
    pub target_gateway_selector: Option<GatewaySelector>,

    /// The client credential Secret in the client's egress gateway namespace (default mtls-client-<host>)
    #[arg(long, value_name = "NAME", help_heading = "Client cluster (stage 3)")]
    pub client_credential: Option<String>,
    /// The sidecar -> egress gateway hop: Istio mutual TLS (default) or plain HTTP (the tutorial's)
    #[arg(long, value_enum, default_value_t = Hop::IstioMutual, help_heading = "Client cluster (stage 3)")]
    pub hop: Hop,
    /// The namespace of the client's egress gateway pods [default: detected; istio-system on Kyma]
    #[arg(long, value_name = "NS", help_heading = "Client cluster (stage 3)")]
    pub client_gateway_namespace: Option<String>,
    /// The client's egress gateway pods' labels, K=V[,K=V] [default: detected]
    #[arg(
        long,
        value_name = "K=V[,K=V]",
        help_heading = "Client cluster (stage 3)"
    )]
    pub client_gateway_selector: Option<GatewaySelector>,
    /// The target's HTTPS port
    #[arg(long, value_name = "PORT", default_value_t = 443,
          value_parser = clap::value_parser!(u16).range(1..), help_heading = "Client cluster (stage 3)")]
    pub port: u16,
    /// No access-log Telemetry for the egress gateway
    #[arg(long, help_heading = "Client cluster (stage 3)")]
    pub no_access_log: bool,
    /// Deny other namespaces the use of this host through the egress gateway (AuthorizationPolicy)
    #[arg(long, help_heading = "Client cluster (stage 3)")]
    pub restrict_to_namespace: bool,
    /// The Kyma Istio CR as NAMESPACE/NAME, for --dry-run=client (detected when connected)
    #[arg(
        long,
        value_name = "NS/NAME",
        help_heading = "Client cluster (stage 3)"
    )]
    pub istio_cr: Option<String>,
    /// Go ahead even when another DestinationRule for the host would shadow ours, or a
    /// credential Secret to write holds another certificate (it is replaced)
    #[arg(long, help_heading = "Client cluster (stage 3)")]
    pub force: bool,
    /// Do not wait for the egress gateway to become Available
    #[arg(long, help_heading = "Client cluster (stage 3)")]
    pub no_wait: bool,
    /// How long to wait for the egress gateway
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = parse_request_timeout,
          help_heading = "Client cluster (stage 3)")]
    pub timeout: Duration,
    /// Also lock the client namespace down: egress only to DNS, istiod and the egress gateway
    #[arg(long, help_heading = "Client cluster (stage 3)")]
    pub lockdown: bool,
    /// The client cluster's kube-dns ClusterIP for --lockdown (detected when connected; needed with --dry-run=client)
    #[arg(
        long,
        value_name = "IP",
        requires = "lockdown",
        help_heading = "Client cluster (stage 3)"
    )]
    pub dns_ip: Option<IpAddr>,

    /// Skip stage 4 (probe direct and probe check)
    #[arg(long, help_heading = "Probe (stage 4)")]
    pub no_probe: bool,

    /// --dry-run, -o and --force-conflicts.
    #[command(flatten)]
    pub apply: ApplyArgs,
}

/// Everything `connect` was asked for, validated.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The target cluster.
    pub target: ClusterRef,
    /// The client cluster.
    pub client: ClusterRef,
    /// Stage 1: where the bundle is, and what it is for.
    pub bundle: BundleSpec,
    /// Stage 2: the inputs of `expose` (its route is decided from the cluster unless fixed).
    pub expose: ExposeRequest,
    /// `--route`.
    pub route: RouteChoice,
    /// `--target-gateway-namespace` and `--target-gateway-selector`: the ingress gateway.
    pub target_gateway: GatewayArgs,
    /// `--client-gateway-namespace` and `--client-gateway-selector`: the egress gateway.
    pub client_gateway: GatewayArgs,
    /// Stage 3: the inputs of `enable`.
    pub enable: EnableRequest,
    /// Go ahead despite a shadowing DestinationRule.
    pub force: bool,
    /// Also the lockdown on the client namespace.
    pub lockdown: bool,
    /// The kube-dns ClusterIP for the lockdown, instead of detecting it.
    pub dns_ip: Option<IpAddr>,
    /// How long to wait for the egress gateway; `None` with `--no-wait`.
    pub wait: Option<Duration>,
    /// Whether to run stage 4.
    pub probe: bool,
    /// `--dry-run`, `-o`, `--force-conflicts`, `--field-manager`.
    pub apply: ApplyArgs,
    /// `-o`: connect prints two clusters' objects or a report, never bare names.
    pub output: Option<OutputFormat>,
    /// Whether target and client are one cluster (the same context, or contexts naming the same
    /// API server): then the target's route must not be an APIRule ([`route_on_one_cluster`]).
    pub same_cluster: bool,
}

impl ConnectRequest {
    /// What one cluster standing in for two cannot do, refused before anything is read or
    /// written: an APIRule route (its host is the client's VirtualService's host), and one
    /// Secret name for both credentials (the client's would replace the server's).
    pub fn check_one_cluster(&self) -> Result<(), Error> {
        if !self.same_cluster {
            return Ok(());
        }
        route_on_one_cluster(self.route, &self.expose.host)?;
        let (ingress_ns, egress_ns) = (
            &self.expose.ingress.namespace,
            &self.enable.mesh.egress_gateway.namespace,
        );
        if self.expose.credential == self.enable.credential && ingress_ns == egress_ns {
            return Err(Error::Usage(format!(
                "--target-credential and --client-credential are both {:?}, and target and client are one cluster: both Secrets live in its {ingress_ns}, so give them two names (or leave both out: mtls-server-<host> and mtls-client-<host>)",
                self.expose.credential
            )));
        }
        Ok(())
    }
}

/// The route `expose` may take when target and client are one cluster. Kyma's APIRule v2 refuses
/// a host that a VirtualService it does not own already uses ("Host is occupied by another
/// Virtual Service": kyma-project/api-gateway `internal/validation/v2alpha1/hosts.go`,
/// `validateHosts`), and the client side's VirtualService `mtls-<host>` has that host; so `auto`
/// becomes a VirtualService (with the note to print) and `apirule` is refused.
pub fn route_on_one_cluster(
    route: RouteChoice,
    host: &DnsName,
) -> Result<(RouteChoice, Option<String>), Error> {
    let reason = format!(
        "Kyma's APIRule v2 refuses a host that another VirtualService already uses (\"Host is occupied by another Virtual Service\"), and the client side's VirtualService mtls-{} routes {host}",
        slug(host)
    );
    match route {
        RouteChoice::Apirule => Err(Error::Usage(format!(
            "--route apirule with target and client on one cluster: {reason}; use --route virtualservice (or auto), or two clusters"
        ))),
        RouteChoice::Auto => Ok((
            RouteChoice::Virtualservice,
            Some(format!(
                "note: target and client are one cluster: the target routes by VirtualService, not APIRule: {reason}"
            )),
        )),
        RouteChoice::Virtualservice => Ok((RouteChoice::Virtualservice, None)),
    }
}

impl ConnectArgs {
    /// Checks every flag and builds the request for the two namespaces, without reading the
    /// kubeconfig, writing a file or sending a request (DIR is only looked at).
    pub fn request(
        &self,
        kube: &KubeArgs,
        target_namespace: &str,
        client_namespace: &str,
    ) -> Result<ConnectRequest, Error> {
        let target = cluster_ref(Role::Target, &self.target_context, target_namespace)?;
        let client = cluster_ref(Role::Client, &self.client_context, client_namespace)?;
        reject_single_cluster_flags(kube)?;
        let output = match self.apply.output {
            None => None,
            Some(o) => Some(o.format().ok_or_else(|| {
                Error::Usage(
                    "-o name lists the objects of one cluster, and connect writes to two: use -o yaml or json (one stream per cluster) or table".into(),
                )
            })?),
        };
        if target.context == client.context && target.namespace == client.namespace {
            return Err(Error::Usage(format!(
                "--target-context and --client-context are both {:?} and both sides would use namespace {}: give each cluster its own context, or (one cluster standing in for two) a --target-namespace other than -n",
                target.context, target.namespace
            )));
        }
        let host = DnsName::parse_exact(&self.host)?;
        let client_name = DnsName::parse_exact(&self.client_name)?;
        if host == client_name {
            return Err(Error::Usage(format!(
                "--host and --client-name are both {host}: the client certificate names the caller, e.g. --client-name client.example.com"
            )));
        }
        check_days(self.days)?;
        let target_gateway = GatewayArgs {
            gateway_namespace: self.target_gateway_namespace.clone(),
            gateway_selector: self.target_gateway_selector.clone(),
        };
        let client_gateway = GatewayArgs {
            gateway_namespace: self.client_gateway_namespace.clone(),
            gateway_selector: self.client_gateway_selector.clone(),
        };
        for (flag, gateway) in [("--target", &target_gateway), ("--client", &client_gateway)] {
            gateway.validate().map_err(|e| {
                Error::Usage(format!("{flag}-{}", e.to_string().trim_start_matches("--")))
            })?;
        }
        let expose = ExposeRequest {
            host: host.clone(),
            namespace: target.namespace.clone(),
            service: self.service.parse::<ServiceRef>()?,
            credential: self
                .target_credential
                .clone()
                .unwrap_or_else(|| credential_name(Side::Target, &host)),
            gateway: self.gateway.clone(),
            route: self.route.planned(),
            methods: self.methods.clone(),
            label_namespace: self.label_namespace,
            ingress: target_gateway.offline(GatewayRole::Ingress),
        };
        expose_plan(&expose)?;
        let enable = EnableRequest {
            host: host.clone(),
            namespace: client.namespace.clone(),
            credential: self
                .client_credential
                .clone()
                .unwrap_or_else(|| credential_name(Side::Client, &host)),
            hop: self.hop,
            port: self.port,
            access_log: !self.no_access_log,
            restrict_to_namespace: self.restrict_to_namespace,
            kyma_istio: self.istio_cr.as_deref().map(parse_istio_cr).transpose()?,
            mesh: MeshFacts {
                egress_gateway: client_gateway.offline(GatewayRole::Egress),
                ..Default::default()
            },
        };
        enable_plan(&enable)?;
        if self.lockdown && self.apply.dry_run == DryRun::Client && self.dns_ip.is_none() {
            return Err(Error::Usage(
                "--lockdown with --dry-run=client needs --dns-ip IP (the client cluster's kube-dns ClusterIP): a client dry run reads nothing from the cluster".into(),
            ));
        }
        let dir = self
            .certs
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("mtls-{host}")));
        bundle::check_dir(&dir)?;
        let same_cluster = target.context == client.context;
        let request = ConnectRequest {
            target,
            client,
            bundle: BundleSpec {
                dir,
                domain: host,
                client: client_name,
                days: self.days,
                key_type: self.key_type,
            },
            expose,
            route: self.route,
            target_gateway,
            client_gateway,
            enable,
            force: self.force,
            lockdown: self.lockdown,
            dns_ip: self.dns_ip,
            wait: (!self.no_wait).then_some(self.timeout),
            probe: !self.no_probe,
            apply: self.apply.clone(),
            output,
            same_cluster,
        };
        request.check_one_cluster()?;
        Ok(request)
    }
}

/// A cluster of the pair, its context and namespace checked.
pub(super) fn cluster_ref(role: Role, context: &str, namespace: &str) -> Result<ClusterRef, Error> {
    if context.trim().is_empty() {
        return Err(Error::Usage(format!(
            "--{role}-context is empty: name a context from your kubeconfig (kubectl config get-contexts)"
        )));
    }
    shared::cluster::validate_namespace(namespace)?;
    Ok(ClusterRef {
        role,
        context: context.to_string(),
        namespace: namespace.to_string(),
    })
}

/// `--context`, `--cluster` and `--user` pick one cluster; `connect` and `disconnect` need two.
pub(crate) fn reject_single_cluster_flags(kube: &KubeArgs) -> Result<(), Error> {
    let given = [
        ("--context", kube.context.is_some()),
        ("--cluster", kube.cluster.is_some()),
        ("--user", kube.user.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
        return Err(Error::Usage(format!(
            "{flag} selects one cluster, and this command works on two: use --target-context and --client-context"
        )));
    }
    Ok(())
}

/// The connection flags for one of the two clusters: the global ones with its context and
/// namespace.
pub(crate) fn cluster_args(kube: &KubeArgs, context: &str, namespace: Option<&String>) -> KubeArgs {
    KubeArgs {
        context: Some(context.to_string()),
        namespace: namespace.cloned(),
        ..kube.clone()
    }
}

/// The inputs of both plans, once what they depend on is known (read from the clusters, or
/// given by flags for `--dry-run=client`).
#[derive(Debug, Clone)]
pub struct ConnectInputs {
    /// `expose`'s inputs, with the route decided.
    pub expose: ExposeRequest,
    /// `enable`'s inputs, with the Kyma Istio CR decided.
    pub enable: EnableRequest,
    /// The two credentials from stage 1.
    pub credentials: Credentials,
    /// The lockdown policy's inputs, with `--lockdown`.
    pub lockdown: Option<LockdownInputs>,
}

/// One plan per cluster.
#[derive(Debug, Clone)]
pub struct ClusterPlans {
    /// The target cluster's: its credential Secret, then `expose`'s objects.
    pub target: Plan,
    /// The client cluster's: its credential Secret, `enable`'s objects, then the lockdown's.
    pub client: Plan,
}

/// Builds both plans. Pure.
pub fn connect_plans(inputs: &ConnectInputs) -> Result<ClusterPlans, Error> {
    let host = &inputs.expose.host;
    if *host != inputs.enable.host {
        return Err(Error::Usage(format!(
            "the target exposes {host} but the client would call {}: one host for both",
            inputs.enable.host
        )));
    }
    let mut target = Plan::new();
    target.push(&credential_for_host(
        Side::Target,
        &inputs.expose.credential,
        &inputs.expose.ingress.namespace,
        &inputs.credentials.target,
        host,
    )?)?;
    target.extend(expose_plan(&inputs.expose)?.objects().iter().cloned());

    let mut client = Plan::new();
    client.push(&credential_for_host(
        Side::Client,
        &inputs.enable.credential,
        &inputs.enable.mesh.egress_gateway.namespace,
        &inputs.credentials.client,
        host,
    )?)?;
    client.extend(enable_plan(&inputs.enable)?.objects().iter().cloned());
    if let Some(lockdown) = &inputs.lockdown {
        let plan = kubectl_mtls_lockdown::apply::plan(lockdown, false, &[])?;
        client.extend(plan.objects().iter().cloned());
    }
    Ok(ClusterPlans { target, client })
}

/// The default name of the credential Secret `connect` writes for `host` on `side`:
/// `mtls-server-<slug>` (target) and `mtls-client-<slug>` (client). One per partner, so that a
/// second partner connected from the same cluster never replaces the first one's certificate,
/// and distinct per side, so that one cluster can stand in for both.
pub fn credential_name(side: Side, host: &DnsName) -> String {
    let prefix = match side {
        Side::Target => "mtls-server",
        Side::Client => "mtls-client",
    };
    format!("{prefix}-{}", slug(host))
}

/// The credential Secret for `side` in `namespace` (that of the gateway pods, which resolve a
/// `credentialName` in their own namespace), labelled for `host` so that `disconnect` finds
/// exactly it again.
pub(crate) fn credential_for_host(
    side: Side,
    name: &str,
    namespace: &str,
    pem: &CredentialPem,
    host: &DnsName,
) -> Result<Secret, Error> {
    let mut secret = credential_secret(side, name, namespace, pem)?;
    secret
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(HOST_LABEL.to_string(), slug(host));
    secret.metadata.annotations = Some(host_annotations(host));
    Ok(secret)
}

/// Checks the credential Secrets of `plan` against those on the cluster (`client`): one that
/// exists holding another certificate is refused — it is most likely another partner's — unless
/// `force`, which turns the refusal into a warning (returned) and replaces it.
pub(crate) async fn check_credentials(
    client: &kube::Client,
    plan: &Plan,
    force: bool,
) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    for object in plan
        .objects()
        .iter()
        .filter(|o| o.resource.kind == "Secret")
    {
        let planned: Secret = serde_json::from_value(object.body.clone())
            .map_err(|e| Error::Usage(format!("{}: {e}", object.display_name())))?;
        let Some(clash) = shared::cluster::existing_credential_clash(client, &planned).await?
        else {
            continue;
        };
        let flag = match planned
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(COMPONENT_LABEL))
        {
            Some(c) if c == Side::Target.component() => "--target-credential",
            _ => "--client-credential",
        };
        let hint = format!(
            "give this partner's credential its own name with {flag} NAME (by default each host gets its own)"
        );
        if !force {
            return Err(Error::State(clash.message(&hint)));
        }
        warnings.push(format!("warning: --force: replacing {}", clash.facts()));
    }
    Ok(warnings)
}

/// The lockdown `connect` applies: that of `kubectl mtls-lockdown apply` without flags, with
/// `--dns-ip` and the egress gateway `enable` routes through.
fn lockdown_options(dns_ip: Option<IpAddr>, egress_gateway: &GatewayWorkload) -> LockdownOptions {
    LockdownOptions {
        dns_ip,
        egress_gateway: GatewayArgs {
            gateway_namespace: Some(egress_gateway.namespace.clone()),
            gateway_selector: Some(egress_gateway.selector.clone()),
        },
        ..LockdownOptions::default()
    }
}

/// The plan inputs from flags alone (`--dry-run=client`): the route `--route` gives (a
/// VirtualService for `auto`), the Istio CR `--istio-cr` names, the lockdown with `--dns-ip`.
pub(crate) fn offline_inputs(
    request: &ConnectRequest,
    credentials: Credentials,
) -> Result<ConnectInputs, Error> {
    let lockdown = match (request.lockdown, request.dns_ip) {
        (false, _) => None,
        (true, Some(ip)) => {
            let gateway = &request.enable.mesh.egress_gateway;
            let mut inputs = kubectl_mtls_lockdown::apply::inputs(
                &lockdown_options(Some(ip), gateway),
                &request.client.namespace,
                ip,
            );
            inputs.egress_gateway = gateway.clone();
            Some(inputs)
        }
        (true, None) => {
            return Err(Error::Usage(
                "--lockdown with --dry-run=client needs --dns-ip IP (the client cluster's kube-dns ClusterIP)".into(),
            ));
        }
    };
    Ok(ConnectInputs {
        expose: request.expose.clone(),
        enable: request.enable.clone(),
        credentials,
        lockdown,
    })
}

/// `--dry-run=client`: both plans, labelled per cluster. YAML (default): one multi-document
/// stream per cluster, each after a `# cluster: ...` comment; JSON: `{"target": {context,
/// namespace, manifests: List}, "client": ...}`; table: one line per object.
pub fn render_dry_run(
    plans: &ClusterPlans,
    target: &ClusterRef,
    client: &ClusterRef,
    output: Option<OutputFormat>,
) -> String {
    let both = [(target, &plans.target), (client, &plans.client)];
    match output.unwrap_or(OutputFormat::Yaml) {
        OutputFormat::Yaml => both
            .iter()
            .map(|(cluster, plan)| {
                format!(
                    "# cluster: {cluster}, namespace {}\n---\n{}",
                    cluster.namespace,
                    plan.to_yaml()
                )
            })
            .collect(),
        OutputFormat::Json => {
            let mut doc = serde_json::Map::new();
            for (cluster, plan) in both {
                doc.insert(
                    cluster.role.to_string(),
                    json!({
                        "context": cluster.context,
                        "namespace": cluster.namespace,
                        "manifests": {
                            "apiVersion": "v1",
                            "kind": "List",
                            "items": plan.objects().iter().map(|o| &o.body).collect::<Vec<_>>(),
                        },
                    }),
                );
            }
            let mut text =
                serde_json::to_string_pretty(&Value::Object(doc)).expect("a JSON value serializes");
            text.push('\n');
            text
        }
        OutputFormat::Table => both
            .iter()
            .flat_map(|(cluster, plan)| {
                plan.objects().iter().map(move |o| {
                    format!("{}: {} created (dry run)\n", cluster.role, o.display_name())
                })
            })
            .collect(),
    }
}

/// `1 object`, `3 objects`.
pub(super) fn objects(n: usize) -> String {
    match n {
        1 => "1 object".to_string(),
        n => format!("{n} objects"),
    }
}
