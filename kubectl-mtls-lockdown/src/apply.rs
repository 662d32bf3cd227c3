//! `kubectl mtls-lockdown apply`: detect DNS and the egress gateway, build the plan (the
//! NetworkPolicy, optionally the REGISTRY_ONLY Sidecar and Kyma pod labels), print or apply it.

use std::io::Write;
use std::net::IpAddr;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;

use kube::ResourceExt;
use shared::cli::{ApplyArgs, DryRun, GlobalArgs, apply_and_print, print_plan};
use shared::cluster::detect::find_gateway;
use shared::cluster::{list, served};
use shared::error::Error;
use shared::gateway::{GatewayArgs, GatewayRole};
use shared::manifest::lockdown::{
    DEFAULT_EGRESS_GATEWAY_PORTS, KYMA_EGRESS_POD_LABEL, LockdownInputs, SIDECAR_NAME,
    kyma_egress_pod_label, network_policy, registry_only_sidecar,
};
use shared::plan::Plan;
use shared::resources::Sidecar;

use super::detect;

/// Lock a namespace down: egress only to DNS, istiod and the egress gateway
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The NetworkPolicy mtls-lockdown (all pods, Egress) allows only: DNS on UDP and TCP 53 to the
kube-dns ClusterIP, to node-local DNS (169.254.20.10) when it runs, and to the CoreDNS pods on 53
and 8053; istiod (istio=pilot) on TCP 15012; the egress gateway pods (istio=egressgateway in
istio-system, or the egress gateway found elsewhere, e.g. istio=egress in istio-egress, or
--gateway-namespace/--gateway-selector) on the target ports of its Service (8080 and 8443 when
there is none).
With --dry-run=client and --dns-ip nothing is read from the cluster.

Examples:
  kubectl mtls-lockdown apply -n mtls-demo --dry-run=client -o yaml
  kubectl mtls-lockdown apply -n mtls-demo --registry-only
  kubectl mtls-lockdown apply -n mtls-demo --dns-ip 100.104.0.10 --dry-run=client > lockdown.yaml"
)]
pub struct ApplyCmdArgs {
    /// Allow all of istio-system on every port, as the tutorial does
    #[arg(long)]
    pub namespace_wide: bool,
    /// Also allow traffic to every pod of the namespace
    #[arg(long)]
    pub allow_same_namespace: bool,
    /// Also create a Sidecar with outboundTrafficPolicy REGISTRY_ONLY for the namespace (refused when it already has a Sidecar without a workloadSelector)
    #[arg(long)]
    pub registry_only: bool,
    /// Add Kyma's networking.kyma-project.io/to-egressgateway=allowed to the pod templates of the namespace's Deployments (rolls them)
    #[arg(long)]
    pub label_pods: bool,
    /// The kube-dns ClusterIP, when it cannot be detected
    #[arg(long, value_name = "IP")]
    pub dns_ip: Option<IpAddr>,
    /// Allow node-local DNS (169.254.20.10) even when its DaemonSet is not found
    #[arg(long)]
    pub node_local_dns: bool,
    /// Egress gateway pod port (repeatable; default: from its Service, else 8080 and 8443)
    #[arg(long = "egress-gateway-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub egress_gateway_ports: Vec<u16>,
    /// --gateway-namespace and --gateway-selector: the egress gateway.
    #[command(flatten)]
    pub egress_gateway: GatewayArgs,
    /// --dry-run, -o and --force-conflicts.
    #[command(flatten)]
    pub apply: ApplyArgs,
}

/// What shapes the policy beyond its fixed rules (DNS, istiod, the egress gateway): the typed
/// form of `apply`'s flags, for callers that are not this command (`kubectl mtls-egress connect`).
/// The default is `apply` without flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockdownOptions {
    /// Allow all of istio-system on every port, as the tutorial does.
    pub namespace_wide: bool,
    /// Also allow traffic to every pod of the namespace.
    pub allow_same_namespace: bool,
    /// The kube-dns ClusterIP, instead of detecting it.
    pub dns_ip: Option<IpAddr>,
    /// Allow node-local DNS even when its DaemonSet is not found.
    pub node_local_dns: bool,
    /// Egress gateway pod ports, instead of detecting them.
    pub egress_gateway_ports: Vec<u16>,
    /// Find the namespace's Deployments, to give their pod templates Kyma's egress label.
    pub label_pods: bool,
    /// The egress gateway, as `--gateway-namespace` / `--gateway-selector` narrow it (detected
    /// when connected).
    pub egress_gateway: GatewayArgs,
}

