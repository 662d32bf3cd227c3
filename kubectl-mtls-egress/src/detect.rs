//! What `expose` and `enable` need to know about a cluster before they plan: Kyma or plain Istio,
//! the egress gateway, APIRule support, DestinationRules that would take the place of ours — and
//! the waits after applying. Decisions are pure functions ([`choose_istio_cr`] here,
//! [`shared::precedence`] for the DestinationRules); the rest reads.

use std::io::Write;
use std::time::{Duration, Instant};

use kube::api::ListParams;
use kube::{Client, ResourceExt};

use k8s_openapi::api::core::v1::ConfigMap;
use shared::cluster::detect::{
    deployment_available, find_gateway, gateway_deployment, kyma_istio_crs,
};
use shared::cluster::served;
use shared::cluster::{ClusterError, get_opt, list};
use shared::error::Error;
use shared::gateway::{GatewayArgs, GatewayRole, GatewaySelector, GatewayWorkload};
use shared::manifest::ISTIO_NAMESPACE;
use shared::manifest::egress::kept_access_logging;
use shared::manifest::host::{HOST_LABEL, host_selector, slug};
use shared::names::DnsName;
use shared::precedence::{GatewayProxy, effective_origination};
use shared::resources::Telemetry;
use shared::resources::telemetry::AccessLogging;
use shared::resources::{APIRule, DestinationRule, Gateway, Istio};

/// Picks the one Kyma Istio CR to patch, or says why not.
pub(crate) fn choose_istio_cr(crs: &[Istio]) -> Result<(String, String), Error> {
    match crs {
        [] => Err(Error::State(
            "the Istio CRD of Kyma is installed but there is no Istio CR: add the Istio module (kyma-system/default) before enabling the egress gateway".into(),
        )),
        [one] => Ok((one.namespace().unwrap_or_default(), one.name_any())),
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
                .collect();
            Err(Error::State(format!(
                "there are {} Istio CRs ({}): Kyma reconciles only the oldest and marks the others Warning; delete the extra ones, then run enable again",
                several.len(),
                names.join(", ")
            )))
        }
    }
}

/// The Kyma Istio CR to switch the egress gateway on in, or `None` on plain Istio.
pub async fn kyma_istio(client: &Client) -> Result<Option<(String, String)>, Error> {
    match kyma_istio_crs(client).await? {
        Some(crs) => choose_istio_cr(&crs).map(Some),
        None => Ok(None),
    }
}

/// The Kyma Istio CR, if Kyma is installed and exactly one CR exists (read-only uses).
pub(crate) async fn kyma_istio_cr(client: &Client) -> Result<Option<Istio>, ClusterError> {
    Ok(match kyma_istio_crs(client).await? {
        Some(crs) if crs.len() == 1 => crs.into_iter().next(),
        _ => None,
    })
}

/// The ingress gateway `expose` binds its Gateway to, and the note that says which: Kyma's
/// default, or the one found on the cluster ([`find_gateway`]), as `flags` narrow it. When no
/// ingress gateway runs yet (and no flag names one), istioctl's labels in istio-system, with a
/// warning: like a missing Secret or Service, a gateway installed later makes the exposed host
/// work. Several are an error.
pub(crate) async fn ingress_gateway(
    client: &Client,
    flags: &GatewayArgs,
) -> Result<(GatewayWorkload, String), Error> {
    let kyma = kyma_istio_crs(client).await?.is_some();
    match find_gateway(client, GatewayRole::Ingress, flags, kyma).await {
        Err(Error::State(why))
            if flags.is_empty() && why.starts_with("no ingress gateway found") =>
        {
            let gateway = GatewayWorkload::default_ingress();
            let warning = format!(
                "warning: {why}; until then the Gateway selects istioctl's {}",
                gateway.describe()
            );
            Ok((gateway, warning))
        }
        other => other,
    }
}

