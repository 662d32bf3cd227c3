//! `kubectl mtls-egress status`: the hosts we manage, their objects, and whether they can work.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use futures::{StreamExt, TryStreamExt, stream};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::ListParams;
use serde::Serialize;

use k8s_openapi::api::apps::v1::Deployment;
use shared::cli::{ExpiryArgs, GlobalArgs, OutputFormat, Table, write_output};
use shared::cluster::detect::{deployment_available, gateway_deployment};
use shared::cluster::{ClusterError, DEFAULT_MAX_IN_FLIGHT, get_opt, list};
use shared::error::Error;
use shared::gateway::{GatewayRole, GatewaySelector, GatewayWorkload};
use shared::manifest::ISTIO_NAMESPACE;
use shared::manifest::credential_state::CredentialState;
use shared::manifest::host::{CLIENT_NAMESPACE_ANNOTATION, HOST_ANNOTATION, HOST_LABEL, slug};
use shared::manifest::{COMPONENT_LABEL, MANAGED_BY_LABEL, MANAGER};
use shared::resources::{APIRule, DestinationRule, Gateway, ServiceEntry, VirtualService};

use shared::names::DnsName;

use super::detect::from_cache;
use super::hosts::{Wildcards, parse_hosts};
use super::{credential_expiry, detect};

/// List the hosts kubectl-mtls manages, their objects and readiness
#[derive(clap::Args, Debug)]
#[command(
    after_help = "A credential certificate that expires within --expiry-warning (default 30d) is named on stderr
(warning); an expired one makes its host not ready (error).
--host (repeatable) and --hosts-file show those hosts only, read in one set of requests whatever
their number (one list per kind and namespace, one read per gateway and per credential Secret); a
host given that has no objects there is named on stderr after the table (exit code 3).

Examples:
  kubectl mtls-egress status -n mtls-demo
  kubectl mtls-egress status -A -o json
  kubectl mtls-egress status -A --expiry-warning 60d
  kubectl mtls-egress status -n payments --hosts-file partners.txt"
)]
pub(crate) struct StatusArgs {
    /// All namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only this host; repeat it for several hosts [default: every host managed]
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// Only the hosts of a file, one per line (blank lines and lines starting with # are skipped), in addition to --host
    #[arg(long, value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// One managed host in one namespace.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    /// The host.
    pub host: String,
    /// The namespace of its per-host objects.
    pub namespace: String,
    /// `client` (enable) or `target` (expose).
    pub side: String,
    /// `kind/name` of every object found.
    pub objects: Vec<String>,
    /// The hop mode (client side), from the egress Gateway's TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop: Option<String>,
    /// The credential Secret named by the origination rule or Gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Whether that Secret exists in the gateway's namespace.
    pub credential_present: bool,
    /// What that Secret holds: the leaf's subject, hosts and expiry, its trust bundle's CAs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_secret: Option<CredentialState>,
    /// What is missing for the host to work (empty when ready).
    pub problems: Vec<String>,
    /// The namespace of the gateway pods, where the credential Secret must be.
    #[serde(skip)]
    secret_namespace: String,
}

