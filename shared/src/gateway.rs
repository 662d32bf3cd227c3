//! Where the Istio gateways run and which labels their pods carry: the ingress gateway that
//! `expose` binds its MUTUAL Gateway to, and the egress gateway that `enable` routes through.
//!
//! istioctl and Kyma install `istio-ingressgateway` / `istio-egressgateway` in istio-system with
//! `istio: ingressgateway` / `istio: egressgateway` ([`GatewayWorkload::default_for`]). Istio's
//! Helm `gateway` chart names the Deployment and the Service after the release and derives the
//! pod labels from it: `app: <name>` and `istio: <name without the istio- prefix>` (istio/istio
//! 1.30.3 `manifests/charts/gateway/templates/_helpers.tpl`, `gateway.name` and
//! `gateway.selectorLabels`), so the documented `helm install istio-ingress istio/gateway -n
//! istio-ingress` gives `istio: ingress` in namespace `istio-ingress`.
//!
//! [`choose_gateway`] picks the gateway from the Deployments (pods need not run: their template
//! labels are what the Gateway selector matches) and the Services of a cluster — or from
//! `--gateway-namespace` / `--gateway-selector` ([`GatewayArgs`]) — and says what it found
//! ([`GatewayWorkload::describe`]). A Deployment counts as an Istio gateway when its pod template
//! carries the gateway chart's injection annotation `inject.istio.io/templates: gateway`
//! (`manifests/charts/gateway/values.yaml`, `podAnnotations`) or istioctl's
//! `operator.istio.io/component: IngressGateways|EgressGateways`
//! (`manifests/charts/gateways/istio-{ingress,egress}/templates/deployment.yaml`). Its role comes
//! from that component label, else from `ingress`/`egress` in its `istio` label or name; a gateway
//! whose role cannot be told is named in the error, with the flags that pick it.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use crate::manifest::ISTIO_NAMESPACE;

/// Which gateway a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GatewayRole {
    /// The ingress gateway of the target cluster (`expose`).
    Ingress,
    /// The egress gateway of the client cluster (`enable`).
    Egress,
}

impl fmt::Display for GatewayRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GatewayRole::Ingress => "ingress",
            GatewayRole::Egress => "egress",
        })
    }
}

impl GatewayRole {
    /// The Deployment and Service name istioctl and Kyma give this gateway.
    pub fn default_name(self) -> &'static str {
        match self {
            GatewayRole::Ingress => "istio-ingressgateway",
            GatewayRole::Egress => "istio-egressgateway",
        }
    }

    /// The `istio` label istioctl and Kyma give this gateway's pods.
    pub fn default_istio_label(self) -> &'static str {
        match self {
            GatewayRole::Ingress => "ingressgateway",
            GatewayRole::Egress => "egressgateway",
        }
    }

    /// istioctl's `operator.istio.io/component` value for this gateway.
    fn component(self) -> &'static str {
        match self {
            GatewayRole::Ingress => "IngressGateways",
            GatewayRole::Egress => "EgressGateways",
        }
    }
}

/// Gateway pod labels as `--gateway-selector K=V[,K=V]` gives them: equality only, at least one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewaySelector(BTreeMap<String, String>);

impl GatewaySelector {
    /// A selector from label pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether pods with `labels` match.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// The value of one label, if the selector has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl fmt::Display for GatewaySelector {
    /// `k=v,k=v`: a label selector the API server and kubectl accept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&pairs.join(","))
    }
}

impl std::str::FromStr for GatewaySelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| {
            format!("{s:?}: {why}; give the gateway pods' labels as K=V[,K=V], e.g. istio=ingress")
        };
        let mut labels = BTreeMap::new();
        for pair in s.split(',') {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(bad(format!("{pair:?} is not K=V")));
            };
            let (k, v) = (k.trim(), v.trim());
            let v = v.strip_prefix('=').unwrap_or(v);
            if !valid_label_key(k) {
                return Err(bad(format!("{k:?} is not a label key")));
            }
            if !valid_label_value(v) {
                return Err(bad(format!("{v:?} is not a label value")));
            }
            if labels.insert(k.to_string(), v.to_string()).is_some() {
                return Err(bad(format!("{k:?} is given twice")));
            }
        }
        Ok(Self(labels))
    }
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends; not empty
/// here (an empty value selects nothing a gateway carries).
fn valid_label_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name like a label value.
fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    }) && valid_label_value(name)
}

