//! `kubectl mtls-egress enable`: the client cluster's half (stage 3).

use std::io::Write;
use std::time::Duration;

use shared::cli::{ApplyArgs, DryRun, GlobalArgs, apply_and_print, print_plan};
use shared::cluster::parse_request_timeout;
use shared::error::Error;
use shared::gateway::{GatewayArgs, GatewayRole, GatewayWorkload};
use shared::manifest::egress::{EnableRequest, Hop, MeshFacts, enable_plan, origination_rule};
use shared::names::DnsName;
use shared::precedence::GatewayProxy;

use super::detect;

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

Examples:
  kubectl mtls-egress enable --host httpbin.example.com -n mtls-demo --dry-run=client > egress.yaml
  kubectl mtls-egress enable --host httpbin.example.com -n mtls-demo --restrict-to-namespace
  kubectl mtls-egress enable --host api.partner.example --port 8443 -n payments --hop plain --no-wait"
)]
pub struct EnableArgs {
    /// The target's host name (the server certificate's SAN)
    #[arg(long, value_name = "HOST")]
    pub host: String,
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
    /// The plan inputs these flags give, for the client namespace `namespace`.
    pub fn request(&self, namespace: &str) -> Result<EnableRequest, Error> {
        shared::cluster::validate_namespace(namespace)?;
        self.egress.validate()?;
        Ok(EnableRequest {
            host: DnsName::parse_exact(&self.host)?,
            namespace: namespace.to_string(),
            credential: self.credential.clone(),
            hop: self.hop,
            port: self.port,
            access_log: !self.no_access_log,
            restrict_to_namespace: self.restrict_to_namespace,
            kyma_istio: self.istio_cr.as_deref().map(parse_istio_cr).transpose()?,
            mesh: MeshFacts {
                egress_gateway: self.egress.offline(GatewayRole::Egress),
                ..Default::default()
            },
        })
    }
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
        let plan = enable_plan(&args.request(namespace)?)?;
        return print_plan(&plan, args.apply.output, out);
    }
    // Flags are checked before any file is read or request sent.
    enable_plan(&args.request(global.kube.namespace.as_deref().unwrap_or("default"))?)?;
    let (client, namespace) = global.kube.connect().await?;
    execute(&client, args.request(&namespace)?, args, out, err).await
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
    let (request, mut warnings) = prepare(client, request, &args.egress, args.force).await?;
    warnings.extend(super::in_use::origination_switch(client, &request, args.force).await?);
    // Notes (what could not be read) matter only once the plan is applied; a failed apply is
    // then the one line the user reads.
    let (notes, warnings): (Vec<String>, Vec<String>) =
        warnings.into_iter().partition(|w| w.starts_with(NOTE));
    for warning in warnings {
        writeln!(err, "{warning}")?;
    }
    let plan = enable_plan(&request)?;
    apply_and_print(client, &plan, &args.apply, out).await?;
    for note in notes {
        writeln!(err, "{note}")?;
    }
    if args.apply.dry_run == DryRun::Server || args.no_wait {
        return Ok(());
    }
    out.flush()?;
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
    mut request: EnableRequest,
    gateway: &GatewayArgs,
    force: bool,
) -> Result<(EnableRequest, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let client = client.clone();
    let host = request.host.clone();
    enable_plan(&request)?;
    let kyma = match request.kyma_istio.clone() {
        Some(cr) => Some(cr),
        None => detect::kyma_istio(&client).await?,
    };
    let (egress, found) = detect::egress_gateway(&client, gateway, kyma.is_some()).await?;
    request.mesh.egress_gateway = egress;
    enable_plan(&request)?;
    super::in_use::refuse_second_namespace(
        &client,
        &host,
        &request.namespace,
        &request.mesh.egress_gateway.namespace,
    )
    .await?;
    let shadowing = detect::shadowing_rules(
        &client,
        &origination_rule(&request),
        &host,
        &gateway_proxy(&request.mesh.egress_gateway),
    )
    .await?;
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
    if request.access_log {
        let (kept, notes) = detect::mesh_access_logging(&client).await?;
        request.mesh.access_logging = kept;
        warnings.extend(notes.into_iter().map(|n| format!("{NOTE}{n}")));
    }
    request.kyma_istio = kyma;
    warnings.push(found);
    Ok((request, warnings))
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
