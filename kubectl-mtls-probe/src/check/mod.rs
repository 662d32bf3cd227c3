//! `kubectl mtls-probe check`: from inside the client cluster, prove that a request to `D` leaves
//! through the egress gateway with our client certificate — and, with a lockdown, that nothing
//! else leaves.
//!
//! One run:
//! 1. find the egress gateway replicas (`istio=egressgateway` in istio-system on Kyma and for
//!    istioctl; elsewhere the egress gateway found as `enable` finds it, or `--gateway-namespace` /
//!    `--gateway-selector`) and our lockdown NetworkPolicy (if any) in the namespace;
//! 2. start a sidecar-injected probe pod (pinned curl image), or use `--pod`; with a lockdown also
//!    a pod *without* a sidecar — both carry the lockdown selector's labels so the policy covers
//!    them ([`pod`] explains why that is safe);
//! 3. exec `curl http://D/headers` in the injected pod, tagged with this run's id (in `x-request-id`
//!    and in the query string, which Envoy logs as part of `path`); require 200, and
//!    with `--client-cert` require `X-Forwarded-Client-Cert` to carry that very certificate;
//! 4. read the logs of **every** gateway replica since the request and find the access-log line
//!    (Kyma's JSON or plain Istio's default TEXT format: [`access_log`]) for the upstream cluster
//!    `outbound|443||D` that carries the run's id, with its code and flags;
//! 5. with Kyma's `networkPoliciesEnabled`, name the namespace's pod templates that lack the
//!    `to-egressgateway` label the probe pod carries (Kyma's policy drops their requests);
//! 6. with a lockdown, prove `https://EXTERNAL/` is unreachable from both pods;
//! 7. delete the probe pods — also when a step fails or the user presses Ctrl-C (not with `--keep`).
//!
//! The decisions are pure ([`pod`]: pod spec and readiness; `curl`: commands and their output);
//! this module sequences them over [`shared::cluster`]'s pod calls.

mod curl;
pub mod pod;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::{Client, ResourceExt};
use serde::Serialize;
use tokio::time::Instant;

use super::access_log::{self, AccessLogEntry};
use super::direct::{headers_xfcc, xfcc_check};
use super::report::{self, Check, Status};
use super::xfcc::{ClientIdentity, XfccElement};
use curl::Reach;
use pod::{PodState, ProbePod};
use shared::cli::{GlobalArgs, OutputFormat, write_output};
use shared::cluster::detect::{find_gateway, kyma_istio_crs};
use shared::cluster::{self, ClusterError, ExecOutput};
use shared::error::{Error, one_line};
use shared::gateway::{GatewayArgs, GatewayRole};
use shared::manifest::lockdown::{
    COMPONENT as LOCKDOWN_COMPONENT, KYMA_EGRESS_POD_LABEL, POLICY_NAME,
};
use shared::manifest::{COMPONENT_LABEL, ISTIO_NAMESPACE, MANAGED_BY_LABEL, MANAGER};
use shared::names::DnsName;
use shared::pki::Certificate;

/// Request through the egress gateway from a pod, match XFCC and the gateway's access log, and test the lockdown (exit 1 if a check fails)
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Probe pods are deleted when the check ends, also on failure or Ctrl-C (unless --keep); a pod \
that is somehow left behind stops by itself after 15 minutes. They carry the lockdown policy's pod-selector labels \
but never become Ready, so no Service sends them traffic.

Exit codes: 0 every check passed, 1 a check failed, 2 bad input, 3 cluster/API error, 130 interrupted.

Examples:
  # From a short-lived injected curl pod in namespace apps; prove the gateway presented our client certificate
  kubectl mtls-probe check --host httpbin.example.com -n apps --client-cert ./mtls/client.crt

  # From an existing workload (its image must have curl), JSON for CI
  kubectl mtls-probe check --host httpbin.example.com -n apps --pod client-7d9f --container app -o json

  # Air-gapped registry, and an outside host the lockdown must block
  kubectl mtls-probe check --host httpbin.example.com -n apps --image registry.local/curl:8.11.1 --external 198.51.100.7"
)]
pub(crate) struct CheckArgs {
    /// The target host name the client cluster calls (http://HOST/ from the pod; the gateway originates mTLS to HOST:PORT)
    #[arg(long, value_name = "HOST")]
    pub host: String,
    /// The port the egress gateway originates TLS to (the access log's outbound|PORT||HOST)
    #[arg(long, default_value_t = 443)]
    pub port: u16,
    /// The path to GET; httpbin's /headers JSON lets the check read X-Forwarded-Client-Cert
    #[arg(long, default_value = "/headers")]
    pub path: String,
    /// Use this existing pod (in -n) instead of starting a probe pod; it needs curl
    #[arg(long, value_name = "POD", conflicts_with = "image")]
    pub pod: Option<String>,
    /// The container of --pod to exec into (default: its first container that is not istio-proxy)
    #[arg(long, value_name = "NAME", requires = "pod")]
    pub container: Option<String>,
    /// The probe pods' image (needs curl and sleep)
    #[arg(long, value_name = "IMAGE", default_value = pod::DEFAULT_IMAGE)]
    pub image: String,
    /// Our client certificate (PEM): X-Forwarded-Client-Cert must carry it (Hash = SHA-256 of its DER)
    #[arg(long, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// A host outside the mesh that a lockdown must make unreachable (HTTPS, port 443)
    #[arg(long, value_name = "HOST", default_value = DEFAULT_EXTERNAL)]
    pub external: String,
    /// Leave the probe pods running (prints how to delete them)
    #[arg(long)]
    pub keep: bool,
    /// How long to wait for a probe pod to start (image pull included), e.g. 2m, 90s (a plain number means seconds)
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = cluster::parse_request_timeout)]
    pub start_timeout: Duration,
    /// How long each curl may take, e.g. 10s (whole seconds; a plain number means seconds)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cluster::parse_request_timeout)]
    pub curl_timeout: Duration,
    /// --gateway-namespace and --gateway-selector: the egress gateway.
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Output format (yaml is json's structure in YAML)
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Where the request runs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A probe pod we start with this image (and delete).
    ProbePod {
        /// The image.
        image: String,
    },
    /// An existing pod.
    Existing {
        /// The pod name.
        pod: String,
        /// The container, if given.
        container: Option<String>,
    },
}