/// `--gateway-namespace` and `--gateway-selector`, shared by the commands that need a gateway.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayArgs {
    /// The namespace of the gateway pods [default: detected; istio-system on Kyma]
    #[arg(long, value_name = "NS")]
    pub gateway_namespace: Option<String>,
    /// The gateway pods' labels, K=V[,K=V] [default: detected; istio=ingressgateway or
    /// istio=egressgateway on Kyma]
    #[arg(long, value_name = "K=V[,K=V]", value_parser = parse_selector)]
    pub gateway_selector: Option<GatewaySelector>,
}

fn parse_selector(s: &str) -> Result<GatewaySelector, String> {
    s.parse()
}

impl GatewayArgs {
    /// Checks `--gateway-namespace` (the selector is checked as it parses).
    pub fn validate(&self) -> Result<(), crate::Error> {
        if let Some(ns) = &self.gateway_namespace
            && crate::cluster::validate_namespace(ns).is_err()
        {
            return Err(crate::Error::Usage(format!(
                "--gateway-namespace {:?} is not a namespace name: give the namespace of the gateway pods, a lowercase RFC 1123 label (a-z, 0-9 and '-', at most 63 characters), e.g. istio-egress",
                crate::error::one_line(ns, 80)
            )));
        }
        Ok(())
    }

    /// Whether neither flag was given.
    pub fn is_empty(&self) -> bool {
        self.gateway_namespace.is_none() && self.gateway_selector.is_none()
    }

    /// The gateway the flags alone name, for a command that reads nothing (`--dry-run=client`)
    /// or runs on Kyma: each flag given replaces that part of the default. The Service (and
    /// Deployment) name is the selector's `app` label, else the Helm chart's name for its
    /// `istio` label (`istio-<value>`), else the default's.
    pub fn offline(&self, role: GatewayRole) -> GatewayWorkload {
        let default = GatewayWorkload::default_for(role);
        let Some(selector) = self.gateway_selector.clone() else {
            return GatewayWorkload {
                namespace: self
                    .gateway_namespace
                    .clone()
                    .unwrap_or(default.namespace.clone()),
                ..default
            };
        };
        let name = match (selector.get("app"), selector.get("istio")) {
            (Some(app), _) => app.to_string(),
            (None, Some(istio)) if istio == role.default_istio_label() => {
                role.default_name().to_string()
            }
            (None, Some(istio)) => format!("istio-{istio}"),
            (None, None) => default.name.clone(),
        };
        GatewayWorkload {
            role,
            namespace: self
                .gateway_namespace
                .clone()
                .unwrap_or(default.namespace.clone()),
            selector,
            name,
        }
    }
}

/// One gateway: where its pods run, the labels that select them, and the name of its Deployment
/// and Service (the same name for istioctl, Kyma and the Helm chart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayWorkload {
    /// Ingress or egress.
    pub role: GatewayRole,
    /// The namespace of the gateway pods: a `credentialName` is resolved there (istio/istio
    /// 1.30.3 `pilot/pkg/model/credentials/resource.go`, `ParseResourceName`: a plain name takes
    /// the proxy's namespace), and the gateway's own DestinationRules are looked up there first.
    pub namespace: String,
    /// The pod labels a Gateway (or AuthorizationPolicy, Telemetry) selects the pods by.
    pub selector: GatewaySelector,
    /// The Deployment and the Service.
    pub name: String,
}

impl GatewayWorkload {
    /// istioctl's and Kyma's gateway in istio-system. The ingress Gateway selects
    /// `app: istio-ingressgateway` and `istio: ingressgateway`, as Kyma's own Gateways do; the
    /// egress objects select `istio: egressgateway`.
    pub fn default_for(role: GatewayRole) -> Self {
        let selector = match role {
            GatewayRole::Ingress => GatewaySelector::from_pairs([
                ("app", role.default_name()),
                ("istio", role.default_istio_label()),
            ]),
            GatewayRole::Egress => {
                GatewaySelector::from_pairs([("istio", role.default_istio_label())])
            }
        };
        Self {
            role,
            namespace: ISTIO_NAMESPACE.into(),
            selector,
            name: role.default_name().into(),
        }
    }

    /// The default ingress gateway.
    pub fn default_ingress() -> Self {
        Self::default_for(GatewayRole::Ingress)
    }

    /// The default egress gateway.
    pub fn default_egress() -> Self {
        Self::default_for(GatewayRole::Egress)
    }

