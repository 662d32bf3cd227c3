//! `kubectl mtls-egress disable`: remove exactly what `enable` (or `expose`) made for one or
//! several hosts in a namespace; the hosts' objects in the egress gateway's namespace
//! (istio-system for istioctl's and Kyma's gateway; read from the subset DestinationRule's host,
//! else `--gateway-namespace`, else the gateway found) only when no other namespace still routes
//! the host.
//!
//! Several hosts are one run: one set of reads (one list per kind and namespace, selected by the
//! hosts' labels), one plan of deletions that the server checks whole (`dryRun=All`) before the
//! first is sent ([`super::removal`]), and the per-object report of each host in order.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{DynamicObject, ListParams};
use kube::core::ApiResource;

use shared::cli::{ApplyArgs, DryRun, GlobalArgs, apply_and_print};
use shared::cluster::detect::find_gateway;
use shared::cluster::{
    ApplyMode, ClusterError, DEFAULT_MAX_IN_FLIGHT, apply_limited, display_kind, list_dynamic,
};
use shared::error::Error;
use shared::gateway::{GatewayArgs, GatewayRole, GatewayWorkload};
use shared::manifest::egress::{ACCESS_LOG_COMPONENT, egress_gateway_off};
use shared::manifest::host::{HOST_LABEL, slug};
use shared::manifest::{COMPONENT_LABEL, ISTIO_NAMESPACE, MANAGED_BY_LABEL, MANAGER};
use shared::names::DnsName;
use shared::plan::Plan;
use shared::resources::{
    APIRule, AuthorizationPolicy, DestinationRule, Gateway, ServiceEntry, Telemetry, VirtualService,
};

use super::detect;
use super::detect::from_cache;
use super::hosts::{Wildcards, required_hosts};
use super::in_use::RoutingNamespaces;
use super::removal::{self, Removal};

/// Remove what enable/expose created for --host (by label; nothing else is touched)
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Deletes the objects labelled app.kubernetes.io/managed-by=kubectl-mtls and kubectl-mtls/host=<host>
in the namespace, and in the egress gateway's namespace unless another namespace still routes the
host (they are reported as kept); the shared access-log Telemetry goes with the last host. The
gateway's namespace is --gateway-namespace when given, else the one the host's subset
DestinationRule routes to (istio-system for istioctl's and Kyma's gateway), else the egress gateway
found on the cluster.
The Istio CR's egress gateway setting stays unless --egress-gateway is given.
Several hosts (--host repeated, or --hosts-file) are one run: one set of reads, and the server
checks every deletion (dryRun=All) before the first is sent (one refused: nothing is deleted),
with at most --max-in-flight requests at a time; each host's objects are reported in turn.

Examples:
  kubectl mtls-egress disable --host httpbin.example.com -n mtls-demo --dry-run=server
  kubectl mtls-egress disable --host httpbin.example.com -n mtls-demo --egress-gateway
  kubectl mtls-egress disable --hosts-file partners.txt -n payments"
)]
#[command(group(clap::ArgGroup::new("hosts").required(true).multiple(true).args(["host", "hosts_file"])))]
pub struct DisableArgs {
    /// The host enable was run for; repeat it for several hosts
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// A file of hosts, one per line (blank lines and lines starting with # are skipped), in addition to --host
    #[arg(long, value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// At most this many API requests in flight while deleting
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_IN_FLIGHT as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_in_flight: u16,
    /// Also switch the Kyma egress gateway off (spec.components.egressGateway.enabled: false)
    #[arg(long)]
    pub egress_gateway: bool,
    /// The namespace of the egress gateway pods [default: where the host's objects say]
    #[arg(long, value_name = "NS")]
    pub gateway_namespace: Option<String>,
    /// --dry-run=server checks each deletion on the server without deleting; -o for the Istio CR patch.
    #[command(flatten)]
    pub apply: ApplyArgs,
}

impl DisableArgs {
    /// The hosts of `--host` and `--hosts-file`, in order.
    pub fn hosts(&self) -> Result<Vec<DnsName>, Error> {
        required_hosts(&self.host, self.hosts_file.as_deref(), Wildcards::Allowed)
    }
}

/// The kinds `enable`/`expose` create per host in the namespace, in the order they are deleted.
fn per_host_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<VirtualService>(&()),
        ApiResource::erase::<APIRule>(&()),
        ApiResource::erase::<Gateway>(&()),
        ApiResource::erase::<DestinationRule>(&()),
        ApiResource::erase::<ServiceEntry>(&()),
    ]
}

