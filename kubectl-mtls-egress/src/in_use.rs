//! What another client namespace or another host still uses, read before `enable` writes and
//! before `disable`/`disconnect` delete, so that one namespace's or one partner's command never
//! takes away another's.
//!
//! - One host, one client namespace. A host's objects in the egress gateway's namespace
//!   (istio-system for istioctl's and Kyma's; the origination DestinationRule, the AuthorizationPolicy of `--restrict-to-namespace`) are named by the host
//!   alone, and two egress Gateways for the same host on 443 make Istio drop the second
//!   (`pilot/pkg/model/gateway.go`, "duplicate host names"; analyzer IST0145). So
//!   [`RoutingNamespaces::refuse_second_namespace`] stops `enable` for a host another namespace already routes, and
//!   `disable` in any other namespace leaves the host's objects there alone
//!   ([`other_namespaces_routing`]). Which namespace routes a host is read from its ServiceEntries
//!   (labelled for the host, component `egress`), or — for a user who may not list them across
//!   namespaces — from the origination rule's `kubectl-mtls/client-namespace` annotation.
//! - A credential Secret stays while a DestinationRule or Gateway other than those being removed
//!   still names it ([`secret_users`]): `disconnect` keeps it and says which object uses it.
//! - A host's Gateway (`expose`) or origination rule (`enable`) is not switched to another
//!   `--credential` holding another certificate than the one it presents now, unless `--force`
//!   ([`credential_switch`]): the partner would see another certificate.
//!
//! The decisions are pure ([`other_client_namespaces`], [`still_used_by`]); the rest reads.

use kube::api::{DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};

use k8s_openapi::api::core::v1::Secret;
use shared::cluster::get_opt;

use super::detect::from_cache;
use shared::cluster::{ClusterError, display_kind, list_dynamic};
use shared::error::Error;
use shared::manifest::egress::{COMPONENT as EGRESS_COMPONENT, EnableRequest};
use shared::manifest::host::{CLIENT_NAMESPACE_ANNOTATION, HOST_LABEL, host_selector, slug};
use shared::manifest::secret::{credential_cert, credential_references};
use shared::manifest::{COMPONENT_LABEL, MANAGED_BY_LABEL, MANAGER};
use shared::names::DnsName;
use shared::resources::{DestinationRule, Gateway, ServiceEntry};

/// The other client namespaces that route `host` through the egress gateway, besides
/// `namespace`, sorted. `listed` is what the ServiceEntries say (`None`: they could not be listed
/// across namespaces); then `annotated`, the namespace the origination rule says it serves, is
/// all there is to go on.
pub fn other_client_namespaces(
    namespace: &str,
    listed: Option<Vec<String>>,
    annotated: Option<String>,
) -> Vec<String> {
    let mut others: Vec<String> = match listed {
        Some(listed) => listed,
        None => annotated.into_iter().collect(),
    };
    others.retain(|ns| ns != namespace);
    others.sort();
    others.dedup();
    others
}