/// The namespace of the ingress gateway pods a target Gateway selects: istio-system for
/// istioctl's and Kyma's labels, else that of the Deployment whose pods carry them (`None` when
/// none is found, or the Deployments may not be listed).
async fn ingress_namespace(
    client: &kube::Client,
    selector: &BTreeMap<String, String>,
    deployments: &mut Option<Vec<Deployment>>,
) -> Result<Option<String>, Error> {
    let default = GatewayWorkload::default_ingress();
    if selector == default.selector.labels() {
        return Ok(Some(default.namespace));
    }
    if deployments.is_none() {
        *deployments = Some(
            match list::<Deployment>(client, None, &ListParams::default()).await {
                Ok(d) => d,
                Err(ClusterError::Forbidden { .. }) => Vec::new(),
                Err(e) => return Err(e.into()),
            },
        );
    }
    let selector =
        GatewaySelector::from_pairs(selector.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Ok(deployments.iter().flatten().find_map(|d| {
        let labels = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        selector.matches(&labels).then(|| d.namespace()).flatten()
    }))
}

/// Runs `status`.
pub(crate) async fn run(
    args: &StatusArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let only = parse_hosts(&args.host, args.hosts_file.as_deref(), Wildcards::Allowed)?;
    let (client, namespace) = global.kube.connect().await?;
    let scope = (!args.all_namespaces).then_some(namespace.as_str());
    let rows = collect_hosts(&client, scope, &only).await?;
    render(&rows, scope, args.output, out)?;
    let now = time::OffsetDateTime::now_utc();
    credential_expiry::warn(&rows, now, args.expiry.expiry_warning, err)?;
    let missing: Vec<String> = only
        .iter()
        .map(ToString::to_string)
        .filter(|h| !rows.iter().any(|r| r.host == *h))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    out.flush()?;
    Err(Error::State(format!(
        "nothing managed by kubectl-mtls for {}{}; see `kubectl mtls-egress status{}` for the hosts there are",
        missing.join(", "),
        scope
            .map(|n| format!(" in namespace {n}"))
            .unwrap_or_default(),
        if scope.is_some() { "" } else { " -A" }
    )))
}

/// Reads every managed host in `scope` (a namespace, or all for `None`).
pub async fn collect(client: &kube::Client, scope: Option<&str>) -> Result<Vec<HostStatus>, Error> {
    collect_hosts(client, scope, &[]).await
}

/// The managed hosts among `only` (every one when empty) in `scope` (a namespace, or all for
/// `None`). The reads do not grow with the hosts: the lists of our kinds sent together (selected
/// by the hosts' labels when `only` names them), then together the origination rules of each
/// egress gateway's namespace and each gateway's Deployment, and each credential Secret named
/// (once however many hosts share it, at most [`DEFAULT_MAX_IN_FLIGHT`] at a time).
pub async fn collect_hosts(
    client: &kube::Client,
    scope: Option<&str>,
    only: &[DnsName],
) -> Result<Vec<HostStatus>, Error> {
    let client = client.clone();
    let selector = match only {
        [] => format!("{MANAGED_BY_LABEL}={MANAGER}"),
        hosts => {
            let slugs: BTreeSet<String> = hosts.iter().map(slug).collect();
            format!(
                "{MANAGED_BY_LABEL}={MANAGER},{HOST_LABEL} in ({})",
                slugs.into_iter().collect::<Vec<_>>().join(",")
            )
        }
    };
    let ours = from_cache(ListParams::default().labels(&selector));
    let apirules = async {
        match detect::apirule_served(&client).await? {
            true => list::<APIRule>(&client, scope, &ours).await,
            false => Ok(Vec::new()),
        }
    };
    let (entries, gateways, services, apirules, subset_rules) = tokio::try_join!(
        list::<ServiceEntry>(&client, scope, &ours),
        list::<Gateway>(&client, scope, &ours),
        list::<VirtualService>(&client, scope, &ours),
        apirules,
        list::<DestinationRule>(&client, scope, &ours),
    )?;
    let mut hosts: BTreeMap<(String, String), HostStatus> = BTreeMap::new();
    let mut add = |labels: &BTreeMap<String, String>,
                   annotations: &BTreeMap<String, String>,
                   ns: &str,
                   object: String| {
        let slug = labels.get(HOST_LABEL)?;
        let host = annotations
            .get(HOST_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| slug.clone());
        let side = match labels.get(COMPONENT_LABEL).map(String::as_str) {
            Some("expose") => "target",
            _ => "client",
        };
        let entry = hosts
            .entry((host.clone(), ns.to_string()))
            .or_insert_with(|| HostStatus {
                host,
                namespace: ns.to_string(),
                side: side.to_string(),
                ..Default::default()
            });
        entry.objects.push(object);
        Some(slug.clone())
    };
    for se in &entries {
        add(
            se.labels(),
            se.annotations(),
            &se.namespace().unwrap_or_default(),
            format!("serviceentry/{}", se.name_any()),
        );
    }
    for gw in &gateways {
        add(
            gw.labels(),
            gw.annotations(),
            &gw.namespace().unwrap_or_default(),
            format!("gateway/{}", gw.name_any()),
        );
    }
    for vs in &services {
        add(
            vs.labels(),
            vs.annotations(),
            &vs.namespace().unwrap_or_default(),
            format!("virtualservice/{}", vs.name_any()),
        );
    }
    for rule in &apirules {
        add(
            rule.labels(),
            rule.annotations(),
            &rule.namespace().unwrap_or_default(),
            format!("apirule/{}", rule.name_any()),
        );
    }
    // Origination rules (annotated with the client namespace they serve) belong to the client
    // rows, not to rows of the gateway's namespace.
    let is_origination = |d: &DestinationRule| {
        d.namespace().as_deref() == Some(ISTIO_NAMESPACE)
            || d.annotations().contains_key(CLIENT_NAMESPACE_ANNOTATION)
    };
    for dr in subset_rules.iter().filter(|d| !is_origination(d)) {
        add(
            dr.labels(),
            dr.annotations(),
            &dr.namespace().unwrap_or_default(),
            format!("destinationrule/{}", dr.name_any()),
        );
    }
    let wanted: BTreeSet<String> = only.iter().map(ToString::to_string).collect();
    let mut rows: Vec<HostStatus> = hosts
        .into_values()
        .filter(|row| wanted.is_empty() || wanted.contains(&row.host))
        .collect();

    // The egress gateway of each client row: the Service its subset rule routes to.
    let client_gateways: Vec<Option<GatewayWorkload>> = rows
        .iter()
        .map(|row| {
            (row.side == "client").then(|| {
                subset_rules
                    .iter()
                    .filter(|d| !is_origination(d))
                    .find(|d| {
                        d.namespace().as_deref() == Some(&row.namespace)
                            && d.annotations().get(HOST_ANNOTATION) == Some(&row.host)
                    })
                    .and_then(|d| {
                        GatewayWorkload::from_service_host(
                            GatewayRole::Egress,
                            &d.spec.host,
                            GatewayWorkload::default_egress().selector,
                        )
                    })
                    .unwrap_or_else(GatewayWorkload::default_egress)
            })
        })
        .collect();
    // Origination rules live in the egress gateway's namespace; each namespace's and each
    // gateway's Deployment read once, all together.
    let gateway_namespaces: BTreeSet<String> = client_gateways
        .iter()
        .flatten()
        .map(|g| g.namespace.clone())
        .collect();
    let mut distinct_gateways: Vec<&GatewayWorkload> = Vec::new();
    for gateway in client_gateways.iter().flatten() {
        if !distinct_gateways
            .iter()
            .any(|g| g.namespace == gateway.namespace && g.name == gateway.name)
        {
            distinct_gateways.push(gateway);
        }
    }
    let (originations, ready) = tokio::try_join!(
        futures::future::try_join_all(gateway_namespaces.iter().map(|ns| {
            let client = &client;
            let ours = &ours;
            async move {
                let found = list::<DestinationRule>(client, Some(ns), ours).await?;
                Ok::<_, ClusterError>((ns.clone(), found))
            }
        })),
        futures::future::try_join_all(distinct_gateways.iter().map(|gateway| {
            let client = &client;
            async move {
                let available = gateway_deployment(client, gateway)
                    .await?
                    .as_ref()
                    .is_some_and(deployment_available);
                Ok::<_, ClusterError>((
                    (gateway.namespace.clone(), gateway.name.clone()),
                    available,
                ))
            }
        })),
    )?;
    let originations: BTreeMap<String, Vec<DestinationRule>> = originations.into_iter().collect();
    let ready: BTreeMap<(String, String), bool> = ready.into_iter().collect();

    let mut deployments: Option<Vec<Deployment>> = None;
    // The Secret each row's credential must be: (row, namespace, name).
    let mut secrets: Vec<(usize, String, String)> = Vec::new();
    for (index, (row, gateway)) in rows.iter_mut().zip(&client_gateways).enumerate() {
        if let Some(gateway) = gateway {
            let gateway_ns = gateway.namespace.clone();
            let origination = originations[&gateway_ns]
                .iter()
                .find(|d| d.annotations().get(HOST_ANNOTATION) == Some(&row.host));
            match origination {
                Some(dr) => {
                    row.objects
                        .push(format!("destinationrule/{} ({gateway_ns})", dr.name_any()));
                    row.credential = dr
                        .spec
                        .traffic_policy
                        .as_ref()
                        .and_then(|t| t.port_level_settings.first())
                        .and_then(|p| p.tls.as_ref())
                        .and_then(|t| t.credential_name.clone());
                }
                None => row
                    .problems
                    .push(format!("no origination DestinationRule in {gateway_ns}")),
            }
            row.hop = gateways
                .iter()
                .find(|g| {
                    g.namespace().as_deref() == Some(&row.namespace)
                        && g.annotations().get(HOST_ANNOTATION) == Some(&row.host)
                })
                .map(
                    |g| match g.spec.servers.first().and_then(|s| s.tls.as_ref()) {
                        Some(tls) if tls.mode == "ISTIO_MUTUAL" => "istio-mutual".to_string(),
                        _ => "plain".to_string(),
                    },
                );
            if !ready[&(gateway.namespace.clone(), gateway.name.clone())] {
                row.problems.push("egress gateway not Available".into());
            }
            row.secret_namespace = gateway_ns;
        } else {
            let gateway = gateways.iter().find(|g| {
                g.namespace().as_deref() == Some(&row.namespace)
                    && g.annotations().get(HOST_ANNOTATION) == Some(&row.host)
            });
            row.credential = gateway
                .and_then(|g| g.spec.servers.first())
                .and_then(|s| s.tls.as_ref())
                .and_then(|t| t.credential_name.clone());
            if let Some(g) = gateway {
                match ingress_namespace(&client, &g.spec.selector, &mut deployments).await? {
                    Some(ns) => row.secret_namespace = ns,
                    None => {
                        let selector = GatewaySelector::from_pairs(
                            g.spec
                                .selector
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str())),
                        );
                        row.problems.push(format!(
                            "no ingress gateway Deployment runs pods labelled {selector}"
                        ));
                        continue;
                    }
                }
            }
        }
        if let Some(name) = row.credential.clone() {
            secrets.push((index, row.secret_namespace.clone(), name));
        }
    }

    // Each credential Secret once, however many hosts name it.
    let distinct: BTreeSet<(String, String)> = secrets
        .iter()
        .map(|(_, ns, name)| (ns.clone(), name.clone()))
        .collect();
    let found: BTreeMap<(String, String), Option<Secret>> =
        stream::iter(distinct.into_iter().map(|(ns, name)| {
            let client = &client;
            async move {
                let secret = get_opt::<Secret>(client, &ns, &name).await?;
                Ok::<_, ClusterError>(((ns, name), secret))
            }
        }))
        .buffered(DEFAULT_MAX_IN_FLIGHT)
        .try_collect()
        .await?;
    let now = time::OffsetDateTime::now_utc();
    for (index, ns, name) in secrets {
        let row = &mut rows[index];
        let secret = &found[&(ns.clone(), name.clone())];
        row.credential_present = secret.is_some();
        if let Some(secret) = secret {
            credential_expiry::record(row, secret, now);
        }
        if !row.credential_present {
            row.problems.push(format!("secret {ns}/{name} missing"));
        }
    }
    Ok(rows)
}

fn render(
    rows: &[HostStatus],
    scope: Option<&str>,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), Error> {
    write_output(out, output, rows, |out| {
        if rows.is_empty() {
            writeln!(
                out,
                "No hosts managed by kubectl-mtls{}.",
                scope
                    .map(|n| format!(" in namespace {n}"))
                    .unwrap_or_default()
            )?;
            return Ok(());
        }
        let mut table = Table::new([
            "HOST",
            "NAMESPACE",
            "SIDE",
            "HOP",
            "OBJECTS",
            "CREDENTIAL",
            "READY",
        ]);
        for r in rows {
            table.row([
                r.host.clone(),
                r.namespace.clone(),
                r.side.clone(),
                r.hop.clone().unwrap_or_else(|| "-".into()),
                r.objects.len().to_string(),
                r.credential.clone().unwrap_or_else(|| "-".into()),
                if r.problems.is_empty() {
                    "yes".to_string()
                } else {
                    format!("no: {}", r.problems.join("; "))
                },
            ]);
        }
        write!(out, "{table}")?;
        Ok(())
    })
}
