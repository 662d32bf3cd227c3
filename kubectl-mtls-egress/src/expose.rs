//! `kubectl mtls-egress expose`: the target cluster's half (stage 2).

use std::io::Write;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::ListParams;
use kube::{Client, ResourceExt};

use kube::core::ApiResource;
use shared::cli::{ApplyArgs, DryRun, GlobalArgs, apply_and_print_limited, print_plan};
use shared::cluster::{DEFAULT_MAX_IN_FLIGHT, list_dynamic};
use shared::error::Error;
use shared::gateway::{GatewayArgs, GatewayRole};
use shared::manifest::expose::{ExposeRequest, Route, ServiceRef, expose_plan};
use shared::manifest::host::{HOST_LABEL, slug};
use shared::manifest::secret::Layout;
use shared::manifest::{MANAGED_BY_LABEL, MANAGER};
use shared::names::DnsName;
use shared::plan::Plan;
use shared::resources::Gateway;

use super::hosts::{Wildcards, combined_plan, required_hosts};
use super::{detect, in_use};

/// `--route`: APIRule, VirtualService, or decide by what the cluster serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RouteChoice {
    /// APIRule when Kyma's APIRule v2 is served, else VirtualService.
    Auto,
    /// A Kyma APIRule v2.
    Apirule,
    /// An Istio VirtualService.
    Virtualservice,
}

impl RouteChoice {
    /// The route to plan before the cluster is read: an APIRule only when asked for by name
    /// (`prepare` decides `auto` from what the cluster serves).
    pub fn planned(self) -> Route {
        match self {
            RouteChoice::Apirule => Route::Apirule,
            RouteChoice::Auto | RouteChoice::Virtualservice => Route::Virtualservice,
        }
    }
}

/// Expose a Service behind mutual TLS on the ingress gateway (target cluster)
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Creates a Gateway (443, tls.mode MUTUAL, credentialName = the server credential in the ingress
gateway's namespace) and an APIRule v2 (Kyma) or a VirtualService bound to it. The Gateway selects
the ingress gateway's pods: on Kyma istio=ingressgateway in istio-system; elsewhere the one
Deployment of an Istio ingress gateway found (istioctl's, or Istio's Helm gateway chart, e.g.
istio=ingress in istio-ingress), or --gateway-namespace/--gateway-selector. Warns when the namespace has no sidecar
injection, when the server credential Secret is missing or incomplete, and when Kyma's NetworkPolicies
require a pod label. Refuses to switch the host's existing Gateway to a --credential holding another
certificate than it presents now (--force to switch).
Several hosts (--host repeated, or --hosts-file) expose the Service under each name in one run:
one set of reads, one plan that the server's dry run checks whole before anything is written, a
Gateway and a route per host (named mtls-<host>: no --gateway), with at most --max-in-flight
requests at a time.

Examples:
  kubectl mtls-egress expose --host httpbin.example.com --service httpbin:8000 -n mtls-demo
  kubectl mtls-egress expose --host httpbin.example.com --service httpbin:8000 -n mtls-demo --route virtualservice --dry-run=client
  kubectl mtls-egress expose --hosts-file names.txt --service httpbin:8000 -n mtls-demo"
)]
#[command(group(clap::ArgGroup::new("hosts").required(true).multiple(true).args(["host", "hosts_file"])))]
pub struct ExposeArgs {
    /// The public host name clients call (the server certificate's SAN); repeat it for several hosts
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// A file of hosts, one per line (blank lines and lines starting with # are skipped), in addition to --host
    #[arg(long, value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// At most this many API requests in flight while applying
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_IN_FLIGHT as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_in_flight: u16,
    /// The workload's Service and port, NAME:PORT
    #[arg(long, value_name = "NAME:PORT")]
    pub service: String,
    /// The server credential Secret in the ingress gateway's namespace (from `kubectl mtls-certs secret target`)
    #[arg(long, value_name = "NAME", default_value = "kyma-mtls-certs")]
    pub credential: String,
    /// The Gateway's name (default mtls-<host>; one host only)
    #[arg(long, value_name = "NAME")]
    pub gateway: Option<String>,
    /// How to route from the Gateway to the Service
    #[arg(long, value_enum, default_value_t = RouteChoice::Auto)]
    pub route: RouteChoice,
    /// HTTP methods the APIRule allows (comma-separated)
    #[arg(
        long,
        value_name = "METHODS",
        value_delimiter = ',',
        default_value = "GET"
    )]
    pub methods: Vec<String>,
    /// Also label the namespace istio-injection=enabled (pods need a restart to get the sidecar)
    #[arg(long)]
    pub label_namespace: bool,
    /// Switch the host's Gateway to a --credential holding another certificate than it presents
    #[arg(long)]
    pub force: bool,
    /// --gateway-namespace and --gateway-selector: the ingress gateway.
    #[command(flatten)]
    pub ingress: GatewayArgs,
    /// --dry-run, -o and --force-conflicts.
    #[command(flatten)]
    pub apply: ApplyArgs,
}