impl ApplyCmdArgs {
    /// The options these flags give.
    pub fn options(&self) -> LockdownOptions {
        LockdownOptions {
            namespace_wide: self.namespace_wide,
            allow_same_namespace: self.allow_same_namespace,
            dns_ip: self.dns_ip,
            node_local_dns: self.node_local_dns,
            egress_gateway_ports: self.egress_gateway_ports.clone(),
            label_pods: self.label_pods,
            egress_gateway: self.egress_gateway.clone(),
        }
    }
}

/// The plan of `apply`: the policy, then the Sidecar, then the Deployment labels.
pub fn plan(
    inputs: &LockdownInputs,
    registry_only: bool,
    label_deployments: &[String],
) -> Result<Plan, Error> {
    let mut plan = Plan::new();
    plan.push(&network_policy(inputs)?)?;
    if registry_only {
        plan.push(&registry_only_sidecar(&inputs.namespace)?)?;
    }
    for name in label_deployments {
        plan.push(&kyma_egress_pod_label(&inputs.namespace, name))?;
    }
    Ok(plan)
}

/// The policy inputs `options` give for `namespace`, before anything is detected on the cluster.
pub fn inputs(
    options: &LockdownOptions,
    namespace: &str,
    dns_service_ip: IpAddr,
) -> LockdownInputs {
    LockdownInputs {
        namespace: namespace.to_string(),
        dns_service_ip,
        node_local_dns: options.node_local_dns,
        extra_dns_pod_ports: Vec::new(),
        egress_gateway_ports: if options.egress_gateway_ports.is_empty() {
            DEFAULT_EGRESS_GATEWAY_PORTS
                .iter()
                .map(|p| IntOrString::Int(i32::from(*p)))
                .collect()
        } else {
            options
                .egress_gateway_ports
                .iter()
                .map(|p| IntOrString::Int(i32::from(*p)))
                .collect()
        },
        egress_gateway: options.egress_gateway.offline(GatewayRole::Egress),
        namespace_wide: options.namespace_wide,
        allow_same_namespace: options.allow_same_namespace,
    }
}

/// Runs `apply`.
pub async fn run(
    args: &ApplyCmdArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if let Some(ns) = &global.kube.namespace {
        shared::cluster::validate_namespace(ns)?;
    }
    // Fully offline: a client dry run with everything given by flags.
    if let (DryRun::Client, false, Some(ip)) = (args.apply.dry_run, args.label_pods, args.dns_ip) {
        let namespace = match &global.kube.namespace {
            Some(ns) => ns.clone(),
            None => global
                .kube
                .config()
                .await
                .map(|c| c.default_namespace)
                .unwrap_or_else(|_| "default".into()),
        };
        let plan = plan(
            &inputs(&args.options(), &namespace, ip),
            args.registry_only,
            &[],
        )?;
        return print_plan(&plan, args.apply.output, out);
    }
    let (client, namespace) = global.kube.connect().await?;
    let notes = apply_with(&client, &namespace, args, out).await?;
    for n in notes {
        writeln!(err, "note: {n}")?;
    }
    Ok(())
}

/// `apply` against `client` in `namespace`: reads what it needs, refuses before the first write
/// (unknown namespace, kube-dns not found without `--dns-ip`), then prints or applies the plan.
/// Returns the notes for stderr (defaults used, Kyma's pod label).
pub async fn apply_with(
    client: &kube::Client,
    namespace: &str,
    args: &ApplyCmdArgs,
    out: &mut dyn Write,
) -> Result<Vec<String>, Error> {
    let detected = detect_inputs(client, namespace, &args.options()).await?;
    if args.registry_only {
        refuse_second_namespace_sidecar(client, namespace).await?;
    }
    let plan = plan(&detected.inputs, args.registry_only, &detected.deployments)?;
    if args.apply.dry_run == DryRun::Client {
        print_plan(&plan, args.apply.output, out)?;
    } else {
        apply_and_print(client, &plan, &args.apply, out).await?;
    }
    Ok(detected.notes)
}

/// The namespace-wide Sidecars (no `workloadSelector`) of `namespace` other than ours, as
/// `sidecar/NAME`: `--registry-only` would add a second one, and with two, which one a pod gets
/// is undefined (Istio's analyzer IST0111).
pub fn foreign_namespace_sidecars(sidecars: &[Sidecar]) -> Vec<String> {
    sidecars
        .iter()
        .filter(|s| s.spec.namespace_wide() && s.name_any() != SIDECAR_NAME)
        .map(|s| format!("sidecar/{}", s.name_any()))
        .collect()
}

