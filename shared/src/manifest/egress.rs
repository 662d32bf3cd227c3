//! Stage 3, client cluster: route the mesh's calls to the host through the egress gateway, which
//! originates mutual TLS with the client credential (`kubectl mtls-egress enable`).
//!
//! The egress gateway is [`MeshFacts::egress_gateway`]: istioctl's and Kyma's
//! `istio-egressgateway` in istio-system (`istio: egressgateway`) unless `enable` found another
//! ([`crate::gateway`]); "the gateway's namespace" below is istio-system for it.
//!
//! The objects, per host (names from [`slug`]):
//! - `ServiceEntry mtls-<slug>` (namespace): the host, ports 80/HTTP and `--port`/HTTPS,
//!   `exportTo: [".", <gateway namespace>]` — the egress gateway must see it to build `outbound|443||HOST`.
//! - `Gateway mtls-egress-<slug>` (namespace, selecting the gateway's pods): the egress gateway's listener for the hop from the
//!   sidecars — `443/HTTPS ISTIO_MUTUAL` (default, Istio's recipe) or `80/HTTP` (`--hop plain`, the tutorial's).
//! - `DestinationRule mtls-egress-<slug>` (namespace, `exportTo: ["."]`): subset `<slug>` of the egress
//!   gateway's Service (`NAME.NS.svc.cluster.local`, which also records where the gateway runs), with `ISTIO_MUTUAL` + `sni` for the hop when the hop is Istio mTLS.
//! - `VirtualService mtls-<slug>` (namespace, `exportTo: [".", <gateway namespace>]`; `"."` alone hides it
//!   from the gateway → 404 NR): `mesh:80` → egress subset, gateway → `HOST:--port` with
//!   `x-forwarded-client-cert` removed: on the Istio-mTLS hop the gateway would otherwise forward
//!   the caller's SPIFFE identity and certificate to the partner (its connection manager uses
//!   `SANITIZE_SET`: istio/istio `pilot/pkg/networking/core/gateway.go`).
//! - `DestinationRule mtls-originate-<slug>` (the gateway's namespace, `exportTo: ["."]`): `MUTUAL` with
//!   `credentialName` (a Secret in the gateway's namespace), `sni` **and** `subjectAltNames` (sni
//!   alone turns Istio's SAN check off); annotated with the client namespace it serves (one per
//!   host). A gateway outside the root namespace sees it first too: Istio indexes a rule exported
//!   to `.` under its own namespace, where a proxy of that namespace looks first (istio/istio
//!   1.30.3 `pilot/pkg/model/push_context.go`, `setDestinationRules` and `destinationRule`).
//! - optional `AuthorizationPolicy mtls-restrict-<slug>` (the gateway's namespace, selecting its pods):
//!   DENY requests for the host from other namespaces, so no other workload borrows the client
//!   identity (needs the Istio-mTLS hop).
//! - optional `Telemetry mtls-egressgateway-access-log` (the gateway's namespace, selecting its pods):
//!   access logs for the egress gateway only, never replacing a mesh-wide Telemetry; shared by all
//!   hosts. It names `envoy` and repeats the mesh-wide providers ([`kept_access_logging`]), which
//!   a workload-scoped Telemetry would otherwise switch off for the gateway.
//! - on Kyma, the `Istio` CR with only `spec.components.egressGateway.enabled: true`.

use kube::api::ObjectMeta;

use super::host::{host_annotations, host_labels, serving_namespace, slug};
use super::{ISTIO_NAMESPACE, ManifestError, check_object_name, labels};
use crate::gateway::GatewayWorkload;
use crate::names::DnsName;
use crate::plan::{Plan, PlanError};
use crate::resources::authorization_policy::{From, Operation, Rule, Source, To};
use crate::resources::common::{PortSelector, WorkloadSelector};
use crate::resources::destination_rule::{ClientTls, PortTrafficPolicy, Subset, TrafficPolicy};
use crate::resources::gateway::{Server, ServerPort, ServerTls};
use crate::resources::kyma_istio::{Components, EgressGateway};
use crate::resources::service_entry::ServicePort;
use crate::resources::telemetry::{AccessLogging, ProviderRef};
use crate::resources::virtual_service::{
    Destination, HeaderOperations, Headers, HttpMatch, HttpRoute, RouteDestination,
};
use crate::resources::{
    AuthorizationPolicy, AuthorizationPolicySpec, DestinationRule, DestinationRuleSpec, Gateway,
    GatewaySpec, Istio, IstioSpec, ServiceEntry, ServiceEntrySpec, Telemetry, TelemetrySpec,
    VirtualService, VirtualServiceSpec,
};

