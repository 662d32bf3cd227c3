//! Stage 5 (lockdown), as pure builders: the `mtls-lockdown` NetworkPolicy that lets a namespace
//! leave only through the egress gateway (plus DNS and istiod), the `mtls-registry-only` Sidecar,
//! and the Kyma `to-egressgateway` pod-template label.
//!
//! What the tutorial's policy misses: DNS is allowed on UDP **and** TCP (answers too large for UDP
//! are retried over TCP; Istio's own istio-cni policy allows both, istio/istio PR #57029), to the
//! kube-dns ClusterIP as an ipBlock (node-local DNS answers it without DNAT), to node-local DNS's
//! own address (169.254.20.10) when it runs, and to the CoreDNS pods on 53 and 8053 (Gardener's
//! CoreDNS listens on 8053 behind Service port 53: gardener/gardener
//! `pkg/component/networking/coredns/constants/constants.go`). istio-system is narrowed to istiod
//! (15012, without which a sidecar never becomes ready), and the egress gateway to its pods (by
//! their labels, in their namespace: [`LockdownInputs::egress_gateway`]) on their ports, unless
//! `namespace_wide`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{ISTIO_NAMESPACE, ManifestError, check_object_name, labels};
use crate::gateway::GatewayWorkload;
use crate::resources::{OutboundTrafficPolicy, Sidecar, SidecarSpec};

/// The NetworkPolicy's name.
pub const POLICY_NAME: &str = "mtls-lockdown";
/// The name of the REGISTRY_ONLY Sidecar of `apply --registry-only`.
pub const SIDECAR_NAME: &str = "mtls-registry-only";
/// The component label value of everything `kubectl mtls-lockdown apply` creates.
pub const COMPONENT: &str = "lockdown";
/// Node-local DNS's link-local address (Gardener and upstream defaults).
pub(crate) const NODE_LOCAL_DNS_IP: &str = "169.254.20.10";
/// The ports CoreDNS pods listen on: 53, and 8053 on Gardener.
pub(crate) const DNS_POD_PORTS: [u16; 2] = [53, 8053];
/// The egress gateway's pod ports behind Service ports 80 and 443, when its Service is not found.
pub const DEFAULT_EGRESS_GATEWAY_PORTS: [u16; 2] = [8080, 8443];
/// istiod's xDS and certificate port.
pub(crate) const ISTIOD_PORT: u16 = 15012;
/// The namespace of kube-dns / CoreDNS.
pub const DNS_NAMESPACE: &str = "kube-system";
/// The label of CoreDNS / kube-dns pods.
pub(crate) const DNS_POD_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
/// The label of istiod pods.
pub(crate) const ISTIOD_POD_LABEL: (&str, &str) = ("istio", "pilot");
/// The label of istioctl's and Kyma's egress gateway pods.
pub(crate) const EGRESS_GATEWAY_POD_LABEL: (&str, &str) = ("istio", "egressgateway");
/// The pod label Kyma's `networkPoliciesEnabled` policies require to reach the egress gateway.
pub const KYMA_EGRESS_POD_LABEL: (&str, &str) =
    ("networking.kyma-project.io/to-egressgateway", "allowed");

/// What the lockdown policy allows, as detected on the cluster or given by flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockdownInputs {
    /// The namespace to lock down.
    pub namespace: String,
    /// The kube-dns Service's ClusterIP.
    pub dns_service_ip: IpAddr,
    /// Whether node-local DNS runs (adds `NODE_LOCAL_DNS_IP`).
    pub node_local_dns: bool,
    /// Extra CoreDNS pod ports (the kube-dns Service's numeric target ports) beyond `DNS_POD_PORTS`.
    pub extra_dns_pod_ports: Vec<u16>,
    /// The egress gateway pods' ports (numbers, or container port names).
    pub egress_gateway_ports: Vec<IntOrString>,
    /// The egress gateway: the namespace and labels of its pods.
    pub egress_gateway: GatewayWorkload,
    /// Allow all of istio-system (and the egress gateway's namespace) on every port, as the
    /// tutorial does, instead of istiod and the egress gateway on their ports.
    pub namespace_wide: bool,
    /// Also allow traffic to every pod of the namespace itself.
    pub allow_same_namespace: bool,
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    }
}

fn namespace_selector(namespace: &str) -> LabelSelector {
    selector(&[("kubernetes.io/metadata.name", namespace)])
}

fn pods_in(namespace: &str, label: (&str, &str)) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(namespace_selector(namespace)),
        pod_selector: Some(selector(&[label])),
        ip_block: None,
    }
}

/// The egress gateway's pods: istioctl's and Kyma's label in istio-system, else its own.
fn gateway_pods(gateway: &GatewayWorkload) -> NetworkPolicyPeer {
    if gateway.is_default() {
        return pods_in(ISTIO_NAMESPACE, EGRESS_GATEWAY_POD_LABEL);
    }
    let labels: Vec<(&str, &str)> = gateway
        .selector
        .labels()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    NetworkPolicyPeer {
        namespace_selector: Some(namespace_selector(&gateway.namespace)),
        pod_selector: Some(selector(&labels)),
        ip_block: None,
    }
}