/// Refuses `--registry-only` before anything is written when the namespace already has a
/// Sidecar without a workloadSelector (not ours).
async fn refuse_second_namespace_sidecar(
    client: &kube::Client,
    namespace: &str,
) -> Result<(), Error> {
    if !served::<Sidecar>(client).await? {
        return Ok(());
    }
    let sidecars: Vec<Sidecar> = list(client, Some(namespace), &ListParams::default()).await?;
    let foreign = foreign_namespace_sidecars(&sidecars);
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Error::State(format!(
        "namespace {namespace} already has {} without a workloadSelector: a second one from --registry-only would leave it undefined which applies to a pod (Istio analyzer IST0111); set outboundTrafficPolicy: {{mode: REGISTRY_ONLY}} in it instead, and run apply without --registry-only",
        foreign.join(", ")
    )))
}

/// What [`detect_inputs`] read from the cluster.
#[derive(Debug, Clone)]
pub struct Detected {
    /// The policy inputs (flags, completed by what the cluster has).
    pub inputs: LockdownInputs,
    /// The Deployments to give Kyma's egress pod label (`--label-pods`).
    pub deployments: Vec<String>,
    /// Notes for stderr (defaults used, Kyma's pod label).
    pub notes: Vec<String>,
}

/// Reads what the plan of `apply` depends on, and refuses before anything is written: unknown
/// namespace, kube-dns not found without `--dns-ip`. Reads only.
pub async fn detect_inputs(
    client: &kube::Client,
    namespace: &str,
    options: &LockdownOptions,
) -> Result<Detected, Error> {
    let mut notes = Vec::new();
    options.egress_gateway.validate()?;
    detect::require_namespace(client, namespace).await?;
    let (dns_ip, dns_ports) = match (options.dns_ip, detect::kube_dns(client).await?) {
        (Some(ip), detected) => (ip, detected.map(|(_, p)| p).unwrap_or_default()),
        (None, Some(found)) => found,
        (None, None) => {
            return Err(Error::Usage(
                "kube-system/kube-dns Service with a ClusterIP not found, so the DNS address cannot be detected; pass it with --dns-ip IP (the ClusterIP in the pods' /etc/resolv.conf)".into(),
            ));
        }
    };
    let mut inputs = inputs(options, namespace, dns_ip);
    inputs.extra_dns_pod_ports = dns_ports;
    if !inputs.node_local_dns && detect::node_local_dns(client).await? {
        inputs.node_local_dns = true;
    }
    let kyma = detect::kyma_network_policies(client).await?;
    match find_gateway(
        client,
        GatewayRole::Egress,
        &options.egress_gateway,
        kyma.is_some(),
    )
    .await
    {
        Ok((gateway, found)) => {
            if !gateway.is_default() {
                notes.push(found.trim_start_matches("note: ").to_string());
            }
            inputs.egress_gateway = gateway;
        }
        // Not installed yet (Kyma's appears with `enable`): istioctl's labels, with the note below.
        Err(Error::State(m)) if m.starts_with("no egress gateway found") => {}
        Err(e) => return Err(e),
    }
    if options.egress_gateway_ports.is_empty() {
        let gateway = &inputs.egress_gateway;
        match detect::egress_gateway_ports(client, gateway).await? {
            Some(ports) if !ports.is_empty() => inputs.egress_gateway_ports = ports,
            _ => notes.push(format!(
                "Service {}/{} not found: allowing the egress gateway's default pod ports 8080 and 8443 (enable it with `kubectl mtls-egress enable`)",
                gateway.namespace, gateway.name
            )),
        }
    }
    let (label_key, label_value) = KYMA_EGRESS_POD_LABEL;
    let mut deployments = Vec::new();
    if options.label_pods {
        for d in list::<Deployment>(client, Some(namespace), &ListParams::default()).await? {
            if let Some(name) = d.metadata.name {
                deployments.push(name);
            }
        }
        if deployments.is_empty() {
            notes.push(format!("no Deployments in namespace {namespace} to label"));
        }
    } else if kyma == Some(true) {
        notes.push(format!(
            "Kyma's Istio CR has networkPoliciesEnabled: the egress gateway accepts only pods labelled {label_key}={label_value}; add --label-pods to label the pod templates of the Deployments in {namespace}"
        ));
    }
    Ok(Detected {
        inputs,
        deployments,
        notes,
    })
}