/// The namespaces whose ServiceEntries for each of `hosts` (ours, component `egress`, not being
/// deleted) exist, in the order of `hosts`: one request across namespaces, selected by our
/// labels (so it reads the ServiceEntries of these hosts only, however many the cluster has);
/// `None` when the user may not list ServiceEntries across namespaces.
async fn routing_namespaces(
    client: &Client,
    hosts: &[DnsName],
) -> Result<Option<Vec<Vec<String>>>, ClusterError> {
    let slugs: Vec<String> = hosts.iter().map(slug).collect();
    let selector = format!(
        "{HOST_LABEL} in ({}),{COMPONENT_LABEL}={EGRESS_COMPONENT}",
        slugs.join(",")
    );
    let resource = ApiResource::erase::<ServiceEntry>(&());
    match list_dynamic(
        client,
        &resource,
        None,
        &from_cache(ListParams::default().labels(&selector)),
    )
    .await
    {
        Ok(entries) => Ok(Some(
            hosts
                .iter()
                .map(|host| {
                    entries
                        .iter()
                        .filter(|e| e.metadata.deletion_timestamp.is_none())
                        .filter(|e| routes(e, host))
                        .filter_map(|e| e.namespace())
                        .collect()
                })
                .collect(),
        )),
        Err(ClusterError::Forbidden { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the ServiceEntry `entry` (one of ours, by its labels) is the one for `host`: its host
/// label is the host's slug and it lists the host (two hosts may share a slug, `a.b-c` and
/// `a-b.c`).
fn routes(entry: &DynamicObject, host: &DnsName) -> bool {
    entry
        .labels()
        .get(HOST_LABEL)
        .is_some_and(|v| *v == slug(host))
        && entry
            .data
            .pointer("/spec/hosts")
            .and_then(|h| h.as_array())
            .is_none_or(|hosts| hosts.iter().any(|h| h.as_str() == Some(&host.to_string())))
}

/// The client namespace the origination rule for `host` (in the egress gateway's namespace
/// `gateway_ns`) says it serves, if it exists, carries the annotation and may be read.
async fn annotated_namespace(
    client: &Client,
    host: &DnsName,
    gateway_ns: &str,
) -> Result<Option<String>, Error> {
    let selector = format!(
        "{},{COMPONENT_LABEL}={EGRESS_COMPONENT}",
        host_selector(host)
    );
    let resource = ApiResource::erase::<DestinationRule>(&());
    let params = ListParams::default().labels(&selector);
    match list_dynamic(client, &resource, Some(gateway_ns), &params).await {
        Ok(rules) => Ok(rules
            .iter()
            .find_map(|r| r.annotations().get(CLIENT_NAMESPACE_ANNOTATION).cloned())),
        Err(ClusterError::Forbidden { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The client namespaces other than `namespace` that route `host` through the egress gateway
/// (whose namespace is `gateway_ns`).
pub(crate) async fn other_namespaces_routing(
    client: &Client,
    host: &DnsName,
    namespace: &str,
    gateway_ns: &str,
) -> Result<Vec<String>, Error> {
    let mut all =
        other_namespaces_routing_all(client, std::slice::from_ref(host), namespace, gateway_ns)
            .await?;
    Ok(all.pop().unwrap_or_default())
}

/// [`other_namespaces_routing`] for each of `hosts`, in their order, with one request for all
/// of them (one per host only for a user who may not list ServiceEntries across namespaces).
async fn other_namespaces_routing_all(
    client: &Client,
    hosts: &[DnsName],
    namespace: &str,
    gateway_ns: &str,
) -> Result<Vec<Vec<String>>, Error> {
    let listed = RoutingNamespaces::read(client, hosts).await?;
    listed.others(client, hosts, namespace, gateway_ns).await
}

/// What the ServiceEntries across namespaces say about which namespaces route some hosts:
/// read before the egress gateway's namespace is known (it is needed only to decide).
pub(crate) struct RoutingNamespaces(Option<Vec<Vec<String>>>);

impl RoutingNamespaces {
    /// One request across namespaces for all `hosts`.
    pub(crate) async fn read(client: &Client, hosts: &[DnsName]) -> Result<Self, ClusterError> {
        Ok(Self(routing_namespaces(client, hosts).await?))
    }

    /// The client namespaces other than `namespace` routing each of `hosts` (the ones read),
    /// falling back to the origination rules' annotations in `gateway_ns`.
    async fn others(
        &self,
        client: &Client,
        hosts: &[DnsName],
        namespace: &str,
        gateway_ns: &str,
    ) -> Result<Vec<Vec<String>>, Error> {
        let mut others = Vec::with_capacity(hosts.len());
        for (index, host) in hosts.iter().enumerate() {
            others.push(
                self.others_for(client, index, host, namespace, gateway_ns)
                    .await?,
            );
        }
        Ok(others)
    }

    /// The client namespaces other than `namespace` routing `host`, the `index`th of the hosts
    /// read (the egress gateway of `host` runs in `gateway_ns`, where the origination rule's
    /// annotation is read when the ServiceEntries could not be listed).
    pub(crate) async fn others_for(
        &self,
        client: &Client,
        index: usize,
        host: &DnsName,
        namespace: &str,
        gateway_ns: &str,
    ) -> Result<Vec<String>, Error> {
        let listed = self.0.as_ref().map(|l| l[index].clone());
        let annotated = match listed {
            Some(_) => None,
            None => annotated_namespace(client, host, gateway_ns).await?,
        };
        Ok(other_client_namespaces(namespace, listed, annotated))
    }

    /// `enable` for `hosts` (the ones read) in `namespace`: refused when another namespace
    /// routes one of them already (the first such host is named).
    pub(crate) async fn refuse_second_namespace(
        self,
        client: &Client,
        hosts: &[DnsName],
        namespace: &str,
        gateway_ns: &str,
    ) -> Result<(), Error> {
        let all = self.others(client, hosts, namespace, gateway_ns).await?;
        let Some((host, others)) = hosts.iter().zip(all).find(|(_, o)| !o.is_empty()) else {
            return Ok(());
        };
        let first = &others[0];
        Err(Error::State(format!(
            "{host} is routed through the egress gateway for namespace {} already, and a host serves one client namespace per cluster (its origination rule and AuthorizationPolicy in {gateway_ns} are the host's, and Istio drops a second egress Gateway for the same host): call it from {first}, or first run `kubectl mtls-egress disable --host {host} -n {first}`",
            others.join(", ")
        )))
    }
}

/// The objects among `candidates` (DestinationRules and Gateways, each with its kind as kubectl
/// prints it) that still name the Secret `secret`: not being deleted, and not `removed` (the
/// objects this run deletes). Each as `kind namespace/name`.
pub fn still_used_by(
    secret: &str,
    candidates: &[(String, DynamicObject)],
    removed: &dyn Fn(&DynamicObject) -> bool,
) -> Vec<String> {
    candidates
        .iter()
        .filter(|(_, o)| o.metadata.deletion_timestamp.is_none() && !removed(o))
        .filter(|(_, o)| {
            o.data
                .get("spec")
                .is_some_and(|spec| credential_references(spec).iter().any(|n| n == secret))
        })
        .map(|(kind, o)| {
            format!(
                "{kind} {}/{}",
                o.namespace().unwrap_or_default(),
                o.name_any()
            )
        })
        .collect()
}

/// The Secret names the `removed` objects among `candidates` name.
pub fn named_by(
    candidates: &[(String, DynamicObject)],
    removed: &dyn Fn(&DynamicObject) -> bool,
) -> Vec<String> {
    let mut names: Vec<String> = candidates
        .iter()
        .filter(|(_, o)| removed(o))
        .filter_map(|(_, o)| o.data.get("spec").map(credential_references))
        .flatten()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether `object` is one of ours for `host`.
pub(crate) fn ours_for(object: &DynamicObject, host: &DnsName) -> bool {
    let labels = object.labels();
    labels.get(MANAGED_BY_LABEL).is_some_and(|v| v == MANAGER)
        && labels.get(HOST_LABEL).is_some_and(|v| *v == slug(host))
}

/// Every DestinationRule and Gateway that may name a credential Secret: across namespaces, or —
/// for a user who may not list them there — in the gateway's namespace `gateway_ns` and
/// `namespace`. Each with its kind as kubectl prints it.
pub(crate) async fn secret_users(
    client: &Client,
    namespace: &str,
    gateway_ns: &str,
) -> Result<Vec<(String, DynamicObject)>, Error> {
    let mut found = Vec::new();
    for resource in [
        ApiResource::erase::<DestinationRule>(&()),
        ApiResource::erase::<Gateway>(&()),
    ] {
        let all = ListParams::default();
        let objects = match list_dynamic(client, &resource, None, &all).await {
            Ok(objects) => objects,
            Err(ClusterError::Forbidden { .. }) => {
                let mut objects = list_dynamic(client, &resource, Some(gateway_ns), &all).await?;
                if namespace != gateway_ns {
                    objects.extend(list_dynamic(client, &resource, Some(namespace), &all).await?);
                }
                objects
            }
            Err(e) => return Err(e.into()),
        };
        let kind = display_kind(&resource);
        found.extend(objects.into_iter().map(|o| (kind.clone(), o)));
    }
    Ok(found)
}

/// A host's object that presents a credential: `expose`'s Gateway or `enable`'s origination rule.
pub(crate) struct Presenter<'a> {
    /// Its kind.
    pub resource: ApiResource,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The namespace of the gateway pods, where the Secrets it names are.
    pub secret_namespace: &'a str,
}

/// Re-running `expose`/`enable` for `host` with `--credential new`: when the host's object
/// (`presenter`, read already as `object`; `None`: it does not exist) names another Secret, and
/// both Secrets hold certificates that differ, the switch would change the certificate the
/// partner sees. Refused unless `force`; with `force`, the warning to print.
pub(crate) async fn credential_switch(
    client: &Client,
    host: &DnsName,
    presenter: Presenter<'_>,
    object: Option<&DynamicObject>,
    new: &str,
    force: bool,
) -> Result<Option<String>, Error> {
    let Some(object) = object else {
        return Ok(None);
    };
    let names = object
        .data
        .get("spec")
        .map(credential_references)
        .unwrap_or_default();
    switch_from(client, host, presenter, names, new, force).await
}

/// [`credential_switch`] once the Secrets the host's object names now (`names`) are known.
async fn switch_from(
    client: &Client,
    host: &DnsName,
    presenter: Presenter<'_>,
    names: Vec<String>,
    new: &str,
    force: bool,
) -> Result<Option<String>, Error> {
    if names.is_empty() || names.iter().any(|n| n == new) {
        return Ok(None);
    }
    let cert_of = |name: String| async move {
        Ok::<_, Error>(
            get_opt::<Secret>(client, presenter.secret_namespace, &name)
                .await?
                .as_ref()
                .and_then(credential_cert),
        )
    };
    let Some(new_cert) = cert_of(new.to_string()).await? else {
        return Ok(None);
    };
    for old in names {
        let Some(old_cert) = cert_of(old.clone()).await? else {
            continue;
        };
        if old_cert == new_cert {
            continue;
        }
        let facts = format!(
            "{} {}/{} presents secret {}/{old} ({old_cert}) for {host}, and --credential {new} holds another certificate ({new_cert})",
            display_kind(&presenter.resource),
            presenter.namespace,
            presenter.name,
            presenter.secret_namespace
        );
        if force {
            return Ok(Some(format!("warning: --force: switching: {facts}")));
        }
        return Err(Error::State(format!(
            "{facts}: the partner would see another certificate; pass --credential {old} to keep it, or --force to switch"
        )));
    }
    Ok(None)
}

/// [`credential_switch`] for `enable`'s origination rule, which is among `rules` (the egress
/// gateway namespace's DestinationRules, ours for the host among them) when it exists.
pub(crate) async fn origination_switch(
    client: &Client,
    request: &EnableRequest,
    rules: &[DestinationRule],
    force: bool,
) -> Result<Option<String>, Error> {
    let name = format!("mtls-originate-{}", slug(&request.host));
    let gateway_ns = request.mesh.egress_gateway.namespace.as_str();
    let Some(rule) = rules.iter().find(|r| {
        r.name_any() == name
            && r.labels()
                .get(HOST_LABEL)
                .is_some_and(|v| *v == slug(&request.host))
    }) else {
        return Ok(None);
    };
    let names = serde_json::to_value(&rule.spec)
        .map(|spec| credential_references(&spec))
        .unwrap_or_default();
    let presenter = Presenter {
        resource: ApiResource::erase::<DestinationRule>(&()),
        namespace: gateway_ns,
        name: &name,
        secret_namespace: gateway_ns,
    };
    switch_from(
        client,
        &request.host,
        presenter,
        names,
        &request.credential,
        force,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use serde_json::json;

    #[test]
    fn other_namespaces_come_from_the_service_entries_else_from_the_annotation() {
        let listed = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            other_client_namespaces("a", listed(&["a"]), None),
            Vec::<String>::new()
        );
        assert_eq!(
            other_client_namespaces("a", listed(&["b", "a", "c", "b"]), None),
            ["b", "c"]
        );
        // The listing is what is true now: a stale annotation does not count.
        assert!(other_client_namespaces("a", listed(&[]), Some("b".into())).is_empty());
        // Without it, the annotation is.
        assert_eq!(other_client_namespaces("a", None, Some("b".into())), ["b"]);
        assert!(other_client_namespaces("a", None, Some("a".into())).is_empty());
        assert!(other_client_namespaces("a", None, None).is_empty());
    }

    fn object(
        ns: &str,
        name: &str,
        labels: &[(&str, &str)],
        spec: serde_json::Value,
    ) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            data: json!({ "spec": spec }),
        }
    }

    #[test]
    fn a_secret_is_used_by_what_names_it_and_is_not_being_removed() {
        let host = DnsName::parse("a.example.com").unwrap();
        let ours_a = [(MANAGED_BY_LABEL, MANAGER), (HOST_LABEL, "a-example-com")];
        let ours_b = [(MANAGED_BY_LABEL, MANAGER), (HOST_LABEL, "b-example-com")];
        let tls = |name: &str| {
            json!({"host": "x", "trafficPolicy": {"portLevelSettings": [
                {"port": {"number": 443}, "tls": {"mode": "MUTUAL", "credentialName": name}}]}})
        };
        let dr = "destinationrule.networking.istio.io".to_string();
        let gw = "gateway.networking.istio.io".to_string();
        let mut going = object("istio-system", "mtls-originate-c", &[], tls("shared"));
        going.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        let candidates = vec![
            (
                dr.clone(),
                object(
                    "istio-system",
                    "mtls-originate-a-example-com",
                    &ours_a,
                    tls("shared"),
                ),
            ),
            (
                dr.clone(),
                object(
                    "istio-system",
                    "mtls-originate-b-example-com",
                    &ours_b,
                    tls("shared"),
                ),
            ),
            (
                gw.clone(),
                object(
                    "partner",
                    "theirs",
                    &[],
                    json!({"servers": [{"tls": {"credentialName": "shared"}}]}),
                ),
            ),
            (
                dr.clone(),
                object("istio-system", "unrelated", &[], tls("other")),
            ),
            (dr.clone(), going),
        ];
        let removing_a = |o: &DynamicObject| ours_for(o, &host);
        assert_eq!(
            still_used_by("shared", &candidates, &removing_a),
            [
                "destinationrule.networking.istio.io istio-system/mtls-originate-b-example-com",
                "gateway.networking.istio.io partner/theirs",
            ]
        );
        assert!(still_used_by("nobody", &candidates, &removing_a).is_empty());
        // Nothing removed: host a's own rule counts too.
        assert_eq!(still_used_by("shared", &candidates, &|_| false).len(), 3);
    }
}