/// The default egress gateway's Service (istioctl's and Kyma's), as routes name it.
pub const EGRESS_GATEWAY_HOST: &str = "istio-egressgateway.istio-system.svc.cluster.local";
/// The header in which the egress gateway forwards the calling workload's identity (its SPIFFE ID
/// and certificate from the Istio-mTLS hop), removed on the route to the partner.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";
/// The shared access-log Telemetry's name.
pub(crate) const ACCESS_LOG_TELEMETRY: &str = "mtls-egressgateway-access-log";
/// `app.kubernetes.io/component` of the per-host objects.
pub const COMPONENT: &str = "egress";
/// `app.kubernetes.io/component` of the shared access-log Telemetry.
pub const ACCESS_LOG_COMPONENT: &str = "egress-access-log";

/// How the sidecar talks to the egress gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hop {
    /// Istio mutual TLS (the default; Istio's own recipe): encrypted, and the gateway knows the
    /// caller's namespace, so `--restrict-to-namespace` can work.
    IstioMutual,
    /// Plain HTTP on port 80, as the tutorial does.
    Plain,
}

/// The inputs of `enable`.
#[derive(Debug, Clone)]
pub struct EnableRequest {
    /// The external host (the target's domain).
    pub host: DnsName,
    /// The client namespace (where the workloads calling the host run).
    pub namespace: String,
    /// The client credential Secret in the egress gateway's namespace.
    pub credential: String,
    /// The sidecar → egress gateway hop.
    pub hop: Hop,
    /// The target's HTTPS port.
    pub port: u16,
    /// Whether to add the egress gateway access-log Telemetry.
    pub access_log: bool,
    /// Whether to add the AuthorizationPolicy that denies other namespaces.
    pub restrict_to_namespace: bool,
    /// The Kyma Istio CR to switch the egress gateway on in (`namespace`, `name`), if Kyma.
    pub kyma_istio: Option<(String, String)>,
    /// What was read from the cluster that shapes the plan (default: nothing read).
    pub mesh: MeshFacts,
}

/// What `enable` read from the cluster that shapes its plan. The default — what
/// `--dry-run=client` plans with, reading nothing — keeps no mesh-wide access logging and routes
/// through istioctl's and Kyma's egress gateway in istio-system.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshFacts {
    /// The mesh-wide access logging the egress gateway keeps next to `envoy`
    /// ([`kept_access_logging`]).
    pub access_logging: Vec<AccessLogging>,
    /// The egress gateway: its namespace, pod labels and Service.
    pub egress_gateway: GatewayWorkload,
}

impl Default for MeshFacts {
    fn default() -> Self {
        Self {
            access_logging: Vec::new(),
            egress_gateway: GatewayWorkload::default_egress(),
        }
    }
}

/// Everything that can make an enable or expose plan fail.
#[derive(Debug, thiserror::Error)]
pub enum EgressPlanError {
    /// A name or combination of inputs is not valid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An object could not be added to the plan.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

fn meta(name: String, namespace: &str, host: &DnsName, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(host_labels(component, host)),
        annotations: Some(host_annotations(host)),
        ..Default::default()
    }
}

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Names of the per-host client objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EgressNames {
    /// ServiceEntry and VirtualService (namespace).
    pub route: String,
    /// Egress Gateway and subset DestinationRule (namespace); also the subset's name is the slug.
    pub egress: String,
    /// Origination DestinationRule (the gateway's namespace).
    pub originate: String,
    /// AuthorizationPolicy (the gateway's namespace).
    pub restrict: String,
    /// The subset name.
    pub subset: String,
}