/// Everything a check needs, validated.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    /// The target host.
    pub host: DnsName,
    /// The port the gateway originates to.
    pub port: u16,
    /// The path to GET.
    pub path: String,
    /// The namespace the probe runs in.
    pub namespace: String,
    /// Where the request runs from.
    pub source: Source,
    /// The image of the non-injected lockdown probe pod.
    pub image: String,
    /// Our client certificate's identity and how to name it.
    pub client: Option<(ClientIdentity, String)>,
    /// The outside host a lockdown must block.
    pub external: String,
    /// Leave probe pods behind.
    pub keep: bool,
    /// How long a probe pod may take to start.
    pub start_timeout: Duration,
    /// Seconds each curl may take.
    pub curl_timeout: u64,
    /// The egress gateway's namespace.
    pub gateway_namespace: String,
    /// The egress gateway pods' label selector.
    pub gateway_selector: String,
    /// How long to keep re-reading gateway logs for our line (Envoy flushes its log every second).
    pub log_wait: Duration,
    /// How often to re-read pod status and logs.
    pub poll: Duration,
}

impl CheckRequest {
    /// A check of `host` from a new probe pod in `namespace`, with the defaults of the flags.
    pub fn new(host: DnsName, namespace: &str) -> Self {
        Self {
            host,
            port: 443,
            path: "/headers".into(),
            namespace: namespace.to_string(),
            source: Source::ProbePod {
                image: pod::DEFAULT_IMAGE.into(),
            },
            image: pod::DEFAULT_IMAGE.into(),
            client: None,
            external: DEFAULT_EXTERNAL.into(),
            keep: false,
            start_timeout: Duration::from_secs(120),
            curl_timeout: 10,
            gateway_namespace: ISTIO_NAMESPACE.into(),
            gateway_selector: DEFAULT_GATEWAY_SELECTOR.into(),
            log_wait: Duration::from_secs(5),
            poll: Duration::from_secs(1),
        }
    }

    /// Match `X-Forwarded-Client-Cert` against the certificate in `path` (PEM, leaf first).
    pub fn with_client_cert(mut self, path: &std::path::Path) -> Result<Self, Error> {
        let origin = path.display().to_string();
        let text = shared::pki::read_file(path)?;
        let chain = Certificate::parse_chain(&text, &origin)?;
        self.client = Some((ClientIdentity::from_certificate(&chain[0]), origin));
        Ok(self)
    }
}

/// The outside host a lockdown must block, unless `--external` names another.
pub(crate) const DEFAULT_EXTERNAL: &str = "example.com";
/// The egress gateway pods' labels (Istio's and Kyma's).
pub(crate) const DEFAULT_GATEWAY_SELECTOR: &str = "istio=egressgateway";

/// What a check found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// The target host.
    pub host: String,
    /// The namespace probed from.
    pub namespace: String,
    /// Whether no check failed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The gateway's access-log entry for the request (and the replica that wrote it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log: Option<GatewayLogEntry>,
    /// The `X-Forwarded-Client-Cert` elements the target echoed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub xfcc: Vec<XfccElement>,
}

/// An access-log entry and the gateway pod it came from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayLogEntry {
    /// The gateway pod.
    pub pod: String,
    /// The entry.
    pub entry: AccessLogEntry,
}

