//! `kubectl mtls-egress enable`: the client cluster's half (stage 3).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use shared::cli::{ApplyArgs, DryRun, GlobalArgs, apply_and_print_limited, print_plan};
use shared::cluster::{DEFAULT_MAX_IN_FLIGHT, parse_request_timeout};
use shared::error::Error;
use shared::gateway::{GatewayArgs, GatewayRole, GatewayWorkload};
use shared::manifest::egress::{EnableRequest, Hop, MeshFacts, enable_plan, origination_rule};
use shared::names::DnsName;
use shared::plan::Plan;
use shared::precedence::GatewayProxy;
use shared::resources::DestinationRule;

use super::detect;
use super::hosts::{Wildcards, required_hosts};

/// Route calls to --host through the egress gateway, which originates mutual TLS (client cluster)
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Creates, for the host: ServiceEntry, egress Gateway, subset DestinationRule and VirtualService in
the namespace; the origination DestinationRule (MUTUAL, credentialName, sni and subjectAltNames) in
the egress gateway's namespace; an access-log Telemetry for the egress gateway pods only (envoy,
plus the providers of the mesh-wide Telemetry or the mesh's defaults, which it would otherwise
switch off there; a client dry run reads none); the route to the partner drops
x-forwarded-client-cert; on Kyma, sets only spec.components.egressGateway.enabled on the Istio CR.
The egress gateway: on Kyma istio=egressgateway in istio-system; elsewhere the one Deployment of an
Istio egress gateway found (istioctl's, or Istio's Helm gateway chart, e.g. istio=egress in
istio-egress; a note says which), or --gateway-namespace/--gateway-selector (with --dry-run=client
its Service is the selector's app label, else istio-<istio label>). Refuses when Istio would give
the egress gateway another DestinationRule instead of the origination rule, e.g. an older one for
the exact host with the same exportTo in the gateway's namespace, or one there with a
workloadSelector (--force to go ahead); rules in other namespaces and wildcards do not matter to
it. Re-running is idempotent.
Several hosts (--host repeated, or --hosts-file) are one run: one set of reads, one plan that the
server's dry run checks whole before anything is written (one refused object: nothing is written),
the per-object report of every host, with at most --max-in-flight requests at a time.

Examples:
  kubectl mtls-egress enable --host httpbin.example.com -n mtls-demo --dry-run=client > egress.yaml
  kubectl mtls-egress enable --host httpbin.example.com -n mtls-demo --restrict-to-namespace
  kubectl mtls-egress enable --host api.partner.example --port 8443 -n payments --hop plain --no-wait
  kubectl mtls-egress enable --host a.partner.example --host b.partner.example -n payments
  kubectl mtls-egress enable --hosts-file partners.txt -n payments --max-in-flight 16"
)]
#[command(group(clap::ArgGroup::new("hosts").required(true).multiple(true).args(["host", "hosts_file"])))]
pub struct EnableArgs {
    /// The target's host name (the server certificate's SAN); repeat it for several hosts
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// A file of hosts, one per line (blank lines and lines starting with # are skipped), in addition to --host
    #[arg(long, value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// At most this many API requests in flight while applying
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_IN_FLIGHT as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_in_flight: u16,
    /// The client credential Secret in the egress gateway's namespace (from `kubectl mtls-certs secret client`)
    #[arg(long, value_name = "NAME", default_value = "client-credential")]
    pub credential: String,
    /// The sidecar -> egress gateway hop: Istio mutual TLS (default) or plain HTTP (the tutorial's)
    #[arg(long, value_enum, default_value_t = Hop::IstioMutual)]
    pub hop: Hop,
    /// The target's HTTPS port
    #[arg(long, value_name = "PORT", default_value_t = 443, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Access logs for the egress gateway pods (a Telemetry scoped to them)
    #[arg(long, overrides_with = "no_access_log")]
    pub access_log: bool,
    /// No access-log Telemetry
    #[arg(long, overrides_with = "access_log")]
    pub no_access_log: bool,
    /// Deny other namespaces the use of this host through the egress gateway (AuthorizationPolicy)
    #[arg(long)]
    pub restrict_to_namespace: bool,
    /// The Kyma Istio CR as NAMESPACE/NAME, for --dry-run=client (detected when connected)
    #[arg(long, value_name = "NS/NAME")]
    pub istio_cr: Option<String>,
    /// Go ahead even when another DestinationRule would take the origination rule's place, or
    /// switch the host to a --credential holding another certificate
    #[arg(long)]
    pub force: bool,
    /// Do not wait for the egress gateway to become Available
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the egress gateway
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = parse_request_timeout)]
    pub timeout: Duration,
    /// --gateway-namespace and --gateway-selector: the egress gateway.
    #[command(flatten)]
    pub egress: GatewayArgs,
    /// --dry-run, -o and --force-conflicts.
    #[command(flatten)]
    pub apply: ApplyArgs,
}