impl EgressNames {
    /// The names for `host`.
    pub(crate) fn for_host(host: &DnsName) -> Self {
        let s = slug(host);
        Self {
            route: format!("mtls-{s}"),
            egress: format!("mtls-egress-{s}"),
            originate: format!("mtls-originate-{s}"),
            restrict: format!("mtls-restrict-{s}"),
            subset: s,
        }
    }
}

/// The plan of `enable`: pure, in apply order.
pub fn enable_plan(req: &EnableRequest) -> Result<Plan, EgressPlanError> {
    check_object_name(&req.namespace)?;
    check_object_name(&req.credential)?;
    if req.credential.ends_with("-cacert") {
        return Err(ManifestError::CacertSuffix(req.credential.clone()).into());
    }
    if req.restrict_to_namespace && req.hop == Hop::Plain {
        return Err(ManifestError::Incompatible(
            "--restrict-to-namespace needs --hop istio-mutual: over the plain hop the egress gateway cannot tell which namespace is calling".into(),
        )
        .into());
    }
    let host = &req.host;
    let h = host.to_string();
    let ns = req.namespace.as_str();
    let names = EgressNames::for_host(host);
    let port = u32::from(req.port);
    let gateway = &req.mesh.egress_gateway;
    check_object_name(&gateway.namespace)?;
    check_object_name(&gateway.name)?;
    let gateway_ns = gateway.namespace.as_str();
    let gateway_host = gateway.service_host();
    let mut plan = Plan::new();

    if let Some((istio_ns, istio_name)) = &req.kyma_istio {
        // Only the one field we own; SSA leaves every other field of the CR alone.
        plan.push(&Istio {
            metadata: ObjectMeta {
                name: Some(istio_name.clone()),
                namespace: Some(istio_ns.clone()),
                ..Default::default()
            },
            spec: IstioSpec {
                components: Some(Components {
                    egress_gateway: Some(EgressGateway {
                        enabled: Some(true),
                    }),
                }),
                network_policies_enabled: None,
            },
            status: None,
        })?;
    }

    plan.push(&ServiceEntry {
        metadata: meta(names.route.clone(), ns, host, COMPONENT),
        spec: ServiceEntrySpec {
            hosts: vec![h.clone()],
            export_to: strings([".", gateway_ns]),
            location: Some("MESH_EXTERNAL".into()),
            resolution: Some("DNS".into()),
            ports: vec![
                ServicePort {
                    number: 80,
                    name: "http".into(),
                    protocol: "HTTP".into(),
                },
                ServicePort {
                    number: port,
                    name: "https".into(),
                    protocol: "HTTPS".into(),
                },
            ],
        },
    })?;

    let (hop_port, hop_server) = match req.hop {
        Hop::IstioMutual => (
            443,
            Server {
                port: ServerPort {
                    number: 443,
                    name: format!("https-{}", names.subset),
                    protocol: "HTTPS".into(),
                },
                hosts: vec![h.clone()],
                tls: Some(ServerTls {
                    mode: "ISTIO_MUTUAL".into(),
                    credential_name: None,
                }),
            },
        ),
        Hop::Plain => (
            80,
            Server {
                port: ServerPort {
                    number: 80,
                    name: format!("http-{}", names.subset),
                    protocol: "HTTP".into(),
                },
                hosts: vec![h.clone()],
                tls: None,
            },
        ),
    };
    plan.push(&Gateway {
        metadata: meta(names.egress.clone(), ns, host, COMPONENT),
        spec: GatewaySpec {
            selector: gateway.selector.labels().clone(),
            servers: vec![hop_server],
        },
    })?;

    let subset_policy = match req.hop {
        Hop::IstioMutual => Some(TrafficPolicy {
            tls: None,
            port_level_settings: vec![PortTrafficPolicy {
                port: PortSelector { number: 443 },
                tls: Some(ClientTls {
                    mode: "ISTIO_MUTUAL".into(),
                    sni: Some(h.clone()),
                    ..Default::default()
                }),
            }],
        }),
        Hop::Plain => None,
    };
    plan.push(&DestinationRule {
        metadata: meta(names.egress.clone(), ns, host, COMPONENT),
        spec: DestinationRuleSpec {
            host: gateway_host.clone(),
            export_to: strings(["."]),
            traffic_policy: None,
            subsets: vec![Subset {
                name: names.subset.clone(),
                traffic_policy: subset_policy,
            }],
            workload_selector: None,
        },
    })?;

    plan.push(&VirtualService {
        metadata: meta(names.route.clone(), ns, host, COMPONENT),
        spec: VirtualServiceSpec {
            hosts: vec![h.clone()],
            export_to: strings([".", gateway_ns]),
            gateways: vec![names.egress.clone(), "mesh".into()],
            http: vec![
                HttpRoute {
                    matches: vec![HttpMatch {
                        gateways: strings(["mesh"]),
                        port: Some(80),
                    }],
                    route: vec![RouteDestination {
                        destination: Destination {
                            host: gateway_host.clone(),
                            subset: Some(names.subset.clone()),
                            port: Some(PortSelector { number: hop_port }),
                        },
                        headers: None,
                    }],
                    headers: None,
                },
                HttpRoute {
                    matches: vec![HttpMatch {
                        gateways: vec![names.egress.clone()],
                        port: Some(hop_port),
                    }],
                    route: vec![RouteDestination {
                        destination: Destination {
                            host: h.clone(),
                            subset: None,
                            port: Some(PortSelector { number: port }),
                        },
                        headers: None,
                    }],
                    // The gateway's HTTP connection manager sets XFCC from the sidecar's Istio
                    // certificate (SANITIZE_SET); the partner must not learn the caller's identity.
                    headers: Some(Headers {
                        request: Some(HeaderOperations {
                            remove: vec![XFCC_HEADER.into()],
                        }),
                    }),
                },
            ],
        },
    })?;

    plan.push(&origination_rule(req))?;

    if req.restrict_to_namespace {
        plan.push(&AuthorizationPolicy {
            metadata: serving_namespace(
                meta(names.restrict.clone(), gateway_ns, host, COMPONENT),
                ns,
            ),
            spec: AuthorizationPolicySpec {
                selector: Some(egress_gateway_selector(gateway)),
                action: Some("DENY".into()),
                rules: vec![Rule {
                    from: vec![From {
                        source: Source {
                            not_namespaces: vec![ns.to_string()],
                        },
                    }],
                    to: vec![To {
                        operation: Operation {
                            hosts: vec![h.clone(), format!("{h}:*")],
                        },
                    }],
                }],
            },
        })?;
    }

    if req.access_log {
        plan.push(&access_log_telemetry(&req.mesh.access_logging, gateway))?;
    }
    Ok(plan)
}