/// The egress gateway `enable` routes through, and the note that says which: on Kyma (`kyma`)
/// its default, which `enable` switches on; elsewhere the one found ([`find_gateway`]).
pub(crate) async fn egress_gateway(
    client: &Client,
    flags: &GatewayArgs,
    kyma: bool,
) -> Result<(GatewayWorkload, String), Error> {
    find_gateway(client, GatewayRole::Egress, flags, kyma).await
}

/// The namespace of the gateway that serves `host` from `namespace` — where its credential
/// Secret and (egress) its origination rule, AuthorizationPolicy and access-log Telemetry are:
/// `flag` (`--gateway-namespace`) when given; else where the host's own objects say — the egress
/// gateway Service the subset DestinationRule routes to, or the ingress gateway pods the
/// `expose` Gateway selects (istio-system for istioctl's and Kyma's labels, else the namespace
/// of the Deployment whose pods carry them); else the gateway found on the cluster; else
/// istio-system.
pub(crate) async fn host_gateway_namespace(
    client: &Client,
    namespace: &str,
    host: &DnsName,
    role: GatewayRole,
    flag: Option<&str>,
) -> Result<String, Error> {
    if let Some(ns) = flag {
        GatewayArgs {
            gateway_namespace: Some(ns.to_string()),
            gateway_selector: None,
        }
        .validate()?;
        return Ok(ns.to_string());
    }
    let params = ListParams::default().labels(&host_selector(host));
    let found = match role {
        GatewayRole::Egress => list::<DestinationRule>(client, Some(namespace), &params)
            .await?
            .iter()
            .find_map(|d| {
                GatewayWorkload::from_service_host(
                    role,
                    &d.spec.host,
                    GatewayWorkload::default_egress().selector,
                )
            })
            .map(|g| g.namespace),
        GatewayRole::Ingress => {
            let selectors: Vec<GatewaySelector> = list::<Gateway>(client, Some(namespace), &params)
                .await?
                .iter()
                .map(|g| {
                    GatewaySelector::from_pairs(
                        g.spec
                            .selector
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str())),
                    )
                })
                .collect();
            match selectors.first() {
                None => None,
                Some(s) if *s == GatewayWorkload::default_ingress().selector => {
                    Some(ISTIO_NAMESPACE.to_string())
                }
                Some(s) => {
                    let flags = GatewayArgs {
                        gateway_namespace: None,
                        gateway_selector: Some(s.clone()),
                    };
                    find_gateway(client, role, &flags, false)
                        .await
                        .ok()
                        .map(|(g, _)| g.namespace)
                }
            }
        }
    };
    if let Some(ns) = found {
        return Ok(ns);
    }
    let kyma = kyma_istio_cr(client).await?.is_some();
    Ok(find_gateway(client, role, &GatewayArgs::default(), kyma)
        .await
        .map(|(g, _)| g.namespace)
        .unwrap_or_else(|_| ISTIO_NAMESPACE.to_string()))
}

/// `params` for a read before a plan, served from the API server's watch cache
/// (`resourceVersion=0`, `resourceVersionMatch=NotOlderThan`) instead of read through from etcd.
/// A list selected by label is still a range over every object of the kind in its scope when it
/// is read from etcd: on kube-apiserver 1.32 with 200 hosts' DestinationRules in istio-system,
/// 16-50 ms per list, against 1-3 ms from the cache (`bench/README.md`), and it grows with the
/// fleet. The cache may lag the latest write by moments; these reads only decide what to plan
/// and what to refuse, every write still goes through the server's dry run first, and the
/// decisions that must see the latest state (the access-log Telemetry after `disable`'s
/// deletions) read from etcd.
pub(crate) fn from_cache(params: ListParams) -> ListParams {
    params.match_any()
}

/// Whether the APIRule `v2` kind is served (Kyma's API Gateway module).
pub(crate) async fn apirule_served(client: &Client) -> Result<bool, ClusterError> {
    served::<APIRule>(client).await
}