/// The kinds `enable` creates per host in the egress gateway's namespace: shared by the host's
/// one client namespace, so they stay while another namespace still routes the host.
fn per_host_istio_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<DestinationRule>(&()),
        ApiResource::erase::<AuthorizationPolicy>(&()),
    ]
}

/// Runs `disable`.
pub async fn run(
    args: &DisableArgs,
    global: &GlobalArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let hosts = args.hosts()?;
    if args.apply.dry_run == DryRun::Client {
        return Err(Error::Usage(
            "disable deletes by label on the cluster; use --dry-run=server to see what it would delete".into(),
        ));
    }
    let (client, namespace) = global.kube.connect().await?;
    execute_all(&client, &namespace, &hosts, args, out, err).await
}

/// `disable` of one host against a connected cluster.
pub async fn execute(
    client: &kube::Client,
    namespace: &str,
    host: &DnsName,
    args: &DisableArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    execute_all(
        client,
        namespace,
        std::slice::from_ref(host),
        args,
        out,
        err,
    )
    .await
}

/// `disable` of several hosts against a connected cluster: one set of reads, the server's check
/// of every deletion (and of the Istio CR patch of `--egress-gateway`) before the first is sent.
pub async fn execute_all(
    client: &kube::Client,
    namespace: &str,
    hosts: &[DnsName],
    args: &DisableArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let dry_run = args.apply.dry_run == DryRun::Server;
    let limit = usize::from(args.max_in_flight);
    let kyma = async {
        match args.egress_gateway {
            true => detect::kyma_istio(client).await,
            false => Ok(None),
        }
    };
    let (plan, kyma) = tokio::try_join!(
        RemovalPlan::read(client, namespace, hosts, args.gateway_namespace.as_deref()),
        kyma
    )?;
    let patch = match &kyma {
        Some((ns, name)) => {
            let mut patch = Plan::new();
            patch.push(&egress_gateway_off(ns, name))?;
            Some(patch)
        }
        None => None,
    };
    let check_patch = async {
        match (&patch, dry_run) {
            (Some(patch), false) => {
                let mode = ApplyMode::DryRunServer {
                    force_conflicts: args.apply.force_conflicts,
                };
                apply_limited(client, patch, mode, &args.apply.field_manager, limit)
                    .await
                    .map(|_| ())
                    .map_err(Error::from)
            }
            _ => Ok::<(), Error>(()),
        }
    };
    let (report, ()) = tokio::try_join!(plan.send(client, dry_run, limit), check_patch)?;
    print_report(namespace, &report, out)?;
    match patch {
        Some(patch) => apply_and_print(client, &patch, &args.apply, out).await?,
        None if args.egress_gateway => writeln!(
            err,
            "note: not Kyma: the egress gateway is not ours to switch off; left as it is"
        )?,
        None => {}
    }
    Ok(())
}

