//! `kubectl mtls-lockdown explain`: which NetworkPolicy rule allows or denies a pod's traffic —
//! every policy that selects the pod, not only ours — from `-f` files or from the cluster.

use std::io::Write;
use std::path::PathBuf;

use shared::cli::{GlobalArgs, OutputFormat, write_output};
use shared::error::Error;
use shared::manifest::ISTIO_NAMESPACE;
use shared::manifest::lockdown::DNS_NAMESPACE;
use shared::netpol::matrix::{self, PathReport};
use shared::netpol::target::Destination;
use shared::netpol::{Inventory, Protocol, resolve};

use super::report;

/// Explain which NetworkPolicy rule allows or denies a pod's traffic
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Without --to/--to-ip: a matrix of the pods × DNS (UDP and TCP), istiod, the egress gateway and an
outside address. With -f nothing is read from a cluster: the files hold the Pods, Namespaces,
Services and NetworkPolicies to evaluate (YAML streams, JSON, Lists, or what `kubectl get -o json`
prints); a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job,
CronJob) stands for its pods, as KIND/NAME (--pod deployment/web). Objects without a namespace are
in -n's. In a directory, files that are not Kubernetes manifests are skipped with a warning. A
Service destination is
judged at each pod behind it (on its target port, as after kube-proxy's DNAT) and at its ClusterIP
(as node-local DNS sees it); ingress policies of a destination pod are checked too.

Examples:
  # Matrix of every pod in the namespace
  kubectl mtls-lockdown explain -n mtls-demo
  # Is TCP DNS allowed for one pod? Which rule decides?
  kubectl mtls-lockdown explain -n mtls-demo --pod curl --to kube-dns.kube-system:53 --protocol TCP
  # An outside address, offline from manifests
  kubectl mtls-lockdown explain -n mtls-demo -l app=curl --to-ip 1.1.1.1:443 -f cluster-dump.yaml
  # A chart's workloads and policies, before they are installed
  helm template shop ./chart | kubectl mtls-lockdown explain -n shop -f - --pod deployment/web"
)]
pub struct ExplainArgs {
    /// The source pod (default: every pod in the namespace)
    #[arg(long, value_name = "NAME", conflicts_with = "selector")]
    pub pod: Option<String>,
    /// Source pods by label, K=V[,K=V...]
    #[arg(short = 'l', long, value_name = "K=V")]
    pub selector: Option<String>,
    /// A Service destination, NAME[.NAMESPACE[.svc.cluster.local]]:PORT
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "to_ip")]
    pub to: Option<String>,
    /// An address destination (ipBlock test), IP:PORT or [IPv6]:PORT
    #[arg(long, value_name = "IP:PORT")]
    pub to_ip: Option<String>,
    /// The protocol of --to/--to-ip
    #[arg(long, value_enum, default_value = "TCP", ignore_case = true)]
    pub protocol: Protocol,
    /// Evaluate these files (YAML/JSON, directories, - for stdin) instead of the cluster
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Process the directories given with -f recursively
    #[arg(short = 'R', long, requires = "files")]
    pub recursive: bool,
    /// Output format (table is text)
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// Parses `K=V[,K=V...]`.
fn parse_selector(value: &str) -> Result<Vec<(String, String)>, Error> {
    value
        .split(',')
        .map(|term| {
            term.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty() && !k.contains('!'))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "invalid --selector {value:?}: {term:?} is not KEY=VALUE; use -l app=curl or -l app=curl,tier=web"
                    ))
                })
        })
        .collect()
}

/// The inputs that can be checked before anything is read.
struct Checked {
    destination: Option<Destination>,
    selector: Option<Vec<(String, String)>>,
}

fn check(args: &ExplainArgs) -> Result<Checked, Error> {
    let destination = match (&args.to, &args.to_ip) {
        (Some(to), _) => Some(Destination::parse_host(to).map_err(Error::Usage)?),
        (None, Some(ip)) => Some(Destination::parse_ip(ip).map_err(Error::Usage)?),
        (None, None) => None,
    };
    let selector = args.selector.as_deref().map(parse_selector).transpose()?;
    Ok(Checked {
        destination,
        selector,
    })
}

