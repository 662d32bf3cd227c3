//! `kubectl mtls-egress status`: the hosts we manage, their objects, and whether they can work.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::ListParams;
use serde::Serialize;

use k8s_openapi::api::apps::v1::Deployment;
use shared::cli::{ExpiryArgs, GlobalArgs, OutputFormat, Table, write_output};
use shared::cluster::detect::{deployment_available, gateway_deployment};
use shared::cluster::{ClusterError, get_opt, list};
use shared::error::Error;
use shared::gateway::{GatewayRole, GatewaySelector, GatewayWorkload};
use shared::manifest::ISTIO_NAMESPACE;
use shared::manifest::credential_state::CredentialState;
use shared::manifest::host::{CLIENT_NAMESPACE_ANNOTATION, HOST_ANNOTATION, HOST_LABEL};
use shared::manifest::{COMPONENT_LABEL, MANAGED_BY_LABEL, MANAGER};
use shared::resources::{APIRule, DestinationRule, Gateway, ServiceEntry, VirtualService};

use super::{credential_expiry, detect};

/// List the hosts kubectl-mtls manages, their objects and readiness
#[derive(clap::Args, Debug)]
#[command(
    after_help = "A credential certificate that expires within --expiry-warning (default 30d) is named on stderr
(warning); an expired one makes its host not ready (error).

Examples:
  kubectl mtls-egress status -n mtls-demo
  kubectl mtls-egress status -A -o json
  kubectl mtls-egress status -A --expiry-warning 60d"
)]
pub(crate) struct StatusArgs {
    /// All namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
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
    let (client, namespace) = global.kube.connect().await?;
    let scope = (!args.all_namespaces).then_some(namespace.as_str());
    let rows = collect(&client, scope).await?;
    render(&rows, scope, args.output, out)?;
    let now = time::OffsetDateTime::now_utc();
    Ok(credential_expiry::warn(
        &rows,
        now,
        args.expiry.expiry_warning,
        err,
    )?)
}

/// Reads every managed host in `scope` (a namespace, or all for `None`).
pub async fn collect(client: &kube::Client, scope: Option<&str>) -> Result<Vec<HostStatus>, Error> {
    let client = client.clone();
    let ours = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
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
    for se in list::<ServiceEntry>(&client, scope, &ours).await? {
        add(
            se.labels(),
            se.annotations(),
            &se.namespace().unwrap_or_default(),
            format!("serviceentry/{}", se.name_any()),
        );
    }
    let gateways = list::<Gateway>(&client, scope, &ours).await?;
    for gw in &gateways {
        add(
            gw.labels(),
            gw.annotations(),
            &gw.namespace().unwrap_or_default(),
            format!("gateway/{}", gw.name_any()),
        );
    }
    for vs in list::<VirtualService>(&client, scope, &ours).await? {
        add(
            vs.labels(),
            vs.annotations(),
            &vs.namespace().unwrap_or_default(),
            format!("virtualservice/{}", vs.name_any()),
        );
    }
    if detect::apirule_served(&client).await? {
        for rule in list::<APIRule>(&client, scope, &ours).await? {
            add(
                rule.labels(),
                rule.annotations(),
                &rule.namespace().unwrap_or_default(),
                format!("apirule/{}", rule.name_any()),
            );
        }
    }
    let subset_rules = list::<DestinationRule>(&client, scope, &ours).await?;
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
    // Origination rules live in the egress gateway's namespace, which the subset rule's host
    // (the gateway's Service) names; attach them to the host's client entries.
    let mut originations: BTreeMap<String, Vec<DestinationRule>> = BTreeMap::new();
    let mut ready: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut deployments: Option<Vec<Deployment>> = None;
    let mut rows: Vec<HostStatus> = hosts.into_values().collect();
    for row in &mut rows {
        if row.side == "client" {
            let gateway = subset_rules
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
                .unwrap_or_else(GatewayWorkload::default_egress);
            let gateway_ns = gateway.namespace.clone();
            if !originations.contains_key(&gateway_ns) {
                let found = list::<DestinationRule>(&client, Some(&gateway_ns), &ours).await?;
                originations.insert(gateway_ns.clone(), found);
            }
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
            let key = (gateway.namespace.clone(), gateway.name.clone());
            if !ready.contains_key(&key) {
                let available = gateway_deployment(&client, &gateway)
                    .await?
                    .as_ref()
                    .is_some_and(deployment_available);
                ready.insert(key.clone(), available);
            }
            if !ready[&key] {
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
            let ns = row.secret_namespace.clone();
            let secret = get_opt::<Secret>(&client, &ns, &name).await?;
            row.credential_present = secret.is_some();
            if let Some(secret) = &secret {
                credential_expiry::record(row, secret, time::OffsetDateTime::now_utc());
            }
            if !row.credential_present {
                row.problems.push(format!("secret {ns}/{name} missing"));
            }
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