impl ExposeArgs {
    /// The hosts of `--host` and `--hosts-file`, in order.
    pub fn hosts(&self) -> Result<Vec<DnsName>, Error> {
        required_hosts(&self.host, self.hosts_file.as_deref(), Wildcards::Allowed)
    }

    /// The plan inputs these flags give for the first host, for the workload namespace
    /// `namespace`.
    pub fn request(&self, namespace: &str) -> Result<ExposeRequest, Error> {
        Ok(self.requests(namespace)?.remove(0))
    }

    /// The plan inputs these flags give for each host, for the workload namespace `namespace`
    /// (the route is decided later, from what the cluster serves, unless fixed by `--route`).
    pub fn requests(&self, namespace: &str) -> Result<Vec<ExposeRequest>, Error> {
        shared::cluster::validate_namespace(namespace)?;
        let hosts = self.hosts()?;
        if hosts.len() > 1 && self.gateway.is_some() {
            return Err(Error::Usage(
                "--gateway names the Gateway of one host: leave it out with several hosts (each gets mtls-<host>)".into(),
            ));
        }
        let service = self.service.parse::<ServiceRef>()?;
        self.ingress.validate()?;
        hosts
            .into_iter()
            .map(|host| {
                let request = ExposeRequest {
                    host,
                    namespace: namespace.to_string(),
                    service: service.clone(),
                    credential: self.credential.clone(),
                    gateway: self.gateway.clone(),
                    route: self.route.planned(),
                    methods: self.methods.clone(),
                    label_namespace: self.label_namespace,
                    ingress: self.ingress.offline(GatewayRole::Ingress),
                };
                expose_plan(&request)?;
                Ok(request)
            })
            .collect()
    }
}