/// Validates the flags (and reads `--client-cert`): every problem here is bad input (exit 2).
/// `namespace` is the one `-n` or the context selects.
pub(crate) fn request_from_args(args: &CheckArgs, namespace: &str) -> Result<CheckRequest, Error> {
    let host = DnsName::parse_exact(&args.host)?;
    let usage = |m: String| Err(Error::Usage(m));
    if args.port == 0 {
        return usage("--port 0 is not a port: pass the port the egress gateway originates TLS to (443 by default)".into());
    }
    if !args.path.starts_with('/')
        || args
            .path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return usage(format!(
            "--path {:?} is not an absolute request path: start it with / and leave out spaces (e.g. /headers)",
            args.path
        ));
    }
    if args.external.is_empty()
        || args
            .external
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/?#@".contains(c))
    {
        return usage(format!(
            "--external {:?} is not a host name or IP address: pass one, e.g. --external example.com",
            args.external
        ));
    }
    if args.image.trim().is_empty() || args.image.chars().any(char::is_whitespace) {
        return usage(format!(
            "--image {:?} is not an image reference: pass e.g. {}",
            args.image,
            pod::DEFAULT_IMAGE
        ));
    }
    if args.start_timeout.is_zero() || args.curl_timeout.as_secs() == 0 {
        return usage(
            "--start-timeout and --curl-timeout take durations greater than 0 (curl: whole seconds), e.g. --start-timeout 2m --curl-timeout 10s"
                .into(),
        );
    }
    if let Some(p) = &args.pod {
        shared::manifest::check_object_name(p).map_err(|e| Error::Usage(format!("--pod: {e}")))?;
    }
    args.gateway.validate()?;
    let gateway = args.gateway.offline(GatewayRole::Egress);
    let source = match &args.pod {
        Some(pod) => Source::Existing {
            pod: pod.clone(),
            container: args.container.clone(),
        },
        None => Source::ProbePod {
            image: args.image.clone(),
        },
    };
    let request = CheckRequest {
        port: args.port,
        path: args.path.clone(),
        source,
        image: args.image.clone(),
        external: args.external.clone(),
        keep: args.keep,
        start_timeout: args.start_timeout,
        curl_timeout: args.curl_timeout.as_secs(),
        gateway_namespace: gateway.namespace,
        gateway_selector: gateway.selector.to_string(),
        ..CheckRequest::new(host, namespace)
    };
    match &args.client_cert {
        Some(path) => request.with_client_cert(path),
        None => Ok(request),
    }
}

/// Runs `check`: connect, probe, render, exit code.
pub(crate) async fn run(
    args: &CheckArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    // Flags are checked before the kubeconfig is read or the cluster is contacted.
    let mut request = request_from_args(args, "")?;
    let (client, namespace) = global.kube.connect().await?;
    request.namespace = namespace;
    // The egress gateway as `enable` finds it; when none (or several) is found, the check's own
    // `egress-gateway` step reports what the flags and defaults select.
    let kyma = matches!(kyma_istio_crs(&client).await, Ok(Some(_)));
    if let Ok((gateway, note)) =
        find_gateway(&client, GatewayRole::Egress, &args.gateway, kyma).await
    {
        if !gateway.is_default() {
            writeln!(progress, "{note}")?;
        }
        request.gateway_namespace = gateway.namespace;
        request.gateway_selector = gateway.selector.to_string();
    }
    let report = execute(&client, &request, progress).await?;
    write_output(out, args.output, &report, |out| {
        Ok(write!(out, "{}", report::table(&report.checks))?)
    })?;
    report::outcome(&report.host, &report.checks)
}

/// Runs the check and removes the probe pods afterwards — on success, on failure and on Ctrl-C
/// (unless `keep`). Progress goes to `progress`.
pub async fn execute(
    client: &Client,
    request: &CheckRequest,
    progress: &mut dyn Write,
) -> Result<CheckReport, Error> {
    let run_id = run_id()?;
    let created = Mutex::new(Vec::new());
    let outcome = {
        tokio::select! {
            r = probe(client, request, &run_id, &created, &mut *progress) => r,
            _ = ctrl_c() => Err(Error::Interrupted(format!(
                "the check stopped before it finished{}",
                if request.keep { "" } else { "; its probe pods were deleted" }
            ))),
        }
    };
    let created = created.into_inner().unwrap_or_else(|e| e.into_inner());
    if created.is_empty() {
        return outcome;
    }
    let ns = &request.namespace;
    if request.keep {
        let _ = writeln!(
            progress,
            "kept probe pods {} in {ns}; delete them with: kubectl delete pod -n {ns} -l {}={run_id}",
            created.join(", "),
            pod::RUN_LABEL
        );
        return outcome;
    }
    let deletions = futures::future::join_all(
        created
            .iter()
            .map(|name| cluster::delete_pod(client, ns, name)),
    )
    .await;
    let mut cleanup_error = None;
    for (name, result) in created.iter().zip(deletions) {
        match result {
            Ok(()) => {
                let _ = writeln!(progress, "pod/{name} deleted");
            }
            Err(e) => {
                let _ = writeln!(
                    progress,
                    "could not delete pod/{name} ({e}); delete it with: kubectl delete pod -n {ns} {name}"
                );
                cleanup_error.get_or_insert(e);
            }
        }
    }
    match (outcome, cleanup_error) {
        (Ok(_), Some(e)) => Err(e.into()),
        (outcome, _) => outcome,
    }
}