/// The prefix of a warning that only says what could not be read.
const NOTE: &str = "note: ";

/// Parses `--istio-cr NAMESPACE/NAME`.
pub(crate) fn parse_istio_cr(value: &str) -> Result<(String, String), Error> {
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok((ns.into(), name.into())),
        _ => Err(Error::Usage(format!(
            "--istio-cr {value:?}: give NAMESPACE/NAME, e.g. kyma-system/default"
        ))),
    }
}

impl EnableArgs {
    /// The hosts of `--host` and `--hosts-file`, in order; a host given twice, an invalid one or
    /// an unreadable file is an error naming it.
    pub fn hosts(&self) -> Result<Vec<DnsName>, Error> {
        required_hosts(&self.host, self.hosts_file.as_deref(), Wildcards::Refused)
    }

    /// The plan inputs these flags give for the first host, in the client namespace `namespace`.
    pub fn request(&self, namespace: &str) -> Result<EnableRequest, Error> {
        Ok(self.requests(namespace)?.remove(0))
    }

    /// The plan inputs these flags give for each host, in the client namespace `namespace`.
    pub fn requests(&self, namespace: &str) -> Result<Vec<EnableRequest>, Error> {
        shared::cluster::validate_namespace(namespace)?;
        self.egress.validate()?;
        let kyma_istio = self.istio_cr.as_deref().map(parse_istio_cr).transpose()?;
        Ok(self
            .hosts()?
            .into_iter()
            .map(|host| EnableRequest {
                host,
                namespace: namespace.to_string(),
                credential: self.credential.clone(),
                hop: self.hop,
                port: self.port,
                access_log: !self.no_access_log,
                restrict_to_namespace: self.restrict_to_namespace,
                kyma_istio: kyma_istio.clone(),
                mesh: MeshFacts {
                    egress_gateway: self.egress.offline(GatewayRole::Egress),
                    ..Default::default()
                },
            })
            .collect())
    }
}