/// The DestinationRules of the egress gateway's namespace `gateway_ns` that can matter to the
/// origination rules of `hosts`. Istio's lookup for a gateway proxy consults its own (config)
/// namespace first, and an exact private rule there wins over every other namespace
/// (istio/istio 1.30.3 `pilot/pkg/model/push_context.go`, `destinationRule`; see
/// [`shared::precedence`]): so only that namespace is read, and in it every rule except our
/// origination rules for *other* hosts — each is for its own exact host and cannot touch these
/// (two requests sent together: the rules without our host label, and ours for `hosts`). So
/// the read stays the same size however many partners the cluster has.
pub(crate) async fn gateway_rules(
    client: &Client,
    gateway_ns: &str,
    hosts: &[DnsName],
) -> Result<Vec<DestinationRule>, ClusterError> {
    let slugs: Vec<String> = hosts.iter().map(slug).collect();
    let foreign = from_cache(ListParams::default().labels(&format!("!{HOST_LABEL}")));
    let ours =
        from_cache(ListParams::default().labels(&format!("{HOST_LABEL} in ({})", slugs.join(","))));
    let (mut rules, ours) = tokio::try_join!(
        list::<DestinationRule>(client, Some(gateway_ns), &foreign),
        list::<DestinationRule>(client, Some(gateway_ns), &ours),
    )?;
    rules.extend(ours);
    Ok(rules)
}

/// The DestinationRules among `rules` (the gateway namespace's, from [`gateway_rules`]) that
/// take the place of the origination rule `ours` at the egress gateway, as `namespace/name:
/// why` (Istio's lookup and merge, replayed by [`shared::precedence`]).
pub(crate) fn shadowing_rules(
    rules: &[DestinationRule],
    ours: &DestinationRule,
    host: &DnsName,
    gateway: &GatewayProxy,
) -> Vec<String> {
    let ours_name = ours.name_any();
    let ours_created = rules
        .iter()
        .find(|r| r.name_any() == ours_name)
        .and_then(|r| r.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);
    let others: Vec<DestinationRule> = rules
        .iter()
        .filter(|r| r.name_any() != ours_name)
        .cloned()
        .collect();
    match effective_origination(ours, ours_created, &others, host, gateway) {
        Ok(()) => Vec::new(),
        Err(shadowing) => shadowing
            .into_iter()
            .map(|s| format!("{}: {}", s.rule, s.reason))
            .collect(),
    }
}

/// The mesh config's `defaultProviders.accessLogging` (istio-system/istio, key `mesh`).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MeshConfig {
    #[serde(default)]
    default_providers: DefaultProviders,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DefaultProviders {
    #[serde(default)]
    access_logging: Vec<String>,
}

/// The mesh config's default access-log providers from the `mesh` key of a ConfigMap's data;
/// none when the text is absent or not a mesh config.
pub(crate) fn default_access_log_providers(mesh: Option<&str>) -> Vec<String> {
    mesh.and_then(|text| shared::documents::parse(text).ok())
        .and_then(|docs| docs.into_iter().next())
        .and_then(|doc| serde_json::from_value::<MeshConfig>(doc).ok())
        .map(|m| m.default_providers.access_logging)
        .unwrap_or_default()
}