/// Prints each host's lines in turn (a host with none: that nothing is managed for it), then
/// those of the objects the hosts shared.
fn print_report(namespace: &str, report: &Report, out: &mut dyn Write) -> Result<(), Error> {
    for (host, lines) in &report.hosts {
        if lines.is_empty() {
            writeln!(
                out,
                "nothing managed by kubectl-mtls for {host} in {namespace}"
            )?;
        }
        for line in lines {
            writeln!(out, "{line}")?;
        }
    }
    for line in &report.shared {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Deletes (with `dry_run`, server-checks the deletion of) what `enable` and `expose` made for
/// `host` in `namespace`, as [`RemovalPlan`] decides; returns one kubectl-style line per object.
pub(crate) async fn delete_host(
    client: &kube::Client,
    namespace: &str,
    host: &DnsName,
    gateway_ns: Option<&str>,
    dry_run: bool,
) -> Result<Vec<String>, Error> {
    let plan = RemovalPlan::read(client, namespace, std::slice::from_ref(host), gateway_ns).await?;
    let report = plan.send(client, dry_run, DEFAULT_MAX_IN_FLIGHT).await?;
    Ok(report
        .hosts
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .chain(report.shared)
        .collect())
}

/// One step of a removal: an object to delete, or one kept (the line says why).
#[derive(Debug)]
enum Step {
    Delete(Removal),
    Kept(String),
}

/// What a run deletes and keeps, per host, before anything is sent.
#[derive(Debug)]
pub(crate) struct RemovalPlan {
    hosts: Vec<(DnsName, Vec<Step>)>,
    /// Objects the hosts share (the access-log Telemetry, with the last host).
    shared: Vec<Step>,
    /// The access-log Telemetry, deleted after the hosts' objects when by then no ServiceEntry
    /// of ours is left on the cluster.
    if_last: Vec<Removal>,
}

/// The lines of a sent [`RemovalPlan`].
#[derive(Debug)]
struct Report {
    hosts: Vec<(DnsName, Vec<String>)>,
    shared: Vec<String>,
}

/// `managed-by=kubectl-mtls` and the host label of one of `slugs`.
fn hosts_selector(slugs: &[String]) -> String {
    format!(
        "{MANAGED_BY_LABEL}={MANAGER},{HOST_LABEL} in ({})",
        slugs.join(",")
    )
}

/// The objects of each kind of `kinds` in `namespace` labelled for one of `slugs`, sent together.
async fn list_kinds(
    client: &kube::Client,
    kinds: &[ApiResource],
    namespace: &str,
    slugs: &[String],
) -> Result<Vec<Vec<DynamicObject>>, ClusterError> {
    let params = from_cache(ListParams::default().labels(&hosts_selector(slugs)));
    futures::future::try_join_all(
        kinds
            .iter()
            .map(|kind| list_dynamic(client, kind, Some(namespace), &params)),
    )
    .await
}

/// Whether `object` carries the host label `slug`.
fn labelled(object: &DynamicObject, slug: &str) -> bool {
    object.labels().get(HOST_LABEL).is_some_and(|v| v == slug)
}

/// The objects of the gateway's namespace (the kinds of [`per_host_istio_kinds`]) and its
/// access-log Telemetry.
struct GatewayNamespaceObjects {
    per_host: Vec<Vec<DynamicObject>>,
    telemetry: Vec<DynamicObject>,
}

impl GatewayNamespaceObjects {
    async fn read(
        client: &kube::Client,
        namespace: &str,
        slugs: &[String],
    ) -> Result<Self, ClusterError> {
        let access_log = ListParams::default().labels(&format!(
            "{MANAGED_BY_LABEL}={MANAGER},{COMPONENT_LABEL}={ACCESS_LOG_COMPONENT}"
        ));
        let telemetry = ApiResource::erase::<Telemetry>(&());
        let kinds = per_host_istio_kinds();
        let (per_host, telemetry) = tokio::try_join!(
            list_kinds(client, &kinds, namespace, slugs),
            list_dynamic(client, &telemetry, Some(namespace), &access_log),
        )?;
        Ok(Self {
            per_host,
            telemetry,
        })
    }
}

impl RemovalPlan {
    /// Reads what `disable` of `hosts` in `namespace` removes, in one round of requests sent
    /// together (a second only when a host's egress gateway runs outside the namespace expected,
    /// `gateway_flag` or istio-system): the namespace (it must exist, or a typo would report
    /// "nothing to delete" as success), whether APIRules are served, the hosts' objects of each
    /// kind in the namespace and in the egress gateway's namespace, which other namespaces route
    /// the hosts, and whether any other host of ours is left (the access-log Telemetry serves
    /// every host: it goes with the last one; a user who may not list ServiceEntries across
    /// namespaces cannot tell, so then it stays).
    pub(crate) async fn read(
        client: &kube::Client,
        namespace: &str,
        hosts: &[DnsName],
        gateway_flag: Option<&str>,
    ) -> Result<Self, Error> {
        if let Some(ns) = gateway_flag {
            GatewayArgs {
                gateway_namespace: Some(ns.to_string()),
                gateway_selector: None,
            }
            .validate()?;
        }
        let slugs: Vec<String> = {
            let mut seen = BTreeSet::new();
            hosts
                .iter()
                .map(slug)
                .filter(|s| seen.insert(s.clone()))
                .collect()
        };
        let expected_ns = gateway_flag.unwrap_or(ISTIO_NAMESPACE).to_string();
        let entries = ApiResource::erase::<ServiceEntry>(&());
        let namespace_exists = async {
            shared::cluster::get_cluster_opt::<Namespace>(client, namespace)
                .await
                .map(|n| n.is_some())
        };
        let per_host = async {
            let kinds = [
                ApiResource::erase::<VirtualService>(&()),
                ApiResource::erase::<Gateway>(&()),
                ApiResource::erase::<DestinationRule>(&()),
                ApiResource::erase::<ServiceEntry>(&()),
            ];
            let (apirule, mut listed) = tokio::try_join!(
                detect::apirule_served(client),
                list_kinds(client, &kinds, namespace, &slugs),
            )?;
            let apirules = match apirule {
                true => {
                    let params = from_cache(ListParams::default().labels(&hosts_selector(&slugs)));
                    let kind = ApiResource::erase::<APIRule>(&());
                    list_dynamic(client, &kind, Some(namespace), &params).await?
                }
                false => Vec::new(),
            };
            listed.insert(1, apirules);
            Ok::<_, ClusterError>(listed)
        };
        let routing = RoutingNamespaces::read(client, hosts);
        // Every ServiceEntry of ours for these hosts, and whether one of another host exists.
        let these = async {
            let params = from_cache(ListParams::default().labels(&hosts_selector(&slugs)));
            match list_dynamic(client, &entries, None, &params).await {
                Ok(found) => Ok(Some(found)),
                Err(ClusterError::Forbidden { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let others_left = async {
            let params = ListParams::default()
                .labels(&format!(
                    "{MANAGED_BY_LABEL}={MANAGER},{HOST_LABEL} notin ({})",
                    slugs.join(",")
                ))
                .limit(1);
            match list_dynamic(client, &entries, None, &params).await {
                Ok(found) => Ok(Some(!found.is_empty())),
                Err(ClusterError::Forbidden { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let expected = GatewayNamespaceObjects::read(client, &expected_ns, &slugs);
        let (exists, per_host, routing, these, others_left, expected) = tokio::try_join!(
            namespace_exists,
            per_host,
            routing,
            these,
            others_left,
            expected
        )?;
        if !exists {
            return Err(Error::State(format!("namespace {namespace} not found")));
        }

        // The egress gateway's namespace of each host: the flag; else the Service its subset
        // DestinationRule routes to; else the egress gateway found on the cluster (read once).
        let subset_rules = &per_host[3];
        let mut found_gateway: Option<String> = None;
        let mut gateway_namespaces = Vec::with_capacity(hosts.len());
        for host in hosts {
            let ns = match gateway_flag {
                Some(ns) => ns.to_string(),
                None => match subset_rules
                    .iter()
                    .filter(|d| labelled(d, &slug(host)))
                    .find_map(subset_gateway_namespace)
                {
                    Some(ns) => ns,
                    None => match &found_gateway {
                        Some(ns) => ns.clone(),
                        None => {
                            let ns = gateway_found(client).await?;
                            found_gateway = Some(ns.clone());
                            ns
                        }
                    },
                },
            };
            gateway_namespaces.push(ns);
        }
        let mut in_gateway_ns: BTreeMap<String, GatewayNamespaceObjects> = BTreeMap::new();
        in_gateway_ns.insert(expected_ns, expected);
        for ns in &gateway_namespaces {
            if !in_gateway_ns.contains_key(ns) {
                let objects = GatewayNamespaceObjects::read(client, ns, &slugs).await?;
                in_gateway_ns.insert(ns.clone(), objects);
            }
        }

        let kinds = per_host_kinds();
        let istio_kinds = per_host_istio_kinds();
        let mut planned: BTreeSet<(String, String, String)> = BTreeSet::new();
        let mut delete = |steps: &mut Vec<Step>, kind: &ApiResource, object: &DynamicObject| {
            let ns = object.namespace().unwrap_or_default();
            if planned.insert((kind.kind.clone(), ns.clone(), object.name_any())) {
                steps.push(Step::Delete(Removal {
                    resource: kind.clone(),
                    namespace: ns,
                    name: object.name_any(),
                }));
            }
        };
        let mut planned_hosts = Vec::with_capacity(hosts.len());
        for (index, (host, gateway_ns)) in hosts.iter().zip(&gateway_namespaces).enumerate() {
            let host_slug = slug(host);
            let mut steps = Vec::new();
            for (kind, objects) in kinds.iter().zip(&per_host) {
                for object in objects.iter().filter(|o| labelled(o, &host_slug)) {
                    delete(&mut steps, kind, object);
                }
            }
            let kept_for = routing
                .others_for(client, index, host, namespace, gateway_ns)
                .await?;
            for (kind, objects) in istio_kinds.iter().zip(&in_gateway_ns[gateway_ns].per_host) {
                for object in objects.iter().filter(|o| labelled(o, &host_slug)) {
                    if kept_for.is_empty() {
                        delete(&mut steps, kind, object);
                    } else {
                        steps.push(Step::Kept(format!(
                            "{}/{} kept: namespace {} still routes {host} through the egress gateway",
                            display_kind(kind),
                            object.name_any(),
                            kept_for.join(", ")
                        )));
                    }
                }
            }
            planned_hosts.push((host.clone(), steps));
        }

        // The last host takes the access-log Telemetry of its gateway's namespace with it: no
        // ServiceEntry of ours for another host, nor for these hosts in another namespace.
        let last = others_left == Some(false)
            && these.is_some_and(|entries| {
                entries
                    .iter()
                    .all(|e| e.namespace().as_deref() == Some(namespace))
            });
        let mut telemetries = Vec::new();
        let telemetry = ApiResource::erase::<Telemetry>(&());
        let namespaces: BTreeSet<&String> = gateway_namespaces.iter().collect();
        for ns in namespaces {
            for object in &in_gateway_ns[ns].telemetry {
                delete(&mut telemetries, &telemetry, object);
            }
        }
        let (shared, if_last) = match (last, others_left) {
            (true, _) => (telemetries, Vec::new()),
            // Another host's ServiceEntry was there: it may be going in a disable that runs
            // alongside, so whether this run's hosts were the last is read again once they are
            // gone (one request), or two runs would each leave the Telemetry to the other.
            (false, Some(true)) => (Vec::new(), telemetries),
            (false, _) => (Vec::new(), Vec::new()),
        };
        let if_last = if_last
            .into_iter()
            .filter_map(|step| match step {
                Step::Delete(removal) => Some(removal),
                Step::Kept(_) => None,
            })
            .collect();
        Ok(Self {
            hosts: planned_hosts,
            shared,
            if_last,
        })
    }

    /// The objects to delete, in report order.
    fn removals(&self) -> Vec<Removal> {
        self.hosts
            .iter()
            .flat_map(|(_, steps)| steps)
            .chain(&self.shared)
            .filter_map(|step| match step {
                Step::Delete(removal) => Some(removal.clone()),
                Step::Kept(_) => None,
            })
            .collect()
    }

    /// Sends the plan: the server's check of every deletion, then (unless `dry_run`) the
    /// deletions, at most `limit` requests in flight; returns the lines of each host and of the
    /// shared objects (an object gone in the meantime has none).
    async fn send(
        self,
        client: &kube::Client,
        dry_run: bool,
        limit: usize,
    ) -> Result<Report, Error> {
        let removals = self.removals();
        let mut lines = removal::check(client, &removals, limit).await?;
        let mut after = Vec::new();
        if !dry_run {
            lines = removal::delete_checked(client, &removals, limit).await?;
            if !self.if_last.is_empty() && no_entry_of_ours_left(client).await? {
                after = removal::delete_checked(client, &self.if_last, limit).await?;
            }
        }
        let mut lines = lines.into_iter();
        let mut report_of = |steps: Vec<Step>| -> Vec<String> {
            steps
                .into_iter()
                .filter_map(|step| match step {
                    Step::Delete(_) => lines.next().flatten(),
                    Step::Kept(line) => Some(line),
                })
                .collect()
        };
        let hosts = self
            .hosts
            .into_iter()
            .map(|(host, steps)| (host, report_of(steps)))
            .collect();
        let mut shared = report_of(self.shared);
        shared.extend(after.into_iter().flatten());
        Ok(Report { hosts, shared })
    }
}

/// Whether no ServiceEntry of ours is left on the cluster (one request, for at most one); `false`
/// when the user may not list them across namespaces.
async fn no_entry_of_ours_left(client: &kube::Client) -> Result<bool, ClusterError> {
    let params = ListParams::default()
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"))
        .limit(1);
    let entries = ApiResource::erase::<ServiceEntry>(&());
    match list_dynamic(client, &entries, None, &params).await {
        Ok(found) => Ok(found.is_empty()),
        Err(ClusterError::Forbidden { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The namespace of the egress gateway Service the subset DestinationRule `rule` routes to.
fn subset_gateway_namespace(rule: &DynamicObject) -> Option<String> {
    let host = rule.data.pointer("/spec/host")?.as_str()?;
    GatewayWorkload::from_service_host(
        GatewayRole::Egress,
        host,
        GatewayWorkload::default_egress().selector,
    )
    .map(|g| g.namespace)
}

/// The namespace of the egress gateway found on the cluster (Kyma's when Kyma runs), else
/// istio-system.
async fn gateway_found(client: &kube::Client) -> Result<String, Error> {
    let kyma = detect::kyma_istio_cr(client).await?.is_some();
    Ok(
        find_gateway(client, GatewayRole::Egress, &GatewayArgs::default(), kyma)
            .await
            .map(|(g, _)| g.namespace)
            .unwrap_or_else(|_| ISTIO_NAMESPACE.to_string()),
    )
}