/// One plan for all `requests`: each host's objects in order, an object several hosts share
/// (the Kyma Istio CR, the gateway's access-log Telemetry) once. Two hosts that would write the
/// same object differently (hosts whose names differ only in `.` and `-` share object names)
/// are an error.
pub fn combined_plan(requests: &[EnableRequest]) -> Result<Plan, Error> {
    let plans = requests
        .iter()
        .map(|r| Ok::<_, Error>((&r.host, enable_plan(r)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    super::hosts::combined_plan(plans, "enable")
}

/// Runs `enable`.
pub async fn run(
    args: &EnableArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if args.apply.dry_run == DryRun::Client {
        let namespace = global.kube.namespace.as_deref().unwrap_or("default");
        let plan = combined_plan(&args.requests(namespace)?)?;
        return print_plan(&plan, args.apply.output, out);
    }
    // Flags are checked before any file is read or request sent.
    combined_plan(&args.requests(global.kube.namespace.as_deref().unwrap_or("default"))?)?;
    let (client, namespace) = global.kube.connect().await?;
    execute_all(&client, args.requests(&namespace)?, args, out, err).await
}

/// `enable` against a connected cluster: detect, check, apply, wait (warnings and progress go to
/// `err`).
pub async fn execute(
    client: &kube::Client,
    request: EnableRequest,
    args: &EnableArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    execute_all(client, vec![request], args, out, err).await
}

/// [`execute`] for several hosts at once: one set of reads, one plan applied all or nothing.
pub async fn execute_all(
    client: &kube::Client,
    requests: Vec<EnableRequest>,
    args: &EnableArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let (requests, mut warnings, rules) =
        prepare_all(client, requests, &args.egress, args.force).await?;
    // Each reads only when the host's origination rule names another Secret (two GETs).
    for request in &requests {
        warnings
            .extend(super::in_use::origination_switch(client, request, &rules, args.force).await?);
    }
    // Notes (what could not be read) matter only once the plan is applied; a failed apply is
    // then the one line the user reads.
    let (notes, warnings): (Vec<String>, Vec<String>) =
        warnings.into_iter().partition(|w| w.starts_with(NOTE));
    for warning in warnings {
        writeln!(err, "{warning}")?;
    }
    let plan = combined_plan(&requests)?;
    apply_and_print_limited(
        client,
        &plan,
        &args.apply,
        usize::from(args.max_in_flight),
        out,
    )
    .await?;
    for note in notes {
        writeln!(err, "{note}")?;
    }
    if args.apply.dry_run == DryRun::Server || args.no_wait {
        return Ok(());
    }
    out.flush()?;
    let request = &requests[0];
    detect::wait_ready(
        client,
        request.kyma_istio.as_ref(),
        &request.mesh.egress_gateway,
        args.timeout,
        err,
    )
    .await
}

/// Reads what the plan depends on, before anything is written: the Kyma Istio CR to patch (unless
/// the request names one) or else an existing egress gateway (`gateway` narrows it), and
/// DestinationRules that would take the origination rule's place at the gateway (refused unless
/// `force`). Returns the request with the Istio CR and the egress gateway set, and the warnings
/// for the user (the notes among them start with `note: `).
pub(crate) async fn prepare(
    client: &kube::Client,
    request: EnableRequest,
    gateway: &GatewayArgs,
    force: bool,
) -> Result<(EnableRequest, Vec<String>), Error> {
    let (mut requests, warnings, _) = prepare_all(client, vec![request], gateway, force).await?;
    Ok((requests.remove(0), warnings))
}

/// [`prepare`] for several hosts (of one client namespace) at once, with the reads sent together:
/// Kyma's Istio CR (and the egress gateway off Kyma), the mesh's access logging, the other
/// namespaces that route the hosts, and the gateway namespace's DestinationRules (also returned,
/// for [`super::in_use::origination_switch`]).
async fn prepare_all(
    client: &kube::Client,
    mut requests: Vec<EnableRequest>,
    gateway: &GatewayArgs,
    force: bool,
) -> Result<(Vec<EnableRequest>, Vec<String>, Vec<DestinationRule>), Error> {
    let mut warnings = Vec::new();
    for request in &requests {
        enable_plan(request)?;
    }
    let Some(first) = requests.first() else {
        return Err(Error::Usage("no host: give --host HOST".into()));
    };
    let named_cr = first.kyma_istio.clone();
    let namespace = first.namespace.clone();
    let access_log = requests.iter().any(|r| r.access_log);
    let hosts: Vec<DnsName> = requests.iter().map(|r| r.host.clone()).collect();
    // Every read in one round: the egress gateway's namespace is known before anything is read
    // on Kyma or with --gateway-namespace (the DestinationRules there are read at once, and
    // read again only when the gateway found runs elsewhere).
    let expected_ns = gateway.offline(GatewayRole::Egress).namespace;
    let kyma_and_gateway = async {
        let kyma = match named_cr {
            Some(cr) => Some(cr),
            None => detect::kyma_istio(client).await?,
        };
        let (egress, found) = detect::egress_gateway(client, gateway, kyma.is_some()).await?;
        Ok::<_, Error>((kyma, egress, found))
    };
    let logging = async {
        match access_log {
            true => Ok(Some(detect::mesh_access_logging(client).await?)),
            false => Ok::<_, Error>(None),
        }
    };
    let routing = async {
        super::in_use::RoutingNamespaces::read(client, &hosts)
            .await
            .map_err(Error::from)
    };
    let expected_rules = async {
        detect::gateway_rules(client, &expected_ns, &hosts)
            .await
            .map_err(Error::from)
    };
    let ((kyma, egress, found), logging, routing, rules) =
        tokio::try_join!(kyma_and_gateway, logging, routing, expected_rules)?;
    for request in &mut requests {
        request.mesh.egress_gateway = egress.clone();
        enable_plan(request)?;
    }
    let gateway_ns = egress.namespace.as_str();
    let rules = match gateway_ns == expected_ns {
        true => rules,
        false => detect::gateway_rules(client, gateway_ns, &hosts).await?,
    };
    routing
        .refuse_second_namespace(client, &hosts, &namespace, gateway_ns)
        .await?;
    let proxy = gateway_proxy(&egress);
    for request in &requests {
        let host = &request.host;
        let shadowing = detect::shadowing_rules(&rules, &origination_rule(request), host, &proxy);
        if !shadowing.is_empty() {
            let message = format!(
                "the egress gateway would not use the mTLS origination rule for {host}: destinationrule {}",
                shadowing.join("; destinationrule ")
            );
            if !force {
                return Err(Error::State(format!(
                    "{message}; remove it, or pass --force to go ahead"
                )));
            }
            warnings.push(format!("warning: {message}"));
        }
    }
    if let Some((kept, notes)) = logging {
        for request in requests.iter_mut().filter(|r| r.access_log) {
            request.mesh.access_logging = kept.clone();
        }
        warnings.extend(notes.into_iter().map(|n| format!("{NOTE}{n}")));
    }
    for request in &mut requests {
        request.kyma_istio = kyma.clone();
    }
    warnings.push(found);
    Ok((requests, warnings, rules))
}

/// The egress gateway's pods as Istio's DestinationRule lookup sees them.
fn gateway_proxy(gateway: &GatewayWorkload) -> GatewayProxy {
    if gateway.is_default() {
        return GatewayProxy::default_egress();
    }
    GatewayProxy {
        namespace: gateway.namespace.clone(),
        labels: gateway.selector.labels().clone(),
    }
}