/// The mesh-wide access logging the egress gateway's Telemetry must keep (see
/// [`kept_access_logging`]): reads istio-system's Telemetries and the `istio` ConfigMap. A read
/// that is forbidden keeps nothing from it and says so in the returned notes.
pub(crate) async fn mesh_access_logging(
    client: &Client,
) -> Result<(Vec<AccessLogging>, Vec<String>), ClusterError> {
    let mut notes = Vec::new();
    let telemetries = if served::<Telemetry>(client).await? {
        match list::<Telemetry>(client, Some(ISTIO_NAMESPACE), &ListParams::default()).await {
            Ok(t) => t,
            Err(ClusterError::Forbidden { .. }) => {
                notes.push(format!("not allowed to list telemetries in {ISTIO_NAMESPACE}: a mesh-wide Telemetry's access-log providers cannot be kept on the egress gateway, which then logs only to envoy"));
                Vec::new()
            }
            Err(e) => return Err(e),
        }
    } else {
        Vec::new()
    };
    let defaults = match get_opt::<ConfigMap>(client, ISTIO_NAMESPACE, MESH_CONFIG_MAP).await {
        Ok(cm) => default_access_log_providers(
            cm.as_ref()
                .and_then(|c| c.data.as_ref())
                .and_then(|d| d.get("mesh"))
                .map(String::as_str),
        ),
        Err(ClusterError::Forbidden { .. }) => {
            notes.push(format!("not allowed to read configmap {ISTIO_NAMESPACE}/{MESH_CONFIG_MAP}: the mesh's default access-log providers cannot be kept on the egress gateway"));
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    Ok((kept_access_logging(&telemetries, &defaults), notes))
}

/// The ConfigMap that holds the mesh config (`istioctl` and Kyma; a revisioned install adds
/// `-REVISION`).
const MESH_CONFIG_MAP: &str = "istio";

/// Polls until the Kyma Istio CR (when `kyma` names it) is `Ready` and the egress gateway's
/// Deployment is Available, writing each change of state to `progress`; fails after `timeout`.
pub async fn wait_ready(
    client: &Client,
    kyma: Option<&(String, String)>,
    gateway: &GatewayWorkload,
    timeout: Duration,
    progress: &mut dyn Write,
) -> Result<(), Error> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let istio_state = match kyma {
            Some((ns, name)) => get_opt::<Istio>(client, ns, name)
                .await?
                .and_then(|cr| cr.status.and_then(|s| s.state)),
            None => Some("Ready".to_string()),
        };
        let deployment = gateway_deployment(client, gateway).await?;
        let available = deployment.as_ref().is_some_and(deployment_available);
        let istio_ready = istio_state.as_deref() == Some("Ready");
        let state = format!(
            "waiting: Istio CR {}, deployment {}/{} {}",
            istio_state.as_deref().unwrap_or("(no state yet)"),
            gateway.namespace,
            gateway.name,
            match &deployment {
                None => "not created yet",
                Some(_) if available => "Available",
                Some(_) => "not Available yet",
            }
        );
        if istio_ready && available {
            writeln!(
                progress,
                "egress gateway ready after {:.0?}",
                start.elapsed()
            )?;
            return Ok(());
        }
        if state != last {
            writeln!(progress, "{state}")?;
            last = state;
        }
        if start.elapsed() >= timeout {
            return Err(Error::State(format!(
                "timed out after {timeout:?} ({last}); check `kubectl -n {} describe deployment {}` and the Istio CR's status, or re-run with --no-wait",
                gateway.namespace, gateway.name
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn istio(ns: &str, name: &str) -> Istio {
        Istio {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Default::default(),
            status: None,
        }
    }

    /// The mesh config's shape: istio/istio 1.30.3 `pkg/config/mesh/mesh.go` (`defaultProviders`
    /// is unset by default) and the `mesh` key of the istio ConfigMap.
    #[test]
    fn default_providers_come_from_the_mesh_config() {
        let mesh = "accessLogFile: /dev/stdout\ndefaultProviders:\n  accessLogging:\n  - otel\n  metrics:\n  - prometheus\nrootNamespace: istio-system\n";
        assert_eq!(default_access_log_providers(Some(mesh)), ["otel"]);
        assert!(default_access_log_providers(Some("rootNamespace: istio-system\n")).is_empty());
        assert!(default_access_log_providers(Some(": not yaml [")).is_empty());
        assert!(default_access_log_providers(None).is_empty());
    }

    #[test]
    fn exactly_one_istio_cr_is_required() {
        assert!(matches!(choose_istio_cr(&[]), Err(Error::State(m)) if m.contains("no Istio CR")));
        assert_eq!(
            choose_istio_cr(&[istio("kyma-system", "default")]).unwrap(),
            ("kyma-system".to_string(), "default".to_string())
        );
        let err = choose_istio_cr(&[
            istio("kyma-system", "default"),
            istio("kyma-system", "second"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("2 Istio CRs") && err.contains("kyma-system/second"),
            "{err}"
        );
    }
}