/// Resolves when the user presses Ctrl-C; never, when SIGINT cannot be watched.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A fresh run id: 10 lowercase hex digits (fits pod names and label values).
fn run_id() -> Result<String, Error> {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::State(format!("no randomness for a run id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The probe pods of one run and the containers to exec into.
struct Pods {
    /// The pod the request runs from, its exec container, whether it has a sidecar.
    mesh: Option<(String, String, bool)>,
    /// Set when `--pod` names a pod the lockdown policy does not select: why its outside traffic
    /// is not the lockdown's to stop.
    mesh_not_selected: Option<String>,
    /// The non-injected lockdown pod (when a lockdown policy exists and a pod could start).
    plain: Option<String>,
}

async fn probe(
    client: &Client,
    request: &CheckRequest,
    run_id: &str,
    created: &Mutex<Vec<String>>,
    progress: &mut dyn Write,
) -> Result<CheckReport, Error> {
    let ns = request.namespace.as_str();
    let host = request.host.as_str();
    let mut checks = Vec::new();

    // 1. What is there: the gateway replicas and our lockdown policy.
    let gateway_pods: Vec<Pod> = cluster::list(
        client,
        Some(&request.gateway_namespace),
        &ListParams::default().labels(&request.gateway_selector),
    )
    .await?;
    let gateways: Vec<String> = gateway_pods
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    checks.push(if gateways.is_empty() {
        Check::failed(
            "egress-gateway",
            format!(
                "no running pod matches {} in {}: the egress gateway is off or not installed (kubectl mtls-egress enable)",
                request.gateway_selector, request.gateway_namespace
            ),
        )
    } else {
        Check::passed(
            "egress-gateway",
            format!("{} running replica(s): {}", gateways.len(), gateways.join(", ")),
        )
    });
    let lockdown_selector =
        format!("{MANAGED_BY_LABEL}={MANAGER},{COMPONENT_LABEL}={LOCKDOWN_COMPONENT}");
    let policies: Vec<NetworkPolicy> = cluster::list(
        client,
        Some(ns),
        &ListParams::default().labels(&lockdown_selector),
    )
    .await?;
    let lockdown = policies.first().map(selector_labels);

    // 2. The pods.
    let pods = start_pods(
        client,
        request,
        run_id,
        created,
        lockdown.as_ref(),
        &mut checks,
        progress,
    )
    .await?;

    // 3. The request, XFCC and the gateway's access log.
    let mut xfcc = Vec::new();
    let mut access = None;
    match &pods.mesh {
        Some((name, container, true)) => {
            let request_id = format!("kubectl-mtls-{run_id}");
            let path = tagged_path(&request.path, &request_id);
            let _ = writeln!(progress, "requesting http://{host}{path} from pod/{name}");
            let started = Instant::now();
            let out = cluster::exec(
                client,
                ns,
                name,
                container,
                &curl::request_command(host, &path, &request_id, request.curl_timeout),
            )
            .await?;
            let body = request_check(request, name, &out, &mut checks);
            match body {
                Some(body) => {
                    let (check, elements) = match &request.client {
                        Some((id, origin)) => xfcc_check(&body, id, origin),
                        None => (unmatched_xfcc(&body), Vec::new()),
                    };
                    checks.push(check);
                    xfcc = elements;
                }
                None => checks.push(Check::skipped("xfcc", "no 200 response to read it from")),
            }
            if gateways.is_empty() {
                checks.push(Check::skipped(
                    "access-log",
                    "no egress gateway replica to read",
                ));
            } else {
                let _ = writeln!(
                    progress,
                    "reading the access logs of {} egress gateway replica(s)",
                    gateways.len()
                );
                let (check, entry) =
                    access_log_check(client, request, &gateways, &request_id, started).await?;
                checks.push(check);
                access = entry;
            }
        }
        Some((name, _, false)) => {
            let why = format!(
                "pod/{name} has no istio-proxy sidecar, so its request would bypass the egress gateway"
            );
            checks.push(Check::failed(
                "sidecar",
                format!(
                    "{why}: label the namespace (kubectl label namespace {ns} istio-injection=enabled) and restart the workload"
                ),
            ));
            for name in ["request", "xfcc", "access-log"] {
                checks.push(Check::skipped(name, "no sidecar"));
            }
        }
        None => {
            for name in ["request", "xfcc", "access-log"] {
                checks.push(Check::skipped(name, "no pod to run it from"));
            }
        }
    }

    // 4. Kyma's egress-gateway NetworkPolicy: the probe pod carries the label, the user's may not.
    if let Some(check) = kyma_label_check(client, ns).await? {
        checks.push(check);
    }

    // 5. The lockdown.
    lockdown_checks(
        client,
        request,
        &pods,
        lockdown.as_ref(),
        &mut checks,
        progress,
    )
    .await?;

    Ok(CheckReport {
        host: host.to_string(),
        namespace: ns.to_string(),
        ok: checks.iter().all(|c| c.status != Status::Failed),
        checks,
        access_log: access,
        xfcc,
    })
}

/// With Kyma's `networkPoliciesEnabled`, the egress gateway admits only pods labelled
/// `networking.kyma-project.io/to-egressgateway=allowed`. The probe pod carries that label, so
/// its pass says nothing about the namespace's own workloads: this check names the pod templates
/// (Deployments, StatefulSets, DaemonSets, and pods nothing owns) with a sidecar that lack it.
/// `None` when the policies are off, this is not Kyma, or the Istio CR may not be read.
async fn kyma_label_check(client: &Client, ns: &str) -> Result<Option<Check>, Error> {
    let crs = match kyma_istio_crs(client).await {
        Ok(Some(crs)) => crs,
        Ok(None) | Err(ClusterError::Forbidden { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !crs
        .iter()
        .any(|cr| cr.spec.network_policies_enabled == Some(true))
    {
        return Ok(None);
    }
    let all = ListParams::default();
    let mut templates: Vec<(String, Option<ObjectMeta>)> = Vec::new();
    for d in cluster::list::<Deployment>(client, Some(ns), &all).await? {
        templates.push((
            format!("deployment/{}", d.name_any()),
            d.spec.and_then(|s| s.template.metadata),
        ));
    }
    for d in cluster::list::<StatefulSet>(client, Some(ns), &all).await? {
        templates.push((
            format!("statefulset/{}", d.name_any()),
            d.spec.and_then(|s| s.template.metadata),
        ));
    }
    for d in cluster::list::<DaemonSet>(client, Some(ns), &all).await? {
        templates.push((
            format!("daemonset/{}", d.name_any()),
            d.spec.and_then(|s| s.template.metadata),
        ));
    }
    for p in cluster::list::<Pod>(client, Some(ns), &all).await? {
        let owned = p
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| !o.is_empty());
        let ours = p.labels().contains_key(pod::RUN_LABEL);
        if !owned && !ours {
            templates.push((format!("pod/{}", p.name_any()), Some(p.metadata)));
        }
    }
    Ok(Some(kyma_label_verdict(ns, &templates)))
}

/// The verdict over pod templates `(kind/name, template metadata)`: those that get a sidecar and
/// lack Kyma's egress label fail it.
pub(crate) fn kyma_label_verdict(ns: &str, templates: &[(String, Option<ObjectMeta>)]) -> Check {
    let (key, value) = KYMA_EGRESS_POD_LABEL;
    let missing: Vec<&str> = templates
        .iter()
        .filter(|(_, meta)| {
            let labels = meta.as_ref().and_then(|m| m.labels.as_ref());
            let annotations = meta.as_ref().and_then(|m| m.annotations.as_ref());
            let no_sidecar = [labels, annotations]
                .iter()
                .flatten()
                .any(|m| m.get(pod::INJECT_LABEL).is_some_and(|v| v == "false"));
            !no_sidecar && labels.and_then(|l| l.get(key)).is_none_or(|v| v != value)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if missing.is_empty() {
        Check::passed(
            "kyma-egress-label",
            format!(
                "Kyma's networkPoliciesEnabled is on and every pod template in {ns} carries {key}={value}"
            ),
        )
    } else {
        Check::failed(
            "kyma-egress-label",
            format!(
                "Kyma's networkPoliciesEnabled is on and {} in {ns} lack(s) {key}={value}: the egress gateway drops their requests (the probe pod has the label, so its pass does not cover them); label the pod templates with `kubectl mtls-lockdown apply -n {ns} --label-pods`",
                missing.join(", ")
            ),
        )
    }
}

/// The labels a pod needs for the lockdown policy to select it: its `podSelector.matchLabels`;
/// an error when the selector uses `matchExpressions` (no label set can be derived safely).
fn selector_labels(policy: &NetworkPolicy) -> Result<BTreeMap<String, String>, String> {
    let selector = policy.spec.as_ref().and_then(|s| s.pod_selector.as_ref());
    match selector {
        Some(s) if s.match_expressions.as_ref().is_some_and(|e| !e.is_empty()) => Err(format!(
            "the podSelector of networkpolicy/{} uses matchExpressions, so probe pods cannot be labelled to match it; run check with --pod of a workload it selects",
            policy.metadata.name.as_deref().unwrap_or(POLICY_NAME)
        )),
        Some(s) => Ok(s.match_labels.clone().unwrap_or_default()),
        None => Ok(BTreeMap::new()),
    }
}

async fn start_pods(
    client: &Client,
    request: &CheckRequest,
    run_id: &str,
    created: &Mutex<Vec<String>>,
    lockdown: Option<&Result<BTreeMap<String, String>, String>>,
    checks: &mut Vec<Check>,
    progress: &mut dyn Write,
) -> Result<Pods, Error> {
    let ns = request.namespace.as_str();
    let extra_labels = match lockdown {
        Some(Ok(labels)) => labels.clone(),
        _ => BTreeMap::new(),
    };
    let probe = |kind: &str, image: &str, injected: bool| {
        let mut labels = extra_labels.clone();
        if injected {
            // What Kyma's `networkPoliciesEnabled` policies require to reach the egress gateway
            // (`mtls-lockdown apply --label-pods` puts it on workloads; doctor flags its absence).
            let (k, v) = KYMA_EGRESS_POD_LABEL;
            labels.insert(k.to_string(), v.to_string());
        }
        ProbePod {
            name: pod::pod_name(kind, run_id),
            namespace: ns.to_string(),
            image: image.to_string(),
            injected,
            run_id: run_id.to_string(),
            extra_labels: labels,
        }
    };
    // An existing pod is checked before anything is created.
    let mut mesh_not_selected = None;
    let existing = match &request.source {
        Source::Existing {
            pod: name,
            container,
        } => {
            let Some(existing) = cluster::get_opt::<Pod>(client, ns, name).await? else {
                return Err(Error::State(format!(
                    "pod {name} not found in namespace {ns}: pass a running pod of -n {ns} to --pod (kubectl get pods -n {ns})"
                )));
            };
            let container = pod::exec_container(&existing, container.as_deref())
                .map_err(|m| Error::Usage(format!("--pod {name}: {m}")))?;
            if let PodState::Waiting(why) | PodState::Failed(why) =
                pod::pod_state(&existing, &container)
            {
                return Err(Error::State(format!(
                    "pod {name} in {ns} cannot run a command now ({why}): pass a running pod to --pod, or leave --pod out to use a probe pod"
                )));
            }
            checks.push(Check::passed(
                "probe-pod",
                format!("using pod/{name}, container {container}"),
            ));
            if let Some(Ok(wanted)) = lockdown {
                let labels = existing.metadata.labels.clone().unwrap_or_default();
                if wanted.iter().any(|(k, v)| labels.get(k) != Some(v)) {
                    mesh_not_selected = Some(format!(
                        "pod/{name} is not selected by networkpolicy/{POLICY_NAME} (it selects {}), so its outside traffic is not the lockdown's to stop; leave --pod out to test from a probe pod the policy selects",
                        wanted
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                }
            }
            Some((name.clone(), container, pod::has_sidecar(&existing)))
        }
        Source::ProbePod { .. } => None,
    };
    let mut wanted = Vec::new();
    if let Source::ProbePod { image } = &request.source {
        wanted.push(probe("mesh", image, true));
    }
    if matches!(lockdown, Some(Ok(_))) {
        wanted.push(probe("plain", &request.image, false));
    }
    for p in &wanted {
        let _ = writeln!(
            progress,
            "creating pod/{} in {ns} ({}, sidecar {})",
            p.name,
            p.image,
            if p.injected { "injected" } else { "disabled" }
        );
        // Recorded before the request: a Ctrl-C while it is in flight still deletes the pod.
        created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p.name.clone());
        cluster::create_pod(client, ns, &pod::probe_pod(p)).await?;
    }
    let waits = futures::future::join_all(
        wanted
            .iter()
            .map(|p| wait_started(client, ns, &p.name, pod::CONTAINER, request)),
    )
    .await;
    let mut started = BTreeMap::new();
    for (p, state) in wanted.iter().zip(waits) {
        started.insert(p.injected, (p.name.clone(), state?));
    }

    let mesh = match (existing, &request.source) {
        (Some(mesh), _) => Some(mesh),
        (None, Source::Existing { .. }) => None,
        (None, Source::ProbePod { image }) => match started.remove(&true) {
            Some((name, Ok(p))) => {
                checks.push(Check::passed(
                    "probe-pod",
                    format!("started pod/{name} ({image})"),
                ));
                Some((name, pod::CONTAINER.to_string(), pod::has_sidecar(&p)))
            }
            Some((name, Err(why))) => {
                checks.push(Check::failed(
                    "probe-pod",
                    format!(
                        "pod/{name} did not start: {why} (an air-gapped registry? pass --image)"
                    ),
                ));
                None
            }
            None => None,
        },
    };
    let plain = match started.remove(&false) {
        Some((name, Ok(_))) => Some(name),
        Some((name, Err(why))) => {
            checks.push(Check::failed(
                "probe-pod-plain",
                format!("pod/{name} (no sidecar) did not start: {why}"),
            ));
            None
        }
        None => None,
    };
    Ok(Pods {
        mesh,
        mesh_not_selected,
        plain,
    })
}

/// Polls pod `name` until `container` can run a command; `Err` says why it never will.
async fn wait_started(
    client: &Client,
    ns: &str,
    name: &str,
    container: &str,
    request: &CheckRequest,
) -> Result<Result<Pod, String>, ClusterError> {
    let deadline = Instant::now() + request.start_timeout;
    let mut last = String::from("not created yet");
    loop {
        if let Some(p) = cluster::get_opt::<Pod>(client, ns, name).await? {
            match pod::pod_state(&p, container) {
                PodState::Ready => return Ok(Ok(p)),
                PodState::Failed(why) => return Ok(Err(why)),
                PodState::Waiting(why) => last = why,
            }
        }
        if Instant::now() >= deadline {
            return Ok(Err(format!(
                "not running after {} s ({last})",
                request.start_timeout.as_secs()
            )));
        }
        tokio::time::sleep(request.poll).await;
    }
}

/// The `request` check; returns the body when the answer was 200.
fn request_check(
    request: &CheckRequest,
    pod: &str,
    out: &ExecOutput,
    checks: &mut Vec<Check>,
) -> Option<Vec<u8>> {
    let url = format!("http://{}{}", request.host, request.path);
    let (body, status) = curl::split_response(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let check = match (out.exit_code, status) {
        (Some(0), Some(200)) => {
            checks.push(Check::passed(
                "request",
                format!("HTTP 200 from {url} (pod/{pod})"),
            ));
            return Some(body.to_vec());
        }
        (Some(0), Some(code)) => {
            let text = String::from_utf8_lossy(body);
            Check::failed(
                "request",
                format!(
                    "HTTP {code} from {url}: {}{}",
                    one_line(&text, 160),
                    status_hint(code)
                ),
            )
        }
        (Some(code), _) => {
            let said = curl::first_line(&stderr);
            Check::failed(
                "request",
                format!(
                    "curl exit {code} for {url}: {said} — {}",
                    curl::meaning(code)
                ),
            )
        }
        (None, _) => Check::failed(
            "request",
            match &out.failure {
                Some(m) if m.contains("executable file not found") => format!(
                    "pod/{pod} cannot run curl ({}): use a pod whose image has curl, or leave --pod out",
                    one_line(m, 160)
                ),
                Some(m) => format!("the command did not run in pod/{pod}: {}", one_line(m, 200)),
                None => format!(
                    "the exec stream to pod/{pod} ended without an exit status; run the check again"
                ),
            },
        ),
    };
    checks.push(check);
    None
}

fn status_hint(code: u16) -> &'static str {
    match code {
        503 => {
            " — the gateway could not reach or handshake with the target: see the access-log check's flags"
        }
        502 => {
            " — the sidecar or gateway had no usable route (REGISTRY_ONLY without a ServiceEntry?)"
        }
        404 => {
            " — no route matched: check the VirtualService's mesh→gateway→target routes (kubectl mtls-probe doctor)"
        }
        400 => {
            " — the target refused the request; if it says no client certificate was sent, the origination DestinationRule is not MUTUAL"
        }
        403 => " — an AuthorizationPolicy or the target refused it",
        _ => "",
    }
}

/// Without `--client-cert` XFCC cannot be matched; say what arrived and that it proves nothing.
fn unmatched_xfcc(body: &[u8]) -> Check {
    let detail: String = match headers_xfcc(body) {
        None => "the body is not httpbin /headers JSON: X-Forwarded-Client-Cert not read".into(),
        Some(v) if v.is_empty() => {
            "no X-Forwarded-Client-Cert reached the target; pass --client-cert to make this a check".into()
        }
        Some(_) => "X-Forwarded-Client-Cert is present, which alone proves nothing: pass --client-cert to match it to our certificate".into(),
    };
    Check::skipped("xfcc", detail)
}

/// Reads every replica's log since just before the request until our line shows up (or
/// `log_wait` passes) and judges the entry.
async fn access_log_check(
    client: &Client,
    request: &CheckRequest,
    gateways: &[String],
    request_id: &str,
    started: Instant,
) -> Result<(Check, Option<GatewayLogEntry>), Error> {
    let host = request.host.as_str();
    let cluster_name = access_log::upstream_cluster(host, request.port);
    let deadline = Instant::now() + request.log_wait;
    let (best, others) = loop {
        let since = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX / 2) + 5;
        let logs = futures::future::join_all(gateways.iter().map(|g| {
            cluster::logs_since(client, &request.gateway_namespace, g, pod::SIDECAR, since)
        }))
        .await;
        let mut ours = None;
        let mut others = 0usize;
        for (gateway, log) in gateways.iter().zip(logs) {
            let entries = access_log::parse_lines(&log?);
            for e in access_log::for_upstream(&entries, host, request.port) {
                if is_ours(e, request_id) {
                    ours = Some(GatewayLogEntry {
                        pod: gateway.clone(),
                        entry: e.clone(),
                    });
                } else {
                    others += 1;
                }
            }
        }
        if ours.is_some() || Instant::now() >= deadline {
            break (ours, others);
        }
        tokio::time::sleep(request.poll).await;
    };
    let Some(found) = best else {
        return Ok((
            Check::failed(
                "access-log",
                format!(
                    "no entry of this probe for {cluster_name} in {} replica(s) ({others} from other requests): the request did not leave through the egress gateway (VirtualService mesh→gateway route, exportTo), or the gateway does not write access logs (kubectl mtls-egress enable --access-log)",
                    gateways.len()
                ),
            ),
            None,
        ));
    };
    let e = &found.entry;
    let code = e.response_code.unwrap_or(0);
    let flags = e.response_flags.as_deref().unwrap_or("-");
    let summary = format!("pod/{}: {cluster_name} {code} flags {flags}", found.pod);
    let check = if code == 200 {
        Check::passed("access-log", summary)
    } else {
        let reason = e
            .upstream_transport_failure_reason
            .as_deref()
            .map(|r| format!("; upstream TLS: {}", one_line(r, 160)))
            .unwrap_or_default();
        Check::failed(
            "access-log",
            format!("{summary}{reason}{}", flag_hint(flags)),
        )
    };
    Ok((check, Some(found)))
}

/// The request path with this run's id in the query, so the gateway's log line (whose `path`
/// keeps the query) is ours even if a proxy replaced `x-request-id`.
fn tagged_path(path: &str, request_id: &str) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}kubectl-mtls-probe={request_id}")
}

/// Whether an access-log entry is the probe's request: by `x-request-id`, or by the id in the path.
fn is_ours(entry: &AccessLogEntry, request_id: &str) -> bool {
    entry.request_id.as_deref() == Some(request_id)
        || entry.path.as_deref().is_some_and(|p| {
            p.split(['?', '&'])
                .any(|part| part == format!("kubectl-mtls-probe={request_id}"))
        })
}

fn flag_hint(flags: &str) -> &'static str {
    if flags.contains("UF") || flags.contains("URX") {
        " — the gateway could not connect or handshake with the target: check the origination DestinationRule's credentialName, sni and subjectAltNames, and that the target trusts our CA (kubectl mtls-probe doctor)"
    } else if flags.contains("NR") {
        " — no route at the gateway: the Gateway/VirtualService for the host are missing or not exported to istio-system"
    } else if flags.contains("UH") {
        " — no healthy upstream: the ServiceEntry's endpoints do not resolve"
    } else {
        ""
    }
}

async fn lockdown_checks(
    client: &Client,
    request: &CheckRequest,
    pods: &Pods,
    lockdown: Option<&Result<BTreeMap<String, String>, String>>,
    checks: &mut Vec<Check>,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let ns = request.namespace.as_str();
    let external = request.external.as_str();
    match lockdown {
        None => {
            checks.push(Check::skipped(
                "lockdown",
                format!(
                    "no lockdown NetworkPolicy ({POLICY_NAME}) in {ns}: outside traffic not tested (kubectl mtls-lockdown apply)"
                ),
            ));
            return Ok(());
        }
        Some(Err(why)) => {
            checks.push(Check::skipped("lockdown", why.clone()));
            return Ok(());
        }
        Some(Ok(_)) => {}
    }
    let mesh = match &pods.mesh_not_selected {
        Some(why) => {
            checks.push(Check::skipped("lockdown-mesh", why.clone()));
            None
        }
        None => pods.mesh.as_ref().map(|(n, c, _)| (n.as_str(), c.as_str())),
    };
    let plain = pods.plain.as_deref().map(|n| (n, pod::CONTAINER));
    let mut targets = vec![("lockdown-plain", "non-injected", plain)];
    if pods.mesh_not_selected.is_none() {
        targets.insert(0, ("lockdown-mesh", "injected", mesh));
    }
    let _ = writeln!(progress, "testing that https://{external}/ is unreachable");
    let command = curl::reach_command(external, request.curl_timeout.min(5));
    let runs = futures::future::join_all(targets.iter().map(|(_, _, target)| async {
        match target {
            Some((name, container)) => {
                Some(cluster::exec(client, ns, name, container, &command).await)
            }
            None => None,
        }
    }))
    .await;
    for ((check_name, kind, target), run) in targets.iter().zip(runs) {
        let (Some((pod_name, _)), Some(out)) = (target, run) else {
            checks.push(Check::skipped(
                check_name,
                format!("no {kind} pod to test from"),
            ));
            continue;
        };
        let out = out?;
        let reach = match out.exit_code {
            Some(code) => curl::judge_reach(
                Some(code),
                &String::from_utf8_lossy(&out.stdout),
                &String::from_utf8_lossy(&out.stderr),
            ),
            None => Reach::Unresolved(format!(
                "the command did not run: {}",
                out.failure.as_deref().unwrap_or("no exit status")
            )),
        };
        checks.push(match reach {
            Reach::Blocked(how) => Check::passed(
                check_name,
                format!("{external}:443 unreachable from {kind} pod/{pod_name} ({how})"),
            ),
            Reach::Reachable(how) => Check::failed(
                check_name,
                format!(
                    "{external}:443 is reachable from {kind} pod/{pod_name} ({how}): the lockdown does not hold (kubectl mtls-lockdown explain --pod {pod_name} --to {external}:443)"
                ),
            ),
            Reach::Unresolved(how) => Check::failed(
                check_name,
                format!(
                    "inconclusive from {kind} pod/{pod_name}: {how}; pass an --external name that resolves in the cluster, or an IP address"
                ),
            ),
        });
    }
    Ok(())
}