fn ip_block(ip: IpAddr) -> NetworkPolicyPeer {
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: format!("{ip}/{prefix}"),
            except: None,
        }),
        ..Default::default()
    }
}

fn port(protocol: &str, port: IntOrString) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_string()),
        port: Some(port),
        end_port: None,
    }
}

/// The `mtls-lockdown` NetworkPolicy: every pod of the namespace may send only DNS (UDP and TCP),
/// to istiod and to the egress gateway (or, with `namespace_wide`, anywhere in istio-system).
pub fn network_policy(inputs: &LockdownInputs) -> Result<NetworkPolicy, ManifestError> {
    check_object_name(&inputs.namespace)?;
    check_object_name(&inputs.egress_gateway.namespace)?;
    let mut dns_ports: Vec<u16> = DNS_POD_PORTS.to_vec();
    for p in &inputs.extra_dns_pod_ports {
        if !dns_ports.contains(p) {
            dns_ports.push(*p);
        }
    }
    let mut dns_peers = vec![ip_block(inputs.dns_service_ip)];
    if inputs.node_local_dns {
        dns_peers.push(ip_block(
            NODE_LOCAL_DNS_IP.parse().expect("a valid IPv4 literal"),
        ));
    }
    dns_peers.push(pods_in(DNS_NAMESPACE, DNS_POD_LABEL));
    let mut rules = vec![NetworkPolicyEgressRule {
        to: Some(dns_peers),
        ports: Some(
            dns_ports
                .iter()
                .flat_map(|p| {
                    ["UDP", "TCP"].map(|proto| port(proto, IntOrString::Int(i32::from(*p))))
                })
                .collect(),
        ),
    }];
    if inputs.namespace_wide {
        let mut namespaces = vec![ISTIO_NAMESPACE];
        if inputs.egress_gateway.namespace != ISTIO_NAMESPACE {
            namespaces.push(&inputs.egress_gateway.namespace);
        }
        rules.push(NetworkPolicyEgressRule {
            to: Some(
                namespaces
                    .into_iter()
                    .map(|ns| NetworkPolicyPeer {
                        namespace_selector: Some(namespace_selector(ns)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: None,
        });
    } else {
        rules.push(NetworkPolicyEgressRule {
            to: Some(vec![pods_in(ISTIO_NAMESPACE, ISTIOD_POD_LABEL)]),
            ports: Some(vec![port("TCP", IntOrString::Int(i32::from(ISTIOD_PORT)))]),
        });
        rules.push(NetworkPolicyEgressRule {
            to: Some(vec![gateway_pods(&inputs.egress_gateway)]),
            ports: Some(
                inputs
                    .egress_gateway_ports
                    .iter()
                    .map(|p| port("TCP", p.clone()))
                    .collect(),
            ),
        });
    }
    if inputs.allow_same_namespace {
        rules.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector::default()),
                ..Default::default()
            }]),
            ports: None,
        });
    }
    Ok(NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(POLICY_NAME.to_string()),
            namespace: Some(inputs.namespace.clone()),
            labels: Some(labels(COMPONENT)),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Egress".to_string()]),
            egress: Some(rules),
            ingress: None,
        }),
    })
}

/// The `mtls-registry-only` Sidecar: the namespace's sidecars send nothing to hosts outside the
/// mesh registry (a diagnostic aid, not a firewall: the NetworkPolicy enforces).
pub fn registry_only_sidecar(namespace: &str) -> Result<Sidecar, ManifestError> {
    check_object_name(namespace)?;
    Ok(Sidecar {
        metadata: ObjectMeta {
            name: Some(SIDECAR_NAME.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels(COMPONENT)),
            ..Default::default()
        },
        spec: SidecarSpec {
            egress: Vec::new(),
            outbound_traffic_policy: Some(OutboundTrafficPolicy {
                mode: "REGISTRY_ONLY".to_string(),
            }),
            workload_selector: None,
        },
    })
}

/// The part of a Deployment we own for `--label-pods`: one pod-template label, applied by
/// server-side apply so no other field of the Deployment is touched.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "apps",
    version = "v1",
    kind = "Deployment",
    root = "DeploymentPodLabels",
    namespaced,
    schema = "disabled"
)]
pub struct DeploymentPodLabelsSpec {
    /// `spec.template`, with only labels.
    pub template: PodTemplateLabels,
}

/// `spec.template` with only `metadata.labels`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct PodTemplateLabels {
    /// `spec.template.metadata`.
    pub metadata: LabelsOnly,
}

/// Metadata with only labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LabelsOnly {
    /// The labels.
    pub labels: BTreeMap<String, String>,
}

/// Adds Kyma's `networking.kyma-project.io/to-egressgateway: allowed` to the pod template of
/// Deployment `namespace/name` (a rollout follows).
pub fn kyma_egress_pod_label(namespace: &str, name: &str) -> DeploymentPodLabels {
    DeploymentPodLabels {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        spec: DeploymentPodLabelsSpec {
            template: PodTemplateLabels {
                metadata: LabelsOnly {
                    labels: BTreeMap::from([(
                        KYMA_EGRESS_POD_LABEL.0.to_string(),
                        KYMA_EGRESS_POD_LABEL.1.to_string(),
                    )]),
                },
            },
        },
    }
}