/// The origination DestinationRule of `enable` for the request's host: `MUTUAL` with the client
/// credential, `sni` and `subjectAltNames`, in the egress gateway's namespace and exported to it
/// only.
pub fn origination_rule(req: &EnableRequest) -> DestinationRule {
    let host = &req.host;
    let h = host.to_string();
    let names = EgressNames::for_host(host);
    let port = u32::from(req.port);
    DestinationRule {
        metadata: serving_namespace(
            meta(
                names.originate.clone(),
                &req.mesh.egress_gateway.namespace,
                host,
                COMPONENT,
            ),
            &req.namespace,
        ),
        spec: DestinationRuleSpec {
            host: h.clone(),
            export_to: strings(["."]),
            traffic_policy: Some(TrafficPolicy {
                tls: None,
                port_level_settings: vec![PortTrafficPolicy {
                    port: PortSelector { number: port },
                    tls: Some(ClientTls {
                        mode: "MUTUAL".into(),
                        credential_name: Some(req.credential.clone()),
                        sni: Some(h.clone()),
                        subject_alt_names: vec![h.clone()],
                    }),
                }],
            }),
            subsets: Vec::new(),
            workload_selector: None,
        },
    }
}

fn egress_gateway_selector(gateway: &GatewayWorkload) -> WorkloadSelector {
    WorkloadSelector {
        match_labels: gateway.selector.labels().clone(),
    }
}

