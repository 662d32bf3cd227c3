//! Stage 2, target cluster: expose a workload behind mutual TLS on the ingress gateway
//! (`kubectl mtls-egress expose`).
//!
//! - `Gateway mtls-<slug>` (or `--gateway`) in the workload's namespace, selecting the ingress
//!   gateway's pods ([`ExposeRequest::ingress`]: istioctl's and Kyma's `app: istio-ingressgateway`,
//!   `istio: ingressgateway` unless `expose` found another): `443/HTTPS`, `tls.mode: MUTUAL`,
//!   `credentialName` = the server credential, which Istio resolves in the namespace of the
//!   ingress gateway pods (istio-system for the default), not in the Gateway's namespace.
//! - `APIRule mtls-<slug>` (`gateway.kyma-project.io/v2`, path `/*`, `noAuth`, methods GET unless
//!   `--methods` widens them) when Kyma's API Gateway is installed, else `VirtualService mtls-<slug>`
//!   bound to the Gateway and routing to the Service.
//! - with `--label-namespace`, the namespace label `istio-injection=enabled` (by server-side apply
//!   of that one label): APIRule v2 requires the workload in the mesh.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectMeta;

use super::egress::EgressPlanError;
use super::host::{host_annotations, host_labels, slug};
use super::{ManifestError, check_object_name};
use crate::gateway::GatewayWorkload;
use crate::names::DnsName;
use crate::plan::Plan;
use crate::resources::apirule::{ApiRuleRule, ApiRuleService};
use crate::resources::common::PortSelector;
use crate::resources::gateway::{Server, ServerPort, ServerTls};
use crate::resources::virtual_service::{Destination, HttpRoute, RouteDestination};
use crate::resources::{
    APIRule, APIRuleSpec, Gateway, GatewaySpec, VirtualService, VirtualServiceSpec,
};

/// `app.kubernetes.io/component` of the target-side objects.
pub const COMPONENT: &str = "expose";
/// HTTP methods APIRule v2 accepts.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// How the Gateway reaches the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// A Kyma APIRule v2 (needs Kyma's API Gateway module).
    Apirule,
    /// An Istio VirtualService bound to the Gateway (any Istio).
    Virtualservice,
}

/// `--service NAME:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    /// The Service's name.
    pub name: String,
    /// Its port.
    pub port: u16,
}

impl std::str::FromStr for ServiceRef {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            ManifestError::BadValue(format!(
                "--service {s:?}: {why}; give the workload's Service as NAME:PORT, e.g. httpbin:8000"
            ))
        };
        let (name, port) = s.split_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
        if name.is_empty()
            || name.len() > 63
            || name.contains('.')
            || check_object_name(name).is_err()
        {
            return Err(bad(
                "the name must be a Service name (lowercase letters, digits, '-')",
            ));
        }
        Ok(Self {
            name: name.to_string(),
            port,
        })
    }
}

/// The inputs of `expose`.
#[derive(Debug, Clone)]
pub struct ExposeRequest {
    /// The public host name clients call (the server certificate's SAN).
    pub host: DnsName,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's Service.
    pub service: ServiceRef,
    /// The server credential Secret in the ingress gateway's namespace.
    pub credential: String,
    /// The Gateway's name (default `mtls-<slug>`).
    pub gateway: Option<String>,
    /// APIRule or VirtualService.
    pub route: Route,
    /// HTTP methods the APIRule allows.
    pub methods: Vec<String>,
    /// Whether to label the namespace for sidecar injection.
    pub label_namespace: bool,
    /// The ingress gateway whose pods the Gateway selects.
    pub ingress: GatewayWorkload,
}

/// The plan of `expose`: pure, in apply order.
pub fn expose_plan(req: &ExposeRequest) -> Result<Plan, EgressPlanError> {
    check_object_name(&req.namespace)?;
    check_object_name(&req.credential)?;
    if req.credential.ends_with("-cacert") {
        return Err(ManifestError::CacertSuffix(req.credential.clone()).into());
    }
    let host = &req.host;
    let s = slug(host);
    let name = format!("mtls-{s}");
    let gateway = req.gateway.clone().unwrap_or_else(|| name.clone());
    check_object_name(&gateway)?;
    let methods: Vec<String> = req.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
    if let Some(bad) = methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
        return Err(ManifestError::BadValue(format!(
            "--methods: {bad:?} is not an HTTP method APIRule accepts ({})",
            METHODS.join(", ")
        ))
        .into());
    }
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(req.namespace.clone()),
        labels: Some(host_labels(COMPONENT, host)),
        annotations: Some(host_annotations(host)),
        ..Default::default()
    };
    let mut plan = Plan::new();
    if req.label_namespace {
        plan.push(&Namespace {
            metadata: ObjectMeta {
                name: Some(req.namespace.clone()),
                labels: Some([("istio-injection".to_string(), "enabled".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        })?;
    }
    plan.push(&Gateway {
        metadata: meta(&gateway),
        spec: GatewaySpec {
            selector: req.ingress.selector.labels().clone(),
            servers: vec![Server {
                port: ServerPort {
                    number: 443,
                    name: format!("mtls-{s}"),
                    protocol: "HTTPS".into(),
                },
                hosts: vec![host.to_string()],
                tls: Some(ServerTls {
                    mode: "MUTUAL".into(),
                    credential_name: Some(req.credential.clone()),
                }),
            }],
        },
    })?;
    match req.route {
        Route::Apirule => plan.push(&APIRule {
            metadata: meta(&name),
            spec: APIRuleSpec {
                hosts: vec![host.to_string()],
                service: ApiRuleService {
                    name: req.service.name.clone(),
                    namespace: req.namespace.clone(),
                    port: u32::from(req.service.port),
                },
                gateway: format!("{}/{gateway}", req.namespace),
                rules: vec![ApiRuleRule {
                    path: "/*".into(),
                    methods,
                    no_auth: Some(true),
                }],
            },
        })?,
        Route::Virtualservice => plan.push(&VirtualService {
            metadata: meta(&name),
            spec: VirtualServiceSpec {
                hosts: vec![host.to_string()],
                export_to: Vec::new(),
                gateways: vec![gateway.clone()],
                http: vec![HttpRoute {
                    matches: Vec::new(),
                    route: vec![RouteDestination {
                        destination: Destination {
                            host: format!(
                                "{}.{}.svc.cluster.local",
                                req.service.name, req.namespace
                            ),
                            subset: None,
                            port: Some(PortSelector {
                                number: u32::from(req.service.port),
                            }),
                        },
                        headers: None,
                    }],
                    headers: None,
                }],
            },
        })?,
    };
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_refs() {
        let ok: ServiceRef = "httpbin:8000".parse().unwrap();
        assert_eq!((ok.name.as_str(), ok.port), ("httpbin", 8000));
        for bad in [
            "httpbin",
            "httpbin:",
            "httpbin:0",
            "httpbin:70000",
            ":80",
            "Http_bin:80",
            "a.b:80",
        ] {
            assert!(bad.parse::<ServiceRef>().is_err(), "{bad}");
        }
    }
}