    /// Whether this is istioctl's / Kyma's gateway in istio-system.
    pub fn is_default(&self) -> bool {
        *self == Self::default_for(self.role)
    }

    /// The gateway Service's cluster-local host, as routes name it.
    pub fn service_host(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }

    /// `deployment istio-egress/istio-egress (pods istio=egress)`.
    pub fn describe(&self) -> String {
        format!(
            "deployment {}/{} (pods {})",
            self.namespace, self.name, self.selector
        )
    }

    /// The gateway a Service host names (`NAME.NS.svc.cluster.local`, as `enable`'s subset
    /// DestinationRule records it), with the selector `selector`; `None` for another host.
    pub fn from_service_host(
        role: GatewayRole,
        host: &str,
        selector: GatewaySelector,
    ) -> Option<Self> {
        let rest = host.strip_suffix(".svc.cluster.local")?;
        let (name, namespace) = rest.split_once('.')?;
        (!name.is_empty() && !namespace.is_empty() && !namespace.contains('.')).then(|| Self {
            role,
            namespace: namespace.into(),
            selector,
            name: name.into(),
        })
    }
}

/// Why no single gateway could be chosen. `Display` is one line with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No Deployment matches.
    #[error("{0}")]
    NotFound(String),
    /// Several match.
    #[error("{0}")]
    Ambiguous(String),
}

/// The pod template labels of a Deployment.
fn template_labels(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn template_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default()
}

/// Whether `d` runs Istio gateway pods, and which role they have (`None`: a gateway whose role
/// cannot be told). `Err(())` when it is not a gateway at all.
fn gateway_role(d: &Deployment) -> Result<Option<GatewayRole>, ()> {
    let labels = template_labels(d);
    let annotations = template_annotations(d);
    let component = labels
        .get("operator.istio.io/component")
        .map(String::as_str);
    let chart = annotations
        .get("inject.istio.io/templates")
        .is_some_and(|t| t.split(',').any(|t| t.trim() == "gateway"));
    let name = d.name_any();
    // istioctl's and Kyma's Deployment by its name and namespace alone, whatever its template
    // says (what `enable` has always looked for).
    let named_default = [GatewayRole::Ingress, GatewayRole::Egress]
        .into_iter()
        .find(|r| name == r.default_name() && d.namespace().as_deref() == Some(ISTIO_NAMESPACE));
    for role in [GatewayRole::Ingress, GatewayRole::Egress] {
        if component == Some(role.component()) {
            return Ok(Some(role));
        }
    }
    if let Some(role) = named_default {
        return Ok(Some(role));
    }
    if !chart {
        return Err(());
    }
    let words = format!(
        "{} {name}",
        labels.get("istio").map(String::as_str).unwrap_or_default()
    );
    Ok(
        match (words.contains("ingress"), words.contains("egress")) {
            (true, false) => Some(GatewayRole::Ingress),
            (false, true) => Some(GatewayRole::Egress),
            _ => None,
        },
    )
}

/// The selector for a found gateway's pods: istioctl's and Kyma's defaults unchanged; else the
/// pods' `istio` label (what Istio's documentation selects gateways by), or `app` without it.
fn selector_for(role: GatewayRole, d: &Deployment) -> Option<GatewaySelector> {
    let labels = template_labels(d);
    let default = GatewayWorkload::default_for(role);
    if d.namespace().as_deref() == Some(default.namespace.as_str()) && d.name_any() == default.name
    {
        return Some(default.selector);
    }
    ["istio", "app"].into_iter().find_map(|k| {
        labels
            .get(k)
            .map(|v| GatewaySelector::from_pairs([(k, v.as_str())]))
    })
}

/// The Service in the Deployment's namespace whose selector picks its pods: the one of the same
/// name, else the only one. `None` when none (or several others) do.
fn service_for(d: &Deployment, services: &[Service]) -> Option<String> {
    let labels = template_labels(d);
    let ns = d.namespace();
    let selecting: Vec<String> = services
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|spec| spec.selector.as_ref())
                .is_some_and(|sel| {
                    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
        })
        .map(|s| s.name_any())
        .collect();
    let name = d.name_any();
    if selecting.contains(&name) {
        return Some(name);
    }
    match selecting.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn id(d: &Deployment) -> String {
    format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any())
}