/// What `explain` produced.
#[derive(Debug, Clone)]
pub enum Explanation {
    /// One report per source pod (`--to`/`--to-ip`).
    Paths(Vec<PathReport>),
    /// The matrix.
    Matrix(matrix::Matrix),
}

/// Runs `explain` over an inventory: pure, no I/O.
pub fn evaluate(
    args: &ExplainArgs,
    inventory: &Inventory,
    namespace: &str,
    origin: &str,
) -> Result<Explanation, Error> {
    let checked = check(args)?;
    if !inventory.has_namespace(namespace) {
        return Err(Error::Usage(format!(
            "namespace {namespace} not found in {origin}; choose another with -n"
        )));
    }
    let mut sources = inventory.pods_in(namespace);
    if let Some(name) = &args.pod {
        sources.retain(|&i| &inventory.pods()[i].name == name);
        if sources.is_empty() {
            return Err(Error::Usage(format!(
                "pod {namespace}/{name} not found in {origin}; list them with `kubectl get pods -n {namespace}`"
            )));
        }
    }
    if let Some(terms) = &checked.selector {
        sources.retain(|&i| {
            let labels = &inventory.pods()[i].labels;
            terms.iter().all(|(k, v)| labels.get(k) == Some(v))
        });
    }
    if sources.is_empty() {
        return Err(Error::Usage(format!(
            "no pods to explain in namespace {namespace} ({origin}){}; name one with --pod or check -n",
            if args.selector.is_some() {
                " matching --selector"
            } else {
                ""
            }
        )));
    }
    match &checked.destination {
        Some(dest) => {
            let resolved = resolve(inventory, dest, args.protocol, namespace)
                .map_err(|e| Error::Usage(format!("{e} (in {origin})")))?;
            Ok(Explanation::Paths(
                sources
                    .iter()
                    .map(|&s| matrix::explain(inventory, s, &resolved, args.protocol))
                    .collect(),
            ))
        }
        None => Ok(Explanation::Matrix(matrix::matrix(
            inventory,
            &sources,
            matrix::well_known(inventory),
        ))),
    }
}

/// Renders an explanation in the chosen format.
pub fn render(explanation: &Explanation, output: Option<OutputFormat>) -> String {
    let value = match explanation {
        Explanation::Paths(reports) => serde_json::json!({ "results": reports }),
        Explanation::Matrix(m) => serde_json::to_value(m).expect("a matrix serializes"),
    };
    let mut text = Vec::new();
    write_output(
        &mut text,
        output.unwrap_or(OutputFormat::Table),
        &value,
        |out| {
            let table = match explanation {
                Explanation::Paths(reports) => report::render_text(reports),
                Explanation::Matrix(m) => report::render_matrix(m),
            };
            Ok(out.write_all(table.as_bytes())?)
        },
    )
    .expect("writing to memory does not fail");
    String::from_utf8(text).expect("the renderers write UTF-8")
}

/// Runs `explain`.
pub async fn run(
    args: &ExplainArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    // Malformed flags fail before any file or cluster is read.
    let checked = check(args)?;
    if let Some(ns) = &global.kube.namespace {
        shared::cluster::validate_namespace(ns)?;
    }
    let (inventory, namespace, origin) = if !args.files.is_empty() {
        let namespace = global
            .kube
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let inventory =
            shared::netpol::load::from_files(&args.files, args.recursive, &namespace, err)?;
        match inventory.defaulted_namespaces() {
            0 => {}
            n => writeln!(
                err,
                "note: {n} object(s) in the files name no namespace: read as in namespace {namespace} (-n)"
            )?,
        }
        (inventory, namespace, "the files given with -f".to_string())
    } else {
        let (client, namespace) = global.kube.connect().await?;
        let mut namespaces = vec![namespace.as_str(), DNS_NAMESPACE, ISTIO_NAMESPACE];
        if let Some(Destination::Service {
            namespace: Some(ns),
            ..
        }) = &checked.destination
        {
            namespaces.push(ns);
        }
        let inventory = shared::netpol::load::from_cluster(&client, &namespaces).await?;
        (inventory, namespace.clone(), "the cluster".to_string())
    };
    let explanation = evaluate(args, &inventory, &namespace, &origin)?;
    out.write_all(render(&explanation, args.output).as_bytes())?;
    Ok(())
}