/// The access-log Telemetry for the egress gateway pods, in their namespace (shared by every
/// host): the mesh-wide
/// logging in `kept`, then `envoy` for every request (last, so no filter of the mesh's applies
/// to it: Istio keeps the last filter it sees per provider).
pub(crate) fn access_log_telemetry(kept: &[AccessLogging], gateway: &GatewayWorkload) -> Telemetry {
    let mut access_logging = kept.to_vec();
    access_logging.push(AccessLogging {
        providers: vec![ProviderRef {
            name: ENVOY_PROVIDER.into(),
        }],
        ..Default::default()
    });
    Telemetry {
        metadata: ObjectMeta {
            name: Some(ACCESS_LOG_TELEMETRY.into()),
            namespace: Some(gateway.namespace.clone()),
            labels: Some(labels(ACCESS_LOG_COMPONENT)),
            ..Default::default()
        },
        spec: TelemetrySpec {
            selector: Some(egress_gateway_selector(gateway)),
            access_logging,
        },
    }
}

/// Istio's built-in access-log provider: the proxy's stdout, which `check` reads.
const ENVOY_PROVIDER: &str = "envoy";

/// The mesh-wide access logging that our gateway-scoped Telemetry must repeat, because a
/// workload's Telemetry that names providers replaces the mesh-level ones for that workload
/// (istio/istio 1.30.3 `pilot/pkg/model/telemetry.go`, `mergeLogs`: the providers in scope are
/// those of the last level that names any). The mesh level is the oldest Telemetry without a
/// selector in the root namespace (`namespaceWideTelemetryConfig`, after
/// `sortConfigByCreationTime`) or, when it has no access logging, the mesh config's
/// `defaultProviders.accessLogging`. Entries keep their `match` and `filter`; disabled ones are
/// left out (they log nothing), and an entry without providers names the default providers.
pub fn kept_access_logging(
    telemetries: &[Telemetry],
    default_providers: &[String],
) -> Vec<AccessLogging> {
    let mut mesh_wide: Vec<&Telemetry> = telemetries
        .iter()
        .filter(|t| {
            t.metadata.namespace.as_deref() == Some(ISTIO_NAMESPACE)
                && t.spec
                    .selector
                    .as_ref()
                    .is_none_or(|s| s.match_labels.is_empty())
        })
        .collect();
    mesh_wide.sort_by(|a, b| {
        let created = |t: &Telemetry| t.metadata.creation_timestamp.as_ref().map(|c| c.0);
        created(a)
            .cmp(&created(b))
            .then(a.metadata.name.cmp(&b.metadata.name))
    });
    let defaults: Vec<ProviderRef> = default_providers
        .iter()
        .map(|name| ProviderRef { name: name.clone() })
        .collect();
    let entries = match mesh_wide.first() {
        Some(t) if !t.spec.access_logging.is_empty() => t.spec.access_logging.clone(),
        _ => vec![AccessLogging {
            providers: defaults.clone(),
            ..Default::default()
        }],
    };
    entries
        .into_iter()
        .filter(|e| e.disabled != Some(true))
        .map(|e| AccessLogging {
            providers: if e.providers.is_empty() {
                defaults.clone()
            } else {
                e.providers
            },
            disabled: None,
            ..e
        })
        .filter(|e| {
            let only_ours = e.match_.is_none()
                && e.filter.is_none()
                && e.providers.iter().all(|p| p.name == ENVOY_PROVIDER);
            !e.providers.is_empty() && !only_ours
        })
        .collect()
}

/// The `Istio` CR patch that switches the egress gateway off again (`disable --egress-gateway`).
pub fn egress_gateway_off(namespace: &str, name: &str) -> Istio {
    Istio {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        spec: IstioSpec {
            components: Some(Components {
                egress_gateway: Some(EgressGateway {
                    enabled: Some(false),
                }),
            }),
            network_policies_enabled: None,
        },
        status: None,
    }
}