/// One plan for all `requests` ([`combined_plan`]).
fn plan_of(requests: &[ExposeRequest]) -> Result<Plan, Error> {
    let plans = requests
        .iter()
        .map(|r| Ok::<_, Error>((&r.host, expose_plan(r)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    combined_plan(plans, "expose")
}

/// Runs `expose`.
pub async fn run(
    args: &ExposeArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let namespace = global.kube.namespace.as_deref().unwrap_or("default");
    let requests = args.requests(namespace)?;
    let plan = plan_of(&requests)?;
    if args.apply.dry_run == DryRun::Client {
        if args.route == RouteChoice::Auto {
            writeln!(
                err,
                "note: --route auto without a cluster emits a VirtualService; pass --route apirule for Kyma's APIRule"
            )?;
        }
        return print_plan(&plan, args.apply.output, out);
    }
    let (client, namespace) = global.kube.connect().await?;
    execute_all(
        &client,
        args.requests(&namespace)?,
        args,
        usize::from(args.max_in_flight),
        out,
        err,
    )
    .await
}

/// [`execute`] for several hosts (of one namespace) with `args`' route, `--force`, ingress
/// gateway flags and apply flags: one set of reads (the gateway, the route, the prerequisites,
/// the hosts' Gateways in one list), one plan applied all or nothing with at most `limit`
/// requests in flight.
pub async fn execute_all(
    client: &Client,
    requests: Vec<ExposeRequest>,
    args: &ExposeArgs,
    limit: usize,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    run_expose(
        client,
        requests,
        args.route,
        args.force,
        &args.ingress,
        &args.apply,
        limit,
        out,
        err,
    )
    .await
}

/// `expose` against a connected cluster: find the ingress gateway (`ingress` narrows it), choose
/// the route, warn (on `err`), apply, and say which gateway the Gateway selects. An existing
/// Gateway for the host is not switched to a credential holding another certificate unless
/// `force`.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    client: &Client,
    request: ExposeRequest,
    route: RouteChoice,
    force: bool,
    ingress: &GatewayArgs,
    apply: &ApplyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    run_expose(
        client,
        vec![request],
        route,
        force,
        ingress,
        apply,
        DEFAULT_MAX_IN_FLIGHT,
        out,
        err,
    )
    .await
}

/// [`execute`] for several hosts of one namespace.
#[allow(clippy::too_many_arguments)]
async fn run_expose(
    client: &Client,
    mut requests: Vec<ExposeRequest>,
    route: RouteChoice,
    force: bool,
    ingress: &GatewayArgs,
    apply: &ApplyArgs,
    limit: usize,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let Some(first) = requests.first() else {
        return Err(Error::Usage("no host: give --host HOST".into()));
    };
    let namespace = first.namespace.clone();
    let (gateway, note) = detect::ingress_gateway(client, ingress).await?;
    let mut first = first.clone();
    first.ingress = gateway.clone();
    // The route and the prerequisites are the same for every host; the hosts' existing Gateways
    // (for the credential switch) are one list, sent alongside.
    let slugs: Vec<String> = requests.iter().map(|r| slug(&r.host)).collect();
    let gateways = ApiResource::erase::<Gateway>(&());
    let params = ListParams::default().labels(&format!(
        "{MANAGED_BY_LABEL}={MANAGER},{HOST_LABEL} in ({})",
        slugs.join(",")
    ));
    let existing = async {
        list_dynamic(client, &gateways, Some(&namespace), &params)
            .await
            .map_err(Error::from)
    };
    let ((prepared, mut warnings), existing) =
        tokio::try_join!(prepare(client, first, route, false), existing)?;
    for request in &mut requests {
        request.ingress = gateway.clone();
        request.route = prepared.route;
    }
    for request in &requests {
        let name = request
            .gateway
            .clone()
            .unwrap_or_else(|| format!("mtls-{}", slug(&request.host)));
        let presenter = in_use::Presenter {
            resource: gateways.clone(),
            namespace: &request.namespace,
            name: &name,
            secret_namespace: &request.ingress.namespace,
        };
        let object = existing.iter().find(|o| {
            o.name_any() == name
                && o.labels()
                    .get(HOST_LABEL)
                    .is_some_and(|v| *v == slug(&request.host))
        });
        warnings.extend(
            in_use::credential_switch(
                client,
                &request.host,
                presenter,
                object,
                &request.credential,
                force,
            )
            .await?,
        );
    }
    for warning in warnings {
        writeln!(err, "{warning}")?;
    }
    let plan = plan_of(&requests)?;
    apply_and_print_limited(client, &plan, apply, limit, out).await?;
    writeln!(err, "{note}")?;
    Ok(())
}

/// Reads what the plan depends on: decides the route from what the cluster serves (or refuses
/// `--route apirule` without Kyma's APIRule) and warns about missing prerequisites — not about the
/// server credential Secret when `secret_planned` (the caller applies it with the plan). Writes
/// nothing; returns the request with the route decided, and the warnings for the user.
pub(crate) async fn prepare(
    client: &Client,
    mut request: ExposeRequest,
    route: RouteChoice,
    secret_planned: bool,
) -> Result<(ExposeRequest, Vec<String>), Error> {
    expose_plan(&request)?;
    let apirule = detect::apirule_served(client).await?;
    request.route = match (route, apirule) {
        (RouteChoice::Apirule, false) => {
            return Err(Error::State(
                "APIRule gateway.kyma-project.io/v2 is not served on this cluster (no Kyma API Gateway module): use --route virtualservice".into(),
            ));
        }
        (RouteChoice::Apirule, true) | (RouteChoice::Auto, true) => Route::Apirule,
        _ => Route::Virtualservice,
    };
    let warnings = prerequisite_warnings(client, &request, secret_planned).await?;
    Ok((request, warnings))
}

/// The warnings of `expose`: what will make the exposed host fail even though the plan applies.
async fn prerequisite_warnings(
    client: &Client,
    req: &ExposeRequest,
    secret_planned: bool,
) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    let mut note = |text: String| warnings.push(text);
    let ns = shared::cluster::get_cluster_opt::<Namespace>(client, &req.namespace).await?;
    let Some(ns) = ns else {
        return Err(Error::State(format!(
            "namespace {} does not exist: create it (kubectl create namespace {0}) and deploy the workload first",
            req.namespace
        )));
    };
    let injected = ns.metadata.labels.as_ref().is_some_and(|l| {
        l.get("istio-injection").is_some_and(|v| v == "enabled") || l.contains_key("istio.io/rev")
    });
    if !injected && !req.label_namespace {
        note(format!(
            "warning: namespace {} has no sidecar injection (istio-injection=enabled): the ingress gateway's mTLS to the workload needs it; re-run with --label-namespace, then restart the workload",
            req.namespace
        ));
    }
    match shared::cluster::get_opt::<Service>(client, &req.namespace, &req.service.name).await {
        Ok(None) => note(format!(
            "warning: service {}/{} does not exist yet",
            req.namespace, req.service.name
        )),
        Ok(Some(svc)) => {
            let ports: Vec<i32> = svc
                .spec
                .and_then(|s| s.ports)
                .unwrap_or_default()
                .iter()
                .map(|p| p.port)
                .collect();
            if !ports.contains(&i32::from(req.service.port)) {
                note(format!(
                    "warning: service {}/{} has no port {} (it has {:?})",
                    req.namespace, req.service.name, req.service.port, ports
                ));
            }
        }
        Err(e) => note(format!("warning: cannot check the service: {e}")),
    }
    // The caller applies the Secret with the plan: nothing to check yet. Istio resolves the
    // Gateway's credentialName in the ingress gateway pods' namespace.
    let secret_ns = req.ingress.namespace.as_str();
    if !secret_planned {
        match shared::cluster::get_opt::<Secret>(client, secret_ns, &req.credential).await {
            Ok(None) => note(format!(
                "warning: secret {secret_ns}/{} does not exist: the Gateway has no certificate until you run `kubectl mtls-certs secret target --dir DIR{}`",
                req.credential,
                namespace_flag(secret_ns)
            )),
            Ok(Some(secret)) => {
                let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
                let complete = [Layout::Generic, Layout::Tls]
                    .iter()
                    .any(|l| l.keys().iter().all(|k| keys.iter().any(|have| have == k)));
                if !complete {
                    note(format!(
                        "warning: secret {secret_ns}/{} has keys {keys:?}: a MUTUAL Gateway needs cert/key/cacert (or tls.crt/tls.key/ca.crt)",
                        req.credential
                    ));
                }
            }
            Err(e) => note(format!("warning: cannot check the server credential: {e}")),
        }
    }
    if let Ok(Some(istio)) = detect::kyma_istio_cr(client).await
        && istio.spec.network_policies_enabled == Some(true)
    {
        note(
            "note: Kyma's networkPoliciesEnabled is on: the workload's pods need the label networking.kyma-project.io/from-ingressgateway=allowed (add it to the Deployment's pod template)".into(),
        );
    }
    Ok(warnings)
}

/// ` --namespace NS` for a `kubectl mtls-certs secret` hint, when the Secret belongs elsewhere
/// than in istio-system (its default).
pub(crate) fn namespace_flag(namespace: &str) -> String {
    if namespace == shared::manifest::ISTIO_NAMESPACE {
        String::new()
    } else {
        format!(" --namespace {namespace}")
    }
}