/// Chooses the `role` gateway from the cluster's `deployments` and `services` (those that could
/// be read) as `flags` narrow them: with `--gateway-selector`, Deployments whose pods carry those
/// labels (in `--gateway-namespace` when given), whatever their role; else the Istio gateways of
/// that role (in `--gateway-namespace` when given). Exactly one must remain. The Service name is
/// the Service that selects its pods, else the Deployment's name.
pub fn choose_gateway(
    role: GatewayRole,
    deployments: &[Deployment],
    services: &[Service],
    flags: &GatewayArgs,
) -> Result<GatewayWorkload, GatewayError> {
    let in_namespace = |d: &&Deployment| {
        flags
            .gateway_namespace
            .as_deref()
            .is_none_or(|ns| d.namespace().as_deref() == Some(ns))
    };
    let candidates: Vec<&Deployment> = deployments
        .iter()
        .filter(in_namespace)
        .filter(|d| match &flags.gateway_selector {
            Some(selector) => selector.matches(&template_labels(d)),
            None => gateway_role(d) == Ok(Some(role)),
        })
        .collect();
    let where_ = match &flags.gateway_namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "in the namespaces that could be read".to_string(),
    };
    let fix = match role {
        GatewayRole::Ingress => {
            "--gateway-namespace istio-ingress --gateway-selector istio=ingress"
        }
        GatewayRole::Egress => "--gateway-namespace istio-egress --gateway-selector istio=egress",
    };
    match candidates.as_slice() {
        [] => {
            let unknown: Vec<String> = deployments
                .iter()
                .filter(in_namespace)
                .filter(|d| gateway_role(d) == Ok(None))
                .map(|d| {
                    let labels = template_labels(d);
                    format!(
                        "{} (istio={})",
                        id(d),
                        labels.get("istio").map(String::as_str).unwrap_or("")
                    )
                })
                .collect();
            let what = match &flags.gateway_selector {
                Some(selector) => format!("no Deployment {where_} runs pods labelled {selector}"),
                None => format!(
                    "no {role} gateway found: no Deployment {where_} runs Istio {role} gateway pods"
                ),
            };
            let hint = if unknown.is_empty() {
                match role {
                    GatewayRole::Ingress => format!(
                        "install one (`helm install istio-ingress istio/gateway -n istio-ingress`), or name it with {fix}"
                    ),
                    GatewayRole::Egress => format!(
                        "install one (`istioctl install --set components.egressGateways[0].name=istio-egressgateway --set components.egressGateways[0].enabled=true`, or `helm install istio-egress istio/gateway -n istio-egress --set service.type=ClusterIP`), or name it with {fix}"
                    ),
                }
            } else {
                format!(
                    "Istio gateways whose role cannot be told from their labels: {}; name the {role} gateway with --gateway-namespace NS --gateway-selector istio=VALUE",
                    unknown.join(", ")
                )
            };
            Err(GatewayError::NotFound(format!("{what}; {hint}")))
        }
        [d] => {
            let d = *d;
            let selector = match &flags.gateway_selector {
                Some(s) => s.clone(),
                None => selector_for(role, d).ok_or_else(|| {
                    GatewayError::NotFound(format!(
                        "deployment {} runs the {role} gateway but its pods have no istio or app label to select them by; name them with --gateway-selector K=V",
                        id(d)
                    ))
                })?,
            };
            let namespace = d.namespace().unwrap_or_default();
            let default = GatewayWorkload::default_for(role);
            let name = if namespace == default.namespace && d.name_any() == default.name {
                default.name
            } else {
                service_for(d, services).unwrap_or_else(|| d.name_any())
            };
            Ok(GatewayWorkload {
                role,
                namespace,
                selector,
                name,
            })
        }
        several => {
            let listed: Vec<String> = several
                .iter()
                .map(|d| {
                    let labels = template_labels(d);
                    format!(
                        "{} (istio={})",
                        id(d),
                        labels.get("istio").map(String::as_str).unwrap_or("")
                    )
                })
                .collect();
            Err(GatewayError::Ambiguous(format!(
                "{} {role} gateways found ({}): pick one with --gateway-namespace NS and --gateway-selector K=V, e.g. {fix}",
                several.len(),
                listed.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{PodTemplateSpec, ServiceSpec};
    use kube::api::ObjectMeta;

    fn pairs(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn deployment(
        ns: &str,
        name: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pairs(labels)),
                        annotations: Some(pairs(annotations)),
                        ..Default::default()
                    }),
                    spec: None,
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    /// The Helm `gateway` chart's Deployment for release `release` in `ns`: pod labels
    /// `app: <release>`, `istio: <release without istio->` and `sidecar.istio.io/inject`, and the
    /// pod annotation `inject.istio.io/templates: gateway` (istio/istio 1.30.3
    /// `manifests/charts/gateway/templates/_helpers.tpl`, `templates/deployment.yaml`,
    /// `values.yaml`).
    fn helm(ns: &str, release: &str) -> Deployment {
        let istio = release.strip_prefix("istio-").unwrap_or(release);
        deployment(
            ns,
            release,
            &[
                ("app", release),
                ("istio", istio),
                ("sidecar.istio.io/inject", "true"),
            ],
            &[
                ("inject.istio.io/templates", "gateway"),
                ("sidecar.istio.io/inject", "true"),
            ],
        )
    }

    /// istioctl's egress gateway (`manifests/charts/gateways/istio-egress`).
    fn istioctl_egress() -> Deployment {
        deployment(
            "istio-system",
            "istio-egressgateway",
            &[
                ("app", "istio-egressgateway"),
                ("istio", "egressgateway"),
                ("operator.istio.io/component", "EgressGateways"),
            ],
            &[],
        )
    }

    fn istioctl_ingress() -> Deployment {
        deployment(
            "istio-system",
            "istio-ingressgateway",
            &[
                ("app", "istio-ingressgateway"),
                ("istio", "ingressgateway"),
                ("operator.istio.io/component", "IngressGateways"),
            ],
            &[],
        )
    }

    fn service(ns: &str, name: &str, selector: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(pairs(selector)),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn selectors_parse_as_equality_pairs() {
        let s: GatewaySelector = "istio=ingress".parse().unwrap();
        assert_eq!(s.to_string(), "istio=ingress");
        let s: GatewaySelector = "istio=egress, app=istio-egress".parse().unwrap();
        assert_eq!(s.to_string(), "app=istio-egress,istio=egress");
        let s: GatewaySelector = "app.kubernetes.io/name==gw".parse().unwrap();
        assert_eq!(s.get("app.kubernetes.io/name"), Some("gw"));
        for bad in [
            "",
            "istio",
            "istio=",
            "=x",
            "istio!=x",
            "istio in (a)",
            "a=b,a=c",
            "-a=b",
            "a=b,",
            "Foo_/x=y",
        ] {
            let err = bad.parse::<GatewaySelector>().unwrap_err();
            assert!(err.contains("K=V"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_defaults_are_istioctl_and_kyma() {
        let e = GatewayWorkload::default_egress();
        assert_eq!(
            e.service_host(),
            "istio-egressgateway.istio-system.svc.cluster.local"
        );
        assert_eq!(e.selector.to_string(), "istio=egressgateway");
        let i = GatewayWorkload::default_ingress();
        assert_eq!(
            i.selector.to_string(),
            "app=istio-ingressgateway,istio=ingressgateway"
        );
        assert!(e.is_default() && i.is_default());
        assert_eq!(GatewayArgs::default().offline(GatewayRole::Egress), e);
    }

    #[test]
    fn flags_alone_name_the_gateway() {
        let flags = GatewayArgs {
            gateway_namespace: Some("istio-egress".into()),
            gateway_selector: Some("istio=egress".parse().unwrap()),
        };
        let gw = flags.offline(GatewayRole::Egress);
        assert_eq!(
            gw.service_host(),
            "istio-egress.istio-egress.svc.cluster.local"
        );
        let flags = GatewayArgs {
            gateway_namespace: Some("gw".into()),
            gateway_selector: Some("app=out,istio=x".parse().unwrap()),
        };
        assert_eq!(flags.offline(GatewayRole::Egress).name, "out");
        let ns_only = GatewayArgs {
            gateway_namespace: Some("gw".into()),
            gateway_selector: None,
        };
        let gw = ns_only.offline(GatewayRole::Egress);
        assert_eq!(
            (gw.namespace.as_str(), gw.name.as_str()),
            ("gw", "istio-egressgateway")
        );
    }

    #[test]
    fn the_helm_charts_gateways_are_found_by_role() {
        let deployments = [
            helm("istio-ingress", "istio-ingress"),
            helm("istio-egress", "istio-egress"),
            deployment("apps", "httpbin", &[("app", "httpbin")], &[]),
        ];
        let services = [
            service(
                "istio-ingress",
                "istio-ingress",
                &[("app", "istio-ingress"), ("istio", "ingress")],
            ),
            service(
                "istio-egress",
                "istio-egress",
                &[("app", "istio-egress"), ("istio", "egress")],
            ),
        ];
        let none = GatewayArgs::default();
        let ingress = choose_gateway(GatewayRole::Ingress, &deployments, &services, &none).unwrap();
        assert_eq!(ingress.namespace, "istio-ingress");
        assert_eq!(ingress.selector.to_string(), "istio=ingress");
        let egress = choose_gateway(GatewayRole::Egress, &deployments, &services, &none).unwrap();
        assert_eq!(
            egress.service_host(),
            "istio-egress.istio-egress.svc.cluster.local"
        );
        assert_eq!(
            egress.describe(),
            "deployment istio-egress/istio-egress (pods istio=egress)"
        );
        // A Service of another name that selects the pods is the one routes name.
        let renamed = [service("istio-egress", "egress", &[("istio", "egress")])];
        let egress = choose_gateway(GatewayRole::Egress, &deployments, &renamed, &none).unwrap();
        assert_eq!(egress.name, "egress");
    }

    #[test]
    fn istioctl_gateways_keep_the_defaults() {
        let deployments = [istioctl_ingress(), istioctl_egress()];
        let none = GatewayArgs::default();
        assert!(
            choose_gateway(GatewayRole::Egress, &deployments, &[], &none)
                .unwrap()
                .is_default()
        );
        assert!(
            choose_gateway(GatewayRole::Ingress, &deployments, &[], &none)
                .unwrap()
                .is_default()
        );
        // The deployment name alone (no component label, e.g. a hand-made copy) counts too.
        let plain = deployment(
            "istio-system",
            "istio-egressgateway",
            &[("app", "istio-egressgateway"), ("istio", "egressgateway")],
            &[],
        );
        assert!(
            choose_gateway(GatewayRole::Egress, &[plain], &[], &none)
                .unwrap()
                .is_default()
        );
    }

    #[test]
    fn none_or_several_is_one_error_with_the_fix() {
        let none = GatewayArgs::default();
        let err = choose_gateway(GatewayRole::Egress, &[istioctl_ingress()], &[], &none)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("no egress gateway found"), "{err}");
        assert!(
            err.contains("helm install istio-egress istio/gateway"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        let two = [helm("istio-egress", "istio-egress"), istioctl_egress()];
        let err = choose_gateway(GatewayRole::Egress, &two, &[], &none)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("2 egress gateways found (istio-egress/istio-egress (istio=egress), istio-system/istio-egressgateway (istio=egressgateway))"),
            "{err}"
        );
        assert!(err.contains("--gateway-selector"), "{err}");
        // The flags pick one of them.
        let picked = GatewayArgs {
            gateway_namespace: Some("istio-egress".into()),
            gateway_selector: None,
        };
        assert_eq!(
            choose_gateway(GatewayRole::Egress, &two, &[], &picked)
                .unwrap()
                .namespace,
            "istio-egress"
        );
        // A gateway whose role cannot be told is named, with the flags.
        let odd = [helm("gw", "edge")];
        let err = choose_gateway(GatewayRole::Egress, &odd, &[], &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gw/edge (istio=edge)"), "{err}");
        let flags = GatewayArgs {
            gateway_namespace: Some("gw".into()),
            gateway_selector: Some("istio=edge".parse().unwrap()),
        };
        let gw = choose_gateway(GatewayRole::Egress, &odd, &[], &flags).unwrap();
        assert_eq!(gw.service_host(), "edge.gw.svc.cluster.local");
        // A selector nothing carries.
        let flags = GatewayArgs {
            gateway_namespace: Some("gw".into()),
            gateway_selector: Some("istio=nope".parse().unwrap()),
        };
        let err = choose_gateway(GatewayRole::Egress, &odd, &[], &flags)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("no Deployment in namespace gw runs pods labelled istio=nope"),
            "{err}"
        );
    }

    #[test]
    fn a_service_host_names_the_gateway_back() {
        let gw = GatewayWorkload::from_service_host(
            GatewayRole::Egress,
            "istio-egress.istio-egress.svc.cluster.local",
            "istio=egress".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(gw.namespace, "istio-egress");
        assert!(
            GatewayWorkload::from_service_host(
                GatewayRole::Egress,
                "httpbin.example.com",
                "istio=egress".parse().unwrap()
            )
            .is_none()
        );
    }
}
